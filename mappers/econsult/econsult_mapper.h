// SPDX-License-Identifier: Apache-2.0
#pragma once

// E-consult events (contracts/econsult-event.md) to FHIR R4.
//
// map() checks the event (required members, JSON types, NPIs, codes, known payers) and builds a
// `collection` Bundle of Patient, Organization, Coverage, Practitioner, ServiceRequest, Task,
// Communication and Claim resources with deterministic ids. Problems are Issues whose `location`
// is a JSON path into the event (`$.billing[0].code`); unknown members are warnings.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "mappers/common/directory.h"

namespace fhir::mappers {

// One billing entry of an event, as routing needs it.
struct BillingFact {
  std::string claim_id;
  std::string system;
  std::string code;
  std::string date_of_service;
  std::string npi;
  std::string billed_by;
  // The coverage valid on the date of service, when one is known.
  std::optional<CoverageFact> coverage;
};

struct MappedEvent {
  json::Document bundle;  // Bundle type collection; entries hold the resources
  std::string source;
  std::string event_id;
  std::string event_type;
  std::string consult_id;
  std::string patient_id;
  std::vector<CoverageFact> coverage;  // coverage the event itself declares
  std::vector<BillingFact> billing;
  // For subscription filters: the requesting practice's NPI and the event's codes as
  // "system|code" (billing and reason codes).
  std::vector<std::string> practice_npis;
  std::vector<std::string> codes;
};

struct EconsultContext {
  const Directory& directory;
  // Base of fullUrl values: entries get `{base_url}/{type}/{id}`.
  std::string base_url;
  // The stored ServiceRequest of this consult, when earlier events created one; later events
  // update it instead of starting over.
  const json::Value* previous_service_request = nullptr;
};

class EconsultMapper {
 public:
  // Maps one event. Returns false when the event has errors (then `issues` holds them and
  // `out` is unspecified). Warnings may be added on success.
  bool map(const json::Value& event, const EconsultContext& context, MappedEvent& out,
           IssueList& issues) const;

  // Id of the consult's ServiceRequest, so the caller can look up the stored one before map().
  // nullopt when the event lacks a string `source` or `consultId`.
  static std::optional<std::string> serviceRequestIdOf(const json::Value& event);
};

}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
#pragma once

// What routing and subscriptions need of a mapped Bundle (e-consult, care-management, payer
// files), read back from its resources: coverage, billing lines, patient, practice, codes. No
// source format is read here, only the FHIR the specs wrote.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "gateway/config/config.h"
#include "gateway/ingest/contributions.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/matching.h"
#include "mappers/common/directory.h"

namespace fhir::gateway {

// The source-record digest the engine puts in a mapped Bundle's Provenance (its last entry);
// the hash of `bundle_json` when there is none.
std::string sourceDigestOf(const json::Value& bundle, const std::string& bundle_json);

// Coverage resources of a mapped Bundle as routing facts.
std::vector<fhir::CoverageFact> coverageFacts(const json::Value& bundle, const std::string& payer_id);

// The event's own Coverage resources as routing facts; the payer is the payer-id identifier of
// the Organization in Coverage.payor (as both event specs write it).
std::vector<fhir::CoverageFact> eventCoverage(const json::Value& bundle);

// The billing Claims of a mapped Bundle as routing facts (code, date, billing NPI), each with the
// coverage valid on its date of service among `known`.
std::vector<fhir::BillingFact> billingFacts(const json::Value& bundle, const std::vector<fhir::CoverageFact>& known);

// Points each routable billing Claim of a mapped Bundle at the coverage routing chose (the
// mapper's pick may be another one of an ambiguous timeline).
void settleBilling(const Config& config, json::Document& bundle, const std::vector<fhir::BillingFact>& billing);

// The practices a mapped Bundle names: the NPI of each Organization of type `prov` (as the
// e-consult and care-management specs write a practice). Read from FHIR, never the source event.
std::set<std::string> practicesOf(const json::Value& bundle);

// Who an event's contributions come from: its source, ranked by occurredAt (in UTC).
ContributionSource eventSource(std::string_view source, std::string_view event_id, std::string_view occurred_at);

// An e-consult's facts: its patient, the coverage it declares, its billing lines on the merged
// coverage timeline, and the subscription filter facts.
struct EconsultFacts {
  std::string patient_id;
  std::vector<fhir::CoverageFact> coverage;  // declared by the event
  std::vector<fhir::BillingFact> billing;
  EventFacts event;
};
// A store failure reading the patient's coverage is an error, never "no coverage".
Result<EconsultFacts> econsultFacts(const json::Value& bundle, Store& store);

// The ACM slots an event takes (one ACM per patient, specialist and calendar month: the Claim id
// says which), owned by the event's Claim identifier; the store refuses a commit whose slot
// another event holds (Store: unique slots), so two concurrent second ACMs cannot both pass.
std::vector<UniqueSlot> acmSlots(const json::Value& bundle);

}  // namespace fhir::gateway

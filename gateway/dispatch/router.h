// SPDX-License-Identifier: Apache-2.0
#pragma once

// Routing of billing Claims to the payer that covers the patient on the date of service, and
// the outbound Bundles for payers and static feeds.

#include <optional>
#include <string>

#include "conformance/json/json.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "mappers/common/directory.h"

namespace fhir::gateway {

struct RouteDecision {
  const PayerConfig* payer = nullptr;  // null: unroutable
  std::string reason;                  // why unroutable
};

// The coverage a claim on `date` goes to, on the patient's merged coverage timeline (issue 11;
// contracts/econsult-event.md, Routing): dated coverage (a payer's roster period, a dated event
// entry, a payer claim file's date of service) decides when there is any; an undated entry only
// when there is none. Never a guess: two payers' dated coverage on that date without a
// Coverage.order that names one primary, or undated entries of two payers, leave `coverage`
// empty with the reason.
struct CoverageChoice {
  std::optional<fhir::CoverageFact> coverage;
  std::string reason;
};
CoverageChoice chooseCoverage(const std::vector<fhir::CoverageFact>& facts, const std::string& date);

// The payer for one billing entry: the coverage valid on its date of service, if that payer's
// `routes` take the code and line of business.
RouteDecision routeClaim(const Config& config, const fhir::BillingFact& billing);

// The `collection` Bundle a payer receives: the Claim and the resources it references
// (Patient, Coverage, Practitioner, Organization), taken from the mapped Bundle or, when an
// earlier event stored them, from the store. An error when the store failed reading one (never
// a Bundle without it).
Result<std::string> payerBundle(const json::Value& mapped_bundle, const std::string& claim_id, Store& store,
                                const std::string& base_url);

inline std::string payerDestination(const std::string& payer_id) { return "payer:" + payer_id; }
inline std::string feedDestination(const std::string& feed_id) { return "feed:" + feed_id; }

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// From a mapped Bundle to the store's merge (issue 11): which of its resources are
// contributions, who contributed them, and the routing facts a payer's claim file adds.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/json/json.h"
#include "gateway/merge/merge.h"
#include "gateway/store/store.h"

namespace fhir::gateway {

// Who a Bundle's contributions come from.
struct ContributionSource {
  std::string kind;          // "ehr", "roster", "claims"
  std::string organization;  // the EHR source or the payer id
  std::string payer;         // payer files: the payer id
  std::string rank;          // events: occurredAt in UTC; rosters: asOf; else empty
  std::string tiebreak;      // events: source + eventId; payer files: the record id
};

// Moves the resources of merged types (rules) out of `commit.resources` into
// `commit.contributions`, tagged with `source` and the Bundle's Provenance. An event's Coverage
// gets its payer from its payor Organization's payer-id identifier.
void takeContributions(const merge::MergeRules& rules, const json::Value& bundle, const ContributionSource& source,
                       IngestCommit& commit);

// A payer claim file's evidence of coverage: one fact per Coverage of the Bundle and date of
// service of its Claim or ExplanationOfBenefit items (basis "evidence", start = end = the date).
std::vector<fhir::CoverageFact> claimEvidence(const json::Value& bundle, const std::string& payer_id);

// Points a mapped Claim (by id, in `bundle`) at the coverage routing chose: insurance[0].coverage
// and insurer. False when the Bundle has no such Claim with insurance.
bool settleClaim(json::Document& bundle, const std::string& claim_id, const std::string& coverage_id,
                 const std::string& payer_id);
void settleClaimResource(json::Value& claim, json::Allocator& allocator, const std::string& coverage_id,
                         const std::string& payer_id);

// The coverage known for routing an event's claims: the stored (merged) timeline, with the
// event's own entries joining it. An event's entry never changes a payer's period: it replaces
// a stored entry of the same Coverage only when that one rests on no payer source and the
// event's is dated.
std::vector<fhir::CoverageFact> withEventCoverage(std::vector<fhir::CoverageFact> known,
                                                     std::vector<fhir::CoverageFact> event);

// The commit after a roster file's rows: one new version of each attribution Group it touched
// (`groups`: Group id -> "Patient/<id>" of the members the file lists), and in rosterMode full
// the file's list of members per Group (the others end on asOf). `row_keys`: the rows'
// idempotency keys, so the same file again is the same commit.
IngestCommit rosterGroupCommit(const std::string& channel, const std::string& payer_id, std::string_view as_of, bool full,
                               const std::map<std::string, std::set<std::string>>& groups, const std::string& row_keys);

}  // namespace fhir::gateway

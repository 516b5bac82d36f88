// SPDX-License-Identifier: Apache-2.0
#pragma once

// Coverage and billing as routing sees them: the facts the mapper returns with an event's Bundle
// and the store keeps per patient. Shared by mappers and the gateway (store, routing), so it
// lives here, depending on nothing of ours.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fhir {

// One Coverage as far as routing is concerned. Dates are YYYY-MM-DD; empty means open.
struct CoverageFact {
  std::string coverage_id;
  std::string patient_id;
  std::string payer_id;
  std::string member_id;
  std::string line_of_business;
  std::string start;
  std::string end;
  // What the dates rest on (issue 11): "payer" (the payer's roster), "ehr" (an event's entry),
  // "evidence" (a payer's claim file: coverage on that date of service only), "conflict" (the
  // patient shares the member id with a patient of other demographics), "" (unknown).
  std::string basis;
  int order = 0;  // Coverage.order; 0 when none
  bool dated() const { return !start.empty() || !end.empty(); }
  bool coversDate(std::string_view date) const {
    return (start.empty() || start <= date) && (end.empty() || date <= end);
  }
};

// One billing entry of an event (a mapped Claim), as routing needs it.
struct BillingFact {
  std::string claim_id;
  std::string system;
  std::string code;
  std::string date_of_service;
  std::string npi;
  std::string billed_by;
  // The coverage valid on the date of service, when one is known.
  std::optional<CoverageFact> coverage;
  // Why none is, when the gateway's routing decided (ambiguous coverage); empty: none known.
  std::string coverage_reason;
};

// Picks the coverage valid on `date` (contracts/econsult-event.md, Routing): coverage with
// dates first; an undated entry counts only when the patient has no dated coverage at all.
// Returns nullptr when none applies.
const CoverageFact* selectCoverage(const std::vector<CoverageFact>& coverage, std::string_view date);

}  // namespace fhir

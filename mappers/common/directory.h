// SPDX-License-Identifier: Apache-2.0
#pragma once

// What mappers may ask of the world around them: configured payers and already-known
// coverage. The gateway implements these over its configuration and store; mappers know nothing
// of either.

#include "conformance/common/coverage.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fhir::mappers {

// Coverage facts are shared with the store (conformance/common/coverage.h).
using fhir::BillingFact;
using fhir::CoverageFact;
using fhir::selectCoverage;

struct PayerInfo {
  std::string id;
  std::string name;
  std::string identifier_system;  // may be empty
  std::string identifier_value;
};

class Directory {
 public:
  virtual ~Directory() = default;
  // The configured payer with this id, or nullopt.
  virtual std::optional<PayerInfo> payer(std::string_view payer_id) const = 0;
  // Coverage already stored for a patient (rosters, claims, earlier events).
  virtual std::vector<CoverageFact> coverageOf(std::string_view patient_id) const = 0;
};

}  // namespace fhir::mappers

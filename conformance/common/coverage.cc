// SPDX-License-Identifier: Apache-2.0
#include "conformance/common/coverage.h"

namespace fhir {

const CoverageFact* selectCoverage(const std::vector<CoverageFact>& coverage, std::string_view date) {
  bool any_dated = false;
  for (const CoverageFact& fact : coverage) {
    if (!fact.dated()) continue;
    any_dated = true;
    if (fact.coversDate(date)) return &fact;
  }
  if (any_dated) return nullptr;
  for (const CoverageFact& fact : coverage) {
    if (!fact.dated()) return &fact;
  }
  return nullptr;
}

}  // namespace fhir

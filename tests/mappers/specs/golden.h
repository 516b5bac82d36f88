// SPDX-License-Identifier: Apache-2.0
#pragma once

// Golden-test helpers for mapping specs. Expected Bundles are written by hand from the spec and
// the contracts; the values no one can compute by hand are placeholders the test fills in from
// their definitions:
//   {{id:Part|Part|...}}        fhir::deriveId of the parts (the contract's id rule)
//   {{sha256:lines A-B}}        SHA-256 of physical lines A..B of the input, line ends included
//   {{sha256:x12 A-B,C-D,...}}  SHA-256 of those segments of the input's first transaction set
//                               (ST = 1), each followed by the segment terminator, no line breaks

#include <string>
#include <vector>

#include "conformance/json/json.h"
#include "mappers/common/directory.h"
#include "mappers/engine/engine.h"

namespace fhir::mappers::testing {

std::string fillPlaceholders(const std::string& expected, const std::string& input);

class FakeDirectory final : public Directory {
 public:
  std::optional<PayerInfo> payer(std::string_view payer_id) const override;
  std::vector<CoverageFact> coverageOf(std::string_view) const override { return {}; }
};

struct GoldenRun {
  std::vector<json::Document> bundles;
  std::vector<engine::Rejection> rejections;
  engine::MapSummary summary;
};

// Maps tests/data/mappers/<dir>/<input> with spec `spec_id` at a fixed time
// ("2026-10-03T09:13:00-05:00"), payer `payer_id`.
GoldenRun runGolden(const engine::SpecLibrary& library, const std::string& spec_id, const std::string& payer_id,
                    const std::string& dir, const std::string& input);

// The bundled specs, loaded once.
const engine::SpecLibrary& bundledSpecs();

// Expect `actual` to equal tests/data/mappers/<dir>/<expected_file> after placeholders.
void expectBundle(const json::Value& actual, const std::string& dir, const std::string& expected_file,
                  const std::string& input);

// "position | location | location" per rejection (locations sorted, unique), against the
// non-comment lines of tests/data/mappers/<dir>/<file>.
void expectRejections(const std::vector<engine::Rejection>& rejections, const std::string& dir, const std::string& file);

// Every Bundle validates against the alignment profiles with zero errors.
void expectValid(const json::Value& bundle);
// Validation errors of `bundle` (to show the validator does see the profiles).
size_t validationErrors(const json::Value& bundle);
// The validation errors of `bundle`, one "expression: diagnostics" line each.
std::string validationErrorText(const json::Value& bundle);

}  // namespace fhir::mappers::testing

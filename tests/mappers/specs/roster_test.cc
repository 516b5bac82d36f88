// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/roster.json (contracts/payer-formats.md, Rosters).
#include <gtest/gtest.h>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

TEST(Roster, EachRowIsCoverageAndAttributionMembership) {
  GoldenRun run = runGolden(bundledSpecs(), "roster", "lakeshore-medicaid", "roster", "roster.csv");
  EXPECT_EQ(run.summary.records, 3u);
  EXPECT_EQ(run.summary.accepted, 2u);
  ASSERT_EQ(run.bundles.size(), 2u);
  expectBundle(run.bundles[0], "roster", "expected-LMC00918273.json", "roster.csv");
  expectBundle(run.bundles[1], "roster", "expected-LMC00455120.json", "roster.csv");
  expectRejections(run.rejections, "roster", "expected-rejections.txt");
}

TEST(Roster, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "roster", "lakeshore-medicaid", "roster", "roster.csv");
  ASSERT_EQ(run.bundles.size(), 2u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

}  // namespace
}  // namespace fhir::mappers::testing

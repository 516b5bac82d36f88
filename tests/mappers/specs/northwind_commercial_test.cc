// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/northwind-commercial.json (contracts/payer-formats.md).
#include <gtest/gtest.h>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

TEST(NorthwindCommercial, PaidClaimIsAnEobPendingClaimIsAClaim) {
  GoldenRun run = runGolden(bundledSpecs(), "northwind-commercial", "northwind-commercial", "northwind-commercial",
                            "claims.ndjson");
  EXPECT_EQ(run.summary.records, 5u);
  EXPECT_EQ(run.summary.accepted, 2u);
  EXPECT_EQ(run.summary.rejected, 3u);
  ASSERT_EQ(run.bundles.size(), 2u);
  expectBundle(run.bundles[0], "northwind-commercial", "expected-NW-2001.json", "claims.ndjson");
  expectBundle(run.bundles[1], "northwind-commercial", "expected-NW-2002.json", "claims.ndjson");
  expectRejections(run.rejections, "northwind-commercial", "expected-rejections.txt");
}

TEST(NorthwindCommercial, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "northwind-commercial", "northwind-commercial", "northwind-commercial",
                            "claims.ndjson");
  ASSERT_EQ(run.bundles.size(), 2u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

}  // namespace
}  // namespace fhir::mappers::testing

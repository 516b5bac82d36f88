// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/lakeshore-medicaid.json (contracts/payer-formats.md).
#include <gtest/gtest.h>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

TEST(LakeshoreMedicaid, ClaimLinesBecomeOneBundlePerClaim) {
  GoldenRun run = runGolden(bundledSpecs(), "lakeshore-medicaid", "lakeshore-medicaid", "lakeshore-medicaid", "claims.csv");
  EXPECT_EQ(run.summary.records, 4u);
  EXPECT_EQ(run.summary.accepted, 2u);
  EXPECT_EQ(run.summary.rejected, 2u);
  ASSERT_EQ(run.bundles.size(), 2u);
  expectBundle(run.bundles[0], "lakeshore-medicaid", "expected-LC-1001.json", "claims.csv");
  expectBundle(run.bundles[1], "lakeshore-medicaid", "expected-LC-1002.json", "claims.csv");
  expectRejections(run.rejections, "lakeshore-medicaid", "expected-rejections.txt");
}

TEST(LakeshoreMedicaid, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "lakeshore-medicaid", "lakeshore-medicaid", "lakeshore-medicaid", "claims.csv");
  ASSERT_EQ(run.bundles.size(), 2u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
  // The same check fails once the Patient loses what alignment-patient requires.
  json::Value& patient = run.bundles[0]["entry"][1]["resource"];
  ASSERT_EQ(std::string(json::stringView(patient["resourceType"])), "Patient");
  patient.RemoveMember("identifier");
  EXPECT_GT(validationErrors(run.bundles[0]), 0u);
}

TEST(LakeshoreMedicaid, AnUnreadableLineRejectsItsWholeClaim) {
  // Line 3 (claim LC-1001, line 2) lacks a field: LC-1001 is rejected as a whole, LC-1002 maps.
  GoldenRun run = runGolden(bundledSpecs(), "lakeshore-medicaid", "lakeshore-medicaid", "lakeshore-medicaid", "bad-row.csv");
  EXPECT_EQ(run.summary.records, 2u);
  EXPECT_EQ(run.summary.accepted, 1u);
  ASSERT_EQ(run.rejections.size(), 1u);
  EXPECT_EQ(run.rejections[0].position, "line 2");
  ASSERT_EQ(run.rejections[0].issues.issues().size(), 1u);
  EXPECT_EQ(run.rejections[0].issues.issues()[0].diagnostics, "line 3: 23 fields, the header has 24");
  EXPECT_EQ(run.rejections[0].raw.substr(0, 10), "LC-1001,1,");
  EXPECT_NE(run.rejections[0].raw.find("LC-1001,2,"), std::string::npos);
  ASSERT_EQ(run.bundles.size(), 1u);
  expectBundle(run.bundles[0], "lakeshore-medicaid", "expected-LC-1002-bad-row.json", "bad-row.csv");
}

TEST(LakeshoreMedicaid, MissingColumnIsFatal) {
  GoldenRun run = runGolden(bundledSpecs(), "lakeshore-medicaid", "lakeshore-medicaid", "lakeshore-medicaid",
                            "missing-column.csv");
  EXPECT_TRUE(run.summary.fatal);
  ASSERT_EQ(run.rejections.size(), 1u);
  ASSERT_FALSE(run.rejections[0].issues.empty());
  EXPECT_EQ(run.rejections[0].issues.issues()[0].diagnostics, "line 1: the header has no column paid_amount");
}

}  // namespace
}  // namespace fhir::mappers::testing

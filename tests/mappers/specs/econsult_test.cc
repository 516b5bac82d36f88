// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/econsult.json (contracts/econsult-event.md): the consult's
// request, response and closed events as NDJSON, the expected Bundles written by hand from the
// contract's mapping table.
#include <gtest/gtest.h>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

TEST(EconsultSpec, EventsMapAsTheContractsMappingTableSays) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "events.ndjson");
  EXPECT_EQ(run.summary.records, 3u);
  EXPECT_EQ(run.summary.accepted, 3u);
  ASSERT_EQ(run.bundles.size(), 3u);
  expectBundle(run.bundles[0], "econsult", "expected-request.json", "events.ndjson");
  expectBundle(run.bundles[1], "econsult", "expected-response.json", "events.ndjson");
  expectBundle(run.bundles[2], "econsult", "expected-closed.json", "events.ndjson");
}

TEST(EconsultSpec, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "events.ndjson");
  ASSERT_EQ(run.bundles.size(), 3u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

TEST(EconsultSpec, BadEventsAreRejectedAtTheirJsonPath) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "bad-events.ndjson");
  EXPECT_EQ(run.summary.records, 6u);
  EXPECT_EQ(run.summary.accepted, 0u);
  expectRejections(run.rejections, "econsult", "expected-rejections.txt");
}

}  // namespace
}  // namespace fhir::mappers::testing

// SPDX-License-Identifier: Apache-2.0
#include "conformance/common/ids.h"

#include <regex>

#include <gtest/gtest.h>

#include "mappers/common/dates.h"
#include "mappers/common/directory.h"

namespace fhir::mappers {
namespace {

TEST(NpiTest, AcceptsValidCheckDigits) {
  // 1234567893 is the worked example of the CMS NPI check-digit document.
  EXPECT_TRUE(isValidNpi("1234567893"));
  EXPECT_TRUE(isValidNpi("1467583922"));
  EXPECT_TRUE(isValidNpi("1881726354"));
}

TEST(NpiTest, RejectsWrongCheckDigitLengthAndLetters) {
  EXPECT_FALSE(isValidNpi("1234567890"));
  EXPECT_FALSE(isValidNpi("123456789"));
  EXPECT_FALSE(isValidNpi("12345678931"));
  EXPECT_FALSE(isValidNpi("12345678a3"));
  EXPECT_FALSE(isValidNpi(""));
}

TEST(IdsTest, DerivedIdsAreStableValidFhirIdsAndUuids) {
  const std::string id = deriveId({"Patient", "urn:oid:1.2", "MRN-1"});
  EXPECT_EQ(id, deriveId({"Patient", "urn:oid:1.2", "MRN-1"}));
  EXPECT_NE(id, deriveId({"Patient", "urn:oid:1.2", "MRN-2"}));
  // Parts are separated, so moving a character between parts changes the id.
  EXPECT_NE(deriveId({"ab", "c"}), deriveId({"a", "bc"}));
  EXPECT_TRUE(std::regex_match(id, std::regex("[A-Za-z0-9\\-\\.]{1,64}")));
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
}

TEST(IdsTest, Sha256MatchesKnownVector) {
  // FIPS 180-2 example: SHA-256("abc").
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DatesTest, DateAndDateTimeRules) {
  EXPECT_TRUE(isDate("2024-02-29"));
  EXPECT_FALSE(isDate("2023-02-29"));
  EXPECT_FALSE(isDate("2026-13-01"));
  EXPECT_FALSE(isDate("20261001"));
  EXPECT_TRUE(isDateTimeWithOffset("2026-10-02T14:03:11-05:00"));
  EXPECT_TRUE(isDateTimeWithOffset("2026-10-02T14:03:11.250Z"));
  EXPECT_FALSE(isDateTimeWithOffset("2026-10-02T14:03:11"));
  EXPECT_FALSE(isDateTimeWithOffset("2026-10-02T14:03-05:00"));
  EXPECT_FALSE(isDateTimeWithOffset("2026-10-02T25:03:11Z"));
}

TEST(CoverageSelectionTest, DatedCoverageWinsAndPeriodsAreInclusive) {
  std::vector<CoverageFact> facts = {
      {"a", "p", "payer-a", "m1", "medicaid", "2026-01-01", "2026-06-30", "payer"},
      {"b", "p", "payer-b", "m2", "commercial", "2026-07-01", "", "payer"},
      {"u", "p", "payer-u", "m3", "", "", "", "ehr"},
  };
  EXPECT_EQ(selectCoverage(facts, "2026-06-30")->coverage_id, "a");
  EXPECT_EQ(selectCoverage(facts, "2026-07-01")->coverage_id, "b");
  EXPECT_EQ(selectCoverage(facts, "2030-01-01")->coverage_id, "b");
  // The undated entry does not count while the patient has dated coverage.
  EXPECT_EQ(selectCoverage(facts, "2025-12-31"), nullptr);
  std::vector<CoverageFact> undated = {facts[2]};
  EXPECT_EQ(selectCoverage(undated, "2025-12-31")->coverage_id, "u");
}

}  // namespace
}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
// Issue 20, Build 1: the optional race, ethnicity and language of an event's patient
// (contracts/econsult-event.md, care-management-event.md: the same envelope) and of a roster's
// trailing columns (contracts/payer-formats.md) become the Patient's alignment race, ethnicity
// and preferred-language extensions (fhir_profiles/alignment/README.md, "What the mapper must
// emit": CDC codes in urn:oid:2.16.840.1.113883.6.238, NullFlavor ASKU/UNK) and its preferred
// communication language; another code rejects the record at its member.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

constexpr const char* kCdc = "urn:oid:2.16.840.1.113883.6.238";
constexpr const char* kNullFlavor = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";
constexpr const char* kRace = "https://fhir.alignment-gateway.org/StructureDefinition/race";
constexpr const char* kEthnicity = "https://fhir.alignment-gateway.org/StructureDefinition/ethnicity";
constexpr const char* kLanguage = "https://fhir.alignment-gateway.org/StructureDefinition/preferred-language";

const json::Value& patientOf(const json::Value& bundle) {
  for (const auto& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (std::string(resource["resourceType"].GetString()) == "Patient") return resource;
  }
  ADD_FAILURE() << "no Patient in the Bundle";
  static const json::Value none;
  return none;
}

const json::Value* extension(const json::Value& patient, const std::string& url) {
  if (!patient.IsObject() || !patient.HasMember("extension")) return nullptr;
  for (const auto& item : patient["extension"].GetArray()) {
    if (url == item["url"].GetString()) return &item;
  }
  return nullptr;
}

// "system|code" of each coding of the extension's valueCodeableConcept.
std::vector<std::string> codings(const json::Value* ext) {
  std::vector<std::string> out;
  if (!ext) return out;
  for (const auto& coding : (*ext)["valueCodeableConcept"]["coding"].GetArray()) {
    out.push_back(std::string(coding["system"].GetString()) + "|" + coding["code"].GetString());
  }
  return out;
}

std::string cdc(const std::string& code) { return std::string(kCdc) + "|" + code; }
std::string nullFlavor(const std::string& code) { return std::string(kNullFlavor) + "|" + code; }

TEST(Demographics, EventPatientCarriesRaceEthnicityAndPreferredLanguage) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "demographics.ndjson");
  EXPECT_EQ(run.summary.records, 5u);
  ASSERT_EQ(run.bundles.size(), 2u);
  const json::Value& first = patientOf(run.bundles[0]);
  EXPECT_EQ(codings(extension(first, kRace)), (std::vector<std::string>{cdc("2054-5"), cdc("2106-3")}));
  EXPECT_EQ(codings(extension(first, kEthnicity)), std::vector<std::string>{cdc("2135-2")});
  const json::Value* language = extension(first, kLanguage);
  ASSERT_NE(language, nullptr);
  EXPECT_STREQ((*language)["valueCode"].GetString(), "es");
  ASSERT_TRUE(first.HasMember("communication"));
  EXPECT_STREQ(first["communication"][0]["language"]["coding"][0]["system"].GetString(), "urn:ietf:bcp:47");
  EXPECT_STREQ(first["communication"][0]["language"]["coding"][0]["code"].GetString(), "es");
  EXPECT_TRUE(first["communication"][0]["preferred"].GetBool());

  const json::Value& second = patientOf(run.bundles[1]);
  EXPECT_EQ(codings(extension(second, kRace)), std::vector<std::string>{nullFlavor("ASKU")});
  EXPECT_EQ(codings(extension(second, kEthnicity)), std::vector<std::string>{nullFlavor("UNK")});
  EXPECT_EQ(extension(second, kLanguage), nullptr);  // not sent: no extension, no communication
  EXPECT_FALSE(second.HasMember("communication"));
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

TEST(Demographics, EventWithAnotherCodeIsRejectedNamingTheMember) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "demographics.ndjson");
  ASSERT_EQ(run.rejections.size(), 3u);
  auto locations = [](const engine::Rejection& rejection) {  // sorted, unique (as expectRejections)
    std::set<std::string> out;
    for (const auto& issue : rejection.issues.issues()) out.insert(issue.location.begin(), issue.location.end());
    return std::vector<std::string>(out.begin(), out.end());
  };
  EXPECT_EQ(locations(run.rejections[0]), std::vector<std::string>{"line 3, $.patient.race[1]"});
  EXPECT_EQ(locations(run.rejections[1]), std::vector<std::string>{"line 4, $.patient.ethnicity"});
  EXPECT_EQ(locations(run.rejections[2]), std::vector<std::string>{"line 5, $.patient.race"});  // not a list
}

TEST(Demographics, RosterTrailingColumnsMapAndMayBeLeftOut) {
  GoldenRun run = runGolden(bundledSpecs(), "roster", "lakeshore-medicaid", "roster", "roster-demographics.csv");
  EXPECT_EQ(run.summary.records, 4u);
  ASSERT_EQ(run.bundles.size(), 2u);
  const json::Value& first = patientOf(run.bundles[0]);
  EXPECT_EQ(codings(extension(first, kRace)), (std::vector<std::string>{cdc("2054-5"), cdc("2106-3")}));
  EXPECT_EQ(codings(extension(first, kEthnicity)), std::vector<std::string>{cdc("2186-5")});
  ASSERT_NE(extension(first, kLanguage), nullptr);
  EXPECT_STREQ((*extension(first, kLanguage))["valueCode"].GetString(), "en");
  const json::Value& second = patientOf(run.bundles[1]);  // empty ethnicity and language cells
  EXPECT_EQ(codings(extension(second, kRace)), std::vector<std::string>{nullFlavor("UNK")});
  EXPECT_EQ(extension(second, kEthnicity), nullptr);
  EXPECT_EQ(extension(second, kLanguage), nullptr);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);

  ASSERT_EQ(run.rejections.size(), 2u);
  EXPECT_EQ(run.rejections[0].position, "line 4");
  EXPECT_EQ(run.rejections[1].position, "line 5");
  auto names = [](const engine::Rejection& rejection, const std::string& column) {
    for (const auto& issue : rejection.issues.issues()) {
      for (const std::string& location : issue.location) {
        if (location.find(column) != std::string::npos) return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(names(run.rejections[0], "column race")) << run.rejections[0].issues.issues()[0].diagnostics;
  EXPECT_TRUE(names(run.rejections[1], "column ethnicity")) << run.rejections[1].issues.issues()[0].diagnostics;

  // A file without the optional columns still maps (the original golden file, no demographics).
  GoldenRun plain = runGolden(bundledSpecs(), "roster", "lakeshore-medicaid", "roster", "roster.csv");
  ASSERT_EQ(plain.bundles.size(), 2u);
  EXPECT_EQ(extension(patientOf(plain.bundles[0]), kRace), nullptr);
}

}  // namespace
}  // namespace fhir::mappers::testing

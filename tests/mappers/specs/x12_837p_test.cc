// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/x12-837p.json (contracts/payer-formats.md, x12-837p).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "tests/mappers/specs/golden.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::testing {
namespace {

std::string northshore() {
  return fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / "x12" / "northshore-837p.x12");
}

// "position | location | ...": where a rejection is and where its issues are.
std::string describe(const engine::Rejection& rejection) {
  std::set<std::string> locations;
  for (const Issue& issue : rejection.issues.issues()) locations.insert(issue.location.begin(), issue.location.end());
  std::string line = rejection.position;
  for (const std::string& location : locations) line += " | " + location;
  return line;
}

// Maps `text` and returns its rejections.
std::vector<engine::Rejection> mapRejections(const std::string& text, size_t* accepted = nullptr) {
  static FakeDirectory directory;
  std::istringstream stream(text);
  engine::MapOptions options;
  options.payer_id = "lakeshore-medicaid";
  options.directory = &directory;
  options.now = "2026-10-03T09:13:00-05:00";
  std::vector<engine::Rejection> out;
  size_t bundles = 0;
  auto summary = bundledSpecs().mapSource(
      "x12-837p", stream, options, [&](engine::MappedBundle&) { ++bundles; },
      [&](engine::Rejection& rejection) { out.push_back(std::move(rejection)); });
  EXPECT_TRUE(summary.ok());
  if (accepted) *accepted = bundles;
  return out;
}

// Maps `text` and returns the rejections as "position | location | ..." lines.
std::vector<std::string> rejectionsOf(const std::string& text, size_t* accepted = nullptr) {
  std::vector<std::string> out;
  for (const engine::Rejection& rejection : mapRejections(text, accepted)) out.push_back(describe(rejection));
  return out;
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(X12_837P, ClaimsWithDependentsRepeatedHiAndServiceLines) {
  GoldenRun run = runGolden(bundledSpecs(), "x12-837p", "lakeshore-medicaid", "x12", "northshore-837p.x12");
  EXPECT_EQ(run.summary.records, 3u);
  EXPECT_TRUE(run.rejections.empty());
  ASSERT_EQ(run.bundles.size(), 3u);
  expectBundle(run.bundles[0], "x12", "expected-NS-CLM-0001.json", "northshore-837p.x12");
  expectBundle(run.bundles[1], "x12", "expected-NS-CLM-0002.json", "northshore-837p.x12");
  expectBundle(run.bundles[2], "x12", "expected-NS-CLM-0003.json", "northshore-837p.x12");
}

TEST(X12_837P, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "x12-837p", "lakeshore-medicaid", "x12", "northshore-837p.x12");
  ASSERT_EQ(run.bundles.size(), 3u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

TEST(X12_837P, BadElementsNameSegmentAndElement) {
  // Claim 1: a date of service that does not exist (segment 26, DTP03) and a rendering NPI with a
  // wrong check digit (segment 22, NM109). Claim 3: an amount that is not a number (segment 50,
  // SV102). Claim 2 maps.
  std::string text = replace(northshore(), "DTP*472*D8*20261001~\nLX*2", "DTP*472*D8*20261341~\nLX*2");
  text = replace(text, "NM1*82*1*WHITFIELD*DANA****XX*1467583922~", "NM1*82*1*WHITFIELD*DANA****XX*1467583921~");
  text = replace(text, "SV1*HC:87880*40.00*", "SV1*HC:87880*40,00*");
  size_t accepted = 0;
  std::vector<std::string> expected = {
      "interchange 000000101, transaction set 0001, segment 19 | segment 22 (NM1), element 9 | "
      "segment 26 (DTP), element 3",
      "interchange 000000101, transaction set 0001, segment 47 | segment 50 (SV1), element 2"};
  EXPECT_EQ(rejectionsOf(text, &accepted), expected);
  EXPECT_EQ(accepted, 1u);
}

// A rejected claim comes with what reads it alone (its interchange's envelope and header, a new
// SE/GE/IEA): mapped alone it is rejected for the same elements, numbered within its one-claim
// transaction set (claim 3 follows the header's 5 segments and loops 2000A, 2000B and 2000C of
// 6, 5 and 6 segments: CLM is segment 23, its SV1 segment 26).
TEST(X12_837P, RejectedClaimsMapAloneInTheirFrame) {
  std::string text = replace(northshore(), "DTP*472*D8*20261001~\nLX*2", "DTP*472*D8*20261341~\nLX*2");
  text = replace(text, "SV1*HC:87880*40.00*", "SV1*HC:87880*40,00*");
  std::vector<engine::Rejection> rejections = mapRejections(text);
  ASSERT_EQ(rejections.size(), 2u);
  const std::vector<std::string> expected = {
      "interchange 000000101, transaction set 0001, segment 19 | segment 26 (DTP), element 3",
      "interchange 000000101, transaction set 0001, segment 23 | segment 26 (SV1), element 2"};
  for (size_t index = 0; index < rejections.size(); ++index) {
    const engine::Rejection& rejection = rejections[index];
    EXPECT_EQ(rejection.replay_prefix.rfind("ISA*00*", 0), 0u);
    EXPECT_TRUE(rejection.replay_suffix.ends_with("GE*1*101~IEA*1*000000101~")) << rejection.replay_suffix;
    size_t accepted = 0;
    std::vector<engine::Rejection> alone =
        mapRejections(rejection.replay_prefix + rejection.raw + rejection.replay_suffix, &accepted);
    EXPECT_EQ(accepted, 0u);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(describe(alone[0]), expected[index]);
    EXPECT_EQ(alone[0].raw, rejection.raw);
  }
}

TEST(X12_837P, MissingClmAndBadSegmentCountAreRejectionsAndTheFileGoesOn) {
  std::string text = northshore();
  size_t from = text.find("CLM*NS-CLM-0002");
  size_t to = text.find("CLM*NS-CLM-0003");
  text.erase(from, to - from);  // the dependent keeps claim 3 only; SE*52 is now wrong (46)
  size_t accepted = 0;
  std::vector<std::string> rejections = rejectionsOf(text, &accepted);
  EXPECT_EQ(accepted, 2u);
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0], "segment 46 (SE), element 1 | segment 46 (SE), element 1");
  EXPECT_TRUE(mapRejections(text)[0].replay_prefix.empty());  // an envelope segment, not a claim

  std::string no_claims = northshore();
  no_claims.erase(no_claims.find("CLM*NS-CLM-0002"), no_claims.find("SE*52") - no_claims.find("CLM*NS-CLM-0002"));
  no_claims = replace(no_claims, "SE*52*0001~", "SE*41*0001~");
  rejections = rejectionsOf(no_claims, &accepted);
  EXPECT_EQ(accepted, 1u);
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0], "segment 35 (HL) | segment 35 (HL)");
}

TEST(X12_837P, WrongSeparatorsEndTheFileWithOneFatalRejection) {
  std::string text = replace(northshore(), "*ZZ*NORTHSHOREBILL *", "*ZZ*NORTHSHOREBILL*");
  size_t accepted = 0;
  std::vector<std::string> rejections = rejectionsOf(text, &accepted);
  EXPECT_EQ(accepted, 0u);
  ASSERT_EQ(rejections.size(), 1u);
  EXPECT_EQ(rejections[0], "interchange segment 1 (ISA), element 6 | interchange segment 1 (ISA), element 6");
}

// A dependent's claim (loop 2000C) keeps the subscriber of loop 2010BA on its Coverage, on a file
// derived from imsweb's x12_complex.txt (tests/data/mappers/x12/README.md says what was changed):
// Coverage.subscriber is a RelatedPerson of the dependent with the subscriber's member id, name
// (NM1*IL 03/04), birth date and sex (DMG 02/03); Coverage.relationship is PAT01 01 -> spouse
// (ConceptMap x12-individual-relationship, group 1) and the RelatedPerson's relationship SPS
// (group 2). The Bundle validates.
TEST(X12_837P, DependentCoverageNamesTheSubscriberOfLoop2010BA) {
  GoldenRun run = runGolden(bundledSpecs(), "x12-837p", "northwind-commercial", "x12", "imsweb-dependent-837p.x12");
  for (const engine::Rejection& rejection : run.rejections) ADD_FAILURE() << describe(rejection);
  ASSERT_EQ(run.bundles.size(), 1u);
  const json::Value& bundle = run.bundles[0];
  const json::Value* coverage = nullptr;
  const json::Value* subscriber = nullptr;
  const json::Value* patient = nullptr;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    std::string_view type = json::getString(entry["resource"], "resourceType").value_or("");
    if (type == "Coverage") coverage = &entry["resource"];
    if (type == "RelatedPerson") subscriber = &entry["resource"];
    if (type == "Patient") patient = &entry["resource"];
  }
  ASSERT_TRUE(coverage && subscriber && patient);
  EXPECT_EQ(json::stringView((*coverage)["subscriber"]["reference"]),
            "RelatedPerson/" + std::string(json::stringView((*subscriber)["id"])));
  EXPECT_EQ(json::stringView((*coverage)["relationship"]["coding"][0]["system"]),
            "http://terminology.hl7.org/CodeSystem/subscriber-relationship");
  EXPECT_EQ(json::stringView((*coverage)["relationship"]["coding"][0]["code"]), "spouse");
  EXPECT_EQ(json::stringView((*coverage)["subscriberId"]), "123456");
  EXPECT_EQ(json::stringView((*coverage)["beneficiary"]["reference"]), "Patient/" + std::string(json::stringView((*patient)["id"])));
  // The subscriber, from 2010BA: NM1*IL*1*DOE*DAVID*J**JR*MI*123456 and DMG*D8*19870402*M.
  EXPECT_EQ(json::stringView((*subscriber)["name"][0]["family"]), "DOE");
  EXPECT_EQ(json::stringView((*subscriber)["name"][0]["given"][0]), "DAVID");
  EXPECT_EQ(json::stringView((*subscriber)["birthDate"]), "1987-04-02");
  EXPECT_EQ(json::stringView((*subscriber)["gender"]), "male");
  EXPECT_EQ(json::stringView((*subscriber)["identifier"][0]["system"]),
            "https://fhir.alignment-gateway.org/CodeSystem/member-id/northwind-commercial");
  EXPECT_EQ(json::stringView((*subscriber)["identifier"][0]["value"]), "123456");
  EXPECT_EQ(json::stringView((*subscriber)["patient"]["reference"]), "Patient/" + std::string(json::stringView((*patient)["id"])));
  EXPECT_EQ(json::stringView((*subscriber)["relationship"][0]["coding"][0]["code"]), "SPS");
  // The patient is the dependent of 2010CA, not the subscriber.
  EXPECT_EQ(json::stringView((*patient)["name"][0]["family"]), "JONES");
  EXPECT_EQ(json::stringView((*patient)["birthDate"]), "1989-09-16");
  expectValid(bundle);
}

// PAT01 codes of 005010X222A1 through ConceptMap x12-individual-relationship; a code outside it
// rejects the claim at PAT01.
TEST(X12_837P, Pat01MapsToTheSubscriberRelationship) {
  const std::map<std::string, std::string> expected = {{"01", "spouse"}, {"19", "child"}, {"20", "other"}, {"21", "other"},
                                                       {"39", "other"}, {"40", "other"}, {"53", "common"}, {"G8", "other"}};
  for (const auto& [pat01, relationship] : expected) {
    std::string text = replace(northshore(), "PAT*19~", "PAT*" + pat01 + "~");
    static FakeDirectory directory;
    std::istringstream stream(text);
    engine::MapOptions options;
    options.payer_id = "lakeshore-medicaid";
    options.directory = &directory;
    options.now = "2026-10-03T09:13:00-05:00";
    std::vector<std::string> codes;
    auto summary = bundledSpecs().mapSource(
        "x12-837p", stream, options,
        [&](engine::MappedBundle& mapped) {
          for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
            const json::Value& resource = entry["resource"];
            if (json::getString(resource, "resourceType") == "Coverage" && json::find(resource, "subscriber")) {
              codes.emplace_back(json::stringView(resource["relationship"]["coding"][0]["code"]));
            }
          }
        },
        [&](engine::Rejection& rejection) { ADD_FAILURE() << pat01 << ": " << describe(rejection); });
    ASSERT_TRUE(summary.ok());
    EXPECT_EQ(codes, (std::vector<std::string>{relationship, relationship})) << "PAT01 " << pat01;
  }
  std::vector<std::string> rejected = rejectionsOf(replace(northshore(), "PAT*19~", "PAT*03~"));
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_NE(rejected[0].find("segment 36 (PAT), element 1"), std::string::npos) << rejected[0];
}

}  // namespace
}  // namespace fhir::mappers::testing

// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/care-management.json (contracts/care-management-event.md): one
// hand-written Bundle per event type, the HRSN positive-domain rules domain by domain, and bad
// events with their exact JSON-path locations.
#include <gtest/gtest.h>

#include <set>

#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

constexpr const char* kDir = "care-management";

// Maps one event posted as a JSON document (as POST /ingest/care-management does: mapRecord).
void mapPosted(const std::string& event, const engine::MapOptions& options, std::vector<engine::MappedBundle>& mapped,
               std::vector<engine::Rejection>& rejections) {
  json::Document record;
  json::ParseError error;
  ASSERT_TRUE(json::parse(event, record, error)) << error.describe();
  engine::MappedBundle out;
  IssueList issues;
  auto done = bundledSpecs().mapRecord("care-management", record, event, "request", options, out, issues);
  ASSERT_TRUE(done.ok()) << done.message();
  if (*done) mapped.push_back(std::move(out));
  else rejections.push_back(engine::Rejection{std::move(issues), event, "request", false});
}

TEST(CareManagement, OneGoldenBundlePerEventType) {
  GoldenRun run = runGolden(bundledSpecs(), "care-management", "", kDir, "events.ndjson");
  EXPECT_EQ(run.summary.records, 6u);
  EXPECT_EQ(run.summary.accepted, 6u);
  for (const engine::Rejection& rejection : run.rejections) ADD_FAILURE() << toOperationOutcomeJson(rejection.issues);
  ASSERT_EQ(run.bundles.size(), 6u);
  expectBundle(run.bundles[0], kDir, "expected-empanelment.json", "events.ndjson");
  expectBundle(run.bundles[1], kDir, "expected-risk-tier.json", "events.ndjson");
  expectBundle(run.bundles[2], kDir, "expected-care-plan.json", "events.ndjson");
  expectBundle(run.bundles[3], kDir, "expected-hrsn-screening.json", "events.ndjson");
  expectBundle(run.bundles[4], kDir, "expected-social-referral.json", "events.ndjson");
  expectBundle(run.bundles[5], kDir, "expected-co-management.json", "events.ndjson");
}

TEST(CareManagement, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "care-management", "", kDir, "events.ndjson");
  ASSERT_EQ(run.bundles.size(), 6u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

TEST(CareManagement, BadEventsNameTheirJsonPath) {
  GoldenRun run = runGolden(bundledSpecs(), "care-management", "", kDir, "bad-events.ndjson");
  EXPECT_EQ(run.summary.records, 8u);
  EXPECT_EQ(run.summary.accepted, 0u);
  expectRejections(run.rejections, kDir, "expected-rejections.txt");
}

TEST(CareManagement, UnknownMembersAreIgnoredWithAWarning) {
  std::string event(
      R"({"eventId":"w-1","source":"test","eventType":"risk-tier","occurredAt":"2026-10-02T08:00:00-05:00","channel":"portal",)"
      R"("patient":{"mrn":"M1","mrnSystem":"urn:oid:1.2.3","family":"Doe","nickname":"D"},)"
      R"("risk":{"tier":"low","method":"v3","assessedAt":"2026-10-02"}})");
  std::vector<engine::MappedBundle> mapped;
  std::vector<engine::Rejection> rejections;
  mapPosted(event, engine::MapOptions{}, mapped, rejections);
  for (const engine::Rejection& rejection : rejections) ADD_FAILURE() << toOperationOutcomeJson(rejection.issues);
  ASSERT_EQ(mapped.size(), 1u);
  std::set<std::string> locations;
  for (const Issue& issue : mapped[0].warnings.issues()) {
    EXPECT_EQ(issue.severity, Severity::kWarning);
    locations.insert(issue.location.at(0));
  }
  EXPECT_EQ(locations, (std::set<std::string>{"$.channel", "$.patient.nickname"}));
  expectValid(mapped[0].bundle);
}

// contracts/econsult-event.md (the envelope care-management shares): an unknown payerId is a 422,
// with the `not-found` wording http-api.md uses for unknown things, as for e-consult.
TEST(CareManagement, AnUnknownPayerIsNotFound) {
  std::string event(
      R"({"eventId":"p-1","source":"test","eventType":"risk-tier","occurredAt":"2026-10-02T08:00:00-05:00",)"
      R"("patient":{"mrn":"M1","mrnSystem":"urn:oid:1.2.3","family":"Doe",)"
      R"("coverage":[{"payerId":"acme-health","memberId":"A1"}]},)"
      R"("risk":{"tier":"low","method":"v3","assessedAt":"2026-10-02"}})");
  FakeDirectory directory;
  engine::MapOptions options;
  options.directory = &directory;
  std::vector<engine::MappedBundle> mapped;
  std::vector<engine::Rejection> rejections;
  mapPosted(event, options, mapped, rejections);
  EXPECT_TRUE(mapped.empty());
  ASSERT_EQ(rejections.size(), 1u);
  std::set<std::string> codes;
  for (const Issue& issue : rejections[0].issues.issues()) {
    EXPECT_EQ(issue.location, std::vector<std::string>{"$.patient.coverage[0].payerId"});
    codes.insert(issue.code);
  }
  EXPECT_EQ(codes, std::set<std::string>{"not-found"});
}

// ---- HRSN: which answers make a domain positive ----------------------------------------------

struct Screening {
  std::set<std::string> positive;  // domain codes of the flag Observations
  std::vector<json::Document> bundles;
  std::vector<engine::Rejection> rejections;
};

// Maps one AHC-HRSN screening with these (question, answer) pairs, as one JSON document.
Screening screen(const std::vector<std::pair<std::string, std::string>>& answers, const std::string& instrument = "AHC-HRSN") {
  std::string list;
  for (const auto& [question, answer] : answers) {
    list += std::string(list.empty() ? "" : ",") + R"({"loinc":")" + question + R"(","answerLoinc":")" + answer + "\"}";
  }
  std::string event = R"({"eventId":"s-1","source":"test","eventType":"hrsn-screening","occurredAt":"2026-10-04T08:00:00-05:00",)"
                      R"("patient":{"mrn":"M1","mrnSystem":"urn:oid:1.2.3","family":"Doe"},)"
                      R"("screening":{"instrument":")" + instrument + R"(","screenedAt":"2026-10-04","answers":[)" + list + "]}}";
  Screening out;
  engine::MapOptions options;
  options.now = "2026-10-04T09:00:00-05:00";
  std::vector<engine::MappedBundle> mapped;
  mapPosted(event, options, mapped, out.rejections);
  for (engine::MappedBundle& one : mapped) out.bundles.push_back(std::move(one.bundle));
  for (const json::Document& bundle : out.bundles) {
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      const json::Value* meta = json::find(resource, "meta");
      if (!meta || json::stringView((*meta)["profile"][0]).find("hrsn-positive-domain-observation") == std::string_view::npos) continue;
      EXPECT_TRUE(resource["valueBoolean"].GetBool());
      out.positive.insert(std::string(json::stringView(resource["code"]["coding"][0]["code"])));
    }
  }
  return out;
}

using Domains = std::set<std::string>;

TEST(CareManagementHrsn, FoodInsecurity) {
  EXPECT_EQ(screen({{"88122-7", "LA28397-0"}}).positive, Domains{"food-insecurity"});
  EXPECT_EQ(screen({{"88123-5", "LA6729-3"}}).positive, Domains{"food-insecurity"});
  EXPECT_EQ(screen({{"88122-7", "LA28398-8"}, {"88123-5", "LA28398-8"}}).positive, Domains{});
}

TEST(CareManagementHrsn, HousingInstability) {
  EXPECT_EQ(screen({{"71802-3", "LA31994-9"}}).positive, Domains{"housing-instability"});
  EXPECT_EQ(screen({{"71802-3", "LA31995-6"}}).positive, Domains{"housing-instability"});
  EXPECT_EQ(screen({{"71802-3", "LA31993-1"}}).positive, Domains{});
}

TEST(CareManagementHrsn, Transportation) {
  EXPECT_EQ(screen({{"93030-5", "LA33-6"}}).positive, Domains{"transportation-insecurity"});
  EXPECT_EQ(screen({{"93030-5", "LA32-8"}}).positive, Domains{});
}

TEST(CareManagementHrsn, Utilities) {
  EXPECT_EQ(screen({{"96779-4", "LA33-6"}}).positive, Domains{"utility-insecurity"});
  EXPECT_EQ(screen({{"96779-4", "LA31976-6"}}).positive, Domains{"utility-insecurity"});
  EXPECT_EQ(screen({{"96779-4", "LA32-8"}}).positive, Domains{});
}

TEST(CareManagementHrsn, TheSameAnswerCountsOnlyForItsQuestion) {
  // LA33-6 "yes" is positive for transportation and utilities, not for a food question.
  Screening food_yes = screen({{"88122-7", "LA33-6"}});
  EXPECT_EQ(food_yes.positive, Domains{});
  EXPECT_EQ(screen({{"93030-5", "LA33-6"}, {"96779-4", "LA32-8"}}).positive, Domains{"transportation-insecurity"});
}

TEST(CareManagementHrsn, InterpersonalSafetyIsASumOfScoresOfElevenOrMore) {
  // never 1, rarely 2, sometimes 3, fairly often 4, frequently 5.
  Screening ten = screen({{"95618-5", "LA10082-8"}, {"95617-7", "LA10082-8"}, {"95616-9", "LA10066-1"}, {"95615-1", "LA10066-1"}});
  EXPECT_EQ(ten.positive, Domains{}) << "3 + 3 + 2 + 2 = 10";
  Screening eleven = screen({{"95618-5", "LA10082-8"}, {"95617-7", "LA10082-8"}, {"95616-9", "LA10082-8"}, {"95615-1", "LA10066-1"}});
  EXPECT_EQ(eleven.positive, Domains{"interpersonal-safety"}) << "3 + 3 + 3 + 2 = 11";
  Screening one_high = screen({{"95618-5", "LA6482-9"}, {"95617-7", "LA6482-9"}, {"95616-9", "LA6270-8"}});
  EXPECT_EQ(one_high.positive, Domains{"interpersonal-safety"}) << "5 + 5 + 1 = 11";
  Screening all_never = screen({{"95618-5", "LA6270-8"}, {"95617-7", "LA6270-8"}, {"95616-9", "LA6270-8"}, {"95615-1", "LA6270-8"}});
  EXPECT_EQ(all_never.positive, Domains{});
}

TEST(CareManagementHrsn, SafetyFlagIsDerivedFromTheFourAnswers) {
  Screening eleven = screen({{"88122-7", "LA28398-8"}, {"95618-5", "LA10082-8"}, {"95617-7", "LA10082-8"},
                             {"95616-9", "LA10082-8"}, {"95615-1", "LA10066-1"}});
  ASSERT_EQ(eleven.bundles.size(), 1u);
  size_t derived = 0;
  for (const json::Value& entry : eleven.bundles[0]["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (const json::Value* from = json::find(resource, "derivedFrom")) derived = from->Size();
  }
  EXPECT_EQ(derived, 4u);
  expectValid(eleven.bundles[0]);
}

TEST(CareManagementHrsn, SeveralDomainsAtOnceEachGetAFlag) {
  Screening many = screen({{"88122-7", "LA6729-3"}, {"71802-3", "LA31995-6"}, {"93030-5", "LA33-6"}, {"96779-4", "LA31976-6"}});
  EXPECT_EQ(many.positive, (Domains{"food-insecurity", "housing-instability", "transportation-insecurity", "utility-insecurity"}));
  ASSERT_EQ(many.bundles.size(), 1u);
  expectValid(many.bundles[0]);
}

TEST(CareManagementHrsn, PrapareUsesItsOwnAnswersThroughTheSameConceptMap) {
  Screening prapare = screen({{"93030-5", "LA30133-5"}, {"71802-3", "LA30190-5"}, {"93031-3", "LA30125-1"}}, "PRAPARE");
  EXPECT_EQ(prapare.positive, (Domains{"transportation-insecurity", "housing-instability", "food-insecurity"}));
  ASSERT_EQ(prapare.bundles.size(), 1u);
  const json::Value& panel_code = prapare.bundles[0]["entry"][5]["resource"]["code"]["coding"][0]["code"];
  EXPECT_EQ(json::stringView(panel_code), "93025-5") << "the PRAPARE panel";
  expectValid(prapare.bundles[0]);
  EXPECT_EQ(screen({{"71802-3", "LA30189-7"}}, "PRAPARE").positive, Domains{});
}

TEST(CareManagementHrsn, CodesOutsideTheValueSetsAreNamedByJsonPath) {
  Screening bad = screen({{"88122-7", "LA28397-0"}, {"88123-5", "LA28398-8"}, {"93030-5", "LA0000-0"}});
  ASSERT_EQ(bad.rejections.size(), 1u);
  const Issue& issue = bad.rejections[0].issues.issues().at(0);
  ASSERT_EQ(issue.location.size(), 1u);
  EXPECT_EQ(issue.location[0], "$.screening.answers[2].answerLoinc");
  EXPECT_NE(issue.diagnostics.find("LA0000-0"), std::string::npos) << issue.diagnostics;
  EXPECT_NE(issue.diagnostics.find("hrsn-screening-answers"), std::string::npos) << issue.diagnostics;

  Screening question = screen({{"99999-9", "LA33-6"}});
  ASSERT_EQ(question.rejections.size(), 1u);
  EXPECT_EQ(question.rejections[0].issues.issues().at(0).location.at(0), "$.screening.answers[0].loinc");
}

TEST(CareManagementHrsn, AnAnswerWithoutAScoreOnASafetyQuestionIsRejected) {
  Screening bad = screen({{"95618-5", "LA33-6"}});
  ASSERT_EQ(bad.rejections.size(), 1u);
  EXPECT_EQ(bad.rejections[0].issues.issues().at(0).location.at(0), "$.screening.answers[0].answerLoinc");
}

}  // namespace
}  // namespace fhir::mappers::testing

// SPDX-License-Identifier: Apache-2.0
// gateway/measure (issue 20): the bundled Measures compile; a bad Measure is refused naming its
// file and element; the aggregates and the suppression over a small population whose values are
// worked out by hand (request-to-answer hours 1, 2, 3 and 10: median 2.5, 90th percentile by
// nearest rank the 4th value, 10); claims counted per claim and stratified by their own payer and
// code, the waiting ones through the routing state (%unroutable); the same reports from one
// thread and from several.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "conformance/json/json.h"
#include "gateway/measure/measure.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::measure {
namespace {

using fhir::testing::TempDir;

TEST(MeasureLibrary, TheBundledMeasuresCompile) {
  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok()) << library.message();
  EXPECT_EQ((*library)->ids(), (std::vector<std::string>{"attributed-members", "billing-claims", "care-plans", "comanagement", "econsult-timeliness",
                                                    "hrsn-screening", "referral-completion"}));
}

void writeMeasure(const std::filesystem::path& dir, const std::string& expression, const std::string& aggregate) {
  std::ofstream(dir / "Measure-bad.json") << R"({"resourceType": "Measure", "id": "bad", "url": "https://example.org/Measure/bad",
    "group": [{"extension": [{"url": "https://fhir.alignment-gateway.org/StructureDefinition/measure-aggregate-method", "valueCode": ")"
                                          << aggregate << R"("}],
      "population": [{"code": {"coding": [{"code": "initial-population"}]},
                      "criteria": {"language": "text/fhirpath", "expression": ")" << expression << R"("}}]}]})";
}

TEST(MeasureLibrary, ABadMeasureIsRefusedNamingFileAndElement) {
  TempDir dir;
  writeMeasure(dir.path(), "%patient.where(", "count");
  auto broken = MeasureLibrary::load(dir.path().string());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.message().find("Measure-bad.json: Measure.group[0].population[0].criteria.expression"), std::string::npos)
      << broken.message();
  writeMeasure(dir.path(), "%patient.exists()", "mean");
  auto unknown = MeasureLibrary::load(dir.path().string());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("measure-aggregate-method"), std::string::npos) << unknown.message();
}

// Stored resources by type, as a SearchAll (only `_id`, `identifier` and the patient reference are looked at).
class FakeStore {
 public:
  void add(const std::string& type, const std::string& json) { resources_[type].push_back(json); }
  SearchAll search() const {
    return [this](const std::string& type, const SearchParams& params) -> Result<std::vector<std::string>> {
      std::vector<std::string> out;
      auto found = resources_.find(type);
      if (found == resources_.end()) return out;
      for (const std::string& json : found->second) {
        bool keep = true;
        for (const auto& [name, value] : params) {
          if (name == "_id") keep = keep && json.find("\"id\":\"" + value + "\"") != std::string::npos;
          if (name == "identifier") keep = keep && json.find(value.substr(value.find('|') + 1)) != std::string::npos;
          if (name == "subject" || name == "patient" || name == "beneficiary") {  // a reference, comma = OR
            bool any = false;
            for (size_t from = 0; from <= value.size();) {
              size_t comma = value.find(',', from);
              if (comma == std::string::npos) comma = value.size();
              any = any || json.find("\"reference\":\"" + value.substr(from, comma - from) + "\"") != std::string::npos;
              from = comma + 1;
            }
            keep = keep && any;
          }
        }
        if (keep) out.push_back(json);
      }
      return out;
    };
  }

 private:
  std::map<std::string, std::vector<std::string>> resources_;
};

// Four patients of one practice (Group g1); patient i asks one e-consult answered after `hours[i]`.
FakeStore consultPopulation() {
  FakeStore store;
  std::string members;
  const int hours[] = {1, 2, 3, 10};
  for (int i = 0; i < 4; ++i) {
    const std::string id = "p" + std::to_string(i);
    store.add("Patient", R"({"resourceType":"Patient","id":")" + id + R"("})");
    members += std::string(i ? "," : "") + R"({"entity":{"reference":"Patient/)" + id + R"("},"period":{"start":"2026-01-01"}})";
    store.add("ServiceRequest", R"({"resourceType":"ServiceRequest","id":"sr)" + std::to_string(i) +
                                    R"(","status":"active","intent":"order","subject":{"reference":"Patient/)" + id +
                                    R"("},"category":[{"coding":[{"code":"e-consult"}]}],"authoredOn":"2026-03-02T08:00:00-05:00"})");
    char sent[64];
    std::snprintf(sent, sizeof sent, "2026-03-02T%02d:00:00-05:00", 8 + hours[i]);
    store.add("Communication", R"({"resourceType":"Communication","id":"c)" + std::to_string(i) +
                                   R"(","status":"completed","subject":{"reference":"Patient/)" + id +
                                   R"("},"basedOn":[{"reference":"ServiceRequest/sr)" + std::to_string(i) + R"("}],"sent":")" + sent + R"("})");
  }
  store.add("Group", R"({"resourceType":"Group","id":"g1","type":"person","actual":true,
    "identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817413"}],"member":[)" + members + "]}");
  store.add("Organization", R"({"resourceType":"Organization","id":"o1","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817413"}]})");
  return store;
}

const json::Value* group(const json::Document& report, const std::string& id) {
  for (const auto& item : report["group"].GetArray()) {
    if (json::getString(item, "id") == std::optional<std::string_view>(id)) return &item;
  }
  return nullptr;
}

TEST(MeasureEvaluate, MedianAndNinetiethPercentileOfRequestToAnswerHours) {
  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok()) << library.message();
  FakeStore store = consultPopulation();
  EvaluateParams params{"2026-01-01", "2026-12-31", "Group/g1", "population", "2026-12-03T00:00:00Z", 1};  // no suppression
  auto text = evaluate(*(*library)->find("econsult-timeliness"), params, store.search());
  ASSERT_TRUE(text.ok()) << text.message();
  auto report = json::parse(*text);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(json::getString((*report)["reporter"], "reference"), "Organization/o1");
  const json::Value* median = group(*report, "answer-hours-median");
  const json::Value* p90 = group(*report, "answer-hours-p90");
  ASSERT_TRUE(median && p90);
  EXPECT_DOUBLE_EQ(*json::numberAsDouble((*median)["measureScore"]["value"]), 2.5);
  EXPECT_DOUBLE_EQ(*json::numberAsDouble((*p90)["measureScore"]["value"]), 10.0);
  EXPECT_EQ(*json::numberAsInt64((*group(*report, "answered"))["population"][0]["count"]), 4);

  // With the default suppression (cells under 11), 4 consults is a masked cell: no count, no score.
  params.suppress_below = 11;
  auto masked_text = evaluate(*(*library)->find("econsult-timeliness"), params, store.search());
  ASSERT_TRUE(masked_text.ok()) << masked_text.message();
  auto masked = json::parse(*masked_text);
  ASSERT_TRUE(masked.ok());
  const json::Value& cell = *group(*masked, "answer-hours-median");
  EXPECT_FALSE(cell.HasMember("measureScore"));
  for (const auto& population : cell["population"].GetArray()) {
    EXPECT_FALSE(population.HasMember("count"));
    EXPECT_EQ(json::getString(population["extension"][0], "valueCode"), "masked");
  }
}

TEST(MeasureEvaluate, BadParametersAndUnknownSubjects) {
  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok());
  FakeStore store = consultPopulation();
  const CompiledMeasure& measure = *(*library)->find("attributed-members");
  auto bad_period = evaluate(measure, {"2026-12-31", "2026-01-01", "", "population", "", 11}, store.search());
  ASSERT_FALSE(bad_period.ok());
  EXPECT_EQ(bad_period.message().rfind("invalid: ", 0), 0u) << bad_period.message();
  auto no_group = evaluate(measure, {"2026-01-01", "2026-12-31", "Group/nope", "population", "", 11}, store.search());
  ASSERT_FALSE(no_group.ok());
  EXPECT_EQ(no_group.message().rfind("not-found: ", 0), 0u) << no_group.message();
  auto bad_type = evaluate(measure, {"2026-01-01", "2026-12-31", "Patient/p0", "subject-list-ish", "", 11}, store.search());
  ASSERT_FALSE(bad_type.ok());
  EXPECT_EQ(bad_type.message().rfind("invalid: ", 0), 0u) << bad_type.message();
}

// One patient of practice g1 (covered by lakeshore-medicaid from 2026-01-01) with three Claims:
// c1 99451 on 2026-03-02 billed to its Coverage, c2 ACM on 2026-04-10 waiting for a payer (the
// routing state lists it, though a Coverage stands in on it), c3 99451 on 2025-12-30 (before the period).
FakeStore claimPopulation() {
  FakeStore store;
  store.add("Patient", R"({"resourceType":"Patient","id":"p0"})");
  store.add("Group", R"({"resourceType":"Group","id":"g1","type":"person","actual":true,
    "identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817413"}],
    "member":[{"entity":{"reference":"Patient/p0"},"period":{"start":"2026-01-01"}}]})");
  store.add("Coverage", R"({"resourceType":"Coverage","id":"cov0","status":"active","beneficiary":{"reference":"Patient/p0"},
    "identifier":[{"system":"https://fhir.alignment-gateway.org/CodeSystem/member-id/lakeshore-medicaid","value":"LMC1"}],
    "type":{"coding":[{"system":"https://fhir.alignment-gateway.org/CodeSystem/line-of-business","code":"medicaid"}]},
    "period":{"start":"2026-01-01"}})");
  auto claim = [](const std::string& id, const std::string& system, const std::string& code, const std::string& day, bool covered) {
    return R"({"resourceType":"Claim","id":")" + id + R"(","status":"active","patient":{"reference":"Patient/p0"},)" +
           (covered ? R"("insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov0"}}],)" : "") +
           R"("item":[{"sequence":1,"productOrService":{"coding":[{"system":")" + system + R"(","code":")" + code +
           R"("}]},"servicedDate":")" + day + R"("}]})";
  };
  store.add("Claim", claim("c1", "http://www.ama-assn.org/go/cpt", "99451", "2026-03-02", true));
  // Waiting, though the mapper put the patient's latest Coverage on it (R4 Claim.insurance is 1..*).
  store.add("Claim", claim("c2", "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing", "ACM", "2026-04-10", true));
  store.add("Claim", claim("c3", "http://www.ama-assn.org/go/cpt", "99451", "2025-12-30", true));
  store.add(std::string(kUnroutable), R"({"claimId":"c2","patientId":"p0"})");
  return store;
}

// stratifier `code` of a group: stratum value -> the first population's count.
std::map<std::string, int64_t> strata(const json::Value& group, const std::string& code) {
  std::map<std::string, int64_t> out;
  for (const auto& stratifier : group["stratifier"].GetArray()) {
    if (json::getString(stratifier["code"][0]["coding"][0], "code") != std::optional<std::string_view>(code)) continue;
    for (const auto& stratum : stratifier["stratum"].GetArray()) {
      out[std::string(json::stringView(stratum["value"]["text"]))] = *json::numberAsInt64(stratum["population"][0]["count"]);
    }
  }
  return out;
}

TEST(MeasureEvaluate, ClaimsCountPerClaimWithTheirOwnPayerAndCodeAndTheWaitingOnesApart) {
  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok()) << library.message();
  FakeStore store = claimPopulation();
  EvaluateParams params{"2026-01-01", "2026-12-31", "", "population", "", 1};  // no suppression
  auto text = evaluate(*(*library)->find("billing-claims"), params, store.search());
  ASSERT_TRUE(text.ok()) << text.message();
  auto report = json::parse(*text);
  ASSERT_TRUE(report.ok());
  const json::Value* routed = group(*report, "routed");
  const json::Value* waiting = group(*report, "unroutable");
  ASSERT_TRUE(routed && waiting);
  EXPECT_EQ(*json::numberAsInt64((*routed)["population"][0]["count"]), 1);  // c1 (c3 is before the period)
  EXPECT_EQ(*json::numberAsInt64((*waiting)["population"][0]["count"]), 1);  // c2
  EXPECT_EQ(strata(*routed, "payer"), (std::map<std::string, int64_t>{{"lakeshore-medicaid", 1}}));
  EXPECT_EQ(strata(*routed, "billing-code"), (std::map<std::string, int64_t>{{"99451", 1}}));
  EXPECT_EQ(strata(*waiting, "payer"), (std::map<std::string, int64_t>{{"UNK", 1}}));  // no payer took it
  EXPECT_EQ(strata(*waiting, "billing-code"), (std::map<std::string, int64_t>{{"ACM", 1}}));
  EXPECT_EQ(strata(*waiting, "race"), (std::map<std::string, int64_t>{{"UNK", 1}}));
  // The billing-code stratifier is of our measure-stratifier system, beside the four equity ones.
  bool found = false;
  for (const auto& stratifier : (*routed)["stratifier"].GetArray()) {
    if (json::getString(stratifier["code"][0]["coding"][0], "code") == std::optional<std::string_view>("billing-code")) {
      found = true;
      EXPECT_EQ(json::getString(stratifier["code"][0]["coding"][0], "system"),
                "https://fhir.alignment-gateway.org/CodeSystem/measure-stratifier");
    }
  }
  EXPECT_TRUE(found);
  // ACM claims per month (a group whose basis, Claim, differs from its Measure's, EpisodeOfCare).
  auto comanagement = evaluate(*(*library)->find("comanagement"), params, store.search());
  ASSERT_TRUE(comanagement.ok()) << comanagement.message();
  auto co = json::parse(*comanagement);
  ASSERT_TRUE(co.ok());
  EXPECT_EQ(strata(*group(*co, "acm-claims"), "month"), (std::map<std::string, int64_t>{{"2026-04", 1}}));
  EXPECT_EQ(*json::numberAsInt64((*group(*co, "episodes-active"))["population"][0]["count"]), 0);
}

TEST(MeasureEvaluate, SeveralThreadsGiveTheReportsOfOne) {
  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok());
  // 1,500 patients (enough for three ranges of 500), half of them with an answered consult.
  FakeStore store;
  std::string members;
  for (int i = 0; i < 1500; ++i) {
    const std::string id = "p" + std::to_string(i);
    store.add("Patient", R"({"resourceType":"Patient","id":")" + id + R"("})");
    members += std::string(i ? "," : "") + R"({"entity":{"reference":"Patient/)" + id + R"("},"period":{"start":"2026-01-01"}})";
    if (i % 2) continue;
    store.add("ServiceRequest", R"({"resourceType":"ServiceRequest","id":"sr)" + std::to_string(i) + R"(","subject":{"reference":"Patient/)" +
                                    id + R"("},"category":[{"coding":[{"code":"e-consult"}]}],"authoredOn":"2026-03-02T08:00:00-05:00"})");
    store.add("Communication", R"({"resourceType":"Communication","id":"c)" + std::to_string(i) + R"(","subject":{"reference":"Patient/)" +
                                   id + R"("},"basedOn":[{"reference":"ServiceRequest/sr)" + std::to_string(i) + R"("}],"sent":"2026-03-0)" +
                                   std::to_string(2 + i % 7) + R"(T09:00:00-05:00"})");
  }
  store.add("Group", R"({"resourceType":"Group","id":"g1","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817413"}],"member":[)" +
                         members + "]}");
  std::vector<const CompiledMeasure*> measures = {(*library)->find("attributed-members"), (*library)->find("econsult-timeliness")};
  for (const char* type : {"population", "subject-list"}) {
    EvaluateParams params{"2026-01-01", "2026-12-31", "Group/g1", type, "2026-12-03T00:00:00Z", 11};
    auto one = evaluateMany(measures, params, store.search(), 1);
    auto three = evaluateMany(measures, params, store.search(), 3);
    ASSERT_TRUE(one.ok() && three.ok()) << one.message() << three.message();
    ASSERT_EQ(one->size(), 2u);
    EXPECT_EQ(*one, *three) << type;
    auto members_report = json::parse((*one)[0]);
    ASSERT_TRUE(members_report.ok());
    EXPECT_EQ(*json::numberAsInt64((*members_report)["group"][0]["population"][0]["count"]), 1500);
    EXPECT_EQ((*three)[0], *evaluate(*measures[0], params, store.search()));
  }
}

// A practice's subject over a real SQLite store, with linked records: the roster lists m1, whose
// record was merged into m1b, itself merged into m1c (replaced-by, two hops; m1c `replaces` both),
// and m2, which replaces an older record m2old (the roster came after the merge: only m2old links
// back, `replaced-by`, as gateway/merge writes them). Each record has one e-consult
// ServiceRequest. The Group's evaluation counts two members and all five consults (the linked
// records' consults count for their survivor), as everyone's does; and it reads through the
// index: no search for a subject reads a whole type except the attribution Groups.
TEST(MeasureEvaluate, ASubjectReadsItsMembersAndTheirLinkedRecordsThroughTheIndex) {
  TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  IngestCommit commit;
  commit.channel = "test";
  commit.idempotency_key = "linked";
  commit.payload = "{}";
  auto patient = [&](const std::string& id, const std::string& replaced_by, std::vector<std::string> replaces = {}) {
    std::string json = R"({"resourceType":"Patient","id":")" + id + "\"";
    std::string links;
    if (!replaced_by.empty()) links = R"({"other":{"reference":"Patient/)" + replaced_by + R"("},"type":"replaced-by"})";
    for (const std::string& other : replaces) {
      links += std::string(links.empty() ? "" : ",") + R"({"other":{"reference":"Patient/)" + other + R"("},"type":"replaces"})";
    }
    if (!links.empty()) json += R"(,"link":[)" + links + "]";
    commit.resources.push_back({"Patient", id, json + "}"});
    commit.resources.push_back({"ServiceRequest", "sr-" + id,
                                R"({"resourceType":"ServiceRequest","id":"sr-)" + id + R"(","status":"active","intent":"order",)"
                                R"("subject":{"reference":"Patient/)" + id + R"("},"category":[{"coding":[{"code":"e-consult"}]}],)"
                                R"("authoredOn":"2026-03-02T08:00:00-05:00"})"});
  };
  patient("m1", "m1b");
  patient("m1b", "m1c");
  patient("m1c", "", {"m1", "m1b"});
  patient("m2", "", {"m2old"});
  patient("m2old", "m2");
  patient("other", "");  // attributed elsewhere
  const std::string member = R"({"entity":{"reference":"Patient/)";
  commit.resources.push_back({"Group", "g1", R"({"resourceType":"Group","id":"g1","type":"person","actual":true,)"
                                             R"("identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817413"}],"member":[)" +
                                                 member + R"(m1"}},)" + member + R"(m2"}}]})"});
  commit.resources.push_back({"Group", "g2", R"({"resourceType":"Group","id":"g2","type":"person","actual":true,)"
                                             R"("identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1093817421"}],"member":[)" +
                                                 member + R"(other"}}]})"});
  ASSERT_TRUE((*store)->commitIngest(commit).ok());

  auto library = MeasureLibrary::bundled();
  ASSERT_TRUE(library.ok()) << library.message();
  std::vector<std::pair<std::string, SearchParams>> searches;
  const SearchAll real = storeSearch(**store, "http://localhost/fhir");
  const SearchAll recorded = [&](const std::string& type, const SearchParams& params) {
    searches.emplace_back(type, params);
    return real(type, params);
  };
  auto count = [&](const std::string& measure, const std::string& group_id, const std::string& subject) -> int64_t {
    EvaluateParams params{"2026-01-01", "2026-12-31", subject, "population", "2026-12-03T00:00:00Z", 1};
    auto text = evaluate(*(*library)->find(measure), params, recorded);
    EXPECT_TRUE(text.ok()) << text.message();
    if (!text.ok()) return -1;
    auto report = json::parse(*text);
    EXPECT_TRUE(report.ok());
    const json::Value* found = group(*report, group_id);
    if (found == nullptr) return -1;
    if (!(*found)["population"][0].HasMember("count")) ADD_FAILURE() << *text;
    return json::numberAsInt64((*found)["population"][0]["count"]).value_or(-1);
  };
  EXPECT_EQ(count("attributed-members", "members", "Group/g1"), 2);
  EXPECT_EQ(count("econsult-timeliness", "requested", "Group/g1"), 5);
  EXPECT_EQ(count("econsult-timeliness", "requested", "Patient/m1b"), 3);           // m1b's survivor m1c and its cluster
  for (const auto& [type, params] : searches) {
    EXPECT_TRUE(type == "Group" || !params.empty()) << "a subject's evaluation read every " << type;
  }
  searches.clear();
  EXPECT_EQ(count("attributed-members", "members", ""), 3);
  EXPECT_EQ(count("econsult-timeliness", "requested", ""), 6);
}

}  // namespace
}  // namespace fhir::gateway::measure

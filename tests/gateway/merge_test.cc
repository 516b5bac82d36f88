// SPDX-License-Identifier: Apache-2.0
// The pure merge (gateway/merge/merge.h) under the bundled rules
// (fhir_profiles/alignment/merge-rules.json): contributions in, one resource out, in any order.

#include "gateway/merge/merge.h"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

namespace fhir::gateway::merge {
namespace {

const MergeRules& rules() {
  static const MergeRules loaded = [] {
    auto parsed = MergeRules::load(MergeRules::defaultPath());
    EXPECT_TRUE(parsed.ok()) << parsed.message();
    return parsed.ok() ? std::move(*parsed) : *MergeRules::parse(R"({"resources":{}})");
  }();
  return loaded;
}

Contribution of(std::string type, std::string kind, std::string organization, std::string rank, std::string json,
                std::string patient = "p1", std::string record = "r") {
  Contribution c;
  c.type = type;
  c.id = "x1";
  c.kind = kind;
  c.organization = organization;
  c.rank = rank;
  c.tiebreak = organization + record;
  c.contributor = kind + "|" + organization + "|" + rank + "|" + record + "|" + patient;
  c.provenance = "prov-" + organization + rank + record;
  c.patient_id = patient;
  c.json = json;
  return c;
}

// The merge of every order of `all` (of 200 seeded shuffles past 5 contributions) is the same; returns it.
std::string mergedInEveryOrder(std::vector<Contribution> all, const Survivors& survivors = {}) {
  auto by_contributor = [](const auto& a, const auto& b) { return a.contributor < b.contributor; };
  std::sort(all.begin(), all.end(), by_contributor);
  std::string first;
  auto check = [&] {
    auto merged = merge(rules(), all, survivors);
    EXPECT_TRUE(merged.ok()) << merged.message();
    if (!merged.ok()) return;
    if (first.empty()) first = merged->json;
    EXPECT_EQ(merged->json, first);
  };
  if (all.size() <= 5) {
    do check();
    while (std::next_permutation(all.begin(), all.end(), by_contributor));
  } else {
    std::mt19937 random(11);
    for (int i = 0; i < 200; ++i) {
      std::shuffle(all.begin(), all.end(), random);
      check();
    }
  }
  return first;
}

TEST(MergeTest, TheRulesFileLoadsAndNamesMistakes) {
  EXPECT_TRUE(rules().merged("Coverage"));
  EXPECT_TRUE(rules().merged("Patient"));
  EXPECT_TRUE(rules().merged("Group"));
  EXPECT_FALSE(rules().merged("Claim"));
  auto bad = MergeRules::parse(R"({"resources":{"Coverage":{"elements":{"period":{"take":"latest"}}}}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("resources.Coverage.elements.period.take"), std::string::npos) << bad.message();
  EXPECT_FALSE(MergeRules::parse(R"({"resources":{"Coverage":{"colour":1}}})").ok());
}

TEST(MergeTest, AnEhrEntryNeverChangesThePayersPeriodAndAddsWhatItKnows) {
  const std::string merged = mergedInEveryOrder({
      of("Coverage", "roster", "payer-a", "2026-05-01",
         R"({"resourceType":"Coverage","id":"x1","status":"active","subscriberId":"M1","beneficiary":{"reference":"Patient/p-roster"},"period":{"start":"2026-01-01","end":"2026-06-30"}})",
         "p-roster"),
      of("Coverage", "ehr", "epic", "2026-09-01T10:00:00Z",
         R"({"resourceType":"Coverage","id":"x1","status":"active","subscriberId":"M1","beneficiary":{"reference":"Patient/p-ehr"},"identifier":[{"system":"s","value":"M1"}],"type":{"coding":[{"code":"medicaid"}]}})",
         "p-ehr"),
      of("Coverage", "ehr", "epic", "2026-10-01T10:00:00Z",
         R"({"resourceType":"Coverage","id":"x1","beneficiary":{"reference":"Patient/p-ehr"},"period":{"start":"2025-01-01"}})", "p-ehr"),
      of("Coverage", "claims", "payer-a", "",
         R"({"resourceType":"Coverage","id":"x1","status":"active","beneficiary":{"reference":"Patient/p-roster"},"type":{"coding":[{"code":"medicaid"}]}})",
         "p-roster"),
  }, Survivors{{"p-roster", "p-ehr"}});
  EXPECT_NE(merged.find(R"("period":{"start":"2026-01-01","end":"2026-06-30"})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"("identifier":[{"system":"s","value":"M1"}])"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"("beneficiary":{"reference":"Patient/p-ehr"})"), std::string::npos) << "the survivor: " << merged;
}

TEST(MergeTest, WithoutARosterTheLatestDatedEhrPeriodStandsAndAClaimFileGivesNone) {
  auto merged = merge(rules(), {of("Coverage", "claims", "payer-a", "", R"({"resourceType":"Coverage","id":"x1","status":"active"})"),
                               of("Coverage", "ehr", "epic", "2026-09-01T10:00:00Z",
                                  R"({"resourceType":"Coverage","id":"x1","period":{"start":"2026-01-01"}})")});
  ASSERT_TRUE(merged.ok());
  EXPECT_NE(merged->json.find(R"("period":{"start":"2026-01-01"})"), std::string::npos);
  EXPECT_EQ(merged->winners.at("period"), "ehr");
  auto claims_only = merge(rules(), {of("Coverage", "claims", "payer-a", "", R"({"resourceType":"Coverage","id":"x1","period":{"start":"2026-06-10","end":"2026-06-10"}})")});
  ASSERT_TRUE(claims_only.ok());
  EXPECT_EQ(claims_only->json.find("period"), std::string::npos) << claims_only->json;
}

TEST(MergeTest, PatientDemographicsFromTheLatestEventElseTheRosterIdentifiersFromAll) {
  const std::string merged = mergedInEveryOrder({
      of("Patient", "roster", "payer-a", "2026-05-01",
         R"({"resourceType":"Patient","id":"x1","identifier":[{"system":"member-a","value":"M1"}],"name":[{"family":"Okafor","given":["Adaeze"]}],"birthDate":"1961-03-19"})"),
      of("Patient", "ehr", "epic", merge::utcRank("2026-10-02T14:03:11-05:00"),
         R"({"resourceType":"Patient","id":"x1","identifier":[{"system":"mrn","value":"N1"}],"name":[{"family":"Okafor-Menon","given":["Adaeze"]}]})",
         "p1", "e1"),
      of("Patient", "ehr", "epic", merge::utcRank("2026-10-02T18:03:11Z"),
         R"({"resourceType":"Patient","id":"x1","identifier":[{"system":"mrn","value":"N1"}],"name":[{"family":"Okafor","given":["Adaeze","N"]}]})",
         "p1", "e0"),
  });
  // 14:03:11-05:00 is 19:03:11Z: later than 18:03:11Z.
  EXPECT_NE(merged.find(R"("name":[{"family":"Okafor-Menon","given":["Adaeze"]}])"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"("birthDate":"1961-03-19")"), std::string::npos) << "the roster's, no event has it: " << merged;
  EXPECT_NE(merged.find(R"({"system":"mrn","value":"N1"},{"system":"member-a","value":"M1"})"), std::string::npos) << merged;
}

TEST(MergeTest, UtcRanksCompareInstantsAsText) {
  EXPECT_EQ(utcRank("2026-10-02T14:03:11-05:00"), "2026-10-02T19:03:11Z");
  EXPECT_EQ(utcRank("2026-12-31T23:30:00-01:00"), "2027-01-01T00:30:00Z");
  EXPECT_EQ(utcRank("2026-10-02T00:10:00.250+01:00"), "2026-10-01T23:10:00.250Z");
  EXPECT_EQ(utcRank("2026-10-02"), "2026-10-02");
  // HL7 v2 DTM (MSH-7), v2.5.1 chapter 2A.22: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ].
  EXPECT_EQ(utcRank("20261002140311-0500"), "2026-10-02T19:03:11Z");
  EXPECT_EQ(utcRank("202610021403+0100"), "2026-10-02T13:03:00Z");
  EXPECT_EQ(utcRank("20261231233000.25-0100"), "2027-01-01T00:30:00.25Z");
  EXPECT_EQ(utcRank("20261002140311"), "20261002140311");  // local time of the sender: as sent
  EXPECT_EQ(utcRank("20261002"), "20261002");
  EXPECT_EQ(utcRank("2026100214031-0500"), "2026100214031-0500");  // 13 digits: not a DTM we rank
}

std::string member(const std::string& patient, const std::string& start, const std::string& end = "") {
  return R"({"resourceType":"Group","id":"x1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/)" + patient +
         R"("},"period":{"start":")" + start + "\"" + (end.empty() ? "" : R"(,"end":")" + end + "\"") + "}}]}";
}

TEST(MergeTest, AGroupAccumulatesDeltaRostersAndAFullRosterEndsWhoItNoLongerLists) {
  std::vector<Contribution> all = {
      of("Group", "roster", "payer-a", "2026-01-01", member("p1", "2026-01-01"), "p1"),
      of("Group", "roster", "payer-a", "2026-02-01", member("p2", "2026-02-01"), "p2"),
      of("Group", "roster", "payer-a", "2026-03-01", member("p3", "2026-03-01"), "p3"),
      // the third delta file ends p1
      of("Group", "roster", "payer-a", "2026-03-01", member("p1", "2026-01-01", "2026-02-28"), "p1"),
  };
  std::string merged = mergedInEveryOrder(all);
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p1"},"period":{"start":"2026-01-01","end":"2026-02-28"}})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p2"},"period":{"start":"2026-02-01"}})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p3"},"period":{"start":"2026-03-01"}})"), std::string::npos) << merged;

  // A full file as of April lists p3 only (and p4, new): p2 ends on April 1st, p1 stays ended.
  Contribution full = of("Group", "roster-full", "payer-a", "2026-04-01", R"({"listed":["Patient/p3","Patient/p4"]})", "");
  all.push_back(full);
  all.push_back(of("Group", "roster", "payer-a", "2026-04-01", member("p3", "2026-03-01"), "p3"));
  all.push_back(of("Group", "roster", "payer-a", "2026-04-01", member("p4", "2026-04-01"), "p4"));
  merged = mergedInEveryOrder(all);
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p1"},"period":{"start":"2026-01-01","end":"2026-02-28"}})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p2"},"period":{"start":"2026-02-01","end":"2026-04-01"}})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p3"},"period":{"start":"2026-03-01"}})"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p4"},"period":{"start":"2026-04-01"}})"), std::string::npos) << merged;

  // An older full file (as of February, listing p1 only) changes nothing.
  all.push_back(of("Group", "roster-full", "payer-a", "2026-02-01", R"({"listed":["Patient/p1"]})", ""));
  all.back().contributor = "roster-full|payer-a|2026-02-01";
  EXPECT_EQ(mergedInEveryOrder(all), merged);
}

TEST(MergeTest, GroupMembersOfOnePersonFoldIntoTheSurvivor) {
  const std::string merged = mergedInEveryOrder({of("Group", "roster", "payer-a", "2026-01-01", member("p-roster", "2026-01-01"), "p-roster"),
                                                 of("Group", "roster", "payer-a", "2026-02-01", member("p-ehr", "2026-01-15"), "p-ehr")},
                                                Survivors{{"p-roster", "p-ehr"}});
  EXPECT_EQ(merged.find("p-roster"), std::string::npos) << merged;
  EXPECT_NE(merged.find(R"({"entity":{"reference":"Patient/p-ehr"},"period":{"start":"2026-01-15"}})"), std::string::npos) << merged;
}

TEST(MergeTest, TheSurvivorIsTheLowestIdOfTheFirstKind) {
  EXPECT_EQ(chooseSurvivor(rules(), {{"b-roster", {"roster"}}, {"z-ehr", {"ehr"}}, {"a-claims", {"claims"}}}), "z-ehr");
  EXPECT_EQ(chooseSurvivor(rules(), {{"b-roster", {"roster"}}, {"a-roster", {"roster", "claims"}}}), "a-roster");
  EXPECT_EQ(chooseSurvivor(rules(), {{"c", {}}}), "c");
}

}  // namespace
}  // namespace fhir::gateway::merge

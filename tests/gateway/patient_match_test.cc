// SPDX-License-Identifier: Apache-2.0
// Roster rows matched to known patients (payer-formats.md, Rosters) against a real SQLite store.

#include "gateway/dispatch/patient_match.h"

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

// A roster row's Bundle as the roster spec shapes it: Patient "own", its Coverage, the
// attribution Group with the member, and the Provenance.
constexpr const char* kRosterBundle = R"({"resourceType": "Bundle", "type": "collection", "entry": [
  {"fullUrl": "http://x/fhir/Patient/own", "resource": {"resourceType": "Patient", "id": "own",
    "name": [{"family": "Okafor", "given": ["Adaeze"]}], "gender": "female", "birthDate": "1961-03-19"}},
  {"resource": {"resourceType": "Coverage", "id": "cov", "subscriberId": "LMC-1", "beneficiary": {"reference": "Patient/own"}}},
  {"resource": {"resourceType": "Group", "id": "grp", "member": [{"entity": {"reference": "Patient/own"}}]}},
  {"resource": {"resourceType": "Provenance", "id": "prov", "target": [{"reference": "Patient/own"}, {"reference": "Coverage/cov"}]}}]})";

class PatientMatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = openSqliteStore(dir_.path().string());
    ASSERT_TRUE(opened.ok()) << opened.message();
    store_ = *opened;
  }

  void storePatient(const std::string& id, const std::string& json, std::vector<mappers::CoverageFact> coverage = {}) {
    IngestCommit commit;
    commit.channel = "econsult";
    commit.idempotency_key = "event-" + id;
    commit.resources.push_back({"Patient", id, json});
    commit.coverage = std::move(coverage);
    ASSERT_TRUE(store_->commitIngest(std::move(commit)).ok());
  }

  static json::Document bundle() {
    auto parsed = json::parse(kRosterBundle);
    EXPECT_TRUE(parsed.ok());
    return std::move(*parsed);
  }

  testing::TempDir dir_;
  StorePtr store_;
};

TEST_F(PatientMatchTest, DemographicsAreFamilyFirstGivenBirthDateAndSex) {
  auto patient = json::parse(R"({"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Adaeze", "N"]},
      {"family": "Other"}], "gender": "female", "birthDate": "1961-03-19"})");
  ASSERT_TRUE(patient.ok());
  PatientDemographics who = demographicsOf(*patient);
  EXPECT_EQ(who.family, "Okafor");
  EXPECT_EQ(who.given, "Adaeze");
  EXPECT_EQ(who.birth_date, "1961-03-19");
  EXPECT_EQ(who.gender, "female");
  EXPECT_TRUE(who.complete());
  EXPECT_FALSE(demographicsOf(*json::parse(R"({"resourceType": "Patient", "gender": "female"})")).complete());
}

TEST_F(PatientMatchTest, UnknownMemberLeavesTheBundleAsItIs) {
  json::Document row = bundle();
  const std::string before = json::serialize(row);
  EXPECT_TRUE(adoptKnownPatient(row, "lakeshore-medicaid", *store_).empty());
  EXPECT_EQ(json::serialize(row), before);
}

TEST_F(PatientMatchTest, MatchByDemographicsMakesTheRowAboutTheKnownPatient) {
  storePatient("known", R"({"resourceType": "Patient", "id": "known", "name": [{"family": "Okafor", "given": ["Adaeze", "N"]}],
      "gender": "female", "birthDate": "1961-03-19"})");
  json::Document row = bundle();
  EXPECT_EQ(adoptKnownPatient(row, "lakeshore-medicaid", *store_), std::vector<std::string>{"known"});
  const json::Value& entries = row["entry"];
  ASSERT_EQ(entries.Size(), 3u);  // the row's own Patient is gone
  EXPECT_EQ(json::serialize(entries[0]["resource"]["beneficiary"]), R"({"reference":"Patient/known"})");
  EXPECT_EQ(json::serialize(entries[1]["resource"]["member"][0]["entity"]), R"({"reference":"Patient/known"})");
  EXPECT_EQ(json::serialize(entries[2]["resource"]["target"]),
            R"([{"reference":"Patient/known"},{"reference":"Coverage/cov"}])");
}

TEST_F(PatientMatchTest, MemberIdComesBeforeDemographics) {
  // "byname" has the row's demographics; "bymember" was given member id LMC-1 by an event.
  storePatient("byname", R"({"resourceType": "Patient", "id": "byname", "name": [{"family": "Okafor", "given": ["Adaeze"]}],
      "gender": "female", "birthDate": "1961-03-19"})");
  mappers::CoverageFact fact;
  fact.coverage_id = "cov";
  fact.patient_id = "bymember";
  fact.payer_id = "lakeshore-medicaid";
  fact.member_id = "LMC-1";
  storePatient("bymember", R"({"resourceType": "Patient", "id": "bymember", "name": [{"family": "Okafor-Menon"}]})", {fact});
  json::Document row = bundle();
  EXPECT_EQ(adoptKnownPatient(row, "lakeshore-medicaid", *store_), std::vector<std::string>{"bymember"});
  EXPECT_EQ(json::serialize(row["entry"][0]["resource"]["beneficiary"]), R"({"reference":"Patient/bymember"})");
  // Another payer's member id is not this payer's.
  json::Document other = bundle();
  EXPECT_EQ(adoptKnownPatient(other, "northwind-commercial", *store_), std::vector<std::string>{"byname"});
}

}  // namespace
}  // namespace fhir::gateway

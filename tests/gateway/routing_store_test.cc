// SPDX-License-Identifier: Apache-2.0
// The store's parts of re-routing and replay: the demographics index, routing a waiting claim
// in its own commit, and quarantine entries that record their replays.

#include <gtest/gtest.h>

#include "gateway/store/store.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

IngestCommit patientCommit(const std::string& key, const std::string& id, const std::string& json) {
  IngestCommit commit;
  commit.channel = "econsult";
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.resources.push_back({"Patient", id, json});
  return commit;
}

TEST(RoutingStoreTest, PatientsAreFoundByExactFamilyFirstGivenBirthDateAndSex) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  ASSERT_TRUE((*store)->commitIngest(patientCommit("k1", "p1", R"({"resourceType":"Patient","id":"p1",
      "name":[{"family":"Okafor","given":["Adaeze","N"]}],"gender":"female","birthDate":"1961-03-19"})")).ok());
  ASSERT_TRUE((*store)->commitIngest(patientCommit("k2", "p2", R"({"resourceType":"Patient","id":"p2",
      "name":[{"family":"Okafor","given":["Adaeze"]}],"gender":"female","birthDate":"1961-03-20"})")).ok());

  auto found = (*store)->patientsWithDemographics({"Okafor", "Adaeze", "1961-03-19", "female"});
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, std::vector<std::string>{"p1"});
  EXPECT_TRUE((*store)->patientsWithDemographics({"okafor", "Adaeze", "1961-03-19", "female"})->empty());
  EXPECT_TRUE((*store)->patientsWithDemographics({"Okafor", "N", "1961-03-19", "female"})->empty());
  EXPECT_TRUE((*store)->patientsWithDemographics({"Okafor", "Adaeze", "1961-03-19", "male"})->empty());

  // A new version of the Patient moves it in the index.
  ASSERT_TRUE((*store)->commitIngest(patientCommit("k3", "p1", R"({"resourceType":"Patient","id":"p1",
      "name":[{"family":"Okafor-Menon","given":["Adaeze"]}],"gender":"female","birthDate":"1961-03-19"})")).ok());
  EXPECT_TRUE((*store)->patientsWithDemographics({"Okafor", "Adaeze", "1961-03-19", "female"})->empty());
  EXPECT_EQ(*(*store)->patientsWithDemographics({"Okafor-Menon", "Adaeze", "1961-03-19", "female"}),
            std::vector<std::string>{"p1"});
}

TEST(RoutingStoreTest, AWaitingClaimIsRoutedByOneCommitOnlyOnce) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  IngestCommit event = patientCommit("event", "p1", R"({"resourceType":"Patient","id":"p1"})");
  event.unroutable.push_back({"c1", "p1", "2026-06-15", "99451", "no coverage", "{}"});
  ASSERT_TRUE((*store)->commitIngest(std::move(event)).ok());
  ASSERT_EQ((*store)->unroutableOf("p1")->size(), 1u);

  auto reroute = [](const std::string& key) {
    IngestCommit commit;
    commit.channel = "reroute";
    commit.idempotency_key = key;
    commit.routes_unroutable = "c1";
    commit.resources.push_back({"Claim", "c1", R"({"resourceType":"Claim","id":"c1"})"});
    commit.outbox.push_back({"payer:a", "claim", "bundle"});
    return commit;
  };
  auto first = (*store)->commitIngest(reroute("reroute-1"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->duplicate);
  EXPECT_TRUE((*store)->unroutableOf("p1")->empty());
  EXPECT_EQ(*(*store)->lastNumber("payer:a"), 1);
  // Routed already: a second attempt (another key) writes nothing.
  auto second = (*store)->commitIngest(reroute("reroute-2"));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->duplicate);
  EXPECT_EQ(*(*store)->lastNumber("payer:a"), 1);
  EXPECT_EQ((*(*store)->readResource("Claim", "c1"))->version, 1);
}

TEST(RoutingStoreTest, QuarantineEntriesRecordTheirReplaysAndStay) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  QuarantineWrite write{"roster:lakeshore-medicaid", "text/csv", "LMC-2,Diallo\r\n", false, R"({"resourceType":"OperationOutcome"})",
                        true, "member_id,member_last\r\n"};
  auto id = (*store)->quarantine(write);
  ASSERT_TRUE(id.ok());
  auto kept = (*store)->readQuarantine(*id);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_TRUE((*kept)->record);
  EXPECT_EQ((*kept)->replay_prefix, "member_id,member_last\r\n");
  EXPECT_EQ((*kept)->status, "quarantined");
  EXPECT_EQ((*kept)->replays, 0);
  EXPECT_FALSE((*(*store)->readQuarantine("q-none")).has_value());

  ASSERT_TRUE(*(*store)->recordReplay(*id, 200, R"({"rejected":1})", false));
  EXPECT_EQ((*store)->listQuarantineToReplay(10)->size(), 1u);
  ASSERT_TRUE(*(*store)->recordReplay(*id, 200, R"({"rejected":0})", true));
  EXPECT_FALSE(*(*store)->recordReplay("q-none", 200, "", true));
  kept = (*store)->readQuarantine(*id);
  EXPECT_EQ((*kept)->status, "accepted");
  EXPECT_EQ((*kept)->replays, 2);
  EXPECT_EQ((*kept)->replay_status, 200);
  EXPECT_EQ((*kept)->replay_answer, R"({"rejected":0})");
  EXPECT_FALSE((*kept)->replayed_at.empty());
  EXPECT_TRUE((*store)->listQuarantineToReplay(10)->empty());
  EXPECT_EQ((*store)->listQuarantine(10)->size(), 1u);  // nothing deleted
}

}  // namespace
}  // namespace fhir::gateway

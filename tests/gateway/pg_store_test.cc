// SPDX-License-Identifier: Apache-2.0
// What the PostgreSQL store adds to the contract suite (issue 17): opening it from the
// configuration (password from a file, sslmode), start-ups racing on one schema, staged files of
// a handle that is gone. Needs the ctest fixture "postgresql" (scripts/pg-test); fails without it.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "gateway/cli/runtime.h"
#include "gateway/store/pg_connection.h"
#include "gateway/store/pg_store.h"
#include "tests/support/test_postgres.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::testPostgres();
    ASSERT_TRUE(cluster.ok()) << cluster.message();
    cluster_ = *cluster;
  }
  Config configWith(const std::string& password_file, const std::string& sslmode = "") {
    Config config;
    config.store.kind = "postgresql";
    config.store.url = cluster_.url;
    config.store.password_file = password_file;
    config.store.sslmode = sslmode;
    config.store.schema = testing::testSchemaFor(dir_.path().string());
    return config;
  }
  PostgresStoreOptions options() {
    PostgresStoreOptions options;
    options.url = cluster_.url;
    options.password = cluster_.password;
    options.schema = testing::testSchemaFor(dir_.path().string());
    return options;
  }

  testing::TestPostgres cluster_;
  testing::TempDir dir_;
};

TEST_F(PgStoreTest, OpensFromTheConfigurationWithThePasswordFromItsFile) {
  auto store = cli::openStore(configWith(cluster_.password_file));
  ASSERT_TRUE(store.ok()) << store.message();
  auto kind = (*store)->probe();
  ASSERT_TRUE(kind.ok()) << kind.message();
  EXPECT_EQ(*kind, "postgresql");
  // Without the password the server (SCRAM over TCP) refuses.
  auto without = cli::openStore(configWith(""));
  EXPECT_FALSE(without.ok());
}

TEST_F(PgStoreTest, AWrongPasswordFailsAndTheMessageDoesNotShowIt) {
  const std::string wrong = (dir_.path() / "wrong").string();
  std::ofstream(wrong) << "not-the-password-4711\n";
  auto store = cli::openStore(configWith(wrong));
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("password authentication failed"), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find("not-the-password-4711"), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find(cluster_.password), std::string::npos);
}

TEST_F(PgStoreTest, SslmodeIsHonoured) {
  // The test cluster has no TLS: "require" must refuse to talk to it, "disable" must not.
  auto required = cli::openStore(configWith(cluster_.password_file, "require"));
  ASSERT_FALSE(required.ok());
  EXPECT_NE(required.message().find("SSL"), std::string::npos) << required.message();
  auto disabled = cli::openStore(configWith(cluster_.password_file, "disable"));
  EXPECT_TRUE(disabled.ok()) << disabled.message();
}

TEST_F(PgStoreTest, GatewaysStartingTogetherOnANewSchemaMigrateItOnce) {
  std::vector<std::thread> threads;
  std::vector<StorePtr> stores(4);
  std::atomic<int> failures{0};
  for (size_t i = 0; i < stores.size(); ++i) {
    threads.emplace_back([&, i] {
      auto opened = openPostgresStore(options());
      if (opened.ok()) stores[i] = *opened;
      else failures++;
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  IngestCommit commit;
  commit.channel = "pg";
  commit.idempotency_key = "k";
  commit.outbox.push_back({"feed:hie", "bundle", "b"});
  auto outcome = stores[3]->commitIngest(std::move(commit));
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_EQ(*stores[0]->lastNumber("feed:hie"), 1);
}

// Migration 4: type and system history read newest first through an index from the page's event
// bound, not by sorting the whole table (the statements' shape is pg_history.cc's). With
// sequential scans priced out, the plan of each shows the index it can use.
TEST_F(PgStoreTest, TypeAndSystemHistoryHaveIndexes) {
  auto store = openPostgresStore(options());
  ASSERT_TRUE(store.ok()) << store.message();
  pg::ConnectOptions connect;
  connect.url = cluster_.url;
  connect.password = cluster_.password;
  connect.schema = testing::testSchemaFor(dir_.path().string());
  pg::Connection db(connect);
  ASSERT_TRUE(db.open().ok());
  ASSERT_TRUE(db.exec("SET enable_seqscan = off").ok());
  auto plan = [&](const std::string& where) {
    auto rows = db.runText("EXPLAIN SELECT type, id, version FROM resource_history WHERE " + where +
                               " updated_at >= '' AND event_seq <= 100 ORDER BY event_seq DESC, type COLLATE \"C\" DESC,"
                               " id COLLATE \"C\" DESC, version DESC LIMIT 50",
                           {}, {});
    EXPECT_TRUE(rows.ok()) << rows.message();
    std::string text;
    for (int row = 0; rows.ok() && row < rows->size(); ++row) text += rows->text(row, 0) + "\n";
    return text;
  };
  EXPECT_NE(plan("type = 'Task' AND").find("resource_history_by_type_seq"), std::string::npos) << plan("type = 'Task' AND");
  EXPECT_NE(plan("").find("resource_history_by_seq"), std::string::npos) << plan("");
  auto applied = db.runText("SELECT count(*) FROM schema_migrations WHERE version = 4", {}, {});
  ASSERT_TRUE(applied.ok()) << applied.message();
  EXPECT_EQ(applied->integer(0, 0), 1);
}

TEST_F(PgStoreTest, StagedFilesOfAHandleThatIsGoneAreDroppedAndALiveHandlesAreKept) {
  auto live = openPostgresStore(options());
  ASSERT_TRUE(live.ok()) << live.message();
  auto live_file = (*live)->beginStagedFile("claims");
  ASSERT_TRUE(live_file.ok());
  ASSERT_TRUE((*live)->stageRecords(*live_file, {{1, "c1", "{}"}}).ok());
  {
    auto gone = openPostgresStore(options());
    ASSERT_TRUE(gone.ok());
    auto file = (*gone)->beginStagedFile("claims");
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*gone)->stageRecords(*file, {{1, "g1", "{}"}, {2, "g2", "{}"}}).ok());
    EXPECT_EQ((*live)->stagedCounts()->second, 3);
  }  // closed: its connection and advisory lock are gone
  auto next = openPostgresStore(options());
  ASSERT_TRUE(next.ok());
  auto counts = (*next)->stagedCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->first, 1);   // the live handle's file
  EXPECT_EQ(counts->second, 1);
  auto records = (*live)->stagedRecords(*live_file, 0, 10);
  ASSERT_TRUE(records.ok() && records->size() == 1u);
  EXPECT_EQ(records->front().record_id, "c1");
}

TEST_F(PgStoreTest, BytesThatAreNotUtf8AreKeptAsTheyCame) {
  auto store = openPostgresStore(options());
  ASSERT_TRUE(store.ok());
  const std::string payload("\xff\xfe\x00not json\x80", 12);
  QuarantineWrite write{"claims", "text/csv; charset=\xe9", payload, false, R"({"resourceType":"OperationOutcome"})"};
  auto id = (*store)->quarantine(write);
  ASSERT_TRUE(id.ok()) << id.message();
  auto again = (*store)->quarantine(write);  // the same payload is counted, not kept twice
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *id);
  auto read = (*store)->readQuarantine(*id);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->payload, payload);
  EXPECT_EQ((*read)->content_type, "text/csv; charset=\xe9");
  EXPECT_EQ((*read)->count, 2);
  EXPECT_EQ((*read)->payload_bytes, 12);
}

TEST_F(PgStoreTest, StoreCopyMovesASqliteStoreAndDeliveryGoesOnFromWhereItStopped) {
  testing::TempDir sqlite_dir;
  int64_t last_seq = 0;
  {
    auto sqlite = openSqliteStore(sqlite_dir.path().string());
    ASSERT_TRUE(sqlite.ok()) << sqlite.message();
    for (int i = 0; i < 3; ++i) {
      IngestCommit commit;
      commit.channel = "econsult";
      commit.idempotency_key = "key-" + std::to_string(i);
      commit.payload = "{\"n\":" + std::to_string(i) + "}";
      commit.answer = "answer-" + std::to_string(i);
      commit.resources.push_back({"Patient", "p1", R"({"resourceType":"Patient","id":"p1","gender":")" +
                                                       std::string(i == 0 ? "male" : "female") + "\"}"});
      commit.outbox.push_back({"feed:hie", "bundle", "bundle-" + std::to_string(i)});
      if (i != 1) commit.outbox.push_back({"payer:p1", "claim", "claim-" + std::to_string(i)});
      commit.unique_slots.push_back({"acm|" + std::to_string(i), "event-" + std::to_string(i)});
      auto outcome = (*sqlite)->commitIngest(std::move(commit));
      ASSERT_TRUE(outcome.ok()) << outcome.message();
      last_seq = outcome->event_seq;
    }
    auto head = (*sqlite)->pendingHead("feed:hie", 1);
    ASSERT_TRUE(head.ok() && head->size() == 1u);
    ASSERT_TRUE((*sqlite)->recordDelivered({head->front().id, 1000, 200, "", 5}).ok());
    ASSERT_TRUE((*sqlite)->quarantine({"claims", "text/csv", "bad,row", true, R"({"resourceType":"OperationOutcome"})"}).ok());
    ASSERT_TRUE((*sqlite)->putSubscription({"s1", "active", "", R"({"resourceType":"Subscription"})"}).ok());
  }
  auto copied = copySqliteToPostgres(sqlite_dir.path().string(), options());
  ASSERT_TRUE(copied.ok()) << copied.message();
  int64_t events = -1;
  for (const auto& [table, rows] : *copied) {
    if (table == "events") events = rows;
  }
  EXPECT_EQ(events, 3);

  auto store = openPostgresStore(options());
  ASSERT_TRUE(store.ok()) << store.message();
  Store& pg = **store;
  auto answer = pg.findAnswer("key-2");
  ASSERT_TRUE(answer.ok() && answer->has_value());
  EXPECT_EQ((*answer)->answer, "answer-2");
  EXPECT_EQ(*pg.lastNumber("feed:hie"), 3);
  EXPECT_EQ(*pg.lastNumber("payer:p1"), 2);
  auto pending = pg.pendingHead("feed:hie", 10);  // number 1 was delivered before the copy
  ASSERT_TRUE(pending.ok() && pending->size() == 2u);
  EXPECT_EQ(pending->front().number, 2);
  EXPECT_EQ(pending->front().body, "bundle-1");
  auto patient = pg.readResource("Patient", "p1");
  ASSERT_TRUE(patient.ok() && patient->has_value());
  EXPECT_EQ((*patient)->version, 2);  // the third write changed nothing
  EXPECT_NE((*patient)->json.find("female"), std::string::npos);
  EXPECT_EQ(pg.patientsWithDemographics({"", "", "", "female"})->size(), 1u);  // the demographics index came along
  EXPECT_EQ(pg.listQuarantine(10)->size(), 1u);
  EXPECT_EQ(pg.listSubscriptions()->size(), 1u);

  // The copy goes on: numbers and seqs continue, slots and keys hold.
  IngestCommit next;
  next.channel = "econsult";
  next.idempotency_key = "key-3";
  next.outbox.push_back({"feed:hie", "bundle", "bundle-3"});
  next.unique_slots.push_back({"acm|0", "someone-else"});
  auto refused = pg.commitIngest(next);
  ASSERT_TRUE(refused.ok()) << refused.message();
  EXPECT_EQ(refused->slot_owner, "event-0");
  next.unique_slots.clear();
  auto accepted = pg.commitIngest(next);
  ASSERT_TRUE(accepted.ok()) << accepted.message();
  EXPECT_GT(accepted->event_seq, last_seq);
  EXPECT_EQ(*pg.lastNumber("feed:hie"), 4);
  EXPECT_TRUE(pg.commitIngest(next)->duplicate);

  // A second copy into the same (no longer empty) store is refused.
  auto again = copySqliteToPostgres(sqlite_dir.path().string(), options());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("not empty"), std::string::npos) << again.message();
}

}  // namespace
}  // namespace fhir::gateway

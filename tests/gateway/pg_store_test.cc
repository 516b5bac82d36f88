// SPDX-License-Identifier: Apache-2.0
// What the PostgreSQL store adds to the contract suite (issue 17): opening it from the
// configuration (password from a file, sslmode), start-ups racing on one schema, staged files of
// a handle that is gone, the round trips of a commit, Subscriptions seen by every handle, the
// writer's owner lock after a broken connection. Needs the ctest fixture "postgresql"
// (scripts/pg-test); fails without it.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "gateway/cli/runtime.h"
#include "gateway/store/pg_connection.h"
#include "gateway/store/pg_store.h"
#include "gateway_paths.h"
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

  // A connection in the test's schema after a store opened (migrated) it, with sequential scans
  // priced out so that EXPLAIN shows the index a statement can use.
  std::unique_ptr<pg::Connection> plannerSession() {
    auto store = openPostgresStore(options());
    EXPECT_TRUE(store.ok()) << store.message();
    pg::ConnectOptions connect;
    connect.url = cluster_.url;
    connect.password = cluster_.password;
    connect.schema = testing::testSchemaFor(dir_.path().string());
    auto db = std::make_unique<pg::Connection>(connect);
    EXPECT_TRUE(db->open().ok());
    EXPECT_TRUE(db->exec("SET enable_seqscan = off").ok());
    return db;
  }

  // A session of the test's own on the cluster (raw libpq), in the test's schema.
  PGconn* session() {
    const std::string password = cluster_.password;
    const char* keys[] = {"dbname", "password", nullptr};
    const char* values[] = {cluster_.url.c_str(), password.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 1);
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    sql(conn, "SET search_path TO \"" + testing::testSchemaFor(dir_.path().string()) + "\"");
    return conn;
  }
  // The first column of the first row of `statement` ("" without rows); a failure fails the test.
  static std::string sql(PGconn* conn, const std::string& statement, bool expect_ok = true) {
    PGresult* result = PQexec(conn, statement.c_str());
    const ExecStatusType status = PQresultStatus(result);
    const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
    if (expect_ok) {
      EXPECT_TRUE(ok) << statement << ": " << PQresultErrorMessage(result);
    }
    std::string value = ok && PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "";
    PQclear(result);
    return ok ? value : "error";
  }

  testing::TestPostgres cluster_;
  testing::TempDir dir_;
};

// An e-consult-like event: eight resources (a Patient among them), two unique slots, outbox rows
// for two destinations, a coverage fact and an AuditEvent naming two entities.
IngestCommit econsultLike(const std::string& key, const std::string& gender) {
  IngestCommit commit;
  commit.channel = "econsult";
  commit.idempotency_key = key;
  commit.payload = "{\"event\":\"" + key + "\"}";
  commit.answer = "accepted " + key;
  commit.resources.push_back({"Patient", "p1", R"({"resourceType":"Patient","id":"p1","name":[{"family":"Rivera",)"
                                               R"("given":["Ana"]}],"birthDate":"1980-02-03","gender":")" + gender + "\"}"});
  for (const char* type : {"Organization", "Practitioner", "Coverage", "ServiceRequest", "Task", "Communication"}) {
    commit.resources.push_back({type, std::string(type) + "-1",
                                std::string(R"({"resourceType":")") + type + R"(","id":")" + type + R"(-1"})"});
  }
  commit.resources.push_back({"Claim", "c-" + key, R"({"resourceType":"Claim","id":"c-)" + key + R"(","status":"active"})"});
  commit.unique_slots = {{"acm|c-" + key, key}, {"sr|sr-" + key, key}};
  commit.outbox = {{"payer:a", "claim", "claim " + key}, {"feed:f", "bundle", "bundle " + key}, {"payer:a", "claim", "again " + key}};
  CoverageFact fact;
  fact.coverage_id = "Coverage-1";
  fact.patient_id = "p1";
  fact.payer_id = "a";
  fact.member_id = "m1";
  fact.line_of_business = "medicaid";
  fact.start = "2026-01-01";
  fact.basis = "roster";
  commit.coverage.push_back(fact);
  AuditRecord audit;
  audit.recorded_ms = 1000;
  audit.subtype = "create";
  audit.agent = "clinic";
  audit.entities = {"Patient/p1", "Claim/c-" + key};
  audit.json = R"({"resourceType":"AuditEvent"})";
  commit.audit.push_back(audit);
  return commit;
}

// A Subscription the backport parser accepts.
std::string subscriptionResource(const std::string& endpoint) {
  return R"({"resourceType": "Subscription", "status": "requested", "reason": "pg test",
    "criteria": "https://fhir.alignment-gateway.org/SubscriptionTopic/billing-routed",
    "channel": {"type": "rest-hook", "endpoint": ")" + endpoint + R"(", "payload": "application/fhir+json"}})";
}

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
  auto session = plannerSession();
  pg::Connection& db = *session;
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

// Migration 5: an unsorted search page (and so a Bulk export page) reads one type's entries in seq
// order after a cursor through an index range, not by sorting the type's entries.
TEST_F(PgStoreTest, SearchPagesInSeqOrderHaveAnIndex) {
  auto session = plannerSession();
  pg::Connection& db = *session;
  auto rows = db.runText("EXPLAIN SELECT e.seq, e.id FROM search_entries e WHERE e.type = 'Patient' AND e.seq > 100 "
                         "ORDER BY e.seq LIMIT 1000",
                         {}, {});
  ASSERT_TRUE(rows.ok()) << rows.message();
  std::string plan;
  for (int row = 0; row < rows->size(); ++row) plan += rows->text(row, 0) + "\n";
  EXPECT_NE(plan.find("search_entries_by_type_seq"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("Sort"), std::string::npos) << plan;
  auto applied = db.runText("SELECT count(*) FROM schema_migrations WHERE version = 5", {}, {});
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

TEST_F(PgStoreTest, AnEventCommitsInThreeRoundTripsWithEverythingWritten) {
  auto store = openPostgresStore(options());
  ASSERT_TRUE(store.ok()) << store.message();
  Store& pg = **store;
  const PgWriterCounters before = pgWriterCounters(pg);
  auto outcome = pg.commitIngest(econsultLike("k1", "female"));
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  const PgWriterCounters after = pgWriterCounters(pg);
  const int64_t round_trips = after.round_trips - before.round_trips;
  const int64_t statements = after.statements - before.statements;
  std::printf("one e-consult-like event (8 resources, 2 slots, 3 outbox rows, 1 audit): %lld round trips, %lld statements\n",
              static_cast<long long>(round_trips), static_cast<long long>(statements));
  // BEGIN with the event's insert (its seq is needed); the unique slots (a refused one undoes the
  // event); everything else with the outbox rows and the COMMIT.
  EXPECT_EQ(round_trips, 3);
  EXPECT_EQ(after.jobs - before.jobs, 1);

  // Everything is there.
  auto patient = pg.readResource("Patient", "p1");
  ASSERT_TRUE(patient.ok() && patient->has_value());
  EXPECT_EQ((*patient)->version, 1);
  EXPECT_EQ(pg.patientsWithDemographics({"Rivera", "Ana", "1980-02-03", "female"})->size(), 1u);
  auto claim = pg.readResource("Claim", "c-k1");
  ASSERT_TRUE(claim.ok() && claim->has_value());
  EXPECT_EQ(*pg.lastNumber("payer:a"), 2);
  EXPECT_EQ(*pg.lastNumber("feed:f"), 1);
  auto pending = pg.pendingHead("payer:a", 10);
  ASSERT_TRUE(pending.ok() && pending->size() == 2u);
  EXPECT_EQ((*pending)[0].body, "claim k1");
  EXPECT_EQ((*pending)[1].body, "again k1");
  EXPECT_EQ((*pending)[1].number, 2);
  EXPECT_EQ(pg.coverageOf("p1")->size(), 1u);
  AuditQuery by_claim;
  by_claim.entity = "Claim/c-k1";
  auto audited = pg.listAudit(by_claim);
  ASSERT_TRUE(audited.ok() && audited->size() == 1u) << audited.message();
  EXPECT_EQ(audited->front().entities, (std::vector<std::string>{"Claim/c-k1", "Patient/p1"}));

  // The same resources again: no new versions; a changed Patient: version 2, its key follows.
  ASSERT_TRUE(pg.commitIngest(econsultLike("k2", "female")).ok());
  EXPECT_EQ((*pg.readResource("Patient", "p1"))->version, 1);
  EXPECT_EQ((*pg.readResource("Task", "Task-1"))->version, 1);
  ASSERT_TRUE(pg.commitIngest(econsultLike("k3", "male")).ok());
  EXPECT_EQ((*pg.readResource("Patient", "p1"))->version, 2);
  EXPECT_EQ(pg.patientsWithDemographics({"Rivera", "Ana", "1980-02-03", "male"})->size(), 1u);
  EXPECT_TRUE(pg.patientsWithDemographics({"Rivera", "Ana", "1980-02-03", "female"})->empty());
  EXPECT_EQ(*pg.lastNumber("payer:a"), 6);

  // A refused slot undoes the whole event, also what the pipeline sent after it.
  IngestCommit taken = econsultLike("k4", "female");
  taken.unique_slots = {{"acm|c-k1", "someone else"}};
  auto refused = pg.commitIngest(taken);
  ASSERT_TRUE(refused.ok()) << refused.message();
  EXPECT_EQ(refused->slot_owner, "k1");
  EXPECT_EQ((*pg.readResource("Patient", "p1"))->version, 2);
  EXPECT_FALSE(pg.readResource("Claim", "c-k4")->has_value());
  EXPECT_EQ(*pg.lastNumber("payer:a"), 6);
  EXPECT_FALSE(pg.findAnswer("k4")->has_value());
}

TEST_F(PgStoreTest, ASubscriptionChangedThroughOneHandleReachesTheOtherHandlesRegistry) {
  auto a = openPostgresStore(options());
  auto b = openPostgresStore(options());
  ASSERT_TRUE(a.ok() && b.ok());
  auto topics = TopicCatalog::load(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package");
  ASSERT_TRUE(topics.ok()) << topics.message();
  SubscriptionRegistry registry;  // handle b's gateway
  cli::SubscriptionSync sync(**b, **topics, registry);
  ASSERT_TRUE(sync.poll().ok());
  EXPECT_TRUE(registry.all().empty());

  // Created through a.
  ASSERT_TRUE((*a)->putSubscription({"s1", "requested", "", subscriptionResource("http://127.0.0.1:9/one"), "hie"}).ok());
  EXPECT_EQ(*sync.poll(), 1);
  auto seen = registry.get("s1");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->status, "requested");
  EXPECT_EQ(seen->endpoint, "http://127.0.0.1:9/one");
  EXPECT_EQ(seen->owner, "hie");
  EXPECT_EQ(*sync.poll(), 0);  // nothing new

  // b's delivery set a status it has not committed yet: a pass does not undo it.
  registry.setStatus("s1", "active", "");
  EXPECT_EQ(*sync.poll(), 0);
  EXPECT_EQ(registry.get("s1")->status, "active");

  // Changed through a (a new endpoint; the status a's delivery wrote).
  ASSERT_TRUE((*a)->putSubscription({"s1", "error", "handshake failed", subscriptionResource("http://127.0.0.1:9/two")}).ok());
  EXPECT_EQ(*sync.poll(), 1);
  EXPECT_EQ(registry.get("s1")->status, "error");
  EXPECT_EQ(registry.get("s1")->error, "handshake failed");
  EXPECT_EQ(registry.get("s1")->endpoint, "http://127.0.0.1:9/two");
  EXPECT_EQ(registry.get("s1")->owner, "hie");  // kept by the store

  // Deleted through a.
  ASSERT_TRUE((*a)->deleteSubscription("s1", {}).ok());
  EXPECT_EQ(*sync.poll(), 1);
  EXPECT_FALSE(registry.get("s1").has_value());

  // The thread does the same without being asked.
  std::atomic<int> changes{0};
  sync.start(std::chrono::milliseconds(20), [&] { changes++; });
  ASSERT_TRUE((*a)->putSubscription({"s2", "requested", "", subscriptionResource("http://127.0.0.1:9/three")}).ok());
  for (int i = 0; i < 250 && !registry.get("s2").has_value(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  sync.stop();
  EXPECT_TRUE(registry.get("s2").has_value());
  EXPECT_GE(changes.load(), 1);
}

TEST_F(PgStoreTest, AWriterWhoseOwnerLockAnEarlierSessionStillHoldsTakesItOverInsteadOfHanging) {
  auto store = openPostgresStore(options());
  ASSERT_TRUE(store.ok()) << store.message();
  auto file = (*store)->beginStagedFile("claims");
  ASSERT_TRUE(file.ok());
  PGconn* stale = session();
  const std::string key = sql(stale, "SELECT owner FROM staged_files WHERE id = " + std::to_string(*file));
  ASSERT_FALSE(key.empty());
  // The network breaks: the writer's session goes (here: ended), and a session the server has
  // not noticed to be gone still holds the lock (here: the test's own, as the same role).
  PGconn* admin = session();
  EXPECT_EQ(sql(admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND objid = (" +
                           key + "::bigint & 4294967295)::oid AND classid = ((" + key + "::bigint >> 32) & 4294967295)::oid"),
            "1");
  for (int i = 0; i < 100 && sql(admin, "SELECT pg_try_advisory_lock(" + key + "::bigint)") != "t"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // until the ended session has let go
  }
  EXPECT_EQ(sql(admin, "SELECT pg_advisory_unlock(" + key + "::bigint)"), "t");
  EXPECT_EQ(sql(stale, "SELECT pg_try_advisory_lock(" + key + "::bigint)"), "t");

  // The next write reconnects, finds the lock held, ends the stale session and goes on.
  const auto started = std::chrono::steady_clock::now();
  IngestCommit commit;
  commit.channel = "pg";
  commit.idempotency_key = "after-the-break";
  commit.outbox.push_back({"feed:hie", "bundle", "b"});
  auto outcome = (*store)->commitIngest(commit);
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(sql(stale, "SELECT 1", false), "error");  // ended
  EXPECT_EQ(sql(admin, "SELECT pg_try_advisory_lock(" + key + "::bigint)"), "f");  // the writer holds it again
  PQfinish(stale);
  PQfinish(admin);
}

}  // namespace
}  // namespace fhir::gateway

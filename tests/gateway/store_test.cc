// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "gateway/store/merge_trace.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

IngestCommit commitFor(const std::string& key, const std::string& patient_json) {
  IngestCommit commit;
  commit.channel = "econsult";
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.answer = "answer-" + key;
  commit.resources.push_back({"Patient", "p1", patient_json});
  commit.outbox.push_back({"feed:hie", "bundle", "body-" + key});
  return commit;
}

TEST(SqliteStoreTest, CommitIsIdempotentAndVersionsOnlyChangedResources) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  auto first = (*store)->commitIngest(commitFor("k1", R"({"resourceType":"Patient","id":"p1"})"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->duplicate);
  auto again = (*store)->commitIngest(commitFor("k1", R"({"resourceType":"Patient","id":"p1","gender":"male"})"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->answer, "answer-k1");
  auto read = (*store)->readResource("Patient", "p1");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->version, 1);
  EXPECT_EQ((*read)->json.find("male"), std::string::npos);

  // Same content from another event: no new version. Changed content: version 2.
  ASSERT_TRUE((*store)->commitIngest(commitFor("k2", R"({"resourceType":"Patient","id":"p1"})")).ok());
  EXPECT_EQ((*(*store)->readResource("Patient", "p1"))->version, 1);
  ASSERT_TRUE((*store)->commitIngest(commitFor("k3", R"({"resourceType":"Patient","id":"p1","gender":"male"})")).ok());
  auto changed = (*store)->readResource("Patient", "p1");
  EXPECT_EQ((*changed)->version, 2);
  EXPECT_NE((*changed)->json.find("\"versionId\":\"2\""), std::string::npos);
  EXPECT_NE((*changed)->json.find("\"lastUpdated\""), std::string::npos);

  auto answer = (*store)->findAnswer("k2");
  ASSERT_TRUE(answer.ok() && answer->has_value());
  EXPECT_EQ((*answer)->answer, "answer-k2");
  EXPECT_FALSE((*(*store)->findAnswer("nope")).has_value());
}

TEST(SqliteStoreTest, OutboxNumbersAreGapFreePerDestinationUnderConcurrentCommits) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto done = (*store)->commitIngest(commitFor("k" + std::to_string(t) + "-" + std::to_string(i),
                                                     R"({"resourceType":"Patient","id":"p1"})"));
        EXPECT_TRUE(done.ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // Deliver everything in order and check the numbers are exactly 1..200.
  for (int64_t expected = 1; expected <= 200; ++expected) {
    auto item = (*store)->nextDue("feed:hie", INT64_MAX);
    ASSERT_TRUE(item.ok() && item->has_value());
    EXPECT_EQ((*item)->number, expected);
    ASSERT_TRUE((*store)->recordDelivered({(*item)->id, 1, 200, "", 1}).ok());
  }
  EXPECT_FALSE((*(*store)->nextDue("feed:hie", INT64_MAX)).has_value());
}

TEST(SqliteStoreTest, FailedRowsWaitForTheirRetryAndDeadLettersAreCounted) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->commitIngest(commitFor("k1", "{}")).ok());
  ASSERT_TRUE((*store)->commitIngest(commitFor("k2", "{}")).ok());
  auto item = *(*store)->nextDue("feed:hie", INT64_MAX);
  ASSERT_TRUE(item.has_value());
  ASSERT_TRUE((*store)->recordFailed({item->id, 1000, 503, "HTTP 503", 3}, 5000, false).ok());
  EXPECT_FALSE((*(*store)->nextDue("feed:hie", 4999)).has_value());  // not yet due, and order holds
  auto retry = *(*store)->nextDue("feed:hie", 5000);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->number, 1);
  EXPECT_EQ(retry->attempts, 1);
  EXPECT_EQ(retry->first_attempt_ms, 1000);
  ASSERT_TRUE((*store)->recordFailed({retry->id, 6000, 0, "refused", 1}, 9000, true).ok());
  auto next = *(*store)->nextDue("feed:hie", INT64_MAX);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->number, 2);  // the dead letter no longer blocks the destination
  auto depth = *(*store)->outboxDepth();
  ASSERT_EQ(depth.size(), 1u);
  EXPECT_EQ(depth[0].pending, 1);
  EXPECT_EQ(depth[0].dead, 1);
  auto attempts = *(*store)->attemptsOf(item->id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 503);
  EXPECT_EQ(attempts[1].error, "refused");
}

TEST(SqliteStoreTest, QuarantineKeepsPayloadAndOutcome) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  auto id = (*store)->quarantine({"econsult", "application/json", "{bad", false, R"({"resourceType":"OperationOutcome"})"});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->rfind("q-", 0), 0u);
  auto list = *(*store)->listQuarantine(10);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, *id);
  EXPECT_EQ(list[0].payload, "{bad");
  EXPECT_EQ(list[0].channel, "econsult");
}

// Issue 14: the same payload on the same channel is kept once with a count; the listing pages
// newest first with a cursor, filters by channel, status and arrival, and carries no payloads.
TEST(SqliteStoreTest, QuarantineKeepsARepeatedPayloadOnceAndPagesWithFilters) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  const std::string outcome = R"({"resourceType":"OperationOutcome"})";
  auto first = (*store)->quarantine({"econsult", "application/json", "{bad", false, outcome});
  auto again = (*store)->quarantine({"econsult", "application/json", "{bad", false, outcome});
  auto elsewhere = (*store)->quarantine({"care-management", "application/json", "{bad", false, outcome});
  ASSERT_TRUE(first.ok() && again.ok() && elsewhere.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_NE(*elsewhere, *first);
  auto entry = *(*store)->readQuarantine(*first);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->count, 2);
  EXPECT_EQ(entry->payload, "{bad");
  EXPECT_EQ(entry->payload_bytes, 4);
  EXPECT_EQ(entry->payload_sha256, "17eed55d881c0dd5fe0935a98d89dd9e52d62aed941f3fb7d17bd490e5aa3e8f");  // sha256sum
  for (int index = 0; index < 5; ++index) {
    ASSERT_TRUE((*store)->quarantine({"econsult", "application/json", "{bad " + std::to_string(index), false, outcome}).ok());
  }
  // A truncated payload keeps the digest it was given (of the whole payload).
  auto truncated = (*store)->quarantine({"econsult", "text/csv", "abc", true, outcome, false, "", "", "feedbeef"});
  ASSERT_TRUE(truncated.ok());
  EXPECT_EQ((*(*store)->readQuarantine(*truncated))->payload_sha256, "feedbeef");

  QuarantineQuery query;
  query.count = 3;
  query.channel = "econsult";
  std::vector<std::string> seen;
  for (int page_index = 0; page_index < 10; ++page_index) {
    auto page = (*store)->listQuarantinePage(query);
    ASSERT_TRUE(page.ok()) << page.message();
    for (const QuarantineEntry& listed : page->entries) {
      seen.push_back(listed.id);
      EXPECT_EQ(listed.channel, "econsult");
      EXPECT_TRUE(listed.payload.empty());
      EXPECT_GT(listed.payload_bytes, 0);
    }
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }
  ASSERT_EQ(seen.size(), 7u);  // {bad (twice, once kept), five others, the truncated one
  EXPECT_EQ(seen.front(), *truncated);
  EXPECT_EQ(seen.back(), *first);
  QuarantineQuery accepted;
  accepted.status = "accepted";
  EXPECT_TRUE((*(*store)->listQuarantinePage(accepted)).entries.empty());
  ASSERT_TRUE((*store)->recordReplay(*first, 202, "{}", true).ok());
  EXPECT_EQ((*(*store)->listQuarantinePage(accepted)).entries.size(), 1u);
  QuarantineQuery later;
  later.since = "2999-01-01T00:00:00Z";
  EXPECT_TRUE((*(*store)->listQuarantinePage(later)).entries.empty());
  later.since = "2000-01-01T00:00:00Z";
  EXPECT_EQ((*(*store)->listQuarantinePage(later)).entries.size(), 8u);
  // Once its entry was accepted, the same payload is kept anew.
  auto after_accept = (*store)->quarantine({"econsult", "application/json", "{bad", false, outcome});
  ASSERT_TRUE(after_accept.ok());
  EXPECT_NE(*after_accept, *first);
}

// Staged payer files (issue 14): records wait in staging, in order, until the file is dropped;
// nothing staged is a resource; a restart drops what a previous process left staged.
TEST(SqliteStoreTest, StagedFilesKeepTheirRecordsInOrderUntilDroppedAndRestartsDropThem) {
  testing::TempDir dir;
  {
    auto store = openSqliteStore(dir.path().string());
    ASSERT_TRUE(store.ok()) << store.message();
    auto file = (*store)->beginStagedFile("claims:p");
    auto other = (*store)->beginStagedFile("claims:p");
    ASSERT_TRUE(file.ok() && other.ok());
    EXPECT_NE(*file, *other);
    std::vector<StagedRecord> first;
    for (int64_t seq = 1; seq <= 5; ++seq) first.push_back({seq, "C" + std::to_string(seq), "{\"n\":" + std::to_string(seq) + "}"});
    ASSERT_TRUE((*store)->stageRecords(*file, first).ok());
    ASSERT_TRUE((*store)->stageRecords(*file, {{6, "C6", "{}"}}).ok());
    ASSERT_TRUE((*store)->stageRecords(*other, {{1, "X1", "{}"}}).ok());
    auto page = (*store)->stagedRecords(*file, 2, 3);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->size(), 3u);
    EXPECT_EQ((*page)[0].seq, 3);
    EXPECT_EQ((*page)[0].record_id, "C3");
    EXPECT_EQ((*page)[0].bundle_json, "{\"n\":3}");
    EXPECT_EQ((*page)[2].seq, 5);
    EXPECT_EQ((*(*store)->stagedRecords(*file, 5, 10)).size(), 1u);
    EXPECT_EQ(*(*store)->stagedCounts(), (std::pair<int64_t, int64_t>{2, 7}));
    ASSERT_TRUE((*store)->dropStagedFile(*file).ok());
    EXPECT_TRUE((*(*store)->stagedRecords(*file, 0, 10)).empty());
    EXPECT_EQ(*(*store)->stagedCounts(), (std::pair<int64_t, int64_t>{1, 1}));
    EXPECT_FALSE((*(*store)->readResource("Claim", "C1")).has_value());
  }
  auto reopened = openSqliteStore(dir.path().string());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(*(*reopened)->stagedCounts(), (std::pair<int64_t, int64_t>{0, 0}));
}

// The first column of the first row `sql` selects in the database, as text ("" when none).
std::string selectText(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  std::string text;
  if (sqlite3_open_v2(db_path.string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
      const auto* data = static_cast<const char*>(sqlite3_column_blob(statement, 0));
      text.assign(data == nullptr ? "" : data, static_cast<size_t>(sqlite3_column_bytes(statement, 0)));
    }
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  return text;
}

TEST(SqliteStoreTest, KeepsEachTextOnceAndReadsItBack) {
  testing::TempDir dir;
  {
    auto store = openSqliteStore(dir.path().string());
    ASSERT_TRUE(store.ok()) << store.message();
    IngestCommit commit = commitFor("k1", R"({"resourceType":"Patient","id":"p1"})");
    commit.answer = commit.payload = R"({"resourceType":"Bundle","type":"collection"})";
    for (const char* destination : {"subscription:a", "subscription:b", "subscription:c"}) {
      commit.outbox.push_back({destination, "notification", "the same record"});
    }
    ASSERT_TRUE((*store)->commitIngest(commit).ok());
    auto answer = (*store)->findAnswer("k1");
    ASSERT_TRUE(answer.ok() && answer->has_value());
    EXPECT_EQ((*answer)->answer, R"({"resourceType":"Bundle","type":"collection"})");
    auto duplicate = (*store)->commitIngest(commitFor("k1", R"({"resourceType":"Patient","id":"p1"})"));
    ASSERT_TRUE(duplicate.ok() && duplicate->duplicate);
    EXPECT_EQ(duplicate->answer, R"({"resourceType":"Bundle","type":"collection"})");
    auto patient = (*store)->readResource("Patient", "p1");
    ASSERT_TRUE(patient.ok() && patient->has_value());
    EXPECT_NE((*patient)->json.find("\"versionId\":\"1\""), std::string::npos);
    for (const char* destination : {"subscription:a", "subscription:b", "subscription:c"}) {
      auto head = (*store)->pendingHead(destination, 10);
      ASSERT_TRUE(head.ok() && head->size() == 1) << destination;
      EXPECT_EQ(head->front().body, "the same record");
    }
    auto feed = (*store)->pendingHead("feed:hie", 10);
    ASSERT_TRUE(feed.ok() && feed->size() == 1);
    EXPECT_EQ(feed->front().body, "body-k1");
    // A delivered-mark leaves the body readable (outboxRange reads delivered rows too).
    ASSERT_TRUE((*store)->recordDelivered(DeliveryAttempt{feed->front().id, 1, 200, "", 1}).ok());
    auto range = (*store)->outboxRange("feed:hie", 1, 1);
    ASSERT_TRUE(range.ok() && range->size() == 1);
    EXPECT_EQ(range->front().body, "body-k1");
  }
  const auto db = dir.path() / "gateway.db";
  // The answer is not stored beside its identical payload, the resource JSON only in its history,
  // and the three notifications share one body.
  EXPECT_EQ(selectText(db, "SELECT length(answer) || '/' || answer_is_payload FROM events"), "0/1");
  EXPECT_EQ(selectText(db, "SELECT length(json) FROM resources"), "0");
  EXPECT_EQ(selectText(db, "SELECT count(*) FROM outbox_bodies"), "2");
}

// A store written by the schema before outbox_bodies, answer_is_payload and history-only resource
// JSON: opened by the current code, its rows read as before and new rows go the new way.
TEST(SqliteStoreTest, MigratesAStoreWrittenByTheEarlierSchema) {
  testing::TempDir dir;
  const auto db_path = dir.path() / "gateway.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path.string().c_str(), &db), SQLITE_OK);
    const char* old_schema = R"sql(
      CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
        idem_key TEXT NOT NULL UNIQUE, received_at TEXT NOT NULL, payload BLOB NOT NULL,
        status INTEGER NOT NULL, answer BLOB NOT NULL);
      CREATE TABLE resources (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        updated_at TEXT NOT NULL, content_hash TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;
      CREATE TABLE resource_history (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        updated_at TEXT NOT NULL, event_seq INTEGER NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id, version)) WITHOUT ROWID;
      CREATE TABLE destination_seq (destination TEXT PRIMARY KEY, last_number INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL,
        number INTEGER NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL, event_seq INTEGER NOT NULL,
        status INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
        first_attempt_ms INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
        delivered_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', UNIQUE (destination, number));
      CREATE TABLE quarantine (id TEXT PRIMARY KEY, channel TEXT NOT NULL, received_at TEXT NOT NULL,
        content_type TEXT NOT NULL, payload BLOB NOT NULL, truncated INTEGER NOT NULL, outcome TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'quarantined');
      INSERT INTO events VALUES (1, 'econsult', 'old', '2026-01-01T00:00:00Z', 'old payload', 202, 'old answer');
      INSERT INTO resources VALUES ('Patient', 'p1', 1, '2026-01-01T00:00:00Z', 'x',
        '{"resourceType":"Patient","id":"p1","gender":"female"}');
      INSERT INTO resource_history VALUES ('Patient', 'p1', 1, '2026-01-01T00:00:00Z', 1,
        '{"resourceType":"Patient","id":"p1","gender":"female"}');
      INSERT INTO destination_seq VALUES ('feed:hie', 1);
      INSERT INTO outbox (destination, number, kind, body, event_seq, created_ms, next_attempt_ms)
        VALUES ('feed:hie', 1, 'bundle', 'old body', 1, 1, 1);
      INSERT INTO quarantine (id, channel, received_at, content_type, payload, truncated, outcome)
        VALUES ('q-old', 'claims:x12', '2026-01-01T00:00:00Z', 'application/edi-x12', 'CLM*1~', 0, '{}');)sql";
    ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  auto answer = (*store)->findAnswer("old");
  ASSERT_TRUE(answer.ok() && answer->has_value());
  EXPECT_EQ((*answer)->answer, "old answer");
  auto patient = (*store)->readResource("Patient", "p1");
  ASSERT_TRUE(patient.ok() && patient->has_value());
  EXPECT_NE((*patient)->json.find("female"), std::string::npos);

  auto next = (*store)->commitIngest(commitFor("new", R"({"resourceType":"Patient","id":"p1","gender":"male"})"));
  ASSERT_TRUE(next.ok()) << next.message();
  auto head = (*store)->pendingHead("feed:hie", 10);
  ASSERT_TRUE(head.ok() && head->size() == 2);
  EXPECT_EQ(head->at(0).body, "old body");
  EXPECT_EQ(head->at(1).number, 2);
  EXPECT_EQ(head->at(1).body, "body-new");
  auto changed = (*store)->readResource("Patient", "p1");
  ASSERT_TRUE(changed.ok() && changed->has_value());
  EXPECT_EQ((*changed)->version, 2);
  EXPECT_NE((*changed)->json.find("male"), std::string::npos);
  EXPECT_EQ((*changed)->json.find("female"), std::string::npos);

  // A quarantine row from before the replay columns reads without prefix or suffix; new rows
  // keep both.
  auto old_entry = (*store)->readQuarantine("q-old");
  ASSERT_TRUE(old_entry.ok() && old_entry->has_value()) << old_entry.message();
  EXPECT_EQ((*old_entry)->payload, "CLM*1~");
  EXPECT_TRUE((*old_entry)->replay_prefix.empty());
  EXPECT_TRUE((*old_entry)->replay_suffix.empty());
  auto kept = (*store)->quarantine(QuarantineWrite{"claims:x12", "application/edi-x12", "CLM*2~", false, "{}", true,
                                                   "ISA*...~ST*837*0001~", "SE*3*0001~GE*1*1~IEA*1*000000001~"});
  ASSERT_TRUE(kept.ok()) << kept.message();
  auto new_entry = (*store)->readQuarantine(*kept);
  ASSERT_TRUE(new_entry.ok() && new_entry->has_value());
  EXPECT_EQ((*new_entry)->replay_prefix, "ISA*...~ST*837*0001~");
  EXPECT_EQ((*new_entry)->replay_suffix, "SE*3*0001~GE*1*1~IEA*1*000000001~");
}


// Issue 12 (merge_trace.h): a checked commit carrying the preview's calls is not merged again in
// the writer's transaction when every recorded read still returns the same; the recorded writes
// are made and the checked resources stored. When a read returns something else, what the replay
// wrote is undone and the MergeHook runs as before: a merge that changed is refused, one that
// did not is stored.
TEST(SqliteStoreTest, ACheckedMergeWhoseReadsStillHoldIsReplayedInsteadOfMergedAgain) {
  testing::TempDir dir;
  auto opened = openSqliteStore(dir.path().string());
  ASSERT_TRUE(opened.ok()) << opened.message();
  Store& store = **opened;
  int hook_runs = 0;
  // A stand-in for the merge: keeps the contributions, writes the Patient with its contributors.
  store.setMergeHook([&](MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                         std::vector<CoverageFact>& coverage) -> Status {
    ++hook_runs;
    for (const merge::Contribution& c : commit.contributions) {
      Status put = tx.putContribution(c);
      if (!put.ok()) return put;
    }
    auto all = tx.contributions("Patient", "p1");
    if (!all.ok()) return Error{all.message()};
    std::string family;
    for (const merge::Contribution& c : *all) family += c.contributor;
    merged.push_back(ResourceWrite{"Patient", "p1", R"({"resourceType":"Patient","id":"p1","name":[{"family":")" +
                                                        family + "\"}]}"});
    coverage.push_back(CoverageFact{"cov-" + family, "p1", "payer", "m-" + family, "medicaid", "2026-01-01", "2026-12-31", "payer", 0});
    return Status::Ok();
  });
  auto contribution = [](const std::string& contributor) {
    merge::Contribution c;
    c.type = "Patient";
    c.id = "p1";
    c.contributor = contributor;
    c.kind = "ehr";
    c.patient_id = "p1";
    c.json = R"({"resourceType":"Patient","id":"p1"})";
    return c;
  };
  auto patientOf = [](const std::string& family) {
    return ResourceWrite{"Patient", "p1", R"({"resourceType":"Patient","id":"p1","name":[{"family":")" + family + "\"}]}"};
  };
  auto contributors = [&] {
    std::vector<std::string> out;
    Status read = store.readMerge([&](MergeTx& tx) -> Status {
      auto rows = tx.contributions("Patient", "p1");
      if (!rows.ok()) return Error{rows.message()};
      for (const merge::Contribution& c : *rows) out.push_back(c.contributor);
      return Status::Ok();
    });
    EXPECT_TRUE(read.ok()) << read.message();
    return out;
  };
  auto family = [&] {
    auto stored = store.readResource("Patient", "p1");
    EXPECT_TRUE(stored.ok() && stored->has_value());
    return stored.ok() && stored->has_value() ? (*stored)->json : std::string();
  };
  // What a preview of contributor `who` over a store holding `before` records: the write, then
  // the read of every contributor.
  auto checked = [&](const std::string& key, const std::string& who, std::vector<std::string> before) {
    IngestCommit commit;
    commit.channel = "test";
    commit.idempotency_key = key;
    commit.payload = "{}";
    commit.answer = "ok";
    commit.contributions.push_back(contribution(who));
    auto trace = std::make_shared<MergeTrace>();
    MergeTrace::Step put;
    put.op = MergeTrace::Op::kPutContribution;
    put.contribution = contribution(who);
    trace->steps.push_back(put);
    MergeTrace::Step read;
    read.op = MergeTrace::Op::kContributions;
    read.a = "Patient";
    read.b = "p1";
    before.push_back(who);
    std::sort(before.begin(), before.end());
    std::string joined;
    for (const std::string& c : before) {
      read.contributions.push_back(contribution(c));
      joined += c;
    }
    trace->steps.push_back(read);
    trace->coverage.push_back(CoverageFact{"cov-" + joined, "p1", "payer", "m-" + joined, "medicaid", "2026-01-01", "2026-12-31", "payer", 0});
    commit.merge_checked = true;
    commit.merge_expected = {patientOf(joined)};
    commit.merge_trace = trace;
    return commit;
  };

  IngestCommit first = checked("e1", "a", {});
  first.merge_trace = nullptr;  // no trace: merged in the transaction as before
  auto outcome = store.commitIngest(first);
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_FALSE(outcome->merge_changed);
  EXPECT_EQ(hook_runs, 1);

  // Every read holds: stored as checked, the contribution kept, the coverage fact indexed, and
  // the hook not run.
  outcome = store.commitIngest(checked("e2", "b", {"a"}));
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_FALSE(outcome->merge_changed);
  EXPECT_EQ(hook_runs, 1);
  EXPECT_NE(family().find(R"("family":"ab")"), std::string::npos) << family();
  EXPECT_EQ(contributors(), (std::vector<std::string>{"a", "b"}));
  auto coverage = store.coverageOf("p1");
  ASSERT_TRUE(coverage.ok()) << coverage.message();
  bool indexed = false;
  for (const CoverageFact& fact : *coverage) indexed = indexed || fact.coverage_id == "cov-ab";
  EXPECT_TRUE(indexed);

  // Previewed before "c" came: the read differs, the replay's write is undone, the hook merges
  // "abcd" where "abd" was checked: refused, nothing of it kept.
  IngestCommit stale = checked("e4", "d", {"a", "b"});
  ASSERT_TRUE(store.commitIngest(checked("e3", "c", {"a", "b"})).ok());
  EXPECT_EQ(hook_runs, 1);
  outcome = store.commitIngest(stale);
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_TRUE(outcome->merge_changed);
  EXPECT_EQ(hook_runs, 2);
  EXPECT_EQ(contributors(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_NE(family().find(R"("family":"abc")"), std::string::npos) << family();

  // A read that differs but a merge that does not: a trace that recorded another read (here a
  // survivor the store does not have) sends the commit to the hook, whose merge is the checked one.
  IngestCommit same = checked("e5", "d", {"a", "b", "c"});
  auto odd = std::make_shared<MergeTrace>(*same.merge_trace);
  MergeTrace::Step survivor;
  survivor.op = MergeTrace::Op::kSurvivorOf;
  survivor.a = "p1";
  survivor.text = "p0";
  odd->steps.insert(odd->steps.begin(), survivor);
  same.merge_trace = odd;
  outcome = store.commitIngest(same);
  ASSERT_TRUE(outcome.ok()) << outcome.message();
  EXPECT_FALSE(outcome->merge_changed);
  EXPECT_EQ(hook_runs, 3);
  EXPECT_NE(family().find(R"("family":"abcd")"), std::string::npos) << family();
  EXPECT_EQ(contributors(), (std::vector<std::string>{"a", "b", "c", "d"}));
}

}  // namespace
}  // namespace fhir::gateway

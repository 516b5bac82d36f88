// SPDX-License-Identifier: Apache-2.0
// PgStore: the Store contract on PostgreSQL (issue 17). Like SqliteStore, writes go through one
// writer thread per handle that groups the jobs queued meanwhile into one transaction (one WAL
// flush for many events), each job in a savepoint; reads use a small pool of connections.
// Several handles (gateway processes) share the database: what SQLite's file lock serialises
// here rests on row locks and constraints (pg_writes.cc), and a group that deadlocks with another
// handle's or meets a serialization failure is rolled back and run again.
#include "gateway/store/pg_store.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "conformance/json/json.h"
#include "gateway/store/pg_internal.h"
#include "gateway/store/pg_search.h"
#include "conformance/common/time_util.h"

namespace fhir::gateway {
namespace {

using pg::Connection;
using pg::Query;
using pg::Rows;

std::string quarantineId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "q-%011llx-%08llx", static_cast<unsigned long long>(nowMs()),
                static_cast<unsigned long long>(random() & 0xffffffffULL));
  return buffer;
}

using pg::withMeta;

#define PG_OUTBOX_COLUMNS                                                                              \
  "o.id, o.destination, o.number, o.kind, b.body, o.attempts, o.created_ms, o.first_attempt_ms, "      \
  "o.next_attempt_ms, o.last_error FROM outbox o JOIN outbox_bodies b ON b.id = o.body_id"
#define PG_QUARANTINE_COLUMNS                                                                          \
  "id, channel, received_at, content_type, payload, truncated, outcome, record, replay_prefix, status, " \
  "replays, replayed_at, replay_status, replay_answer, replay_suffix, count, last_received_at, payload_sha256, " \
  "octet_length(payload)"

OutboxItem outboxItem(const Rows& rows, int row) {
  return OutboxItem{rows.integer(row, 0), rows.text(row, 1), rows.integer(row, 2), rows.text(row, 3),
                    rows.text(row, 4),    static_cast<int>(rows.integer(row, 5)), rows.integer(row, 6),
                    rows.integer(row, 7), rows.integer(row, 8), rows.text(row, 9)};
}

QuarantineEntry quarantineItem(const Rows& rows, int row) {
  QuarantineEntry entry;
  entry.id = rows.text(row, 0);
  entry.channel = rows.text(row, 1);
  entry.received_at = rows.text(row, 2);
  entry.content_type = rows.text(row, 3);
  entry.payload = rows.text(row, 4);
  entry.truncated = rows.integer(row, 5) != 0;
  entry.outcome_json = rows.text(row, 6);
  entry.record = rows.integer(row, 7) != 0;
  entry.replay_prefix = rows.text(row, 8);
  entry.status = rows.text(row, 9);
  entry.replays = rows.integer(row, 10);
  entry.replayed_at = rows.text(row, 11);
  entry.replay_status = static_cast<int>(rows.integer(row, 12));
  entry.replay_answer = rows.text(row, 13);
  entry.replay_suffix = rows.text(row, 14);
  entry.count = rows.integer(row, 15);
  entry.last_received_at = rows.text(row, 16);
  entry.payload_sha256 = rows.text(row, 17);
  entry.payload_bytes = rows.integer(row, 18);
  return entry;
}

UnroutableWrite unroutableItem(const Rows& rows, int row) {
  return {rows.text(row, 0), rows.text(row, 1), rows.text(row, 2), rows.text(row, 3), rows.text(row, 4), rows.text(row, 5)};
}

class PgStore final : public Store {
 public:
  explicit PgStore(PostgresStoreOptions options) : options_(std::move(options)) {
    connect_ = pg::connectOptionsOf(options_, "fhir-gateway");
    std::random_device device;
    owner_key_ = (static_cast<int64_t>(device()) << 31) ^ static_cast<int64_t>(device());
    if (owner_key_ == 0) owner_key_ = 1;
  }
  ~PgStore() override {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    // Released now rather than when the server notices the closed session: the next start-up
    // may then drop this handle's staged files at once.
    if (writer_connection_ && !writer_connection_->broken()) (void)writer_connection_->exec("SELECT pg_advisory_unlock_all()");
  }

  Status start() {
    writer_connection_ = std::make_unique<Connection>(connect_);
    Status status = writer_connection_->open();
    if (!status.ok()) return status;
    status = pg::migrate(*writer_connection_);
    if (!status.ok()) return status;
    status = pg::indexUnindexedResources(*writer_connection_);  // search (issue 15): stores made before it
    if (!status.ok()) return status;
    status = holdOwnerLock(*writer_connection_);
    if (!status.ok()) return status;
    // Staged files are never answered: those of handles that are gone (their advisory lock is
    // free) are dropped; a live handle's files stay (it may be streaming one now).
    status = Query(*writer_connection_,
                   "WITH gone AS (DELETE FROM staged_files WHERE owner <> $1 AND pg_try_advisory_xact_lock(owner) "
                   "RETURNING id) DELETE FROM staged_records WHERE file IN (SELECT id FROM gone)")
                 .integer(owner_key_).done();
    if (!status.ok()) return status;
    writer_ = std::thread([this] { writerLoop(); });
    pthread_setname_np(writer_.native_handle(), "pg-writer");
    return Status::Ok();
  }

  Result<std::string> probe() override {
    return withReader([](Connection& db) -> Result<std::string> {
      auto rows = Query(db, "SELECT 1").run();
      if (!rows.ok()) return rows.error();
      return std::string("postgresql");
    });
  }

  // Events ------------------------------------------------------------------------------------
  Result<std::optional<StoredAnswer>> findAnswer(std::string_view key) override {
    return withReader([&](Connection& db) -> Result<std::optional<StoredAnswer>> {
      auto rows = Query(db, "SELECT status, CASE WHEN answer_is_payload THEN payload ELSE answer END FROM events "
                            "WHERE idem_key = $1")
                      .bytes(key).run();
      if (!rows.ok()) return rows.error();
      if (rows->empty()) return std::optional<StoredAnswer>();
      return std::optional<StoredAnswer>(StoredAnswer{static_cast<int>(rows->integer(0, 0)), rows->text(0, 1)});
    });
  }

  Result<CommitOutcome> commitIngest(IngestCommit commit) override {
    CommitOutcome outcome;
    Status status = runInWriter([&](Connection& db, pg::Tx& tx) {
      return pg::writeIngest(db, tx, commit, merge_hook_, outcome);
    });
    if (!status.ok()) return Error{status.message()};
    return outcome;
  }

  Result<std::vector<CommitOutcome>> commitIngestMany(std::vector<IngestCommit> commits) override {
    std::vector<CommitOutcome> outcomes(commits.size());
    std::vector<std::future<Status>> done;
    done.reserve(commits.size());
    for (size_t i = 0; i < commits.size(); ++i) {
      auto promise = std::make_shared<std::promise<Status>>();
      done.push_back(promise->get_future());
      IngestCommit* commit = &commits[i];
      CommitOutcome* outcome = &outcomes[i];
      auto job = std::make_unique<PendingJob>(PendingJob{
          [this, commit, outcome](Connection& db, pg::Tx& tx) {
            return pg::writeIngest(db, tx, *commit, merge_hook_, *outcome);
          },
          [promise](const Status& status) { promise->set_value(status); }});
      if (!enqueue(std::move(job))) promise->set_value(Status(Error{"store is closing"}));
    }
    std::string failure;
    for (auto& future : done) {
      Status status = future.get();
      if (!status.ok() && failure.empty()) failure = status.message();
    }
    if (!failure.empty()) return Error{failure};
    return outcomes;
  }

  // Quarantine --------------------------------------------------------------------------------
  Result<std::string> quarantine(QuarantineWrite write) override {
    std::string id = quarantineId();
    Status status = runInWriter([&](Connection& db, pg::Tx&) -> Status {
      auto kept = pg::insertQuarantine(db, id, write, nowIso());
      if (!kept.ok()) return kept.error();
      id = *kept;
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return id;
  }

  Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) override {
    return select<QuarantineEntry>("SELECT " PG_QUARANTINE_COLUMNS " FROM quarantine ORDER BY received_at DESC, id DESC LIMIT $1",
                                   [&](Query& q) { q.integer(static_cast<int64_t>(limit)); }, &quarantineItem);
  }

  Result<QuarantinePage> listQuarantinePage(const QuarantineQuery& query) override {
    return withReader([&](Connection& db) { return pg::selectQuarantinePage(db, query); });
  }

  Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) override {
    auto rows = select<QuarantineEntry>("SELECT " PG_QUARANTINE_COLUMNS " FROM quarantine WHERE id = $1",
                                        [&](Query& q) { q.text(id); }, &quarantineItem);
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<QuarantineEntry>();
    return std::optional<QuarantineEntry>(std::move(rows->front()));
  }

  Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) override {
    return select<QuarantineEntry>(
        "SELECT " PG_QUARANTINE_COLUMNS " FROM quarantine WHERE status <> 'accepted' ORDER BY received_at, id LIMIT $1",
        [&](Query& q) { q.integer(static_cast<int64_t>(limit)); }, &quarantineItem);
  }

  Result<bool> recordReplay(std::string_view id, int status, std::string_view answer, bool accepted) override {
    return writeCount([&](Connection& db) {
      return Query(db, "UPDATE quarantine SET replays = replays + 1, replayed_at = $1, replay_status = $2, "
                       "replay_answer = $3, status = CASE WHEN $4::boolean THEN 'accepted' ELSE status END WHERE id = $5")
          .text(nowIso()).integer(status).bytes(answer).integer(accepted ? 1 : 0).text(id).run();
    });
  }

  // Resources and coverage ------------------------------------------------------------------------
  Result<std::optional<StoredResource>> readResource(std::string_view type, std::string_view id) override {
    return withReader([&](Connection& db) -> Result<std::optional<StoredResource>> {
      auto rows = Query(db, "SELECT r.version, r.updated_at, h.json FROM resources r JOIN resource_history h "
                            "ON h.type = r.type AND h.id = r.id AND h.version = r.version WHERE r.type = $1 AND r.id = $2")
                      .text(type).text(id).run();
      if (!rows.ok()) return rows.error();
      if (rows->empty()) return std::optional<StoredResource>();
      const int64_t version = rows->integer(0, 0);
      return std::optional<StoredResource>(StoredResource{withMeta(rows->text(0, 2), version, rows->text(0, 1)), version});
    });
  }

  Result<SearchPage> search(const SearchRequest& request) override {
    return pg::search([this](const std::string& sql, const std::vector<std::string>& values, const std::vector<int>& formats) {
      return withReader([&](Connection& db) { return db.runText(sql, values, formats); });
    }, request);
  }

  Result<std::vector<CoverageFact>> coverageOf(std::string_view patient_id) override {
    return select<CoverageFact>(
        "WITH cluster(p) AS (SELECT $1::text UNION SELECT patient_id FROM patient_survivor WHERE survivor = "
        "(SELECT survivor FROM patient_survivor WHERE patient_id = $1)) "
        "SELECT coverage_id COLLATE \"C\", payer_id, member_id, line_of_business, start_date COLLATE \"C\", end_date, basis, "
        "ord FROM coverage_index WHERE patient_id IN (SELECT p FROM cluster) UNION SELECT coverage_id, payer_id, member_id, "
        "line_of_business, date, date, 'evidence', 0 FROM coverage_evidence WHERE patient_id IN (SELECT p FROM cluster) "
        "ORDER BY 5, 1, 7",
        [&](Query& q) { q.text(patient_id); },
        [&](const Rows& rows, int row) {
          CoverageFact fact;
          fact.coverage_id = rows.text(row, 0);
          fact.patient_id = std::string(patient_id);
          fact.payer_id = rows.text(row, 1);
          fact.member_id = rows.text(row, 2);
          fact.line_of_business = rows.text(row, 3);
          fact.start = rows.text(row, 4);
          fact.end = rows.text(row, 5);
          fact.basis = rows.text(row, 6);
          fact.order = static_cast<int>(rows.integer(row, 7));
          return fact;
        });
  }

  // Outbox ---------------------------------------------------------------------------------------
  Result<std::optional<OutboxItem>> nextDue(std::string_view destination, int64_t now_ms) override {
    auto head = pendingHead(destination, 1);
    if (!head.ok()) return head.error();
    if (head->empty() || head->front().next_attempt_ms > now_ms) return std::optional<OutboxItem>();
    return std::optional<OutboxItem>(std::move(head->front()));
  }

  Status recordDelivered(const DeliveryAttempt& attempt) override {
    return runInWriter([&](Connection& db, pg::Tx&) { return pg::markDelivered(db, attempt); });
  }

  void recordDeliveredAsync(const DeliveryAttempt& attempt, std::function<void(const Status&)> on_commit) override {
    enqueueOrRefuse(std::make_unique<PendingJob>(PendingJob{
        [attempt](Connection& db, pg::Tx&) { return pg::markDelivered(db, attempt); }, std::move(on_commit)}));
  }

  Result<std::vector<OutboxItem>> pendingHead(std::string_view destination, size_t limit) override {
    return select<OutboxItem>("SELECT " PG_OUTBOX_COLUMNS " WHERE o.destination = $1 AND o.status = 0 ORDER BY o.number LIMIT $2",
                              [&](Query& q) { q.text(destination).integer(static_cast<int64_t>(limit)); }, &outboxItem);
  }

  Status recordFailed(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) override {
    return runInWriter([&](Connection& db, pg::Tx&) { return pg::markFailed(db, attempt, next_attempt_ms, dead); });
  }

  Result<std::vector<OutboxItem>> pendingAfter(std::string_view destination, int64_t after, size_t limit) override {
    return select<OutboxItem>(
        "SELECT " PG_OUTBOX_COLUMNS " WHERE o.destination = $1 AND o.status = 0 AND o.number > $2 ORDER BY o.number LIMIT $3",
        [&](Query& q) { q.text(destination).integer(after).integer(static_cast<int64_t>(limit)); }, &outboxItem);
  }

  void recordDeliveredManyAsync(std::vector<DeliveryAttempt> attempts, std::function<void(const Status&)> on_commit) override {
    enqueueOrRefuse(std::make_unique<PendingJob>(PendingJob{
        [attempts = std::move(attempts)](Connection& db, pg::Tx&) -> Status {
          for (const DeliveryAttempt& attempt : attempts) {
            Status status = pg::markDelivered(db, attempt);
            if (!status.ok()) return status;
          }
          return Status::Ok();
        },
        std::move(on_commit)}));
  }

  void recordFailedAsync(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead,
                         std::function<void(const Status&)> on_commit) override {
    enqueueOrRefuse(std::make_unique<PendingJob>(PendingJob{
        [attempt, next_attempt_ms, dead](Connection& db, pg::Tx&) {
          return pg::markFailed(db, attempt, next_attempt_ms, dead);
        },
        std::move(on_commit)}));
  }

  Result<std::vector<DestinationDepth>> outboxDepth() override {
    return select<DestinationDepth>(
        "SELECT destination, count(*) FILTER (WHERE status = 0), count(*) FILTER (WHERE status = 2), "
        "COALESCE(MIN(created_ms) FILTER (WHERE status = 0), 0) FROM outbox GROUP BY destination "
        "ORDER BY destination COLLATE \"C\"",
        [](Query&) {},
        [](const Rows& rows, int row) {
          return DestinationDepth{rows.text(row, 0), rows.integer(row, 1), rows.integer(row, 2), rows.integer(row, 3)};
        });
  }

  Result<std::vector<DeliveryAttempt>> attemptsOf(int64_t outbox_id) override {
    return select<DeliveryAttempt>(
        "SELECT at_ms, http_status, error, duration_ms FROM delivery_attempts WHERE outbox_id = $1 ORDER BY id",
        [&](Query& q) { q.integer(outbox_id); },
        [&](const Rows& rows, int row) {
          return DeliveryAttempt{outbox_id, rows.integer(row, 0), static_cast<int>(rows.integer(row, 1)), rows.text(row, 2),
                                 rows.integer(row, 3)};
        });
  }

  Result<std::vector<OutboxItem>> outboxRange(std::string_view destination, int64_t from, int64_t to) override {
    return select<OutboxItem>(
        "SELECT " PG_OUTBOX_COLUMNS " WHERE o.destination = $1 AND o.number >= $2 AND o.number <= $3 ORDER BY o.number",
        [&](Query& q) { q.text(destination).integer(from).integer(to); }, &outboxItem);
  }

  Result<int64_t> lastNumber(std::string_view destination) override {
    return withReader([&](Connection& db) -> Result<int64_t> {
      auto rows = Query(db, "SELECT last_number FROM destination_seq WHERE destination = $1").text(destination).run();
      if (!rows.ok()) return rows.error();
      return rows->empty() ? int64_t{0} : rows->integer(0, 0);
    });
  }

  Result<std::vector<OutboxItem>> listDeadLetters(size_t limit) override {
    return select<OutboxItem>("SELECT " PG_OUTBOX_COLUMNS " WHERE o.status = 2 ORDER BY o.id LIMIT $1",
                              [&](Query& q) { q.integer(static_cast<int64_t>(limit)); }, &outboxItem);
  }

  Result<bool> replayDeadLetter(int64_t outbox_id) override {
    // Back to pending at its own number: whichever handle holds the destination's lease sends it.
    return writeCount([&](Connection& db) {
      return Query(db, "UPDATE outbox SET status = 0, next_attempt_ms = $1, first_attempt_ms = 0 WHERE id = $2 AND status = 2")
          .integer(nowMs()).integer(outbox_id).run();
    });
  }

  Result<std::vector<UnroutableWrite>> listUnroutable(size_t limit) override {
    return select<UnroutableWrite>(
        "SELECT claim_id, patient_id, date_of_service, code, reason, outcome FROM unroutable WHERE resolved_at = '' "
        "ORDER BY id LIMIT $1",
        [&](Query& q) { q.integer(static_cast<int64_t>(limit)); }, &unroutableItem);
  }

  // Patients ---------------------------------------------------------------------------------------
  Result<std::vector<std::string>> patientsWithMember(std::string_view payer_id, std::string_view member_id) override {
    return select<std::string>(
        "SELECT DISTINCT patient_id COLLATE \"C\" FROM coverage_index WHERE payer_id = $1 AND member_id = $2 ORDER BY 1",
        [&](Query& q) { q.text(payer_id).text(member_id); }, [](const Rows& rows, int row) { return rows.text(row, 0); });
  }

  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    return select<std::string>(
        "SELECT patient_id FROM patient_demographics WHERE family = $1 AND birth_date = $2 AND given = $3 AND gender = $4 "
        "ORDER BY patient_id COLLATE \"C\"",
        [&](Query& q) { q.text(who.family).text(who.birth_date).text(who.given).text(who.gender); },
        [](const Rows& rows, int row) { return rows.text(row, 0); });
  }

  Result<std::vector<UnroutableWrite>> unroutableOf(std::string_view patient_id) override {
    return select<UnroutableWrite>(
        "SELECT claim_id, patient_id, date_of_service, code, reason, outcome FROM unroutable "
        "WHERE patient_id = $1 AND resolved_at = '' ORDER BY id",
        [&](Query& q) { q.text(patient_id); }, &unroutableItem);
  }

  // Leases -----------------------------------------------------------------------------------------
  Result<OutboxLease> claimLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                                 int64_t duration_ms, std::string_view dead_holder) override {
    OutboxLease lease;
    Status status = runInWriter([&](Connection& db, pg::Tx&) -> Status {
      auto claimed = pg::claimLease(db, destination, holder, now_ms, duration_ms, dead_holder);
      if (!claimed.ok()) return claimed.error();
      lease = std::move(*claimed);
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return lease;
  }

  Result<bool> extendLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                           int64_t duration_ms) override {
    // An expired lease nobody took over is still the holder's: nobody sent its rows meanwhile.
    return writeCount([&](Connection& db) {
      return Query(db, "UPDATE outbox_leases SET expires_ms = $1 WHERE destination = $2 AND holder = $3")
          .integer(now_ms + duration_ms).text(destination).text(holder).run();
    });
  }

  Status releaseLease(std::string_view destination, std::string_view holder) override {
    return runInWriter([&](Connection& db, pg::Tx&) {
      return Query(db, "UPDATE outbox_leases SET holder = '', expires_ms = 0 WHERE destination = $1 AND holder = $2")
          .text(destination).text(holder).done();
    });
  }

  Result<std::optional<OutboxLease>> leaseOf(std::string_view destination) override {
    return withReader([&](Connection& db) -> Result<std::optional<OutboxLease>> {
      auto rows = Query(db, "SELECT holder, expires_ms FROM outbox_leases WHERE destination = $1 AND holder <> ''")
                      .text(destination).run();
      if (!rows.ok()) return rows.error();
      if (rows->empty()) return std::optional<OutboxLease>();
      return std::optional<OutboxLease>(OutboxLease{std::string(destination), rows->text(0, 0), rows->integer(0, 1)});
    });
  }

  // Change log -------------------------------------------------------------------------------------
  Result<std::vector<ChangeRecord>> changesAfter(int64_t after_seq, size_t limit) override {
    return withReader([&](Connection& db) -> Result<std::vector<ChangeRecord>> {
      // One snapshot: the change rows and the history rows they name.
      Status begun = db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (!begun.ok()) return Error{begun.message()};
      auto records = pg::changesAfter(db, after_seq, limit);
      Status ended = db.exec(records.ok() ? "COMMIT" : "ROLLBACK");
      if (!records.ok()) return records.error();
      if (!ended.ok()) return Error{ended.message()};
      return records;
    });
  }

  Result<int64_t> changeCursor(std::string_view consumer) override {
    return withReader([&](Connection& db) -> Result<int64_t> {
      auto rows = Query(db, "SELECT last_seq FROM change_cursors WHERE consumer = $1").text(consumer).run();
      if (!rows.ok()) return rows.error();
      return rows->empty() ? int64_t{0} : rows->integer(0, 0);
    });
  }

  Result<bool> commitPlanned(std::string_view consumer, int64_t from_seq, int64_t to_seq,
                             std::vector<PlannedOutbox> outbox) override {
    bool moved = false;
    Status status = runInWriter([&](Connection& db, pg::Tx& tx) -> Status {
      auto cursor = pg::moveChangeCursor(db, consumer, from_seq, to_seq);
      if (!cursor.ok()) return cursor.error();
      moved = *cursor;
      if (!moved) return Status::Ok();
      const int64_t now_ms = nowMs();
      for (const PlannedOutbox& planned : outbox) tx.outbox.push_back(pg::DeferredOutbox{planned.write, planned.event_seq, now_ms});
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return moved;
  }

  // Staged payer files --------------------------------------------------------------------------------
  Result<int64_t> beginStagedFile(std::string_view channel) override {
    int64_t file = 0;
    Status status = runInWriter([&](Connection& db, pg::Tx&) -> Status {
      auto rows = Query(db, "INSERT INTO staged_files (channel, started_at, owner) VALUES ($1, $2, $3) RETURNING id")
                      .text(channel).text(nowIso()).integer(owner_key_).run();
      if (!rows.ok()) return rows.error();
      file = rows->integer(0, 0);
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return file;
  }

  Status stageRecords(int64_t file, std::vector<StagedRecord> records) override {
    return runInWriter([&](Connection& db, pg::Tx&) -> Status {
      for (const StagedRecord& record : records) {
        Status inserted = Query(db, "INSERT INTO staged_records (file, seq, record_id, bundle) VALUES ($1, $2, $3, $4)")
                              .integer(file).integer(record.seq).text(record.record_id).bytes(record.bundle_json).done();
        if (!inserted.ok()) return inserted;
      }
      return Status::Ok();
    });
  }

  Result<std::vector<StagedRecord>> stagedRecords(int64_t file, int64_t after_seq, size_t limit) override {
    return select<StagedRecord>(
        "SELECT seq, record_id, bundle FROM staged_records WHERE file = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        [&](Query& q) { q.integer(file).integer(after_seq).integer(static_cast<int64_t>(limit)); },
        [](const Rows& rows, int row) { return StagedRecord{rows.integer(row, 0), rows.text(row, 1), rows.text(row, 2)}; });
  }

  Status dropStagedFile(int64_t file) override {
    return runInWriter([&](Connection& db, pg::Tx&) -> Status {
      Status records = Query(db, "DELETE FROM staged_records WHERE file = $1").integer(file).done();
      if (!records.ok()) return records;
      return Query(db, "DELETE FROM staged_files WHERE id = $1").integer(file).done();
    });
  }

  Result<std::pair<int64_t, int64_t>> stagedCounts() override {
    return withReader([](Connection& db) -> Result<std::pair<int64_t, int64_t>> {
      auto rows = Query(db, "SELECT (SELECT count(*) FROM staged_files), (SELECT count(*) FROM staged_records)").run();
      if (!rows.ok()) return rows.error();
      return std::pair<int64_t, int64_t>{rows->integer(0, 0), rows->integer(0, 1)};
    });
  }

  // Merge ----------------------------------------------------------------------------------------------
  void setMergeHook(MergeHook hook) override { merge_hook_ = std::move(hook); }
  Status readMerge(const std::function<Status(MergeTx&)>& read) override {
    return withReader([&](Connection& db) -> Status {  // one snapshot; a READ ONLY transaction refuses writes
      Status begun = db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (!begun.ok()) return begun;
      Status status = read(*pg::makeMergeTx(db, /*read_only=*/true));
      Status ended = db.exec(status.ok() ? "COMMIT" : "ROLLBACK");
      return status.ok() ? ended : status;
    });
  }

  Result<std::vector<std::string>> clusterOf(std::string_view patient_id) override {
    auto members = select<std::string>(
        "SELECT patient_id COLLATE \"C\" FROM patient_survivor WHERE survivor = (SELECT survivor FROM patient_survivor "
        "WHERE patient_id = $1) AND patient_id <> $1 ORDER BY 1",
        [&](Query& q) { q.text(patient_id); }, [](const Rows& rows, int row) { return rows.text(row, 0); });
    if (members.ok()) members->insert(members->begin(), std::string(patient_id));
    return members;
  }

  Result<std::vector<RoutedClaim>> routedOf(std::string_view patient_id) override {
    return select<RoutedClaim>(
        "SELECT claim_id COLLATE \"C\", patient_id, payer_id, date_of_service, code FROM routed_claims WHERE patient_id = $1 "
        "ORDER BY 1",
        [&](Query& q) { q.text(patient_id); },
        [](const Rows& r, int i) { return RoutedClaim{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4)}; });
  }

  Status updateUnroutableReason(std::string_view claim_id, std::string_view reason, std::string_view outcome_json) override {
    return runInWriter([&](Connection& db, pg::Tx&) {
      return Query(db, "UPDATE unroutable SET reason = $1, outcome = $2 WHERE claim_id = $3 AND resolved_at = '' "
                       "AND reason <> $1")
          .text(reason).bytes(outcome_json).text(claim_id).done();
    });
  }

  Status putRoutingConflict(const RoutingConflict& c) override {
    return runInWriter([&](Connection& db, pg::Tx&) {
      return Query(db, "INSERT INTO routing_conflicts (claim_id, patient_id, routed_payer, date_of_service, code, now_payer, "
                       "reason, detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING")
          .text(c.routed.claim_id).text(c.routed.patient_id).text(c.routed.payer_id).text(c.routed.date_of_service)
          .text(c.routed.code).text(c.now_payer_id).text(c.reason).text(nowIso()).done();
    });
  }

  Result<std::vector<RoutingConflict>> listRoutingConflicts(size_t limit) override {
    return select<RoutingConflict>(
        "SELECT claim_id, patient_id, routed_payer, date_of_service, code, now_payer, reason, detected_at "
        "FROM routing_conflicts ORDER BY id LIMIT $1",
        [&](Query& q) { q.integer(static_cast<int64_t>(limit)); },
        [](const Rows& r, int i) {
          return RoutingConflict{RoutedClaim{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4)},
                                 r.text(i, 5), r.text(i, 6), r.text(i, 7)};
        });
  }

  Result<std::vector<PatientConflict>> listConflicts(size_t limit) override {
    return select<PatientConflict>(
        "SELECT coverage_id, patient_a, patient_b, elements, detail, detected_at FROM patient_conflicts "
        "ORDER BY detected_at COLLATE \"C\", coverage_id COLLATE \"C\", patient_a COLLATE \"C\", patient_b COLLATE \"C\" "
        "LIMIT $1",
        [&](Query& q) { q.integer(static_cast<int64_t>(limit)); },
        [](const Rows& r, int i) {
          return PatientConflict{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), r.text(i, 5)};
        });
  }

  // Subscriptions --------------------------------------------------------------------------------------
  Status putSubscription(const SubscriptionRow& row) override {
    return runInWriter([&](Connection& db, pg::Tx&) {
      // An empty owner keeps the recorded one (delivery's status updates do not know it).
      Status put = Query(db, "INSERT INTO subscriptions (id, status, error, resource_json, owner) VALUES ($1, $2, $3, $4, $5) "
                       "ON CONFLICT (id) DO UPDATE SET status = excluded.status, error = excluded.error, "
                       "resource_json = excluded.resource_json, owner = CASE WHEN excluded.owner <> '' "
                       "THEN excluded.owner ELSE subscriptions.owner END")
          .text(row.id).text(row.status).text(row.error).bytes(row.resource_json).text(row.owner).done();
      if (!put.ok()) return put;
      return pg::insertAudit(db, row.audit);  // the request's AuditEvent, same transaction
    });
  }

  Status deleteSubscription(std::string_view id, std::vector<AuditRecord> audit) override {
    return runInWriter([&](Connection& db, pg::Tx&) {
      Status deleted = Query(db, "DELETE FROM subscriptions WHERE id = $1").text(id).done();
      if (!deleted.ok()) return deleted;
      return pg::insertAudit(db, audit);
    });
  }

  Result<std::vector<SubscriptionRow>> listSubscriptions() override {
    return select<SubscriptionRow>(
        "SELECT id, status, error, resource_json, owner FROM subscriptions ORDER BY id COLLATE \"C\"", [](Query&) {},
        [](const Rows& r, int i) {
          SubscriptionRow row{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3)};
          row.owner = r.text(i, 4);
          return row;
        });
  }

  Result<std::optional<StoredResource>> readVersion(std::string_view type, std::string_view id, int64_t version) override {
    return withReader([&](Connection& db) { return pg::selectVersion(db, type, id, version); });
  }
  Result<std::vector<ResourceVersion>> history(const HistoryQuery& query) override {
    return withReader([&](Connection& db) { return pg::selectHistory(db, query); });
  }

  Result<ResourceOrigins> originsOf(std::string_view type, std::string_view id, bool with_payloads) override {
    return withReader([&](Connection& db) { return pg::selectOrigins(db, type, id, with_payloads); });
  }

  Status appendAudit(std::vector<AuditRecord> records) override {
    if (records.empty()) return Status::Ok();
    return runInWriter([&](Connection& db, pg::Tx&) { return pg::insertAudit(db, records); });
  }

  Result<std::vector<AuditRecord>> listAudit(const AuditQuery& query) override {
    return withReader([&](Connection& db) { return pg::selectAudit(db, query); });
  }

  // Access -----------------------------------------------------------------------------------------------
  Result<bool> claimAssertionJti(std::string_view client_id, std::string_view jti, int64_t expires_ms,
                                 int64_t now_ms) override {
    // The primary key decides between two instances that see one assertion at once.
    return writeCount([&](Connection& db) -> Result<Rows> {
      Status expired = Query(db, "DELETE FROM assertion_jti WHERE expires_ms <= $1").integer(now_ms).done();
      if (!expired.ok()) return Error{expired.message()};
      return Query(db, "INSERT INTO assertion_jti (client_id, jti, expires_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
          .text(client_id).bytes(jti).integer(expires_ms).run();
    });
  }

  PgWriterCounters writerCounters() {
    std::lock_guard lock(counters_mutex_);
    return counters_;
  }

 private:
  using Job = std::function<Status(Connection&, pg::Tx&)>;
  struct PendingJob {
    Job job;
    std::function<void(const Status&)> done;  // called by the writer after the commit
  };

  // The writer's connection holds a session advisory lock on owner_key_ while the handle lives:
  // another handle's start-up tells this one's staged files from a dead one's by it.
  //
  // Taken with pg_try_advisory_lock, never the blocking pg_advisory_lock: after a network break
  // the server keeps the writer's old session, and its lock, until it notices the break (TCP
  // keepalive: up to hours), and a blocking call would hang the writer that long. The key is
  // random per handle, so a session holding it is an earlier one of this handle: it is ended
  // (pg_terminate_backend, allowed on one's own role's sessions) and the lock tried again with
  // backoff. A writer that still cannot take it fails the group (its callers retry) and tries
  // again with the next group.
  Status holdOwnerLock(Connection& db) {
    owner_locked_ = false;
    int64_t wait_ms = 20;
    for (int attempt = 0; attempt < 7; ++attempt) {
      auto taken = Query(db, "SELECT pg_try_advisory_lock($1::bigint)").integer(owner_key_).run();
      if (!taken.ok()) return taken.error();
      if (!taken->empty() && taken->integer(0, 0) != 0) {
        owner_locked_ = true;
        if (attempt > 0) std::fprintf(stderr, "pg-writer: owner lock taken after %d tries\n", attempt + 1);
        return Status::Ok();
      }
      auto ended = Query(db, "SELECT pid, pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                             "AND pid <> pg_backend_pid() AND classid = (($1::bigint >> 32) & 4294967295)::oid "
                             "AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1")
                       .integer(owner_key_).run();
      std::fprintf(stderr,
                   "pg-writer: this store handle's owner lock is still held by an earlier session of it (the server "
                   "has not noticed a broken connection yet); ended %d such session(s), trying again in %lld ms\n",
                   ended.ok() ? ended->size() : 0, static_cast<long long>(wait_ms));
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      wait_ms *= 2;
    }
    std::fprintf(stderr, "pg-writer: the owner lock is still held; this group fails, the next one tries again\n");
    return Error{"postgresql: the store handle's owner lock is still held by an earlier session (ended; the server "
                 "has not released it yet)"};
  }

  // Reads ------------------------------------------------------------------------------------------
  template <typename Fn>
  auto withReader(Fn fn) -> decltype(fn(std::declval<Connection&>())) {
    auto connection = borrow();
    if (!connection.ok()) return connection.error();
    auto result = fn(**connection);
    if (!result.ok() && (*connection)->broken()) {
      // A pooled connection the server dropped (a restart): reads are safe to run again.
      if ((*connection)->open().ok()) result = fn(**connection);
    }
    giveBack(std::move(*connection));
    return result;
  }

  template <typename Row, typename Bind, typename Read>
  Result<std::vector<Row>> select(const char* sql, Bind bind, Read read) {
    return withReader([&](Connection& db) -> Result<std::vector<Row>> {
      Query query(db, sql);
      bind(query);
      auto rows = query.run();
      if (!rows.ok()) return rows.error();
      std::vector<Row> out;
      out.reserve(static_cast<size_t>(rows->size()));
      for (int row = 0; row < rows->size(); ++row) out.push_back(read(*rows, row));
      return out;
    });
  }

  Result<std::unique_ptr<Connection>> borrow() {
    std::unique_lock lock(pool_mutex_);
    pool_cv_.wait(lock, [&] { return !pool_.empty() || open_readers_ < options_.max_read_connections; });
    if (!pool_.empty()) {
      auto connection = std::move(pool_.back());
      pool_.pop_back();
      return connection;
    }
    ++open_readers_;
    lock.unlock();
    auto connection = std::make_unique<Connection>(connect_);
    Status status = connection->open();
    if (!status.ok()) {
      lock.lock();
      --open_readers_;
      pool_cv_.notify_one();
      return Error{status.message()};
    }
    return connection;
  }

  // A connection the server dropped is closed, not pooled; the next borrow opens a new one.
  void giveBack(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(pool_mutex_);
    if (connection->broken()) --open_readers_;
    else pool_.push_back(std::move(connection));
    pool_cv_.notify_one();
  }

  // Writes -----------------------------------------------------------------------------------------
  // Runs `job` in the writer's next group transaction and waits for the commit.
  Status runInWriter(Job job) {
    auto promise = std::make_shared<std::promise<Status>>();
    std::future<Status> done = promise->get_future();
    if (!enqueue(std::make_unique<PendingJob>(
            PendingJob{std::move(job), [promise](const Status& status) { promise->set_value(status); }}))) {
      return Error{"store is closing"};
    }
    return done.get();
  }

  // A write whose answer is whether it changed a row.
  template <typename Statement>
  Result<bool> writeCount(Statement statement) {
    bool changed = false;
    Status status = runInWriter([&](Connection& db, pg::Tx&) -> Status {
      Result<Rows> rows = statement(db);
      if (!rows.ok()) return rows.error();
      changed = rows->affected() > 0;
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return changed;
  }

  void enqueueOrRefuse(std::unique_ptr<PendingJob> job) {
    std::function<void(const Status&)> done = job->done;
    if (!enqueue(std::move(job)) && done) done(Status(Error{"store is closing"}));
  }

  bool enqueue(std::unique_ptr<PendingJob> job) {
    {
      std::lock_guard lock(queue_mutex_);
      if (stopping_) return false;
      queue_.push_back(std::move(job));
    }
    queue_cv_.notify_one();
    return true;
  }

  void writerLoop() {
    std::vector<std::unique_ptr<PendingJob>> batch;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex_);
        queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        while (!queue_.empty() && batch.size() < 512) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      std::vector<Status> results(batch.size());
      const pg::Counters before = writer_connection_->counters();
      Status committed = runGroup(batch, results);
      const pg::Counters& after = writer_connection_->counters();
      {
        std::lock_guard lock(counters_mutex_);
        counters_.groups += 1;
        counters_.jobs += static_cast<int64_t>(batch.size());
        counters_.round_trips += after.round_trips - before.round_trips;
        counters_.statements += after.statements - before.statements;
      }
      if (trace_) {
        std::fprintf(stderr, "pg-writer: group of %zu jobs: %lld round trips, %lld statements\n", batch.size(),
                     static_cast<long long>(after.round_trips - before.round_trips),
                     static_cast<long long>(after.statements - before.statements));
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i]->done) batch[i]->done(committed.ok() ? results[i] : committed);
      }
      batch.clear();
    }
  }

  // One group transaction; run again (all of it) after a deadlock or serialization failure.
  //
  // Round trips: statements whose rows nothing waits for are queued on the connection and go with
  // the next one that needs rows (pg_connection.h), so BEGIN, the savepoints, the releases and a
  // job's writes cost no round trip of their own. A job of a group of several ends with a flush:
  // an error among its queued statements is its own and undoes only it (its savepoint). A group
  // of one job has no savepoint: the job's failure or undo is the transaction's, and its writes go
  // with the outbox rows and the COMMIT in one round trip.
  Status runGroup(std::vector<std::unique_ptr<PendingJob>>& batch, std::vector<Status>& results) {
    Connection& db = *writer_connection_;
    static thread_local std::mt19937 jitter{std::random_device{}()};
    for (int attempt = 0;; ++attempt) {
      if (db.broken() || !owner_locked_) {  // the server restarted or the network broke: connect again
        Status reopened = db.broken() ? db.open() : Status::Ok();
        if (reopened.ok()) reopened = holdOwnerLock(db);
        if (!reopened.ok()) return reopened;
      }
      pg::Tx tx;
      bool retry = false;
      bool undo_all = false;  // the one job failed or was undone: nothing of the group is kept
      const bool savepoints = batch.size() > 1;
      Status failure = Status::Ok();
      db.setTag(-1);
      db.queueText("BEGIN");
      for (size_t i = 0; i < batch.size(); ++i) {
        db.setTag(static_cast<int>(i));
        if (savepoints) db.queueText("SAVEPOINT job");
        const size_t outbox_mark = tx.outbox.size();
        const bool locked_before = tx.change_order_locked;
        tx.undo_job = false;
        results[i] = batch[i]->job(db, tx);
        if (results[i].ok() && !tx.undo_job && savepoints) results[i] = db.flush();  // its own errors are its own
        if (!results[i].ok() && db.retryable()) {
          retry = true;
          break;
        }
        if (!results[i].ok() && db.broken()) {
          failure = results[i];
          break;
        }
        if (results[i].ok() && !tx.undo_job) {
          if (savepoints) db.queueText("RELEASE SAVEPOINT job");
          continue;
        }
        if (!savepoints) {
          undo_all = true;
          break;
        }
        // Undo only this job; the others in the group still commit. Its queued statements go
        // first (after its SAVEPOINT), so the savepoint exists whatever they do.
        (void)db.flush();
        Status undone = db.exec("ROLLBACK TO SAVEPOINT job");
        if (!undone.ok()) {
          failure = undone;
          break;
        }
        db.queueText("RELEASE SAVEPOINT job");
        tx.outbox.erase(tx.outbox.begin() + static_cast<std::ptrdiff_t>(outbox_mark), tx.outbox.end());
        tx.change_order_locked = locked_before;
      }
      db.setTag(-1);
      if (undo_all && failure.ok() && !retry) {
        db.discard();
        Status rolled = db.exec("ROLLBACK");
        if (rolled.ok()) return Status::Ok();  // the job's outcome is in results[0]
        failure = rolled;
      }
      if (!retry && failure.ok()) {
        failure = pg::flushOutbox(db, tx);
        if (!failure.ok() && db.retryable()) retry = true;
      }
      bool commit_sent = false;
      if (!retry && failure.ok()) {
        commit_sent = true;
        failure = db.exec("COMMIT");
        if (failure.ok()) return Status::Ok();
        if (db.retryable()) retry = true;
      }
      db.discard();
      if (!db.broken()) {
        (void)db.exec("ROLLBACK");
      } else if (!commit_sent && attempt < 2) {
        // The server went away before the COMMIT (a restart): nothing of the group was written;
        // connect again and run it once more. A COMMIT whose answer was lost is not repeated:
        // its callers see the error and retry, and the keys make that idempotent.
        retry = true;
      }
      if (!retry || attempt >= 20) return failure.ok() ? Status(Error{"postgresql: group kept deadlocking"}) : failure;
      std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (1000u << std::min(attempt, 6))));
    }
  }

  PostgresStoreOptions options_;
  pg::ConnectOptions connect_;
  // GATEWAY_PG_TRACE=1: the writer prints its round trips and statements per group on stderr.
  const bool trace_ = [] {
    const char* value = std::getenv("GATEWAY_PG_TRACE");
    return value != nullptr && std::string(value) == "1";
  }();
  std::mutex counters_mutex_;
  PgWriterCounters counters_;
  int64_t owner_key_ = 0;
  bool owner_locked_ = false;  // the writer's session holds the owner lock (holdOwnerLock)
  MergeHook merge_hook_;  // set before the first ingest
  std::unique_ptr<Connection> writer_connection_;
  std::thread writer_;
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<PendingJob>> queue_;
  bool stopping_ = false;
  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> pool_;
  int open_readers_ = 0;
};

}  // namespace

pg::ConnectOptions pg::connectOptionsOf(const PostgresStoreOptions& options, std::string application_name) {
  ConnectOptions connect;
  connect.url = options.url;
  connect.password = options.password;
  connect.sslmode = options.sslmode;
  connect.schema = options.schema;
  connect.application_name = std::move(application_name);
  return connect;
}

bool postgresUrlHasPassword(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url.find("password") != std::string::npos;  // key=value form
  const size_t start = scheme + 3;
  const size_t end = url.find_first_of("/?", start);
  const std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  const size_t at = authority.rfind('@');
  if (at != std::string::npos && authority.substr(0, at).find(':') != std::string::npos) return true;
  return end != std::string::npos && url.find("password=", end) != std::string::npos;
}

PgWriterCounters pgWriterCounters(Store& store) {
  auto* pg_store = dynamic_cast<PgStore*>(&store);
  return pg_store != nullptr ? pg_store->writerCounters() : PgWriterCounters{};
}

Result<StorePtr> openPostgresStore(const PostgresStoreOptions& options) {
  if (postgresUrlHasPassword(options.url)) {
    return Error{"store.url must not carry a password: give it in store.passwordFile"};
  }
  auto store = std::make_shared<PgStore>(options);
  Status status = store->start();
  if (!status.ok()) return Error{status.message()};
  return StorePtr(store);
}

}  // namespace fhir::gateway

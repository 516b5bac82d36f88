// SPDX-License-Identifier: Apache-2.0
#include <pthread.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "conformance/json/json.h"
#include "gateway/store/sqlite_access.h"
#include "gateway/store/sqlite_connection.h"
#include "gateway/store/sqlite_history.h"
#include "gateway/store/sqlite_leases.h"
#include "gateway/store/sqlite_merge.h"
#include "gateway/store/search_index.h"
#include "gateway/store/sqlite_quarantine.h"
#include "gateway/store/sqlite_search.h"
#include "gateway/store/sqlite_staging.h"
#include "gateway/store/store.h"
#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

using sqlite::Connection;
using sqlite::kEmptyBlob;
using sqlite::Query;
using sqlite::withMeta;

std::string quarantineId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "q-%011llx-%08llx",
                static_cast<unsigned long long>(nowMs()),
                static_cast<unsigned long long>(random() & 0xffffffffULL));
  return buffer;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::string path) : path_(std::move(path)) {}
  ~SqliteStore() override {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    checkpoint_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  Status start() {
    writer_connection_ = std::make_unique<Connection>();
    Status status = writer_connection_->open(path_);
    if (!status.ok()) return status;
    status = sqlite::createSchema(*writer_connection_);
    if (!status.ok()) return status;
    status = sqlite::prepareStaging(*writer_connection_);
    if (!status.ok()) return status;
    status = sqlite::prepareQuarantine(*writer_connection_);
    if (!status.ok()) return status;
    status = sqlite::prepareAccess(*writer_connection_);
    if (!status.ok()) return status;
    status = sqlite::prepareHistory(*writer_connection_);
    if (!status.ok()) return status;
    status = writer_connection_->exec(sqlite::kMergeSchema);
    if (!status.ok()) return status;
    status = sqlite::backfillContributions(*writer_connection_);
    if (!status.ok()) return status;
    status = sqlite::createSearchSchema(*writer_connection_);  // search (issue 15): index what is not
    if (status.ok()) status = sqlite::indexUnindexedResources(*writer_connection_);
    if (!status.ok()) return status;
    // WAL checkpoints run on their own connection and thread, so the writer's commits do not wait
    // for the database file's fsync (automatic checkpoints would run inside a commit).
    status = writer_connection_->exec("PRAGMA wal_autocheckpoint=0");
    if (!status.ok()) return status;
    // Every job runs in a SAVEPOINT, whose statement journal (the pages it changes, kept for
    // ROLLBACK TO) SQLite moves to a temporary file in /var/tmp past 64 KiB: a file opened, written
    // page by page and deleted for every job (issue 12: ~150 pwrites per e-consult event, the
    // writer's largest kernel cost). In memory it is the same bytes without the system calls.
    // Set after the schema work above, whose one-time sorts may be large.
    status = writer_connection_->exec("PRAGMA temp_store=MEMORY");
    if (!status.ok()) return status;
    // The writer reads the database file through a read-only memory map (no pread for the index
    // pages an event touches at random) and keeps a small page cache: SQLite 3.40 walks the whole
    // cache at every commit of a store under 1 GiB (a B-tree balance parks a page past the lock
    // page), so a 64 MiB cache cost more writer CPU than its preads saved (docs/BENCHMARKS.md).
    status = writer_connection_->exec("PRAGMA cache_size=-8192; PRAGMA mmap_size=2147418112");
    if (!status.ok()) return status;
    checkpoint_connection_ = std::make_unique<Connection>();
    status = checkpoint_connection_->open(path_);
    if (!status.ok()) return status;
    writer_ = std::thread([this] { writerLoop(); });
    checkpointer_ = std::thread([this] { checkpointLoop(); });
    // Named for top -H, perf and gdb (the writer is the ingest path's one serial stage).
    pthread_setname_np(writer_.native_handle(), "store-writer");
    pthread_setname_np(checkpointer_.native_handle(), "store-checkpoint");
    return Status::Ok();
  }

  // Store ---------------------------------------------------------------------------------
  Result<std::optional<StoredAnswer>> findAnswer(std::string_view key) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    Query query(*reader, "SELECT status, " EVENT_ANSWER " FROM events WHERE idem_key = ?");
    query.bind(1, key);
    int rc = query.step();
    std::optional<StoredAnswer> answer;
    if (rc == SQLITE_ROW) answer = StoredAnswer{static_cast<int>(query.integer(0)), query.text(1)};
    else if (rc != SQLITE_DONE) return Error{query.error()};
    return answer;
  }

  Result<CommitOutcome> commitIngest(IngestCommit commit) override {
    CommitOutcome outcome;
    Status status = runInWriter([&](Connection& db) { return writeIngest(db, commit, outcome); });
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
          [this, commit, outcome](Connection& db) { return writeIngest(db, *commit, *outcome); },
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

  Result<std::string> quarantine(QuarantineWrite write) override {
    std::string id = quarantineId();
    Status status = runInWriter([&](Connection& db) -> Status {
      auto kept = sqlite::insertQuarantine(db, id, write, nowIso());  // sqlite_quarantine.cc
      if (!kept.ok()) return kept.error();
      id = *kept;
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return id;
  }

  Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) override {
    return selectRows<QuarantineEntry>(
        "SELECT " QUARANTINE_COLUMNS " FROM quarantine ORDER BY received_at DESC, id DESC LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &sqlite::quarantineEntryOf);
  }

  Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) override {
    auto rows = selectRows<QuarantineEntry>("SELECT " QUARANTINE_COLUMNS " FROM quarantine WHERE id = ?",
                                            [&](Query& query) { query.bind(1, id); }, &sqlite::quarantineEntryOf);
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<QuarantineEntry>();
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    Status counted = sqlite::readQuarantineCounts(*reader, rows->front());
    if (!counted.ok()) return Error{counted.message()};
    return std::optional<QuarantineEntry>(std::move(rows->front()));
  }

  Result<QuarantinePage> listQuarantinePage(const QuarantineQuery& query) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::selectQuarantinePage(*reader, query);
  }

  Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) override {
    return selectRows<QuarantineEntry>(
        "SELECT " QUARANTINE_COLUMNS " FROM quarantine WHERE status <> 'accepted' ORDER BY received_at, id LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &sqlite::quarantineEntryOf);
  }

  Result<bool> recordReplay(std::string_view id, int status, std::string_view answer, bool accepted) override {
    bool found = false;
    Status written = runInWriter([&](Connection& db) -> Status {
      Query query(db,
                  "UPDATE quarantine SET replays = replays + 1, replayed_at = ?, replay_status = ?, replay_answer = ?, "
                  "status = CASE WHEN ? THEN 'accepted' ELSE status END WHERE id = ?");
      query.bind(1, nowIso()).bind(2, int64_t{status}).bindBlob(3, answer).bind(4, int64_t{accepted ? 1 : 0}).bind(5, id);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      found = sqlite3_changes(db.handle()) > 0;
      return Status::Ok();
    });
    if (!written.ok()) return Error{written.message()};
    return found;
  }

  Result<std::optional<StoredResource>> readResource(std::string_view type, std::string_view id) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    Query query(*reader, "SELECT version, updated_at, " RESOURCE_JSON("r") " FROM resources r WHERE type = ? AND id = ?");
    query.bind(1, type).bind(2, id);
    int rc = query.step();
    std::optional<StoredResource> result;
    if (rc == SQLITE_ROW) {
      result = StoredResource{searchindex::withMeta(query.text(2), query.integer(0), query.text(1)), query.integer(0)};
    } else if (rc != SQLITE_DONE) {
      return Error{query.error()};
    }
    return result;
  }

  Result<SearchPage> search(const SearchRequest& request) override {
    return withReader([&](Connection& db) { return sqlite::search(db, request); });
  }

  Result<std::vector<CoverageFact>> coverageOf(std::string_view patient_id) override {
    return selectRows<CoverageFact>(
        "WITH cluster(p) AS (SELECT ?1 UNION SELECT patient_id FROM patient_survivor WHERE survivor = "
        "(SELECT survivor FROM patient_survivor WHERE patient_id = ?1)) "
        "SELECT coverage_id, payer_id, member_id, line_of_business, start, end, basis, ord FROM coverage_index "
        "WHERE patient_id IN cluster UNION SELECT coverage_id, payer_id, member_id, line_of_business, date, date, "
        "'evidence', 0 FROM coverage_evidence WHERE patient_id IN cluster ORDER BY 5, 1, 7",
        [&](Query& query) { query.bind(1, patient_id); },
        [&](const Query& query) {
          CoverageFact fact;
          fact.coverage_id = query.text(0);
          fact.patient_id = std::string(patient_id);
          fact.payer_id = query.text(1);
          fact.member_id = query.text(2);
          fact.line_of_business = query.text(3);
          fact.start = query.text(4);
          fact.end = query.text(5);
          fact.basis = query.text(6);
          fact.order = static_cast<int>(query.integer(7));
          return fact;
        });
  }

  Result<std::optional<OutboxItem>> nextDue(std::string_view destination, int64_t now_ms) override {
    auto head = pendingHead(destination, 1);
    if (!head.ok()) return head.error();
    if (head->empty() || head->front().next_attempt_ms > now_ms) return std::optional<OutboxItem>();
    return std::optional<OutboxItem>(std::move(head->front()));
  }

  void recordDeliveredAsync(const DeliveryAttempt& attempt, std::function<void(const Status&)> on_commit) override {
    auto job = std::make_unique<PendingJob>(PendingJob{[attempt](Connection& db) { return markDelivered(db, attempt); },
                                                       std::move(on_commit)});
    enqueueOrRefuse(std::move(job));  // closing: the row stays pending and is sent again after restart
  }

  Result<std::vector<OutboxItem>> pendingHead(std::string_view destination, size_t limit) override {
    return selectRows<OutboxItem>(
        "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE destination = ? AND status = 0 ORDER BY number LIMIT ?",
        [&](Query& query) { query.bind(1, destination).bind(2, static_cast<int64_t>(limit)); }, &outboxItem);
  }

  static Status markDelivered(Connection& db, const DeliveryAttempt& attempt) {
    Status status = insertAttempt(db, attempt);
    if (!status.ok()) return status;
    Query query(db,
                "UPDATE outbox SET status = 1, attempts = attempts + 1, delivered_ms = ?, "
                "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN ? ELSE first_attempt_ms END, "
                "last_error = '' WHERE id = ?");
    query.bind(1, attempt.at_ms).bind(2, attempt.at_ms).bind(3, attempt.outbox_id);
    if (query.step() != SQLITE_DONE) return Error{query.error()};
    return Status::Ok();
  }

  Status recordDelivered(const DeliveryAttempt& attempt) override {
    return runInWriter([&](Connection& db) { return markDelivered(db, attempt); });
  }

  static Status markFailed(Connection& db, const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) {
    Status status = insertAttempt(db, attempt);
    if (!status.ok()) return status;
    Query query(db,
                "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_ms = ?, "
                "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN ? ELSE first_attempt_ms END, "
                "last_error = ? WHERE id = ?");
    query.bind(1, int64_t{dead ? 2 : 0}).bind(2, next_attempt_ms).bind(3, attempt.at_ms);
    query.bind(4, attempt.error).bind(5, attempt.outbox_id);
    if (query.step() != SQLITE_DONE) return Error{query.error()};
    return Status::Ok();
  }

  Status recordFailed(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) override {
    return runInWriter([&](Connection& db) { return markFailed(db, attempt, next_attempt_ms, dead); });
  }

  void recordFailedAsync(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead,
                         std::function<void(const Status&)> on_commit) override {
    auto job = std::make_unique<PendingJob>(PendingJob{
        [attempt, next_attempt_ms, dead](Connection& db) { return markFailed(db, attempt, next_attempt_ms, dead); },
        std::move(on_commit)});
    enqueueOrRefuse(std::move(job));  // closing: the row stays as it was and is tried again after restart
  }

  void recordDeliveredManyAsync(std::vector<DeliveryAttempt> attempts,
                                std::function<void(const Status&)> on_commit) override {
    auto job = std::make_unique<PendingJob>(PendingJob{
        [attempts = std::move(attempts)](Connection& db) -> Status {
          for (const DeliveryAttempt& attempt : attempts) {
            Status status = markDelivered(db, attempt);
            if (!status.ok()) return status;
          }
          return Status::Ok();
        },
        std::move(on_commit)});
    enqueueOrRefuse(std::move(job));  // closing: the rows stay pending and are sent again after restart
  }

  Result<std::vector<OutboxItem>> pendingAfter(std::string_view destination, int64_t after, size_t limit) override {
    return selectRows<OutboxItem>(
        "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE destination = ? AND status = 0 AND number > ? ORDER BY number LIMIT ?",
        [&](Query& query) { query.bind(1, destination).bind(2, after).bind(3, static_cast<int64_t>(limit)); },
        &outboxItem);
  }

  Result<std::vector<DestinationDepth>> outboxDepth() override {
    return selectRows<DestinationDepth>(
        "SELECT destination, SUM(status = 0), SUM(status = 2), "
        "COALESCE(MIN(CASE WHEN status = 0 THEN created_ms END), 0) FROM outbox GROUP BY destination",
        [](Query&) {},
        [](const Query& query) {
          return DestinationDepth{query.text(0), query.integer(1), query.integer(2), query.integer(3)};
        });
  }

  Result<std::vector<OutboxItem>> outboxRange(std::string_view destination, int64_t from, int64_t to) override {
    return selectRows<OutboxItem>(
        "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE destination = ? AND number >= ? AND number <= ? ORDER BY number",
        [&](Query& query) { query.bind(1, destination).bind(2, from).bind(3, to); }, &outboxItem);
  }

  Result<int64_t> lastNumber(std::string_view destination) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    Query query(*reader, "SELECT last_number FROM destination_seq WHERE destination = ?");
    query.bind(1, destination);
    int rc = query.step();
    int64_t number = 0;
    if (rc == SQLITE_ROW) number = query.integer(0);
    else if (rc != SQLITE_DONE) return Error{query.error()};
    return number;
  }

  Result<std::vector<OutboxItem>> listDeadLetters(size_t limit) override {
    return selectRows<OutboxItem>(
        "SELECT " OUTBOX_COLUMNS " FROM outbox WHERE status = 2 ORDER BY id LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &outboxItem);
  }

  Result<bool> replayDeadLetter(int64_t outbox_id) override {
    bool found = false;
    Status status = runInWriter([&](Connection& db) -> Status {
      Query query(db, "UPDATE outbox SET status = 0, next_attempt_ms = ?, first_attempt_ms = 0 WHERE id = ? AND status = 2");
      query.bind(1, nowMs()).bind(2, outbox_id);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      found = sqlite3_changes(db.handle()) > 0;
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return found;
  }

  // Many sources: the SQL is in sqlite_merge.cc.
  Result<std::vector<std::string>> patientsWithMember(std::string_view payer_id, std::string_view member_id) override {
    return withReader([&](Connection& db) { return sqlite::patientsWithMember(db, payer_id, member_id); });
  }

  void setMergeHook(MergeHook hook) override { merge_hook_ = std::move(hook); }
  Status readMerge(const std::function<Status(MergeTx&)>& read) override {
    return withReader([&](Connection& db) { return sqlite::readMerge(db, read); });
  }

  Result<std::vector<std::string>> clusterOf(std::string_view patient_id) override {
    return withReader([&](Connection& db) { return sqlite::clusterOf(db, patient_id); });
  }
  Result<std::vector<RoutedClaim>> routedOf(std::string_view patient_id) override {
    return withReader([&](Connection& db) { return sqlite::routedOf(db, patient_id); });
  }
  Status updateUnroutableReason(std::string_view claim_id, std::string_view reason, std::string_view outcome_json) override {
    return runInWriter([&](Connection& db) { return sqlite::updateUnroutableReason(db, claim_id, reason, outcome_json); });
  }
  Status putRoutingConflict(const RoutingConflict& conflict) override {
    return runInWriter([&](Connection& db) { return sqlite::putRoutingConflict(db, conflict); });
  }
  Result<std::vector<RoutingConflict>> listRoutingConflicts(size_t limit) override {
    return withReader([&](Connection& db) { return sqlite::routingConflicts(db, limit); });
  }
  Result<std::vector<PatientConflict>> listConflicts(size_t limit) override {
    return withReader([&](Connection& db) { return sqlite::patientConflicts(db, limit); });
  }
  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    return withReader([&](Connection& db) { return sqlite::patientsWithDemographics(db, who); });
  }

  Result<std::vector<UnroutableWrite>> unroutableOf(std::string_view patient_id) override {
    return selectRows<UnroutableWrite>(
        "SELECT claim_id, patient_id, date_of_service, code, reason, outcome FROM unroutable "
        "WHERE patient_id = ? AND resolved_at = '' ORDER BY id",
        [&](Query& query) { query.bind(1, patient_id); }, &unroutableItem);
  }

  Result<std::vector<UnroutableWrite>> listUnroutable(size_t limit) override {
    return selectRows<UnroutableWrite>(
        "SELECT claim_id, patient_id, date_of_service, code, reason, outcome FROM unroutable "
        "WHERE resolved_at = '' ORDER BY id LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &unroutableItem);
  }

  // Staged payer files: the SQL is in sqlite_staging.cc.
  Result<int64_t> beginStagedFile(std::string_view channel) override {
    int64_t file = 0;
    Status status = runInWriter([&](Connection& db) -> Status {
      auto inserted = sqlite::insertStagedFile(db, channel, nowIso());
      if (!inserted.ok()) return inserted.error();
      file = *inserted;
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return file;
  }
  Status stageRecords(int64_t file, std::vector<StagedRecord> records) override {
    return runInWriter([&](Connection& db) { return sqlite::insertStagedRecords(db, file, records); });
  }
  Result<std::vector<StagedRecord>> stagedRecords(int64_t file, int64_t after_seq, size_t limit) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::selectStagedRecords(*reader, file, after_seq, limit);
  }
  Status dropStagedFile(int64_t file) override {
    return runInWriter([&](Connection& db) { return sqlite::deleteStagedFile(db, file); });
  }
  Result<std::pair<int64_t, int64_t>> stagedCounts() override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::countStaged(*reader);
  }

  Status putSubscription(const SubscriptionRow& row) override {
    return runInWriter([&](Connection& db) -> Status {
      Query query(db, "INSERT INTO subscriptions (id, status, error, resource_json, owner) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (id) DO UPDATE SET status = excluded.status, error = excluded.error, "
                      "resource_json = excluded.resource_json, owner = CASE WHEN excluded.owner <> '' "
                      "THEN excluded.owner ELSE subscriptions.owner END");
      query.bind(1, row.id).bind(2, row.status).bind(3, row.error).bind(4, row.resource_json).bind(5, row.owner);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      return sqlite::insertAudit(db, row.audit);  // the request's AuditEvent, same transaction
    });
  }

  Status deleteSubscription(std::string_view id, std::vector<AuditRecord> audit) override {
    return runInWriter([&](Connection& db) -> Status {
      Query query(db, "DELETE FROM subscriptions WHERE id = ?");
      query.bind(1, id);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      return sqlite::insertAudit(db, audit);
    });
  }

  Result<std::vector<SubscriptionRow>> listSubscriptions() override {
    return selectRows<SubscriptionRow>(
        "SELECT id, status, error, resource_json, owner FROM subscriptions ORDER BY id", [](Query&) {},
        [](const Query& query) {
          return SubscriptionRow{query.text(0), query.text(1), query.text(2), query.text(3), query.text(4)};
        });
  }

  // History and vread (sqlite_history.cc) ---------------------------------------------------
  Result<std::optional<StoredResource>> readVersion(std::string_view type, std::string_view id, int64_t version) override {
    return withReader([&](Connection& db) { return sqlite::selectVersion(db, type, id, version); });
  }
  Result<std::vector<ResourceVersion>> history(const HistoryQuery& query) override {
    return withReader([&](Connection& db) { return sqlite::selectHistory(db, query); });
  }

  // Access (sqlite_access.cc) ---------------------------------------------------------------
  Result<ResourceOrigins> originsOf(std::string_view type, std::string_view id, bool with_payloads) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::selectOrigins(*reader, type, id, with_payloads);
  }
  Status appendAudit(std::vector<AuditRecord> records) override {
    if (records.empty()) return Status::Ok();
    return runInWriter([&](Connection& db) { return sqlite::insertAudit(db, records); });
  }
  Result<std::vector<AuditRecord>> listAudit(const AuditQuery& query) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::selectAudit(*reader, query);
  }

  // Outbox leases and the change log (sqlite_leases.cc, sqlite_changes.cc) ------------------
  Result<OutboxLease> claimLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                                 int64_t duration_ms, std::string_view dead_holder) override {
    OutboxLease lease;
    Status status = runInWriter([&](Connection& db) {
      return sqlite::claimLease(db, destination, holder, now_ms, duration_ms, dead_holder, lease);
    });
    if (!status.ok()) return Error{status.message()};
    return lease;
  }

  Result<bool> extendLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                           int64_t duration_ms) override {
    bool extended = false;
    Status status = runInWriter([&](Connection& db) {
      return sqlite::extendLease(db, destination, holder, now_ms, duration_ms, extended);
    });
    if (!status.ok()) return Error{status.message()};
    return extended;
  }

  Status releaseLease(std::string_view destination, std::string_view holder) override {
    return runInWriter([&](Connection& db) { return sqlite::releaseLease(db, destination, holder); });
  }

  Result<std::optional<OutboxLease>> leaseOf(std::string_view destination) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::leaseOf(*reader, destination);
  }

  Result<std::vector<ChangeRecord>> changesAfter(int64_t after_seq, size_t limit) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    // One read transaction: the change rows and the history rows they name are of one snapshot.
    Status begun = (*reader).exec("BEGIN");
    if (!begun.ok()) return Error{begun.message()};
    auto records = sqlite::changesAfter(*reader, after_seq, limit);
    Status ended = (*reader).exec("COMMIT");
    if (!records.ok()) return records.error();
    if (!ended.ok()) return Error{ended.message()};
    return records;
  }

  Result<int64_t> changeCursor(std::string_view consumer) override {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return sqlite::changeCursor(*reader, consumer);
  }

  Result<bool> commitPlanned(std::string_view consumer, int64_t from_seq, int64_t to_seq,
                             std::vector<PlannedOutbox> outbox) override {
    bool moved = false;
    Status status = runInWriter([&](Connection& db) -> Status {
      Status cursor = sqlite::moveChangeCursor(db, consumer, from_seq, to_seq, moved);
      if (!cursor.ok() || !moved) return cursor;
      const int64_t now_ms = nowMs();
      for (const PlannedOutbox& planned : outbox) {
        Status inserted = insertOutbox(db, planned.write, planned.event_seq, now_ms);
        if (!inserted.ok()) return inserted;
      }
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return moved;
  }

  Result<std::vector<DeliveryAttempt>> attemptsOf(int64_t outbox_id) override {
    return selectRows<DeliveryAttempt>(
        "SELECT at_ms, http_status, error, duration_ms FROM delivery_attempts WHERE outbox_id = ? ORDER BY id",
        [&](Query& query) { query.bind(1, outbox_id); },
        [&](const Query& query) {
          return DeliveryAttempt{outbox_id, query.integer(0), static_cast<int>(query.integer(1)), query.text(2),
                                 query.integer(3)};
        });
  }

 private:
  using Job = std::function<Status(Connection&)>;
  struct PendingJob {
    Job job;
    std::function<void(const Status&)> done;  // called by the writer after the commit
    std::chrono::steady_clock::time_point queued = std::chrono::steady_clock::now();
  };

  // Runs `job` inside the writer's next group transaction and waits for the commit.
  Status runInWriter(Job job) {
    auto promise = std::make_shared<std::promise<Status>>();
    std::future<Status> done = promise->get_future();
    if (!enqueue(std::make_unique<PendingJob>(PendingJob{std::move(job), [promise](const Status& status) {
          promise->set_value(status);
        }}))) {
      return Error{"store is closing"};
    }
    return done.get();
  }

  // enqueue, or tells the job's callback the store is closing.
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

  // A PASSIVE checkpoint every 100 ms: it copies what no reader still needs from the WAL into the
  // database without blocking the writer; the writer starts the WAL over once all was copied.
  void checkpointLoop() {
    std::unique_lock lock(queue_mutex_);
    while (!stopping_) {
      checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping_) break;
      lock.unlock();
      // Under steady writes the checkpoint never catches up with the end of the WAL, and SQLite
      // starts the WAL over only when it did: past 4,096 frames the writer finishes the
      // checkpoint itself between two groups (a short one: most frames are copied already).
      Query checkpoint(*checkpoint_connection_, "PRAGMA wal_checkpoint(PASSIVE)");
      if (checkpoint.ok() && checkpoint.step() == SQLITE_ROW && checkpoint.integer(1) > 4096) wal_full_ = true;
      lock.lock();
    }
  }

  // GATEWAY_SLOW_COMMIT_MS=N: the writer prints every group slower than N ms from its oldest
  // job's enqueue to its commit, with where the time went (stderr; for benchmarks).
  static int64_t slowCommitMs() {
    const char* value = std::getenv("GATEWAY_SLOW_COMMIT_MS");
    return value != nullptr ? std::atoll(value) : 0;
  }

  void writerLoop() {
    Connection& db = *writer_connection_;
    std::vector<std::unique_ptr<PendingJob>> batch;
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::duration duration) { return std::chrono::duration<double, std::milli>(duration).count(); };
    const int64_t slow_ms = slowCommitMs();
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
      const Clock::time_point taken = Clock::now();
      bool checkpointed = false;
      if (wal_full_.exchange(false)) {
        checkpointed = true;
        if (!db.exec("PRAGMA wal_checkpoint(PASSIVE)").ok()) wal_full_ = true;  // busy: tried again next group
      }
      const Clock::time_point begin = Clock::now();
      std::vector<Status> results(batch.size());
      Status begun = db.run("BEGIN IMMEDIATE");
      if (!begun.ok()) {
        for (auto& job : batch) job->done(begun);
        batch.clear();
        continue;
      }
      Status group_failure = Status::Ok();
      for (size_t i = 0; i < batch.size(); ++i) {
        results[i] = db.run("SAVEPOINT job");
        if (!results[i].ok()) continue;
        results[i] = batch[i]->job(db);
        if (results[i].ok()) results[i] = db.run("RELEASE job");
        if (!results[i].ok()) {
          // Undo only this job; the others in the group still commit. When even that fails the
          // whole group is rolled back below and every job fails.
          Status undone = db.exec("ROLLBACK TO job");
          if (undone.ok()) undone = db.exec("RELEASE job");
          if (!undone.ok()) {
            group_failure = undone;
            break;
          }
        }
      }
      const Clock::time_point jobs_done = Clock::now();
      Status committed = group_failure.ok() ? db.run("COMMIT") : group_failure;
      const Clock::time_point end = Clock::now();
      if (slow_ms > 0 && ms(end - batch.front()->queued) > static_cast<double>(slow_ms)) {
        std::fprintf(stderr,
                     "store: slow group of %zu jobs: %.1f ms (queued %.1f, checkpoint %.1f%s, jobs %.1f, commit %.1f)\n",
                     batch.size(), ms(end - batch.front()->queued), ms(taken - batch.front()->queued),
                     ms(begin - taken), checkpointed ? " run" : "", ms(jobs_done - begin), ms(end - jobs_done));
      }
      if (!committed.ok()) {
        Status rolled_back = db.exec("ROLLBACK");
        if (!rolled_back.ok()) committed = Error{committed.message() + "; rollback: " + rolled_back.message()};
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i]->done(committed.ok() ? results[i] : committed);
      }
      batch.clear();
    }
  }

  Status writeIngest(Connection& db, const IngestCommit& commit, CommitOutcome& outcome) {
    {
      Query existing(db, "SELECT seq, status, " EVENT_ANSWER " FROM events WHERE idem_key = ?");
      existing.bind(1, commit.idempotency_key);
      int rc = existing.step();
      if (rc == SQLITE_ROW) {
        outcome = CommitOutcome{true, static_cast<int>(existing.integer(1)), existing.text(2), existing.integer(0)};
        return sqlite::appendCommitAudit(db, commit, outcome);  // a re-post is an access too
      }
      if (rc != SQLITE_DONE) return Error{existing.error()};
    }
    for (const UniqueSlot& slot : commit.unique_slots) {
      Query held(db, "SELECT owner, event_seq FROM unique_slots WHERE slot = ?");
      held.bind(1, slot.key);
      int rc = held.step();
      if (rc == SQLITE_ROW && held.text(0) != slot.owner) {  // taken by another owner: write nothing
        outcome = CommitOutcome{};
        outcome.slot_taken = slot.key;
        outcome.slot_owner = held.text(0);
        outcome.slot_event_seq = held.integer(1);
        return Status::Ok();
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error{held.error()};
    }
    // The commit's contributions merged in this transaction (gateway/merge/merge_service.h, sqlite_merge.cc).
    std::vector<ResourceWrite> merged;
    std::vector<CoverageFact> merged_coverage;
    bool merge_changed = false;
    Status merged_now = sqlite::mergeInTransaction(db, merge_hook_, commit, merged, merged_coverage, merge_changed);
    if (!merged_now.ok()) return merged_now;
    outcome.merge_changed = merge_changed;  // not the merge the service validated: nothing is written
    if (merge_changed) return Status::Ok();
    if (!commit.routes_unroutable.empty()) {
      Query resolve(db, "UPDATE unroutable SET resolved_at = ? WHERE claim_id = ? AND resolved_at = ''");
      resolve.bind(1, nowIso()).bind(2, commit.routes_unroutable);
      if (resolve.step() != SQLITE_DONE) return Error{resolve.error()};
      if (sqlite3_changes(db.handle()) == 0) {  // routed meanwhile: nothing to write
        outcome = CommitOutcome{true, commit.status, commit.answer, 0};
        return Status::Ok();
      }
    }
    const std::string now = nowIso();
    const int64_t now_ms = nowMs();
    Query event(db, "INSERT INTO events (channel, idem_key, received_at, payload, status, answer, answer_is_payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)");
    const bool answer_is_payload = commit.answer == commit.payload;
    event.bind(1, commit.channel).bind(2, commit.idempotency_key).bind(3, now).bindBlob(4, commit.payload);
    event.bind(5, int64_t{commit.status}).bindBlob(6, answer_is_payload ? kEmptyBlob : commit.answer);
    event.bind(7, int64_t{answer_is_payload ? 1 : 0});
    if (event.step() != SQLITE_DONE) return Error{event.error()};
    const int64_t seq = sqlite3_last_insert_rowid(db.handle());

    std::vector<const ResourceWrite*> writes;
    for (const ResourceWrite& resource : commit.resources) writes.push_back(&resource);
    for (const ResourceWrite& resource : merged) writes.push_back(&resource);

    std::vector<ChangedResource> changes;
    for (const ResourceWrite* write : writes) {
      const ResourceWrite& resource = *write;
      const std::string hash = fhir::sha256Hex(resource.same_as.empty() ? resource.json : resource.same_as);
      int64_t version = 1;
      {
        Query current(db, "SELECT version, content_hash FROM resources WHERE type = ? AND id = ?");
        current.bind(1, resource.type).bind(2, resource.id);
        int rc = current.step();
        if (rc == SQLITE_ROW) {
          if (current.text(1) == hash) continue;  // unchanged: no new version
          version = current.integer(0) + 1;
        } else if (rc != SQLITE_DONE) {
          return Error{current.error()};
        }
      }
      // The change log names the version; the matcher reads it back from resource_history.
      if (!commit.change_context.empty()) changes.push_back(ChangedResource{resource.type, resource.id, version, {}, {}});
      Query upsert(db, "INSERT OR REPLACE INTO resources (type, id, version, updated_at, content_hash, json) VALUES (?, ?, ?, ?, ?, ?)");
      // The JSON is kept once, in resource_history (RESOURCE_JSON reads it from there).
      upsert.bind(1, resource.type).bind(2, resource.id).bind(3, version).bind(4, now).bind(5, hash).bindBlob(6, kEmptyBlob);
      if (upsert.step() != SQLITE_DONE) return Error{upsert.error()};
      Query history(db, "INSERT INTO resource_history (type, id, version, updated_at, event_seq, json) VALUES (?, ?, ?, ?, ?, ?)");
      history.bind(1, resource.type).bind(2, resource.id).bind(3, version).bind(4, now).bind(5, seq).bindBlob(6, resource.json);
      if (history.step() != SQLITE_DONE) return Error{history.error()};
      Status indexed = sqlite::writeSearchIndex(db, resource, seq, now);
      if (indexed.ok() && resource.type == "Patient") indexed = sqlite::indexDemographics(db, resource.id, resource.json);
      if (!indexed.ok()) return indexed;
    }

    // Coverage index rows (the commit's and the merged Coverages'), claim-file evidence, routed
    // claims: sqlite_merge.cc.
    Status facts = sqlite::writeCoverageFacts(db, commit, merged_coverage);
    if (!facts.ok()) return facts;

    for (const OutboxWrite& write : commit.outbox) {
      Status status = insertOutbox(db, write, seq, now_ms);
      if (!status.ok()) return status;
    }
    for (const UniqueSlot& slot : commit.unique_slots) {
      Query take(db, "INSERT INTO unique_slots (slot, owner, event_seq) VALUES (?, ?, ?) "
                     "ON CONFLICT (slot) DO UPDATE SET event_seq = excluded.event_seq WHERE owner = excluded.owner");
      take.bind(1, slot.key).bind(2, slot.owner).bind(3, seq);
      if (take.step() != SQLITE_DONE) return Error{take.error()};
    }
    // Subscription matching runs after the commit, from this record (gateway/subscriptions).
    if (!changes.empty()) {
      Status recorded = sqlite::recordChanges(db, seq, commit.change_context, changes);
      if (!recorded.ok()) return recorded;
    }

    for (const UnroutableWrite& write : commit.unroutable) {
      Query unroutable(db,
                       "INSERT OR IGNORE INTO unroutable (claim_id, patient_id, date_of_service, code, reason, outcome, event_seq, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
      unroutable.bind(1, write.claim_id).bind(2, write.patient_id).bind(3, write.date_of_service).bind(4, write.code);
      unroutable.bind(5, write.reason).bind(6, write.outcome_json).bind(7, seq).bind(8, now);
      if (unroutable.step() != SQLITE_DONE) return Error{unroutable.error()};
    }
    outcome = CommitOutcome{false, commit.status, commit.answer, seq};
    return sqlite::appendCommitAudit(db, commit, outcome);  // access.md: same transaction as the data
  }

  Result<bool> claimAssertionJti(std::string_view client_id, std::string_view jti, int64_t expires_ms,
                                 int64_t now_ms) override {
    bool claimed = false;
    Status written = runInWriter([&](Connection& db) -> Status {
      Query expired(db, "DELETE FROM assertion_jti WHERE expires_ms <= ?");
      expired.bind(1, now_ms);
      if (expired.step() != SQLITE_DONE) return Error{expired.error()};
      Query insert(db, "INSERT INTO assertion_jti (client_id, jti, expires_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
      insert.bind(1, client_id).bind(2, jti).bind(3, expires_ms);
      if (insert.step() != SQLITE_DONE) return Error{insert.error()};
      claimed = sqlite3_changes(db.handle()) > 0;
      return Status::Ok();
    });
    if (!written.ok()) return Error{written.message()};
    return claimed;
  }

  // Appends one outbox row with the destination's next number.
  static Status insertOutbox(Connection& db, const OutboxWrite& write, int64_t event_seq, int64_t now_ms) {
    Query sequence(db,
                   "INSERT INTO destination_seq (destination, last_number) VALUES (?, 1) "
                   "ON CONFLICT (destination) DO UPDATE SET last_number = last_number + 1 RETURNING last_number");
    sequence.bind(1, write.destination);
    if (sequence.step() != SQLITE_ROW) return Error{sequence.error()};
    const int64_t number = sequence.integer(0);
    while (sequence.step() == SQLITE_ROW) {
    }
    auto body_id = storeBody(db, write.body);
    if (!body_id.ok()) return body_id.error();
    Query outbox(db,
                 "INSERT INTO outbox (destination, number, kind, body, body_id, event_seq, created_ms, next_attempt_ms) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");  // body '': stores made before outbox_bodies have no default
    outbox.bind(1, write.destination).bind(2, number).bind(3, write.kind).bindBlob(4, kEmptyBlob).bind(5, *body_id);
    outbox.bind(6, event_seq).bind(7, now_ms).bind(8, now_ms);
    if (outbox.step() != SQLITE_DONE) return Error{outbox.error()};
    return Status::Ok();
  }

  // The id of an outbox body in outbox_bodies, stored once per distinct text (by SHA-256), so the
  // rows of a fan-out share it and a delivered-mark rewrites a small row, not the body.
  static Result<int64_t> storeBody(Connection& db, const std::string& body) {
    const std::string hash = fhir::sha256Hex(body);
    {
      Query insert(db, "INSERT INTO outbox_bodies (hash, body) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING");
      insert.bindBlob(1, hash).bindBlob(2, body);
      if (insert.step() != SQLITE_DONE) return Error{insert.error()};
      if (sqlite3_changes(db.handle()) > 0) return sqlite3_last_insert_rowid(db.handle());
    }
    Query existing(db, "SELECT id FROM outbox_bodies WHERE hash = ?");
    existing.bindBlob(1, hash);
    if (existing.step() != SQLITE_ROW) return Error{existing.error()};
    return existing.integer(0);
  }

  static Status insertAttempt(Connection& db, const DeliveryAttempt& attempt) {
    Query query(db, "INSERT INTO delivery_attempts (outbox_id, at_ms, http_status, error, duration_ms) VALUES (?, ?, ?, ?, ?)");
    query.bind(1, attempt.outbox_id).bind(2, attempt.at_ms).bind(3, int64_t{attempt.http_status});
    query.bind(4, attempt.error).bind(5, attempt.duration_ms);
    if (query.step() != SQLITE_DONE) return Error{query.error()};
    return Status::Ok();
  }

  // Runs `read(connection)` on a read connection borrowed for the call.
  template <typename Read>
  auto withReader(Read read) -> decltype(read(std::declval<Connection&>())) {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    return read(*reader);
  }

  // Runs a SELECT on a read connection and turns every row into a Row with `read(query)`.
  template <typename Row, typename Bind, typename Read>
  Result<std::vector<Row>> selectRows(const char* sql, Bind bind, Read read) {
    return withReader([&](Connection& db) { return sqlite::selectRows<Row>(db, sql, bind, read); });
  }

  // An outbox row read by `SELECT id, destination, number, kind, body, attempts, created_ms,
  // first_attempt_ms, next_attempt_ms, last_error`.
  static OutboxItem outboxItem(const Query& query) {
    return OutboxItem{query.integer(0), query.text(1),  query.integer(2),
                      query.text(3),    query.text(4),  static_cast<int>(query.integer(5)),
                      query.integer(6), query.integer(7), query.integer(8), query.text(9)};
  }

  static UnroutableWrite unroutableItem(const Query& query) {
    return {query.text(0), query.text(1), query.text(2), query.text(3), query.text(4), query.text(5)};
  }

  // A read connection borrowed for one call. Declared before the Querys that use it, so they are
  // reset before the connection goes back to the pool.
  class Lease {
   public:
    explicit Lease(SqliteStore& store) : store_(store) {
      auto connection = store.borrow();
      if (connection.ok()) connection_ = std::move(*connection);
      else error_ = connection.message();
    }
    ~Lease() {
      if (connection_) store_.giveBack(std::move(connection_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    bool ok() const { return connection_ != nullptr; }
    const std::string& error() const { return error_; }
    Connection& operator*() { return *connection_; }

   private:
    SqliteStore& store_;
    std::unique_ptr<Connection> connection_;
    std::string error_;
  };

  // Read connections: a small pool, each used by one thread at a time.
  Result<std::unique_ptr<Connection>> borrow() {
    {
      std::lock_guard lock(pool_mutex_);
      if (!pool_.empty()) {
        auto connection = std::move(pool_.back());
        pool_.pop_back();
        return connection;
      }
    }
    auto connection = std::make_unique<Connection>();
    Status status = connection->open(path_);
    if (!status.ok()) return Error{status.message()};
    return connection;
  }
  void giveBack(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(pool_mutex_);
    // Kept up to 64: a request thread per connection (64 under the benchmarks) reads during an
    // ingest; a connection opened per read (above 16 kept, as before) re-parsed the schema for
    // each statement it prepared.
    if (pool_.size() < 64) pool_.push_back(std::move(connection));
  }

  std::string path_;
  MergeHook merge_hook_;  // set before the first ingest
  std::unique_ptr<Connection> writer_connection_;
  std::thread writer_;
  std::unique_ptr<Connection> checkpoint_connection_;
  std::thread checkpointer_;
  std::condition_variable checkpoint_cv_;  // with queue_mutex_: only for stopping
  std::atomic<bool> wal_full_{false};
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<PendingJob>> queue_;
  bool stopping_ = false;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Connection>> pool_;
};

}  // namespace

Result<StorePtr> openSqliteStore(const std::string& data_dir) {
  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) return Error{"cannot create data directory " + data_dir + ": " + error.message()};
  auto store = std::make_shared<SqliteStore>((std::filesystem::path(data_dir) / "gateway.db").string());
  Status status = store->start();
  if (!status.ok()) return Error{status.message()};
  return StorePtr(store);
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include <sqlite3.h>

#include <atomic>
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
#include "gateway/store/store.h"
#include "gateway/store/time_util.h"
#include "mappers/common/ids.h"

namespace fhir::gateway {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  idem_key TEXT NOT NULL UNIQUE,
  received_at TEXT NOT NULL,
  payload BLOB NOT NULL,
  status INTEGER NOT NULL,
  answer BLOB NOT NULL,
  answer_is_payload INTEGER NOT NULL DEFAULT 0);  -- 1: the answer is the payload, not stored twice
CREATE TABLE IF NOT EXISTS resources (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
  content_hash TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resource_history (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
  event_seq INTEGER NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coverage_index (
  coverage_id TEXT NOT NULL, patient_id TEXT NOT NULL, payer_id TEXT NOT NULL,
  member_id TEXT NOT NULL, line_of_business TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL,
  PRIMARY KEY (coverage_id, patient_id));
CREATE INDEX IF NOT EXISTS coverage_by_member ON coverage_index (payer_id, member_id);
CREATE INDEX IF NOT EXISTS coverage_by_patient ON coverage_index (patient_id);
CREATE TABLE IF NOT EXISTS destination_seq (
  destination TEXT PRIMARY KEY, last_number INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  destination TEXT NOT NULL, number INTEGER NOT NULL, kind TEXT NOT NULL,
  body BLOB NOT NULL DEFAULT '',              -- only in rows written before outbox_bodies
  body_id INTEGER NOT NULL DEFAULT 0,         -- outbox_bodies.id, 0 when the body is inline
  event_seq INTEGER NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,          -- 0 pending, 1 delivered, 2 dead letter
  attempts INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL, first_attempt_ms INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL, delivered_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE (destination, number));
-- Only pending rows are indexed: a delivered-mark removes its entry from a small index instead
-- of moving it in one that holds every row ever sent (stores made earlier: migrate()).
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, number) WHERE status = 0;
CREATE TABLE IF NOT EXISTS outbox_bodies (
  id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS delivery_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, at_ms INTEGER NOT NULL,
  http_status INTEGER NOT NULL, error TEXT NOT NULL, duration_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_by_outbox ON delivery_attempts (outbox_id);
CREATE TABLE IF NOT EXISTS quarantine (
  id TEXT PRIMARY KEY, channel TEXT NOT NULL, received_at TEXT NOT NULL,
  content_type TEXT NOT NULL, payload BLOB NOT NULL, truncated INTEGER NOT NULL,
  outcome TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'quarantined',
  record INTEGER NOT NULL DEFAULT 0, replay_prefix BLOB NOT NULL DEFAULT '',
  replays INTEGER NOT NULL DEFAULT 0, replayed_at TEXT NOT NULL DEFAULT '',
  replay_status INTEGER NOT NULL DEFAULT 0, replay_answer BLOB NOT NULL DEFAULT '',
  replay_suffix BLOB NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS patient_demographics (
  patient_id TEXT PRIMARY KEY, family TEXT NOT NULL, given TEXT NOT NULL, birth_date TEXT NOT NULL,
  gender TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS patients_by_demographics ON patient_demographics (family, birth_date, given, gender);
CREATE TABLE IF NOT EXISTS subscriptions (
  id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT NOT NULL, resource_json TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unroutable (
  id INTEGER PRIMARY KEY AUTOINCREMENT, claim_id TEXT NOT NULL UNIQUE, patient_id TEXT NOT NULL,
  date_of_service TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, outcome TEXT NOT NULL,
  event_seq INTEGER NOT NULL, created_at TEXT NOT NULL, resolved_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS assertion_jti (
  client_id TEXT NOT NULL, jti TEXT NOT NULL, expires_ms INTEGER NOT NULL, PRIMARY KEY (client_id, jti)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS assertion_jti_expiry ON assertion_jti (expires_ms);
)sql";

// One SQLite connection with a cache of prepared statements. Used by one thread at a time.
class Connection {
 public:
  ~Connection() {
    for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  Status open(const std::string& path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return Error{"cannot open " + path + ": " + sqlite3_errstr(rc)};
    sqlite3_busy_timeout(db_, 10000);
    return exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;");
  }

  Status exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      return Error{std::string("sqlite: ") + text};
    }
    return Status::Ok();
  }

  sqlite3_stmt* prepare(const char* sql) {
    auto found = statements_.find(sql);
    if (found != statements_.end()) {
      sqlite3_reset(found->second);
      sqlite3_clear_bindings(found->second);
      return found->second;
    }
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) != SQLITE_OK) {
      return nullptr;
    }
    statements_.emplace(sql, statement);
    return statement;
  }

  std::string lastError() const { return std::string("sqlite: ") + sqlite3_errmsg(db_); }
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::map<const char*, sqlite3_stmt*> statements_;
};

// Binds and steps a cached statement.
class Query {
 public:
  Query(Connection& connection, const char* sql) : connection_(connection), statement_(connection.prepare(sql)) {}
  ~Query() {
    if (statement_ != nullptr) sqlite3_reset(statement_);
  }
  bool ok() const { return statement_ != nullptr; }

  Query& bind(int index, std::string_view text) {
    sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Query& bindBlob(int index, std::string_view bytes) {
    sqlite3_bind_blob(statement_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Query& bind(int index, int64_t value) {
    sqlite3_bind_int64(statement_, index, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(statement_); }
  int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  std::string text(int column) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(statement_, column));
    int size = sqlite3_column_bytes(statement_, column);
    return data == nullptr ? std::string() : std::string(data, static_cast<size_t>(size));
  }
  std::string error() const { return connection_.lastError(); }

 private:
  Connection& connection_;
  sqlite3_stmt* statement_;
};

// A zero-length blob (a null pointer would bind SQL NULL).
constexpr std::string_view kEmptyBlob{""};

std::string quarantineId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "q-%011llx-%08llx",
                static_cast<unsigned long long>(nowMs()),
                static_cast<unsigned long long>(random() & 0xffffffffULL));
  return buffer;
}

#define QUARANTINE_COLUMNS                                                                       \
  "id, channel, received_at, content_type, payload, truncated, outcome, record, replay_prefix, status, " \
  "replays, replayed_at, replay_status, replay_answer, replay_suffix"
// An outbox row's columns as outboxItem() reads them; the body is in outbox_bodies (shared by the
// rows of one event that carry the same body) or, in rows written before it existed, inline.
#define OUTBOX_COLUMNS                                                                                   \
  "id, destination, number, kind, "                                                                      \
  "CASE WHEN body_id = 0 THEN body ELSE (SELECT b.body FROM outbox_bodies b WHERE b.id = outbox.body_id) END, " \
  "attempts, created_ms, first_attempt_ms, next_attempt_ms, last_error"
// A stored event's answer: the payload itself when answer_is_payload (kept once).
#define EVENT_ANSWER "CASE WHEN answer_is_payload THEN payload ELSE answer END"
// A current resource's JSON: rows written since resource_history holds it keep an empty json.
#define RESOURCE_JSON(r)                                                                                 \
  "CASE WHEN length(" r ".json) > 0 THEN " r ".json ELSE (SELECT h.json FROM resource_history h "         \
  "WHERE h.type = " r ".type AND h.id = " r ".id AND h.version = " r ".version) END"
#define DEMOGRAPHICS_OF(json)                                                                        \
  "COALESCE(json_extract(" json ", '$.name[0].family'), ''), COALESCE(json_extract(" json ", '$.name[0].given[0]'), ''), " \
  "COALESCE(json_extract(" json ", '$.birthDate'), ''), COALESCE(json_extract(" json ", '$.gender'), '')"

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
    status = writer_connection_->exec(kSchema);
    if (!status.ok()) return status;
    status = migrate(*writer_connection_);
    if (!status.ok()) return status;
    // WAL checkpoints run on their own connection and thread, so the writer's commits do not wait
    // for the database file's fsync (automatic checkpoints would run inside a commit).
    status = writer_connection_->exec("PRAGMA wal_autocheckpoint=0");
    if (!status.ok()) return status;
    checkpoint_connection_ = std::make_unique<Connection>();
    status = checkpoint_connection_->open(path_);
    if (!status.ok()) return status;
    writer_ = std::thread([this] { writerLoop(); });
    checkpointer_ = std::thread([this] { checkpointLoop(); });
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
      Query query(db,
                  "INSERT INTO quarantine (id, channel, received_at, content_type, payload, truncated, outcome, record, "
                  "replay_prefix, replay_suffix) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      query.bind(1, id).bind(2, write.channel).bind(3, nowIso()).bind(4, write.content_type);
      query.bindBlob(5, write.payload).bind(6, int64_t{write.truncated ? 1 : 0}).bind(7, write.outcome_json);
      query.bind(8, int64_t{write.record ? 1 : 0}).bindBlob(9, write.replay_prefix);
      query.bindBlob(10, write.replay_suffix);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      return Status::Ok();
    });
    if (!status.ok()) return Error{status.message()};
    return id;
  }

  Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) override {
    return selectRows<QuarantineEntry>(
        "SELECT " QUARANTINE_COLUMNS " FROM quarantine ORDER BY received_at DESC, id DESC LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &quarantineItem);
  }

  Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) override {
    auto rows = selectRows<QuarantineEntry>("SELECT " QUARANTINE_COLUMNS " FROM quarantine WHERE id = ?",
                                            [&](Query& query) { query.bind(1, id); }, &quarantineItem);
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<QuarantineEntry>();
    return std::optional<QuarantineEntry>(std::move(rows->front()));
  }

  Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) override {
    return selectRows<QuarantineEntry>(
        "SELECT " QUARANTINE_COLUMNS " FROM quarantine WHERE status <> 'accepted' ORDER BY received_at, id LIMIT ?",
        [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); }, &quarantineItem);
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
      result = StoredResource{withMeta(query.text(2), query.integer(0), query.text(1)), query.integer(0)};
    } else if (rc != SQLITE_DONE) {
      return Error{query.error()};
    }
    return result;
  }

  Result<std::vector<mappers::CoverageFact>> coverageOf(std::string_view patient_id) override {
    return selectRows<mappers::CoverageFact>(
        "SELECT coverage_id, payer_id, member_id, line_of_business, start, end FROM coverage_index "
        "WHERE patient_id = ? ORDER BY start, coverage_id",
        [&](Query& query) { query.bind(1, patient_id); },
        [&](const Query& query) {
          mappers::CoverageFact fact;
          fact.coverage_id = query.text(0);
          fact.patient_id = std::string(patient_id);
          fact.payer_id = query.text(1);
          fact.member_id = query.text(2);
          fact.line_of_business = query.text(3);
          fact.start = query.text(4);
          fact.end = query.text(5);
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
    if (!enqueue(std::move(job))) {
      // Closing: the row stays pending and is sent again (same Idempotency-Key) after restart.
    }
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
    (void)enqueue(std::move(job));  // closing: the row stays as it was and is tried again after restart
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
    (void)enqueue(std::move(job));  // closing: the rows stay pending and are sent again after restart
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

  Result<std::vector<std::string>> patientsWithMember(std::string_view payer_id, std::string_view member_id) override {
    return selectRows<std::string>(
        "SELECT DISTINCT patient_id FROM coverage_index WHERE payer_id = ? AND member_id = ?",
        [&](Query& query) { query.bind(1, payer_id).bind(2, member_id); },
        [](const Query& query) { return query.text(0); });
  }

  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    return selectRows<std::string>(
        "SELECT patient_id FROM patient_demographics WHERE family = ? AND birth_date = ? AND given = ? AND gender = ? "
        "ORDER BY patient_id",
        [&](Query& query) { query.bind(1, who.family).bind(2, who.birth_date).bind(3, who.given).bind(4, who.gender); },
        [](const Query& query) { return query.text(0); });
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

  Status putSubscription(const SubscriptionRow& row) override {
    return runInWriter([&](Connection& db) -> Status {
      Query query(db, "INSERT OR REPLACE INTO subscriptions (id, status, error, resource_json) VALUES (?, ?, ?, ?)");
      query.bind(1, row.id).bind(2, row.status).bind(3, row.error).bind(4, row.resource_json);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      return Status::Ok();
    });
  }

  Status deleteSubscription(std::string_view id) override {
    return runInWriter([&](Connection& db) -> Status {
      Query query(db, "DELETE FROM subscriptions WHERE id = ?");
      query.bind(1, id);
      if (query.step() != SQLITE_DONE) return Error{query.error()};
      return Status::Ok();
    });
  }

  Result<std::vector<SubscriptionRow>> listSubscriptions() override {
    return selectRows<SubscriptionRow>(
        "SELECT id, status, error, resource_json FROM subscriptions ORDER BY id", [](Query&) {},
        [](const Query& query) {
          return SubscriptionRow{query.text(0), query.text(1), query.text(2), query.text(3)};
        });
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

  void writerLoop() {
    Connection& db = *writer_connection_;
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
      if (wal_full_.exchange(false)) (void)db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      std::vector<Status> results(batch.size());
      Status begun = db.exec("BEGIN IMMEDIATE");
      if (!begun.ok()) {
        for (auto& job : batch) job->done(begun);
        batch.clear();
        continue;
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        results[i] = db.exec("SAVEPOINT job");
        if (!results[i].ok()) continue;
        results[i] = batch[i]->job(db);
        if (results[i].ok()) results[i] = db.exec("RELEASE job");
        if (!results[i].ok()) {
          // Undo only this job; the others in the group still commit.
          (void)db.exec("ROLLBACK TO job");
          (void)db.exec("RELEASE job");
        }
      }
      Status committed = db.exec("COMMIT");
      if (!committed.ok()) (void)db.exec("ROLLBACK");
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
        return Status::Ok();
      }
      if (rc != SQLITE_DONE) return Error{existing.error()};
    }
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

    std::vector<ResourceChangeRecord> changes;
    for (const ResourceWrite& resource : commit.resources) {
      const std::string hash = mappers::sha256Hex(resource.json);
      int64_t version = 1;
      std::string previous;
      {
        Query current(db, "SELECT version, content_hash, " RESOURCE_JSON("r") " FROM resources r WHERE type = ? AND id = ?");
        current.bind(1, resource.type).bind(2, resource.id);
        int rc = current.step();
        if (rc == SQLITE_ROW) {
          if (current.text(1) == hash) continue;  // unchanged: no new version
          version = current.integer(0) + 1;
          previous = current.text(2);
        } else if (rc != SQLITE_DONE) {
          return Error{current.error()};
        }
      }
      changes.push_back(ResourceChangeRecord{resource.type, resource.id, std::move(previous), &resource.json});
      Query upsert(db, "INSERT OR REPLACE INTO resources (type, id, version, updated_at, content_hash, json) VALUES (?, ?, ?, ?, ?, ?)");
      // The JSON is kept once, in resource_history (RESOURCE_JSON reads it from there).
      upsert.bind(1, resource.type).bind(2, resource.id).bind(3, version).bind(4, now).bind(5, hash).bindBlob(6, kEmptyBlob);
      if (upsert.step() != SQLITE_DONE) return Error{upsert.error()};
      Query history(db, "INSERT INTO resource_history (type, id, version, updated_at, event_seq, json) VALUES (?, ?, ?, ?, ?, ?)");
      history.bind(1, resource.type).bind(2, resource.id).bind(3, version).bind(4, now).bind(5, seq).bindBlob(6, resource.json);
      if (history.step() != SQLITE_DONE) return Error{history.error()};
      if (resource.type == "Patient") {
        Status indexed = indexDemographics(db, resource.id, resource.json);
        if (!indexed.ok()) return indexed;
      }
    }

    for (const mappers::CoverageFact& fact : commit.coverage) {
      Query coverage(db,
                     "INSERT OR REPLACE INTO coverage_index (coverage_id, patient_id, payer_id, member_id, line_of_business, start, end) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)");
      coverage.bind(1, fact.coverage_id).bind(2, fact.patient_id).bind(3, fact.payer_id).bind(4, fact.member_id);
      coverage.bind(5, fact.line_of_business).bind(6, fact.start).bind(7, fact.end);
      if (coverage.step() != SQLITE_DONE) return Error{coverage.error()};
    }

    std::vector<OutboxWrite> outbox = commit.outbox;
    if (commit.on_changes && !changes.empty()) commit.on_changes(changes, outbox);
    for (const OutboxWrite& write : outbox) {
      Status status = insertOutbox(db, write, seq, now_ms);
      if (!status.ok()) return status;
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
    return Status::Ok();
  }

  // The demographic key of a stored Patient (name[0].family, name[0].given[0], birthDate,
  // gender), read by SQLite's JSON functions so the backfill in migrate() reads it the same way.
  static Status indexDemographics(Connection& db, const std::string& id, const std::string& patient_json) {
    Query query(db, "INSERT OR REPLACE INTO patient_demographics (patient_id, family, given, birth_date, gender) "
                    "VALUES (?1, " DEMOGRAPHICS_OF("?2") ")");
    query.bind(1, id).bind(2, patient_json);
    if (query.step() != SQLITE_DONE) return Error{query.error()};
    return Status::Ok();
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

  // Brings a store made by an earlier version up to the current schema.
  // Rows written before these columns existed keep their data where it was (an inline outbox body,
  // an answer stored beside its payload, a resource's JSON in `resources`); the reads take it from
  // there (OUTBOX_COLUMNS, EVENT_ANSWER, RESOURCE_JSON), so nothing has to be rewritten.
  static Status migrate(Connection& db) {
    const std::pair<const char*, const char*> columns[] = {
        {"quarantine", "record INTEGER NOT NULL DEFAULT 0"},
        {"quarantine", "replay_prefix BLOB NOT NULL DEFAULT ''"},
        {"quarantine", "replays INTEGER NOT NULL DEFAULT 0"},
        {"quarantine", "replayed_at TEXT NOT NULL DEFAULT ''"},
        {"quarantine", "replay_status INTEGER NOT NULL DEFAULT 0"},
        {"quarantine", "replay_answer BLOB NOT NULL DEFAULT ''"},
        {"quarantine", "replay_suffix BLOB NOT NULL DEFAULT ''"},
        {"events", "answer_is_payload INTEGER NOT NULL DEFAULT 0"},
        {"outbox", "body_id INTEGER NOT NULL DEFAULT 0"}};
    for (const auto& [table, column] : columns) {
      Status added = db.exec(("ALTER TABLE " + std::string(table) + " ADD COLUMN " + column).c_str());
      if (!added.ok() && added.message().find("duplicate column") == std::string::npos) return added;
    }
    Status dropped = db.exec("DROP INDEX IF EXISTS outbox_pending");  // replaced by outbox_due
    if (!dropped.ok()) return dropped;
    // Patients stored before the demographics index existed.
    return db.exec("INSERT OR IGNORE INTO patient_demographics (patient_id, family, given, birth_date, gender) "
                   "SELECT id, " DEMOGRAPHICS_OF("CAST(" RESOURCE_JSON("r") " AS TEXT)") " FROM resources r WHERE type = 'Patient' "
                   "AND NOT EXISTS (SELECT 1 FROM patient_demographics LIMIT 1)");
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
    const std::string hash = mappers::sha256Hex(body);
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

  static std::string withMeta(const std::string& text, int64_t version, const std::string& updated_at) {
    json::Document doc;
    json::ParseError error;
    if (!json::parse(text, doc, error) || !doc.IsObject()) return text;
    auto& allocator = doc.GetAllocator();
    json::Value* meta = json::find(doc, "meta");
    if (meta == nullptr || !meta->IsObject()) {
      json::addMember(doc, "meta", json::Value(rapidjson::kObjectType), allocator);
      meta = json::find(doc, "meta");
    }
    meta->RemoveMember("versionId");
    meta->RemoveMember("lastUpdated");
    json::addString(*meta, "versionId", std::to_string(version), allocator);
    json::addString(*meta, "lastUpdated", updated_at, allocator);
    return json::serialize(doc);
  }

  // Runs a SELECT on a read connection and turns every row into a Row with `read(query)`.
  template <typename Row, typename Bind, typename Read>
  Result<std::vector<Row>> selectRows(const char* sql, Bind bind, Read read) {
    Lease reader(*this);
    if (!reader.ok()) return Error{reader.error()};
    Query query(*reader, sql);
    bind(query);
    std::vector<Row> rows;
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) rows.push_back(read(query));
    if (rc != SQLITE_DONE) return Error{query.error()};
    return rows;
  }

  // An outbox row read by `SELECT id, destination, number, kind, body, attempts, created_ms,
  // first_attempt_ms, next_attempt_ms, last_error`.
  static OutboxItem outboxItem(const Query& query) {
    return OutboxItem{query.integer(0), query.text(1),  query.integer(2),
                      query.text(3),    query.text(4),  static_cast<int>(query.integer(5)),
                      query.integer(6), query.integer(7), query.integer(8), query.text(9)};
  }

  // A quarantine row read by `SELECT QUARANTINE_COLUMNS`.
  static QuarantineEntry quarantineItem(const Query& query) {
    QuarantineEntry entry;
    entry.id = query.text(0);
    entry.channel = query.text(1);
    entry.received_at = query.text(2);
    entry.content_type = query.text(3);
    entry.payload = query.text(4);
    entry.truncated = query.integer(5) != 0;
    entry.outcome_json = query.text(6);
    entry.record = query.integer(7) != 0;
    entry.replay_prefix = query.text(8);
    entry.status = query.text(9);
    entry.replays = query.integer(10);
    entry.replayed_at = query.text(11);
    entry.replay_status = static_cast<int>(query.integer(12));
    entry.replay_answer = query.text(13);
    entry.replay_suffix = query.text(14);
    return entry;
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
    if (pool_.size() < 16) pool_.push_back(std::move(connection));
  }

  std::string path_;
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

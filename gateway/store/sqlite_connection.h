// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SQLite store's connection and statement helpers, shared by the files that implement
// SqliteStore (sqlite_store.cc, sqlite_schema.cc, sqlite_leases.cc, sqlite_changes.cc,
// sqlite_staging.cc, sqlite_quarantine.cc, sqlite_merge.cc). Internal to gateway/store: nothing
// outside this folder includes it.

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::gateway::sqlite {

// One SQLite connection with a cache of prepared statements. Used by one thread at a time.
class Connection {
 public:
  ~Connection() {
    for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  Status open(const std::string& path) {
    // SQLite counts every allocation it makes under a global mutex, for sqlite3_memory_used(),
    // which nothing here reads (issue 12: sqlite3Malloc was 9% of the store writer's samples).
    // Only possible before SQLite initializes; a later call is refused and changes nothing.
    [[maybe_unused]] static const int kNoMemoryStatistics = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
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

  // One statement that returns no rows (BEGIN, SAVEPOINT, RELEASE, COMMIT), prepared once and
  // kept: the writer runs four per job, and exec() parses the text every time (issue 12).
  Status run(const char* sql) {
    sqlite3_stmt* statement = prepare(sql);
    if (statement == nullptr) return Error{lastError()};
    const int rc = sqlite3_step(statement);
    Status status = rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : Status(Error{lastError()});
    sqlite3_reset(statement);
    return status;
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

// Runs a SELECT on `db` and turns every row into a Row with `read(query)`; `bind(query)` binds
// its parameters.
template <typename Row, typename Bind, typename Read>
Result<std::vector<Row>> selectRows(Connection& db, const char* sql, Bind bind, Read read) {
  Query query(db, sql);
  if (!query.ok()) return Error{db.lastError()};
  bind(query);
  std::vector<Row> rows;
  int rc;
  while ((rc = query.step()) == SQLITE_ROW) rows.push_back(read(query));
  if (rc != SQLITE_DONE) return Error{query.error()};
  return rows;
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


// Creates the tables a store needs and brings one made by an earlier version up to date
// (sqlite_schema.cc).
Status createSchema(Connection& db);

// Tables of the merge (issue 11): contributions, patient clusters, conflicts, claim-file
// evidence of coverage, routed claims and routing conflicts.
extern const char* const kMergeSchema;

}  // namespace fhir::gateway::sqlite

namespace fhir::gateway {
class MergeTx;
namespace sqlite {
// The merge's view of the writer's transaction on `db`.
std::unique_ptr<MergeTx> makeMergeTx(Connection& db);
// Once per store: resources stored before the merge existed become "stored" contributions.
Status backfillContributions(Connection& db);
}  // namespace sqlite
}  // namespace fhir::gateway

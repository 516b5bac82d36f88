// SPDX-License-Identifier: Apache-2.0
#pragma once

// The PostgreSQL store's connection and statement helpers (libpq), shared by the pg_*.cc files.
// Internal to gateway/store: nothing outside this folder includes it.
//
// Why libpq and not POCO Data/PostgreSQL: POCO reports errors by exceptions (our components
// return values), hides SQLSTATEs behind them (the writer retries a group on 40P01/40001 and
// must tell them from other errors), and has no say over transactions, binary bytea parameters
// or result formats. libpq gives all of that in a small C API.
//
// Conventions: every string parameter is sent in binary format with its length (so text may hold
// any bytes the server accepts and bytea any bytes at all); integers are sent as decimal text;
// results come back in binary format and are read by column type (integer(), text()).

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::gateway::pg {

// How to reach the server. The password is kept here only (read from the configured file); it
// never goes into a URL, a message or a log line.
struct ConnectOptions {
  std::string url;       // postgresql://[user@]host[:port]/database, without a password
  std::string password;  // empty: none (trust, peer, or a PGPASSFILE of the operator's)
  std::string sslmode;   // empty: libpq's default ("prefer")
  std::string schema;    // the tables' schema; created when missing
  std::string application_name = "fhir-gateway";
};

// The rows of one statement, read in binary format.
class Rows {
 public:
  Rows() = default;
  explicit Rows(PGresult* result) : result_(result, &PQclear) {}
  int size() const { return result_ ? PQntuples(result_.get()) : 0; }
  bool empty() const { return size() == 0; }
  bool null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string text(int row, int column) const;
  int64_t integer(int row, int column) const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;

 private:
  std::shared_ptr<PGresult> result_;
};

// Round trips and statements a connection ran (GATEWAY_PG_TRACE, pgWriterCounters).
struct Counters {
  int64_t round_trips = 0;
  int64_t statements = 0;
};

// One connection with its prepared statements. Used by one thread at a time.
//
// Statements whose rows are not needed at once are queued (queue(), Query::later()) and go to the
// server in pipeline mode (libpq 14+) with the next statement that needs its rows, or with
// flush(): one round trip for all of them. They run in the order they were queued, after the
// statements before them, so a later statement sees what an earlier one wrote. The first error
// among them is the error of the call that sent them (the statements after it are not run, and
// an open transaction is then in the failed state, as after any error). Each queued statement
// carries the connection's current tag (setTag): failedTag() tells the writer whose statement it
// was. The pipeline is sent in blocking mode; its results are command tags and a few small rows,
// far below what could fill the socket buffers while the client is still sending.
class Connection {
 public:
  using OnRows = std::function<Status(const Rows&)>;

  explicit Connection(ConnectOptions options) : options_(std::move(options)) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (or reconnects after the server went away) and sets the search_path.
  Status open();
  bool broken() const { return conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK; }

  // Runs statements without parameters (BEGIN, COMMIT, SAVEPOINT, DDL).
  Status exec(const char* sql);
  // Runs a statement with parameters through a statement prepared once per connection (keyed by
  // the SQL text's address: pass string literals).
  Result<Rows> run(const char* sql, const std::vector<std::string>& values, const std::vector<int>& formats);

  // The same for a statement built at run time (search): not prepared, nothing kept.
  Result<Rows> runText(const std::string& sql, const std::vector<std::string>& values, const std::vector<int>& formats);

  // Queues a statement (prepared once, as run()); `on_rows`, when given, sees its rows when the
  // queue is sent, and its error is the sending call's.
  void queue(const char* sql, std::vector<std::string> values, std::vector<int> formats, OnRows on_rows = {});
  // Queues a statement built at run time (not prepared), or one without parameters (SAVEPOINT).
  void queueText(std::string sql, std::vector<std::string> values = {}, std::vector<int> formats = {},
                 OnRows on_rows = {});
  // Sends the queue, if any (one round trip).
  Status flush();
  // Drops the queue unsent (before a ROLLBACK of the transaction it belonged to).
  void discard() { queue_.clear(); }
  bool queued() const { return !queue_.empty(); }
  // The tag queued statements carry from now on; the tag of the statement that failed last
  // (-1 when the last failure was not a queued statement's).
  void setTag(int tag) { tag_ = tag; }
  int failedTag() const { return failed_tag_; }
  const Counters& counters() const { return counters_; }

  // SQLSTATE of the last failed statement ("" when it did not fail with one).
  const std::string& sqlstate() const { return sqlstate_; }
  // A deadlock or serialization failure: the whole transaction may be run again.
  bool retryable() const { return sqlstate_ == "40P01" || sqlstate_ == "40001"; }
  const ConnectOptions& options() const { return options_; }

 private:
  struct Pending {
    const char* prepared_sql = nullptr;  // run() style (prepared once), or
    std::string text_sql;                // runText() style
    std::vector<std::string> values;
    std::vector<int> formats;
    OnRows on_rows;
    int tag = -1;
  };
  Error failure(const char* what, PGresult* result);
  // The connection is in no known state (a send failed, a result is missing): closed, so the
  // next use opens it again (broken()).
  Error lost(const std::string& message);
  std::string prepare(const char* sql, int params, bool& failed);
  // Sends the queue and then `last` (when given) in one pipeline; the rows of `last`.
  Result<Rows> sendQueue(Pending* last);

  ConnectOptions options_;
  PGconn* conn_ = nullptr;
  std::map<const char*, std::string> prepared_;
  int64_t next_name_ = 0;  // prepared statements are named s1, s2 ... per session
  std::string sqlstate_;
  std::vector<Pending> queue_;
  int tag_ = -1;
  int failed_tag_ = -1;
  Counters counters_;
};

// Binds parameters ($1, $2 ...) in order and runs a statement:
//   auto rows = Query(db, "SELECT ... WHERE a = $1 AND b = $2").text(a).integer(b).run();
class Query {
 public:
  Query(Connection& connection, const char* sql) : connection_(connection), sql_(sql) {}
  Query& text(std::string_view value) {
    values_.emplace_back(value);
    formats_.push_back(1);
    return *this;
  }
  Query& bytes(std::string_view value) { return text(value); }  // bytea: the same raw bytes
  // A value in PostgreSQL's text input format (an array literal for a text[] parameter).
  Query& literal(std::string_view value) {
    values_.emplace_back(value);
    formats_.push_back(0);
    return *this;
  }
  Query& integer(int64_t value) {
    values_.push_back(std::to_string(value));
    formats_.push_back(0);
    return *this;
  }
  Result<Rows> run() { return connection_.run(sql_, values_, formats_); }
  // Queues it (Connection::queue): sent with the next statement that needs rows.
  void later(Connection::OnRows on_rows = {}) {
    connection_.queue(sql_, std::move(values_), std::move(formats_), std::move(on_rows));
  }
  // For statements whose rows are not needed.
  Status done() {
    auto rows = run();
    if (!rows.ok()) return rows.error();
    return Status::Ok();
  }

 private:
  Connection& connection_;
  const char* sql_;
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// Creates the schema's tables, or brings them up to the current version (pg_schema.cc). Runs
// under an advisory lock, so several gateways starting at once migrate once.
Status migrate(Connection& db);

}  // namespace fhir::gateway::pg

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

// One connection with its prepared statements. Used by one thread at a time.
class Connection {
 public:
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

  // SQLSTATE of the last failed statement ("" when it did not fail with one).
  const std::string& sqlstate() const { return sqlstate_; }
  // A deadlock or serialization failure: the whole transaction may be run again.
  bool retryable() const { return sqlstate_ == "40P01" || sqlstate_ == "40001"; }
  const ConnectOptions& options() const { return options_; }

 private:
  Error failure(const char* what, PGresult* result);

  ConnectOptions options_;
  PGconn* conn_ = nullptr;
  std::map<const char*, std::string> prepared_;
  std::string sqlstate_;
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
  Query& integer(int64_t value) {
    values_.push_back(std::to_string(value));
    formats_.push_back(0);
    return *this;
  }
  Result<Rows> run() { return connection_.run(sql_, values_, formats_); }
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

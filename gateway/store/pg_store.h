// SPDX-License-Identifier: Apache-2.0
#pragma once

// The PostgreSQL store (issue 17): the Store contract of store.h on a PostgreSQL 15 database that
// several gateway processes share. docs/ARCHITECTURE.md ("PostgreSQL") says how it is built.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gateway/store/store.h"

namespace fhir::gateway {

struct PostgresStoreOptions {
  // postgresql://[user@]host[:port]/database[?options]; a password in it is refused.
  std::string url;
  std::string password;  // read by the caller from the configured passwordFile; never logged
  std::string sslmode;   // disable, allow, prefer, require, verify-ca, verify-full; empty: libpq's default
  std::string schema = "public";  // the tables' schema, created when missing
  int max_read_connections = 8;   // besides the writer's one
};

// Connects, applies the schema's missing migrations and starts the writer. Errors name the URL
// (never the password) and why.
Result<StorePtr> openPostgresStore(const PostgresStoreOptions& options);

// What a PostgreSQL store's writer sent so far: groups (transactions), jobs (commits, delivery
// marks ...), round trips and statements (pipelined statements count one each). Zero for
// another store. GATEWAY_PG_TRACE=1 prints them per group on stderr.
struct PgWriterCounters {
  int64_t groups = 0;
  int64_t jobs = 0;
  int64_t round_trips = 0;
  int64_t statements = 0;
};
PgWriterCounters pgWriterCounters(Store& store);

// `fhir-gateway store copy`: copies the SQLite store of `data_dir` into the (empty) PostgreSQL
// store `target` in one transaction; returns the rows copied per table (pg_copy.cc).
Result<std::vector<std::pair<std::string, int64_t>>> copySqliteToPostgres(const std::string& data_dir,
                                                                           const PostgresStoreOptions& target);

// True when `url` carries a password (postgresql://user:secret@host/...): the configuration
// refuses it, the password comes from a file.
bool postgresUrlHasPassword(const std::string& url);

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SQLite store's search index (issue 15; sqlite_search.cc, search_index.h). Internal to
// gateway/store.

#include <cstdint>
#include <string>

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// The index tables (created when missing).
Status createSearchSchema(Connection& db);
// Replaces the index rows of `write` (its current version, written by event `write_seq` at
// `updated_at`) by those of its JSON: its prepared rows (ResourceWrite::index, computed before the
// commit) when they are of this JSON, else computed here (searchindex::rowsOf). Called in the
// transaction that writes the resource.
Status writeSearchIndex(Connection& db, const ResourceWrite& write, int64_t write_seq, const std::string& updated_at);
// The upgrade pass: indexes every stored resource that has no index entry yet (a store written
// before the index existed), in transactions of 500.
Status indexUnindexedResources(Connection& db);
// One page of a search, read on `db`.
Result<SearchPage> search(Connection& db, const SearchRequest& request);

}  // namespace fhir::gateway::sqlite

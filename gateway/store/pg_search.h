// SPDX-License-Identifier: Apache-2.0
#pragma once

// The PostgreSQL store's search index (issue 15; pg_search.cc, search_index.h; its tables are
// migration 3 of pg_schema.cc). Internal to gateway/store.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gateway/store/pg_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::pg {

// Replaces the index rows of `write` (its current version, written by event `write_seq` at
// `updated_at`) by those of its JSON: its prepared rows (ResourceWrite::index, computed before the
// commit) when they are of this JSON, else computed here (searchindex::rowsOf). Called in the
// transaction that writes the resource, after the resource's statement: it queues its statements
// on `db` (sent with the next round trip), and they write only when event `write_seq` wrote a
// version of the resource.
Status writeSearchIndex(Connection& db, const ResourceWrite& write, int64_t write_seq, const std::string& updated_at);
// The upgrade pass: indexes every stored resource without an index entry (a store written before
// migration 3), in transactions of 500 under an advisory lock (handles starting together index
// each resource once).
Status indexUnindexedResources(Connection& db);
// Runs one statement built at run time on a read connection.
using RunText = std::function<Result<Rows>(const std::string& sql, const std::vector<std::string>& values,
                                           const std::vector<int>& formats)>;
// One page of a search; every statement goes through `run`.
Result<SearchPage> search(const RunText& run, const SearchRequest& request);

}  // namespace fhir::gateway::pg

// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SQLite side of history and vread (issue 15): versions are kept in resource_history, one
// row per version with the commit (event_seq) that wrote it.

#include "gateway/store/search_index.h"
#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// The history indexes (by commit, and by type and commit), and, the first time they are made,
// a copy into resource_history of the current versions written before resource_history existed
// (their JSON is still in `resources`; event_seq 0). Idempotent.
Status prepareHistory(Connection& db);
using searchindex::withMeta;  // meta.versionId and meta.lastUpdated (search_index.h)
Result<std::optional<StoredResource>> selectVersion(Connection& db, std::string_view type, std::string_view id,
                                                    int64_t version);
Result<std::vector<ResourceVersion>> selectHistory(Connection& db, const HistoryQuery& query);

}  // namespace fhir::gateway::sqlite

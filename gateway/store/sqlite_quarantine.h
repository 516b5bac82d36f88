// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SQL of the quarantine's deduplication and paging (issue 14), beside sqlite_store.cc.

#include <string>

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// Adds the columns and indexes to a store made before them (payload digest, count, last arrival).
Status prepareQuarantine(Connection& db);
// Keeps `write` as entry `id`, or counts it on the still-quarantined entry of the same channel
// and payload digest; returns the id of the entry that holds it.
Result<std::string> insertQuarantine(Connection& db, const std::string& id, const QuarantineWrite& write,
                                     const std::string& now);
Result<QuarantinePage> selectQuarantinePage(Connection& db, const QuarantineQuery& query);
// The dedup columns of entry `id` (count, last arrival, digest, payload bytes) into `entry`.
Status readQuarantineCounts(Connection& db, QuarantineEntry& entry);
// A quarantine row read by `SELECT QUARANTINE_COLUMNS` (sqlite_connection.h).
QuarantineEntry quarantineEntryOf(const Query& query);

}  // namespace fhir::gateway::sqlite

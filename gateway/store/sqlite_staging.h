// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SQL of staged payer files (Store::beginStagedFile and the rest), on a connection the SQLite
// store hands in: writes on its writer connection inside a group transaction, reads on a read
// connection.

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// Creates the staging tables and drops whatever an earlier process left staged.
Status prepareStaging(Connection& db);
Result<int64_t> insertStagedFile(Connection& db, std::string_view channel, std::string_view started_at);
Status insertStagedRecords(Connection& db, int64_t file, const std::vector<StagedRecord>& records);
Result<std::vector<StagedRecord>> selectStagedRecords(Connection& db, int64_t file, int64_t after_seq, size_t limit);
Status deleteStagedFile(Connection& db, int64_t file);
Result<std::pair<int64_t, int64_t>> countStaged(Connection& db);

}  // namespace fhir::gateway::sqlite

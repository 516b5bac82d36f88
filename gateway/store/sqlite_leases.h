// SPDX-License-Identifier: Apache-2.0
#pragma once

// SqliteStore's outbox leases and change log, as statements on a connection the caller holds
// (the writer's, inside its transaction, for writes). Internal to gateway/store.

#include <optional>
#include <string_view>
#include <vector>

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// sqlite_leases.cc
Status claimLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                  int64_t duration_ms, std::string_view dead_holder, OutboxLease& lease);
Status extendLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                   int64_t duration_ms, bool& extended);
Status releaseLease(Connection& db, std::string_view destination, std::string_view holder);
Result<std::optional<OutboxLease>> leaseOf(Connection& db, std::string_view destination);

// sqlite_changes.cc
// Records the change row of event `seq` (the changed resources as "type/id/version" lines).
Status recordChanges(Connection& db, int64_t seq, const std::string& context,
                     const std::vector<ChangedResource>& changed);
Result<std::vector<ChangeRecord>> changesAfter(Connection& db, int64_t after_seq, size_t limit);
Result<int64_t> changeCursor(Connection& db, std::string_view consumer);
// Moves the cursor when it is at `from_seq` (`moved` false otherwise) and drops change rows every
// consumer has processed. The caller writes the planned outbox rows in the same transaction.
Status moveChangeCursor(Connection& db, std::string_view consumer, int64_t from_seq, int64_t to_seq, bool& moved);

}  // namespace fhir::gateway::sqlite

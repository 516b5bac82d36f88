// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SQLite side of access (issue 13): where a resource came from, the append-only audit log,
// and the owner of each Subscription.

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// The audit table, its indexes and the subscriptions' owner column (idempotent).
Status prepareAccess(Connection& db);
Result<ResourceOrigins> selectOrigins(Connection& db, std::string_view type, std::string_view id, bool with_payloads);
Status insertAudit(Connection& db, const std::vector<AuditRecord>& records);
// Appends the AuditEvents of an ingest commit (IngestCommit::audit) in its transaction and says
// so in `outcome.audited`.
Status appendCommitAudit(Connection& db, const IngestCommit& commit, CommitOutcome& outcome);
Result<std::vector<AuditRecord>> selectAudit(Connection& db, const AuditQuery& query);

}  // namespace fhir::gateway::sqlite

// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the PostgreSQL store's files share: the writer's transaction state and the statements
// that run inside it (pg_writes.cc), the merge's view of it (pg_merge.cc). Internal to
// gateway/store.

#include <memory>
#include <string>
#include <vector>

#include "gateway/store/pg_connection.h"
#include "gateway/store/pg_store.h"
#include "gateway/store/search_index.h"
#include "gateway/store/store.h"

namespace fhir::gateway::pg {

// The connection options of a store's configuration (url, password, sslmode, schema), with the
// application name the server shows for the connection.
ConnectOptions connectOptionsOf(const PostgresStoreOptions& options, std::string application_name);

// An outbox row whose number is taken when the group's transaction ends (flushOutbox).
struct DeferredOutbox {
  OutboxWrite write;
  int64_t event_seq = 0;
  int64_t now_ms = 0;
};

// One group transaction of the writer: its jobs run one after another, each in a savepoint.
struct Tx {
  // Outbox rows of the jobs so far, numbered at the end of the group: the destinations' sequence
  // rows are locked in name order and only for the commit itself.
  std::vector<DeferredOutbox> outbox;
  // The group holds the change_order lock (it records changes).
  bool change_order_locked = false;
  // Set by a job whose outcome is "nothing written" after it wrote (a slot held by another
  // owner): the writer rolls back to the job's savepoint and still reports the job as done.
  bool undo_job = false;
};

// pg_writes.cc -----------------------------------------------------------------------------------
// Commits an accepted event into `tx` (IngestCommit's rules; store.h).
Status writeIngest(Connection& db, Tx& tx, const IngestCommit& commit, const MergeHook& merge_hook,
                   CommitOutcome& outcome);
// Numbers the group's outbox rows (per destination, gap-free, in input order) and writes them.
Status flushOutbox(Connection& db, Tx& tx);
Status markDelivered(Connection& db, const DeliveryAttempt& attempt);
Status markFailed(Connection& db, const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead);
// Leases: the row is claimed with FOR UPDATE SKIP LOCKED, so a claim never waits for another
// handle's transaction: a row another handle is deciding about stays that handle's this time.
Result<OutboxLease> claimLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                               int64_t duration_ms, std::string_view dead_holder);
// The change log.
Result<std::vector<ChangeRecord>> changesAfter(Connection& db, int64_t after_seq, size_t limit);
Result<bool> moveChangeCursor(Connection& db, std::string_view consumer, int64_t from_seq, int64_t to_seq);
// Quarantine: keeps `write` as entry `id`, or counts it on the quarantined entry of the same
// channel and payload digest (a unique index); returns the id of the entry that holds it.
Result<std::string> insertQuarantine(Connection& db, const std::string& id, const QuarantineWrite& write,
                                     const std::string& now);
Result<QuarantinePage> selectQuarantinePage(Connection& db, const QuarantineQuery& query);

// pg_merge.cc ------------------------------------------------------------------------------------
// Its writes are queued on `db` (sent with the next read); `read_only`: run at once (a read view,
// whose transaction refuses them).
std::unique_ptr<MergeTx> makeMergeTx(Connection& db, bool read_only = false);
// A contributions row selected as PG_CONTRIBUTION_COLUMNS (pg_merge.cc, pg_access.cc).
merge::Contribution contributionOf(const Rows& rows, int row);
#define PG_CONTRIBUTION_COLUMNS "type, id, contributor, kind, organization, rank, tiebreak, provenance, patient_id, json, payer"

// pg_access.cc -----------------------------------------------------------------------------------
Result<ResourceOrigins> selectOrigins(Connection& db, std::string_view type, std::string_view id, bool with_payloads);
Status insertAudit(Connection& db, const std::vector<AuditRecord>& records);
Result<std::vector<AuditRecord>> selectAudit(Connection& db, const AuditQuery& query);

// pg_history.cc ----------------------------------------------------------------------------------
using searchindex::withMeta;  // meta.versionId and meta.lastUpdated (search_index.h)
Result<std::optional<StoredResource>> selectVersion(Connection& db, std::string_view type, std::string_view id,
                                                    int64_t version);
Result<std::vector<ResourceVersion>> selectHistory(Connection& db, const HistoryQuery& query);

}  // namespace fhir::gateway::pg

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Durable Bulk export jobs (issue 16, contracts/query.md "Bulk Data export"): what was asked
// (kept unchanged from the kick-off) and how far the worker got (saved after every page it wrote
// and synced), so a restarted gateway, or another gateway on the same PostgreSQL store, resumes a
// job where its files end. A store duty (issue 17): SQLite beside the files (one process), or
// the PostgreSQL store's `export_jobs` table that every instance shares (pg_export_jobs.cc).
//
// The contract (tests/gateway/export_test.cc, ExportJobs/Stores.* on both stores):
// - create() makes a job durable before it returns; find() reads it back as saved.
// - saveProgress() replaces the job's status, progress, outputs and errors in one transaction;
//   the request part (owner, level, types, filters, members, transaction time) never changes.
// - Leases: one worker of one instance runs a job at a time. takeLease() gives the job's lease
//   to `holder` until `expires_ms` when the job is unfinished and nobody holds it, its lease
//   expired (expiry <= now_ms: the holder died), or `holder` holds it already (a renewal);
//   false when another holder's lease is live, or the job ended or is gone. A saveProgress() of a
//   job whose lease_holder is set saves only while that holder still holds the lease (its
//   own expired lease that nobody took over counts) and renews it to the job's
//   lease_expires_ms; false: another holder took the job over or it is gone (cancelled), and
//   nothing changed. With an empty lease_holder saveProgress() saves whoever holds it and
//   leaves the lease as it is. releaseLease() frees the holder's lease (a clean stop: another
//   instance may take the job at once).
// - unfinished(): the jobs whose status is "queued" or "running", oldest first (what a worker
//   takes), with their leases; ended(before_ms): the finished, failed or cancelled jobs that
//   ended before.
// - remove() forgets a job (its files are the caller's); removing an unknown id is no error.
// - Thread-safe: every method may be called from any thread, and several handles (processes)
//   may share one store.
// - Errors are failures of the database, never "not found" (an empty optional).
// - Lease times are the callers' clocks (milliseconds since the epoch), as the outbox leases':
//   instances sharing a store keep their clocks in step (NTP).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::gateway {
struct PostgresStoreOptions;  // pg_store.h
}

namespace fhir::gateway::exports {

// One NDJSON file of a job: its resource type, its file name in the job's folder, how many lines.
struct ExportFile {
  std::string type;
  std::string name;
  int64_t count = 0;
};

struct ExportJob {
  // What was asked (kick-off).
  std::string id;
  std::string owner;        // the client that started it; empty: the gateway runs open
  std::string level;        // "system", "patient" or "group"
  std::string group_id;     // level "group"
  std::string request;      // the kick-off URL as the manifest's `request` gives it
  std::string export_type;  // e.g. "hl7.fhir.us.davinci-atr"; empty: none
  std::vector<std::string> types;         // exported types, in the order they are written
  std::string since;                      // `_since` (instant); empty: none
  std::vector<std::string> type_filters;  // `_typeFilter` values ("Type?query")
  std::vector<std::string> members;       // level "group": the member Patient ids
  std::vector<std::string> new_members;   // members added after `since` (all their resources)
  std::vector<std::string> refused;       // types asked for that the client may not export
  std::string transaction_time;           // the instant the export reflects
  int64_t created_ms = 0;

  // How far it got.
  std::string status = "queued";  // queued, running, done, failed, cancelled
  std::string failure;            // status "failed": why
  int64_t ended_ms = 0;           // done, failed, cancelled: when
  int64_t unit = 0;               // index into `types` being written
  std::string cursor;             // search cursor within types[unit]; empty: from the start
  int64_t file_seq = 0;           // number of the open file of types[unit] (0: none open)
  int64_t file_count = 0;         // lines in the open file
  int64_t file_bytes = 0;         // bytes in the open file (a resume truncates it to this)
  int64_t written = 0;            // resources written so far, all files
  std::vector<ExportFile> outputs;  // closed files, in order
  std::vector<ExportFile> errors;   // OperationOutcome NDJSON files

  // Who runs it (read back by find() and unfinished(); see the lease rules above).
  std::string lease_holder;   // empty: nobody
  int64_t lease_expires_ms = 0;
};

class ExportJobStore {
 public:
  virtual ~ExportJobStore() = default;
  virtual Status create(const ExportJob& job) = 0;
  virtual Result<std::optional<ExportJob>> find(std::string_view id) = 0;
  // True when saved; false when the job's lease (lease_holder set) is another's or the job is gone.
  virtual Result<bool> saveProgress(const ExportJob& job) = 0;
  virtual Result<bool> takeLease(std::string_view id, std::string_view holder, int64_t now_ms, int64_t expires_ms) = 0;
  virtual Status releaseLease(std::string_view id, std::string_view holder) = 0;
  virtual Result<std::vector<ExportJob>> unfinished() = 0;
  virtual Result<std::vector<ExportJob>> ended(int64_t before_ms) = 0;
  virtual Status remove(std::string_view id) = 0;
};
using ExportJobStorePtr = std::shared_ptr<ExportJobStore>;

// The jobs in SQLite at `path` (created when missing; WAL, synchronous=FULL).
Result<ExportJobStorePtr> openSqliteExportJobs(const std::string& path);
// The jobs in the PostgreSQL store `options` names (its `export_jobs` table, migration 6;
// applies missing migrations as opening the store does). A connection of its own.
Result<ExportJobStorePtr> openPostgresExportJobs(const PostgresStoreOptions& options);

// The request part of a job as JSON and back (what a store keeps in one column).
std::string requestJson(const ExportJob& job);
Status readRequestJson(std::string_view text, ExportJob& job);
std::string filesJson(const std::vector<ExportFile>& files);
Status readFilesJson(std::string_view text, std::vector<ExportFile>& files);

}  // namespace fhir::gateway::exports

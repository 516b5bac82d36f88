// SPDX-License-Identifier: Apache-2.0
#pragma once

// Bulk Data export (issue 16, contracts/query.md "Bulk Data export", Bulk Data Access IG 2.0):
// kick-off, status, manifest, files, cancel and expiry, and the workers that write the files.
//
// - A kick-off is checked (parameters, the caller's kind and scopes, the Group) and becomes a
//   durable job (export_jobs.h) before it is answered 202.
// - Workers (export.maxConcurrentJobs threads, at the lowest CPU priority so ingest comes first)
//   stream each type from the store in keyset pages (Store::search, `_count` 1000), through the
//   access policy of the client that started the job (AccessPolicy::visible), into NDJSON files
//   under export.dir/<job>/ (default <dataDir>/export), split at export.maxResourcesPerFile (and at max_file_bytes,
//   so a file served from memory stays bounded). Pages are appended without a sync; a checkpoint
//   (every checkpoint_pages pages or checkpoint_ms, at the end of each type and on stop) syncs
//   the open file and then saves the job's cursor with the file's length. A restarted gateway
//   truncates the open file to the saved length and goes on from the saved cursor: every
//   resource is in the files once.
// - Several instances (PostgreSQL store, issue 17): the jobs are the store's (export_jobs.h), so
//   any instance answers status, manifest, files and DELETE; the files are in export.dir, a
//   folder they all mount. A worker takes a job's lease before it works on it, renews it at each
//   checkpoint (and while it waits), and writes a page only while its lease is live by its own
//   clock; once a holder died, its lease expires and another instance's worker takes the job
//   over and resumes it exactly as a restarted gateway does. A clean stop frees the lease.
// - Patient and Group level: the R4 Patient compartment (fhir_profiles/r4-core/
//   CompartmentDefinition-patient.json) decides what belongs to a patient: a resource of a
//   compartment type belongs when one of its compartment parameters references the patient.
// - Jobs and files belong to the client that started them: anyone else gets 404.
// - A finished job and its files are removed export.retentionHours after it ended.
// Thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/auth/policy.h"
#include "gateway/config/config.h"
#include "gateway/store/export_jobs.h"
#include "gateway/ingest/answer.h"
#include "gateway/store/store.h"

namespace fhir::gateway::exports {

// The Patient compartment: resource type -> the search parameters that put it in a patient's
// compartment ("Patient" itself has "{def}", which is the patient).
using Compartment = std::map<std::string, std::vector<std::string>, std::less<>>;
Result<Compartment> loadCompartment(const std::string& path);
// FHIR_GATEWAY_PROFILES (or the bundled fhir_profiles) + /r4-core/CompartmentDefinition-patient.json.
std::string defaultCompartmentPath();

// A kick-off as the route read it (GET query or POST Parameters).
struct KickOff {
  std::string level;     // "system", "patient", "group"
  std::string group_id;  // level "group"
  std::string request;   // the kick-off URL (manifest `request`)
  bool respond_async = false;  // Prefer: respond-async
  std::vector<std::string> output_formats;  // `_outputFormat` values
  std::vector<std::string> types;           // `_type`, split at commas
  std::vector<std::string> since;           // `_since` values (one allowed)
  std::vector<std::string> type_filters;    // `_typeFilter`, each "Type?query"
  std::vector<std::string> export_types;    // `exportType` (Da Vinci ATR)
  std::vector<std::string> unknown;         // parameters the server does not know
};

struct ExportOptions {
  std::string dir;  // where the jobs' files live (export.dir; default <dataDir>/export), and a SQLite jobs.db
  // Who this service is to the job leases; empty: a name of its own (host, pid, random), made by
  // create(). One process per SQLite store: optionsOf() gives a name that stays the same across
  // restarts there, so a restarted gateway takes its jobs back at once.
  std::string holder;
  // How long a lease lasts unrenewed (export.leaseSeconds): another instance takes a job over
  // this long after its holder's last renewal. Renewed every third of it.
  int64_t lease_ms = 30000;
  double retention_hours = 24;
  int64_t max_resources_per_file = 100000;
  int64_t max_concurrent_jobs = 2;
  int retry_after_seconds = 1;  // told to status pollers; polling faster is 429
  int64_t page_size = 1000;
  // A file holds at most this many bytes, or one resource when that alone is larger (its
  // download is read into memory: the listener has no streamed bodies).
  int64_t max_file_bytes = 32 * 1024 * 1024;
  // Progress is made durable (file synced, cursor saved) after this many pages (0: by time
  // only) or this many milliseconds, whichever comes first; a crash redoes at most that much.
  int64_t checkpoint_pages = 50;
  int64_t checkpoint_ms = 1000;
  // A job reads at most this many resources a second (0: no limit), so a large export on a
  // shared store leaves its reads to ingest and search.
  int64_t max_resources_per_second = 0;
};

// An answer with the headers it adds (Content-Location, X-Progress, Expires).
struct ExportAnswer {
  Answer answer;
  std::vector<std::pair<std::string, std::string>> headers;
};

class ExportService {
 public:
  // `policy` null: every check allows (the gateway runs open). `jobs` null: SQLite at
  // <options.dir>/jobs.db.
  static Result<std::unique_ptr<ExportService>> create(StorePtr store, const auth::AccessPolicy* policy,
                                                       ExportOptions options, ExportJobStorePtr jobs = nullptr);
  // export.* of `config`; `dir` export.dir or <dataDir>/export.
  static ExportOptions optionsOf(const Config& config);
  ~ExportService();
  ExportService(const ExportService&) = delete;
  ExportService& operator=(const ExportService&) = delete;

  // Starts the workers; unfinished jobs of an earlier process are resumed.
  void start();
  // Stops the workers between pages (jobs stay durable and resume on the next start).
  void stop();

  // `public_base`: the server's base without "/fhir" ("http://127.0.0.1:8080").
  ExportAnswer kickOff(const KickOff& request, const auth::Caller& caller, const std::string& public_base);
  ExportAnswer status(const std::string& job_id, const auth::Caller& caller, const std::string& public_base);
  ExportAnswer cancel(const std::string& job_id, const auth::Caller& caller);
  ExportAnswer file(const std::string& job_id, const std::string& name, const auth::Caller& caller);

  // The status URL path of a job under the public base ("/export/status/<id>").
  static std::string statusPath(const std::string& job_id);
  // Tests: waits until no job is queued or running (or `timeout_ms` passed); true when idle.
  bool waitIdle(int64_t timeout_ms);
  // Tests: removes the jobs that expired now (the workers also do it about once a second).
  void sweepExpired();
  // Tests: a worker stops after this many pages of any job (0: never), as a killed process would.
  void stopAfterPages(int64_t pages) { stop_after_pages_ = pages; }
  // Tests: pages read and written so far by all workers of this service.
  int64_t pagesWritten() const { return pages_.load(); }
  const ExportOptions& options() const { return options_; }
  const ExportJobStorePtr& jobs() const { return jobs_; }

 private:
  ExportService(StorePtr store, const auth::AccessPolicy* policy, ExportOptions options, ExportJobStorePtr jobs,
                Compartment compartment);
  void work();
  // Runs one job until it ends, is cancelled or the service stops.
  void run(ExportJob& job);
  Status runUnit(ExportJob& job, const auth::Caller& caller, bool& stopped);
  // Saves the job's progress under this service's lease, renewed; false: the lease is lost
  // (another instance took the job over, or it was cancelled): the worker leaves the job.
  Result<bool> saveLeased(ExportJob& job);
  // Renews the lease without saving progress (a worker that waits); false: lost.
  Result<bool> renewLease(ExportJob& job);
  // The worker lost the job: when it is gone (cancelled on another instance) its folder goes.
  void leftJob(const ExportJob& job);
  Status writeErrors(ExportJob& job);
  bool ownedBy(const ExportJob& job, const auth::Caller& caller) const;
  bool expired(const ExportJob& job, int64_t now_ms) const;
  std::string jobDir(const std::string& id) const;
  bool cancelled(const std::string& id);

  StorePtr store_;
  const auth::AccessPolicy* policy_;
  ExportOptions options_;
  ExportJobStorePtr jobs_;
  Compartment compartment_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  bool stopping_ = true;
  std::set<std::string> active_;     // jobs a worker runs now
  std::set<std::string> cancelled_;  // jobs DELETE asked to stop
  std::map<std::string, int64_t> last_poll_ms_;
  std::map<std::string, int64_t> live_written_;  // running jobs: resources written so far (X-Progress)
  int64_t last_sweep_ms_ = 0;
  std::atomic<int64_t> stop_after_pages_{0};
  std::atomic<int64_t> pages_{0};
};

}  // namespace fhir::gateway::exports

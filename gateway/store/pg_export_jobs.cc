// SPDX-License-Identifier: Apache-2.0
// Bulk export jobs in the PostgreSQL store (export_jobs.h; table `export_jobs`, migration 6 of
// pg_schema.cc), shared by every gateway on the store: a job kicked off on one instance is
// polled, fetched and cancelled on any, and its lease decides which instance's worker runs it.
//
// A lease is taken, renewed and checked by single UPDATE statements whose WHERE says when it is
// free: PostgreSQL locks the row and re-checks the condition after waiting for a concurrent
// update, so two handles that try at once cannot both win. One connection, used by one caller
// at a time (the calls are few: a status poll, a checkpoint a second per running job); a
// connection the server dropped (a restart) is opened again and the call tried once more.
#include <mutex>

#include "gateway/store/export_jobs.h"
#include "gateway/store/pg_internal.h"
#include "gateway/store/pg_store.h"

namespace fhir::gateway::exports {
namespace {

using pg::Connection;
using pg::Query;
using pg::Rows;

constexpr const char* kSelect =
    "SELECT id, owner, created_ms, request, status, failure, ended_ms, unit, cursor, file_seq, file_count,"
    " file_bytes, written, outputs, errors, lease_holder, lease_expires_ms FROM export_jobs";

Result<std::vector<ExportJob>> jobsOf(const Rows& rows) {
  std::vector<ExportJob> jobs;
  for (int row = 0; row < rows.size(); ++row) {
    ExportJob job;
    job.id = rows.text(row, 0);
    job.owner = rows.text(row, 1);
    job.created_ms = rows.integer(row, 2);
    if (Status read = readRequestJson(rows.text(row, 3), job); !read.ok()) return Error{read.message()};
    job.status = rows.text(row, 4);
    job.failure = rows.text(row, 5);
    job.ended_ms = rows.integer(row, 6);
    job.unit = rows.integer(row, 7);
    job.cursor = rows.text(row, 8);
    job.file_seq = rows.integer(row, 9);
    job.file_count = rows.integer(row, 10);
    job.file_bytes = rows.integer(row, 11);
    job.written = rows.integer(row, 12);
    if (Status read = readFilesJson(rows.text(row, 13), job.outputs); !read.ok()) return Error{read.message()};
    if (Status read = readFilesJson(rows.text(row, 14), job.errors); !read.ok()) return Error{read.message()};
    job.lease_holder = rows.text(row, 15);
    job.lease_expires_ms = rows.integer(row, 16);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

// The progress columns of a job, in the order both the INSERT and the UPDATE name them.
Query& bindProgress(Query& query, const ExportJob& job) {
  return query.text(job.status)
      .bytes(job.failure)
      .integer(job.ended_ms)
      .integer(job.unit)
      .bytes(job.cursor)
      .integer(job.file_seq)
      .integer(job.file_count)
      .integer(job.file_bytes)
      .integer(job.written)
      .bytes(filesJson(job.outputs))
      .bytes(filesJson(job.errors));
}

class PgExportJobs final : public ExportJobStore {
 public:
  explicit PgExportJobs(pg::ConnectOptions options) : db_(std::move(options)) {}

  Status open() {
    Status opened = db_.open();
    if (!opened.ok()) return opened;
    return pg::migrate(db_);
  }

  Status create(const ExportJob& job) override {
    return call([&]() -> Status {
      Query insert(db_,
                   "INSERT INTO export_jobs (id, owner, created_ms, request, status, failure, ended_ms, unit, cursor,"
                   " file_seq, file_count, file_bytes, written, outputs, errors)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)");
      insert.text(job.id).text(job.owner).integer(job.created_ms).bytes(requestJson(job));
      return bindProgress(insert, job).done();
    });
  }

  Result<std::optional<ExportJob>> find(std::string_view id) override {
    auto jobs = select([&] {
      static const std::string sql = std::string(kSelect) + " WHERE id = $1";
      return Query(db_, sql.c_str()).text(id).run();
    });
    if (!jobs.ok()) return jobs.error();
    if (jobs->empty()) return std::optional<ExportJob>();
    return std::optional<ExportJob>(std::move(jobs->front()));
  }

  Result<bool> saveProgress(const ExportJob& job) override {
    return call([&]() -> Result<bool> {
      Query update(db_,
                   "UPDATE export_jobs SET status = $2, failure = $3, ended_ms = $4, unit = $5, cursor = $6,"
                   " file_seq = $7, file_count = $8, file_bytes = $9, written = $10, outputs = $11, errors = $12,"
                   " lease_expires_ms = CASE WHEN $13::text <> '' THEN $14::bigint ELSE lease_expires_ms END"
                   " WHERE id = $1 AND ($13::text = '' OR lease_holder = $13::text)");
      update.text(job.id);
      auto rows = bindProgress(update, job).text(job.lease_holder).integer(job.lease_expires_ms).run();
      if (!rows.ok()) return rows.error();
      return rows->affected() == 1;
    });
  }

  Result<bool> takeLease(std::string_view id, std::string_view holder, int64_t now_ms, int64_t expires_ms) override {
    return call([&]() -> Result<bool> {
      auto rows = Query(db_,
                        "UPDATE export_jobs SET lease_holder = $2::text, lease_expires_ms = $3 WHERE id = $1"
                        " AND status IN ('queued', 'running')"
                        " AND (lease_holder = '' OR lease_holder = $2::text OR lease_expires_ms <= $4)")
                      .text(id)
                      .text(holder)
                      .integer(expires_ms)
                      .integer(now_ms)
                      .run();
      if (!rows.ok()) return rows.error();
      return rows->affected() == 1;
    });
  }

  Status releaseLease(std::string_view id, std::string_view holder) override {
    return call([&]() -> Status {
      return Query(db_, "UPDATE export_jobs SET lease_holder = '', lease_expires_ms = 0 WHERE id = $1 AND lease_holder = $2")
          .text(id)
          .text(holder)
          .done();
    });
  }

  Result<std::vector<ExportJob>> unfinished() override {
    return select([&] {
      static const std::string sql = std::string(kSelect) + " WHERE status IN ('queued', 'running') ORDER BY created_ms, id";
      return Query(db_, sql.c_str()).run();
    });
  }

  Result<std::vector<ExportJob>> ended(int64_t before_ms) override {
    return select([&] {
      static const std::string sql =
          std::string(kSelect) + " WHERE status IN ('done', 'failed', 'cancelled') AND ended_ms < $1";
      return Query(db_, sql.c_str()).integer(before_ms).run();
    });
  }

  Status remove(std::string_view id) override {
    return call([&]() -> Status { return Query(db_, "DELETE FROM export_jobs WHERE id = $1").text(id).done(); });
  }

 private:
  // Runs `fn` on the connection, opened again when the server dropped it (then `fn` once more:
  // every statement here is one autocommitted statement, and running one again after a
  // connection lost before its answer does what the first run would have done, or fails as a
  // duplicate create).
  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    std::lock_guard lock(mutex_);
    if (db_.broken()) {
      if (Status reopened = db_.open(); !reopened.ok()) return Error{"export jobs: " + reopened.message()};
    }
    auto result = fn();
    if (!result.ok() && db_.broken() && db_.open().ok()) result = fn();
    if (!result.ok()) return Error{"export jobs: " + result.message()};
    return result;
  }

  template <typename Run>
  Result<std::vector<ExportJob>> select(Run run) {
    return call([&]() -> Result<std::vector<ExportJob>> {
      auto rows = run();
      if (!rows.ok()) return rows.error();
      return jobsOf(*rows);
    });
  }

  std::mutex mutex_;
  Connection db_;
};

}  // namespace

Result<ExportJobStorePtr> openPostgresExportJobs(const PostgresStoreOptions& options) {
  if (postgresUrlHasPassword(options.url)) {
    return Error{"store.url must not carry a password: give it in store.passwordFile"};
  }
  auto jobs = std::make_shared<PgExportJobs>(pg::connectOptionsOf(options, "fhir-gateway export"));
  if (Status opened = jobs->open(); !opened.ok()) return Error{"export jobs: " + opened.message()};
  return ExportJobStorePtr(jobs);
}

}  // namespace fhir::gateway::exports

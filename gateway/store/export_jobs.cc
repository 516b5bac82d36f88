// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/export_jobs.h"

#include <sqlite3.h>

#include <mutex>

#include "conformance/json/json.h"

namespace fhir::gateway::exports {
namespace {

void appendString(std::string& out, std::string_view text) {
  out += '"';
  json::appendEscaped(text, out);
  out += '"';
}

void appendList(std::string& out, std::string_view key, const std::vector<std::string>& values) {
  out += ',';
  appendString(out, key);
  out += ":[";
  for (size_t index = 0; index < values.size(); ++index) {
    if (index > 0) out += ',';
    appendString(out, values[index]);
  }
  out += ']';
}

Status readList(const json::Value& doc, std::string_view key, std::vector<std::string>& out) {
  out.clear();
  const json::Value* list = json::find(doc, key);
  if (list == nullptr) return Status::Ok();
  if (!list->IsArray()) return Error{"export job: '" + std::string(key) + "' is not an array"};
  for (const json::Value& item : list->GetArray()) {
    if (!json::isString(item)) return Error{"export job: '" + std::string(key) + "' holds a non-string"};
    out.emplace_back(json::stringView(item));
  }
  return Status::Ok();
}

std::string text(const json::Value& doc, std::string_view key) {
  return std::string(json::getString(doc, key).value_or(""));
}

class SqliteExportJobs final : public ExportJobStore {
 public:
  ~SqliteExportJobs() override {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  Status open(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      return Error{"cannot open export jobs " + path + ": " + (db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory")};
    }
    sqlite3_busy_timeout(db_, 10000);
    Status created = exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS export_jobs ("
        " id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL, request TEXT NOT NULL,"
        " status TEXT NOT NULL, failure TEXT NOT NULL DEFAULT '', ended_ms INTEGER NOT NULL DEFAULT 0,"
        " unit INTEGER NOT NULL DEFAULT 0, cursor TEXT NOT NULL DEFAULT '', file_seq INTEGER NOT NULL DEFAULT 0,"
        " file_count INTEGER NOT NULL DEFAULT 0, file_bytes INTEGER NOT NULL DEFAULT 0,"
        " written INTEGER NOT NULL DEFAULT 0, outputs TEXT NOT NULL DEFAULT '[]', errors TEXT NOT NULL DEFAULT '[]');"
        "CREATE INDEX IF NOT EXISTS export_jobs_status ON export_jobs(status, created_ms);");
    if (!created.ok()) return created;
    // Leases (issue 17): added to a jobs.db of an earlier version.
    Statement columns(db_, "SELECT count(*) FROM pragma_table_info('export_jobs') WHERE name = 'lease_holder'");
    if (!columns.ok() || columns.step() != SQLITE_ROW) return failure("read the columns");
    if (columns.columnInt(0) == 0) {
      return exec(
          "ALTER TABLE export_jobs ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';"
          "ALTER TABLE export_jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;");
    }
    return Status::Ok();
  }

  Status create(const ExportJob& job) override {
    std::lock_guard lock(mutex_);
    Statement statement(db_,
                        "INSERT INTO export_jobs (id, owner, created_ms, request, status, failure, ended_ms, unit, cursor,"
                        " file_seq, file_count, file_bytes, written, outputs, errors)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!statement.ok()) return failure("prepare insert");
    statement.text(1, job.id).text(2, job.owner).integer(3, job.created_ms).text(4, requestJson(job));
    bindProgress(statement, job, 5);
    if (statement.step() != SQLITE_DONE) return failure("insert");
    return Status::Ok();
  }

  Result<std::optional<ExportJob>> find(std::string_view id) override {
    std::lock_guard lock(mutex_);
    auto jobs = select(std::string(kSelect) + " WHERE id = ?", [&](Statement& statement) { statement.text(1, id); });
    if (!jobs.ok()) return jobs.error();
    if (jobs->empty()) return std::optional<ExportJob>();
    return std::optional<ExportJob>(std::move(jobs->front()));
  }

  Result<bool> saveProgress(const ExportJob& job) override {
    std::lock_guard lock(mutex_);
    Statement statement(db_,
                        "UPDATE export_jobs SET status = ?, failure = ?, ended_ms = ?, unit = ?, cursor = ?, file_seq = ?,"
                        " file_count = ?, file_bytes = ?, written = ?, outputs = ?, errors = ?,"
                        " lease_expires_ms = CASE WHEN ?13 <> '' THEN ?14 ELSE lease_expires_ms END"
                        " WHERE id = ?12 AND (?13 = '' OR lease_holder = ?13)");
    if (!statement.ok()) return failure("prepare update");
    bindProgress(statement, job, 1);
    statement.text(12, job.id).text(13, job.lease_holder).integer(14, job.lease_expires_ms);
    if (statement.step() != SQLITE_DONE) return failure("update");
    return sqlite3_changes(db_) == 1;
  }

  Result<bool> takeLease(std::string_view id, std::string_view holder, int64_t now_ms, int64_t expires_ms) override {
    std::lock_guard lock(mutex_);
    Statement statement(db_,
                        "UPDATE export_jobs SET lease_holder = ?2, lease_expires_ms = ?3 WHERE id = ?1"
                        " AND status IN ('queued', 'running') AND (lease_holder = '' OR lease_holder = ?2 OR lease_expires_ms <= ?4)");
    if (!statement.ok()) return failure("prepare lease");
    statement.text(1, id).text(2, holder).integer(3, expires_ms).integer(4, now_ms);
    if (statement.step() != SQLITE_DONE) return failure("lease");
    return sqlite3_changes(db_) == 1;
  }

  Status releaseLease(std::string_view id, std::string_view holder) override {
    std::lock_guard lock(mutex_);
    Statement statement(db_, "UPDATE export_jobs SET lease_holder = '', lease_expires_ms = 0 WHERE id = ? AND lease_holder = ?");
    if (!statement.ok()) return failure("prepare release");
    statement.text(1, id).text(2, holder);
    if (statement.step() != SQLITE_DONE) return failure("release");
    return Status::Ok();
  }

  Result<std::vector<ExportJob>> unfinished() override {
    std::lock_guard lock(mutex_);
    return select(std::string(kSelect) + " WHERE status IN ('queued', 'running') ORDER BY created_ms, id",
                  [](Statement&) {});
  }

  Result<std::vector<ExportJob>> ended(int64_t before_ms) override {
    std::lock_guard lock(mutex_);
    return select(std::string(kSelect) + " WHERE status IN ('done', 'failed', 'cancelled') AND ended_ms < ?",
                  [&](Statement& statement) { statement.integer(1, before_ms); });
  }

  Status remove(std::string_view id) override {
    std::lock_guard lock(mutex_);
    Statement statement(db_, "DELETE FROM export_jobs WHERE id = ?");
    if (!statement.ok()) return failure("prepare delete");
    statement.text(1, id);
    if (statement.step() != SQLITE_DONE) return failure("delete");
    return Status::Ok();
  }

 private:
  static constexpr const char* kSelect =
      "SELECT id, owner, created_ms, request, status, failure, ended_ms, unit, cursor, file_seq, file_count,"
      " file_bytes, written, outputs, errors, lease_holder, lease_expires_ms FROM export_jobs";

  class Statement {
   public:
    Statement(sqlite3* db, const std::string& sql) {
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement_, nullptr) != SQLITE_OK) statement_ = nullptr;
    }
    ~Statement() { sqlite3_finalize(statement_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    bool ok() const { return statement_ != nullptr; }
    Statement& text(int index, std::string_view value) {
      sqlite3_bind_text(statement_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
      return *this;
    }
    Statement& integer(int index, int64_t value) {
      sqlite3_bind_int64(statement_, index, value);
      return *this;
    }
    int step() { return sqlite3_step(statement_); }
    std::string column(int index) const {
      const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement_, index));
      return data != nullptr ? std::string(data, static_cast<size_t>(sqlite3_column_bytes(statement_, index))) : std::string();
    }
    int64_t columnInt(int index) const { return sqlite3_column_int64(statement_, index); }

   private:
    sqlite3_stmt* statement_ = nullptr;
  };

  static void bindProgress(Statement& statement, const ExportJob& job, int first) {
    statement.text(first, job.status)
        .text(first + 1, job.failure)
        .integer(first + 2, job.ended_ms)
        .integer(first + 3, job.unit)
        .text(first + 4, job.cursor)
        .integer(first + 5, job.file_seq)
        .integer(first + 6, job.file_count)
        .integer(first + 7, job.file_bytes)
        .integer(first + 8, job.written)
        .text(first + 9, filesJson(job.outputs))
        .text(first + 10, filesJson(job.errors));
  }

  template <typename Bind>
  Result<std::vector<ExportJob>> select(const std::string& sql, Bind bind) {
    Statement statement(db_, sql);
    if (!statement.ok()) return failure("prepare select");
    bind(statement);
    std::vector<ExportJob> jobs;
    int rc = SQLITE_ROW;
    while ((rc = statement.step()) == SQLITE_ROW) {
      ExportJob job;
      job.id = statement.column(0);
      job.owner = statement.column(1);
      job.created_ms = statement.columnInt(2);
      if (Status read = readRequestJson(statement.column(3), job); !read.ok()) return Error{read.message()};
      job.status = statement.column(4);
      job.failure = statement.column(5);
      job.ended_ms = statement.columnInt(6);
      job.unit = statement.columnInt(7);
      job.cursor = statement.column(8);
      job.file_seq = statement.columnInt(9);
      job.file_count = statement.columnInt(10);
      job.file_bytes = statement.columnInt(11);
      job.written = statement.columnInt(12);
      if (Status read = readFilesJson(statement.column(13), job.outputs); !read.ok()) return Error{read.message()};
      if (Status read = readFilesJson(statement.column(14), job.errors); !read.ok()) return Error{read.message()};
      job.lease_holder = statement.column(15);
      job.lease_expires_ms = statement.columnInt(16);
      jobs.push_back(std::move(job));
    }
    if (rc != SQLITE_DONE) return failure("select");
    return jobs;
  }

  Status exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      return Error{"export jobs: sqlite: " + why};
    }
    return Status::Ok();
  }

  Error failure(std::string_view what) const { return Error{"export jobs: " + std::string(what) + ": " + sqlite3_errmsg(db_)}; }

  std::mutex mutex_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::string requestJson(const ExportJob& job) {
  std::string out = "{";
  appendString(out, "level");
  out += ':';
  appendString(out, job.level);
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"groupId", &job.group_id},
                                   {"request", &job.request},
                                   {"exportType", &job.export_type},
                                   {"since", &job.since},
                                   {"transactionTime", &job.transaction_time}}) {
    out += ',';
    appendString(out, key);
    out += ':';
    appendString(out, *value);
  }
  appendList(out, "types", job.types);
  appendList(out, "typeFilters", job.type_filters);
  appendList(out, "members", job.members);
  appendList(out, "newMembers", job.new_members);
  appendList(out, "refused", job.refused);
  out += '}';
  return out;
}

Status readRequestJson(std::string_view text_in, ExportJob& job) {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text_in, doc, error) || !doc.IsObject()) return Error{"export job: the request is not a JSON object"};
  job.level = text(doc, "level");
  job.group_id = text(doc, "groupId");
  job.request = text(doc, "request");
  job.export_type = text(doc, "exportType");
  job.since = text(doc, "since");
  job.transaction_time = text(doc, "transactionTime");
  for (const auto& [key, list] : {std::pair<const char*, std::vector<std::string>*>{"types", &job.types},
                                  {"typeFilters", &job.type_filters},
                                  {"members", &job.members},
                                  {"newMembers", &job.new_members},
                                  {"refused", &job.refused}}) {
    if (Status read = readList(doc, key, *list); !read.ok()) return read;
  }
  return Status::Ok();
}

std::string filesJson(const std::vector<ExportFile>& files) {
  std::string out = "[";
  for (size_t index = 0; index < files.size(); ++index) {
    if (index > 0) out += ',';
    out += "{\"type\":";
    appendString(out, files[index].type);
    out += ",\"name\":";
    appendString(out, files[index].name);
    out += ",\"count\":" + std::to_string(files[index].count) + "}";
  }
  out += ']';
  return out;
}

Status readFilesJson(std::string_view text_in, std::vector<ExportFile>& files) {
  files.clear();
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text_in, doc, error) || !doc.IsArray()) return Error{"export job: the files are not a JSON array"};
  for (const json::Value& item : doc.GetArray()) {
    if (!item.IsObject()) return Error{"export job: a file is not a JSON object"};
    ExportFile file{text(item, "type"), text(item, "name"), 0};
    const json::Value* count = json::find(item, "count");
    if (count != nullptr) file.count = json::numberAsInt64(*count).value_or(0);
    files.push_back(std::move(file));
  }
  return Status::Ok();
}

Result<ExportJobStorePtr> openSqliteExportJobs(const std::string& path) {
  auto jobs = std::make_shared<SqliteExportJobs>();
  if (Status opened = jobs->open(path); !opened.ok()) return Error{opened.message()};
  return ExportJobStorePtr(jobs);
}

}  // namespace fhir::gateway::exports

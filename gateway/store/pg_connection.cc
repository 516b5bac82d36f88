// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/pg_connection.h"

#include <cstdlib>
#include <cstring>
#include <optional>

namespace fhir::gateway::pg {
namespace {

// Type OIDs of the columns the store reads (catalog/pg_type.h, stable across versions).
constexpr Oid kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23;

uint64_t bigEndian(const char* data, int size) {
  uint64_t value = 0;
  for (int i = 0; i < size; ++i) value = (value << 8) | static_cast<unsigned char>(data[i]);
  return value;
}

std::string trimmed(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

std::string Rows::text(int row, int column) const {
  const char* data = PQgetvalue(result_.get(), row, column);
  const int size = PQgetlength(result_.get(), row, column);
  return data == nullptr ? std::string() : std::string(data, static_cast<size_t>(size));
}

int64_t Rows::integer(int row, int column) const {
  if (null(row, column)) return 0;
  const char* data = PQgetvalue(result_.get(), row, column);
  const int size = PQgetlength(result_.get(), row, column);
  const Oid type = PQftype(result_.get(), column);
  if (type == kInt8 && size == 8) return static_cast<int64_t>(bigEndian(data, 8));
  if (type == kInt4 && size == 4) return static_cast<int32_t>(static_cast<uint32_t>(bigEndian(data, 4)));
  if (type == kInt2 && size == 2) return static_cast<int16_t>(static_cast<uint16_t>(bigEndian(data, 2)));
  if (type == kBool && size == 1) return data[0] != 0 ? 1 : 0;
  return std::strtoll(std::string(data, static_cast<size_t>(size)).c_str(), nullptr, 10);  // text
}

int64_t Rows::affected() const {
  const char* count = result_ ? PQcmdTuples(result_.get()) : nullptr;
  return count != nullptr && *count != '\0' ? std::atoll(count) : 0;
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

Status Connection::open() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  prepared_.clear();
  next_name_ = 0;
  queue_.clear();
  std::vector<const char*> keys{"dbname", "application_name", "client_encoding", "connect_timeout"};
  std::vector<const char*> values{options_.url.c_str(), options_.application_name.c_str(), "UTF8", "10"};
  if (!options_.password.empty()) {
    keys.push_back("password");
    values.push_back(options_.password.c_str());
  }
  if (!options_.sslmode.empty()) {
    keys.push_back("sslmode");
    values.push_back(options_.sslmode.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  // expand_dbname = 1: `dbname` is the URL; the keywords after it (password, sslmode) win over it.
  conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
  if (conn_ == nullptr) return Error{"postgresql: out of memory"};
  // Server notices ("already exists, skipping") are not errors: not printed on stderr.
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  if (PQstatus(conn_) != CONNECTION_OK) {
    // libpq's message names the host and port and why, never the password.
    return Error{"postgresql: cannot connect to " + options_.url + ": " + trimmed(PQerrorMessage(conn_))};
  }
  if (!options_.schema.empty()) {
    auto set = Query(*this, "SELECT set_config('search_path', quote_ident($1::text), false)").text(options_.schema).run();
    if (!set.ok()) return set.error();
  }
  // Payloads and resources (bytea over 2 kB) are compressed with lz4 rather than pglz: pglz took
  // about 4% of the writer's server time. A server built without lz4 refuses the setting and
  // keeps its default (the refusal leaves no transaction in a failed state: none is open).
  (void)exec("SET default_toast_compression = 'lz4'");
  return Status::Ok();
}

Error Connection::failure(const char* what, PGresult* result) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  sqlstate_ = state != nullptr ? state : "";
  std::string message = result != nullptr ? trimmed(PQresultErrorMessage(result)) : "";
  if (message.empty()) message = trimmed(PQerrorMessage(conn_));
  if (result != nullptr) PQclear(result);
  if (broken()) message = "connection lost: " + message;
  std::string statement(what);
  if (statement.size() > 80) statement = statement.substr(0, 77) + "...";
  return Error{"postgresql: " + message + " (in: " + statement + ")"};
}

Error Connection::lost(const std::string& message) {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  prepared_.clear();
  queue_.clear();
  sqlstate_.clear();
  return Error{"postgresql: connection lost: " + message};
}

Status Connection::exec(const char* sql) {
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  if (!queue_.empty()) {
    Pending last;
    last.text_sql = sql;
    last.tag = tag_;
    auto rows = sendQueue(&last);
    if (!rows.ok()) return rows.error();
    return Status::Ok();
  }
  ++counters_.round_trips;
  ++counters_.statements;
  failed_tag_ = -1;
  PGresult* result = PQexec(conn_, sql);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(sql, result);
  PQclear(result);
  sqlstate_.clear();
  return Status::Ok();
}

Result<Rows> Connection::run(const char* sql, const std::vector<std::string>& values, const std::vector<int>& formats) {
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  if (!queue_.empty()) {
    Pending last{sql, {}, values, formats, {}, tag_};
    return sendQueue(&last);
  }
  failed_tag_ = -1;
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    std::string name = "s" + std::to_string(++next_name_);
    ++counters_.round_trips;
    PGresult* prepared = PQprepare(conn_, name.c_str(), sql, static_cast<int>(values.size()), nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) return failure(sql, prepared);
    PQclear(prepared);
    found = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> pointers(values.size());
  std::vector<int> lengths(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    pointers[i] = values[i].c_str();
    lengths[i] = static_cast<int>(values[i].size());
  }
  ++counters_.round_trips;
  ++counters_.statements;
  PGresult* result = PQexecPrepared(conn_, found->second.c_str(), static_cast<int>(values.size()), pointers.data(),
                                    lengths.data(), formats.data(), 1);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(sql, result);
  sqlstate_.clear();
  return Rows(result);
}

Result<Rows> Connection::runText(const std::string& sql, const std::vector<std::string>& values,
                                 const std::vector<int>& formats) {
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  if (!queue_.empty()) {
    Pending last{nullptr, sql, values, formats, {}, tag_};
    return sendQueue(&last);
  }
  failed_tag_ = -1;
  std::vector<const char*> pointers(values.size());
  std::vector<int> lengths(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    pointers[i] = values[i].c_str();
    lengths[i] = static_cast<int>(values[i].size());
  }
  ++counters_.round_trips;
  ++counters_.statements;
  PGresult* result = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, pointers.data(),
                                  lengths.data(), formats.data(), 1);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(sql.c_str(), result);
  sqlstate_.clear();
  return Rows(result);
}

void Connection::queue(const char* sql, std::vector<std::string> values, std::vector<int> formats, OnRows on_rows) {
  queue_.push_back(Pending{sql, {}, std::move(values), std::move(formats), std::move(on_rows), tag_});
}

void Connection::queueText(std::string sql, std::vector<std::string> values, std::vector<int> formats, OnRows on_rows) {
  queue_.push_back(Pending{nullptr, std::move(sql), std::move(values), std::move(formats), std::move(on_rows), tag_});
}

Status Connection::flush() {
  if (queue_.empty()) return Status::Ok();
  auto sent = sendQueue(nullptr);
  if (!sent.ok()) return sent.error();
  return Status::Ok();
}

Result<Rows> Connection::sendQueue(Pending* last) {
  std::vector<Pending> batch = std::move(queue_);
  queue_.clear();
  if (last != nullptr) batch.push_back(std::move(*last));
  failed_tag_ = -1;
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  if (PQenterPipelineMode(conn_) != 1) return lost("cannot enter pipeline mode: " + trimmed(PQerrorMessage(conn_)));
  // One entry per result to read: a statement's Parse (prepared_key set) or its execution.
  struct Sent {
    size_t index;
    const char* prepared_key;
  };
  std::vector<Sent> sent;
  sent.reserve(batch.size() + 8);
  for (size_t i = 0; i < batch.size(); ++i) {
    const Pending& pending = batch[i];
    const int count = static_cast<int>(pending.values.size());
    std::vector<const char*> pointers(pending.values.size());
    std::vector<int> lengths(pending.values.size());
    for (size_t v = 0; v < pending.values.size(); ++v) {
      pointers[v] = pending.values[v].c_str();
      lengths[v] = static_cast<int>(pending.values[v].size());
    }
    int accepted = 0;
    if (pending.prepared_sql != nullptr) {
      auto found = prepared_.find(pending.prepared_sql);
      if (found == prepared_.end()) {
        std::string name = "s" + std::to_string(++next_name_);
        if (PQsendPrepare(conn_, name.c_str(), pending.prepared_sql, count, nullptr) != 1) {
          return lost(trimmed(PQerrorMessage(conn_)));
        }
        found = prepared_.emplace(pending.prepared_sql, std::move(name)).first;
        sent.push_back({i, pending.prepared_sql});
      }
      accepted = PQsendQueryPrepared(conn_, found->second.c_str(), count, pointers.data(), lengths.data(),
                                     pending.formats.data(), 1);
    } else {
      accepted = PQsendQueryParams(conn_, pending.text_sql.c_str(), count, nullptr, pointers.data(), lengths.data(),
                                   pending.formats.data(), 1);
    }
    if (accepted != 1) return lost(trimmed(PQerrorMessage(conn_)));
    sent.push_back({i, nullptr});
  }
  if (PQpipelineSync(conn_) != 1) return lost(trimmed(PQerrorMessage(conn_)));
  ++counters_.round_trips;
  counters_.statements += static_cast<int64_t>(batch.size());

  std::optional<Error> first_error;
  Rows last_rows;
  for (const Sent& entry : sent) {
    const Pending& pending = batch[entry.index];
    const char* what = pending.prepared_sql != nullptr ? pending.prepared_sql : pending.text_sql.c_str();
    PGresult* result = PQgetResult(conn_);
    if (result == nullptr) {  // the server went away
      Error gone = lost(trimmed(PQerrorMessage(conn_)) + " (in: " + std::string(what).substr(0, 77) + ")");
      return first_error ? *first_error : gone;
    }
    const ExecStatusType status = PQresultStatus(result);
    if (entry.prepared_key != nullptr) {
      if (status != PGRES_COMMAND_OK) prepared_.erase(entry.prepared_key);  // not kept by the server
      if (status != PGRES_COMMAND_OK && status != PGRES_PIPELINE_ABORTED && !first_error) {
        first_error = failure(what, result);
        failed_tag_ = pending.tag;
      } else {
        PQclear(result);
      }
    } else if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      Rows rows(result);
      if (!first_error && pending.on_rows) {
        Status seen = pending.on_rows(rows);
        if (!seen.ok()) {
          first_error = Error{seen.message()};
          failed_tag_ = pending.tag;
          sqlstate_.clear();
        }
      }
      if (last != nullptr && entry.index + 1 == batch.size()) last_rows = std::move(rows);
    } else if (status == PGRES_PIPELINE_ABORTED) {
      PQclear(result);  // after the first error: not run
    } else if (!first_error) {
      first_error = failure(what, result);
      failed_tag_ = pending.tag;
    } else {
      PQclear(result);
    }
    // Each command's results end with a null.
    for (PGresult* more = PQgetResult(conn_); more != nullptr; more = PQgetResult(conn_)) PQclear(more);
  }
  PGresult* sync = PQgetResult(conn_);
  const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  if (sync != nullptr) PQclear(sync);
  if (!synced || PQexitPipelineMode(conn_) != 1) {
    Error gone = lost("the pipeline did not end with its sync");
    return first_error ? *first_error : gone;
  }
  if (first_error) return *first_error;
  sqlstate_.clear();
  return last_rows;
}

}  // namespace fhir::gateway::pg

// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/pg_connection.h"

#include <cstdlib>
#include <cstring>

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

Status Connection::exec(const char* sql) {
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  PGresult* result = PQexec(conn_, sql);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(sql, result);
  PQclear(result);
  sqlstate_.clear();
  return Status::Ok();
}

Result<Rows> Connection::run(const char* sql, const std::vector<std::string>& values, const std::vector<int>& formats) {
  if (conn_ == nullptr) return Error{"postgresql: not connected"};
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size() + 1);
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
  std::vector<const char*> pointers(values.size());
  std::vector<int> lengths(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    pointers[i] = values[i].c_str();
    lengths[i] = static_cast<int>(values[i].size());
  }
  PGresult* result = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, pointers.data(),
                                  lengths.data(), formats.data(), 1);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(sql.c_str(), result);
  sqlstate_.clear();
  return Rows(result);
}

}  // namespace fhir::gateway::pg

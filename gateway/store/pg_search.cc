// SPDX-License-Identifier: Apache-2.0
// The PostgreSQL store's search index (issue 15, search_index.h): the rows written with each
// resource, the pass that indexes a store written before them, and the reads of a search.
#include "gateway/store/pg_search.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "gateway/store/search_index.h"

namespace fhir::gateway::pg {
namespace {

using searchindex::SqlCell;
using searchindex::SqlRow;
using searchindex::SqlValue;

// An arbitrary constant: the advisory lock the upgrade pass runs under.
constexpr const char* kIndexLock = "SELECT pg_advisory_xact_lock(7305917202615)";

// `?` placeholders to `$1`, `$2` ... (the statements built by search_exec.cc hold no `?` in
// literals), and the values as libpq sends them: text in binary format, numbers as text.
std::string numbered(const std::string& sql) {
  std::string out;
  int n = 0;
  for (char c : sql) {
    if (c == '?') out += "$" + std::to_string(++n);
    else out += c;
  }
  return out;
}

void encode(const std::vector<SqlValue>& params, std::vector<std::string>& values, std::vector<int>& formats) {
  for (const SqlValue& value : params) {
    switch (value.kind) {
      case SqlValue::Kind::kText:
        values.push_back(value.text);
        formats.push_back(1);
        break;
      case SqlValue::Kind::kInt:
        values.push_back(std::to_string(value.integer));
        formats.push_back(0);
        break;
      case SqlValue::Kind::kReal: {
        char buffer[40];
        std::snprintf(buffer, sizeof(buffer), "%.17g", value.real);
        values.emplace_back(buffer);
        formats.push_back(0);
        break;
      }
    }
  }
}

double float8(const std::string& bytes) {
  if (bytes.size() != 8) return 0;
  uint64_t bits = 0;
  for (char c : bytes) bits = (bits << 8) | static_cast<unsigned char>(c);
  double value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

std::vector<SqlRow> cellsOf(const Rows& rows, std::string_view kinds) {
  std::vector<SqlRow> out;
  out.reserve(static_cast<size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    SqlRow row(kinds.size());
    for (size_t c = 0; c < kinds.size(); ++c) {
      const int column = static_cast<int>(c);
      if (kinds[c] == 'i') row[c].integer = rows.integer(r, column);
      else if (kinds[c] == 'r') row[c].real = float8(rows.text(r, column));
      else row[c].text = rows.text(r, column);
    }
    out.push_back(std::move(row));
  }
  return out;
}

class Backend final : public searchindex::SearchBackend {
 public:
  explicit Backend(const RunText& run) : run_(run) {}
  Result<std::vector<SqlRow>> select(const std::string& sql, const std::vector<SqlValue>& params,
                                     std::string_view kinds) override {
    std::vector<std::string> values;
    std::vector<int> formats;
    encode(params, values, formats);
    auto rows = run_(numbered(sql), values, formats);
    if (!rows.ok()) return rows.error();
    return cellsOf(*rows, kinds);
  }
  Result<std::vector<searchindex::StoredJson>> resources(std::string_view type,
                                                         const std::vector<std::string>& ids) override {
    std::vector<searchindex::StoredJson> out;
    for (size_t start = 0; start < ids.size(); start += 500) {
      std::string sql = "SELECT r.id, r.version, r.updated_at, h.json FROM resources r JOIN resource_history h "
                        "ON h.type = r.type AND h.id = r.id AND h.version = r.version WHERE r.type = ? AND r.id IN (";
      std::vector<SqlValue> params{SqlValue::of(std::string(type))};
      for (size_t i = start; i < std::min(ids.size(), start + 500); ++i) {
        sql += i > start ? ", ?" : "?";
        params.push_back(SqlValue::of(ids[i]));
      }
      auto rows = select(sql + ")", params, "titt");
      if (!rows.ok()) return rows.error();
      for (SqlRow& row : *rows) {
        out.push_back({row[0].text, searchindex::withMeta(row[3].text, row[1].integer, row[2].text), row[1].integer});
      }
    }
    return out;
  }

 private:
  const RunText& run_;
};

// The statement that replaces a resource's index rows: one prepared statement whatever the
// number of rows, each column sent as one array (a statement text built per resource was parsed,
// analysed and planned by the server on every write: about a third of the writer's server time).
// It upserts the entry and deletes its old rows only when event $3 wrote a version of the
// resource (a write that changed nothing leaves its rows alone).
const std::string& indexStatement() {
  static const std::string sql = [] {
    std::string out =
        "WITH e AS (INSERT INTO search_entries (type, id, write_seq, updated_us) SELECT $1::text, $2::text, $3::bigint, "
        "$4::bigint WHERE EXISTS (SELECT 1 FROM resource_history h WHERE h.type = $1::text AND h.id = $2::text AND "
        "h.event_seq = $3::bigint) ON CONFLICT (type, id) DO UPDATE SET write_seq = excluded.write_seq, "
        "updated_us = excluded.updated_us RETURNING seq), d AS (DELETE FROM search_rows WHERE entry IN (SELECT seq FROM e)) "
        "INSERT INTO search_rows (entry, type, " SEARCH_ROW_COLUMNS ") SELECT e.seq, $1::text, v.* FROM e, unnest(";
    for (size_t c = 0; c < searchindex::kSearchRowKinds.size(); ++c) {
      const char kind = searchindex::kSearchRowKinds[c];
      out += (c > 0 ? ", $" : "$") + std::to_string(c + 5) + (kind == 'i' ? "::bigint[]" : kind == 'r' ? "::float8[]" : "::text[]");
    }
    return out + ") v";
  }();
  return sql;
}

// Appends one element to a PostgreSQL array literal (text input format).
void appendElement(std::string& array, const SqlValue& value) {
  array += array.size() > 1 ? "," : "";
  switch (value.kind) {
    case SqlValue::Kind::kText:
      array += '"';
      for (char c : value.text) {
        if (c == '"' || c == '\\') array += '\\';
        array += c;
      }
      array += '"';
      break;
    case SqlValue::Kind::kInt:
      array += std::to_string(value.integer);
      break;
    case SqlValue::Kind::kReal: {
      char buffer[40];
      std::snprintf(buffer, sizeof(buffer), "%.17g", value.real);
      array += buffer;
      break;
    }
  }
}

}  // namespace

Status writeSearchIndex(Connection& db, const ResourceWrite& write, int64_t write_seq, const std::string& updated_at) {
  auto registry = searchindex::registry();
  if (!registry.ok()) return registry.error();
  const std::vector<search::IndexRow> rows = searchindex::rowsOf(**registry, write, updated_at);
  const std::string_view kinds = searchindex::kSearchRowKinds;
  std::vector<std::string> columns(kinds.size(), "{");
  for (const search::IndexRow& row : rows) {
    const std::vector<SqlValue> cells = searchindex::rowValues(row);
    for (size_t c = 0; c < kinds.size(); ++c) {
      const SqlValue::Kind expected = kinds[c] == 'i'   ? SqlValue::Kind::kInt
                                      : kinds[c] == 'r' ? SqlValue::Kind::kReal
                                                        : SqlValue::Kind::kText;
      if (c >= cells.size() || cells[c].kind != expected) {
        return Error{"postgresql: search row column " + std::to_string(c) + " does not have the kind of kSearchRowKinds"};
      }
      appendElement(columns[c], cells[c]);
    }
  }
  // Queued, not run. Strings in binary format (their bytes), numbers and arrays as text.
  std::vector<std::string> values{write.type, write.id, std::to_string(write_seq),
                                  std::to_string(searchindex::instantUs(updated_at))};
  std::vector<int> formats{1, 1, 0, 0};
  for (std::string& column : columns) {
    values.push_back(std::move(column) + "}");
    formats.push_back(0);
  }
  db.queue(indexStatement().c_str(), std::move(values), std::move(formats));
  return Status::Ok();
}

Status indexUnindexedResources(Connection& db) {
  auto registry = searchindex::registry();  // a store that cannot index its writes does not open
  if (!registry.ok()) return registry.error();
  while (true) {
    Status status = db.exec("BEGIN");
    if (status.ok()) status = db.exec(kIndexLock);
    if (!status.ok()) {
      (void)db.exec("ROLLBACK");
      return status;
    }
    auto rows = Query(db, "SELECT r.type, r.id, r.updated_at, h.json, h.event_seq FROM resources r JOIN resource_history h "
                          "ON h.type = r.type AND h.id = r.id AND h.version = r.version WHERE NOT EXISTS "
                          "(SELECT 1 FROM search_entries e WHERE e.type = r.type AND e.id = r.id) LIMIT 500")
                    .run();
    if (!rows.ok()) {
      (void)db.exec("ROLLBACK");
      return rows.error();
    }
    for (int i = 0; i < rows->size(); ++i) {
      status = writeSearchIndex(db, ResourceWrite{rows->text(i, 0), rows->text(i, 1), rows->text(i, 3)}, rows->integer(i, 4),
                                rows->text(i, 2));
      if (!status.ok()) {
        (void)db.exec("ROLLBACK");
        return status;
      }
    }
    status = db.exec("COMMIT");
    if (!status.ok()) return status;
    if (rows->size() < 500) return Status::Ok();
  }
}

Result<SearchPage> search(const RunText& run, const SearchRequest& request) {
  auto registry = searchindex::registry();
  if (!registry.ok()) return registry.error();
  Backend backend(run);
  return searchindex::runSearch(backend, **registry, request);
}

}  // namespace fhir::gateway::pg

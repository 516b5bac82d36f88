// SPDX-License-Identifier: Apache-2.0
// The SQLite store's search index (issue 15, search_index.h): its tables, the rows written with
// each resource, the pass that indexes a store written before them, and the reads of a search.
#include "gateway/store/sqlite_search.h"

#include <algorithm>

#include "gateway/store/search_index.h"

namespace fhir::gateway::sqlite {
namespace {

using searchindex::SqlCell;
using searchindex::SqlRow;
using searchindex::SqlValue;

// search_rows is clustered by entry (WITHOUT ROWID, key (entry, ord)): a resource's rows are one
// range of the table, so replacing them needs no second index, and `ord` keeps the order they were
// written in. Stores made before (a rowid table with search_rows_by_entry) are converted once when
// opened (clusterSearchRows).
#define SEARCH_ROWS_TABLE                                                                                      \
  "search_rows (entry INTEGER NOT NULL, ord INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, "       \
  "key TEXT NOT NULL, ptype INTEGER NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, "  \
  "type_system TEXT NOT NULL, type_code TEXT NOT NULL, value TEXT NOT NULL, normalized TEXT NOT NULL, "         \
  "low INTEGER NOT NULL, high INTEGER NOT NULL, precision INTEGER NOT NULL, ref_type TEXT NOT NULL, "          \
  "ref_id TEXT NOT NULL, ref_url TEXT NOT NULL, number TEXT NOT NULL, number_value REAL NOT NULL, "            \
  "PRIMARY KEY (entry, ord)) WITHOUT ROWID"
#define SEARCH_ROWS_BY_KEY "search_rows_by_key ON search_rows (type, param, key, entry)"

constexpr const char* kSearchSchema =
    "CREATE TABLE IF NOT EXISTS search_entries ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL, write_seq INTEGER NOT NULL, "
    "updated_us INTEGER NOT NULL, UNIQUE (type, id));"
    "CREATE TABLE IF NOT EXISTS " SEARCH_ROWS_TABLE ";"
    "CREATE INDEX IF NOT EXISTS " SEARCH_ROWS_BY_KEY ";"
    // Keyset pages of one type in entry order (search's default order, Bulk export): without it
    // SQLite reads every entry of the type through (type, id) and sorts them for each page.
    "CREATE INDEX IF NOT EXISTS search_entries_by_type_seq ON search_entries (type, seq);";

// A store written before search_rows was clustered: its rows are copied into the clustered table
// in one transaction (each entry's rows in the order they were written) and the old table and
// its two indexes dropped. Run inside BEGIN IMMEDIATE, so two handles opening one old store at
// once convert it once.
Status clusterSearchRows(Connection& db) {
  Status status = db.exec("BEGIN IMMEDIATE");
  if (!status.ok()) return status;
  bool unclustered = false;
  {
    Query probe(db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'search_rows_by_entry'");
    const int rc = probe.step();
    if (rc == SQLITE_ROW) unclustered = true;
    else if (rc != SQLITE_DONE) status = Error{probe.error()};
  }
  if (status.ok() && unclustered) {
    status = db.exec(
        "DROP INDEX search_rows_by_entry; DROP INDEX IF EXISTS search_rows_by_key;"
        "ALTER TABLE search_rows RENAME TO search_rows_unclustered;"
        "CREATE TABLE " SEARCH_ROWS_TABLE ";"
        "INSERT INTO search_rows (entry, ord, type, " SEARCH_ROW_COLUMNS ") SELECT entry, "
        "row_number() OVER (PARTITION BY entry ORDER BY rowid) - 1, type, " SEARCH_ROW_COLUMNS
        " FROM search_rows_unclustered;"
        "DROP TABLE search_rows_unclustered;"
        "CREATE INDEX " SEARCH_ROWS_BY_KEY ";");
  }
  if (!status.ok()) {
    Status undone = db.exec("ROLLBACK");
    return undone.ok() ? status : Error{status.message() + "; rollback: " + undone.message()};
  }
  return db.exec("COMMIT");
}

void bindValue(sqlite3_stmt* statement, int index, const SqlValue& value) {
  switch (value.kind) {
    case SqlValue::Kind::kText:
      sqlite3_bind_text(statement, index, value.text.data(), static_cast<int>(value.text.size()), SQLITE_TRANSIENT);
      break;
    case SqlValue::Kind::kInt: sqlite3_bind_int64(statement, index, value.integer); break;
    case SqlValue::Kind::kReal: sqlite3_bind_double(statement, index, value.real); break;
  }
}

// Runs a statement built at run time (not cached: its text differs from search to search).
Result<std::vector<SqlRow>> runDynamic(Connection& db, const std::string& sql, const std::vector<SqlValue>& params,
                                       std::string_view kinds) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), static_cast<int>(sql.size()), &statement, nullptr) != SQLITE_OK) {
    return Error{db.lastError()};
  }
  for (size_t i = 0; i < params.size(); ++i) bindValue(statement, static_cast<int>(i + 1), params[i]);
  std::vector<SqlRow> rows;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    SqlRow row(kinds.size());
    for (size_t c = 0; c < kinds.size(); ++c) {
      const int column = static_cast<int>(c);
      if (kinds[c] == 'i') {
        row[c].integer = sqlite3_column_int64(statement, column);
      } else if (kinds[c] == 'r') {
        row[c].real = sqlite3_column_double(statement, column);
      } else {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(statement, column));
        const int size = sqlite3_column_bytes(statement, column);
        if (data != nullptr) row[c].text.assign(data, static_cast<size_t>(size));
      }
    }
    rows.push_back(std::move(row));
  }
  std::string error = rc == SQLITE_DONE ? std::string() : db.lastError();
  sqlite3_finalize(statement);
  if (!error.empty()) return Error{error};
  return rows;
}

class Backend final : public searchindex::SearchBackend {
 public:
  explicit Backend(Connection& db) : db_(db) {}
  Result<std::vector<SqlRow>> select(const std::string& sql, const std::vector<SqlValue>& params,
                                     std::string_view kinds) override {
    return runDynamic(db_, sql, params, kinds);
  }
  Result<std::vector<searchindex::StoredJson>> resources(std::string_view type,
                                                         const std::vector<std::string>& ids) override {
    std::vector<searchindex::StoredJson> out;
    for (size_t start = 0; start < ids.size(); start += 500) {
      std::string sql = "SELECT r.id, r.version, r.updated_at, " RESOURCE_JSON("r") " FROM resources r WHERE r.type = ? AND r.id IN (";
      std::vector<SqlValue> params{SqlValue::of(std::string(type))};
      for (size_t i = start; i < std::min(ids.size(), start + 500); ++i) {
        sql += i > start ? ", ?" : "?";
        params.push_back(SqlValue::of(ids[i]));
      }
      auto rows = runDynamic(db_, sql + ")", params, "titt");
      if (!rows.ok()) return rows.error();
      for (SqlRow& row : *rows) {
        out.push_back({row[0].text, searchindex::withMeta(row[3].text, row[1].integer, row[2].text), row[1].integer});
      }
    }
    return out;
  }

 private:
  Connection& db_;
};

}  // namespace

Status createSearchSchema(Connection& db) {
  auto registry = searchindex::registry();  // a store that cannot index its writes does not open
  if (!registry.ok()) return registry.error();
  Status status = db.exec(kSearchSchema);
  return status.ok() ? clusterSearchRows(db) : status;
}

Status writeSearchIndex(Connection& db, const ResourceWrite& write, int64_t write_seq, const std::string& updated_at) {
  const std::string& type = write.type;
  const std::string& id = write.id;
  auto registry = searchindex::registry();
  if (!registry.ok()) return registry.error();
  int64_t entry = 0;
  {
    Query upsert(db, "INSERT INTO search_entries (type, id, write_seq, updated_us) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (type, id) DO UPDATE SET write_seq = excluded.write_seq, "
                     "updated_us = excluded.updated_us RETURNING seq");
    upsert.bind(1, type).bind(2, id).bind(3, write_seq).bind(4, searchindex::instantUs(updated_at));
    if (upsert.step() != SQLITE_ROW) return Error{upsert.error()};
    entry = upsert.integer(0);
    while (upsert.step() == SQLITE_ROW) {
    }
  }
  Query dropped(db, "DELETE FROM search_rows WHERE entry = ?");  // one range of the clustered key
  dropped.bind(1, entry);
  if (dropped.step() != SQLITE_DONE) return Error{dropped.error()};
  int64_t ord = 0;
  for (const search::IndexRow& row : searchindex::rowsOf(**registry, write, updated_at)) {
    sqlite3_stmt* insert = db.prepare("INSERT INTO search_rows (entry, ord, type, " SEARCH_ROW_COLUMNS ") VALUES "
                                      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (insert == nullptr) return Error{db.lastError()};
    sqlite3_bind_int64(insert, 1, entry);
    sqlite3_bind_int64(insert, 2, ord++);
    sqlite3_bind_text(insert, 3, type.data(), static_cast<int>(type.size()), SQLITE_TRANSIENT);
    const std::vector<SqlValue> values = searchindex::rowValues(row);
    for (size_t i = 0; i < values.size(); ++i) bindValue(insert, static_cast<int>(i + 4), values[i]);
    const int rc = sqlite3_step(insert);
    sqlite3_reset(insert);
    if (rc != SQLITE_DONE) return Error{db.lastError()};
  }
  return Status::Ok();
}

Status indexUnindexedResources(Connection& db) {
  while (true) {
    Status status = db.exec("BEGIN IMMEDIATE");
    if (!status.ok()) return status;
    auto rows = runDynamic(db,
                           "SELECT r.type, r.id, r.updated_at, " RESOURCE_JSON("r") ", COALESCE((SELECT h.event_seq FROM "
                           "resource_history h WHERE h.type = r.type AND h.id = r.id AND h.version = r.version), 0) "
                           "FROM resources r WHERE NOT EXISTS (SELECT 1 FROM search_entries e WHERE e.type = r.type "
                           "AND e.id = r.id) LIMIT 500",
                           {}, "ttttti");
    if (!rows.ok()) {
      (void)db.exec("ROLLBACK");
      return rows.error();
    }
    for (const SqlRow& row : *rows) {
      status = writeSearchIndex(db, ResourceWrite{row[0].text, row[1].text, row[3].text}, row[4].integer, row[2].text);
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

Result<SearchPage> search(Connection& db, const SearchRequest& request) {
  auto registry = searchindex::registry();
  if (!registry.ok()) return registry.error();
  Backend backend(db);
  return searchindex::runSearch(backend, **registry, request);
}

}  // namespace fhir::gateway::sqlite

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Search over index rows (issue 15), the part both stores share. Internal to gateway/store.
//
// Tables (sqlite_search.cc, pg_schema.cc migration 3):
//   search_entries (seq, type, id, write_seq, updated_us): one per current resource. `seq` is
//     given when the resource is first indexed and never changes: it is the default order and
//     the last key of every keyset. `write_seq` is the event that wrote the current version,
//     `updated_us` its meta.lastUpdated.
//   search_rows (entry, type, param, key, <the IndexRow columns>): the current version's rows,
//     except `_id` (search_entries has the id; the search reads it there). `key` is what the
//     (type, param, key) index finds a row by: the code of a token (and of a
//     Reference.identifier), the normalised string, the reference's id, the uri.
// Writes: indexRows() gives the rows of one resource; each store writes them in the transaction
// that writes the resource (sqlite::writeSearchIndex, pg::writeSearchIndex), replacing the rows
// of its earlier version. Reads: runSearch() builds portable SQL (`?` placeholders) that a
// store's SearchBackend runs on a read connection, and re-checks every candidate with
// search::matches().

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/search/search.h"
#include "gateway/store/store.h"

namespace fhir::gateway::searchindex {

// The bundled SearchParameter registry (r4-core and alignment from FHIR_GATEWAY_PROFILES or
// GATEWAY_PROFILES_DIR), loaded once per process.
Result<std::shared_ptr<const search::Registry>> registry();

// The index rows of a stored resource: search::extractIndex of its JSON plus `_lastUpdated` (the
// stored JSON has no meta.lastUpdated: the store gives it). A JSON that does not parse has none.
std::vector<search::IndexRow> indexRows(const search::Registry& registry, const std::string& json,
                                        const std::string& updated_at);

// The rows of a JSON computed before its commit (ResourceWrite::index): extractIndex without
// `_lastUpdated` (the writer adds it), with what identifies the JSON they came from.
struct PreparedIndex {
  size_t json_size = 0;
  uint64_t json_digest = 0;  // jsonDigest
  bool object = false;       // the JSON is an object (else it has no rows)
  std::string type;          // its resourceType
  std::vector<search::IndexRow> rows;
};
uint64_t jsonDigest(std::string_view json);
std::shared_ptr<const PreparedIndex> prepare(const search::Registry& registry, const std::string& json);
// The index rows of `write` as stored at `updated_at`, without `_id`: its prepared rows when they
// were computed from exactly its JSON, else indexRows() of its JSON (computed here, on the writer).
std::vector<search::IndexRow> rowsOf(const search::Registry& registry, const ResourceWrite& write,
                                     const std::string& updated_at);
// The `key` column of a row (see above).
std::string keyOf(const search::IndexRow& row);
// meta.lastUpdated text to microseconds (0 when it is not an instant).
int64_t instantUs(const std::string& updated_at);

// The columns of search_rows after entry/type, in the order the writers bind and the readers
// read them.
#define SEARCH_ROW_COLUMNS                                                                           \
  "param, key, ptype, system, code, text, type_system, type_code, value, normalized, low, high, " \
  "precision, ref_type, ref_id, ref_url, number, number_value"
constexpr int kSearchRowColumns = 18;

// A parameter of a portable statement.
struct SqlValue {
  enum class Kind { kText, kInt, kReal };
  Kind kind = Kind::kText;
  std::string text;
  int64_t integer = 0;
  double real = 0;
  static SqlValue of(std::string value) { return SqlValue{Kind::kText, std::move(value), 0, 0}; }
  static SqlValue of(int64_t value) { return SqlValue{Kind::kInt, {}, value, 0}; }
  static SqlValue real_(double value) { return SqlValue{Kind::kReal, {}, 0, value}; }
};
struct SqlCell {
  std::string text;
  int64_t integer = 0;
  double real = 0;
};
using SqlRow = std::vector<SqlCell>;

// The values of one index row in SEARCH_ROW_COLUMNS order.
std::vector<SqlValue> rowValues(const search::IndexRow& row);
// An index row read back from cells in SEARCH_ROW_COLUMNS order, starting at `first`.
search::IndexRow rowOf(const SqlRow& cells, size_t first);
// The kinds of SEARCH_ROW_COLUMNS for SearchBackend::select ('t' text, 'i' integer, 'r' real).
inline constexpr std::string_view kSearchRowKinds = "ttitttttttiiittttr";

struct StoredJson {
  std::string id;
  std::string json;  // with meta
  int64_t version = 0;
};

// What runSearch needs from a store: statements on a read connection, and resources' JSON.
class SearchBackend {
 public:
  virtual ~SearchBackend() = default;
  // A SELECT with `?` placeholders; `kinds` gives each result column's kind: 't', 'i' or 'r'.
  virtual Result<std::vector<SqlRow>> select(const std::string& sql, const std::vector<SqlValue>& params,
                                             std::string_view kinds) = 0;
  // The current JSON (with meta) of resources of `type`, in any order; absent ids are left out.
  virtual Result<std::vector<StoredJson>> resources(std::string_view type, const std::vector<std::string>& ids) = 0;
};

Result<SearchPage> runSearch(SearchBackend& backend, const search::Registry& registry, const SearchRequest& request);

// A resource's JSON with meta.versionId and meta.lastUpdated set.
std::string withMeta(const std::string& text, int64_t version, const std::string& updated_at);

}  // namespace fhir::gateway::searchindex

// SPDX-License-Identifier: Apache-2.0
// Search over the index tables, shared by both stores (search_index.h): candidate selection by
// SQL, the re-check with search::matches(), the access filter, keyset paging, _total, _sort,
// _include and _revinclude.
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "conformance/json/json.h"
#include "gateway/store/search_index.h"
#include "gateway_paths.h"

namespace fhir::gateway::searchindex {
namespace {

using search::Clause;
using search::IndexRow;
using search::ParamType;
using search::Prefix;
using search::QueryValue;

constexpr size_t kBatch = 200;          // candidates read per statement
constexpr size_t kMaxIncludes = 1000;   // _include/_revinclude resources per page
constexpr int kIncludeRounds = 4;       // rounds of :iterate after the first (R4 leaves the depth open)
constexpr int64_t kMaxKey = INT64_MAX;
constexpr int64_t kMinKey = INT64_MIN;
// The largest code point: a prefix followed by it bounds every string that starts with the prefix.
constexpr std::string_view kMaxCodePoint = "\xF4\x8F\xBF\xBF";
// `_id` is not stored as an index row: search_entries holds every entry's id, in its own unique
// index. The clauses on `_id` read e.id (t.id when chained) and the rows a candidate is checked
// against get it back (idRow). One random insert per resource fewer in search_rows_by_key.
constexpr std::string_view kIdParam = "_id";

IndexRow idRow(const std::string& id) {
  IndexRow row;  // as search::extractIndex makes it from Resource.id
  row.param = std::string(kIdParam);
  row.type = ParamType::kToken;
  row.code = id;
  return row;
}

// SQL text and its parameters, in order of appearance.
struct Sql {
  std::string text;
  std::vector<SqlValue> params;
  Sql& add(std::string_view more) {
    text += more;
    return *this;
  }
  Sql& add(const Sql& more) {
    text += more.text;
    params.insert(params.end(), more.params.begin(), more.params.end());
    return *this;
  }
  Sql& bind(std::string value) {
    params.push_back(SqlValue::of(std::move(value)));
    return *this;
  }
  Sql& bind(int64_t value) {
    params.push_back(SqlValue::of(value));
    return *this;
  }
};

std::string likePattern(std::string_view text) {
  std::string out = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}

// "<column> IN (?, ...)" for the ids an `_id` clause names; nullopt when a value names none or
// the modifier is not a plain equality (the re-check decides).
std::optional<Sql> idsCondition(std::string_view column, const std::string& modifier,
                                const std::vector<QueryValue>& values) {
  if (!modifier.empty() || values.empty()) return std::nullopt;
  Sql sql;
  sql.add(column).add(" IN (");
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].code.empty()) return std::nullopt;
    sql.add(i > 0 ? ", ?" : "?").bind(values[i].code);
  }
  return sql.add(")");
}

// A condition on search_rows `r` that every row matching the value satisfies; nullopt when none
// narrows (the clause is then left to the re-check).
std::optional<Sql> valueCondition(ParamType type, const std::string& modifier, const QueryValue& v) {
  Sql sql;
  switch (type) {
    case ParamType::kToken:
      if (modifier == "text" || modifier == "not" || v.code.empty()) return std::nullopt;
      return sql.add("r.key = ?").bind(v.code);
    case ParamType::kString:
      if (modifier == "contains") return sql.add("r.key LIKE ? ESCAPE '\\'").bind(likePattern(v.normalized));
      if (modifier == "exact") return sql.add("r.key = ?").bind(search::normalizeString(v.raw));
      return sql.add("(r.key >= ? AND r.key < ?)").bind(v.normalized).bind(v.normalized + std::string(kMaxCodePoint));
    case ParamType::kUri:
      return sql.add("r.key = ?").bind(v.raw);
    case ParamType::kReference:
      if (modifier == "identifier") return sql.add("r.key = ?").bind(v.code);
      if (!v.ref_url.empty() || v.ref_id.empty()) return std::nullopt;
      return sql.add("r.key = ?").bind(v.ref_id);
    case ParamType::kDate:
      switch (v.prefix) {
        case Prefix::kEq: return sql.add("(r.low >= ? AND r.high <= ?)").bind(v.date.low).bind(v.date.high);
        case Prefix::kGt: return sql.add("r.high > ?").bind(v.date.high);
        case Prefix::kLt: return sql.add("r.low < ?").bind(v.date.low);
        case Prefix::kGe: return sql.add("r.high >= ?").bind(v.date.low);
        case Prefix::kLe: return sql.add("r.low <= ?").bind(v.date.high);
        case Prefix::kSa: return sql.add("r.low > ?").bind(v.date.high);
        case Prefix::kEb: return sql.add("r.high < ?").bind(v.date.low);
        default: return std::nullopt;
      }
    default:
      return std::nullopt;
  }
}

// "r.type = ? AND r.param = ? AND (c1 OR c2 ...)" for one parameter's values; nullopt when a
// value does not narrow.
std::optional<Sql> rowsCondition(const std::string& type, const search::BoundParam& param, const std::string& modifier,
                                 const std::vector<QueryValue>& values) {
  Sql sql;
  sql.add("r.type = ? AND r.param = ? AND (").bind(type).bind(param.def->code);
  for (size_t i = 0; i < values.size(); ++i) {
    auto condition = valueCondition(param.def->type, modifier, values[i]);
    if (!condition) return std::nullopt;
    if (i > 0) sql.add(" OR ");
    sql.add(*condition);
  }
  return sql.add(")");
}

// A condition on the entry `e` that every entry matching the clause satisfies (coarse: the
// candidates are checked again with search::matches).
std::optional<Sql> clauseCondition(const std::string& type, const Clause& clause) {
  if (clause.modifier == "missing" || clause.modifier == "not") return std::nullopt;
  if (clause.chain != nullptr) {
    Sql sql;
    sql.add("e.seq IN (SELECT r.entry FROM search_rows r JOIN search_entries t ON t.type = ? AND t.id = r.ref_id "
            "WHERE r.type = ? AND r.param = ? AND ")
        .bind(clause.chain_type).bind(type).bind(clause.param->def->code);
    if (clause.chain->def->code == kIdParam) {
      auto ids = idsCondition("t.id", clause.modifier, clause.values);
      if (!ids) return std::nullopt;
      return sql.add(*ids).add(")");
    }
    auto inner = rowsCondition(clause.chain_type, *clause.chain, clause.modifier, clause.values);
    if (!inner) return std::nullopt;
    return sql.add("t.seq IN (SELECT r.entry FROM search_rows r WHERE ").add(*inner).add("))");
  }
  if (clause.param->def->code == kIdParam) return idsCondition("e.id", clause.modifier, clause.values);
  auto rows = rowsCondition(type, *clause.param, clause.modifier, clause.values);
  if (!rows) return std::nullopt;
  Sql sql;
  return sql.add("e.seq IN (SELECT r.entry FROM search_rows r WHERE ").add(*rows).add(")");
}

// One sort key as an integer expression over `e`: the entry's lastUpdated, or the earliest
// (ascending) / latest (descending) instant of a date parameter, missing ones last.
Sql sortExpression(const search::SortKey& key) {
  Sql sql;
  if (key.param == "_lastUpdated") return sql.add("e.updated_us");
  if (key.descending) {
    sql.add("COALESCE((SELECT MAX(r.high) FROM search_rows r WHERE r.entry = e.seq AND r.param = ?), ?)");
    return sql.bind(key.param).bind(kMinKey);
  }
  sql.add("COALESCE((SELECT MIN(r.low) FROM search_rows r WHERE r.entry = e.seq AND r.param = ?), ?)");
  return sql.bind(key.param).bind(kMaxKey);
}

// Where a page starts: after the entry with these sort keys and seq. `snapshot` (the last event
// when the first page was read) bounds the pages of a sorted search.
struct Cursor {
  bool set = false;
  int64_t snapshot = 0;
  std::vector<int64_t> keys;
  int64_t seq = 0;
};

std::string encodeCursor(const Cursor& cursor) {
  std::string text = "c1." + std::to_string(cursor.snapshot);
  for (int64_t key : cursor.keys) text += "." + std::to_string(key);
  return text + "." + std::to_string(cursor.seq);
}

Result<Cursor> decodeCursor(const std::string& text, size_t key_count) {
  Cursor cursor;
  std::vector<int64_t> numbers;
  if (text.rfind("c1.", 0) != 0) return Error{"invalid: the page cursor '" + text + "' is not one this server gave"};
  size_t at = 3;
  while (at <= text.size()) {
    size_t end = text.find('.', at);
    if (end == std::string::npos) end = text.size();
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + end, value);
    if (ec != std::errc() || ptr != text.data() + end) {
      return Error{"invalid: the page cursor '" + text + "' is not one this server gave"};
    }
    numbers.push_back(value);
    at = end + 1;
  }
  if (numbers.size() != key_count + 2) {
    return Error{"invalid: the page cursor '" + text + "' does not belong to this search's _sort"};
  }
  cursor.set = true;
  cursor.snapshot = numbers.front();
  cursor.keys.assign(numbers.begin() + 1, numbers.end() - 1);
  cursor.seq = numbers.back();
  return cursor;
}

struct Candidate {
  int64_t seq = 0;
  std::string id;
  std::vector<int64_t> keys;
};

class Searcher {
 public:
  Searcher(SearchBackend& backend, const search::Registry& registry, const SearchRequest& request)
      : backend_(backend), registry_(registry), request_(request), query_(*request.query) {
    options_.now = request.now_us;
    options_.base_url = request.base_url;
    options_.lookup = [this](std::string_view type, std::string_view id) { return lookup(type, id); };
    for (const Clause& clause : query_.clauses) {
      // The first clause with one value found by key equality drives the candidates (its index
      // range is already in entry order); the others filter.
      if (driver_key_.empty() && query_.sort.empty()) {
        if (auto key = drivingKey(clause)) {
          driver_param_ = clause.param->def->code;
          driver_key_ = *key;
          continue;
        }
      }
      if (auto condition = clauseCondition(query_.type, clause)) {
        filter_.add(" AND ").add(*condition);
        if (query_.sort.empty() && driver_key_.empty() && referenceList(clause)) references_drive_ = true;
      }
    }
    for (const search::SortKey& key : query_.sort) sort_.push_back(sortExpression(key));
    sort_desc_.reserve(query_.sort.size());
    for (const search::SortKey& key : query_.sort) sort_desc_.push_back(key.descending);
  }

  Result<SearchPage> run() {
    Cursor cursor;
    if (!request_.cursor.empty()) {
      auto decoded = decodeCursor(request_.cursor, sort_.size());
      if (!decoded.ok()) return decoded.error();
      cursor = *decoded;
    } else if (!sort_.empty()) {
      auto last = backend_.select("SELECT COALESCE(MAX(seq), 0) FROM events", {}, "i");
      if (!last.ok()) return last.error();
      cursor.snapshot = last->empty() ? 0 : (*last)[0][0].integer;
    }
    SearchPage page;
    const bool counting = query_.summary == "count" || query_.total == "accurate" || query_.count == 0;
    if (query_.summary != "count" && query_.count > 0) {
      Status read = readPage(cursor, page);
      if (!read.ok()) return Error{read.message()};
    }
    if (counting) {
      Cursor start;
      start.snapshot = cursor.snapshot;
      auto counted = count(start);
      if (!counted.ok()) return counted.error();
      page.total = *counted;
    } else if (query_.total != "none" && request_.cursor.empty() && page.next_cursor.empty()) {
      page.total = static_cast<int64_t>(page.entries.size());  // everything fits the first page
    }
    if (!page.entries.empty()) {
      Status included = include(page);
      if (!included.ok()) return Error{included.message()};
    }
    return page;
  }

 private:
  // The key a clause's only value is found by when that is an equality on `key` (token, uri,
  // reference, :identifier, :exact); nullopt otherwise.
  static std::optional<std::string> drivingKey(const Clause& clause) {
    if (clause.chain != nullptr || clause.values.size() != 1) return std::nullopt;
    const std::string& modifier = clause.modifier;
    if (modifier == "missing" || modifier == "not" || modifier == "text" || modifier == "contains") return std::nullopt;
    const QueryValue& v = clause.values.front();
    switch (clause.param->def->type) {
      case ParamType::kToken:
        if (v.code.empty()) return std::nullopt;
        return v.code;
      case ParamType::kUri: return v.raw;
      case ParamType::kString:
        if (modifier != "exact") return std::nullopt;
        return search::normalizeString(v.raw);
      case ParamType::kReference:
        if (modifier == "identifier") return v.code.empty() ? std::nullopt : std::optional<std::string>(v.code);
        if (!v.ref_url.empty() || v.ref_id.empty()) return std::nullopt;
        return v.ref_id;
      default: return std::nullopt;
    }
  }

  // Whether a clause is a list of references by id (or :identifier), e.g. the measures'
  // `subject=Patient/a,Patient/b,...`: each value's index rows are a few, so the rows of the list
  // should drive the candidates. Left to itself, SQLite 3.40 (no statistics) reads every entry of
  // the type through the (type, id) index and probes the list for each: 100,000 entries per
  // 200-reference query (docs/BENCHMARKS.md "Measures at 100,000 members").
  static bool referenceList(const Clause& clause) {
    if (clause.chain != nullptr || clause.values.size() < 2 || clause.param->def->type != ParamType::kReference) return false;
    if (!clause.modifier.empty() && clause.modifier != "identifier") return false;
    for (const QueryValue& v : clause.values) {
      if (clause.modifier == "identifier" ? v.code.empty() : (!v.ref_url.empty() || v.ref_id.empty())) return false;
    }
    return true;
  }

  // The next candidates after `from` in page order.
  Result<std::vector<Candidate>> candidates(const Cursor& from, size_t limit) {
    if (!driver_key_.empty()) {
      // Driven by one index range, in entry order: a page reads only what it needs, however
      // many resources match. A resource with two rows of that key comes twice in a row.
      Sql sql;
      if (driver_param_ == kIdParam) {  // the entry of that id (search_entries' unique index)
        sql.add("SELECT e.seq, e.id FROM search_entries e WHERE e.type = ? AND e.id = ?")
            .bind(query_.type).bind(driver_key_);
        if (from.set) sql.add(" AND e.seq > ?").bind(from.seq);
        sql.add(filter_).add(" ORDER BY e.seq LIMIT ?").bind(static_cast<int64_t>(limit));
      } else {
        sql.add("SELECT e.seq, e.id FROM search_rows d JOIN search_entries e ON e.seq = d.entry "
                "WHERE d.type = ? AND d.param = ? AND d.key = ?")
            .bind(query_.type).bind(driver_param_).bind(driver_key_);
        if (from.set) sql.add(" AND d.entry > ?").bind(from.seq);
        sql.add(" AND e.type = ?").bind(query_.type).add(filter_);
        sql.add(" ORDER BY d.entry LIMIT ?").bind(static_cast<int64_t>(limit));
      }
      auto rows = backend_.select(sql.text, sql.params, "it");
      if (!rows.ok()) return rows.error();
      std::vector<Candidate> out;
      for (SqlRow& row : *rows) {
        if (!out.empty() && out.back().seq == row[0].integer) continue;
        out.push_back(Candidate{row[0].integer, std::move(row[1].text), {}});
      }
      if (rows->size() == limit && out.size() < limit) out_short_ = true;
      return out;
    }
    Sql sql;
    sql.add("SELECT e.seq, e.id");
    for (const Sql& key : sort_) sql.add(", ").add(key);
    // `e.type || ''` keeps SQLite from reading the entries through the type's index when a list
    // of references can drive (referenceList): the list's rows are then looked up by seq, in
    // order. (Portable: PostgreSQL plans with its statistics either way.)
    sql.add(references_drive_ ? " FROM search_entries e WHERE e.type || '' = ?" : " FROM search_entries e WHERE e.type = ?")
        .bind(query_.type)
        .add(filter_);
    if (!sort_.empty()) sql.add(" AND e.write_seq <= ?").bind(from.snapshot);
    if (from.set) sql.add(" AND ").add(keyset(from, 0));
    sql.add(" ORDER BY ");
    for (size_t i = 0; i < sort_.size(); ++i) sql.add(sort_[i]).add(sort_desc_[i] ? " DESC, " : ", ");
    sql.add("e.seq LIMIT ?").bind(static_cast<int64_t>(limit));
    std::string kinds = "it" + std::string(sort_.size(), 'i');
    auto rows = backend_.select(sql.text, sql.params, kinds);
    if (!rows.ok()) return rows.error();
    std::vector<Candidate> out;
    for (SqlRow& row : *rows) {
      Candidate candidate{row[0].integer, std::move(row[1].text), {}};
      for (size_t i = 0; i < sort_.size(); ++i) candidate.keys.push_back(row[2 + i].integer);
      out.push_back(std::move(candidate));
    }
    return out;
  }

  // (k_i, ..., seq) after the cursor's, in each key's direction.
  Sql keyset(const Cursor& from, size_t i) {
    Sql sql;
    if (i == sort_.size()) return sql.add("e.seq > ?").bind(from.seq);
    sql.add("(").add(sort_[i]).add(sort_desc_[i] ? " < ?" : " > ?").bind(from.keys[i]);
    sql.add(" OR (").add(sort_[i]).add(" = ?").bind(from.keys[i]).add(" AND ").add(keyset(from, i + 1)).add("))");
    return sql;
  }

  // The index rows of entries, by entry seq: of the parameters in `params` only (the ones the
  // query's clauses read), or all of them (null).
  Result<std::map<int64_t, std::vector<IndexRow>>> rowsOf(const std::vector<int64_t>& entries,
                                                          const std::vector<std::string>* params = nullptr) {
    std::map<int64_t, std::vector<IndexRow>> out;
    if (params != nullptr && params->empty()) return out;
    for (size_t start = 0; start < entries.size(); start += kBatch) {
      Sql sql;
      sql.add("SELECT entry, " SEARCH_ROW_COLUMNS " FROM search_rows WHERE entry IN (");
      for (size_t i = start; i < std::min(entries.size(), start + kBatch); ++i) {
        sql.add(i > start ? ", ?" : "?").bind(entries[i]);
      }
      sql.add(")");
      if (params != nullptr) {
        sql.add(" AND param IN (");
        for (size_t i = 0; i < params->size(); ++i) sql.add(i > 0 ? ", ?" : "?").bind((*params)[i]);
        sql.add(")");
      }
      auto rows = backend_.select(sql.text, sql.params, "i" + std::string(kSearchRowKinds));
      if (!rows.ok()) return rows.error();
      for (const SqlRow& row : *rows) {
        if (row[1].text == kIdParam) continue;  // a store written before _id rows were dropped
        out[row[0].integer].push_back(rowOf(row, 1));
      }
    }
    return out;
  }

  // Whether `type` has the `_id` parameter, i.e. whether its rows would hold an idRow.
  bool hasIdParam(std::string_view type) const {
    return registry_.find(std::string(type), std::string(kIdParam)) != nullptr;
  }

  Result<std::map<std::string, StoredJson>> jsonOf(std::string_view type, const std::vector<std::string>& ids) {
    std::map<std::string, StoredJson> out;
    if (ids.empty()) return out;
    auto stored = backend_.resources(type, ids);
    if (!stored.ok()) return stored.error();
    for (StoredJson& one : *stored) out[one.id] = std::move(one);
    return out;
  }

  // The caller's view of a resource: nullopt when it may not see it; `rows` replaced by the rows
  // of what it sees when the policy left something out (an identifier of another organization
  // must not be findable).
  Result<std::optional<std::string>> seen(std::string_view type, const StoredJson& stored, std::vector<IndexRow>* rows) {
    if (!request_.visible) return std::optional<std::string>(stored.json);
    auto view = request_.visible(type, stored.id, stored.json);
    if (!view.ok() || !view->has_value()) return view;
    if (rows != nullptr && **view != stored.json) {
      auto doc = json::parse(**view);
      *rows = doc.ok() ? search::extractIndex(registry_, *doc) : std::vector<IndexRow>{};
    }
    return view;
  }

  // Runs `accept` on every candidate of one batch that matches and that the caller sees, in
  // order. `with_json`: the JSON is read (always when a policy is set). Returns false when
  // `accept` asked to stop.
  template <typename Accept>
  Result<bool> filterBatch(const std::vector<Candidate>& batch, bool with_json, Accept accept) {
    std::vector<int64_t> entries;
    for (const Candidate& candidate : batch) entries.push_back(candidate.seq);
    // matches() reads only the rows of the clauses' parameters; _include reads the page's
    // reference rows, so it takes them all.
    // `_id` has no stored rows: it is not read, and its row comes from the candidate's id.
    std::vector<std::string> params;
    bool reads_id = false;
    for (const search::Clause& clause : query_.clauses) {
      const std::string& code = clause.param->def->code;
      if (code == kIdParam) reads_id = true;
      else if (std::find(params.begin(), params.end(), code) == params.end()) params.push_back(code);
    }
    const bool all_rows = !query_.include.empty();
    auto rows = rowsOf(entries, all_rows ? nullptr : &params);
    if (!rows.ok()) return rows.error();
    if ((all_rows || reads_id) && hasIdParam(query_.type)) {
      for (const Candidate& candidate : batch) (*rows)[candidate.seq].push_back(idRow(candidate.id));
    }
    std::vector<const Candidate*> matched;
    for (const Candidate& candidate : batch) {
      if (search::matches(query_, (*rows)[candidate.seq], options_)) matched.push_back(&candidate);
      if (!lookup_error_.empty()) return Error{lookup_error_};
    }
    std::map<std::string, StoredJson> json;
    if (with_json || request_.visible) {
      std::vector<std::string> ids;
      for (const Candidate* candidate : matched) ids.push_back(candidate->id);
      auto read = jsonOf(query_.type, ids);
      if (!read.ok()) return Error{read.message()};
      json = std::move(*read);
    }
    for (const Candidate* candidate : matched) {
      std::vector<IndexRow>& candidate_rows = (*rows)[candidate->seq];
      std::string text;
      int64_t version = 0;
      if (with_json || request_.visible) {
        auto found = json.find(candidate->id);
        if (found == json.end()) continue;  // deleted meanwhile
        std::vector<IndexRow> visible_rows = candidate_rows;
        auto view = seen(query_.type, found->second, &visible_rows);
        if (!view.ok()) return view.error();
        if (!view->has_value()) continue;
        if (visible_rows.size() != candidate_rows.size() || **view != found->second.json) {
          if (!search::matches(query_, visible_rows, options_)) continue;
        }
        text = std::move(**view);
        version = found->second.version;
      }
      if (!accept(*candidate, std::move(text), version, candidate_rows)) return false;
    }
    return true;
  }

  Status readPage(const Cursor& start, SearchPage& page) {
    const size_t want = static_cast<size_t>(query_.count);
    Cursor position = start;
    std::vector<Candidate> kept;
    while (true) {
      auto batch = candidates(position, kBatch);
      if (!batch.ok()) return batch.error();
      if (batch->empty()) break;
      auto more = filterBatch(*batch, true, [&](const Candidate& candidate, std::string json, int64_t version,
                                                std::vector<IndexRow>& rows) {
        if (kept.size() == want) {  // one more than the page: there is a next page
          page.next_cursor = encodeCursor(Cursor{true, start.snapshot, kept.back().keys, kept.back().seq});
          return false;
        }
        kept.push_back(candidate);
        page_rows_[page.entries.size()] = std::move(rows);
        page.entries.push_back(SearchHit{query_.type, candidate.id, std::move(json), version, false});
        return true;
      });
      if (!more.ok()) return more.error();
      if (!*more) break;
      const Candidate& last = batch->back();
      position = Cursor{true, start.snapshot, last.keys, last.seq};
      if (batch->size() < kBatch && !std::exchange(out_short_, false)) break;
    }
    return Status::Ok();
  }

  Result<int64_t> count(const Cursor& start) {
    int64_t total = 0;
    Cursor position = start;
    while (true) {
      auto batch = candidates(position, kBatch * 5);
      if (!batch.ok()) return batch.error();
      if (batch->empty()) break;
      auto done = filterBatch(*batch, false, [&](const Candidate&, std::string, int64_t, std::vector<IndexRow>&) {
        ++total;
        return true;
      });
      if (!done.ok()) return done.error();
      const Candidate& last = batch->back();
      position = Cursor{true, start.snapshot, last.keys, last.seq};
      if (batch->size() < kBatch * 5 && !std::exchange(out_short_, false)) break;
    }
    return total;
  }

  // Rows of the resource a chained clause points at (null when unknown or not visible).
  const std::vector<IndexRow>* lookup(std::string_view type, std::string_view id) {
    const std::string key = std::string(type) + "/" + std::string(id);
    auto cached = targets_.find(key);
    if (cached != targets_.end()) return cached->second ? &*cached->second : nullptr;
    std::optional<std::vector<IndexRow>>& slot = targets_[key];
    Sql sql;
    sql.add("SELECT seq FROM search_entries WHERE type = ? AND id = ?").bind(std::string(type)).bind(std::string(id));
    auto entry = backend_.select(sql.text, sql.params, "i");
    if (!entry.ok()) {
      lookup_error_ = entry.message();
      return nullptr;
    }
    if (entry->empty()) return nullptr;
    auto rows = rowsOf({(*entry)[0][0].integer});
    if (!rows.ok()) {
      lookup_error_ = rows.message();
      return nullptr;
    }
    std::vector<IndexRow> found = std::move((*rows)[(*entry)[0][0].integer]);
    if (hasIdParam(type)) found.push_back(idRow(std::string(id)));
    if (request_.visible) {
      auto json = jsonOf(type, {std::string(id)});
      if (!json.ok()) {
        lookup_error_ = json.message();
        return nullptr;
      }
      if (json->empty()) return nullptr;
      auto view = seen(type, json->begin()->second, &found);
      if (!view.ok()) {
        lookup_error_ = view.message();
        return nullptr;
      }
      if (!view->has_value()) return nullptr;
    }
    slot = std::move(found);
    return &*slot;
  }

  // Adds the visible resources of `type` named by `ids` as included entries.
  Status addIncluded(SearchPage& page, const std::string& type, const std::vector<std::string>& ids,
                     std::set<std::string>& present) {
    std::vector<std::string> wanted;
    for (const std::string& id : ids) {
      if (present.count(type + "/" + id) == 0) wanted.push_back(id);
    }
    auto json = jsonOf(type, wanted);
    if (!json.ok()) return json.error();
    for (const std::string& id : wanted) {
      if (page.entries.size() >= matches_ + kMaxIncludes) break;
      auto found = json->find(id);
      if (found == json->end() || !present.insert(type + "/" + id).second) continue;
      auto view = seen(type, found->second, nullptr);
      if (!view.ok()) return view.error();
      if (!view->has_value()) continue;
      page.entries.push_back(SearchHit{type, id, std::move(**view), found->second.version, true});
    }
    return Status::Ok();
  }

  // The (source type, reference parameter) pairs a `_revinclude` value asks for resources of
  // `type`: the one named, every reference parameter of the source (`Claim:*`), or of every
  // type (`*`) that may refer to `type`.
  std::vector<std::pair<std::string, std::string>> revincludePairs(const search::Include& spec,
                                                                   const std::string& type) const {
    std::vector<std::pair<std::string, std::string>> out;
    if (spec.source != "*" && spec.param != "*") {
      out.emplace_back(spec.source, spec.param);
      return out;
    }
    const std::vector<std::string> sources = spec.source == "*" ? registry_.types() : std::vector{spec.source};
    for (const std::string& source : sources) {
      for (const search::BoundParam* param : registry_.forType(source)) {
        if (param->def->type != ParamType::kReference || !param->compiled) continue;
        const std::vector<std::string>& targets = param->def->targets;
        if (!targets.empty() && std::find(targets.begin(), targets.end(), type) == targets.end()) continue;
        out.emplace_back(source, param->def->code);
      }
    }
    return out;
  }

  // _include and _revinclude (R4 3.1.1.5.4): a first round over the page's matches, then rounds
  // of the `:iterate` values over what the round before added (at most kIncludeRounds). Every
  // included resource goes through the access policy (addIncluded).
  Status include(SearchPage& page) {
    matches_ = page.entries.size();
    std::set<std::string> present;
    for (const SearchHit& hit : page.entries) present.insert(hit.type + "/" + hit.id);
    struct From {
      std::string type;
      std::string id;
      const std::vector<IndexRow>* rows;  // null: not known or not visible
    };
    std::vector<From> frontier;
    for (size_t i = 0; i < matches_; ++i) frontier.push_back({page.entries[i].type, page.entries[i].id, &page_rows_[i]});
    const bool iterate = std::any_of(query_.include.begin(), query_.include.end(), [](const auto& i) { return i.iterate; }) ||
                         std::any_of(query_.revinclude.begin(), query_.revinclude.end(), [](const auto& i) { return i.iterate; });
    for (int round = 0; round <= kIncludeRounds && !frontier.empty(); ++round) {
      if (round > 0 && !iterate) break;
      const size_t before = page.entries.size();
      std::map<std::string, std::vector<std::string>> targets;  // type -> ids, in page order
      for (const search::Include& spec : query_.include) {
        if (round > 0 && !spec.iterate) continue;
        for (const From& from : frontier) {
          if ((spec.source != "*" && spec.source != from.type) || from.rows == nullptr) continue;
          for (const IndexRow& row : *from.rows) {
            if (row.type != ParamType::kReference || row.ref_id.empty() || row.ref_type.empty()) continue;
            if (spec.param != "*" && row.param != spec.param) continue;
            if (!spec.target.empty() && row.ref_type != spec.target) continue;
            if (!row.ref_url.empty() && (request_.base_url.empty() || row.ref_url.rfind(request_.base_url + "/", 0) != 0)) continue;
            auto& ids = targets[row.ref_type];
            if (std::find(ids.begin(), ids.end(), row.ref_id) == ids.end()) ids.push_back(row.ref_id);
          }
        }
      }
      for (const auto& [type, ids] : targets) {
        Status added = addIncluded(page, type, ids, present);
        if (!added.ok()) return added;
      }
      std::map<std::string, std::vector<std::string>> referred;  // the round's resources by type
      for (const From& from : frontier) referred[from.type].push_back(from.id);
      for (const search::Include& spec : query_.revinclude) {
        if (round > 0 && !spec.iterate) continue;
        for (const auto& [type, referred_ids] : referred) {
          if (!spec.target.empty() && spec.target != type) continue;
          for (const auto& [source, param] : revincludePairs(spec, type)) {
            Sql sql;
            sql.add("SELECT DISTINCT e.id FROM search_rows r JOIN search_entries e ON e.seq = r.entry "
                    "WHERE r.type = ? AND r.param = ? AND (r.ref_type = ? OR r.ref_type = '') AND r.ref_id <> '' AND r.key IN (")
                .bind(source).bind(param).bind(type);
            for (size_t i = 0; i < referred_ids.size(); ++i) sql.add(i > 0 ? ", ?" : "?").bind(referred_ids[i]);
            sql.add(") LIMIT ?").bind(static_cast<int64_t>(kMaxIncludes));
            auto rows = backend_.select(sql.text, sql.params, "t");
            if (!rows.ok()) return rows.error();
            std::vector<std::string> ids;
            for (SqlRow& row : *rows) ids.push_back(std::move(row[0].text));
            std::sort(ids.begin(), ids.end());
            Status added = addIncluded(page, source, ids, present);
            if (!added.ok()) return added;
          }
        }
      }
      frontier.clear();
      if (!iterate) break;
      for (size_t i = before; i < page.entries.size(); ++i) {
        const SearchHit& hit = page.entries[i];
        frontier.push_back({hit.type, hit.id, lookup(hit.type, hit.id)});
        if (!lookup_error_.empty()) return Error{lookup_error_};
      }
    }
    return Status::Ok();
  }

  SearchBackend& backend_;
  const search::Registry& registry_;
  const SearchRequest& request_;
  const search::Query& query_;
  search::MatchOptions options_;
  Sql filter_;
  std::string driver_param_;
  std::string driver_key_;
  bool references_drive_ = false;  // referenceList: a clause's references drive the candidates
  bool out_short_ = false;  // the last driven batch was full before duplicates were dropped
  std::vector<Sql> sort_;
  std::vector<bool> sort_desc_;
  std::map<std::string, std::optional<std::vector<IndexRow>>> targets_;
  std::string lookup_error_;
  std::map<size_t, std::vector<IndexRow>> page_rows_;  // by page entry
  size_t matches_ = 0;
};

}  // namespace

Result<std::shared_ptr<const search::Registry>> registry() {
  static std::once_flag once;
  static Result<std::shared_ptr<const search::Registry>> loaded = Error{"not loaded"};
  std::call_once(once, [] {
    const char* env = std::getenv("FHIR_GATEWAY_PROFILES");
    const std::string root = env != nullptr && *env != '\0' ? env : GATEWAY_PROFILES_DIR;
    auto result = search::Registry::load({root + "/r4-core/package", root + "/alignment/package"});
    if (result.ok()) loaded = *result;
    else loaded = Error{"search parameters: " + result.message()};
  });
  return loaded;
}

int64_t instantUs(const std::string& updated_at) {
  auto range = search::parseDateRange(updated_at);
  return range ? range->low : 0;
}

namespace {

// extractIndex of a JSON without its `_lastUpdated` rows; nullopt when it is not a JSON object.
std::optional<std::vector<IndexRow>> extractRows(const search::Registry& registry, const std::string& json_text,
                                                 std::string& type) {
  auto doc = json::parse(json_text);
  if (!doc.ok() || !doc->IsObject()) return std::nullopt;
  std::vector<IndexRow> rows = search::extractIndex(registry, *doc);
  rows.erase(std::remove_if(rows.begin(), rows.end(), [](const IndexRow& row) { return row.param == "_lastUpdated"; }),
             rows.end());
  type = std::string(json::getString(*doc, "resourceType").value_or(""));
  return rows;
}

void addLastUpdated(const search::Registry& registry, const std::string& type, const std::string& updated_at,
                    std::vector<IndexRow>& rows) {
  auto range = search::parseDateRange(updated_at);
  if (range && registry.find(type, "_lastUpdated") != nullptr) {
    IndexRow row;
    row.param = "_lastUpdated";
    row.type = ParamType::kDate;
    row.low = range->low;
    row.high = range->high;
    row.precision = range->precision;
    rows.push_back(std::move(row));
  }
}

}  // namespace

std::vector<IndexRow> indexRows(const search::Registry& registry, const std::string& json_text,
                                const std::string& updated_at) {
  std::string type;
  auto rows = extractRows(registry, json_text, type);
  if (!rows) return {};
  addLastUpdated(registry, type, updated_at, *rows);
  return std::move(*rows);
}

uint64_t jsonDigest(std::string_view json) { return static_cast<uint64_t>(std::hash<std::string_view>{}(json)); }

namespace {

void dropIdRows(std::vector<IndexRow>& rows) {
  rows.erase(std::remove_if(rows.begin(), rows.end(), [](const IndexRow& row) { return row.param == kIdParam; }),
             rows.end());
}

}  // namespace

std::shared_ptr<const PreparedIndex> prepare(const search::Registry& registry, const std::string& json) {
  auto prepared = std::make_shared<PreparedIndex>();
  prepared->json_size = json.size();
  prepared->json_digest = jsonDigest(json);
  if (auto rows = extractRows(registry, json, prepared->type)) {
    prepared->object = true;
    prepared->rows = std::move(*rows);
    dropIdRows(prepared->rows);
  }
  return prepared;
}

std::vector<IndexRow> rowsOf(const search::Registry& registry, const ResourceWrite& write, const std::string& updated_at) {
  const PreparedIndex* prepared = write.index.get();
  if (prepared == nullptr || prepared->json_size != write.json.size() || prepared->json_digest != jsonDigest(write.json)) {
    std::vector<IndexRow> rows = indexRows(registry, write.json, updated_at);  // none, or not of this JSON
    dropIdRows(rows);
    return rows;
  }
  if (!prepared->object) return {};
  std::vector<IndexRow> rows = prepared->rows;
  dropIdRows(rows);  // a PreparedIndex made elsewhere may hold them
  addLastUpdated(registry, prepared->type, updated_at, rows);
  return rows;
}

std::string keyOf(const IndexRow& row) {
  switch (row.type) {
    case ParamType::kString: return row.normalized;
    case ParamType::kUri: return row.value;
    case ParamType::kReference: return row.ref_id.empty() ? row.code : row.ref_id;
    case ParamType::kNumber:
    case ParamType::kQuantity: return row.number;
    case ParamType::kDate: return {};
    default: return row.code;
  }
}

std::vector<SqlValue> rowValues(const IndexRow& row) {
  return {SqlValue::of(row.param),       SqlValue::of(keyOf(row)),       SqlValue::of(static_cast<int64_t>(row.type)),
          SqlValue::of(row.system),      SqlValue::of(row.code),         SqlValue::of(row.text),
          SqlValue::of(row.type_system), SqlValue::of(row.type_code),    SqlValue::of(row.value),
          SqlValue::of(row.normalized),  SqlValue::of(row.low),          SqlValue::of(row.high),
          SqlValue::of(static_cast<int64_t>(row.precision)),            SqlValue::of(row.ref_type),
          SqlValue::of(row.ref_id),      SqlValue::of(row.ref_url),      SqlValue::of(row.number),
          SqlValue::real_(row.number_value)};
}

IndexRow rowOf(const SqlRow& cells, size_t first) {
  IndexRow row;
  const SqlCell* c = cells.data() + first;
  row.param = c[0].text;
  row.type = static_cast<ParamType>(c[2].integer);
  row.system = c[3].text;
  row.code = c[4].text;
  row.text = c[5].text;
  row.type_system = c[6].text;
  row.type_code = c[7].text;
  row.value = c[8].text;
  row.normalized = c[9].text;
  row.low = c[10].integer;
  row.high = c[11].integer;
  row.precision = static_cast<int>(c[12].integer);
  row.ref_type = c[13].text;
  row.ref_id = c[14].text;
  row.ref_url = c[15].text;
  row.number = c[16].text;
  row.number_value = c[17].real;
  return row;
}

Result<SearchPage> runSearch(SearchBackend& backend, const search::Registry& registry, const SearchRequest& request) {
  if (request.query == nullptr) return Error{"invalid: no query"};
  Searcher searcher(backend, registry, request);
  return searcher.run();
}

std::string withMeta(const std::string& text, int64_t version, const std::string& updated_at) {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text, doc, error) || !doc.IsObject()) return text;
  auto& allocator = doc.GetAllocator();
  json::Value* meta = json::find(doc, "meta");
  if (meta == nullptr || !meta->IsObject()) {
    json::addMember(doc, "meta", json::Value(rapidjson::kObjectType), allocator);
    meta = json::find(doc, "meta");
  }
  meta->RemoveMember("versionId");
  meta->RemoveMember("lastUpdated");
  json::addString(*meta, "versionId", std::to_string(version), allocator);
  json::addString(*meta, "lastUpdated", updated_at, allocator);
  return json::serialize(doc);
}

}  // namespace fhir::gateway::searchindex

namespace fhir::gateway {

void prepareIndex(IngestCommit& commit) {
  auto registry = searchindex::registry();
  if (!registry.ok()) return;  // the writer indexes (and reports the registry's failure)
  auto prepare = [&](ResourceWrite& write) {
    if (!write.index) write.index = searchindex::prepare(**registry, write.json);
  };
  for (ResourceWrite& write : commit.resources) prepare(write);
  for (ResourceWrite& write : commit.merge_expected) prepare(write);
}

}  // namespace fhir::gateway

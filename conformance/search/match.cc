// SPDX-License-Identifier: Apache-2.0
// Matching index rows against a parsed query (FHIR R4 search semantics, docs/SEARCH.md).
#include <cmath>
#include <cstdlib>

#include "conformance/search/search.h"

namespace fhir::search {
namespace {

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

// Starts-with at a word boundary of the normalised text (`:text` on tokens).
bool wordStartsWith(std::string_view text, std::string_view prefix) {
  for (size_t pos = 0; pos <= text.size(); ++pos) {
    if ((pos == 0 || text[pos - 1] == ' ') && startsWith(text.substr(pos), prefix)) return true;
    pos = text.find(' ', pos);
    if (pos == std::string_view::npos) break;
  }
  return false;
}

int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

// FHIR R4 3.1.1.4.2 prefixes over ranges: search [ql, qh], target [rl, rh].
bool dateMatches(Prefix prefix, const DateRange& q, const IndexRow& r, int64_t now) {
  const bool eq = r.low >= q.low && r.high <= q.high;
  switch (prefix) {
    case Prefix::kEq: return eq;
    case Prefix::kNe: return !eq;
    case Prefix::kGt: return r.high > q.high;
    case Prefix::kLt: return r.low < q.low;
    case Prefix::kGe: return r.high > q.high || eq;
    case Prefix::kLe: return r.low < q.low || eq;
    case Prefix::kSa: return r.low > q.high;
    case Prefix::kEb: return r.high < q.low;
    case Prefix::kAp: {
      // Within 10% of the distance between the value and now (at least the value's own range).
      int64_t widen = abs64(q.low - now) / 10;
      int64_t low = q.low - widen, high = q.high + widen;
      return r.low <= high && r.high >= low;
    }
  }
  return false;
}

bool numberMatches(const QueryValue& v, const IndexRow& r) {
  if (r.number.empty()) return false;
  if (v.has_system && (r.code != v.code || (!v.system.empty() && r.system != v.system))) return false;
  double a = r.number_value, b = v.number;
  switch (v.prefix) {
    case Prefix::kEq: return a == b;
    case Prefix::kNe: return a != b;
    case Prefix::kGt:
    case Prefix::kSa: return a > b;
    case Prefix::kLt:
    case Prefix::kEb: return a < b;
    case Prefix::kGe: return a >= b;
    case Prefix::kLe: return a <= b;
    case Prefix::kAp: return std::fabs(a - b) <= std::fabs(b) * 0.1;
  }
  return false;
}

bool isLocalRow(const IndexRow& r, const std::string& base_url) {
  if (r.ref_url.empty()) return true;
  return !base_url.empty() && startsWith(r.ref_url, base_url) && r.ref_url.size() > base_url.size() &&
         r.ref_url[base_url.size()] == '/';
}

bool valueMatches(ParamType type, const std::string& modifier, const QueryValue& v, const IndexRow& r,
                  const MatchOptions& options) {
  switch (type) {
    case ParamType::kToken:
      if (modifier == "text") return wordStartsWith(r.text, v.normalized);
      if (modifier == "of-type") {
        return r.type_system == v.type_system && r.type_code == v.type_code && r.code == v.code;
      }
      if (v.has_system && r.system != v.system) return false;
      return r.code == v.code;
    case ParamType::kString:
      if (r.value.empty()) return false;
      if (modifier == "exact") return r.value == v.raw;
      if (modifier == "contains") return r.normalized.find(v.normalized) != std::string::npos;
      return startsWith(r.normalized, v.normalized);
    case ParamType::kUri:
      return r.value == v.raw;
    case ParamType::kDate:
      if (r.low == 0 && r.high == 0 && r.precision == 0) return false;
      return dateMatches(v.prefix, v.date, r, options.now);
    case ParamType::kNumber:
    case ParamType::kQuantity:
      return numberMatches(v, r);
    case ParamType::kReference:
      if (modifier == "identifier") {
        return !r.code.empty() && r.code == v.code && (!v.has_system || r.system == v.system);
      }
      if (!v.ref_url.empty()) return r.ref_url == v.ref_url;
      if (r.ref_id.empty() || r.ref_id != v.ref_id || !isLocalRow(r, options.base_url)) return false;
      return v.ref_type.empty() || r.ref_type == v.ref_type;
    default:
      return false;
  }
}

}  // namespace

bool matchesClause(const Clause& clause, const std::vector<IndexRow>& rows, const MatchOptions& options) {
  const std::string& code = clause.param->def->code;
  if (clause.modifier == "missing") {
    bool present = false;
    for (const IndexRow& r : rows) present = present || r.param == code;
    return clause.missing ? !present : present;
  }
  if (clause.chain != nullptr) {
    if (!options.lookup) return false;
    for (const IndexRow& r : rows) {
      if (r.param != code || r.ref_id.empty() || !isLocalRow(r, options.base_url)) continue;
      if (!r.ref_type.empty() && r.ref_type != clause.chain_type) continue;
      const std::vector<IndexRow>* target = options.lookup(clause.chain_type, r.ref_id);
      if (target == nullptr) continue;
      Clause inner;
      inner.name = clause.chain->def->code;
      inner.param = clause.chain;
      inner.modifier = clause.modifier;
      inner.values = clause.values;
      MatchOptions plain = options;
      if (matchesClause(inner, *target, plain)) return true;
    }
    return false;
  }
  const ParamType type = clause.param->def->type;
  const bool negate = clause.modifier == "not";
  const std::string& modifier = negate ? std::string() : clause.modifier;
  for (const QueryValue& v : clause.values) {
    for (const IndexRow& r : rows) {
      if (r.param != code) continue;
      if (valueMatches(type, modifier, v, r, options)) return !negate;
    }
  }
  return negate;
}

bool matches(const Query& query, const std::vector<IndexRow>& rows, const MatchOptions& options) {
  for (const Clause& clause : query.clauses) {
    if (!matchesClause(clause, rows, options)) return false;
  }
  return true;
}

}  // namespace fhir::search

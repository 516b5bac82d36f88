// SPDX-License-Identifier: Apache-2.0
#pragma once

// FHIR R4 search, the store-independent core (contracts/query.md, docs/SEARCH.md):
//  * Registry: the SearchParameter resources of a set of FHIR package folders, with each
//    parameter's `expression` compiled once per resource type (only the `|` terms that apply
//    to that type are kept, so `clinical-patient` on Observation is `Observation.subject.where(
//    resolve() is Patient)`, not a 30-term union).
//  * extractIndex(): a resource's index rows (IndexRow, flat and typed so a store writes them
//    to a table as they are).
//  * parseQuery(): already-decoded (name, value) pairs to a typed, validated Query.
//  * matches(): whether a resource's index rows satisfy a Query (semantics without a store; a
//    store re-checks its candidates with it).
// Nothing here knows HTTP or storage.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"

namespace fhir::search {

enum class ParamType : uint8_t { kNumber, kDate, kString, kToken, kReference, kComposite,
                                 kQuantity, kUri, kSpecial };
std::optional<ParamType> paramTypeFromCode(std::string_view code);  // "token" -> kToken
std::string_view paramTypeCode(ParamType type);

// One SearchParameter resource.
struct ParamDef {
  std::string url;
  std::string code;                 // "patient", "_lastUpdated"
  ParamType type = ParamType::kToken;
  std::vector<std::string> bases;   // "Resource" applies to every type
  std::vector<std::string> targets; // reference targets ("Patient", "Group")
  std::string expression;           // the whole R4 expression
};

// A parameter as it applies to one resource type: its definition and the compiled part of the
// expression for that type (null when no term of the expression applies, e.g. a composite).
struct BoundParam {
  const ParamDef* def = nullptr;
  std::string type;                   // the resource type it is bound to
  std::string expression;             // the terms kept for `type`
  fhirpath::ExpressionPtr compiled;   // null: nothing to index (type composite/special)
};

class Registry {
 public:
  // Reads every SearchParameter-*.json of the package folders (e.g. fhir_profiles/r4-core/package,
  // fhir_profiles/alignment/package). Later folders win for the same (base, code). An
  // expression that does not compile is an Error naming the file.
  static Result<std::shared_ptr<const Registry>> load(const std::vector<std::string>& package_dirs,
                                                      fhirpath::ModelPtr model = nullptr);
  // r4-core and alignment from GATEWAY_PROFILES_DIR.
  static Result<std::shared_ptr<const Registry>> loadBundled();

  // The parameter `code` for resource `type` (its own or a Resource one), or nullptr.
  const BoundParam* find(std::string_view type, std::string_view code) const;
  // Every parameter that applies to `type`, Resource ones included, ordered by code.
  std::vector<const BoundParam*> forType(std::string_view type) const;
  // The resource types some parameter is defined for (not Resource and DomainResource).
  std::vector<std::string> types() const;
  const fhirpath::ModelPtr& model() const { return model_; }
  size_t definitionCount() const { return defs_.size(); }

 private:
  fhirpath::ModelPtr model_;
  std::vector<std::unique_ptr<ParamDef>> defs_;
  // type -> code -> bound parameter
  std::map<std::string, std::map<std::string, std::unique_ptr<BoundParam>, std::less<>>, std::less<>>
      bound_;
};

// The `|` terms of `expression` that apply to resource `type` (their first name is `type`,
// `Resource` or `DomainResource`), joined with " | "; empty when none do.
std::string termsForType(std::string_view expression, std::string_view type);

// ---------------------------------------------------------------------------------------------
// Index rows.

// Instants are microseconds since 1970-01-01T00:00:00Z. A date or dateTime without a time zone
// is read as UTC (the server's zone; query.md does not name one).
constexpr int64_t kMinInstant = INT64_MIN;
constexpr int64_t kMaxInstant = INT64_MAX;

// One indexed value. Which fields are set depends on `type`; the others stay empty/zero so the
// struct maps onto one table (param, type, and the columns) as it is.
struct IndexRow {
  std::string param;    // the search parameter code ("identifier")
  ParamType type = ParamType::kToken;
  // token: system|code; `text` = display / CodeableConcept.text / Identifier.type.text,
  // normalised (normalizeString). Identifier: code is the value, type_system/type_code its
  // Identifier.type codings (one row per type coding, for :of-type).
  // reference :identifier rows: system/code from Reference.identifier.
  std::string system;
  std::string code;
  std::string text;
  std::string type_system;
  std::string type_code;
  // string: the value as written and normalised; uri: value.
  std::string value;
  std::string normalized;
  // date: inclusive instant range [low, high] and the precision of the written value
  // (4 year, 7 month, 10 day, 16 minute, 19 second, 23 milliseconds; 0 for a Period).
  int64_t low = 0;
  int64_t high = 0;
  int precision = 0;
  // reference: "Patient", "123", the absolute URL when the reference was one (else empty).
  std::string ref_type;
  std::string ref_id;
  std::string ref_url;
  // number/quantity: the decimal text and its value; quantity unit system and code.
  std::string number;
  double number_value = 0;
};

// The index rows of `resource` for every parameter of its type. Evaluation errors of one
// parameter skip that parameter and are reported in `errors` (when given): index extraction
// never fails a write.
std::vector<IndexRow> extractIndex(const Registry& registry, const json::Value& resource,
                                   std::vector<std::string>* errors = nullptr);

// String normalisation for case- and accent-insensitive matching: the Latin letters of
// U+00C0..U+017F lose their diacritics (é -> e, ß -> ss, Æ -> ae, Ø -> o, Ł -> l), ASCII is
// lower-cased, runs of whitespace become one space, leading/trailing whitespace goes. Other
// characters are kept as they are.
std::string normalizeString(std::string_view text);

// A FHIR date/dateTime/instant ("2013", "2013-05", "2013-05-01T10:00:00+02:00") to its implicit
// range. nullopt when it is not one.
struct DateRange {
  int64_t low = 0;
  int64_t high = 0;
  int precision = 0;
};
std::optional<DateRange> parseDateRange(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Queries.

enum class Prefix : uint8_t { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

struct QueryValue {
  Prefix prefix = Prefix::kEq;
  std::string raw;   // as given (after the prefix)
  // token: `system|code` (has_system), `|code` (has_system, empty system), `code`;
  // :of-type `type_system|type_code|code`.
  bool has_system = false;
  std::string system;
  std::string code;
  std::string type_system;
  std::string type_code;
  // string: normalised form of raw.
  std::string normalized;
  // date
  DateRange date;
  // reference: "Patient/123" -> Patient, 123; "123" -> "", 123; other absolute URL -> ref_url.
  std::string ref_type;
  std::string ref_id;
  std::string ref_url;
  double number = 0;
};

struct Clause {
  std::string name;            // as written, "patient:Patient" -> "patient"
  const BoundParam* param = nullptr;
  std::string modifier;        // "", "not", "text", "of-type", "exact", "contains", "missing",
                               // "identifier", or a resource type for reference `:Type`
  // Chaining one level: `patient.identifier=x` -> chain set, chain_type the target type
  // ("Patient", from `:Type` or the parameter's only target), chain_param its parameter.
  const BoundParam* chain = nullptr;
  std::string chain_type;
  bool missing = false;        // :missing=true|false
  std::vector<QueryValue> values;  // comma = OR
};

struct SortKey {
  std::string param;   // "_lastUpdated", "date"
  bool descending = false;
};

// One `_include` or `_revinclude` value (R4 3.1.1.5.4): `Source:param[:Target]`, `*` for any
// source type (`_revinclude=*`) or any reference parameter (`Claim:*`); `iterate` for the
// `:iterate` modifier (also applied to what was included).
struct Include {
  std::string source;  // resource type, or "*"
  std::string param;   // reference parameter code, or "*"
  std::string target;  // target type; empty: any
  bool iterate = false;
  bool operator==(const Include&) const = default;
};

struct Query {
  std::string type;
  std::vector<Clause> clauses;       // repeated parameters = AND
  int count = 50;
  std::vector<SortKey> sort;
  std::vector<Include> include;
  std::vector<Include> revinclude;
  std::string summary;              // "", "count", "true", "false", "text", "data"
  std::string total;                // "", "none", "estimate", "accurate"
  std::vector<std::string> elements;
  std::vector<std::string> ignored; // unknown parameters dropped in lenient mode
};

struct QueryOptions {
  bool lenient = false;          // Prefer: handling=lenient
  std::string base_url;          // "https://gw.example/fhir": absolute references to it are local
  int max_count = 1000;
  int default_count = 50;
};

// An error is an Error whose message starts with the OperationOutcome issue code and names the
// parameter: "not-supported: unknown search parameter 'foo' for Patient",
// "invalid: _count 'x' is not a non-negative integer", ...
Result<Query> parseQuery(const Registry& registry, std::string_view type,
                         const std::vector<std::pair<std::string, std::string>>& params,
                         const QueryOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Matching.

// Rows of the resource `type/id` for a chained clause; null when it is not known.
using RowLookup = std::function<const std::vector<IndexRow>*(std::string_view type, std::string_view id)>;

struct MatchOptions {
  RowLookup lookup;        // needed for chained clauses (without it they match nothing)
  int64_t now = 0;         // instant of `ap` (approximately): its window is 10% of |value - now|
  std::string base_url;    // absolute references under it count as local ("Patient/1")
};

bool matches(const Query& query, const std::vector<IndexRow>& rows, const MatchOptions& options = {});
bool matchesClause(const Clause& clause, const std::vector<IndexRow>& rows, const MatchOptions& options);

}  // namespace fhir::search

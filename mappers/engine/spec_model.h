// SPDX-License-Identifier: Apache-2.0
#pragma once

// The compiled form of a spec (engine internals, shared by the compiler and the run).

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "mappers/common/dates.h"
#include "conformance/common/ids.h"
#include "mappers/engine/engine.h"
#include "mappers/engine/fhir_paths.h"
#include "mappers/engine/spec_json.h"
#include "mappers/readers/csv/csv_reader.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"
#include "mappers/readers/ndjson/ndjson_reader.h"
#include "mappers/readers/x12/x12_reader.h"

namespace fhir::mappers::engine {

namespace readers = ::fhir::mappers::readers;

// ---------------------------------------------------------------------------------------------
// Compiled form of a spec.


inline constexpr std::string_view kBase = "https://fhir.alignment-gateway.org";

// kJsonEvents: NDJSON, or one JSON object over several lines (a pretty-printed event).
enum class ReaderKind { kCsv, kNdjson, kJson, kX12, kHl7v2, kJsonEvents };

// A copy of `text` kept for the life of the process, like a string literal. Bundles refer to
// the names and constant values of compiled specs without copying them, and any copy of a
// bundle's values (RapidJSON copies constant strings by reference) may outlive the spec library
// that made it; the pool is bounded by the distinct names and constants of the specs loaded
// (with the payers' names, for templates such as "{payer}").
inline std::string_view intern(std::string_view text) {
  static std::mutex mutex;
  static auto* const pool = new std::unordered_set<std::string>();  // never freed, on purpose
  std::lock_guard<std::mutex> lock(mutex);
  return *pool->emplace(text).first;
}


// Where a step's member was found last, an index into its object, tried first: records of one
// source have their members in the same order. A relaxed atomic, because compiled specs are
// shared by the threads mapping at the same time; only a hint, any value is safe.
struct MemberHint {
  mutable std::atomic<uint32_t> at{0};
  MemberHint() = default;
  MemberHint(const MemberHint& other) : at(other.at.load(std::memory_order_relaxed)) {}
  MemberHint& operator=(const MemberHint& other) {
    at.store(other.at.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }
};

// Member `key` of `object` (nullptr when absent or not an object), trying `hint` first.
inline const json::Value* findHinted(const json::Value& object, std::string_view key, const MemberHint& hint) {
  if (!object.IsObject()) return nullptr;
  const auto count = object.MemberCount();
  const auto members = object.MemberBegin();
  auto named = [&](rapidjson::SizeType index) {
    const json::Value& name = members[index].name;
    return name.GetStringLength() == key.size() && std::memcmp(name.GetString(), key.data(), key.size()) == 0;
  };
  const uint32_t hinted = hint.at.load(std::memory_order_relaxed);
  if (hinted < count && named(hinted)) return &members[hinted].value;
  for (rapidjson::SizeType index = 0; index < count; ++index) {
    if (!named(index)) continue;
    hint.at.store(index, std::memory_order_relaxed);
    return &members[index].value;
  }
  return nullptr;
}

struct SourcePath {
  static constexpr size_t kHinted = 4;  // steps with a MemberHint
  bool absolute = false;  // "$.a.b": from the record root
  bool self = false;      // ".": the current item
  std::vector<std::string> steps;
  std::string text;
  std::array<MemberHint, kHinted> hints;
  // Member `steps[step]` of `object`.
  const json::Value* member(const json::Value& object, size_t step) const {
    if (step < kHinted) return findHinted(object, steps[step], hints[step]);
    return json::find(object, steps[step]);
  }
};

// One code translation table of a ConceptMap group.
struct Translation {
  std::unordered_map<std::string, std::string> codes;
  std::string name;
};

enum class TransformKind { kTrim, kUpper, kLower, kDateYmd, kDate, kDecimal, kInteger, kIcd10, kNpi, kTranslate,
                           kLookup, kComponent, kRangeStart, kRangeEnd, kOneOf, kBoolean, kHl7DateTime,
                           // Event transforms (econsult specs): JSON type, minimum, dateTime with
                           // offset, closed code list, configured payer, text prefix.
                           kType, kMin, kDateTime, kCodeIn, kPayer, kPrefix,
                           // care-management additions: ValueSet membership and score, month of a
                           // date, a date or a dateTime with offset.
                           kMemberOf, kOrdinal, kYearMonth, kDateOrDateTime };

// The codes of one alignment ValueSet (compose.include concepts), with their ordinalValue.
struct ValueSetCodes {
  std::string name;
  std::set<std::string> codes;  // "system|code" and "code"
  std::unordered_map<std::string, std::string> ordinals;  // code -> decimal text
};

// A ConceptMap group read with its dependsOn: "dependsOn value\x1fcode" -> target codes.
struct DependentTranslation {
  std::string name;
  std::unordered_map<std::string, std::set<std::string>> targets;
};

struct Transform {
  TransformKind kind = TransformKind::kTrim;
  const Translation* translation = nullptr;
  const ValueSetCodes* value_set = nullptr;  // kMemberOf, kOrdinal
  std::unordered_map<std::string, std::string> table;
  std::set<std::string> allowed;
  size_t component = 1;
  std::string name;     // kType: the JSON type; kPayer: the payer field; kPrefix: the prefix
  int64_t minimum = 0;  // kMin
};

struct Condition;

struct ValueExpr {
  // kReferenceTo: {"reference": "Type/deriveId(parts)"}; kJoin: the present parts joined;
  // kCoverageOn ("coverage"): the coverage valid on a date (see Run::coverageOn()).
  // kPick: the value of the first item of `pick_for_each` that passes `pick_where`.
  enum class Kind { kNone, kSource, kLiteral, kReference, kReferenceTo, kJoin, kCoverageOn, kPick } kind = Kind::kNone;
  std::vector<SourcePath> pick_for_each;
  std::shared_ptr<Condition> pick_where;
  std::vector<std::string> part_literals;  // kReferenceTo: a literal part, or "" with a value in part_values
  std::vector<ValueExpr> part_values;      // kReferenceTo/kJoin parts; kCoverageOn: the date; kPick: the value
  std::string separator;                   // kJoin
  std::string give;                        // kCoverageOn: coverage or insurer
  std::string patient_key;                 // kCoverageOn: the Patient resource key
  SourcePath from;
  const json::Value* literal = nullptr;  // owned by the spec document
  std::string_view constant;             // kLiteral: the string naming no {variable}, intern()ed
  std::string reference_key;
  std::vector<Transform> transforms;
  bool required = false;
  const json::Value* fallback = nullptr;
};

struct Condition {
  enum class Op { kEquals, kIn, kNotIn, kExists, kMissing, kAll, kAny,
                  kSome, kSum, kMapsTo, kInValueSet, kNot, kTranslates } op = Op::kExists;
  ValueExpr value;
  std::set<std::string> values;
  std::vector<Condition> children;
  // kSome / kSum: the items (`children[0]`, when present, is their `where`); kSum adds `value`
  // per item and compares with `threshold`.
  SourcePath items;
  std::string threshold;
  // kMapsTo: the ConceptMap group and the path of the dependsOn value; `values` the targets.
  const DependentTranslation* translation = nullptr;
  SourcePath depends_on;
  // kInValueSet
  const ValueSetCodes* value_set = nullptr;
  // kTranslates: the value has a target code in this ConceptMap group (kNot: `children[0]` negated).
  const Translation* codes = nullptr;
};

struct Rule {
  size_t line = 0;
  std::vector<PathStep> target;
  // How many leading steps of `target` the rule before it in its list writes through too
  // (identifier[0].system, then identifier[0].value: 1), none appending; see SlotCache.
  size_t shared_steps = 0;
  // No rule before it in its list writes the member its first step names, so the first time it
  // writes into an object that started empty, that member is not there yet (see SlotCache).
  bool first_step_new = false;
  std::optional<Condition> when;
  ValueExpr value;
  // forEach rules
  std::vector<SourcePath> for_each;
  std::optional<Condition> where;
  bool first = false;  // forEach: only the first item kept by `where`, written at `target` itself
  std::vector<Rule> children;
  // `"references": key` (path ends with []): one Reference per instance of a forEach resource,
  // those whose source item passes `where`.
  std::string references_key;
  // `"warning": message`: the record is still mapped, with a warning at the value's source
  // location each time the rule writes (an unknown care-team role kept as text).
  std::string warning;
};

struct IdPart {
  std::string literal;  // template with {variables}
  ValueExpr value;      // when kind != kNone
};

struct ResourceProgram {
  size_t line = 0;
  std::string key;
  std::string type;
  std::string profile;
  std::vector<IdPart> id;
  std::optional<Condition> when;
  std::vector<Rule> rules;
  // "forEach": one resource per item (id parts and rules read the item); "where" filters items.
  std::vector<SourcePath> for_each;
  std::optional<Condition> where;
  // "update": "merge": the stored version (MapOptions::stored_resource) is kept, and the
  // top-level elements this record writes replace its own.
  bool merge = false;
  // `"unique": message`: two items giving the same id are an error at the second one.
  std::string unique_message;
  // `"fact": kind`: the resource is returned as a typed fact with the Bundle (MappedBundle::facts).
  std::string fact;
};


struct CompiledSpec {
  std::unique_ptr<SpecDocument> document;
  std::string id;
  std::string file;
  ReaderKind reader = ReaderKind::kCsv;
  std::vector<std::string> fields;  // known source paths (normalized, "*" for array items)
  std::string group_by;             // CSV: column whose consecutive equal values form one record
  std::set<std::string> optional_columns;  // CSV: columns a file may leave out ("optionalColumns")
  std::map<std::string, std::string> split_columns;  // CSV: column -> separator ("splitColumns")
  ValueExpr record_id;
  std::vector<ValueExpr> record_id_parts;  // "recordId": [..]: the parts joined with ':'
  std::vector<Rule> checks;
  std::vector<ResourceProgram> resources;
  bool warn_unknown_members = false;  // "unknownMembers": "warn" (JSON readers)
  std::vector<Rule> provenance_agent;  // "provenanceAgent": rules building Provenance.agent.who
  std::string agent_key;               // "agent": a resource of the Bundle as Provenance.agent.who
};

struct SpecLibrary::Shared {
  std::map<std::string, Translation> translations;  // "conceptmap-id|source system" and "conceptmap-id"
  std::map<std::string, DependentTranslation> dependent;  // ConceptMap groups with dependsOn, by id
  std::map<std::string, ValueSetCodes> value_sets;        // alignment ValueSets by id
};

// Whether `pattern` is one of the spec's known source paths (compiler.cc).
bool fieldsKnow(const std::vector<std::string>& fields, const std::string& pattern);

}  // namespace fhir::mappers::engine

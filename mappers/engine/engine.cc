// SPDX-License-Identifier: Apache-2.0
#include "mappers/engine/engine.h"

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
#include "mappers/common/ids.h"
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

namespace {

constexpr std::string_view kBase = "https://fhir.alignment-gateway.org";

// kJsonEvents: NDJSON, or one JSON object over several lines (a pretty-printed event).
enum class ReaderKind { kCsv, kNdjson, kJson, kX12, kHl7v2, kJsonEvents };

// A copy of `text` kept for the life of the process, like a string literal. Bundles refer to
// the names and constant values of compiled specs without copying them, and any copy of a
// bundle's values (RapidJSON copies constant strings by reference) may outlive the spec library
// that made it; the pool is bounded by the distinct names and constants of the specs loaded
// (with the payers' names, for templates such as "{payer}").
std::string_view intern(std::string_view text) {
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
const json::Value* findHinted(const json::Value& object, std::string_view key, const MemberHint& hint) {
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
};

}  // namespace

struct CompiledSpec {
  std::unique_ptr<SpecDocument> document;
  std::string id;
  std::string file;
  ReaderKind reader = ReaderKind::kCsv;
  std::vector<std::string> fields;  // known source paths (normalized, "*" for array items)
  std::string group_by;             // CSV: column whose consecutive equal values form one record
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

namespace {

// ---------------------------------------------------------------------------------------------
// Compiling.

class Compiler {
 public:
  Compiler(CompiledSpec& spec, SpecLibrary::Shared& shared, FhirPaths& paths)
      : spec_(spec), shared_(shared), paths_(paths) {}

  Status compile();

 private:
  Error fail(const json::Value& at, const std::string& message) const {
    size_t line = spec_.document->lineOf(at);
    return Error{spec_.file + ":" + std::to_string(line ? line : 1) + ": " + message};
  }
  Result<SourcePath> sourcePath(const json::Value& at, std::string_view text, const std::string& scope);
  Result<ValueExpr> valueExpr(const json::Value& object, const std::string& scope, bool needs_value);
  Result<Condition> condition(const json::Value& object, const std::string& scope);
  Result<Rule> rule(const json::Value& object, const std::string& scope, const std::string& context);
  bool knownPattern(const std::string& pattern) const;
  // The scope of the items `path` reaches from `scope` ("a.*" when they are array elements).
  std::string itemScope(const SourcePath& path, const std::string& scope) const;
  // Additions for event specs (econsult): referenceTo/join/pick/coverage values, the event
  // transforms, resources per item, recordId parts, unknownMembers and provenanceAgent.
  Result<bool> eventValueExpr(const json::Value& object, const std::string& scope, ValueExpr& expr);
  Result<bool> eventTransform(const json::Value& at, const std::string& name, const json::Value& argument,
                              Transform& transform);
  Status eventResource(const json::Value& resource, const std::string& scope, ResourceProgram& program,
                       std::string& item_scope);
  Status eventTopLevel(const json::Value& root, const std::string& scope);
  // Care-management additions: alignment ValueSets and conditions over items or terminology.
  const ValueSetCodes* valueSet(std::string_view id) const;
  Result<Condition> itemCondition(const json::Value& object, const std::string& scope);

  CompiledSpec& spec_;
  SpecLibrary::Shared& shared_;
  FhirPaths& paths_;
  std::set<std::string> keys_;
  std::set<std::string> per_item_keys_;  // keys of resources made per item (forEach)
};

std::vector<std::string> splitPath(std::string_view text) {
  std::vector<std::string> steps;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('.', start);
    steps.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return steps;
}

std::string joinPattern(const std::string& scope, const std::vector<std::string>& steps) {
  std::string out = scope;
  for (const std::string& step : steps) out += (out.empty() ? "" : ".") + step;
  return out;
}

// True when `pattern` ("a.b", "lines.0.cpt") is one of `fields` or a prefix of one; a numeric
// step matches "*".
bool fieldsKnow(const std::vector<std::string>& fields, const std::string& pattern) {
  std::vector<std::string> want = splitPath(pattern);
  for (const std::string& field : fields) {
    std::vector<std::string> have = splitPath(field);
    if (want.size() > have.size()) continue;
    bool match = true;
    for (size_t index = 0; index < want.size() && match; ++index) {
      // A numeric step is an array index ("*" in the field list) or a numbered X12 element.
      const std::string& step = want[index];
      bool numeric = !step.empty() && std::all_of(step.begin(), step.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      match = step == have[index] || (numeric && have[index] == "*");
    }
    if (match) return true;
  }
  return false;
}

bool Compiler::knownPattern(const std::string& pattern) const { return fieldsKnow(spec_.fields, pattern); }

std::string Compiler::itemScope(const SourcePath& path, const std::string& scope) const {
  std::string item_scope = joinPattern(path.absolute ? "" : scope, path.steps);
  if (knownPattern(item_scope + ".*")) item_scope += ".*";
  return item_scope;
}

Result<SourcePath> Compiler::sourcePath(const json::Value& at, std::string_view text, const std::string& scope) {
  SourcePath path;
  path.text = std::string(text);
  if (text == ".") {
    path.self = true;
    return path;
  }
  std::string base = scope;
  if (text.substr(0, 2) == "$.") {
    path.absolute = true;
    text.remove_prefix(2);
    base = spec_.group_by.empty() ? "" : "";
  }
  path.steps = splitPath(text);
  for (const std::string& step : path.steps) {
    if (step.empty()) return fail(at, "empty step in source path '" + path.text + "'");
  }
  if (!knownPattern(joinPattern(base, path.steps))) {
    return fail(at, "unknown source path '" + path.text + "'" + (scope.empty() ? "" : " (inside " + scope + ")"));
  }
  return path;
}

Result<ValueExpr> Compiler::valueExpr(const json::Value& object, const std::string& scope, bool needs_value) {
  ValueExpr expr;
  if (auto from = json::getString(object, "from")) {
    auto path = sourcePath(object, *from, scope);
    if (!path.ok()) return path.error();
    expr.kind = ValueExpr::Kind::kSource;
    expr.from = std::move(*path);
  } else if (const json::Value* value = json::find(object, "value")) {
    expr.kind = ValueExpr::Kind::kLiteral;
    expr.literal = value;
    if (json::isString(*value) && json::stringView(*value).find('{') == std::string_view::npos) {
      expr.constant = intern(json::stringView(*value));
    }
  } else if (auto reference = json::getString(object, "reference")) {
    expr.kind = ValueExpr::Kind::kReference;
    expr.reference_key = std::string(*reference);
    if (!keys_.count(expr.reference_key)) {
      return fail(object, "reference to unknown resource key '" + expr.reference_key + "' (declare it earlier)");
    }
    if (per_item_keys_.count(expr.reference_key)) {
      return fail(object, "'" + expr.reference_key + "' is made per item (forEach): name it with \"referenceTo\" (its id parts)");
    }
  } else if (auto event = eventValueExpr(object, scope, expr); !event.ok()) {
    return event.error();
  } else if (*event) {
    // referenceTo, join, pick or coverage
  } else if (needs_value) {
    return fail(object, "needs one of \"from\", \"value\" or \"reference\"");
  }
  if (const json::Value* required = json::find(object, "required")) expr.required = required->IsBool() && required->GetBool();
  expr.fallback = json::find(object, "default");
  if (const json::Value* transforms = json::find(object, "transforms")) {
    if (!transforms->IsArray()) return fail(object, "\"transforms\" must be an array");
    for (const json::Value& entry : transforms->GetArray()) {
      Transform transform;
      if (json::isString(entry)) {
        std::string name(json::stringView(entry));
        static const std::map<std::string, TransformKind> kNames = {
            {"trim", TransformKind::kTrim}, {"upper", TransformKind::kUpper}, {"lower", TransformKind::kLower},
            {"date-yyyymmdd", TransformKind::kDateYmd}, {"date", TransformKind::kDate},
            {"decimal", TransformKind::kDecimal}, {"integer", TransformKind::kInteger},
            {"icd10", TransformKind::kIcd10}, {"npi", TransformKind::kNpi},
            {"range-start", TransformKind::kRangeStart}, {"range-end", TransformKind::kRangeEnd},
            {"boolean", TransformKind::kBoolean}, {"hl7-datetime", TransformKind::kHl7DateTime},
            {"year-month", TransformKind::kYearMonth}, {"datetime", TransformKind::kDateOrDateTime}};
        auto found = kNames.find(name);
        // Event transforms named by a string (the payer field they give, for the payer ones).
        static const std::map<std::string, std::string> kPayerFields = {
            {"payer-id", "id"}, {"payer-name", "name"}, {"payer-identifier-system", "identifierSystem"},
            {"payer-identifier-value", "identifierValue"}};
        if (name == "datetime-offset") {
          transform.kind = TransformKind::kDateTime;
        } else if (kPayerFields.count(name)) {
          transform.kind = TransformKind::kPayer;
          transform.name = kPayerFields.at(name);
        } else if (found == kNames.end()) {
          return fail(object, "unknown transform '" + name + "'");
        } else {
          transform.kind = found->second;
        }
      } else if (entry.IsObject() && entry.MemberCount() == 1) {
        const auto& member = *entry.MemberBegin();
        std::string name(member.name.GetString(), member.name.GetStringLength());
        if (name == "translate" && json::isString(member.value)) {
          std::string map_id(json::stringView(member.value));
          auto found = shared_.translations.find(map_id);
          if (found == shared_.translations.end()) {
            return fail(object, "unknown ConceptMap '" + map_id + "' (fhir_profiles/alignment/package)");
          }
          transform.kind = TransformKind::kTranslate;
          transform.translation = &found->second;
        } else if (name == "lookup" && member.value.IsObject()) {
          transform.kind = TransformKind::kLookup;
          for (const auto& pair : member.value.GetObject()) {
            if (!json::isString(pair.value)) return fail(object, "lookup values must be strings");
            transform.table[std::string(pair.name.GetString(), pair.name.GetStringLength())] =
                std::string(json::stringView(pair.value));
          }
        } else if (name == "oneOf" && member.value.IsArray()) {
          transform.kind = TransformKind::kOneOf;
          for (const json::Value& allowed : member.value.GetArray()) {
            if (json::isString(allowed)) transform.allowed.insert(std::string(json::stringView(allowed)));
          }
        } else if (name == "component" && json::numberAsInt64(member.value)) {
          transform.kind = TransformKind::kComponent;
          transform.component = static_cast<size_t>(*json::numberAsInt64(member.value));
        } else if (auto event = eventTransform(object, name, member.value, transform); !event.ok()) {
          return event.error();
        } else if (*event) {
          // type, min, codeIn, prefix
        } else {
          return fail(object, "unknown transform '" + name + "'");
        }
      } else {
        return fail(object, "a transform is a name or a one-member object");
      }
      expr.transforms.push_back(std::move(transform));
    }
  }
  return expr;
}

Result<Condition> Compiler::condition(const json::Value& object, const std::string& scope) {
  if (!object.IsObject()) return fail(object, "a condition must be an object");
  Condition cond;
  if (const json::Value* all = json::find(object, "all"); all && all->IsArray()) {
    cond.op = Condition::Op::kAll;
  } else if (const json::Value* any = json::find(object, "any"); any && any->IsArray()) {
    cond.op = Condition::Op::kAny;
  }
  if (const json::Value* negated = json::find(object, "not")) {
    auto compiled = condition(*negated, scope);
    if (!compiled.ok()) return compiled.error();
    cond.op = Condition::Op::kNot;
    cond.children.push_back(std::move(*compiled));
    return cond;
  }
  if (cond.op == Condition::Op::kAll || cond.op == Condition::Op::kAny) {
    const json::Value& list = *json::find(object, cond.op == Condition::Op::kAll ? "all" : "any");
    for (const json::Value& child : list.GetArray()) {
      auto compiled = condition(child, scope);
      if (!compiled.ok()) return compiled.error();
      cond.children.push_back(std::move(*compiled));
    }
    return cond;
  }
  if (json::find(object, "some") || json::find(object, "sum") || json::find(object, "mapsTo") ||
      json::find(object, "inValueSet")) {
    return itemCondition(object, scope);
  }
  auto value = valueExpr(object, scope, true);
  if (!value.ok()) return value.error();
  cond.value = std::move(*value);
  if (auto equals = json::getString(object, "equals")) {
    cond.op = Condition::Op::kEquals;
    cond.values.insert(std::string(*equals));
  } else if (const json::Value* in = json::find(object, "in"); in && in->IsArray()) {
    cond.op = Condition::Op::kIn;
    for (const json::Value& entry : in->GetArray()) {
      if (json::isString(entry)) cond.values.insert(std::string(json::stringView(entry)));
    }
  } else if (const json::Value* not_in = json::find(object, "notIn"); not_in && not_in->IsArray()) {
    cond.op = Condition::Op::kNotIn;
    for (const json::Value& entry : not_in->GetArray()) {
      if (json::isString(entry)) cond.values.insert(std::string(json::stringView(entry)));
    }
  } else if (const json::Value* exists = json::find(object, "exists"); exists && exists->IsBool()) {
    cond.op = exists->GetBool() ? Condition::Op::kExists : Condition::Op::kMissing;
  } else if (auto map_id = json::getString(object, "translates")) {
    auto found = shared_.translations.find(std::string(*map_id));
    if (found == shared_.translations.end()) {
      return fail(object, "unknown ConceptMap '" + std::string(*map_id) + "' (fhir_profiles/alignment/package)");
    }
    cond.op = Condition::Op::kTranslates;
    cond.codes = &found->second;
  } else {
    return fail(object, "a condition needs \"equals\", \"in\", \"notIn\", \"exists\", \"translates\", \"all\", \"any\", "
                        "\"not\", \"some\", \"sum\", \"mapsTo\" or \"inValueSet\"");
  }
  return cond;
}

Result<Rule> Compiler::rule(const json::Value& object, const std::string& scope, const std::string& context) {
  if (!object.IsObject()) return fail(object, "a rule must be an object");
  static const std::set<std::string> kKnown = {"path", "from", "value", "reference", "transforms", "required",
                                               "default", "when", "forEach", "where", "first", "set", "note",
                                               "referenceTo", "join", "separator", "coverage", "pick", "references",
                                               "warning"};
  for (const auto& member : object.GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!kKnown.count(name)) return fail(object, "unknown rule member '" + name + "'");
  }
  Rule rule;
  rule.line = spec_.document->lineOf(object);
  auto target_text = json::getString(object, "path");
  if (!target_text) return fail(object, "a rule needs a target \"path\"");
  auto target = parseTargetPath(*target_text);
  if (!target.ok()) return fail(object, target.message());
  rule.target = std::move(*target);
  auto checked = paths_.check(context, rule.target);
  if (!checked.ok()) return fail(object, "target path '" + std::string(*target_text) + "' on " + context + ": " + checked.message());
  if (const json::Value* when = json::find(object, "when")) {
    auto cond = condition(*when, scope);
    if (!cond.ok()) return cond.error();
    rule.when = std::move(*cond);
  }
  if (const json::Value* warning = json::find(object, "warning")) {
    if (!json::isString(*warning) || json::find(object, "set") || json::find(object, "forEach") || !json::find(object, "from")) {
      return fail(object, "\"warning\" is a message on a rule with a \"from\" value (no \"set\" or \"forEach\")");
    }
    rule.warning = std::string(json::stringView(*warning));
  }
  if (auto references = json::getString(object, "references")) {
    rule.references_key = std::string(*references);
    auto program = std::find_if(spec_.resources.begin(), spec_.resources.end(),
                                [&](const ResourceProgram& declared) { return declared.key == rule.references_key; });
    if (program == spec_.resources.end() || program->for_each.empty()) {
      return fail(object, "\"references\" names '" + rule.references_key + "', not a forEach resource declared earlier");
    }
    if (rule.target.back().index != PathStep::Index::kAppend) return fail(object, "a references rule appends: its path must end with []");
    if (const json::Value* where = json::find(object, "where")) {
      std::string item_scope = itemScope(program->for_each.front(), scope);
      auto cond = condition(*where, item_scope);
      if (!cond.ok()) return cond.error();
      rule.where = std::move(*cond);
    }
    return rule;
  }
  if (const json::Value* for_each = json::find(object, "forEach")) {
    const json::Value* first = json::find(object, "first");
    rule.first = first && first->IsBool() && first->GetBool();
    if (!rule.first && rule.target.back().index != PathStep::Index::kAppend) {
      return fail(object, "a forEach rule appends: its path must end with [] (or pick one item with \"first\": true)");
    }
    std::vector<std::string> patterns;
    auto addSource = [&](std::string_view text) -> Status {
      auto path = sourcePath(object, text, scope);
      if (!path.ok()) return path.error();
      patterns.push_back(joinPattern(path->absolute ? "" : scope, path->steps));
      rule.for_each.push_back(std::move(*path));
      return Status::Ok();
    };
    if (json::isString(*for_each)) {
      if (Status status = addSource(json::stringView(*for_each)); !status.ok()) return Error{status.message()};
    } else if (for_each->IsArray()) {
      for (const json::Value& entry : for_each->GetArray()) {
        if (!json::isString(entry)) return fail(object, "forEach lists source paths");
        if (Status status = addSource(json::stringView(entry)); !status.ok()) return Error{status.message()};
      }
    } else {
      return fail(object, "forEach is a source path or a list of them");
    }
    // Items of all listed paths share one pattern for checking the paths below them.
    std::string item_scope = patterns.empty() ? scope : patterns.front();
    // The items of an array are its elements.
    if (knownPattern(item_scope + ".*")) item_scope += ".*";
    if (const json::Value* where = json::find(object, "where")) {
      auto cond = condition(*where, item_scope);
      if (!cond.ok()) return cond.error();
      rule.where = std::move(*cond);
    }
    const json::Value* children = json::find(object, "set");
    if (!children) {
      // Appends one value per item.
      auto value = valueExpr(object, item_scope, true);
      if (!value.ok()) return value.error();
      rule.value = std::move(*value);
      return rule;
    }
    if (!children->IsArray()) return fail(object, "\"set\" must be a list of rules");
    for (const json::Value& child : children->GetArray()) {
      auto compiled = this->rule(child, item_scope, *checked);
      if (!compiled.ok()) return compiled.error();
      rule.children.push_back(std::move(*compiled));
    }
    return rule;
  }
  if (const json::Value* children = json::find(object, "set")) {
    if (!children->IsArray()) return fail(object, "\"set\" must be a list of rules");
    for (const json::Value& child : children->GetArray()) {
      auto compiled = this->rule(child, scope, *checked);
      if (!compiled.ok()) return compiled.error();
      rule.children.push_back(std::move(*compiled));
    }
    return rule;
  }
  auto value = valueExpr(object, scope, true);
  if (!value.ok()) return value.error();
  rule.value = std::move(*value);
  return rule;
}

Status Compiler::compile() {
  const json::Value& root = spec_.document->root();
  if (!root.IsObject()) return fail(root, "a spec is a JSON object");
  static const std::set<std::string> kKnown = {"id", "description", "reader", "fields", "columns", "groupBy",
                                               "recordId", "checks", "resources", "note", "unknownMembers",
                                               "provenanceAgent", "agent"};
  for (const auto& member : root.GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!kKnown.count(name)) return fail(root, "unknown spec member '" + name + "'");
  }
  auto id = json::getString(root, "id");
  if (!id) return fail(root, "a spec needs an \"id\"");
  spec_.id = std::string(*id);
  auto reader = json::getString(root, "reader");
  static const std::map<std::string, ReaderKind> kReaders = {
      {"csv", ReaderKind::kCsv}, {"ndjson", ReaderKind::kNdjson}, {"json", ReaderKind::kJson}, {"x12-837p", ReaderKind::kX12},
      {"hl7v2", ReaderKind::kHl7v2}, {"json-events", ReaderKind::kJsonEvents}};
  if (!reader || !kReaders.count(std::string(*reader))) {
    return fail(root, "\"reader\" must be one of csv, ndjson, json, json-events, x12-837p, hl7v2");
  }
  spec_.reader = kReaders.at(std::string(*reader));
  std::string scope;
  const json::Value* fields = json::find(root, spec_.reader == ReaderKind::kCsv ? "columns" : "fields");
  if (!fields || !fields->IsArray()) {
    return fail(root, spec_.reader == ReaderKind::kCsv ? "a CSV spec lists its \"columns\"" : "a spec lists its source \"fields\"");
  }
  for (const json::Value& field : fields->GetArray()) {
    if (!json::isString(field)) return fail(root, "fields are strings");
    spec_.fields.emplace_back(json::stringView(field));
  }
  if (auto group = json::getString(root, "groupBy")) {
    if (spec_.reader != ReaderKind::kCsv) return fail(root, "groupBy applies to CSV specs");
    spec_.group_by = std::string(*group);
    if (!knownPattern(spec_.group_by)) return fail(root, "groupBy names unknown column '" + spec_.group_by + "'");
    // A group is {"lines": [row, ...]}; paths outside a forEach read the group's first row.
    std::vector<std::string> grouped;
    for (const std::string& field : spec_.fields) grouped.push_back("lines.*." + field);
    spec_.fields = std::move(grouped);
    scope = "lines.*";
  }
  const json::Value* record_id = json::find(root, "recordId");
  if (record_id && record_id->IsArray() && !record_id->Empty()) {
    for (const json::Value& part : record_id->GetArray()) {
      if (!part.IsObject()) return fail(root, "recordId parts are {\"from\": path} objects");
      auto part_expr = valueExpr(part, scope, true);
      if (!part_expr.ok()) return part_expr.error();
      part_expr->required = true;
      spec_.record_id_parts.push_back(std::move(*part_expr));
    }
    spec_.record_id = spec_.record_id_parts.front();
  } else {
    if (!record_id || !record_id->IsObject()) return fail(root, "a spec needs a \"recordId\" ({\"from\": path})");
    auto record_expr = valueExpr(*record_id, scope, true);
    if (!record_expr.ok()) return record_expr.error();
    spec_.record_id = std::move(*record_expr);
    spec_.record_id.required = true;
  }

  const json::Value* resources = json::find(root, "resources");
  if (!resources || !resources->IsArray() || resources->Empty()) return fail(root, "a spec needs \"resources\"");
  for (const json::Value& resource : resources->GetArray()) {
    if (!resource.IsObject()) return fail(root, "a resource is an object");
    ResourceProgram program;
    program.line = spec_.document->lineOf(resource);
    auto key = json::getString(resource, "key");
    auto type = json::getString(resource, "type");
    if (!key || !type) return fail(resource, "a resource needs \"key\" and \"type\"");
    program.key = std::string(*key);
    program.type = std::string(*type);
    if (keys_.count(program.key)) return fail(resource, "duplicate resource key '" + program.key + "'");
    auto known_type = paths_.check(program.type, {PathStep{"id"}});  // every resource has an id
    if (!known_type.ok()) return fail(resource, "unknown resource type '" + program.type + "'");
    if (auto profile = json::getString(resource, "profile")) {
      program.profile = std::string(kBase) + "/StructureDefinition/" + std::string(*profile);
    }
    if (const json::Value* when = json::find(resource, "when")) {
      auto cond = condition(*when, scope);
      if (!cond.ok()) return cond.error();
      program.when = std::move(*cond);
    }
    std::string item_scope = scope;
    if (Status status = eventResource(resource, scope, program, item_scope); !status.ok()) return status;
    if (!program.for_each.empty()) per_item_keys_.insert(program.key);
    const json::Value* id_parts = json::find(resource, "id");
    if (!id_parts || !id_parts->IsArray() || id_parts->Empty()) return fail(resource, "a resource needs \"id\" parts");
    for (const json::Value& part : id_parts->GetArray()) {
      IdPart compiled;
      if (json::isString(part)) {
        compiled.literal = std::string(json::stringView(part));
      } else if (part.IsObject()) {
        auto expr = valueExpr(part, item_scope, true);
        if (!expr.ok()) return expr.error();
        compiled.value = std::move(*expr);
        compiled.value.required = true;
      } else {
        return fail(resource, "id parts are strings or {\"from\": path}");
      }
      program.id.push_back(std::move(compiled));
    }
    keys_.insert(program.key);  // a resource may refer to itself (e.g. Provenance-like links)
    const json::Value* rules = json::find(resource, "set");
    if (!rules || !rules->IsArray()) return fail(resource, "a resource needs a \"set\" list of rules");
    for (const json::Value& rule_object : rules->GetArray()) {
      auto compiled = rule(rule_object, item_scope, program.type);
      if (!compiled.ok()) return compiled.error();
      program.rules.push_back(std::move(*compiled));
    }
    spec_.resources.push_back(std::move(program));
  }
  if (const json::Value* checks = json::find(root, "checks")) {
    if (!checks->IsArray()) return fail(root, "\"checks\" must be a list");
    for (const json::Value& check : checks->GetArray()) {
      // A check is a rule without a target: its value is computed (and so validated) and dropped.
      Rule compiled;
      compiled.line = spec_.document->lineOf(check);
      if (const json::Value* when = json::find(check, "when")) {
        auto cond = condition(*when, scope);
        if (!cond.ok()) return cond.error();
        compiled.when = std::move(*cond);
      }
      if (const json::Value* for_each = json::find(check, "forEach")) {
        if (!json::isString(*for_each)) return fail(check, "a check's forEach is one source path");
        auto path = sourcePath(check, json::stringView(*for_each), scope);
        if (!path.ok()) return path.error();
        std::string item_scope = itemScope(*path, scope);
        compiled.for_each.push_back(std::move(*path));
        const json::Value* children = json::find(check, "set");
        if (!children || !children->IsArray()) return fail(check, "a forEach check needs a \"set\" list");
        for (const json::Value& child : children->GetArray()) {
          Rule inner;
          inner.line = spec_.document->lineOf(child);
          auto expr = valueExpr(child, item_scope, true);
          if (!expr.ok()) return expr.error();
          inner.value = std::move(*expr);
          compiled.children.push_back(std::move(inner));
        }
      } else {
        auto expr = valueExpr(check, scope, true);
        if (!expr.ok()) return expr.error();
        compiled.value = std::move(*expr);
      }
      spec_.checks.push_back(std::move(compiled));
    }
  }
  return eventTopLevel(root, scope);
}

// Event-spec additions to the compiler (mappers/specs/README.md, "Event specs").

Result<bool> Compiler::eventValueExpr(const json::Value& object, const std::string& scope, ValueExpr& expr) {
  if (const json::Value* parts = json::find(object, "referenceTo")) {
    if (!parts->IsArray() || parts->Empty() || !json::isString((*parts)[0])) {
      return fail(object, "referenceTo lists id parts, the first a resource type: [\"Practitioner\", {\"from\": ...}]");
    }
    std::string type(json::stringView((*parts)[0]));
    if (!paths_.check(type, {PathStep{"id"}}).ok()) return fail(object, "referenceTo: unknown resource type '" + type + "'");
    expr.kind = ValueExpr::Kind::kReferenceTo;
    for (const json::Value& part : parts->GetArray()) {
      if (json::isString(part)) {
        expr.part_literals.emplace_back(json::stringView(part));
        expr.part_values.emplace_back();
        continue;
      }
      if (!part.IsObject()) return fail(object, "referenceTo parts are strings or {\"from\": path}");
      auto value = valueExpr(part, scope, true);
      if (!value.ok()) return value.error();
      expr.part_literals.emplace_back();
      expr.part_values.push_back(std::move(*value));
    }
    return true;
  }
  if (const json::Value* parts = json::find(object, "join")) {
    if (!parts->IsArray() || parts->Empty()) return fail(object, "join lists values: [{\"from\": ...}, ...]");
    expr.kind = ValueExpr::Kind::kJoin;
    expr.separator = std::string(json::getString(object, "separator").value_or(" "));
    for (const json::Value& part : parts->GetArray()) {
      if (!part.IsObject()) return fail(object, "join parts are {\"from\": path} or {\"value\": ...} objects");
      auto value = valueExpr(part, scope, true);
      if (!value.ok()) return value.error();
      expr.part_values.push_back(std::move(*value));
    }
    return true;
  }
  if (const json::Value* pick = json::find(object, "pick")) {
    if (!pick->IsObject()) return fail(object, "pick is {\"forEach\": path, \"where\": condition, \"value\": {\"from\": ...}}");
    auto for_each = json::getString(*pick, "forEach");
    const json::Value* value = json::find(*pick, "value");
    if (!for_each || !value || !value->IsObject()) return fail(*pick, "pick needs \"forEach\" and \"value\"");
    auto path = sourcePath(*pick, *for_each, scope);
    if (!path.ok()) return path.error();
    std::string item_scope = itemScope(*path, scope);
    expr.kind = ValueExpr::Kind::kPick;
    expr.pick_for_each.push_back(std::move(*path));
    if (const json::Value* where = json::find(*pick, "where")) {
      auto cond = condition(*where, item_scope);
      if (!cond.ok()) return cond.error();
      expr.pick_where = std::make_shared<Condition>(std::move(*cond));
    }
    auto inner = valueExpr(*value, item_scope, true);
    if (!inner.ok()) return inner.error();
    expr.part_values.push_back(std::move(*inner));
    return true;
  }
  if (const json::Value* coverage = json::find(object, "coverage"); coverage && coverage->IsObject()) {
    auto patient = json::getString(*coverage, "patient");
    const json::Value* on = json::find(*coverage, "on");
    auto take = json::getString(*coverage, "take");
    if (!on || !(json::isString(*on) || on->IsObject())) {
      return fail(*coverage, "coverage needs \"on\": the path of the date, or {\"from\": path, \"transforms\": [...]}");
    }
    if (!patient || !keys_.count(std::string(*patient))) {
      return fail(*coverage, "coverage needs \"patient\": the key of a Patient resource declared earlier");
    }
    if (!take || (*take != "coverage" && *take != "insurer")) {
      return fail(*coverage, "coverage \"take\" is \"coverage\" or \"insurer\"");
    }
    ValueExpr value;
    if (on->IsObject()) {
      auto date = valueExpr(*on, scope, true);
      if (!date.ok()) return date.error();
      value = std::move(*date);
    } else {
      auto date = sourcePath(*coverage, json::stringView(*on), scope);
      if (!date.ok()) return date.error();
      value.kind = ValueExpr::Kind::kSource;
      value.from = std::move(*date);
    }
    expr.kind = ValueExpr::Kind::kCoverageOn;
    expr.part_values.push_back(std::move(value));
    expr.patient_key = std::string(*patient);
    expr.give = std::string(*take);
    return true;
  }
  return false;
}

Result<bool> Compiler::eventTransform(const json::Value& at, const std::string& name, const json::Value& argument,
                                      Transform& transform) {
  if (name == "type" && json::isString(argument)) {
    static const std::set<std::string> kTypes = {"string", "object", "array", "integer", "number", "boolean"};
    transform.name = std::string(json::stringView(argument));
    if (!kTypes.count(transform.name)) {
      return fail(at, "unknown JSON type '" + transform.name + "' (string, object, array, integer, number, boolean)");
    }
    transform.kind = TransformKind::kType;
    return true;
  }
  if (name == "min" && json::numberAsInt64(argument)) {
    transform.kind = TransformKind::kMin;
    transform.minimum = *json::numberAsInt64(argument);
    return true;
  }
  if (name == "codeIn" && argument.IsArray()) {
    transform.kind = TransformKind::kCodeIn;
    for (const json::Value& allowed : argument.GetArray()) {
      if (!json::isString(allowed)) return fail(at, "codeIn lists strings");
      transform.allowed.insert(std::string(json::stringView(allowed)));
    }
    return true;
  }
  if (name == "prefix" && json::isString(argument)) {
    transform.kind = TransformKind::kPrefix;
    transform.name = std::string(json::stringView(argument));
    return true;
  }
  if ((name == "memberOf" || name == "ordinal") && json::isString(argument)) {
    transform.value_set = valueSet(json::stringView(argument));
    if (!transform.value_set) {
      return fail(at, "unknown ValueSet '" + std::string(json::stringView(argument)) + "' (fhir_profiles/alignment/package)");
    }
    transform.kind = name == "memberOf" ? TransformKind::kMemberOf : TransformKind::kOrdinal;
    return true;
  }
  return false;
}

Status Compiler::eventResource(const json::Value& resource, const std::string& scope, ResourceProgram& program,
                               std::string& item_scope) {
  if (const json::Value* update = json::find(resource, "update")) {
    if (!json::isString(*update) || json::stringView(*update) != "merge") return fail(resource, "\"update\" can only be \"merge\"");
    program.merge = true;
  }
  const json::Value* for_each = json::find(resource, "forEach");
  if (!for_each) {
    if (json::find(resource, "where")) return fail(resource, "\"where\" needs a \"forEach\"");
    return Status::Ok();
  }
  if (!json::isString(*for_each)) return fail(resource, "a resource's forEach is one source path");
  auto path = sourcePath(resource, json::stringView(*for_each), scope);
  if (!path.ok()) return Error{path.message()};
  item_scope = itemScope(*path, scope);
  program.for_each.push_back(std::move(*path));
  if (const json::Value* where = json::find(resource, "where")) {
    auto cond = condition(*where, item_scope);
    if (!cond.ok()) return Error{cond.message()};
    program.where = std::move(*cond);
  }
  if (auto unique = json::getString(resource, "unique")) program.unique_message = std::string(*unique);
  return Status::Ok();
}

// Care-management additions to the compiler (mappers/specs/README.md, "Event specs").

const ValueSetCodes* Compiler::valueSet(std::string_view id) const {
  auto found = shared_.value_sets.find(std::string(id));
  return found == shared_.value_sets.end() ? nullptr : &found->second;
}

// {"some": path, "where": cond}, {"sum": path, "where": cond, "of": value, "atLeast": n},
// {"from": path, "mapsTo": {"map": id, "dependsOn": path, "in": [codes]}},
// {"from": path, "inValueSet": id}.
Result<Condition> Compiler::itemCondition(const json::Value& object, const std::string& scope) {
  Condition cond;
  auto itemsOf = [&](const char* member) -> Result<std::string> {
    auto path = sourcePath(object, json::getString(object, member).value_or(""), scope);
    if (!path.ok()) return path.error();
    std::string item_scope = itemScope(*path, scope);
    cond.items = std::move(*path);
    if (const json::Value* where = json::find(object, "where")) {
      auto compiled = condition(*where, item_scope);
      if (!compiled.ok()) return compiled.error();
      cond.children.push_back(std::move(*compiled));
    }
    return item_scope;
  };
  if (json::getString(object, "some")) {
    cond.op = Condition::Op::kSome;
    auto item_scope = itemsOf("some");
    if (!item_scope.ok()) return item_scope.error();
    return cond;
  }
  if (json::getString(object, "sum")) {
    cond.op = Condition::Op::kSum;
    auto item_scope = itemsOf("sum");
    if (!item_scope.ok()) return item_scope.error();
    const json::Value* of = json::find(object, "of");
    const json::Value* at_least = json::find(object, "atLeast");
    if (!of || !of->IsObject() || !at_least || !json::isNumber(*at_least)) {
      return fail(object, "a sum condition needs \"of\" (a value) and a number \"atLeast\"");
    }
    auto value = valueExpr(*of, *item_scope, true);
    if (!value.ok()) return value.error();
    cond.value = std::move(*value);
    cond.threshold = json::numberText(*at_least);
    return cond;
  }
  auto value = valueExpr(object, scope, true);
  if (!value.ok()) return value.error();
  cond.value = std::move(*value);
  if (const json::Value* maps_to = json::find(object, "mapsTo")) {
    cond.op = Condition::Op::kMapsTo;
    auto map_id = json::getString(*maps_to, "map");
    auto depends_on = json::getString(*maps_to, "dependsOn");
    const json::Value* in = json::find(*maps_to, "in");
    if (!map_id || !depends_on || !in || !in->IsArray()) {
      return fail(object, "\"mapsTo\" needs \"map\" (a ConceptMap id), \"dependsOn\" (a source path) and \"in\" (target codes)");
    }
    auto found = shared_.dependent.find(std::string(*map_id));
    if (found == shared_.dependent.end()) {
      return fail(object, "unknown ConceptMap with dependsOn '" + std::string(*map_id) + "' (fhir_profiles/alignment/package)");
    }
    cond.translation = &found->second;
    auto path = sourcePath(*maps_to, *depends_on, scope);
    if (!path.ok()) return path.error();
    cond.depends_on = std::move(*path);
    for (const json::Value& entry : in->GetArray()) {
      if (json::isString(entry)) cond.values.insert(std::string(json::stringView(entry)));
    }
    return cond;
  }
  auto value_set = json::getString(object, "inValueSet");
  cond.op = Condition::Op::kInValueSet;
  cond.value_set = value_set ? valueSet(*value_set) : nullptr;
  if (!cond.value_set) return fail(object, "unknown ValueSet '" + std::string(value_set.value_or("")) + "' (fhir_profiles/alignment/package)");
  return cond;
}

// The alignment ValueSets (codes of compose.include concepts, with ordinalValue extensions) and
// the dependsOn translations of the ConceptMaps that have them.
// Codes of the alignment CodeSystems by canonical URL, for value sets that include a whole system.
std::map<std::string, std::vector<std::string>> localCodeSystems(const std::string& dir) {
  std::map<std::string, std::vector<std::string>> systems;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("CodeSystem-", 0) != 0 || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (!doc.ok()) continue;
    const json::Value* concepts = json::find(*doc, "concept");
    if (!concepts || !concepts->IsArray()) continue;
    std::vector<std::string>& codes = systems[std::string(json::getString(*doc, "url").value_or(""))];
    for (const json::Value& entry_concept : concepts->GetArray()) codes.emplace_back(json::getString(entry_concept, "code").value_or(""));
  }
  return systems;
}

Status loadValueSets(const std::string& dir, SpecLibrary::Shared& shared) {
  const std::map<std::string, std::vector<std::string>> systems = localCodeSystems(dir);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    bool value_set = name.rfind("ValueSet-", 0) == 0;
    bool concept_map = name.rfind("ConceptMap-", 0) == 0;
    if ((!value_set && !concept_map) || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (!doc.ok()) return Error{entry.path().string() + ": " + doc.message()};
    std::string id(json::getString(*doc, "id").value_or(""));
    if (value_set) {
      ValueSetCodes codes;
      codes.name = id;
      const json::Value* compose = json::find(*doc, "compose");
      const json::Value* includes = compose ? json::find(*compose, "include") : nullptr;
      if (!includes || !includes->IsArray()) continue;
      for (const json::Value& include : includes->GetArray()) {
        std::string system(json::getString(include, "system").value_or(""));
        const json::Value* concepts = json::find(include, "concept");
        if (!concepts || !concepts->IsArray()) {
          auto whole = systems.find(system);  // the whole (local) code system
          if (whole == systems.end()) continue;
          for (const std::string& code : whole->second) {
            codes.codes.insert(code);
            codes.codes.insert(system + "|" + code);
          }
          continue;
        }
        for (const json::Value& entry_concept : concepts->GetArray()) {
          std::string code(json::getString(entry_concept, "code").value_or(""));
          codes.codes.insert(code);
          codes.codes.insert(system + "|" + code);
          const json::Value* extensions = json::find(entry_concept, "extension");
          if (!extensions || !extensions->IsArray()) continue;
          for (const json::Value& extension : extensions->GetArray()) {
            const json::Value* ordinal = json::find(extension, "valueDecimal");
            if (json::getString(extension, "url") == "http://hl7.org/fhir/StructureDefinition/ordinalValue" && ordinal &&
                json::isNumber(*ordinal)) {
              codes.ordinals[code] = json::numberText(*ordinal);
            }
          }
        }
      }
      shared.value_sets.emplace(id, std::move(codes));
      continue;
    }
    const json::Value* groups = json::find(*doc, "group");
    if (!groups || !groups->IsArray()) continue;
    DependentTranslation translation;
    translation.name = id;
    for (const json::Value& group : groups->GetArray()) {
      const json::Value* elements = json::find(group, "element");
      if (!elements || !elements->IsArray()) continue;
      for (const json::Value& element : elements->GetArray()) {
        std::string code(json::getString(element, "code").value_or(""));
        const json::Value* targets = json::find(element, "target");
        if (!targets || !targets->IsArray()) continue;
        for (const json::Value& target : targets->GetArray()) {
          const json::Value* depends = json::find(target, "dependsOn");
          if (!depends || !depends->IsArray()) continue;
          for (const json::Value& condition : depends->GetArray()) {
            std::string value(json::getString(condition, "value").value_or(""));
            translation.targets[value + '\x1f' + code].insert(std::string(json::getString(target, "code").value_or("")));
          }
        }
      }
    }
    if (!translation.targets.empty()) shared.dependent.emplace(id, std::move(translation));
  }
  if (error) return Error{"cannot read " + dir + ": " + error.message()};
  return Status::Ok();
}


Status Compiler::eventTopLevel(const json::Value& root, const std::string& scope) {
  if (const json::Value* unknown = json::find(root, "unknownMembers")) {
    if (!json::isString(*unknown) || json::stringView(*unknown) != "warn") return fail(root, "\"unknownMembers\" can only be \"warn\"");
    if (spec_.reader != ReaderKind::kJson && spec_.reader != ReaderKind::kNdjson && spec_.reader != ReaderKind::kJsonEvents) {
      return fail(root, "\"unknownMembers\" applies to json and ndjson specs");
    }
    spec_.warn_unknown_members = true;
  }
  if (const json::Value* agent = json::find(root, "provenanceAgent")) {
    if (!agent->IsArray() || agent->Empty()) return fail(root, "\"provenanceAgent\" is a list of rules building agent.who");
    for (const json::Value& rule_object : agent->GetArray()) {
      auto compiled = rule(rule_object, scope, "Reference");
      if (!compiled.ok()) return Error{compiled.message()};
      spec_.provenance_agent.push_back(std::move(*compiled));
    }
  }
  if (auto agent = json::getString(root, "agent")) {
    if (!spec_.provenance_agent.empty()) return fail(root, "\"agent\" and \"provenanceAgent\" exclude each other");
    spec_.agent_key = std::string(*agent);
    if (!keys_.count(spec_.agent_key)) return fail(root, "\"agent\" names unknown resource key '" + spec_.agent_key + "'");
  }
  return Status::Ok();
}

Status loadConceptMaps(const std::string& dir, SpecLibrary::Shared& shared) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("ConceptMap-", 0) != 0 || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (!doc.ok()) return Error{entry.path().string() + ": " + doc.message()};
    auto id = json::getString(*doc, "id");
    std::string map_id = id ? std::string(*id) : name.substr(11, name.size() - 16);
    const json::Value* groups = json::find(*doc, "group");
    if (!groups || !groups->IsArray()) continue;
    // "id" translates through the groups in turn (a chain: lakeshore P -> paid -> complete is
    // two maps, named "id" for the first group and "id#2" for the second).
    size_t group_index = 0;
    for (const json::Value& group : groups->GetArray()) {
      ++group_index;
      Translation translation;
      translation.name = map_id + (group_index == 1 ? "" : "#" + std::to_string(group_index));
      const json::Value* elements = json::find(group, "element");
      if (!elements || !elements->IsArray()) continue;
      for (const json::Value& element : elements->GetArray()) {
        auto code = json::getString(element, "code");
        const json::Value* targets = json::find(element, "target");
        if (!code || !targets || !targets->IsArray() || targets->Empty()) continue;
        auto target = json::getString((*targets)[0], "code");
        if (target) translation.codes.emplace(std::string(*code), std::string(*target));
      }
      shared.translations.emplace(translation.name, std::move(translation));
    }
  }
  if (error) return Error{"cannot read " + dir + ": " + error.message()};
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Running.

std::string nowUtc() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S+00:00", &parts);
  return buffer;
}

// Where a scope's value sits in the record, as path steps, for issue locations only. Scopes are
// copied for every item and resource of every record and issues are rare, so the steps are kept
// inline as views of names that outlive the record's mapping (spec path steps, the record's
// member names, literals) or as array indexes; steps() spells them out when an issue needs them.
class Location {
 public:
  Location() = default;
  Location(std::initializer_list<std::string_view> names) {
    for (std::string_view name : names) push(name);
  }
  void push(std::string_view name) { add(Step{name.data(), static_cast<uint32_t>(name.size()), 0}); }
  void push(size_t index) { add(Step{nullptr, 0, static_cast<uint32_t>(index)}); }
  void pop() {
    if (!overflow_.empty()) overflow_.pop_back();
    else --size_;
  }
  std::vector<std::string> steps() const {
    std::vector<std::string> out;
    out.reserve(size_ + overflow_.size());
    for (size_t index = 0; index < size_; ++index) out.push_back(text(inline_[index]));
    for (const Step& step : overflow_) out.push_back(text(step));
    return out;
  }

 private:
  struct Step {
    const char* name;  // nullptr: an array index
    uint32_t size;
    uint32_t index;
  };
  static std::string text(const Step& step) {
    return step.name ? std::string(step.name, step.size) : std::to_string(step.index);
  }
  void add(Step step) {
    if (size_ < kInline && overflow_.empty()) inline_[size_++] = step;
    else overflow_.push_back(step);
  }
  static constexpr size_t kInline = 8;
  std::array<Step, kInline> inline_{};
  size_t size_ = 0;
  std::vector<Step> overflow_;  // steps beyond kInline
};

struct Scope {
  const json::Value* value;
  Location location;
  size_t index = 0;  // 1-based forEach index
};

// The nodes the last slot() call for a list of rules walked through, so that the next rule of
// the list sharing leading target steps with it (Rule::shared_steps) starts below them instead
// of finding them again. Only slot() changes the target between two rules of one list, and a
// node's place changes only when members are added to its parent: the cached nodes stay valid.
// A list's target starts empty but for the members linkSiblingRules() is told of.
struct SlotCache {
  static constexpr size_t kDepth = 8;
  const Rule* rule = nullptr;  // the rule of the last slot() call on `target`
  const json::Value* target = nullptr;
  std::array<json::Value*, kDepth> nodes{};  // nodes[k]: the value reached by step k
};

json::Value& slot(json::Value& object, const Rule& rule, json::Allocator& allocator, SlotCache& cache);

class Run {
 public:
  Run(const CompiledSpec& spec, const MapOptions& options, std::string payer_id, const PayerInfo* payer,
      std::string now)
      : spec_(spec), options_(options), payer_id_(std::move(payer_id)), payer_(payer), now_(std::move(now)) {}

  // Maps one record; false with issues when it has errors.
  bool map(const json::Value& record, const std::string& raw, const std::string& position, MappedBundle& out,
           IssueList& issues);

 private:
  std::string location(const std::vector<std::string>& steps) const {
    bool json_reader = spec_.reader == ReaderKind::kNdjson || spec_.reader == ReaderKind::kJson ||
                       spec_.reader == ReaderKind::kJsonEvents;
    // A posted event (mapRecord) has no line: its locations are plain JSON paths.
    if (json_reader && record_->IsObject() && !json::find(*record_, "@line")) return jsonPathOf(*record_, steps);
    return readers::describeLocation(*record_, steps, json_reader);
  }
  static std::string jsonPathOf(const json::Value& record, const std::vector<std::string>& steps);
  void error(const std::vector<std::string>& steps, const std::string& code, const std::string& message) {
    std::string where = location(steps);
    std::string diagnostics = where + ": " + message;
    // Two rules reading the same bad value report it once.
    for (const Issue& issue : issues_->issues()) {
      if (issue.diagnostics == diagnostics) return;
    }
    issues_->atLocation(Severity::kError, code, where, diagnostics);
  }
  // `text` with its {variables} replaced. The view is valid until the next call; templates
  // naming only run constants ({payer}, {spec}, ...) are expanded once per run.
  // `permanent`: set when the view is intern()ed.
  std::string_view expand(std::string_view text, const Scope& scope, bool* permanent = nullptr) const;
  // The "Type/id" of this record's resource `key` (not made per item), or nullptr.
  const std::string* referenceOf(std::string_view key) const {
    for (size_t index = 0; index < reference_count_; ++index) {
      if (references_[index].first == key) return &references_[index].second;
    }
    return nullptr;
  }
  std::string& setReference(std::string_view key);
  const json::Value* resolve(const SourcePath& path, const Scope& scope) const;
  // Evaluates `expr`; nullopt when absent (reported when required) or invalid (reported).
  std::optional<json::Value> evaluate(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                      bool& failed);
  bool test(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed);
  void apply(const Rule& rule, json::Value& target, const Scope& scope, json::Allocator& allocator, bool& failed,
             SlotCache& cache);
  // apply() for each rule of a list, in order, writing into `target`.
  void applyAll(const std::vector<Rule>& rules, json::Value& target, const Scope& scope, json::Allocator& allocator,
                bool& failed);
  std::vector<Scope> items(const Rule& rule, const Scope& scope) const;
  // The items `paths` reach from `scope`. Their locations view the paths' steps: `paths` must
  // outlive them (the spec's own paths do).
  std::vector<Scope> itemsOf(const std::vector<SourcePath>& paths, const Scope& scope) const;
  void itemsOf(const SourcePath& path, const Scope& scope, std::vector<Scope>& out) const;
  // Event-spec additions (mappers/specs/README.md, "Event specs").
  std::optional<json::Value> eventValue(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                        bool& failed);
  std::optional<json::Value> coverageOn(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                        bool& failed);
  bool eventTransform(const Transform& transform, json::Value& result, const std::vector<std::string>& where,
                      json::Allocator& allocator);
  void warnUnknownMembers(const json::Value& value, std::vector<std::string>& steps, IssueList& warnings) const;
  std::string recordIdOf(const Scope& root, json::Allocator& allocator, bool& failed);
  void mergeStored(json::Value& resource, json::Allocator& allocator) const;
  json::Value provenanceAgent(const Scope& root, json::Allocator& allocator, bool& failed);
  // Care-management additions: conditions over items, every instance of a forEach resource.
  bool testItems(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed);
  void applyReferences(const Rule& rule, json::Value& target, json::Allocator& allocator, bool& failed,
                       SlotCache& cache);

  const CompiledSpec& spec_;
  const MapOptions& options_;
  std::string payer_id_;
  const PayerInfo* payer_;
  std::string now_;
  const json::Value* record_ = nullptr;
  IssueList* issues_ = nullptr;
  IssueList* warnings_ = nullptr;  // the MappedBundle's
  std::string record_id_;
  // resource key -> "Type/id" for this record: the first reference_count_ entries (the others
  // keep their buffers for the next record).
  std::vector<std::pair<std::string_view, std::string>> references_;
  size_t reference_count_ = 0;
  mutable std::unordered_map<std::string_view, std::string_view> constant_expansions_;  // intern()ed
  mutable std::string expansion_;
  // Per-record work lists, members so that their buffers are reused from record to record.
  std::vector<const ResourceProgram*> produced_;
  std::vector<std::string> ids_;
  std::vector<Scope> scopes_;  // the item a resource made per item reads; else the root
  std::vector<Scope> program_scopes_;
  std::string joined_, text_;
  const json::Value* entries_ = nullptr;            // the Bundle entries built so far (coverageOn)
  // forEach resource key -> ("Type/id", the source item) per instance made ("references" rules).
  std::map<std::string, std::vector<std::pair<std::string, Scope>>> instances_;
  std::vector<std::pair<std::string, std::string>> last_ids_;  // per resource program: id parts, id
  std::string payer_reference_;  // "Organization/<id>" of the payer, the Provenance's agent
};

std::string& Run::setReference(std::string_view key) {
  for (size_t index = 0; index < reference_count_; ++index) {
    if (references_[index].first == key) return references_[index].second;
  }
  if (reference_count_ == references_.size()) references_.emplace_back();
  auto& [name, reference] = references_[reference_count_++];
  name = key;
  return reference;
}

std::string_view Run::expand(std::string_view text, const Scope& scope, bool* permanent) const {
  if (text.find('{') == std::string_view::npos) return text;
  if (auto cached = constant_expansions_.find(text); cached != constant_expansions_.end()) {
    if (permanent) *permanent = true;
    return cached->second;
  }
  bool constant = true;
  std::string& out = expansion_;
  out.clear();
  size_t position = 0;
  while (position < text.size()) {
    size_t open = text.find('{', position);
    if (open == std::string_view::npos) break;
    size_t close = text.find('}', open);
    if (close == std::string_view::npos) break;
    out.append(text.substr(position, open - position));
    std::string_view name = text.substr(open + 1, close - open - 1);
    if (name == "payer") out += payer_id_;
    else if (name == "payerName") out += payer_ && !payer_->name.empty() ? payer_->name : payer_id_;
    else if (name == "spec") out += spec_.id;
    else if (name == "now") out += now_;
    else if (name == "index" || name == "position") out += std::to_string(scope.index), constant = false;
    else if (name == "recordId") out += record_id_, constant = false;
    else if (name == "source") out += options_.source_name;
    else out.append(text.substr(open, close - open + 1));
    position = close + 1;
  }
  out.append(text.substr(position));
  if (!constant) return out;
  if (permanent) *permanent = true;
  return constant_expansions_.emplace(text, intern(out)).first->second;
}

// Where a source path points (for issues only; built when an issue needs it).
std::vector<std::string> locationOf(const SourcePath& path, const Scope& scope) {
  std::vector<std::string> out;
  if (!path.absolute) out = scope.location.steps();
  if (!path.self) out.insert(out.end(), path.steps.begin(), path.steps.end());
  return out;
}

const json::Value* Run::resolve(const SourcePath& path, const Scope& scope) const {
  if (path.self) return scope.value;
  const json::Value* current = path.absolute ? record_ : scope.value;
  for (size_t index = 0; index < path.steps.size(); ++index) {
    const std::string& step = path.steps[index];
    if (!current) return nullptr;
    if (current->IsObject()) {
      current = path.member(*current, index);
    } else if (current->IsArray()) {
      size_t index = std::strtoul(step.c_str(), nullptr, 10);
      current = index < current->Size() ? &(*current)[static_cast<rapidjson::SizeType>(index)] : nullptr;
    } else if (json::isString(*current) && step == "0") {
      // An X12 element without components is its own first component.
    } else {
      current = nullptr;
    }
  }
  return current;
}

std::string textOf(const json::Value& value) {
  if (json::isString(value)) return std::string(json::stringView(value));
  if (json::isNumber(value)) return json::numberText(value);
  if (value.IsBool()) return value.GetBool() ? "true" : "false";
  return std::string();
}

bool isDecimal(std::string_view text) {
  size_t position = 0;
  if (position < text.size() && text[position] == '-') ++position;
  size_t digits = 0;
  while (position < text.size() && std::isdigit(static_cast<unsigned char>(text[position]))) ++position, ++digits;
  if (digits == 0 || (digits > 1 && text[text[0] == '-' ? 1 : 0] == '0')) return false;
  if (position < text.size() && text[position] == '.') {
    ++position;
    size_t fraction = 0;
    while (position < text.size() && std::isdigit(static_cast<unsigned char>(text[position]))) ++position, ++fraction;
    if (fraction == 0) return false;
  }
  return position == text.size();
}

std::optional<json::Value> Run::evaluate(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                         bool& failed) {
  json::Value result;
  const char* borrowed = nullptr;  // `result` views this source string (not yet copied)
  size_t picked_component = 0;  // 1-based, when a component transform picked one
  auto where = [&]() {
    std::vector<std::string> steps = expr.kind == ValueExpr::Kind::kSource ? locationOf(expr.from, scope) : scope.location.steps();
    if (picked_component) steps.push_back(std::to_string(picked_component - 1));
    return steps;
  };
  switch (expr.kind) {
    case ValueExpr::Kind::kNone:
      return std::nullopt;
    case ValueExpr::Kind::kReferenceTo:
    case ValueExpr::Kind::kJoin:
    case ValueExpr::Kind::kCoverageOn:
    case ValueExpr::Kind::kPick: {
      std::optional<json::Value> value = eventValue(expr, scope, allocator, failed);
      if (!value) return std::nullopt;
      result = std::move(*value);
      break;
    }
    case ValueExpr::Kind::kReference: {
      const std::string* found = referenceOf(expr.reference_key);
      if (!found) return std::nullopt;
      json::Value reference(rapidjson::kObjectType);
      reference.AddMember("reference", json::makeString(*found, allocator), allocator);
      return reference;
    }
    case ValueExpr::Kind::kLiteral:
      if (!expr.constant.empty()) {
        result = json::constantString(expr.constant);
      } else if (json::isString(*expr.literal)) {
        bool permanent = false;
        std::string_view text = expand(json::stringView(*expr.literal), scope, &permanent);
        result = permanent ? json::constantString(text) : json::makeString(text, allocator);
      } else {
        result.CopyFrom(*expr.literal, allocator);
      }
      break;
    case ValueExpr::Kind::kSource: {
      const json::Value* resolved = resolve(expr.from, scope);
      bool missing = !resolved || resolved->IsNull() || (json::isString(*resolved) && json::stringView(*resolved).empty());
      if (missing) {
        if (expr.fallback) {
          if (json::isString(*expr.fallback)) {
            result = json::makeString(expand(json::stringView(*expr.fallback), scope), allocator);
          } else {
            result.CopyFrom(*expr.fallback, allocator);
          }
          break;
        }
        if (expr.required) {
          error(where(), "required", "a value is required");
          failed = true;
        }
        return std::nullopt;
      }
      if (json::isString(*resolved) && !expr.transforms.empty()) {
        // Most transforms replace the value: it is copied at the end if it is still this one.
        borrowed = resolved->GetString();
        result = json::constantString(std::string_view(borrowed, resolved->GetStringLength()));
      } else {
        result.CopyFrom(*resolved, allocator);
      }
      break;
    }
  }
  for (const Transform& transform : expr.transforms) {
    if (transform.kind == TransformKind::kComponent) {
      if (result.IsArray()) {
        if (transform.component == 0 || transform.component > result.Size()) return std::nullopt;
        json::Value picked;
        picked.CopyFrom(result[static_cast<rapidjson::SizeType>(transform.component - 1)], allocator);
        result = std::move(picked);
        picked_component = transform.component;
      } else if (transform.component != 1) {
        return std::nullopt;
      }
      if (json::isString(result) && json::stringView(result).empty()) {
        if (expr.required) {
          error(where(), "required", "a value is required");
          failed = true;
        }
        return std::nullopt;
      }
      continue;
    }
    if (transform.kind == TransformKind::kType || transform.kind == TransformKind::kPayer ||
        transform.kind == TransformKind::kCodeIn || transform.kind == TransformKind::kMin ||
        transform.kind == TransformKind::kDateTime || transform.kind == TransformKind::kPrefix) {
      if (!eventTransform(transform, result, where(), allocator)) {
        failed = true;
        return std::nullopt;
      }
      continue;
    }
    if (result.IsObject() || result.IsArray()) {
      error(where(), "structure", "expected a single value, found " + std::string(result.IsObject() ? "an object" : "an array"));
      failed = true;
      return std::nullopt;
    }
    std::string text = textOf(result);
    auto bad = [&](const std::string& message) {
      error(where(), "value", "'" + text + "' " + message);
      failed = true;
      return std::nullopt;
    };
    switch (transform.kind) {
      case TransformKind::kTrim: {
        size_t start = text.find_first_not_of(" \t");
        size_t end = text.find_last_not_of(" \t");
        text = start == std::string::npos ? std::string() : text.substr(start, end - start + 1);
        result = json::makeString(text, allocator);
        break;
      }
      case TransformKind::kUpper:
        for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        result = json::makeString(text, allocator);
        break;
      case TransformKind::kLower:
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        result = json::makeString(text, allocator);
        break;
      case TransformKind::kDateYmd: {
        std::string iso = text.size() == 8 ? text.substr(0, 4) + "-" + text.substr(4, 2) + "-" + text.substr(6, 2) : "";
        if (!isDate(iso)) return bad("is not a date YYYYMMDD");
        result = json::makeString(iso, allocator);
        break;
      }
      case TransformKind::kDate:
        if (!isDate(text)) return bad("is not a date YYYY-MM-DD");
        result = json::makeString(text, allocator);
        break;
      case TransformKind::kDecimal:
        if (!isDecimal(text)) return bad("is not a decimal number");
        result = json::makeNumber(text, allocator);
        break;
      case TransformKind::kInteger: {
        bool digits = !text.empty() && text.size() < 10 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
        if (!digits) return bad("is not a whole number");
        result = json::makeNumber(std::to_string(std::stol(text)), allocator);
        break;
      }
      case TransformKind::kIcd10: {
        std::string code = text;
        if (code.size() > 3 && code[3] != '.') code.insert(3, ".");
        bool ok = code.size() >= 3 && code.size() <= 8 && std::isupper(static_cast<unsigned char>(code[0])) &&
                  std::isdigit(static_cast<unsigned char>(code[1])) && std::isalnum(static_cast<unsigned char>(code[2]));
        for (size_t index = 4; ok && index < code.size(); ++index) ok = std::isalnum(static_cast<unsigned char>(code[index])) != 0;
        if (!ok || code.size() == 4) return bad("is not an ICD-10-CM code");
        result = json::makeString(code, allocator);
        break;
      }
      case TransformKind::kNpi:
        if (!isValidNpi(text)) return bad("is not an NPI (10 digits with a valid check digit)");
        break;
      case TransformKind::kTranslate: {
        auto found = transform.translation->codes.find(text);
        if (found == transform.translation->codes.end()) {
          return bad("has no translation in ConceptMap " + transform.translation->name);
        }
        result = json::makeString(found->second, allocator);
        break;
      }
      case TransformKind::kLookup: {
        auto found = transform.table.find(text);
        if (found == transform.table.end()) return bad("is not a known code");
        result = json::makeString(found->second, allocator);
        break;
      }
      case TransformKind::kOneOf:
        if (!transform.allowed.count(text)) {
          std::string list;
          for (const std::string& allowed : transform.allowed) list += (list.empty() ? "" : ", ") + allowed;
          return bad("is not one of " + list);
        }
        break;
      case TransformKind::kRangeStart:
      case TransformKind::kRangeEnd: {
        size_t dash = text.find('-');
        std::string part = dash == std::string::npos ? text
                           : transform.kind == TransformKind::kRangeStart ? text.substr(0, dash) : text.substr(dash + 1);
        result = json::makeString(part, allocator);
        break;
      }
      case TransformKind::kBoolean:
        if (text != "true" && text != "false") return bad("is not true or false");
        result = json::Value(text == "true");
        break;
      case TransformKind::kHl7DateTime: {
        // HL7 v2 TS/DTM YYYYMMDD[HHMM[SS[.S+]]][+/-ZZZZ] -> FHIR date or dateTime (with offset).
        size_t sign = text.find_first_of("+-", 8);
        std::string stamp = text.substr(0, sign);
        std::string zone = sign == std::string::npos ? std::string() : text.substr(sign);
        if (stamp.size() > 14 && stamp[14] == '.') stamp = stamp.substr(0, 14);
        std::string iso = stamp.size() >= 8 ? stamp.substr(0, 4) + "-" + stamp.substr(4, 2) + "-" + stamp.substr(6, 2) : "";
        if (stamp.size() == 8 && zone.empty() && isDate(iso)) {
          result = json::makeString(iso, allocator);
          break;
        }
        if ((stamp.size() != 12 && stamp.size() != 14) || zone.size() != 5) {
          return bad("is not an HL7 timestamp YYYYMMDDHHMM[SS]+ZZZZ (a time needs its offset)");
        }
        iso += "T" + stamp.substr(8, 2) + ":" + stamp.substr(10, 2) + ":" + (stamp.size() == 14 ? stamp.substr(12, 2) : "00") +
               zone.substr(0, 3) + ":" + zone.substr(3, 2);
        if (!isDateTimeWithOffset(iso)) return bad("is not an HL7 timestamp YYYYMMDDHHMM[SS]+ZZZZ");
        result = json::makeString(iso, allocator);
        break;
      }
      case TransformKind::kMemberOf:
        if (!transform.value_set->codes.count(text)) return bad("is not in ValueSet " + transform.value_set->name);
        break;
      case TransformKind::kOrdinal: {
        auto found = transform.value_set->ordinals.find(text);
        if (found == transform.value_set->ordinals.end()) return bad("has no score (ordinalValue) in ValueSet " + transform.value_set->name);
        result = json::makeNumber(found->second, allocator);
        break;
      }
      case TransformKind::kYearMonth:
        if (!isDate(text)) return bad("is not a date YYYY-MM-DD");
        result = json::makeString(text.substr(0, 7), allocator);
        break;
      case TransformKind::kDateOrDateTime:
        if (!isDate(text) && !isDateTimeWithOffset(text)) return bad("is not a date or a dateTime with offset (YYYY-MM-DDThh:mm:ss+zz:zz)");
        break;
      case TransformKind::kComponent:
      case TransformKind::kType:
      case TransformKind::kMin:
      case TransformKind::kDateTime:
      case TransformKind::kCodeIn:
      case TransformKind::kPayer:
      case TransformKind::kPrefix:
        break;
    }
  }
  if (result.IsNull()) return std::nullopt;  // an empty payer field
  if (borrowed && result.IsString() && result.GetString() == borrowed) result = json::makeString(json::stringView(result), allocator);
  return result;
}

// Care-management additions to the run: every instance of a forEach resource, conditions over
// items.


void Run::applyReferences(const Rule& rule, json::Value& target, json::Allocator& allocator, bool& failed,
                          SlotCache& cache) {
  auto found = instances_.find(rule.references_key);
  if (found == instances_.end()) return;
  for (const auto& [reference, item] : found->second) {
    if (rule.where && !test(*rule.where, item, allocator, failed)) continue;
    json::Value value(rapidjson::kObjectType);
    value.AddMember("reference", json::makeString(reference, allocator), allocator);
    slot(target, rule, allocator, cache) = std::move(value);
  }
}


bool Run::testItems(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed) {
  std::vector<Scope> found;
  itemsOf(cond.items, scope, found);
  if (cond.op == Condition::Op::kSome) {
    for (const Scope& item : found) {
      if (cond.children.empty() || test(cond.children[0], item, allocator, failed)) return true;
    }
    return false;
  }
  // kSum: decimals added exactly enough for scores (at most 6 fraction digits).
  long long total = 0;
  auto scaled = [](const std::string& text) {
    size_t dot = text.find('.');
    std::string whole = text.substr(0, dot);
    std::string fraction = dot == std::string::npos ? std::string() : text.substr(dot + 1);
    fraction.resize(6, '0');
    long long value = std::stoll(whole.empty() || whole == "-" ? whole + "0" : whole) * 1000000;
    long long part = std::stoll(fraction.substr(0, 6));
    return text[0] == '-' ? value - part : value + part;
  };
  for (const Scope& item : found) {
    if (!cond.children.empty() && !test(cond.children[0], item, allocator, failed)) continue;
    std::optional<json::Value> value = evaluate(cond.value, item, allocator, failed);
    if (value && json::isNumber(*value)) total += scaled(json::numberText(*value));
  }
  return total >= scaled(cond.threshold);
}

bool Run::test(const Condition& cond, const Scope& scope, json::Allocator& allocator, bool& failed) {
  switch (cond.op) {
    case Condition::Op::kAll:
      for (const Condition& child : cond.children) {
        if (!test(child, scope, allocator, failed)) return false;
      }
      return true;
    case Condition::Op::kAny:
      for (const Condition& child : cond.children) {
        if (test(child, scope, allocator, failed)) return true;
      }
      return false;
    case Condition::Op::kSome:
    case Condition::Op::kSum:
      return testItems(cond, scope, allocator, failed);
    case Condition::Op::kNot:
      return !test(cond.children[0], scope, allocator, failed);
    default:
      break;
  }
  std::optional<json::Value> value = evaluate(cond.value, scope, allocator, failed);
  switch (cond.op) {
    case Condition::Op::kExists: return value.has_value();
    case Condition::Op::kMissing: return !value.has_value();
    case Condition::Op::kEquals:
    case Condition::Op::kIn: return value && cond.values.count(textOf(*value)) > 0;
    case Condition::Op::kNotIn: return !value || cond.values.count(textOf(*value)) == 0;
    case Condition::Op::kInValueSet: return value && cond.value_set->codes.count(textOf(*value)) > 0;
    case Condition::Op::kTranslates: return value && cond.codes->codes.count(textOf(*value)) > 0;
    case Condition::Op::kMapsTo: {
      const json::Value* depends_on = resolve(cond.depends_on, scope);
      if (!value || !depends_on) return false;
      auto found = cond.translation->targets.find(textOf(*depends_on) + '\x1f' + textOf(*value));
      if (found == cond.translation->targets.end()) return false;
      for (const std::string& target : found->second) {
        if (cond.values.count(target)) return true;
      }
      return false;
    }
    default: return false;
  }
}

// Collects the values `steps[step..]` reaches below `value`; "*" takes every array element or
// every member of an object (X12 elements, skipping the "@" meta members).
void collect(const json::Value* value, const SourcePath& path, size_t step, size_t end, Location& location,
             std::vector<Scope>& out) {
  if (!value) return;
  const std::vector<std::string>& steps = path.steps;
  if (step == end) {
    if (value->IsNull() || (json::isString(*value) && json::stringView(*value).empty())) return;
    if (value->IsArray()) {
      for (rapidjson::SizeType index = 0; index < value->Size(); ++index) {
        location.push(index);
        out.push_back(Scope{&(*value)[index], location, 0});
        location.pop();
      }
    } else {
      out.push_back(Scope{value, location, 0});
    }
    return;
  }
  const std::string& name = steps[step];
  if (name == "*") {
    if (value->IsArray()) {
      for (rapidjson::SizeType index = 0; index < value->Size(); ++index) {
        location.push(index);
        collect(&(*value)[index], path, step + 1, end, location, out);
        location.pop();
      }
    } else if (value->IsObject()) {
      for (const auto& member : value->GetObject()) {
        if (member.name.GetStringLength() > 0 && member.name.GetString()[0] == '@') continue;
        location.push(std::string_view(member.name.GetString(), member.name.GetStringLength()));
        collect(&member.value, path, step + 1, end, location, out);
        location.pop();
      }
    }
    return;
  }
  const json::Value* next = nullptr;
  if (value->IsObject()) {
    next = path.member(*value, step);
  } else if (value->IsArray()) {
    size_t index = std::strtoul(name.c_str(), nullptr, 10);
    next = index < value->Size() ? &(*value)[static_cast<rapidjson::SizeType>(index)] : nullptr;
  } else if (json::isString(*value) && name == "0") {
    next = value;  // an X12 element without components is its own first component
  }
  location.push(name);
  collect(next, path, step + 1, end, location, out);
  location.pop();
}

std::vector<Scope> Run::items(const Rule& rule, const Scope& scope) const { return itemsOf(rule.for_each, scope); }

// HL7 v2 "F.repetitions.*": the repetitions of field F; a field sent without repetitions is its
// own single repetition.
bool hl7Repetitions(const json::Value* start, const std::vector<std::string>& steps, Location location,
                    std::vector<Scope>& out) {
  if (steps.size() < 2 || steps[steps.size() - 2] != "repetitions" || steps.back() != "*") return false;
  const json::Value* field = start;
  for (size_t step = 0; step + 2 < steps.size() && field; ++step) {
    if (steps[step] == "*") return false;
    location.push(steps[step]);
    if (field->IsObject()) {
      field = json::find(*field, steps[step]);
    } else if (field->IsArray()) {
      size_t index = std::strtoul(steps[step].c_str(), nullptr, 10);
      field = index < field->Size() ? &(*field)[static_cast<rapidjson::SizeType>(index)] : nullptr;
    } else {
      field = nullptr;
    }
  }
  if (!field || field->IsNull() || (json::isString(*field) && json::stringView(*field).empty())) return true;
  location.push("repetitions");
  const json::Value* list = field->IsObject() ? json::find(*field, "repetitions") : nullptr;
  if (list && list->IsArray()) {
    for (rapidjson::SizeType index = 0; index < list->Size(); ++index) {
      location.push(index);
      out.push_back(Scope{&(*list)[index], location, 0});
      location.pop();
    }
    return true;
  }
  location.push(size_t{0});
  out.push_back(Scope{field, location, 0});
  return true;
}

std::vector<Scope> Run::itemsOf(const std::vector<SourcePath>& paths, const Scope& scope) const {
  std::vector<Scope> out;
  for (const SourcePath& path : paths) itemsOf(path, scope, out);
  return out;
}

void Run::itemsOf(const SourcePath& path, const Scope& scope, std::vector<Scope>& out) const {
  if (path.self) {
    out.push_back(scope);
    return;
  }
  Location location = path.absolute ? Location() : scope.location;
  const json::Value* start = path.absolute ? record_ : scope.value;
  if (spec_.reader == ReaderKind::kHl7v2 && hl7Repetitions(start, path.steps, location, out)) return;
  if (path.steps.empty() || path.steps.back() != "*") {
    collect(start, path, 0, path.steps.size(), location, out);
    return;
  }
  // "a.*": the members/elements themselves are the items, composites included whole.
  std::vector<Scope> holders;
  collect(start, path, 0, path.steps.size() - 1, location, holders);
  for (const Scope& holder : holders) {
    if (!holder.value->IsObject()) {
      out.push_back(holder);
      continue;
    }
    for (const auto& member : holder.value->GetObject()) {
      if (member.name.GetStringLength() > 0 && member.name.GetString()[0] == '@') continue;
      if (json::isString(member.value) && json::stringView(member.value).empty()) continue;
      Scope item{&member.value, holder.location, 0};
      item.location.push(std::string_view(member.name.GetString(), member.name.GetStringLength()));
      out.push_back(std::move(item));
    }
  }
}

// Consecutive rules mostly write below the member added last (identifier[0].system, then
// identifier[0].value): try it before scanning the object.
json::Value* lastMemberNamed(json::Value& object, const std::string& name) {
  if (object.ObjectEmpty()) return nullptr;
  auto& member = *(object.MemberEnd() - 1);
  if (member.name.GetStringLength() != name.size() || std::memcmp(member.name.GetString(), name.data(), name.size()) != 0) {
    return nullptr;
  }
  return &member.value;
}

// Walks/creates `steps` below `object`; returns the slot to assign.

json::Value& slot(json::Value& object, const Rule& rule, json::Allocator& allocator, SlotCache& cache) {
  const std::vector<PathStep>& steps = rule.target;
  json::Value* current = &object;
  size_t first = 0;
  const bool repeated = cache.rule == &rule && cache.target == &object;  // a forEach rule's next item
  // Below a member this call adds, nothing is there to find.
  bool fresh = !repeated && rule.first_step_new;
  if (rule.shared_steps > 0 && cache.rule == &rule - 1 && cache.target == &object) {
    first = rule.shared_steps;
    current = cache.nodes[first - 1];
    fresh = false;
  }
  cache.rule = &rule;
  cache.target = &object;
  for (size_t index = first; index < steps.size(); ++index) {
    const PathStep& step = steps[index];
    bool last = index + 1 == steps.size();
    if (!current->IsObject()) current->SetObject();
    json::Value* member = nullptr;
    if (!fresh) {
      member = lastMemberNamed(*current, step.name);
      if (!member) member = json::find(*current, step.name);
    }
    if (!member) {
      fresh = true;
      current->AddMember(step.constant_name.empty() ? json::makeString(step.name, allocator) : json::constantString(step.constant_name),
                         step.index == PathStep::Index::kNone ? json::Value(rapidjson::kObjectType) : json::Value(rapidjson::kArrayType),
                         allocator);
      member = &(current->MemberEnd() - 1)->value;
      if (step.index == PathStep::Index::kNone && last) member->SetNull();
    }
    if (step.index == PathStep::Index::kNone) {
      current = member;
    } else {
      if (!member->IsArray()) member->SetArray();
      if (step.index == PathStep::Index::kAppend) {
        member->PushBack(json::Value(rapidjson::kObjectType), allocator);
      } else {
        while (member->Size() <= step.at) member->PushBack(json::Value(rapidjson::kObjectType), allocator);
      }
      current = step.index == PathStep::Index::kAppend ? &(*member)[member->Size() - 1]
                                                        : &(*member)[static_cast<rapidjson::SizeType>(step.at)];
    }
    if (index < SlotCache::kDepth) cache.nodes[index] = current;
  }
  return *current;
}

// Sets Rule::shared_steps in `rules` and below: the leading target steps equal to those of the
// rule before, short of either's last step and of any appending step ("a[]"); and
// Rule::first_step_new, given the members the target holds before its rules run (`present`).
void linkSiblingRules(std::vector<Rule>& rules, std::set<std::string> present = {}) {
  for (size_t index = 0; index < rules.size(); ++index) {
    Rule& rule = rules[index];
    linkSiblingRules(rule.children);
    rule.shared_steps = 0;
    rule.first_step_new = !rule.target.empty() && present.insert(rule.target[0].name).second;
    for (PathStep& step : rule.target) step.constant_name = intern(step.name);
    if (index == 0) continue;
    const std::vector<PathStep>& before = rules[index - 1].target;
    if (before.empty() || rule.target.empty()) continue;
    size_t limit = std::min({before.size(), rule.target.size(), SlotCache::kDepth + 1}) - 1;
    size_t shared = 0;
    while (shared < limit && before[shared].name == rule.target[shared].name &&
           before[shared].index == rule.target[shared].index && before[shared].at == rule.target[shared].at &&
           rule.target[shared].index != PathStep::Index::kAppend) {
      ++shared;
    }
    rule.shared_steps = shared;
  }
}

void Run::apply(const Rule& rule, json::Value& target, const Scope& scope, json::Allocator& allocator, bool& failed,
                SlotCache& cache) {
  if (rule.when && !test(*rule.when, scope, allocator, failed)) return;
  if (!rule.references_key.empty()) {
    applyReferences(rule, target, allocator, failed, cache);
    return;
  }
  if (!rule.for_each.empty()) {
    size_t index = 0;
    for (Scope& item : items(rule, scope)) {
      if (rule.where && !test(*rule.where, item, allocator, failed)) continue;
      item.index = ++index;
      if (rule.children.empty()) {
        std::optional<json::Value> value = evaluate(rule.value, item, allocator, failed);
        if (value) slot(target, rule, allocator, cache) = std::move(*value);
        if (rule.first) break;
        continue;
      }
      json::Value element(rapidjson::kObjectType);
      applyAll(rule.children, element, item, allocator, failed);
      if (!element.ObjectEmpty()) slot(target, rule, allocator, cache) = std::move(element);
      if (rule.first) break;
    }
    return;
  }
  if (!rule.children.empty()) {
    json::Value element(rapidjson::kObjectType);
    applyAll(rule.children, element, scope, allocator, failed);
    if (element.ObjectEmpty()) return;
    slot(target, rule, allocator, cache) = std::move(element);
    return;
  }
  std::optional<json::Value> value = evaluate(rule.value, scope, allocator, failed);
  if (!value) return;
  if (!rule.warning.empty()) {
    std::string where = location(locationOf(rule.value.from, scope));
    warnings_->atLocation(Severity::kWarning, "informational", where,
                          where + ": '" + textOf(*value) + "' " + rule.warning);
  }
  slot(target, rule, allocator, cache) = std::move(*value);
}

void Run::applyAll(const std::vector<Rule>& rules, json::Value& target, const Scope& scope, json::Allocator& allocator,
                   bool& failed) {
  SlotCache cache;
  for (const Rule& rule : rules) apply(rule, target, scope, allocator, failed, cache);
}

// ---------------------------------------------------------------------------------------------
// Event-spec additions to the run (mappers/specs/README.md, "Event specs").

std::string Run::jsonPathOf(const json::Value& record, const std::vector<std::string>& steps) {
  std::string out = "$";
  const json::Value* walk = &record;
  for (const std::string& step : steps) {
    if (walk && walk->IsArray()) {
      out += "[" + step + "]";
      size_t index = std::strtoul(step.c_str(), nullptr, 10);
      walk = index < walk->Size() ? &(*walk)[static_cast<rapidjson::SizeType>(index)] : nullptr;
    } else {
      out += "." + step;
      walk = walk && walk->IsObject() ? json::find(*walk, step) : nullptr;
    }
  }
  return out;
}

std::optional<json::Value> Run::eventValue(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                           bool& failed) {
  if (expr.kind == ValueExpr::Kind::kCoverageOn) return coverageOn(expr, scope, allocator, failed);
  if (expr.kind == ValueExpr::Kind::kPick) {
    for (const Scope& item : itemsOf(expr.pick_for_each, scope)) {
      if (expr.pick_where && !test(*expr.pick_where, item, allocator, failed)) continue;
      return evaluate(expr.part_values[0], item, allocator, failed);
    }
    if (expr.required) {
      error(scope.location.steps(), "required", "no item of " + expr.pick_for_each[0].text + " gives a value");
      failed = true;
    }
    return std::nullopt;
  }
  std::string text;
  bool any = false;
  for (size_t index = 0; index < expr.part_values.size(); ++index) {
    std::string part;
    if (expr.kind == ValueExpr::Kind::kReferenceTo && expr.part_values[index].kind == ValueExpr::Kind::kNone) {
      part = expand(expr.part_literals[index], scope);
    } else {
      std::optional<json::Value> value = evaluate(expr.part_values[index], scope, allocator, failed);
      if (!value) {
        // A reference needs every part; a join leaves out the absent ones.
        if (expr.kind == ValueExpr::Kind::kReferenceTo) return std::nullopt;
        continue;
      }
      part = textOf(*value);
    }
    if (expr.kind == ValueExpr::Kind::kJoin) {
      if (part.empty()) continue;
      if (any) text += expr.separator;
      any = true;
      text += part;
    } else {
      text += (index ? "\x1f" : "") + part;
    }
  }
  if (expr.kind == ValueExpr::Kind::kJoin) {
    if (!any) return std::nullopt;
    return json::makeString(text, allocator);
  }
  json::Value reference(rapidjson::kObjectType);
  reference.AddMember("reference", json::makeString(expr.part_literals[0] + "/" + deriveId({text}), allocator), allocator);
  return reference;
}

// The Coverage resources built so far in this Bundle, as routing facts.
std::vector<CoverageFact> bundleCoverage(const json::Value* entries) {
  std::vector<CoverageFact> facts;
  if (!entries) return facts;
  const std::string payer_system = std::string(kBase) + "/CodeSystem/payer-id";
  std::map<std::string, std::string> payer_of;  // "Organization/id" -> payer id
  for (const json::Value& entry : entries->GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Organization") continue;
    const json::Value* identifiers = json::find(resource, "identifier");
    if (!identifiers || !identifiers->IsArray()) continue;
    for (const json::Value& identifier : identifiers->GetArray()) {
      if (json::getString(identifier, "system") == payer_system) {
        payer_of["Organization/" + std::string(json::getString(resource, "id").value_or(""))] =
            std::string(json::getString(identifier, "value").value_or(""));
      }
    }
  }
  for (const json::Value& entry : entries->GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Coverage") continue;
    CoverageFact fact;
    fact.coverage_id = std::string(json::getString(resource, "id").value_or(""));
    fact.member_id = std::string(json::getString(resource, "subscriberId").value_or(""));
    if (const json::Value* payors = json::find(resource, "payor"); payors && payors->IsArray() && !payors->Empty()) {
      auto found = payer_of.find(std::string(json::getString((*payors)[0], "reference").value_or("")));
      if (found != payer_of.end()) fact.payer_id = found->second;
    }
    if (const json::Value* period = json::find(resource, "period")) {
      fact.start = std::string(json::getString(*period, "start").value_or(""));
      fact.end = std::string(json::getString(*period, "end").value_or(""));
    }
    if (!fact.payer_id.empty()) facts.push_back(std::move(fact));
  }
  return facts;
}

// The coverage valid on a date (contracts/econsult-event.md, Routing), among the patient's stored
// coverage (MapOptions::directory) and the Coverage this Bundle declares; when none is valid on
// that date the latest known one stands in (R4 Claim.insurance is 1..*) and routing decides that
// the claim waits. This needs the store, so it is a named function of the engine, not data.
std::optional<json::Value> Run::coverageOn(const ValueExpr& expr, const Scope& scope, json::Allocator& allocator,
                                           bool& failed) {
  std::optional<json::Value> date = evaluate(expr.part_values[0], scope, allocator, failed);
  if (!date) return std::nullopt;
  std::vector<CoverageFact> known;
  const std::string* patient = referenceOf(expr.patient_key);
  if (options_.directory && patient && patient->rfind("Patient/", 0) == 0) {
    known = options_.directory->coverageOf(patient->substr(8));
  }
  for (CoverageFact& fact : bundleCoverage(entries_)) {
    auto same = std::find_if(known.begin(), known.end(), [&](const CoverageFact& existing) { return existing.coverage_id == fact.coverage_id; });
    if (same != known.end()) *same = std::move(fact);
    else known.push_back(std::move(fact));
  }
  const CoverageFact* chosen = selectCoverage(known, textOf(*date));
  if (!chosen && !known.empty()) chosen = &known.back();
  // Without any coverage the claim has no insurer; said only when nothing else is wrong (an
  // unknown payer already leaves its coverage out).
  if (!chosen && issues_->hasErrors()) {
    failed = true;
    return std::nullopt;
  }
  if (!chosen) {
    error(locationOf(expr.part_values[0].from, scope), "required",
          "the patient has no coverage at all, so the claim has no insurer (send patient.coverage or a roster first)");
    failed = true;
    return std::nullopt;
  }
  std::string target = expr.give == "coverage" ? "Coverage/" + chosen->coverage_id
                                                : "Organization/" + deriveId({"Organization", "payer", chosen->payer_id});
  json::Value reference(rapidjson::kObjectType);
  reference.AddMember("reference", json::makeString(target, allocator), allocator);
  return reference;
}

bool Run::eventTransform(const Transform& transform, json::Value& result, const std::vector<std::string>& where,
                         json::Allocator& allocator) {
  if (transform.kind == TransformKind::kType) {
    const std::string& type = transform.name;
    bool ok = type == "string"    ? json::isString(result)
              : type == "object"  ? result.IsObject()
              : type == "array"   ? result.IsArray()
              : type == "boolean" ? result.IsBool()
                                  : json::isNumber(result);
    if (ok && type == "integer") {
      std::string digits = json::numberText(result);
      ok = digits.find_first_not_of("-0123456789") == std::string::npos;
    }
    if (!ok) error(where, "structure", "must be " + std::string(type == "integer" || type == "array" || type == "object" ? "an " : "a ") +
                                           (type == "string" || type == "number" || type == "boolean" ? "JSON " : "") + type);
    return ok;
  }
  if (result.IsNull()) return true;  // left out by an earlier transform (an empty payer field)
  if (result.IsObject() || result.IsArray()) {
    error(where, "structure", "expected a single value, found " + std::string(result.IsObject() ? "an object" : "an array"));
    return false;
  }
  std::string text = textOf(result);
  switch (transform.kind) {
    case TransformKind::kMin: {
      bool digits = !text.empty() && text.size() < 18 && text.find_first_not_of("-0123456789") == std::string::npos;
      if (!digits || std::stoll(text) < transform.minimum) {
        error(where, "value", "'" + text + "' must be a whole number of at least " + std::to_string(transform.minimum));
        return false;
      }
      return true;
    }
    case TransformKind::kDateTime:
      if (!isDateTimeWithOffset(text)) {
        error(where, "value", "'" + text + "' is not a dateTime with a time and an offset (YYYY-MM-DDThh:mm:ss+hh:mm)");
        return false;
      }
      return true;
    case TransformKind::kCodeIn:
      if (!transform.allowed.count(text)) {
        std::string list;
        for (const std::string& allowed : transform.allowed) list += (list.empty() ? "" : ", ") + allowed;
        error(where, "code-invalid", "'" + text + "' is not one of " + list);
        return false;
      }
      return true;
    case TransformKind::kPayer: {
      std::optional<PayerInfo> payer = options_.directory ? options_.directory->payer(text) : std::nullopt;
      if (!payer) {
        error(where, "not-found", "unknown payerId '" + text + "' (not in the gateway configuration)");
        return false;
      }
      const std::string& field = transform.name == "id"                 ? payer->id
                                 : transform.name == "name"             ? payer->name
                                 : transform.name == "identifierSystem" ? payer->identifier_system
                                                                        : payer->identifier_value;
      if (field.empty()) result.SetNull();
      else result = json::makeString(field, allocator);
      return true;
    }
    case TransformKind::kPrefix:
      result = json::makeString(transform.name + text, allocator);
      return true;
    default:
      return true;
  }
}

void Run::warnUnknownMembers(const json::Value& value, std::vector<std::string>& steps, IssueList& warnings) const {
  if (value.IsArray()) {
    for (rapidjson::SizeType index = 0; index < value.Size(); ++index) {
      steps.push_back(std::to_string(index));
      warnUnknownMembers(value[index], steps, warnings);
      steps.pop_back();
    }
    return;
  }
  if (!value.IsObject()) return;
  for (const auto& member : value.GetObject()) {
    std::string name(member.name.GetString(), member.name.GetStringLength());
    if (!name.empty() && name[0] == '@') continue;
    steps.push_back(name);
    std::string pattern;
    for (const std::string& step : steps) pattern += (pattern.empty() ? "" : ".") + step;
    if (fieldsKnow(spec_.fields, pattern)) {
      warnUnknownMembers(member.value, steps, warnings);
    } else {
      std::string where = location(steps);
      warnings.atLocation(Severity::kWarning, "informational", where, where + ": unknown member ignored");
    }
    steps.pop_back();
  }
}

std::string Run::recordIdOf(const Scope& root, json::Allocator& allocator, bool& failed) {
  if (spec_.record_id_parts.empty()) {
    std::optional<json::Value> record_id = evaluate(spec_.record_id, root, allocator, failed);
    return record_id ? textOf(*record_id) : std::string();
  }
  std::string joined;
  bool complete = true;
  for (const ValueExpr& part : spec_.record_id_parts) {
    std::optional<json::Value> value = evaluate(part, root, allocator, failed);
    if (!value) complete = false;
    else joined += (joined.empty() ? "" : ":") + textOf(*value);
  }
  return complete ? joined : std::string();
}

void Run::mergeStored(json::Value& resource, json::Allocator& allocator) const {
  if (!options_.stored_resource) return;
  std::optional<std::string> stored = options_.stored_resource(std::string(json::getString(resource, "resourceType").value_or("")),
                                                               std::string(json::getString(resource, "id").value_or("")));
  if (!stored) return;
  json::Document previous;
  json::ParseError ignored;
  if (!json::parse(*stored, previous, ignored) || !previous.IsObject()) return;
  json::Value merged;
  merged.CopyFrom(previous, allocator);
  if (json::Value* meta = json::find(merged, "meta"); meta && meta->IsObject()) {
    meta->RemoveMember("versionId");
    meta->RemoveMember("lastUpdated");
  }
  for (auto& member : resource.GetObject()) {
    if (json::Value* existing = json::find(merged, json::stringView(member.name))) {
      *existing = std::move(member.value);
    } else {
      merged.AddMember(json::Value(member.name, allocator), std::move(member.value), allocator);
    }
  }
  resource = std::move(merged);
}

json::Value Run::provenanceAgent(const Scope& root, json::Allocator& allocator, bool& failed) {
  json::Value who(rapidjson::kObjectType);
  applyAll(spec_.provenance_agent, who, root, allocator, failed);
  return who;
}

bool Run::map(const json::Value& record, const std::string& raw, const std::string& position, MappedBundle& out,
              IssueList& issues) {
  record_ = &record;
  issues_ = &issues;
  warnings_ = &out.warnings;
  if (!out.warnings.empty()) out.warnings = IssueList();  // `out` may be reused from record to record
  reference_count_ = 0;
  Scope root{&record, {}, 0};
  if (!spec_.group_by.empty()) root = Scope{&record["lines"][0], {"lines", "0"}, 0};
  json::Document& bundle = out.bundle;
  bundle = json::Document();
  bundle.SetObject();
  json::Allocator& allocator = bundle.GetAllocator();
  bool failed = false;

  record_id_ = recordIdOf(root, allocator, failed);
  if (record_id_.empty()) return false;
  for (const Rule& check : spec_.checks) {
    if (check.when && !test(*check.when, root, allocator, failed)) continue;
    if (check.for_each.empty()) {
      evaluate(check.value, root, allocator, failed);
      continue;
    }
    for (Scope& item : items(check, root)) {
      for (const Rule& child : check.children) evaluate(child.value, item, allocator, failed);
    }
  }

  // Ids first, so references work in any order.
  std::vector<const ResourceProgram*>& produced = produced_;
  std::vector<std::string>& ids = ids_;
  std::vector<Scope>& scopes = scopes_;
  produced.clear();
  scopes.clear();
  size_t id_count = 0;
  instances_.clear();
  last_ids_.resize(spec_.resources.size());
  for (const ResourceProgram& program : spec_.resources) {
    if (program.when && !test(*program.when, root, allocator, failed)) continue;
    std::vector<Scope>& program_scopes = program_scopes_;
    program_scopes.clear();
    if (program.for_each.empty()) {
      program_scopes.push_back(root);
    } else {
      size_t position = 0;
      for (Scope& item : itemsOf(program.for_each, root)) {
        item.index = position++;  // {position}: the item's 0-based place among the forEach items
        if (program.where && !test(*program.where, item, allocator, failed)) continue;
        program_scopes.push_back(std::move(item));
      }
    }
    for (const Scope& scope : program_scopes) {
      std::string& joined = joined_;
      joined.clear();
      bool complete = true;
      for (size_t index = 0; index < program.id.size(); ++index) {
        const IdPart& part = program.id[index];
        if (index) joined.push_back('\x1f');
        if (part.value.kind == ValueExpr::Kind::kNone) {
          joined += expand(part.literal, scope);
        } else {
          std::optional<json::Value> value = evaluate(part.value, scope, allocator, failed);
          if (!value) {
            complete = false;
            break;
          }
          joined += textOf(*value);
        }
      }
      if (!complete) continue;
      // Consecutive records often name the same payer, billing organization or member.
      auto& [last_joined, last_id] = last_ids_[static_cast<size_t>(&program - spec_.resources.data())];
      if (last_id.empty() || joined != last_joined) {
        deriveIdInto(joined, last_id);
        last_joined.assign(joined);
      }
      if (id_count == ids.size()) ids.emplace_back();
      std::string& id = ids[id_count];
      id.assign(last_id);
      // Resources made per item are named with referenceTo (their ids) or listed by "references".
      if (program.for_each.empty()) {
        setReference(program.key).assign(program.type).append("/").append(id);
      } else {
        std::vector<std::pair<std::string, Scope>>& made = instances_[program.key];
        std::string reference = program.type + "/" + id;
        bool twice = std::any_of(made.begin(), made.end(), [&](const auto& earlier) { return earlier.first == reference; });
        if (twice && !program.unique_message.empty()) {
          error(scope.location.steps(), "business-rule", program.unique_message);
          failed = true;
          continue;
        }
        made.emplace_back(std::move(reference), scope);
      }
      produced.push_back(&program);
      ++id_count;
      scopes.push_back(scope);
    }
  }

  json::Value entries(rapidjson::kArrayType);
  entries_ = &entries;
  json::Value targets(rapidjson::kArrayType);
  std::string& text = text_;
  auto addEntry = [&](json::Value resource, const std::string& type, const std::string& id) {
    json::Value entry(rapidjson::kObjectType);
    if (options_.base_url.empty()) text.assign("urn:uuid:").append(id);
    else text.assign(options_.base_url).append("/").append(type).append("/").append(id);
    entry.AddMember("fullUrl", json::makeString(text, allocator), allocator);
    entry.AddMember("resource", resource, allocator);
    entries.PushBack(entry, allocator);
  };
  auto madeBefore = [&](size_t index) {  // the same resource twice (one practitioner in two roles)
    for (size_t earlier = 0; earlier < index; ++earlier) {
      if (ids[earlier] == ids[index] && produced[earlier]->type == produced[index]->type) return true;
    }
    return false;
  };
  for (size_t index = 0; index < produced.size(); ++index) {
    const ResourceProgram& program = *produced[index];
    if (madeBefore(index)) continue;
    json::Value resource(rapidjson::kObjectType);
    resource.AddMember("resourceType", json::makeString(program.type, allocator), allocator);
    resource.AddMember("id", json::makeString(ids[index], allocator), allocator);
    if (!program.profile.empty()) {
      json::Value meta(rapidjson::kObjectType);
      json::Value profiles(rapidjson::kArrayType);
      profiles.PushBack(json::makeString(program.profile, allocator), allocator);
      meta.AddMember("profile", profiles, allocator);
      resource.AddMember("meta", meta, allocator);
    }
    applyAll(program.rules, resource, scopes[index], allocator, failed);
    if (program.merge) mergeStored(resource, allocator);
    json::Value target(rapidjson::kObjectType);
    text.assign(program.type).append("/").append(ids[index]);
    target.AddMember("reference", json::makeString(text, allocator), allocator);
    targets.PushBack(target, allocator);
    addEntry(std::move(resource), program.type, ids[index]);
  }
  if (failed || issues.hasErrors()) return false;

  // The Provenance: which payer or system sent which bytes.
  std::string provenance_id;
  deriveIdInto({"Provenance", spec_.id, payer_id_, record_id_}, joined_, provenance_id);
  json::Value provenance(rapidjson::kObjectType);
  provenance.AddMember("resourceType", "Provenance", allocator);
  provenance.AddMember("id", json::makeString(provenance_id, allocator), allocator);
  {
    json::Value meta(rapidjson::kObjectType);
    json::Value profiles(rapidjson::kArrayType);
    static const std::string kProfile = std::string(kBase) + "/StructureDefinition/mapping-provenance";
    profiles.PushBack(json::makeString(kProfile, allocator), allocator);
    meta.AddMember("profile", profiles, allocator);
    provenance.AddMember("meta", meta, allocator);
  }
  provenance.AddMember("target", targets, allocator);
  provenance.AddMember("recorded", json::makeString(now_, allocator), allocator);
  json::Value agent(rapidjson::kObjectType);
  json::Value who(rapidjson::kObjectType);
  if (!spec_.provenance_agent.empty()) {
    who = provenanceAgent(root, allocator, failed);
  } else if (const std::string* named = spec_.agent_key.empty() ? nullptr : referenceOf(spec_.agent_key)) {
    who.AddMember("reference", json::makeString(*named, allocator), allocator);
  } else {
    if (payer_reference_.empty()) payer_reference_ = "Organization/" + deriveId({"Organization", "payer", payer_id_});
    who.AddMember("reference", json::makeString(payer_reference_, allocator), allocator);
    who.AddMember("display", json::makeString(payer_ && !payer_->name.empty() ? payer_->name : payer_id_, allocator), allocator);
  }
  agent.AddMember("who", who, allocator);
  json::Value agents(rapidjson::kArrayType);
  agents.PushBack(agent, allocator);
  provenance.AddMember("agent", agents, allocator);
  json::Value entity(rapidjson::kObjectType);
  json::Value digest(rapidjson::kObjectType);
  static const std::string kDigestUrl = std::string(kBase) + "/StructureDefinition/source-record-digest";
  digest.AddMember("url", json::makeString(kDigestUrl, allocator), allocator);
  sha256HexInto(raw, text);
  digest.AddMember("valueString", json::makeString(text, allocator), allocator);
  json::Value extensions(rapidjson::kArrayType);
  extensions.PushBack(digest, allocator);
  entity.AddMember("extension", extensions, allocator);
  entity.AddMember("role", "source", allocator);
  json::Value identifier(rapidjson::kObjectType);
  static const std::string kSourceRecord = std::string(kBase) + "/sid/source-record";
  identifier.AddMember("system", json::makeString(kSourceRecord, allocator), allocator);
  text.assign(payer_id_).append(":").append(options_.source_name).append(":").append(position);
  identifier.AddMember("value", json::makeString(text, allocator), allocator);
  json::Value what(rapidjson::kObjectType);
  what.AddMember("identifier", identifier, allocator);
  entity.AddMember("what", what, allocator);
  json::Value entities(rapidjson::kArrayType);
  entities.PushBack(entity, allocator);
  provenance.AddMember("entity", entities, allocator);
  addEntry(std::move(provenance), "Provenance", provenance_id);

  bundle.AddMember("resourceType", "Bundle", allocator);
  deriveIdInto({"Bundle", spec_.id, payer_id_, record_id_}, joined_, text);
  bundle.AddMember("id", json::makeString(text, allocator), allocator);
  bundle.AddMember("type", "collection", allocator);
  bundle.AddMember("entry", entries, allocator);
  entries_ = nullptr;
  out.record_id = record_id_;
  out.position = position;
  if (spec_.warn_unknown_members) {
    std::vector<std::string> steps;
    warnUnknownMembers(record, steps, out.warnings);
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

SpecLibrary::SpecLibrary() : shared_(std::make_unique<Shared>()) {}
SpecLibrary::~SpecLibrary() = default;

namespace {

struct Dirs {
  std::string specs, alignment, core;
};

Dirs dirsOf(const LoadOptions& options) {
  Dirs dirs;
  dirs.specs = options.specs_dir.empty() ? std::string(GATEWAY_SPECS_DIR) : options.specs_dir;
  dirs.alignment = options.alignment_dir.empty() ? std::string(GATEWAY_PROFILES_DIR) + "/alignment/package" : options.alignment_dir;
  dirs.core = options.core_dir.empty() ? std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package" : options.core_dir;
  return dirs;
}

Result<std::unique_ptr<CompiledSpec>> compileFile(const std::string& path, SpecLibrary::Shared& shared, FhirPaths& paths) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path};
  std::ostringstream text;
  text << in.rdbuf();
  auto document = SpecDocument::parse(text.str());
  if (!document.ok()) return Error{path + ":" + document.message()};
  auto spec = std::make_unique<CompiledSpec>();
  spec->document = std::move(*document);
  spec->file = path;
  Compiler compiler(*spec, shared, paths);
  Status status = compiler.compile();
  if (!status.ok()) return Error{status.message()};
  // Run::map() writes resourceType, id and meta before the rules.
  for (ResourceProgram& program : spec->resources) linkSiblingRules(program.rules, {"resourceType", "id", "meta"});
  linkSiblingRules(spec->provenance_agent);
  return spec;
}

}  // namespace

Result<std::unique_ptr<SpecLibrary>> SpecLibrary::loadFile(const std::string& path, const LoadOptions& options) {
  Dirs dirs = dirsOf(options);
  std::unique_ptr<SpecLibrary> library(new SpecLibrary());
  if (Status status = loadConceptMaps(dirs.alignment, *library->shared_); !status.ok()) return Error{status.message()};
  if (Status status = loadValueSets(dirs.alignment, *library->shared_); !status.ok()) return Error{status.message()};
  FhirPaths paths(dirs.core);
  auto spec = compileFile(path, *library->shared_, paths);
  if (!spec.ok()) return spec.error();
  std::string id = (*spec)->id;
  library->specs_.emplace(id, std::move(*spec));
  return library;
}

Result<std::unique_ptr<SpecLibrary>> SpecLibrary::load(const LoadOptions& options) {
  Dirs dirs = dirsOf(options);
  std::unique_ptr<SpecLibrary> library(new SpecLibrary());
  if (Status status = loadConceptMaps(dirs.alignment, *library->shared_); !status.ok()) return Error{status.message()};
  if (Status status = loadValueSets(dirs.alignment, *library->shared_); !status.ok()) return Error{status.message()};
  FhirPaths paths(dirs.core);
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dirs.specs, error)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  if (error) return Error{"cannot read " + dirs.specs + ": " + error.message()};
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    auto spec = compileFile(file, *library->shared_, paths);
    if (!spec.ok()) return spec.error();
    std::string id = (*spec)->id;
    if (library->specs_.count(id)) return Error{file + ": spec id " + id + " is used twice"};
    library->specs_.emplace(id, std::move(*spec));
  }
  return library;
}

bool SpecLibrary::has(const std::string& spec_id) const { return specs_.count(spec_id) > 0; }

std::vector<std::string> SpecLibrary::ids() const {
  std::vector<std::string> out;
  for (const auto& [id, spec] : specs_) out.push_back(id);
  return out;
}

namespace {

// Reads `head` (bytes already taken from `rest`), then `rest`.
class PrefixedBuffer final : public std::streambuf {
 public:
  PrefixedBuffer(std::string head, std::istream& rest) : head_(std::move(head)), rest_(rest) {
    setg(head_.data(), head_.data(), head_.data() + head_.size());
  }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    rest_.read(block_, sizeof block_);
    std::streamsize got = rest_.gcount();
    if (got <= 0) return traits_type::eof();
    setg(block_, block_, block_ + got);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string head_;
  std::istream& rest_;
  char block_[1 << 16];
};

// "json-events": NDJSON when the first non-blank line is a JSON value on its own, else one JSON
// document (a pretty-printed event); both stream from the same input.
class JsonEventsReader final : public readers::RecordReader {
 public:
  explicit JsonEventsReader(std::istream& input) : input_(input) {}

  // readers::RecordReader
  readers::ReadStatus next(readers::SourceRecord& record, IssueList& issues) override {
    if (!inner_) {
      std::string head, line;
      bool one_per_line = true;
      while (std::getline(input_, line)) {
        head += line;
        if (!input_.eof()) head.push_back('\n');
        if (line.find_first_not_of(" \t\r\xEF\xBB\xBF") == std::string::npos) continue;
        json::Document probe;
        json::ParseError ignored;
        one_per_line = json::parse(line, probe, ignored);
        break;
      }
      buffer_ = std::make_unique<PrefixedBuffer>(std::move(head), input_);
      stream_ = std::make_unique<std::istream>(buffer_.get());
      if (one_per_line) inner_ = std::make_unique<readers::ndjson::NdjsonReader>(*stream_);
      else inner_ = std::make_unique<readers::ndjson::JsonDocumentReader>(*stream_);
      inner_->setMaxRecordBytes(max_record_bytes_);
    }
    return inner_->next(record, issues);
  }

 private:
  std::istream& input_;
  std::unique_ptr<PrefixedBuffer> buffer_;
  std::unique_ptr<std::istream> stream_;
  std::unique_ptr<readers::RecordReader> inner_;
};

// What a run needs besides the options: its payer (the one named, else the spec's id) and time.
struct RunContext {
  RunContext(const CompiledSpec& spec, const MapOptions& options)
      : payer_id(options.payer_id.empty() ? spec.id : options.payer_id),
        payer(options.directory ? options.directory->payer(payer_id) : std::nullopt),
        now(options.now.empty() ? nowUtc() : options.now) {}
  const PayerInfo* payerInfo() const { return payer ? &*payer : nullptr; }

  std::string payer_id;
  std::optional<PayerInfo> payer;
  std::string now;
};

}  // namespace

Result<bool> SpecLibrary::mapRecord(const std::string& spec_id, const json::Value& record, const std::string& raw,
                                    const std::string& position, const MapOptions& options, MappedBundle& out,
                                    IssueList& issues) const {
  auto found = specs_.find(spec_id);
  if (found == specs_.end()) return Error{"unknown source spec '" + spec_id + "'"};
  const CompiledSpec& spec = *found->second;
  RunContext context(spec, options);
  Run run(spec, options, context.payer_id, context.payerInfo(), context.now);
  return run.map(record, raw, position, out, issues);
}

Result<MapSummary> SpecLibrary::mapSource(const std::string& spec_id, std::istream& input, const MapOptions& options,
                                          const BundleCallback& on_bundle, const RejectionCallback& on_rejection) const {
  auto found = specs_.find(spec_id);
  if (found == specs_.end()) return Error{"unknown source spec '" + spec_id + "'"};
  const CompiledSpec& spec = *found->second;
  RunContext context(spec, options);
  Run run(spec, options, context.payer_id, context.payerInfo(), context.now);

  std::unique_ptr<readers::RecordReader> reader;
  switch (spec.reader) {
    case ReaderKind::kCsv: reader = std::make_unique<readers::csv::CsvReader>(input); break;
    case ReaderKind::kNdjson: reader = std::make_unique<readers::ndjson::NdjsonReader>(input); break;
    case ReaderKind::kJson: reader = std::make_unique<readers::ndjson::JsonDocumentReader>(input); break;
    case ReaderKind::kX12: reader = std::make_unique<readers::x12::X12Reader>(input); break;
    case ReaderKind::kHl7v2: reader = std::make_unique<readers::hl7v2::Hl7v2Reader>(input); break;
    case ReaderKind::kJsonEvents: reader = std::make_unique<JsonEventsReader>(input); break;
  }
  reader->setMaxRecordBytes(options.max_record_bytes);  // readers skip an oversized record unheld

  MapSummary summary;
  auto reject = [&](IssueList issues, std::string raw, std::string position, bool fatal,
                    const readers::RecordFrame* frame = nullptr, std::string raw_sha256 = {}) {
    Rejection rejection{std::move(issues), std::move(raw), std::move(position), fatal};
    rejection.raw_sha256 = std::move(raw_sha256);
    if (frame != nullptr && rejection.raw_sha256.empty()) {
      rejection.replay_prefix = frame->prefix();
      rejection.replay_suffix = frame->suffix(rejection.raw);
    }
    ++summary.rejected;
    on_rejection(rejection);
  };
  const size_t max_record = options.max_record_bytes;
  // A record over maxRecordBytes, rejected whole: its first bytes and the digest of all.
  auto rejectOversized = [&](std::string raw, size_t total, std::string digest, std::string position) {
    IssueList issues;
    issues.atLocation(Severity::kError, "too-long", position,
                      position + ": the record is " + std::to_string(total) + " bytes, larger than maxRecordBytes (" +
                          std::to_string(max_record) + "); its first " + std::to_string(std::min(total, max_record)) +
                          " bytes are kept, SHA-256 of the whole " + digest);
    if (raw.size() > max_record) raw.resize(max_record);
    reject(std::move(issues), std::move(raw), std::move(position), false, nullptr, std::move(digest));
  };
  auto mapRecord = [&](const json::Value& record, const std::string& raw, const std::string& position,
                       const readers::RecordFrame* frame = nullptr) {
    ++summary.records;
    if (max_record > 0 && raw.size() > max_record) {
      rejectOversized(raw.substr(0, max_record), raw.size(), sha256Hex(raw), position);
      return;
    }
    MappedBundle mapped;
    IssueList issues;
    if (!run.map(record, raw, position, mapped, issues)) {
      reject(std::move(issues), raw, position, false, frame);
      return;
    }
    if (options.validator) {
      IssueList validation;
      options.validator->validate(mapped.bundle, ValidationRequest{}, validation);
      if (validation.hasErrors()) {
        reject(std::move(validation), raw, position, false, frame);
        return;
      }
    }
    ++summary.accepted;
    on_bundle(mapped);
  };

  // Grouping (CSV): consecutive rows with the same key become {"lines": [row, ...]}.
  // The rows' own documents stay alive while their group is mapped, so the group's "lines" array
  // takes their values without copying the strings. A row the reader rejects poisons its group
  // ("a bad line rejects its whole claim"): the group is rejected with every issue found.
  json::Document group;
  std::vector<std::unique_ptr<json::Document>> group_rows;
  std::string group_key, group_raw, group_position;
  IssueList group_issues;
  bool group_open = false;
  // A group past maxRecordBytes keeps its first bytes and a running digest, not its rows.
  size_t group_bytes = 0;
  std::unique_ptr<Sha256Stream> group_digest;
  auto addToGroup = [&](const std::string& raw) {
    group_bytes += raw.size();
    if (group_digest) {
      group_digest->update(raw);
      return;
    }
    if (max_record > 0 && group_bytes > max_record) {
      group_digest = std::make_unique<Sha256Stream>();
      group_digest->update(group_raw);
      group_digest->update(raw);
      group_raw.append(raw, 0, max_record - std::min(max_record, group_raw.size()));
      group = json::Document();  // the rows are not held any longer
      group.SetObject();
      group_rows.clear();
      return;
    }
    group_raw += raw;
  };
  auto flush = [&]() {
    if (!group_open) return;
    group_open = false;
    if (group_digest) {
      ++summary.records;
      rejectOversized(std::move(group_raw), group_bytes, group_digest->hex(), group_position);
      group_digest.reset();
      group_issues = IssueList();
      return;
    }
    if (group_issues.hasErrors()) {
      ++summary.records;
      reject(std::move(group_issues), std::move(group_raw), group_position, false);
      group_issues = IssueList();
      return;
    }
    mapRecord(group, group_raw, group_position);
  };
  auto startGroup = [&](const std::string& key, std::string position) {
    flush();
    group = json::Document();
    group.SetObject();
    group.AddMember("lines", json::Value(rapidjson::kArrayType), group.GetAllocator());
    group_rows.clear();
    group_raw.clear();
    group_bytes = 0;
    group_issues = IssueList();
    group_key = key;
    group_position = std::move(position);
    group_open = true;
  };
  size_t group_column = 0;
  // Header problems of a CSV spec: every column it names must be in the file.
  bool header_checked = spec.reader != ReaderKind::kCsv;

  while (true) {
    readers::SourceRecord record;
    IssueList issues;
    readers::ReadStatus status = reader->next(record, issues);
    if (status == readers::ReadStatus::kEnd) break;
    if (status == readers::ReadStatus::kFatal) {
      flush();
      ++summary.records;
      summary.fatal = true;
      reject(std::move(issues), std::move(record.raw), std::move(record.position), true);
      break;
    }
    if (!header_checked) {
      header_checked = true;
      const auto& header = static_cast<readers::csv::CsvReader&>(*reader).header();
      IssueList missing;
      for (const std::string& field : spec.fields) {
        std::string column = spec.group_by.empty() ? field : field.substr(8);  // "lines.*."
        if (std::find(header.begin(), header.end(), column) == header.end()) {
          missing.atLocation(Severity::kFatal, "structure", "line 1", "line 1: the header has no column " + column);
        }
      }
      if (!missing.empty()) {
        ++summary.records;
        summary.fatal = true;
        reject(std::move(missing), std::string(), "line 1", true);
        break;
      }
      if (!spec.group_by.empty()) {
        group_column = static_cast<size_t>(std::find(header.begin(), header.end(), spec.group_by) - header.begin());
      }
    }
    if (status == readers::ReadStatus::kRejected && !record.raw_sha256.empty()) {  // over maxRecordBytes
      flush();
      ++summary.records;
      rejectOversized(std::move(record.raw), record.raw_total, std::move(record.raw_sha256), std::move(record.position));
      continue;
    }
    if (status == readers::ReadStatus::kRejected) {
      const auto* csv = spec.group_by.empty() ? nullptr : static_cast<readers::csv::CsvReader*>(reader.get());
      if (!csv || group_column >= csv->lastFields().size()) {
        flush();
        ++summary.records;
        reject(std::move(issues), std::move(record.raw), std::move(record.position), false, record.frame.get());
        continue;
      }
      std::string key = csv->lastFields()[group_column];
      if (!group_open || key != group_key) startGroup(key, record.position);
      if (!group_digest) group_issues.append(issues);
      addToGroup(record.raw);
      continue;
    }
    if (spec.group_by.empty()) {
      mapRecord(record.doc, record.raw, record.position, record.frame.get());
      continue;
    }
    auto key_value = json::getString(record.doc, spec.group_by);
    std::string key = key_value ? std::string(*key_value) : std::string();
    if (!group_open || key != group_key) startGroup(key, record.position);
    addToGroup(record.raw);
    if (group_digest) continue;
    group_rows.push_back(std::make_unique<json::Document>(std::move(record.doc)));
    group["lines"].PushBack(static_cast<json::Value&>(*group_rows.back()), group.GetAllocator());
  }
  flush();
  return summary;
}

}  // namespace fhir::mappers::engine

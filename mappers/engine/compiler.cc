// SPDX-License-Identifier: Apache-2.0
// The spec compiler: source paths, values, conditions and rules of a spec.

#include "mappers/engine/compiler.h"

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
#include "mappers/engine/fhir_paths.h"
#include "mappers/engine/spec_json.h"
#include "mappers/readers/csv/csv_reader.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"
#include "mappers/readers/ndjson/ndjson_reader.h"
#include "mappers/readers/x12/x12_reader.h"

namespace fhir::mappers::engine {

namespace readers = ::fhir::mappers::readers;

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
                                               "provenanceAgent", "agent", "optionalColumns", "splitColumns"};
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
  // "optionalColumns": columns of "columns" a file may leave out (trailing optional columns);
  // "splitColumns": {"column": "separator"}: the column's text becomes the list of its trimmed,
  // non-empty parts before mapping, for forEach (a roster's race codes joined by "|").
  if (const json::Value* optional = json::find(root, "optionalColumns")) {
    if (spec_.reader != ReaderKind::kCsv || !optional->IsArray()) return fail(root, "optionalColumns is a list of a CSV spec's columns");
    for (const json::Value& column : optional->GetArray()) {
      if (!json::isString(column) || !knownPattern(std::string(json::stringView(column)))) {
        return fail(root, "optionalColumns names a column not in \"columns\"");
      }
      spec_.optional_columns.emplace(json::stringView(column));
    }
  }
  if (const json::Value* split = json::find(root, "splitColumns")) {
    if (spec_.reader != ReaderKind::kCsv || !split->IsObject()) return fail(root, "splitColumns is an object of a CSV spec's columns");
    for (const auto& member : split->GetObject()) {
      std::string column(member.name.GetString(), member.name.GetStringLength());
      if (!knownPattern(column)) return fail(root, "splitColumns names unknown column '" + column + "'");
      if (!json::isString(member.value) || json::stringView(member.value).empty()) {
        return fail(root, "splitColumns: the separator of '" + column + "' is a non-empty string");
      }
      spec_.split_columns.emplace(column, std::string(json::stringView(member.value)));
    }
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

}  // namespace fhir::mappers::engine

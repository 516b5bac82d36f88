// SPDX-License-Identifier: Apache-2.0
// The spec compiler: event-spec and care-management additions.

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
  if (const json::Value* fact = json::find(resource, "fact")) {
    // The kinds the gateway reads (gateway/ingest): a billing line is a Claim.
    if (!json::isString(*fact) || json::stringView(*fact) != "billing") return fail(resource, "\"fact\" can only be \"billing\"");
    if (program.type != "Claim") return fail(resource, "a \"billing\" fact is a Claim");
    program.fact = std::string(json::stringView(*fact));
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

}  // namespace fhir::mappers::engine

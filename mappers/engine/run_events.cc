// SPDX-License-Identifier: Apache-2.0
// The run: event-spec additions (references, coverage, transforms, merge with the stored resource).

#include "mappers/engine/runtime.h"

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

}  // namespace fhir::mappers::engine

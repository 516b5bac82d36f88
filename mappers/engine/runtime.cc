// SPDX-License-Identifier: Apache-2.0
// The run: values, conditions, items, target slots and the Bundle of one record.

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
void linkSiblingRules(std::vector<Rule>& rules, std::set<std::string> present) {
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

bool Run::map(const json::Value& record, const std::string& raw, const std::string& position, MappedBundle& out,
              IssueList& issues) {
  record_ = &record;
  issues_ = &issues;
  warnings_ = &out.warnings;
  if (!out.warnings.empty()) out.warnings = IssueList();  // `out` may be reused from record to record
  out.facts.clear();
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
    if (!program.fact.empty()) {
      out.facts.push_back(ResourceFact{program.fact, text, location(scopes[index].location.steps())});
    }
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

}  // namespace fhir::mappers::engine

// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/terminology_hooks.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <memory>
#include <set>

namespace fhir::validator {
namespace {

struct Code {
  std::string system;
  std::string code;
};

// The codings of a Coding or CodeableConcept node (a code string: one coding of `system`).
std::vector<Code> codingsOf(const fhirpath::Item& item, std::string_view system = {}) {
  std::vector<Code> out;
  if (!item.isNode()) {
    if (item.kind() == fhirpath::Item::Kind::kString) out.push_back({std::string(system), item.text()});
    return out;
  }
  const json::Value* value = item.value();
  if (!value) return out;
  if (json::isString(*value)) {
    out.push_back({std::string(system), std::string(json::stringView(*value))});
    return out;
  }
  if (!value->IsObject()) return out;
  auto add = [&](const json::Value& coding) {
    if (!coding.IsObject()) return;
    auto code = json::getString(coding, "code");
    if (!code) return;
    out.push_back({std::string(json::getString(coding, "system").value_or(system)), std::string(*code)});
  };
  if (const json::Value* codings = json::find(*value, "coding"); codings && codings->IsArray()) {
    for (const json::Value& coding : codings->GetArray()) add(coding);
  } else {
    add(*value);
  }
  return out;
}

// Whether `general` is `specific` or one of its ancestors in `index`.
bool isAncestorOrSelf(const terminology::CodeSystemIndex& index, const std::string& general,
                      const std::string& specific) {
  if (general == specific) return true;
  std::vector<const std::string*> stack{&general};
  std::set<std::string> seen{general};
  while (!stack.empty()) {
    const std::string* code = stack.back();
    stack.pop_back();
    auto it = index.children.find(*code);
    if (it == index.children.end()) continue;
    for (const std::string& child : it->second) {
      if (child == specific) return true;
      if (seen.insert(child).second) stack.push_back(&child);
    }
  }
  return false;
}

// One pair of codes: true/false, or an Error saying why it cannot be decided.
Result<bool> subsumesCode(const terminology::Terminology& terminology, const Code& general,
                          const Code& specific) {
  if (general.system.empty() || specific.system.empty()) {
    return Error{"a coding without a system cannot be compared"};
  }
  if (general.system != specific.system) {
    return Error{"the codings are from different code systems ('" + general.system + "', '" + specific.system +
                 "') and no relationship between them is known"};
  }
  const terminology::CodeSystemIndex* index = terminology.codeSystem(general.system);
  if (!index) return Error{"the code system '" + general.system + "' is not available locally"};
  for (const std::string* code : {&general.code, &specific.code}) {
    if (!index->has(*code)) {
      return Error{"the code '" + *code + "' is not in the local CodeSystem '" + general.system + "'" +
                   (index->complete() ? "" : " (which holds only part of its codes)")};
    }
  }
  return isAncestorOrSelf(*index, general.code, specific.code);
}

terminology::Membership codingMembership(const terminology::Terminology& terminology,
                                         const terminology::Expansion& expansion,
                                         const json::Value& coding) {
  if (!coding.IsObject()) return terminology::Membership::kUnknown;
  auto code = json::getString(coding, "code");
  if (!code) return terminology::Membership::kUnknown;
  auto system = json::getString(coding, "system");
  return terminology.contains(expansion, system.value_or(""), *code);
}

std::optional<bool> answer(terminology::Membership membership) {
  if (membership == terminology::Membership::kMember) return true;
  if (membership == terminology::Membership::kNotMember) return false;
  return std::nullopt;
}

}  // namespace

std::optional<bool> memberOf(const terminology::Terminology& terminology,
                             std::string_view value_set, const fhirpath::Item& coded) {
  const terminology::Expansion& expansion = terminology.expand(value_set);
  if (!expansion.found) return std::nullopt;
  if (!coded.isNode()) {
    if (coded.kind() != fhirpath::Item::Kind::kString) return std::nullopt;
    return answer(terminology.contains(expansion, "", coded.text()));
  }
  const json::Value* value = coded.value();
  if (!value) return std::nullopt;
  if (json::isString(*value)) return answer(terminology.contains(expansion, "", json::stringView(*value)));
  if (!value->IsObject()) return std::nullopt;
  const json::Value* codings = json::find(*value, "coding");
  bool concept_like = coded.typeName() == "CodeableConcept" || (codings && codings->IsArray());
  if (!concept_like) return answer(codingMembership(terminology, expansion, *value));
  // A CodeableConcept is a member when one of its codings is; not a member when every coding
  // is decided and none is.
  if (!codings || !codings->IsArray() || codings->Empty()) return std::nullopt;
  bool all_decided = true;
  for (const json::Value& coding : codings->GetArray()) {
    terminology::Membership membership = codingMembership(terminology, expansion, coding);
    if (membership == terminology::Membership::kMember) return true;
    if (membership == terminology::Membership::kUnknown) all_decided = false;
  }
  if (all_decided) return false;
  return std::nullopt;
}

Result<bool> subsumes(const terminology::Terminology& terminology, const fhirpath::Item& general,
                      const fhirpath::Item& specific) {
  std::vector<Code> generals = codingsOf(general), specifics = codingsOf(specific);
  if (generals.empty() || specifics.empty()) return Error{"a value without codes cannot be compared"};
  std::optional<Error> undecided;
  // CodeableConcepts: true when any coding of one subsumes any coding of the other.
  for (const Code& g : generals) {
    for (const Code& s : specifics) {
      auto answer = subsumesCode(terminology, g, s);
      if (!answer.ok()) {
        if (!undecided) undecided = answer.error();
        continue;
      }
      if (*answer) return true;
    }
  }
  if (undecided) return *undecided;
  return false;
}

namespace {

// The %terminologies service over local data (FHIR R4 FHIRPath "Terminology Service API"). Each
// answer is a resource kept in `arena` for the life of the evaluation context.
class LocalTerminologyService {
 public:
  explicit LocalTerminologyService(const terminology::Terminology& terminology) : terminology_(terminology) {}

  Result<fhirpath::Item> call(std::string_view operation, const std::vector<fhirpath::Collection>& args) {
    if (operation == "expand") return expand(args);
    if (operation == "lookup") return lookup(args);
    if (operation == "validateVS") return validateVS(args);
    if (operation == "validateCS") return validateCS(args);
    if (operation == "subsumes") return subsumesCall(args);
    if (operation == "translate") return Error{"no ConceptMap is available locally"};
    return Error{"unknown operation"};
  }

 private:
  json::Document& newResource(std::string_view type) {
    json::Document& doc = arena_.emplace_back();
    doc.SetObject();
    json::addString(doc, "resourceType", type, doc.GetAllocator());
    return doc;
  }
  static fhirpath::Item itemOf(const json::Document& doc, std::string_view type) {
    return fhirpath::Item::node(&doc, type);
  }
  static Result<std::string> url(const fhirpath::Collection& arg, const char* what) {
    if (arg.size() != 1) return Error{std::string(what) + " must be one value"};
    const fhirpath::Item& item = arg[0];
    if (item.kind() == fhirpath::Item::Kind::kString) return item.text();
    if (item.isNode() && item.value()) {
      if (json::isString(*item.value())) return std::string(json::stringView(*item.value()));
      if (item.value()->IsObject()) {
        if (auto text = json::getString(*item.value(), "url")) return std::string(*text);
      }
    }
    return Error{std::string(what) + " must be a canonical URL or a resource with a url"};
  }
  static void addParameter(json::Document& doc, std::string_view name, std::string_view value_key,
                           json::Value value) {
    auto& allocator = doc.GetAllocator();
    json::Value* parameters = json::find(doc, "parameter");
    if (!parameters) {
      json::addMember(doc, "parameter", json::Value(rapidjson::kArrayType), allocator);
      parameters = json::find(doc, "parameter");
    }
    json::Value parameter(rapidjson::kObjectType);
    json::addString(parameter, "name", name, allocator);
    json::addMember(parameter, value_key, std::move(value), allocator);
    parameters->PushBack(std::move(parameter), allocator);
  }
  static void addText(json::Document& doc, std::string_view name, std::string_view key, std::string_view text) {
    addParameter(doc, name, key, json::makeString(text, doc.GetAllocator()));
  }

  Result<fhirpath::Item> expand(const std::vector<fhirpath::Collection>& args) {
    auto value_set = url(args[0], "the value set");
    if (!value_set.ok()) return value_set.error();
    const terminology::Expansion& expansion = terminology_.expand(*value_set);
    if (!expansion.found) return Error{"the value set '" + *value_set + "' is not available locally"};
    if (expansion.open || !expansion.open_systems.empty()) {
      std::string systems;
      for (const std::string& system : std::set<std::string>(expansion.open_systems.begin(), expansion.open_systems.end())) {
        systems += (systems.empty() ? "" : ", ") + system;
      }
      return Error{"the value set '" + *value_set + "' cannot be expanded locally" +
                   (systems.empty() ? std::string(" (it imports a value set that is not available)")
                                    : " (it needs the code system(s) " + systems + ")")};
    }
    json::Document& doc = newResource("ValueSet");
    auto& allocator = doc.GetAllocator();
    json::addString(doc, "url", expansion.url, allocator);
    if (!expansion.version.empty()) json::addString(doc, "version", expansion.version, allocator);
    json::addString(doc, "status", "active", allocator);
    json::Value out(rapidjson::kObjectType);
    char stamp[32];
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    json::addString(out, "timestamp", stamp, allocator);
    std::vector<std::string> keys(expansion.codes.begin(), expansion.codes.end());
    std::sort(keys.begin(), keys.end());
    json::addMember(out, "total", json::Value(static_cast<int64_t>(keys.size())), allocator);
    json::Value contains(rapidjson::kArrayType);
    for (const std::string& key : keys) {
      size_t bar = key.find('|');
      std::string system = key.substr(0, bar), code = key.substr(bar + 1);
      json::Value entry(rapidjson::kObjectType);
      json::addString(entry, "system", system, allocator);
      json::addString(entry, "code", code, allocator);
      if (const terminology::CodeSystemIndex* index = terminology_.codeSystem(system)) {
        auto display = index->display.find(code);
        if (display != index->display.end() && !display->second.empty()) {
          json::addString(entry, "display", display->second, allocator);
        }
      }
      contains.PushBack(std::move(entry), allocator);
    }
    json::addMember(out, "contains", std::move(contains), allocator);
    json::addMember(doc, "expansion", std::move(out), allocator);
    return itemOf(doc, "ValueSet");
  }

  Result<fhirpath::Item> lookup(const std::vector<fhirpath::Collection>& args) {
    if (args[0].size() != 1) return Error{"the coded value must be one value"};
    std::vector<Code> codes = codingsOf(args[0][0]);
    if (codes.size() != 1) return Error{"lookup needs one Coding"};
    const Code& coding = codes[0];
    const terminology::CodeSystemIndex* index = terminology_.codeSystem(coding.system);
    if (!index) return Error{"the code system '" + coding.system + "' is not available locally"};
    auto display = index->display.find(coding.code);
    if (display == index->display.end()) {
      return Error{"the code '" + coding.code + "' is not in the local CodeSystem '" + coding.system + "'"};
    }
    json::Document& doc = newResource("Parameters");
    const json::Value* system_resource = terminology_.registry().codeSystem(coding.system);
    std::string name = coding.system;
    if (system_resource) {
      if (auto title = json::getString(*system_resource, "title")) {
        name = std::string(*title);
      } else if (auto short_name = json::getString(*system_resource, "name")) {
        name = std::string(*short_name);
      }
    }
    addText(doc, "name", "valueString", name);
    if (!index->version.empty()) addText(doc, "version", "valueString", index->version);
    addText(doc, "display", "valueString", display->second);
    return itemOf(doc, "Parameters");
  }

  Result<fhirpath::Item> validateVS(const std::vector<fhirpath::Collection>& args) {
    auto value_set = url(args[0], "the value set");
    if (!value_set.ok()) return value_set.error();
    if (args[1].size() != 1) return Error{"the coded value must be one value"};
    if (!terminology_.expand(*value_set).found) {
      return Error{"the value set '" + *value_set + "' is not available locally"};
    }
    std::optional<bool> member = memberOf(terminology_, *value_set, args[1][0]);
    if (!member) {
      return Error{"membership in the value set '" + *value_set +
                   "' cannot be decided locally (the code's system is not available)"};
    }
    json::Document& doc = newResource("Parameters");
    addParameter(doc, "result", "valueBoolean", json::Value(*member));
    if (!*member) addText(doc, "message", "valueString", "The code is not in the value set '" + *value_set + "'");
    return itemOf(doc, "Parameters");
  }

  Result<fhirpath::Item> validateCS(const std::vector<fhirpath::Collection>& args) {
    auto system = url(args[0], "the code system");
    if (!system.ok()) return system.error();
    if (args[1].size() != 1) return Error{"the coded value must be one value"};
    const terminology::CodeSystemIndex* index = terminology_.codeSystem(*system);
    if (!index) return Error{"the code system '" + *system + "' is not available locally"};
    std::vector<Code> codes = codingsOf(args[1][0], *system);
    if (codes.empty()) return Error{"the coded value has no code"};
    bool valid = false;
    for (const Code& code : codes) {
      if (code.system != *system) continue;
      if (index->has(code.code)) valid = true;
    }
    if (!valid && !index->complete()) {
      return Error{"the local CodeSystem '" + *system + "' holds only part of its codes (content " + index->content + ")"};
    }
    json::Document& doc = newResource("Parameters");
    addParameter(doc, "result", "valueBoolean", json::Value(valid));
    if (valid && codes.size() == 1) {
      auto display = index->display.find(codes[0].code);
      if (display != index->display.end() && !display->second.empty()) {
        addText(doc, "display", "valueString", display->second);
      }
    }
    return itemOf(doc, "Parameters");
  }

  Result<fhirpath::Item> subsumesCall(const std::vector<fhirpath::Collection>& args) {
    auto system = url(args[0], "the code system");
    if (!system.ok()) return system.error();
    if (args[1].size() != 1 || args[2].size() != 1) return Error{"each code must be one value"};
    std::vector<Code> a = codingsOf(args[1][0], *system), b = codingsOf(args[2][0], *system);
    if (a.size() != 1 || b.size() != 1) return Error{"subsumes needs two codes or Codings"};
    auto forward = subsumesCode(terminology_, a[0], b[0]);
    if (!forward.ok()) return forward.error();
    auto backward = subsumesCode(terminology_, b[0], a[0]);
    if (!backward.ok()) return backward.error();
    std::string_view outcome = *forward && *backward ? "equivalent"
                               : *forward            ? "subsumes"
                               : *backward           ? "subsumed-by"
                                                     : "not-subsumed";
    json::Document& doc = newResource("Parameters");
    addText(doc, "outcome", "valueCode", outcome);
    return itemOf(doc, "Parameters");
  }

  const terminology::Terminology& terminology_;
  std::deque<json::Document> arena_;
};

}  // namespace

void installTerminology(fhirpath::EvaluationContext& context,
                        const terminology::Terminology& terminology, std::string* undecided) {
  const terminology::Terminology* local = &terminology;
  context.subsumes = [local](const fhirpath::Item& general, const fhirpath::Item& specific) {
    return subsumes(*local, general, specific);
  };
  auto service = std::make_shared<LocalTerminologyService>(terminology);
  context.terminologies = [service](std::string_view operation, const std::vector<fhirpath::Collection>& args) {
    return service->call(operation, args);
  };
  context.member_of = [local, undecided](std::string_view value_set, const fhirpath::Item& coded) {
    std::optional<bool> answer = memberOf(*local, value_set, coded);
    if (!answer && undecided) *undecided = std::string(value_set);
    return answer;
  };
}

}  // namespace fhir::validator

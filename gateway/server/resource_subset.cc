// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/resource_subset.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway_paths.h"

namespace fhir::gateway::subset {
namespace {

struct ElementFlags {
  bool summary = false;    // isSummary
  bool mandatory = false;  // min > 0
  bool backbone = false;   // has child elements in the resource's own definition
};

// One resource type's elements by path ("Claim.insurance.sequence", "Observation.value[x]").
struct TypeElements {
  std::map<std::string, ElementFlags, std::less<>> by_path;
};

std::string profilesRoot() {
  const char* env = std::getenv("FHIR_GATEWAY_PROFILES");
  return env != nullptr && *env != '\0' ? env : GATEWAY_PROFILES_DIR;
}

Result<std::shared_ptr<const TypeElements>> loadType(const std::string& type) {
  const std::string path = profilesRoot() + "/r4-core/package/StructureDefinition-" + type + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"no R4 StructureDefinition for " + type + " (" + path + ")"};
  std::stringstream text;
  text << in.rdbuf();
  auto doc = json::parse(text.str());
  if (!doc.ok()) return Error{path + ": " + doc.message()};
  const json::Value* snapshot = json::find(*doc, "snapshot");
  const json::Value* elements = snapshot != nullptr && snapshot->IsObject() ? json::find(*snapshot, "element") : nullptr;
  if (elements == nullptr || !elements->IsArray()) return Error{path + " has no snapshot elements"};
  auto out = std::make_shared<TypeElements>();
  for (const json::Value& element : elements->GetArray()) {
    if (!element.IsObject()) continue;
    const std::string element_path(json::getString(element, "path").value_or(""));
    if (element_path.empty()) continue;
    ElementFlags flags;
    const json::Value* summary = json::find(element, "isSummary");
    flags.summary = summary != nullptr && summary->IsBool() && summary->GetBool();
    const json::Value* min = json::find(element, "min");
    flags.mandatory = min != nullptr && json::numberAsInt64(*min).value_or(0) > 0;
    out->by_path[element_path] = flags;
  }
  for (auto& [element_path, flags] : out->by_path) {
    const size_t dot = element_path.rfind('.');
    if (dot == std::string::npos) continue;
    auto parent = out->by_path.find(element_path.substr(0, dot));
    if (parent != out->by_path.end() && parent->first.find('.') != std::string::npos) parent->second.backbone = true;
  }
  return std::shared_ptr<const TypeElements>(std::move(out));
}

Result<std::shared_ptr<const TypeElements>> elementsOf(const std::string& type) {
  static std::mutex mutex;
  static std::map<std::string, Result<std::shared_ptr<const TypeElements>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(type);
  if (found == cache.end()) found = cache.emplace(type, loadType(type)).first;
  return found->second;
}

// The definition of the JSON member `name` of the element at `parent`: `birthDate` and
// `_birthDate` are Patient.birthDate, `valueQuantity` is Observation.value[x]. Sets `path`.
const ElementFlags* child(const TypeElements& elements, const std::string& parent, std::string_view name,
                          std::string& path) {
  if (!name.empty() && name[0] == '_') name.remove_prefix(1);
  path = parent + "." + std::string(name);
  if (auto found = elements.by_path.find(path); found != elements.by_path.end()) return &found->second;
  for (size_t i = 1; i < name.size(); ++i) {
    if (std::isupper(static_cast<unsigned char>(name[i])) == 0) continue;
    path = parent + "." + std::string(name.substr(0, i)) + "[x]";
    if (auto found = elements.by_path.find(path); found != elements.by_path.end()) return &found->second;
  }
  return nullptr;
}

// Keeps the isSummary members of `object` (the element at `path`), recursing into backbones.
void keepSummary(json::Value& object, const std::string& path, const TypeElements& elements) {
  std::vector<std::string> drop;
  for (auto member = object.MemberBegin(); member != object.MemberEnd(); ++member) {
    const std::string name(member->name.GetString(), member->name.GetStringLength());
    if (name == "resourceType") continue;
    std::string child_path;
    const ElementFlags* flags = child(elements, path, name, child_path);
    if (flags == nullptr || !flags->summary) {
      drop.push_back(name);
      continue;
    }
    if (!flags->backbone || name[0] == '_') continue;
    json::Value& value = member->value;
    if (value.IsObject()) keepSummary(value, child_path, elements);
    if (value.IsArray()) {
      for (json::Value& item : value.GetArray()) {
        if (item.IsObject()) keepSummary(item, child_path, elements);
      }
    }
  }
  for (const std::string& name : drop) object.RemoveMember(name.c_str());
}

// Keeps resourceType, id, meta, the mandatory top-level members and those `wanted` says.
template <typename Wanted>
void keepTopLevel(json::Value& resource, const std::string& type, const TypeElements& elements, Wanted wanted) {
  std::vector<std::string> drop;
  for (auto member = resource.MemberBegin(); member != resource.MemberEnd(); ++member) {
    const std::string name(member->name.GetString(), member->name.GetStringLength());
    if (name == "resourceType" || name == "id" || name == "meta") continue;
    std::string path;
    const ElementFlags* flags = child(elements, type, name, path);
    if (flags != nullptr && flags->mandatory) continue;
    if (wanted(name, path)) continue;
    drop.push_back(name);
  }
  for (const std::string& name : drop) resource.RemoveMember(name.c_str());
}

void addSubsettedTag(json::Document& doc) {
  auto& allocator = doc.GetAllocator();
  json::Value* meta = json::find(doc, "meta");
  if (meta == nullptr || !meta->IsObject()) {
    doc.RemoveMember("meta");
    json::addMember(doc, "meta", json::Value(rapidjson::kObjectType), allocator);
    meta = json::find(doc, "meta");
  }
  json::Value* tags = json::find(*meta, "tag");
  if (tags == nullptr || !tags->IsArray()) {
    meta->RemoveMember("tag");
    json::addMember(*meta, "tag", json::Value(rapidjson::kArrayType), allocator);
    tags = json::find(*meta, "tag");
  }
  constexpr std::string_view kSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
  for (const json::Value& tag : tags->GetArray()) {
    if (tag.IsObject() && json::getString(tag, "system") == kSystem && json::getString(tag, "code") == "SUBSETTED") return;
  }
  json::Value tag(rapidjson::kObjectType);
  json::addString(tag, "system", kSystem, allocator);
  json::addString(tag, "code", "SUBSETTED", allocator);
  json::addString(tag, "display", "Resource encoded in summary mode", allocator);
  tags->PushBack(std::move(tag), allocator);
}

}  // namespace

Status take(std::vector<std::pair<std::string, std::string>>& parameters, Shape& shape) {
  bool summary_seen = false;
  bool elements_seen = false;
  std::vector<std::pair<std::string, std::string>> rest;
  for (auto& [name, value] : parameters) {
    if (name == "_summary") {
      if (summary_seen) return Error{"invalid: _summary is given more than once"};
      if (value != "true" && value != "text" && value != "data" && value != "false") {
        return Error{"invalid: _summary '" + value + "' is not true, text, data or false"};
      }
      summary_seen = true;
      shape.summary = value;
    } else if (name == "_elements") {
      elements_seen = true;
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        std::string element = value.substr(start, comma - start);
        element.erase(0, element.find_first_not_of(' '));
        element.erase(element.find_last_not_of(' ') + 1);
        if (!element.empty()) shape.elements.push_back(std::move(element));
        start = comma + 1;
      }
    } else {
      rest.emplace_back(std::move(name), std::move(value));
    }
  }
  if (summary_seen && elements_seen) return Error{"invalid: use _summary or _elements, not both"};
  parameters = std::move(rest);
  return Status::Ok();
}

Result<std::string> apply(const Shape& shape, const std::string& text) {
  if (!shape.subsets()) return text;
  auto doc = json::parse(text);
  if (!doc.ok()) return Error{"the stored resource does not parse: " + doc.message()};
  if (!doc->IsObject()) return Error{"the stored resource is not an object"};
  const std::string type(json::getString(*doc, "resourceType").value_or(""));
  if (type.empty()) return Error{"the stored resource has no resourceType"};
  if (shape.summary == "data") {
    doc->RemoveMember("text");
  } else {
    auto elements = elementsOf(type);
    if (!elements.ok()) return elements.error();
    if (shape.summary == "true") {
      keepSummary(*doc, type, **elements);
    } else if (shape.summary == "text") {
      keepTopLevel(*doc, type, **elements, [](const std::string& name, const std::string&) { return name == "text"; });
    } else {
      // _elements: `name`, `Patient.name`, or a choice's name (`value` keeps `valueQuantity`).
      std::set<std::string> wanted;
      for (const std::string& element : shape.elements) {
        wanted.insert(element.rfind(type + ".", 0) == 0 ? element.substr(type.size() + 1) : element);
      }
      keepTopLevel(*doc, type, **elements, [&](const std::string& name, const std::string& path) {
        const std::string base = name[0] == '_' ? name.substr(1) : name;
        if (wanted.count(base) != 0) return true;
        const size_t dot = path.rfind('.');
        std::string element = dot == std::string::npos ? path : path.substr(dot + 1);
        if (element.size() > 3 && element.ends_with("[x]")) element.resize(element.size() - 3);
        return !element.empty() && wanted.count(element) != 0;
      });
    }
  }
  addSubsettedTag(*doc);
  return json::serialize(*doc);
}

}  // namespace fhir::gateway::subset

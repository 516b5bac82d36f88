// SPDX-License-Identifier: Apache-2.0
// References: target types from targetProfile, local (#id) references and contained resources
// that must be referenced (ref-1, dom-3 natively).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "conformance/validator/instance_walker.h"
#include "conformance/validator/validator_impl.h"

namespace fhir::validator {

void InstanceWalker::checkCanonicalTarget(std::string_view canonical, const ElementPlan& element) {
  if (canonical.empty() || canonical[0] == '#') return;
  std::vector<std::string_view> allowed;
  for (const TypeRef& ref : element.types) {
    if (ref.code != "canonical") continue;
    for (const std::string& target : ref.target_profiles) {
      std::string_view url = definitions::canonicalUrl(target);
      const StructurePlan* plan = plans_.byUrl(url);
      std::string_view type = plan && !plan->type.empty() ? std::string_view(plan->type)
                                                          : url.substr(url.rfind('/') + 1);
      if (type == "Resource" || type == "DomainResource") return;
      allowed.push_back(type);
    }
  }
  if (allowed.empty()) return;
  // The kinds of conformance resource the registry holds; a canonical that resolves to one of
  // them and to none of the allowed types names the wrong kind of resource.
  using definitions::ResourceKind;
  static constexpr std::pair<ResourceKind, std::string_view> kKinds[] = {
      {ResourceKind::kStructureDefinition, "StructureDefinition"},
      {ResourceKind::kValueSet, "ValueSet"},
      {ResourceKind::kCodeSystem, "CodeSystem"},
      {ResourceKind::kQuestionnaire, "Questionnaire"}};
  std::string_view found;
  for (const auto& [kind, name] : kKinds) {
    if (!validator_.registry().find(kind, canonical)) continue;
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return;
    if (found.empty()) found = name;
  }
  if (found.empty()) return;
  std::string list;
  for (std::string_view name : allowed) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  report(Severity::kError, "structure",
         "Canonical URL '" + std::string(canonical) + "' refers to a resource that has the wrong type. Found " +
             std::string(found) + " expecting one of [" + list + "]");
}

namespace {

// The resources of a Parameters, at any depth of parts.
void parameterResources(const json::Value& holder, std::vector<const json::Value*>& out) {
  for (std::string_view key : {"parameter", "part"}) {
    const json::Value* items = json::find(holder, key);
    if (!items || !items->IsArray()) continue;
    for (const json::Value& item : items->GetArray()) {
      if (!item.IsObject()) continue;
      if (const json::Value* resource = json::find(item, "resource"); resource && resource->IsObject()) {
        out.push_back(resource);
      }
      parameterResources(item, out);
    }
  }
}

}  // namespace

const json::Value* InstanceWalker::resolveInBundle(std::string_view reference) const {
  if (!bundle_) return nullptr;
  // (resource, fullUrl) of each candidate.
  std::vector<std::pair<const json::Value*, std::string_view>> candidates;
  if (json::getString(*bundle_, "resourceType") == "Parameters") {
    std::vector<const json::Value*> resources;
    parameterResources(*bundle_, resources);
    for (const json::Value* resource : resources) candidates.emplace_back(resource, std::string_view());
  } else if (const json::Value* entries = json::find(*bundle_, "entry"); entries && entries->IsArray()) {
    for (const json::Value& entry : entries->GetArray()) {
      const json::Value* resource = entry.IsObject() ? json::find(entry, "resource") : nullptr;
      if (!resource || !resource->IsObject()) continue;
      candidates.emplace_back(resource, json::getString(entry, "fullUrl").value_or(""));
    }
  }
  std::string_view key = reference.substr(0, reference.find("/_history/"));
  for (const auto& [resource, full_url] : candidates) {
    if (!full_url.empty() && (full_url == reference || full_url == key)) return resource;
    auto type = json::getString(*resource, "resourceType");
    auto id = json::getString(*resource, "id");
    if (!type || !id) continue;
    size_t size = type->size() + 1 + id->size();
    if (key.size() < size) continue;
    std::string_view tail = key.substr(key.size() - size);
    bool boundary = key.size() == size || key[key.size() - size - 1] == '/';
    if (boundary && tail.substr(0, type->size()) == *type && tail[type->size()] == '/' &&
        tail.substr(type->size() + 1) == *id) {
      return resource;
    }
  }
  return nullptr;
}

// R4 ElementDefinition.type.targetProfile: "the Reference ... SHALL conform to at least one of
// the profiles". Checked when the target is an entry of the Bundle being walked (two levels of
// nested checks at most, so cycles of references end).
void InstanceWalker::checkReferencedProfile(std::string_view reference, const ElementPlan& element) {
  if (!bundle_) return;
  if (conformance_depth_ > 2) {
    depth_limited_ = true;  // unchecked here, where a shallower walk checks it
    return;
  }
  std::vector<const std::string*> profiles;
  for (const TypeRef& ref : element.types) {
    if (ref.code != "Reference") continue;
    for (const std::string& target : ref.target_profiles) {
      const StructurePlan* plan = plans_.byUrl(target);
      if (!plan) return;  // unknown: not judged here
      if (plan->derivation != "constraint") return;  // a plain resource type allows any instance of it
      profiles.push_back(&target);
    }
  }
  if (profiles.empty()) return;
  const json::Value* target = resolveInBundle(reference);
  if (!target) return;
  for (const std::string* url : profiles) {
    if (conformsTo(*target, *url, nullptr)) return;
  }
  std::string list;
  for (const std::string* url : profiles) list += (list.empty() ? "" : ", ") + *url;
  report(Severity::kError, "structure",
         "The resource '" + std::string(reference) + "' this refers to does not conform to the target profile (" + list + ")");
}

void InstanceWalker::checkReferenceTarget(const json::Value& reference, const ElementPlan& element) {
  auto text = json::getString(reference, "reference");
  if (!text || text->empty() || (*text)[0] == '#') return;
  checkReferencedProfile(*text, element);
  if (text->compare(0, 4, "urn:") == 0) return;
  if (validator_.options().check_references && bundle_ && text->find("://") == std::string_view::npos &&
      text->find('?') == std::string_view::npos && !resolveInBundle(*text)) {
    report(Severity::kError, "not-found", "Unable to resolve resource with reference '" + std::string(*text) + "'");
  }
  std::vector<std::string_view> allowed;
  for (const TypeRef& ref : element.types) {
    if (ref.code != "Reference") continue;
    for (const std::string& target : ref.target_profiles) {
      std::string_view url = definitions::canonicalUrl(target);
      const StructurePlan* plan = plans_.byUrl(url);
      std::string_view type = plan && !plan->type.empty() ? std::string_view(plan->type)
                                                          : url.substr(url.rfind('/') + 1);
      if (type == "Resource" || type == "DomainResource") return;
      allowed.push_back(type);
    }
  }
  if (allowed.empty()) return;
  std::string_view url = *text;
  if (size_t query = url.find('?'); query != std::string_view::npos) return;  // conditional reference
  if (size_t history = url.find("/_history/"); history != std::string_view::npos) url = url.substr(0, history);
  size_t slash = url.rfind('/');
  if (slash == std::string_view::npos) return;
  std::string_view rest = url.substr(0, slash);
  size_t type_slash = rest.rfind('/');
  std::string_view type = type_slash == std::string_view::npos ? rest : rest.substr(type_slash + 1);
  if (std::find(allowed.begin(), allowed.end(), type) != allowed.end()) return;
  if (!validator_.model()->isResourceType(type)) return;  // not a [type]/[id] reference
  std::string list;
  for (std::string_view name : allowed) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  report(Severity::kError, "structure",
         "Invalid Resource target type. Found " + std::string(type) + ", but expected one of (" + list + ")");
}

namespace {

// Collects reference-like strings: `reference` values and any string starting with '#'.
void collectLocalReferences(const json::Value& value, std::vector<std::string_view>& out,
                            bool& references_container) {
  if (json::isString(value)) {
    std::string_view text = json::stringView(value);
    if (!text.empty() && text[0] == '#') {
      if (text.size() == 1) references_container = true;
      out.push_back(text.substr(1));
    }
  } else if (value.IsObject()) {
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      const json::Value& child = it->value;
      if (json::isString(child)) {
        std::string_view text = json::stringView(child);
        if (!text.empty() && text[0] == '#') {
          if (text.size() == 1) references_container = true;
          out.push_back(text.substr(1));
        }
      } else {
        collectLocalReferences(child, out, references_container);
      }
    }
  } else if (value.IsArray()) {
    for (const json::Value& item : value.GetArray()) {
      if (json::isString(item)) {
        std::string_view text = json::stringView(item);
        if (!text.empty() && text[0] == '#') out.push_back(text.substr(1));
      } else {
        collectLocalReferences(item, out, references_container);
      }
    }
  }
}

}  // namespace

void InstanceWalker::checkLocalReference(const json::Value* value, const Constraint& constraint) {
  if (!value || !value->IsObject() || !container_) return;
  auto reference = json::getString(*value, "reference");
  if (!reference || reference->size() < 2 || (*reference)[0] != '#') return;
  std::string_view id = reference->substr(1);
  if (const json::Value* contained = json::find(*container_, "contained"); contained && contained->IsArray()) {
    for (const json::Value& item : contained->GetArray()) {
      if (item.IsObject() && json::getString(item, "id") == id) return;
    }
  }
  report(constraint.severity, "invariant",
         "Constraint failed: ref-1: '" + constraint.human + "' (url: " + std::string(id) + ")");
}

void InstanceWalker::checkContainedReferenced(const json::Value& resource) {
  // dom-3: every contained resource is referenced from elsewhere in the resource (by '#id'), or
  // itself refers to its container ('#').
  const json::Value* contained = json::find(resource, "contained");
  if (!contained || !contained->IsArray() || contained->Empty()) return;
  std::vector<std::string_view> references;
  bool unused = false;
  for (auto it = resource.MemberBegin(); it != resource.MemberEnd(); ++it) {
    if (it->name != "contained") collectLocalReferences(it->value, references, unused);
  }
  // References between contained resources count too.
  std::vector<std::string_view> inner;
  for (const json::Value& item : contained->GetArray()) {
    bool self = false;
    collectLocalReferences(item, inner, self);
  }
  for (rapidjson::SizeType index = 0; index < contained->Size(); ++index) {
    const json::Value& item = (*contained)[index];
    if (!item.IsObject()) continue;
    auto id = json::getString(item, "id");
    bool to_container = false;
    std::vector<std::string_view> own;
    collectLocalReferences(item, own, to_container);
    bool referenced = to_container;
    if (id) {
      for (std::string_view ref : references) referenced = referenced || ref == *id;
      for (std::string_view ref : inner) referenced = referenced || ref == *id;
    }
    if (!referenced) {
      report(Severity::kError, "invariant",
             "Constraint failed: dom-3: 'If the resource is contained in another resource, it "
             "SHALL be referred to from elsewhere in the resource or SHALL refer to the "
             "containing resource'");
      return;
    }
  }
}

}  // namespace fhir::validator

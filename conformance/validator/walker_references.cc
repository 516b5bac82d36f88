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

void InstanceWalker::checkReferenceTarget(const json::Value& reference, const ElementPlan& element) {
  auto text = json::getString(reference, "reference");
  if (!text || text->empty() || (*text)[0] == '#' || text->compare(0, 4, "urn:") == 0) return;
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

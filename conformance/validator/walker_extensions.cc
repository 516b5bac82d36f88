// SPDX-License-Identifier: Apache-2.0
// Extensions: resolution by URL (scoped to the profile's package), value/children (ext-1), and
// the R4 context rules. Also the StructureDefinition checks on a differential (fixed values of
// the base, paths and discriminator paths naming elements of the base).
#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include "conformance/validator/instance_walker.h"

#include "conformance/validator/validator_impl.h"
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

void InstanceWalker::validateExtension(const json::Value& value, const ElementPlan& element,
                                       const StructurePlan& plan) {
  auto url = json::getString(value, "url");
  bool has_value = false;
  bool has_extensions = false;
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
    std::string_view name = memberName(it->name);
    if (name == "extension") has_extensions = true;
    if (name.size() > 5 && name.compare(0, 5, "value") == 0) has_value = true;
  }
  if (has_value == has_extensions) {
    // ext-1, checked natively.
    report(Severity::kError, "invariant",
           "Constraint failed: ext-1: 'Must have either extensions or value[x], not both'");
  }
  const StructurePlan* definition = nullptr;
  const ElementPlan* holder = nullptr;
  if (url && isAbsoluteUrl(*url)) {
    definition = plans_.byUrl(*url, &plan);
    if (!definition && !validator_.missingExtensionsPackage().empty() &&
        url->rfind("http://hl7.org/fhir/StructureDefinition/", 0) == 0) {
      // An HL7 extension from the extensions package a loaded IG depends on, which is not loaded.
      report(validator_.uncheckedBindingSeverity(), "not-supported",
             "The extension " + std::string(*url) + " was not checked: it is not an R4 core extension, and the " +
                 validator_.missingExtensionsPackage() + " package that a loaded IG depends on is not loaded");
    } else if (!definition) {
      report(Severity::kError, "structure",
             "The extension " + std::string(*url) + " could not be found so is not allowed here");
    } else if (!definition->root || definition->type != "Extension") {
      report(Severity::kError, "structure",
             "The extension " + std::string(*url) + " is not a usable Extension definition" +
                 (definition->error.empty() ? std::string() : " (" + definition->error + ")"));
      definition = nullptr;
    } else {
      holder = definition->root;
      checkExtensionContext(*definition);
    }
  } else if (url) {
    // A relative url names a sub-extension slice of the enclosing complex extension.
    for (const ElementPlan* slice : element.slices) {
      for (const ElementPlan* child : slice->children) {
        if (child->name == "url" && child->fixed && json::isString(*child->fixed) &&
            json::stringView(*child->fixed) == *url) {
          holder = slice;
          definition = &plan;
        }
      }
    }
  }
  if (!holder) {
    const StructurePlan* base = plans_.byType("Extension");
    if (!base || !base->root) return;
    definition = base;
    holder = base->root;
  }
  if (holder->children.empty() && holder == definition->root) return;
  // Nested extensions see this one as their context (R4 context type `extension`).
  std::string_view saved_enclosing = enclosing_extension_;
  if (url && isAbsoluteUrl(*url)) enclosing_extension_ = *url;
  walkObject(value, holder->children.empty() && holder->content_ref ? *holder->content_ref : *holder,
             *definition, false);
  enclosing_extension_ = saved_enclosing;
  if (!holder->constraints.empty()) checkConstraints(holder->constraints, &value, nullptr, "Extension");
}

void InstanceWalker::checkExtensionContext(const StructurePlan& definition) {
  const json::Value* contexts = json::find(*definition.definition, "context");
  if (!contexts || !contexts->IsArray() || contexts->Empty()) return;
  // Where we are: the owning element's path in its definition, its type, and the instance path
  // without indices; at a resource root, the resource type.
  std::vector<std::string> here;
  if (owner_) {
    here.push_back(owner_->path);
    here.emplace_back(owner_type_);
    if (owner_type_ == "BackboneElement") here.emplace_back("BackboneElement");
  } else if (current_resource_) {
    if (auto type = json::getString(*current_resource_, "resourceType")) here.emplace_back(*type);
    here.emplace_back("Resource");
    here.emplace_back("DomainResource");
  }
  std::string instance_path;
  {
    std::string_view path = path_;
    size_t cut = path.rfind(".extension");
    if (cut == std::string_view::npos) cut = path.rfind(".modifierExtension");
    if (cut != std::string_view::npos) path = path.substr(0, cut);
    bool skipping = false;
    for (char c : path) {
      if (c == '[') skipping = true;
      if (!skipping) instance_path += c;
      if (c == ']') skipping = false;
    }
    here.push_back(instance_path);
    if (!enclosing_extension_.empty()) here.emplace_back(enclosing_extension_);
  }
  for (const json::Value& context : contexts->GetArray()) {
    auto type = json::getString(context, "type");
    auto expression = json::getString(context, "expression");
    if (!type || !expression) return;
    // R4 context type `extension`: allowed inside an extension with that URL.
    if (*type == "extension") {
      if (!enclosing_extension_.empty() && enclosing_extension_ == *expression) return;
      continue;
    }
    if (*type != "element") return;  // fhirpath contexts: not judged
    std::string_view text = *expression;
    if (text == "Element" || text == "Base" || text.find_first_of("()") != std::string_view::npos) return;
    for (const std::string& candidate : here) {
      if (candidate == text) return;
    }
    // Paths through a data type ("Address.line" for Patient.address.line) and contexts naming a
    // child of the element ("ElementDefinition.type.code" on ElementDefinition.type, as the core
    // fhir-type extension is used) are accepted on the element's own name.
    if (owner_) {
      std::string_view own = owner_->path;
      own = own.substr(own.rfind('.') + 1);
      size_t start = 0;
      while (start <= text.size()) {
        size_t dot = text.find('.', start);
        std::string_view segment = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (start > 0 && segment == own) return;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
      }
    }
  }
  std::string where;
  for (const std::string& candidate : here) {
    if (candidate.empty()) continue;
    if (!where.empty()) where += ", ";
    where += candidate;
  }
  report(Severity::kError, "structure",
         "The extension " + definition.url + " is not allowed to be used at this point (this element is [" +
             where + "])");
}

namespace {

// The plan of a constraining StructureDefinition's base and its differential elements, or nulls
// when the base is unknown or there is no differential array.
std::pair<const StructurePlan*, const json::Value*> baseAndDifferential(const json::Value& definition,
                                                                       const PlanCache& plans) {
  auto base_url = json::getString(definition, "baseDefinition");
  if (!base_url) return {nullptr, nullptr};
  const StructurePlan* base = plans.byUrl(*base_url);
  if (!base || !base->root) return {nullptr, nullptr};
  const json::Value* differential = json::find(definition, "differential");
  const json::Value* elements = differential && differential->IsObject() ? json::find(*differential, "element") : nullptr;
  if (!elements || !elements->IsArray()) return {nullptr, nullptr};
  return {base, elements};
}

}  // namespace

void InstanceWalker::checkDifferentialFixedValues(const json::Value& definition) {
  // A constraining StructureDefinition cannot change a value its base fixes (fixed[x] narrows
  // the base's allowed values to one; a different one leaves none).
  const auto [base, elements] = baseAndDifferential(definition, plans_);
  if (base == nullptr) return;
  for (rapidjson::SizeType index = 0; index < elements->Size(); ++index) {
    const json::Value& element = (*elements)[index];
    if (!element.IsObject()) continue;
    auto id = json::getString(element, "id");
    if (!id) id = json::getString(element, "path");
    if (!id) continue;
    const ElementPlan* base_element = nullptr;
    for (const ElementPlan& candidate : base->elements) {
      if (candidate.id == *id) base_element = &candidate;
    }
    if (!base_element || !base_element->fixed) continue;
    for (auto member = element.MemberBegin(); member != element.MemberEnd(); ++member) {
      std::string_view name(member->name.GetString(), member->name.GetStringLength());
      if (name.size() <= 5 || name.compare(0, 5, "fixed") != 0) continue;
      if (matchesFixed(member->value, *base_element->fixed)) continue;
      std::string where = path_ + ".differential.element";
      appendIndex(where, index);
      reportAt(Severity::kError, "value", where + "." + std::string(name),
               "Value is '" + describeValue(member->value) + "' but is fixed to '" +
                   describeValue(*base_element->fixed) + "' in the base definition " + base->versionedUrl() +
                   ": a derived definition cannot change a fixed value");
    }
  }
}

void InstanceWalker::checkDifferentialPaths(const json::Value& definition) {
  // Each differential path names an element of the base: where the base's snapshot lists the
  // children of the parent path, the last step must be one of them, or a type-specific name of
  // one of its choice elements (value[x] -> valueQuantity).
  const auto [base, elements] = baseAndDifferential(definition, plans_);
  if (base == nullptr) return;
  for (rapidjson::SizeType index = 0; index < elements->Size(); ++index) {
    const json::Value& element = (*elements)[index];
    if (!element.IsObject()) continue;
    auto path = json::getString(element, "path");
    if (!path) continue;
    size_t dot = path->rfind('.');
    if (dot == std::string_view::npos) continue;
    std::string_view parent = path->substr(0, dot);
    std::string_view name = path->substr(dot + 1);
    bool parent_expanded = false;
    bool found = false;
    for (const ElementPlan& candidate : base->elements) {
      std::string_view candidate_path = candidate.path;
      if (candidate_path.size() <= parent.size() + 1 || candidate_path.compare(0, parent.size(), parent) != 0 ||
          candidate_path[parent.size()] != '.') {
        continue;
      }
      std::string_view rest = candidate_path.substr(parent.size() + 1);
      if (rest.find('.') != std::string_view::npos) continue;
      parent_expanded = true;
      if (rest == name) {
        found = true;
        break;
      }
      if (!candidate.choice || name.size() <= candidate.name.size() ||
          name.compare(0, candidate.name.size(), candidate.name) != 0) {
        continue;
      }
      std::string_view suffix = name.substr(candidate.name.size());
      for (const TypeRef& type : candidate.types) {
        if (type.code.size() == suffix.size() && !type.code.empty() &&
            std::toupper(static_cast<unsigned char>(type.code[0])) == suffix[0] &&
            type.code.compare(1, std::string::npos, suffix.substr(1)) == 0) {
          found = true;
        }
      }
      if (found) break;
    }
    if (!parent_expanded || found) continue;
    std::string where = path_ + ".differential.element";
    appendIndex(where, index);
    reportAt(Severity::kError, "structure", where + ".path",
             "The differential path '" + std::string(*path) + "' names no element of the base definition " +
                 base->versionedUrl());
  }
}

void InstanceWalker::checkDiscriminatorPaths(const json::Value& definition) {
  // The first step of a plain discriminator path ("code", "url", "system.value") must be a child
  // of the sliced element (its base children, or those of its single data type). Paths with
  // functions, $this or resolve() are left alone.
  const auto [base, elements] = baseAndDifferential(definition, plans_);
  if (base == nullptr) return;
  for (rapidjson::SizeType index = 0; index < elements->Size(); ++index) {
    const json::Value& element = (*elements)[index];
    if (!element.IsObject()) continue;
    const json::Value* slicing = json::find(element, "slicing");
    const json::Value* discriminators = slicing && slicing->IsObject() ? json::find(*slicing, "discriminator") : nullptr;
    if (!discriminators || !discriminators->IsArray()) continue;
    std::string path(json::getString(element, "path").value_or(""));
    if (path.empty()) continue;
    const ElementPlan* sliced = nullptr;
    for (const ElementPlan& candidate : base->elements) {
      if (candidate.path == path && candidate.slice_name.empty()) {
        sliced = &candidate;
        break;
      }
    }
    if (!sliced) continue;
    const std::vector<const ElementPlan*>* children = &sliced->children;
    if (children->empty()) {
      if (sliced->types.size() != 1) continue;
      const StructurePlan* type_plan = plans_.byType(sliced->types[0].code);
      if (!type_plan || !type_plan->root) continue;
      children = &type_plan->root->children;
    }
    if (children->empty()) continue;
    for (rapidjson::SizeType d = 0; d < discriminators->Size(); ++d) {
      const json::Value& discriminator = (*discriminators)[d];
      if (!discriminator.IsObject()) continue;
      std::string text(json::getString(discriminator, "path").value_or(""));
      if (text.empty()) continue;
      std::string_view first = std::string_view(text).substr(0, text.find('.'));
      bool plain = std::all_of(first.begin(), first.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      });
      if (!plain || first.empty()) continue;
      bool known = std::any_of(children->begin(), children->end(), [&](const ElementPlan* child) {
        return child->name == first || (child->choice && first.compare(0, child->name.size(), child->name) == 0);
      });
      if (known) continue;
      std::string where = path_ + ".differential.element";
      appendIndex(where, index);
      where += ".slicing.discriminator";
      appendIndex(where, d);
      reportAt(Severity::kError, "structure", std::move(where),
               "The discriminator path '" + text +
                   "' does not appear to be valid for the element that is being sliced '" + path + "'");
    }
  }
}

}  // namespace fhir::validator

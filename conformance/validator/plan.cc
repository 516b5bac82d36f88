// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/plan.h"

#include <algorithm>

#include <cctype>

#include "conformance/snapshot/snapshot.h"

namespace fhir::validator {

struct PlanSlot {
  std::string url;
  std::once_flag once;
  std::unique_ptr<StructurePlan> plan;
};

namespace {

constexpr std::string_view kCorePrefix = "http://hl7.org/fhir/StructureDefinition/";
constexpr std::string_view kFhirTypeExtension =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

std::string str(const json::Value& object, std::string_view key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

uint32_t parseMax(std::string_view text) {
  if (text.empty() || text == "*") return UINT32_MAX;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return UINT32_MAX;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value;
}

// The FHIR type name of an ElementDefinition.type entry (System.String with the fhir-type
// extension becomes that type, plain System types their FHIR primitive).
std::string typeCode(const json::Value& type) {
  std::string code = str(type, "code");
  if (const json::Value* extensions = json::find(type, "extension"); extensions && extensions->IsArray()) {
    for (const json::Value& extension : extensions->GetArray()) {
      if (json::getString(extension, "url") == kFhirTypeExtension) {
        if (auto value = json::getString(extension, "valueUrl")) return std::string(*value);
        if (auto value = json::getString(extension, "valueUri")) return std::string(*value);
      }
    }
  }
  constexpr std::string_view kSystem = "http://hl7.org/fhirpath/System.";
  if (code.compare(0, kSystem.size(), kSystem) == 0) {
    std::string system = code.substr(kSystem.size());
    if (system == "String") return "string";
    if (system == "Boolean") return "boolean";
    if (system == "Integer") return "integer";
    if (system == "Decimal") return "decimal";
    if (system == "Date") return "date";
    if (system == "DateTime") return "dateTime";
    if (system == "Time") return "time";
    return "string";
  }
  return code;
}

std::vector<std::string> stringArray(const json::Value& object, std::string_view key) {
  std::vector<std::string> out;
  if (const json::Value* array = json::find(object, key); array && array->IsArray()) {
    for (const json::Value& item : array->GetArray()) {
      if (json::isString(item)) out.emplace_back(json::stringView(item));
    }
  }
  return out;
}

Severity severityOf(std::string_view text) {
  if (text == "warning") return Severity::kWarning;
  if (text == "information") return Severity::kInformation;
  return Severity::kError;
}

// Parent id and whether the element is a slice of it ("A.b:s" is a slice of "A.b"; "A.b:s.c" is
// a child of "A.b:s").
std::pair<std::string_view, bool> parentOf(std::string_view id) {
  size_t dot = id.rfind('.');
  size_t colon = id.rfind(':');
  if (colon != std::string_view::npos && (dot == std::string_view::npos || colon > dot)) {
    return {id.substr(0, colon), true};
  }
  if (dot == std::string_view::npos) return {std::string_view(), false};
  return {id.substr(0, dot), false};
}

constexpr std::string_view kRegexExtension = "http://hl7.org/fhir/StructureDefinition/regex";

// The valueString of the regex extension on `holder` (an ElementDefinition or one of its types).
std::string regexExtension(const json::Value& holder) {
  const json::Value* extensions = json::find(holder, "extension");
  if (!extensions || !extensions->IsArray()) return {};
  for (const json::Value& extension : extensions->GetArray()) {
    if (!extension.IsObject() || json::getString(extension, "url") != kRegexExtension) continue;
    if (auto value = json::getString(extension, "valueString")) return std::string(*value);
  }
  return {};
}

// Published R4 constraint expressions with a known error, replaced by the corrected text (as the
// reference validator does). que-12: "more than one enableWhen" was written `> 2` in R4; R4B/R5
// correct it to `> 1`.
struct Erratum {
  std::string_view key;
  std::string_view published;
  std::string_view corrected;
};
constexpr Erratum kErrata[] = {
    {"que-12", "enableWhen.count() > 2 implies enableBehavior.exists()",
     "enableWhen.count() > 1 implies enableBehavior.exists()"},
};

void applyErrata(Constraint& constraint) {
  for (const Erratum& erratum : kErrata) {
    if (constraint.key == erratum.key && constraint.expression_text == erratum.published) {
      constraint.expression_text = std::string(erratum.corrected);
    }
  }
}

void compileElement(const json::Value& element, ElementPlan& plan, const PlanCache& cache) {
  plan.path = str(element, "path");
  plan.id = str(element, "id");
  if (plan.id.empty()) plan.id = plan.path;
  size_t dot = plan.path.rfind('.');
  plan.name = dot == std::string::npos ? plan.path : plan.path.substr(dot + 1);
  if (plan.name.size() > 3 && plan.name.compare(plan.name.size() - 3, 3, "[x]") == 0) {
    plan.name.resize(plan.name.size() - 3);
    plan.choice = true;
  }
  plan.slice_name = str(element, "sliceName");
  if (const json::Value* min = json::find(element, "min")) {
    if (auto value = json::numberAsInt64(*min); value && *value >= 0) plan.min = static_cast<uint32_t>(*value);
  }
  plan.max = parseMax(str(element, "max"));
  std::string base_max = plan.max == UINT32_MAX ? "*" : std::to_string(plan.max);
  if (const json::Value* base = json::find(element, "base"); base && base->IsObject()) {
    if (auto value = json::getString(*base, "max")) base_max = std::string(*value);
  }
  plan.is_array = base_max != "1" && base_max != "0";
  if (const json::Value* types = json::find(element, "type"); types && types->IsArray()) {
    for (const json::Value& type : types->GetArray()) {
      TypeRef ref;
      ref.code = typeCode(type);
      ref.profiles = stringArray(type, "profile");
      ref.target_profiles = stringArray(type, "targetProfile");
      ref.slot = cache.slotForType(ref.code);
      ref.regex = regexExtension(type);
      plan.types.push_back(std::move(ref));
    }
  }
  plan.content_reference = str(element, "contentReference");
  plan.regex = regexExtension(element);
  if (const json::Value* binding = json::find(element, "binding"); binding && binding->IsObject()) {
    Binding out;
    std::string strength = str(*binding, "strength");
    out.strength = strength == "required"     ? BindingStrength::kRequired
                   : strength == "extensible" ? BindingStrength::kExtensible
                   : strength == "preferred"  ? BindingStrength::kPreferred
                                              : BindingStrength::kExample;
    out.value_set = str(*binding, "valueSet");
    if (const json::Value* extensions = json::find(*binding, "extension"); extensions && extensions->IsArray()) {
      for (const json::Value& extension : extensions->GetArray()) {
        if (!extension.IsObject()) continue;
        auto url = json::getString(extension, "url");
        if (url != "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.binding.additional" &&
            url != "http://hl7.org/fhir/tools/StructureDefinition/additional-binding") {
          continue;
        }
        std::string purpose, value_set;
        if (const json::Value* parts = json::find(extension, "extension"); parts && parts->IsArray()) {
          for (const json::Value& part : parts->GetArray()) {
            if (!part.IsObject()) continue;
            auto name = json::getString(part, "url");
            if (name == "purpose") purpose = str(part, "valueCode");
            if (name == "valueSet") value_set = str(part, "valueCanonical");
          }
        }
        if (value_set.empty()) continue;
        Binding extra;
        if (purpose == "required" || purpose == "maximum") {
          extra.strength = BindingStrength::kRequired;
        } else if (purpose == "extensible" || purpose == "current") {
          extra.strength = BindingStrength::kExtensible;
        } else {
          continue;
        }
        extra.value_set = std::move(value_set);
        out.additional.push_back(std::move(extra));
      }
    }
    if (!out.value_set.empty() || !out.additional.empty()) plan.binding = std::move(out);
  }
  if (const json::Value* constraints = json::find(element, "constraint"); constraints && constraints->IsArray()) {
    for (const json::Value& constraint : constraints->GetArray()) {
      Constraint out;
      out.key = str(constraint, "key");
      out.severity = severityOf(str(constraint, "severity"));
      out.human = str(constraint, "human");
      out.expression_text = str(constraint, "expression");
      if (out.expression_text.empty()) continue;
      applyErrata(out);
      out.expression = cache.compileExpression(out.expression_text);
      plan.constraints.push_back(std::move(out));
    }
  }
  if (const json::Value* slicing = json::find(element, "slicing"); slicing && slicing->IsObject()) {
    Slicing out;
    std::string rules = str(*slicing, "rules");
    out.rules = rules == "closed" ? SlicingRules::kClosed
                : rules == "openAtEnd" ? SlicingRules::kOpenAtEnd
                                       : SlicingRules::kOpen;
    if (const json::Value* ordered = json::find(*slicing, "ordered"); ordered && ordered->IsBool()) {
      out.ordered = ordered->GetBool();
    }
    if (const json::Value* discriminators = json::find(*slicing, "discriminator");
        discriminators && discriminators->IsArray()) {
      for (const json::Value& discriminator : discriminators->GetArray()) {
        out.discriminators.push_back({str(discriminator, "type"), str(discriminator, "path")});
      }
    }
    plan.slicing = std::move(out);
  }
  for (auto member = element.MemberBegin(); member != element.MemberEnd(); ++member) {
    std::string_view name(member->name.GetString(), member->name.GetStringLength());
    if (name.size() > 5 && name.compare(0, 5, "fixed") == 0) plan.fixed = &member->value;
    if (name.size() > 7 && name.compare(0, 7, "pattern") == 0) plan.pattern = &member->value;
    if (name.size() > 8 && name.compare(0, 8, "minValue") == 0) plan.min_value = &member->value;
    if (name.size() > 8 && name.compare(0, 8, "maxValue") == 0) plan.max_value = &member->value;
  }
}

std::unique_ptr<StructurePlan> compilePlan(const json::Value& sd, const PlanCache& cache) {
  auto plan = std::make_unique<StructurePlan>();
  plan->definition = &sd;
  plan->url = str(sd, "url");
  plan->version = str(sd, "version");
  plan->name = str(sd, "name");
  plan->type = str(sd, "type");
  plan->kind = str(sd, "kind");
  plan->derivation = str(sd, "derivation");
  plan->base_definition = str(sd, "baseDefinition");
  if (const json::Value* abstract = json::find(sd, "abstract"); abstract && abstract->IsBool()) {
    plan->is_abstract = abstract->GetBool();
  }
  const json::Value* snapshot = json::find(sd, "snapshot");
  const json::Value* elements = snapshot && snapshot->IsObject() ? json::find(*snapshot, "element") : nullptr;
  if (!elements || !elements->IsArray() || elements->Empty()) {
    plan->error = "StructureDefinition " + plan->url + " has no snapshot";
    return plan;
  }
  std::unordered_map<std::string_view, ElementPlan*> by_id;
  std::unordered_map<std::string_view, ElementPlan*> by_path;  // first (unsliced) element per path
  for (const json::Value& element : elements->GetArray()) {
    if (!element.IsObject()) continue;
    ElementPlan& node = plan->elements.emplace_back();
    compileElement(element, node, cache);
    by_id.emplace(node.id, &node);
    by_path.emplace(node.path, &node);
    if (plan->elements.size() == 1) continue;
    auto [parent_id, is_slice] = parentOf(node.id);
    auto parent = by_id.find(parent_id);
    if (parent == by_id.end()) {
      auto [parent_path, unused] = parentOf(node.path);
      parent = by_path.find(parent_path);
      is_slice = false;
      if (parent == by_path.end()) continue;
    }
    if (is_slice) {
      parent->second->slices.push_back(&node);
    } else {
      node.index_in_parent = static_cast<uint32_t>(parent->second->children.size());
      parent->second->children.push_back(&node);
    }
  }
  plan->root = &plan->elements.front();
  for (ElementPlan& node : plan->elements) {
    if (node.content_reference.empty()) continue;
    std::string_view target = node.content_reference;
    size_t hash = target.find('#');
    if (hash != std::string_view::npos) target = target.substr(hash + 1);
    if (auto it = by_id.find(target); it != by_id.end()) {
      node.content_ref = it->second;
    } else if (auto by = by_path.find(target); by != by_path.end()) {
      node.content_ref = by->second;
    }
  }
  return plan;
}

}  // namespace

const ElementPlan* ElementPlan::child(std::string_view json_name, std::string_view& type) const {
  for (const ElementPlan* candidate : children) {
    if (!candidate->choice) {
      if (candidate->name == json_name) {
        type = candidate->singleType();
        return candidate;
      }
      continue;
    }
    const std::string& name = candidate->name;
    if (json_name.size() <= name.size() || json_name.compare(0, name.size(), name) != 0) continue;
    std::string_view suffix = json_name.substr(name.size());
    for (const TypeRef& ref : candidate->types) {
      const std::string& code = ref.code;
      if (code.size() != suffix.size() || code.empty()) continue;
      if (std::toupper(static_cast<unsigned char>(code[0])) == suffix[0] &&
          code.compare(1, std::string::npos, suffix.substr(1)) == 0) {
        type = code;
        return candidate;
      }
    }
  }
  return nullptr;
}

PlanCache::PlanCache(const definitions::Registry& registry) : registry_(registry) {
  // One slot per StructureDefinition: the keys naming the same resource share it; the slot
  // loads the resource by its longest (versioned) key.
  std::vector<std::pair<std::string, const void*>> keys = registry.structureDefinitionKeys();
  std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.first < b.first;
  });
  std::unordered_map<const void*, PlanSlot*> by_entry;
  for (auto& [key, entry] : keys) {
    PlanSlot*& slot = by_entry[entry];
    if (!slot) {
      auto owned = std::make_unique<PlanSlot>();
      owned->url = key;
      slot = owned.get();
      by_url_.emplace(key, std::move(owned));
    }
    if (key.find('|') == std::string::npos && key.compare(0, kCorePrefix.size(), kCorePrefix) == 0) {
      by_type_.emplace(key.substr(kCorePrefix.size()), slot);
    }
    by_key_.emplace(std::move(key), slot);
  }
}

PlanCache::~PlanCache() = default;

const StructurePlan* PlanCache::get(PlanSlot* slot) const {
  if (!slot) return nullptr;
  std::call_once(slot->once, [&] {
    const json::Value* sd = registry_.structureDefinition(slot->url);
    if (!sd) return;
    const json::Value* snapshot = json::find(*sd, "snapshot");
    if (snapshot && snapshot->IsObject()) {
      slot->plan = compilePlan(*sd, *this);
      scopeToPackage(*slot->plan, slot->url);
      return;
    }
    // Differential only: generate the snapshot from the base, itself generated if need be.
    const int package = registry_.packageOf(definitions::ResourceKind::kStructureDefinition, slot->url);
    snapshot::Resolver resolve = [this, package](std::string_view canonical) -> const json::Value* {
      const StructurePlan* base =
          byUrl(registry_.resolveIn(definitions::ResourceKind::kStructureDefinition, canonical, package));
      if (!base) return nullptr;
      return base->generated ? base->generated.get() : base->definition;
    };
    auto generated = snapshot::generateSnapshot(*sd, resolve);
    if (!generated.ok()) {
      slot->plan = std::make_unique<StructurePlan>();
      slot->plan->definition = sd;
      slot->plan->url = slot->url;
      slot->plan->error = "snapshot generation failed: " + generated.message();
      slot->plan->package = registry_.packageOf(definitions::ResourceKind::kStructureDefinition, slot->url);
      return;
    }
    auto document = std::make_unique<json::Document>(std::move(*generated));
    slot->plan = compilePlan(*document, *this);
    slot->plan->generated = std::move(document);
    scopeToPackage(*slot->plan, slot->url);
  });
  return slot->plan.get();
}

void PlanCache::scopeToPackage(StructurePlan& plan, const std::string& key) const {
  plan.package = registry_.packageOf(definitions::ResourceKind::kStructureDefinition, key);
  if (plan.package < 0) return;
  // Unversioned value sets of the package's bindings are the package's own versions.
  for (ElementPlan& element : plan.elements) {
    if (!element.binding) continue;
    element.binding->value_set = registry_.resolveIn(definitions::ResourceKind::kValueSet,
                                                     element.binding->value_set, plan.package);
    for (Binding& extra : element.binding->additional) {
      extra.value_set = registry_.resolveIn(definitions::ResourceKind::kValueSet, extra.value_set, plan.package);
    }
  }
}

const StructurePlan* PlanCache::byUrl(std::string_view canonical) const {
  auto it = by_key_.find(canonical);
  if (it == by_key_.end()) it = by_key_.find(definitions::canonicalUrl(canonical));
  return it == by_key_.end() ? nullptr : get(it->second);
}

const StructurePlan* PlanCache::byUrl(std::string_view canonical, const StructurePlan* from) const {
  if (!from || from->package < 0) return byUrl(canonical);
  return byUrl(registry_.resolveIn(definitions::ResourceKind::kStructureDefinition, canonical, from->package));
}

PlanSlot* PlanCache::slotForType(std::string_view type) const {
  auto it = by_type_.find(type);
  return it == by_type_.end() ? nullptr : it->second;
}

void PlanCache::preload(std::string_view type_or_url) const {
  const StructurePlan* first = byType(type_or_url);
  if (!first) first = byUrl(type_or_url);
  if (!first) return;
  std::vector<const StructurePlan*> pending{first};
  std::unordered_map<const StructurePlan*, bool> seen{{first, true}};
  while (!pending.empty()) {
    const StructurePlan* plan = pending.back();
    pending.pop_back();
    for (const ElementPlan& element : plan->elements) {
      for (const TypeRef& type : element.types) {
        const StructurePlan* used = get(type.slot);
        if (used && seen.emplace(used, true).second) pending.push_back(used);
      }
    }
  }
}

fhirpath::ExpressionPtr PlanCache::compileExpression(const std::string& text) const {
  std::lock_guard<std::mutex> lock(expressions_mutex_);
  auto [it, inserted] = expressions_.try_emplace(text);
  if (inserted) {
    auto compiled = fhirpath::compile(text);
    if (compiled.ok()) it->second = *compiled;
  }
  return it->second;
}

const StructurePlan* PlanCache::byType(std::string_view type) const { return get(slotForType(type)); }

}  // namespace fhir::validator

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validation plans: a StructureDefinition snapshot compiled once into a tree of ElementPlans
// (children by JSON name, resolved content references, types, bindings, fixed/pattern values,
// slicing and compiled invariants). Plans are built lazily per StructureDefinition on first use
// under a std::once_flag and never change afterwards, so validating threads read them freely.

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conformance/definitions/registry.h"
#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"

namespace fhir::validator {

struct StructurePlan;
class PlanCache;

struct PlanSlot;  // lazily compiled plan of one StructureDefinition

struct TypeRef {
  std::string code;  // FHIR type name: "string", "HumanName", "Reference", "Resource"
  std::vector<std::string> profiles;         // type.profile
  std::vector<std::string> target_profiles;  // type.targetProfile
  PlanSlot* slot = nullptr;                  // the type's core plan (null for unknown types)
  std::string regex;  // the type's http://hl7.org/fhir/StructureDefinition/regex extension
};

enum class BindingStrength { kRequired, kExtensible, kPreferred, kExample };

struct Binding {
  BindingStrength strength = BindingStrength::kExample;
  std::string value_set;  // canonical, may carry |version
  // Additional bindings (R5 ElementDefinition.binding.additional, in R4 through the cross-version
  // extension): purpose required/maximum as kRequired, extensible/current as kExtensible; the
  // other purposes (preferred, ui, starter, component, candidate, minimum) judge nothing.
  std::vector<Binding> additional;
};

struct Constraint {
  std::string key;
  Severity severity = Severity::kError;
  std::string human;
  std::string expression_text;
  fhirpath::ExpressionPtr expression;  // null when the expression does not compile
};

enum class SlicingRules { kOpen, kClosed, kOpenAtEnd };

struct Discriminator {
  std::string type;  // value, pattern, type, profile, exists
  std::string path;  // FHIRPath-like path, "$this" for the element itself
};

struct Slicing {
  std::vector<Discriminator> discriminators;
  SlicingRules rules = SlicingRules::kOpen;
  bool ordered = false;
};

struct ElementPlan {
  std::string id;    // element id ("Observation.component:systolic.code")
  std::string path;  // element path ("Observation.component.code")
  std::string name;  // JSON name without [x] ("value" for value[x])
  bool choice = false;
  bool is_array = false;  // JSON form: array when the base max is not 1
  uint32_t min = 0;
  uint32_t max = UINT32_MAX;  // UINT32_MAX for "*"
  std::vector<TypeRef> types;
  std::string content_reference;  // "#Questionnaire.item" before resolution
  const ElementPlan* content_ref = nullptr;
  std::vector<const ElementPlan*> children;
  const json::Value* fixed = nullptr;  // fixed[x] value in the definition
  const json::Value* pattern = nullptr;
  const json::Value* min_value = nullptr;  // minValue[x]
  const json::Value* max_value = nullptr;  // maxValue[x]
  std::optional<Binding> binding;
  std::vector<Constraint> constraints;
  std::optional<Slicing> slicing;
  std::vector<const ElementPlan*> slices;  // slices of this element, in definition order
  std::string slice_name;                  // set on a slice
  std::vector<std::string> fixed_types;    // types allowed when constrained for a slice
  // The element's http://hl7.org/fhir/StructureDefinition/regex extension: a whole-value pattern
  // (FHIR dialect) for its primitive values; a type's own regex (TypeRef::regex) applies too.
  std::string regex;
  uint32_t index_in_parent = 0;  // position in the parent's `children`

  // Child by JSON member name. Sets `type` to the concrete type for a choice (valueQuantity ->
  // "Quantity"). Returns nullptr when unknown.
  const ElementPlan* child(std::string_view json_name, std::string_view& type) const;
  // The type of this element for a single-typed element, else empty.
  std::string_view singleType() const {
    return types.size() == 1 ? std::string_view(types[0].code) : std::string_view();
  }
};

struct StructurePlan {
  std::string url;
  std::string version;
  std::string name;
  std::string type;        // "Patient"
  std::string kind;        // "resource", "complex-type", "primitive-type", "logical"
  std::string derivation;  // "specialization" or "constraint"
  std::string base_definition;
  bool is_abstract = false;
  std::deque<ElementPlan> elements;  // stable addresses
  const ElementPlan* root = nullptr;
  const json::Value* definition = nullptr;  // owned by the registry (or by generated_)
  std::unique_ptr<json::Document> generated;  // snapshot generated for differential-only SDs
  std::string error;  // why the plan is unusable (no snapshot, ...); root is null then
  int package = -1;   // the extra package that defined it (Registry::packages()); -1: core

  // "url|version" for messages.
  std::string versionedUrl() const { return version.empty() ? url : url + "|" + version; }
};

// All plans of one validator, keyed by StructureDefinition URL.
class PlanCache {
 public:
  explicit PlanCache(const definitions::Registry& registry);
  ~PlanCache();
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;

  // The plan for a canonical URL (with or without |version), compiled on first use; nullptr when
  // no such StructureDefinition is known.
  const StructurePlan* byUrl(std::string_view canonical) const;
  // The same, for a canonical written in `from`: an unversioned URL resolves to the version that
  // from's package (or a package it depends on) defines, so that packages holding the same URLs
  // in different versions (US Core 3.1 and 6.1) each see their own.
  const StructurePlan* byUrl(std::string_view canonical, const StructurePlan* from) const;
  // The core plan for a type name ("Patient", "HumanName", "string").
  const StructurePlan* byType(std::string_view type) const;
  PlanSlot* slotForType(std::string_view type) const;
  const StructurePlan* get(PlanSlot* slot) const;

  const definitions::Registry& registry() const { return registry_; }

  // Compiles the plan for `type_or_url` and, transitively, the plans of the types it uses.
  void preload(std::string_view type_or_url) const;

  // Compiles a FHIRPath expression once per distinct text (constraints repeat across types);
  // null when the text does not compile. Used while compiling plans.
  fhirpath::ExpressionPtr compileExpression(const std::string& text) const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  using SlotMap = std::unordered_map<std::string, std::unique_ptr<PlanSlot>, StringHash, std::equal_to<>>;

  // Records the package of a compiled plan and scopes its binding value sets to it.
  void scopeToPackage(StructurePlan& plan, const std::string& key) const;

  const definitions::Registry& registry_;
  SlotMap by_url_;  // one slot per StructureDefinition, by its most specific key; immutable
  // every key (url, url|version) -> slot; immutable after construction
  std::unordered_map<std::string, PlanSlot*, StringHash, std::equal_to<>> by_key_;
  std::unordered_map<std::string, PlanSlot*, StringHash, std::equal_to<>> by_type_;  // core type names
  mutable std::mutex expressions_mutex_;
  mutable std::unordered_map<std::string, fhirpath::ExpressionPtr> expressions_;
};

}  // namespace fhir::validator

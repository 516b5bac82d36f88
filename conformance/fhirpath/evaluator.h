// SPDX-License-Identifier: Apache-2.0
#pragma once

// The tree-walking evaluator (internal). One Evaluator lives for one evaluate() call; it holds the
// iteration scope ($this, $index, $total) and reads the shared Expression/Model without mutation.

#include <memory>
#include <string>
#include <vector>

#include "conformance/fhirpath/internal.h"

namespace fhir::fhirpath {

// Thrown inside the evaluator only; evaluate() turns it into an Error.
struct EvalError {
  std::string message;
};

inline bool isNumeric(Item::Kind kind) {
  return kind == Item::Kind::kInteger || kind == Item::Kind::kDecimal;
}
inline bool isDateKind(Item::Kind kind) {
  return kind == Item::Kind::kDate || kind == Item::Kind::kDateTime || kind == Item::Kind::kTime;
}

// FHIRPath R4 Integer is 32-bit: results outside it are an evaluation error ("Integer overflow
// in <what>"), never a wrapped value.
int64_t checkedInteger(__int128 value, const char* what);
// A Decimal result, or an evaluation error ("Decimal overflow in <what>") when it did not fit.
Decimal checkedDecimal(const std::optional<Decimal>& value, const char* what);

// A lightweight view of a primitive value: string data points into the JSON or the Item.
struct Val {
  Item::Kind kind = Item::Kind::kNode;  // kNode: not a primitive value (complex or value-less)
  bool boolean = false;
  int64_t integer = 0;
  Decimal decimal;        // Decimal and Quantity values; Integer values too (scale 0)
  std::string_view text;  // string, date/time text, quantity unit
};

class Evaluator {
 public:
  Evaluator(const EvaluationContext& context, const Item& focus);

  Collection run(const Node& root);

  // ---- shared with functions.cc ----
  Collection eval(const Node& node, const Collection& focus);
  Collection evalArg(const Node& node);  // argument evaluated against the current $this
  // Like eval()/evalArg(), but literals come back without a copy; `storage` holds other results.
  const Collection& evalShared(const Node& node, const Collection& focus, Collection& storage);
  const Collection& evalArgShared(const Node& node, Collection& storage);
  Collection evalWithThis(const Node& node, const Item& item, int64_t index);
  // A node in a boolean context (singleton evaluation); boolean operators and equality are
  // computed without building result collections.
  std::optional<bool> evalBool(const Node& node, const Collection& focus);
  std::optional<bool> evalBoolWithThis(const Node& node, const Item& item, int64_t index);

  Val view(const Item& item) const;
  Item toSystem(const Item& item) const;  // node primitive -> computed item (else unchanged)
  const TypeNode* typeNodeOf(const Item& item) const;
  const TypeNode* complexTypeNode(std::string_view type) const;  // null for primitives
  const TypeNode* childTypeNode(const ChildDef& def) const;      // cached per ChildDef
  // `type` must be an element of def.types.
  const TypeNode* choiceTypeNode(const ChildDef& def, const std::string& type) const;
  const TypeNode* extensionTypeNode() const;
  std::string_view fhirTypeOf(const Item& item) const;  // "" when unknown / computed

  // `name_hash` is TypeNode::hashName(name) when the caller has it, else 0. `child_hint` is
  // where the definition's scan for `name` starts (TypeNode::child()).
  void navigate(const Item& parent, std::string_view name, Collection& out,
                uint32_t name_hash = 0, size_t* child_hint = nullptr) const;
  void allChildren(const Item& parent, Collection& out) const;

  // Comparisons: equality returns nullopt for "unknown" (empty result).
  std::optional<bool> itemsEqual(const Item& a, const Item& b) const;
  bool itemsEquivalent(const Item& a, const Item& b) const;
  std::optional<bool> collectionsEqual(const Collection& a, const Collection& b) const;
  bool collectionsEquivalent(const Collection& a, const Collection& b) const;
  std::optional<int> compare(const Item& a, const Item& b) const;  // throws on type mismatch

  // Singleton evaluation of collections (spec 4.4/5.1): nullopt for empty.
  std::optional<bool> toBoolean(const Collection& collection) const;
  const Item* singleton(const Collection& collection, const char* what) const;
  std::optional<std::string> singletonString(const Collection& collection, const char* what) const;
  std::optional<int64_t> singletonInteger(const Collection& collection, const char* what) const;

  // `is` accepts subtypes; as()/ofType() match FHIR primitive types exactly (code is not a
  // string for them), as the official suite expects.
  bool isType(const Item& item, std::string_view ns, std::string_view name,
              bool exact_primitive = false) const;
  void checkTypeName(std::string_view ns, std::string_view name) const;

  Collection callFunction(const Node& node, const Collection& focus);
  // The function library by section of the specification, one file each
  // (functions_<section>.cc); callFunction() dispatches through a table (functions.cc).
  Collection existenceFunction(const Node& node, const Collection& focus);
  Collection filteringFunction(const Node& node, const Collection& focus);
  Collection subsettingFunction(const Node& node, const Collection& focus);
  Collection combiningFunction(const Node& node, const Collection& focus);
  Collection conversionFunction(const Node& node, const Collection& focus);
  Collection stringFunction(const Node& node, const Collection& focus);
  Collection mathFunction(const Node& node, const Collection& focus);
  Collection navigationFunction(const Node& node, const Collection& focus);
  Collection utilityFunction(const Node& node, const Collection& focus);
  Collection typeFunction(const Node& node, const Collection& focus);
  Collection fhirFunction(const Node& node, const Collection& focus);
  // subsumes(), subsumedBy() and the %terminologies service calls (functions_terminology.cc).
  Collection terminologyFunction(const Node& node, const Collection& focus);
  // Semantic checks (EvaluationContext::check_ordered_functions / strict); throw EvalError.
  void checkOrdered(const Node& source, const char* what) const;
  void checkMemberOfCastType(const Node& member) const;

  const EvaluationContext& context() const { return context_; }
  const Model* model() const { return model_; }
  const Item& resourceItem() const;  // %resource (an empty Item when there is none)
  const Item& rootItem() const;      // %rootResource
  const Item& contextItem() const { return context_item_; }

 private:
  class ThisScope;
  Collection binary(const Node& node, const Collection& focus);
  Collection arithmetic(Op op, const Item& a, const Item& b) const;
  Collection variable(const std::string& name) const;

  const EvaluationContext& context_;
  const Model* model_;
  Item context_item_;
  Item itemFor(const json::Value* value) const;
  const json::Value* resource_value_ = nullptr;
  const json::Value* root_value_ = nullptr;
  mutable std::optional<Item> resource_item_;
  mutable std::optional<Item> root_item_;
  const Item* this_ = nullptr;
  int64_t index_ = 0;
  const Collection* total_ = nullptr;
  int depth_ = 0;
  size_t this_depth_ = 0;
  // Single-item focus collections: [0] for the root, then one per $this nesting level, reused
  // across iterations; deeper levels than kInlineFocus use focus_overflow_.
  static constexpr size_t kInlineFocus = 4;
  Collection focus_inline_[kInlineFocus];
  std::vector<std::unique_ptr<Collection>> focus_overflow_;
  Collection& focusAt(size_t level);

 public:
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;
};

Item makeResourceItem(const json::Value* value, const Model* model);

}  // namespace fhir::fhirpath

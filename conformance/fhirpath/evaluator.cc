// SPDX-License-Identifier: Apache-2.0
// Evaluation core: navigation with primitive extensions and choice types, operators, equality.

#include "conformance/fhirpath/evaluator.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace fhir::fhirpath {
namespace {

constexpr int kMaxDepth = 400;

bool isUpper(char c) { return c >= 'A' && c <= 'Z'; }

bool startsUpper(std::string_view name) { return !name.empty() && isUpper(name[0]); }





// The text of a number kept by the parser (json.h tags it with a leading NUL byte), read in
// place; empty for RapidJSON-native numbers.
std::string_view taggedNumberText(const json::Value& value) {
  if (!value.IsString() || value.GetStringLength() < 2 || value.GetString()[0] != '\0') return {};
  return {value.GetString() + 1, value.GetStringLength() - 1};
}

// A JSON number as an exact decimal with its written scale, without copying its text.
Decimal readDecimal(const json::Value& number) {
  std::string_view text = taggedNumberText(number);
  std::optional<Decimal> value = text.empty() ? Decimal::parse(json::numberText(number))
                                              : Decimal::parse(text);
  if (!value) {
    throw EvalError{"the number " + json::numberText(number) +
                    " is outside the range of FHIRPath Decimal"};
  }
  return *value;
}

// An integer JSON number (no fraction or exponent, in int64 range).
std::optional<int64_t> readInteger(const json::Value& number) {
  std::string_view text = taggedNumberText(number);
  if (text.empty()) return json::numberAsInt64(number);
  if (text.find_first_of(".eE") != std::string_view::npos) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

namespace {

// The type of the last resource this thread typed, per model: evaluate() on a resource looks it
// up on every call, and a thread mostly sees resources of one type in a row.
struct LastResourceType {
  uint64_t model_id = 0;  // Model::Impl::id; 0: empty
  char name[32];
  size_t size = 0;
  const TypeNode* node = nullptr;
};
thread_local LastResourceType t_last_resource_type;

const TypeNode* resourceTypeNode(const Model& model, std::string_view type) {
  LastResourceType& last = t_last_resource_type;
  uint64_t model_id = model.impl().id;
  if (last.model_id == model_id && last.size == type.size() &&
      std::memcmp(last.name, type.data(), type.size()) == 0) {
    return last.node;
  }
  const TypeNode* node = model.type(type);
  if (node != nullptr && type.size() <= sizeof last.name) {
    last.model_id = model_id;
    std::memcpy(last.name, type.data(), type.size());
    last.size = type.size();
    last.node = node;
  }
  return node;
}

}  // namespace

Item makeResourceItem(const json::Value* value, const Model* model) {
  std::string_view type;
  const TypeNode* node = nullptr;
  if (value != nullptr && value->IsObject()) {
    if (auto resource_type = json::getString(*value, "resourceType")) {
      type = *resource_type;
      if (model != nullptr) {
        node = resourceTypeNode(*model, type);
        if (node != nullptr) type = node->name;
      }
    }
  }
  return Item::node(value, type, nullptr, node);
}

Evaluator::Evaluator(const EvaluationContext& context, const Item& focus)
    : context_(context), model_(context.model.get()), context_item_(focus) {
  resource_value_ = context.resource;
  if (resource_value_ == nullptr && focus.isNode() && focus.value() != nullptr &&
      focus.value()->IsObject() && !focus.typeName().empty() &&
      (focus.typeNode() == nullptr || focus.typeNode()->resource)) {
    // A focus typed by a resource definition is a resource (makeResourceItem read its
    // resourceType); an untyped one is checked.
    if ((focus.typeNode() != nullptr && focus.typeNode()->resource) ||
        json::find(*focus.value(), "resourceType") != nullptr) {
      resource_value_ = focus.value();
    }
  }
  root_value_ = context.root_resource != nullptr ? context.root_resource : resource_value_;
}

// %resource and %rootResource items are made on first use: most expressions never ask.
const Item& Evaluator::resourceItem() const {
  if (!resource_item_) resource_item_ = itemFor(resource_value_);
  return *resource_item_;
}

const Item& Evaluator::rootItem() const {
  if (!root_item_) root_item_ = root_value_ == resource_value_ ? resourceItem() : itemFor(root_value_);
  return *root_item_;
}

Item Evaluator::itemFor(const json::Value* value) const {
  if (value == nullptr) return Item();
  // Reuse the focus (and its type lookup) when it is the resource itself.
  if (context_item_.isNode() && context_item_.value() == value && !context_item_.typeName().empty()) {
    return context_item_;
  }
  return makeResourceItem(value, model_);
}

Collection& Evaluator::focusAt(size_t level) {
  if (level < kInlineFocus) return focus_inline_[level];
  size_t overflow = level - kInlineFocus;
  while (focus_overflow_.size() <= overflow) focus_overflow_.push_back(std::make_unique<Collection>());
  return *focus_overflow_[overflow];
}

Evaluator::~Evaluator() = default;

Collection Evaluator::run(const Node& root) {
  Collection& focus = focusAt(0);
  focus.assign(1, context_item_);
  this_depth_ = 1;
  this_ = &focus[0];
  index_ = 0;
  return eval(root, focus);
}

Collection Evaluator::evalArg(const Node& node) {
  Collection focus;
  if (this_ != nullptr) focus.push_back(*this_);
  return eval(node, focus);
}

const Collection& Evaluator::evalShared(const Node& node, const Collection& focus,
                                        Collection& storage) {
  if (node.op == Op::kLiteral) return node.literal_collection;
  storage = eval(node, focus);
  return storage;
}

const Collection& Evaluator::evalArgShared(const Node& node, Collection& storage) {
  if (node.op == Op::kLiteral) return node.literal_collection;
  storage = evalArg(node);
  return storage;
}

// Makes `item` the $this (and `index` the $index) of a nested evaluation, restoring the outer
// scope on exit. One single-item focus collection per nesting level is reused across iterations.
class Evaluator::ThisScope {
 public:
  ThisScope(Evaluator& self, const Item& item, int64_t index)
      : self_(self), saved_this_(self.this_), saved_index_(self.index_) {
    focus_ = &self.focusAt(self.this_depth_++);
    focus_->assign(1, item);
    self.this_ = &(*focus_)[0];
    self.index_ = index;
  }
  ~ThisScope() {
    --self_.this_depth_;
    self_.this_ = saved_this_;
    self_.index_ = saved_index_;
  }
  ThisScope(const ThisScope&) = delete;
  ThisScope& operator=(const ThisScope&) = delete;
  const Collection& focus() const { return *focus_; }

 private:
  Evaluator& self_;
  const Item* saved_this_;
  int64_t saved_index_;
  Collection* focus_;
};

Collection Evaluator::evalWithThis(const Node& node, const Item& item, int64_t index) {
  ThisScope scope(*this, item, index);
  return eval(node, scope.focus());
}

std::optional<bool> Evaluator::evalBoolWithThis(const Node& node, const Item& item, int64_t index) {
  ThisScope scope(*this, item, index);
  return evalBool(node, scope.focus());
}

// ---- typing ---------------------------------------------------------------------------------

const TypeNode* Evaluator::complexTypeNode(std::string_view type) const {
  // Primitive types (lower-case names) stay unresolved: their definitions are only needed for
  // strict checks, and loading them is not free.
  if (model_ == nullptr || type.empty() || !isUpper(type[0])) {
    return nullptr;
  }
  return model_->type(type);
}

const TypeNode* Evaluator::choiceTypeNode(const ChildDef& def, const std::string& type) const {
  size_t index = static_cast<size_t>(&type - def.types.data());
  if (index >= def.resolved_types.size()) return complexTypeNode(type);
  std::atomic_ref<const TypeNode*> cache(def.resolved_types[index]);
  const TypeNode* node = cache.load(std::memory_order_acquire);
  if (node == nullptr) {
    node = complexTypeNode(type);
    if (node != nullptr) cache.store(node, std::memory_order_release);
  }
  return node;
}

const TypeNode* Evaluator::extensionTypeNode() const {
  if (model_ == nullptr) return nullptr;
  std::atomic_ref<const TypeNode*> cache(model_->impl().extension_type);
  const TypeNode* node = cache.load(std::memory_order_acquire);
  if (node == nullptr) {
    node = model_->type("Extension");
    if (node != nullptr) cache.store(node, std::memory_order_release);
  }
  return node;
}

const TypeNode* Evaluator::childTypeNode(const ChildDef& def) const {
  if (def.inline_node != nullptr) return def.inline_node;
  if (def.types.size() != 1) return nullptr;
  std::atomic_ref<const TypeNode*> cache(def.resolved);
  const TypeNode* node = cache.load(std::memory_order_acquire);
  if (node == nullptr) {
    node = complexTypeNode(def.types[0]);
    if (node != nullptr) cache.store(node, std::memory_order_release);
  }
  return node;
}

const TypeNode* Evaluator::typeNodeOf(const Item& item) const {
  if (!item.isNode()) return nullptr;
  if (item.typeNode() != nullptr) return item.typeNode();
  if (model_ == nullptr) return nullptr;
  std::string_view type = item.typeName();
  if (type.empty()) return nullptr;
  return model_->type(type);
}

std::string_view Evaluator::fhirTypeOf(const Item& item) const {
  if (!item.isNode()) return {};
  return item.typeName();
}

Val Evaluator::view(const Item& item) const {
  Val val;
  switch (item.kind()) {
    case Item::Kind::kNode: {
      const json::Value* value = item.value();
      if (value == nullptr) return val;
      std::string_view type = item.typeName();
      if (value->IsObject()) {
        if (type == "Quantity" || type == "Age" || type == "Duration" || type == "Distance" ||
            type == "Count" || type == "SimpleQuantity" || type == "MoneyQuantity") {
          const json::Value* number = json::find(*value, "value");
          if (number == nullptr || !json::isNumber(*number)) return val;
          val.kind = Item::Kind::kQuantity;
          val.decimal = readDecimal(*number);
          auto code = json::getString(*value, "code");
          auto system = json::getString(*value, "system");
          if (code && (!system || *system == "http://unitsofmeasure.org")) {
            val.text = *code;
          } else if (auto unit = json::getString(*value, "unit")) {
            val.text = *unit;
          } else {
            val.text = "1";
          }
        }
        return val;
      }
      if (value->IsBool()) {
        val.kind = Item::Kind::kBoolean;
        val.boolean = value->GetBool();
        return val;
      }
      if (json::isNumber(*value)) {
        bool known = false;
        Item::Kind kind = primitiveKindOf(type, &known);
        std::optional<int64_t> integer;
        if (!known || kind == Item::Kind::kInteger) integer = readInteger(*value);
        if ((known && kind == Item::Kind::kInteger) || (!known && integer)) {
          val.kind = Item::Kind::kInteger;
          val.integer = integer.value_or(0);
          val.decimal = Decimal::ofInteger(val.integer);
        } else {
          val.kind = Item::Kind::kDecimal;
          val.decimal = readDecimal(*value);
        }
        return val;
      }
      if (json::isString(*value)) {
        bool known = false;
        Item::Kind kind = primitiveKindOf(type, &known);
        val.kind = known && isDateKind(kind) ? kind : Item::Kind::kString;
        val.text = json::stringView(*value);
        if (val.kind == Item::Kind::kDateTime && val.text.find('T') == std::string_view::npos) {
          // A dateTime element holding only a date compares as a date-precision dateTime.
          val.kind = Item::Kind::kDateTime;
        }
      }
      return val;
    }
    case Item::Kind::kBoolean:
      val.kind = item.kind();
      val.boolean = item.booleanValue();
      return val;
    case Item::Kind::kInteger:
      val.kind = item.kind();
      val.integer = item.integerValue();
      val.decimal = Decimal::ofInteger(val.integer);
      return val;
    case Item::Kind::kDecimal:
      val.kind = item.kind();
      val.decimal = item.decimalValue();
      return val;
    case Item::Kind::kQuantity:
      val.kind = item.kind();
      val.decimal = item.decimalValue();
      val.text = item.text();
      return val;
    default:
      val.kind = item.kind();
      val.text = item.text();
      return val;
  }
}

Item Evaluator::toSystem(const Item& item) const {
  if (!item.isNode()) return item;
  Val val = view(item);
  switch (val.kind) {
    case Item::Kind::kNode: return item;
    case Item::Kind::kBoolean: return Item::boolean(val.boolean);
    case Item::Kind::kInteger: return Item::integer(val.integer);
    case Item::Kind::kDecimal: return Item::decimal(val.decimal);
    case Item::Kind::kString: return Item::string(std::string(val.text));
    case Item::Kind::kDate: return Item::date(std::string(val.text));
    case Item::Kind::kDateTime: return Item::dateTime(std::string(val.text));
    case Item::Kind::kTime: return Item::time(std::string(val.text));
    case Item::Kind::kQuantity:
      return Item::quantity(Quantity{val.decimal, std::string(val.text)});
  }
  return item;
}

// ---- navigation -----------------------------------------------------------------------------

namespace {

struct MemberPair {
  const json::Value* value = nullptr;
  const json::Value* extension = nullptr;  // the `_key` partner
};

// One pass over the object finds `key` and `_key` (RapidJSON lookups are linear anyway).
MemberPair findPair(const json::Value& object, std::string_view key) {
  MemberPair pair;
  for (const auto& member : object.GetObject()) {
    size_t length = member.name.GetStringLength();
    const char* name = member.name.GetString();
    if (length == key.size()) {
      if (sameBytes(name, key.data(), length)) pair.value = &member.value;
    } else if (length == key.size() + 1 && name[0] == '_' &&
               sameBytes(name + 1, key.data(), key.size())) {
      pair.extension = &member.value;
    }
  }
  return pair;
}

// Appends value/extension pairs (arrays aligned by index) typed `type`.
void appendPair(MemberPair pair, std::string_view type, const TypeNode* type_node,
                const Model* model, Collection& out) {
  const json::Value* value = pair.value;
  const json::Value* extension = pair.extension;
  if (value == nullptr && extension == nullptr) return;
  bool resource_typed = type == "Resource" || type == "DomainResource";
  auto emit = [&](const json::Value* v, const json::Value* e) {
    if (v != nullptr && v->IsNull()) v = nullptr;
    if (e != nullptr && e->IsNull()) e = nullptr;
    if (v == nullptr && e == nullptr) return;
    if (resource_typed && v != nullptr) {
      out.push_back(makeResourceItem(v, model));
      return;
    }
    Item::appendNode(out, v, type, e, type_node);
  };
  bool value_array = value != nullptr && value->IsArray();
  bool ext_array = extension != nullptr && extension->IsArray();
  if (value_array || ext_array) {
    rapidjson::SizeType values = value_array ? value->Size() : 0;
    rapidjson::SizeType extensions = ext_array ? extension->Size() : 0;
    rapidjson::SizeType count = std::max(values, extensions);
    if (out.capacity() < out.size() + count) {
      out.reserve(std::max<size_t>(out.size() + count, 2 * out.capacity()));
    }
    for (rapidjson::SizeType i = 0; i < count; ++i) {
      emit(i < values ? &(*value)[i] : nullptr, i < extensions ? &(*extension)[i] : nullptr);
    }
    return;
  }
  emit(value, extension);
}

void appendMember(const json::Value& object, std::string_view key, std::string_view type,
                  const TypeNode* type_node, const Model* model, Collection& out) {
  appendPair(findPair(object, key), type, type_node, model, out);
}

}  // namespace

void Evaluator::navigate(const Item& parent, std::string_view name, Collection& out,
                         uint32_t name_hash, size_t* child_hint) const {
  if (!parent.isNode()) {
    // A computed quantity answers like a FHIR Quantity.
    if (parent.kind() == Item::Kind::kQuantity) {
      if (name == "value") out.push_back(Item::decimal(parent.decimalValue()));
      if (name == "unit" || name == "code") out.push_back(Item::string(parent.text()));
      return;
    }
    // type() results answer name/namespace.
    if (parent.kind() == Item::Kind::kString && parent.typeName() == "TypeInfo") {
      std::string_view full = parent.text();
      size_t dot = full.find('.');
      if (name == "namespace") out.push_back(Item::string(std::string(full.substr(0, dot))));
      if (name == "name") out.push_back(Item::string(std::string(full.substr(dot + 1))));
    }
    return;
  }
  const json::Value* value = parent.value();
  // Primitive: only id/extension exist, in the `_x` object.
  if (value == nullptr || !value->IsObject()) {
    if (parent.extension() != nullptr && parent.extension()->IsObject()) {
      bool extension = name == "extension";
      appendMember(*parent.extension(), name, extension ? "Extension" : "string",
                   extension ? extensionTypeNode() : nullptr, model_, out);
    } else if (const TypeNode* type_node = context_.strict ? typeNodeOf(parent) : nullptr;
               type_node != nullptr && type_node->child(name) == nullptr) {
      throw EvalError{"'" + std::string(name) + "' is not an element of " +
                      std::string(parent.typeName())};
    }
    return;
  }
  const TypeNode* type_node = typeNodeOf(parent);
  const ChildDef* def = nullptr;
  if (type_node != nullptr) {
    size_t no_hint = 0;
    def = type_node->child(name, name_hash != 0 ? name_hash : TypeNode::hashName(name),
                           child_hint != nullptr ? *child_hint : no_hint);
  }
  if (def == nullptr && name == "resourceType") {
    // Not an element, but expressions test it (contained.where(resourceType = 'Patient')).
    if (const json::Value* type = json::find(*value, name); type != nullptr && json::isString(*type)) {
      Item::appendNode(out, type, "string");
    }
    return;
  }
  if (def != nullptr) {
    if (def->choice) {
      // One pass over the members: valueQuantity / _valueString name their choice type.
      for (const auto& member : value->GetObject()) {
        std::string_view key(member.name.GetString(), member.name.GetStringLength());
        bool underscored = !key.empty() && key[0] == '_';
        if (underscored) key.remove_prefix(1);
        if (key.size() <= name.size() || !sameBytes(key.data(), name.data(), name.size())) continue;
        const std::string* type = def->choiceType(key.substr(name.size()));
        if (type == nullptr) continue;
        // The value/extension pair is emitted once, at whichever of the two comes first.
        MemberPair pair = findPair(*value, key);
        const json::Value* first = pair.value != nullptr ? pair.value : pair.extension;
        if (&member.value != first) continue;
        appendPair(pair, *type, choiceTypeNode(*def, *type), model_, out);
      }
      return;
    }
    appendMember(*value, name, def->types.size() == 1 ? std::string_view(def->types[0]) : std::string_view(),
                 childTypeNode(*def), model_, out);
    return;
  }
  if (startsUpper(name)) {
    std::string_view type = parent.typeName();
    if (type == name || (model_ != nullptr && !type.empty() && model_->isSubtypeOf(type, name))) {
      out.push_back(parent);
      return;
    }
    if (context_.strict) {
      throw EvalError{"'" + std::string(name) + "' does not match the type of the focus (" +
                      std::string(type) + ")"};
    }
    // Lenient: a member of that exact (capitalised) name, which no FHIR element has.
    appendMember(*value, name, {}, nullptr, model_, out);
    return;
  }
  if (type_node != nullptr && !type_node->children.empty()) {
    // Known type without such an element: a choice element named by its full name
    // (valueQuantity) is allowed when that spelling exists in the definition.
    for (size_t split = 1; split < name.size(); ++split) {
      if (!isUpper(name[split])) continue;
      const ChildDef* choice = type_node->child(name.substr(0, split));
      if (choice == nullptr || !choice->choice) continue;
      const std::string* type = choice->choiceType(name.substr(split));
      if (type == nullptr) continue;
      if (context_.strict) {
        throw EvalError{"choice element '" + std::string(name) + "' must be accessed as '" +
                        std::string(name.substr(0, split)) + "'"};
      }
      appendMember(*value, name, *type, choiceTypeNode(*choice, *type), model_, out);
      return;
    }
    if (context_.strict) {
      throw EvalError{"'" + std::string(name) + "' is not an element of " +
                      std::string(parent.typeName())};
    }
    // Lenient: data the definition does not know is still reachable by its exact name (as in
    // fhirpath.js); validation reports such members separately.
    appendMember(*value, name, {}, nullptr, model_, out);
    return;
  }
  // No type information: plain JSON navigation, with choice lookup by prefix.
  if (json::find(*value, name) != nullptr ||
      json::find(*value, "_" + std::string(name)) != nullptr) {
    appendMember(*value, name, {}, nullptr, model_, out);
    return;
  }
  for (const auto& member : value->GetObject()) {
    std::string_view key(member.name.GetString(), member.name.GetStringLength());
    if (key.size() > name.size() && key.substr(0, name.size()) == name &&
        isUpper(key[name.size()])) {
      appendMember(*value, key, {}, nullptr, model_, out);
    }
  }
}

void Evaluator::allChildren(const Item& parent, Collection& out) const {
  if (!parent.isNode()) return;
  // `parent` may be an item of `out` (descendants()): it is read here only, before `out` grows.
  const json::Value* value = parent.value();
  if (value == nullptr || !value->IsObject()) {
    if (const json::Value* extension = parent.extension();
        extension != nullptr && extension->IsObject()) {
      Item primitive = Item::node(nullptr, parent.typeName(), extension, nullptr);
      for (const auto& member : extension->GetObject()) {
        std::string_view key(member.name.GetString(), member.name.GetStringLength());
        navigate(primitive, key, out);
      }
    }
    return;
  }
  const TypeNode* type_node = typeNodeOf(parent);
  // Most objects have no `_x` members, and the others few: a value looks for its `_x` partner
  // among those only (found in one pass here), not among all members.
  constexpr size_t kMaxUnderscored = 8;
  const json::Value::Member* underscored[kMaxUnderscored];
  size_t underscored_count = 0;
  bool many_underscored = false;
  for (const auto& member : value->GetObject()) {
    if (member.name.GetStringLength() > 0 && member.name.GetString()[0] == '_') {
      if (underscored_count == kMaxUnderscored) {
        many_underscored = true;
        break;
      }
      underscored[underscored_count++] = &member;
    }
  }
  if (out.capacity() < out.size() + value->MemberCount()) {
    out.reserve(std::max<size_t>(out.size() + value->MemberCount(), 2 * out.capacity()));
  }
  bool underscore = false;  // the member at hand is `_key` (its `key` has no value member)
  size_t child_hint = 0;    // where the definition's scan for the next member starts
  auto pairFor = [&](std::string_view key, const json::Value& member_value) -> MemberPair {
    if (underscored_count == 0) return {&member_value, nullptr};
    if (many_underscored || underscore) return findPair(*value, key);
    for (size_t i = 0; i < underscored_count; ++i) {
      const auto& name = underscored[i]->name;
      if (name.GetStringLength() == key.size() + 1 &&
          sameBytes(name.GetString() + 1, key.data(), key.size())) {
        return {&member_value, &underscored[i]->value};
      }
    }
    return {&member_value, nullptr};
  };
  for (const auto& member : value->GetObject()) {
    std::string_view key(member.name.GetString(), member.name.GetStringLength());
    if (key == "resourceType") continue;
    underscore = !key.empty() && key[0] == '_';
    if (underscore) {
      key.remove_prefix(1);
      if (json::find(*value, key) != nullptr) continue;  // emitted with its value
    }
    if (type_node == nullptr) {
      appendPair(pairFor(key, member.value), {}, nullptr, model_, out);
      continue;
    }
    if (const ChildDef* def = type_node->child(key, TypeNode::hashName(key), child_hint);
        def != nullptr && !def->choice) {
      appendPair(pairFor(key, member.value),
                 def->types.size() == 1 ? std::string_view(def->types[0]) : std::string_view(),
                 childTypeNode(*def), model_, out);
      continue;
    }
    // A choice member (valueQuantity): its element name ends where an upper-case letter starts.
    for (size_t split = 1; split < key.size(); ++split) {
      if (!isUpper(key[split])) continue;
      std::string_view element = key.substr(0, split);
      const ChildDef* def = type_node->child(element, TypeNode::hashName(element), child_hint);
      if (def == nullptr || !def->choice) continue;
      if (const std::string* type = def->choiceType(key.substr(split))) {
        appendPair(pairFor(key, member.value), *type, choiceTypeNode(*def, *type), model_, out);
        break;
      }
    }
  }
}

// ---- boolean helpers ------------------------------------------------------------------------

const Item* Evaluator::singleton(const Collection& collection, const char* what) const {
  if (collection.empty()) return nullptr;
  if (collection.size() > 1) {
    throw EvalError{std::string(what) + " requires a single item, got " +
                    std::to_string(collection.size())};
  }
  return &collection[0];
}

std::optional<bool> Evaluator::toBoolean(const Collection& collection) const {
  const Item* item = singleton(collection, "a boolean context");
  if (item == nullptr) return std::nullopt;
  Val val = view(*item);
  if (val.kind == Item::Kind::kBoolean) return val.boolean;
  return true;
}

std::optional<std::string> Evaluator::singletonString(const Collection& collection,
                                                      const char* what) const {
  const Item* item = singleton(collection, what);
  if (item == nullptr) return std::nullopt;
  Val val = view(*item);
  if (val.kind != Item::Kind::kString) {
    throw EvalError{std::string(what) + " requires a string"};
  }
  return std::string(val.text);
}

std::optional<int64_t> Evaluator::singletonInteger(const Collection& collection,
                                                   const char* what) const {
  const Item* item = singleton(collection, what);
  if (item == nullptr) return std::nullopt;
  Val val = view(*item);
  if (val.kind != Item::Kind::kInteger) {
    throw EvalError{std::string(what) + " requires an integer"};
  }
  return val.integer;
}

// ---- operators ------------------------------------------------------------------------------

Collection Evaluator::variable(const std::string& name) const {
  if (name == "context") return {context_item_};
  if (name == "resource") {
    if (resourceItem().isNode() && resourceItem().value() != nullptr) return {resourceItem()};
    return {context_item_};
  }
  if (name == "rootResource") {
    if (rootItem().isNode() && rootItem().value() != nullptr) return {rootItem()};
    return variable("resource");
  }
  if (name == "ucum") return {Item::string("http://unitsofmeasure.org")};
  if (name == "sct") return {Item::string("http://snomed.info/sct")};
  if (name == "loinc") return {Item::string("http://loinc.org")};
  if (name == "terminologies") {
    throw EvalError{"%terminologies can only be the target of a terminology service call "
                    "(expand, lookup, validateVS, validateCS, subsumes, translate)"};
  }
  for (const auto& [var_name, value] : context_.variables) {
    if (var_name == name) return value;
  }
  if (name.rfind("vs-", 0) == 0) {
    return {Item::string("http://hl7.org/fhir/ValueSet/" + name.substr(3))};
  }
  if (name.rfind("ext-", 0) == 0) {
    return {Item::string("http://hl7.org/fhir/StructureDefinition/" + name.substr(4))};
  }
  throw EvalError{"unknown variable %" + name};
}

void Evaluator::checkOrdered(const Node& source, const char* what) const {
  if (!context_.check_ordered_functions || source.op != Op::kFunction) return;
  if (source.fn == Fn::kChildren || source.fn == Fn::kDescendants) {
    throw EvalError{std::string(what) + " needs an ordered collection, but " + source.name +
                    "() is unordered"};
  }
}

void Evaluator::checkMemberOfCastType(const Node& node) const {
  // `(x as T).name` and `x.ofType(T).name`: T is known statically, so a name T does not define
  // is a semantic error even when the cast yields nothing at run time.
  const Node& source = *node.children[0];
  std::string_view type;
  if (source.op == Op::kAs) {
    type = source.name;
  } else if (source.op == Op::kFunction && (source.fn == Fn::kAs || source.fn == Fn::kOfType) &&
             source.children.size() == 2 && source.children[1]->op == Op::kMember &&
             !source.children[1]->has_source) {
    type = source.children[1]->name;
  }
  if (type.empty() || model_ == nullptr) return;
  const TypeNode* type_node = model_->type(type);
  if (type_node == nullptr || type_node->primitive || type_node->child(node.name) != nullptr) return;
  throw EvalError{"'" + node.name + "' is not an element of " + std::string(type)};
}

Collection Evaluator::eval(const Node& node, const Collection& focus) {
  if (++depth_ > kMaxDepth) {
    depth_ = 0;
    throw EvalError{"expression nesting too deep"};
  }
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{depth_};

  switch (node.op) {
    case Op::kLiteral: return {node.literal};
    case Op::kEmpty: return {};
    case Op::kThis: return this_ != nullptr ? Collection{*this_} : Collection{};
    case Op::kIndex: return {Item::integer(index_)};
    case Op::kTotal: return total_ != nullptr ? *total_ : Collection{};
    case Op::kVariable: return variable(node.name);
    case Op::kMember: {
      if (context_.strict && node.has_source) checkMemberOfCastType(node);
      Collection source;
      const Collection* input = &focus;
      if (node.has_source) {
        source = eval(*node.children[0], focus);
        input = &source;
      }
      Collection out;
      // Several parents mostly give several children: one buffer of a likely size up front
      // instead of growing it (moving the items) parent by parent.
      if (input->size() > 1) out.reserve(2 * input->size());
      std::atomic_ref<size_t> shared_hint(node.child_hint);
      size_t hint = shared_hint.load(std::memory_order_relaxed);
      size_t first_hint = hint;
      for (const Item& item : *input) navigate(item, node.name, out, node.name_hash, &hint);
      if (hint != first_hint) shared_hint.store(hint, std::memory_order_relaxed);
      return out;
    }
    case Op::kFunction: {
      if (node.has_source && node.children[0]->op == Op::kVariable &&
          node.children[0]->name == "terminologies") {
        return callFunction(node, {});  // %terminologies.<call>(...): no focus to evaluate
      }
      if (node.has_source) {
        Collection source = eval(*node.children[0], focus);
        return callFunction(node, source);
      }
      return callFunction(node, focus);
    }
    case Op::kIndexer: {
      checkOrdered(*node.children[0], "an indexer");
      Collection source = eval(*node.children[0], focus);
      auto index = singletonInteger(evalArg(*node.children[1]), "an indexer");
      if (!index || *index < 0 || static_cast<size_t>(*index) >= source.size()) return {};
      return {source[static_cast<size_t>(*index)]};
    }
    case Op::kNegate: {
      Collection operand = eval(*node.children[0], focus);
      const Item* item = singleton(operand, "unary minus");
      if (item == nullptr) return {};
      Val val = view(*item);
      switch (val.kind) {
        case Item::Kind::kInteger:
          return {Item::integer(checkedInteger(-static_cast<__int128>(val.integer), "unary minus"))};
        case Item::Kind::kDecimal:
          return {Item::decimal(checkedDecimal(val.decimal.negated(), "unary minus"))};
        case Item::Kind::kQuantity:
          return {Item::quantity(
              Quantity{checkedDecimal(val.decimal.negated(), "unary minus"), std::string(val.text)})};
        default: throw EvalError{"unary minus needs a number or quantity"};
      }
    }
    case Op::kIs:
    case Op::kAs: {
      Collection operand = eval(*node.children[0], focus);
      checkTypeName(node.type_namespace, node.name);
      const Item* item = singleton(operand, node.op == Op::kIs ? "'is'" : "'as'");
      if (item == nullptr) return {};
      bool match = isType(*item, node.type_namespace, node.name, node.op == Op::kAs);
      if (node.op == Op::kIs) return {Item::boolean(match)};
      return match ? Collection{*item} : Collection{};
    }
    default: return binary(node, focus);
  }
}

std::optional<bool> Evaluator::evalBool(const Node& node, const Collection& focus) {
  switch (node.op) {
    case Op::kAnd: {
      auto a = evalBool(*node.children[0], focus);
      if (a == false) return false;
      auto b = evalBool(*node.children[1], focus);
      if (b == false) return false;
      if (a == true && b == true) return true;
      return std::nullopt;
    }
    case Op::kOr: {
      auto a = evalBool(*node.children[0], focus);
      if (a == true) return true;
      auto b = evalBool(*node.children[1], focus);
      if (b == true) return true;
      if (a == false && b == false) return false;
      return std::nullopt;
    }
    case Op::kImplies: {
      auto a = evalBool(*node.children[0], focus);
      if (a == false) return true;
      auto b = evalBool(*node.children[1], focus);
      if (b == true) return true;
      if (a == true && b == false) return false;
      return std::nullopt;
    }
    case Op::kXor: {
      auto a = evalBool(*node.children[0], focus);
      auto b = evalBool(*node.children[1], focus);
      if (!a || !b) return std::nullopt;
      return *a != *b;
    }
    case Op::kEq:
    case Op::kNotEq: {
      Collection left_storage, right_storage;
      const Collection& left = evalShared(*node.children[0], focus, left_storage);
      const Collection& right = evalShared(*node.children[1], focus, right_storage);
      auto equal = collectionsEqual(left, right);
      if (!equal) return std::nullopt;
      return node.op == Op::kEq ? *equal : !*equal;
    }
    default: return toBoolean(eval(node, focus));
  }
}

// ---- public entry points --------------------------------------------------------------------

Result<Collection> evaluate(const Expression& expression, const Item& focus,
                            const EvaluationContext& context) {
  try {
    Evaluator evaluator(context, focus);
    return evaluator.run(*expression.root);
  } catch (const EvalError& error) {
    return Error{error.message};
  } catch (const std::exception& error) {
    return Error{std::string("evaluation failed: ") + error.what()};
  }
}

Result<Collection> evaluate(const Expression& expression, const json::Value& resource,
                            const EvaluationContext& context) {
  // The Evaluator takes %resource from the focus when the context names none.
  return evaluate(expression, makeResourceItem(&resource, context.model.get()), context);
}

Result<std::optional<bool>> evaluateBoolean(const Expression& expression, const Item& focus,
                                            const EvaluationContext& context) {
  auto result = evaluate(expression, focus, context);
  if (!result.ok()) return result.error();
  const Collection& items = *result;
  if (items.empty()) return std::optional<bool>();
  if (items.size() > 1) {
    return Error{"expression '" + expression.text + "' returned " + std::to_string(items.size()) +
                 " items where a boolean was expected"};
  }
  const Item& item = items[0];
  if (item.kind() == Item::Kind::kBoolean) return std::optional<bool>(item.booleanValue());
  if (item.isNode() && item.value() != nullptr && item.value()->IsBool()) {
    return std::optional<bool>(item.value()->GetBool());
  }
  return std::optional<bool>(true);
}

}  // namespace fhir::fhirpath

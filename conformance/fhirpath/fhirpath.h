// SPDX-License-Identifier: Apache-2.0
#pragma once

// FHIRPath (N1 normative, FHIR R4 flavour) over our RapidJSON documents.
//
// Usage: compile an expression once, evaluate it many times.
//
//   auto model = fhirpath::Model::bundled();                 // R4 core types, shared, lazy
//   auto expr = fhirpath::compile("name.given.first()");     // Result<ExpressionPtr>
//   fhirpath::EvaluationContext ctx;
//   ctx.model = model;
//   auto result = fhirpath::evaluate(**expr, patient_json, ctx);   // focus = %resource
//   if (result.ok()) std::string json = fhirpath::toJson(*result);
//
//   auto inv = fhirpath::evaluateBoolean(**expr, fhirpath::Item::node(element, "HumanName"),
//                                        ctx);   // Result<std::optional<bool>>: true/false/empty
//
// Contract
//  * compile() parses the text to an AST. Syntax errors come back as Error whose message starts
//    with "syntax error at <line>:<column>" (1-based; the column counts bytes), and the optional
//    CompileError out-parameter gives the byte offset. Function names and arities are checked at
//    compile time ("unknown function" is a syntax-phase error, like the reference engine).
//  * An Expression is immutable after compile(): evaluate() is const and may run concurrently on
//    many threads with the same Expression, Model and (read-only) documents. No locks are taken
//    on the hot path (type definitions are loaded once per type with std::call_once).
//  * Evaluation errors (e.g. a multi-item collection where a single item is required, a type
//    error in an operator, a function argument of the wrong kind, or navigation to an element the
//    focus type does not have while EvaluationContext::strict is set) come back as Error. They
//    are errors of the *expression* against this data, not of the environment.
//  * Items referring to JSON nodes (Item::isNode) point into the caller's documents: the
//    documents must outlive the Collection. Values the expression computes are owned by the Item.
//  * Primitive extensions: `birthDate` and `_birthDate` are one element. An item for a primitive
//    keeps both the value node (may be null when only `_x` exists) and the `_x` object; arrays of
//    primitives align `x[i]` with `_x[i]` (null placeholders allowed on either side).
//  * Choice types: `value` finds `valueQuantity`, `valueString`, ... and the item's type is the
//    concrete type (Quantity, string, ...). `valueQuantity` by its full name works too.
//  * Three-valued logic per the spec: and/or/xor/implies/not() over true/false/empty.
//  * Quantities compare UCUM-aware for common units (mass mg/g/kg, time ms/s/min/h/d/wk/mo/a and
//    the calendar keywords, length mm/cm/m/km/[in_i]/[ft_i], volume mL/L, temperature K/Cel/[degF]
//    with their offsets); incomparable units give empty for comparison (per spec), false for
//    equality.
//  * Regular expressions (matches, matchesFull, replaceMatches) run on RE2 (conformance/regex,
//    dialect kFhirPath): linear time in the text, no recursion, '.' matching newlines, Unicode
//    classes (\p{L}) over UTF-8. matches() is an unanchored search (N1 and the R4 suite),
//    matchesFull() a whole-value match. A literal pattern is compiled once by compile().
//    Patterns RE2 cannot run in linear time (backreferences, lookaround, atomic groups,
//    possessive quantifiers) and invalid ones are an evaluation error naming the construct.
//  * Arithmetic follows FHIRPath R4: Integer is 32-bit and a result outside it is an Error
//    ("Integer overflow in '+': ..."; also div/mod, unary minus, abs(), power(), sum(), and
//    integer literals); Decimal is exact (decimal.h: 0.1 + 0.2 = 0.3, precision as written,
//    comparison by value, division to 8 places, overflow an Error); division by zero is empty;
//    Date/DateTime arithmetic outside the years 0001-9999 is an Error. A JSON decimal keeps
//    its text (toString() of 1.50 is "1.50").
//  * Dates and times compare with precision rules: different precisions give empty.
//  * Outside strict mode navigation is lenient, as in fhirpath.js and the reference validator:
//    members the definition does not know, `resourceType`, and full choice names are readable by
//    their exact JSON name. A primitive element with only `_x` extensions has no value: string
//    and math functions treat it as empty input.
//  * Deviations from the normative suite are listed with reasons in
//    tests/data/fhirpath/known-failures.txt.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/fhirpath/decimal.h"
#include "conformance/json/json.h"

namespace fhir::fhirpath {

// ---------------------------------------------------------------------------------------------
// Model: type information from the FHIR R4 StructureDefinitions.

class TypeNode;  // opaque: one (possibly backbone) type with its child elements

class Model {
 public:
  // Indexes `package_dir` (a folder with StructureDefinition-<Type>.json files, e.g.
  // fhir_profiles/r4-core/package). Only the directory listing is read here; each type's
  // StructureDefinition is parsed on first use, once, thread-safely. Error: unreadable folder.
  static Result<std::shared_ptr<const Model>> load(const std::string& package_dir);
  // The process-wide model over the bundled R4 core package (GATEWAY_PROFILES_DIR/r4-core/package),
  // created on first call. Never null; a missing package yields a model that knows no types.
  static std::shared_ptr<const Model> bundled();

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The type called `name` ("Patient", "HumanName", "string"), or nullptr if unknown.
  const TypeNode* type(std::string_view name) const;
  // True for resource types (Patient, Bundle, DomainResource, Resource ...).
  bool isResourceType(std::string_view name) const;
  // True when `type` is `base` or derives from it (Patient -> DomainResource -> Resource).
  bool isSubtypeOf(std::string_view type, std::string_view base) const;
  // Type names of the child element `child` of type `type` ("Patient","birthDate" -> {"date"};
  // "Observation","value" -> the choice list). Empty when there is no such element.
  std::vector<std::string> childTypes(std::string_view type, std::string_view child) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

using ModelPtr = std::shared_ptr<const Model>;

// ---------------------------------------------------------------------------------------------
// Values and collections.

// A FHIRPath date/time value. `text` is the ISO form without '@' / 'T' prefix decorations:
// date "2014-01", dateTime "2014-01-01T10:00:00+01:00", time "10:00:00.123".
struct Quantity {
  Decimal value;      // exact, with the decimal places as written (for output and precision)
  std::string unit;   // UCUM code, or a calendar keyword ("week", "month"); "1" when unitless
};

class Item {
 public:
  enum class Kind : uint8_t {
    kNode,       // an element inside a JSON document (primitive, complex or resource)
    kBoolean,
    kString,
    kInteger,
    kDecimal,
    kDate,
    kDateTime,
    kTime,
    kQuantity,
  };

  Item() = default;
  // An element of a document. `type` is its FHIR type name ("HumanName", "date", "Patient"), or
  // empty to infer it (resourceType for resources, JSON kind for primitives). `extension` is the
  // `_x` partner object of a primitive, if any; `value` may then be null.
  static Item node(const json::Value* value, std::string_view type,
                   const json::Value* extension = nullptr, const TypeNode* type_node = nullptr);
  static Item boolean(bool value);
  static Item string(std::string value);
  static Item integer(int64_t value);
  static Item decimal(Decimal value);
  static Item date(std::string text);       // "2014-01-25"
  static Item dateTime(std::string text);   // "2014-01-25T10:00:00Z" (may be partial)
  static Item time(std::string text);       // "10:00:00"
  static Item quantity(Quantity quantity);
  // Item::node(...) appended to `out`, constructed in place (navigation's hot path).
  template <class Items>
  static void appendNode(Items& out, const json::Value* value, std::string_view type,
                         const json::Value* extension = nullptr,
                         const TypeNode* type_node = nullptr);

  Kind kind() const { return kind_; }
  bool isNode() const { return kind_ == Kind::kNode; }
  const json::Value* value() const { return value_; }          // kNode: may be null (ext only)
  const json::Value* extension() const { return extension_; }  // kNode: the `_x` object
  // FHIR type name for nodes ("HumanName", "date"); FHIRPath system type name otherwise
  // ("Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity").
  // type() results are "TypeInfo" items whose text() is "Namespace.Name" ("FHIR.Patient").
  std::string_view typeName() const;
  const TypeNode* typeNode() const { return type_node_; }

  bool booleanValue() const { return boolean_; }
  int64_t integerValue() const { return kind_ == Kind::kInteger ? number_.integer : 0; }
  Decimal decimalValue() const {
    return kind_ == Kind::kDecimal || kind_ == Kind::kQuantity ? Decimal(number_.integer, scale_)
                                                               : Decimal();
  }
  int decimalScale() const { return scale_; }
  const std::string& text() const;  // string, date/time text, quantity unit; "" otherwise
  Quantity quantityValue() const { return Quantity{decimalValue(), text()}; }

  // Primitive-valued item (JSON primitive node or a computed primitive): its value rendered as a
  // FHIRPath string (what toString() gives), nullopt for complex nodes.
  std::optional<std::string> primitiveText() const;

 private:
  friend class Evaluator;
  Kind kind_ = Kind::kBoolean;
  bool boolean_ = false;
  int scale_ = 0;
  const json::Value* value_ = nullptr;
  const json::Value* extension_ = nullptr;
  const TypeNode* type_node_ = nullptr;
  std::string_view type_name_;  // static storage or the Model's interned names
  // Integer value, or the units of a Decimal/Quantity value (Decimal(units, scale_)).
  union Number {
    int64_t integer;
  } number_{0};
  // Computed strings are immutable and shared between copies (items are copied often).
  std::shared_ptr<const std::string> text_;
};

// The factories of the hot path are inline (one per navigated element or computed boolean).
inline Item Item::node(const json::Value* value, std::string_view type,
                       const json::Value* extension, const TypeNode* type_node) {
  Item item;
  item.kind_ = Kind::kNode;
  item.value_ = value;
  item.extension_ = extension;
  item.type_name_ = type;
  item.type_node_ = type_node;
  return item;
}
template <class Items>
inline void Item::appendNode(Items& out, const json::Value* value, std::string_view type,
                             const json::Value* extension, const TypeNode* type_node) {
  Item& item = out.emplace_back();
  item.kind_ = Kind::kNode;
  item.value_ = value;
  item.extension_ = extension;
  item.type_name_ = type;
  item.type_node_ = type_node;
}
inline Item Item::boolean(bool value) {
  Item item;
  item.kind_ = Kind::kBoolean;
  item.boolean_ = value;
  return item;
}
inline Item Item::integer(int64_t value) {
  Item item;
  item.kind_ = Kind::kInteger;
  item.number_.integer = value;
  return item;
}
inline Item Item::decimal(Decimal value) {
  Item item;
  item.kind_ = Kind::kDecimal;
  item.number_.integer = value.units();
  item.scale_ = value.scale();
  return item;
}

// Buffers of collections come from per-thread free lists (size classes of powers of two): an
// evaluation makes and drops many small result collections, and malloc/free dominated its cost.
// A buffer freed on another thread than the one that allocated it joins that thread's lists.
namespace pool {
void* allocate(size_t bytes);
void deallocate(void* buffer, size_t bytes) noexcept;
}  // namespace pool

template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t count) { return static_cast<T*>(pool::allocate(count * sizeof(T))); }
  void deallocate(T* buffer, size_t count) noexcept { pool::deallocate(buffer, count * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
};

// A std::vector of items (only its allocator differs).
using Collection = std::vector<Item, PoolAllocator<Item>>;

// ---------------------------------------------------------------------------------------------
// Compilation.

class Expression;  // opaque compiled AST
using ExpressionPtr = std::shared_ptr<const Expression>;

struct CompileError {
  std::string message;
  size_t offset = 0;  // byte offset into the expression text
  size_t line = 1;
  size_t column = 1;
};

Result<ExpressionPtr> compile(std::string_view text, CompileError* detail = nullptr);

// The source text the Expression was compiled from.
const std::string& expressionText(const Expression& expression);

// ---------------------------------------------------------------------------------------------
// Evaluation.

// memberOf(valueSetUrl): `coded` is a code/string/uri, Coding or CodeableConcept item.
// Returns true/false, or nullopt when the value set is unknown (memberOf() then yields empty).
using TerminologyHook =
    std::function<std::optional<bool>(std::string_view value_set_url, const Item& coded)>;
// conformsTo(profileUrl): nullopt when the profile is unknown (empty result).
using ConformsToHook =
    std::function<std::optional<bool>(std::string_view profile_url, const Item& item)>;
// subsumes()/subsumedBy() (FHIR R4 FHIRPath "subsumes"): whether `general` subsumes or equals
// `specific` (each a Coding or CodeableConcept node: true when some coding of `general` subsumes
// some coding of `specific`). An Error (the call is then an evaluation error naming why) when it
// cannot be decided: different or unknown code systems, a code system not available locally.
using SubsumesHook = std::function<Result<bool>(const Item& general, const Item& specific)>;
// %terminologies (FHIR R4 FHIRPath "Terminology Service API"): `operation` is expand, lookup,
// validateVS, validateCS, subsumes or translate, `args` the evaluated arguments in order. Returns
// the result resource (ValueSet or Parameters) as a node Item whose JSON the hook keeps alive for
// the rest of the evaluation context's life, or an Error saying why it cannot answer.
using TerminologiesHook =
    std::function<Result<Item>(std::string_view operation, const std::vector<Collection>& args)>;
// resolve(): called for references not found in the Bundle/contained resources of %rootResource
// / %resource. Return the referenced resource (a node Item) or nullopt.
using ResolveHook = std::function<std::optional<Item>(std::string_view reference)>;

// The environment of one evaluation. Built-in constants (FHIRPath N1 and FHIR R4):
//   %context       the focus given to evaluate()
//   %resource      `resource` below: the resource that contains the focus. For a contained
//                  resource that is the contained resource itself; for a resource in a Bundle
//                  entry (at any depth of nesting), that entry's resource. When null, the focus
//                  when it is a resource node, else %context.
//   %rootResource  `root_resource` below: the container of %resource. For a contained resource
//                  the resource that contains it (the outermost DomainResource); otherwise the
//                  same as %resource. When null, %resource. A Bundle entry's resource is not
//                  contained: its %rootResource is itself, not the Bundle (set root_resource to
//                  the Bundle only when resolve() should search that Bundle's entries).
//   %ucum          'http://unitsofmeasure.org'
//   %sct           'http://snomed.info/sct'
//   %loinc         'http://loinc.org'
//   %terminologies the terminology service (`terminologies` hook below); only usable as the
//                  target of expand/lookup/validateVS/validateCS/subsumes/translate
//   %vs-[name]     'http://hl7.org/fhir/ValueSet/[name]'
//   %ext-[name]    'http://hl7.org/fhir/StructureDefinition/[name]'
// resolve() looks in the `contained` of %resource and %rootResource, then in the entries of
// %rootResource when it is a Bundle, then asks the `resolve` hook.
struct EvaluationContext {
  ModelPtr model;  // null: no type information (JSON kinds only, no choice-type typing)
  // %resource and %rootResource (see above). Not owned: they must outlive the evaluation.
  const json::Value* resource = nullptr;
  const json::Value* root_resource = nullptr;  // defaults to `resource`
  // User variables: %name. Names without the '%'. Shadow nothing built in.
  std::vector<std::pair<std::string, Collection>> variables;
  // memberOf(): without the hook memberOf() answers empty (unknown), never false.
  TerminologyHook member_of;
  // subsumes()/subsumedBy() and %terminologies: without a hook, a call is an evaluation error.
  SubsumesHook subsumes;
  TerminologiesHook terminologies;
  ConformsToHook conforms_to;
  ResolveHook resolve;
  // Semantic checking: navigating to a child that the focus type does not define is an error.
  bool strict = false;
  // Ordered functions (first(), last(), tail(), skip(), take(), [n]) applied directly to the
  // unordered results of children()/descendants() are an error when set.
  bool check_ordered_functions = false;
  // FHIRPath makes as() on more than one item an error. The R4 core invariants were written for
  // engines that filter instead (dom-3: `descendants().as(canonical)`), and the HL7 reference
  // validator evaluates them that way. Set false when evaluating definitions' invariants to get
  // that behaviour: as(T) then keeps the items of type T, like ofType(T).
  bool as_requires_singleton = true;
  // now()/today()/timeOfDay() use this instant when set ("2026-11-24T21:00:00.000+00:00").
  std::optional<std::string> now;
};

// Evaluates with `focus` as $this and %context. %resource/%rootResource from `context` (or the
// focus node when it is a resource and `context.resource` is null).
Result<Collection> evaluate(const Expression& expression, const Item& focus,
                            const EvaluationContext& context);
// Convenience: focus is `resource` (typed by its resourceType) and %resource = resource.
Result<Collection> evaluate(const Expression& expression, const json::Value& resource,
                            const EvaluationContext& context);

// For invariants: the result as a boolean per FHIRPath singleton evaluation of collections:
// empty -> nullopt, a single Boolean -> its value, a single non-Boolean item -> true. More than
// one item is an Error.
Result<std::optional<bool>> evaluateBoolean(const Expression& expression, const Item& focus,
                                            const EvaluationContext& context);

// ---------------------------------------------------------------------------------------------
// Output (contracts/cli.md, `fhirpath` command): a JSON array; nodes as their JSON (primitives as
// their JSON value; a primitive that only has `_x` extensions yields null), computed strings,
// numbers and booleans as plain JSON, computed dates/times/quantities as FHIRPath literal strings
// ("@2026-10-02", "@T10:00:00", "5 'mg'").
std::string toJson(const Collection& collection);
// The FHIRPath literal form of a computed date/time/quantity item, else primitiveText().
std::string toLiteral(const Item& item);

}  // namespace fhir::fhirpath

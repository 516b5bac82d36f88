// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internals shared by the FHIRPath sources: AST, model type nodes, value helpers.
// Not part of the public API (fhirpath.h).

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conformance/fhirpath/fhirpath.h"
#include "conformance/regex/regex.h"

namespace fhir::fhirpath {

// Equal bytes over `length`, compared inline: member and element names are short, and a call to
// memcmp per candidate name cost more than the comparison itself.
inline bool sameBytes(const char* a, const char* b, size_t length) {
  for (; length >= 8; a += 8, b += 8, length -= 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
  }
  if (length >= 4) {
    uint32_t x, y;
    std::memcpy(&x, a, 4);
    std::memcpy(&y, b, 4);
    if (x != y) return false;
    a += 4, b += 4, length -= 4;
  }
  for (; length > 0; ++a, ++b, --length) {
    if (*a != *b) return false;
  }
  return true;
}

// ---- model ----------------------------------------------------------------------------------

struct ChildDef {
  std::vector<std::string> types;     // FHIR type codes ("HumanName", "string", "Resource")
  bool choice = false;                // value[x]
  bool array = false;                 // max != "1"
  const TypeNode* inline_node = nullptr;  // BackboneElement / Element children defined inline
  std::string content_reference;      // "#Questionnaire.item", resolved into inline_node
  // Cache of the TypeNode of types[0] (complex types only), filled on first navigation. Accessed
  // through std::atomic_ref: every thread stores the same pointer.
  mutable const TypeNode* resolved = nullptr;
  // The same cache for each entry of `types` (choice elements); sized when the model loads.
  mutable std::vector<const TypeNode*> resolved_types;
  // The choice type whose name is `suffix` ("Quantity" for valueQuantity), or nullptr.
  const std::string* choiceType(std::string_view suffix) const {
    for (const std::string& type : types) {
      if (type.size() == suffix.size() && !type.empty() &&
          (type[0] == suffix[0] || type[0] - 'a' + 'A' == suffix[0]) &&
          sameBytes(type.data() + 1, suffix.data() + 1, suffix.size() - 1)) {
        return &type;
      }
    }
    return nullptr;
  }
};

class TypeNode {
 public:
  std::string name;        // "Patient", "HumanName", "BackboneElement", "string"
  std::string base;        // base type name ("DomainResource"), empty for Base/Element roots
  bool resource = false;
  bool primitive = false;
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const { return std::hash<std::string_view>()(name); }
  };

  // Child elements. Types have tens of children: a linear scan over (hash, name) beats a hash
  // map here. ChildDefs are heap-allocated so pointers to them stay valid while loading.
  struct ChildEntry {
    uint32_t hash;
    std::string name;
    std::unique_ptr<ChildDef> def;
  };
  std::vector<ChildEntry> children;
  std::vector<uint32_t> child_hashes;  // children[i].hash, contiguous for a fast scan

  // Only tells names apart before they are compared in full: mixes the length with the first
  // and the last eight bytes (a byte-by-byte hash was a fifth of children()/descendants()).
  static uint32_t hashName(std::string_view name) {
    uint64_t head = 0;
    size_t head_size = name.size() < 8 ? name.size() : 8;
    for (size_t i = 0; i < head_size; ++i) {
      head |= uint64_t{static_cast<unsigned char>(name[i])} << (8 * i);
    }
    uint64_t tail = 0;
    if (name.size() > 8) std::memcpy(&tail, name.data() + name.size() - 8, 8);
    uint64_t hash = (head * 0x9E3779B97F4A7C15ull) ^ (tail * 0xC2B2AE3D27D4EB4Full) ^ name.size();
    return static_cast<uint32_t>(hash >> 32) ^ static_cast<uint32_t>(hash);
  }
  // Adds a child unless one of that name exists; returns it and whether it was added.
  std::pair<ChildDef*, bool> addChild(std::string name, ChildDef def) {
    if (const ChildDef* existing = child(name)) return {const_cast<ChildDef*>(existing), false};
    uint32_t hash = hashName(name);
    children.push_back({hash, std::move(name), std::make_unique<ChildDef>(std::move(def))});
    child_hashes.push_back(hash);
    return {children.back().def.get(), true};
  }

  const ChildDef* child(std::string_view child_name) const {
    return child(child_name, hashName(child_name));
  }
  const ChildDef* child(std::string_view child_name, uint32_t hash) const {
    size_t hint = 0;
    return child(child_name, hash, hint);
  }
  // The scan starts at `hint` and leaves the found child's index there: members of a JSON
  // object mostly come in the order of the definition, so walking them finds each at once, and
  // a member expression finds its element where it found it last time.
  const ChildDef* child(std::string_view child_name, uint32_t hash, size_t& hint) const {
    size_t count = child_hashes.size();
    size_t start = hint < count ? hint : 0;
    auto matches = [&](size_t i) {
      return child_hashes[i] == hash && children[i].name.size() == child_name.size() &&
             sameBytes(children[i].name.data(), child_name.data(), child_name.size());
    };
    for (size_t i = start; i < count; ++i) {
      if (matches(i)) return children[hint = i].def.get();
    }
    for (size_t i = 0; i < start; ++i) {
      if (matches(i)) return children[hint = i].def.get();
    }
    return nullptr;
  }
};

struct Model::Impl {
  std::string dir;
  // Unique per loaded model in this process (never reused, unlike addresses): the key of
  // per-thread caches of lookups.
  uint64_t id = 0;
  struct Slot {
    std::once_flag once;
    // Set (release) after the call_once that loaded the slot: later lookups test it first, since
    // std::call_once costs a thread-local set-up and a pthread_once call even when done.
    std::atomic<bool> loaded{false};
    std::vector<std::unique_ptr<TypeNode>> nodes;  // [0] is the type itself, rest are backbones
    const TypeNode* root = nullptr;
  };
  // Built in load(), read-only afterwards (lookups take no lock).
  std::unordered_map<std::string, std::unique_ptr<Slot>, TypeNode::NameHash, std::equal_to<>> slots;

  const TypeNode* get(std::string_view name) const;
  // Extension is looked up for every primitive `_x` extension: cached after the first time.
  mutable const TypeNode* extension_type = nullptr;
};

// ---- AST ------------------------------------------------------------------------------------

enum class Op : uint8_t {
  kLiteral,      // literal (value) or {} (empty)
  kEmpty,
  kMember,       // child[0] (optional) . name
  kFunction,     // child[0] (optional source) . name(args = children[1..])
  kThis,
  kIndex,
  kTotal,
  kVariable,     // %name
  kIndexer,      // child[0][child[1]]
  kNegate,
  kIs,           // child[0] is name
  kAs,
  kUnion, kLess, kGreater, kLessEq, kGreaterEq, kEq, kEquiv, kNotEq, kNotEquiv,
  kIn, kContains, kAnd, kOr, kXor, kImplies,
  kPlus, kMinus, kConcat, kMul, kDiv, kIntDiv, kMod,
};

enum class Fn : uint8_t;

struct Node {
  Op op = Op::kLiteral;
  Fn fn{};
  bool has_source = false;   // kMember/kFunction: child[0] is the source expression
  std::string name;          // member/function/variable/type name
  uint32_t name_hash = 0;    // TypeNode::hashName(name), for member lookups
  // kMember: where TypeNode::child() found `name` last time (a hint only, so threads sharing the
  // expression may overwrite it freely; accessed through std::atomic_ref, relaxed).
  mutable size_t child_hint = 0;
  std::string type_namespace;  // for type names: "FHIR", "System" or empty
  Item literal;
  Collection literal_collection;  // {literal} for kLiteral, so evaluation need not build one
  // matches()/matchesFull()/replaceMatches() with a literal pattern: compiled once by compile()
  // (null when the pattern is not literal or invalid; evaluation then compiles it and reports).
  regex::RegexPtr regex;
  std::vector<std::unique_ptr<Node>> children;
  size_t offset = 0;
};

}  // namespace fhir::fhirpath

namespace fhir::fhirpath {

class Expression {
 public:
  std::string text;
  std::unique_ptr<Node> root;
};

// ---- values (values.cc) ---------------------------------------------------------------------

// A date/dateTime/time broken into fields. precision counts fields present:
// 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second, 7 millisecond (times: 4..7).
struct DateTimeParts {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  int precision = 0;
  bool has_date = true;
  bool has_tz = false;
  int tz_minutes = 0;
};
// Parses FHIR/FHIRPath text (no '@'). `kind` decides the grammar. nullopt when malformed.
std::optional<DateTimeParts> parseDateTime(std::string_view text, Item::Kind kind);
std::string formatDateTime(const DateTimeParts& parts, Item::Kind kind);
// -1/0/1, or nullopt when the precisions make the answer unknown.
std::optional<int> compareDateTime(const DateTimeParts& a, const DateTimeParts& b);
// Adds `amount` of calendar unit (year, month, week, day, hour, minute, second, millisecond).
bool addToDateTime(DateTimeParts& parts, double amount, std::string_view unit);

// Decimal formatting with the value's places (no exponent); "-0.0" prints as "0.0".
std::string formatDecimal(const Decimal& value);
// Decimal places written in a number's text ("1.50" -> 2, "1e3" -> 0).
int scaleOf(std::string_view number_text);

// UCUM: value converted to the canonical unit of its dimension; nullopt for unknown units.
struct Canonical {
  double value;
  std::string_view dimension;
};
// Temperatures (K, Cel, [degF]) convert with their offsets: their canonical unit is K.
std::optional<Canonical> canonicalQuantity(double value, std::string_view unit);
// The inverse: a canonical value expressed in `unit`; nullopt for unknown units.
std::optional<double> fromCanonical(double canonical, std::string_view unit);
// Calendar keyword ("weeks", "month") to its UCUM code ("wk", "mo"); input unchanged otherwise.
std::string_view calendarToUcum(std::string_view unit);
bool isCalendarKeyword(std::string_view unit);

// System type name of a FHIR primitive type ("date" -> Date), or empty for complex types.
Item::Kind primitiveKindOf(std::string_view fhir_type, bool* known);

}  // namespace fhir::fhirpath

namespace fhir::fhirpath {

enum class Fn : uint8_t {
  kEmpty, kExists, kAll, kAllTrue, kAnyTrue, kAllFalse, kAnyFalse, kSubsetOf, kSupersetOf,
  kCount, kDistinct, kIsDistinct, kWhere, kSelect, kRepeat, kOfType, kSingle, kFirst, kLast,
  kTail, kSkip, kTake, kIntersect, kExclude, kUnion, kCombine, kIif,
  kToBoolean, kConvertsToBoolean, kToInteger, kConvertsToInteger, kToDecimal,
  kConvertsToDecimal, kToString, kConvertsToString, kToDate, kConvertsToDate, kToDateTime,
  kConvertsToDateTime, kToTime, kConvertsToTime, kToQuantity, kConvertsToQuantity,
  kIndexOf, kSubstring, kStartsWith, kEndsWith, kContainsStr, kUpper, kLower, kReplace,
  kMatches, kMatchesFull, kReplaceMatches, kLength, kToChars, kSplit, kJoin, kTrim, kEncode,
  kDecode, kEscape, kUnescape,
  kAbs, kCeiling, kExp, kFloor, kLn, kLog, kPower, kRound, kSqrt, kTruncate,
  kChildren, kDescendants, kTrace, kNow, kTimeOfDay, kToday, kIs, kAs, kType, kNot,
  kAggregate, kSort, kLowBoundary, kHighBoundary, kComparable, kPrecision,
  kResolve, kExtension, kConformsTo, kMemberOf, kHasValue, kHtmlChecks, kGetValue,
  kSubsumes, kSubsumedBy, kExpand, kLookup, kValidateVS, kValidateCS, kTranslate,
  kSum, kMin, kMax, kAvg,
};

struct FunctionInfo {
  const char* name;
  Fn fn;
  int min_args;
  int max_args;
};
// nullptr when `name` is not a function of the library.
const FunctionInfo* findFunction(std::string_view name);

// A FHIRPath regular expression (regex::Dialect::kFhirPath: RE2, linear time, '.' matching
// newlines), through the per-thread cache. Throws EvalError for an invalid or untranslatable
// pattern (backreferences, lookaround: see conformance/regex/regex.h).
regex::RegexPtr makeRegex(std::string_view pattern);
// makeRegex() for compile(): null instead of an error.
regex::RegexPtr tryMakeRegex(std::string_view pattern);

}  // namespace fhir::fhirpath

// SPDX-License-Identifier: Apache-2.0
// Equality (=, ~), ordering and type tests of FHIRPath items.

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

std::string normalizeSpace(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}
// A quantity of unit '1' is a plain number for comparison with numbers.
void unitlessAsNumber(Val& x, const Val& other) {
  if (x.kind == Item::Kind::kQuantity && x.text == "1" && isNumeric(other.kind)) {
    x.kind = Item::Kind::kDecimal;
  }
}

// Calendar years/months and UCUM 'a'/'mo' are different units of unequal length: comparing one
// with the other has no answer.
bool calendarMismatch(std::string_view x, std::string_view y) {
  std::string_view ux = calendarToUcum(x), uy = calendarToUcum(y);
  bool x_calendar = ux.data() != x.data(), y_calendar = uy.data() != y.data();
  return x_calendar != y_calendar && (ux == "a" || ux == "mo" || uy == "a" || uy == "mo");
}
// JSON deep equality that treats tagged numbers by value.
bool jsonEqual(const json::Value& a, const json::Value& b) {
  if (json::isNumber(a) && json::isNumber(b)) {
    auto x = Decimal::parse(json::numberText(a));
    auto y = Decimal::parse(json::numberText(b));
    if (x && y) return *x == *y;
    return json::numberAsDouble(a) == json::numberAsDouble(b);
  }
  if (a.GetType() != b.GetType()) return false;
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (const auto& member : a.GetObject()) {
      const json::Value* other = json::find(b, std::string_view(member.name.GetString(),
                                                                member.name.GetStringLength()));
      if (other == nullptr || !jsonEqual(member.value, *other)) return false;
    }
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
      if (!jsonEqual(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace

// ---- equality and comparison ----------------------------------------------------------------

std::optional<bool> Evaluator::itemsEqual(const Item& a, const Item& b) const {
  Val x = view(a);
  Val y = view(b);
  unitlessAsNumber(x, y);
  unitlessAsNumber(y, x);
  if (x.kind == Item::Kind::kNode || y.kind == Item::Kind::kNode) {
    if (x.kind != y.kind) return false;
    if (a.value() == nullptr || b.value() == nullptr) {
      // Elements without a value (only `_x` extensions) are equal when their extensions are.
      if (a.value() != b.value()) return false;
      if (a.extension() == nullptr || b.extension() == nullptr) return a.extension() == b.extension();
      return jsonEqual(*a.extension(), *b.extension());
    }
    return jsonEqual(*a.value(), *b.value());
  }
  if (isNumeric(x.kind) && isNumeric(y.kind)) {
    if (x.kind == Item::Kind::kInteger && y.kind == Item::Kind::kInteger) return x.integer == y.integer;
    return x.decimal == y.decimal;  // by value: 1.50 = 1.5
  }
  if (isDateKind(x.kind) && isDateKind(y.kind)) {
    if ((x.kind == Item::Kind::kTime) != (y.kind == Item::Kind::kTime)) return false;
    auto pa = parseDateTime(x.text, x.kind == Item::Kind::kDate ? Item::Kind::kDateTime : x.kind);
    auto pb = parseDateTime(y.text, y.kind == Item::Kind::kDate ? Item::Kind::kDateTime : y.kind);
    if (!pa || !pb) return false;
    auto result = compareDateTime(*pa, *pb);
    if (!result) return std::nullopt;
    return *result == 0;
  }
  if (x.kind != y.kind) return false;
  switch (x.kind) {
    case Item::Kind::kBoolean: return x.boolean == y.boolean;
    case Item::Kind::kString: return x.text == y.text;
    case Item::Kind::kQuantity: {
      if (x.text == y.text) return x.decimal == y.decimal;
      if (calendarMismatch(x.text, y.text)) return std::nullopt;
      auto cx = canonicalQuantity(x.decimal.toDouble(), x.text);
      auto cy = canonicalQuantity(y.decimal.toDouble(), y.text);
      if (!cx || !cy || cx->dimension != cy->dimension) return std::nullopt;
      return std::fabs(cx->value - cy->value) <= 1e-9 * std::max(1.0, std::fabs(cx->value));
    }
    default: return false;
  }
}

bool Evaluator::itemsEquivalent(const Item& a, const Item& b) const {
  Val x = view(a);
  Val y = view(b);
  if (x.kind == Item::Kind::kNode || y.kind == Item::Kind::kNode) {
    return itemsEqual(a, b).value_or(false);
  }
  if (isNumeric(x.kind) && isNumeric(y.kind)) {
    int scale = std::min(x.decimal.scale(), y.decimal.scale());
    return x.decimal.rounded(scale) == y.decimal.rounded(scale);
  }
  if (x.kind == Item::Kind::kString && y.kind == Item::Kind::kString) {
    return normalizeSpace(x.text) == normalizeSpace(y.text);
  }
  if (isDateKind(x.kind) && isDateKind(y.kind)) {
    auto result = itemsEqual(a, b);
    return result.value_or(false);
  }
  if (x.kind == Item::Kind::kQuantity && y.kind == Item::Kind::kQuantity) {
    if (x.text == y.text) {
      int scale = std::min(x.decimal.scale(), y.decimal.scale());
      return x.decimal.rounded(scale) == y.decimal.rounded(scale);
    }
    auto cx = canonicalQuantity(x.decimal.toDouble(), x.text);
    auto cy = canonicalQuantity(y.decimal.toDouble(), y.text);
    if (!cx || !cy) return false;
    if (cx->dimension != cy->dimension) return false;
    // Compare in the left unit, rounded to the lesser precision of the two.
    double other = fromCanonical(cy->value, x.text).value_or(0);
    int scale = std::min(x.decimal.scale(), y.decimal.scale());
    return x.decimal.rounded(scale) == Decimal::fromDouble(other, scale);
  }
  return itemsEqual(a, b).value_or(false);
}

std::optional<bool> Evaluator::collectionsEqual(const Collection& a, const Collection& b) const {
  if (a.empty() || b.empty()) return std::nullopt;
  if (a.size() != b.size()) return false;
  bool unknown = false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto equal = itemsEqual(a[i], b[i]);
    if (!equal) {
      unknown = true;
    } else if (!*equal) {
      return false;
    }
  }
  if (unknown) return std::nullopt;
  return true;
}

bool Evaluator::collectionsEquivalent(const Collection& a, const Collection& b) const {
  if (a.size() != b.size()) return false;
  std::vector<bool> used(b.size(), false);
  for (const Item& item : a) {
    bool found = false;
    for (size_t j = 0; j < b.size(); ++j) {
      if (!used[j] && itemsEquivalent(item, b[j])) {
        used[j] = true;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

std::optional<int> Evaluator::compare(const Item& a, const Item& b) const {
  Val x = view(a);
  Val y = view(b);
  unitlessAsNumber(x, y);
  unitlessAsNumber(y, x);
  if (isNumeric(x.kind) && isNumeric(y.kind)) {
    if (x.kind == Item::Kind::kInteger && y.kind == Item::Kind::kInteger) {
      return x.integer < y.integer ? -1 : x.integer > y.integer ? 1 : 0;
    }
    return Decimal::compare(x.decimal, y.decimal);
  }
  if (x.kind == Item::Kind::kString && y.kind == Item::Kind::kString) {
    int c = x.text.compare(y.text);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (isDateKind(x.kind) && isDateKind(y.kind) &&
      (x.kind == Item::Kind::kTime) == (y.kind == Item::Kind::kTime)) {
    auto pa = parseDateTime(x.text, x.kind == Item::Kind::kDate ? Item::Kind::kDateTime : x.kind);
    auto pb = parseDateTime(y.text, y.kind == Item::Kind::kDate ? Item::Kind::kDateTime : y.kind);
    if (!pa || !pb) return std::nullopt;
    return compareDateTime(*pa, *pb);
  }
  if (x.kind == Item::Kind::kQuantity && y.kind == Item::Kind::kQuantity) {
    if (x.text == y.text) return Decimal::compare(x.decimal, y.decimal);
    if (calendarMismatch(x.text, y.text)) return std::nullopt;
    auto cx = canonicalQuantity(x.decimal.toDouble(), x.text);
    auto cy = canonicalQuantity(y.decimal.toDouble(), y.text);
    if (!cx || !cy || cx->dimension != cy->dimension) return std::nullopt;
    if (std::fabs(cx->value - cy->value) <= 1e-9 * std::max(1.0, std::fabs(cx->value))) return 0;
    return cx->value < cy->value ? -1 : 1;
  }
  if (x.kind == Item::Kind::kNode || y.kind == Item::Kind::kNode) {
    if ((a.isNode() && a.value() == nullptr) || (b.isNode() && b.value() == nullptr)) {
      return std::nullopt;
    }
  }
  throw EvalError{"cannot compare " + std::string(a.typeName()) + " with " +
                  std::string(b.typeName())};
}

// ---- types ----------------------------------------------------------------------------------

void Evaluator::checkTypeName(std::string_view ns, std::string_view name) const {
  static constexpr std::string_view kSystem[] = {"Boolean", "String",   "Integer", "Decimal",
                                                 "Date",    "DateTime", "Time",    "Quantity",
                                                 "Any",     "Long"};
  if (ns.empty() || ns == "System") {
    for (auto type : kSystem) {
      if (type == name) return;
    }
    if (ns == "System") return;  // unknown System types simply never match
  }
  if (model_ == nullptr) return;
  if (model_->type(name) != nullptr) return;
  throw EvalError{"unknown type '" + std::string(name) + "'"};
}

bool Evaluator::isType(const Item& item, std::string_view ns, std::string_view name,
                       bool exact_primitive) const {
  if (item.isNode()) {
    if (ns == "System") return false;
    std::string_view type = item.typeName();
    if (type.empty()) {
      // Untyped JSON: fall back to JSON kinds for FHIR primitive names.
      if (item.value() == nullptr) return false;
      if (item.value()->IsBool()) return name == "boolean";
      if (json::isNumber(*item.value())) return name == "decimal" || name == "integer";
      if (json::isString(*item.value())) return name == "string";
      return false;
    }
    if (type == name) return true;
    if (type.rfind("System.", 0) == 0 || (exact_primitive && std::islower(static_cast<unsigned char>(type[0])))) {
      return false;
    }
    return model_ != nullptr && model_->isSubtypeOf(type, name);
  }
  if (ns == "FHIR") return false;
  std::string_view type = item.typeName();
  return type == name;
}

}  // namespace fhir::fhirpath

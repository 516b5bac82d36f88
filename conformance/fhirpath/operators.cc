// SPDX-License-Identifier: Apache-2.0
// Binary operators: boolean logic, membership, union, concatenation and arithmetic.

#include "conformance/fhirpath/evaluator.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <cctype>
#include <cmath>
#include <cstdlib>


namespace fhir::fhirpath {

// ---- operators ------------------------------------------------------------------------------

Collection Evaluator::binary(const Node& node, const Collection& focus) {
  switch (node.op) {
    case Op::kAnd:
    case Op::kOr:
    case Op::kImplies:
    case Op::kXor:
    case Op::kEq:
    case Op::kNotEq: {
      auto value = evalBool(node, focus);
      if (!value) return {};
      return {Item::boolean(*value)};
    }
    default: break;
  }
  Collection left_storage;
  const Collection& left = evalShared(*node.children[0], focus, left_storage);
  // Short-circuit forms of the boolean operators.
  switch (node.op) {
    case Op::kAnd: {
      auto a = toBoolean(left);
      if (a == false) return {Item::boolean(false)};
      auto b = toBoolean(eval(*node.children[1], focus));
      if (b == false) return {Item::boolean(false)};
      if (a == true && b == true) return {Item::boolean(true)};
      return {};
    }
    case Op::kOr: {
      auto a = toBoolean(left);
      if (a == true) return {Item::boolean(true)};
      auto b = toBoolean(eval(*node.children[1], focus));
      if (b == true) return {Item::boolean(true)};
      if (a == false && b == false) return {Item::boolean(false)};
      return {};
    }
    case Op::kImplies: {
      auto a = toBoolean(left);
      if (a == false) return {Item::boolean(true)};
      auto b = toBoolean(eval(*node.children[1], focus));
      if (b == true) return {Item::boolean(true)};
      if (a == true && b == false) return {Item::boolean(false)};
      return {};
    }
    case Op::kXor: {
      auto a = toBoolean(left);
      auto b = toBoolean(eval(*node.children[1], focus));
      if (!a || !b) return {};
      return {Item::boolean(*a != *b)};
    }
    default: break;
  }
  Collection right_storage;
  const Collection& right = evalShared(*node.children[1], focus, right_storage);
  switch (node.op) {
    case Op::kUnion: {
      Collection out;
      auto add = [&](const Item& item) {
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) return;
        }
        out.push_back(item);
      };
      for (const Item& item : left) add(item);
      for (const Item& item : right) add(item);
      return out;
    }
    case Op::kEq:
    case Op::kNotEq: {
      auto equal = collectionsEqual(left, right);
      if (!equal) return {};
      return {Item::boolean(node.op == Op::kEq ? *equal : !*equal)};
    }
    case Op::kEquiv:
    case Op::kNotEquiv: {
      bool equivalent = collectionsEquivalent(left, right);
      return {Item::boolean(node.op == Op::kEquiv ? equivalent : !equivalent)};
    }
    case Op::kLess:
    case Op::kGreater:
    case Op::kLessEq:
    case Op::kGreaterEq: {
      const Item* a = singleton(left, "comparison");
      const Item* b = singleton(right, "comparison");
      if (a == nullptr || b == nullptr) return {};
      auto order = compare(*a, *b);
      if (!order) return {};
      bool result = node.op == Op::kLess      ? *order < 0
                    : node.op == Op::kGreater ? *order > 0
                    : node.op == Op::kLessEq  ? *order <= 0
                                              : *order >= 0;
      return {Item::boolean(result)};
    }
    case Op::kIn:
    case Op::kContains: {
      const Collection& element = node.op == Op::kIn ? left : right;
      const Collection& container = node.op == Op::kIn ? right : left;
      const Item* item = singleton(element, node.op == Op::kIn ? "'in'" : "'contains'");
      if (item == nullptr) return {};
      for (const Item& candidate : container) {
        if (itemsEqual(*item, candidate).value_or(false)) return {Item::boolean(true)};
      }
      return {Item::boolean(false)};
    }
    case Op::kConcat: {
      std::string out;
      for (const Collection* side : {&left, &right}) {
        const Item* item = singleton(*side, "'&'");
        if (item == nullptr || (item->isNode() && item->value() == nullptr)) continue;
        Val val = view(*item);
        if (val.kind != Item::Kind::kString) throw EvalError{"'&' needs strings"};
        out.append(val.text);
      }
      return {Item::string(std::move(out))};
    }
    default: {
      const Item* a = singleton(left, "an arithmetic operator");
      const Item* b = singleton(right, "an arithmetic operator");
      if (a == nullptr || b == nullptr) return {};
      return arithmetic(node.op, *a, *b);
    }
  }
}


int64_t checkedInteger(__int128 value, const char* what) {
  if (value > INT32_MAX || value < INT32_MIN) {
    throw EvalError{std::string("Integer overflow in ") + what +
                    ": the result is outside the 32-bit range of FHIRPath Integer"};
  }
  return static_cast<int64_t>(value);
}

Decimal checkedDecimal(const std::optional<Decimal>& value, const char* what) {
  if (!value) {
    throw EvalError{std::string("Decimal overflow in ") + what +
                    ": the result is outside the range of FHIRPath Decimal"};
  }
  return *value;
}

namespace {

const char* operatorName(Op op) {
  switch (op) {
    case Op::kPlus: return "'+'";
    case Op::kMinus: return "'-'";
    case Op::kMul: return "'*'";
    case Op::kDiv: return "'/'";
    case Op::kIntDiv: return "'div'";
    case Op::kMod: return "'mod'";
    default: return "an arithmetic operator";
  }
}

// A quantity computed through UCUM canonical units (binary floating point, as the conversion
// factors are): up to 8 places, trailing zeros dropped.
Decimal fromConversion(double value, const char* what) {
  auto decimal = Decimal::fromDouble(value, 8);
  return checkedDecimal(decimal ? std::optional<Decimal>(decimal->stripped()) : std::nullopt, what);
}

}  // namespace

Collection Evaluator::arithmetic(Op op, const Item& a, const Item& b) const {
  Val x = view(a);
  Val y = view(b);
  if (x.kind == Item::Kind::kString && y.kind == Item::Kind::kString && op == Op::kPlus) {
    std::string out(x.text);
    out.append(y.text);
    return {Item::string(std::move(out))};
  }
  const char* what = operatorName(op);
  if (isNumeric(x.kind) && isNumeric(y.kind)) {
    bool integers = x.kind == Item::Kind::kInteger && y.kind == Item::Kind::kInteger;
    // Integer operands are computed in 128 bits, so nothing wraps (or traps, as INT_MIN div -1
    // did) before the range check.
    const __int128 xi = x.integer, yi = y.integer;
    switch (op) {
      case Op::kPlus:
        if (integers) return {Item::integer(checkedInteger(xi + yi, what))};
        return {Item::decimal(checkedDecimal(Decimal::add(x.decimal, y.decimal), what))};
      case Op::kMinus:
        if (integers) return {Item::integer(checkedInteger(xi - yi, what))};
        return {Item::decimal(checkedDecimal(Decimal::subtract(x.decimal, y.decimal), what))};
      case Op::kMul:
        if (integers) return {Item::integer(checkedInteger(xi * yi, what))};
        return {Item::decimal(checkedDecimal(Decimal::multiply(x.decimal, y.decimal), what))};
      case Op::kDiv:
        if (y.decimal.isZero()) return {};
        return {Item::decimal(checkedDecimal(Decimal::divide(x.decimal, y.decimal), what))};
      case Op::kIntDiv: {
        if (y.decimal.isZero()) return {};
        if (integers) return {Item::integer(checkedInteger(xi / yi, what))};
        auto quotient = Decimal::quotient(x.decimal, y.decimal);
        if (!quotient) checkedInteger(__int128(1) << 100, what);
        return {Item::integer(checkedInteger(*quotient, what))};
      }
      case Op::kMod:
        if (y.decimal.isZero()) return {};
        if (integers) return {Item::integer(checkedInteger(xi % yi, what))};
        return {Item::decimal(checkedDecimal(Decimal::remainder(x.decimal, y.decimal), what))};
      default: break;
    }
  }
  if (x.kind == Item::Kind::kQuantity && y.kind == Item::Kind::kQuantity &&
      (op == Op::kPlus || op == Op::kMinus)) {
    if (x.text == y.text) {
      auto value = op == Op::kPlus ? Decimal::add(x.decimal, y.decimal)
                                   : Decimal::subtract(x.decimal, y.decimal);
      return {Item::quantity(Quantity{checkedDecimal(value, what), std::string(x.text)})};
    }
    auto cx = canonicalQuantity(x.decimal.toDouble(), x.text);
    auto cy = canonicalQuantity(y.decimal.toDouble(), y.text);
    if (!cx || !cy || cx->dimension != cy->dimension) return {};
    double other = fromCanonical(cy->value, x.text).value_or(0);
    double value = op == Op::kPlus ? x.decimal.toDouble() + other : x.decimal.toDouble() - other;
    return {Item::quantity(Quantity{fromConversion(value, what), std::string(x.text)})};
  }
  if (x.kind == Item::Kind::kQuantity && y.kind == Item::Kind::kQuantity &&
      (op == Op::kMul || op == Op::kDiv)) {
    auto cx = canonicalQuantity(x.decimal.toDouble(), x.text);
    auto cy = canonicalQuantity(y.decimal.toDouble(), y.text);
    if (!cx || !cy) return {};
    if (op == Op::kDiv && cy->value == 0) return {};
    double value = op == Op::kMul ? cx->value * cy->value : cx->value / cy->value;
    std::string unit;
    if (cx->dimension == cy->dimension) {
      unit = op == Op::kMul ? std::string(cx->dimension) + "2" : "1";
    } else {
      unit = std::string(cx->dimension) + (op == Op::kMul ? "." : "/") + std::string(cy->dimension);
    }
    return {Item::quantity(Quantity{fromConversion(value, what), unit})};
  }
  if (isNumeric(x.kind) && y.kind == Item::Kind::kQuantity && op == Op::kMul) {
    return {Item::quantity(Quantity{checkedDecimal(Decimal::multiply(x.decimal, y.decimal), what),
                                    std::string(y.text)})};
  }
  if (x.kind == Item::Kind::kQuantity && isNumeric(y.kind) && (op == Op::kMul || op == Op::kDiv)) {
    if (op == Op::kDiv && y.decimal.isZero()) return {};
    auto value = op == Op::kMul ? Decimal::multiply(x.decimal, y.decimal)
                                : Decimal::divide(x.decimal, y.decimal);
    return {Item::quantity(Quantity{checkedDecimal(value, what), std::string(x.text)})};
  }
  if (isDateKind(x.kind) && y.kind == Item::Kind::kQuantity && (op == Op::kPlus || op == Op::kMinus)) {
    auto parts = parseDateTime(x.text, x.kind);
    if (!parts) throw EvalError{"invalid date/time value"};
    std::string_view unit = y.text;
    std::string_view code = calendarToUcum(unit);
    // UCUM 'a' and 'mo' are not calendar units: adding them to a date is an error.
    if (!isCalendarKeyword(unit) && (code == "a" || code == "mo")) {
      throw EvalError{"cannot add '" + std::string(unit) + "' to a date; use a calendar duration"};
    }
    double amount = op == Op::kPlus ? y.decimal.toDouble() : -y.decimal.toDouble();
    if (x.kind == Item::Kind::kTime && (code == "a" || code == "mo" || code == "wk" || code == "d")) {
      throw EvalError{"cannot add a date duration to a time"};
    }
    if (!addToDateTime(*parts, amount, unit)) {
      throw EvalError{"cannot add '" + std::string(unit) + "' to a date/time"};
    }
    // FHIRPath Date and DateTime cover the years 0001 to 9999.
    if (x.kind != Item::Kind::kTime && (parts->year < 1 || parts->year > 9999)) {
      throw EvalError{std::string("date/time arithmetic out of range in ") + what +
                      ": the result is outside the years 0001-9999"};
    }
    std::string text = formatDateTime(*parts, x.kind);
    if (x.kind == Item::Kind::kDate) return {Item::date(std::move(text))};
    if (x.kind == Item::Kind::kTime) return {Item::time(std::move(text))};
    return {Item::dateTime(std::move(text))};
  }
  throw EvalError{"operator not defined for " + std::string(a.typeName()) + " and " +
                  std::string(b.typeName())};
}

}  // namespace fhir::fhirpath

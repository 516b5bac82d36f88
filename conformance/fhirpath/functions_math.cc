// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Math": abs() .. truncate(), the aggregates sum(), min(), max(),
// avg(), and lowBoundary(), highBoundary(), comparable(), precision().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

namespace {

// Decimal boundaries (lowBoundary/highBoundary): a value written with `scale` decimal places
// stands for the interval value +/- half a unit in its last place; the boundary is that interval's
// end, cut to `precision` places (default 8) toward the outside of the interval. Exact.
Collection decimalBoundary(const Decimal& value, std::optional<int64_t> precision, bool high) {
  int target = precision ? static_cast<int>(*precision) : 8;
  if (target < 0 || target > 28) return {};
  int places = std::min(target, Decimal::kMaxScale);
  // A value smaller than one unit of the requested precision has boundaries that collapse to
  // zero there (0.0034.highBoundary(1) = 0.0), as in the reference implementation.
  auto cut = value.truncated(places);
  if (cut && cut->isZero()) return {Item::decimal(Decimal(0, places))};
  // value +/- 5 in the place after the last written one.
  const char* what = high ? "highBoundary()" : "lowBoundary()";
  Decimal widened = checkedDecimal(Decimal::multiply(value, Decimal(10, 0)), what);
  if (widened.units() > INT64_MAX - 5 || widened.units() < INT64_MIN + 5) checkedDecimal({}, what);
  Decimal shifted(widened.units() + (high ? 5 : -5), widened.scale() + 1);
  auto bound = high ? shifted.ceiled(places) : shifted.floored(places);
  return {Item::decimal(checkedDecimal(bound, what))};
}

Collection dateBoundary(const Val& val, std::optional<int64_t> precision, bool high) {
  Item::Kind kind = val.kind;
  auto parts = parseDateTime(val.text, kind);
  if (!parts) return {};
  int target;
  if (kind == Item::Kind::kDate) {
    target = precision ? static_cast<int>(*precision) : 8;
    if (target != 4 && target != 6 && target != 8) return {};
  } else if (kind == Item::Kind::kDateTime) {
    target = precision ? static_cast<int>(*precision) : 17;
    if (target != 4 && target != 6 && target != 8 && target != 10 && target != 12 &&
        target != 14 && target != 17) {
      return {};
    }
  } else {
    target = precision ? static_cast<int>(*precision) : 9;
    if (target != 2 && target != 4 && target != 6 && target != 9) return {};
  }
  auto fieldsFor = [&](int digits) {
    if (kind == Item::Kind::kTime) return digits <= 2 ? 4 : digits <= 4 ? 5 : digits <= 6 ? 6 : 7;
    switch (digits) {
      case 4: return 1;
      case 6: return 2;
      case 8: return 3;
      case 10: return 4;
      case 12: return 5;
      case 14: return 6;
      default: return 7;
    }
  };
  int fields = fieldsFor(target);
  DateTimeParts p = *parts;
  // An hour without minutes is not a FHIR dateTime: read T08 as T08:00.
  if (kind == Item::Kind::kDateTime && p.precision == 4) p.precision = 5;
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  auto fill = [&](int field) {
    switch (field) {
      case 2: p.month = high ? 12 : 1; break;
      case 3: {
        int days = kMonthDays[p.month - 1];
        if (p.month == 2 && ((p.year % 4 == 0 && p.year % 100 != 0) || p.year % 400 == 0)) days = 29;
        p.day = high ? days : 1;
        break;
      }
      case 4: p.hour = high ? 23 : 0; break;
      case 5: p.minute = high ? 59 : 0; break;
      case 6: p.second = high ? 59 : 0; break;
      case 7: p.millis = high ? 999 : 0; break;
      default: break;
    }
  };
  int first = kind == Item::Kind::kTime ? 4 : 1;
  for (int field = std::max(first, p.precision + 1); field <= fields; ++field) fill(field + 0);
  if (kind == Item::Kind::kDateTime && fields >= 4 && !p.has_tz) {
    p.has_tz = true;
    p.tz_minutes = high ? -12 * 60 : 14 * 60;
  }
  p.precision = fields;
  return {kind == Item::Kind::kDate       ? Item::date(formatDateTime(p, kind))
          : kind == Item::Kind::kDateTime ? Item::dateTime(formatDateTime(p, kind))
                                          : Item::time(formatDateTime(p, kind))};
}

}  // namespace

Collection Evaluator::mathFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kAbs:
    case Fn::kCeiling:
    case Fn::kExp:
    case Fn::kFloor:
    case Fn::kLn:
    case Fn::kLog:
    case Fn::kPower:
    case Fn::kRound:
    case Fn::kSqrt:
    case Fn::kTruncate: {
      auto val = call.numberFocus();
      if (!val) return {};
      const bool quantity = val->kind == Item::Kind::kQuantity;
      const Decimal& x = val->decimal;
      const std::string what = node.name + "()";
      auto wrap = [&](const Decimal& result) -> Collection {
        if (quantity) return {Item::quantity(Quantity{result, std::string(val->text)})};
        return {Item::decimal(result)};
      };
      // exp, ln, log, sqrt and fractional powers have no exact decimal result: computed in
      // double and kept to 8 places.
      auto inexact = [&](double value) -> Collection {
        return {Item::decimal(checkedDecimal(Decimal::fromDouble(value, 8), what.c_str()))};
      };
      switch (node.fn) {
        case Fn::kAbs:
          if (val->kind == Item::Kind::kInteger) {
            __int128 integer = val->integer;
            return {Item::integer(checkedInteger(integer < 0 ? -integer : integer, what.c_str()))};
          }
          return wrap(checkedDecimal(x.abs(), what.c_str()));
        case Fn::kCeiling:
        case Fn::kFloor:
        case Fn::kTruncate: {
          Decimal whole = checkedDecimal(node.fn == Fn::kCeiling ? x.ceiled(0)
                                         : node.fn == Fn::kFloor ? x.floored(0)
                                                                 : x.truncated(0),
                                         what.c_str());
          if (quantity) return wrap(whole);
          return {Item::integer(checkedInteger(whole.units(), what.c_str()))};
        }
        case Fn::kExp: return inexact(std::exp(x.toDouble()));
        case Fn::kLn:
          if (x.sign() <= 0) return {};
          return inexact(std::log(x.toDouble()));
        case Fn::kLog: {
          Collection base_collection = evalArg(call.arg(0));
          const Item* base = singleton(base_collection, "log()");
          if (base == nullptr) return {};
          double b = view(*base).decimal.toDouble();
          if (x.sign() <= 0 || b <= 0 || b == 1) return {};
          return inexact(std::log(x.toDouble()) / std::log(b));
        }
        case Fn::kPower: {
          Collection exponent_collection = evalArg(call.arg(0));
          const Item* exponent = singleton(exponent_collection, "power()");
          if (exponent == nullptr) return {};
          Val e = view(*exponent);
          if (!isNumeric(e.kind)) throw EvalError{"power() requires a number"};
          if (e.kind == Item::Kind::kInteger && val->kind == Item::Kind::kInteger && e.integer >= 0) {
            // Exact; |base| >= 2 overflows 32 bits within 32 steps.
            __int128 base_value = val->integer, result = 1;
            for (int64_t step = 0; step < e.integer; ++step) {
              if (base_value == 0 || base_value == 1) {
                result = step == 0 && base_value == 0 ? 0 : result * base_value;
                break;
              }
              if (base_value == -1) {
                result = e.integer % 2 == 0 ? 1 : -1;
                break;
              }
              result = checkedInteger(result * base_value, what.c_str());
            }
            return {Item::integer(checkedInteger(result, what.c_str()))};
          }
          if (e.kind == Item::Kind::kInteger) {
            // Exact by squaring and multiplying; a negative exponent divides 1 by the result.
            int64_t count = e.integer < 0 ? -e.integer : e.integer;
            Decimal result(1, 0), square = x;
            for (; count > 0; count >>= 1) {
              if (count & 1) result = checkedDecimal(Decimal::multiply(result, square), what.c_str());
              if (count > 1) square = checkedDecimal(Decimal::multiply(square, square), what.c_str());
            }
            if (e.integer < 0) {
              if (result.isZero()) return {};
              result = checkedDecimal(Decimal::divide(Decimal(1, 0), result), what.c_str());
            }
            return {Item::decimal(result)};
          }
          double value = std::pow(x.toDouble(), e.decimal.toDouble());
          if (std::isnan(value)) return {};
          return inexact(value);
        }
        case Fn::kRound: {
          int64_t places = 0;
          if (call.argc > 0) {
            auto requested = call.integerArg(0);
            if (!requested) return {};
            if (*requested < 0) throw EvalError{"round() precision must not be negative"};
            places = *requested;
          }
          int target = static_cast<int>(std::min<int64_t>(places, Decimal::kMaxScale));
          return wrap(checkedDecimal(x.rounded(target), what.c_str()));
        }
        case Fn::kSqrt:
          if (x.sign() < 0) return {};
          return inexact(std::sqrt(x.toDouble()));
        default: return {};
      }
    }
    case Fn::kSum:
    case Fn::kMin:
    case Fn::kMax:
    case Fn::kAvg: {
      if (focus.empty()) return node.fn == Fn::kSum ? Collection{Item::integer(0)} : Collection{};
      if (node.fn == Fn::kMin || node.fn == Fn::kMax) {
        const Item* best = &focus[0];
        for (const Item& item : focus) {
          int order = compare(item, *best).value_or(0);
          if ((node.fn == Fn::kMin && order < 0) || (node.fn == Fn::kMax && order > 0)) best = &item;
        }
        return {toSystem(*best)};
      }
      const std::string what = node.name + "()";
      bool integers = true;
      Decimal total;
      __int128 integer_total = 0;
      for (const Item& item : focus) {
        Val val = view(item);
        if (!isNumeric(val.kind)) throw EvalError{what + " requires numbers"};
        integers = integers && val.kind == Item::Kind::kInteger;
        integer_total += val.integer;
        total = checkedDecimal(Decimal::add(total, val.decimal), what.c_str());
      }
      if (node.fn == Fn::kSum) {
        if (integers) return {Item::integer(checkedInteger(integer_total, what.c_str()))};
        return {Item::decimal(total)};
      }
      auto count = Decimal::ofInteger(static_cast<int64_t>(focus.size()));
      return {Item::decimal(checkedDecimal(Decimal::divide(total, count), what.c_str()))};
    }
    case Fn::kLowBoundary:
    case Fn::kHighBoundary: {
      const Item* item = call.single(node.name.c_str());
      if (item == nullptr) return {};
      std::optional<int64_t> precision;
      if (call.argc > 0) {
        precision = call.integerArg(0);
        if (!precision) return {};
      }
      bool high = node.fn == Fn::kHighBoundary;
      Val val = view(*item);
      if (val.kind == Item::Kind::kInteger || val.kind == Item::Kind::kDecimal) {
        return decimalBoundary(val.decimal, precision, high);
      }
      if (val.kind == Item::Kind::kQuantity) {
        Collection number = decimalBoundary(val.decimal, precision, high);
        if (number.empty()) return {};
        return {Item::quantity(Quantity{number[0].decimalValue(), std::string(val.text)})};
      }
      if (val.kind == Item::Kind::kDate || val.kind == Item::Kind::kDateTime ||
          val.kind == Item::Kind::kTime) {
        return dateBoundary(val, precision, high);
      }
      return {};
    }
    case Fn::kComparable: {
      const Item* item = call.single("comparable()");
      Collection other_collection = evalArg(call.arg(0));
      const Item* other = singleton(other_collection, "comparable()");
      if (item == nullptr || other == nullptr) return {};
      Val a = view(*item), b = view(*other);
      if (a.kind != Item::Kind::kQuantity || b.kind != Item::Kind::kQuantity) return boolean(false);
      auto ca = canonicalQuantity(a.decimal.toDouble(), a.text);
      auto cb = canonicalQuantity(b.decimal.toDouble(), b.text);
      return boolean(ca && cb && ca->dimension == cb->dimension);
    }
    case Fn::kPrecision: {
      const Item* item = call.single("precision()");
      if (item == nullptr) return {};
      Val val = view(*item);
      switch (val.kind) {
        case Item::Kind::kDecimal: return {Item::integer(val.decimal.scale())};
        case Item::Kind::kInteger: return {Item::integer(0)};
        case Item::Kind::kDate:
        case Item::Kind::kDateTime:
        case Item::Kind::kTime: {
          std::string_view text = val.text;
          int digits = 0;
          for (char c : text) {
            if (c == 'Z' || c == '+' || (c == '-' && digits >= 8)) break;
            if (c >= '0' && c <= '9') ++digits;
          }
          return {Item::integer(digits)};
        }
        default: return {};
      }
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath

// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Conversion": iif(), toX() and convertsToX() for Boolean, Integer,
// Decimal, Quantity, Date, DateTime, Time and String.

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

// ---- conversions ------------------------------------------------------------------------------

// Unit conversions multiply by factors like 0.001 that are inexact in binary; 12 significant
// digits are more than any clinical quantity carries.
double cleanDouble(double value) {
  if (value == 0 || !std::isfinite(value)) return value;
  double magnitude = std::pow(10.0, 11 - static_cast<int>(std::floor(std::log10(std::fabs(value)))));
  return std::round(value * magnitude) / magnitude;
}

std::optional<Item> convertToBoolean(const Val& val) {
  switch (val.kind) {
    case Item::Kind::kBoolean: return Item::boolean(val.boolean);
    case Item::Kind::kInteger:
      if (val.integer == 0 || val.integer == 1) return Item::boolean(val.integer == 1);
      return std::nullopt;
    case Item::Kind::kDecimal:
      if (val.decimal == Decimal(0, 0) || val.decimal == Decimal(1, 0)) {
        return Item::boolean(val.decimal == Decimal(1, 0));
      }
      return std::nullopt;
    case Item::Kind::kString: {
      std::string lower;
      for (char c : val.text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (lower == "true" || lower == "t" || lower == "yes" || lower == "y" || lower == "1" ||
          lower == "1.0") {
        return Item::boolean(true);
      }
      if (lower == "false" || lower == "f" || lower == "no" || lower == "n" || lower == "0" ||
          lower == "0.0") {
        return Item::boolean(false);
      }
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

bool isIntegerText(std::string_view text) {
  size_t pos = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
  if (pos == text.size()) return false;
  for (; pos < text.size(); ++pos) {
    if (text[pos] < '0' || text[pos] > '9') return false;
  }
  return true;
}

bool isDecimalText(std::string_view text) {
  size_t pos = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
  size_t digits = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    ++pos;
    ++digits;
  }
  if (digits == 0) return false;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t fraction = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      ++pos;
      ++fraction;
    }
    if (fraction == 0) return false;
  }
  return pos == text.size();
}

std::optional<Item> convertToInteger(const Val& val) {
  switch (val.kind) {
    case Item::Kind::kInteger: return Item::integer(val.integer);
    case Item::Kind::kBoolean: return Item::integer(val.boolean ? 1 : 0);
    case Item::Kind::kString:
      if (!isIntegerText(val.text)) return std::nullopt;
      {
        // FHIRPath Integer is 32-bit: a longer number is not convertible.
        errno = 0;
        long long value = std::strtoll(std::string(val.text).c_str(), nullptr, 10);
        if (errno == ERANGE || value > INT32_MAX || value < INT32_MIN) return std::nullopt;
        return Item::integer(value);
      }
    default: return std::nullopt;
  }
}

std::optional<Item> convertToDecimal(const Val& val) {
  switch (val.kind) {
    case Item::Kind::kInteger: return Item::decimal(Decimal::ofInteger(val.integer));
    case Item::Kind::kDecimal: return Item::decimal(val.decimal);
    case Item::Kind::kBoolean: return Item::decimal(Decimal(val.boolean ? 10 : 0, 1));
    case Item::Kind::kString: {
      if (!isDecimalText(val.text)) return std::nullopt;
      auto value = Decimal::parse(val.text);
      if (!value) return std::nullopt;
      return Item::decimal(*value);
    }
    default: return std::nullopt;
  }
}

std::optional<Item> parseQuantityText(std::string_view text) {
  // number [unit]: unit is 'ucum' or a calendar keyword.
  size_t pos = 0;
  while (pos < text.size() && text[pos] != ' ' && text[pos] != '\'') ++pos;
  std::string_view number = text.substr(0, pos);
  if (!isDecimalText(number)) return std::nullopt;
  while (pos < text.size() && text[pos] == ' ') ++pos;
  std::string unit = "1";
  if (pos < text.size()) {
    std::string_view rest = text.substr(pos);
    if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') {
      unit = std::string(rest.substr(1, rest.size() - 2));
    } else if (isCalendarKeyword(rest)) {
      unit = std::string(rest);
    } else {
      return std::nullopt;
    }
  }
  auto value = Decimal::parse(number);
  if (!value) return std::nullopt;
  return Item::quantity(Quantity{*value, unit});
}

std::optional<Item> convertToQuantity(const Val& val) {
  switch (val.kind) {
    case Item::Kind::kInteger: return Item::quantity(Quantity{val.decimal, "1"});
    case Item::Kind::kDecimal: return Item::quantity(Quantity{val.decimal, "1"});
    case Item::Kind::kQuantity: return Item::quantity(Quantity{val.decimal, std::string(val.text)});
    case Item::Kind::kBoolean:
      return Item::quantity(Quantity{Decimal(val.boolean ? 10 : 0, 1), "1"});
    case Item::Kind::kString: return parseQuantityText(val.text);
    default: return std::nullopt;
  }
}

std::optional<Item> convertToDateLike(const Val& val, Item::Kind target) {
  if (val.kind != Item::Kind::kString && val.kind != Item::Kind::kDate &&
      val.kind != Item::Kind::kDateTime && val.kind != Item::Kind::kTime) {
    return std::nullopt;
  }
  if (target == Item::Kind::kTime) {
    if (val.kind != Item::Kind::kString && val.kind != Item::Kind::kTime) return std::nullopt;
    std::string_view text = val.text;
    if (!text.empty() && text[0] == 'T') text.remove_prefix(1);
    if (!parseDateTime(text, Item::Kind::kTime)) return std::nullopt;
    return Item::time(std::string(text));
  }
  if (val.kind == Item::Kind::kTime) return std::nullopt;
  auto parts = parseDateTime(val.text, Item::Kind::kDateTime);
  if (!parts) return std::nullopt;
  if (target == Item::Kind::kDate) {
    parts->precision = std::min(parts->precision, 3);
    return Item::date(formatDateTime(*parts, Item::Kind::kDate));
  }
  return Item::dateTime(std::string(val.text));
}

std::string toStringValue(const Item& item, const Val& val) {
  switch (val.kind) {
    case Item::Kind::kBoolean: return val.boolean ? "true" : "false";
    case Item::Kind::kInteger: return std::to_string(val.integer);
    case Item::Kind::kDecimal:
      if (item.isNode() && item.value() != nullptr) return json::numberText(*item.value());
      return formatDecimal(val.decimal);
    case Item::Kind::kQuantity:
      return Item::quantity(Quantity{val.decimal, std::string(val.text)})
          .primitiveText()
          .value_or("");
    default: return std::string(val.text);
  }
}

}  // namespace

Collection Evaluator::conversionFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kIif: {
      if (focus.size() > 1) throw EvalError{"iif() requires a single input item"};
      Collection criterion_focus;
      if (!focus.empty() && node.has_source) {
        criterion_focus = evalWithThis(call.arg(0), focus[0], 0);
      } else {
        criterion_focus = evalArg(call.arg(0));
      }
      const Item* criterion = singleton(criterion_focus, "iif() criterion");
      if (criterion != nullptr && view(*criterion).kind != Item::Kind::kBoolean) {
        throw EvalError{"iif() criterion must be a boolean"};
      }
      bool taken = criterion != nullptr && view(*criterion).boolean;
      const Node* branch = taken ? &call.arg(1) : (call.argc > 2 ? &call.arg(2) : nullptr);
      if (branch == nullptr) return {};
      if (!focus.empty() && node.has_source) return evalWithThis(*branch, focus[0], 0);
      return evalArg(*branch);
    }
    case Fn::kToBoolean:
    case Fn::kConvertsToBoolean:
    case Fn::kToInteger:
    case Fn::kConvertsToInteger:
    case Fn::kToDecimal:
    case Fn::kConvertsToDecimal:
    case Fn::kToQuantity:
    case Fn::kConvertsToQuantity:
    case Fn::kToDate:
    case Fn::kConvertsToDate:
    case Fn::kToDateTime:
    case Fn::kConvertsToDateTime:
    case Fn::kToTime:
    case Fn::kConvertsToTime:
    case Fn::kToString:
    case Fn::kConvertsToString: {
      const Item* item = call.single(node.name.c_str());
      if (item == nullptr) return {};
      Val val = view(*item);
      std::optional<Item> converted;
      bool converts = false;
      switch (node.fn) {
        case Fn::kToBoolean:
        case Fn::kConvertsToBoolean: converted = convertToBoolean(val); break;
        case Fn::kToInteger:
        case Fn::kConvertsToInteger: converted = convertToInteger(val); break;
        case Fn::kToDecimal:
        case Fn::kConvertsToDecimal: converted = convertToDecimal(val); break;
        case Fn::kToQuantity:
        case Fn::kConvertsToQuantity: {
          converted = convertToQuantity(val);
          if (converted && call.argc > 0) {
            auto unit = call.stringArg(0);
            Quantity q = converted->quantityValue();
            if (unit && *unit != q.unit) {
              auto from = canonicalQuantity(q.value.toDouble(), q.unit);
              auto to = canonicalQuantity(0, *unit);
              if (from && to && from->dimension == to->dimension) {
                // Converted in binary floating point (the UCUM factors), then back to decimal
                // with at least the places the value had.
                double value = cleanDouble(fromCanonical(from->value, *unit).value_or(0));
                Decimal decimal = checkedDecimal(Decimal::fromDouble(value, 8), "toQuantity()")
                                      .stripped();
                if (decimal.scale() < q.value.scale()) {
                  decimal = decimal.withScale(q.value.scale()).value_or(decimal);
                }
                converted = Item::quantity(Quantity{decimal, std::string(*unit)});
              } else {
                converted.reset();
              }
            }
          }
          break;
        }
        case Fn::kToDate:
        case Fn::kConvertsToDate: converted = convertToDateLike(val, Item::Kind::kDate); break;
        case Fn::kToDateTime:
        case Fn::kConvertsToDateTime:
          converted = convertToDateLike(val, Item::Kind::kDateTime);
          break;
        case Fn::kToTime:
        case Fn::kConvertsToTime: converted = convertToDateLike(val, Item::Kind::kTime); break;
        default:
          if (val.kind != Item::Kind::kNode) converted = Item::string(toStringValue(*item, val));
          break;
      }
      converts = converted.has_value();
      switch (node.fn) {
        case Fn::kConvertsToBoolean:
        case Fn::kConvertsToInteger:
        case Fn::kConvertsToDecimal:
        case Fn::kConvertsToQuantity:
        case Fn::kConvertsToDate:
        case Fn::kConvertsToDateTime:
        case Fn::kConvertsToTime:
        case Fn::kConvertsToString: return boolean(converts);
        default: return converts ? Collection{*converted} : Collection{};
      }
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath

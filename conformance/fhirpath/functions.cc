// SPDX-License-Identifier: Apache-2.0
// The FHIRPath function library.

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/evaluator.h"

namespace fhir::fhirpath {
namespace {

constexpr size_t kDescendantsReserve = 128;  // items; one pool size class (9 KiB)

bool isNumeric(Item::Kind kind) { return kind == Item::Kind::kInteger || kind == Item::Kind::kDecimal; }

Collection boolean(bool value) { return {Item::boolean(value)}; }

std::string typeNameArg(const Node& arg, std::string* ns) {
  // A type specifier parsed as an expression: Identifier or Namespace.Identifier.
  if (arg.op == Op::kMember && !arg.has_source) return arg.name;
  if (arg.op == Op::kMember && arg.has_source && arg.children[0]->op == Op::kMember &&
      !arg.children[0]->has_source) {
    *ns = arg.children[0]->name;
    return arg.name;
  }
  throw EvalError{"expected a type name argument"};
}

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

// ---- strings ----------------------------------------------------------------------------------

const char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64Encode(std::string_view data, bool url) {
  std::string out;
  size_t i = 0;
  while (i + 2 < data.size() + 2 && i < data.size()) {
    uint32_t n = static_cast<unsigned char>(data[i]) << 16;
    size_t remaining = data.size() - i;
    if (remaining > 1) n |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (remaining > 2) n |= static_cast<unsigned char>(data[i + 2]);
    out.push_back(kBase64[(n >> 18) & 63]);
    out.push_back(kBase64[(n >> 12) & 63]);
    out.push_back(remaining > 1 ? kBase64[(n >> 6) & 63] : '=');
    out.push_back(remaining > 2 ? kBase64[n & 63] : '=');
    i += 3;
  }
  if (url) {
    for (char& c : out) {
      if (c == '+') c = '-';
      if (c == '/') c = '_';
    }
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '+' || c == '-') value = 62;
    else if (c == '/' || c == '_') value = 63;
    else if (c == '=') break;
    else return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

std::string htmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string htmlUnescape(std::string_view text) {
  static constexpr std::pair<std::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}, {"&apos;", '\''}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    if (text[i] == '&') {
      for (const auto& [entity, c] : kEntities) {
        if (text.substr(i, entity.size()) == entity) {
          out.push_back(c);
          i += entity.size();
          matched = true;
          break;
        }
      }
    }
    if (!matched) out.push_back(text[i++]);
  }
  return out;
}

std::string jsonUnescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      char e = text[++i];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'f': out.push_back('\f'); break;
        case 'b': out.push_back('\b'); break;
        default: out.push_back(e);
      }
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace

regex::RegexPtr makeRegex(std::string_view pattern) {
  auto compiled = regex::Regex::cached(pattern, regex::Dialect::kFhirPath);
  if (!compiled.ok()) throw EvalError{compiled.message()};
  return *compiled;
}

regex::RegexPtr tryMakeRegex(std::string_view pattern) {
  auto compiled = regex::Regex::compile(pattern, regex::Dialect::kFhirPath);
  return compiled.ok() ? *compiled : nullptr;
}

namespace {

size_t utf8Length(std::string_view text) {
  size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::string nowText() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &local);
  long offset = local.tm_gmtoff / 60;
  char tz[32];
  std::snprintf(tz, sizeof tz, "%c%02ld:%02ld", offset < 0 ? '-' : '+', std::labs(offset) / 60,
                std::labs(offset) % 60);
  char full[160];
  std::snprintf(full, sizeof full, "%s.%03lld%s", buffer, static_cast<long long>(millis), tz);
  return full;
}

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

Collection Evaluator::callFunction(const Node& node, const Collection& focus) {
  const auto& args = node.children;
  size_t first_arg = node.has_source ? 1 : 0;
  size_t argc = args.size() - first_arg;
  auto arg = [&](size_t i) -> const Node& { return *args[first_arg + i]; };

  auto single = [&](const char* what) -> const Item* { return singleton(focus, what); };
  // A primitive element that only has extensions (`_given` without `given`) has no value: the
  // functions treat it like an empty input.
  auto valueless = [](const Item& item) { return item.isNode() && item.value() == nullptr; };
  auto stringFocus = [&]() -> std::optional<std::string> {
    const Item* item = single(node.name.c_str());
    if (item == nullptr || valueless(*item)) return std::nullopt;
    Val val = view(*item);
    if (val.kind != Item::Kind::kString) {
      throw EvalError{node.name + "() requires a string input"};
    }
    return std::string(val.text);
  };
  // Views into argument values stay valid while arg_storage lives (this call).
  Collection arg_storage[2];
  auto stringArg = [&](size_t i) -> std::optional<std::string_view> {
    const Collection& value = evalArgShared(arg(i), arg_storage[i]);
    const Item* item = singleton(value, node.name.c_str());
    if (item == nullptr) return std::nullopt;
    Val val = view(*item);
    if (val.kind != Item::Kind::kString) throw EvalError{node.name + "() requires a string argument"};
    return val.text;
  };
  auto integerArg = [&](size_t i) -> std::optional<int64_t> {
    Collection storage;
    return singletonInteger(evalArgShared(arg(i), storage), node.name.c_str());
  };
  auto numberFocus = [&]() -> std::optional<Val> {
    const Item* item = single(node.name.c_str());
    if (item == nullptr || valueless(*item)) return std::nullopt;
    Val val = view(*item);
    if (!isNumeric(val.kind) && val.kind != Item::Kind::kQuantity) {
      throw EvalError{node.name + "() requires a number"};
    }
    return val;
  };

  switch (node.fn) {
    case Fn::kFirst:
    case Fn::kLast:
    case Fn::kTail:
    case Fn::kSkip:
    case Fn::kTake:
      if (node.has_source) checkOrdered(*node.children[0], (node.name + "()").c_str());
      break;
    default: break;
  }

  switch (node.fn) {
    // ---- existence ----
    case Fn::kEmpty: return boolean(focus.empty());
    case Fn::kExists:
      if (argc == 0) return boolean(!focus.empty());
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(arg(0), focus[i], static_cast<int64_t>(i)) == true) {
          return boolean(true);
        }
      }
      return boolean(false);
    case Fn::kAll:
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(arg(0), focus[i], static_cast<int64_t>(i)) != true) {
          return boolean(false);
        }
      }
      return boolean(true);
    case Fn::kAllTrue:
    case Fn::kAnyTrue:
    case Fn::kAllFalse:
    case Fn::kAnyFalse: {
      bool any_true = false, any_false = false;
      for (const Item& item : focus) {
        Val val = view(item);
        if (val.kind != Item::Kind::kBoolean) throw EvalError{node.name + "() requires booleans"};
        (val.boolean ? any_true : any_false) = true;
      }
      switch (node.fn) {
        case Fn::kAllTrue: return boolean(!any_false);
        case Fn::kAnyTrue: return boolean(any_true);
        case Fn::kAllFalse: return boolean(!any_true);
        default: return boolean(any_false);
      }
    }
    case Fn::kSubsetOf:
    case Fn::kSupersetOf: {
      Collection other = evalArg(arg(0));
      const Collection& sub = node.fn == Fn::kSubsetOf ? focus : other;
      const Collection& super = node.fn == Fn::kSubsetOf ? other : focus;
      for (const Item& item : sub) {
        bool found = false;
        for (const Item& candidate : super) {
          if (itemsEqual(item, candidate).value_or(false)) {
            found = true;
            break;
          }
        }
        if (!found) return boolean(false);
      }
      return boolean(true);
    }
    case Fn::kCount: return {Item::integer(static_cast<int64_t>(focus.size()))};
    case Fn::kDistinct:
    case Fn::kIsDistinct: {
      Collection out;
      for (const Item& item : focus) {
        bool seen = false;
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) {
            seen = true;
            break;
          }
        }
        if (!seen) out.push_back(item);
      }
      if (node.fn == Fn::kIsDistinct) return boolean(out.size() == focus.size());
      return out;
    }

    // ---- filtering and projection ----
    case Fn::kWhere: {
      Collection out;
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(arg(0), focus[i], static_cast<int64_t>(i)) == true) {
          out.push_back(focus[i]);
        }
      }
      return out;
    }
    case Fn::kSelect: {
      Collection out;
      for (size_t i = 0; i < focus.size(); ++i) {
        Collection part = evalWithThis(arg(0), focus[i], static_cast<int64_t>(i));
        out.insert(out.end(), part.begin(), part.end());
      }
      return out;
    }
    case Fn::kRepeat: {
      Collection out;
      Collection pending = focus;
      for (int round = 0; !pending.empty() && round < 1000; ++round) {
        Collection next;
        for (size_t i = 0; i < pending.size(); ++i) {
          Collection part = evalWithThis(arg(0), pending[i], static_cast<int64_t>(i));
          for (Item& item : part) {
            bool seen = false;
            for (const Item& existing : out) {
              // Elements of the document are the same element only when they are the same
              // node; computed values compare by value.
              bool complex = item.isNode() && existing.isNode() && item.value() != nullptr &&
                             item.value()->IsObject();
              if (complex) {
                if (item.value() == existing.value()) {
                  seen = true;
                  break;
                }
                continue;
              }
              if (itemsEqual(existing, item).value_or(false)) {
                seen = true;
                break;
              }
            }
            if (!seen) {
              out.push_back(item);
              next.push_back(std::move(item));
            }
          }
        }
        pending = std::move(next);
      }
      return out;
    }
    case Fn::kOfType:
    case Fn::kIs:
    case Fn::kAs: {
      std::string ns;
      std::string type = typeNameArg(arg(0), &ns);
      checkTypeName(ns, type);
      if (node.fn == Fn::kOfType || (node.fn == Fn::kAs && focus.size() > 1 &&
                                     !context_.as_requires_singleton)) {
        Collection out;
        for (const Item& item : focus) {
          if (isType(item, ns, type, true)) out.push_back(item);
        }
        return out;
      }
      const Item* item = single(node.name.c_str());
      if (item == nullptr) return {};
      bool match = isType(*item, ns, type, node.fn == Fn::kAs);
      if (node.fn == Fn::kIs) return boolean(match);
      return match ? Collection{*item} : Collection{};
    }

    // ---- subsetting ----
    case Fn::kSingle: {
      const Item* item = single("single()");
      return item == nullptr ? Collection{} : Collection{*item};
    }
    case Fn::kFirst: return focus.empty() ? Collection{} : Collection{focus.front()};
    case Fn::kLast: return focus.empty() ? Collection{} : Collection{focus.back()};
    case Fn::kTail:
      return focus.size() <= 1 ? Collection{} : Collection(focus.begin() + 1, focus.end());
    case Fn::kSkip: {
      auto count = integerArg(0);
      if (!count) return {};
      if (*count <= 0) return focus;
      if (static_cast<size_t>(*count) >= focus.size()) return {};
      return Collection(focus.begin() + *count, focus.end());
    }
    case Fn::kTake: {
      auto count = integerArg(0);
      if (!count || *count <= 0) return {};
      if (static_cast<size_t>(*count) >= focus.size()) return focus;
      return Collection(focus.begin(), focus.begin() + *count);
    }
    case Fn::kIntersect:
    case Fn::kExclude: {
      Collection other = evalArg(arg(0));
      Collection out;
      for (const Item& item : focus) {
        bool in_other = false;
        for (const Item& candidate : other) {
          if (itemsEqual(item, candidate).value_or(false)) {
            in_other = true;
            break;
          }
        }
        if (node.fn == Fn::kExclude) {
          if (!in_other) out.push_back(item);
          continue;
        }
        if (!in_other) continue;
        bool seen = false;
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) {
            seen = true;
            break;
          }
        }
        if (!seen) out.push_back(item);
      }
      return out;
    }

    // ---- combining ----
    case Fn::kUnion: {
      Collection other = evalArg(arg(0));
      Collection out;
      auto add = [&](const Item& item) {
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) return;
        }
        out.push_back(item);
      };
      for (const Item& item : focus) add(item);
      for (const Item& item : other) add(item);
      return out;
    }
    case Fn::kCombine: {
      Collection out = focus;
      Collection other = evalArg(arg(0));
      out.insert(out.end(), other.begin(), other.end());
      return out;
    }

    // ---- utility ----
    case Fn::kIif: {
      if (focus.size() > 1) throw EvalError{"iif() requires a single input item"};
      Collection criterion_focus;
      if (!focus.empty() && node.has_source) {
        criterion_focus = evalWithThis(arg(0), focus[0], 0);
      } else {
        criterion_focus = evalArg(arg(0));
      }
      const Item* criterion = singleton(criterion_focus, "iif() criterion");
      if (criterion != nullptr && view(*criterion).kind != Item::Kind::kBoolean) {
        throw EvalError{"iif() criterion must be a boolean"};
      }
      bool taken = criterion != nullptr && view(*criterion).boolean;
      const Node* branch = taken ? &arg(1) : (argc > 2 ? &arg(2) : nullptr);
      if (branch == nullptr) return {};
      if (!focus.empty() && node.has_source) return evalWithThis(*branch, focus[0], 0);
      return evalArg(*branch);
    }
    case Fn::kTrace: return focus;
    case Fn::kNow:
    case Fn::kToday:
    case Fn::kTimeOfDay: {
      std::string now = context_.now ? *context_.now : nowText();
      if (node.fn == Fn::kNow) return {Item::dateTime(now)};
      if (node.fn == Fn::kToday) return {Item::date(now.substr(0, 10))};
      size_t t = now.find('T');
      std::string time = t == std::string::npos ? std::string() : now.substr(t + 1, 12);
      return {Item::time(time)};
    }
    case Fn::kType: {
      Collection out;
      for (const Item& item : focus) {
        std::string name;
        if (item.isNode()) {
          std::string_view type = item.typeName();
          name = "FHIR." + std::string(type.rfind("System.", 0) == 0 ? type.substr(7) : type);
        } else {
          name = "System." + std::string(item.typeName());
        }
        Item info = Item::string(std::move(name));
        info.type_name_ = "TypeInfo";
        out.push_back(std::move(info));
      }
      return out;
    }
    case Fn::kNot: {
      // Singleton evaluation: a single non-Boolean item counts as true.
      auto value = toBoolean(focus);
      if (!value) return {};
      return boolean(!*value);
    }
    case Fn::kAggregate: {
      Collection total;
      if (argc > 1) total = evalArg(arg(1));
      const Collection* saved_total = total_;
      for (size_t i = 0; i < focus.size(); ++i) {
        total_ = &total;
        Collection next = evalWithThis(arg(0), focus[i], static_cast<int64_t>(i));
        total = std::move(next);
      }
      total_ = saved_total;
      return total;
    }
    case Fn::kSort: {
      struct Keyed {
        Item item;
        std::vector<Collection> keys;
      };
      // A leading unary minus on a key means descending order: sort on the key without it.
      std::vector<bool> descending(argc, false);
      for (size_t k = 0; k < argc; ++k) descending[k] = arg(k).op == Op::kNegate;
      std::vector<Keyed> rows;
      rows.reserve(focus.size());
      for (size_t i = 0; i < focus.size(); ++i) {
        Keyed row{focus[i], {}};
        for (size_t k = 0; k < argc; ++k) {
          const Node& key = descending[k] ? *arg(k).children[0] : arg(k);
          row.keys.push_back(evalWithThis(key, focus[i], static_cast<int64_t>(i)));
        }
        rows.push_back(std::move(row));
      }
      auto less = [&](const Keyed& a, const Keyed& b) {
        if (argc == 0) {
          auto order = compare(a.item, b.item);
          return order.value_or(0) < 0;
        }
        for (size_t k = 0; k < argc; ++k) {
          const Collection& ka = a.keys[k];
          const Collection& kb = b.keys[k];
          if (ka.empty() || kb.empty()) {
            // Items without a key come first, in either direction (as the suite expects).
            if (ka.empty() == kb.empty()) continue;
            return ka.empty();
          }
          int order = compare(ka[0], kb[0]).value_or(0);
          if (order != 0) return descending[k] ? order > 0 : order < 0;
        }
        return false;
      };
      std::stable_sort(rows.begin(), rows.end(), less);
      Collection out;
      for (auto& row : rows) out.push_back(std::move(row.item));
      return out;
    }

    // ---- conversion ----
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
      const Item* item = single(node.name.c_str());
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
          if (converted && argc > 0) {
            auto unit = stringArg(0);
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

    // ---- strings ----
    case Fn::kIndexOf: {
      auto text = stringFocus();
      auto sub = stringArg(0);
      if (!text || !sub) return {};
      size_t pos = text->find(*sub);
      return {Item::integer(pos == std::string::npos ? -1 : static_cast<int64_t>(pos))};
    }
    case Fn::kSubstring: {
      auto text = stringFocus();
      auto start = integerArg(0);
      if (!text || !start) return {};
      if (*start < 0 || static_cast<size_t>(*start) >= text->size()) return {};
      if (argc > 1) {
        auto length = integerArg(1);
        if (!length) return {Item::string(text->substr(static_cast<size_t>(*start)))};
        if (*length <= 0) return {Item::string("")};
        return {Item::string(text->substr(static_cast<size_t>(*start), static_cast<size_t>(*length)))};
      }
      return {Item::string(text->substr(static_cast<size_t>(*start)))};
    }
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContainsStr: {
      auto text = stringFocus();
      auto sub = stringArg(0);
      if (!text || !sub) return {};
      bool result;
      if (node.fn == Fn::kStartsWith) {
        result = text->rfind(*sub, 0) == 0;
      } else if (node.fn == Fn::kEndsWith) {
        result = text->size() >= sub->size() &&
                 text->compare(text->size() - sub->size(), sub->size(), *sub) == 0;
      } else {
        result = text->find(*sub) != std::string::npos;
      }
      return boolean(result);
    }
    case Fn::kUpper:
    case Fn::kLower: {
      auto text = stringFocus();
      if (!text) return {};
      for (char& c : *text) {
        c = static_cast<char>(node.fn == Fn::kUpper ? std::toupper(static_cast<unsigned char>(c))
                                                    : std::tolower(static_cast<unsigned char>(c)));
      }
      return {Item::string(std::move(*text))};
    }
    case Fn::kReplace: {
      auto text = stringFocus();
      auto pattern = stringArg(0);
      auto replacement = stringArg(1);
      if (!text || !pattern || !replacement) return {};
      std::string out;
      if (pattern->empty()) {
        out = *replacement;
        for (char c : *text) {
          out.push_back(c);
          out += *replacement;
        }
        return {Item::string(out)};
      }
      size_t pos = 0;
      for (;;) {
        size_t found = text->find(*pattern, pos);
        if (found == std::string::npos) break;
        out.append(*text, pos, found - pos);
        out += *replacement;
        pos = found + pattern->size();
      }
      out.append(*text, pos, std::string::npos);
      return {Item::string(out)};
    }
    case Fn::kMatches:
    case Fn::kMatchesFull: {
      auto text = stringFocus();
      auto pattern = stringArg(0);
      if (!text || !pattern) return {};
      // A literal pattern was compiled with the expression; others are cached per thread.
      regex::RegexPtr runtime;
      const regex::Regex& re = node.regex ? *node.regex : *(runtime = makeRegex(*pattern));
      bool result = node.fn == Fn::kMatches ? re.search(*text) : re.matchesWhole(*text);
      return boolean(result);
    }
    case Fn::kReplaceMatches: {
      auto text = stringFocus();
      auto pattern = stringArg(0);
      auto replacement = stringArg(1);
      if (!text || !pattern || !replacement) return {};
      if (pattern->empty()) return {Item::string(*text)};
      regex::RegexPtr runtime;
      const regex::Regex& re = node.regex ? *node.regex : *(runtime = makeRegex(*pattern));
      return {Item::string(re.replaceAll(*text, *replacement))};
    }
    case Fn::kLength: {
      auto text = stringFocus();
      if (!text) return {};
      return {Item::integer(static_cast<int64_t>(utf8Length(*text)))};
    }
    case Fn::kToChars: {
      auto text = stringFocus();
      if (!text) return {};
      Collection out;
      for (size_t i = 0; i < text->size();) {
        size_t length = 1;
        while (i + length < text->size() &&
               (static_cast<unsigned char>((*text)[i + length]) & 0xC0) == 0x80) {
          ++length;
        }
        out.push_back(Item::string(text->substr(i, length)));
        i += length;
      }
      return out;
    }
    case Fn::kSplit: {
      auto text = stringFocus();
      auto separator = stringArg(0);
      if (!text || !separator) return {};
      Collection out;
      if (separator->empty()) {
        out.push_back(Item::string(*text));
        return out;
      }
      size_t pos = 0;
      for (;;) {
        size_t found = text->find(*separator, pos);
        if (found == std::string::npos) {
          out.push_back(Item::string(text->substr(pos)));
          break;
        }
        out.push_back(Item::string(text->substr(pos, found - pos)));
        pos = found + separator->size();
      }
      return out;
    }
    case Fn::kJoin: {
      std::string separator(argc > 0 ? stringArg(0).value_or("") : "");
      if (focus.empty()) return {};
      std::string out;
      bool first = true;
      for (const Item& item : focus) {
        if (valueless(item)) continue;
        Val val = view(item);
        if (val.kind != Item::Kind::kString) throw EvalError{"join() requires strings"};
        if (!first) out += separator;
        first = false;
        out.append(val.text);
      }
      return {Item::string(out)};
    }
    case Fn::kTrim: {
      auto text = stringFocus();
      if (!text) return {};
      size_t begin = text->find_first_not_of(" \t\r\n");
      if (begin == std::string::npos) return {Item::string("")};
      size_t end = text->find_last_not_of(" \t\r\n");
      return {Item::string(text->substr(begin, end - begin + 1))};
    }
    case Fn::kEncode:
    case Fn::kDecode:
    case Fn::kEscape:
    case Fn::kUnescape: {
      auto text = stringFocus();
      auto format = stringArg(0);
      if (!text || !format) return {};
      if (node.fn == Fn::kEncode) {
        if (*format == "base64" || *format == "urlbase64") {
          return {Item::string(base64Encode(*text, *format == "urlbase64"))};
        }
        if (*format == "hex") {
          std::string out;
          char buffer[4];
          for (unsigned char c : *text) {
            std::snprintf(buffer, sizeof buffer, "%02x", c);
            out += buffer;
          }
          return {Item::string(out)};
        }
        return {};
      }
      if (node.fn == Fn::kDecode) {
        if (*format == "base64" || *format == "urlbase64") {
          auto decoded = base64Decode(*text);
          if (!decoded) return {};
          return {Item::string(*decoded)};
        }
        if (*format == "hex") {
          if (text->size() % 2 != 0) return {};
          std::string out;
          for (size_t i = 0; i < text->size(); i += 2) {
            out.push_back(static_cast<char>(std::strtol(text->substr(i, 2).c_str(), nullptr, 16)));
          }
          return {Item::string(out)};
        }
        return {};
      }
      if (node.fn == Fn::kEscape) {
        if (*format == "html") return {Item::string(htmlEscape(*text))};
        if (*format == "json") {
          std::string out;
          json::appendEscaped(*text, out);
          return {Item::string(out)};
        }
        return {};
      }
      if (*format == "html") return {Item::string(htmlUnescape(*text))};
      if (*format == "json") return {Item::string(jsonUnescape(*text))};
      return {};
    }

    // ---- math ----
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
      auto val = numberFocus();
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
          Collection base_collection = evalArg(arg(0));
          const Item* base = singleton(base_collection, "log()");
          if (base == nullptr) return {};
          double b = view(*base).decimal.toDouble();
          if (x.sign() <= 0 || b <= 0 || b == 1) return {};
          return inexact(std::log(x.toDouble()) / std::log(b));
        }
        case Fn::kPower: {
          Collection exponent_collection = evalArg(arg(0));
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
          if (argc > 0) {
            auto requested = integerArg(0);
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
      const Item* item = single(node.name.c_str());
      if (item == nullptr) return {};
      std::optional<int64_t> precision;
      if (argc > 0) {
        precision = integerArg(0);
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
      const Item* item = single("comparable()");
      Collection other_collection = evalArg(arg(0));
      const Item* other = singleton(other_collection, "comparable()");
      if (item == nullptr || other == nullptr) return {};
      Val a = view(*item), b = view(*other);
      if (a.kind != Item::Kind::kQuantity || b.kind != Item::Kind::kQuantity) return boolean(false);
      auto ca = canonicalQuantity(a.decimal.toDouble(), a.text);
      auto cb = canonicalQuantity(b.decimal.toDouble(), b.text);
      return boolean(ca && cb && ca->dimension == cb->dimension);
    }
    case Fn::kPrecision: {
      const Item* item = single("precision()");
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

    // ---- tree navigation ----
    case Fn::kChildren: {
      Collection out;
      for (const Item& item : focus) allChildren(item, out);
      return out;
    }
    case Fn::kDescendants: {
      // Breadth-first, appending to the result itself: out[level_start, level_end) is the level
      // whose children come next.
      Collection out;
      // A resource has tens to hundreds of descendants: growing the buffer from a few items
      // moved each of them several times.
      out.reserve(kDescendantsReserve);
      for (const Item& item : focus) allChildren(item, out);
      size_t level_start = 0;
      for (int depth = 0; level_start < out.size() && depth < 100; ++depth) {
        size_t level_end = out.size();
        // allChildren() reads its parent before it appends (which may reallocate `out`).
        for (size_t i = level_start; i < level_end; ++i) allChildren(out[i], out);
        level_start = level_end;
      }
      return out;
    }

    // ---- FHIR-specific ----
    case Fn::kExtension: {
      auto url = stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        Collection extensions;
        navigate(item, "extension", extensions);
        for (const Item& extension : extensions) {
          if (extension.value() == nullptr || !extension.value()->IsObject()) continue;
          if (json::getString(*extension.value(), "url") == *url) out.push_back(extension);
        }
      }
      return out;
    }
    case Fn::kHasValue: {
      const Item* item = focus.size() == 1 ? &focus[0] : nullptr;
      if (item == nullptr) return boolean(false);
      if (!item->isNode()) return boolean(true);
      return boolean(item->value() != nullptr && !item->value()->IsObject() &&
                     !item->value()->IsArray());
    }
    case Fn::kGetValue: {
      const Item* item = focus.size() == 1 ? &focus[0] : nullptr;
      if (item == nullptr) return {};
      Item value = toSystem(*item);
      if (value.isNode()) return {};
      return {value};
    }
    case Fn::kHtmlChecks: {
      // Basic narrative check: no script/object/embed elements, no event-handler attributes.
      const Item* item = single("htmlChecks()");
      if (item == nullptr) return boolean(false);
      Val val = view(*item);
      if (val.kind != Item::Kind::kString) return boolean(false);
      std::string lower;
      for (char c : val.text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      static constexpr std::string_view kForbidden[] = {"<script", "<object", "<embed", "<iframe",
                                                        "<form", "<applet", "javascript:"};
      for (auto token : kForbidden) {
        if (lower.find(token) != std::string::npos) return boolean(false);
      }
      // An on*= handler attribute inside a tag. RE2, not std::regex: the narrative is input.
      static const regex::RegexPtr kHandler =
          *regex::Regex::compile(R"(<[^>]*\son[a-z]+\s*=)", regex::Dialect::kFhirPath);
      if (kHandler->search(lower)) return boolean(false);
      return boolean(lower.rfind("<div", 0) == 0 || lower.find("<div") != std::string::npos);
    }
    case Fn::kConformsTo: {
      auto url = stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        if (context_.conforms_to) {
          auto result = context_.conforms_to(*url, item);
          if (result) out.push_back(Item::boolean(*result));
          continue;
        }
        constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
        if (url->rfind(kCore, 0) != 0) {
          throw EvalError{"conformsTo(): unknown profile '" + std::string(*url) + "'"};
        }
        std::string type(url->substr(kCore.size()));
        if (model_ != nullptr && model_->type(type) == nullptr) {
          throw EvalError{"conformsTo(): unknown profile '" + std::string(*url) + "'"};
        }
        out.push_back(Item::boolean(isType(item, "FHIR", type)));
      }
      return out;
    }
    case Fn::kMemberOf: {
      auto url = stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        if (!context_.member_of) continue;
        auto result = context_.member_of(*url, item);
        if (result) out.push_back(Item::boolean(*result));
      }
      return out;
    }
    case Fn::kResolve: {
      Collection out;
      for (const Item& item : focus) {
        std::string reference;
        Val val = view(item);
        if (val.kind == Item::Kind::kString) {
          reference = std::string(val.text);
        } else if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
          reference = std::string(json::getString(*item.value(), "reference").value_or(""));
        }
        if (reference.empty()) continue;
        bool found = false;
        auto searchContained = [&](const Item& resource) {
          if (found || !resource.isNode() || resource.value() == nullptr ||
              reference[0] != '#') {
            return;
          }
          const json::Value* contained = json::find(*resource.value(), "contained");
          if (contained == nullptr || !contained->IsArray()) return;
          for (const auto& entry : contained->GetArray()) {
            if (json::getString(entry, "id") == std::string_view(reference).substr(1)) {
              out.push_back(makeResourceItem(&entry, model_));
              found = true;
              return;
            }
          }
        };
        searchContained(resourceItem());
        searchContained(rootItem());
        if (!found && rootItem().isNode() && rootItem().value() != nullptr &&
            rootItem().typeName() == "Bundle") {
          const json::Value* entries = json::find(*rootItem().value(), "entry");
          if (entries != nullptr && entries->IsArray()) {
            for (const auto& entry : entries->GetArray()) {
              const json::Value* resource = json::find(entry, "resource");
              if (resource == nullptr || !resource->IsObject()) continue;
              auto full_url = json::getString(entry, "fullUrl");
              auto type = json::getString(*resource, "resourceType");
              auto id = json::getString(*resource, "id");
              bool match = (full_url && *full_url == reference) ||
                           (type && id &&
                            (reference == std::string(*type) + "/" + std::string(*id) ||
                             (reference.size() > type->size() + id->size() + 1 &&
                              reference.compare(reference.size() - type->size() - id->size() - 1,
                                                std::string::npos,
                                                "/" + std::string(*type) + "/" + std::string(*id)) == 0)));
              if (match) {
                out.push_back(makeResourceItem(resource, model_));
                found = true;
                break;
              }
            }
          }
        }
        if (!found && context_.resolve) {
          if (auto resolved = context_.resolve(reference)) out.push_back(*resolved);
        }
      }
      return out;
    }
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath

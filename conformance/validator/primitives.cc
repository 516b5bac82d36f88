// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/primitives.h"

#include <array>
#include <cstdint>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

namespace fhir::validator {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `count` digits at `pos` into `value`.
bool digits(std::string_view text, size_t& pos, size_t count, int& value) {
  if (pos + count > text.size()) return false;
  value = 0;
  for (size_t i = 0; i < count; ++i) {
    char c = text[pos + i];
    if (!isDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  pos += count;
  return true;
}

bool isLeap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int daysInMonth(int year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && isLeap(year) ? 29 : kDays[month - 1];
}

// YYYY, YYYY-MM or YYYY-MM-DD at the start; `pos` ends after it; `full` when a day is present.
bool datePart(std::string_view text, size_t& pos, bool& full) {
  int year = 0, month = 0, day = 0;
  full = false;
  if (!digits(text, pos, 4, year) || year == 0) return false;
  if (pos == text.size() || text[pos] != '-') return true;
  ++pos;
  if (!digits(text, pos, 2, month) || month < 1 || month > 12) return false;
  if (pos == text.size() || text[pos] != '-') return true;
  ++pos;
  if (!digits(text, pos, 2, day) || day < 1 || day > daysInMonth(year, month)) return false;
  full = true;
  return true;
}

// hh:mm:ss(.fraction)? ; 24:00:00 is not allowed in R4.
bool timePart(std::string_view text, size_t& pos) {
  int hour = 0, minute = 0, second = 0;
  if (!digits(text, pos, 2, hour) || hour > 23) return false;
  if (pos >= text.size() || text[pos++] != ':') return false;
  if (!digits(text, pos, 2, minute) || minute > 59) return false;
  if (pos >= text.size() || text[pos++] != ':') return false;
  if (!digits(text, pos, 2, second) || second > 60) return false;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < text.size() && isDigit(text[pos])) ++pos;
    if (pos == start) return false;
  }
  return true;
}

// Z or +hh:mm / -hh:mm.
bool offsetPart(std::string_view text, size_t& pos) {
  if (pos >= text.size()) return false;
  if (text[pos] == 'Z') {
    ++pos;
    return true;
  }
  if (text[pos] != '+' && text[pos] != '-') return false;
  ++pos;
  int hour = 0, minute = 0;
  if (!digits(text, pos, 2, hour) || hour > 14) return false;
  if (pos >= text.size() || text[pos++] != ':') return false;
  return digits(text, pos, 2, minute) && minute <= 59;
}

bool isWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool isValidCode(std::string_view text) {
  // [^\s]+(\s[^\s]+)*
  if (text.empty() || isWhitespace(text.front()) || isWhitespace(text.back())) return false;
  for (size_t i = 1; i < text.size(); ++i) {
    if (isWhitespace(text[i]) && isWhitespace(text[i - 1])) return false;
  }
  return true;
}

bool hasNonWhitespace(std::string_view text) {
  for (char c : text) {
    if (!isWhitespace(c)) return true;
  }
  return false;
}

bool isValidUri(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (isWhitespace(c)) return false;
  }
  return true;
}

bool isValidOid(std::string_view text) {
  // urn:oid:[0-2](\.(0|[1-9][0-9]*))+
  constexpr std::string_view kPrefix = "urn:oid:";
  if (text.substr(0, kPrefix.size()) != kPrefix) return false;
  text.remove_prefix(kPrefix.size());
  if (text.size() < 3 || text[0] < '0' || text[0] > '2' || text[1] != '.') return false;
  size_t pos = 1;
  while (pos < text.size()) {
    if (text[pos] != '.') return false;
    ++pos;
    size_t start = pos;
    while (pos < text.size() && isDigit(text[pos])) ++pos;
    if (pos == start || (text[start] == '0' && pos - start > 1)) return false;
  }
  return true;
}

bool isHexLower(char c) { return isDigit(c) || (c >= 'a' && c <= 'f'); }

bool isValidUuid(std::string_view text) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (text.substr(0, kPrefix.size()) != kPrefix) return false;
  text.remove_prefix(kPrefix.size());
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !isHexLower(text[i])) return false;
  }
  return true;
}

std::string quoted(std::string_view text) {
  std::string out = "'";
  out.append(text.substr(0, 200));
  out += "'";
  return out;
}

constexpr size_t kMaxStringBytes = 1024 * 1024;

}  // namespace

bool isPrimitiveType(std::string_view type) {
  static constexpr std::array<std::string_view, 20> kTypes = {
      "boolean", "integer", "string",  "decimal",  "uri",          "url",  "canonical",
      "base64Binary", "instant", "date", "dateTime", "time", "code", "oid", "id",
      "markdown", "unsignedInt", "positiveInt", "uuid", "xhtml"};
  for (std::string_view candidate : kTypes) {
    if (candidate == type) return true;
  }
  return false;
}

JsonKind jsonKindOf(std::string_view type) {
  if (type == "boolean") return JsonKind::kBoolean;
  if (type == "integer" || type == "decimal" || type == "unsignedInt" || type == "positiveInt") {
    return JsonKind::kNumber;
  }
  return JsonKind::kString;
}

bool isValidId(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    bool ok = isDigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool isValidDate(std::string_view text) {
  size_t pos = 0;
  bool full = false;
  return datePart(text, pos, full) && pos == text.size();
}

bool isValidDateTime(std::string_view text, bool& missing_offset) {
  missing_offset = false;
  size_t pos = 0;
  bool full = false;
  if (!datePart(text, pos, full)) return false;
  if (pos == text.size()) return true;
  if (!full || text[pos] != 'T') return false;
  ++pos;
  if (!timePart(text, pos)) return false;
  if (pos == text.size()) {
    missing_offset = true;
    return false;
  }
  return offsetPart(text, pos) && pos == text.size();
}

bool isValidInstant(std::string_view text) {
  size_t pos = 0;
  bool full = false;
  if (!datePart(text, pos, full) || !full || pos >= text.size() || text[pos] != 'T') return false;
  ++pos;
  return timePart(text, pos) && offsetPart(text, pos) && pos == text.size();
}

bool isValidTime(std::string_view text) {
  size_t pos = 0;
  return timePart(text, pos) && pos == text.size();
}

bool isValidBase64(std::string_view text) {
  // (\s*([0-9a-zA-Z\+/=]){4}\s*)+ : groups of four base64 characters, whitespace between them.
  size_t count = 0;
  size_t padding = 0;
  for (char c : text) {
    if (isWhitespace(c)) continue;
    bool alnum = isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '/';
    if (c == '=') {
      ++padding;
    } else if (!alnum || padding > 0) {
      return false;
    }
    ++count;
  }
  return count > 0 && count % 4 == 0 && padding <= 2;
}

bool ucumFactor(std::string_view code, double& factor, char& dimension) {
  struct Unit {
    std::string_view code;
    double factor;
    char dimension;
  };
  static constexpr Unit kUnits[] = {
      {"m", 1, 'L'},     {"km", 1000, 'L'}, {"cm", 0.01, 'L'}, {"mm", 0.001, 'L'},
      {"[mi_i]", 1609.344, 'L'}, {"[in_i]", 0.0254, 'L'}, {"[ft_i]", 0.3048, 'L'},
      {"g", 1, 'M'},     {"kg", 1000, 'M'}, {"mg", 0.001, 'M'}, {"ug", 1e-6, 'M'}, {"[lb_av]", 453.59237, 'M'},
      {"s", 1, 'T'},     {"min", 60, 'T'},  {"h", 3600, 'T'},   {"d", 86400, 'T'},
      {"wk", 604800, 'T'}, {"L", 1, 'V'},   {"mL", 0.001, 'V'},  {"dL", 0.1, 'V'}};
  for (const Unit& unit : kUnits) {
    if (unit.code == code) {
      factor = unit.factor;
      dimension = unit.dimension;
      return true;
    }
  }
  return false;
}

size_t base64DecodedLength(std::string_view text) {
  size_t count = 0, padding = 0;
  for (char c : text) {
    if (isWhitespace(c)) continue;
    ++count;
    if (c == '=') ++padding;
  }
  return count / 4 * 3 - std::min<size_t>(padding, 2);
}

bool checkPrimitive(std::string_view type, const json::Value& value, std::string& message,
                    std::string& code) {
  JsonKind kind = jsonKindOf(type);
  code = "structure";
  switch (kind) {
    case JsonKind::kBoolean:
      if (!value.IsBool()) {
        message = "The value for a boolean must be a JSON boolean (true or false)";
        return false;
      }
      return true;
    case JsonKind::kNumber: {
      if (!json::isNumber(value)) {
        message = "The value for a " + std::string(type) + " must be a JSON number" +
                  (json::isString(value) ? ", not a string" : "");
        return false;
      }
      if (type == "decimal") return true;
      std::string text = json::numberText(value);
      code = "invalid";
      auto integer = json::numberAsInt64(value);
      if (!integer) {
        message = "The value '" + text + "' is not a valid integer";
        return false;
      }
      if (*integer < INT32_MIN || *integer > INT32_MAX) {
        message = "The value '" + text + "' is outside the range of a 32-bit integer";
        return false;
      }
      if (type == "positiveInt" && *integer < 1) {
        message = "The value '" + text + "' must be 1 or more (positiveInt)";
        return false;
      }
      if (type == "unsignedInt" && *integer < 0) {
        message = "The value '" + text + "' must be 0 or more (unsignedInt)";
        return false;
      }
      return true;
    }
    case JsonKind::kString:
      break;
  }
  if (!json::isString(value)) {
    message = std::string("The value for a ") + std::string(type) + " must be a JSON string" +
              (json::isNumber(value) ? ", not a number" : value.IsBool() ? ", not a boolean" : "");
    return false;
  }
  std::string_view text = json::stringView(value);
  code = "invalid";
  if (text.size() > kMaxStringBytes) {
    message = "value is longer than permitted maximum length of 1 MB (1048576 bytes)";
    return false;
  }
  if (!hasNonWhitespace(text)) {
    message = "@value cannot be empty or only whitespace";
    return false;
  }
  bool ok = true;
  if (type == "id") {
    ok = isValidId(text);
    if (!ok) message = "Not a valid id: " + quoted(text);
  } else if (type == "code") {
    ok = isValidCode(text);
    if (!ok) message = "Not a valid code: " + quoted(text) + " (no leading, trailing or double whitespace)";
  } else if (type == "date") {
    ok = isValidDate(text);
    if (!ok) message = "Not a valid date format: " + quoted(text);
  } else if (type == "dateTime") {
    bool missing_offset = false;
    ok = isValidDateTime(text, missing_offset);
    if (!ok) {
      message = missing_offset ? "If a date has a time, it must have a timezone"
                               : "Not a valid dateTime format: " + quoted(text);
    }
  } else if (type == "instant") {
    ok = isValidInstant(text);
    if (!ok) message = "Not a valid instant (date, time with seconds, and timezone required): " + quoted(text);
  } else if (type == "time") {
    ok = isValidTime(text);
    if (!ok) message = "Not a valid time format: " + quoted(text);
  } else if (type == "uri" || type == "url" || type == "canonical") {
    ok = isValidUri(text);
    if (!ok) {
      message = "URI values cannot have whitespace: " + quoted(text);
    } else if (text.substr(0, 9) == "urn:uuid:") {
      ok = isValidUuid(text);
      if (!ok) message = "UUIDs must be valid and lowercase (" + std::string(text.substr(9, 200)) + ")";
    } else if (text.substr(0, 8) == "urn:oid:") {
      ok = isValidOid(text);
      if (!ok) message = "OIDs must be valid (" + std::string(text.substr(8, 200)) + ")";
    }
  } else if (type == "oid") {
    ok = isValidOid(text);
    if (!ok) message = "Not a valid oid: " + quoted(text);
  } else if (type == "uuid") {
    ok = isValidUuid(text);
    if (!ok) message = "UUIDs must be valid and lowercase (" + std::string(text.substr(9, 200)) + ")";
  } else if (type == "base64Binary") {
    ok = isValidBase64(text);
    if (!ok) message = "The value " + quoted(text) + " is not a valid Base64 value";
  } else if (type == "xhtml") {
    size_t start = 0;
    while (start < text.size() && isWhitespace(text[start])) ++start;
    ok = text.substr(start, 4) == "<div";
    if (!ok) message = "The narrative must be an XHTML <div> element";
  }
  return ok;
}

namespace {

bool isAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isWordChar(char c) { return isAsciiLetter(c) || (c >= '0' && c <= '9') || c == '_'; }
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// True when text[at..] (just after a '<') is `name (attr="value")* \s* /? >`.
bool startTagAt(std::string_view text, size_t at) {
  if (at >= text.size() || !isAsciiLetter(text[at])) return false;
  size_t i = at + 1;
  while (i < text.size() && isWordChar(text[i])) ++i;
  for (;;) {
    size_t mark = i;
    while (i < text.size() && isSpace(text[i])) ++i;
    if (i == mark || i >= text.size() || !isAsciiLetter(text[i])) {
      i = mark;
      break;
    }
    while (i < text.size() && isWordChar(text[i])) ++i;
    while (i < text.size() && isSpace(text[i])) ++i;
    if (i >= text.size() || text[i] != '=') return false;
    ++i;
    while (i < text.size() && isSpace(text[i])) ++i;
    if (i >= text.size() || text[i] != '"') return false;
    size_t close = text.find('"', i + 1);
    if (close == std::string_view::npos) return false;
    i = close + 1;
  }
  while (i < text.size() && isSpace(text[i])) ++i;
  if (i < text.size() && text[i] == '/') ++i;
  return i < text.size() && text[i] == '>';
}

}  // namespace

bool containsHtmlTag(std::string_view text) {
  for (size_t at = text.find('<'); at != std::string_view::npos; at = text.find('<', at + 1)) {
    if (startTagAt(text, at + 1)) return true;
  }
  return false;
}

bool markdownContainsHtmlTag(std::string_view text) {
  bool in_code = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      ++i;  // an escaped character is literal text
      continue;
    }
    if (c == '`') in_code = !in_code;
    if (c != '<' || in_code) continue;
    size_t at = i + 1;
    if (at < text.size() && text[at] == '/') ++at;
    if (at >= text.size() || !isAsciiLetter(text[at])) continue;
    size_t end = at + 1;
    while (end < text.size() && (isWordChar(text[end]) || text[end] == '-')) ++end;
    if (end < text.size() && (isSpace(text[end]) || text[end] == '/' || text[end] == '>')) return true;
  }
  return false;
}

bool isExampleUrl(std::string_view text) {
  size_t scheme = text.find("://");
  if (scheme == std::string_view::npos) return false;
  std::string_view host = text.substr(scheme + 3);
  host = host.substr(0, host.find_first_of("/?#"));
  if (size_t at = host.rfind('@'); at != std::string_view::npos) host = host.substr(at + 1);
  host = host.substr(0, host.find(':'));
  std::string lower;
  for (char c : host) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view domain : {"example.org", "example.com", "example.net"}) {
    if (lower == domain) return true;
    if (lower.size() > domain.size() && lower.compare(lower.size() - domain.size(), domain.size(), domain) == 0 &&
        lower[lower.size() - domain.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

}  // namespace fhir::validator

// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "String manipulation": indexOf(), substring(), startsWith(),
// endsWith(), contains(), upper(), lower(), replace(), matches(), matchesFull(), replaceMatches(),
// length(), toChars(), split(), join(), trim(), encode(), decode(), escape(), unescape().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/common/html.h"
#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

namespace {

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

size_t utf8Length(std::string_view text) {
  size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
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


Collection Evaluator::stringFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kIndexOf: {
      auto text = call.stringFocus();
      auto sub = call.stringArg(0);
      if (!text || !sub) return {};
      size_t pos = text->find(*sub);
      return {Item::integer(pos == std::string::npos ? -1 : static_cast<int64_t>(pos))};
    }
    case Fn::kSubstring: {
      auto text = call.stringFocus();
      auto start = call.integerArg(0);
      if (!text || !start) return {};
      if (*start < 0 || static_cast<size_t>(*start) >= text->size()) return {};
      if (call.argc > 1) {
        auto length = call.integerArg(1);
        if (!length) return {Item::string(text->substr(static_cast<size_t>(*start)))};
        if (*length <= 0) return {Item::string("")};
        return {Item::string(text->substr(static_cast<size_t>(*start), static_cast<size_t>(*length)))};
      }
      return {Item::string(text->substr(static_cast<size_t>(*start)))};
    }
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContainsStr: {
      auto text = call.stringFocus();
      auto sub = call.stringArg(0);
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
      auto text = call.stringFocus();
      if (!text) return {};
      for (char& c : *text) {
        c = static_cast<char>(node.fn == Fn::kUpper ? std::toupper(static_cast<unsigned char>(c))
                                                    : std::tolower(static_cast<unsigned char>(c)));
      }
      return {Item::string(std::move(*text))};
    }
    case Fn::kReplace: {
      auto text = call.stringFocus();
      auto pattern = call.stringArg(0);
      auto replacement = call.stringArg(1);
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
      auto text = call.stringFocus();
      auto pattern = call.stringArg(0);
      if (!text || !pattern) return {};
      // A literal pattern was compiled with the expression; others are cached per thread.
      regex::RegexPtr runtime;
      const regex::Regex& re = node.regex ? *node.regex : *(runtime = makeRegex(*pattern));
      bool result = node.fn == Fn::kMatches ? re.search(*text) : re.matchesWhole(*text);
      return boolean(result);
    }
    case Fn::kReplaceMatches: {
      auto text = call.stringFocus();
      auto pattern = call.stringArg(0);
      auto replacement = call.stringArg(1);
      if (!text || !pattern || !replacement) return {};
      if (pattern->empty()) return {Item::string(*text)};
      regex::RegexPtr runtime;
      const regex::Regex& re = node.regex ? *node.regex : *(runtime = makeRegex(*pattern));
      return {Item::string(re.replaceAll(*text, *replacement))};
    }
    case Fn::kLength: {
      auto text = call.stringFocus();
      if (!text) return {};
      return {Item::integer(static_cast<int64_t>(utf8Length(*text)))};
    }
    case Fn::kToChars: {
      auto text = call.stringFocus();
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
      auto text = call.stringFocus();
      auto separator = call.stringArg(0);
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
      std::string separator(call.argc > 0 ? call.stringArg(0).value_or("") : "");
      if (focus.empty()) return {};
      std::string out;
      bool first = true;
      for (const Item& item : focus) {
        if (call.valueless(item)) continue;
        Val val = view(item);
        if (val.kind != Item::Kind::kString) throw EvalError{"join() requires strings"};
        if (!first) out += separator;
        first = false;
        out.append(val.text);
      }
      return {Item::string(out)};
    }
    case Fn::kTrim: {
      auto text = call.stringFocus();
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
      auto text = call.stringFocus();
      auto format = call.stringArg(0);
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
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath

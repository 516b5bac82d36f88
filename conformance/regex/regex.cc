// SPDX-License-Identifier: Apache-2.0
#include "conformance/regex/regex.h"

#include <re2/re2.h>

#include <cctype>
#include <unordered_map>
#include <vector>

namespace fhir::regex {

namespace {

// Patterns come from senders: quote at most this much of one in a message.
constexpr size_t kQuoteLimit = 200;
// RE2's bound on a compiled program (its default): bigger patterns are an error, not a hang.
constexpr int64_t kMaxProgramBytes = 8 << 20;

std::string quoted(std::string_view pattern) {
  if (pattern.size() <= kQuoteLimit) return "'" + std::string(pattern) + "'";
  return "'" + std::string(pattern.substr(0, kQuoteLimit)) + "...' (" +
         std::to_string(pattern.size()) + " bytes)";
}

Error unsupported(std::string_view pattern, std::string_view construct) {
  return Error{"unsupported regular expression " + quoted(pattern) + ": " + std::string(construct) +
               " cannot be matched in linear time (RE2) and is not supported"};
}

bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Length of a counted repetition `{n}`, `{n,}`, `{n,m}` (or `{,m}`) starting at `at`, else 0.
size_t countedRepetition(std::string_view p, size_t at) {
  size_t i = at + 1;
  size_t digits = 0;
  while (i < p.size() && isDigit(p[i])) ++i, ++digits;
  if (i < p.size() && p[i] == ',') {
    ++i;
    while (i < p.size() && isDigit(p[i])) ++i, ++digits;
  }
  if (digits == 0 || i >= p.size() || p[i] != '}') return 0;
  return i + 1 - at;
}

}  // namespace

Result<std::string> translate(std::string_view p, Dialect dialect) {
  std::string out;
  out.reserve(p.size() + 8);
  bool in_class = false;
  size_t class_start = 0;          // index of the first member of the current class
  bool after_quantifier = false;   // the previous token was a quantifier (for `*+`, `{2}+`)
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) {
        out += c;  // RE2 reports the trailing backslash
        continue;
      }
      char e = p[i + 1];
      if (isDigit(e) && e != '0') {
        return unsupported(p, "a backreference (\\" + std::string(1, e) + ")");
      }
      if (e == 'k' && i + 2 < p.size() &&
          (p[i + 2] == '<' || p[i + 2] == '{' || p[i + 2] == '\'')) {
        return unsupported(p, "a named backreference (\\k<..>)");
      }
      if (e == 'i' || e == 'I' || e == 'c' || e == 'C') {
        return unsupported(p, "the XML name character class \\" + std::string(1, e));
      }
      if ((e == 'p' || e == 'P') && p.substr(i + 2, 3) == "{Is") {
        return unsupported(p, "a Unicode block escape (\\p{Is..})");
      }
      if (e == 'u' && i + 5 < p.size() && isHex(p[i + 2]) && isHex(p[i + 3]) &&
          isHex(p[i + 4]) && isHex(p[i + 5])) {
        out += "\\x{";
        out.append(p.substr(i + 2, 4));
        out += '}';
        i += 5;
        after_quantifier = false;
        continue;
      }
      out += c;
      out += e;
      ++i;
      // \p{..}, \P{..}, \x{..}: the braces belong to the escape, not a repetition.
      if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
        size_t close = p.find('}', i + 1);
        if (close != std::string_view::npos) {
          out.append(p.substr(i + 1, close - i));
          i = close;
        }
      }
      after_quantifier = false;
      continue;
    }
    if (in_class) {
      if (c == ']' && i != class_start) {
        in_class = false;
      } else if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') {  // a POSIX class [:alpha:], which RE2 has
          size_t end = p.find(":]", i + 2);
          if (end != std::string_view::npos) {
            out.append(p.substr(i, end + 2 - i));
            i = end + 1;
            continue;
          }
        }
        if (dialect == Dialect::kFhir && i > class_start && p[i - 1] == '-') {
          return unsupported(p, "XML Schema character class subtraction ([..-[..]])");
        }
        out += "\\[";  // a literal '[' inside a class (ECMAScript, PCRE)
        continue;
      }
      out += c;
      continue;
    }
    switch (c) {
      case '[':
        in_class = true;
        out += c;
        if (i + 1 < p.size() && p[i + 1] == '^') {
          out += '^';
          ++i;
        }
        class_start = i + 1;
        after_quantifier = false;
        continue;
      case '(':
        after_quantifier = false;
        if (i + 1 < p.size() && p[i + 1] == '?') {
          std::string_view rest = p.substr(i + 2);
          if (!rest.empty() && (rest[0] == '=' || rest[0] == '!')) {
            return unsupported(p, "a lookahead ((?= or (?!)");
          }
          if (rest.size() >= 2 && rest[0] == '<' && (rest[1] == '=' || rest[1] == '!')) {
            return unsupported(p, "a lookbehind ((?<= or (?<!)");
          }
          if (!rest.empty() && rest[0] == '>') return unsupported(p, "an atomic group ((?>)");
          if (!rest.empty() && rest[0] == '<') {  // (?<name>..) is RE2's (?P<name>..)
            out += "(?P<";
            i += 2;
            continue;
          }
          out += "(?";
          ++i;
          continue;
        }
        out += c;
        continue;
      case '*':
      case '+':
      case '?':
        if (after_quantifier && c == '+') {
          return unsupported(p, "a possessive quantifier (*+, ++, ?+)");
        }
        // `?` after a quantifier makes it lazy; a further `+` or `?` is then an error for RE2.
        after_quantifier = !after_quantifier;
        out += c;
        continue;
      case '{': {
        size_t length = countedRepetition(p, i);
        if (length > 0) {
          if (after_quantifier) {
            out += c;  // RE2 reports the double repetition
            continue;
          }
          out.append(p.substr(i, length));
          i += length - 1;
          after_quantifier = true;
          continue;
        }
        out += "\\{";  // a literal brace (ECMAScript and PCRE read it so)
        after_quantifier = false;
        continue;
      }
      default:
        out += c;
        after_quantifier = false;
        continue;
    }
  }
  return out;
}

Regex::Regex(std::string pattern, Dialect dialect, std::unique_ptr<re2::RE2> re)
    : pattern_(std::move(pattern)), dialect_(dialect), re_(std::move(re)) {}

Regex::~Regex() = default;

Result<RegexPtr> Regex::compile(std::string_view pattern, Dialect dialect) {
  auto translated = translate(pattern, dialect);
  if (!translated.ok()) return translated.error();
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_encoding(re2::RE2::Options::EncodingUTF8);
  options.set_dot_nl(dialect == Dialect::kFhirPath);
  options.set_max_mem(kMaxProgramBytes);
  auto re = std::make_unique<re2::RE2>(*translated, options);
  if (!re->ok()) {
    // RE2 quotes the offending part of the pattern, which may be most of it.
    std::string why = re->error();
    if (why.size() > kQuoteLimit) why = why.substr(0, kQuoteLimit) + "...";
    return Error{"invalid regular expression " + quoted(pattern) + ": " + why};
  }
  return RegexPtr(new Regex(std::string(pattern), dialect, std::move(re)));
}

Result<RegexPtr> Regex::cached(std::string_view pattern, Dialect dialect) {
  thread_local std::unordered_map<std::string, RegexPtr> compiled;
  std::string key;
  key.reserve(pattern.size() + 1);
  key += static_cast<char>('0' + static_cast<int>(dialect));
  key.append(pattern);
  auto found = compiled.find(key);
  if (found != compiled.end()) return found->second;
  auto regex = compile(pattern, dialect);
  if (!regex.ok()) return regex.error();
  if (compiled.size() >= 256) compiled.clear();  // bound memory for patterns built at run time
  compiled.emplace(std::move(key), *regex);
  return regex;
}

bool Regex::search(std::string_view text) const {
  return re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

bool Regex::matchesWhole(std::string_view text) const {
  return re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

namespace {

size_t utf8Step(std::string_view text, size_t at) {
  size_t next = at + 1;
  while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
  return next;
}

void appendGroup(std::string& out, const std::vector<re2::StringPiece>& groups, size_t index) {
  if (index < groups.size() && groups[index].data() != nullptr) {
    out.append(groups[index].data(), groups[index].size());
  }
}

}  // namespace

std::string Regex::replaceAll(std::string_view text, std::string_view replacement) const {
  const size_t group_count = static_cast<size_t>(re_->NumberOfCapturingGroups()) + 1;
  std::vector<re2::StringPiece> groups(group_count);
  const re2::StringPiece input(text.data(), text.size());
  std::string out;
  size_t copied = 0;  // text before this offset is in `out` already
  size_t pos = 0;
  while (pos <= text.size() &&
         re_->Match(input, pos, text.size(), re2::RE2::UNANCHORED, groups.data(),
                    static_cast<int>(group_count))) {
    size_t start = static_cast<size_t>(groups[0].data() - text.data());
    size_t end = start + groups[0].size();
    out.append(text.substr(copied, start - copied));
    for (size_t r = 0; r < replacement.size(); ++r) {
      char c = replacement[r];
      if (c != '$' || r + 1 >= replacement.size()) {
        out += c;
        continue;
      }
      char n = replacement[r + 1];
      if (n == '$') {
        out += '$';
        ++r;
      } else if (n == '&') {
        appendGroup(out, groups, 0);
        ++r;
      } else if (isDigit(n)) {
        // Two digits when that group exists ($12), else one ($1 then a literal 2).
        size_t index = static_cast<size_t>(n - '0');
        size_t used = 1;
        if (r + 2 < replacement.size() && isDigit(replacement[r + 2])) {
          size_t two = index * 10 + static_cast<size_t>(replacement[r + 2] - '0');
          if (two < group_count) index = two, used = 2;
        }
        if (index == 0 || index >= group_count) {
          out += c;  // not a group: literal, as ECMAScript does
          continue;
        }
        appendGroup(out, groups, index);
        r += used;
      } else if (n == '{') {
        size_t close = replacement.find('}', r + 2);
        if (close == std::string_view::npos) {
          out += c;
          continue;
        }
        std::string name(replacement.substr(r + 2, close - r - 2));
        const auto& names = re_->NamedCapturingGroups();
        auto found = names.find(name);
        if (found == names.end()) {
          out += c;
          continue;
        }
        appendGroup(out, groups, static_cast<size_t>(found->second));
        r = close;
      } else {
        out += c;
      }
    }
    if (end == start) {  // an empty match: keep the next character and search after it
      if (start >= text.size()) {
        copied = start;
        break;
      }
      size_t next = utf8Step(text, start);
      out.append(text.substr(start, next - start));
      copied = pos = next;
    } else {
      copied = pos = end;
    }
  }
  if (copied < text.size()) out.append(text.substr(copied));
  return out;
}

}  // namespace fhir::regex

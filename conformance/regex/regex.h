// SPDX-License-Identifier: Apache-2.0
#pragma once

// Regular expressions the gateway did not write itself (FHIRPath matches()/replaceMatches(),
// regex extensions on elements, Questionnaire `regex`, ValueSet `regex` filters), run on RE2:
// matching is linear in the text, uses no recursion, and a pattern's compiled size is bounded,
// so no pattern or text a sender chooses can hang or crash a worker.
//
//   auto re = regex::Regex::cached("[0-9]{3}", regex::Dialect::kFhir);   // Result<RegexPtr>
//   if (!re.ok()) report(re.message());          // "invalid regular expression '...': ..."
//   bool ok = (*re)->matchesWhole(text);
//
// Dialects and anchoring (which call uses which is the caller's choice; documented here):
//  * kFhirPath: FHIRPath N1 (R4) regexes: PCRE-like, case-sensitive, "single line" mode ('.'
//    matches newlines). `matches()` is an unanchored search (as in fhirpath.js and the R4 suite:
//    'a/Library/b'.matches('Library') is true); `matchesFull()` matches the whole value;
//    `replaceMatches()` replaces every match.
//  * kFhir: the regex extension on elements and primitives
//    (http://hl7.org/fhir/StructureDefinition/regex), Questionnaire `regex`
//    (http://hl7.org/fhir/StructureDefinition/regex on items) and ValueSet filters with op
//    `regex`. These are XML-Schema-style patterns and are whole-value matches (matchesWhole()),
//    as in XML Schema and the HL7 validator; '.' does not match newlines. `^` and `$` are read
//    as anchors, as the HL7 validator (Java) does, which is harmless for whole-value matching.
//  * Both: `\p{L}`, `\p{Lu}`, `\P{..}` and `\p{Greek}` Unicode classes work over UTF-8 text.
//    `\uXXXX` is read as the code point. `(?<name>..)` is a named group.
//  * Not translatable, reported as errors naming the construct: backreferences (`\1`, `\k<..>`),
//    lookahead and lookbehind (`(?=`, `(?!`, `(?<=`, `(?<!`), atomic groups `(?>`, possessive
//    quantifiers (`a*+`), XML Schema class subtraction (`[a-z-[aeiou]]`), XML name classes
//    (`\i`, `\c`) and Unicode block escapes (`\p{IsBasicLatin}`). Patterns whose compiled
//    program exceeds the memory bound (e.g. `((a{100}){100}){100}`) are errors too.
//
// A Regex is immutable and may be used by many threads at once.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conformance/common/result.h"

namespace re2 {
class RE2;
}

namespace fhir::regex {

enum class Dialect : uint8_t {
  kFhirPath,  // FHIRPath matches()/matchesFull()/replaceMatches(): '.' matches newlines
  kFhir,      // element/Questionnaire regex extensions, ValueSet regex filters
};

class Regex;
using RegexPtr = std::shared_ptr<const Regex>;

class Regex {
 public:
  // Translates `pattern` from `dialect` and compiles it. Error: "invalid regular expression
  // '<pattern>': <why>" or "unsupported regular expression '<pattern>': <construct> ...".
  static Result<RegexPtr> compile(std::string_view pattern, Dialect dialect);
  // compile() through a per-thread cache (bounded; compiling costs far more than matching, and
  // the same few patterns are matched over and over). Errors are not cached.
  static Result<RegexPtr> cached(std::string_view pattern, Dialect dialect);

  // True when some part of `text` matches (unanchored search).
  bool search(std::string_view text) const;
  // True when the whole of `text` matches.
  bool matchesWhole(std::string_view text) const;
  // Every non-overlapping match replaced by `replacement`, in which `$1`..`$99` and `${name}`
  // insert a group, `$&` the whole match and `$$` a dollar sign (ECMAScript conventions, as
  // fhirpath.js). An empty match inserts the replacement and moves on by one character.
  std::string replaceAll(std::string_view text, std::string_view replacement) const;

  const std::string& pattern() const { return pattern_; }  // as given, before translation
  Dialect dialect() const { return dialect_; }

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

 private:
  Regex(std::string pattern, Dialect dialect, std::unique_ptr<re2::RE2> re);
  std::string pattern_;
  Dialect dialect_;
  std::unique_ptr<re2::RE2> re_;
};

// The RE2 syntax of a pattern in `dialect` (exposed for tests and error messages), or the error
// compile() would report for an untranslatable construct.
Result<std::string> translate(std::string_view pattern, Dialect dialect);

}  // namespace fhir::regex

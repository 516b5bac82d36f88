// SPDX-License-Identifier: Apache-2.0
#include "conformance/regex/regex.h"

#include <gtest/gtest.h>

#include <string>

namespace fhir::regex {
namespace {

RegexPtr compileOk(std::string_view pattern, Dialect dialect = Dialect::kFhir) {
  auto compiled = Regex::compile(pattern, dialect);
  EXPECT_TRUE(compiled.ok()) << pattern << ": " << (compiled.ok() ? "" : compiled.message());
  return compiled.ok() ? *compiled : nullptr;
}

std::string errorOf(std::string_view pattern, Dialect dialect = Dialect::kFhir) {
  auto compiled = Regex::compile(pattern, dialect);
  return compiled.ok() ? "compiled" : compiled.message();
}

TEST(Regex, FhirDialectMatchesWholeValues) {
  // The R4 `id` primitive's regex, as the regex extension gives it.
  auto id = compileOk(R"([A-Za-z0-9\-\.]{1,64})");
  EXPECT_TRUE(id->matchesWhole("example-1.a"));
  EXPECT_FALSE(id->matchesWhole("has space"));
  EXPECT_FALSE(id->matchesWhole(std::string(65, 'a')));
  EXPECT_TRUE(id->search("has space"));  // a part of it matches
  // '.' does not match a newline in the FHIR (XML Schema) dialect; it does in FHIRPath.
  EXPECT_FALSE(compileOk("a.b")->matchesWhole("a\nb"));
  EXPECT_TRUE(compileOk("a.b", Dialect::kFhirPath)->matchesWhole("a\nb"));
}

TEST(Regex, TranslatesTheDialectsToRe2) {
  EXPECT_EQ(*translate(R"(\u00e9)", Dialect::kFhirPath), R"(\x{00e9})");
  EXPECT_EQ(*translate("(?<year>[0-9]{4})", Dialect::kFhirPath), "(?P<year>[0-9]{4})");
  EXPECT_EQ(*translate("[a[b]", Dialect::kFhirPath), R"([a\[b])");  // '[' is literal in a class
  EXPECT_EQ(*translate("a{", Dialect::kFhirPath), R"(a\{)");         // not a repetition
  EXPECT_EQ(*translate("[[:alpha:]]", Dialect::kFhir), "[[:alpha:]]");
  EXPECT_TRUE(compileOk(R"(\u00e9)")->matchesWhole("é"));
  EXPECT_TRUE(compileOk("a{")->matchesWhole("a{"));
}

TEST(Regex, UnicodePropertyClassesMatchUtf8) {
  auto letters = compileOk(R"(\p{L}+)");
  EXPECT_TRUE(letters->matchesWhole("Zoë"));
  EXPECT_TRUE(letters->matchesWhole("Ελένη"));
  EXPECT_FALSE(letters->matchesWhole("Zoë2"));
  EXPECT_TRUE(compileOk(R"(\P{L})")->matchesWhole("2"));
  EXPECT_TRUE(compileOk(R"(\p{Lu}\p{Ll}*)")->matchesWhole("Émile"));
}

TEST(Regex, UntranslatablePatternsAreClearErrors) {
  EXPECT_NE(errorOf(R"((a)\1)").find("a backreference (\\1)"), std::string::npos);
  EXPECT_NE(errorOf(R"((?<x>a)\k<x>)", Dialect::kFhirPath).find("named backreference"),
            std::string::npos);
  EXPECT_NE(errorOf("a(?=b)").find("lookahead"), std::string::npos);
  EXPECT_NE(errorOf("a(?!b)").find("lookahead"), std::string::npos);
  EXPECT_NE(errorOf("(?<=b)a").find("lookbehind"), std::string::npos);
  EXPECT_NE(errorOf("(?<!b)a").find("lookbehind"), std::string::npos);
  EXPECT_NE(errorOf("(?>a+)b").find("atomic group"), std::string::npos);
  EXPECT_NE(errorOf("a*+b").find("possessive"), std::string::npos);
  EXPECT_NE(errorOf("a{2}+b").find("possessive"), std::string::npos);
  EXPECT_NE(errorOf("[a-z-[aeiou]]").find("class subtraction"), std::string::npos);
  EXPECT_NE(errorOf(R"(\i\c*)").find("XML name character class"), std::string::npos);
  EXPECT_NE(errorOf(R"(\p{IsBasicLatin}+)").find("Unicode block"), std::string::npos);
  EXPECT_EQ(errorOf("(a").rfind("invalid regular expression '(a': ", 0), 0u);
  EXPECT_EQ(errorOf(R"(\p{NoSuchClass})").rfind("invalid regular expression", 0), 0u);
  // Lazy quantifiers and non-capturing groups are fine.
  EXPECT_TRUE(compileOk("(?:ab)+?c")->matchesWhole("ababc"));
  EXPECT_TRUE(compileOk("a+?b")->matchesWhole("aab"));
}

TEST(Regex, ErrorMessagesQuoteLongPatternsShortened) {
  std::string pattern = "(" + std::string(10'000, 'a');
  std::string message = errorOf(pattern);
  EXPECT_LT(message.size(), 600u);  // the pattern and RE2's reason, each shortened
  EXPECT_NE(message.find("(10001 bytes)"), std::string::npos);
}

TEST(Regex, HugeProgramsAreRefusedNotBuilt) {
  EXPECT_EQ(errorOf("((a{100}){100}){100}").rfind("invalid regular expression", 0), 0u);
}

TEST(Regex, CatastrophicBacktrackingPatternsAnswerInLinearTime) {
  // A backtracking engine takes 2^n steps on these; the test asserts the answers (ctest's
  // timeout bounds the time).
  std::string as(100'000, 'a');
  EXPECT_FALSE(compileOk("(a+)+$", Dialect::kFhirPath)->search(as + "b!"));
  EXPECT_TRUE(compileOk("(a+)+$", Dialect::kFhirPath)->search(as));
  EXPECT_FALSE(compileOk("(a|aa)+")->matchesWhole(as + "b"));
  EXPECT_FALSE(compileOk("(.*a){20}")->matchesWhole(std::string(20'000, 'a') + "b"));
}

TEST(Regex, VeryLongTextsAndDeepPatternsDoNotCrash) {
  std::string text(5'000'000, 'x');
  EXPECT_TRUE(compileOk("(x|y)*")->matchesWhole(text));
  EXPECT_TRUE(compileOk("[^\\s.]{1,64}(\\.[^\\s.]{1,64})*")->search(text));
  // A deeply nested pattern is refused or compiled, never a stack overflow.
  std::string deep = std::string(100'000, '(') + "a" + std::string(100'000, ')');
  auto compiled = Regex::compile(deep, Dialect::kFhirPath);
  if (compiled.ok()) {
    EXPECT_TRUE((*compiled)->matchesWhole("a"));
  } else {
    EXPECT_EQ(compiled.message().rfind("invalid regular expression", 0), 0u);
  }
}

TEST(Regex, ReplaceAllFollowsEcmaScriptConventions) {
  auto digits = compileOk("[0-9]", Dialect::kFhirPath);
  EXPECT_EQ(digits->replaceAll("abc123", "-"), "abc---");
  auto dates = compileOk(R"((\d{1,2})/(\d{1,2})/(\d{4}))", Dialect::kFhirPath);
  EXPECT_EQ(dates->replaceAll("on 11/30/1972 and 1/2/2000", "$3-$1-$2"),
            "on 1972-11-30 and 2000-1-2");
  EXPECT_EQ(dates->replaceAll("11/30/1972", "[$&] $$ $9 $"), "[11/30/1972] $ $9 $");
  auto named = compileOk(R"((?<day>\d+)\.(?<month>\d+))", Dialect::kFhirPath);
  EXPECT_EQ(named->replaceAll("30.11", "${month}/${day} ${nope}"), "11/30 ${nope}");
  // Empty matches insert the replacement between characters (UTF-8 aware).
  EXPECT_EQ(compileOk("x*", Dialect::kFhirPath)->replaceAll("aé", "-"), "-a-é-");
  EXPECT_EQ(compileOk("^", Dialect::kFhirPath)->replaceAll("ab", ">"), ">ab");
}

TEST(Regex, CachedReturnsTheSameCompiledPattern) {
  auto a = Regex::cached("[0-9]+", Dialect::kFhir);
  auto b = Regex::cached("[0-9]+", Dialect::kFhir);
  auto c = Regex::cached("[0-9]+", Dialect::kFhirPath);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_NE(a->get(), c->get());  // the dialect is part of the key
  EXPECT_FALSE(Regex::cached("(", Dialect::kFhir).ok());
}

}  // namespace
}  // namespace fhir::regex

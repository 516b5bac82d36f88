// SPDX-License-Identifier: Apache-2.0
// The validator's regex call sites on input that crashed or hung std::regex (issue 14): RE2 runs
// them in linear time without recursion.
#include <gtest/gtest.h>

#include <string>

#include "tests/conformance/validator/validator_test_util.h"

namespace fhir::testing {
namespace {

std::string responseWithRegex(std::string_view pattern, std::string_view answer) {
  return R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "contained":[{"resourceType":"Questionnaire","id":"q","status":"active",
      "item":[{"linkId":"q1","type":"string","extension":[
        {"url":"http://hl7.org/fhir/StructureDefinition/regex","valueString":")" +
         std::string(pattern) + R"("}]}]}],
    "questionnaire":"#q",
    "item":[{"linkId":"q1","answer":[{"valueString":")" + std::string(answer) + R"("}]}]})";
}

size_t countContaining(const IssueList& issues, Severity severity, std::string_view text) {
  size_t count = 0;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity == severity && issue.diagnostics.find(text) != std::string::npos) ++count;
  }
  return count;
}

TEST(RegexInValidator, QuestionnaireRegexIsAWholeValueMatch) {
  IssueList ok = validateJson(responseWithRegex("[a-z]+@[a-z]+", "ann@example"));
  EXPECT_EQ(countContaining(ok, Severity::kError, "does not match the regular expression"), 0u)
      << describe(ok);
  IssueList partial = validateJson(responseWithRegex("[a-z]+@[a-z]+", "ann@example.org"));
  EXPECT_EQ(countContaining(partial, Severity::kError, "does not match the regular expression"), 1u)
      << describe(partial);
}

TEST(RegexInValidator, ContainedQuestionnaireRegexOverALongAnswerDoesNotCrash) {
  // std::regex recursed per character on `(a|b)*` and crashed on a long answer.
  std::string answer(400'000, 'a');
  IssueList good = validateJson(responseWithRegex("(a|b)*", answer));
  EXPECT_EQ(countContaining(good, Severity::kError, "does not match the regular expression"), 0u)
      << describe(good).substr(0, 2000);
  IssueList bad = validateJson(responseWithRegex("(a|b)*", answer + "c"));
  EXPECT_EQ(countContaining(bad, Severity::kError, "does not match the regular expression"), 1u);
}

TEST(RegexInValidator, CatastrophicQuestionnaireRegexAnswersAtOnce) {
  // Exponential for a backtracking engine; the test asserts the answer.
  std::string answer(20'000, 'a');
  IssueList issues = validateJson(responseWithRegex("(a+)+$", answer + "b"));
  EXPECT_EQ(countContaining(issues, Severity::kError, "does not match the regular expression"), 1u);
}

TEST(RegexInValidator, UntranslatableQuestionnaireRegexIsAWarningNotASilentPass) {
  IssueList issues = validateJson(responseWithRegex("(a)\\\\1", "aa"));
  EXPECT_EQ(countContaining(issues, Severity::kWarning, "backreference"), 1u) << describe(issues);
}

TEST(RegexInValidator, LongElementPathInAPostedStructureDefinition) {
  // eld-19/eld-20 run FHIRPath matches() over each element's path.
  std::string path = "Patient";
  while (path.size() < 300'000) path += ".extension";
  std::string sd = R"({"resourceType":"StructureDefinition","url":"http://example.org/sd/long",
    "name":"Long","status":"draft","kind":"resource","abstract":false,"type":"Patient",
    "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
    "differential":{"element":[{"id":"Patient","path":"Patient"},
      {"id":"Patient.x","path":")" + path + R"("}]}})";
  IssueList issues = validateJson(sd);
  // The path is made of valid names: neither invariant reports it.
  EXPECT_EQ(countContaining(issues, Severity::kError, "eld-19"), 0u) << describe(issues);
  EXPECT_EQ(countContaining(issues, Severity::kWarning, "eld-20"), 0u) << describe(issues);
  // And a path with a character eld-19 forbids in every name is reported.
  std::string bad = R"({"resourceType":"StructureDefinition","url":"http://example.org/sd/bad",
    "name":"Bad","status":"draft","kind":"resource","abstract":false,"type":"Patient",
    "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
    "differential":{"element":[{"id":"Patient","path":"Patient"},
      {"id":"Patient.x","path":")" + std::string(300'000, '@') + R"("}]}})";
  IssueList bad_issues = validateJson(bad);
  EXPECT_GE(countContaining(bad_issues, Severity::kError, "eld-19"), 1u)
      << describe(bad_issues).substr(0, 3000);
}

}  // namespace
}  // namespace fhir::testing

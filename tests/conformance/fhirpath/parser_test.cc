// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include "conformance/fhirpath/fhirpath.h"

namespace fhir::fhirpath {
namespace {

CompileError compileError(std::string_view text) {
  CompileError detail;
  auto compiled = compile(text, &detail);
  EXPECT_FALSE(compiled.ok()) << "expected a syntax error for: " << text;
  if (!compiled.ok()) {
    EXPECT_EQ(compiled.message().rfind("syntax error at ", 0), 0u) << compiled.message();
  }
  return detail;
}

TEST(FhirpathParser, AcceptsTheGrammar) {
  for (const char* text : {
           "name.given",
           "Patient.name.where(use = 'official').given.first()",
           "(1 + 2) * 3 div 2 mod 5 - -4",
           "a implies b or c xor d and e in f contains g",
           "value is Quantity and value as Quantity > 5 'mg'",
           "@2014-01-25T14:30:14.559+01:00 > @2014 and @T10:30 < @T11",
           "%resource.id | %`vs-administrative-gender` | %'ext-foo'",
           "`given`.exists() and $this.count() >= 0",
           "{}.empty()",
           "4 weeks + 1 'mg'",
           "name[0].given[1]",
           "aggregate($total + $this, 0)",
           "// comment\n 1 /* block */ + 2",
       }) {
    auto compiled = compile(text);
    EXPECT_TRUE(compiled.ok()) << text << ": " << (compiled.ok() ? "" : compiled.message());
  }
}

TEST(FhirpathParser, ReportsPositionOfSyntaxErrors) {
  CompileError detail = compileError("2 + 2 /");
  EXPECT_EQ(detail.offset, 7u);
  EXPECT_EQ(detail.line, 1u);
  EXPECT_EQ(detail.column, 8u);

  detail = compileError("name.given\n  .where(use = )");
  EXPECT_EQ(detail.line, 2u);
  EXPECT_EQ(detail.column, 16u);
  EXPECT_NE(detail.message.find("')'"), std::string::npos) << detail.message;
}

TEST(FhirpathParser, RejectsMalformedInput) {
  compileError("2 + 2 /* unterminated");
  compileError("'unterminated string");
  compileError("name.");
  compileError("name..given");
  compileError("(1 + 2");
  compileError("name.given]");
  compileError("1 #");
  compileError("@2014-13-01");             // month 13
  compileError("@T25:00");                 // hour 25
  compileError("'bad escape \\q'");
  compileError("$unknown");
  compileError("%");
  compileError("99999999999999999999");    // integer out of range
  // Deep nesting is an error, not a stack overflow.
  compileError(std::string(100000, '(') + "1" + std::string(100000, ')'));
  compileError(std::string(100000, '-') + "1");
  EXPECT_TRUE(compile(std::string(50, '(') + "1" + std::string(50, ')')).ok());
  std::string chain = "a";
  for (int i = 0; i < 30000; ++i) chain += ".a";
  compileError(chain);
}

TEST(FhirpathParser, ChecksFunctionNamesAndArity) {
  CompileError detail = compileError("name.foo()");
  EXPECT_NE(detail.message.find("unknown function 'foo'"), std::string::npos);
  EXPECT_EQ(detail.offset, 5u);
  compileError("name.where()");
  compileError("name.count(1)");
  compileError("name.substring()");
  EXPECT_TRUE(compile("name.substring(1)").ok());
  EXPECT_TRUE(compile("name.substring(1, 2)").ok());
}

TEST(FhirpathParser, KeepsTheSourceText) {
  auto compiled = compile("name.given");
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ(expressionText(**compiled), "name.given");
}

}  // namespace
}  // namespace fhir::fhirpath

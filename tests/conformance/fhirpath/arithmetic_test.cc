// SPDX-License-Identifier: Apache-2.0
// FHIRPath arithmetic per the specification (issue 14): 32-bit Integer with overflow as an
// evaluation error, Date/DateTime within the years 0001-9999, exact decimals.
#include <gtest/gtest.h>

#include <string>

#include "conformance/fhirpath/decimal.h"
#include "conformance/fhirpath/fhirpath.h"

namespace fhir::fhirpath {
namespace {

constexpr const char* kObservation = R"({
  "resourceType": "Observation", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
  "valueQuantity": {"value": 0.10, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
  "component": [{"code": {"text": "a"}, "valueInteger": 2147483647},
                {"code": {"text": "b"}, "valueQuantity": {"value": 0.20, "code": "mg",
                                                           "system": "http://unitsofmeasure.org"}}]
})";

class FhirpathArithmetic : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.model = Model::bundled();
    ASSERT_TRUE(json::parse(kObservation, observation_, error_));
  }
  std::string eval(std::string_view text) {
    auto compiled = compile(text);
    if (!compiled.ok()) return "compile error: " + compiled.message();
    auto result = evaluate(**compiled, observation_, context_);
    if (!result.ok()) return "error: " + result.message();
    return toJson(*result);
  }
  bool isError(std::string_view text, std::string_view needle) {
    std::string result = eval(text);
    return result.rfind("error: ", 0) == 0 && result.find(needle) != std::string::npos;
  }

  json::Document observation_;
  json::ParseError error_;
  EvaluationContext context_;
};

TEST_F(FhirpathArithmetic, IntegerIs32BitAndOverflowIsAnError) {
  EXPECT_EQ(eval("2147483646 + 1"), "[2147483647]");
  EXPECT_EQ(eval("-2147483647 - 1"), "[-2147483648]");
  EXPECT_TRUE(isError("2147483647 + 1", "Integer overflow in '+'"));
  EXPECT_TRUE(isError("-2147483648 - 1", "Integer overflow in '-'"));
  EXPECT_TRUE(isError("65536 * 65536", "Integer overflow in '*'"));
  EXPECT_TRUE(isError("-(-2147483648)", "Integer overflow in unary minus"));
  EXPECT_TRUE(isError("(-2147483648).abs()", "Integer overflow in abs()"));
  EXPECT_EQ(eval("2.power(30)"), "[1073741824]");
  EXPECT_TRUE(isError("2.power(31)", "Integer overflow in power()"));
  EXPECT_TRUE(isError("(2147483647 | 1).sum()", "Integer overflow in sum()"));
  // An element's value takes part like a literal.
  EXPECT_TRUE(isError("component[0].value + 1", "Integer overflow"));
}

TEST_F(FhirpathArithmetic, DivAndModOfTheMinimumByMinusOneDoNotTrap) {
  // SIGFPE before: INT_MIN / -1 traps in hardware.
  EXPECT_TRUE(isError("-2147483648 div -1", "Integer overflow in 'div'"));
  EXPECT_EQ(eval("-2147483648 mod -1"), "[0]");
  EXPECT_EQ(eval("-2147483648 div 1"), "[-2147483648]");
  EXPECT_EQ(eval("7 div -2"), "[-3]");
  EXPECT_EQ(eval("-7 mod 2"), "[-1]");
}

TEST_F(FhirpathArithmetic, IntegerLiteralsAndConversionsStayIn32Bits) {
  EXPECT_EQ(eval("-2147483648"), "[-2147483648]");
  EXPECT_EQ(eval("2147483648").rfind("compile error: syntax error", 0), 0u);
  EXPECT_EQ(eval("9223372036854775808").rfind("compile error: syntax error", 0), 0u);
  EXPECT_EQ(eval("'2147483647'.toInteger()"), "[2147483647]");
  EXPECT_EQ(eval("'2147483648'.toInteger()"), "[]");
  EXPECT_EQ(eval("'2147483648'.convertsToInteger()"), "[false]");
}

TEST_F(FhirpathArithmetic, DivisionByZeroIsEmpty) {
  EXPECT_EQ(eval("1 / 0"), "[]");
  EXPECT_EQ(eval("1.5 / 0.0"), "[]");
  EXPECT_EQ(eval("5 div 0"), "[]");
  EXPECT_EQ(eval("5.5 mod 0"), "[]");
  EXPECT_EQ(eval("2 'mg' / 0"), "[]");
}

TEST_F(FhirpathArithmetic, DatesStayWithinYears1To9999) {
  EXPECT_EQ(eval("@9999-12-30 + 1 day"), R"(["@9999-12-31"])");
  EXPECT_TRUE(isError("@9999-12-31 + 1 day", "outside the years 0001-9999"));
  EXPECT_TRUE(isError("@0001-01-01 - 1 day", "outside the years 0001-9999"));
  EXPECT_TRUE(isError("@9999-12-31T23:59:59Z + 1 second", "outside the years 0001-9999"));
  EXPECT_TRUE(isError("@2000 + 8000 years", "outside the years 0001-9999"));
  // Amounts far beyond any date (no overflow on the way to the answer).
  EXPECT_TRUE(isError("@2000-01-01 + 999999999999999999 days", "outside the years 0001-9999"));
  EXPECT_TRUE(isError("@2000-01-01 - 999999999999999999 weeks", "outside the years 0001-9999"));
  EXPECT_TRUE(isError("@2000-01-01 + 2000000000 years", "outside the years 0001-9999"));
  EXPECT_EQ(eval("@0000-01-01").rfind("compile error: syntax error", 0), 0u);
}

TEST_F(FhirpathArithmetic, DecimalsAreExact) {
  EXPECT_EQ(eval("0.1 + 0.2 = 0.3"), "[true]");  // false in binary floating point
  EXPECT_EQ(eval("0.1 + 0.2"), "[0.3]");
  EXPECT_EQ(eval("0.3 - 0.1 = 0.2"), "[true]");
  EXPECT_EQ(eval("3 * 1.1"), "[3.3]");
  EXPECT_EQ(eval("1.1 * 1.1"), "[1.21]");
  EXPECT_EQ(eval("0.7 + 0.1 = 0.8"), "[true]");
  EXPECT_EQ(eval("12345678901234.56 + 0.01"), "[12345678901234.57]");
  EXPECT_EQ(eval("123456789012345678.0 + 1"), "[123456789012345679.0]");
  EXPECT_EQ(eval("(0.1 | 0.2 | 0.3).sum() = 0.6"), "[true]");
  EXPECT_EQ(eval("(0.1 | 0.2).avg()"), "[0.15]");
  // Division keeps 8 places (the resolution FHIRPath gives Decimal).
  EXPECT_EQ(eval("1.0 / 3"), "[0.33333333]");
  EXPECT_EQ(eval("2.0 / 3"), "[0.66666667]");
  EXPECT_EQ(eval("10 / 4"), "[2.5]");
  EXPECT_EQ(eval("5.5 mod 2"), "[1.5]");
  EXPECT_EQ(eval("(-5.5) mod 2"), "[-1.5]");
  EXPECT_EQ(eval("7.5 div 2"), "[3]");
}

TEST_F(FhirpathArithmetic, DecimalPrecisionFollowsTheWrittenPlaces) {
  EXPECT_EQ(eval("1.50 + 1"), "[2.50]");
  EXPECT_EQ(eval("1.50 = 1.5"), "[true]");  // equality by value
  EXPECT_EQ(eval("1.50 ~ 1.5"), "[true]");
  EXPECT_EQ(eval("1.50.precision()"), "[2]");
  EXPECT_EQ(eval("(1.50 * 2).toString()"), R"(["3.00"])");
  EXPECT_EQ(eval("2.675.round(2)"), "[2.68]");  // 2.67 with a binary double
  EXPECT_EQ(eval("(-2.5).round()"), "[-3]");    // half away from zero
  EXPECT_EQ(eval("1.005.round(2)"), "[1.01]");
  EXPECT_EQ(eval("2.5.power(2)"), "[6.25]");
  EXPECT_EQ(eval("1.1.power(2) = 1.21"), "[true]");
  EXPECT_EQ(eval("2.0.power(-2)"), "[0.25]");
}

TEST_F(FhirpathArithmetic, JsonDecimalsKeepTheirText) {
  EXPECT_EQ(eval("Observation.value.value.toString()"), R"(["0.10"])");
  EXPECT_EQ(eval("Observation.value.value + 0.2 = 0.3"), "[true]");
  EXPECT_EQ(eval("Observation.value + component[1].value = 0.3 'mg'"), "[true]");
  EXPECT_EQ(eval("(Observation.value + component[1].value).value.toString()"), R"(["0.30"])");
}

TEST_F(FhirpathArithmetic, DecimalOverflowIsAnError) {
  EXPECT_TRUE(isError("9000000000000000000.0 * 10", "Decimal overflow in '*'"));
  EXPECT_TRUE(isError("9000000000000000000.0 + 9000000000000000000.0", "Decimal overflow in '+'"));
}

TEST(Decimal, ParsesFormatsAndRoundsExactly) {
  EXPECT_EQ(Decimal::parse("1.50")->toString(), "1.50");
  EXPECT_EQ(Decimal::parse("-0.001")->toString(), "-0.001");
  EXPECT_EQ(Decimal::parse("1e3")->toString(), "1000");
  EXPECT_EQ(Decimal::parse("1.5E-2")->toString(), "0.015");
  EXPECT_EQ(Decimal::parse("+3")->toString(), "3");
  EXPECT_FALSE(Decimal::parse("1.").has_value());
  EXPECT_FALSE(Decimal::parse(".5").has_value());
  EXPECT_FALSE(Decimal::parse("1e").has_value());
  EXPECT_FALSE(Decimal::parse("1e400").has_value());
  // A 37-digit mantissa scaled by its exponent (signed overflow before, found by UBSan).
  EXPECT_FALSE(Decimal::parse(std::string(37, '9') + "e3").has_value());
  // More places than 64-bit units hold are rounded half away from zero.
  EXPECT_EQ(Decimal::parse("3.14159265358979323846")->toString(), "3.141592653589793238");
  EXPECT_EQ(Decimal::parse("0.1234567890123456789")->toString(), "0.123456789012345679");
  EXPECT_EQ(Decimal::fromDouble(0.1, 8)->toString(), "0.10000000");
  EXPECT_EQ(Decimal::divide(Decimal(1, 0), Decimal(3, 0))->toString(), "0.33333333");
  EXPECT_EQ(Decimal::divide(Decimal(-2, 0), Decimal(3, 0))->toString(), "-0.66666667");
  EXPECT_EQ(Decimal::compare(*Decimal::parse("1.50"), *Decimal::parse("1.5")), 0);
  EXPECT_EQ(Decimal::compare(*Decimal::parse("-0.1"), *Decimal::parse("0.01")), -1);
  EXPECT_EQ(Decimal::parse("2.5")->floored(0)->toString(), "2");
  EXPECT_EQ(Decimal::parse("-2.5")->floored(0)->toString(), "-3");
  EXPECT_EQ(Decimal::parse("-2.5")->ceiled(0)->toString(), "-2");
  EXPECT_EQ(Decimal::parse("-2.5")->truncated(0)->toString(), "-2");
}

}  // namespace
}  // namespace fhir::fhirpath

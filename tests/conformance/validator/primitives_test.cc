// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/primitives.h"

#include <gtest/gtest.h>

namespace fhir::validator {
namespace {

// Checks one JSON value (as text) against a primitive type.
bool accepts(std::string_view type, std::string_view json_text) {
  auto doc = json::parse(std::string("[") + std::string(json_text) + "]");
  EXPECT_TRUE(doc.ok()) << json_text;
  std::string message;
  std::string code;
  return checkPrimitive(type, (*doc)[0], message, code);
}

TEST(PrimitivesTest, JsonKinds) {
  EXPECT_TRUE(accepts("boolean", "true"));
  EXPECT_FALSE(accepts("boolean", "\"true\""));
  EXPECT_FALSE(accepts("boolean", "1"));
  EXPECT_TRUE(accepts("string", "\"abc\""));
  EXPECT_FALSE(accepts("string", "12"));
  EXPECT_FALSE(accepts("string", "false"));
  EXPECT_TRUE(accepts("decimal", "1.50"));
  EXPECT_FALSE(accepts("decimal", "\"1.50\""));
  EXPECT_FALSE(accepts("integer", "\"1\""));
  EXPECT_FALSE(accepts("date", "20200101"));
}

TEST(PrimitivesTest, KindErrorsAreStructureAndFormatErrorsInvalid) {
  auto doc = json::parse(R"(["x", "1990-13-01"])");
  ASSERT_TRUE(doc.ok());
  std::string message, code;
  EXPECT_FALSE(checkPrimitive("integer", (*doc)[0], message, code));
  EXPECT_EQ(code, "structure");
  EXPECT_FALSE(checkPrimitive("date", (*doc)[1], message, code));
  EXPECT_EQ(code, "invalid");
  EXPECT_EQ(message, "Not a valid date format: '1990-13-01'");
}

TEST(PrimitivesTest, IntegerRanges) {
  EXPECT_TRUE(accepts("integer", "-2147483648"));
  EXPECT_TRUE(accepts("integer", "2147483647"));
  EXPECT_FALSE(accepts("integer", "2147483648"));
  EXPECT_FALSE(accepts("integer", "1.0"));
  EXPECT_FALSE(accepts("integer", "1e2"));
  EXPECT_TRUE(accepts("positiveInt", "1"));
  EXPECT_FALSE(accepts("positiveInt", "0"));
  EXPECT_TRUE(accepts("unsignedInt", "0"));
  EXPECT_FALSE(accepts("unsignedInt", "-1"));
  EXPECT_TRUE(accepts("decimal", "12345678901234567890.000000000001"));
}

TEST(PrimitivesTest, Dates) {
  EXPECT_TRUE(isValidDate("2020"));
  EXPECT_TRUE(isValidDate("2020-02"));
  EXPECT_TRUE(isValidDate("2020-02-29"));
  EXPECT_FALSE(isValidDate("2019-02-29"));
  EXPECT_FALSE(isValidDate("2020-2-1"));
  EXPECT_FALSE(isValidDate("0000"));
  EXPECT_FALSE(isValidDate("2020-01-01T10:00:00Z"));
  bool missing_offset = false;
  EXPECT_TRUE(isValidDateTime("2020-01-01T10:00:00Z", missing_offset));
  EXPECT_TRUE(isValidDateTime("2020-01-01T10:00:00.123+05:30", missing_offset));
  EXPECT_TRUE(isValidDateTime("2020-01", missing_offset));
  EXPECT_FALSE(isValidDateTime("2020-01-01T10:00:00", missing_offset));
  EXPECT_TRUE(missing_offset);
  EXPECT_FALSE(isValidDateTime("2020-01-01T10:00Z", missing_offset));
  EXPECT_FALSE(isValidDateTime("2020-01T10:00:00Z", missing_offset));
  EXPECT_FALSE(isValidDateTime("2020-01-01T25:00:00Z", missing_offset));
  EXPECT_TRUE(isValidInstant("2015-02-07T13:28:17.239+02:00"));
  EXPECT_FALSE(isValidInstant("2015-02-07"));
  EXPECT_FALSE(isValidInstant("2015-02-07T13:28:17"));
  EXPECT_TRUE(isValidTime("13:28:17"));
  EXPECT_TRUE(isValidTime("13:28:17.5"));
  EXPECT_FALSE(isValidTime("13:28"));
  EXPECT_FALSE(isValidTime("13:28:17Z"));
}

TEST(PrimitivesTest, StringFormats) {
  EXPECT_TRUE(accepts("id", "\"a-B.9\""));
  EXPECT_FALSE(accepts("id", "\"a_b\""));
  EXPECT_FALSE(accepts("id", ("\"" + std::string(65, 'a') + "\"")));
  EXPECT_TRUE(accepts("code", "\"in progress\""));
  EXPECT_FALSE(accepts("code", "\" leading\""));
  EXPECT_FALSE(accepts("code", "\"double  space\""));
  EXPECT_FALSE(accepts("string", "\"\""));
  EXPECT_FALSE(accepts("string", "\"   \""));
  EXPECT_TRUE(accepts("uri", "\"http://example.org/x\""));
  EXPECT_FALSE(accepts("uri", "\"http://example.org/a b\""));
  EXPECT_TRUE(accepts("oid", "\"urn:oid:2.16.840.1.113883\""));
  EXPECT_FALSE(accepts("oid", "\"urn:oid:3.1\""));
  EXPECT_FALSE(accepts("oid", "\"2.16.840\""));
  EXPECT_TRUE(accepts("uuid", "\"urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162\""));
  EXPECT_FALSE(accepts("uuid", "\"urn:uuid:A76D9BBF-F293-4FB7-AD4C-2851CAC77162\""));
  EXPECT_TRUE(accepts("base64Binary", "\"aGVsbG8=\""));
  EXPECT_TRUE(accepts("base64Binary", "\"aGVs bG8=\""));
  EXPECT_FALSE(accepts("base64Binary", "\"%%%2@()()\""));
  EXPECT_FALSE(accepts("base64Binary", "\"aGVsbG8\""));
  EXPECT_TRUE(accepts("xhtml", "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div>\""));
  EXPECT_FALSE(accepts("xhtml", "\"plain text\""));
}

}  // namespace
}  // namespace fhir::validator

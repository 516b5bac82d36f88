// SPDX-License-Identifier: Apache-2.0
#include "conformance/json/json.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "conformance/outcome/outcome.h"

namespace fhir::json {
namespace {

TEST(JsonTest, KeepsNumberTextExactly) {
  auto doc = parse(R"({"a":1.50,"b":12345678901234567890123,"c":-0.0e1,"d":"1.50"})");
  ASSERT_TRUE(doc.ok()) << doc.message();
  EXPECT_TRUE(isNumber((*doc)["a"]));
  EXPECT_EQ(numberText((*doc)["a"]), "1.50");
  EXPECT_EQ(numberText((*doc)["b"]), "12345678901234567890123");
  EXPECT_FALSE(isString((*doc)["a"]));
  EXPECT_TRUE(isString((*doc)["d"]));
  EXPECT_FALSE(isNumber((*doc)["d"]));
  EXPECT_EQ(serialize(*doc), R"({"a":1.50,"b":12345678901234567890123,"c":-0.0e1,"d":"1.50"})");
  EXPECT_DOUBLE_EQ(*numberAsDouble((*doc)["a"]), 1.5);
  EXPECT_FALSE(numberAsInt64((*doc)["a"]).has_value());
  EXPECT_FALSE(numberAsInt64((*doc)["b"]).has_value());  // out of int64 range
}

TEST(JsonTest, RejectsDuplicateKeysWithPosition) {
  Document doc;
  ParseError error;
  EXPECT_FALSE(parse("{\n \"a\": 1,\n \"b\": {\"x\":1, \"x\":2}\n}", doc, error));
  EXPECT_EQ(error.message, "duplicate key \"x\"");
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.column, 15u);
}

TEST(JsonTest, RejectsNulInStringsAndBadUtf8) {
  Document doc;
  ParseError error;
  EXPECT_FALSE(parse(R"({"a":"x\u0000y"})", doc, error));
  EXPECT_NE(error.message.find("NUL"), std::string::npos);
  EXPECT_FALSE(parse("{\"a\":\"\xff\"}", doc, error));
}

// Regression (issue 14): 75,000 nested arrays or objects crashed the process by recursion in
// the duplicate-key check. Now the depth is refused while parsing, naming it.
TEST(JsonTest, RefusesNestingDeeperThanTheLimitNamingTheDepth) {
  Document doc;
  ParseError error;
  for (const char* open_close : {"[]", "{}"}) {
    std::string text;
    for (int level = 0; level < 75000; ++level) text += open_close[0] == '[' ? "[" : "{\"a\":";
    text += "1";
    for (int level = 0; level < 75000; ++level) text.push_back(open_close[1]);
    EXPECT_FALSE(parse(text, doc, error));
    EXPECT_EQ(error.message, "nesting depth 101 exceeds maxJsonDepth (100)");
    const size_t opener = open_close[0] == '[' ? 1 : 5;  // "[" or "{\"a\":"
    EXPECT_EQ(error.column, 100 * opener + 1);  // where the 101st level opens
  }
  std::string at_limit(kDefaultMaxDepth, '[');
  at_limit += std::string(kDefaultMaxDepth, ']');
  EXPECT_TRUE(parse(at_limit, doc, error)) << error.describe();
  setMaxDepth(3);
  EXPECT_FALSE(parse(R"({"a":{"b":{"c":[]}}})", doc, error));
  EXPECT_EQ(error.message, "nesting depth 4 exceeds maxJsonDepth (3)");
  EXPECT_TRUE(parse(R"({"a":{"b":[1]}})", doc, error));
  setMaxDepth(0);
  EXPECT_TRUE(parse(R"({"a":{"b":{"c":[]}}})", doc, error));
}

TEST(JsonTest, FindsDuplicateKeysDeepInsideArraysInDocumentOrder) {
  Document doc;
  ParseError error;
  EXPECT_FALSE(parse(R"({"z":[{"q":1},[{"k":1,"k":2}]],"y":{"j":1,"j":2}})", doc, error));
  EXPECT_EQ(error.message, "duplicate key \"k\"");
  std::string deep;
  for (int level = 0; level < 45; ++level) deep += "{\"a\":[";
  deep += R"({"d":1,"d":1})";
  for (int level = 0; level < 45; ++level) deep += "]}";
  EXPECT_FALSE(parse(deep, doc, error));
  EXPECT_EQ(error.message, "duplicate key \"d\"");
}

// Regression (issue 14): a string built from arbitrary bytes that starts with NUL (a quarantined
// payload) was written unquoted, as if it were a number.
TEST(JsonTest, WritesAStringStartingWithNulQuoted) {
  Document doc;
  doc.SetObject();
  addString(doc, "p", std::string_view("\0abc", 4), doc.GetAllocator());
  addString(doc, "q", std::string_view("\0", 1), doc.GetAllocator());
  addMember(doc, "n", makeNumber("-1.50e3", doc.GetAllocator()), doc.GetAllocator());
  EXPECT_EQ(serialize(doc), R"({"p":"\u0000abc","q":"\u0000","n":-1.50e3})");
  EXPECT_TRUE(isString(doc["p"]));
  EXPECT_FALSE(isNumber(doc["p"]));
  EXPECT_TRUE(isNumber(doc["n"]));
}

TEST(JsonTest, FindsTheOffsetOfTheFirstInvalidUtf8Byte) {
  EXPECT_FALSE(invalidUtf8Offset("plain ascii").has_value());
  EXPECT_FALSE(invalidUtf8Offset("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80").has_value());
  EXPECT_EQ(invalidUtf8Offset("ab\xff"), 2u);
  EXPECT_EQ(invalidUtf8Offset("ab\xc3"), 2u);             // truncated sequence
  EXPECT_EQ(invalidUtf8Offset("\xc0\xaf"), 0u);           // overlong '/'
  EXPECT_EQ(invalidUtf8Offset("x\xed\xa0\x80"), 1u);      // a UTF-16 surrogate
  EXPECT_EQ(invalidUtf8Offset("xy\xf4\x90\x80\x80"), 2u);  // above U+10FFFF
  EXPECT_EQ(invalidUtf8Offset("\xe2\x82x"), 0u);
}

TEST(JsonTest, ReportsSyntaxErrorLineAndColumn) {
  Document doc;
  ParseError error;
  EXPECT_FALSE(parse("{\n  \"a\": 1,\n  \"b\" 2\n}", doc, error));
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.describe().rfind("line 3, column", 0), 0u);
}

TEST(JsonTest, EscapesControlCharacters) {
  Document doc;
  Value value = makeString("a\"b\\c\n\x01", doc.GetAllocator());
  EXPECT_EQ(serialize(value), "\"a\\\"b\\\\c\\n\\u0001\"");
}

// RFC 8259 section 7, byte by byte: '"', '\\' and the control characters are escaped (the
// short forms where JSON has them), everything else is copied.
std::string escapedByRfc8259(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (byte < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", byte);
      out += buffer;
    } else out.push_back(c);
  }
  return out;
}

TEST(JsonTest, EscapesEveryByteAtEveryPositionOfAWord) {
  // The escaper tests 8 bytes at a time: each special byte at each offset of a 19-byte string
  // (two words and a tail), next to UTF-8 bytes that must pass unchanged.
  for (int byte = 0; byte < 256; ++byte) {
    for (size_t at = 0; at < 19; ++at) {
      std::string text = "abcdefgh\xc3\xa9ijklmnopq";
      text[at] = static_cast<char>(byte);
      std::string out;
      appendEscaped(text, out);
      ASSERT_EQ(out, escapedByRfc8259(text)) << "byte " << byte << " at " << at;
    }
  }
}

TEST(JsonTest, EscapesPairsOfSpecialBytesInTextsOfEveryShortLength) {
  // The last bytes of a text are tested as one word overlapping bytes already passed (plain or
  // escaped): two special bytes at every pair of offsets, in texts of 0 to 24 bytes.
  for (char special : {'"', '\\', '\n', '\x01', '\x1f'}) {
    for (size_t length = 0; length <= 24; ++length) {
      for (size_t first = 0; first < length; ++first) {
        for (size_t second = first; second < length; ++second) {
          std::string text = std::string("abcdefgh\xc3\xa9ijklmnopqrstuvwxyz").substr(0, length);
          text[first] = special;
          text[second] = '"';
          std::string out;
          appendEscaped(text, out);
          ASSERT_EQ(out, escapedByRfc8259(text)) << "length " << length << " at " << first << ", " << second;
        }
      }
      std::string plain = std::string("abcdefghijklmnopqrstuvwxyz").substr(0, length);
      std::string out;
      appendEscaped(plain, out);
      ASSERT_EQ(out, plain);
    }
  }
}

TEST(JsonTest, SerializesNamesAndStringsOfEveryLengthWithASpecialByteAnywhere) {
  // serialize() copies texts that need no escaping in blocks of 16, 8 or 4 bytes (overlapping at
  // the end): each special byte at each offset of names and strings of 0 to 40 bytes, and the
  // same texts without it.
  const std::string base = "abcdefgh\xc3\xa9ijklmnopqrstuvwxyz0123456789ABCDEFGH";
  for (char special : {'"', '\\', '\n', '\x01', '\x1f', ' ', '\x7f', '\xff'}) {
    for (size_t length = 0; length <= 40; ++length) {
      for (size_t at = 0; at <= length; ++at) {
        std::string text = base.substr(0, length);
        if (at < length) text[at] = special;  // at == length: the plain text
        Document doc;
        doc.SetObject();
        addString(doc, text, text, doc.GetAllocator());
        const std::string escaped = escapedByRfc8259(text);
        ASSERT_EQ(serialize(doc), "{\"" + escaped + "\":\"" + escaped + "\"}")
            << "length " << length << ", byte " << static_cast<int>(static_cast<unsigned char>(special)) << " at " << at;
      }
    }
  }
}

TEST(JsonTest, SerializesDocumentsLargerThanTheOutputBuffer) {
  Document doc;
  doc.SetObject();
  std::string expected = "{";
  for (int index = 0; index < 500; ++index) {
    std::string key = "key" + std::to_string(index);
    std::string text = std::string(static_cast<size_t>(index % 50), 'x') + "\"\n" + std::string(5000 * (index == 7), 'y');
    addString(doc, key, text, doc.GetAllocator());
    expected += (index ? ",\"" : "\"") + key + "\":\"" + escapedByRfc8259(text) + "\"";
  }
  expected += "}";
  EXPECT_EQ(serialize(doc), expected);
  std::string appended = "prefix";
  serializeTo(doc, appended);
  EXPECT_EQ(appended, "prefix" + expected);
}

TEST(OutcomeTest, EmptyListIsInformational) {
  IssueList issues;
  EXPECT_EQ(toOperationOutcomeJson(issues),
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"All OK"}]})");
}

TEST(OutcomeTest, CarriesLocationExpressionAndQuarantineId) {
  IssueList issues;
  issues.atLocation(Severity::kError, "value", "$.billing[0].code", "$.billing[0].code: bad");
  issues.atExpression(Severity::kWarning, "structure", "Patient.name[0]", "odd");
  auto text = toOperationOutcomeJson(issues, "q-1");
  auto doc = parse(text);
  ASSERT_TRUE(doc.ok());
  const Value& first = (*doc)["issue"][0];
  EXPECT_EQ(stringView(first["location"][0]), "$.billing[0].code");
  EXPECT_EQ(stringView(first["details"]["coding"][0]["code"]), "q-1");
  EXPECT_EQ(stringView((*doc)["issue"][1]["expression"][0]), "Patient.name[0]");
  EXPECT_EQ(stringView((*doc)["issue"][1]["severity"]), "warning");
}

}  // namespace
}  // namespace fhir::json

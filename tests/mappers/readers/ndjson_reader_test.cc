// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/ndjson/ndjson_reader.h"

#include <gtest/gtest.h>

#include <sstream>

#include "conformance/common/ids.h"

namespace fhir::mappers::readers::ndjson {
namespace {

TEST(NdjsonReader, RecordsKeepNumbersAndLines) {
  std::istringstream stream("{\"a\": 1.50, \"b\": \"x\"}\r\n\n{\"a\": 2}\n");
  NdjsonReader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  EXPECT_EQ(json::numberText(record.doc["a"]), "1.50");
  EXPECT_EQ(json::numberText(record.doc["@line"]), "1");
  EXPECT_EQ(record.raw, "{\"a\": 1.50, \"b\": \"x\"}\r\n");
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  EXPECT_EQ(json::numberText(record.doc["@line"]), "3");
  EXPECT_EQ(record.position, "line 3");
  EXPECT_EQ(reader.next(record, issues), ReadStatus::kEnd);
  EXPECT_TRUE(issues.empty());
}

TEST(NdjsonReader, BadLinesAreRejectedWithLineAndColumn) {
  std::istringstream stream(
      "{\"ok\": true}\n"
      "{\"a\": 1,, \"b\": 2}\n"
      "[1, 2]\n"
      "{\"a\": 1, \"a\": 2}\n"
      "{\"ok\": false}\n");
  NdjsonReader reader(stream);
  SourceRecord record;
  std::vector<std::pair<ReadStatus, std::string>> seen;
  while (true) {
    IssueList issues;
    ReadStatus status = reader.next(record, issues);
    if (status == ReadStatus::kEnd) break;
    seen.emplace_back(status, issues.empty() ? "" : issues.issues()[0].location[0]);
  }
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].first, ReadStatus::kRecord);
  EXPECT_EQ(seen[1].first, ReadStatus::kRejected);
  EXPECT_EQ(seen[1].second, "line 2, column 9");
  EXPECT_EQ(seen[2].first, ReadStatus::kRejected);
  EXPECT_EQ(seen[2].second, "line 3, $");
  EXPECT_EQ(seen[3].first, ReadStatus::kRejected);
  EXPECT_EQ(seen[3].second.rfind("line 4, column ", 0), 0u);
  EXPECT_EQ(seen[4].first, ReadStatus::kRecord);
}

TEST(NdjsonReader, LocationOfAValueNamesLineAndJsonPath) {
  std::istringstream stream("\n{\"member\": {\"name\": {\"last\": \"X\"}}, \"lines\": [{\"cpt\": \"1\"}]}\n");
  NdjsonReader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  EXPECT_EQ(describeLocation(record.doc, {"member", "name", "last"}, true), "line 2, $.member.name.last");
  EXPECT_EQ(describeLocation(record.doc, {"lines", "0", "cpt"}, true), "line 2, $.lines[0].cpt");
}

TEST(JsonDocumentReader, OneDocument) {
  std::istringstream stream("{\n  \"eventId\": \"e1\"\n}\n");
  JsonDocumentReader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  EXPECT_EQ(*json::getString(record.doc, "eventId"), "e1");
  EXPECT_EQ(reader.next(record, issues), ReadStatus::kEnd);
}

// Issue 14: a line over maxRecordBytes is not held (first bytes and digest), reading goes on.
TEST(NdjsonReader, OversizedLineKeepsItsFirstBytesAndDigest) {
  const std::string big = "{\"a\": \"" + std::string(200000, 'x') + "\"}\n";
  std::istringstream stream("{\"n\": 1}\n" + big + "{\"n\": 3}\n");
  NdjsonReader reader(stream);
  reader.setMaxRecordBytes(100);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected);
  EXPECT_EQ(record.raw, big.substr(0, 100));
  EXPECT_EQ(record.raw_total, big.size());
  EXPECT_EQ(record.raw_sha256, sha256Hex(big));
  EXPECT_EQ(record.position, "line 2");
  ASSERT_FALSE(issues.issues().empty());
  EXPECT_EQ(issues.issues()[0].code, "too-long");
  SourceRecord next;
  IssueList next_issues;
  ASSERT_EQ(reader.next(next, next_issues), ReadStatus::kRecord);
  EXPECT_EQ(json::numberText(next.doc["n"]), "3");
  EXPECT_EQ(json::numberText(next.doc["@line"]), "3");
  EXPECT_TRUE(next.raw_sha256.empty());
}

TEST(NdjsonReader, InvalidUtf8LineIsRejectedNamingTheByteOffset) {
  std::istringstream stream("{\"n\": 1}\n{\"s\": \"a\xc3\x28\"}\n{\"n\": 3}\n");
  NdjsonReader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected);
  // "{\"n\": 1}\n" is 9 bytes; "{\"s\": \"a" 8 more: the bad sequence starts at byte 17.
  EXPECT_NE(issues.issues()[0].diagnostics.find("line 2, byte offset 17 (byte 8 of the record): not valid UTF-8"),
            std::string::npos)
      << issues.issues()[0].diagnostics;
  IssueList next_issues;
  ASSERT_EQ(reader.next(record, next_issues), ReadStatus::kRecord);
  EXPECT_EQ(json::numberText(record.doc["n"]), "3");
}

TEST(JsonDocumentReader, InvalidUtf8NamesTheByteOffset) {
  std::istringstream stream("{\"s\": \"ok\", \"t\": \"\xed\xa0\x80\"}");
  JsonDocumentReader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected);
  EXPECT_NE(issues.issues()[0].diagnostics.find("byte offset 18"), std::string::npos) << issues.issues()[0].diagnostics;
}

// Issue 14: a single JSON document longer than maxRecordBytes is one rejected record, not held:
// its first bytes, the digest and size of all of it, and an issue naming the limit. The stream is
// read to its end (a body is not left half read); then the reader ends.
TEST(JsonDocumentReader, DocumentOverMaxRecordBytesIsRejectedTruncatedWithItsDigest) {
  const std::string big = "{\n  \"eventId\": \"e1\",\n  \"note\": \"" + std::string(300000, 'x') + "\"\n}\n";
  std::istringstream stream(big);
  JsonDocumentReader reader(stream);
  reader.setMaxRecordBytes(1000);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected);
  EXPECT_EQ(record.raw, big.substr(0, 1000));
  EXPECT_EQ(record.raw_total, big.size());
  EXPECT_EQ(record.raw_sha256, sha256Hex(big));
  EXPECT_EQ(record.position, "line 1");
  ASSERT_EQ(issues.issues().size(), 1u);
  EXPECT_EQ(issues.issues()[0].code, "too-long");
  EXPECT_EQ(issues.issues()[0].severity, Severity::kError);
  EXPECT_NE(issues.issues()[0].diagnostics.find(std::to_string(big.size()) + " bytes, larger than maxRecordBytes (1000)"),
            std::string::npos)
      << issues.issues()[0].diagnostics;
  EXPECT_TRUE(record.doc.IsObject());
  EXPECT_EQ(stream.peek(), std::char_traits<char>::eof());
  IssueList more;
  EXPECT_EQ(reader.next(record, more), ReadStatus::kEnd);
  EXPECT_TRUE(more.empty());
}

// At the limit exactly the document is read as usual; one byte over, it is not.
TEST(JsonDocumentReader, DocumentOfExactlyMaxRecordBytesIsRead) {
  const std::string text = "{\"eventId\": \"e1\"}\n";
  {
    std::istringstream stream(text);
    JsonDocumentReader reader(stream);
    reader.setMaxRecordBytes(text.size());
    SourceRecord record;
    IssueList issues;
    ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord);
    EXPECT_EQ(*json::getString(record.doc, "eventId"), "e1");
    EXPECT_EQ(record.raw, text);
    EXPECT_TRUE(record.raw_sha256.empty());
  }
  std::istringstream stream(text);
  JsonDocumentReader reader(stream);
  reader.setMaxRecordBytes(text.size() - 1);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected);
  EXPECT_EQ(record.raw, text.substr(0, text.size() - 1));
  EXPECT_EQ(record.raw_sha256, sha256Hex(text));
}

}  // namespace
}  // namespace fhir::mappers::readers::ndjson

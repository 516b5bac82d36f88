// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/ndjson/ndjson_reader.h"

#include <gtest/gtest.h>

#include <sstream>

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

}  // namespace
}  // namespace fhir::mappers::readers::ndjson

// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/hl7v2/hl7v2_reader.h"

#include <gtest/gtest.h>

#include <sstream>

namespace fhir::mappers::readers::hl7v2 {
namespace {

// A REF^I12 written from contracts/econsult-event.md (HL7 v2 section).
const std::string kReferral =
    "MSH|^~\\&|EPIC|NORTHSHORE|GATEWAY|ALIGN|20261002140311-0500||REF^I12^REF_I12|evt-7f3a-0001|P|2.5.1\r"
    "RF1||R||||EC-2026-000451\r"
    "PRD|RP|Whitfield^Dana^^^^MD|||||1467583922^^^^NPI\r"
    "PRD|RT|Menon^Ravi^^^^MD|||||1881726354^^^^NPI~207RC0000X^^^^NUCC\r"
    "PID|||NS-884213^^^NSH&2.16.840.1.113883.3.7418.1&ISO||Okafor^Adaeze^N||19610319|F\r"
    "IN1|1||lakeshore-medicaid|||||||||||||||||||||||||||||||||LMC00918273\r"
    "DG1|1||I48.91^Atrial fibrillation^I10\r"
    "NTE|1||Persistent AF on apixaban\\E\\rate control\\F\\ablation?\r";

std::string str(const json::Value& value) { return json::isString(value) ? std::string(json::stringView(value)) : "<not a string>"; }

TEST(Hl7v2Reader, SegmentsFieldsComponentsRepetitionsAndEscapes) {
  std::istringstream stream(kReferral);
  Hl7v2Reader reader(stream);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord) << (issues.empty() ? "" : issues.issues()[0].diagnostics);
  const json::Value& doc = record.doc;
  EXPECT_EQ(str(doc["MSH"][0]["1"]), "|");
  EXPECT_EQ(str(doc["MSH"][0]["2"]), "^~\\&");
  EXPECT_EQ(str(doc["MSH"][0]["3"]), "EPIC");
  EXPECT_EQ(str(doc["MSH"][0]["9"][0]), "REF");
  EXPECT_EQ(str(doc["MSH"][0]["9"][1]), "I12");
  EXPECT_EQ(str(doc["MSH"][0]["10"]), "evt-7f3a-0001");
  EXPECT_EQ(str(doc["RF1"][0]["6"]), "EC-2026-000451");
  ASSERT_EQ(doc["PRD"].Size(), 2u);
  EXPECT_EQ(str(doc["PRD"][1]["7"]["repetitions"][1][0]), "207RC0000X");
  EXPECT_EQ(str(doc["PRD"][1]["7"]["repetitions"][0][4]), "NPI");
  EXPECT_EQ(str(doc["PID"][0]["3"][3][1]), "2.16.840.1.113883.3.7418.1");
  EXPECT_EQ(str(doc["PID"][0]["5"][1]), "Adaeze");
  EXPECT_EQ(str(doc["IN1"][0]["36"]), "LMC00918273");
  EXPECT_EQ(str(doc["NTE"][0]["3"]), "Persistent AF on apixaban\\rate control|ablation?");
  EXPECT_EQ(json::numberText(doc["PID"][0]["@segment"]), "5");
  EXPECT_EQ(record.position, "message evt-7f3a-0001");
  EXPECT_EQ(record.raw, kReferral);
  EXPECT_EQ(describeLocation(doc, {"PID", "0", "7"}, false), "segment 5 (PID), field 7");
  EXPECT_EQ(describeLocation(doc, {"PRD", "1", "7", "repetitions", "1", "0"}, false),
            "segment 4 (PRD), field 7, repetition 2, component 1");
  EXPECT_EQ(reader.next(record, issues), ReadStatus::kEnd);
}

TEST(Hl7v2Reader, SeveralMessagesLineEndsAndBadSegments) {
  std::string lf = kReferral;
  for (char& c : lf) {
    if (c == '\r') c = '\n';
  }
  std::string broken = "MSH|^~\\&|EPIC|NS|GW|AL|20261002||RRI^I12^RRI_I12|evt-2|P|2.5.1\rPID|||1\rpid|bad\r";
  std::istringstream stream(lf + broken + kReferral);
  Hl7v2Reader reader(stream);
  SourceRecord record;
  IssueList first, second, third;
  EXPECT_EQ(reader.next(record, first), ReadStatus::kRecord);
  EXPECT_EQ(reader.next(record, second), ReadStatus::kRejected);
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second.issues()[0].location[0], "segment 3");
  EXPECT_EQ(reader.next(record, third), ReadStatus::kRecord);
  EXPECT_EQ(str(record.doc["MSH"][0]["10"]), "evt-7f3a-0001");
}

// The delimiters (MSH-1 and MSH-2) are five different printable ASCII characters; a byte of a
// multi-byte UTF-8 character as a delimiter would cut characters in two (found by
// hl7v2_reader_fuzz: "^~\" then U+06C3 made 0xDB the subcomponent separator). Such a message is
// rejected naming MSH, and the next message is read; an MSH-2 of three characters (no
// subcomponent separator) is read as before.
TEST(Hl7v2Reader, DelimitersArePrintableAsciiAndDifferent) {
  const std::string rest = "|EPIC|NS|GW|AL|20261002||REF^I12^REF_I12|evt-9|P|2.5.1\rNTE|1||caf\xC3\xA9\r";
  for (const std::string& delimiters : {std::string("|^~\\\xDB\x83"), std::string("|^~\\^"), std::string("|^~\\ "),
                                        std::string("|^^\\&")}) {
    std::istringstream stream("MSH" + delimiters + rest + kReferral);
    Hl7v2Reader reader(stream);
    SourceRecord record;
    IssueList issues;
    ASSERT_EQ(reader.next(record, issues), ReadStatus::kRejected) << delimiters;
    ASSERT_FALSE(issues.empty());
    EXPECT_EQ(issues.issues()[0].location[0], "segment 1 (MSH)");
    EXPECT_NE(issues.issues()[0].diagnostics.find("five different printable ASCII characters"), std::string::npos);
    IssueList next;
    EXPECT_EQ(reader.next(record, next), ReadStatus::kRecord) << delimiters;
    EXPECT_EQ(str(record.doc["MSH"][0]["10"]), "evt-7f3a-0001");
  }
  std::istringstream three("MSH|^~\\" + rest);
  Hl7v2Reader reader(three);
  SourceRecord record;
  IssueList issues;
  ASSERT_EQ(reader.next(record, issues), ReadStatus::kRecord) << (issues.empty() ? "" : issues.issues()[0].diagnostics);
  EXPECT_EQ(str(record.doc["NTE"][0]["3"]), "caf\xC3\xA9");
}

TEST(Hl7v2Ack, AcceptedAndRejected) {
  std::istringstream stream(kReferral);
  Hl7v2Reader reader(stream);
  SourceRecord record;
  IssueList none;
  ASSERT_EQ(reader.next(record, none), ReadStatus::kRecord);
  EXPECT_EQ(buildAck(&record.doc, none, "20261002140312-0500", "ack-1"),
            "MSH|^~\\&|GATEWAY|ALIGN|EPIC|NORTHSHORE|20261002140312-0500||ACK^I12^ACK|ack-1|P|2.5.1\r"
            "MSA|AA|evt-7f3a-0001\r");
  IssueList errors;
  errors.atLocation(Severity::kError, "value", "segment 5 (PID), field 7", "segment 5 (PID), field 7: not a date");
  EXPECT_EQ(buildAck(&record.doc, errors, "20261002140312-0500", "ack-2"),
            "MSH|^~\\&|GATEWAY|ALIGN|EPIC|NORTHSHORE|20261002140312-0500||ACK^I12^ACK|ack-2|P|2.5.1\r"
            "MSA|AE|evt-7f3a-0001\r"
            "ERR||segment 5 (PID), field 7|207^Application internal error^HL70357|E||||segment 5 (PID), field 7: not a date\r");
  // An unreadable message: AR, no MSH fields to echo.
  EXPECT_EQ(buildAck(nullptr, errors, "20261002140312-0500", "ack-3"),
            "MSH|^~\\&|||||20261002140312-0500||ACK^I12^ACK|ack-3|P|2.5.1\r"
            "MSA|AR|\r"
            "ERR||segment 5 (PID), field 7|207^Application internal error^HL70357|E||||segment 5 (PID), field 7: not a date\r");
}

}  // namespace
}  // namespace fhir::mappers::readers::hl7v2

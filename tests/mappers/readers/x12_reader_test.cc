// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/x12/x12_reader.h"

#include <gtest/gtest.h>

#include <sstream>

#include "conformance/common/ids.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::readers::x12 {
namespace {

struct Read {
  ReadStatus status;
  SourceRecord record;
  IssueList issues;
  std::string location() const {
    return issues.issues().empty() || issues.issues()[0].location.empty() ? "" : issues.issues()[0].location[0];
  }
};

std::vector<Read> readAll(const std::string& text, size_t max_record_bytes = 0) {
  std::istringstream stream(text);
  X12Reader reader(stream);
  reader.setMaxRecordBytes(max_record_bytes);
  std::vector<Read> out;
  while (true) {
    Read read;
    read.status = reader.next(read.record, read.issues);
    if (read.status == ReadStatus::kEnd) break;
    bool stop = read.status == ReadStatus::kFatal;
    out.push_back(std::move(read));
    if (stop) break;
  }
  return out;
}

std::string northshore() { return testing::readFile(testing::testDataDir() / "mappers" / "x12" / "northshore-837p.x12"); }

std::string replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::string str(const json::Value& value) { return json::isString(value) ? std::string(json::stringView(value)) : "<not a string>"; }

TEST(X12Reader, ClaimsWithLoopsAndSegmentNumbers) {
  auto reads = readAll(northshore());
  ASSERT_EQ(reads.size(), 3u);
  for (const Read& read : reads) {
    ASSERT_EQ(read.status, ReadStatus::kRecord) << read.location();
  }
  // Claim 1: the subscriber is the patient; two HI segments, two service lines.
  const json::Value& first = reads[0].record.doc;
  EXPECT_EQ(str(first["claim"]["CLM"]["01"]), "NS-CLM-0001");
  EXPECT_EQ(json::numberText(first["claim"]["CLM"]["@segment"]), "19");
  EXPECT_EQ(str(first["claim"]["CLM"]["05"][0]), "11");
  ASSERT_EQ(first["claim"]["HI"].Size(), 2u);
  EXPECT_EQ(str(first["claim"]["HI"][0]["01"][1]), "E119");
  EXPECT_EQ(str(first["claim"]["HI"][0]["02"][0]), "ABF");
  EXPECT_EQ(str(first["claim"]["HI"][1]["01"][1]), "Z794");
  EXPECT_EQ(str(first["claim"]["renderingProvider"]["NM1"]["09"]), "1467583922");
  EXPECT_EQ(str(first["claim"]["renderingProvider"]["PRV"]["03"]), "207Q00000X");
  ASSERT_EQ(first["lines"].Size(), 2u);
  EXPECT_EQ(str(first["lines"][0]["SV1"]["01"][1]), "99214");
  EXPECT_EQ(str(first["lines"][0]["SV1"]["01"][2]), "25");
  EXPECT_EQ(json::numberText(first["lines"][0]["SV1"]["@segment"]), "25");
  EXPECT_EQ(str(first["lines"][1]["DTP"][0]["03"]), "20261001");
  EXPECT_EQ(str(first["billingProvider"]["NM1"]["09"]), "1093817462");
  EXPECT_EQ(str(first["billingProvider"]["REF"][0]["02"]), "361234567");
  EXPECT_EQ(str(first["subscriber"]["NM1"]["09"]), "LMC00918273");
  EXPECT_EQ(str(first["patient"]["NM1"]["04"]), "ADAEZE");
  EXPECT_EQ(str(first["payer"]["NM1"]["09"]), "LMC01");
  EXPECT_EQ(str(first["transaction"]["BHT"]["04"]), "20261002");
  EXPECT_TRUE(first["subscriberIsPatient"].GetBool());
  EXPECT_EQ(reads[0].record.position, "interchange 000000101, transaction set 0001, segment 19");
  EXPECT_NE(reads[0].record.raw.find("CLM*NS-CLM-0001*245.00"), std::string::npos);
  EXPECT_NE(reads[0].record.raw.find("NM1*85*2*NORTHSHORE"), std::string::npos);
  EXPECT_EQ(reads[0].record.raw.find("NS-CLM-0002"), std::string::npos);

  // Claims 2 and 3: a dependent (2000C) who is not the subscriber.
  const json::Value& second = reads[1].record.doc;
  EXPECT_FALSE(second["subscriberIsPatient"].GetBool());
  EXPECT_EQ(str(second["patient"]["NM1"]["04"]), "EMEKA");
  EXPECT_EQ(str(second["patient"]["DMG"]["02"]), "20120511");
  EXPECT_EQ(str(second["patient"]["PAT"]["01"]), "19");
  EXPECT_EQ(str(second["subscriber"]["NM1"]["04"]), "CHIDI");
  EXPECT_EQ(str(second["claim"]["renderingProvider"]["NM1"]["03"]), "MENON");
  const json::Value& third = reads[2].record.doc;
  EXPECT_EQ(str(third["claim"]["CLM"]["01"]), "NS-CLM-0003");
  EXPECT_FALSE(json::find(third["claim"], "renderingProvider"));
  EXPECT_EQ(str(third["lines"][0]["DTP"][0]["03"]), "20261002-20261003");
  EXPECT_EQ(str(third["patient"]["NM1"]["04"]), "EMEKA");
}

// imsweb's x12_complex.txt (tests/data/mappers/x12/README.md), unchanged: a second subscriber
// (2000B, DOE DAVID, no DMG: 5010 asks for it only when the subscriber is the patient) with a
// dependent (2000C, PAT*01) and two claims among 2310x/2320/2330x/2420x loops the mapping skips,
// in each of its two transaction sets.
// Each dependent claim carries the subscriber of its own 2010BA, not the first subscriber's.
TEST(X12Reader, DependentClaimsCarryTheSubscriberOfTheirLoop2010BA) {
  auto reads = readAll(testing::readFile(testing::testDataDir() / "mappers" / "x12" / "x12_complex.txt"));
  std::vector<const Read*> dependents;
  for (const Read& read : reads) {
    if (read.status == ReadStatus::kRecord && !read.record.doc["subscriberIsPatient"].GetBool()) dependents.push_back(&read);
  }
  ASSERT_EQ(dependents.size(), 4u);  // both transaction sets hold the same two dependent claims
  for (const Read* read : dependents) {
    const json::Value& doc = read->record.doc;
    EXPECT_EQ(str(doc["subscriber"]["NM1"]["01"]), "IL");
    EXPECT_EQ(str(doc["subscriber"]["NM1"]["03"]), "DOE");
    EXPECT_EQ(str(doc["subscriber"]["NM1"]["04"]), "DAVID");
    EXPECT_EQ(str(doc["subscriber"]["NM1"]["09"]), "123456");
    EXPECT_FALSE(json::find(doc["subscriber"], "DMG"));
    EXPECT_EQ(str(doc["patient"]["PAT"]["01"]), "01");
    EXPECT_EQ(str(doc["patient"]["NM1"]["03"]), "JONES");
    EXPECT_EQ(str(doc["patient"]["DMG"]["02"]), "19890916");
  }
  // The 2330A other subscriber (NM1*IL*1*2330A2 inside claim A37YH667) does not replace it.
  for (size_t index = 0; index < dependents.size(); ++index) {
    EXPECT_EQ(str(dependents[index]->record.doc["claim"]["CLM"]["01"]), index % 2 ? "A37YH668" : "A37YH667");
  }
}

// The records of a loop's claims share its context (read-only views, kept alive by the record):
// a context changed after a record was passed on is copied first, and that record keeps what
// it was read with. Records also outlive the reader (readAll destroys it before returning).
TEST(X12Reader, RecordsKeepTheContextTheyWereReadWith) {
  std::string text = replace(northshore(), "HL*3*1*22*1~", "HL*3*1*22*1~BHT*0019*00*NS-LATE*20261102*1430*CH~");
  auto reads = readAll(replace(text, "SE*52*0001~", "SE*53*0001~"));
  ASSERT_EQ(reads.size(), 3u);
  for (const Read& read : reads) {
    ASSERT_EQ(read.status, ReadStatus::kRecord) << read.location();
  }
  EXPECT_EQ(str(reads[0].record.doc["transaction"]["BHT"]["03"]), "NS20261002");
  EXPECT_EQ(str(reads[1].record.doc["transaction"]["BHT"]["03"]), "NS-LATE");
  EXPECT_EQ(str(reads[2].record.doc["transaction"]["BHT"]["03"]), "NS-LATE");
  EXPECT_EQ(str(reads[0].record.doc["subscriber"]["NM1"]["04"]), "ADAEZE");
  EXPECT_EQ(str(reads[2].record.doc["subscriber"]["NM1"]["04"]), "CHIDI");
  EXPECT_EQ(json::serialize(reads[1].record.doc["billingProvider"]), json::serialize(reads[0].record.doc["billingProvider"]));
  EXPECT_EQ(str(reads[2].record.doc["billingProvider"]["NM1"]["09"]), "1093817462");
}

TEST(X12Reader, LocationsNameSegmentAndElement) {
  auto reads = readAll(northshore());
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(describeLocation(reads[0].record.doc, {"lines", "0", "SV1", "01"}, false), "segment 25 (SV1), element 1");
  // Steps index components from 0; people count them from 1.
  EXPECT_EQ(describeLocation(reads[0].record.doc, {"lines", "0", "SV1", "01", "1"}, false),
            "segment 25 (SV1), element 1, component 2");
  EXPECT_EQ(describeLocation(reads[0].record.doc, {"claim", "HI", "1", "01"}, false), "segment 21 (HI), element 1");
}

TEST(X12Reader, LineBreaksAreOptional) {
  std::string text = northshore();
  std::string flat;
  for (char c : text) {
    if (c != '\n') flat.push_back(c);
  }
  auto reads = readAll(flat);
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[2].status, ReadStatus::kRecord);
}

TEST(X12Reader, SeparatorsComeFromTheIsa) {
  auto plain = readAll(testing::readFile(testing::testDataDir() / "mappers" / "x12" / "x12_valid.txt"));
  auto other = readAll(testing::readFile(testing::testDataDir() / "mappers" / "x12" / "x12_valid_different_separators.txt"));
  ASSERT_EQ(plain.size(), 3u);  // two claims, then the wrong SE count of the published sample
  ASSERT_EQ(other.size(), 3u);
  for (size_t index = 0; index < 2; ++index) {
    ASSERT_EQ(plain[index].status, ReadStatus::kRecord) << plain[index].location();
    ASSERT_EQ(other[index].status, ReadStatus::kRecord) << other[index].location();
    EXPECT_EQ(json::serialize(plain[index].record.doc), json::serialize(other[index].record.doc));
  }
  EXPECT_EQ(str(plain[1].record.doc["lines"][0]["SV1"]["01"][1]), "478331");
  EXPECT_EQ(str(plain[0].record.doc["claim"]["HI"][0]["05"][1]), "5559");
  EXPECT_EQ(plain[2].status, ReadStatus::kRejected);
  EXPECT_EQ(plain[2].location(), "segment 34 (SE), element 1");
  EXPECT_EQ(plain[2].issues.issues()[0].diagnostics,
            "segment 34 (SE), element 1: SE01 says 25 segments, the transaction set has 34");
  EXPECT_EQ(other[2].location(), "segment 34 (SE), element 1");
}

TEST(X12Reader, BadSegmentCount) {
  auto reads = readAll(replace(northshore(), "SE*52*0001~", "SE*50*0001~"));
  ASSERT_EQ(reads.size(), 4u);
  EXPECT_EQ(reads[3].status, ReadStatus::kRejected);
  EXPECT_EQ(reads[3].location(), "segment 52 (SE), element 1");
}

TEST(X12Reader, BadControlNumbersAndGroupCounts) {
  std::string text = replace(northshore(), "SE*52*0001~", "SE*52*0002~");
  text = replace(text, "GE*1*101~", "GE*2*101~");
  text = replace(text, "IEA*1*000000101~", "IEA*1*000000102~");
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 6u);
  EXPECT_EQ(reads[3].location(), "segment 52 (SE), element 2");
  // ISA = 1, GS = 2, ST..SE = 3..54, GE = 55, IEA = 56 within the interchange.
  EXPECT_EQ(reads[4].location(), "interchange segment 55 (GE), element 1");
  EXPECT_EQ(reads[4].issues.issues()[0].diagnostics,
            "interchange segment 55 (GE), element 1: GE01 says 2 transaction sets, the group has 1");
  EXPECT_EQ(reads[5].location(), "interchange segment 56 (IEA), element 2");
}

TEST(X12Reader, MissingClm) {
  // The dependent's loop (HL at segment 35) loses both its claims.
  std::string text = northshore();
  size_t from = text.find("CLM*NS-CLM-0002");
  size_t to = text.find("SE*52");
  text.erase(from, to - from);
  text = replace(text, "SE*52*0001~", "SE*41*0001~");
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].status, ReadStatus::kRecord);
  EXPECT_EQ(reads[1].status, ReadStatus::kRejected);
  EXPECT_EQ(reads[1].location(), "segment 35 (HL)");
  EXPECT_EQ(reads[1].issues.issues()[0].diagnostics, "segment 35 (HL): loop 2000C has no claim (CLM, loop 2300)");
  EXPECT_EQ(reads[1].record.raw.rfind("HL*4*3*23*0~", 0), 0u);
}

TEST(X12Reader, SubscriberWithoutClaimOrPatient) {
  std::string text = replace(northshore(), "CLM*NS-CLM-0001*245.00***11:B:1*Y*A*Y*Y~\n", "");
  // Without its CLM, the HI, NM1*82 and service lines of claim 1 are out of place.
  auto reads = readAll(text);
  ASSERT_GE(reads.size(), 2u);
  EXPECT_EQ(reads[0].status, ReadStatus::kRejected);
  EXPECT_EQ(reads[0].location(), "segment 21 (NM1), element 1");
  bool found = false;
  for (const Read& read : reads) found = found || read.location() == "segment 12 (HL)";
  EXPECT_TRUE(found);
}

TEST(X12Reader, ClaimWithoutServiceLines) {
  std::string text = northshore();
  size_t from = text.find("LX*1~\nSV1*HC:87880");
  size_t to = text.find("SE*52");
  text.erase(from, to - from);
  text = replace(text, "SE*52*0001~", "SE*49*0001~");
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[2].status, ReadStatus::kRejected);
  EXPECT_EQ(reads[2].location(), "segment 47 (CLM)");
}

TEST(X12Reader, WrongSeparators) {
  // An ISA sender id one character short moves every later separator.
  auto shifted = readAll(replace(northshore(), "*ZZ*NORTHSHOREBILL *", "*ZZ*NORTHSHOREBILL*"));
  ASSERT_EQ(shifted.size(), 1u);
  EXPECT_EQ(shifted[0].status, ReadStatus::kFatal);
  EXPECT_EQ(shifted[0].location(), "interchange segment 1 (ISA), element 6");

  // The ISA declares '*' but the rest of the interchange uses '|'.
  std::string text = northshore();
  size_t isa_end = text.find('\n');
  for (size_t at = isa_end; at < text.size(); ++at) {
    if (text[at] == '*') text[at] = '|';
  }
  auto piped = readAll(text);
  ASSERT_EQ(piped.size(), 1u);
  EXPECT_EQ(piped[0].status, ReadStatus::kFatal);
  EXPECT_EQ(piped[0].location(), "interchange segment 2");

  // A terminator that is a letter.
  std::string letter = northshore();
  letter[105] = 'X';
  auto bad = readAll(letter);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].location(), "interchange segment 1 (ISA), element 16");

  auto not_x12 = readAll("claim_id,line_no\n1,2\n");
  ASSERT_EQ(not_x12.size(), 1u);
  EXPECT_EQ(not_x12[0].status, ReadStatus::kFatal);
}

TEST(X12Reader, TruncatedInterchange) {
  std::string text = northshore();
  text.erase(text.find("SE*52"));
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 4u);
  EXPECT_EQ(reads[2].status, ReadStatus::kRecord);
  EXPECT_EQ(reads[3].status, ReadStatus::kRejected);
  EXPECT_EQ(reads[3].location(), "segment 52");
}

TEST(X12Reader, TwoInterchangesInOneStream) {
  auto reads = readAll(northshore() + northshore());
  ASSERT_EQ(reads.size(), 6u);
  for (const Read& read : reads) EXPECT_EQ(read.status, ReadStatus::kRecord) << read.location();
}

// Elements are split 16 bytes at a time: separators at the edges of those blocks, components
// of one element in two blocks, and long elements spanning several.
TEST(X12Reader, SeparatorsAtAnyOffsetInTheSegment) {
  std::string text = replace(northshore(), "N3*12 W ELM ST~", "N3*12 W ELM STR*APT 4~");  // '*' at byte 15
  text = replace(text, "SV1*HC:99214:25*180.00*UN*1***1:2~", "SV1*HC:99214:25:26:27*180.00*UN*1***1:2:3:4~");
  text = replace(text, "NM1*82*1*WHITFIELD*DANA****XX*1467583922~",
                 "NM1*82*1*WHITFIELD-ABERNATHY-OKONKWO-MENON*DANA****XX*1467583922~");
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 3u);
  ASSERT_EQ(reads[0].status, ReadStatus::kRecord) << reads[0].location();
  const json::Value& first = reads[0].record.doc;
  EXPECT_EQ(str(first["subscriber"]["N3"]["01"]), "12 W ELM STR");
  EXPECT_EQ(str(first["subscriber"]["N3"]["02"]), "APT 4");
  const json::Value& sv1 = first["lines"][0]["SV1"];
  ASSERT_TRUE(sv1["01"].IsArray());
  ASSERT_EQ(sv1["01"].Size(), 5u);
  EXPECT_EQ(str(sv1["01"][2]), "25");
  EXPECT_EQ(str(sv1["01"][3]), "26");  // the ':' before it is byte 15
  EXPECT_EQ(str(sv1["01"][4]), "27");
  EXPECT_EQ(str(sv1["02"]), "180.00");
  EXPECT_EQ(str(sv1["05"]), "");
  ASSERT_EQ(sv1["07"].Size(), 4u);
  EXPECT_EQ(str(sv1["07"][3]), "4");
  const json::Value& rendering = first["claim"]["renderingProvider"]["NM1"];
  EXPECT_EQ(str(rendering["03"]), "WHITFIELD-ABERNATHY-OKONKWO-MENON");
  EXPECT_EQ(str(rendering["04"]), "DANA");
  EXPECT_EQ(str(rendering["09"]), "1467583922");
  EXPECT_FALSE(json::find(rendering, "10"));
}

// Input larger than the reader's 64 KiB block: segments that cross from one block to the next
// read like the others (leading line breaks move the block edges to other bytes).
TEST(X12Reader, SegmentsAcrossInputBlocks) {
  const std::string one = northshore();
  for (size_t shift = 0; shift < 3; ++shift) {
    std::string text(shift, '\n');
    const size_t copies = 3 * (64 * 1024) / one.size();  // three blocks
    for (size_t copy = 0; copy < copies; ++copy) text += one;
    auto reads = readAll(text);
    ASSERT_EQ(reads.size(), 3 * copies) << "shift " << shift;
    for (size_t index = 0; index < reads.size(); ++index) {
      ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << "record " << index << ": " << reads[index].location();
      const json::Value& doc = reads[index].record.doc;
      EXPECT_EQ(str(doc["claim"]["CLM"]["01"]), "NS-CLM-000" + std::to_string(index % 3 + 1)) << index;
      EXPECT_EQ(str(doc["billingProvider"]["NM1"]["09"]), "1093817462") << index;
      EXPECT_EQ(str(doc["claim"]["CLM"]["05"][2]), "1") << index;  // "11:B:1", cut by the first block edge
      EXPECT_EQ(str(doc["claim"]["CLM"]["09"]), "Y") << index;
      EXPECT_EQ(str(doc["lines"][0]["DTP"][0]["01"]), "472") << index;
      EXPECT_NE(reads[index].record.raw.find("CLM*NS-CLM-000" + std::to_string(index % 3 + 1) + "*"), std::string::npos)
          << index;
    }
  }
}

// A claim cut out of its interchange, in the frame its record carries: the interchange of that
// one claim that a quarantined claim is replayed as.
std::string standalone(const SourceRecord& record) {
  EXPECT_NE(record.frame, nullptr);
  if (record.frame == nullptr) return record.raw;
  return record.frame->prefix() + record.raw + record.frame->suffix(record.raw);
}

// Expected values from northshore-837p.x12 (its lines are its segments): the header is ST..NM1*40
// (lines 3-7, 5 segments); claim 1 is lines 8-31, claim 2 lines 8-13, 32-42, 43-48, claim 3 lines
// 8-13, 32-42, 49-53; SE counts the header, the claim and itself.
TEST(X12Reader, EachClaimReadsAloneInItsFrame) {
  const std::string text = northshore();
  auto reads = readAll(text);
  ASSERT_EQ(reads.size(), 3u);
  const std::string envelope =
      "ISA*00*          *00*          *ZZ*NORTHSHOREBILL *ZZ*LAKESHOREMCD   *261002*1430*^*00501*000000101*0*P*:~"
      "GS*HC*NORTHSHOREBILL*LAKESHOREMCD*20261002*1430*101*X*005010X222A1~"
      "ST*837*0001*005010X222A1~BHT*0019*00*NS20261002*20261002*1430*CH~"
      "NM1*41*2*NORTHSHORE FAMILY MEDICINE*****46*NSFM01~PER*IC*BILLING OFFICE*TE*3125550100~"
      "NM1*40*2*LAKESHORE MEDICAID MCO*****46*LMC01~";
  const char* trailers[] = {"SE*30*0001~GE*1*101~IEA*1*000000101~", "SE*29*0001~GE*1*101~IEA*1*000000101~",
                            "SE*28*0001~GE*1*101~IEA*1*000000101~"};
  const char* clm_segments[] = {"19", "23", "23"};  // CLM's number within the one-claim transaction set
  for (size_t index = 0; index < reads.size(); ++index) {
    const SourceRecord& original = reads[index].record;
    ASSERT_NE(original.frame, nullptr);
    EXPECT_EQ(original.frame->prefix(), envelope);
    EXPECT_EQ(original.frame->suffix(original.raw), trailers[index]);
    auto alone = readAll(standalone(original));
    ASSERT_EQ(alone.size(), 1u) << index << ": " << (alone.size() > 1 ? alone[1].location() : "");
    ASSERT_EQ(alone[0].status, ReadStatus::kRecord) << alone[0].location();
    EXPECT_EQ(alone[0].record.raw, original.raw) << index;
    const json::Value& doc = alone[0].record.doc;
    EXPECT_EQ(str(doc["claim"]["CLM"]["01"]), "NS-CLM-000" + std::to_string(index + 1));
    EXPECT_EQ(json::numberText(doc["claim"]["CLM"]["@segment"]), clm_segments[index]);
    EXPECT_EQ(doc["subscriberIsPatient"].GetBool(), index == 0);
    EXPECT_EQ(str(doc["transaction"]["BHT"]["03"]), "NS20261002");
    // Read alone again, the standalone claim is framed the same way.
    EXPECT_EQ(standalone(alone[0].record), standalone(original));
  }
  EXPECT_EQ(str(readAll(standalone(reads[2].record))[0].record.doc["patient"]["NM1"]["04"]), "EMEKA");
  EXPECT_EQ(str(readAll(standalone(reads[2].record))[0].record.doc["subscriber"]["NM1"]["04"]), "CHIDI");
}

// The imsweb sample with other separators ('~' between elements, '_' ending segments, no line
// breaks kept): each claim reads alone, with an SE count the reader accepts (the sample's own is
// wrong).
TEST(X12Reader, ClaimsReadAloneWithTheirInterchangesSeparators) {
  auto reads = readAll(testing::readFile(testing::testDataDir() / "mappers" / "x12" / "x12_valid_different_separators.txt"));
  ASSERT_EQ(reads.size(), 3u);
  for (size_t index = 0; index < 2; ++index) {
    const std::string text = standalone(reads[index].record);
    EXPECT_EQ(text.rfind("ISA~00~", 0), 0u);
    EXPECT_TRUE(text.ends_with("_GE~1~1_IEA~1~000000905_")) << text;
    auto alone = readAll(text);
    ASSERT_EQ(alone.size(), 1u) << (alone.size() > 1 ? alone[1].location() : "");
    ASSERT_EQ(alone[0].status, ReadStatus::kRecord) << alone[0].location();
    EXPECT_EQ(alone[0].record.raw, reads[index].record.raw);
  }
}

// A claim the reader rejects keeps its frame too; replayed alone it is rejected the same way.
TEST(X12Reader, RejectedClaimCarriesItsFrame) {
  std::string text = northshore();
  size_t from = text.find("LX*1~\nSV1*HC:87880");
  size_t to = text.find("SE*52");
  text.erase(from, to - from);
  auto reads = readAll(replace(text, "SE*52*0001~", "SE*49*0001~"));
  ASSERT_EQ(reads.size(), 3u);
  ASSERT_EQ(reads[2].status, ReadStatus::kRejected);
  auto alone = readAll(standalone(reads[2].record));
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].status, ReadStatus::kRejected);
  EXPECT_EQ(alone[0].location(), "segment 23 (CLM)");
  EXPECT_EQ(alone[0].record.raw, reads[2].record.raw);
}

// Without a functional group (GS) there is no frame to read a claim in.
TEST(X12Reader, NoFrameOutsideAFunctionalGroup) {
  std::string text = replace(northshore(), "GS*HC*NORTHSHOREBILL*LAKESHOREMCD*20261002*1430*101*X*005010X222A1~\n", "");
  auto reads = readAll(text);
  ASSERT_FALSE(reads.empty());
  for (const Read& read : reads) EXPECT_EQ(read.record.frame, nullptr) << read.location();
}

// Issue 14: a claim with invalid UTF-8 is rejected naming the byte; the claims around it are read.
TEST(X12Reader, ClaimWithInvalidUtf8IsRejectedNamingTheByte) {
  auto reads = readAll(replace(northshore(), "CLM*NS-CLM-0002*95.00", "CLM*NS-CLM-0002\xc3*95.00"));
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[0].status, ReadStatus::kRecord);
  EXPECT_EQ(reads[2].status, ReadStatus::kRecord);
  ASSERT_EQ(reads[1].status, ReadStatus::kRejected);
  const size_t found = reads[1].record.raw.find("NS-CLM-0002\xc3");
  ASSERT_NE(found, std::string::npos);
  const size_t bad = found + 11;
  EXPECT_NE(reads[1].issues.issues()[0].diagnostics.find(": the claim, byte " + std::to_string(bad) +
                                                         " of the record: not valid UTF-8"),
            std::string::npos)
      << reads[1].issues.issues()[0].diagnostics;
  EXPECT_EQ(reads[1].location().substr(0, 8), "segment ");
  EXPECT_NE(reads[1].location().find("(CLM)"), std::string::npos);
}

// The transaction set's ST and BHT go into every claim's record ("transaction") but are not in
// a claim's bytes: invalid UTF-8 or a NUL byte there rejects each claim of the transaction set,
// naming the header (found by the x12_reader fuzz target once it checked every input).
TEST(X12Reader, InvalidUtf8OrNulInTheTransactionHeaderRejectsItsClaims) {
  for (const std::string& bad : {std::string("NS2026\xc3"), std::string("NS2026\0", 7)}) {
    auto reads = readAll(replace(northshore(), "BHT*0019*00*NS20261002", "BHT*0019*00*" + bad));
    ASSERT_EQ(reads.size(), 3u);
    for (const Read& read : reads) {
      ASSERT_EQ(read.status, ReadStatus::kRejected) << read.location();
      const std::string& diagnostics = read.issues.issues()[0].diagnostics;
      const std::string why = bad.back() == '\0' ? "a NUL byte" : "not valid UTF-8";
      EXPECT_NE(diagnostics.find(": the transaction set's segment 2 (BHT), byte " +
                                 std::to_string(std::string("BHT*0019*00*NS2026").size()) + " of the segment: " + why),
                std::string::npos)
          << diagnostics;
      EXPECT_NE(read.location().find("(CLM)"), std::string::npos) << read.location();
    }
  }
}

// Issue 14, maxRecordBytes. The bytes of a claim's record, as the reader's `raw` is defined
// (x12_reader.h): its segments in order with their terminators, no line breaks. `ranges`: pairs
// of segment starts, each range from the segment starting with the first text up to (without)
// the one starting with the second, in `text` (segments "...~" with line breaks between them).
std::string claimBytes(const std::string& text, const std::vector<std::pair<std::string, std::string>>& ranges) {
  std::vector<std::string> segments;
  size_t start = 0;
  for (size_t end = text.find('~'); end != std::string::npos; start = end + 1, end = text.find('~', start)) {
    std::string segment = text.substr(start, end - start);
    segment.erase(0, segment.find_first_not_of("\r\n"));
    segments.push_back(segment + "~");
  }
  std::string out;
  for (const auto& [from, to] : ranges) {
    bool inside = false;
    for (const std::string& segment : segments) {
      if (segment.starts_with(from)) inside = true;
      if (segment.starts_with(to)) inside = false;
      if (inside) out += segment;
    }
  }
  return out;
}

// SE01 of the first transaction set plus `more` (segments inserted into it).
std::string bumpSegmentCount(std::string text, int more) {
  return replace(std::move(text), "SE*52*0001~", "SE*" + std::to_string(52 + more) + "*0001~");
}

void expectTooLong(const Read& read, const std::string& whole, size_t max, const std::string& location) {
  ASSERT_EQ(read.status, ReadStatus::kRejected) << read.location();
  EXPECT_EQ(read.location(), location);
  ASSERT_FALSE(read.issues.issues().empty());
  EXPECT_EQ(read.issues.issues()[0].code, "too-long");
  EXPECT_NE(read.issues.issues()[0].diagnostics.find(std::to_string(whole.size()) + " bytes, larger than maxRecordBytes (" +
                                                     std::to_string(max) + ")"),
            std::string::npos)
      << read.issues.issues()[0].diagnostics;
  EXPECT_EQ(read.record.raw_total, whole.size());
  EXPECT_EQ(read.record.raw_sha256, sha256Hex(whole));
  EXPECT_EQ(read.record.raw, whole.substr(0, max));
  EXPECT_EQ(read.record.frame, nullptr);  // its first bytes alone are no claim to replay
}

// One huge element (3 MB, far past the 64 KiB input block) in claim 1: the claim is one rejected
// record holding its first maxRecordBytes bytes with the digest and size of all of it; claims 2
// and 3 are read as usual, and the SE count still matches.
TEST(X12Reader, ClaimWithAHugeElementIsRejectedTruncatedWithItsDigest) {
  const std::string huge = "NTE*ADD*" + std::string(3 << 20, 'x');
  const std::string text = bumpSegmentCount(replace(northshore(), "HI*ABF:Z794~\n", "HI*ABF:Z794~\n" + huge + "~\n"), 1);
  const std::string whole = claimBytes(text, {{"HL*1**20*1", "HL*2*"}, {"HL*2*", "CLM*"}, {"CLM*NS-CLM-0001", "HL*3"}});
  ASSERT_GT(whole.size(), huge.size());
  const size_t max = 65536;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 3u);
  expectTooLong(reads[0], whole, max, "segment 19 (CLM)");
  for (size_t index = 1; index < 3; ++index) {
    ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << reads[index].location();
    EXPECT_EQ(str(reads[index].record.doc["claim"]["CLM"]["01"]), "NS-CLM-000" + std::to_string(index + 1));
    EXPECT_TRUE(reads[index].record.raw_sha256.empty());
  }
  // The same claim under the limit is read whole (the element is not the problem).
  auto unlimited = readAll(text);
  ASSERT_EQ(unlimited.size(), 3u);
  EXPECT_EQ(unlimited[0].status, ReadStatus::kRecord);
  EXPECT_EQ(unlimited[0].record.raw, whole);
}

// The huge segment is the claim's CLM itself, and the limit falls inside a block (the segment's
// terminator is in the same 64 KiB block): the same, and its service lines are not read as
// segments of another claim.
TEST(X12Reader, HugeClmStartsARejectedClaim) {
  const std::string clm = "CLM*NS-CLM-0002*95.00***11:B:1*Y*A*Y*Y*" + std::string(5000, '9');
  const std::string text = replace(northshore(), "CLM*NS-CLM-0002*95.00***11:B:1*Y*A*Y*Y", clm);
  const std::string whole = claimBytes(text, {{"HL*1**20*1", "HL*2*"}, {"HL*3*", "CLM*"}, {"CLM*NS-CLM-0002", "CLM*NS-CLM-0003"}});
  const size_t max = 2000;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[0].status, ReadStatus::kRecord);
  expectTooLong(reads[1], whole, max, "segment 41 (CLM)");
  ASSERT_EQ(reads[2].status, ReadStatus::kRecord) << reads[2].location();
  EXPECT_EQ(str(reads[2].record.doc["claim"]["CLM"]["01"]), "NS-CLM-0003");
}

// Many ordinary segments make claim 2 larger than the limit: rejected the same way.
TEST(X12Reader, ClaimOfManySegmentsIsRejectedTruncatedWithItsDigest) {
  std::string notes;
  for (int index = 0; index < 400; ++index) notes += "NTE*ADD*NOTE NUMBER " + std::to_string(index) + "~\n";
  const std::string text = bumpSegmentCount(replace(northshore(), "HI*ABK:J069~\nNM1*82", "HI*ABK:J069~\n" + notes + "NM1*82"), 400);
  const std::string whole = claimBytes(text, {{"HL*1**20*1", "HL*2*"}, {"HL*3*", "CLM*"}, {"CLM*NS-CLM-0002", "CLM*NS-CLM-0003"}});
  const size_t max = 4096;
  ASSERT_GT(whole.size(), max);
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[0].status, ReadStatus::kRecord) << reads[0].location();
  expectTooLong(reads[1], whole, max, "segment 41 (CLM)");
  EXPECT_EQ(reads[2].status, ReadStatus::kRecord) << reads[2].location();
}

// A huge segment outside a claim (the subscriber's address, loop 2010BA) is a rejected record of
// its own; the claims go on without it.
TEST(X12Reader, HugeSegmentOutsideAClaimIsRejectedAlone) {
  const std::string n3 = "N3*12 W ELM ST" + std::string(100000, ' ') + "APT 2";
  const std::string text = replace(northshore(), "N3*12 W ELM ST~\nN4*CHICAGO*IL*60610~\nDMG*D8*19610319",
                                   n3 + "~\nN4*CHICAGO*IL*60610~\nDMG*D8*19610319");
  const size_t max = 1000;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 4u);
  expectTooLong(reads[0], n3 + "~", max, "segment 15 (N3)");
  for (size_t index = 1; index < 4; ++index) {
    ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << reads[index].location();
    EXPECT_EQ(reads[index].record.raw.find("APT 2"), std::string::npos);
  }
  EXPECT_EQ(json::find(reads[1].record.doc["subscriber"], "N3"), nullptr);
}

// The bytes a segment is measured by are those a record would hold: from its id to its
// terminator, not the line break before it (found by x12_reader_fuzz: a segment of
// maxRecordBytes + 1 bytes after a line break was rejected "larger than maxRecordBytes" at
// maxRecordBytes bytes). At every size around the limit, a rejected N3 says its true size, which
// is past the limit, and one that fits is not rejected as a segment.
TEST(X12Reader, ASegmentIsMeasuredFromItsIdToItsTerminator) {
  const size_t max = 1000;
  for (size_t size = max - 2; size <= max + 2; ++size) {
    const std::string n3 = "N3*" + std::string(size - 4, 'x');  // with its "~": `size` bytes
    const std::string text = replace(northshore(), "N3*12 W ELM ST~\nN4*CHICAGO*IL*60610~\nDMG*D8*19610319",
                                     n3 + "~\nN4*CHICAGO*IL*60610~\nDMG*D8*19610319");
    auto reads = readAll(text, max);
    ASSERT_FALSE(reads.empty()) << size;
    if (size > max) {
      expectTooLong(reads[0], n3 + "~", max, "segment 15 (N3)");
    } else {
      for (const Read& read : reads) {
        EXPECT_LE(read.record.raw.size(), max) << size;
        if (read.status != ReadStatus::kRejected) continue;
        // What does not fit is the subscriber loop (the billing provider loop and the N3), not the segment.
        EXPECT_EQ(read.issues.issues()[0].diagnostics.find("the segment is"), std::string::npos) << size << ": " << read.issues.issues()[0].diagnostics;
        EXPECT_GT(read.record.raw_total, max) << size;
      }
    }
  }
}

// A last segment the input ends inside (no terminator) counts with the terminator every record
// holds after its segments (found by x12_reader_fuzz: one of exactly maxRecordBytes bytes was held
// as a record of maxRecordBytes + 1 bytes).
TEST(X12Reader, ALastSegmentWithoutTerminatorCountsItsTerminator) {
  const size_t max = 1000;
  const std::string text = northshore();
  const std::string prefix = text.substr(0, text.find("N3*12 W ELM ST~"));
  for (size_t body = max - 2; body <= max + 1; ++body) {
    const std::string n3 = "N3*" + std::string(body - 3, 'x');
    auto reads = readAll(prefix + n3, max);
    bool rejected = false;
    for (const Read& read : reads) {
      EXPECT_LE(read.record.raw.size(), max) << body;
      if (read.status == ReadStatus::kRejected && !read.issues.issues().empty() && read.issues.issues()[0].code == "too-long" &&
          read.location() == "segment 15 (N3)") {
        expectTooLong(read, n3 + "~", max, "segment 15 (N3)");
        rejected = true;
      }
    }
    EXPECT_EQ(rejected, body + 1 > max) << body;
  }
}

// Issue 14: a loop of very many ordinary segments is not held either. `count` copies of
// `segment` (with line breaks).
std::string manySegments(const std::string& segment, int count) {
  std::string out;
  for (int index = 0; index < count; ++index) out += segment + std::to_string(index) + "~\n";
  return out;
}

// The subscriber loop of claim 1 (2000B/2010BA) grows past the limit by 400 REF segments and one
// huge N3 after them: the loop, with the billing provider loop before it and its claim, is one
// rejected record at its HL holding its first maxRecordBytes bytes with the digest and size of
// all of it. The next subscriber loop and its claims are read as usual, without its segments.
TEST(X12Reader, SubscriberLoopOfManySegmentsIsOneRejectedRecord) {
  const std::string refs = manySegments("REF*SY*1000", 400) + "N3*" + std::string(100000, 'y') + "~\n";
  const std::string text =
      bumpSegmentCount(replace(northshore(), "DMG*D8*19610319*F~\n", "DMG*D8*19610319*F~\n" + refs), 401);
  const std::string whole = claimBytes(text, {{"HL*1**20*1", "HL*2*"}, {"HL*2*", "HL*3*"}});
  ASSERT_NE(whole.find("REF*SY*1000399~N3*yyy"), std::string::npos);
  ASSERT_NE(whole.find("CLM*NS-CLM-0001"), std::string::npos);
  const size_t max = 4096;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 3u);
  expectTooLong(reads[0], whole, max, "segment 12 (HL)");
  EXPECT_NE(reads[0].issues.issues()[0].diagnostics.find("loop 2000B"), std::string::npos);
  for (size_t index = 1; index < 3; ++index) {
    ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << reads[index].location();
    const json::Value& doc = reads[index].record.doc;
    EXPECT_EQ(str(doc["claim"]["CLM"]["01"]), "NS-CLM-000" + std::to_string(index + 1));
    EXPECT_EQ(str(doc["subscriber"]["NM1"]["04"]), "CHIDI");
    EXPECT_EQ(json::find(doc["subscriber"], "REF"), nullptr);
    EXPECT_EQ(reads[index].record.raw.find("REF*SY"), std::string::npos);
  }
  // Under no limit the loop is read whole: claim 1 with its 400 REFs.
  auto unlimited = readAll(text);
  ASSERT_EQ(unlimited.size(), 3u);
  ASSERT_EQ(unlimited[0].status, ReadStatus::kRecord);
  EXPECT_EQ(unlimited[0].record.doc["subscriber"]["REF"].Size(), 400u);
}

// The billing provider loop (2000A/2010AA) grows past the limit: it is one record with every
// subscriber and claim below it, up to the end of its transaction set; the next interchange in
// the same stream is read as usual.
TEST(X12Reader, BillingProviderLoopOfManySegmentsIsOneRejectedRecordAndTheStreamGoesOn) {
  const std::string first = bumpSegmentCount(
      replace(northshore(), "REF*EI*361234567~\n", "REF*EI*361234567~\n" + manySegments("REF*G2*", 300)), 300);
  const std::string whole = claimBytes(first, {{"HL*1**20*1", "SE*"}});
  const size_t max = 2048;
  auto reads = readAll(first + northshore(), max);
  ASSERT_EQ(reads.size(), 4u);
  expectTooLong(reads[0], whole, max, "segment 6 (HL)");
  EXPECT_NE(reads[0].issues.issues()[0].diagnostics.find("loop 2000A"), std::string::npos);
  for (size_t index = 1; index < 4; ++index) {
    ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << reads[index].location();
    EXPECT_EQ(str(reads[index].record.doc["claim"]["CLM"]["01"]), "NS-CLM-000" + std::to_string(index));
    EXPECT_EQ(json::find(reads[index].record.doc["billingProvider"], "REF")->Size(), 1u);
  }
}

// The patient loop of claims 2 and 3 (2000C/2010CA) grows past the limit: one record at its HL,
// holding the billing provider and subscriber loops before it; claim 1 is read.
TEST(X12Reader, PatientLoopOfManySegmentsIsOneRejectedRecord) {
  const std::string text =
      bumpSegmentCount(replace(northshore(), "PAT*19~\n", "PAT*19~\n" + manySegments("REF*SY*2000", 300)), 300);
  const std::string whole = claimBytes(text, {{"HL*1**20*1", "HL*2*"}, {"HL*3*", "SE*"}});
  const size_t max = 3000;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 2u);
  ASSERT_EQ(reads[0].status, ReadStatus::kRecord) << reads[0].location();
  EXPECT_EQ(str(reads[0].record.doc["claim"]["CLM"]["01"]), "NS-CLM-0001");
  expectTooLong(reads[1], whole, max, "segment 35 (HL)");
  EXPECT_NE(reads[1].issues.issues()[0].diagnostics.find("loop 2000C"), std::string::npos);
}

// A transaction set header (ST up to the first HL) of very many segments: one record at the ST;
// the claims are read, without a frame (their header was not kept, so they cannot be replayed
// alone).
TEST(X12Reader, HeaderOfManySegmentsIsOneRejectedRecord) {
  const std::string text = bumpSegmentCount(
      replace(northshore(), "PER*IC*BILLING OFFICE*TE*3125550100~\n",
              "PER*IC*BILLING OFFICE*TE*3125550100~\n" + manySegments("PER*IC*BILLING OFFICE*TE*312555", 200)),
      200);
  const std::string whole = claimBytes(text, {{"ST*837", "HL*1*"}});
  const size_t max = 2500;
  auto reads = readAll(text, max);
  ASSERT_EQ(reads.size(), 4u);
  expectTooLong(reads[0], whole, max, "segment 1 (ST)");
  EXPECT_NE(reads[0].issues.issues()[0].diagnostics.find("transaction set header"), std::string::npos);
  for (size_t index = 1; index < 4; ++index) {
    ASSERT_EQ(reads[index].status, ReadStatus::kRecord) << reads[index].location();
    EXPECT_EQ(reads[index].record.frame, nullptr);
  }
  auto unlimited = readAll(text);
  ASSERT_EQ(unlimited.size(), 3u);
  EXPECT_NE(unlimited[0].record.frame, nullptr);
}

}  // namespace
}  // namespace fhir::mappers::readers::x12

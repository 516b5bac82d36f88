// SPDX-License-Identifier: Apache-2.0
// Issue 14 (long): an X12 element of a few hundred MB, or a loop of millions of segments, streams
// through the reader in bounded memory. The input is generated as it is read (nothing holds it);
// the reader runs in a child process whose peak RSS (getrusage) is compared with its RSS before
// reading.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <istream>
#include <string>

#include "conformance/common/ids.h"
#include "mappers/readers/x12/x12_reader.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::readers::x12 {
namespace {

// `head`, then `filler` bytes repeating `unit` ('x' by default), then `tail`, produced block by
// block.
class GeneratedStream final : public std::streambuf {
 public:
  GeneratedStream(std::string head, uint64_t filler, std::string tail, std::string unit = "x")
      : head_(std::move(head)), filler_(filler), tail_(std::move(tail)), unit_(std::move(unit)) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    size_t size = 0;
    while (size < sizeof block_ && part_ < 3) {
      if (part_ == 1) {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(filler_ - offset_, sizeof block_ - size));
        for (size_t done = 0; done < take;) {
          const size_t at = static_cast<size_t>(offset_ % unit_.size());
          const size_t piece = std::min(take - done, unit_.size() - at);
          std::memcpy(block_ + size + done, unit_.data() + at, piece);
          done += piece;
          offset_ += piece;
        }
        size += take;
        if (offset_ == filler_) next();
        continue;
      }
      const std::string& text = part_ == 0 ? head_ : tail_;
      const size_t take = std::min(text.size() - offset_, sizeof block_ - size);
      std::memcpy(block_ + size, text.data() + offset_, take);
      size += take;
      offset_ += take;
      if (offset_ == text.size()) next();
    }
    if (size == 0) return traits_type::eof();
    setg(block_, block_, block_ + size);
    return traits_type::to_int_type(*gptr());
  }

 private:
  void next() {
    ++part_;
    offset_ = 0;
  }
  std::string head_;
  uint64_t filler_;
  std::string tail_;
  std::string unit_;
  int part_ = 0;
  uint64_t offset_ = 0;
  char block_[1 << 16];
};

long maxRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// A 300 MB element in claim 1 of northshore-837p.x12 (maxRecordBytes 1 MiB): claim 1 is rejected
// with its first bytes and its size, claims 2 and 3 are read, and the reader's peak memory grows
// by less than 32 MB.
TEST(X12LargeElement, HundredsOfMegabytesInOneElementStreamInBoundedMemory) {
  const std::string text = testing::readFile(testing::testDataDir() / "mappers" / "x12" / "northshore-837p.x12");
  const std::string at = "HI*ABF:Z794~\n";
  const size_t found = text.find(at);
  ASSERT_NE(found, std::string::npos);
  const size_t cut = found + at.size();
  std::string head = text.substr(0, cut) + "NTE*ADD*";
  std::string tail = "~\n" + text.substr(cut);
  const size_t se = tail.find("SE*52*");
  ASSERT_NE(se, std::string::npos);
  tail.replace(se, 6, "SE*53*");
  constexpr uint64_t kFiller = 300ull << 20;
  constexpr size_t kMax = 1 << 20;

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit codes: 0 fine, 1 wrong records, 2 too much memory.
    GeneratedStream generated(head, kFiller, tail);
    std::istream stream(&generated);
    X12Reader reader(stream);
    reader.setMaxRecordBytes(kMax);
    const long before = maxRssKb();
    int rejected = 0, accepted = 0;
    uint64_t total = 0;
    std::string first;
    while (true) {
      SourceRecord record;
      IssueList issues;
      const ReadStatus status = reader.next(record, issues);
      if (status == ReadStatus::kEnd || status == ReadStatus::kFatal) break;
      if (status == ReadStatus::kRecord) ++accepted;
      if (status == ReadStatus::kRejected) {
        ++rejected;
        total = record.raw_total;
        first = record.raw;
      }
    }
    const long grown_kb = maxRssKb() - before;
    std::fprintf(stderr, "peak RSS grew by %ld KiB reading a %llu-byte element\n", grown_kb,
                 static_cast<unsigned long long>(kFiller));
    if (rejected != 1 || accepted != 2 || total <= kFiller || first.size() != kMax) _exit(1);
    _exit(grown_kb < 32 * 1024 ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the reader process did not exit normally";
  EXPECT_NE(WEXITSTATUS(status), 1) << "wrong records: expected claim 1 rejected (truncated), claims 2 and 3 read";
  EXPECT_NE(WEXITSTATUS(status), 2) << "peak RSS grew by 32 MB or more";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// What a child process read from a generated stream (below).
struct ChildRead {
  int accepted = 0, rejected = 0;
  uint64_t total = 0;        // raw_total of the last rejected record
  size_t first = 0;          // its raw's size
  std::string location;      // its location
};

// northshore-837p.x12 with `units` copies of `unit` (each `segments` segments) after `after`,
// read with maxRecordBytes 1 MiB in a child process: 0 when `check` accepts what it read and the
// reader's peak RSS grew by less than 32 MB, 1 when `check` fails, 2 when memory grew more.
int readInChild(const std::string& after, const std::string& unit, int segments, uint64_t units,
                bool (*check)(const ChildRead&, uint64_t filler)) {
  const std::string text = testing::readFile(testing::testDataDir() / "mappers" / "x12" / "northshore-837p.x12");
  const size_t found = text.find(after);
  const std::string sent = "SE*52*";
  if (found == std::string::npos || text.find(sent) == std::string::npos) return 1;
  const size_t cut = found + after.size();
  std::string tail = text.substr(cut);
  tail.replace(tail.find(sent), sent.size(), "SE*" + std::to_string(52 + segments * units) + "*");
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    GeneratedStream generated(text.substr(0, cut), units * unit.size(), tail, unit);
    std::istream stream(&generated);
    X12Reader reader(stream);
    reader.setMaxRecordBytes(1 << 20);
    const long before = maxRssKb();
    ChildRead read;
    while (true) {
      SourceRecord record;
      IssueList issues;
      const ReadStatus status = reader.next(record, issues);
      if (status == ReadStatus::kEnd || status == ReadStatus::kFatal) break;
      if (status == ReadStatus::kRecord) ++read.accepted;
      if (status == ReadStatus::kRejected) {
        ++read.rejected;
        read.total = record.raw_total;
        read.first = record.raw.size();
        read.location = issues.issues().empty() || issues.issues()[0].location.empty() ? "" : issues.issues()[0].location[0];
      }
    }
    const long grown_kb = maxRssKb() - before;
    std::fprintf(stderr, "peak RSS grew by %ld KiB reading %llu segments; accepted %d, rejected %d (last: %llu bytes, %zu held, at '%s')\n",
                 grown_kb, static_cast<unsigned long long>(segments * units), read.accepted, read.rejected,
                 static_cast<unsigned long long>(read.total), read.first, read.location.c_str());
    if (!check(read, units * unit.size())) _exit(1);
    _exit(grown_kb < 32 * 1024 ? 0 : 2);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 1;
  return WEXITSTATUS(status);
}

// Issue 14: a subscriber loop of millions of ordinary segments (claim 1's, 4 million REF and N3
// segments, 56 MB) is one rejected record at its HL, truncated with its digest; claims 2 and 3
// are read, and memory stays bounded (the reader held the loop's context, a JSON object per
// segment, before).
TEST(X12LargeElement, LoopOfMillionsOfSegmentsStreamsInBoundedMemory) {
  const int status = readInChild("DMG*D8*19610319*F~\n", "REF*SY*123456789~\nN3*1 A ST~\n", 2, 2'000'000,
                                 [](const ChildRead& read, uint64_t filler) {
                                   // the line breaks between segments are not part of a record
                                   return read.rejected == 1 && read.accepted == 2 && read.total > filler - 4'000'000 &&
                                          read.first == (1u << 20) && read.location == "segment 12 (HL)";
                                 });
  EXPECT_NE(status, 1) << "wrong records: expected claim 1's loop rejected (truncated), claims 2 and 3 read";
  EXPECT_NE(status, 2) << "peak RSS grew by 32 MB or more";
  EXPECT_EQ(status, 0);
}

// A million BHT segments after the first HL (each replaces the transaction's BHT; none is part of
// a record's bytes): the three claims are read, and memory stays bounded (each replaced BHT stayed
// in the context's pool before).
TEST(X12LargeElement, MillionsOfReplacedSegmentsStreamInBoundedMemory) {
  const int status = readInChild("DMG*D8*19610319*F~\n", "BHT*0019*00*NS20261002*20261002*1430*CH~\n", 1, 1'000'000,
                                 [](const ChildRead& read, uint64_t) { return read.rejected == 0 && read.accepted == 3; });
  EXPECT_NE(status, 1) << "wrong records: expected the three claims read";
  EXPECT_NE(status, 2) << "peak RSS grew by 32 MB or more";
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace fhir::mappers::readers::x12

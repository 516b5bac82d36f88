// SPDX-License-Identifier: Apache-2.0
// Issue 14 (long): an X12 element of a few hundred MB streams through the reader in bounded
// memory. The input is generated as it is read (nothing holds it); the reader runs in a child
// process whose peak RSS (getrusage) is compared with its RSS before reading.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <istream>
#include <string>

#include "mappers/common/ids.h"
#include "mappers/readers/x12/x12_reader.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::readers::x12 {
namespace {

// `head`, then `filler` copies of 'x', then `tail`, produced block by block.
class GeneratedStream final : public std::streambuf {
 public:
  GeneratedStream(std::string head, uint64_t filler, std::string tail)
      : head_(std::move(head)), filler_(filler), tail_(std::move(tail)) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    size_t size = 0;
    while (size < sizeof block_ && part_ < 3) {
      if (part_ == 1) {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(filler_ - offset_, sizeof block_ - size));
        std::memset(block_ + size, 'x', take);
        size += take;
        offset_ += take;
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

}  // namespace
}  // namespace fhir::mappers::readers::x12

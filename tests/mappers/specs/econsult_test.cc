// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/econsult.json (contracts/econsult-event.md): the consult's
// request, response and closed events as NDJSON, the expected Bundles written by hand from the
// contract's mapping table.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <istream>

#include "conformance/common/ids.h"
#include "tests/mappers/specs/golden.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::testing {
namespace {

TEST(EconsultSpec, EventsMapAsTheContractsMappingTableSays) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "events.ndjson");
  EXPECT_EQ(run.summary.records, 3u);
  EXPECT_EQ(run.summary.accepted, 3u);
  ASSERT_EQ(run.bundles.size(), 3u);
  expectBundle(run.bundles[0], "econsult", "expected-request.json", "events.ndjson");
  expectBundle(run.bundles[1], "econsult", "expected-response.json", "events.ndjson");
  expectBundle(run.bundles[2], "econsult", "expected-closed.json", "events.ndjson");
}

TEST(EconsultSpec, BundlesValidateAgainstTheAlignmentProfiles) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "events.ndjson");
  ASSERT_EQ(run.bundles.size(), 3u);
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

TEST(EconsultSpec, BadEventsAreRejectedAtTheirJsonPath) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "bad-events.ndjson");
  EXPECT_EQ(run.summary.records, 6u);
  EXPECT_EQ(run.summary.accepted, 0u);
  expectRejections(run.rejections, "econsult", "expected-rejections.txt");
}

// `head`, `filler` bytes 'x', then `tail`, made block by block (nothing holds the whole).
class FilledStream final : public std::streambuf {
 public:
  FilledStream(std::string head, uint64_t filler, std::string tail)
      : parts_{std::move(head), std::string(), std::move(tail)}, filler_(filler) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    while (part_ < 3) {
      const uint64_t size = part_ == 1 ? filler_ : parts_[part_].size();
      if (offset_ == size) {
        ++part_;
        offset_ = 0;
        continue;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(size - offset_, sizeof block_));
      if (part_ == 1) std::memset(block_, 'x', take);
      else std::memcpy(block_, parts_[part_].data() + offset_, take);
      offset_ += take;
      setg(block_, block_, block_ + take);
      return traits_type::to_int_type(*gptr());
    }
    return traits_type::eof();
  }

 private:
  std::string parts_[3];
  uint64_t filler_;
  int part_ = 0;
  uint64_t offset_ = 0;
  char block_[1 << 16];
};

// Issue 14: the "json-events" reader sniffed NDJSON or one document by reading the first line
// whole (std::getline, then a parse of it). A 64 MB first line is now read at most to
// maxRecordBytes for the sniffing, then skipped unheld by the NDJSON reader (first bytes and
// digest); the events after it map as usual. Run in a child process to see its peak RSS.
TEST(EconsultSpec, HugeFirstLineIsSniffedWithinMaxRecordBytesAndQuarantined) {
  const engine::SpecLibrary& library = bundledSpecs();
  static FakeDirectory directory;
  const std::string events =
      fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / "econsult" / "events.ndjson");
  const std::string head = R"({"eventId": "evt-big", "source": "epic-prod-northshore", "note": ")";
  const std::string tail = "\"}\n" + events;
  constexpr uint64_t kFiller = 64ull << 20;
  constexpr size_t kMax = 64 * 1024;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit codes: 0 fine, 1 wrong result, 2 too much memory.
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const long before = usage.ru_maxrss;
    FilledStream filled(head, kFiller, tail);
    std::istream stream(&filled);
    engine::MapOptions options;
    options.payer_id = "econsult";
    options.directory = &directory;
    options.now = "2026-10-03T09:13:00-05:00";
    options.max_record_bytes = kMax;
    std::vector<engine::Rejection> rejections;
    auto summary = library.mapSource(
        "econsult", stream, options, [](engine::MappedBundle&) {},
        [&](engine::Rejection& rejection) { rejections.push_back(std::move(rejection)); });
    getrusage(RUSAGE_SELF, &usage);
    const long grown_kb = usage.ru_maxrss - before;
    std::fprintf(stderr, "peak RSS grew by %ld KiB for a %llu-byte first line\n", grown_kb,
                 static_cast<unsigned long long>(kFiller));
    Sha256Stream digest;  // the line as the NDJSON reader keeps it: its bytes and its line break
    digest.update(head);
    const std::string block(1 << 20, 'x');
    for (uint64_t done = 0; done < kFiller; done += block.size()) digest.update(block);
    digest.update("\"}\n");
    const bool right = summary.ok() && summary->records == 4 && summary->accepted == 3 && rejections.size() == 1 &&
                       rejections[0].position == "line 1" && rejections[0].raw.size() == kMax &&
                       rejections[0].raw.starts_with(head) && rejections[0].raw_sha256 == digest.hex();
    if (!right) {
      std::fprintf(stderr, "summary ok %d, records %zu, accepted %zu, rejections %zu\n", summary.ok(),
                   summary.ok() ? summary->records : 0, summary.ok() ? summary->accepted : 0, rejections.size());
      _exit(1);
    }
    _exit(grown_kb < 32 * 1024 ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the mapping process did not exit normally";
  EXPECT_NE(WEXITSTATUS(status), 1) << "expected line 1 quarantined truncated with its digest, 3 events mapped";
  EXPECT_NE(WEXITSTATUS(status), 2) << "peak RSS grew by 32 MB or more";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace fhir::mappers::testing

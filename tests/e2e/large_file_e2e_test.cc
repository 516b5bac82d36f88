// SPDX-License-Identifier: Apache-2.0
// Issue 14 (labelled long): a 1 GB payer file, generated while it is sent (chunked, never on
// disk), with normal claims before and after one claim whose lines fill the rest. The gateway's
// peak RSS stays under 100 MB, the oversized claim is quarantined as one record (its first
// maxRecordBytes kept, with the SHA-256 of the whole), and the normal claims are accepted.
// The same with two single lines of 512 MB (one physical CSV record each) between normal claims:
// the CSV reader keeps only their first maxRecordBytes and hashes the rest while skipping.

#include <chrono>
#include <fstream>
#include <sstream>
#include <vector>

#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"

namespace fhir::testing {
namespace {

constexpr char kHeader[] =
    "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
    "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,"
    "units,charge_amount,paid_amount,claim_status\r\n";

std::string claimLine(const std::string& id, size_t line) {
  return id + "," + std::to_string(line) +
         ",LMC40000001,Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567,20261001,20261001,11,99214,,,E119,,,,1,"
         "10.00,5.00,P\r\n";
}

// Peak resident set of a process (VmHWM), in KiB.
long peakRssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

class LargeFile : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }
};

TEST_F(LargeFile, OneClaimFillingAGigabyteIsQuarantinedInBoundedMemory) {
  constexpr size_t kTarget = size_t{1} << 30;
  RawClient client(gateway_->port());
  ASSERT_TRUE(client.send("POST /ingest/claims/lakeshore-medicaid HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"));
  size_t sent = 0;
  auto sendChunk = [&](const std::string& data) {
    std::ostringstream size;
    size << std::hex << data.size() << "\r\n";
    ASSERT_TRUE(client.send(size.str() + data + "\r\n"));
    sent += data.size();
  };
  std::string chunk = kHeader;
  for (int claim = 1; claim <= 3; ++claim) chunk += claimLine("LG-BEFORE-" + std::to_string(claim), 1);
  sendChunk(chunk);
  fhir::Sha256Stream digest;
  std::string first_bytes;
  size_t big_bytes = 0;
  size_t line = 0;
  const auto start = std::chrono::steady_clock::now();
  while (sent < kTarget) {
    chunk.clear();
    while (chunk.size() < (1 << 20)) chunk += claimLine("LG-BIG", ++line);
    digest.update(chunk);
    if (first_bytes.size() < (1 << 20)) first_bytes += chunk.substr(0, (1 << 20) - first_bytes.size());
    big_bytes += chunk.size();
    sendChunk(chunk);
  }
  chunk.clear();
  for (int claim = 1; claim <= 3; ++claim) chunk += claimLine("LG-AFTER-" + std::to_string(claim), 1);
  sendChunk(chunk);
  ASSERT_TRUE(client.send("0\r\n\r\n"));
  RawResponse answer = client.read(600000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(answer.status, 200) << answer.body;
  json::Document summary = parse(answer.body);
  EXPECT_EQ(json::numberAsInt64(summary["records"]), 7);
  EXPECT_EQ(json::numberAsInt64(summary["accepted"]), 6);
  ASSERT_EQ(summary["quarantineIds"].Size(), 1u);
  const std::string id(json::stringView(summary["quarantineIds"][0]));
  json::Document entry = parse(gateway_->get("/admin/quarantine/" + id).body);
  const std::string whole = digest.hex();
  EXPECT_EQ(std::string(json::getString(entry, "payloadSha256").value_or("")), whole);
  EXPECT_TRUE(entry["truncated"].GetBool());
  EXPECT_EQ(json::numberAsInt64(entry["payloadBytes"]), 1 << 20);
  EXPECT_EQ(quarantinedPayload(id), first_bytes);
  const long peak = peakRssKib(gateway_->pid());
  std::printf("large file: %zu bytes sent (one claim of %zu bytes, %zu lines) in %.1f s; gateway peak RSS %ld KiB\n",
              sent, big_bytes, line, seconds, peak);
  EXPECT_GT(peak, 0);
  EXPECT_LT(peak, 100 * 1024);
}

TEST_F(LargeFile, HalfAGigabyteSingleLinesAreQuarantinedInBoundedMemory) {
  constexpr size_t kLine = size_t{512} << 20;  // bytes of each huge line, its line break included
  RawClient client(gateway_->port());
  ASSERT_TRUE(client.send("POST /ingest/claims/lakeshore-medicaid HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"));
  size_t sent = 0;
  auto sendChunk = [&](const std::string& data) {
    std::ostringstream size;
    size << std::hex << data.size() << "\r\n";
    ASSERT_TRUE(client.send(size.str() + data + "\r\n"));
    sent += data.size();
  };
  auto normalClaims = [&](const std::string& prefix) {
    std::string claims;
    for (int claim = 1; claim <= 3; ++claim) claims += claimLine(prefix + std::to_string(claim), 1);
    return claims;
  };
  // One claim line whose member_last field is `kLine` bytes long in all, generated 1 MB at a time.
  std::vector<std::string> digests, first_bytes;
  auto hugeLine = [&](const std::string& id) {
    const std::string normal = claimLine(id, 1);
    const size_t name_at = normal.find("Okafor");
    const std::string head = normal.substr(0, name_at), tail = normal.substr(name_at + 6);
    fhir::Sha256Stream digest;
    std::string first;
    size_t line_bytes = 0;
    std::string chunk = head;
    const std::string filler(1 << 20, 'O');
    while (line_bytes + chunk.size() + filler.size() + tail.size() < kLine) {
      chunk += filler;
      digest.update(chunk);
      if (first.size() < (1 << 20)) first += chunk.substr(0, (1 << 20) - first.size());
      line_bytes += chunk.size();
      sendChunk(chunk);
      chunk.clear();
    }
    chunk += std::string(kLine - line_bytes - tail.size(), 'O') + tail;
    digest.update(chunk);
    if (first.size() < (1 << 20)) first += chunk.substr(0, (1 << 20) - first.size());
    sendChunk(chunk);
    digests.push_back(digest.hex());
    first_bytes.push_back(first);
  };
  const auto start = std::chrono::steady_clock::now();
  sendChunk(kHeader + normalClaims("LL-BEFORE-"));
  hugeLine("LL-HUGE-1");
  sendChunk(normalClaims("LL-BETWEEN-"));
  hugeLine("LL-HUGE-2");
  sendChunk(normalClaims("LL-AFTER-"));
  ASSERT_TRUE(client.send("0\r\n\r\n"));
  RawResponse answer = client.read(600000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(answer.status, 200) << answer.body;
  json::Document summary = parse(answer.body);
  EXPECT_EQ(json::numberAsInt64(summary["records"]), 11);
  EXPECT_EQ(json::numberAsInt64(summary["accepted"]), 9);
  ASSERT_EQ(summary["quarantineIds"].Size(), 2u);
  for (size_t index = 0; index < 2; ++index) {
    const std::string id(json::stringView(summary["quarantineIds"][static_cast<rapidjson::SizeType>(index)]));
    json::Document entry = parse(gateway_->get("/admin/quarantine/" + id).body);
    EXPECT_EQ(std::string(json::getString(entry, "payloadSha256").value_or("")), digests[index]);
    EXPECT_TRUE(entry["truncated"].GetBool());
    EXPECT_EQ(json::numberAsInt64(entry["payloadBytes"]), 1 << 20);
    EXPECT_EQ(quarantinedPayload(id), first_bytes[index]);
    const std::string diagnostics(json::getString(entry["outcome"]["issue"][0], "diagnostics").value_or(""));
    EXPECT_NE(diagnostics.find(std::to_string(kLine) + " bytes, larger than maxRecordBytes"), std::string::npos)
        << diagnostics;
    EXPECT_NE(diagnostics.find(digests[index]), std::string::npos) << diagnostics;
  }
  const long peak = peakRssKib(gateway_->pid());
  std::printf("large lines: %zu bytes sent (two single lines of %zu bytes) in %.1f s; gateway peak RSS %ld KiB\n", sent,
              kLine, seconds, peak);
  EXPECT_GT(peak, 0);
  EXPECT_LT(peak, 100 * 1024);
}

}  // namespace
}  // namespace fhir::testing

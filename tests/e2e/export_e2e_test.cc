// SPDX-License-Identifier: Apache-2.0
// Bulk export through the real binary (issue 16): the gateway is killed (SIGKILL) while it
// exports 100,000 resources; after a restart on the same data directory the job finishes and its
// files hold every resource exactly once. The resources are written into the SQLite store of the
// data directory before the gateway starts (the export's subject is reading, not ingest).

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/store/store.h"
#include "tests/e2e/raw_client.h"
#include "tests/support/gateway_process.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kResources = 100000;

RawResponse call(uint16_t port, const std::string& method, const std::string& target, const std::string& extra = "") {
  return rawRequest(port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + "\r\n",
                    60000);
}

std::string pathOf(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

TEST(ExportE2e, AKilledGatewayFinishesTheExportAfterRestartWithEveryResourceOnce) {
  TempDir dir;
  {
    auto store = gateway::openSqliteStore(dir.path().string());
    ASSERT_TRUE(store.ok()) << store.message();
    std::vector<gateway::IngestCommit> commits;
    for (int n = 0; n < kResources; ++n) {
      if (n % 500 == 0) {
        commits.emplace_back();
        commits.back().channel = "test";
        commits.back().idempotency_key = "load-" + std::to_string(n);
        commits.back().payload = "{}";
        commits.back().answer = "ok";
      }
      const std::string id = "p" + std::to_string(n);
      commits.back().resources.push_back(
          {"Patient", id, R"({"resourceType":"Patient","id":")" + id + R"(","gender":"other","birthDate":"1970-01-01"})"});
      if ((n + 1) % 10000 == 0 || n + 1 == kResources) {
        auto done = (*store)->commitIngestMany(std::move(commits));
        ASSERT_TRUE(done.ok()) << done.message();
        commits.clear();
      }
    }
  }
  const std::string config = (dir.path() / "config.json").string();
  {
    std::ofstream out(config);
    // Paced so the export is still running when the test kills it (it reads 100,000 in about a
    // second unpaced): about 5 s for the whole export.
    out << R"({"export":{"maxResourcesPerFile":30000,"maxResourcesPerSecond":20000}})";
  }
  const std::vector<std::string> args = {"--config", config, "--data", dir.path().string()};
  std::string status_path;
  {
    GatewayProcess gateway(args);
    ASSERT_TRUE(gateway.running());
    RawResponse kicked = call(gateway.port(), "GET", "/fhir/$export?_type=Patient", "Prefer: respond-async\r\nAccept: application/fhir+json\r\n");
    ASSERT_EQ(kicked.status, 202) << kicked.body;
    status_path = pathOf(kicked.headers["content-location"]);
    // Kill it as soon as it has written something, well before the end.
    bool in_flight = false;
    for (int attempt = 0; attempt < 2000 && !in_flight; ++attempt) {
      RawResponse status = call(gateway.port(), "GET", status_path);
      ASSERT_NE(status.status, 200) << "the export ended before the gateway could be killed";
      const std::string progress = status.headers["x-progress"];
      if (status.status == 202 && !progress.empty() && progress.rfind("queued", 0) != 0 && progress.rfind("0 ", 0) != 0) {
        in_flight = true;
      } else {
        // A poll sooner than Retry-After (1 s) after the last one is 429.
        std::this_thread::sleep_for(std::chrono::milliseconds(status.status == 429 ? 250 : 20));
      }
    }
    ASSERT_TRUE(in_flight);
    gateway.kill();
  }
  GatewayProcess restarted(args);
  ASSERT_TRUE(restarted.running());
  RawResponse done;
  for (int attempt = 0; attempt < 600; ++attempt) {
    done = call(restarted.port(), "GET", status_path);
    if (done.status == 200) break;
    ASSERT_TRUE(done.status == 202 || done.status == 429) << done.status << " " << done.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  }
  ASSERT_EQ(done.status, 200) << done.body;
  auto manifest = json::parse(done.body);
  ASSERT_TRUE(manifest.ok()) << done.body;
  std::set<std::string> ids;
  int64_t lines_total = 0;
  int64_t manifest_total = 0;
  for (const json::Value& output : json::find(*manifest, "output")->GetArray()) {
    RawResponse file = call(restarted.port(), "GET", pathOf(std::string(json::getString(output, "url").value_or(""))));
    ASSERT_EQ(file.status, 200);
    manifest_total += json::numberAsInt64(*json::find(output, "count")).value_or(0);
    std::istringstream lines(file.body);
    std::string line;
    while (std::getline(lines, line)) {
      auto resource = json::parse(line);
      ASSERT_TRUE(resource.ok()) << "a torn line: " << line.substr(0, 80);
      const std::string id(json::getString(*resource, "id").value_or(""));
      EXPECT_TRUE(ids.insert(id).second) << id << " is in the files twice";
      ++lines_total;
    }
  }
  EXPECT_EQ(lines_total, kResources);
  EXPECT_EQ(manifest_total, kResources);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kResources));
}

}  // namespace
}  // namespace fhir::testing

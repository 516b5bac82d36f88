// SPDX-License-Identifier: Apache-2.0
// Bulk export through the real binary (issue 16): the gateway is killed (SIGKILL) while it
// exports 100,000 resources; after a restart on the same data directory the job finishes and its
// files hold every resource exactly once. The resources are written into the SQLite store of the
// data directory before the gateway starts (the export's subject is reading, not ingest).

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/store/store.h"
#include "tests/e2e/export_fixture.h"
#include "tests/support/gateway_process.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kResources = 100000;

TEST(ExportE2e, AKilledGatewayFinishesTheExportAfterRestartWithEveryResourceOnce) {
  TempDir dir;
  {
    auto store = gateway::openSqliteStore(dir.path().string());
    ASSERT_TRUE(store.ok()) << store.message();
    Status loaded = loadPatients(**store, kResources);
    ASSERT_TRUE(loaded.ok()) << loaded.message();
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
    RawResponse kicked = exportCall(gateway.port(), "GET", "/fhir/$export?_type=Patient", "Prefer: respond-async\r\nAccept: application/fhir+json\r\n");
    ASSERT_EQ(kicked.status, 202) << kicked.body;
    status_path = pathOf(kicked.headers["content-location"]);
    // Kill it as soon as it has written something, well before the end.
    bool in_flight = false;
    for (int attempt = 0; attempt < 2000 && !in_flight; ++attempt) {
      RawResponse status = exportCall(gateway.port(), "GET", status_path);
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
    done = exportCall(restarted.port(), "GET", status_path);
    if (done.status == 200) break;
    ASSERT_TRUE(done.status == 202 || done.status == 429) << done.status << " " << done.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  }
  ASSERT_EQ(done.status, 200) << done.body;
  DownloadedExport got = downloadExport(restarted.port(), done.body);
  EXPECT_EQ(got.lines, kResources);
  EXPECT_EQ(got.manifest_count, kResources);
  EXPECT_EQ(got.ids.size(), static_cast<size_t>(kResources));
}

}  // namespace
}  // namespace fhir::testing

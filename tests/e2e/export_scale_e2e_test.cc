// SPDX-License-Identifier: Apache-2.0
// Bulk export with two gateways on one PostgreSQL (issues 16 and 17): two real gateway processes,
// A and B, share the store (and so its export jobs) and one export.dir. The export is kicked off
// on A and paced (export.maxResourcesPerSecond) so it is still running when B is polled: B answers
// 202 with X-Progress from what A saved. A is then SIGKILLed. Its lease on the job (leaseSeconds
// 3) runs out unrenewed and B's worker takes the job over, resuming from A's last checkpoint
// (the open file cut back to the saved length); B serves the manifest and the files, which hold
// every resource exactly once. The lease holder is read from the store to show that A ran the
// job, that nobody took it from A while A lived, and that B finished it.

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/common/time_util.h"
#include "conformance/json/json.h"
#include "gateway/store/export_jobs.h"
#include "gateway/store/pg_store.h"
#include "gateway/store/store.h"
#include "tests/e2e/export_fixture.h"
#include "tests/support/gateway_process.h"
#include "tests/support/test_postgres.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kResources = 12000;
constexpr int kPerSecond = 1500;  // the whole export takes about 8 s

// "<host>:<pid>:<random>" (ExportService::create): the holder names the process.
bool heldBy(const std::string& holder, pid_t pid) {
  return holder.find(":" + std::to_string(pid) + ":") != std::string::npos;
}

TEST(ExportScaleE2e, TheSecondGatewayFinishesTheExportOfAKilledOneWithEveryResourceOnce) {
  auto cluster = testPostgres();
  ASSERT_TRUE(cluster.ok()) << cluster.message();
  TempDir data;
  gateway::PostgresStoreOptions store_options;
  store_options.url = cluster->url;
  store_options.password = cluster->password;
  store_options.schema = testSchemaFor(data.path().string());
  {
    auto store = gateway::openPostgresStore(store_options);
    ASSERT_TRUE(store.ok()) << store.message();
    Status loaded = loadPatients(**store, kResources);
    ASSERT_TRUE(loaded.ok()) << loaded.message();
  }
  auto jobs = gateway::exports::openPostgresExportJobs(store_options);
  ASSERT_TRUE(jobs.ok()) << jobs.message();

  const std::string shared_dir = (data.path() / "shared-export").string();
  std::vector<std::string> configs;
  for (const char* name : {"a", "b"}) {
    configs.push_back((data.path() / (std::string("config-") + name + ".json")).string());
    std::ofstream(configs.back()) << R"({"dataDir": ")" << (data.path() / (std::string("var-") + name)).string()
                                  << R"(", "store": {"kind": "postgresql", "url": ")" << cluster->url
                                  << R"(", "passwordFile": ")" << cluster->password_file << R"(", "schema": ")"
                                  << store_options.schema << R"("}, "export": {"dir": ")" << shared_dir
                                  << R"(", "maxResourcesPerFile": 2500, "maxResourcesPerSecond": )" << kPerSecond
                                  << R"(, "leaseSeconds": 3}})";
  }
  auto a = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", configs[0]});
  ASSERT_TRUE(a->running());
  const pid_t a_pid = a->pid();

  RawResponse kicked = exportCall(a->port(), "GET", "/fhir/$export?_type=Patient", "Prefer: respond-async\r\nAccept: application/fhir+json\r\n");
  ASSERT_EQ(kicked.status, 202) << kicked.body;
  const std::string status_path = pathOf(kicked.headers["content-location"]);
  const std::string id = status_path.substr(status_path.rfind('/') + 1);
  // B starts once A's worker holds the job (any instance's worker may take a queued job; here it
  // must be A's, so that killing A leaves B a job to take over).
  bool a_runs = false;
  for (int attempt = 0; attempt < 200 && !a_runs; ++attempt) {
    auto job = (*jobs)->find(id);
    ASSERT_TRUE(job.ok()) << job.message();
    a_runs = job->has_value() && heldBy((*job)->lease_holder, a_pid);
    if (!a_runs) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(a_runs) << "A's worker did not take the job";
  GatewayProcess b({"--config", configs[1]});
  ASSERT_TRUE(b.running());

  // B answers the job A runs, from the store: 202 with the progress A saved.
  std::string progress;
  for (int attempt = 0; attempt < 60; ++attempt) {
    RawResponse status = exportCall(b.port(), "GET", status_path);
    ASSERT_EQ(status.status, 202) << "B: " << status.status << " " << status.body;
    progress = status.headers["x-progress"];
    if (!progress.empty() && progress.rfind("queued", 0) != 0 && progress.rfind("0 ", 0) != 0) break;
    std::this_thread::sleep_for(1s);  // Retry-After
  }
  ASSERT_NE(progress.find(" resources written"), std::string::npos) << progress;
  ASSERT_NE(progress.rfind("0 ", 0), 0u) << "A saved nothing yet: " << progress;
  auto running = (*jobs)->find(id);
  ASSERT_TRUE(running.ok()) << running.message();
  ASSERT_TRUE(running->has_value());
  EXPECT_EQ((*running)->status, "running");
  EXPECT_TRUE(heldBy((*running)->lease_holder, a_pid)) << "B took the job while A's lease was live: " << (*running)->lease_holder;
  EXPECT_LT((*running)->written, kResources) << "the export is still running when A is killed";

  a->kill();  // SIGKILL: no clean stop, the lease is not freed
  a.reset();
  const int64_t killed_ms = nowMs();
  auto dead = (*jobs)->find(id);
  ASSERT_TRUE(dead.ok()) << dead.message();
  ASSERT_TRUE(dead->has_value());
  ASSERT_TRUE(heldBy((*dead)->lease_holder, a_pid)) << (*dead)->lease_holder;
  const int64_t a_expires = (*dead)->lease_expires_ms;  // A renewed it last: nobody may take it before
  std::printf("killed A with %s (%lld saved)\n", progress.c_str(), static_cast<long long>((*running)->written));

  // Until A's lease runs out nobody takes the job; then B's worker does and finishes it.
  RawResponse done;
  bool taken_over = false;
  for (int attempt = 0; attempt < 180; ++attempt) {
    std::this_thread::sleep_for(1s);  // Retry-After since the last poll
    auto job = (*jobs)->find(id);
    ASSERT_TRUE(job.ok()) << job.message();
    ASSERT_TRUE(job->has_value());
    if (!heldBy((*job)->lease_holder, a_pid)) {
      if (!taken_over) {
        EXPECT_GE(nowMs(), a_expires) << "the job was taken while A's lease was live";
      }
      taken_over = true;
    } else {
      EXPECT_EQ((*job)->status, "running");
    }
    done = exportCall(b.port(), "GET", status_path);
    if (done.status == 200) break;
    ASSERT_EQ(done.status, 202) << done.status << " " << done.body;
  }
  ASSERT_EQ(done.status, 200) << done.body;
  ASSERT_TRUE(taken_over);
  auto finished = (*jobs)->find(id);
  ASSERT_TRUE(finished.ok()) << finished.message();
  ASSERT_TRUE(finished->has_value());
  EXPECT_EQ((*finished)->status, "done");
  EXPECT_TRUE(heldBy((*finished)->lease_holder, b.pid())) << (*finished)->lease_holder;
  std::printf("B finished the job %.1f s after the kill\n", static_cast<double>(nowMs() - killed_ms) / 1000.0);

  DownloadedExport got = downloadExport(b.port(), done.body, [&](const std::string& url) {
    EXPECT_NE(url.find(":" + std::to_string(b.port()) + "/export/files/" + id + "/"), std::string::npos) << url;
    EXPECT_TRUE(fs::exists(fs::path(shared_dir) / id / url.substr(url.rfind('/') + 1))) << "in export.dir: " << url;
  });
  std::printf("%d files, %lld lines, %zu distinct resources\n", got.files, static_cast<long long>(got.lines), got.ids.size());
  EXPECT_EQ(got.files, (kResources + 2499) / 2500);
  EXPECT_EQ(got.lines, kResources);
  EXPECT_EQ(got.manifest_count, kResources);
  EXPECT_EQ(got.ids.size(), static_cast<size_t>(kResources));
}

}  // namespace
}  // namespace fhir::testing

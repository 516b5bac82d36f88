// SPDX-License-Identifier: Apache-2.0
// Bulk export throughput, memory and its cost to ingest (issue 16; run by scripts/bench-export).
//
//   export_bench load DIR N          writes N resources (Patient/Observation pairs) into the
//                                    SQLite store of DIR through commitIngestMany, 500 per commit
//   export_bench export DIR [JOBS]   runs JOBS (default 1) system exports at once in this process
//                                    (the gateway's ExportService, open caller), prints resources/s
//                                    and the process's peak RSS (this process only exports)
//   export_bench ingest DIR SECONDS [EXPORTS]
//                                    commits new resources for SECONDS from 2 threads (ingest-sized
//                                    commits of 10 resources) while EXPORTS exports run; prints
//                                    resources committed per second
//
// Numbers go to docs/BENCHMARKS.md with the machine's load.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/export/export_service.h"
#include "gateway/store/store.h"

namespace {

using namespace fhir::gateway;
using Clock = std::chrono::steady_clock;

long peakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

std::string patient(const std::string& id) {
  return R"({"resourceType":"Patient","id":")" + id +
         R"(","identifier":[{"system":"urn:bench:member","value":")" + id +
         R"("}],"name":[{"family":"Bench","given":["Export"]}],"gender":"female","birthDate":"1970-01-01"})";
}
std::string observation(const std::string& id, const std::string& subject) {
  return R"({"resourceType":"Observation","id":")" + id +
         R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/)" +
         subject + R"("},"effectiveDateTime":"2026-01-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min"}})";
}

int load(const std::string& dir, int64_t count) {
  auto store = openSqliteStore(dir);
  if (!store.ok()) {
    std::cerr << store.message() << "\n";
    return 1;
  }
  const auto start = Clock::now();
  std::vector<IngestCommit> commits;
  for (int64_t n = 0; n < count; n += 2) {
    if (n % 500 == 0) {
      commits.emplace_back();
      commits.back().channel = "bench";
      commits.back().idempotency_key = "load-" + std::to_string(n);
      commits.back().payload = "{}";
      commits.back().answer = "ok";
    }
    const std::string id = std::to_string(n / 2);
    commits.back().resources.push_back({"Patient", "p" + id, patient("p" + id)});
    if (n + 1 < count) commits.back().resources.push_back({"Observation", "o" + id, observation("o" + id, "p" + id)});
    if ((n + 2) % 10000 == 0 || n + 2 >= count) {
      auto done = (*store)->commitIngestMany(std::move(commits));
      if (!done.ok()) {
        std::cerr << done.message() << "\n";
        return 1;
      }
      commits.clear();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("loaded %lld resources in %.1f s\n", static_cast<long long>(count), seconds);
  return 0;
}

std::unique_ptr<exports::ExportService> service(const std::string& dir, const StorePtr& store, int64_t jobs) {
  exports::ExportOptions options;
  options.dir = (std::filesystem::path(dir) / "bench-export").string();
  options.max_concurrent_jobs = jobs;
  auto created = exports::ExportService::create(store, nullptr, options);
  if (!created.ok()) {
    std::cerr << created.message() << "\n";
    return nullptr;
  }
  return std::move(*created);
}

int kick(exports::ExportService& bulk, int64_t jobs, std::vector<std::string>* ids = nullptr) {
  for (int64_t job = 0; job < jobs; ++job) {
    exports::KickOff request;
    request.level = "system";
    request.request = "bench";
    request.respond_async = true;
    request.types = {"Patient", "Observation"};
    auto answer = bulk.kickOff(request, {}, "http://bench");
    if (answer.answer.status != 202) {
      std::cerr << answer.answer.body << "\n";
      return 1;
    }
    for (const auto& [name, value] : answer.headers) {
      if (name == "Content-Location" && ids != nullptr) ids->push_back(value.substr(value.rfind('/') + 1));
    }
  }
  return 0;
}

// The resources a finished job's manifest counts.
int64_t exported(exports::ExportService& bulk, const std::string& id) {
  const exports::ExportAnswer status = bulk.status(id, {}, "http://bench");
  int64_t total = 0;
  static constexpr std::string_view kCount = "\"count\":";
  for (size_t at = status.answer.body.find(kCount); at != std::string::npos; at = status.answer.body.find(kCount, at + 1)) {
    total += std::atoll(status.answer.body.c_str() + at + kCount.size());
  }
  return total;
}

int runExport(const std::string& dir, int64_t jobs) {
  auto store = openSqliteStore(dir);
  if (!store.ok()) return 1;
  auto exports = service(dir, *store, jobs);
  if (!exports) return 1;
  const long rss_before = peakRssKb();
  const auto start = Clock::now();
  std::vector<std::string> ids;
  if (kick(*exports, jobs, &ids) != 0) return 1;
  exports->start();
  if (!exports->waitIdle(3600 * 1000)) return 1;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  exports->stop();
  int64_t resources = 0;
  for (const std::string& id : ids) resources += exported(*exports, id);
  int64_t files = 0;
  int64_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(exports->options().dir)) {
    if (entry.path().extension() == ".ndjson") {
      ++files;
      bytes += static_cast<int64_t>(entry.file_size());
    }
  }
  std::printf("export: %lld job(s), %lld resources in %.2f s = %.0f resources/s, %lld files, %.1f MB; "
              "peak RSS %ld MB (%ld MB before the export)\n",
              static_cast<long long>(jobs), static_cast<long long>(resources), seconds, resources / seconds,
              static_cast<long long>(files), bytes / 1e6, peakRssKb() / 1024, rss_before / 1024);
  std::filesystem::remove_all(exports->options().dir);
  return 0;
}

int runIngest(const std::string& dir, double seconds, int64_t exports_running) {
  auto store = openSqliteStore(dir);
  if (!store.ok()) return 1;
  std::unique_ptr<exports::ExportService> exports;
  if (exports_running > 0) {
    exports = service(dir, *store, exports_running);
    if (!exports || kick(*exports, exports_running) != 0) return 1;
    exports->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // both exports under way
  }
  std::atomic<int64_t> written{0};
  std::atomic<bool> done{false};
  const std::string tag = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  auto writer = [&](int thread) {
    for (int64_t n = 0; !done; ++n) {
      IngestCommit commit;
      commit.channel = "bench";
      commit.idempotency_key = "ingest-" + tag + "-" + std::to_string(thread) + "-" + std::to_string(n);
      commit.payload = "{}";
      commit.answer = "ok";
      for (int r = 0; r < 10; ++r) {
        const std::string id = "i" + tag + "-" + std::to_string(thread) + "-" + std::to_string(n) + "-" + std::to_string(r);
        commit.resources.push_back({"Patient", id, patient(id)});
      }
      if ((*store)->commitIngest(std::move(commit)).ok()) written += 10;
    }
  };
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int thread = 0; thread < 2; ++thread) threads.emplace_back(writer, thread);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  done = true;
  for (std::thread& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const bool still_exporting = exports && !exports->waitIdle(1);
  if (exports) {
    exports->stop();
    std::filesystem::remove_all(exports->options().dir);
  }
  std::printf("ingest with %lld export(s) running: %.0f resources/s (%lld in %.1f s)%s\n",
              static_cast<long long>(exports_running), written / elapsed, static_cast<long long>(written.load()), elapsed,
              exports_running > 0 ? (still_exporting ? ", exports still running at the end" : ", exports ended before the end")
                                  : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 3 && args[0] == "load") return load(args[1], std::atoll(args[2].c_str()));
  if (args.size() >= 2 && args[0] == "export") return runExport(args[1], args.size() >= 3 ? std::atoll(args[2].c_str()) : 1);
  if (args.size() >= 3 && args[0] == "ingest") {
    return runIngest(args[1], std::atof(args[2].c_str()), args.size() >= 4 ? std::atoll(args[3].c_str()) : 0);
  }
  std::cerr << "usage: export_bench load DIR N | export DIR [JOBS] | ingest DIR SECONDS [EXPORTS]\n";
  return 2;
}

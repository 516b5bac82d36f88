// SPDX-License-Identifier: Apache-2.0
// Search over a large store (issue 15 Acceptance, docs/BENCHMARKS.md "Search"): a direct loader
// that writes Patients, Coverages and Claims through the store API (commitIngestMany, not HTTP),
// then times selective searches and a _count=1000 page through Store::search.
//
//   search_bench --dir DIR [--patients N] [--claims-per-patient K] [--queries Q] [--load-only|--query-only]
//
// N patients get one Coverage each and K Claims each: N * (2 + K) resources (N = 100,000 and
// K = 8 is 1M). The load is skipped when DIR already holds a store (--query-only).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "conformance/search/search.h"
#include "gateway/store/search_index.h"
#include "gateway/store/store.h"

namespace {

using namespace fhir;
using namespace fhir::gateway;
using Clock = std::chrono::steady_clock;

std::string patient(int i) {
  return R"({"resourceType":"Patient","id":"p)" + std::to_string(i) +
         R"(","identifier":[{"system":"urn:bench:mrn","value":"MRN)" + std::to_string(i) +
         R"("}],"name":[{"family":"Family)" + std::to_string(i % 5000) + R"(","given":["Given"]}],"gender":")" +
         (i % 2 ? "male" : "female") + R"(","birthDate":"19)" + std::to_string(40 + i % 60) + "-0" +
         std::to_string(1 + i % 9) + "-1" + std::to_string(i % 10) + "\"}";
}

std::string coverage(int i) {
  return R"({"resourceType":"Coverage","id":"cov)" + std::to_string(i) +
         R"(","status":"active","beneficiary":{"reference":"Patient/p)" + std::to_string(i) +
         R"("},"payor":[{"reference":"Organization/payer)" + std::to_string(i % 3) +
         R"("}],"period":{"start":"2026-01-01"}})";
}

std::string claim(int i, int k) {
  const std::string day = std::to_string(10 + (i + k) % 18);
  return R"({"resourceType":"Claim","id":"c)" + std::to_string(i) + "-" + std::to_string(k) +
         R"(","status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim","patient":{"reference":"Patient/p)" +
         std::to_string(i) + R"("},"created":"2026-03-)" + day +
         R"(","provider":{"reference":"Organization/prov1"},"priority":{"coding":[{"code":"normal"}]},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov)" +
         std::to_string(i) + R"("}}],"item":[{"sequence":1,"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99451"}]},"servicedDate":"2026-03-)" +
         day + "\"}]}";
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t at = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  return values[at];
}

// Times `queries` searches made by `make(i)`; prints p50/p95/max in ms and the mean hit count.
void timeSearch(Store& store, const search::Registry& registry, const char* label, int queries,
                const std::function<std::vector<std::pair<std::string, std::string>>(int)>& make, const std::string& type) {
  std::vector<double> ms;
  size_t hits = 0;
  for (int i = 0; i < queries; ++i) {
    auto query = search::parseQuery(registry, type, make(i));
    if (!query.ok()) {
      std::fprintf(stderr, "%s: %s\n", label, query.message().c_str());
      return;
    }
    SearchRequest request;
    request.query = &*query;
    const auto start = Clock::now();
    auto page = store.search(request);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!page.ok()) {
      std::fprintf(stderr, "%s: %s\n", label, page.message().c_str());
      return;
    }
    hits += page->entries.size();
  }
  std::printf("%-42s n=%-5d p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms  entries/query %.1f\n", label, queries,
              percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 1.0),
              static_cast<double>(hits) / std::max(1, queries));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int patients = 1000, claims_per_patient = 8, queries = 200;
  bool load = true, query = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--dir") dir = next();
    else if (arg == "--patients") patients = std::atoi(next().c_str());
    else if (arg == "--claims-per-patient") claims_per_patient = std::atoi(next().c_str());
    else if (arg == "--queries") queries = std::atoi(next().c_str());
    else if (arg == "--load-only") query = false;
    else if (arg == "--query-only") load = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (dir.empty() || patients <= 0) {
    std::fprintf(stderr, "usage: search_bench --dir DIR [--patients N] [--claims-per-patient K] [--queries Q]\n");
    return 2;
  }
  auto opened = openSqliteStore(dir);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.message().c_str());
    return 1;
  }
  StorePtr store = *opened;
  auto registry = searchindex::registry();
  if (!registry.ok()) {
    std::fprintf(stderr, "%s\n", registry.message().c_str());
    return 1;
  }
  if (load) {
    const auto start = Clock::now();
    const int per_commit = 50;  // patients per commitIngestMany batch of records
    int64_t resources = 0;
    for (int first = 0; first < patients; first += per_commit) {
      std::vector<IngestCommit> commits;
      for (int i = first; i < std::min(patients, first + per_commit); ++i) {
        IngestCommit commit;
        commit.channel = "bench";
        commit.idempotency_key = "bench-" + std::to_string(i);
        commit.payload = "{}";
        commit.answer = "ok";
        commit.resources.push_back({"Patient", "p" + std::to_string(i), patient(i)});
        commit.resources.push_back({"Coverage", "cov" + std::to_string(i), coverage(i)});
        for (int k = 0; k < claims_per_patient; ++k) {
          commit.resources.push_back({"Claim", "c" + std::to_string(i) + "-" + std::to_string(k), claim(i, k)});
        }
        resources += static_cast<int64_t>(commit.resources.size());
        commits.push_back(std::move(commit));
      }
      auto done = store->commitIngestMany(std::move(commits));
      if (!done.ok()) {
        std::fprintf(stderr, "load: %s\n", done.message().c_str());
        return 1;
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("loaded %lld resources in %.1f s: %.0f resources/s\n", static_cast<long long>(resources), seconds,
                static_cast<double>(resources) / seconds);
  }
  if (!query) return 0;
  std::mt19937 random(42);
  std::uniform_int_distribution<int> any(0, patients - 1);
  timeSearch(*store, **registry, "Claim?patient=Patient/p<random>", queries,
             [&](int) { return std::vector<std::pair<std::string, std::string>>{{"patient", "Patient/p" + std::to_string(any(random))}}; },
             "Claim");
  timeSearch(*store, **registry, "Patient?identifier=urn:bench:mrn|MRN<random>", queries,
             [&](int) { return std::vector<std::pair<std::string, std::string>>{{"identifier", "urn:bench:mrn|MRN" + std::to_string(any(random))}}; },
             "Patient");
  timeSearch(*store, **registry, "Claim?status=active&_count=1000", std::max(1, queries / 20),
             [&](int) { return std::vector<std::pair<std::string, std::string>>{{"status", "active"}, {"_count", "1000"}}; },
             "Claim");
  return 0;
}

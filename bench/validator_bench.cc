// SPDX-License-Identifier: Apache-2.0
// Validator throughput (docs/BENCHMARKS.md, section Validator): full validation of R4 example
// resources and of a 100-entry Bundle, next to the cost of parsing the same JSON alone.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "gateway_paths.h"

namespace {

namespace fs = std::filesystem;

fs::path dataDir() { return fs::path(GATEWAY_SOURCE_DIR) / "bench" / "data" / "validator"; }

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

const fhir::Validator& validator() {
  static const fhir::ValidatorPtr instance = [] {
    auto created = fhir::createValidator({});
    if (!created.ok()) {
      std::fprintf(stderr, "createValidator: %s\n", created.message().c_str());
      std::abort();
    }
    return *created;
  }();
  return *instance;
}

// A collection Bundle of 100 entries cycling through the example files.
std::string bundleText() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dataDir())) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  std::string out = R"({"resourceType":"Bundle","type":"collection","entry":[)";
  for (int index = 0; index < 100; ++index) {
    std::string resource = readText(files[static_cast<size_t>(index) % files.size()]);
    // Give every entry its own id so fullUrls stay unique.
    auto doc = fhir::json::parse(resource);
    if (!doc.ok()) std::abort();
    std::string id = "e" + std::to_string(index);
    (*doc)["id"].SetString(id.c_str(), static_cast<rapidjson::SizeType>(id.size()), doc->GetAllocator());
    std::string type((*doc)["resourceType"].GetString());
    if (index > 0) out += ",";
    out += R"({"fullUrl":"http://example.org/fhir/)" + type + "/" + id + R"(","resource":)" +
           fhir::json::serialize(*doc) + "}";
  }
  out += "]}";
  return out;
}

void runValidate(benchmark::State& state, const std::string& text, int64_t resources) {
  auto doc = fhir::json::parse(text);
  if (!doc.ok()) {
    state.SkipWithError(doc.message().c_str());
    return;
  }
  const fhir::Validator& instance = validator();
  {
    fhir::IssueList warm_up;  // plans for the types involved are compiled on first use
    instance.validate(*doc, {}, warm_up);
    if (warm_up.hasErrors()) {
      state.SkipWithError("example does not validate");
      return;
    }
  }
  for (auto _ : state) {
    fhir::IssueList issues;
    instance.validate(*doc, {}, issues);
    benchmark::DoNotOptimize(issues);
  }
  state.SetItemsProcessed(state.iterations() * resources);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}

void runParse(benchmark::State& state, const std::string& text, int64_t resources) {
  for (auto _ : state) {
    fhir::json::Document doc;
    fhir::json::ParseError error;
    benchmark::DoNotOptimize(fhir::json::parse(text, doc, error));
  }
  state.SetItemsProcessed(state.iterations() * resources);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}

const std::string& example(const char* name) {
  static std::map<std::string, std::string> cache;
  auto [it, inserted] = cache.try_emplace(name);
  if (inserted) it->second = readText(dataDir() / name);
  return it->second;
}

const std::string& bundle() {
  static const std::string text = bundleText();
  return text;
}

void BM_ValidatePatient(benchmark::State& state) { runValidate(state, example("Patient-example.json"), 1); }
void BM_ValidateObservation(benchmark::State& state) { runValidate(state, example("Observation-example.json"), 1); }
void BM_ValidateClaim(benchmark::State& state) { runValidate(state, example("Claim-100150.json"), 1); }
void BM_ValidateBundle100(benchmark::State& state) { runValidate(state, bundle(), 100); }
void BM_ParsePatient(benchmark::State& state) { runParse(state, example("Patient-example.json"), 1); }
void BM_ParseObservation(benchmark::State& state) { runParse(state, example("Observation-example.json"), 1); }
void BM_ParseClaim(benchmark::State& state) { runParse(state, example("Claim-100150.json"), 1); }
void BM_ParseBundle100(benchmark::State& state) { runParse(state, bundle(), 100); }

// Creating a validator: indexing the core package (each iteration starts cold, plans included,
// by validating one Patient).
void BM_CreateAndValidateFirstPatient(benchmark::State& state) {
  auto doc = fhir::json::parse(example("Patient-example.json"));
  for (auto _ : state) {
    auto created = fhir::createValidator({});
    fhir::IssueList issues;
    (*created)->validate(*doc, {}, issues);
    benchmark::DoNotOptimize(issues);
  }
}

BENCHMARK(BM_ValidatePatient);
BENCHMARK(BM_ParsePatient);
BENCHMARK(BM_ValidateObservation);
BENCHMARK(BM_ParseObservation);
BENCHMARK(BM_ValidateClaim);
BENCHMARK(BM_ParseClaim);
BENCHMARK(BM_ValidateBundle100);
BENCHMARK(BM_ParseBundle100);
BENCHMARK(BM_CreateAndValidateFirstPatient)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

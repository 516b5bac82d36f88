// SPDX-License-Identifier: Apache-2.0
// FHIRPath evaluation speed on the cases of bench/fhirpath_cases.json (shared with the
// fhirpath.js comparison in bench/js/fhirpath_bench.js). Each expression is compiled once and
// evaluated on the already-parsed resource, as `fhir-gateway fhirpath --repeat` does.

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"
#include "gateway_paths.h"

namespace {

using namespace fhir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct Case {
  std::string name;
  std::shared_ptr<json::Document> resource;
  fhirpath::ExpressionPtr expression;
};

void evaluateCase(benchmark::State& state, const Case& c) {
  fhirpath::EvaluationContext context;
  context.model = fhirpath::Model::bundled();
  size_t items = 0;
  for (auto _ : state) {
    auto result = fhirpath::evaluate(*c.expression, *c.resource, context);
    if (!result.ok()) {
      state.SkipWithError(result.message().c_str());
      return;
    }
    items += result->size();
    benchmark::DoNotOptimize(items);
  }
}

void compileExpression(benchmark::State& state) {
  for (auto _ : state) {
    auto compiled = fhirpath::compile(
        "name.where(use = 'official').given.first() & ' ' & telecom.where(system = 'phone').value");
    benchmark::DoNotOptimize(compiled);
  }
}
BENCHMARK(compileExpression);

// Cold start: index the R4 package and load the Patient and HumanName definitions.
void modelColdStart(benchmark::State& state) {
  for (auto _ : state) {
    auto model = fhirpath::Model::load(std::string(GATEWAY_SOURCE_DIR) + "/fhir_profiles/r4-core/package");
    benchmark::DoNotOptimize((*model)->type("Patient"));
    benchmark::DoNotOptimize((*model)->type("HumanName"));
  }
}
BENCHMARK(modelColdStart)->Unit(benchmark::kMillisecond);

bool registerCases() {
  const std::string source = GATEWAY_SOURCE_DIR;
  json::Document cases;
  json::ParseError error;
  if (!json::parse(slurp(source + "/bench/fhirpath_cases.json"), cases, error) || !cases.IsArray()) {
    return false;
  }
  for (const auto& entry : cases.GetArray()) {
    Case c;
    c.name = std::string(json::getString(entry, "name").value_or("case"));
    auto resource = std::make_shared<json::Document>();
    std::string file = source + "/tests/data/fhirpath/input/" +
                       std::string(json::getString(entry, "resource").value_or(""));
    if (!json::parse(slurp(file), *resource, error)) continue;
    auto compiled = fhirpath::compile(json::getString(entry, "expression").value_or(""));
    if (!compiled.ok()) continue;
    c.resource = std::move(resource);
    c.expression = *compiled;
    benchmark::RegisterBenchmark(("evaluate/" + c.name).c_str(),
                                 [c](benchmark::State& state) { evaluateCase(state, c); });
  }
  return true;
}

const bool kRegistered = registerCases();

}  // namespace

BENCHMARK_MAIN();

// SPDX-License-Identifier: Apache-2.0
// The FHIRPath parser and evaluator (conformance/fhirpath): the input is an expression; what
// compiles is evaluated over the official suite's example resources (tests/data/fhirpath/input),
// leniently and strictly.
#include <fstream>
#include <sstream>
#include <vector>

#include "conformance/fhirpath/fhirpath.h"
#include "tests/fuzz/fuzz_support.h"
#include "gateway_paths.h"

namespace fhirpath = fhir::fhirpath;

namespace {

struct Fixture {
  fhirpath::ModelPtr model = fhirpath::Model::bundled();
  std::vector<fhir::json::Document> resources;
};

Fixture& fixture() {
  static Fixture* fixture = [] {
    auto* made = new Fixture;
    for (const char* name : {"patient-example.json", "observation-example.json", "questionnaire-example.json"}) {
      std::ifstream file(std::string(GATEWAY_TEST_DATA_DIR) + "/fhirpath/input/" + name, std::ios::binary);
      std::stringstream text;
      text << file.rdbuf();
      auto parsed = fhir::json::parse(text.str());
      if (!parsed.ok()) fhir::fuzz::fail("cannot read the FHIRPath example resources");
      made->resources.push_back(std::move(*parsed));
    }
    return made;
  }();
  return *fixture;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fhirpath::CompileError detail;
  auto expression = fhirpath::compile(fhir::fuzz::view(data, size), &detail);
  if (!expression.ok()) {
    if (detail.offset > size) fhir::fuzz::fail("a syntax error offset past the end of the expression");
    return 0;
  }
  (void)fhirpath::expressionText(**expression);
  Fixture& f = fixture();
  for (const fhir::json::Document& resource : f.resources) {
    for (bool strict : {false, true}) {
      fhirpath::EvaluationContext context;
      context.model = f.model;
      context.strict = strict;
      context.now = "2026-12-03T09:00:00.000+00:00";
      auto result = fhirpath::evaluate(**expression, resource, context);
      if (result.ok()) (void)fhirpath::toJson(*result);
    }
  }
  return 0;
}

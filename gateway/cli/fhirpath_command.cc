// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway fhirpath [--repeat N] EXPRESSION FILE` (contracts/cli.md).

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "gateway/cli/commands.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kFhirpathHelp =
    "usage: fhir-gateway fhirpath [--repeat N] EXPRESSION FILE\n"
    "\n"
    "Evaluate a FHIRPath expression against a FHIR JSON resource (FILE, or - for stdin).\n"
    "%resource and %context are the resource. Prints the result collection as one JSON array:\n"
    "FHIR primitives as their JSON value, complex elements as their JSON, and dates, times and\n"
    "quantities made by the expression as FHIRPath literals (\"@2026-10-02\", \"5 'mg'\").\n"
    "\n"
    "  --repeat N   after the normal run, evaluate the parsed expression N more times on the\n"
    "               parsed resource and print {\"repeat\": N, \"seconds\": S, \"perSecond\": R}\n"
    "               as the last line on stderr\n"
    "\n"
    "Exit codes: 0 success; 1 syntax or evaluation error, or input that is not JSON (an\n"
    "OperationOutcome on stdout); 2 usage or environment error.\n"
    "Definitions are read from FHIR_GATEWAY_PROFILES (default: the bundled fhir_profiles).\n";

int usageError(Io& io, const std::string& message) {
  io.err << "fhir-gateway fhirpath: " << message << " (see fhir-gateway fhirpath --help)\n";
  return 2;
}

int dataError(Io& io, const std::string& code, const std::string& diagnostics) {
  IssueList issues;
  issues.add(Issue{Severity::kError, code, diagnostics, {}, {}});
  io.out << toOperationOutcomeJson(issues) << "\n";
  return 1;
}

fhirpath::ModelPtr loadModel() {
  const char* env = std::getenv("FHIR_GATEWAY_PROFILES");
  if (env == nullptr || *env == '\0') return fhirpath::Model::bundled();
  auto model = fhirpath::Model::load(std::string(env) + "/r4-core/package");
  return model.ok() ? *model : fhirpath::Model::bundled();
}

}  // namespace

int runFhirpath(const Args& args, Io& io) {
  std::vector<std::string> positional;
  long long repeat = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      io.out << kFhirpathHelp;
      return 0;
    }
    if (arg == "--repeat") {
      if (i + 1 >= args.size()) return usageError(io, "--repeat needs a count");
      const std::string& count = args[++i];
      char* end = nullptr;
      repeat = std::strtoll(count.c_str(), &end, 10);
      if (count.empty() || *end != '\0' || repeat <= 0) {
        return usageError(io, "--repeat needs a positive integer, got '" + count + "'");
      }
      continue;
    }
    if (arg.size() > 2 && arg.rfind("--", 0) == 0) return usageError(io, "unknown option " + arg);
    positional.push_back(arg);
  }
  if (positional.size() != 2) return usageError(io, "expected EXPRESSION and FILE");
  const std::string& expression_text = positional[0];
  const std::string& file = positional[1];

  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(io.in), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return usageError(io, "cannot read " + file);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return usageError(io, "cannot read " + file);
    text = buffer.str();
  }

  auto compiled = fhirpath::compile(expression_text);
  if (!compiled.ok()) return dataError(io, "invalid", compiled.message());

  json::Document doc;
  json::ParseError parse_error;
  if (!json::parse(text, doc, parse_error)) {
    return dataError(io, "structure", (file == "-" ? std::string("stdin") : file) +
                                          " is not valid JSON: " + parse_error.describe());
  }

  fhirpath::EvaluationContext context;
  context.model = loadModel();
  context.resource = &doc;
  const fhirpath::Expression& expression = **compiled;
  auto result = fhirpath::evaluate(expression, doc, context);
  if (!result.ok()) return dataError(io, "processing", result.message());
  io.out << fhirpath::toJson(*result) << "\n";
  io.out.flush();

  if (repeat > 0) {
    auto start = std::chrono::steady_clock::now();
    size_t sink = 0;
    for (long long i = 0; i < repeat; ++i) {
      auto again = fhirpath::evaluate(expression, doc, context);
      if (again.ok()) sink += again->size();
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double per_second = seconds > 0 ? static_cast<double>(repeat) / seconds : 0;
    std::ostringstream line;
    line.precision(6);
    line << "{\"repeat\": " << repeat << ", \"seconds\": " << std::fixed << seconds
         << ", \"perSecond\": " << std::fixed << std::setprecision(1) << per_second << "}";
    if (sink == static_cast<size_t>(-1)) line << " ";  // keeps the loop from being optimised out
    io.err << line.str() << "\n";
  }
  return 0;
}

}  // namespace fhir::gateway::cli

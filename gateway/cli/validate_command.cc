// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway validate [--ig PATH]... [--profile URL]... [--repeat N] FILE...`
// (contracts/cli.md): one OperationOutcome JSON line per file; exit 0 when every file is valid,
// 1 when any has errors, 2 for usage or environment errors.

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "gateway/cli/commands.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kUsage =
    "usage: fhir-gateway validate [--ig PATH]... [--profile URL]... [--repeat N] FILE...\n"
    "\n"
    "Validates FHIR R4 JSON resources (a Bundle validates its entries) against the R4 core\n"
    "definitions, the profiles they declare in meta.profile and the --profile URLs. Prints one\n"
    "OperationOutcome per file as one JSON line. FILE '-' reads standard input.\n"
    "\n"
    "  --ig PATH       load extra conformance resources: a FHIR package folder, a FHIR NPM\n"
    "                  package tarball (.tgz) or a StructureDefinition/ValueSet/CodeSystem JSON\n"
    "                  file (repeatable); a dependency a package names that is not loaded is\n"
    "                  a warning on stderr listing what goes unchecked\n"
    "  --profile URL   also validate against this profile (repeatable)\n"
    "  --repeat N      after the normal run, validate the parsed inputs N more times and print\n"
    "                  {\"repeat\": N, \"seconds\": S, \"perSecond\": R} as the last stderr line\n"
    "\n"
    "Exit status: 0 all valid, 1 some input has errors, 2 usage or environment error.\n";

struct Input {
  std::string name;
  std::string text;
};

bool readInput(const std::string& name, Io& io, Input& input) {
  input.name = name;
  if (name == "-") {
    input.text.assign(std::istreambuf_iterator<char>(io.in), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(name, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return false;
  input.text = buffer.str();
  return true;
}

}  // namespace

int runValidate(const Args& args, Io& io) {
  ValidatorOptions options;
  ValidationRequest request;
  std::vector<std::string> files;
  long repeat = -1;
  for (size_t index = 0; index < args.size(); ++index) {
    const std::string& arg = args[index];
    auto needValue = [&](const char* flag) -> const std::string* {
      if (index + 1 >= args.size()) {
        io.err << "fhir-gateway validate: " << flag << " needs a value\n";
        return nullptr;
      }
      return &args[++index];
    };
    if (arg == "--help" || arg == "-h") {
      io.out << kUsage;
      return 0;
    } else if (arg == "--ig") {
      const std::string* value = needValue("--ig");
      if (!value) return 2;
      options.extra_paths.push_back(*value);
    } else if (arg == "--profile") {
      const std::string* value = needValue("--profile");
      if (!value) return 2;
      request.profiles.push_back(*value);
    } else if (arg == "--repeat") {
      const std::string* value = needValue("--repeat");
      if (!value) return 2;
      char* end = nullptr;
      repeat = std::strtol(value->c_str(), &end, 10);
      if (value->empty() || *end != '\0' || repeat < 0) {
        io.err << "fhir-gateway validate: --repeat needs a non-negative integer, not '" << *value
               << "'\n";
        return 2;
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      io.err << "fhir-gateway validate: unknown option '" << arg << "' (see --help)\n";
      return 2;
    } else {
      files.push_back(arg);
    }
  }
  if (files.empty()) {
    io.err << "fhir-gateway validate: no input FILE (see --help)\n";
    return 2;
  }

  std::vector<Input> inputs(files.size());
  for (size_t index = 0; index < files.size(); ++index) {
    if (!readInput(files[index], io, inputs[index])) {
      io.err << "fhir-gateway validate: cannot read " << files[index] << "\n";
      return 2;
    }
  }
  auto created = createValidator(options);
  if (!created.ok()) {
    io.err << "fhir-gateway validate: " << created.message() << "\n";
    return 2;
  }
  const Validator& validator = **created;
  for (const std::string& warning : validator.startupWarnings()) {
    io.err << "fhir-gateway validate: warning: " << warning << "\n";
  }
  for (const std::string& url : request.profiles) {
    if (!validator.knowsProfile(url)) {
      io.err << "fhir-gateway validate: unknown profile " << url << "\n";
      return 2;
    }
  }

  bool any_errors = false;
  std::vector<json::Document> parsed(inputs.size());
  for (size_t index = 0; index < inputs.size(); ++index) {
    IssueList issues;
    json::ParseError error;
    if (json::parse(inputs[index].text, parsed[index], error)) {
      validator.validate(parsed[index], request, issues);
    } else {
      validator.validateText(inputs[index].text, request, issues);
      parsed[index].SetNull();
    }
    any_errors = any_errors || issues.hasErrors();
    io.out << toOperationOutcomeJson(issues) << "\n";
  }
  io.out.flush();

  if (repeat >= 0) {
    size_t validated = 0;
    auto start = std::chrono::steady_clock::now();
    for (long round = 0; round < repeat; ++round) {
      for (const json::Document& doc : parsed) {
        if (doc.IsNull()) continue;
        IssueList issues;
        validator.validate(doc, request, issues);
        ++validated;
      }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double per_second = seconds > 0 ? static_cast<double>(validated) / seconds : 0.0;
    io.err << "{\"repeat\": " << repeat << ", \"seconds\": " << seconds
           << ", \"perSecond\": " << per_second << "}\n";
  }
  return any_errors ? 1 : 0;
}

}  // namespace fhir::gateway::cli

// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway validate` per contracts/cli.md: one OperationOutcome line per file, exit codes,
// stdin, --help, --profile, --ig and --repeat.

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/cli/commands.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::cli {
namespace {

namespace fs = std::filesystem;

struct CommandRun {
  int code = 0;
  std::string out;
  std::string err;
};

CommandRun run(const Args& args, const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out, err;
  Io io{in, out, err};
  CommandRun result;
  result.code = runValidate(args, io);
  result.out = out.str();
  result.err = err.str();
  return result;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) out.push_back(line);
  return out;
}

std::string example(const char* name) {
  return (fhir::testing::testDataDir() / "validator" / "examples" / name).string();
}

TEST(ValidateCommandTest, ValidFileGivesSingleInformationalIssue) {
  CommandRun result = run({example("Patient-example.json")});
  EXPECT_EQ(result.code, 0) << result.err;
  auto outcome = json::parse(result.out);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(json::getString(*outcome, "resourceType"), "OperationOutcome");
  const json::Value& issues = (*outcome)["issue"];
  ASSERT_EQ(issues.Size(), 1u);
  EXPECT_EQ(json::getString(issues[0], "severity"), "information");
  EXPECT_EQ(json::getString(issues[0], "code"), "informational");
}

TEST(ValidateCommandTest, OneLinePerFileAndExitOneOnErrors) {
  CommandRun result = run({example("Patient-example.json"), "-"},
                   R"({"resourceType":"Patient","birthDate":"1990-13-01"})");
  EXPECT_EQ(result.code, 1);
  auto output = lines(result.out);
  ASSERT_EQ(output.size(), 2u);
  auto second = json::parse(output[1]);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(json::getString((*second)["issue"][0], "severity"), "error");
  EXPECT_EQ(json::stringView((*second)["issue"][0]["expression"][0]), "Patient.birthDate");
}

TEST(ValidateCommandTest, UsageAndEnvironmentErrorsExitTwo) {
  EXPECT_EQ(run({}).code, 2);
  EXPECT_EQ(run({"--bogus", example("Patient-example.json")}).code, 2);
  CommandRun missing = run({"/nonexistent/file.json"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(lines(missing.err).size(), 1u);
  EXPECT_EQ(run({"--profile", "http://example.org/none", example("Patient-example.json")}).code, 2);
  EXPECT_EQ(run({"--ig", "/nonexistent/ig", example("Patient-example.json")}).code, 2);
  CommandRun help = run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: fhir-gateway validate"), std::string::npos);
}

TEST(ValidateCommandTest, IgAndProfile) {
  std::string ig = (fhir::testing::testDataDir() / "validator" / "profiles").string();
  CommandRun result = run({"--ig", ig, "--profile", "http://example.org/fhir/StructureDefinition/test-patient", "-"},
                   R"({"resourceType":"Patient","gender":"male"})");
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_NE(result.out.find("Patient.birthDate: minimum required = 1"), std::string::npos) << result.out;
}

// --ig takes FHIR NPM package tarballs; the dependencies a package names that are not loaded
// are one warning line on stderr; the published US Core 6.1 example is valid with its package.
TEST(ValidateCommandTest, IgTarballWithDependencyWarning) {
  fs::path igs = fhir::testing::testDataDir() / "igs";
  CommandRun result = run({"--ig", (igs / "packages" / "us-core-6.1.0.tgz").string(),
                           (igs / "examples" / "us-core-6.1.0" / "Patient-example.json").string()});
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  auto err = lines(result.err);
  ASSERT_EQ(err.size(), 1u) << result.err;
  EXPECT_EQ(err[0].rfind("fhir-gateway validate: warning: hl7.fhir.us.core#6.1.0 depends on packages that are not loaded: ", 0), 0u)
      << err[0];
}

TEST(ValidateCommandTest, RepeatPrintsMeasurementAsLastStderrLine) {
  CommandRun result = run({"--repeat", "5", example("Observation-example.json")});
  EXPECT_EQ(result.code, 0);
  auto err = lines(result.err);
  ASSERT_FALSE(err.empty());
  auto figures = json::parse(err.back());
  ASSERT_TRUE(figures.ok()) << err.back();
  EXPECT_EQ(json::numberAsInt64((*figures)["repeat"]), 5);
  EXPECT_TRUE(json::isNumber((*figures)["seconds"]));
  EXPECT_TRUE(json::isNumber((*figures)["perSecond"]));
  EXPECT_EQ(run({"--repeat", "x", example("Observation-example.json")}).code, 2);
}

}  // namespace
}  // namespace fhir::gateway::cli

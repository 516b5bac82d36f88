// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway fhirpath` per contracts/cli.md, through runFhirpath() with in-memory streams.
#include <algorithm>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "gateway/cli/commands.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::cli {
namespace {

struct CommandRun {
  int code;
  std::string out;
  std::string err;
};

CommandRun run(const Args& args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  Io io{in, out, err};
  int code = runFhirpath(args, io);
  return {code, out.str(), err.str()};
}

std::string patientFile() {
  return (fhir::testing::testDataDir() / "fhirpath" / "input" / "patient-example.json").string();
}

TEST(FhirpathCommand, PrintsTheResultCollectionAsOneJsonArray) {
  CommandRun result = run({"name.given.first() | birthDate | active | name[0]", patientFile()});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out,
            "[\"Peter\",\"1974-12-25\",true,"
            "{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]}]\n");
  EXPECT_EQ(result.err, "");
}

TEST(FhirpathCommand, ComputedValuesFollowTheContract) {
  CommandRun result = run({"'abc' | 1 + 1 | @2026-10-02 | 5 'mg' | 1.50", patientFile()});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, "[\"abc\",2,\"@2026-10-02\",\"5 'mg'\",1.50]\n");
}

TEST(FhirpathCommand, ReadsStdin) {
  CommandRun result = run({"%resource.id | %context.id", "-"}, R"({"resourceType":"Patient","id":"x"})");
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, "[\"x\"]\n");
}

TEST(FhirpathCommand, SyntaxAndEvaluationErrorsAreOperationOutcomes) {
  CommandRun syntax = run({"2 + 2 /", patientFile()});
  EXPECT_EQ(syntax.code, 1);
  EXPECT_NE(syntax.out.find("\"resourceType\":\"OperationOutcome\""), std::string::npos);
  EXPECT_NE(syntax.out.find("syntax error at 1:8"), std::string::npos) << syntax.out;

  CommandRun evaluation = run({"name.single()", patientFile()});
  EXPECT_EQ(evaluation.code, 1);
  EXPECT_NE(evaluation.out.find("\"code\":\"processing\""), std::string::npos) << evaluation.out;

  CommandRun not_json = run({"id", "-"}, "{");
  EXPECT_EQ(not_json.code, 1);
  EXPECT_NE(not_json.out.find("OperationOutcome"), std::string::npos);
}

TEST(FhirpathCommand, UsageErrorsExitTwoWithOneLine) {
  for (const Args& args : {Args{"id"}, Args{"--repeat", "0", "id", patientFile()},
                           Args{"--nope", "id", patientFile()}, Args{"id", "/nonexistent/file.json"}}) {
    CommandRun result = run(args);
    EXPECT_EQ(result.code, 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  CommandRun help = run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_EQ(help.out.rfind("usage: fhir-gateway fhirpath", 0), 0u);
}

TEST(FhirpathCommand, RepeatPrintsMeasurementAsLastStderrLine) {
  CommandRun result = run({"--repeat", "50", "name.given", patientFile()});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, "[\"Peter\",\"James\",\"Jim\",\"Peter\",\"James\"]\n");
  ASSERT_FALSE(result.err.empty());
  std::string last = result.err.substr(result.err.rfind('\n', result.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("{\"repeat\": 50, \"seconds\": ", 0), 0u) << last;
  EXPECT_NE(last.find("\"perSecond\": "), std::string::npos);
}

}  // namespace
}  // namespace fhir::gateway::cli

// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway map --source econsult|econsult-v2 FILE` (contracts/cli.md), run as a process:
// NDJSON or one pretty-printed JSON event, and a stream of HL7 v2 messages.
#include <gtest/gtest.h>

#include <fstream>

#include "conformance/json/json.h"
#include "tests/support/test_support.h"
#include "gateway_test_paths.h"

namespace fhir::mappers {
namespace {

using Outcome = fhir::testing::CommandRun;

class EconsultMapCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = (dir_.path() / "config.json").string();
    std::ofstream(config_) << R"({"payers": [{"id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO",
      "format": "lakeshore-medicaid", "endpoint": "http://127.0.0.1:9/bundles"}]})";
  }
  Outcome run(const std::string& arguments) {
    return fhir::testing::runCommand(std::string(GATEWAY_BINARY) + " map " + arguments, dir_);
  }
  static std::string data(const std::string& path) { return (fhir::testing::testDataDir() / path).string(); }
  static std::string typeOf(const std::string& line) {
    auto doc = json::parse(line);
    if (!doc.ok()) return "not JSON: " + line;
    return std::string(json::getString(*doc, "resourceType").value_or(""));
  }

  fhir::testing::TempDir dir_;
  std::string config_;
};

TEST_F(EconsultMapCommand, NdjsonEventsGiveOneValidatedBundleEach) {
  Outcome outcome = run("--source econsult --config " + config_ + " " + data("mappers/econsult/events.ndjson"));
  EXPECT_EQ(outcome.exit_code, 0) << (outcome.err.empty() ? "" : outcome.err[0]);
  ASSERT_EQ(outcome.out.size(), 3u);
  for (const std::string& line : outcome.out) EXPECT_EQ(typeOf(line), "Bundle");
  ASSERT_EQ(outcome.err.size(), 1u);
  EXPECT_EQ(outcome.err[0].rfind(R"({"records": 3, "accepted": 3, "rejected": 0, "seconds": )", 0), 0u) << outcome.err[0];
}

TEST_F(EconsultMapCommand, OnePrettyPrintedEventIsOneRecord) {
  Outcome outcome = run("--source econsult --config " + config_ + " " + data("econsult/request.json"));
  EXPECT_EQ(outcome.exit_code, 0) << (outcome.err.empty() ? "" : outcome.err[0]);
  ASSERT_EQ(outcome.out.size(), 1u);
  EXPECT_NE(outcome.out[0].find("EC-2026-000451"), std::string::npos);
}

TEST_F(EconsultMapCommand, RejectedEventsGoToStderrAndExitOne) {
  Outcome outcome = run("--source econsult --no-validate --config " + config_ + " " + data("mappers/econsult/bad-events.ndjson"));
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_TRUE(outcome.out.empty());
  ASSERT_EQ(outcome.err.size(), 7u);
  for (size_t index = 0; index < 6; ++index) EXPECT_EQ(typeOf(outcome.err[index]), "OperationOutcome");
  EXPECT_NE(outcome.err[0].find("line 1, $.billing[0].code"), std::string::npos) << outcome.err[0];
  EXPECT_EQ(outcome.err[6].rfind(R"({"records": 6, "accepted": 0, "rejected": 6, )", 0), 0u);
}

TEST_F(EconsultMapCommand, Hl7v2MessagesGiveOneBundleEach) {
  Outcome outcome = run("--source econsult-v2 --config " + config_ + " " + data("mappers/econsult-v2/messages.hl7"));
  EXPECT_EQ(outcome.exit_code, 0) << (outcome.err.empty() ? "" : outcome.err[0]);
  ASSERT_EQ(outcome.out.size(), 2u);
  EXPECT_NE(outcome.out[1].find("\"resourceType\":\"Claim\""), std::string::npos);
  Outcome bad = run("--source econsult-v2 --config " + config_ + " " + data("mappers/econsult-v2/bad-messages.hl7"));
  EXPECT_EQ(bad.exit_code, 1);
  ASSERT_EQ(bad.err.size(), 7u);
  EXPECT_NE(bad.err[0].find("segment 6 (PR1), field 3, component 1"), std::string::npos) << bad.err[0];
}

}  // namespace
}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway map` as contracts/cli.md describes it, run as a process.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>

#include "conformance/json/json.h"
#include "tests/support/test_support.h"
#include "gateway_test_paths.h"

namespace fhir::mappers {
namespace {

using Outcome = fhir::testing::CommandRun;

Outcome runMap(const std::string& arguments) {
  fhir::testing::TempDir dir;
  return fhir::testing::runCommand(std::string(GATEWAY_BINARY) + " map " + arguments, dir);
}

std::string data(const std::string& path) { return (fhir::testing::testDataDir() / "mappers" / path).string(); }

TEST(MapCommand, BundlesOnStdoutRejectionsAndSummaryOnStderr) {
  Outcome outcome = runMap("--source lakeshore-medicaid " + data("lakeshore-medicaid/claims.csv"));
  EXPECT_EQ(outcome.exit_code, 1);
  ASSERT_EQ(outcome.out.size(), 2u);
  for (const std::string& line : outcome.out) {
    auto bundle = json::parse(line);
    ASSERT_TRUE(bundle.ok());
    EXPECT_EQ(*json::getString(*bundle, "resourceType"), "Bundle");
  }
  ASSERT_EQ(outcome.err.size(), 3u);
  for (size_t index = 0; index < 2; ++index) {
    auto outcome_json = json::parse(outcome.err[index]);
    ASSERT_TRUE(outcome_json.ok());
    EXPECT_EQ(*json::getString(*outcome_json, "resourceType"), "OperationOutcome");
  }
  EXPECT_NE(outcome.err[0].find("\"location\":[\"line 6, column dos_from\"]"), std::string::npos) << outcome.err[0];
  EXPECT_TRUE(std::regex_match(outcome.err[2], std::regex(R"(\{"records": 4, "accepted": 2, "rejected": 2, "seconds": [0-9.]+\})")))
      << outcome.err[2];
}

TEST(MapCommand, AllAcceptedExitsZeroAndPayerFlag) {
  Outcome outcome = runMap("--source x12-837p --payer lakeshore-medicaid --no-validate " + data("x12/northshore-837p.x12"));
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.out.size(), 3u);
  ASSERT_EQ(outcome.err.size(), 1u);
  EXPECT_EQ(outcome.err[0].rfind("{\"records\": 3, \"accepted\": 3, \"rejected\": 0, \"seconds\": ", 0), 0u);
  EXPECT_NE(outcome.out[0].find("lakeshore-medicaid:northshore-837p.x12:interchange 000000101"), std::string::npos);
}

TEST(MapCommand, UsageAndEnvironmentErrorsExitTwo) {
  Outcome unknown = runMap("--source no-such-spec " + data("x12/northshore-837p.x12"));
  EXPECT_EQ(unknown.exit_code, 2);
  ASSERT_EQ(unknown.err.size(), 1u);
  EXPECT_EQ(runMap("--source roster").exit_code, 2);
  EXPECT_EQ(runMap("--source roster --bogus x").exit_code, 2);
  EXPECT_EQ(runMap("--source roster /no/such/file.csv").exit_code, 2);
  Outcome help = runMap("--help");
  EXPECT_EQ(help.exit_code, 0);
  ASSERT_FALSE(help.out.empty());
  EXPECT_EQ(help.out[0].rfind("usage: fhir-gateway map", 0), 0u);
}

// limits.maxRecordBytes applies to `map` as to serve's payer files: a claim whose lines together
// pass it (here 4 KiB, by a 5,000-byte member name) is rejected by its size, and the next claim
// is still mapped.
TEST(MapCommand, ARecordOverTheConfiguredMaxRecordBytesIsRejectedAndTheFileGoesOn) {
  fhir::testing::TempDir dir;
  const std::string config = (dir.path() / "config.json").string();
  std::ofstream(config) << R"({"limits": {"maxRecordBytes": 4096}, "payers": [{"id": "lakeshore-medicaid",
    "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid", "endpoint": "http://127.0.0.1:9/bundles"}]})";
  const std::string csv = (dir.path() / "claims.csv").string();
  {
    std::ofstream out(csv);
    out << "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
           "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,"
           "units,charge_amount,paid_amount,claim_status\n";
    out << "LC-1,1,LMC00918273," << std::string(5000, 'O') << ",Adaeze,19610319,F,1467583922,1093817462,361234567,"
           "20261001,20261001,11,99214,25,,E119,I10,,,1,180.00,112.50,P\n";
    out << "LC-2,1,LMC00918273,Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567,20261001,20261001,11,99214,"
           "25,,E119,I10,,,1,180.00,112.50,P\n";
  }
  Outcome outcome = runMap("--source lakeshore-medicaid --no-validate --config " + config + " " + csv);
  EXPECT_EQ(outcome.exit_code, 1);
  ASSERT_EQ(outcome.out.size(), 1u);
  EXPECT_NE(outcome.out[0].find("LC-2"), std::string::npos);
  ASSERT_EQ(outcome.err.size(), 2u);
  EXPECT_NE(outcome.err[0].find("larger than maxRecordBytes (4096)"), std::string::npos) << outcome.err[0];
  EXPECT_EQ(outcome.err[1].rfind("{\"records\": 2, \"accepted\": 1, \"rejected\": 1, ", 0), 0u) << outcome.err[1];
}

TEST(MapCommand, CareManagementEventsValidatedWithTheConfiguredPayers) {
  fhir::testing::TempDir dir;
  const std::string config = (dir.path() / "config.json").string();
  std::ofstream(config) << R"({"payers": [{"id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO",
    "format": "lakeshore-medicaid", "endpoint": "http://127.0.0.1:9/bundles"}]})";
  Outcome good = runMap("--source care-management --config " + config + " " + data("care-management/events.ndjson"));
  EXPECT_EQ(good.exit_code, 0);
  ASSERT_EQ(good.out.size(), 6u);  // one Bundle per event, all six types, validated
  ASSERT_EQ(good.err.size(), 1u);
  EXPECT_TRUE(std::regex_search(good.err[0], std::regex(R"(^\{"records": 6, "accepted": 6, "rejected": 0, )")));

  Outcome bad = runMap("--source care-management --config " + config + " " + data("care-management/bad-events.ndjson"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(bad.out.empty());
  ASSERT_EQ(bad.err.size(), 9u);
  EXPECT_NE(bad.err[0].find("\"line 1, $.screening.answers[2].answerLoinc\""), std::string::npos) << bad.err[0];
  EXPECT_TRUE(std::regex_search(bad.err[8], std::regex(R"(^\{"records": 8, "accepted": 0, "rejected": 8, )")));
}

}  // namespace
}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
// `igs` in the configuration (contracts/cli.md): a server started with the US Core 6.1 and CARIN
// BB 2.0 packages (.tgz) validates their published examples through POST /fhir/$validate with
// the same verdicts as the command line (tests/data/igs/known-wrong.txt lists the genuinely
// wrong ones), and warns at start-up about the dependencies that are not loaded.

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/support/gateway_process.h"
#include "tests/support/test_support.h"
#include "gateway_test_paths.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> knownWrong() {
  std::map<std::string, std::string> out;
  std::ifstream in(testDataDir() / "igs" / "known-wrong.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find(' ');
    out[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return out;
}

size_t errorCount(const std::string& outcome, std::string& text) {
  auto doc = json::parse(outcome);
  EXPECT_TRUE(doc.ok()) << outcome;
  if (!doc.ok()) return 1;
  size_t errors = 0;
  if (const json::Value* issues = json::find(*doc, "issue"); issues && issues->IsArray()) {
    for (const json::Value& issue : issues->GetArray()) {
      auto severity = json::getString(issue, "severity");
      if (severity == "error" || severity == "fatal") {
        ++errors;
        text += std::string(json::getString(issue, "diagnostics").value_or("")) + "\n";
      }
    }
  }
  return errors;
}

TEST(IgValidateE2ETest, ServerWithIgsValidatesUsCoreAndCarinExamples) {
  TempDir data;
  fs::path packages = testDataDir() / "igs" / "packages";
  std::string config_path = (data.path() / "config.json").string();
  {
    std::ofstream config(config_path);
    config << R"({"dataDir": ")" << (data.path() / "var").string() << R"(", "igs": [")"
           << (packages / "us-core-6.1.0.tgz").string() << R"(", ")" << (packages / "us-core-3.1.0.tgz").string()
           << R"(", ")" << (packages / "carin-bb-2.0.0.tgz").string() << R"("]})";
  }
  GatewayProcess gateway({"--config", config_path});
  ASSERT_NE(gateway.port(), 0);
  std::map<std::string, std::string> listed = knownWrong();
  size_t checked = 0;
  for (const char* folder : {"us-core-6.1.0", "carin-bb-2.0.0"}) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(testDataDir() / "igs" / "examples" / folder)) {
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::string key = std::string(folder) + "/" + file.filename().string();
      HttpResult answer = gateway.post("/fhir/$validate", readFile(file), "application/fhir+json");
      ASSERT_EQ(answer.status, 200) << key << ": " << answer.body;
      std::string text;
      size_t errors = errorCount(answer.body, text);
      if (listed.count(key)) {
        EXPECT_GT(errors, 0u) << key << " is listed in known-wrong.txt but validates on the server";
      } else {
        EXPECT_EQ(errors, 0u) << key << ":\n" << text;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 210u);
}

TEST(IgValidateE2ETest, StrictDependenciesStopTheServer) {
  TempDir data;
  std::string config_path = (data.path() / "config.json").string();
  {
    std::ofstream config(config_path);
    config << R"({"dataDir": ")" << (data.path() / "var").string() << R"(", "igs": {"packages": [")"
           << (testDataDir() / "igs" / "packages" / "us-core-6.1.0.tgz").string()
           << R"("], "strictDependencies": true}})";
  }
  CommandRun result =
      runCommand(std::string(GATEWAY_BINARY) + " serve --listen 127.0.0.1:0 --config " + config_path, data);
  std::string err;
  for (const std::string& line : result.err) err += line + "\n";
  EXPECT_EQ(result.exit_code, 2) << err;
  EXPECT_NE(err.find("strictDependencies"), std::string::npos) << err;
  EXPECT_NE(err.find("us.nlm.vsac#0.10.0"), std::string::npos) << err;
}

}  // namespace
}  // namespace fhir::testing

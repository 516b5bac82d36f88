// SPDX-License-Identifier: Apache-2.0
#include "tests/support/test_support.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include "gateway_paths.h"

namespace fhir::testing {

std::filesystem::path testDataDir() { return GATEWAY_TEST_DATA_DIR; }

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) out.push_back(line);
  return out;
}

CommandRun runCommand(const std::string& command, const TempDir& scratch) {
  const std::string out_path = (scratch.path() / "command.out").string();
  const std::string err_path = (scratch.path() / "command.err").string();
  const int status = std::system((command + " >" + out_path + " 2>" + err_path).c_str());
  CommandRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = lines(readFile(out_path));
  run.err = lines(readFile(err_path));
  return run;
}

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() /
          ("gateway-test-" + std::to_string(random()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace fhir::testing

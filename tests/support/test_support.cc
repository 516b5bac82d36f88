// SPDX-License-Identifier: Apache-2.0
#include "tests/support/test_support.h"

#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

namespace fhir::testing {

std::filesystem::path testDataDir() { return GATEWAY_TEST_DATA_DIR; }

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
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

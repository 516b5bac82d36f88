// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <filesystem>
#include <string>

namespace fhir::testing {

// Folder of checked-in test data (tests/data).
std::filesystem::path testDataDir();
// Reads a whole file; fails the current test when unreadable.
std::string readFile(const std::filesystem::path& path);

// A fresh empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

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

// The lines of a text, without their line endings.
std::vector<std::string> lines(const std::string& text);

// A command run to its end through the shell: exit code, and stdout and stderr as lines.
struct CommandRun {
  int exit_code = -1;
  std::vector<std::string> out;
  std::vector<std::string> err;
};
// Runs `command` with stdout and stderr sent to files in `scratch`.
CommandRun runCommand(const std::string& command, const TempDir& scratch);

// True once `done()` holds, asking again every `interval` for at most `timeout`: a barrier on
// what a process shows (a metric, a receiver's requests, an answer), instead of a sleep.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout, std::chrono::milliseconds interval = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(interval);
  }
  return true;
}

}  // namespace fhir::testing

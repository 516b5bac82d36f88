// SPDX-License-Identifier: Apache-2.0
#pragma once

// The load error of a spec text, for the spec-load tests: "loaded", or the message with the
// temporary folder dropped ("t.json:9: unknown transform 'x'").

#include <fstream>
#include <string>

#include "mappers/engine/engine.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::engine {

inline std::string loadError(const std::string& text) {
  fhir::testing::TempDir dir;
  std::string path = (dir.path() / "t.json").string();
  std::ofstream(path) << text;
  auto loaded = SpecLibrary::loadFile(path, {});
  if (loaded.ok()) return "loaded";
  std::string message = loaded.message();
  std::string prefix = dir.path().string() + "/";
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return message;
}

}  // namespace fhir::mappers::engine

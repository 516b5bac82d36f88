// SPDX-License-Identifier: Apache-2.0
// The mapping-spec loader (mappers/engine): the input is a spec file (JSON with comments), read by
// SpecDocument::parse and compiled by SpecLibrary::loadFile against the bundled alignment
// ConceptMaps/ValueSets and the R4 core definitions. loadFile reads a path, so each input goes
// through one file in a private temporary folder.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "mappers/engine/engine.h"
#include "mappers/engine/spec_json.h"
#include "tests/fuzz/fuzz_support.h"

namespace engine = fhir::mappers::engine;

namespace {

const std::string& specPath() {
  static const std::string* path = [] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/spec-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) fhir::fuzz::fail("mkdtemp");
    static const std::string folder = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(folder, ignored);
    });
    return new std::string(pattern + "/spec.json");
  }();
  return *path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)specPath();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fhir::fuzz::view(data, size);
  auto document = engine::SpecDocument::parse(text);
  if (document.ok()) fhir::fuzz::checkRoundTrip((*document)->root());
  {
    std::ofstream file(specPath(), std::ios::binary | std::ios::trunc);
    file.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  auto library = engine::SpecLibrary::loadFile(specPath(), engine::LoadOptions{});
  if (library.ok() && !document.ok()) fhir::fuzz::fail("a spec the loader accepts that SpecDocument rejects");
  if (library.ok()) {
    for (const std::string& id : (*library)->ids()) {
      if (!(*library)->has(id)) fhir::fuzz::fail("a listed spec id the library does not have");
    }
  }
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// The fuzz harnesses (tests/fuzz/*_fuzz.cc) in the normal suite: each runs once over its seed
// files (tests/fuzz/seeds/<target>.list) and over every input a fuzzer once crashed on
// (tests/fuzz/regressions/<target>/, one file per finding, named after what it found). A harness
// aborts on a finding (its oracle, or a sanitizer in the ASan build), so a passing test means no
// input crashed, and each input's harness returned 0.
#include <glob.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway_paths.h"

#define HARNESS(name)                                                  \
  extern "C" int fuzz_##name##_one(const uint8_t* data, size_t size); \
  extern "C" __attribute__((weak)) int fuzz_##name##_init(int*, char***);
HARNESS(json)
HARNESS(csv_reader)
HARNESS(ndjson_reader)
HARNESS(x12_reader)
HARNESS(hl7v2_reader)
HARNESS(fhirpath)
HARNESS(spec_loader)
HARNESS(validator)
HARNESS(http)

namespace {

struct Harness {
  std::string name;
  int (*one)(const uint8_t*, size_t);
  int (*init)(int*, char***);
};

std::vector<std::string> inputsOf(const std::string& target) {
  const std::string source = GATEWAY_SOURCE_DIR;
  std::vector<std::string> files;
  std::ifstream list(std::string(GATEWAY_FUZZ_DIR) + "/seeds/" + target + ".list");
  std::string pattern;
  while (std::getline(list, pattern)) {
    if (pattern.empty() || pattern[0] == '#') continue;
    glob_t found{};
    if (glob((source + "/" + pattern).c_str(), 0, nullptr, &found) == 0) {
      for (size_t i = 0; i < found.gl_pathc; ++i) files.emplace_back(found.gl_pathv[i]);
    }
    globfree(&found);
  }
  const std::filesystem::path regressions = std::string(GATEWAY_FUZZ_DIR) + "/regressions/" + target;
  if (std::filesystem::is_directory(regressions)) {
    for (const auto& entry : std::filesystem::directory_iterator(regressions)) {
      if (entry.is_regular_file()) files.push_back(entry.path().string());
    }
  }
  return files;
}

class FuzzRegression : public ::testing::TestWithParam<Harness> {};

TEST_P(FuzzRegression, EverySeedAndPastFindingRunsClean) {
  const Harness& harness = GetParam();
  const std::vector<std::string> files = inputsOf(harness.name);
  ASSERT_FALSE(files.empty()) << "no seeds or regression inputs for " << harness.name;
  if (harness.init != nullptr) {
    ASSERT_EQ(harness.init(nullptr, nullptr), 0);
  }
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string input = bytes.str();
    SCOPED_TRACE(file);
    EXPECT_EQ(harness.one(reinterpret_cast<const uint8_t*>(input.data()), input.size()), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Harnesses, FuzzRegression,
    ::testing::Values(Harness{"json", fuzz_json_one, fuzz_json_init},
                      Harness{"csv_reader", fuzz_csv_reader_one, fuzz_csv_reader_init},
                      Harness{"ndjson_reader", fuzz_ndjson_reader_one, fuzz_ndjson_reader_init},
                      Harness{"x12_reader", fuzz_x12_reader_one, fuzz_x12_reader_init},
                      Harness{"hl7v2_reader", fuzz_hl7v2_reader_one, fuzz_hl7v2_reader_init},
                      Harness{"fhirpath", fuzz_fhirpath_one, fuzz_fhirpath_init},
                      Harness{"spec_loader", fuzz_spec_loader_one, fuzz_spec_loader_init},
                      Harness{"validator", fuzz_validator_one, fuzz_validator_init},
                      Harness{"http", fuzz_http_one, fuzz_http_init}),
    [](const ::testing::TestParamInfo<Harness>& info) { return info.param.name; });

}  // namespace

// Findings of the fuzzers, each fixed; the input is also in tests/fuzz/regressions/.

namespace {

// json_fuzz: "\uDE00" (a low surrogate without its high half) parsed into the bytes ED B8 80,
// which are not UTF-8, so the document's own serialization did not parse again.
TEST(FuzzFinding, JsonLoneLowSurrogateEscapeIsAParseError) {
  for (const char* text : {R"(["\uDE00"])", R"({"a":"x\uD66D\uDFFFy"})", R"({"\uDC00":1})"}) {
    SCOPED_TRACE(text);
    fhir::json::Document doc;
    fhir::json::ParseError error;
    EXPECT_FALSE(fhir::json::parse(text, doc, error));
    EXPECT_EQ(error.message, "string contains an unpaired surrogate escape (\\uDC00-\\uDFFF)");
  }
  auto pair = fhir::json::parse(R"(["\uD83D\uDE00"])");
  ASSERT_TRUE(pair.ok());
  EXPECT_EQ(fhir::json::serialize(*pair), "[\"\xF0\x9F\x98\x80\"]");
}

}  // namespace

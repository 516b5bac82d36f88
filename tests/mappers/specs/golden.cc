// SPDX-License-Identifier: Apache-2.0
#include "tests/mappers/specs/golden.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "conformance/validator/validator.h"
#include "conformance/common/ids.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::mappers::testing {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, separator)) parts.push_back(part);
  return parts;
}

std::string physicalLines(const std::string& input, size_t first, size_t last) {
  size_t line = 1, start = std::string::npos, position = 0;
  if (first == 1) start = 0;
  for (; position < input.size(); ++position) {
    if (input[position] != '\n') continue;
    ++line;
    if (line == first) start = position + 1;
    if (line == last + 1) return input.substr(start, position + 1 - start);
  }
  return start == std::string::npos ? std::string() : input.substr(start);
}

std::string x12Segments(const std::string& input, const std::string& ranges) {
  char terminator = input[105];
  std::vector<std::string> segments;
  bool in_set = false;
  for (std::string segment : split(input, terminator)) {
    segment.erase(0, segment.find_first_not_of("\r\n"));
    if (segment.rfind("ST", 0) == 0 && segment.size() > 2 && !std::isalnum(static_cast<unsigned char>(segment[2]))) in_set = true;
    if (in_set) segments.push_back(segment);
    if (segment.rfind("SE", 0) == 0 && segment.size() > 2 && !std::isalnum(static_cast<unsigned char>(segment[2]))) break;
  }
  std::string out;
  for (const std::string& range : split(ranges, ',')) {
    size_t dash = range.find('-');
    size_t from = std::stoul(range.substr(0, dash));
    size_t to = dash == std::string::npos ? from : std::stoul(range.substr(dash + 1));
    for (size_t number = from; number <= to && number <= segments.size(); ++number) {
      out += segments[number - 1];
      out.push_back(terminator);
    }
  }
  return out;
}

}  // namespace

std::string fillPlaceholders(const std::string& expected, const std::string& input) {
  std::string out;
  size_t position = 0;
  while (true) {
    size_t open = expected.find("{{", position);
    if (open == std::string::npos) break;
    size_t close = expected.find("}}", open);
    out.append(expected, position, open - position);
    std::string body = expected.substr(open + 2, close - open - 2);
    if (body.rfind("id:", 0) == 0) {
      std::string joined;
      for (const std::string& part : split(body.substr(3), '|')) joined += (joined.empty() ? "" : "\x1f") + part;
      // deriveId joins its parts with the unit separator; one pre-joined part gives the same id.
      out += deriveId({joined});
    } else if (body.rfind("sha256:lines ", 0) == 0) {
      std::string range = body.substr(13);
      size_t dash = range.find('-');
      out += sha256Hex(physicalLines(input, std::stoul(range.substr(0, dash)), std::stoul(range.substr(dash + 1))));
    } else if (body.rfind("sha256:x12 ", 0) == 0) {
      out += sha256Hex(x12Segments(input, body.substr(11)));
    } else {
      ADD_FAILURE() << "unknown placeholder " << body;
    }
    position = close + 2;
  }
  out.append(expected, position, std::string::npos);
  return out;
}

std::optional<PayerInfo> FakeDirectory::payer(std::string_view payer_id) const {
  if (payer_id == "lakeshore-medicaid") return PayerInfo{"lakeshore-medicaid", "Lakeshore Medicaid MCO", "", ""};
  if (payer_id == "northwind-commercial") return PayerInfo{"northwind-commercial", "Northwind Health Plans", "", ""};
  return std::nullopt;
}

const engine::SpecLibrary& bundledSpecs() {
  static const std::unique_ptr<engine::SpecLibrary> library = [] {
    auto loaded = engine::SpecLibrary::load({});
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.message();
      std::abort();
    }
    return std::move(*loaded);
  }();
  return *library;
}

GoldenRun runGolden(const engine::SpecLibrary& library, const std::string& spec_id, const std::string& payer_id,
                    const std::string& dir, const std::string& input) {
  GoldenRun run;
  static FakeDirectory directory;
  std::istringstream stream(fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / dir / input));
  engine::MapOptions options;
  options.payer_id = payer_id;
  options.directory = &directory;
  options.source_name = input;
  options.now = "2026-10-03T09:13:00-05:00";
  auto summary = library.mapSource(
      spec_id, stream, options,
      [&](engine::MappedBundle& mapped) { run.bundles.push_back(std::move(mapped.bundle)); },
      [&](engine::Rejection& rejection) { run.rejections.push_back(std::move(rejection)); });
  EXPECT_TRUE(summary.ok()) << (summary.ok() ? "" : summary.message());
  if (summary.ok()) run.summary = *summary;
  return run;
}

void expectBundle(const json::Value& actual, const std::string& dir, const std::string& expected_file,
                  const std::string& input) {
  std::string input_text = fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / dir / input);
  std::string expected_text = fillPlaceholders(
      fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / dir / expected_file), input_text);
  auto expected = json::parse(expected_text);
  ASSERT_TRUE(expected.ok()) << expected_file << ": " << expected.message();
  // Re-read the output so numbers compare as the same kind of value as the expected file's.
  auto reread = json::parse(json::serialize(actual));
  ASSERT_TRUE(reread.ok());
  EXPECT_TRUE(*reread == *expected) << expected_file << "\nexpected:\n"
                                    << json::serializePretty(*expected) << "\nactual:\n"
                                    << json::serializePretty(*reread);
}

void expectRejections(const std::vector<engine::Rejection>& rejections, const std::string& dir, const std::string& file) {
  std::vector<std::string> expected;
  for (const std::string& line : split(fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / dir / file), '\n')) {
    if (!line.empty() && line[0] != '#') expected.push_back(line);
  }
  std::vector<std::string> actual;
  for (const engine::Rejection& rejection : rejections) {
    std::set<std::string> locations;
    for (const Issue& issue : rejection.issues.issues()) {
      for (const std::string& location : issue.location) locations.insert(location);
    }
    std::string line = rejection.position;
    for (const std::string& location : locations) line += " | " + location;
    actual.push_back(line);
  }
  EXPECT_EQ(actual, expected);
}

namespace {
const Validator& alignmentValidator() {
  static const ValidatorPtr validator = [] {
    ValidatorOptions options;
    options.extra_paths.push_back(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package");
    auto created = createValidator(options);
    if (!created.ok()) {
      ADD_FAILURE() << created.message();
      std::abort();
    }
    return *created;
  }();
  return *validator;
}
}  // namespace

size_t validationErrors(const json::Value& bundle) {
  IssueList issues;
  alignmentValidator().validate(bundle, ValidationRequest{}, issues);
  return issues.errorCount();
}

std::string validationErrorText(const json::Value& bundle) {
  IssueList issues;
  alignmentValidator().validate(bundle, ValidationRequest{}, issues);
  std::string errors;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    errors += (issue.expression.empty() ? std::string() : issue.expression[0]) + ": " + issue.diagnostics + "\n";
  }
  return errors;
}

void expectValid(const json::Value& bundle) {
  std::string errors = validationErrorText(bundle);
  EXPECT_TRUE(errors.empty()) << errors;
}

}  // namespace fhir::mappers::testing

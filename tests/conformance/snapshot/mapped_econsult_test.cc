// SPDX-License-Identifier: Apache-2.0
// The e-consult Bundles (mappers/specs/econsult.json) (request, response with billing, closed) validate against the
// alignment profiles they declare in meta.profile, with no errors: the guide accepts what the
// events carry (fhir_profiles/alignment/README.md, "What the mapper must emit").

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/validator/validator.h"
#include "mappers/engine/engine.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir {
namespace {

namespace fs = std::filesystem;

class OnePayerDirectory final : public mappers::Directory {
 public:
  std::optional<mappers::PayerInfo> payer(std::string_view id) const override {
    if (id != "lakeshore-medicaid") return std::nullopt;
    return mappers::PayerInfo{"lakeshore-medicaid", "Lakeshore Medicaid MCO",
                              "http://hl7.org/fhir/sid/us-npi", "1548271034"};
  }
  std::vector<fhir::CoverageFact> coverageOf(std::string_view) const override { return {}; }
};

std::string describe(const IssueList& issues) {
  std::string out;
  for (const Issue& issue : issues.issues()) {
    out += std::string(severityName(issue.severity)) + " " + issue.code + " " +
           (issue.expression.empty() ? std::string("-") : issue.expression[0]) + ": " +
           issue.diagnostics + "\n";
  }
  return out;
}

TEST(MappedEconsultTest, MappedBundlesValidateAgainstTheAlignmentProfiles) {
  ValidatorOptions options;
  options.extra_paths.push_back(
      (fs::path(GATEWAY_PROFILES_DIR) / "alignment" / "package").string());
  auto validator = createValidator(options);
  ASSERT_TRUE(validator.ok()) << validator.message();
  OnePayerDirectory directory;
  auto specs = mappers::engine::SpecLibrary::load({});
  ASSERT_TRUE(specs.ok()) << specs.message();
  std::string previous_request;  // the ServiceRequest as the earlier event left it
  mappers::engine::MapOptions map_options;
  map_options.directory = &directory;
  map_options.base_url = "http://gw/fhir";
  map_options.stored_resource = [&](const std::string& type, const std::string&) -> std::optional<std::string> {
    if (type != "ServiceRequest" || previous_request.empty()) return std::nullopt;
    return previous_request;
  };
  for (const char* name : {"request", "response", "closed"}) {
    const std::string text = testing::readFile(testing::testDataDir() / "econsult" / (std::string(name) + ".json"));
    auto event = json::parse(text);
    ASSERT_TRUE(event.ok()) << name;
    mappers::engine::MappedBundle mapped;
    IssueList map_issues;
    auto done = (*specs)->mapRecord("econsult", *event, text, name, map_options, mapped, map_issues);
    ASSERT_TRUE(done.ok() && *done) << name << ":\n" << describe(map_issues);
    size_t profiled = 0;
    for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      const json::Value* meta = json::find(resource, "meta");
      if (meta == nullptr || json::find(*meta, "profile") == nullptr) continue;
      std::string profile(json::stringView((*meta)["profile"][0]));
      EXPECT_TRUE((*validator)->knowsProfile(profile)) << name << " declares " << profile;
      ++profiled;
    }
    EXPECT_GE(profiled, 5u) << name;
    IssueList issues;
    (*validator)->validate(mapped.bundle, ValidationRequest{}, issues);
    EXPECT_FALSE(issues.hasErrors()) << name << ":\n" << describe(issues);
    for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "resourceType") == "ServiceRequest") {
        previous_request = json::serialize(entry["resource"]);
      }
    }
  }
}

}  // namespace
}  // namespace fhir

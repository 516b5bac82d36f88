// SPDX-License-Identifier: Apache-2.0
// The e-consult mapper's Bundles (request, response with billing, closed) validate against the
// alignment profiles they declare in meta.profile, with no errors: the guide accepts what the
// events carry (fhir_profiles/alignment/README.md, "What the mapper must emit").

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/validator/validator.h"
#include "mappers/econsult/econsult_mapper.h"
#include "tests/support/test_support.h"

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
  std::vector<mappers::CoverageFact> coverageOf(std::string_view) const override { return {}; }
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
  const json::Value* previous_request = nullptr;
  std::vector<mappers::MappedEvent> kept;
  for (const char* name : {"request", "response", "closed"}) {
    auto event = json::parse(testing::readFile(testing::testDataDir() / "econsult" /
                                               (std::string(name) + ".json")));
    ASSERT_TRUE(event.ok()) << name;
    mappers::EconsultContext context{directory, "http://gw/fhir", previous_request};
    mappers::MappedEvent mapped;
    IssueList map_issues;
    ASSERT_TRUE(mappers::EconsultMapper().map(*event, context, mapped, map_issues))
        << name << ":\n" << describe(map_issues);
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
    kept.push_back(std::move(mapped));
    for (const json::Value& entry : kept.back().bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "resourceType") == "ServiceRequest") {
        previous_request = &entry["resource"];
      }
    }
  }
}

}  // namespace
}  // namespace fhir

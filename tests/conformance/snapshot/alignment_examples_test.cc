// SPDX-License-Identifier: Apache-2.0
// The alignment guide's examples through the real validator, which loads fhir_profiles/alignment/
// package as an extra package and generates the differential-only profiles' snapshots with
// conformance/snapshot: every valid example has no errors against the profile it declares, and
// every invalid example has an error at the expression its manifest names.

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/validator/validator.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir {
namespace {

namespace fs = std::filesystem;

fs::path alignmentDir() { return fs::path(GATEWAY_PROFILES_DIR) / "alignment"; }

const Validator& alignmentValidator() {
  static const ValidatorPtr validator = [] {
    ValidatorOptions options;
    options.extra_paths.push_back((alignmentDir() / "package").string());
    options.extra_paths.push_back((fs::path(GATEWAY_PROFILES_DIR) / "r5-cross-version" / "package").string());
    auto created = createValidator(options);
    if (!created.ok()) {
      ADD_FAILURE() << "createValidator: " << created.message();
      return ValidatorPtr();
    }
    return *created;
  }();
  return *validator;
}

std::string describe(const IssueList& issues) {
  std::string out;
  for (const Issue& issue : issues.issues()) {
    out += std::string(severityName(issue.severity)) + " " + issue.code + " " +
           (issue.expression.empty() ? std::string("-") : issue.expression[0]) + ": " +
           issue.diagnostics + "\n";
  }
  return out;
}

std::vector<fs::path> jsonFiles(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".json" && entry.path().filename() != "manifest.json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(AlignmentExamplesTest, TheGuideIsKnownToTheValidator) {
  const Validator& validator = alignmentValidator();
  for (const char* id : {"alignment-patient", "econsult-servicerequest", "billing-claim",
                         "hrsn-screening-observation", "mapping-provenance"}) {
    EXPECT_TRUE(validator.knowsProfile(std::string("https://fhir.alignment-gateway.org/") +
                                       "StructureDefinition/" + id))
        << id;
  }
}

TEST(AlignmentExamplesTest, ValidExamplesHaveNoErrors) {
  const Validator& validator = alignmentValidator();
  auto files = jsonFiles(alignmentDir() / "examples" / "valid");
  ASSERT_GE(files.size(), 20u);
  for (const auto& file : files) {
    IssueList issues;
    validator.validateText(testing::readFile(file), ValidationRequest{}, issues);
    EXPECT_FALSE(issues.hasErrors()) << file.filename() << ":\n" << describe(issues);
  }
}

// The guide's own resources (StructureDefinitions, ValueSets, CodeSystems, ConceptMaps, the
// topics as Basic, the ImplementationGuide) are valid R4 resources with zero errors. The topics
// use HL7's cross-version extensions (http://hl7.org/fhir/5.0/StructureDefinition/extension-
// SubscriptionTopic.*), whose definitions we ship in fhir_profiles/r5-cross-version.
TEST(AlignmentExamplesTest, PackageResourcesAreValidR4) {
  const Validator& validator = alignmentValidator();
  auto files = jsonFiles(alignmentDir() / "package");
  size_t checked = 0;
  for (const auto& file : files) {
    std::string name = file.filename().string();
    if (name == "package.json" || name == ".index.json") continue;
    IssueList issues;
    validator.validateText(testing::readFile(file), ValidationRequest{}, issues);
    IssueList errors;
    for (const Issue& issue : issues.issues()) {
      if (issue.severity == Severity::kError || issue.severity == Severity::kFatal) errors.add(issue);
    }
    EXPECT_TRUE(errors.empty()) << name << ":\n" << describe(errors);
    ++checked;
  }
  EXPECT_GE(checked, 60u);
}

// An error is expected at the manifest's expression or below it (Patient.identifier for a
// missing identifier, Claim.item[0].productOrService for a code outside the value set).
bool hasErrorAt(const IssueList& issues, const std::string& expression) {
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    for (const std::string& at : issue.expression) {
      if (at == expression || at.rfind(expression + ".", 0) == 0 ||
          at.rfind(expression + "[", 0) == 0) {
        return true;
      }
    }
  }
  return false;
}

struct InvalidCase {
  std::string file;
  std::string expression;
  std::string rule;
  std::string needs;  // validator capability the case depends on: slicing, pattern, reference-target
};

std::vector<InvalidCase> invalidCases() {
  fs::path folder = alignmentDir() / "examples" / "invalid";
  auto manifest = json::parse(testing::readFile(folder / "manifest.json"));
  EXPECT_TRUE(manifest.ok()) << (manifest.ok() ? "" : manifest.message());
  std::vector<InvalidCase> cases;
  if (!manifest.ok()) return cases;
  for (const json::Value& entry : (*manifest)["cases"].GetArray()) {
    cases.push_back(InvalidCase{std::string(json::getString(entry, "file").value_or("")),
                                std::string(json::getString(entry, "expression").value_or("")),
                                std::string(json::getString(entry, "rule").value_or("")),
                                std::string(json::getString(entry, "needs").value_or(""))});
  }
  return cases;
}

IssueList validateInvalid(const InvalidCase& invalid) {
  IssueList issues;
  alignmentValidator().validateText(
      testing::readFile(alignmentDir() / "examples" / "invalid" / invalid.file),
      ValidationRequest{}, issues);
  return issues;
}

TEST(AlignmentExamplesTest, EveryInvalidExampleIsInTheManifest) {
  EXPECT_EQ(invalidCases().size(), jsonFiles(alignmentDir() / "examples" / "invalid").size());
}

TEST(AlignmentExamplesTest, InvalidExamplesFailWhereTheManifestSays) {
  size_t checked = 0;
  for (const InvalidCase& invalid : invalidCases()) {
    if (!invalid.needs.empty()) continue;
    IssueList issues = validateInvalid(invalid);
    EXPECT_TRUE(hasErrorAt(issues, invalid.expression))
        << invalid.file << " should break " << invalid.rule << " at " << invalid.expression
        << "; got:\n" << describe(issues);
    ++checked;
  }
  EXPECT_GE(checked, 20u);
}

// Cases that depend on a validator capability (slicing: a required slice such as the response
// Communication's extension:minutesSpent when no extension is present at all; pattern;
// reference-target): each must fail at the manifest's expression.
TEST(AlignmentExamplesTest, InvalidExamplesThatNeedSlicingPatternsOrReferenceTargets) {
  size_t checked = 0;
  for (const InvalidCase& invalid : invalidCases()) {
    if (invalid.needs.empty()) continue;
    IssueList issues = validateInvalid(invalid);
    EXPECT_TRUE(hasErrorAt(issues, invalid.expression))
        << invalid.file << " should break " << invalid.rule << " (needs " << invalid.needs << ") at "
        << invalid.expression << "; got:\n" << describe(issues);
    ++checked;
  }
  EXPECT_GE(checked, 4u);
}

}  // namespace
}  // namespace fhir

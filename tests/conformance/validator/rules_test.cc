// SPDX-License-Identifier: Apache-2.0
// Rules added for issue 18 (Build 1, 6; HL7 agreement), one pair each: a published instance that
// conforms and a copy broken in exactly one way, asserting expression and severity. Instances are
// R4 core examples (tests/data/validator/examples) or HL7 validator test cases
// (tests/data/validator/hl7, FHIR/fhir-test-cases).

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/conformance/validator/validator_test_util.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

constexpr Severity kError = Severity::kError;

std::filesystem::path hl7(const char* name) { return testDataDir() / "validator" / "hl7" / name; }

json::Document load(const std::filesystem::path& path) {
  auto doc = json::parse(readFile(path));
  EXPECT_TRUE(doc.ok()) << path;
  return doc.ok() ? std::move(*doc) : json::Document();
}

json::Document example(const char* name) { return load(testDataDir() / "validator" / "examples" / name); }

// A validator over the core package and `extra` files.
IssueList validateWith(const json::Value& resource, const std::vector<std::filesystem::path>& extra,
                       const std::vector<std::string>& profiles = {}, bool check_references = false) {
  ValidatorOptions options;
  for (const auto& path : extra) options.extra_paths.push_back(path.string());
  options.check_references = check_references;
  auto validator = createValidator(options);
  EXPECT_TRUE(validator.ok()) << (validator.ok() ? "" : validator.message());
  IssueList issues;
  if (!validator.ok()) return issues;
  ValidationRequest request;
  request.profiles = profiles;
  (*validator)->validate(resource, request, issues);
  return issues;
}

IssueList validateProfiled(const json::Value& resource, const char* profile) {
  ValidationRequest request;
  request.profiles.emplace_back(std::string("http://example.org/fhir/StructureDefinition/") + profile);
  return validateJson(json::serialize(resource), request);
}

// R5 additional binding (purpose required) on Observation.code: the body weight example has
// LOINC 29463-7, in the value set; with only its 3141-9 coding left it has none.
TEST(RulesTest, AdditionalBindingPurposeRequired) {
  json::Document observation = example("Observation-example.json");
  EXPECT_NO_ERRORS(validateProfiled(observation, "test-additional-binding-observation"));
  json::Value& codings = observation["code"]["coding"];
  json::Value kept;
  kept.CopyFrom(codings[1], observation.GetAllocator());  // 3141-9 Body weight Measured
  codings.Clear();
  codings.PushBack(std::move(kept), observation.GetAllocator());
  IssueList issues = validateProfiled(observation, "test-additional-binding-observation");
  EXPECT_ISSUE(issues, kError, "code-invalid", "Observation.code");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// ImplementationGuide.global: every Practitioner must conform to test-named-practitioner (name 1..*).
TEST(RulesTest, ImplementationGuideGlobalProfile) {
  std::vector<std::filesystem::path> guide{testDataDir() / "validator" / "global-ig"};
  json::Document practitioner = example("Practitioner-example.json");
  EXPECT_NO_ERRORS(validateWith(practitioner, guide));
  practitioner.RemoveMember("name");
  IssueList issues = validateWith(practitioner, guide);
  EXPECT_ISSUE(issues, kError, "structure", "Practitioner");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  // Without the guide the same Practitioner is valid.
  EXPECT_NO_ERRORS(validateWith(practitioner, {}));
}

// type.profile on Parameters.parameter.resource: the resource must conform to bodyweight.
TEST(RulesTest, TypeProfileOnAResourceElement) {
  auto parameters = [](json::Document observation) {
    json::Document doc;
    doc.SetObject();
    auto& allocator = doc.GetAllocator();
    json::addString(doc, "resourceType", "Parameters", allocator);
    json::Value parameter(rapidjson::kObjectType);
    json::addString(parameter, "name", "weight", allocator);
    json::Value copy;
    copy.CopyFrom(observation, allocator);
    json::addMember(parameter, "resource", std::move(copy), allocator);
    json::Value list(rapidjson::kArrayType);
    list.PushBack(std::move(parameter), allocator);
    json::addMember(doc, "parameter", std::move(list), allocator);
    return doc;
  };
  EXPECT_NO_ERRORS(validateProfiled(parameters(example("Observation-example.json")), "test-typed-parameters"));
  json::Document observation = example("Observation-example.json");
  observation["valueQuantity"]["code"].SetString("[stone_av]");  // not a bodyweight unit
  IssueList issues = validateProfiled(parameters(std::move(observation)), "test-typed-parameters");
  EXPECT_ISSUE(issues, kError, "code-invalid", "Parameters.parameter[0].resource.value.ofType(Quantity).code");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// SearchParameter.derivedFrom: the same type, and only bases the definition has.
TEST(RulesTest, SearchParameterDerivedFrom) {
  json::Document parameter = load(hl7("sp-diff-expression.json"));
  EXPECT_NO_ERRORS(validateWith(parameter, {}));
  json::Document wrong_type = load(hl7("sp-diff-expression.json"));
  wrong_type["type"].SetString("token");
  IssueList issues = validateWith(wrong_type, {});
  EXPECT_ISSUE(issues, kError, "invalid", "SearchParameter");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  json::Document wrong_base = load(hl7("sp-diff-expression.json"));
  wrong_base["base"][0].SetString("Patient");
  issues = validateWith(wrong_base, {});
  EXPECT_ISSUE(issues, kError, "invalid", "SearchParameter");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// CapabilityStatement.rest.resource.searchParam.type is the type of its definition.
TEST(RulesTest, CapabilityStatementSearchParamType) {
  json::Document statement = load(hl7("capstmt.json"));
  IssueList issues = validateWith(statement, {});
  EXPECT_ISSUE(issues, kError, "invalid", "CapabilityStatement.rest[0].resource[0].searchParam[0]");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  statement["rest"][0]["resource"][0]["searchParam"][0]["type"].SetString("token");  // as defined
  EXPECT_NO_ERRORS(validateWith(statement, {}));
}

// A MeasureReport of a cohort Measure carries no measureScore.
TEST(RulesTest, CohortMeasureReportHasNoScore) {
  std::vector<std::filesystem::path> measure{hl7("mr-covid-m5.json")};
  json::Document report = load(hl7("mr-covid-mr1.json"));
  IssueList issues = validateWith(report, measure);
  EXPECT_ISSUE(issues, kError, "business-rule", "MeasureReport.group[0].measureScore");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  report["group"][0].RemoveMember("measureScore");
  EXPECT_NO_ERRORS(validateWith(report, measure));
}

// A version-specific reference in a document resolves on meta.versionId.
TEST(RulesTest, VersionedReferenceInADocument) {
  json::Document good = load(hl7("bundle-document-versioned-references-good.json"));
  EXPECT_NO_ERRORS(validateWith(good, {}));
  // Point the first section entry at a version the Bundle does not hold.
  json::Value& entry = good["entry"][0]["resource"]["section"][0]["entry"][0]["reference"];
  std::string reference(json::stringView(entry));
  ASSERT_NE(reference.find("/_history/"), std::string::npos) << reference;
  entry.SetString(reference.substr(0, reference.find("/_history/")) + "/_history/9", good.GetAllocator());
  IssueList issues = validateWith(good, {});
  EXPECT_ISSUE(issues, kError, "invalid", "Bundle.entry[0].resource.section[0].entry[0]");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// The profiles of HL7's bundle-conformsto case (bundle-conformsto.json: a Composition whose
// subject is the Patient of entry[1]).
std::vector<std::filesystem::path> bundleConformsToProfiles() {
  return {hl7("bundle-conformsto-patient.json"), hl7("bundle-conformsto-bundle.json"),
          hl7("bundle-conformsto-composition.json")};
}

// Gives the case's Patient (entry[1]) the identifier BundlePatient requires (1..*).
void addPatientIdentifier(json::Document& bundle) {
  auto& allocator = bundle.GetAllocator();
  json::Value identifier(rapidjson::kObjectType);
  json::addString(identifier, "system", "urn:oid:2.16.756.5.30.1.123.100.1.1.1", allocator);
  json::addString(identifier, "value", "8756.0001", allocator);
  json::Value identifiers(rapidjson::kArrayType);
  identifiers.PushBack(std::move(identifier), allocator);
  json::addMember(bundle["entry"][1]["resource"], "identifier", std::move(identifiers), allocator);
}

// A reference resolved in the Bundle must conform to its targetProfile: the Composition's
// subject must be a BundlePatient (identifier 1..*), so the Composition slice is not matched.
TEST(RulesTest, ResolvedReferenceConformsToTargetProfile) {
  const std::vector<std::filesystem::path> profiles = bundleConformsToProfiles();
  json::Document bundle = load(hl7("bundle-conformsto.json"));
  IssueList issues = validateWith(bundle, profiles);
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  addPatientIdentifier(bundle);
  EXPECT_NO_ERRORS(validateWith(bundle, profiles));
}

// The same, with the Patient declaring BundlePatient: its own walk finds whether it conforms, and
// the Composition's reference takes that answer (InstanceWalker::rememberConformance) instead of
// walking it again. A Patient that fails its declared profile is not remembered as conforming:
// the reference still fails its target profile. The same Patient declaring another profile is
// walked again for the reference.
TEST(RulesTest, AReferencedEntryDeclaringTheTargetProfileIsJudgedOnce) {
  const std::vector<std::filesystem::path> profiles = bundleConformsToProfiles();
  auto declaring = [](json::Document& bundle, const char* url) {
    auto& allocator = bundle.GetAllocator();
    json::Value urls(rapidjson::kArrayType);
    urls.PushBack(json::Value(url, allocator), allocator);
    json::Value meta(rapidjson::kObjectType);
    json::addMember(meta, "profile", std::move(urls), allocator);
    json::addMember(bundle["entry"][1]["resource"], "meta", std::move(meta), allocator);
  };
  constexpr const char* kBundlePatient = "http://ahdis.ch/ig/bundleconformsto/StructureDefinition/BundlePatient";

  json::Document without_identifier = load(hl7("bundle-conformsto.json"));
  declaring(without_identifier, kBundlePatient);
  IssueList issues = validateWith(without_identifier, profiles);
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");  // the Composition slice is not matched
  EXPECT_TRUE(std::any_of(issues.issues().begin(), issues.issues().end(), [](const Issue& issue) {
    return issue.severity == Severity::kError &&
           !issue.expression.empty() && issue.expression[0].rfind("Bundle.entry[1].resource", 0) == 0;
  })) << describe(issues);  // and the Patient fails the profile it declares

  json::Document with_identifier = load(hl7("bundle-conformsto.json"));
  declaring(with_identifier, kBundlePatient);
  addPatientIdentifier(with_identifier);
  EXPECT_NO_ERRORS(validateWith(with_identifier, profiles));

  // Valid against what it declares (base Patient) but not BundlePatient: the reference walks it.
  json::Document other_profile = load(hl7("bundle-conformsto.json"));
  declaring(other_profile, "http://hl7.org/fhir/StructureDefinition/Patient");
  issues = validateWith(other_profile, profiles);
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// validateReference CHECK_EXISTS: a relative reference inside Parameters resolves to one of its
// resources.
TEST(RulesTest, ReferencesResolveWithinParameters) {
  json::Document good = load(hl7("parameters-reference.json"));
  EXPECT_NO_ERRORS(validateWith(good, {}, {}, true));
  json::Document bad = load(hl7("parameters-reference-bad.json"));
  IssueList issues = validateWith(bad, {}, {}, true);
  EXPECT_ISSUE(issues, kError, "not-found", "Parameters.parameter[2].resource.beneficiary");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  // Without the option references are not resolved.
  EXPECT_NO_ERRORS(validateWith(bad, {}));
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// FHIRPath terminology over the validator's local terminology (issue 18, Build 1): subsumes(),
// subsumedBy() and the %terminologies service (FHIR R4 FHIRPath, "Terminology Service API")
// answered from local CodeSystems and ValueSets; a call local data cannot answer is an
// evaluation error naming why, never an empty result.
//
// Expectations checked by hand against the R4 CodeSystem condition-clinical
// (http://terminology.hl7.org/CodeSystem/condition-clinical, content complete): `active` has the
// children `recurrence` and `relapse`, `inactive` has `remission` and `resolved`; the ValueSet
// condition-clinical includes the whole system (6 codes).

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "conformance/definitions/registry.h"
#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"
#include "conformance/terminology/terminology.h"
#include "conformance/validator/terminology_hooks.h"
#include "gateway_paths.h"

namespace fhir::testing {
namespace {

constexpr const char* kClinical = "http://terminology.hl7.org/CodeSystem/condition-clinical";

class FhirPathTerminologyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto registry = definitions::Registry::load(std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package", {});
    ASSERT_TRUE(registry.ok()) << registry.message();
    registry_ = std::move(*registry).release();
    terminology_ = new terminology::Terminology(*registry_);
  }
  static void TearDownTestSuite() {
    delete terminology_;
    delete registry_;
  }

  // Evaluates `expression` on a Condition whose clinicalStatus is `code`, with the focus on the
  // Condition; the answer as JSON, or "error: <message>".
  std::string eval(const std::string& expression, const std::string& code = "relapse") {
    std::string text = R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},
        "clinicalStatus":{"coding":[{"system":")" + std::string(kClinical) + R"(","code":")" + code + R"("}]},
        "extension":[{"url":"http://example.org/general","valueCoding":{"system":")" + std::string(kClinical) +
                       R"(","code":"active"}},
                     {"url":"http://example.org/loinc","valueCoding":{"system":"http://loinc.org","code":"8310-5"}},
                     {"url":"http://example.org/other","valueCoding":{"system":"http://example.org/cs","code":"active"}}]})";
    auto doc = json::parse(text);
    EXPECT_TRUE(doc.ok());
    auto compiled = fhirpath::compile(expression);
    EXPECT_TRUE(compiled.ok()) << expression << ": " << (compiled.ok() ? "" : compiled.message());
    if (!compiled.ok()) return "compile error";
    fhirpath::EvaluationContext context;
    context.model = fhirpath::Model::bundled();
    validator::installTerminology(context, *terminology_, nullptr);
    auto result = fhirpath::evaluate(**compiled, *doc, context);
    if (!result.ok()) return "error: " + result.message();
    return fhirpath::toJson(*result);
  }

  static definitions::Registry* registry_;
  static terminology::Terminology* terminology_;
};

definitions::Registry* FhirPathTerminologyTest::registry_ = nullptr;
terminology::Terminology* FhirPathTerminologyTest::terminology_ = nullptr;

const char* kGeneral = "extension.where(url='http://example.org/general').value";

TEST_F(FhirPathTerminologyTest, SubsumesAndSubsumedByInALocalHierarchy) {
  // active subsumes relapse (its child); relapse does not subsume active.
  EXPECT_EQ(eval(std::string(kGeneral) + ".subsumes(%context.clinicalStatus.coding.first())"), "[true]");
  EXPECT_EQ(eval("clinicalStatus.coding.first().subsumes(" + std::string(kGeneral) + ")"), "[false]");
  EXPECT_EQ(eval("clinicalStatus.coding.first().subsumedBy(" + std::string(kGeneral) + ")"), "[true]");
  // A code subsumes itself; a sibling branch does not.
  EXPECT_EQ(eval(std::string(kGeneral) + ".subsumes(%context.clinicalStatus.coding.first())", "active"), "[true]");
  EXPECT_EQ(eval(std::string(kGeneral) + ".subsumes(%context.clinicalStatus.coding.first())", "resolved"), "[false]");
  // CodeableConcept: any coding.
  EXPECT_EQ(eval("clinicalStatus.subsumedBy(" + std::string(kGeneral) + ")", "recurrence"), "[true]");
  // Empty in, empty out.
  EXPECT_EQ(eval("code.subsumes(" + std::string(kGeneral) + ")"), "[]");
}

TEST_F(FhirPathTerminologyTest, UndecidableSubsumptionIsAnErrorNamingWhy) {
  std::string loinc = eval("extension.where(url='http://example.org/loinc').value.subsumes(%context.extension.where(url='http://example.org/loinc').value)");
  EXPECT_NE(loinc.find("error: "), std::string::npos) << loinc;
  EXPECT_NE(loinc.find("'http://loinc.org' is not available locally"), std::string::npos) << loinc;
  std::string systems = eval("extension.where(url='http://example.org/other').value.subsumes(%context.clinicalStatus)");
  EXPECT_NE(systems.find("different code systems"), std::string::npos) << systems;
  std::string unknown = eval("clinicalStatus.subsumedBy(" + std::string(kGeneral) + ")", "dormant");
  EXPECT_NE(unknown.find("the code 'dormant' is not in the local CodeSystem"), std::string::npos) << unknown;
}

TEST_F(FhirPathTerminologyTest, TerminologiesExpandLookupValidate) {
  EXPECT_EQ(eval("%terminologies.expand('http://hl7.org/fhir/ValueSet/condition-clinical').expansion.total"), "[6]");
  EXPECT_EQ(eval("%terminologies.expand('http://hl7.org/fhir/ValueSet/condition-clinical').expansion.contains.code"),
            R"(["active","inactive","recurrence","relapse","remission","resolved"])");
  EXPECT_EQ(eval("%terminologies.lookup(clinicalStatus.coding.first()).parameter.where(name = 'display').value"),
            R"(["Relapse"])");
  EXPECT_EQ(eval("%terminologies.validateVS('http://hl7.org/fhir/ValueSet/condition-clinical', clinicalStatus)"
                 ".parameter.where(name = 'result').value"),
            "[true]");
  EXPECT_EQ(eval("%terminologies.validateVS('http://hl7.org/fhir/ValueSet/condition-clinical', clinicalStatus)"
                 ".parameter.where(name = 'result').value", "dormant"),
            "[false]");
  EXPECT_EQ(eval("%terminologies.validateCS('" + std::string(kClinical) + "', clinicalStatus.coding.first())"
                 ".parameter.where(name = 'result').value", "dormant"),
            "[false]");
  EXPECT_EQ(eval("%terminologies.subsumes('" + std::string(kClinical) + "', 'active', 'relapse').parameter.value"),
            R"(["subsumes"])");
  EXPECT_EQ(eval("%terminologies.subsumes('" + std::string(kClinical) + "', 'relapse', 'active').parameter.value"),
            R"(["subsumed-by"])");
  EXPECT_EQ(eval("%terminologies.subsumes('" + std::string(kClinical) + "', 'active', 'inactive').parameter.value"),
            R"(["not-subsumed"])");
  EXPECT_EQ(eval("%terminologies.subsumes('" + std::string(kClinical) + "', 'active', 'active').parameter.value"),
            R"(["equivalent"])");
}

TEST_F(FhirPathTerminologyTest, UnanswerableTerminologyCallsAreErrors) {
  // observation-codes includes all of LOINC, which is not available locally.
  std::string expand = eval("%terminologies.expand('http://hl7.org/fhir/ValueSet/observation-codes')");
  EXPECT_NE(expand.find("cannot be expanded locally (it needs the code system(s) http://loinc.org)"), std::string::npos)
      << expand;
  std::string unknown = eval("%terminologies.expand('http://example.org/ValueSet/nowhere')");
  EXPECT_NE(unknown.find("is not available locally"), std::string::npos) << unknown;
  std::string lookup = eval("%terminologies.lookup(extension.where(url='http://example.org/loinc').value)");
  EXPECT_NE(lookup.find("'http://loinc.org' is not available locally"), std::string::npos) << lookup;
  std::string translate = eval("%terminologies.translate('http://example.org/ConceptMap/x', clinicalStatus)");
  EXPECT_NE(translate.find("no ConceptMap"), std::string::npos) << translate;
  // %terminologies alone is not a value.
  EXPECT_EQ(eval("%terminologies").rfind("error: %terminologies can only be the target", 0), 0u);
  // Without a terminology service the calls are errors too, never empty.
  auto compiled = fhirpath::compile("%terminologies.expand('http://hl7.org/fhir/ValueSet/condition-clinical')");
  ASSERT_TRUE(compiled.ok());
  fhirpath::EvaluationContext bare;
  auto doc = json::parse(R"({"resourceType":"Basic"})");
  ASSERT_TRUE(doc.ok());
  auto result = fhirpath::evaluate(**compiled, *doc, bare);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("no terminology service"), std::string::npos) << result.message();
}

}  // namespace
}  // namespace fhir::testing

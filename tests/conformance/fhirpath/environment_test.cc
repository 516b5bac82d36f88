// SPDX-License-Identifier: Apache-2.0
// The evaluation environment (fhirpath.h, EvaluationContext): %ucum, %sct, %loinc, %resource
// and %rootResource for contained resources and Bundle entries, and the memberOf() hook.
#include <gtest/gtest.h>

#include "conformance/fhirpath/fhirpath.h"

namespace fhir::fhirpath {
namespace {

constexpr const char* kPatient = R"({
  "resourceType": "Patient", "id": "p1",
  "contained": [
    {"resourceType": "Organization", "id": "org1", "name": "Contained Org",
     "partOf": {"reference": "#org2"}},
    {"resourceType": "Organization", "id": "org2", "name": "Parent Org"}],
  "managingOrganization": {"reference": "#org1"},
  "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                "code": "M"}]}
})";

constexpr const char* kNestedBundle = R"({
  "resourceType": "Bundle", "id": "outer", "type": "collection",
  "entry": [{"fullUrl": "urn:uuid:inner", "resource": {
    "resourceType": "Bundle", "id": "inner", "type": "collection",
    "entry": [{"fullUrl": "urn:uuid:pat", "resource": {"resourceType": "Patient", "id": "pat"}}]}}]
})";

class FhirpathEnvironment : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.model = Model::bundled();
    ASSERT_TRUE(json::parse(kPatient, patient_, error_));
    ASSERT_TRUE(json::parse(kNestedBundle, bundle_, error_));
  }
  std::string eval(std::string_view text, const Item& focus) {
    auto compiled = compile(text);
    if (!compiled.ok()) return "compile error: " + compiled.message();
    auto result = evaluate(**compiled, focus, context_);
    if (!result.ok()) return "error: " + result.message();
    return toJson(*result);
  }
  Item resourceNode(const json::Value& value) {
    return Item::node(&value, json::getString(value, "resourceType").value_or(""));
  }

  json::Document patient_, bundle_;
  json::ParseError error_;
  EvaluationContext context_;
};

TEST_F(FhirpathEnvironment, TerminologyConstantsAreTheR4SystemUris) {
  Item focus = resourceNode(patient_);
  EXPECT_EQ(eval("%ucum", focus), R"(["http://unitsofmeasure.org"])");
  EXPECT_EQ(eval("%sct", focus), R"(["http://snomed.info/sct"])");
  EXPECT_EQ(eval("%loinc", focus), R"(["http://loinc.org"])");
  EXPECT_EQ(eval("%vs-administrative-gender", focus),
            R"(["http://hl7.org/fhir/ValueSet/administrative-gender"])");
}

TEST_F(FhirpathEnvironment, RootResourceIsTheContainerOfAContainedResource) {
  const json::Value& org = patient_["contained"][0];
  context_.resource = &org;
  context_.root_resource = &patient_;
  Item focus = resourceNode(org);
  EXPECT_EQ(eval("%resource.id", focus), R"(["org1"])");
  EXPECT_EQ(eval("%rootResource.id", focus), R"(["p1"])");
  // A reference between two contained resources resolves through the container.
  EXPECT_EQ(eval("partOf.resolve().name", focus), R"(["Parent Org"])");
  // Without root_resource, %rootResource is %resource.
  context_.root_resource = nullptr;
  EXPECT_EQ(eval("%rootResource.id", focus), R"(["org1"])");
  EXPECT_EQ(eval("partOf.resolve().name", focus), "[]");
}

TEST_F(FhirpathEnvironment, ResourceDefaultsToTheFocusResource) {
  Item focus = resourceNode(patient_);
  EXPECT_EQ(eval("%resource.id", focus), R"(["p1"])");
  EXPECT_EQ(eval("%rootResource.id", focus), R"(["p1"])");
  EXPECT_EQ(eval("managingOrganization.resolve().name", focus), R"(["Contained Org"])");
}

TEST_F(FhirpathEnvironment, ResourceInANestedBundleIsTheEntrysResource) {
  // The caller sets %resource to the resource being validated, however deep its Bundle is
  // nested; the outer Bundle is then not %resource (bdl-4 is about the inner entries).
  const json::Value& inner = bundle_["entry"][0]["resource"];
  context_.resource = &inner;
  context_.root_resource = &inner;
  Item focus = resourceNode(inner);
  EXPECT_EQ(eval("%resource.id", focus), R"(["inner"])");
  EXPECT_EQ(eval("%resource.entry.count()", focus), "[1]");
  // resolve() searches the entries of %rootResource: the inner Bundle, not the outer one.
  EXPECT_EQ(eval("'urn:uuid:pat'.resolve().id", focus), R"(["pat"])");
  EXPECT_EQ(eval("'urn:uuid:inner'.resolve().id", focus), "[]");
  EXPECT_EQ(eval("entry.fullUrl", focus), R"(["urn:uuid:pat"])");
}

TEST_F(FhirpathEnvironment, MemberOfAsksTheHookAndIsEmptyWithoutOne) {
  Item focus = resourceNode(patient_);
  EXPECT_EQ(eval("maritalStatus.memberOf('http://hl7.org/fhir/ValueSet/marital-status')", focus),
            "[]");
  std::string seen_url;
  context_.member_of = [&](std::string_view url, const Item& coded) -> std::optional<bool> {
    seen_url = std::string(url);
    if (coded.typeName() != "CodeableConcept") return std::nullopt;
    return url == "http://hl7.org/fhir/ValueSet/marital-status";
  };
  EXPECT_EQ(eval("maritalStatus.memberOf('http://hl7.org/fhir/ValueSet/marital-status')", focus),
            "[true]");
  EXPECT_EQ(seen_url, "http://hl7.org/fhir/ValueSet/marital-status");
  EXPECT_EQ(eval("maritalStatus.memberOf('http://example.org/other')", focus), "[false]");
}

}  // namespace
}  // namespace fhir::fhirpath

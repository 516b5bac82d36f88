// SPDX-License-Identifier: Apache-2.0
// Base structure checks of the validator: JSON form, unknown elements, cardinality, types and
// choice types, primitive formats in place, contained resources and Bundle entries.

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/conformance/validator/validator_test_util.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

constexpr Severity kError = Severity::kError;

TEST(StructureTest, CoreExamplesAreValid) {
  for (const char* name : {"Patient-example.json", "Observation-example.json", "Claim-100150.json",
                           "QuestionnaireResponse-3141.json"}) {
    IssueList issues = validateJson(readFile(testDataDir() / "validator" / "examples" / name));
    EXPECT_NO_ERRORS(issues) << name;
  }
}

TEST(StructureTest, UnknownElementIsReportedOnItsParent) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","unknownElement":1,
      "name":[{"family":"x","nickname":"y"}]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.name[0]");
  EXPECT_EQ(issues.errorCount(), 2u) << describe(issues);
}

TEST(StructureTest, PrimitiveExtensionSiblings) {
  IssueList valid = validateJson(R"j({"resourceType":"Patient",
      "birthDate":"1970-03-30",
      "_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                   "valueDateTime":"1970-03-30T13:30:00+01:00"}]},
      "name":[{"given":["A",null,"C"],"_given":[null,{"id":"g2","extension":[{"url":
          "http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},null]}],
      "gender":"male","_gender":{"id":"x"}})j");
  EXPECT_NO_ERRORS(valid);

  IssueList invalid = validateJson(R"j({"resourceType":"Patient",
      "_birthDate":{"foo":1},
      "_name":{"id":"n"},
      "name":[{"given":["A",null]}]})j");
  EXPECT_ISSUE(invalid, kError, "structure", "Patient.birthDate");      // foo in _birthDate
  EXPECT_ISSUE(invalid, kError, "structure", "Patient");                // _name: not a primitive
  EXPECT_ISSUE(invalid, kError, "structure", "Patient.name[0].given[1]");  // null without _given

  // ele-1: a primitive with neither value nor extensions.
  IssueList id_only = validateJson(R"j({"resourceType":"Patient","name":[{"given":[null],
      "_given":[{"id":"x"}]}]})j");
  EXPECT_ISSUE(id_only, kError, "invariant", "Patient.name[0].given[0]");
}

TEST(StructureTest, ChoiceTypes) {
  IssueList valid = validateJson(R"j({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"},
      "effectiveDateTime":"2020-01-01"})j");
  EXPECT_NO_ERRORS(valid);

  IssueList invalid = validateJson(R"j({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"valueQuantity":{"value":"1.5"},"effectiveFoo":"2020"})j");
  EXPECT_ISSUE(invalid, kError, "structure", "Observation.value.ofType(Quantity).value");
  EXPECT_ISSUE(invalid, kError, "structure", "Observation");  // effectiveFoo unknown

  IssueList two = validateJson(R"j({"resourceType":"Observation","status":"final",
      "code":{"text":"x"},"valueString":"a","valueBoolean":true})j");
  EXPECT_ISSUE(two, kError, "structure", "Observation");  // value[x] max 1
}

TEST(StructureTest, ContentReferenceElements) {
  IssueList valid = validateJson(R"j({"resourceType":"Questionnaire","status":"draft",
      "item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string",
               "item":[{"linkId":"1.1.1","type":"display","text":"t"}]}]}]})j");
  EXPECT_NO_ERRORS(valid);

  IssueList invalid = validateJson(R"j({"resourceType":"Questionnaire","status":"draft",
      "item":[{"linkId":"1","type":"group","item":[{"type":"string","bogus":true}]}]})j");
  // bogus, and linkId (1..1) missing
  EXPECT_EQ(countIssues(invalid, kError, "structure", "Questionnaire.item[0].item[0]"), 2u)
      << describe(invalid);
  EXPECT_EQ(invalid.errorCount(), 2u) << describe(invalid);
}

TEST(StructureTest, Cardinality) {
  IssueList issues = validateJson(R"j({"resourceType":"Observation"})j");
  EXPECT_EQ(countIssues(issues, kError, "structure", "Observation"), 2u) << describe(issues);

  IssueList nested = validateJson(R"j({"resourceType":"Patient","link":[{"type":"seealso"}]})j");
  EXPECT_ISSUE(nested, kError, "structure", "Patient.link[0]");  // link.other 1..1
}

TEST(StructureTest, ArrayAndObjectShape) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","gender":["male"],
      "name":{"family":"x"}})j");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.gender");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.name");
}

TEST(StructureTest, NullsAndEmptyContent) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","active":null,
      "name":[],"contact":[{}],"identifier":[null]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.active");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.name");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.contact[0]");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.identifier[0]");
}

TEST(StructureTest, WrongJsonTypesForPrimitives) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","active":"true",
      "multipleBirthInteger":"2","name":[{"family":12}],"birthDate":19700101})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.active");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.multipleBirth.ofType(integer)");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.name[0].family");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.birthDate");
}

TEST(StructureTest, PrimitiveFormatsInPlace) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","id":"a_b",
      "meta":{"lastUpdated":"2020-01-01"},
      "birthDate":"1990-13-01","deceasedDateTime":"2020-01-01T10:00:00",
      "photo":[{"contentType":"image/png","data":"%%%2@()()","size":-1}],
      "identifier":[{"system":"http://a b"}]})j");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.id");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.meta.lastUpdated");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.birthDate");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.deceased.ofType(dateTime)");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.photo[0].data");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.photo[0].size");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.identifier[0].system");
  EXPECT_EQ(issues.errorCount(), 7u) << describe(issues);
}

TEST(StructureTest, ResourceTypeMustBeKnownConcreteResource) {
  IssueList untyped = validateJson(R"j({"id":"x"})j");
  ASSERT_EQ(untyped.errorCount(), 1u);
  EXPECT_TRUE(untyped.issues()[0].expression.empty());
  IssueList unknown = validateJson(R"j({"resourceType":"Patientx"})j");
  EXPECT_TRUE(unknown.hasErrors());
  EXPECT_TRUE(validateJson(R"j({"resourceType":"HumanName"})j").hasErrors());
  EXPECT_TRUE(validateJson(R"j({"resourceType":"DomainResource"})j").hasErrors());
}

TEST(StructureTest, ContainedResourcesAreValidatedAsTheirType) {
  IssueList issues = validateJson(R"j({"resourceType":"Condition","subject":{"reference":"#p"},
      "contained":[{"resourceType":"Patient","id":"p","gender":1}]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Condition.contained[0].gender");
}

TEST(StructureTest, BundleEntriesRecursively) {
  IssueList issues = validateJson(R"j({"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"http://example.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1"}},
      {"fullUrl":"http://example.org/fhir/Questionnaire/q","resource":{"resourceType":"Questionnaire",
       "id":"q","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"2"}]}]}},
      {"fullUrl":"http://example.org/fhir/Patient/3","resource":{"resourceType":"Patient","id":"4"}},
      {"fullUrl":"Patient/5","resource":{"resourceType":"Patient","id":"5"}}]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Bundle.entry[1].resource.item[0].item[0]");
  EXPECT_ISSUE(issues, kError, "invalid", "Bundle.entry[2]");  // id 4 vs fullUrl .../Patient/3
  EXPECT_ISSUE(issues, kError, "invalid", "Bundle.entry[3]");  // relative fullUrl
  EXPECT_EQ(issues.errorCount(), 3u) << describe(issues);
}

// %resource inside a nested Bundle is the nested Bundle (FHIRPath/R4 variables): bdl-4 on the
// searchset Bundles of the core example batch-response no longer judges them by the outer type.
TEST(StructureTest, NestedBundleIsItsOwnResource) {
  std::string example = readFile(testDataDir() / "validator" / "examples" / "Bundle-bundle-response-simplesummary.json");
  EXPECT_NO_ERRORS(validateJson(example));
  auto doc = json::parse(example);
  ASSERT_TRUE(doc.ok());
  json::Document& bundle = *doc;
  // Broken copy: an entry of the nested searchset carries a response.
  json::Value& nested_entry = bundle["entry"][1]["resource"]["entry"][0];
  json::Value response(rapidjson::kObjectType);
  response.AddMember("status", "200", bundle.GetAllocator());
  nested_entry.AddMember("response", response, bundle.GetAllocator());
  IssueList issues = validateJson(json::serialize(bundle));
  EXPECT_EQ(countIssues(issues, kError, "invariant", "Bundle.entry[1].resource"), 1u) << describe(issues);
  EXPECT_NE(describe(issues).find("bdl-4"), std::string::npos) << describe(issues);
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

TEST(StructureTest, BundleReferencesResolveLocally) {
  const char* kDocument = R"j({"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986",
      "value":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},"timestamp":"2020-01-01T00:00:00Z","entry":[
      {"fullUrl":"urn:uuid:1c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Composition",
       "status":"final","type":{"text":"note"},"date":"2020-01-01","title":"t",
       "author":[{"reference":"%s"}],"subject":{"reference":"Patient/p1"}}},
      {"fullUrl":"http://example.org/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"}}]})j";
  char resolved[1024], dangling[1024];
  std::snprintf(resolved, sizeof(resolved), kDocument, "Patient/p1");
  std::snprintf(dangling, sizeof(dangling), kDocument, "urn:uuid:2c3151bd-1cbf-4d64-b04d-cd9187a4c6e0");
  EXPECT_NO_ERRORS(validateJson(resolved));
  IssueList issues = validateJson(dangling);
  EXPECT_ISSUE(issues, kError, "invalid", "Bundle.entry[0].resource.author[0]");
}

TEST(StructureTest, SyntaxErrorsAreFatal) {
  IssueList issues = validateJson("{\"resourceType\":\"Patient\",\n \"active\": tru}");
  ASSERT_EQ(issues.issues().size(), 1u);
  EXPECT_EQ(issues.issues()[0].severity, Severity::kFatal);
  EXPECT_EQ(issues.issues()[0].location.front().rfind("line 2, column ", 0), 0u);
  IssueList duplicate = validateJson(R"j({"resourceType":"Patient","active":true,"active":false})j");
  EXPECT_EQ(duplicate.issues()[0].severity, Severity::kFatal);
}

}  // namespace
}  // namespace fhir::testing

namespace fhir::testing {
namespace {

// Validator options of the HL7 validator: security checks on strings, no HTML in markdown,
// skipping contained resources and no example URLs. Each off by default (the shared validator) and on here.
TEST(OptionsTest, SecurityChecksNoHtmlInMarkdownAndIgnoredContained) {
  ValidatorOptions options;
  options.security_checks = true;
  options.no_html_in_markdown = true;
  options.validate_contained = false;
  options.allow_example_urls = false;
  auto created = createValidator(options);
  ASSERT_TRUE(created.ok()) << created.message();
  auto check = [&](std::string_view text) {
    IssueList issues;
    (*created)->validateText(text, {}, issues);
    return issues;
  };

  const char* kScript = R"j({"resourceType":"Patient","name":[{"text":"Standard <script>x</script>"}]})j";
  EXPECT_NO_ERRORS(validateJson(kScript));
  IssueList issues = check(kScript);
  EXPECT_ISSUE(issues, Severity::kError, "security", "Patient.name[0].text");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  EXPECT_NO_ERRORS(check(R"j({"resourceType":"Patient","name":[{"text":"a < b and c > d"}]})j"));

  const char* kMarkdown = R"j({"resourceType":"Communication","status":"completed",
      "note":[{"text":"%s"}]})j";
  char html[256], escaped[256];
  std::snprintf(html, sizeof(html), kMarkdown, "see <resource type>");
  std::snprintf(escaped, sizeof(escaped), kMarkdown, "see \\\\<resource type> and <http://example.org/x>");
  EXPECT_NO_ERRORS(validateJson(html));
  issues = check(html);
  EXPECT_ISSUE(issues, Severity::kError, "invalid", "Communication.note[0].text");
  EXPECT_NO_ERRORS(check(escaped));

  // A contained resource with a 65-character id: an error when contained resources are validated.
  std::string contained = R"j({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":")j" +
                          std::string(65, 'a') +
                          R"j("}],"managingOrganization":{"reference":"#)j" + std::string(65, 'a') + R"j("}})j";
  EXPECT_TRUE(validateJson(contained).hasErrors());
  EXPECT_NO_ERRORS(check(contained));
  std::string unreferenced = R"j({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}]})j";
  EXPECT_TRUE(validateJson(unreferenced).hasErrors());  // dom-3
  EXPECT_NO_ERRORS(check(unreferenced));

  // Example domains in URLs, when examples are not allowed.
  const char* kPhoto = R"j({"resourceType":"Patient","photo":[{"url":"%s"}]})j";
  char example[256], real[256];
  std::snprintf(example, sizeof(example), kPhoto, "http://repository.example.org/fhir/x");
  std::snprintf(real, sizeof(real), kPhoto, "http://hl7.org/fhir/example.org");
  EXPECT_NO_ERRORS(validateJson(example));
  issues = check(example);
  EXPECT_ISSUE(issues, Severity::kError, "invalid", "Patient.photo[0].url");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  EXPECT_NO_ERRORS(check(real));
}

}  // namespace
}  // namespace fhir::testing

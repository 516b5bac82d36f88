// SPDX-License-Identifier: Apache-2.0
// Checks beyond the base structure: bindings and terminology, invariants, extensions, profiles
// (meta.profile, requested, extra paths, differential-only), slicing, fixed/pattern values,
// references and QuestionnaireResponse against its Questionnaire.

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/conformance/validator/validator_test_util.h"

namespace fhir::testing {
namespace {

constexpr Severity kError = Severity::kError;
constexpr Severity kWarning = Severity::kWarning;

TEST(BindingTest, RequiredCodeBinding) {
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","gender":"female"})j"));
  IssueList issues = validateJson(R"j({"resourceType":"Patient","gender":"femme"})j");
  EXPECT_ISSUE(issues, kError, "code-invalid", "Patient.gender");
}

TEST(BindingTest, RequiredCodeableConceptBinding) {
  const char* kTemplate = R"j({"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},
      "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                    "code":"%s"}]}})j";
  char valid[512], invalid[512];
  std::snprintf(valid, sizeof(valid), kTemplate, "active");
  std::snprintf(invalid, sizeof(invalid), kTemplate, "dormant");
  EXPECT_NO_ERRORS(validateJson(valid));
  IssueList issues = validateJson(invalid);
  EXPECT_ISSUE(issues, kError, "code-invalid", "AllergyIntolerance.clinicalStatus");
  // The code is also unknown in its (local, complete) CodeSystem.
  EXPECT_ISSUE(issues, kError, "code-invalid", "AllergyIntolerance.clinicalStatus.coding[0].code");
}

TEST(BindingTest, ExtensibleIsAWarningAndExternalSystemsAreNotErrors) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","maritalStatus":{"coding":[
      {"system":"http://example.org/local-status","code":"x"}]}})j");
  EXPECT_NO_ERRORS(issues);
  EXPECT_ISSUE(issues, kWarning, "code-invalid", "Patient.maritalStatus");
  // LOINC is not available locally: a LOINC code in an example-bound element is not judged.
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Observation","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"99999-9"}]}})j"));
}

TEST(BindingTest, WrongDisplayForLocalCodeSystem) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","maritalStatus":{"coding":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Single"}]}})j");
  EXPECT_ISSUE(issues, kError, "invalid", "Patient.maritalStatus.coding[0].display");
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","maritalStatus":{"coding":[
      {"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"married"}]}})j"));
}

// memberOf() in invariants answers from the local expansions; a call it cannot decide (unknown
// value set) makes a failing constraint "not checked" (a warning), and a binding to a value set
// that is not available is a warning naming it, never silence.
TEST(TerminologyTest, MemberOfInInvariantsAndUnavailableValueSets) {
  ValidationRequest request;
  request.profiles.push_back("http://example.org/fhir/StructureDefinition/test-observation-terminology");
  const char* kTemplate = R"j({"resourceType":"Observation","status":"final",
      "category":[{"coding":[{"system":"%s","code":"%s"}]}],
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}%s})j";
  char valid[1024], broken[1024], method[1024];
  std::snprintf(valid, sizeof(valid), kTemplate,
                "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "");
  std::snprintf(broken, sizeof(broken), kTemplate,
                "http://terminology.hl7.org/CodeSystem/observation-category", "not-a-category", "");
  std::snprintf(method, sizeof(method), kTemplate,
                "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs",
                R"j(,"method":{"coding":[{"system":"http://example.org/methods","code":"m1"}]})j");
  IssueList issues = validateJson(valid, request);
  EXPECT_NO_ERRORS(issues);
  EXPECT_EQ(countIssues(issues, kWarning, "not-supported", "Observation"), 1u) << describe(issues);  // test-member-unknown
  IssueList failed = validateJson(broken, request);
  EXPECT_EQ(countIssues(failed, kError, "invariant", "Observation"), 1u) << describe(failed);  // test-member-local
  IssueList unbound = validateJson(method, request);
  EXPECT_NO_ERRORS(unbound);
  EXPECT_EQ(countIssues(unbound, kWarning, "not-supported", "Observation.method"), 1u) << describe(unbound);
}

TEST(InvariantTest, FhirPathConstraintWithSeverity) {
  IssueList issues = validateJson(R"j({"resourceType":"Patient","name":[{"family":"x",
      "period":{"start":"2020-01-02","end":"2019-01-01"}}]})j");
  EXPECT_ISSUE(issues, kError, "invariant", "Patient.name[0].period");  // per-1
  EXPECT_ISSUE(issues, kWarning, "invariant", "Patient");               // dom-6: no narrative
}

TEST(InvariantTest, NativeDom3AndRef1) {
  IssueList orphan = validateJson(R"j({"resourceType":"Condition","subject":{"reference":"Patient/1"},
      "contained":[{"resourceType":"Practitioner","id":"p1"}]})j");
  EXPECT_ISSUE(orphan, kError, "invariant", "Condition");  // dom-3
  IssueList dangling = validateJson(R"j({"resourceType":"Condition","subject":{"reference":"#nope"}})j");
  EXPECT_ISSUE(dangling, kError, "invariant", "Condition.subject");  // ref-1
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Condition","subject":{"reference":"#p1"},
      "contained":[{"resourceType":"Patient","id":"p1"}]})j"));
}

TEST(InvariantTest, Tim9EvaluatedLikeTheReferenceValidator) {
  const char* kValid = R"j({"resourceType":"MedicationRequest","status":"active","intent":"order",
      "medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},
      "dosageInstruction":[{"timing":{"repeat":{"when":["MORN","EVE"],"offset":30}}}]})j";
  EXPECT_NO_ERRORS(validateJson(kValid));
  IssueList issues = validateJson(R"j({"resourceType":"MedicationRequest","status":"active","intent":"order",
      "medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},
      "dosageInstruction":[{"timing":{"repeat":{"when":["C","CM"],"offset":30}}}]})j");
  EXPECT_ISSUE(issues, kError, "invariant", "MedicationRequest.dosageInstruction[0].timing.repeat");
}

TEST(ExtensionTest, ResolvedByUrlAndValueTypeChecked) {
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
      "valueAddress":{"city":"Paris"}}]})j"));
  IssueList unknown = validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://example.org/fhir/StructureDefinition/unknown","valueString":"x"}]})j");
  EXPECT_ISSUE(unknown, kError, "structure", "Patient.extension[0]");
  IssueList wrong_type = validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueString":"Paris"}]})j");
  // valueString is not allowed, and value[x] (1..1 in the definition) is then missing.
  EXPECT_EQ(countIssues(wrong_type, kError, "structure", "Patient.extension[0]"), 2u)
      << describe(wrong_type);
  IssueList both = validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
      "valueAddress":{"city":"Paris"},"extension":[{"url":"x","valueString":"y"}]}]})j");
  EXPECT_ISSUE(both, kError, "invariant", "Patient.extension[0]");  // ext-1
}

TEST(ExtensionTest, ContextIsChecked) {
  // humanname-mothers-family may be used on HumanName.family only.
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","name":[{"family":"Smith",
      "_family":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/humanname-mothers-family",
                               "valueString":"Jones"}]}}]})j"));
  IssueList issues = validateJson(R"j({"resourceType":"Patient","name":[{"family":"Smith",
      "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/humanname-mothers-family",
                    "valueString":"Jones"}]}]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.name[0].extension[0]");
}

// R4 context type `extension`: test-child-extension may only be used inside
// test-parent-extension (fixtures in tests/data/validator/profiles).
TEST(ExtensionTest, ExtensionContextIsChecked) {
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://example.org/fhir/StructureDefinition/test-parent-extension","extension":[{
        "url":"http://example.org/fhir/StructureDefinition/test-child-extension","valueString":"x"}]}]})j"));
  IssueList issues = validateJson(R"j({"resourceType":"Patient","extension":[{
      "url":"http://example.org/fhir/StructureDefinition/test-child-extension","valueString":"x"}]})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.extension[0]");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

TEST(ProfileTest, MetaProfileKnownAndUnknown) {
  IssueList unknown = validateJson(R"j({"resourceType":"Patient",
      "meta":{"profile":["http://example.org/fhir/StructureDefinition/nowhere"]}})j");
  EXPECT_NO_ERRORS(unknown);
  EXPECT_ISSUE(unknown, kWarning, "structure", "Patient.meta.profile[0]");

  // Core vital signs profile: category slice VSCat, subject and effective[x] are required.
  IssueList vitals = validateJson(R"j({"resourceType":"Observation","status":"final",
      "meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
      "valueQuantity":{"value":60,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}})j");
  EXPECT_GE(countIssues(vitals, kError, "structure", "Observation"), 3u) << describe(vitals);
}

TEST(ProfileTest, SlicesMatchedByPatternAndCounted) {
  const char* kBloodPressure = R"j({"resourceType":"Observation","status":"final",
      "meta":{"profile":["http://hl7.org/fhir/StructureDefinition/bp"]},
      "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category",
                              "code":"vital-signs"}]}],
      "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
      "subject":{"reference":"Patient/1"},"effectiveDateTime":"2020-01-01T10:00:00Z",
      "component":[
        {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
         "valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}
        %s]})j";
  char complete[2048], missing[2048];
  std::snprintf(complete, sizeof(complete), kBloodPressure,
                R"j(,{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
         "valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}})j");
  std::snprintf(missing, sizeof(missing), kBloodPressure, "");
  EXPECT_NO_ERRORS(validateJson(complete));
  IssueList issues = validateJson(missing);
  // The DiastolicBP slice is missing, and component (2..*) has one item.
  EXPECT_EQ(countIssues(issues, kError, "structure", "Observation"), 2u) << describe(issues);
  EXPECT_EQ(issues.errorCount(), 2u) << describe(issues);
}

TEST(ProfileTest, DifferentialOnlyProfileFromExtraPathsAndFixedValue) {
  ValidationRequest request;
  request.profiles.push_back("http://example.org/fhir/StructureDefinition/test-patient");
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","gender":"male","birthDate":"1970",
      "identifier":[{"system":"http://example.org/mrn","value":"1"}]})j", request));
  IssueList issues = validateJson(R"j({"resourceType":"Patient","gender":"male",
      "identifier":[{"system":"http://example.org/other","value":"1"},{"value":"2"}]})j", request);
  EXPECT_ISSUE(issues, kError, "value", "Patient.identifier[0].system");  // fixedUri
  EXPECT_ISSUE(issues, kError, "structure", "Patient.identifier[1]");     // system 1..1
  // birthDate 1..1 and identifier 0..1
  EXPECT_EQ(countIssues(issues, kError, "structure", "Patient"), 2u) << describe(issues);
  EXPECT_EQ(issues.errorCount(), 4u) << describe(issues);

  ValidationRequest unknown;
  unknown.profiles.push_back("http://example.org/fhir/StructureDefinition/nowhere");
  EXPECT_TRUE(validateJson(R"j({"resourceType":"Patient"})j", unknown).hasErrors());
}

// The regex extension (http://hl7.org/fhir/StructureDefinition/regex) on a profile element and on
// an element's type: a whole-value match of the primitive value; a pattern RE2 cannot take is a
// "not checked" warning.
TEST(ProfileTest, RegexExtensionOnElementAndType) {
  ValidationRequest request;
  request.profiles.push_back("http://example.org/fhir/StructureDefinition/test-regex-patient");
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient","identifier":[{"value":"AB1234"}],
      "name":[{"family":"aaab"}]})j", request));
  IssueList issues = validateJson(R"j({"resourceType":"Patient","identifier":[{"value":"AB12345"}],
      "name":[{"family":"aaac"}]})j", request);
  EXPECT_ISSUE(issues, kError, "invariant", "Patient.identifier[0].value");  // element regex
  EXPECT_ISSUE(issues, kError, "invariant", "Patient.name[0].family");       // type regex
  EXPECT_EQ(issues.errorCount(), 2u) << describe(issues);

  // XML Schema class subtraction has no RE2 form: not checked, a warning, never an error.
  issues = validateJson(R"j({"resourceType":"Patient","name":[{"given":["bcd"]}]})j", request);
  EXPECT_NO_ERRORS(issues);
  EXPECT_ISSUE(issues, kWarning, "not-supported", "Patient.name[0].given[0]");

  // (a+)+b over a long run of a's is exponential for a backtracking engine; RE2 is linear, so
  // this returns at once (the result is what is asserted).
  std::string family(100000, 'a');
  issues = validateJson(R"j({"resourceType":"Patient","name":[{"family":")j" + family + R"j(c"}]})j",
                        request);
  EXPECT_ISSUE(issues, kError, "invariant", "Patient.name[0].family");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// A canonical (QuestionnaireResponse.questionnaire: canonical(Questionnaire)) that resolves to a
// known resource of another type is an error; one that does not resolve is not judged here.
TEST(ReferenceTest, CanonicalOfTheWrongResourceType) {
  IssueList issues = validateJson(R"j({"resourceType":"QuestionnaireResponse","status":"completed",
      "questionnaire":"http://hl7.org/fhir/ValueSet/example-extensional"})j");
  EXPECT_ISSUE(issues, kError, "structure", "QuestionnaireResponse.questionnaire");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"QuestionnaireResponse","status":"completed",
      "questionnaire":"http://example.org/Questionnaire/unknown"})j"));
}

// A StructureDefinition deriving from a profile cannot change a value the profile fixes.
TEST(ProfileTest, DerivedDefinitionCannotChangeAFixedValue) {
  const char* kTemplate = R"j({"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/derived",
      "name":"Derived","status":"draft","kind":"resource","abstract":false,"type":"Patient",
      "baseDefinition":"http://example.org/fhir/StructureDefinition/test-patient","derivation":"constraint",
      "differential":{"element":[{"id":"Patient","path":"Patient"},
        {"id":"Patient.identifier.system","path":"Patient.identifier.system","fixedUri":"%s"}]}})j";
  char same[1024], changed[1024];
  std::snprintf(same, sizeof(same), kTemplate, "http://example.org/mrn");
  std::snprintf(changed, sizeof(changed), kTemplate, "http://example.org/other");
  EXPECT_NO_ERRORS(validateJson(same));
  IssueList issues = validateJson(changed);
  EXPECT_ISSUE(issues, kError, "value", "StructureDefinition.differential.element[1].fixedUri");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// A differential path must name an element of the base (or a typed name of a choice element).
TEST(ProfileTest, DifferentialPathMustExistInTheBase) {
  const char* kTemplate = R"j({"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/paths",
      "name":"Paths","status":"draft","kind":"resource","abstract":false,"type":"Observation",
      "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Observation","derivation":"constraint",
      "differential":{"element":[{"id":"Observation","path":"Observation"},
        {"id":"Observation.%s","path":"Observation.%s","min":1}]}})j";
  char typed[1024], code[1024], wrong[1024];
  std::snprintf(typed, sizeof(typed), kTemplate, "valueQuantity", "valueQuantity");
  std::snprintf(code, sizeof(code), kTemplate, "code.coding", "code.coding");
  std::snprintf(wrong, sizeof(wrong), kTemplate, "valueBla", "valueBla");
  EXPECT_NO_ERRORS(validateJson(typed));
  EXPECT_NO_ERRORS(validateJson(code));
  IssueList issues = validateJson(wrong);
  EXPECT_ISSUE(issues, kError, "structure", "StructureDefinition.differential.element[1].path");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// A plain discriminator path must name a child of the sliced element.
TEST(ProfileTest, DiscriminatorPathMustNameAChild) {
  const char* kTemplate = R"j({"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/disc",
      "name":"Disc","status":"draft","kind":"resource","abstract":false,"type":"Patient",
      "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
      "differential":{"element":[{"id":"Patient","path":"Patient"},
        {"id":"Patient.identifier","path":"Patient.identifier",
         "slicing":{"discriminator":[{"type":"value","path":"%s"}],"rules":"open"}}]}})j";
  char good[1024], bad[1024];
  std::snprintf(good, sizeof(good), kTemplate, "system");
  std::snprintf(bad, sizeof(bad), kTemplate, "url");
  EXPECT_NO_ERRORS(validateJson(good));
  IssueList issues = validateJson(bad);
  EXPECT_ISSUE(issues, kError, "structure", "StructureDefinition.differential.element[1].slicing.discriminator[0]");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// que-12 as corrected after R4 (`enableWhen.count() > 1`, published as `> 2`): two enableWhen
// need an enableBehavior.
TEST(InvariantTest, Que12CorrectedErratum) {
  const char* kTemplate = R"j({"resourceType":"Questionnaire","status":"draft","item":[
      {"linkId":"a","type":"boolean"},{"linkId":"b","type":"boolean"},
      {"linkId":"c","type":"string"%s,"enableWhen":[
        {"question":"a","operator":"=","answerBoolean":true},
        {"question":"b","operator":"=","answerBoolean":true}]}]})j";
  char with[1024], without[1024];
  std::snprintf(with, sizeof(with), kTemplate, R"j(,"enableBehavior":"all")j");
  std::snprintf(without, sizeof(without), kTemplate, "");
  EXPECT_NO_ERRORS(validateJson(with));
  IssueList issues = validateJson(without);
  EXPECT_ISSUE(issues, kError, "invariant", "Questionnaire.item[2]");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

TEST(ReferenceTest, TargetTypeFromTargetProfile) {
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"Patient",
      "managingOrganization":{"reference":"Organization/1"}})j"));
  IssueList issues = validateJson(R"j({"resourceType":"Patient",
      "managingOrganization":{"reference":"Practitioner/1"}})j");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.managingOrganization");
}

TEST(QuestionnaireResponseTest, AgainstItsQuestionnaire) {
  EXPECT_NO_ERRORS(validateJson(R"j({"resourceType":"QuestionnaireResponse","status":"completed",
      "questionnaire":"http://example.org/fhir/Questionnaire/test-intake",
      "item":[{"linkId":"name","answer":[{"valueString":"Ann"}]},
              {"linkId":"age","answer":[{"valueInteger":40}]},
              {"linkId":"colour","answer":[{"valueCoding":{"system":"http://example.org/colours","code":"red"}}]}]})j"));
  IssueList issues = validateJson(R"j({"resourceType":"QuestionnaireResponse","status":"completed",
      "questionnaire":"http://example.org/fhir/Questionnaire/test-intake",
      "item":[{"linkId":"age","answer":[{"valueInteger":140},{"valueInteger":3}]},
              {"linkId":"colour","answer":[{"valueCoding":{"system":"http://example.org/colours","code":"green"}}]},
              {"linkId":"info","answer":[{"valueString":"x"}]},
              {"linkId":"nope"}]})j");
  EXPECT_ISSUE(issues, kError, "required", "QuestionnaireResponse");  // name is required
  EXPECT_ISSUE(issues, kError, "not-found", "QuestionnaireResponse");  // linkId nope
  EXPECT_ISSUE(issues, kError, "invariant", "QuestionnaireResponse.item[0].answer[0].value.ofType(integer)");
  EXPECT_ISSUE(issues, kError, "structure", "QuestionnaireResponse.item[0]");  // not repeating
  EXPECT_ISSUE(issues, kError, "invariant", "QuestionnaireResponse.item[1].answer[0]");
  EXPECT_ISSUE(issues, kError, "structure", "QuestionnaireResponse.item[2]");  // display answered
}

}  // namespace
}  // namespace fhir::testing

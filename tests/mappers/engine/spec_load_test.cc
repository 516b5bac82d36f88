// SPDX-License-Identifier: Apache-2.0
// Specs are checked when loaded: an unknown path or transform is an error naming the spec line.
#include "mappers/engine/engine.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "conformance/common/ids.h"

#include "tests/mappers/engine/spec_load_error.h"

namespace fhir::mappers::engine {
namespace {

// A valid one-resource CSV spec; `rule` is spliced in as the Patient's last rule (line 9).
std::string specWith(const std::string& rule) {
  return "// test spec\n"
         "{\n"
         "  \"id\": \"t\", \"reader\": \"csv\", \"columns\": [\"member_id\", \"dob\"],\n"
         "  \"recordId\": {\"from\": \"member_id\"},\n"
         "  \"resources\": [\n"
         "    {\"key\": \"patient\", \"type\": \"Patient\", \"id\": [\"Patient\", {\"from\": \"member_id\"}],\n"
         "     \"set\": [\n"
         "      {\"path\": \"identifier[0].value\", \"from\": \"member_id\"},\n"
         "      " + rule + "\n"
         "    ]}\n"
         "  ]\n"
         "}\n";
}

TEST(SpecLoad, AValidSpecLoads) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthDate\", \"from\": \"dob\", \"transforms\": [\"date-yyyymmdd\"]}")), "loaded");
}

TEST(SpecLoad, UnknownSourcePath) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthDate\", \"from\": \"date_of_birth\"}")),
            "t.json:9: unknown source path 'date_of_birth'");
}

TEST(SpecLoad, UnknownTransform) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthDate\", \"from\": \"dob\", \"transforms\": [\"date-ddmmyyyy\"]}")),
            "t.json:9: unknown transform 'date-ddmmyyyy'");
  EXPECT_EQ(loadError(specWith("{\"path\": \"gender\", \"from\": \"dob\", \"transforms\": [{\"translate\": \"no-such-map\"}]}")),
            "t.json:9: unknown ConceptMap 'no-such-map' (fhir_profiles/alignment/package)");
}

TEST(SpecLoad, CareManagementAdditionsAreCheckedToo) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"gender\", \"from\": \"dob\", \"transforms\": [{\"memberOf\": \"no-such-set\"}]}")),
            "t.json:9: unknown ValueSet 'no-such-set' (fhir_profiles/alignment/package)");
  EXPECT_EQ(loadError(specWith("{\"path\": \"gender\", \"from\": \"dob\", \"transforms\": [{\"ordinal\": \"hrsn-screening-answers\"}]}")),
            "loaded");
  EXPECT_EQ(loadError(specWith("{\"path\": \"link[]\", \"references\": \"patient\"}")),
            "t.json:9: \"references\" names 'patient', not a forEach resource declared earlier");
  EXPECT_EQ(loadError(specWith("{\"path\": \"active\", \"value\": true, \"when\": {\"from\": \"dob\", \"mapsTo\": "
                               "{\"map\": \"payer-sex\", \"dependsOn\": \"member_id\", \"in\": [\"x\"]}}}")),
            "t.json:9: unknown ConceptMap with dependsOn 'payer-sex' (fhir_profiles/alignment/package)");
  EXPECT_EQ(loadError(specWith("{\"path\": \"active\", \"value\": true, \"when\": {\"sum\": \"dob\", \"of\": {\"from\": \"dob\"}}}")),
            "t.json:9: a sum condition needs \"of\" (a value) and a number \"atLeast\"");
  EXPECT_EQ(loadError(specWith("{\"path\": \"managingOrganization\", \"coverage\": {\"patient\": \"nobody\", \"on\": \"dob\", \"take\": \"coverage\"}}")),
            "t.json:9: coverage needs \"patient\": the key of a Patient resource declared earlier");
  EXPECT_EQ(loadError(specWith("{\"path\": \"active\", \"value\": true, \"when\": {\"from\": \"dob\", \"inValueSet\": \"nope\"}}")),
            "t.json:9: unknown ValueSet 'nope' (fhir_profiles/alignment/package)");
}

TEST(SpecLoad, UnknownTargetElement) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthdate\", \"from\": \"dob\"}")),
            "t.json:9: target path 'birthdate' on Patient: unknown element 'birthdate' (no Patient.birthdate in R4)");
  EXPECT_EQ(loadError(specWith("{\"path\": \"name[0].famly\", \"from\": \"dob\"}")),
            "t.json:9: target path 'name[0].famly' on Patient: unknown element 'name.famly' (no HumanName.famly in R4)");
}

TEST(SpecLoad, RepeatingElementsNeedAnIndexAndSingleOnesMustNotHaveOne) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"name.family\", \"from\": \"dob\"}")),
            "t.json:9: target path 'name.family' on Patient: 'name' repeats: write name[0] or name[]");
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthDate[0]\", \"from\": \"dob\"}")),
            "t.json:9: target path 'birthDate[0]' on Patient: 'birthDate' does not repeat: write it without [index]");
}

TEST(SpecLoad, ChoiceElementsAndReferences) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"deceasedBoolean\", \"value\": false}")), "loaded");
  EXPECT_EQ(loadError(specWith("{\"path\": \"deceasedQuantity\", \"value\": false}")),
            "t.json:9: target path 'deceasedQuantity' on Patient: unknown element 'deceasedQuantity' (no Patient.deceasedQuantity in R4)");
  EXPECT_EQ(loadError(specWith("{\"path\": \"managingOrganization\", \"reference\": \"payer\"}")),
            "t.json:9: reference to unknown resource key 'payer' (declare it earlier)");
}

TEST(SpecLoad, SyntaxErrorsNameLineAndColumn) {
  std::string message = loadError(specWith("{\"path\": \"birthDate\" \"from\": \"dob\"}"));
  EXPECT_EQ(message.rfind("t.json:line 9, column 28: ", 0), 0u) << message;
}

// A member given twice was silently one of the two (found by spec_loader_fuzz: a rule with two
// "set" members; its document then serialized to JSON no parser here reads). Now an error naming
// the object's line.
TEST(SpecLoad, AMemberGivenTwiceIsAnErrorNamingTheLine) {
  EXPECT_EQ(loadError(specWith("{\"path\": \"birthDate\", \"from\": \"dob\", \"from\": \"member_id\"}")),
            "t.json:line 9: the object has the member \"from\" twice");
}

TEST(SpecLoad, TheBundledSpecsLoad) {
  auto library = SpecLibrary::load({});
  ASSERT_TRUE(library.ok()) << library.message();
  std::vector<std::string> ids = (*library)->ids();
  for (const char* id : {"lakeshore-medicaid", "northwind-commercial", "roster", "x12-837p"}) {
    EXPECT_TRUE((*library)->has(id)) << id;
  }
  EXPECT_FALSE((*library)->has("no-such-spec"));
}

}  // namespace
}  // namespace fhir::mappers::engine

namespace fhir::mappers::engine {
namespace {

// The engine runs HL7 v2 specs too: a Patient from PID of a REF^I12, the first PRD of type RT
// picked with "first", and a bad birth date reported at its segment and field.
TEST(Hl7v2Spec, MapsPidAndNamesSegmentAndField) {
  fhir::testing::TempDir dir;
  std::string path = (dir.path() / "v2.json").string();
  std::ofstream(path) << R"({
  "id": "v2-test", "reader": "hl7v2",
  "fields": ["MSH.*.3", "MSH.*.7", "MSH.*.10", "PID.*.3.*.*", "PID.*.5.*", "PID.*.7", "PID.*.8", "PRD.*.1", "PRD.*.2.*"],
  "recordId": {"from": "MSH.0.10"},
  "resources": [
    {"key": "patient", "type": "Patient", "id": ["Patient", {"from": "PID.0.3.3.1"}, {"from": "PID.0.3.0"}],
     "set": [
      {"path": "identifier[0].system", "from": "PID.0.3.3.1"},
      {"path": "identifier[0].value", "from": "PID.0.3.0", "required": true},
      {"path": "name[0].family", "from": "PID.0.5.0"},
      {"path": "name[0].given[0]", "from": "PID.0.5.1"},
      {"path": "birthDate", "from": "PID.0.7", "transforms": ["date-yyyymmdd"], "required": true},
      {"path": "deceasedDateTime", "from": "$.MSH.0.7", "transforms": ["hl7-datetime"]},
      {"path": "contact[0].name.family", "forEach": "PRD", "where": {"from": "1", "equals": "RT"}, "first": true,
       "from": "2.0"}
     ]}
  ]
})";
  auto library = SpecLibrary::loadFile(path, {});
  ASSERT_TRUE(library.ok()) << library.message();
  std::string message =
      "MSH|^~\\&|EPIC|NORTHSHORE|GATEWAY|ALIGN|20261002140311-0500||REF^I12^REF_I12|evt-1|P|2.5.1\r"
      "PRD|RP|Whitfield^Dana\r"
      "PRD|RT|Menon^Ravi\r"
      "PRD|RT|Second^Specialist\r"
      "PID|||NS-884213^^^NSH&urn:oid:2.16.840.1.113883.3.7418.1&ISO||Okafor^Adaeze^N||19610319|F\r"
      "MSH|^~\\&|EPIC|NORTHSHORE|GATEWAY|ALIGN|202610021403||REF^I12^REF_I12|evt-2|P|2.5.1\r"
      "PID|||NS-884214^^^NSH&urn:oid:2.16.840.1.113883.3.7418.1&ISO||Okafor^Emeka||20121341|M\r";
  std::istringstream stream(message);
  MapOptions options;
  options.payer_id = "lakeshore-medicaid";
  options.now = "2026-10-03T09:13:00-05:00";
  std::vector<std::string> patients, locations;
  auto summary = (*library)->mapSource(
      "v2-test", stream, options,
      [&](MappedBundle& mapped) { patients.push_back(json::serialize(mapped.bundle["entry"][0]["resource"])); },
      [&](Rejection& rejection) {
        for (const Issue& issue : rejection.issues.issues()) locations.push_back(issue.location[0]);
      });
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(patients.size(), 1u);
  std::string id = deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"});
  EXPECT_EQ(patients[0], "{\"resourceType\":\"Patient\",\"id\":\"" + id +
                             "\",\"identifier\":[{\"system\":\"urn:oid:2.16.840.1.113883.3.7418.1\",\"value\":\"NS-884213\"}],"
                             "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Adaeze\"]}],\"birthDate\":\"1961-03-19\","
                             "\"deceasedDateTime\":\"2026-10-02T14:03:11-05:00\","
                             "\"contact\":[{\"name\":{\"family\":\"Menon\"}}]}");
  // Message 2: a birth date in month 13, and a timestamp without its offset.
  EXPECT_EQ(locations, (std::vector<std::string>{"segment 2 (PID), field 7", "segment 1 (MSH), field 7"}));
}

}  // namespace
}  // namespace fhir::mappers::engine

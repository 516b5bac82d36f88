// SPDX-License-Identifier: Apache-2.0
// Slicing (issue 18, Build 6), one pair per check: a published R4 example (tests/data/validator/
// examples) that conforms, and a copy broken in exactly one way, asserting the issue's expression
// and severity. Profiles: tests/data/validator/profiles/StructureDefinition-test-*slicing*.json.

#include <string>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/conformance/validator/validator_test_util.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

constexpr Severity kError = Severity::kError;

json::Document example(const char* name) {
  auto doc = json::parse(readFile(testDataDir() / "validator" / "examples" / name));
  EXPECT_TRUE(doc.ok()) << name;
  return doc.ok() ? std::move(*doc) : json::Document();
}

IssueList validateAgainst(const json::Value& resource, const char* profile) {
  ValidationRequest request;
  request.profiles.emplace_back(std::string("http://example.org/fhir/StructureDefinition/") + profile);
  return validateJson(json::serialize(resource), request);
}

// A collection Bundle of the given examples.
json::Document bundleOf(std::initializer_list<const char*> names) {
  json::Document bundle;
  bundle.SetObject();
  auto& allocator = bundle.GetAllocator();
  json::addString(bundle, "resourceType", "Bundle", allocator);
  json::addString(bundle, "type", "collection", allocator);
  json::Value entries(rapidjson::kArrayType);
  for (const char* name : names) {
    json::Document resource = example(name);
    json::Value entry(rapidjson::kObjectType);
    std::string full_url = "http://example.org/fhir/" + std::string(json::getString(resource, "resourceType").value_or("")) +
                           "/" + std::string(json::getString(resource, "id").value_or(""));
    json::addString(entry, "fullUrl", full_url, allocator);
    json::Value copy;
    copy.CopyFrom(resource, allocator);
    json::addMember(entry, "resource", std::move(copy), allocator);
    entries.PushBack(std::move(entry), allocator);
  }
  json::addMember(bundle, "entry", std::move(entries), allocator);
  return bundle;
}

void addIdentifier(json::Document& patient, const char* system, const char* value) {
  auto& allocator = patient.GetAllocator();
  json::Value identifier(rapidjson::kObjectType);
  json::addString(identifier, "system", system, allocator);
  json::addString(identifier, "value", value, allocator);
  patient["identifier"].PushBack(std::move(identifier), allocator);
}

// Discriminator by value (identifier.system), slice minimum and maximum, closed slicing.
TEST(SlicingTest, ValueDiscriminatorMinimumMaximumAndClosedSlicing) {
  json::Document patient = example("Patient-example.json");
  EXPECT_NO_ERRORS(validateAgainst(patient, "test-slicing-patient"));
  addIdentifier(patient, "http://hl7.org/fhir/sid/us-ssn", "000-00-0000");  // the optional slice
  EXPECT_NO_ERRORS(validateAgainst(patient, "test-slicing-patient"));

  json::Document no_mrn = example("Patient-example.json");
  no_mrn["identifier"][0]["system"].SetString("http://hl7.org/fhir/sid/us-ssn");  // now the ssn slice
  IssueList issues = validateAgainst(no_mrn, "test-slicing-patient");
  EXPECT_ISSUE(issues, kError, "structure", "Patient");  // mrn 1..1: not found
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);

  json::Document two_mrns = example("Patient-example.json");
  addIdentifier(two_mrns, "urn:oid:1.2.36.146.595.217.0.1", "67890");
  issues = validateAgainst(two_mrns, "test-slicing-patient");
  EXPECT_ISSUE(issues, kError, "structure", "Patient");  // mrn max 1, found 2
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);

  json::Document other = example("Patient-example.json");
  addIdentifier(other, "http://example.org/other", "1");
  issues = validateAgainst(other, "test-slicing-patient");
  EXPECT_ISSUE(issues, kError, "structure", "Patient.identifier[1]");  // matches no slice, closed
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// Discriminator `exists` (contact.name): the slice `named` (1..*) needs a contact with a name.
TEST(SlicingTest, ExistsDiscriminator) {
  json::Document patient = example("Patient-example.json");
  EXPECT_NO_ERRORS(validateAgainst(patient, "test-slicing-patient"));
  patient["contact"][0].RemoveMember("name");
  IssueList issues = validateAgainst(patient, "test-slicing-patient");
  EXPECT_ISSUE(issues, kError, "structure", "Patient");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// Discriminator `type` (Bundle.entry.resource): one Patient entry required, at most one.
TEST(SlicingTest, TypeDiscriminator) {
  json::Document bundle = bundleOf({"Patient-example.json", "Observation-example.json"});
  EXPECT_NO_ERRORS(validateAgainst(bundle, "test-slicing-bundle"));
  IssueList issues = validateAgainst(bundleOf({"Observation-example.json"}), "test-slicing-bundle");
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");  // no Patient entry
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
  json::Document twice = bundleOf({"Patient-example.json", "Patient-example.json"});
  twice["entry"][1]["fullUrl"].SetString("http://example.org/fhir/Patient/example-2");
  twice["entry"][1]["resource"]["id"].SetString("example-2");
  issues = validateAgainst(twice, "test-slicing-bundle");
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");  // two Patient entries, max 1
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

// Discriminator `profile` (Bundle.entry.resource conforms to the core bodyweight profile): the
// published body weight Observation matches; with its LOINC 29463-7 coding removed it does not
// (bodyweight requires that coding), so the required slice is missing.
TEST(SlicingTest, ProfileDiscriminator) {
  EXPECT_NO_ERRORS(validateAgainst(bundleOf({"Observation-example.json"}), "test-profile-slicing-bundle"));
  json::Document broken = bundleOf({"Observation-example.json"});
  json::Value& codings = broken["entry"][0]["resource"]["code"]["coding"];
  codings.Erase(codings.Begin());  // 29463-7
  IssueList issues = validateAgainst(broken, "test-profile-slicing-bundle");
  EXPECT_ISSUE(issues, kError, "structure", "Bundle");
  EXPECT_EQ(issues.errorCount(), 1u) << describe(issues);
}

}  // namespace
}  // namespace fhir::testing

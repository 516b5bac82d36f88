// SPDX-License-Identifier: Apache-2.0
// `_summary` and `_elements` (gateway/server/resource_subset.h) over R4 core examples of
// tests/data/r4-examples. The expected members are worked out by hand from the R4 4.0.1
// StructureDefinitions (the `isSummary` and `min` of each element, as printed in the R4 spec's
// "Structure" tab: Σ marks a summary element, `1..` a mandatory one) and the examples' JSON:
//  * Patient: summary = id, meta, implicitRules, identifier, active, name, telecom, gender,
//    birthDate, deceased[x], address, managingOrganization, link; not text, contact.
//  * Claim: summary = status, type, use, patient, billablePeriod, created, insurer, provider,
//    priority, insurance (inside it: sequence, focal, coverage, not identifier); not
//    identifier, payee, careTeam, diagnosis, item. Mandatory: status, type, use, patient,
//    created, provider, priority, insurance.
//  * Observation: mandatory status and code.

#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/server/resource_subset.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

std::string example(const std::string& name) {
  std::ifstream in(std::string(GATEWAY_TEST_DATA_DIR) + "/r4-examples/" + name + ".json");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << name;
  return text.str();
}

std::set<std::string> members(const json::Value& object) {
  std::set<std::string> out;
  for (auto member = object.MemberBegin(); member != object.MemberEnd(); ++member) out.insert(member->name.GetString());
  return out;
}

bool subsetted(const json::Value& resource) {
  const json::Value* meta = json::find(resource, "meta");
  const json::Value* tags = meta != nullptr ? json::find(*meta, "tag") : nullptr;
  if (tags == nullptr || !tags->IsArray()) return false;
  for (const json::Value& tag : tags->GetArray()) {
    if (json::getString(tag, "system") == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" &&
        json::getString(tag, "code") == "SUBSETTED") {
      return true;
    }
  }
  return false;
}

json::Document shaped(const std::string& summary, std::vector<std::string> elements, const std::string& name) {
  subset::Shape shape;
  shape.summary = summary;
  shape.elements = std::move(elements);
  auto out = subset::apply(shape, example(name));
  EXPECT_TRUE(out.ok()) << out.message();
  auto doc = json::parse(out.ok() ? *out : "{}");
  EXPECT_TRUE(doc.ok());
  return std::move(*doc);
}

TEST(ResourceSubset, SummaryTrueKeepsTheSummaryElementsOfTheR4Definition) {
  json::Document patient = shaped("true", {}, "Patient-example");
  EXPECT_EQ(members(patient),
            (std::set<std::string>{"resourceType", "id", "meta", "identifier", "active", "name", "telecom", "gender",
                                   "birthDate", "_birthDate", "deceasedBoolean", "address", "managingOrganization"}));
  EXPECT_TRUE(subsetted(patient));
  // A data type's value is kept whole (HumanName.given of the first name).
  EXPECT_EQ(patient["name"][0]["given"][0].GetString(), std::string("Peter"));

  json::Document claim = shaped("true", {}, "Claim-100150");
  EXPECT_EQ(members(claim), (std::set<std::string>{"resourceType", "id", "meta", "status", "type", "use", "patient",
                                                   "created", "insurer", "provider", "priority", "insurance"}));
  // Inside the backbone element Claim.insurance: sequence, focal, coverage; identifier is not
  // a summary element.
  EXPECT_EQ(members(claim["insurance"][0]), (std::set<std::string>{"sequence", "focal", "coverage"}));
  EXPECT_TRUE(subsetted(claim));
}

TEST(ResourceSubset, SummaryTextKeepsTextIdMetaAndTheMandatoryElements) {
  json::Document claim = shaped("text", {}, "Claim-100150");
  EXPECT_EQ(members(claim), (std::set<std::string>{"resourceType", "id", "meta", "text", "status", "type", "use",
                                                   "patient", "created", "provider", "priority", "insurance"}));
  // A top-level element is kept whole (not the summary of it).
  EXPECT_EQ(members(claim["insurance"][0]), (std::set<std::string>{"sequence", "focal", "identifier", "coverage"}));
  EXPECT_TRUE(subsetted(claim));
}

TEST(ResourceSubset, SummaryDataDropsOnlyTheNarrativeAndFalseChangesNothing) {
  json::Document observation = shaped("data", {}, "Observation-example");
  EXPECT_EQ(members(observation), (std::set<std::string>{"resourceType", "id", "meta", "status", "category", "code",
                                                         "subject", "encounter", "effectiveDateTime", "valueQuantity"}));
  EXPECT_TRUE(subsetted(observation));

  subset::Shape whole;
  whole.summary = "false";
  EXPECT_FALSE(whole.subsets());
  auto same = subset::apply(whole, example("Observation-example"));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, example("Observation-example"));
}

TEST(ResourceSubset, ElementsKeepsTheListedOnesAndTheMandatoryOnes) {
  // `value` names the choice Observation.value[x] (valueQuantity here); status and code are
  // mandatory; `Observation.subject` is the element subject.
  json::Document observation = shaped("", {"value", "Observation.subject"}, "Observation-example");
  EXPECT_EQ(members(observation),
            (std::set<std::string>{"resourceType", "id", "meta", "status", "code", "subject", "valueQuantity"}));
  EXPECT_TRUE(subsetted(observation));
  // `birthDate` keeps its primitive extension `_birthDate` too.
  json::Document patient = shaped("", {"birthDate"}, "Patient-example");
  EXPECT_EQ(members(patient), (std::set<std::string>{"resourceType", "id", "meta", "birthDate", "_birthDate"}));
}

TEST(ResourceSubset, TakeReadsTheParametersAndRefusesWhatR4DoesNotDefine) {
  std::vector<std::pair<std::string, std::string>> parameters = {{"_summary", "text"}, {"_count", "5"}};
  subset::Shape shape;
  ASSERT_TRUE(subset::take(parameters, shape).ok());
  EXPECT_EQ(shape.summary, "text");
  EXPECT_EQ(parameters, (std::vector<std::pair<std::string, std::string>>{{"_count", "5"}}));

  parameters = {{"_elements", "name, birthDate"}};
  shape = {};
  ASSERT_TRUE(subset::take(parameters, shape).ok());
  EXPECT_EQ(shape.elements, (std::vector<std::string>{"name", "birthDate"}));
  EXPECT_TRUE(parameters.empty());

  for (const auto& bad : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"_summary", "count"}}, {{"_summary", "yes"}}, {{"_summary", "true"}, {"_summary", "data"}},
           {{"_summary", "true"}, {"_elements", "name"}}}) {
    auto copy = bad;
    shape = {};
    Status taken = subset::take(copy, shape);
    EXPECT_FALSE(taken.ok()) << bad[0].second;
    EXPECT_EQ(taken.message().rfind("invalid: ", 0), 0u) << taken.message();
  }
}

}  // namespace
}  // namespace fhir::gateway

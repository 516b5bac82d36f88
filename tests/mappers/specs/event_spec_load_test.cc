// SPDX-License-Identifier: Apache-2.0
// The event-spec additions of the engine (mappers/specs/README.md, "Event specs") are checked
// when a spec loads: a mistake is an error naming the spec file and line.
#include <gtest/gtest.h>


#include "mappers/engine/engine.h"
#include "tests/mappers/engine/spec_load_error.h"

namespace fhir::mappers::engine {
namespace {

// A valid JSON-events spec; `resource_member` is spliced into the Claim resource (line 8) and
// `rule` is its last rule (line 10).
std::string specWith(const std::string& resource_member, const std::string& rule) {
  return "// test spec\n"
         "{\n"
         "  \"id\": \"t\", \"reader\": \"json-events\", \"unknownMembers\": \"warn\",\n"
         "  \"fields\": [\"id\", \"date\", \"items.*.code\", \"items.*.npi\"],\n"
         "  \"recordId\": [{\"from\": \"id\"}],\n"
         "  \"resources\": [\n"
         "    {\"key\": \"patient\", \"type\": \"Patient\", \"id\": [\"Patient\", {\"from\": \"id\"}], \"set\": []},\n"
         "    {\"key\": \"claim\", \"type\": \"Claim\", \"forEach\": \"items\", " + resource_member + "\n"
         "     \"id\": [\"Claim\", {\"from\": \"$.id\"}, \"{position}\"], \"set\": [\n"
         "      " + rule + "\n"
         "    ]}\n"
         "  ]\n"
         "}\n";
}

TEST(EventSpecLoad, AValidEventSpecLoads) {
  EXPECT_EQ(loadError(specWith("\"update\": \"merge\",",
                               "{\"path\": \"provider\", \"referenceTo\": [\"Practitioner\", {\"from\": \"npi\", \"transforms\": [\"npi\"]}]}")),
            "loaded");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"insurer\", \"coverage\": {\"patient\": \"patient\", \"on\": \"$.date\", \"take\": \"insurer\"}}")),
            "loaded");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"pick\": {\"forEach\": \"$.items\", \"where\": {\"from\": \"code\", \"exists\": true}, \"value\": {\"from\": \"code\"}}}")),
            "loaded");
}

TEST(EventSpecLoad, UnknownSourcePathsInsidePerItemResourcesAndPicks) {
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"colour\"}")),
            "t.json:10: unknown source path 'colour' (inside items.*)");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"pick\": {\"forEach\": \"$.items\", \"value\": {\"from\": \"nope\"}}}")),
            "t.json:10: unknown source path 'nope' (inside items.*)");
}

TEST(EventSpecLoad, BadEventTransformsAndValues) {
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"code\", \"transforms\": [{\"type\": \"text\"}]}")),
            "t.json:10: unknown JSON type 'text' (string, object, array, integer, number, boolean)");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"code\", \"transforms\": [\"payer-phone\"]}")),
            "t.json:10: unknown transform 'payer-phone'");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"provider\", \"referenceTo\": [\"Doctor\", {\"from\": \"npi\"}]}")),
            "t.json:10: referenceTo: unknown resource type 'Doctor'");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"insurer\", \"coverage\": {\"patient\": \"nobody\", \"on\": \"$.date\", \"take\": \"insurer\"}}")),
            "t.json:10: coverage needs \"patient\": the key of a Patient resource declared earlier");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"insurer\", \"coverage\": {\"patient\": \"patient\", \"on\": \"$.date\", \"take\": \"payer\"}}")),
            "t.json:10: coverage \"take\" is \"coverage\" or \"insurer\"");
  // A resource made per item has no single instance to "reference": referenceTo names one.
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"related[0].claim\", \"reference\": \"claim\"}")),
            "t.json:10: 'claim' is made per item (forEach): name it with \"referenceTo\" (its id parts)");
}

// Conditions "not" and "translates" and a rule's "warning" (the care-team role kept as text).
TEST(EventSpecLoad, NotTranslatesAndWarnings) {
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"code\", \"warning\": \"is kept as text\", "
                                   "\"when\": {\"not\": {\"from\": \"code\", \"translates\": \"payer-sex\"}}}")),
            "loaded");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"code\", \"when\": {\"from\": \"code\", \"translates\": \"no-such-map\"}}")),
            "t.json:10: unknown ConceptMap 'no-such-map' (fhir_profiles/alignment/package)");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"when\": {\"not\": {\"from\": \"colour\", \"exists\": true}}, \"value\": \"x\"}")),
            "t.json:10: unknown source path 'colour' (inside items.*)");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"value\": \"active\", \"warning\": \"always\"}")),
            "t.json:10: \"warning\" is a message on a rule with a \"from\" value (no \"set\" or \"forEach\")");
  EXPECT_EQ(loadError(specWith("", "{\"path\": \"status\", \"from\": \"code\", \"warning\": 7}")),
            "t.json:10: \"warning\" is a message on a rule with a \"from\" value (no \"set\" or \"forEach\")");
}

TEST(EventSpecLoad, UnknownResourceType) {
  std::string text = specWith("", "{\"path\": \"status\", \"value\": \"active\"}");
  text.replace(text.find("\"type\": \"Claim\""), 15, "\"type\": \"Bill\"");
  EXPECT_EQ(loadError(text), "t.json:8: unknown resource type 'Bill'");
}

TEST(EventSpecLoad, BadResourceAndTopLevelMembers) {
  EXPECT_EQ(loadError(specWith("\"update\": \"replace\",", "{\"path\": \"status\", \"value\": \"active\"}")),
            "t.json:8: \"update\" can only be \"merge\"");
  std::string csv = specWith("", "{\"path\": \"status\", \"value\": \"active\"}");
  csv.replace(csv.find("\"json-events\""), 13, "\"ndjson\"");
  csv.replace(csv.find("\"warn\""), 6, "\"error\"");
  EXPECT_EQ(loadError(csv), "t.json:2: \"unknownMembers\" can only be \"warn\"");
  std::string agents = specWith("", "{\"path\": \"status\", \"value\": \"active\"}");
  agents.replace(agents.find("\"unknownMembers\""), 0,
                 "\"agent\": \"patient\", \"provenanceAgent\": [{\"path\": \"display\", \"from\": \"id\"}], ");
  EXPECT_EQ(loadError(agents), "t.json:2: \"agent\" and \"provenanceAgent\" exclude each other");
}

}  // namespace
}  // namespace fhir::mappers::engine

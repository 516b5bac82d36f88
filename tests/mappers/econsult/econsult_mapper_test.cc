// SPDX-License-Identifier: Apache-2.0
#include "mappers/econsult/econsult_mapper.h"

#include <gtest/gtest.h>

#include "mappers/common/ids.h"
#include "tests/support/test_support.h"

namespace fhir::mappers {
namespace {

class FakeDirectory final : public Directory {
 public:
  std::optional<PayerInfo> payer(std::string_view id) const override {
    if (id != "lakeshore-medicaid") return std::nullopt;
    return PayerInfo{"lakeshore-medicaid", "Lakeshore Medicaid MCO", "http://hl7.org/fhir/sid/us-npi", "1548271034"};
  }
  std::vector<CoverageFact> coverageOf(std::string_view) const override { return stored; }
  std::vector<CoverageFact> stored;
};

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

const json::Value* resourceOf(const json::Value& bundle, const std::string& type) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    if (str(entry["resource"], "resourceType") == type) return &entry["resource"];
  }
  return nullptr;
}

class EconsultMapperTest : public ::testing::Test {
 protected:
  bool map(const std::string& name, MappedEvent& out, IssueList& issues) {
    auto event = json::parse(testing::readFile(testing::testDataDir() / "econsult" / (name + ".json")));
    EXPECT_TRUE(event.ok());
    events_.push_back(std::move(*event));
    EconsultContext context{directory_, "http://gw/fhir", nullptr};
    return EconsultMapper().map(events_.back(), context, out, issues);
  }
  FakeDirectory directory_;
  std::vector<json::Document> events_;
};

TEST_F(EconsultMapperTest, RequestFollowsTheContractMappingTable) {
  MappedEvent out;
  IssueList issues;
  ASSERT_TRUE(map("request", out, issues)) << toOperationOutcomeJson(issues);
  EXPECT_TRUE(issues.empty());
  const json::Value& bundle = out.bundle;
  EXPECT_EQ(str(bundle, "type"), "collection");

  const json::Value* patient = resourceOf(bundle, "Patient");
  ASSERT_NE(patient, nullptr);
  // Ids derive from the keys the contract names.
  EXPECT_EQ(str(*patient, "id"), deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"}));
  EXPECT_EQ(str((*patient)["identifier"][0], "value"), "NS-884213");
  EXPECT_EQ(str((*patient)["name"][0], "family"), "Okafor");
  EXPECT_EQ(json::stringView((*patient)["name"][0]["given"][1]), "N");
  EXPECT_EQ(str(*patient, "birthDate"), "1961-03-19");
  EXPECT_EQ(str(*patient, "gender"), "female");

  const json::Value* coverage = resourceOf(bundle, "Coverage");
  ASSERT_NE(coverage, nullptr);
  EXPECT_EQ(str(*coverage, "id"), deriveId({"Coverage", "lakeshore-medicaid", "LMC00918273"}));
  EXPECT_EQ(str((*coverage)["period"], "start"), "2026-01-01");
  EXPECT_EQ(str((*coverage)["period"], "end"), "2026-12-31");
  EXPECT_EQ(str(*coverage, "subscriberId"), "LMC00918273");

  const json::Value* request = resourceOf(bundle, "ServiceRequest");
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(str(*request, "id"), deriveId({"ServiceRequest", "epic-prod-northshore", "EC-2026-000451"}));
  EXPECT_EQ(str(*request, "status"), "active");
  EXPECT_EQ(str(*request, "intent"), "order");
  EXPECT_EQ(str(*request, "priority"), "routine");
  EXPECT_EQ(str((*request)["requester"], "reference"), "Practitioner/" + deriveId({"Practitioner", "1467583922"}));
  EXPECT_EQ(str((*request)["performer"][0], "reference"), "Practitioner/" + deriveId({"Practitioner", "1881726354"}));
  EXPECT_EQ(str((*request)["reasonCode"][0]["coding"][0], "code"), "I48.91");

  const json::Value* task = resourceOf(bundle, "Task");
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(str(*task, "status"), "requested");
  EXPECT_EQ(resourceOf(bundle, "Claim"), nullptr);
  EXPECT_EQ(resourceOf(bundle, "Communication"), nullptr);
}

TEST_F(EconsultMapperTest, ResponseBillsTheSpecialistAgainstTheCoverageOfTheDay) {
  MappedEvent out;
  IssueList issues;
  ASSERT_TRUE(map("response", out, issues)) << toOperationOutcomeJson(issues);
  const json::Value* claim = resourceOf(out.bundle, "Claim");
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(str(*claim, "id"), deriveId({"Claim", "epic-prod-northshore", "evt-7f3a-0002", "0"}));
  EXPECT_EQ(str(*claim, "status"), "active");
  EXPECT_EQ(str(*claim, "use"), "claim");
  EXPECT_EQ(str((*claim)["type"]["coding"][0], "code"), "professional");
  EXPECT_EQ(str((*claim)["priority"]["coding"][0], "code"), "normal");
  EXPECT_EQ(str(*claim, "created"), "2026-10-03T09:15:00-05:00");
  EXPECT_EQ(str((*claim)["provider"], "reference"), "Practitioner/" + deriveId({"Practitioner", "1881726354"}));
  EXPECT_EQ(str((*claim)["insurance"][0]["coverage"], "reference"),
            "Coverage/" + deriveId({"Coverage", "lakeshore-medicaid", "LMC00918273"}));
  EXPECT_EQ(str((*claim)["item"][0]["productOrService"]["coding"][0], "code"), "99451");
  EXPECT_EQ(str((*claim)["item"][0], "servicedDate"), "2026-10-03");
  ASSERT_EQ(out.billing.size(), 1u);
  ASSERT_TRUE(out.billing[0].coverage.has_value());
  EXPECT_EQ(out.billing[0].coverage->payer_id, "lakeshore-medicaid");

  const json::Value* communication = resourceOf(out.bundle, "Communication");
  ASSERT_NE(communication, nullptr);
  EXPECT_EQ(str((*communication)["payload"][0], "contentString").rfind("Start metoprolol", 0), 0u);
  EXPECT_EQ(json::numberAsInt64((*communication)["extension"][0]["valueInteger"]), 15);
}

TEST_F(EconsultMapperTest, ClaimOutsideEveryCoveragePeriodHasNoRoute) {
  directory_.stored = {{deriveId({"Coverage", "lakeshore-medicaid", "OLD"}), "p", "lakeshore-medicaid", "OLD",
                        "medicaid", "2020-01-01", "2020-12-31"}};
  std::string text = testing::readFile(testing::testDataDir() / "econsult" / "response.json");
  text.replace(text.find("\"start\": \"2026-01-01\", \"end\": \"2026-12-31\""), 42,
               "\"start\": \"2026-01-01\", \"end\": \"2026-09-30\"");
  auto event = json::parse(text);
  ASSERT_TRUE(event.ok());
  MappedEvent out;
  IssueList issues;
  EconsultContext context{directory_, "http://gw/fhir", nullptr};
  ASSERT_TRUE(EconsultMapper().map(*event, context, out, issues)) << toOperationOutcomeJson(issues);
  ASSERT_EQ(out.billing.size(), 1u);
  EXPECT_FALSE(out.billing[0].coverage.has_value());
}

TEST_F(EconsultMapperTest, ProblemsCarryJsonPathLocations) {
  auto event = json::parse(R"({"eventId": 7, "source": "s", "eventType": "response", "occurredAt": "2026-10-03",
    "consultId": "c", "patient": {"mrn": "m", "mrnSystem": "urn:x", "coverage": [{"payerId": "zzz", "memberId": "1"}]},
    "specialist": {"npi": "1881726354"}, "answeredAt": "2026-10-03T09:10:00Z", "recommendation": "r",
    "minutesSpent": 4, "billing": [{"code": "ACM", "system": "http://www.ama-assn.org/go/cpt",
    "billedBy": "nurse", "npi": "1881726354", "dateOfService": "2026-02-30"}]})");
  ASSERT_TRUE(event.ok());
  MappedEvent out;
  IssueList issues;
  EconsultContext context{directory_, "http://gw/fhir", nullptr};
  EXPECT_FALSE(EconsultMapper().map(*event, context, out, issues));
  std::map<std::string, std::string> found;
  for (const Issue& issue : issues.issues()) {
    ASSERT_EQ(issue.location.size(), 1u);
    found[issue.location[0]] = issue.code;
    EXPECT_EQ(issue.severity, Severity::kError);
  }
  std::map<std::string, std::string> expected = {
      {"$.eventId", "structure"},
      {"$.occurredAt", "value"},
      {"$.patient.coverage[0].payerId", "not-found"},
      {"$.minutesSpent", "value"},
      {"$.billing[0].code", "code-invalid"},
      {"$.billing[0].billedBy", "code-invalid"},
      {"$.billing[0].dateOfService", "value"},
  };
  EXPECT_EQ(found, expected);
}

}  // namespace
}  // namespace fhir::mappers

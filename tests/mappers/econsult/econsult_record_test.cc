// SPDX-License-Identifier: Apache-2.0
// The e-consult mapping (contracts/econsult-event.md) through the engine and
// mappers/specs/econsult.json, as the ingest pipeline runs it: one posted event, JSON-path
// locations, the patient's stored coverage from the Directory.
#include <gtest/gtest.h>

#include "conformance/common/ids.h"
#include "mappers/engine/engine.h"
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

const engine::SpecLibrary& specs() {
  static const std::unique_ptr<engine::SpecLibrary> library = [] {
    auto loaded = engine::SpecLibrary::load({});
    EXPECT_TRUE(loaded.ok()) << loaded.message();
    return loaded.ok() ? std::move(*loaded) : nullptr;
  }();
  return *library;
}

class EconsultMapperTest : public ::testing::Test {
 protected:
  bool mapText(const std::string& text, engine::MappedBundle& out, IssueList& issues) {
    auto event = json::parse(text);
    EXPECT_TRUE(event.ok());
    events_.push_back(std::move(*event));
    engine::MapOptions options;
    options.directory = &directory_;
    options.base_url = "http://gw/fhir";
    auto mapped = specs().mapRecord("econsult", events_.back(), text, "request", options, out, issues);
    EXPECT_TRUE(mapped.ok());
    return mapped.ok() && *mapped;
  }
  bool map(const std::string& name, engine::MappedBundle& out, IssueList& issues) {
    return mapText(testing::readFile(testing::testDataDir() / "econsult" / (name + ".json")), out, issues);
  }
  FakeDirectory directory_;
  std::vector<json::Document> events_;
};

TEST_F(EconsultMapperTest, RequestFollowsTheContractMappingTable) {
  engine::MappedBundle out;
  IssueList issues;
  ASSERT_TRUE(map("request", out, issues)) << toOperationOutcomeJson(issues);
  EXPECT_TRUE(out.warnings.empty());
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
  const json::Value* provenance = resourceOf(bundle, "Provenance");
  ASSERT_NE(provenance, nullptr);
  EXPECT_EQ(str((*provenance)["agent"][0]["who"], "display"), "epic-prod-northshore");
}

TEST_F(EconsultMapperTest, ResponseBillsTheSpecialistAgainstTheCoverageOfTheDay) {
  engine::MappedBundle out;
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
  EXPECT_EQ(str((*claim)["insurer"], "reference"), "Organization/" + deriveId({"Organization", "payer", "lakeshore-medicaid"}));
  EXPECT_EQ(str((*claim)["item"][0]["productOrService"]["coding"][0], "code"), "99451");
  EXPECT_EQ(str((*claim)["item"][0], "servicedDate"), "2026-10-03");

  const json::Value* communication = resourceOf(out.bundle, "Communication");
  ASSERT_NE(communication, nullptr);
  EXPECT_EQ(str((*communication)["payload"][0], "contentString").rfind("Start metoprolol", 0), 0u);
  EXPECT_EQ(json::numberAsInt64((*communication)["extension"][0]["valueInteger"]), 15);
}

TEST_F(EconsultMapperTest, StoredCoverageOfTheDayIsChosenOverTheEventsOwn) {
  // The event's coverage ends before the date of service; a stored (roster) coverage covers it.
  directory_.stored = {{deriveId({"Coverage", "lakeshore-medicaid", "ROSTER"}), "p", "lakeshore-medicaid", "ROSTER",
                        "medicaid", "2026-10-01", "2026-10-31", "payer"}};
  std::string text = testing::readFile(testing::testDataDir() / "econsult" / "response.json");
  text.replace(text.find("\"start\": \"2026-01-01\", \"end\": \"2026-12-31\""), 42,
               "\"start\": \"2026-01-01\", \"end\": \"2026-09-30\"");
  engine::MappedBundle out;
  IssueList issues;
  ASSERT_TRUE(mapText(text, out, issues)) << toOperationOutcomeJson(issues);
  const json::Value* claim = resourceOf(out.bundle, "Claim");
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(str((*claim)["insurance"][0]["coverage"], "reference"),
            "Coverage/" + deriveId({"Coverage", "lakeshore-medicaid", "ROSTER"}));
}

TEST_F(EconsultMapperTest, ClaimWithoutAnyCoverageIsRejected) {
  std::string text = testing::readFile(testing::testDataDir() / "econsult" / "response.json");
  size_t start = text.find(",\n    \"coverage\"");
  size_t end = text.find("}]", start) + 2;
  text.erase(start, end - start);
  engine::MappedBundle out;
  IssueList issues;
  ASSERT_FALSE(mapText(text, out, issues));
  ASSERT_EQ(issues.issues().size(), 1u) << toOperationOutcomeJson(issues);
  EXPECT_EQ(issues.issues()[0].location[0], "$.billing[0].dateOfService");
  EXPECT_EQ(issues.issues()[0].code, "required");
}

TEST_F(EconsultMapperTest, ProblemsCarryJsonPathLocations) {
  const std::string text = R"({"eventId": 7, "source": "s", "eventType": "response", "occurredAt": "2026-10-03",
    "consultId": "c", "patient": {"mrn": "m", "mrnSystem": "urn:x", "coverage": [{"payerId": "zzz", "memberId": "1"}]},
    "specialist": {"npi": "1881726354"}, "answeredAt": "2026-10-03T09:10:00Z", "recommendation": "r",
    "minutesSpent": 4, "billing": [{"code": "ACM", "system": "http://www.ama-assn.org/go/cpt",
    "billedBy": "nurse", "npi": "1881726354", "dateOfService": "2026-02-30"}]})";
  engine::MappedBundle out;
  IssueList issues;
  EXPECT_FALSE(mapText(text, out, issues));
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

TEST_F(EconsultMapperTest, RequiredMembersDependOnTheEventType) {
  // A request needs requester, specialist and question; a closed event needs none of them.
  const std::string text = R"({"eventId": "e", "source": "s", "eventType": "request",
    "occurredAt": "2026-10-03T09:10:00-05:00", "consultId": "c", "patient": {"mrn": "m", "mrnSystem": "urn:x"}})";
  engine::MappedBundle out;
  IssueList issues;
  EXPECT_FALSE(mapText(text, out, issues));
  std::set<std::string> locations;
  for (const Issue& issue : issues.issues()) locations.insert(issue.location[0]);
  EXPECT_EQ(locations, (std::set<std::string>{"$.requester", "$.specialist", "$.question"}));
  std::string closed = text;
  closed.replace(closed.find("\"request\""), 9, "\"closed\"");
  IssueList none;
  EXPECT_TRUE(mapText(closed, out, none)) << toOperationOutcomeJson(none);
}

TEST_F(EconsultMapperTest, UnknownMembersAreWarnings) {
  std::string text = testing::readFile(testing::testDataDir() / "econsult" / "request.json");
  text.replace(text.find("\"urgency\""), 0, "\"colour\": \"blue\", ");
  text.replace(text.find("\"npi\": \"1467583922\""), 0, "\"pager\": 1, ");
  engine::MappedBundle out;
  IssueList issues;
  ASSERT_TRUE(mapText(text, out, issues)) << toOperationOutcomeJson(issues);
  std::set<std::string> locations;
  for (const Issue& issue : out.warnings.issues()) {
    EXPECT_EQ(issue.severity, Severity::kWarning);
    locations.insert(issue.location[0]);
  }
  EXPECT_EQ(locations, (std::set<std::string>{"$.colour", "$.requester.pager"}));
}

TEST_F(EconsultMapperTest, CancelledRevokesTheRequestWithTheReason) {
  const std::string text = R"({"eventId": "evt-9", "source": "epic-prod-northshore", "eventType": "cancelled",
    "occurredAt": "2026-10-05T08:00:00-05:00", "consultId": "EC-2026-000451",
    "patient": {"mrn": "NS-884213", "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.1"},
    "reason": "Patient chose an in-person visit"})";
  engine::MappedBundle out;
  IssueList issues;
  ASSERT_TRUE(mapText(text, out, issues)) << toOperationOutcomeJson(issues);
  EXPECT_EQ(str(*resourceOf(out.bundle, "ServiceRequest"), "status"), "revoked");
  const json::Value* task = resourceOf(out.bundle, "Task");
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(str(*task, "status"), "cancelled");
  EXPECT_EQ(str((*task)["statusReason"], "text"), "Patient chose an in-person visit");
  EXPECT_EQ(resourceOf(out.bundle, "Claim"), nullptr);
}

TEST_F(EconsultMapperTest, LaterEventsUpdateTheStoredServiceRequest) {
  engine::MappedBundle request;
  IssueList issues;
  ASSERT_TRUE(map("request", request, issues));
  const std::string stored = json::serialize(*resourceOf(request.bundle, "ServiceRequest"));
  const std::string text = testing::readFile(testing::testDataDir() / "econsult" / "closed.json");
  auto event = json::parse(text);
  ASSERT_TRUE(event.ok());
  engine::MapOptions options;
  options.directory = &directory_;
  options.stored_resource = [&](const std::string& type, const std::string&) -> std::optional<std::string> {
    if (type == "ServiceRequest") return stored;
    return std::nullopt;
  };
  engine::MappedBundle closed;
  ASSERT_TRUE(*specs().mapRecord("econsult", *event, text, "request", options, closed, issues));
  const json::Value* updated = resourceOf(closed.bundle, "ServiceRequest");
  ASSERT_NE(updated, nullptr);
  EXPECT_EQ(str(*updated, "status"), "completed");
  EXPECT_EQ(str((*updated)["note"][0], "text"), "Persistent AF on apixaban; add rate control or refer for ablation?");
  EXPECT_EQ(str(*updated, "authoredOn"), "2026-10-02T14:03:11-05:00");
}

}  // namespace
}  // namespace fhir::mappers

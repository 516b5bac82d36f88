// SPDX-License-Identifier: Apache-2.0
// Behavioral health integration (issue 19) through the real server, with real loopback receivers
// for two payers: a BHI care plan with a behavioral health care manager and a psychiatric
// consultant is 202 and its stored CareTeam carries both roles; without the care manager it is
// 422 naming invariant align-ct-3; an unknown role is 202 with a warning; BHI billing reaches the
// payer covering its date of service exactly once.
#include <fstream>
#include <set>

#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRole = "https://fhir.alignment-gateway.org/CodeSystem/care-team-role";
constexpr const char* kNucc = "http://nucc.org/provider-taxonomy";

// A care-plan event of plan BHI-4 for a patient covered by lakeshore-medicaid until 2026-06-30
// and by northwind-commercial from 2026-07-01 (dated coverage: routing by date of service).
std::string bhiPlan(const std::string& event_id, const std::vector<std::pair<std::string, std::string>>& team,
                    const std::string& billing = "") {
  std::string members;
  for (const auto& [npi, role] : team) {
    members += std::string(members.empty() ? "" : ",") + R"({"npi":")" + npi + R"(","role":")" + role + "\"}";
  }
  return R"({"eventId":")" + event_id + R"(","source":"epic-prod-northshore","eventType":"care-plan",)"
         R"("occurredAt":"2026-10-31T17:00:00-05:00","patient":{"mrn":"NS-884213","mrnSystem":"urn:oid:2.16.840.1.113883.3.7418.1",)"
         R"("family":"Okafor","given":["Adaeze"],"birthDate":"1961-03-19","sex":"female","coverage":[)"
         R"({"payerId":"lakeshore-medicaid","memberId":"LMC00918273","lineOfBusiness":"medicaid","start":"2026-01-01","end":"2026-06-30"},)"
         R"({"payerId":"northwind-commercial","memberId":"NW-5521","lineOfBusiness":"commercial","start":"2026-07-01"}]},)"
         R"("carePlan":{"planId":"BHI-4","status":"active","category":"behavioral-health-integration",)"
         R"("conditions":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"F32.1"}],"goals":["PHQ-9 below 10"],)"
         R"("careTeam":[)" + members + "]" + (billing.empty() ? "" : R"(,"billing":[)" + billing + "]") + "}}";
}

std::string billing(const std::string& code, const std::string& date) {
  return R"({"code":")" + code + R"(","system":"http://www.ama-assn.org/go/cpt","billedBy":"pcp","npi":"1467583922","dateOfService":")" +
         date + "\"}";
}

const std::vector<std::pair<std::string, std::string>> kCollaborativeTeam = {
    {"1467583922", "pcp"}, {"1526384916", "behavioral-health-care-manager"}, {"1728394051", "psychiatric-consultant"}};

std::string str(const json::Value& object, const char* key) { return std::string(json::getString(object, key).value_or("")); }

class BhiEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    config_path_ = (data_.path() / "config.json").string();
    std::ofstream config(config_path_);
    config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "endpoint": ")" << lakeshore_.url("/bundles") << R"(" },
    { "id": "northwind-commercial", "name": "Northwind Health Plan", "format": "northwind-commercial",
      "endpoint": ")" << northwind_.url("/bundles") << R"(" }
  ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 200 }
})";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
    ASSERT_NE(gateway_->port(), 0);
  }

  HttpResult ingest(const std::string& body) const {
    return gateway_->post("/ingest/care-management", body, "application/json");
  }

  static json::Document parse(const std::string& text) {
    auto doc = json::parse(text);
    EXPECT_TRUE(doc.ok()) << text;
    return doc.ok() ? std::move(*doc) : json::Document();
  }

  static const json::Value* entryOf(const json::Value& bundle, std::string_view type) {
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "resourceType") == type) return &entry["resource"];
    }
    return nullptr;
  }

  // The billing codes and dates of service a payer received, de-duplicated by Idempotency-Key.
  static std::vector<std::string> claimsAt(const LoopbackReceiver& payer) {
    std::vector<std::string> out;
    std::set<std::string> keys;
    for (const ReceivedRequest& request : payer.accepted()) {
      if (!keys.insert(request.header("idempotency-key")).second) continue;
      json::Document bundle = parse(request.body);
      const json::Value* claim = entryOf(bundle, "Claim");
      if (!claim) {
        ADD_FAILURE() << "a payer delivery without a Claim: " << request.body;
        continue;
      }
      out.push_back(std::string(json::stringView((*claim)["item"][0]["productOrService"]["coding"][0]["code"])) + "@" +
                    std::string(json::stringView((*claim)["item"][0]["servicedDate"])));
    }
    return out;
  }

  TempDir data_;
  LoopbackReceiver lakeshore_;
  LoopbackReceiver northwind_;
  std::string config_path_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(BhiEndToEnd, CollaborativeCareTeamIsAcceptedValidAndStoredWithBothRoles) {
  HttpResult posted = ingest(bhiPlan("bhi-e2e-1", kCollaborativeTeam));
  ASSERT_EQ(posted.status, 202) << posted.body;
  json::Document answer = parse(posted.body);
  // The answer's warnings (a last OperationOutcome entry) are the validator's dom-6 (no narrative)
  // only: no error, nothing about the event itself.
  if (const json::Value* outcome = entryOf(answer, "OperationOutcome")) {
    for (const json::Value& issue : (*outcome)["issue"].GetArray()) {
      EXPECT_EQ(json::getString(issue, "severity"), "warning") << posted.body;
      EXPECT_EQ(json::find(issue, "location"), nullptr) << posted.body;
    }
  }
  const json::Value* team = entryOf(answer, "CareTeam");
  ASSERT_NE(team, nullptr);
  const std::string id(json::stringView((*team)["id"]));

  HttpResult read = gateway_->get("/fhir/CareTeam/" + id);
  ASSERT_EQ(read.status, 200) << read.body;
  json::Document stored = parse(read.body);
  std::set<std::string> codings;
  for (const json::Value& participant : stored["participant"].GetArray()) {
    for (const json::Value& coding : participant["role"][0]["coding"].GetArray()) {
      codings.insert(std::string(json::stringView(coding["system"])) + "|" + std::string(json::stringView(coding["code"])));
    }
  }
  const std::string r(kRole), n(kNucc);
  EXPECT_EQ(codings, (std::set<std::string>{r + "|pcp", r + "|behavioral-health-care-manager", r + "|psychiatric-consultant",
                                            n + "|2084P0800X"}));
  EXPECT_EQ(json::stringView(stored["category"][0]["coding"][0]["code"]), "behavioral-health-integration");

  // The stored CareTeam validates against its profile with zero errors.
  HttpResult validated = gateway_->post(
      "/fhir/CareTeam/$validate?profile=https://fhir.alignment-gateway.org/StructureDefinition/care-management-careteam",
      read.body, "application/fhir+json");
  ASSERT_EQ(validated.status, 200) << validated.body;
  json::Document outcome = parse(validated.body);
  for (const json::Value& issue : outcome["issue"].GetArray()) {
    EXPECT_NE(json::getString(issue, "severity"), "error") << validated.body;
    EXPECT_NE(json::getString(issue, "severity"), "fatal") << validated.body;
  }
}

TEST_F(BhiEndToEnd, WithoutABehavioralHealthCareManagerIs422NamingTheInvariant) {
  HttpResult posted = ingest(bhiPlan("bhi-e2e-2", {{"1467583922", "pcp"}, {"1728394051", "psychiatric-consultant"}}));
  ASSERT_EQ(posted.status, 422) << posted.body;
  EXPECT_NE(posted.body.find("align-ct-3"), std::string::npos) << posted.body;
  EXPECT_NE(posted.body.find("behavioral health care manager"), std::string::npos) << posted.body;
  // Quarantined with its outcome.
  EXPECT_NE(gateway_->get("/admin/quarantine").body.find("align-ct-3"), std::string::npos);
}

TEST_F(BhiEndToEnd, UnknownRoleIs202WithAWarningAndKeptAsText) {
  auto team = kCollaborativeTeam;
  team.emplace_back("1987654328", "peer-support-specialist");
  HttpResult posted = ingest(bhiPlan("bhi-e2e-3", team));
  ASSERT_EQ(posted.status, 202) << posted.body;
  json::Document answer = parse(posted.body);
  const json::Value* outcome = entryOf(answer, "OperationOutcome");
  ASSERT_NE(outcome, nullptr) << posted.body;
  // One warning about the event (the others are the validator's dom-6, no narrative), none an error.
  std::vector<std::string> located;
  for (const json::Value& issue : (*outcome)["issue"].GetArray()) {
    EXPECT_EQ(json::getString(issue, "severity"), "warning") << posted.body;
    if (!json::find(issue, "location")) continue;
    located.emplace_back(json::stringView(issue["location"][0]));
    EXPECT_NE(str(issue, "diagnostics").find("'peer-support-specialist'"), std::string::npos) << posted.body;
  }
  EXPECT_EQ(located, std::vector<std::string>{"$.carePlan.careTeam[3].role"});
  const json::Value* stored_team = entryOf(answer, "CareTeam");
  ASSERT_NE(stored_team, nullptr);
  EXPECT_EQ(json::getString((*stored_team)["participant"][3]["role"][0], "text"), "peer-support-specialist");
}

// 99492 in June goes to lakeshore-medicaid, 99493 in July to northwind-commercial, each once: the
// same event posted again sends nothing more, and a later lakeshore claim (99484) arriving as
// delivery 2 shows that nothing was queued to lakeshore in between.
TEST_F(BhiEndToEnd, BhiBillingReachesThePayerCoveringTheDateOfServiceExactlyOnce) {
  const std::string june = bhiPlan("bhi-e2e-4", kCollaborativeTeam, billing("99492", "2026-06-20"));
  ASSERT_EQ(ingest(june).status, 202);
  ASSERT_EQ(ingest(bhiPlan("bhi-e2e-5", kCollaborativeTeam, billing("99493", "2026-07-20"))).status, 202);
  ASSERT_TRUE(lakeshore_.waitForAccepted(1, 20s));
  ASSERT_TRUE(northwind_.waitForAccepted(1, 20s));
  HttpResult again = ingest(june);
  EXPECT_EQ(again.status, 202) << again.body;
  ASSERT_EQ(ingest(bhiPlan("bhi-e2e-6", kCollaborativeTeam, billing("99484", "2026-06-25"))).status, 202);
  ASSERT_TRUE(lakeshore_.waitForAccepted(2, 20s));

  EXPECT_EQ(claimsAt(lakeshore_), (std::vector<std::string>{"99492@2026-06-20", "99484@2026-06-25"}));
  EXPECT_EQ(claimsAt(northwind_), (std::vector<std::string>{"99493@2026-07-20"}));
  std::set<std::string> numbers;
  for (const ReceivedRequest& request : lakeshore_.accepted()) numbers.insert(request.header("x-event-number"));
  EXPECT_EQ(numbers, (std::set<std::string>{"1", "2"}));
  EXPECT_TRUE(parse(gateway_->get("/admin/unroutable").body)["items"].Empty());
}

}  // namespace
}  // namespace fhir::testing

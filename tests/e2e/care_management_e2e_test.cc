// SPDX-License-Identifier: Apache-2.0
// POST /ingest/care-management through the real server: co-management billing reaches the payer
// as a Claim, a second ACM in the month is 422 (quarantined), and the care-management topics
// (hrsn-positive, careplan-changed, comanagement-started/ended, attribution-changed) notify a
// subscriber on a real loopback receiver.

#include <algorithm>
#include <set>
#include <thread>

#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTopicBase = "https://fhir.alignment-gateway.org/SubscriptionTopic/";
constexpr const char* kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
constexpr const char* kPatient = R"("patient":{"mrn":"NS-884213","mrnSystem":"urn:oid:2.16.840.1.113883.3.7418.1",)"
                                 R"("family":"Okafor","given":["Adaeze"],"birthDate":"1961-03-19","sex":"female",)"
                                 R"("coverage":[{"payerId":"lakeshore-medicaid","memberId":"LMC00918273",)"
                                 R"("lineOfBusiness":"medicaid","start":"2026-01-01","end":"2026-12-31"}]})";

std::string envelope(const std::string& event_id, const std::string& type, const std::string& body) {
  return R"({"eventId":")" + event_id + R"(","source":"epic-prod-northshore","eventType":")" + type +
         R"(","occurredAt":"2026-10-31T17:00:00-05:00",)" + kPatient + "," + body + "}";
}

std::string coManagement(const std::string& event_id, const std::string& date, const std::string& end = "") {
  return envelope(event_id, "co-management",
                  R"("episode":{"episodeId":"EP-77","condition":{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I48.91"},)"
                  R"("specialistNpi":"1881726354","pcpNpi":"1467583922","start":"2026-10-01",)" +
                      (end.empty() ? std::string() : R"("end":")" + end + "\",") +
                      R"("billing":[{"code":"ACM","system":"https://fhir.alignment-gateway.org/CodeSystem/alignment-billing",)"
                      R"("billedBy":"specialist","npi":"1881726354","dateOfService":")" + date + R"("}]})");
}

std::string screening(const std::string& event_id, const std::string& food_answer) {
  return envelope(event_id, "hrsn-screening",
                  R"("screening":{"instrument":"AHC-HRSN","screenedAt":"2026-10-04","answers":[)"
                  R"({"loinc":"88122-7","answerLoinc":")" + food_answer + R"("},{"loinc":"93030-5","answerLoinc":"LA32-8"}]})");
}

class CareManagementEndToEnd : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }

  HttpResult ingest(const std::string& body) const {
    return gateway_->post("/ingest/care-management", body, "application/json");
  }

  // A rest-hook Subscription on `topic` to the HIE receiver at /subs/<topic>; waits until active.
  void subscribe(const std::string& topic) {
    const std::string body = R"({"resourceType":"Subscription","status":"requested","reason":"HIE",)"
                             R"("criteria":")" + std::string(kTopicBase) + topic + R"(",)"
                             R"("channel":{"type":"rest-hook","endpoint":")" + hie_.url("/subs/" + topic) + R"(",)"
                             R"("payload":"application/fhir+json","_payload":{"extension":[{"url":")" +
                             std::string(kBackport) + R"(backport-payload-content","valueCode":"id-only"}]}}})";
    HttpResult created = gateway_->post("/fhir/Subscription", body, "application/fhir+json");
    ASSERT_EQ(created.status, 201) << created.body;
    const std::string id(json::getString(parse(created.body), "id").value_or(""));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (json::getString(parse(gateway_->get("/fhir/Subscription/" + id).body), "status") == "active") return;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "subscription on " << topic << " did not become active";
  }

  // Event notifications (numbered, de-duplicated by Idempotency-Key) received for `topic`.
  size_t notifications(const std::string& topic) const {
    std::set<std::string> keys;
    for (const ReceivedRequest& request : hie_.accepted()) {
      if (request.path != "/subs/" + topic || request.header("x-event-number").empty()) continue;
      keys.insert(request.header("idempotency-key"));
    }
    return keys.size();
  }

  bool waitForNotifications(const std::string& topic, size_t count) const {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (notifications(topic) >= count) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  // Claims the payer received (de-duplicated by Idempotency-Key).
  std::vector<json::Document> payerClaims() const {
    std::vector<json::Document> out;
    std::set<std::string> keys;
    for (const ReceivedRequest& request : payer_.accepted()) {
      if (!keys.insert(request.header("idempotency-key")).second) continue;
      out.push_back(parse(request.body));
    }
    return out;
  }
};

TEST_F(CareManagementEndToEnd, CoManagementBillingReachesThePayerAsAClaim) {
  HttpResult first = ingest(coManagement("cm-e2e-1", "2026-10-31"));
  ASSERT_EQ(first.status, 202) << first.body;
  json::Document stored = parse(first.body);
  EXPECT_EQ(json::getString(stored, "type"), "collection");
  const json::Value* episode = findEntry(stored, "EpisodeOfCare");
  ASSERT_NE(episode, nullptr);
  EXPECT_EQ(json::getString(*episode, "status"), "active");
  EXPECT_EQ((*episode)["team"].Size(), 1u);
  const json::Value* claim = findEntry(stored, "Claim");
  ASSERT_NE(claim, nullptr);
  const std::string claim_id(json::getString(*claim, "id").value_or(""));

  ASSERT_TRUE(payer_.waitForAccepted(1, 10s));
  std::vector<json::Document> received = payerClaims();
  ASSERT_EQ(received.size(), 1u);
  const json::Value* routed = findEntry(received[0], "Claim");
  ASSERT_NE(routed, nullptr);
  EXPECT_EQ(json::getString(*routed, "id"), claim_id);
  const json::Value& coding = (*routed)["item"][0]["productOrService"]["coding"][0];
  EXPECT_EQ(json::getString(coding, "system"), "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing");
  EXPECT_EQ(json::getString(coding, "code"), "ACM");
  EXPECT_NE(findEntry(received[0], "Coverage"), nullptr);
  EXPECT_NE(findEntry(received[0], "Patient"), nullptr);
  EXPECT_EQ(payer_.accepted()[0].header("x-event-number"), "1");

  // The same event again: the same answer, no second delivery.
  HttpResult again = ingest(coManagement("cm-e2e-1", "2026-10-31"));
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.body, first.body);

  // A second ACM for the same patient, specialist and month from another event: 422, quarantined.
  HttpResult second = ingest(coManagement("cm-e2e-2", "2026-10-15"));
  ASSERT_EQ(second.status, 422) << second.body;
  json::Document outcome = parse(second.body);
  const json::Value& issue = outcome["issue"][0];
  EXPECT_EQ(json::stringView(issue["location"][0]), "$.episode.billing[0]");
  EXPECT_NE(json::getString(issue, "diagnostics").value_or("").find("second ACM"), std::string_view::npos);
  EXPECT_EQ(json::getString(issue["details"]["coding"][0], "system"), "https://fhir.alignment-gateway.org/CodeSystem/quarantine-id");
  EXPECT_NE(quarantinedPayload(std::string(json::stringView(issue["details"]["coding"][0]["code"]))).find("cm-e2e-2"),
            std::string::npos);

  // The next month is a new ACM and is routed too.
  HttpResult november = ingest(coManagement("cm-e2e-3", "2026-11-30"));
  ASSERT_EQ(november.status, 202) << november.body;
  ASSERT_TRUE(payer_.waitForAccepted(2, 10s));
  std::this_thread::sleep_for(200ms);  // a wrong extra delivery would arrive now
  EXPECT_EQ(payerClaims().size(), 2u);
}

TEST_F(CareManagementEndToEnd, ConcurrentAcmsOfOneMonthOnlyOneIsAccepted) {
  std::vector<int> statuses(4);
  std::vector<std::thread> posts;
  for (size_t index = 0; index < statuses.size(); ++index) {
    posts.emplace_back([&, index] { statuses[index] = ingest(coManagement("race-" + std::to_string(index), "2026-10-2" + std::to_string(index))).status; });
  }
  for (std::thread& post : posts) post.join();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 202), 1);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 422), 3);
  ASSERT_TRUE(payer_.waitForAccepted(1, 10s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(payerClaims().size(), 1u);
}

TEST_F(CareManagementEndToEnd, AnAcmOutsideTheCoverageWaitsAsUnroutable) {
  // The coverage ends 2026-12-31: a January ACM has no payer yet and waits with the reason.
  HttpResult january = ingest(coManagement("cm-jan", "2027-01-31"));
  ASSERT_EQ(january.status, 202) << january.body;
  json::Document answer = parse(january.body);
  const json::Value* claim = findEntry(answer, "Claim");
  ASSERT_NE(claim, nullptr);
  const std::string unroutable = gateway_->get("/admin/unroutable").body;
  EXPECT_NE(unroutable.find(std::string(json::getString(*claim, "id").value_or("?"))), std::string::npos) << unroutable;
  EXPECT_NE(unroutable.find("2027-01-31"), std::string::npos) << unroutable;
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(payerClaims().empty());
}

TEST_F(CareManagementEndToEnd, HrsnPositiveScreeningNotifiesItsSubscriber) {
  subscribe("hrsn-positive");
  HttpResult negative = ingest(screening("hrsn-e2e-1", "LA28398-8"));
  ASSERT_EQ(negative.status, 202) << negative.body;
  HttpResult positive = ingest(screening("hrsn-e2e-2", "LA28397-0"));
  ASSERT_EQ(positive.status, 202) << positive.body;
  ASSERT_TRUE(waitForNotifications("hrsn-positive", 1));
  // The HIE feed got both Bundles; the subscriber only the positive one.
  ASSERT_TRUE(hie_.waitForAccepted(3, 10s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(notifications("hrsn-positive"), 1u);
}

TEST_F(CareManagementEndToEnd, CarePlanCoManagementAndEmpanelmentTopicsFire) {
  for (const char* topic : {"careplan-changed", "comanagement-started", "comanagement-ended", "attribution-changed"}) {
    subscribe(topic);
  }
  auto plan = [](const std::string& event_id, const std::string& status) {
    return envelope(event_id, "care-plan",
                    R"("carePlan":{"planId":"CP-9","status":")" + status +
                        R"(","category":"chronic-care-management","goals":["HbA1c below 7%"]})");
  };
  ASSERT_EQ(ingest(plan("cp-1", "active")).status, 202);
  ASSERT_TRUE(waitForNotifications("careplan-changed", 1));
  ASSERT_EQ(ingest(plan("cp-2", "active")).status, 202);  // no status change: no notification
  ASSERT_EQ(ingest(plan("cp-3", "completed")).status, 202);
  ASSERT_TRUE(waitForNotifications("careplan-changed", 2));

  ASSERT_EQ(ingest(coManagement("ep-1", "2026-10-31")).status, 202);
  ASSERT_TRUE(waitForNotifications("comanagement-started", 1));
  EXPECT_EQ(notifications("comanagement-ended"), 0u);
  HttpResult ended = ingest(coManagement("ep-2", "2026-11-30", "2026-11-30"));
  ASSERT_EQ(ended.status, 202) << ended.body;
  ASSERT_TRUE(waitForNotifications("comanagement-ended", 1));

  HttpResult panel = ingest(envelope("emp-1", "empanelment",
                                     R"("panel":{"practiceNpi":"1093817462","pcpNpi":"1467583922","start":"2026-10-01"})"));
  ASSERT_EQ(panel.status, 202) << panel.body;
  ASSERT_TRUE(waitForNotifications("attribution-changed", 1));

  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(notifications("careplan-changed"), 2u);
  EXPECT_EQ(notifications("comanagement-started"), 1u);
  EXPECT_EQ(notifications("comanagement-ended"), 1u);
}

TEST_F(CareManagementEndToEnd, BadEventsAre4xxWithTheirLocationAndQuarantined) {
  HttpResult bad_code = ingest(replaceOnce(screening("bad-1", "LA28397-0"), "LA32-8", "LA0000-0"));
  ASSERT_EQ(bad_code.status, 422) << bad_code.body;
  json::Document outcome = parse(bad_code.body);
  EXPECT_EQ(json::stringView(outcome["issue"][0]["location"][0]), "$.screening.answers[1].answerLoinc");
  EXPECT_EQ(json::getString(outcome["issue"][0]["details"]["coding"][0], "system"),
            "https://fhir.alignment-gateway.org/CodeSystem/quarantine-id");

  // An unknown member is accepted with a warning: the answer's last entry is an OperationOutcome.
  HttpResult warned = ingest(replaceOnce(screening("warn-1", "LA28398-8"), "\"screening\":{", "\"screening\":{\"tablet\":true,"));
  ASSERT_EQ(warned.status, 202) << warned.body;
  json::Document answer = parse(warned.body);
  const json::Value& last = answer["entry"][answer["entry"].Size() - 1]["resource"];
  EXPECT_EQ(json::getString(last, "resourceType"), "OperationOutcome");
  EXPECT_EQ(json::stringView(last["issue"][0]["location"][0]), "$.screening.tablet");

  HttpResult malformed = ingest("{\"eventId\": ");
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  HttpResult wrong_type = gateway_->post("/ingest/care-management", "a,b", "text/csv");
  EXPECT_EQ(wrong_type.status, 415) << wrong_type.body;
}

}  // namespace
}  // namespace fhir::testing

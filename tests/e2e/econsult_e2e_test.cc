// SPDX-License-Identifier: Apache-2.0
// One e-consult end to end (issue 2): request -> response (99451) -> closed (99452) through the
// real server, store and delivery to a payer and an HIE listening on loopback.

#include <set>
#include <thread>

#include "gateway/delivery/delivery.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

// The NPI of the Practitioner a Claim's provider points to, looked up in the same Bundle.
std::string providerNpi(const json::Value& bundle, const json::Value& claim) {
  const std::string reference = str(claim["provider"], "reference");
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if ("Practitioner/" + str(resource, "id") == reference) return str(resource["identifier"][0], "value");
  }
  return {};
}

// The stored Bundle of an ingest answer: the answer without its trailing OperationOutcome of
// warnings, which is for the sender only.
std::string storedBundle(const std::string& answer) {
  auto doc = json::parse(answer);
  if (!doc.ok()) return {};
  json::Value& entries = (*doc)["entry"];
  if (entries.Size() > 0 && str(entries[entries.Size() - 1]["resource"], "resourceType") == "OperationOutcome") {
    entries.PopBack();
  }
  return json::serialize(*doc);
}

class EconsultEndToEnd : public GatewayFixture {};

TEST_F(EconsultEndToEnd, RequestResponseClosedAreStoredRoutedAndPublishedOnce) {
  startGateway();
  std::vector<std::string> answers;
  for (const char* name : {"request", "response", "closed"}) {
    HttpResult result = gateway_->post("/ingest/econsult", event(name));
    ASSERT_EQ(result.status, 202) << name << ": " << result.body;
    answers.push_back(result.body);
  }

  // Every resource of every answer reads back through GET /fhir/{type}/{id}.
  size_t read_back = 0;
  for (const std::string& answer : answers) {
    json::Document bundle = parse(answer);
    ASSERT_EQ(str(bundle, "type"), "collection");
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      if (str(resource, "resourceType") == "OperationOutcome") continue;  // warnings, not stored
      const std::string path = "/fhir/" + str(resource, "resourceType") + "/" + str(resource, "id");
      HttpResult read = gateway_->get(path);
      ASSERT_EQ(read.status, 200) << path;
      json::Document stored = parse(read.body);
      EXPECT_EQ(str(stored, "id"), str(resource, "id"));
      EXPECT_FALSE(str(stored["meta"], "versionId").empty());
      ++read_back;
    }
  }
  EXPECT_GE(read_back, 15u);

  // The consult's ServiceRequest ends completed (closed event) with its request data kept.
  json::Document closed = parse(answers[2]);
  const json::Value* request = findEntry(closed, "ServiceRequest");
  ASSERT_NE(request, nullptr);
  json::Document stored_request = parse(gateway_->get("/fhir/ServiceRequest/" + str(*request, "id")).body);
  EXPECT_EQ(str(stored_request, "status"), "completed");
  EXPECT_EQ(str(stored_request["note"][0], "text"),
            "Persistent AF on apixaban; add rate control or refer for ablation?");
  EXPECT_EQ(str(stored_request["reasonCode"][0]["coding"][0], "code"), "I48.91");

  // The payer receives exactly one Bundle per Claim: 99451 by the specialist, 99452 by the PCP.
  ASSERT_TRUE(payer_.waitForAccepted(2, 20s));
  ASSERT_TRUE(hie_.waitForAccepted(3, 20s));
  std::vector<ReceivedRequest> claims = payer_.accepted();
  ASSERT_EQ(claims.size(), 2u);
  std::vector<std::pair<std::string, std::string>> code_and_npi;
  for (size_t i = 0; i < claims.size(); ++i) {
    const ReceivedRequest& delivery = claims[i];
    EXPECT_EQ(delivery.header("x-event-number"), std::to_string(i + 1));
    EXPECT_EQ(delivery.header("idempotency-key"), "lakeshore-medicaid:" + std::to_string(i + 1));
    EXPECT_EQ(delivery.header("x-signature"), "sha256=" + gateway::hmacSha256Hex("payer-secret", delivery.body));
    EXPECT_EQ(delivery.header("content-type"), "application/fhir+json");
    json::Document bundle = parse(delivery.body);
    const json::Value* claim = findEntry(bundle, "Claim");
    ASSERT_NE(claim, nullptr);
    code_and_npi.emplace_back(str((*claim)["item"][0]["productOrService"]["coding"][0], "code"),
                              providerNpi(bundle, *claim));
    // The Bundle carries what the Claim references.
    for (const char* type : {"Patient", "Coverage", "Practitioner", "Organization"}) {
      EXPECT_NE(findEntry(bundle, type), nullptr) << type;
    }
    EXPECT_EQ(str((*claim)["type"]["coding"][0], "code"), "professional");
    EXPECT_EQ(str(*claim, "use"), "claim");
  }
  EXPECT_EQ(code_and_npi[0], std::make_pair(std::string("99451"), std::string("1881726354")));
  EXPECT_EQ(code_and_npi[1], std::make_pair(std::string("99452"), std::string("1467583922")));
  EXPECT_EQ(str(parse(claims[0].body)["entry"][0]["resource"]["item"][0], "servicedDate"), "2026-10-03");

  // The HIE receives every accepted Bundle, in order, numbered 1..3, unsigned (no secret).
  std::vector<ReceivedRequest> feed = hie_.accepted();
  ASSERT_EQ(feed.size(), 3u);
  for (size_t i = 0; i < feed.size(); ++i) {
    EXPECT_EQ(feed[i].header("x-event-number"), std::to_string(i + 1));
    EXPECT_EQ(feed[i].header("idempotency-key"), "regional-hie:" + std::to_string(i + 1));
    EXPECT_EQ(feed[i].header("x-signature"), "");
    EXPECT_EQ(feed[i].body, storedBundle(answers[i]));
  }

  // Re-posting any event returns the same answer and changes nothing.
  for (size_t i = 0; i < 3; ++i) {
    const char* name = i == 0 ? "request" : i == 1 ? "response" : "closed";
    HttpResult again = gateway_->post("/ingest/econsult", event(name));
    EXPECT_EQ(again.status, 202);
    EXPECT_EQ(again.body, answers[i]) << name;
  }
  EXPECT_EQ(str(parse(gateway_->get("/fhir/ServiceRequest/" + str(*request, "id")).body)["meta"], "versionId"),
            str(stored_request["meta"], "versionId"));
  // Delivery is ordered per destination, so a new event reaching the HIE as number 4 proves no
  // duplicate was queued before it.
  std::string other = event("request");
  other.replace(other.find("evt-7f3a-0001"), 13, "evt-7f3a-0009");
  other.replace(other.find("EC-2026-000451"), 14, "EC-2026-000452");
  ASSERT_EQ(gateway_->post("/ingest/econsult", other).status, 202);
  ASSERT_TRUE(hie_.waitForAccepted(4, 20s));
  feed = hie_.accepted();
  ASSERT_EQ(feed.size(), 4u);
  EXPECT_EQ(feed[3].header("x-event-number"), "4");
  EXPECT_NE(feed[3].body.find("EC-2026-000452"), std::string::npos);
  EXPECT_EQ(payer_.accepted().size(), 2u);
}

TEST_F(EconsultEndToEnd, AcknowledgedEventSurvivesSigkillAndIsDeliveredOnce) {
  // Receivers are down, so nothing can be delivered before the kill.
  payer_.setStatus(503);
  hie_.setStatus(503);
  startGateway();
  ASSERT_EQ(gateway_->post("/ingest/econsult", event("request")).status, 202);
  HttpResult response = gateway_->post("/ingest/econsult", event("response"));
  ASSERT_EQ(response.status, 202);
  gateway_->kill();

  payer_.setStatus(200);
  hie_.setStatus(200);
  startGateway();
  json::Document answer = parse(response.body);
  const json::Value* communication = findEntry(answer, "Communication");
  ASSERT_NE(communication, nullptr);
  EXPECT_EQ(gateway_->get("/fhir/Communication/" + str(*communication, "id")).status, 200);

  ASSERT_TRUE(hie_.waitForAccepted(2, 20s));
  ASSERT_TRUE(payer_.waitForAccepted(1, 20s));
  // After de-duplication by Idempotency-Key: exactly the events 1..N, no gap, nothing twice.
  for (LoopbackReceiver* receiver : {&hie_, &payer_}) {
    std::set<std::string> keys;
    std::set<int> numbers;
    for (const ReceivedRequest& request : receiver->accepted()) {
      keys.insert(request.header("idempotency-key"));
      numbers.insert(std::stoi(request.header("x-event-number")));
    }
    const size_t expected = receiver == &hie_ ? 2u : 1u;
    EXPECT_EQ(keys.size(), expected);
    ASSERT_EQ(numbers.size(), expected);
    EXPECT_EQ(*numbers.begin(), 1);
    EXPECT_EQ(*numbers.rbegin(), static_cast<int>(expected));
  }
  // The attempts made while the receivers were down were retried, not lost or renumbered.
  for (const ReceivedRequest& request : hie_.requests()) {
    const int number = std::stoi(request.header("x-event-number"));
    EXPECT_TRUE(number == 1 || number == 2);
  }
}

class DeadLetters : public GatewayFixture {
 protected:
  DeadLetters() { give_up_after_hours_ = 0.0002; }  // 0.72 s of retries
};

TEST_F(DeadLetters, GivenUpDeliveriesAreListedAndReplayedWithTheirNumber) {
  hie_.setStatus(503);
  startGateway();
  ASSERT_EQ(gateway_->post("/ingest/econsult", event("request")).status, 202);
  json::Document letters = waitForDeadLetters();
  ASSERT_EQ(letters["items"].Size(), 1u);
  const json::Value& letter = letters["items"][0];
  EXPECT_EQ(str(letter, "destination"), "feed:regional-hie");
  EXPECT_EQ(json::numberAsInt64(letter["eventNumber"]), 1);
  EXPECT_GE(json::numberAsInt64(letter["attempts"]).value_or(0), 2);
  EXPECT_EQ(str(letter, "lastError"), "HTTP 503");
  EXPECT_NE(gateway_->get("/metrics").body.find("gateway_dead_letters{destination=\"feed:regional-hie\"} 1"), std::string::npos);

  hie_.setStatus(200);
  const size_t refused = hie_.requests().size();
  EXPECT_EQ(gateway_->post("/admin/dead-letters/999999/replay", "").status, 404);
  ASSERT_EQ(gateway_->post("/admin/dead-letters/" + json::numberText(letter["id"]) + "/replay", "").status, 200);
  ASSERT_TRUE(hie_.waitForAccepted(1, 20s));
  const ReceivedRequest delivered = hie_.accepted()[0];
  EXPECT_EQ(delivered.header("x-event-number"), "1");
  EXPECT_EQ(delivered.header("idempotency-key"), "regional-hie:1");
  EXPECT_GT(hie_.requests().size(), refused);
  EXPECT_TRUE(parse(gateway_->get("/admin/dead-letters").body)["items"].Empty());
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Static feeds and Subscriptions of an HIE client receive only what its `practices` allow
// (issue 13, contracts/access.md "Who sees what"), against the real binary: two practices post
// e-consult events; a feed and a Subscription of an HIE limited to practice A get exactly the
// resources of practice A's events, those of an HIE with "practices": "all" get everything. The
// last event (practice A again) is the barrier: rows of one destination go out in order, so once
// it arrived everything before it did too.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "conformance/json/json.h"
#include "gateway/auth/jose.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"
#include "tests/gateway/auth_test_keys.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAssertionType = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
constexpr const char* kTopicBase = "https://fhir.alignment-gateway.org/SubscriptionTopic/";
constexpr const char* kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
// Practice A: tests/data/econsult/request.json's organization (its requester's organizationNpi).
constexpr const char* kPracticeA = "1093817462";

std::string str(const json::Value& object, const char* key) { return std::string(json::getString(object, key).value_or("")); }

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// request.json as another e-consult of practice A (same patient).
std::string practiceAEvent(const std::string& event_id, const std::string& consult_id) {
  std::string event = readFile(testDataDir() / "econsult" / "request.json");
  event = replaceOnce(event, "evt-7f3a-0001", event_id);
  return replaceOnce(event, "EC-2026-000451", consult_id);
}

// request.json moved to practice B: another patient, requester, organization and specialist
// (valid NPIs that no practice-A event names).
std::string practiceBEvent() {
  std::string event = practiceAEvent("evt-b-0001", "EC-2026-000999");
  event = replaceOnce(event, "\"mrn\": \"NS-884213\"", "\"mrn\": \"NS-555001\"");
  event = replaceOnce(event, "\"family\": \"Okafor\"", "\"family\": \"Brennan\"");
  event = replaceOnce(event, "\"birthDate\": \"1961-03-19\"", "\"birthDate\": \"1970-05-02\"");
  event = replaceOnce(event, "LMC00918273", "LMC00000555");
  event = replaceOnce(event, "\"npi\": \"1467583922\"", "\"npi\": \"1522222227\"");
  event = replaceOnce(event, "\"organizationNpi\": \"1093817462\"", "\"organizationNpi\": \"1633333335\"");
  return replaceOnce(event, "\"npi\": \"1881726354\"", "\"npi\": \"1744444443\"");
}

class AccessFeeds : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = makeEcKey();
    const std::string jwks =
        R"({"keys":[)" + gateway::auth::publicJwkJson(key_, gateway::auth::Algorithm::kES384, "k1") + "]}";
    config_path_ = (data_.path() / "config.json").string();
    std::ofstream config(config_path_);
    config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "endpoint": ")" << payer_.url("/bundles") << R"(" } ],
  "feeds": [ { "id": "feed-a", "client": "hie-a", "endpoint": ")" << feed_a_.url("/feed") << R"(" },
             { "id": "feed-all", "client": "hie-all", "endpoint": ")" << feed_all_.url("/feed") << R"(" } ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 200 },
  "auth": { "createSigningKey": true, "clients": [
    { "id": "ehr", "kind": "ehr", "sources": ["epic-prod-northshore"], "jwks": )" << jwks << R"( },
    { "id": "hie-a", "kind": "hie", "practices": [")" << kPracticeA << R"("], "jwks": )" << jwks << R"(,
      "subscriptionEndpoints": [")" << notify_a_.url("/") << R"("] },
    { "id": "hie-all", "kind": "hie", "practices": "all", "jwks": )" << jwks << R"(,
      "subscriptionEndpoints": [")" << notify_all_.url("/") << R"("] },
    { "id": "convener", "kind": "admin", "jwks": )" << jwks << R"( }
  ] }
})";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
    ASSERT_NE(gateway_->port(), 0);
  }

  std::string token(const std::string& client) {
    if (auto found = tokens_.find(client); found != tokens_.end()) return found->second;
    const std::string url = "http://127.0.0.1:" + std::to_string(gateway_->port()) + "/auth/token";
    const std::string assertion =
        signAssertion(key_.get(), "k1", assertionClaims(client, url, nowSeconds() + 60, "jti-" + std::to_string(++jti_)));
    HttpResult answer = gateway_->post("/auth/token",
                                       "grant_type=client_credentials&client_assertion_type=" + std::string(kAssertionType) +
                                           "&client_assertion=" + assertion,
                                       "application/x-www-form-urlencoded");
    EXPECT_EQ(answer.status, 200) << answer.body;
    auto doc = json::parse(answer.body);
    return tokens_[client] = doc.ok() ? str(*doc, "access_token") : std::string();
  }

  RawResponse call(const std::string& method, const std::string& path, const std::string& client,
                   const std::string& body = "") {
    std::string bytes = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    bytes += "Authorization: Bearer " + token(client) + "\r\n";
    if (!body.empty()) bytes += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return rawRequest(gateway_->port(), bytes + "\r\n" + body, 20000);
  }

  // A full-resource Subscription of `client` on econsult-requested to `receiver`, once active.
  std::string subscribe(const std::string& client, const LoopbackReceiver& receiver) {
    const std::string body = R"({"resourceType": "Subscription",
  "meta": {"profile": [")" + std::string(kBackport) + R"(backport-subscription"]},
  "status": "requested", "reason": "HIE notifications", "criteria": ")" + std::string(kTopicBase) + R"(econsult-requested",
  "channel": {"type": "rest-hook", "endpoint": ")" + receiver.url("/notify") + R"(", "payload": "application/fhir+json",
    "_payload": {"extension": [{"url": ")" + std::string(kBackport) + R"(backport-payload-content", "valueCode": "full-resource"}]}}})";
    RawResponse created = call("POST", "/fhir/Subscription", client, body);
    EXPECT_EQ(created.status, 201) << created.body;
    auto doc = json::parse(created.body);
    const std::string id = doc.ok() ? str(*doc, "id") : std::string();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto read = json::parse(call("GET", "/fhir/Subscription/" + id, client).body);
      if (read.ok() && str(*read, "status") == "active") return id;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "Subscription " << id << " of " << client << " did not become active";
    return id;
  }

  // "Type/id" of every resource entry of a Bundle text (OperationOutcome and Parameters left out).
  static std::set<std::string> resourcesOf(const std::string& bundle_text) {
    std::set<std::string> out;
    auto doc = json::parse(bundle_text);
    const json::Value* entries = doc.ok() ? json::find(*doc, "entry") : nullptr;
    if (entries == nullptr || !entries->IsArray()) return out;
    for (const json::Value& entry : entries->GetArray()) {
      const json::Value* resource = json::find(entry, "resource");
      if (resource == nullptr) continue;
      const std::string type = str(*resource, "resourceType");
      if (type == "OperationOutcome" || type == "Parameters") continue;
      out.insert(type + "/" + str(*resource, "id"));
    }
    return out;
  }

  static std::string serviceRequestOf(const std::set<std::string>& resources) {
    for (const std::string& resource : resources) {
      if (resource.rfind("ServiceRequest/", 0) == 0) return resource;
    }
    return {};
  }

  // Requests that carry an event (feed rows, event notifications): X-Event-Number is set.
  static std::vector<ReceivedRequest> events(const LoopbackReceiver& receiver) {
    std::vector<ReceivedRequest> out;
    for (ReceivedRequest& request : receiver.accepted()) {
      if (!request.header("x-event-number").empty()) out.push_back(std::move(request));
    }
    return out;
  }

  // Waits until a received event names `resource`.
  static bool waitForResource(const LoopbackReceiver& receiver, const std::string& resource) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const ReceivedRequest& request : events(receiver)) {
        if (resourcesOf(request.body).count(resource) != 0) return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  TempDir data_;
  LoopbackReceiver payer_, feed_a_, feed_all_, notify_a_, notify_all_;
  std::shared_ptr<EVP_PKEY> key_;
  std::string config_path_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::map<std::string, std::string> tokens_;
  int jti_ = 0;
};

TEST_F(AccessFeeds, AFeedAndASubscriptionOfAnHieGetExactlyWhatItsPracticesAllow) {
  const std::string sub_a = subscribe("hie-a", notify_a_);
  const std::string sub_all = subscribe("hie-all", notify_all_);

  RawResponse a1 = call("POST", "/ingest/econsult", "ehr", practiceAEvent("evt-a-0001", "EC-A-1"));
  ASSERT_EQ(a1.status, 202) << a1.body;
  RawResponse b = call("POST", "/ingest/econsult", "ehr", practiceBEvent());
  ASSERT_EQ(b.status, 202) << b.body;
  RawResponse a2 = call("POST", "/ingest/econsult", "ehr", practiceAEvent("evt-a-0002", "EC-A-2"));  // the barrier
  ASSERT_EQ(a2.status, 202) << a2.body;

  const std::set<std::string> in_a1 = resourcesOf(a1.body), in_b = resourcesOf(b.body), in_a2 = resourcesOf(a2.body);
  std::set<std::string> of_a = in_a1;
  of_a.insert(in_a2.begin(), in_a2.end());
  // Resources only practice B's event wrote (the payer's Organization, say, is written by both).
  std::set<std::string> only_b;
  for (const std::string& resource : in_b) {
    if (of_a.count(resource) == 0) only_b.insert(resource);
  }
  const std::string request_a1 = serviceRequestOf(in_a1), request_b = serviceRequestOf(in_b), request_a2 = serviceRequestOf(in_a2);
  ASSERT_FALSE(request_a1.empty());
  ASSERT_FALSE(request_b.empty());
  ASSERT_FALSE(request_a2.empty());
  ASSERT_NE(request_a1, request_a2);
  ASSERT_GE(only_b.size(), 3u) << "practice B's event shares too much with practice A's to tell them apart";

  // The HIE limited to practice A: its feed got every resource of A's events, none only B wrote.
  ASSERT_TRUE(waitForResource(feed_a_, request_a2));
  std::set<std::string> fed_a;
  for (const ReceivedRequest& row : events(feed_a_)) {
    const std::set<std::string> resources = resourcesOf(row.body);
    fed_a.insert(resources.begin(), resources.end());
  }
  for (const std::string& resource : of_a) EXPECT_EQ(fed_a.count(resource), 1u) << resource << " missing from feed-a";
  for (const std::string& resource : fed_a) EXPECT_EQ(of_a.count(resource), 1u) << resource << " reached feed-a";
  // The HIE that sees every practice got all three Bundles whole.
  ASSERT_TRUE(waitForResource(feed_all_, request_a2));
  std::vector<ReceivedRequest> fed_all = events(feed_all_);
  ASSERT_EQ(fed_all.size(), 3u);
  EXPECT_EQ(resourcesOf(fed_all[0].body), in_a1);
  EXPECT_EQ(resourcesOf(fed_all[1].body), in_b);
  EXPECT_EQ(resourcesOf(fed_all[2].body), in_a2);

  // Subscriptions: hie-a is notified of practice A's two consults only, numbered 1 and 2.
  ASSERT_TRUE(waitForResource(notify_a_, request_a2));
  std::vector<ReceivedRequest> notified_a = events(notify_a_);
  ASSERT_EQ(notified_a.size(), 2u);
  EXPECT_EQ(notified_a[0].header("x-event-number"), "1");
  EXPECT_EQ(notified_a[1].header("x-event-number"), "2");
  EXPECT_EQ(serviceRequestOf(resourcesOf(notified_a[0].body)), request_a1);
  EXPECT_EQ(serviceRequestOf(resourcesOf(notified_a[1].body)), request_a2);
  // hie-all: all three, in order.
  ASSERT_TRUE(waitForResource(notify_all_, request_a2));
  std::vector<ReceivedRequest> notified_all = events(notify_all_);
  ASSERT_EQ(notified_all.size(), 3u);
  EXPECT_EQ(serviceRequestOf(resourcesOf(notified_all[1].body)), request_b);
  // $events of hie-a's Subscription holds the same two (what it missed could be fetched there).
  RawResponse missed = call("GET", "/fhir/Subscription/" + sub_a + "/$events", "hie-a");
  ASSERT_EQ(missed.status, 200) << missed.body;
  EXPECT_EQ(missed.body.find(request_b), std::string::npos);
  EXPECT_NE(missed.body.find(request_a1), std::string::npos);

  // What the feed and the notifications held is what hie-a may read; B's consult is 404 to it.
  EXPECT_EQ(call("GET", "/fhir/" + request_a1, "hie-a").status, 200);
  EXPECT_EQ(call("GET", "/fhir/" + request_b, "hie-a").status, 404);
  EXPECT_EQ(call("GET", "/fhir/" + request_b, "hie-all").status, 200);
  (void)sub_all;
}

// access.md "Audit": a write's AuditEvent is written with the data, in the same transaction.
// The gateway is killed (SIGKILL) right after the answers, well inside the background writer's
// 200 ms window: the ingest's and the Subscription's AuditEvents are there after a restart.
TEST_F(AccessFeeds, AWritesAuditEventSurvivesAKillRightAfterTheAnswer) {
  token("ehr");
  token("hie-a");
  token("convener");  // before the kill: the token requests' own audits may be lost with it
  RawResponse ingested = call("POST", "/ingest/econsult", "ehr", practiceAEvent("evt-kill-0001", "EC-KILL-1"));
  ASSERT_EQ(ingested.status, 202) << ingested.body;
  const std::string request = serviceRequestOf(resourcesOf(ingested.body));
  ASSERT_FALSE(request.empty());
  const std::string body = R"({"resourceType": "Subscription",
  "meta": {"profile": [")" + std::string(kBackport) + R"(backport-subscription"]},
  "status": "requested", "reason": "kill", "criteria": ")" + std::string(kTopicBase) + R"(econsult-requested",
  "channel": {"type": "rest-hook", "endpoint": ")" + notify_a_.url("/killed") + R"(", "payload": "application/fhir+json"}})";
  RawResponse created = call("POST", "/fhir/Subscription", "hie-a", body);
  ASSERT_EQ(created.status, 201) << created.body;
  auto doc = json::parse(created.body);
  ASSERT_TRUE(doc.ok());
  const std::string subscription = "Subscription/" + str(*doc, "id");
  gateway_->kill();

  gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
  ASSERT_NE(gateway_->port(), 0);
  auto audited = [&](const std::string& query) {
    RawResponse answer = call("GET", "/fhir/AuditEvent?" + query, "convener");
    EXPECT_EQ(answer.status, 200) << answer.body;
    auto found = json::parse(answer.body);
    return found.ok() && json::find(*found, "entry") ? (*found)["entry"].Size() : 0u;
  };
  EXPECT_EQ(audited("subtype=ingest&agent=ehr&entity=" + request), 1u);
  EXPECT_EQ(audited("subtype=create&agent=hie-a&entity=" + subscription), 1u);
}

}  // namespace
}  // namespace fhir::testing

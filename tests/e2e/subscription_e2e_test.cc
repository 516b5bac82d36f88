// SPDX-License-Identifier: Apache-2.0
// Topic-based subscriptions and billing routing (issue 6) through the real server, with real
// loopback receivers for two payers and an HIE subscriber.

#include <fstream>
#include <set>

#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTopicBase = "https://fhir.alignment-gateway.org/SubscriptionTopic/";
constexpr const char* kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

// The value of a SubscriptionStatus parameter in a notification Bundle.
std::string statusParameter(const json::Value& bundle, const std::string& name) {
  for (const json::Value& parameter : bundle["entry"][0]["resource"]["parameter"].GetArray()) {
    if (str(parameter, "name") != name) continue;
    for (const char* key : {"valueCode", "valueString", "valueCanonical"}) {
      if (json::find(parameter, key)) return str(parameter, key);
    }
  }
  return {};
}

std::vector<std::string> eventNumbers(const json::Value& bundle) {
  std::vector<std::string> numbers;
  for (const json::Value& parameter : bundle["entry"][0]["resource"]["parameter"].GetArray()) {
    if (str(parameter, "name") != "notification-event") continue;
    for (const json::Value& part : parameter["part"].GetArray()) {
      if (str(part, "name") == "event-number") numbers.push_back(str(part, "valueString"));
    }
  }
  return numbers;
}

class Subscriptions : public ::testing::Test {
 protected:
  void SetUp() override {
    config_path_ = (data_.path() / "config.json").string();
    std::ofstream config(config_path_);
    config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "endpoint": ")" << payer_a_.url("/bundles") << R"(" },
    { "id": "northwind-commercial", "name": "Northwind Health Plan", "format": "northwind-commercial",
      "endpoint": ")" << payer_b_.url("/bundles") << R"(" }
  ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 200 }
})";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
    ASSERT_NE(gateway_->port(), 0);
  }

  // Creates a Subscription on `topic` to the HIE receiver; returns its id once it is active.
  std::string subscribe(const std::string& topic, const std::string& content, const std::vector<std::string>& filters,
                        int heartbeat_seconds = 0) {
    std::string criteria_ext;
    for (const std::string& filter : filters) {
      criteria_ext += std::string(criteria_ext.empty() ? "" : ",") + R"({"url": ")" + kBackport +
                      R"(backport-filter-criteria", "valueString": ")" + filter + R"("})";
    }
    std::string channel_ext = R"({"url": ")" + std::string(kBackport) + R"(backport-timeout", "valueUnsignedInt": 5})";
    if (heartbeat_seconds > 0) {
      channel_ext += R"(, {"url": ")" + std::string(kBackport) + R"(backport-heartbeat-period", "valueUnsignedInt": )" +
                     std::to_string(heartbeat_seconds) + "}";
    }
    const std::string body = R"({
  "resourceType": "Subscription",
  "meta": {"profile": [")" + std::string(kBackport) + R"(backport-subscription"]},
  "status": "requested",
  "reason": "HIE feed",
  "criteria": ")" + std::string(kTopicBase) + topic + R"(",
  )" + (criteria_ext.empty() ? std::string() : R"("_criteria": {"extension": [)" + criteria_ext + "]},") + R"(
  "channel": {
    "extension": [)" + channel_ext + R"(],
    "type": "rest-hook",
    "endpoint": ")" + hie_.url("/notify") + R"(",
    "payload": "application/fhir+json",
    "_payload": {"extension": [{"url": ")" + std::string(kBackport) + R"(backport-payload-content", "valueCode": ")" + content + R"("}]},
    "header": ["Authorization: Bearer hie-token"]
  }
})";
    HttpResult created = gateway_->post("/fhir/Subscription", body, "application/fhir+json");
    EXPECT_EQ(created.status, 201) << created.body;
    const std::string id = str(GatewayFixture_parse(created.body), "id");
    // The handshake arrives first and makes the subscription active.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (str(GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id).body), "status") == "active") return id;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "subscription " << id << " did not become active";
    return id;
  }

  static json::Document GatewayFixture_parse(const std::string& text) {
    auto doc = json::parse(text);
    EXPECT_TRUE(doc.ok()) << text;
    return doc.ok() ? std::move(*doc) : json::Document();
  }

  // Event notifications the subscriber accepted, de-duplicated by Idempotency-Key as the
  // contract asks receivers to do (a retry after a slow answer is a legitimate repeat).
  std::vector<ReceivedRequest> notifications() const {
    std::vector<ReceivedRequest> out;
    std::set<std::string> keys;
    for (const ReceivedRequest& request : hie_.accepted()) {
      if (request.header("x-event-number").empty()) continue;
      if (keys.insert(request.header("idempotency-key")).second) out.push_back(request);
    }
    return out;
  }

  TempDir data_;
  LoopbackReceiver payer_a_;
  LoopbackReceiver payer_b_;
  LoopbackReceiver hie_;
  std::string config_path_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(Subscriptions, ClaimsGoToThePayerCoveringTheDateOfServiceOnly) {
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("evt-june", "2026-06-15")).status, 202);
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("evt-july", "2026-07-10")).status, 202);
  ASSERT_TRUE(payer_a_.waitForAccepted(1, 20s));
  ASSERT_TRUE(payer_b_.waitForAccepted(1, 20s));
  // Both deliveries are in; a third would have been queued before them for the same payer.
  auto to_a = payer_a_.accepted();
  auto to_b = payer_b_.accepted();
  ASSERT_EQ(to_a.size(), 1u);
  ASSERT_EQ(to_b.size(), 1u);
  EXPECT_NE(to_a[0].body.find("\"servicedDate\":\"2026-06-15\""), std::string::npos);
  EXPECT_NE(to_b[0].body.find("\"servicedDate\":\"2026-07-10\""), std::string::npos);
  EXPECT_EQ(to_a[0].header("idempotency-key"), "lakeshore-medicaid:1");
  EXPECT_EQ(to_b[0].header("idempotency-key"), "northwind-commercial:1");
}

TEST_F(Subscriptions, UncoveredDateWaitsAsUnroutable) {
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("evt-2025", "2025-12-15")).status, 202);
  json::Document list = GatewayFixture_parse(gateway_->get("/admin/unroutable").body);
  ASSERT_EQ(list["items"].Size(), 1u);
  EXPECT_EQ(str(list["items"][0], "dateOfService"), "2025-12-15");
  EXPECT_EQ(str(list["items"][0], "code"), "99451");
  EXPECT_NE(str(list["items"][0], "reason").find("no coverage"), std::string::npos);
  EXPECT_EQ(str(list["items"][0]["outcome"], "resourceType"), "OperationOutcome");
}

TEST_F(Subscriptions, WaitingClaimIsRoutedWhenARosterCoversItsDate) {
  std::string event = readFile(testDataDir() / "econsult" / "response.json");
  event = replaceOnce(event, "\"end\": \"2026-12-31\"", "\"end\": \"2026-06-30\"");
  event = replaceOnce(event, "\"dateOfService\": \"2026-10-03\"", "\"dateOfService\": \"2026-07-10\"");
  ASSERT_EQ(gateway_->post("/ingest/econsult", event).status, 202);
  ASSERT_EQ(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Size(), 1u);

  // Lakeshore's roster extends the member's coverage (payer-formats.md roster columns); the row
  // matches the e-consult patient by the member id the event gave.
  const std::string roster =
      "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
      "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n"
      "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260701,20261231,1093817462,1467583922,20260701,\r\n";
  HttpResult posted = gateway_->post("/ingest/roster/lakeshore-medicaid", roster, "text/csv");
  ASSERT_EQ(posted.status, 200) << posted.body;
  ASSERT_TRUE(payer_a_.waitForAccepted(1, 20s));
  EXPECT_NE(payer_a_.accepted()[0].body.find("\"servicedDate\":\"2026-07-10\""), std::string::npos);
  EXPECT_EQ(payer_a_.accepted()[0].header("x-event-number"), "1");
  EXPECT_TRUE(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Empty());
  EXPECT_TRUE(payer_b_.accepted().empty());
}

TEST_F(Subscriptions, FilteredSubscriberGetsExactlyItsPayersEventsNumberedWithoutGaps) {
  const std::string id = subscribe("billing-routed", "full-resource", {"Claim?payer=lakeshore-medicaid"});
  // The handshake came first, without an event number, carrying the channel header.
  ASSERT_GE(hie_.accepted().size(), 1u);
  const ReceivedRequest handshake = hie_.accepted()[0];
  EXPECT_EQ(handshake.header("x-event-number"), "");
  EXPECT_EQ(handshake.header("authorization"), "Bearer hie-token");
  EXPECT_EQ(statusParameter(GatewayFixture_parse(handshake.body), "type"), "handshake");

  const std::vector<std::pair<std::string, std::string>> events = {
      {"e1", "2026-06-01"}, {"e2", "2026-07-02"}, {"e3", "2026-06-20"}, {"e4", "2026-08-01"}, {"e5", "2026-01-05"}};
  for (const auto& [event_id, date] : events) {
    ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent(event_id, date)).status, 202);
  }
  // e1, e3 and e5 are lakeshore's; e2 and e4 are northwind's and must not reach this subscriber.
  ASSERT_TRUE(payer_a_.waitForAccepted(3, 20s));
  ASSERT_TRUE(payer_b_.waitForAccepted(2, 20s));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (notifications().size() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  std::vector<ReceivedRequest> received = notifications();
  ASSERT_EQ(received.size(), 3u);
  std::vector<std::string> dates;
  for (size_t i = 0; i < received.size(); ++i) {
    EXPECT_EQ(received[i].header("x-event-number"), std::to_string(i + 1));
    EXPECT_EQ(received[i].header("idempotency-key"), id + ":" + std::to_string(i + 1));
    json::Document bundle = GatewayFixture_parse(received[i].body);
    EXPECT_EQ(str(bundle, "type"), "history");
    EXPECT_EQ(statusParameter(bundle, "type"), "event-notification");
    EXPECT_EQ(statusParameter(bundle, "topic"), std::string(kTopicBase) + "billing-routed");
    EXPECT_EQ(statusParameter(bundle, "events-since-subscription-start"), std::to_string(i + 1));
    EXPECT_EQ(eventNumbers(bundle), std::vector<std::string>{std::to_string(i + 1)});
    ASSERT_EQ(bundle["entry"].Size(), 2u);
    const json::Value& claim = bundle["entry"][1]["resource"];  // full-resource: the Claim itself
    EXPECT_EQ(str(claim, "resourceType"), "Claim");
    dates.push_back(str(claim["item"][0], "servicedDate"));
  }
  EXPECT_EQ(dates, (std::vector<std::string>{"2026-06-01", "2026-06-20", "2026-01-05"}));

  json::Document status = GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id + "/$status").body);
  EXPECT_EQ(statusParameter(status, "type"), "query-status");
  EXPECT_EQ(statusParameter(status, "status"), "active");
  EXPECT_EQ(statusParameter(status, "events-since-subscription-start"), "3");
}

TEST_F(Subscriptions, PayloadContentShapesTheNotification) {
  const std::string id_only = subscribe("econsult-answered", "id-only", {});
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("e-id", "2026-06-01")).status, 202);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (notifications().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(notifications().size(), 1u);
  json::Document bundle = GatewayFixture_parse(notifications()[0].body);
  ASSERT_EQ(bundle["entry"].Size(), 2u);
  EXPECT_EQ(json::find(bundle["entry"][1], "resource"), nullptr);  // id-only: fullUrl, no resource
  EXPECT_NE(str(bundle["entry"][1], "fullUrl").find("/Communication/"), std::string::npos);

  // A known route with a method it does not take is 405 with Allow (query.md), not 404.
  ASSERT_EQ(gateway_->post("/fhir/Subscription/" + id_only, "", "application/fhir+json").status, 405);
  HttpResult removed = httpRequest(gateway_->port(), "DELETE", "/fhir/Subscription/" + id_only);
  EXPECT_EQ(removed.status, 200);
  EXPECT_EQ(gateway_->get("/fhir/Subscription/" + id_only).status, 404);

  const std::string empty = subscribe("econsult-answered", "empty", {});
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("e-empty", "2026-06-02", "NS-2")).status, 202);
  deadline = std::chrono::steady_clock::now() + 20s;
  while (notifications().size() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(notifications().size(), 2u);
  json::Document empty_bundle = GatewayFixture_parse(notifications()[1].body);
  EXPECT_EQ(empty_bundle["entry"].Size(), 1u);  // only the SubscriptionStatus
  EXPECT_EQ(eventNumbers(empty_bundle), std::vector<std::string>{"1"});
}

TEST_F(Subscriptions, HeartbeatsArriveWhenNothingHappens) {
  subscribe("econsult-requested", "id-only", {}, 1);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  size_t heartbeats = 0;
  while (heartbeats < 2 && std::chrono::steady_clock::now() < deadline) {
    heartbeats = 0;
    for (const ReceivedRequest& request : hie_.accepted()) {
      if (statusParameter(GatewayFixture_parse(request.body), "type") == "heartbeat") {
        ++heartbeats;
        EXPECT_EQ(request.header("x-event-number"), "");
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GE(heartbeats, 2u);
}

TEST_F(Subscriptions, EventsOperationReturnsWhatAnOfflineReceiverMissed) {
  const std::string id = subscribe("econsult-requested", "full-resource", {});
  hie_.setStatus(503);  // the subscriber goes down
  for (int i = 0; i < 3; ++i) {
    std::string event = readFile(testDataDir() / "econsult" / "request.json");
    event = replaceOnce(event, "evt-7f3a-0001", "evt-missed-" + std::to_string(i));
    event = replaceOnce(event, "EC-2026-000451", "EC-missed-" + std::to_string(i));
    ASSERT_EQ(gateway_->post("/ingest/econsult", event).status, 202);
  }
  json::Document events = GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id + "/$events?eventsSinceNumber=2").body);
  EXPECT_EQ(statusParameter(events, "type"), "query-event");
  EXPECT_EQ(statusParameter(events, "events-since-subscription-start"), "3");
  EXPECT_EQ(eventNumbers(events), (std::vector<std::string>{"2", "3"}));
  ASSERT_EQ(events["entry"].Size(), 3u);
  EXPECT_EQ(str(events["entry"][1]["resource"], "resourceType"), "ServiceRequest");

  // The subscription reports the failing channel, and recovers when the receiver does.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (str(GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id).body), "status") != "error" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  json::Document failing = GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id).body);
  EXPECT_EQ(str(failing, "status"), "error");
  EXPECT_NE(str(failing, "error").find("503"), std::string::npos);
  hie_.setStatus(200);
  const auto recovered = std::chrono::steady_clock::now() + 20s;
  while (notifications().size() < 3 && std::chrono::steady_clock::now() < recovered) std::this_thread::sleep_for(20ms);
  std::vector<ReceivedRequest> delivered = notifications();
  ASSERT_EQ(delivered.size(), 3u);
  for (size_t i = 0; i < delivered.size(); ++i) EXPECT_EQ(delivered[i].header("x-event-number"), std::to_string(i + 1));
  EXPECT_EQ(str(GatewayFixture_parse(gateway_->get("/fhir/Subscription/" + id).body), "status"), "active");
}

TEST_F(Subscriptions, BadSubscriptionsAreRejectedWithTheirExpression) {
  HttpResult unknown_topic = gateway_->post("/fhir/Subscription", R"({"resourceType": "Subscription", "status": "requested",
    "reason": "x", "criteria": "https://example.org/SubscriptionTopic/nope",
    "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:1/x", "payload": "application/fhir+json"}})");
  EXPECT_EQ(unknown_topic.status, 422);
  json::Document outcome = GatewayFixture_parse(unknown_topic.body);
  EXPECT_EQ(json::stringView(outcome["issue"][0]["expression"][0]), "Subscription.criteria");

  HttpResult bad_filter = gateway_->post("/fhir/Subscription", std::string(R"({"resourceType": "Subscription", "status": "requested",
    "reason": "x", "criteria": ")") + kTopicBase + R"(billing-routed",
    "_criteria": {"extension": [{"url": ")" + kBackport + R"(backport-filter-criteria", "valueString": "Claim?colour=blue"}]},
    "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:1/x", "payload": "application/fhir+json"}})");
  EXPECT_EQ(bad_filter.status, 422);
  EXPECT_NE(bad_filter.body.find("cannot filter by 'colour'"), std::string::npos);

  HttpResult topics = gateway_->get("/fhir/SubscriptionTopic");
  ASSERT_EQ(topics.status, 200);
  EXPECT_EQ(GatewayFixture_parse(topics.body)["entry"].Size(), 10u);
  json::Document metadata = GatewayFixture_parse(gateway_->get("/fhir/metadata").body);
  // The topics are on the Subscription resource entry, where backport clients look (issue 15).
  const json::Value* subscription_entry = nullptr;
  for (const json::Value& resource : metadata["rest"][0]["resource"].GetArray()) {
    if (json::getString(resource, "type") == "Subscription") subscription_entry = &resource;
  }
  ASSERT_NE(subscription_entry, nullptr);
  EXPECT_EQ((*subscription_entry)["extension"].Size(), 10u);
}

// The roster columns of payer-formats.md.
constexpr const char* kRosterHeader =
    "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
    "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n";

// tests/data/econsult/response.json billing 99451 on `date` with the patient's coverage block
// replaced by `coverage` (a JSON array).
std::string eventWithCoverage(const std::string& event_id, const std::string& date, const std::string& coverage) {
  std::string event = readFile(testDataDir() / "econsult" / "response.json");
  event = replaceOnce(event, "evt-7f3a-0002", event_id);
  event = replaceOnce(event, R"([{ "payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid",
                   "start": "2026-01-01", "end": "2026-12-31" }])",
                      coverage);
  return replaceOnce(event, "\"dateOfService\": \"2026-10-03\"", "\"dateOfService\": \"" + date + "\"");
}

// Ids as the contracts derive them (econsult-event.md id table, payer-formats.md).
std::string coverageId(const std::string& payer, const std::string& member) {
  return fhir::deriveId({"Coverage", payer, member});
}
std::string rosterPatientId(const std::string& payer, const std::string& member) {
  return fhir::deriveId({"Patient", "https://fhir.alignment-gateway.org/CodeSystem/member-id/" + payer, member});
}

const json::Value* resourceIn(const json::Value& bundle, const std::string& type, const std::string& id) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value* resource = json::find(entry, "resource");
    if (resource != nullptr && str(*resource, "resourceType") == type && str(*resource, "id") == id) return resource;
  }
  return nullptr;
}

std::string idOfFirst(const json::Value& bundle, const std::string& type) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    if (str(entry["resource"], "resourceType") == type) return str(entry["resource"], "id");
  }
  ADD_FAILURE() << "no " << type;
  return {};
}

// A roster row's own Patient, linked to the patient that survives it.
void expectReplacedBy(GatewayProcess& gateway, const std::string& replaced, const std::string& survivor) {
  HttpResult read = gateway.get("/fhir/Patient/" + replaced);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find(R"("link":[{"other":{"reference":"Patient/)" + survivor + R"("},"type":"replaced-by"}])"),
            std::string::npos)
      << read.body;
}

TEST_F(Subscriptions, ReroutedClaimTakesTheCoverageOfItsDateAndAnnouncesBillingRouted) {
  const std::string subscription = subscribe("billing-routed", "full-resource", {"Claim?payer=lakeshore-medicaid"});
  // Lakeshore covers until 2026-05-31 and Northwind from 2026-08-01: a claim of 2026-06-15 waits,
  // created with the patient's last coverage (Northwind's) because R4 Claim.insurance is 1..*.
  HttpResult posted = gateway_->post("/ingest/econsult", eventWithCoverage("evt-gap", "2026-06-15", R"([
      { "payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid", "start": "2026-01-01", "end": "2026-05-31" },
      { "payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial", "start": "2026-08-01" }])"));
  ASSERT_EQ(posted.status, 202) << posted.body;
  json::Document answer = GatewayFixture_parse(posted.body);
  const std::string patient_id = idOfFirst(answer, "Patient");
  const std::string claim_id = idOfFirst(answer, "Claim");
  const std::string lakeshore_coverage = coverageId("lakeshore-medicaid", "LMC00918273");
  EXPECT_EQ(str(resourceIn(answer, "Claim", claim_id)->operator[]("insurance")[0]["coverage"], "reference"),
            "Coverage/" + coverageId("northwind-commercial", "NW-55"));
  ASSERT_EQ(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Size(), 1u);

  // Lakeshore's roster extends the member's coverage to 2026-06-30; the row matches the patient
  // by the member id the event gave.
  const std::string roster = std::string(kRosterHeader) +
                             "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20260630,1093817462,1467583922,20260101,\r\n";
  ASSERT_EQ(gateway_->post("/ingest/roster/lakeshore-medicaid", roster, "text/csv").status, 200);
  ASSERT_TRUE(payer_a_.waitForAccepted(1, 20s));
  json::Document delivered = GatewayFixture_parse(payer_a_.accepted()[0].body);
  const json::Value* claim = resourceIn(delivered, "Claim", claim_id);
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(str((*claim)["insurance"][0]["coverage"], "reference"), "Coverage/" + lakeshore_coverage);
  EXPECT_EQ(str((*claim)["insurer"], "reference"),
            "Organization/" + fhir::deriveId({"Organization", "payer", "lakeshore-medicaid"}));
  const json::Value* coverage = resourceIn(delivered, "Coverage", lakeshore_coverage);
  ASSERT_NE(coverage, nullptr);
  EXPECT_EQ(str((*coverage)["beneficiary"], "reference"), "Patient/" + patient_id);
  EXPECT_EQ(str((*coverage)["period"], "end"), "2026-06-30");
  EXPECT_NE(resourceIn(delivered, "Patient", patient_id), nullptr);
  EXPECT_TRUE(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Empty());

  // The store agrees: a second version of the Claim, the roster's Coverage about the known
  // patient, and no second Patient for the same member.
  json::Document stored_claim = GatewayFixture_parse(gateway_->get("/fhir/Claim/" + claim_id).body);
  EXPECT_EQ(str(stored_claim["meta"], "versionId"), "2");
  EXPECT_EQ(str(stored_claim["insurance"][0]["coverage"], "reference"), "Coverage/" + lakeshore_coverage);
  json::Document stored_coverage = GatewayFixture_parse(gateway_->get("/fhir/Coverage/" + lakeshore_coverage).body);
  EXPECT_EQ(str(stored_coverage["beneficiary"], "reference"), "Patient/" + patient_id);
  // The roster's own Patient stays resolvable, replaced by the event's (issue 11: one surviving
  // Patient, the others linked to it).
  expectReplacedBy(*gateway_, rosterPatientId("lakeshore-medicaid", "LMC00918273"), patient_id);

  // The subscriber filtered on lakeshore hears of the routing once, with the new version.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (notifications().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  std::vector<ReceivedRequest> received = notifications();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].header("idempotency-key"), subscription + ":1");
  json::Document notification = GatewayFixture_parse(received[0].body);
  EXPECT_EQ(statusParameter(notification, "topic"), std::string(kTopicBase) + "billing-routed");
  const json::Value& focus = notification["entry"][1]["resource"];
  EXPECT_EQ(str(focus, "id"), claim_id);
  EXPECT_EQ(str(focus["insurance"][0]["coverage"], "reference"), "Coverage/" + lakeshore_coverage);
  EXPECT_TRUE(payer_b_.accepted().empty());
}

TEST_F(Subscriptions, RosterRowMatchesAPatientByNameBirthDateAndSex) {
  // The e-consult gives no Lakeshore member id: only Northwind coverage from 2026-07-01.
  HttpResult posted = gateway_->post("/ingest/econsult", eventWithCoverage("evt-no-member", "2026-06-15", R"([
      { "payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial", "start": "2026-07-01" }])"));
  ASSERT_EQ(posted.status, 202) << posted.body;
  json::Document answer = GatewayFixture_parse(posted.body);
  const std::string patient_id = idOfFirst(answer, "Patient");
  const std::string claim_id = idOfFirst(answer, "Claim");
  ASSERT_EQ(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Size(), 1u);

  // Row 1 is the same person (family, first given name, birth date, sex); row 2 is born a day
  // later and stays a patient of its own.
  const std::string roster = std::string(kRosterHeader) +
                             "LMC-77001,Okafor,Adaeze,19610319,F,medicaid,20260101,20261231,1093817462,,20260101,\r\n"
                             "LMC-77002,Okafor,Adaeze,19610320,F,medicaid,20260101,20261231,1093817462,,20260101,\r\n";
  HttpResult loaded = gateway_->post("/ingest/roster/lakeshore-medicaid", roster, "text/csv");
  ASSERT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(json::numberAsInt64(GatewayFixture_parse(loaded.body)["accepted"]), 2);
  ASSERT_TRUE(payer_a_.waitForAccepted(1, 20s));
  json::Document delivered = GatewayFixture_parse(payer_a_.accepted()[0].body);
  const json::Value* claim = resourceIn(delivered, "Claim", claim_id);
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(str((*claim)["patient"], "reference"), "Patient/" + patient_id);
  EXPECT_EQ(str((*claim)["insurance"][0]["coverage"], "reference"), "Coverage/" + coverageId("lakeshore-medicaid", "LMC-77001"));
  const json::Value* coverage = resourceIn(delivered, "Coverage", coverageId("lakeshore-medicaid", "LMC-77001"));
  ASSERT_NE(coverage, nullptr);
  EXPECT_EQ(str(*coverage, "subscriberId"), "LMC-77001");
  EXPECT_EQ(str((*coverage)["beneficiary"], "reference"), "Patient/" + patient_id);
  EXPECT_TRUE(GatewayFixture_parse(gateway_->get("/admin/unroutable").body)["items"].Empty());

  expectReplacedBy(*gateway_, rosterPatientId("lakeshore-medicaid", "LMC-77001"), patient_id);
  EXPECT_EQ(gateway_->get("/fhir/Patient/" + rosterPatientId("lakeshore-medicaid", "LMC-77002")).status, 200);
  json::Document other = GatewayFixture_parse(gateway_->get("/fhir/Coverage/" + coverageId("lakeshore-medicaid", "LMC-77002")).body);
  EXPECT_EQ(str(other["beneficiary"], "reference"), "Patient/" + rosterPatientId("lakeshore-medicaid", "LMC-77002"));
  EXPECT_EQ(payer_a_.accepted().size(), 1u);
  EXPECT_TRUE(payer_b_.accepted().empty());
}

}  // namespace
}  // namespace fhir::testing

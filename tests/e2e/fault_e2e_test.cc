// SPDX-License-Identifier: Apache-2.0
// Fault test (issue 6): 10,000 events ingested while the gateway is SIGKILLed at random 20 times
// and the receivers fail 30% of requests and stall some. Afterwards, per receiver and after
// de-duplication by Idempotency-Key: event numbers are exactly 1..N, every billing Claim reached
// its payer once, and nothing reached a receiver that its routing or filter excludes.

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kEvents = 10000;
constexpr int kKills = 20;
constexpr int kClients = 8;

// 30% of answers are 503, a few requests stall past the gateway's timeout (and then succeed on
// the receiver's side, so the gateway's retry is a duplicate only Idempotency-Key can remove).
std::function<int(const ReceivedRequest&)> flakyResponder(unsigned seed) {
  auto random = std::make_shared<std::mt19937>(seed);
  return [random](const ReceivedRequest&) {
    const unsigned roll = (*random)() % 1000;
    if (roll < 300) return 503;
    if (roll < 303) return LoopbackReceiver::kStall;
    return 200;
  };
}

struct Deduplicated {
  std::map<int64_t, std::string> by_number;  // X-Event-Number -> body
  size_t duplicates = 0;
  bool consistent = true;  // every repeat of a key carried the same number and body
};

// What must repeat exactly when a delivery is retried. A notification's Bundle timestamp and its
// SubscriptionStatus (current status, send time) describe the attempt, and its fullUrls carry the
// server's base URL, whose port changes with every restart in this test; its focus repeats.
std::string repeatablePart(const std::string& body) {
  if (body.find("\"type\":\"history\"") == std::string::npos) return body;
  size_t focus = body.find("{\"fullUrl\":\"http");
  if (focus == std::string::npos) return {};
  static const std::regex kBase("http://127\\.0\\.0\\.1:[0-9]+");
  return std::regex_replace(body.substr(focus), kBase, "BASE");
}

Deduplicated deduplicate(const std::vector<ReceivedRequest>& requests, const std::string& key_prefix) {
  Deduplicated result;
  std::map<std::string, std::pair<std::string, std::string>> seen;  // key -> number, body
  for (const ReceivedRequest& request : requests) {
    const std::string number = request.header("x-event-number");
    if (number.empty()) continue;  // handshake or heartbeat
    const std::string key = request.header("idempotency-key");
    auto [it, inserted] = seen.emplace(key, std::make_pair(number, repeatablePart(request.body)));
    if (!inserted) {
      ++result.duplicates;
      result.consistent &= it->second.first == number && it->second.second == repeatablePart(request.body);
      continue;
    }
    result.consistent &= key == key_prefix + ":" + number;
    result.by_number.emplace(std::stoll(number), request.body);
  }
  return result;
}

bool gapFree(const Deduplicated& received, size_t expected) {
  if (received.by_number.size() != expected) return false;
  int64_t next = 1;
  for (const auto& [number, body] : received.by_number) {
    if (number != next++) return false;
  }
  return true;
}

// servicedDate values of the Claims in a set of delivered bodies.
std::multiset<std::string> claimDates(const Deduplicated& received) {
  std::multiset<std::string> dates;
  for (const auto& [number, body] : received.by_number) {
    size_t at = body.find("\"servicedDate\":\"");
    if (at != std::string::npos) dates.insert(body.substr(at + 16, 10));
  }
  return dates;
}

TEST(FaultTest, KillsAndFlakyReceiversLoseAndDuplicateNothing) {
  TempDir data;
  LoopbackReceiver payer_a, payer_b, feed, subscriber;
  payer_a.setResponder(flakyResponder(1));
  payer_b.setResponder(flakyResponder(2));
  feed.setResponder(flakyResponder(3));
  for (LoopbackReceiver* receiver : {&payer_a, &payer_b, &feed, &subscriber}) receiver->setStall(1500ms);
  const std::string config_path = (data.path() / "config.json").string();
  {
    std::ofstream config(config_path);
    config << R"({ "dataDir": ")" << (data.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore", "format": "lakeshore-medicaid", "endpoint": ")" << payer_a.url("/b") << R"(" },
    { "id": "northwind-commercial", "name": "Northwind", "format": "northwind-commercial", "endpoint": ")" << payer_b.url("/b") << R"(" } ],
  "feeds": [ { "id": "hie", "endpoint": ")" << feed.url("/f") << R"(" } ],
  "delivery": { "timeoutMs": 1000, "initialBackoffMs": 2, "maxBackoffMs": 20 } })";
  }
  auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
  ASSERT_NE(gateway->port(), 0);

  // The HIE subscribes to lakeshore's routed claims; the subscriber answers reliably until the
  // handshake is done, then flakes like the others.
  const std::string subscription = std::string(R"({"resourceType": "Subscription", "status": "requested", "reason": "fault test",
    "criteria": "https://fhir.alignment-gateway.org/SubscriptionTopic/billing-routed",
    "_criteria": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
                                 "valueString": "Claim?payer=lakeshore-medicaid"}]},
    "channel": {"type": "rest-hook", "endpoint": ")") + subscriber.url("/s") + R"(", "payload": "application/fhir+json",
      "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                                  "valueCode": "full-resource"}]}}})";
  HttpResult created = gateway->post("/fhir/Subscription", subscription, "application/fhir+json");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string subscription_id = std::string(*json::getString(*json::parse(created.body), "id"));
  ASSERT_TRUE(subscriber.waitForAccepted(1, 10s));
  subscriber.setResponder(flakyResponder(4));

  // Event i bills a date in lakeshore's period (first half of 2026) or northwind's (second half).
  auto dateOf = [](int i) {
    const int month = 1 + (i * 7) % 12;
    char date[32];
    std::snprintf(date, sizeof(date), "2026-%02d-%02d", month, 1 + (i % 28));
    return std::string(date);
  };
  size_t expected_a = 0;
  for (int i = 0; i < kEvents; ++i) expected_a += dateOf(i) <= "2026-06-30";
  const size_t expected_b = kEvents - expected_a;

  std::mutex gateway_mutex;
  std::atomic<uint16_t> port{gateway->port()};
  std::atomic<int> next_event{0};
  std::atomic<int> retries{0};
  std::atomic<bool> ingest_done{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int i = next_event++; i < kEvents; i = next_event++) {
        const std::string body = billingEvent("fault-" + std::to_string(i), dateOf(i), "MRN-" + std::to_string(i % 50));
        for (;;) {  // retry until acknowledged: idempotency makes a resend safe
          try {
            HttpResult result = httpRequest(port.load(), "POST", "/ingest/econsult", body);
            if (result.status == 202) break;
            ADD_FAILURE() << "event " << i << ": " << result.status << " " << result.body;
            break;
          } catch (const std::exception&) {
            retries++;
            std::this_thread::sleep_for(20ms);
          }
        }
      }
    });
  }
  std::thread killer([&] {
    std::mt19937 random(42);
    for (int k = 0; k < kKills; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 900));
      std::lock_guard lock(gateway_mutex);
      gateway->kill();
      gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
      port = gateway->port();
    }
  });
  killer.join();
  for (auto& client : clients) client.join();
  ingest_done = true;

  // Everything acknowledged must now arrive; wait until each receiver has all of it.
  auto complete = [&] {
    return deduplicate(feed.accepted(), "hie").by_number.size() >= kEvents &&
           deduplicate(payer_a.accepted(), "lakeshore-medicaid").by_number.size() >= expected_a &&
           deduplicate(payer_b.accepted(), "northwind-commercial").by_number.size() >= expected_b &&
           deduplicate(subscriber.accepted(), subscription_id).by_number.size() >= expected_a;
  };
  const auto deadline = std::chrono::steady_clock::now() + 300s;
  while (!complete() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200ms);
  std::this_thread::sleep_for(500ms);  // anything extra that was still on its way

  const Deduplicated to_feed = deduplicate(feed.accepted(), "hie");
  const Deduplicated to_a = deduplicate(payer_a.accepted(), "lakeshore-medicaid");
  const Deduplicated to_b = deduplicate(payer_b.accepted(), "northwind-commercial");
  const Deduplicated to_subscriber = deduplicate(subscriber.accepted(), subscription_id);
  std::printf("fault test: %d events, %d kills, %d client retries; received (distinct/duplicates): "
              "feed %zu/%zu, lakeshore %zu/%zu (expected %zu), northwind %zu/%zu (expected %zu), subscriber %zu/%zu\n",
              kEvents, kKills, retries.load(), to_feed.by_number.size(), to_feed.duplicates, to_a.by_number.size(),
              to_a.duplicates, expected_a, to_b.by_number.size(), to_b.duplicates, expected_b,
              to_subscriber.by_number.size(), to_subscriber.duplicates);

  EXPECT_TRUE(gapFree(to_feed, kEvents));
  EXPECT_TRUE(gapFree(to_a, expected_a));
  EXPECT_TRUE(gapFree(to_b, expected_b));
  EXPECT_TRUE(gapFree(to_subscriber, expected_a));
  EXPECT_TRUE(to_feed.consistent);
  EXPECT_TRUE(to_a.consistent);
  EXPECT_TRUE(to_b.consistent);
  EXPECT_TRUE(to_subscriber.consistent);

  // Routing and filter: lakeshore and its subscriber only see first-half dates, northwind only
  // second-half ones, and each Claim date appears as often as it was billed.
  std::multiset<std::string> billed_a, billed_b;
  for (int i = 0; i < kEvents; ++i) (dateOf(i) <= "2026-06-30" ? billed_a : billed_b).insert(dateOf(i));
  EXPECT_EQ(claimDates(to_a), billed_a);
  EXPECT_EQ(claimDates(to_b), billed_b);
  EXPECT_EQ(claimDates(to_subscriber), billed_a);
  std::lock_guard lock(gateway_mutex);
  gateway.reset();
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
#include "tests/e2e/fault_checks.h"

#include <cstdio>
#include <memory>
#include <random>
#include <regex>

#include <gtest/gtest.h>

#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing::fault {

std::function<int(const ReceivedRequest&)> flakyResponder(unsigned seed) {
  auto random = std::make_shared<std::mt19937>(seed);
  return [random](const ReceivedRequest&) {
    const unsigned roll = (*random)() % 1000;
    if (roll < 300) return 503;
    if (roll < 303) return LoopbackReceiver::kStall;
    return 200;
  };
}

std::string dateOf(int i) {
  const int month = 1 + (i * 7) % 12;
  char date[32];
  std::snprintf(date, sizeof(date), "2026-%02d-%02d", month, 1 + (i % 28));
  return date;
}

bool isLakeshore(int i) { return dateOf(i) <= "2026-06-30"; }

std::string eventBody(int i) {
  return billingEvent("fault-" + std::to_string(i), dateOf(i), "MRN-" + std::to_string(i % 50));
}

std::string configJson(const std::string& data_dir, const LoopbackReceiver& payer_a, const LoopbackReceiver& payer_b,
                       const LoopbackReceiver& feed, const std::string& extra) {
  return R"({ "dataDir": ")" + data_dir + R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore", "format": "lakeshore-medicaid", "endpoint": ")" +
         payer_a.url("/b") + R"(" },
    { "id": "northwind-commercial", "name": "Northwind", "format": "northwind-commercial", "endpoint": ")" +
         payer_b.url("/b") + R"(" } ],
  "feeds": [ { "id": "hie", "endpoint": ")" + feed.url("/f") + R"(" } ],
  "delivery": { "timeoutMs": 1000, "initialBackoffMs": 2, "maxBackoffMs": 20 })" +
         (extra.empty() ? "" : ",\n  " + extra) + " }";
}

std::string subscriptionJson(const std::string& endpoint) {
  return R"({"resourceType": "Subscription", "status": "requested", "reason": "fault test",
    "criteria": "https://fhir.alignment-gateway.org/SubscriptionTopic/billing-routed",
    "_criteria": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
                                 "valueString": "Claim?payer=lakeshore-medicaid"}]},
    "channel": {"type": "rest-hook", "endpoint": ")" + endpoint + R"(", "payload": "application/fhir+json",
      "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                                  "valueCode": "full-resource"}]}}})";
}

namespace {

// What must repeat exactly when a delivery is retried. A notification's Bundle timestamp and its
// SubscriptionStatus (current status, send time) describe the attempt, and its fullUrls carry the
// server's base URL, whose port changes with every restart in these tests; its focus repeats.
std::string repeatablePart(const std::string& body) {
  if (body.find("\"type\":\"history\"") == std::string::npos) return body;
  size_t focus = body.find("{\"fullUrl\":\"http");
  if (focus == std::string::npos) return {};
  static const std::regex kBase("http://127\\.0\\.0\\.1:[0-9]+");
  return std::regex_replace(body.substr(focus), kBase, "BASE");
}

}  // namespace

Deduplicated deduplicate(const std::vector<ReceivedRequest>& requests, const std::string& key_prefix) {
  Deduplicated result;
  std::map<std::string, std::pair<std::string, std::string>> seen;  // key -> number, body
  std::map<int64_t, uint64_t> first_arrival;                         // number -> earliest arrival
  for (const ReceivedRequest& request : requests) {
    const std::string number = request.header("x-event-number");
    if (number.empty()) continue;  // handshake or heartbeat
    const std::string key = request.header("idempotency-key");
    const int64_t value = std::stoll(number);
    auto [arrival, first] = first_arrival.emplace(value, request.arrival);
    if (!first) arrival->second = std::min(arrival->second, request.arrival);
    auto [it, inserted] = seen.emplace(key, std::make_pair(number, repeatablePart(request.body)));
    if (!inserted) {
      ++result.duplicates;
      result.consistent &= it->second.first == number && it->second.second == repeatablePart(request.body);
      continue;
    }
    result.consistent &= key == key_prefix + ":" + number;
    result.by_number.emplace(value, request.body);
  }
  // A destination has one request in flight at a time: number n is sent only after n - 1 was
  // accepted, so the first arrivals rise with the numbers.
  uint64_t previous = 0;
  for (const auto& [number, arrival] : first_arrival) {
    result.in_order &= arrival > previous;
    previous = arrival;
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

std::multiset<std::string> claimDates(const Deduplicated& received) {
  std::multiset<std::string> dates;
  for (const auto& [number, body] : received.by_number) {
    size_t at = body.find("\"servicedDate\":\"");
    if (at != std::string::npos) dates.insert(body.substr(at + 16, 10));
  }
  return dates;
}

bool Receivers::complete(int events) {
  size_t expected_a = 0;
  for (int i = 0; i < events; ++i) expected_a += isLakeshore(i);
  const size_t expected_b = static_cast<size_t>(events) - expected_a;
  return deduplicate(feed.accepted(), "hie").by_number.size() >= static_cast<size_t>(events) &&
         deduplicate(payer_a.accepted(), "lakeshore-medicaid").by_number.size() >= expected_a &&
         deduplicate(payer_b.accepted(), "northwind-commercial").by_number.size() >= expected_b &&
         deduplicate(subscriber.accepted(), subscription_id).by_number.size() >= expected_a;
}

void Receivers::check(const std::string& name, int events) {
  std::multiset<std::string> billed_a, billed_b;
  for (int i = 0; i < events; ++i) (isLakeshore(i) ? billed_a : billed_b).insert(dateOf(i));
  const Deduplicated to_feed = deduplicate(feed.accepted(), "hie");
  const Deduplicated to_a = deduplicate(payer_a.accepted(), "lakeshore-medicaid");
  const Deduplicated to_b = deduplicate(payer_b.accepted(), "northwind-commercial");
  const Deduplicated to_subscriber = deduplicate(subscriber.accepted(), subscription_id);
  std::printf("%s: received (distinct/duplicates): feed %zu/%zu (expected %d), lakeshore %zu/%zu (expected %zu), "
              "northwind %zu/%zu (expected %zu), subscriber %zu/%zu (expected %zu)\n",
              name.c_str(), to_feed.by_number.size(), to_feed.duplicates, events, to_a.by_number.size(), to_a.duplicates,
              billed_a.size(), to_b.by_number.size(), to_b.duplicates, billed_b.size(), to_subscriber.by_number.size(),
              to_subscriber.duplicates, billed_a.size());
  std::fflush(stdout);

  EXPECT_TRUE(gapFree(to_feed, static_cast<size_t>(events)));
  EXPECT_TRUE(gapFree(to_a, billed_a.size()));
  EXPECT_TRUE(gapFree(to_b, billed_b.size()));
  EXPECT_TRUE(gapFree(to_subscriber, billed_a.size()));
  for (const Deduplicated* received : {&to_feed, &to_a, &to_b, &to_subscriber}) {
    EXPECT_TRUE(received->consistent);
    EXPECT_TRUE(received->in_order);
  }
  // Routing and filter: lakeshore and its subscriber only see first-half dates, northwind only
  // second-half ones, and each Claim date appears as often as it was billed.
  EXPECT_EQ(claimDates(to_a), billed_a);
  EXPECT_EQ(claimDates(to_b), billed_b);
  EXPECT_EQ(claimDates(to_subscriber), billed_a);
}

}  // namespace fhir::testing::fault

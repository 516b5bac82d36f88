// SPDX-License-Identifier: Apache-2.0
#include "gateway/delivery/delivery.h"

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/config/config.h"
#include "conformance/common/metrics.h"
#include "tests/gateway/forwarding_store.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

namespace fhir::gateway {
namespace {

TEST(SignatureTest, MatchesRfc4231TestCase2) {
  // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CircuitBreakerTest, OpensAfterConsecutiveFailuresThenLetsOneProbeThrough) {
  CircuitBreaker breaker(3, 1000);
  EXPECT_EQ(breaker.state(0), CircuitBreaker::State::kClosed);
  EXPECT_FALSE(breaker.recordFailure(10));
  breaker.recordSuccess();  // a success in between starts the count again
  EXPECT_FALSE(breaker.recordFailure(20));
  EXPECT_FALSE(breaker.recordFailure(30));
  EXPECT_TRUE(breaker.allows(30));
  EXPECT_TRUE(breaker.recordFailure(40));  // the third in a row
  EXPECT_EQ(breaker.state(41), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(breaker.allows(1039));
  EXPECT_EQ(breaker.openUntilMs(), 1040);
  EXPECT_EQ(breaker.state(1040), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(breaker.recordFailure(1050));  // the probe failed: open again
  EXPECT_EQ(breaker.state(1051), CircuitBreaker::State::kOpen);
  EXPECT_EQ(breaker.state(2050), CircuitBreaker::State::kHalfOpen);
  breaker.recordSuccess();
  EXPECT_EQ(breaker.state(2051), CircuitBreaker::State::kClosed);
}

TEST(CircuitBreakerTest, ZeroFailuresMeansNeverOpen) {
  CircuitBreaker breaker(0, 1000);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(breaker.recordFailure(i));
  EXPECT_EQ(breaker.state(100), CircuitBreaker::State::kClosed);
}

// The cut record makes exactly the Bundle the whole record makes, for the modes that use it.
TEST(LightRecordTest, GivesTheSameNotificationAsTheWholeRecord) {
  auto claim = json::parse(R"({"resourceType":"Claim","id":"c-1","status":"active","total":{"value":1.50}})");
  auto patient = json::parse(R"({"resourceType":"Patient","id":"p-1"})");
  ASSERT_TRUE(claim.ok() && patient.ok());
  const std::string record =
      notificationRecord("https://fhir.alignment-gateway.org/SubscriptionTopic/claim-received", "Claim/c-1",
                         {&*patient, &*claim});
  for (PayloadContent content : {PayloadContent::kEmpty, PayloadContent::kIdOnly}) {
    Subscription subscription;
    subscription.id = "s-1";
    subscription.status = "active";
    subscription.topic = "https://fhir.alignment-gateway.org/SubscriptionTopic/claim-received";
    subscription.content = content;
    const std::string light = lightRecord(record, content);
    EXPECT_LT(light.size(), record.size());
    std::string whole = *notificationBundle(subscription, NotificationType::kEventNotification, 7, {{7, record}}, "http://x/fhir");
    std::string cut = *notificationBundle(subscription, NotificationType::kEventNotification, 7, {{7, light}}, "http://x/fhir");
    // The Bundle's timestamp is the time of building: compare without it.
    auto withoutTimestamp = [](std::string text) {
      const size_t at = text.find("\"timestamp\":\"");
      return at == std::string::npos ? text : text.erase(at, 38);
    };
    EXPECT_EQ(withoutTimestamp(cut), withoutTimestamp(whole));
  }
  EXPECT_EQ(lightRecord(record, PayloadContent::kFullResource), record);
  EXPECT_EQ(lightRecord("{\"odd\":1}", PayloadContent::kIdOnly), "{\"odd\":1}");
}

// The worker's batched store calls: rows above a number, many delivered-marks in one job, a
// failure recorded without waiting.
// Errors stay errors (issue 12): a notification event whose stored record cannot be read makes
// the Bundle an error naming it ($events answers 500, delivery records a failed attempt), never
// a Bundle that silently leaves the event out.
TEST(LightRecordTest, AnUnreadableStoredRecordIsAnErrorNamingTheEventNotABundleWithoutIt) {
  auto claim = json::parse(R"({"resourceType":"Claim","id":"c-1","status":"active"})");
  ASSERT_TRUE(claim.ok());
  const std::string record =
      notificationRecord("https://fhir.alignment-gateway.org/SubscriptionTopic/claim-received", "Claim/c-1", {&*claim});
  Subscription subscription;
  subscription.id = "s-1";
  subscription.status = "active";
  subscription.topic = "https://fhir.alignment-gateway.org/SubscriptionTopic/claim-received";
  subscription.content = PayloadContent::kFullResource;
  auto whole = notificationBundle(subscription, NotificationType::kQueryEvent, 8, {{7, record}}, "http://x/fhir");
  ASSERT_TRUE(whole.ok()) << whole.message();
  auto broken = notificationBundle(subscription, NotificationType::kQueryEvent, 8, {{7, record}, {8, "{\"resources\":["}},
                                   "http://x/fhir");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.message().find("notification event 8 of Subscription/s-1 is unreadable"), std::string::npos)
      << broken.message();
}

TEST(OutboxBatchTest, PendingAfterAndBatchedMarks) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  std::vector<IngestCommit> commits;
  for (int i = 0; i < 5; ++i) {
    IngestCommit commit;
    commit.channel = "econsult";
    commit.idempotency_key = "k" + std::to_string(i);
    commit.outbox.push_back({"feed:hie", "bundle", "body-" + std::to_string(i + 1)});
    commits.push_back(std::move(commit));
  }
  ASSERT_TRUE((*store)->commitIngestMany(std::move(commits)).ok());
  auto after = (*store)->pendingAfter("feed:hie", 2, 2);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].number, 3);
  EXPECT_EQ((*after)[1].body, "body-4");

  auto head = *(*store)->pendingHead("feed:hie", 10);
  std::promise<Status> marked;
  (*store)->recordDeliveredManyAsync({{head[0].id, 1, 200, "", 1}, {head[1].id, 2, 200, "", 1}},
                                     [&](const Status& status) { marked.set_value(status); });
  EXPECT_TRUE(marked.get_future().get().ok());
  std::promise<Status> failed;
  (*store)->recordFailedAsync({head[2].id, 3, 503, "HTTP 503", 1}, 99, true,
                              [&](const Status& status) { failed.set_value(status); });
  EXPECT_TRUE(failed.get_future().get().ok());
  auto left = *(*store)->pendingHead("feed:hie", 10);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].number, 4);  // 1, 2 delivered, 3 a dead letter
  EXPECT_EQ((*(*store)->listDeadLetters(10))[0].last_error, "HTTP 503");
  EXPECT_EQ((*(*store)->attemptsOf(head[0].id)).size(), 1u);
}

TEST(DeliveryConfigTest, ReadsBreakerKeysAndEndpointOptions) {
  testing::TempDir dir;
  const std::string pem = (dir.path() / "client.pem").string();
  std::ofstream(pem) << "not checked here, only readable\n";
  auto config = parseConfig(R"({"payers": [{"id": "p", "name": "P", "format": "f", "endpoint": "https://127.0.0.1:1/b",
      "authHeader": {"name": "Authorization", "value": "Bearer t"}, "clientCert": ")" + pem + R"(", "caFile": ")" + pem +
                            R"(", "batchWindowMs": 250}],
      "feeds": [{"id": "h", "endpoint": "http://127.0.0.1:2/n", "authHeader": {"name": "X-Api-Key", "value": "k"}}],
      "delivery": {"circuitBreakerFailures": 4, "circuitBreakerCoolDownMs": 9000}})");
  ASSERT_TRUE(config.ok()) << config.message();
  const EndpointOptions& payer = config->payers[0].options;
  EXPECT_EQ(payer.auth_header_name, "Authorization");
  EXPECT_EQ(payer.auth_header_value, "Bearer t");
  EXPECT_EQ(payer.client_cert, pem);
  EXPECT_EQ(payer.client_key, "");
  EXPECT_EQ(payer.ca_file, pem);
  EXPECT_EQ(payer.batch_window_ms, 250);
  EXPECT_EQ(config->feeds[0].options.auth_header_name, "X-Api-Key");
  EXPECT_EQ(config->delivery.circuit_breaker_failures, 4);
  EXPECT_EQ(config->delivery.circuit_breaker_cool_down_ms, 9000);

  // Defaults: 5 failures, 30 s, or maxBackoffMs when that is shorter.
  auto defaults = parseConfig(R"({"delivery": {"maxBackoffMs": 20}})");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->delivery.circuit_breaker_failures, 5);
  EXPECT_EQ(defaults->delivery.circuit_breaker_cool_down_ms, 20);
  EXPECT_EQ(parseConfig("{}")->delivery.circuit_breaker_cool_down_ms, 30000);
}

TEST(DeliveryConfigTest, BadOptionsNameTheirKey) {
  const std::string payer = R"({"payers": [{"id": "p", "name": "P", "format": "f", "endpoint": ")";
  auto error = [&](const std::string& endpoint, const std::string& extra) {
    auto config = parseConfig(payer + endpoint + "\"" + extra + "}]}");
    return config.ok() ? std::string("accepted") : config.message();
  };
  EXPECT_EQ(error("https://h/b", R"(, "authHeader": {"name": "Authorization"})"),
            "missing required configuration key 'payers[0].authHeader.value'");
  EXPECT_EQ(error("https://h/b", R"(, "authHeader": {"name": "Bad Name", "value": "v"})"),
            "configuration key 'payers[0].authHeader.name' must be an HTTP header name");
  EXPECT_EQ(error("https://h/b", R"(, "authHeader": {"name": "A", "value": "v", "extra": 1})"),
            "unknown configuration key 'payers[0].authHeader.extra'");
  EXPECT_EQ(error("http://h/b", R"(, "caFile": "/etc/hostname")"),
            "configuration key 'payers[0].caFile' needs an https:// endpoint");
  EXPECT_EQ(error("https://h/b", R"(, "clientCert": "/nonexistent/cert.pem")"),
            "configuration key 'payers[0].clientCert': cannot read file '/nonexistent/cert.pem'");
  EXPECT_EQ(error("https://h/b", R"(, "clientKey": "/etc/hostname")"),
            "configuration key 'payers[0].clientKey' needs 'clientCert' beside it");
  EXPECT_EQ(error("https://h/b", R"(, "batchWindowMs": -1)"),
            "configuration key 'payers[0].batchWindowMs' must be at least 0");
  auto unknown = parseConfig(R"({"delivery": {"circuitBreaker": 3}})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.message(), "unknown configuration key 'delivery.circuitBreaker'");
  auto negative = parseConfig(R"({"delivery": {"circuitBreakerFailures": -1}})");
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.message(), "configuration key 'delivery.circuitBreakerFailures' must be at least 0");
}

// Two delivery services on one data directory (two store handles, as two gateway processes):
// only the lease holder sends a destination's rows, so the receiver never has two of its
// requests at once and gets every number once, in order; when the holder stops (releasing its
// lease) the other takes the destination over and goes on from the next row.
TEST(DeliveryLeaseTest, TwoServicesOnOneStoreNeverSendADestinationAtOnce) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  testing::TempDir dir;
  auto store_a = openSqliteStore(dir.path().string());
  auto store_b = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store_a.ok() && store_b.ok());
  testing::LoopbackReceiver feed;
  std::atomic<int> in_flight{0};
  std::atomic<int> overlaps{0};
  feed.setResponder([&](const testing::ReceivedRequest&) {
    if (in_flight.fetch_add(1) != 0) overlaps++;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    in_flight.fetch_sub(1);
    return 200;
  });
  Config config;
  config.feeds.push_back(FeedConfig{"hie", feed.url("/feed"), "", {}, ""});
  auto commitRows = [&](int from, int to) {
    std::vector<IngestCommit> commits;
    for (int i = from; i <= to; ++i) {
      IngestCommit commit;
      commit.channel = "econsult";
      commit.idempotency_key = "k" + std::to_string(i);
      commit.outbox.push_back({"feed:hie", "bundle", "body-" + std::to_string(i)});
      commits.push_back(std::move(commit));
    }
    ASSERT_TRUE((*store_a)->commitIngestMany(std::move(commits)).ok());
  };
  commitRows(1, 40);
  Metrics metrics_a, metrics_b;
  auto a = std::make_unique<DeliveryService>(config, *store_a, metrics_a);
  DeliveryService b(config, *store_b, metrics_b);
  ASSERT_NE(a->leaseHolder(), b.leaseHolder());
  a->start();
  b.start();
  ASSERT_TRUE(feed.waitForAccepted(40, std::chrono::seconds(30)));
  auto lease = (*store_a)->leaseOf("feed:hie");
  ASSERT_TRUE(lease.ok() && lease->has_value());
  const bool a_holds = (*lease)->holder == a->leaseHolder();
  EXPECT_TRUE(a_holds || (*lease)->holder == b.leaseHolder());

  // The holder stops and releases; the other one goes on.
  DeliveryService* rest = &b;
  if (a_holds) {
    a->stop();
  } else {
    b.stop();
    rest = a.get();
  }
  commitRows(41, 60);
  rest->wake();
  ASSERT_TRUE(feed.waitForAccepted(60, std::chrono::seconds(30)));
  a.reset();
  b.stop();
  std::vector<int64_t> numbers;
  for (const testing::ReceivedRequest& request : feed.accepted()) numbers.push_back(std::stoll(request.header("x-event-number")));
  std::vector<int64_t> expected;
  for (int64_t i = 1; i <= 60; ++i) expected.push_back(i);
  EXPECT_EQ(numbers, expected);
  EXPECT_EQ(overlaps.load(), 0);
  auto after = (*store_a)->leaseOf("feed:hie");
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());  // released on stop
  curl_global_cleanup();
}

// A store whose lease reads and claims fail while `fail` is set.
class LeaseFailingStore final : public test_stores::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<bool> fail_reads{true};
  std::atomic<bool> fail_claims{false};
  std::atomic<int> failed_reads{0};
  std::atomic<int> failed_claims{0};
  Result<std::optional<OutboxLease>> leaseOf(std::string_view destination) override {
    if (fail_reads) return injected(failed_reads);
    return inner_->leaseOf(destination);
  }
  Result<OutboxLease> claimLease(std::string_view destination, std::string_view holder, int64_t now_ms, int64_t duration_ms,
                                 std::string_view dead_holder) override {
    if (fail_claims) return injected(failed_claims);
    return inner_->claimLease(destination, holder, now_ms, duration_ms, dead_holder);
  }

 private:
  static Error injected(std::atomic<int>& count) {
    ++count;
    return Error{"disk I/O error (injected)"};
  }
};

// Errors stay errors (issue 12): a store failing on the lease is counted and asked again, not
// taken for "another process holds it"; the rows wait and then go out once, in order.
TEST(DeliveryLeaseTest, AStoreFailureOnTheLeaseIsCountedAndRetriedAndTheRowsThenGoOutInOrder) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  testing::TempDir dir;
  auto opened = openSqliteStore(dir.path().string());
  ASSERT_TRUE(opened.ok());
  auto store = std::make_shared<LeaseFailingStore>(*opened);
  testing::LoopbackReceiver feed;
  Config config;
  config.feeds.push_back(FeedConfig{"hie", feed.url("/feed"), "", {}, ""});
  std::vector<IngestCommit> commits;
  for (int i = 1; i <= 3; ++i) {
    IngestCommit commit;
    commit.channel = "econsult";
    commit.idempotency_key = "k" + std::to_string(i);
    commit.outbox.push_back({"feed:hie", "bundle", "body-" + std::to_string(i)});
    commits.push_back(std::move(commit));
  }
  ASSERT_TRUE(store->commitIngestMany(std::move(commits)).ok());
  Metrics metrics;
  DeliveryService service(config, store, metrics);
  service.start();
  const std::string counted = R"(gateway_delivery_attempts_total{destination="feed:hie",result="lease_store_error"} )";
  auto waitFor = [](const std::atomic<int>& count) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (count.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return count.load();
  };
  // Reading the lease fails, then claiming it: each is counted, and asked again.
  ASSERT_GE(waitFor(store->failed_reads), 2) << "the lane did not ask for its lease again after a store failure";
  EXPECT_NE(metrics.render("").find(counted), std::string::npos) << metrics.render("");
  store->fail_claims = true;
  store->fail_reads = false;
  ASSERT_GE(waitFor(store->failed_claims), 2) << "the lane did not claim its lease again after a store failure";
  EXPECT_TRUE(feed.accepted().empty());
  auto lease = (*opened)->leaseOf("feed:hie");
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());  // nobody claimed it

  store->fail_claims = false;
  service.wake();
  ASSERT_TRUE(feed.waitForAccepted(3, std::chrono::seconds(30)));
  service.stop();
  std::vector<int64_t> numbers;
  for (const testing::ReceivedRequest& request : feed.accepted()) numbers.push_back(std::stoll(request.header("x-event-number")));
  EXPECT_EQ(numbers, (std::vector<int64_t>{1, 2, 3}));
  curl_global_cleanup();
}

}  // namespace
}  // namespace fhir::gateway

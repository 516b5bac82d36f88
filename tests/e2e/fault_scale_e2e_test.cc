// SPDX-License-Identifier: Apache-2.0
// Scale-out fault test (issue 17): three gateway processes on one PostgreSQL (the scripts/pg-test
// cluster), 10,000 events spread over them, 20 SIGKILLs of random instances (each restarted),
// one PostgreSQL restart mid-run, receivers failing 30% of requests and stalling some. Afterwards
// the checks of the single-instance fault test (fault_checks.h): per destination, after
// de-duplication by Idempotency-Key, numbers exactly 1..N in order, every billing Claim at its
// payer once, nothing a routing or filter excludes. While the server restarts, requests are
// answered 503 with Retry-After (counted, each checked) and sent again by the client; none is lost.
// The Subscription is created on one instance after all three started: the others learn of it
// from the store without a restart.

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/fault_checks.h"
#include "tests/support/test_postgres.h"
#include "gateway_paths.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kEvents = 10000;
constexpr int kInstances = 3;
constexpr int kKills = 20;
constexpr int kClients = 9;

// scripts/pg-test restart of the cluster the tests run on (GATEWAY_TEST_PG names its env file).
int restartPostgres() {
  const std::filesystem::path env_file = std::getenv("GATEWAY_TEST_PG");
  const std::string command = std::string(GATEWAY_SOURCE_DIR) + "/scripts/pg-test restart " +
                              env_file.parent_path().string();
  return std::system(command.c_str());
}

TEST(ScaleFaultTest, ThreeGatewaysOnOnePostgresqlSurviveKillsAndARestartLosingNothing) {
  auto cluster = testPostgres();
  ASSERT_TRUE(cluster.ok()) << cluster.message();
  TempDir data;
  fault::Receivers receivers;
  receivers.payer_a.setResponder(fault::flakyResponder(1));
  receivers.payer_b.setResponder(fault::flakyResponder(2));
  receivers.feed.setResponder(fault::flakyResponder(3));
  for (LoopbackReceiver* receiver : {&receivers.payer_a, &receivers.payer_b, &receivers.feed, &receivers.subscriber}) {
    receiver->setStall(1500ms);
  }
  // One store for the three; each instance has a data directory of its own.
  const std::string store = R"("store": { "kind": "postgresql", "url": ")" + cluster->url + R"(", "passwordFile": ")" +
                            cluster->password_file + R"(", "schema": ")" + testSchemaFor(data.path().string()) + R"(" })";
  std::array<std::string, kInstances> configs;
  for (int n = 0; n < kInstances; ++n) {
    configs[n] = (data.path() / ("config-" + std::to_string(n) + ".json")).string();
    std::ofstream(configs[n]) << fault::configJson((data.path() / ("var-" + std::to_string(n))).string(),
                                                   receivers.payer_a, receivers.payer_b, receivers.feed, store);
  }
  std::mutex gateways_mutex;  // the killer replaces gateways; clients only read ports
  std::array<std::unique_ptr<GatewayProcess>, kInstances> gateways;
  std::array<std::atomic<uint16_t>, kInstances> ports{};
  auto start = [&](int n) {
    gateways[n] = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", configs[n]});
    ports[n] = gateways[n]->port();
  };
  for (int n = 0; n < kInstances; ++n) {
    start(n);
    ASSERT_NE(ports[n].load(), 0);
  }

  // The HIE subscribes to lakeshore's routed claims through instance 0 once all three run; the
  // others learn of it from the store (SubscriptionSync, within a second), no restart. The
  // subscriber answers reliably until the handshake is done, then flakes like the others.
  HttpResult created = gateways[0]->post("/fhir/Subscription", fault::subscriptionJson(receivers.subscriber.url("/s")),
                                         "application/fhir+json");
  ASSERT_EQ(created.status, 201) << created.body;
  receivers.subscription_id = std::string(*json::getString(*json::parse(created.body), "id"));
  ASSERT_TRUE(receivers.subscriber.waitForAccepted(1, 10s));
  for (int n = 0; n < kInstances; ++n) {
    bool active = false;
    for (auto until = std::chrono::steady_clock::now() + 10s; !active && std::chrono::steady_clock::now() < until;) {
      HttpResult read = gateways[n]->get("/fhir/Subscription/" + receivers.subscription_id);
      active = read.status == 200 && json::getString(*json::parse(read.body), "status") == "active";
      if (!active) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(active) << "instance " << n << " does not know the Subscription as active";
  }
  receivers.subscriber.setResponder(fault::flakyResponder(4));

  std::atomic<int> next_event{0};
  std::atomic<int> connection_retries{0};
  std::atomic<int> unavailable{0};          // 503 answers (store unavailable), sent again
  std::atomic<int> without_retry_after{0};  // 503 answers lacking Retry-After
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      int target = c % kInstances;
      for (int i = next_event++; i < kEvents; i = next_event++) {
        const std::string body = fault::eventBody(i);
        for (;;) {  // until acknowledged, moving to the next instance on a failure: a resend is idempotent
          try {
            HttpResult result = httpRequest(ports[target].load(), "POST", "/ingest/econsult", body);
            if (result.status == 202) break;
            if (result.status == 503) {
              unavailable++;
              without_retry_after += result.retry_after.empty();
            } else {
              ADD_FAILURE() << "event " << i << ": " << result.status << " " << result.body;
              break;
            }
          } catch (const std::exception&) {
            connection_retries++;
          }
          target = (target + 1) % kInstances;
          std::this_thread::sleep_for(20ms);
        }
      }
    });
  }
  const auto started = std::chrono::steady_clock::now();
  int postgres_restarted = -1;
  std::thread killer([&] {
    std::mt19937 random(42);
    for (int k = 0; k < kKills; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 900));
      const int n = static_cast<int>(random() % kInstances);
      std::lock_guard lock(gateways_mutex);
      gateways[n]->kill();
      start(n);
      if (k == kKills / 2) postgres_restarted = restartPostgres();  // mid-run, all three connected
    }
  });
  killer.join();
  for (auto& client : clients) client.join();
  const double ingest_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(postgres_restarted, 0) << "scripts/pg-test restart failed";

  // Everything acknowledged must now arrive; wait until each receiver has all of it.
  const auto deadline = std::chrono::steady_clock::now() + 150s;
  while (!receivers.complete(kEvents) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200ms);
  std::this_thread::sleep_for(500ms);  // anything extra that was still on its way
  const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("scale fault test: %d events over %d instances in %.1f s (all delivered after %.1f s), %d kills, "
              "1 PostgreSQL restart, %d connection retries, %d answers 503 (%d without Retry-After)\n",
              kEvents, kInstances, ingest_seconds, total_seconds, kKills, connection_retries.load(), unavailable.load(),
              without_retry_after.load());
  receivers.check("scale fault test", kEvents);
  EXPECT_EQ(without_retry_after.load(), 0);
  std::lock_guard lock(gateways_mutex);
  for (auto& gateway : gateways) gateway.reset();
}

}  // namespace
}  // namespace fhir::testing

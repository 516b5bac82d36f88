// SPDX-License-Identifier: Apache-2.0
// Fault test (issue 6): 10,000 events ingested while the gateway is SIGKILLed at random 20 times
// and the receivers fail 30% of requests and stall some. Afterwards, per receiver and after
// de-duplication by Idempotency-Key: event numbers are exactly 1..N, every billing Claim reached
// its payer once, and nothing reached a receiver that its routing or filter excludes
// (fault_checks.h; fault_scale_e2e_test does the same with three gateways on PostgreSQL).

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/fault_checks.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kEvents = 10000;
constexpr int kKills = 20;
constexpr int kClients = 8;

TEST(FaultTest, KillsAndFlakyReceiversLoseAndDuplicateNothing) {
  TempDir data;
  fault::Receivers receivers;
  receivers.payer_a.setResponder(fault::flakyResponder(1));
  receivers.payer_b.setResponder(fault::flakyResponder(2));
  receivers.feed.setResponder(fault::flakyResponder(3));
  for (LoopbackReceiver* receiver : {&receivers.payer_a, &receivers.payer_b, &receivers.feed, &receivers.subscriber}) {
    receiver->setStall(1500ms);
  }
  const std::string config_path = (data.path() / "config.json").string();
  std::ofstream(config_path) << fault::configJson((data.path() / "var").string(), receivers.payer_a, receivers.payer_b,
                                                  receivers.feed);
  auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
  ASSERT_NE(gateway->port(), 0);

  // The HIE subscribes to lakeshore's routed claims; the subscriber answers reliably until the
  // handshake is done, then flakes like the others.
  HttpResult created = gateway->post("/fhir/Subscription", fault::subscriptionJson(receivers.subscriber.url("/s")),
                                     "application/fhir+json");
  ASSERT_EQ(created.status, 201) << created.body;
  receivers.subscription_id = std::string(*json::getString(*json::parse(created.body), "id"));
  ASSERT_TRUE(receivers.subscriber.waitForAccepted(1, 10s));
  receivers.subscriber.setResponder(fault::flakyResponder(4));

  std::mutex gateway_mutex;
  std::atomic<uint16_t> port{gateway->port()};
  std::atomic<int> next_event{0};
  std::atomic<int> retries{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int i = next_event++; i < kEvents; i = next_event++) {
        const std::string body = fault::eventBody(i);
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

  // Everything acknowledged must now arrive; wait until each receiver has all of it.
  const auto deadline = std::chrono::steady_clock::now() + 300s;
  while (!receivers.complete(kEvents) && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200ms);
  std::this_thread::sleep_for(500ms);  // anything extra that was still on its way
  std::printf("fault test: %d events, %d kills, %d client retries\n", kEvents, kKills, retries.load());
  receivers.check("fault test", kEvents);
  std::lock_guard lock(gateway_mutex);
  gateway.reset();
}

}  // namespace
}  // namespace fhir::testing

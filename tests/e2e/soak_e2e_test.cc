// SPDX-License-Identifier: Apache-2.0
// Issue 14 soak (labelled long, about 70 s): 64 connections trickling one header line every 10 s
// and 200 silent ones, all from 127.0.0.2, for 60 s, with the default limits; meanwhile a normal
// client on 127.0.0.1 posts events one after another. Every event is accepted and the normal
// client's p99 latency stays under 1 s. The hostile clients connect again whenever the gateway
// closes or refuses them.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Soak : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }
};

TEST_F(Soak, TricklingAndSilentConnectionsDoNotStarveANormalClient) {
  const uint16_t port = gateway_->port();
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::atomic<int> timed_out{0};
  std::vector<std::thread> hostile;
  // Trickling: a request line, then one header line every 10 s, never the end of the head.
  for (int index = 0; index < 64; ++index) {
    hostile.emplace_back([&, index] {
      while (!stop) {
        RawClient client(port, "127.0.0.2");
        if (!client.connected() || !client.send("GET /healthz HTTP/1.1\r\n")) {
          std::this_thread::sleep_for(200ms);
          continue;
        }
        for (int line = 0; !stop; ++line) {
          RawResponse answer = client.read(100);
          if (answer.status == 429) ++refused;
          if (answer.status == 408) ++timed_out;
          if (answer.status != 0) break;
          if (line % 100 == 99 && !client.send("X-Trickle-" + std::to_string(index) + ": 1\r\n")) break;
        }
        std::this_thread::sleep_for(200ms);
      }
    });
  }
  // Silent: connect and say nothing.
  for (int index = 0; index < 200; ++index) {
    hostile.emplace_back([&] {
      while (!stop) {
        RawClient client(port, "127.0.0.2");
        while (!stop && client.connected()) {
          RawResponse answer = client.read(250);
          if (answer.status == 429) ++refused;
          if (answer.status == 408) ++timed_out;
          if (answer.status != 0 || client.closedByPeer(0)) break;
        }
        std::this_thread::sleep_for(200ms);
      }
    });
  }

  std::vector<double> latencies_ms;
  int accepted = 0;
  int posted = 0;
  const auto end = Clock::now() + 60s;
  while (Clock::now() < end) {
    const std::string body = replaceOnce(event("response"), "evt-7f3a-0002", "soak-" + std::to_string(posted));
    const auto start = Clock::now();
    HttpResult result = gateway_->post("/ingest/econsult", body);
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    ++posted;
    if (result.status == 202) ++accepted;
    else if (posted - accepted <= 3) ADD_FAILURE() << "event " << posted << ": " << result.status << " " << result.body.substr(0, 300);
  }
  stop = true;
  for (std::thread& thread : hostile) thread.join();

  std::sort(latencies_ms.begin(), latencies_ms.end());
  const double p99 = latencies_ms[latencies_ms.size() * 99 / 100];
  std::printf("soak: %d events posted, %d accepted, p50 %.1f ms, p99 %.1f ms, max %.1f ms; hostile: %d refused (429), %d timed out (408)\n",
              posted, accepted, latencies_ms[latencies_ms.size() / 2], p99, latencies_ms.back(), refused.load(),
              timed_out.load());
  EXPECT_GT(posted, 10);
  EXPECT_EQ(accepted, posted);
  EXPECT_LT(p99, 1000.0);
  EXPECT_GT(refused.load(), 0);    // the per-address cap was reached
  EXPECT_GT(timed_out.load(), 0);  // the header deadline closed some
  EXPECT_EQ(gateway_->get("/healthz").status, 200);
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Delivery options of issue 6 through the real binary: the circuit breaker per destination (with
// a receiver that fails), a payer's auth header, mutual TLS with a client certificate made here
// by the openssl CLI (the receiver is a POCO NetSSL server that demands one), and the batching
// window.

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/X509Certificate.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "gateway/delivery/delivery.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One request as a TLS receiver saw it.
struct TlsRequest {
  Clock::time_point at;
  uint16_t peer_port = 0;
  std::string client_cn;  // common name of the client certificate
  std::string event_number;
  std::string body;
};

// An HTTPS receiver on 127.0.0.1 that requires a client certificate signed by `ca`.
class TlsReceiver {
 public:
  TlsReceiver(const std::string& key, const std::string& cert, const std::string& ca) {
    Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key, cert, ca,
                                                             Poco::Net::Context::VERIFY_STRICT, 9, false);
    context->enableSessionCache(true, "delivery-e2e");  // the session id context TLS resumption needs
    Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 64, context);
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), pool_, socket, params);
    server_->start();
  }
  ~TlsReceiver() {
    server_->stopAll(true);
    pool_.joinAll();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/bundles"; }
  std::vector<TlsRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  class Handler final : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(TlsReceiver* owner) : owner_(owner) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
      TlsRequest seen;
      seen.at = Clock::now();
      seen.peer_port = request.clientAddress().port();
      seen.event_number = request.get("X-Event-Number", "");
      try {
        Poco::Net::SecureStreamSocket tls(static_cast<Poco::Net::HTTPServerRequestImpl&>(request).socket());
        if (tls.havePeerCertificate()) seen.client_cn = tls.peerCertificate().commonName();
      } catch (const Poco::Exception& error) {
        seen.client_cn = "error: " + error.displayText();
      }
      Poco::StreamCopier::copyToString(request.stream(), seen.body);
      {
        std::lock_guard lock(owner_->mutex_);
        owner_->requests_.push_back(seen);
      }
      response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
      response.setContentLength(0);
      response.send();
    }

   private:
    TlsReceiver* owner_;
  };
  class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(TlsReceiver* owner) : owner_(owner) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handler(owner_);
    }

   private:
    TlsReceiver* owner_;
  };

  uint16_t port_ = 0;
  Poco::ThreadPool pool_{1, 4};
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  mutable std::mutex mutex_;
  std::vector<TlsRequest> requests_;
};

// A CA, a server certificate for 127.0.0.1 and a client certificate, made by the openssl CLI.
struct Certificates {
  explicit Certificates(const std::filesystem::path& dir) : dir_(dir) {
    const std::string d = dir.string();
    run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout " + d + "/ca.key -out " + d + "/ca.pem");
    for (const std::string name : {"server", "client"}) {
      const std::string cn = name == "server" ? "127.0.0.1" : "gateway-client";
      run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + cn + " -keyout " + d + "/" + name + ".key -out " + d + "/" +
          name + ".csr");
      // POCO checks the client's certificate against its address too, so both name 127.0.0.1.
      std::ofstream(d + "/" + name + ".ext") << "subjectAltName=IP:127.0.0.1\n"
                                             << (name == "server" ? "" : "extendedKeyUsage=clientAuth\n");
      run("openssl x509 -req -days 2 -in " + d + "/" + name + ".csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -extfile " + d + "/" + name + ".ext -out " + d + "/" + name + ".pem");
    }
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }

 private:
  static void run(const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
  }
  std::filesystem::path dir_;
};

// A gateway whose payer lakeshore-medicaid takes the given extra JSON members, beside
// northwind-commercial (billingEvent's coverage names both) and one feed.
class DeliveryOptions : public ::testing::Test {
 protected:
  void start(const std::string& payer_endpoint, const std::string& payer_extra, const std::string& feed_endpoint,
             const std::string& delivery) {
    const std::string path = (data_.path() / "config.json").string();
    std::ofstream config(path);
    config << R"({ "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [ { "id": "lakeshore-medicaid", "name": "Lakeshore", "format": "lakeshore-medicaid",
                "endpoint": ")" << payer_endpoint << "\"" << payer_extra << R"( },
              { "id": "northwind-commercial", "name": "Northwind", "format": "northwind-commercial",
                "endpoint": ")" << northwind_.url("/bundles") << R"(" } ],
  "feeds": [ { "id": "hie", "endpoint": ")" << feed_endpoint << R"(" } ],
  "delivery": )" << delivery << " }";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", path});
    ASSERT_NE(gateway_->port(), 0);
  }

  double metric(const std::string& name, const std::string& labels) const { return gateway_->metric(name, labels); }

  TempDir data_;
  LoopbackReceiver payer_;
  LoopbackReceiver feed_;
  LoopbackReceiver northwind_;
  std::unique_ptr<GatewayProcess> gateway_;
};

std::string econsult(const std::string& event_id) {
  std::string event = readFile(testDataDir() / "econsult" / "request.json");
  event = replaceOnce(event, "evt-7f3a-0001", event_id);
  return replaceOnce(event, "EC-2026-000451", "EC-" + event_id);
}

TEST_F(DeliveryOptions, CircuitBreakerStopsAFailingFeedForTheCoolDownThenProbesOnce) {
  start(payer_.url("/bundles"), "", feed_.url("/notify"),
        R"({ "initialBackoffMs": 10, "maxBackoffMs": 5000, "circuitBreakerFailures": 3, "circuitBreakerCoolDownMs": 1200 })");
  feed_.setStatus(503);
  ASSERT_EQ(gateway_->post("/ingest/econsult", econsult("cb-1")).status, 202);
  const std::string feed = R"(destination="feed:hie")";

  // Three quick failures (backoff 10, 20 ms) open the breaker: nothing more for the cool-down.
  ASSERT_TRUE(eventually([&] { return feed_.requests().size() >= 3; }, 10s));
  const auto opened = Clock::now();
  EXPECT_TRUE(eventually([&] { return metric("gateway_delivery_circuit_state", feed) == 1; }, 2s));
  EXPECT_EQ(metric("gateway_delivery_circuit_opened_total", feed), 1);
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(feed_.requests().size(), 3u) << "a request went out while the breaker was open";

  // The probe after the cool-down fails too: open again for another cool-down.
  ASSERT_TRUE(eventually([&] { return feed_.requests().size() >= 4; }, 5s));
  EXPECT_GE(Clock::now() - opened, 1000ms);
  const auto reopened = Clock::now();
  EXPECT_TRUE(eventually(
      [&] { return metric("gateway_delivery_circuit_opened_total", feed) == 2; }, 2s));
  feed_.setStatus(200);
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(feed_.requests().size(), 4u);

  // The next probe succeeds and closes it; the rows behind it follow at once, in order.
  ASSERT_EQ(gateway_->post("/ingest/econsult", econsult("cb-2")).status, 202);
  ASSERT_TRUE(feed_.waitForAccepted(2, 5s));
  EXPECT_GE(Clock::now() - reopened, 1000ms);
  const auto accepted = feed_.accepted();
  EXPECT_EQ(accepted[0].header("x-event-number"), "1");
  EXPECT_EQ(accepted[1].header("x-event-number"), "2");
  EXPECT_TRUE(eventually([&] { return metric("gateway_delivery_circuit_state", feed) == 0; }, 2s));
  EXPECT_EQ(feed_.requests().size(), 6u);  // 3 failures, a failed probe, the probe, the second row
}

TEST_F(DeliveryOptions, PayerGetsItsAuthHeaderAndSignature) {
  start(payer_.url("/bundles"), R"(, "secret": "s3", "authHeader": { "name": "Authorization", "value": "Bearer payer-token" })",
        feed_.url("/notify"), "{}");
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("auth-1", "2026-06-15")).status, 202);
  ASSERT_TRUE(payer_.waitForAccepted(1, 10s));
  const ReceivedRequest request = payer_.accepted()[0];
  EXPECT_EQ(request.header("authorization"), "Bearer payer-token");
  EXPECT_EQ(request.header("idempotency-key"), "lakeshore-medicaid:1");
  EXPECT_EQ(request.header("x-signature"), "sha256=" + fhir::gateway::hmacSha256Hex("s3", request.body));
  ASSERT_TRUE(feed_.waitForAccepted(1, 10s));
  EXPECT_EQ(feed_.accepted()[0].header("authorization"), "");  // the feed has no auth header
}

TEST_F(DeliveryOptions, MutualTlsDeliversWithTheClientCertificate) {
  TempDir keys;
  Certificates certificates(keys.path());
  TlsReceiver receiver(certificates.path("server.key"), certificates.path("server.pem"), certificates.path("ca.pem"));
  start(receiver.url(),
        R"(, "clientCert": ")" + certificates.path("client.pem") + R"(", "clientKey": ")" + certificates.path("client.key") +
            R"(", "caFile": ")" + certificates.path("ca.pem") + "\"",
        feed_.url("/notify"), "{}");
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("tls-1", "2026-06-15")).status, 202);
  ASSERT_TRUE(eventually([&] { return !receiver.requests().empty(); }, 10s)) << gateway_->get("/metrics").body;
  const TlsRequest request = receiver.requests()[0];
  EXPECT_EQ(request.client_cn, "gateway-client");
  EXPECT_EQ(request.event_number, "1");
  EXPECT_NE(request.body.find("\"servicedDate\":\"2026-06-15\""), std::string::npos);
}

TEST_F(DeliveryOptions, WithoutAClientCertificateTheTlsReceiverGetsNothing) {
  TempDir keys;
  Certificates certificates(keys.path());
  TlsReceiver receiver(certificates.path("server.key"), certificates.path("server.pem"), certificates.path("ca.pem"));
  start(receiver.url(), R"(, "caFile": ")" + certificates.path("ca.pem") + "\"", feed_.url("/notify"),
        R"({ "initialBackoffMs": 50, "maxBackoffMs": 200 })");
  ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent("tls-2", "2026-06-15")).status, 202);
  const std::string failures = R"(destination="payer:lakeshore-medicaid",result="transport")";
  ASSERT_TRUE(eventually([&] { return metric("gateway_delivery_attempts_total", failures) >= 2; }, 10s));
  EXPECT_TRUE(receiver.requests().empty());
  EXPECT_EQ(metric("gateway_delivery_attempts_total", R"(destination="payer:lakeshore-medicaid",result="delivered")"), -1);
}

TEST_F(DeliveryOptions, BatchingWindowHoldsClaimsThenSendsThemBackToBackOnOneConnection) {
  TempDir keys;
  Certificates certificates(keys.path());
  TlsReceiver receiver(certificates.path("server.key"), certificates.path("server.pem"), certificates.path("ca.pem"));
  start(receiver.url(),
        R"(, "clientCert": ")" + certificates.path("client.pem") + R"(", "clientKey": ")" + certificates.path("client.key") +
            R"(", "caFile": ")" + certificates.path("ca.pem") + R"(", "batchWindowMs": 4000)",
        feed_.url("/notify"), "{}");
  const auto first = Clock::now();
  for (const char* date : {"2026-06-01", "2026-06-02", "2026-06-03"}) {
    ASSERT_EQ(gateway_->post("/ingest/econsult", billingEvent(std::string("batch-") + date, date)).status, 202);
  }
  // The feed has no window. The window is long enough for the feed to be served well within it
  // on a loaded machine or under the sanitizers (1.9 s seen there with a window of 1.5 s).
  ASSERT_TRUE(feed_.waitForAccepted(3, 10s));
  EXPECT_LT(Clock::now() - first, 3500ms);
  EXPECT_TRUE(receiver.requests().empty());
  ASSERT_TRUE(eventually([&] { return receiver.requests().size() >= 3; }, 10s));
  const std::vector<TlsRequest> requests = receiver.requests();
  EXPECT_GE(requests[0].at - first, 3800ms);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(requests[i].event_number, std::to_string(i + 1));
    EXPECT_EQ(requests[i].peer_port, requests[0].peer_port) << "request " << i << " came on another connection";
    EXPECT_NE(requests[i].body.find("\"resourceType\":\"Claim\""), std::string::npos);  // one collection Bundle each
  }
  EXPECT_LT(requests[2].at - requests[0].at, 500ms);
}

}  // namespace
}  // namespace fhir::testing

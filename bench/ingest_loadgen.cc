// SPDX-License-Identifier: Apache-2.0
// Open-loop load generator for POST /ingest/econsult.
//
// Requests are scheduled at a fixed rate (t0 + i / rate) whatever the server does, and each
// latency is measured from its scheduled time, so a slow server shows up as latency rather than
// as a lower request rate (no coordinated omission). Each request is the template event with
// its eventId and consultId made unique.
//
//   ingest_loadgen --port 8080 --rate 500 --seconds 20 --connections 32 --event FILE
//                  (--port 8080,8081,8082: connection c goes to the (c mod 3)-th port, so one
//                  schedule is spread over several gateways; scripts/bench-scale)
//   ingest_loadgen --receive PORT      a payer/feed receiver: answers every POST 200 at once,
//                                      prints "receiving on port N", runs until SIGTERM/SIGINT
//                  [--max-p99-ms MS] [--timeline 1] [--authorization "Bearer TOKEN"] [--cacert FILE]
//
// --max-p99-ms: exit 3 when the p99 latency exceeds MS (scripts/bench-ingest's regression check).
// --timeline 1: print, per half second of scheduled time, the requests and their worst latency,
// which tells one long stall (a burst of slow requests) from a steady slowness.
// --authorization: sent as the Authorization header of every request (scripts/bench-auth).
// --cacert: connect with TLS (https), trusting the certificates in FILE.

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/NullStream.h>
#include <signal.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<int> ports{8080};
  double rate = 100;
  double seconds = 10;
  int connections = 16;
  std::string event_file;
  double max_p99_ms = 0;  // 0: no check
  bool timeline = false;
  std::string authorization;
  std::string cacert;  // non-empty: https
  std::string run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
};

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class Accept final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(request.stream(), sink);
    response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    response.setContentLength(0);
    response.send();
  }
};

class AcceptFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override { return new Accept; }
};

// A receiver standing in for payers and feeds, so deliveries flow while ingest is measured.
int receive(int port) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port)), 256);
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(16);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  Poco::Net::HTTPServer server(new AcceptFactory, socket, params);
  server.start();
  std::printf("receiving on port %u\n", static_cast<unsigned>(socket.address().port()));
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  server.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (argc == 3 && std::string(argv[1]) == "--receive") return receive(std::stoi(argv[2]));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--port") {
      options.ports.clear();
      std::stringstream list(value);
      for (std::string port; std::getline(list, port, ',');) options.ports.push_back(std::stoi(port));
    } else if (flag == "--rate") options.rate = std::stod(value);
    else if (flag == "--seconds") options.seconds = std::stod(value);
    else if (flag == "--connections") options.connections = std::stoi(value);
    else if (flag == "--event") options.event_file = value;
    else if (flag == "--max-p99-ms") options.max_p99_ms = std::stod(value);
    else if (flag == "--timeline") options.timeline = value != "0";
    else if (flag == "--authorization") options.authorization = value;
    else if (flag == "--cacert") options.cacert = value;
    else {
      std::cerr << "usage: ingest_loadgen --port P[,P...] --rate R --seconds S --connections C --event FILE "
                   "[--max-p99-ms MS] [--timeline 1] [--authorization VALUE] [--cacert FILE]\n";
      return 2;
    }
  }
  std::ifstream in(options.event_file);
  if (!in) {
    std::cerr << "ingest_loadgen: cannot read --event file '" << options.event_file << "'\n";
    return 2;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string event = buffer.str();
  const std::string event_id = "evt-7f3a-0001";
  const std::string consult_id = "EC-2026-000451";
  if (event.find(event_id) == std::string::npos || event.find(consult_id) == std::string::npos) {
    std::cerr << "ingest_loadgen: the event must contain eventId " << event_id << " and consultId " << consult_id << "\n";
    return 2;
  }

  const auto total = static_cast<int64_t>(options.rate * options.seconds);
  const auto interval = std::chrono::duration<double>(1.0 / options.rate);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> errors{0};
  std::mutex latencies_mutex;
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(total));
  // Per half second of scheduled time: requests and the worst latency (for --timeline).
  const size_t buckets = static_cast<size_t>(options.seconds * 2) + 2;
  std::vector<double> bucket_max(buckets, 0.0);
  std::vector<int64_t> bucket_count(buckets, 0);
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(100);

  Poco::Net::Context::Ptr tls;
  if (!options.cacert.empty()) {
    tls = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", options.cacert,
                                 Poco::Net::Context::VERIFY_RELAXED, 9, false);
  }
  std::vector<std::thread> workers;
  for (int c = 0; c < options.connections; ++c) {
    const int port = options.ports[static_cast<size_t>(c) % options.ports.size()];
    workers.emplace_back([&, port] {
      std::unique_ptr<Poco::Net::HTTPClientSession> owned;
      if (tls) owned = std::make_unique<Poco::Net::HTTPSClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port), tls);
      else owned = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port));
      Poco::Net::HTTPClientSession& session = *owned;
      session.setKeepAlive(true);
      session.setTimeout(Poco::Timespan(30, 0));
      std::vector<std::pair<int64_t, double>> mine;  // (index, latency ms)
      for (;;) {
        const int64_t index = next++;
        if (index >= total) break;
        const auto scheduled = start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(index));
        std::this_thread::sleep_until(scheduled);
        const std::string suffix = options.run_id + "-" + std::to_string(index);
        const std::string body = replaceAll(replaceAll(event, event_id, "evt-" + suffix), consult_id, "EC-" + suffix);
        try {
          Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/ingest/econsult", Poco::Net::HTTPMessage::HTTP_1_1);
          request.setContentType("application/json");
          request.setContentLength64(static_cast<Poco::Int64>(body.size()));
          request.setKeepAlive(true);
          if (!options.authorization.empty()) request.set("Authorization", options.authorization);
          session.sendRequest(request) << body;
          Poco::Net::HTTPResponse response;
          std::string answer;
          Poco::StreamCopier::copyToString(session.receiveResponse(response), answer);
          if (response.getStatus() != 202) errors++;
        } catch (const Poco::Exception&) {
          errors++;
          session.reset();
        }
        mine.emplace_back(index, std::chrono::duration<double, std::milli>(Clock::now() - scheduled).count());
      }
      std::lock_guard lock(latencies_mutex);
      for (const auto& [index, latency] : mine) {
        latencies.push_back(latency);
        const size_t bucket = std::min(buckets - 1, static_cast<size_t>(static_cast<double>(index) / options.rate * 2));
        bucket_max[bucket] = std::max(bucket_max[bucket], latency);
        bucket_count[bucket]++;
      }
    });
  }
  for (auto& worker : workers) worker.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * static_cast<double>(latencies.size())))];
  };
  std::printf("{\"requests\": %zu, \"errors\": %lld, \"targetRate\": %.0f, \"achievedRate\": %.1f, "
              "\"p50ms\": %.2f, \"p90ms\": %.2f, \"p99ms\": %.2f, \"maxms\": %.2f}\n",
              latencies.size(), static_cast<long long>(errors.load()), options.rate,
              static_cast<double>(latencies.size()) / elapsed, percentile(0.5), percentile(0.9),
              percentile(0.99), latencies.empty() ? 0.0 : latencies.back());
  if (options.timeline) {
    for (size_t bucket = 0; bucket < buckets; ++bucket) {
      if (bucket_count[bucket] == 0) continue;
      std::fprintf(stderr, "t=%5.1fs requests=%4lld worst=%8.1f ms%s\n", static_cast<double>(bucket) / 2,
                   static_cast<long long>(bucket_count[bucket]), bucket_max[bucket], bucket_max[bucket] > 100 ? "  <-- slow" : "");
    }
  }
  if (errors.load() != 0) return 1;
  if (options.max_p99_ms > 0 && percentile(0.99) > options.max_p99_ms) {
    std::fprintf(stderr, "ingest_loadgen: p99 %.2f ms exceeds the limit of %.0f ms at %.0f events/s\n", percentile(0.99),
                 options.max_p99_ms, options.rate);
    return 3;
  }
  return 0;
}

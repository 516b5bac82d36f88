// SPDX-License-Identifier: Apache-2.0
#include "tests/support/loopback_receiver.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <condition_variable>
#include <thread>

namespace fhir::testing {

struct LoopbackReceiver::State {
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  int status = 200;
  std::chrono::milliseconds stall{0};
  std::function<int(const ReceivedRequest&)> responder;
  std::string location;
  std::vector<std::pair<ReceivedRequest, int>> requests;
  uint64_t arrivals = 0;
};

namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(std::shared_ptr<LoopbackReceiver::State> state) : state_(std::move(state)) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    ReceivedRequest received;
    received.method = request.getMethod();
    received.path = request.getURI();
    for (const auto& [name, value] : request) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      received.headers[lower] = value;
    }
    Poco::StreamCopier::copyToString(request.stream(), received.body);
    int status;
    std::chrono::milliseconds stall{0};
    std::string location;
    {
      std::lock_guard lock(state_->mutex);
      received.arrival = ++state_->arrivals;
      location = state_->location;
      status = state_->responder ? state_->responder(received) : state_->status;
      if (status == LoopbackReceiver::kStall) {
        status = 200;
        stall = state_->stall;
      }
    }
    if (stall.count() > 0) std::this_thread::sleep_for(stall);
    {
      std::lock_guard lock(state_->mutex);
      state_->requests.emplace_back(received, status);
    }
    state_->changed.notify_all();
    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    if (!location.empty()) response.set("Location", location);
    response.setContentLength(0);
    response.send();
  }

 private:
  std::shared_ptr<LoopbackReceiver::State> state_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(std::shared_ptr<LoopbackReceiver::State> state) : state_(std::move(state)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(state_);
  }

 private:
  std::shared_ptr<LoopbackReceiver::State> state_;
};

}  // namespace

std::string ReceivedRequest::header(const std::string& name) const {
  auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

struct LoopbackReceiver::Server {
  Poco::ThreadPool pool{1, 16};
  std::unique_ptr<Poco::Net::HTTPServer> http;
  uint16_t port = 0;
};

LoopbackReceiver::LoopbackReceiver() : state_(std::make_shared<State>()), server_(std::make_unique<Server>()) {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  server_->port = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(16);
  server_->http = std::make_unique<Poco::Net::HTTPServer>(new Factory(state_), server_->pool, socket, params);
  server_->http->start();
}

LoopbackReceiver::~LoopbackReceiver() {
  server_->http->stopAll(true);
  server_->pool.joinAll();
}

uint16_t LoopbackReceiver::port() const { return server_->port; }

std::string LoopbackReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(server_->port) + path;
}

void LoopbackReceiver::setStatus(int status) {
  std::lock_guard lock(state_->mutex);
  state_->status = status;
}

void LoopbackReceiver::setLocation(const std::string& location) {
  std::lock_guard lock(state_->mutex);
  state_->location = location;
}

void LoopbackReceiver::setStall(std::chrono::milliseconds stall) {
  std::lock_guard lock(state_->mutex);
  state_->stall = stall;
}

void LoopbackReceiver::setResponder(std::function<int(const ReceivedRequest&)> responder) {
  std::lock_guard lock(state_->mutex);
  state_->responder = std::move(responder);
}

std::vector<ReceivedRequest> LoopbackReceiver::requests() const {
  std::lock_guard lock(state_->mutex);
  std::vector<ReceivedRequest> out;
  for (const auto& [request, status] : state_->requests) out.push_back(request);
  return out;
}

std::vector<ReceivedRequest> LoopbackReceiver::accepted() const {
  std::lock_guard lock(state_->mutex);
  std::vector<ReceivedRequest> out;
  for (const auto& [request, status] : state_->requests) {
    if (status >= 200 && status < 300) out.push_back(request);
  }
  return out;
}

bool LoopbackReceiver::waitForAccepted(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] {
    size_t accepted = 0;
    for (const auto& [request, status] : state_->requests) accepted += status >= 200 && status < 300;
    return accepted >= count;
  });
}

}  // namespace fhir::testing

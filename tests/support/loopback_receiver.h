// SPDX-License-Identifier: Apache-2.0
#pragma once

// A real HTTP receiver on 127.0.0.1 (port 0) standing in for a payer or HIE endpoint. It keeps
// every request it gets and answers as told (2xx, an error status, or a stall).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fhir::testing {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  // 1, 2, 3 ... in the order the requests were read (a stalled request is recorded after its
  // stall, but keeps the place it arrived in).
  uint64_t arrival = 0;
  std::string header(const std::string& name) const;
};

class LoopbackReceiver {
 public:
  LoopbackReceiver();
  ~LoopbackReceiver();

  uint16_t port() const;
  std::string url(const std::string& path = "/notify") const;

  // Status to answer with (default 200). Set to e.g. 503 to simulate an outage.
  void setStatus(int status);
  // A responder's answer meaning: wait `stall` (outside any lock), then answer 200.
  static constexpr int kStall = -1;
  void setStall(std::chrono::milliseconds stall);

  // A `Location` header on every answer (a redirect when the status is 3xx); empty: none.
  void setLocation(const std::string& location);
  // Decides the status per request (overrides setStatus while set).
  void setResponder(std::function<int(const ReceivedRequest&)> responder);

  std::vector<ReceivedRequest> requests() const;
  // Requests answered with 2xx, in arrival order.
  std::vector<ReceivedRequest> accepted() const;
  // Waits until at least `count` requests were accepted (2xx) or the timeout passes.
  bool waitForAccepted(size_t count, std::chrono::milliseconds timeout) const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  struct Server;
  std::unique_ptr<Server> server_;
};

}  // namespace fhir::testing

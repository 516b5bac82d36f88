// SPDX-License-Identifier: Apache-2.0
#pragma once

// Delivery of outbox rows to payers and feeds over HTTP (libcurl multi, one worker thread).
//
// Per destination, rows go out strictly in X-Event-Number order, one in flight at a time; a
// failed row is retried with exponential backoff and jitter until `giveUpAfterHours`, then
// becomes a dead letter and the next row goes. Every attempt is recorded in the store.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/config/config.h"
#include "gateway/server/metrics.h"
#include "gateway/store/store.h"

namespace fhir::gateway {

struct Destination {
  std::string key;       // "payer:<id>" / "feed:<id>": the outbox destination
  std::string id;        // payer or feed id: the prefix of Idempotency-Key
  std::string endpoint;
  std::string secret;    // empty: no X-Signature
};

// Lower-case hex HMAC-SHA256 of `body` with `secret`.
std::string hmacSha256Hex(std::string_view secret, std::string_view body);

class DeliveryService {
 public:
  DeliveryService(const Config& config, StorePtr store, Metrics& metrics);
  ~DeliveryService();
  DeliveryService(const DeliveryService&) = delete;
  DeliveryService& operator=(const DeliveryService&) = delete;

  void start();
  // Finishes in-flight requests (bounded by the timeout) and stops.
  void stop();
  // New outbox rows were committed.
  void wake();

 private:
  void run();

  const Config& config_;
  StorePtr store_;
  Metrics& metrics_;
  std::vector<Destination> destinations_;
  std::thread worker_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> woken_{false};
  void* multi_ = nullptr;  // CURLM*
};

}  // namespace fhir::gateway

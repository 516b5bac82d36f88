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
#include <optional>
#include <set>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/config/config.h"
#include "gateway/server/metrics.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"

namespace fhir::gateway {

struct Destination {
  std::string key;       // "payer:<id>" / "feed:<id>" / "subscription:<id>": the outbox destination
  std::string id;        // payer, feed or subscription id: the prefix of Idempotency-Key
  std::string endpoint;
  std::string secret;    // empty: no X-Signature
  std::vector<std::string> headers;          // extra "Name: value" headers (Subscription channel)
  std::optional<Subscription> subscription;  // set for subscriptions
};

// Lower-case hex HMAC-SHA256 of `body` with `secret`.
std::string hmacSha256Hex(std::string_view secret, std::string_view body);

class DeliveryService {
 public:
  DeliveryService(const Config& config, StorePtr store, Metrics& metrics);

  // Also deliver to topic-based subscriptions: handshake on activation, event notifications,
  // heartbeats. `base_url` is the FHIR base used in notification Bundles.
  void setSubscriptions(SubscriptionRegistry* registry, std::string base_url) {
    registry_ = registry;
    base_url_ = std::move(base_url);
  }
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
  std::vector<Destination> currentDestinations() const;
  void setSubscriptionStatus(const Subscription& subscription, const std::string& status, const std::string& error);

  const Config& config_;
  StorePtr store_;
  Metrics& metrics_;
  std::vector<Destination> destinations_;
  SubscriptionRegistry* registry_ = nullptr;
  std::string base_url_;
  std::thread worker_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> woken_{false};
  void* multi_ = nullptr;  // CURLM*

  // Rows delivered whose delivered-mark is not committed yet, per destination: they must not be
  // sent again meanwhile. Shared with the store's commit callbacks, which may outlive `this`.
  struct Uncommitted {
    std::mutex mutex;
    std::map<std::string, std::set<int64_t>> numbers;
  };
  std::shared_ptr<Uncommitted> uncommitted_ = std::make_shared<Uncommitted>();
};

}  // namespace fhir::gateway

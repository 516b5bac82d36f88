// SPDX-License-Identifier: Apache-2.0
#pragma once

// Delivery of outbox rows to payers, feeds and subscriptions over HTTP (libcurl multi, one
// worker thread).
//
// Per destination ("lane"), rows go out strictly in X-Event-Number order, one in flight at a
// time, on one reused easy handle whose connection is kept alive; the worker reads pending rows
// from the store in batches and commits delivered-marks in batches. A failed row is retried with
// exponential backoff and jitter until `giveUpAfterHours`, then becomes a dead letter and the
// next row goes. A circuit breaker per destination stops all requests to it for a cool-down after
// `circuitBreakerFailures` consecutive failures, then lets one probe through. Every attempt is
// recorded in the store.
//
// Leases: a lane sends only while this process holds its destination's outbox lease
// (Store::claimLease), so several gateway processes on one store never deliver one destination
// at the same time and its order holds. The lease runs at least three request timeouts and is
// extended whenever less than half of it is left before a request starts, so a request always
// ends inside the lease. A lease that is not extended runs out and another process takes the
// destination over, from its first pending row; a lease held by a process of this host that is
// gone (killed) is taken over at once. Leases are released on stop().

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/auth/policy.h"
#include "gateway/config/config.h"
#include "conformance/common/metrics.h"
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
  EndpointOptions options;                   // auth header, TLS client certificate, batching window
};

// For `id-only` and `empty` notifications only the topic, focus and timestamp of a stored record
// count (notificationRecord writes them first, then the resources): the record is cut before its
// resources and given the focus's type and id as its one resource, which makes the same Bundle
// without parsing the resources. Returns the record unchanged for `full-resource` or when it
// does not have that form.
std::string lightRecord(const std::string& record, PayloadContent content);

// Lower-case hex HMAC-SHA256 of `body` with `secret`.
std::string hmacSha256Hex(std::string_view secret, std::string_view body);

// Circuit breaker of one destination. Closed: requests go. After `failures` consecutive
// failures it opens for `cool_down_ms`; then it is half-open and lets one probe through, whose
// success closes it and whose failure opens it again.
class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
  CircuitBreaker(int64_t failures, int64_t cool_down_ms) : threshold_(failures), cool_down_ms_(cool_down_ms) {}

  State state(int64_t now_ms) const;
  bool allows(int64_t now_ms) const { return state(now_ms) != State::kOpen; }
  int64_t openUntilMs() const { return open_until_ms_; }
  // Returns true when this failure opened the breaker.
  bool recordFailure(int64_t now_ms);
  void recordSuccess();

 private:
  int64_t threshold_;  // 0: never opens
  int64_t cool_down_ms_;
  int64_t consecutive_ = 0;
  int64_t open_until_ms_ = 0;
};

class DeliveryService {
 public:
  DeliveryService(const Config& config, StorePtr store, Metrics& metrics);
  // Who holds this service's leases; the lease length (tests shorten it).
  const std::string& leaseHolder() const { return lease_holder_; }
  void setLeaseMs(int64_t lease_ms) { lease_ms_ = lease_ms; }

  // Also deliver to topic-based subscriptions: handshake on activation, event notifications,
  // heartbeats. `base_url` is the FHIR base used in notification Bundles.
  void setSubscriptions(SubscriptionRegistry* registry, std::string base_url) {
    registry_ = registry;
    base_url_ = std::move(base_url);
    std::string scheme, host;
    auth::splitUrl(base_url_, scheme, host, self_port_);
  }
  // Called on the worker thread after every delivery attempt (the audit, access.md): the
  // destination key, the endpoint's host, the HTTP status (0: none) and the failure, if any.
  using AttemptHook = std::function<void(const std::string& destination, const std::string& host, int status,
                                         const std::string& error)>;
  void setAudit(AttemptHook hook) { on_attempt_ = std::move(hook); }
  ~DeliveryService();
  DeliveryService(const DeliveryService&) = delete;
  DeliveryService& operator=(const DeliveryService&) = delete;

  void start();
  // Finishes in-flight requests (bounded by the timeout) and stops.
  void stop();
  // New outbox rows were committed.
  void wake();

  struct Lane;

 private:
  void run();
  std::vector<Destination> currentDestinations() const;
  void refreshLanes(int64_t now);
  // Starts the lane's next request when one is due; returns when it next wants attention.
  int64_t tryLaunch(Lane& lane, int64_t now);
  void fetchRows(Lane& lane, int64_t now);
  void launch(Lane& lane, int kind, int64_t now);
  void finish(Lane& lane, int code);
  void finishOutbox(Lane& lane, bool success, const DeliveryAttempt& attempt, const std::string& failure_class);
  void flushMarks();
  void publishBreaker(Lane& lane, int64_t now);
  void setSubscriptionStatus(Lane& lane, const std::string& status, const std::string& error);
  // True when this process holds the lane's lease for at least half a lease more, claiming or
  // extending it as needed; false when another live process holds it (or the store failed).
  bool holdLease(Lane& lane, int64_t now);
  void leaseStoreFailed(const std::string& destination, const char* doing, const std::string& message);
  void releaseLease(Lane& lane);

  const Config& config_;
  StorePtr store_;
  Metrics& metrics_;
  std::vector<Destination> destinations_;
  std::string lease_holder_;  // "<host>/<pid>/<nonce>"
  int64_t lease_ms_;
  SubscriptionRegistry* registry_ = nullptr;
  std::string base_url_;
  AttemptHook on_attempt_;
  int self_port_ = 0;  // the gateway's own port: no delivery connects to it on this host
  std::thread worker_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> wake_generation_{0};
  void* multi_ = nullptr;  // CURLM*
  std::map<std::string, std::unique_ptr<Lane>> lanes_;  // worker thread only
  std::vector<DeliveryAttempt> marks_;                  // delivered, not yet handed to the store
  std::vector<std::pair<std::string, int64_t>> marked_numbers_;

  // Rows settled (delivered or dead) whose mark is not committed yet, per destination: they must
  // not be sent again meanwhile. Shared with the store's commit callbacks, which may outlive `this`.
  struct Uncommitted {
    std::mutex mutex;
    std::map<std::string, std::set<int64_t>> numbers;
  };
  std::shared_ptr<Uncommitted> uncommitted_ = std::make_shared<Uncommitted>();
};

}  // namespace fhir::gateway

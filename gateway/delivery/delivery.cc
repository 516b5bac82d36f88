// SPDX-License-Identifier: Apache-2.0
#include "gateway/delivery/delivery.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <random>

#include "gateway/store/time_util.h"

namespace fhir::gateway {
namespace {

enum class FlightKind { kOutbox, kHandshake, kHeartbeat };

struct InFlight {
  FlightKind kind = FlightKind::kOutbox;
  OutboxItem item;
  Destination destination;
  std::string body;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string response;
  int64_t started_ms = 0;
};

size_t discardBody(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<std::string*>(user);
  if (response->size() < 4096) response->append(data, std::min(size * count, 4096 - response->size()));
  return size * count;
}

// Failure class for metrics: what kind of trouble a destination is in.
std::string failureClass(CURLcode code, long http_status) {
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout";
  if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST) return "connect";
  if (code != CURLE_OK) return "transport";
  if (http_status >= 500) return "http_5xx";
  if (http_status >= 400) return "http_4xx";
  return "http_other";
}

int64_t backoffMs(const DeliveryConfig& config, int attempts) {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  double delay = static_cast<double>(config.initial_backoff_ms);
  for (int i = 1; i < attempts && delay < static_cast<double>(config.max_backoff_ms); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(config.max_backoff_ms));
  // Jitter: 80%..120%, so retries of many destinations do not move in lock-step.
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::max<int64_t>(1, static_cast<int64_t>(delay * jitter(random)));
}

}  // namespace

std::string hmacSha256Hex(std::string_view secret, std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

DeliveryService::DeliveryService(const Config& config, StorePtr store, Metrics& metrics)
    : config_(config), store_(std::move(store)), metrics_(metrics) {
  for (const PayerConfig& payer : config.payers) {
    destinations_.push_back({"payer:" + payer.id, payer.id, payer.endpoint, payer.secret, {}, std::nullopt});
  }
  for (const FeedConfig& feed : config.feeds) {
    destinations_.push_back({"feed:" + feed.id, feed.id, feed.endpoint, feed.secret, {}, std::nullopt});
  }
}

DeliveryService::~DeliveryService() { stop(); }

std::vector<Destination> DeliveryService::currentDestinations() const {
  std::vector<Destination> destinations = destinations_;
  if (registry_ == nullptr) return destinations;
  for (Subscription& subscription : registry_->all()) {
    if (subscription.status == "off") continue;
    Destination destination{"subscription:" + subscription.id, subscription.id, subscription.endpoint, "",
                            subscription.headers, std::nullopt};
    destination.subscription = std::move(subscription);
    destinations.push_back(std::move(destination));
  }
  return destinations;
}

void DeliveryService::setSubscriptionStatus(const Subscription& subscription, const std::string& status,
                                            const std::string& error) {
  if (subscription.status == status && subscription.error == error) return;
  if (registry_ == nullptr || !registry_->setStatus(subscription.id, status, error)) return;
  (void)store_->putSubscription(SubscriptionRow{subscription.id, status, error, subscription.resource_json});
}

void DeliveryService::start() {
  multi_ = curl_multi_init();
  worker_ = std::thread([this] { run(); });
}

void DeliveryService::stop() {
  if (!worker_.joinable()) return;
  stopping_ = true;
  wake();
  worker_.join();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  multi_ = nullptr;
}

void DeliveryService::wake() {
  woken_ = true;
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void DeliveryService::run() {
  auto* multi = static_cast<CURLM*>(multi_);
  std::map<std::string, std::unique_ptr<InFlight>> in_flight;  // by destination key

  auto finish = [&](InFlight& flight, CURLcode code) {
    long http_status = 0;
    curl_easy_getinfo(flight.easy, CURLINFO_RESPONSE_CODE, &http_status);
    DeliveryAttempt attempt;
    attempt.outbox_id = flight.item.id;
    attempt.at_ms = flight.started_ms;
    attempt.http_status = static_cast<int>(http_status);
    attempt.duration_ms = nowMs() - flight.started_ms;
    const bool success = code == CURLE_OK && http_status >= 200 && http_status < 300;
    const std::string failure = code != CURLE_OK ? std::string(curl_easy_strerror(code))
                                                 : "HTTP " + std::to_string(http_status);
    if (flight.kind != FlightKind::kOutbox) {
      // Handshakes and heartbeats take no number and are not retried from the outbox.
      const Subscription& subscription = *flight.destination.subscription;
      if (flight.kind == FlightKind::kHandshake) {
        setSubscriptionStatus(subscription, success ? "active" : "error",
                              success ? "" : "handshake failed: " + failure);
      } else if (!success) {
        setSubscriptionStatus(subscription, "error", "heartbeat failed: " + failure);
      }
      metrics_.countDelivery(flight.destination.key, success ? "delivered" : failureClass(code, http_status));
      curl_multi_remove_handle(multi, flight.easy);
      curl_easy_cleanup(flight.easy);
      curl_slist_free_all(flight.headers);
      return;
    }
    if (flight.destination.subscription) {
      const Subscription& subscription = *flight.destination.subscription;
      if (success && subscription.status == "error") setSubscriptionStatus(subscription, "active", "");
      if (!success && subscription.status == "active") {
        setSubscriptionStatus(subscription, "error", "delivery failed: " + failure);
      }
    }
    if (success) {
      const std::string key = flight.destination.key;
      const int64_t number = flight.item.number;
      {
        std::lock_guard lock(uncommitted_->mutex);
        uncommitted_->numbers[key].insert(number);
      }
      store_->recordDeliveredAsync(attempt, [state = uncommitted_, key, number](const Status&) {
        std::lock_guard lock(state->mutex);
        state->numbers[key].erase(number);
      });
      metrics_.countDelivery(flight.destination.key, "delivered");
    } else {
      attempt.error = failure;
      const int64_t first = flight.item.first_attempt_ms != 0 ? flight.item.first_attempt_ms : flight.started_ms;
      const int64_t give_up_ms = static_cast<int64_t>(config_.delivery.give_up_after_hours * 3600 * 1000);
      const int64_t next = nowMs() + backoffMs(config_.delivery, flight.item.attempts + 1);
      const bool dead = next - first > give_up_ms;
      (void)store_->recordFailed(attempt, next, dead);
      metrics_.countDelivery(flight.destination.key, dead ? "dead" : failureClass(code, http_status));
    }
    curl_multi_remove_handle(multi, flight.easy);
    curl_easy_cleanup(flight.easy);
    curl_slist_free_all(flight.headers);
  };

  std::map<std::string, int64_t> last_sent_ms;  // per subscription, for heartbeats

  auto launch = [&](std::unique_ptr<InFlight> flight) {
    const Destination& destination = flight->destination;
    flight->easy = curl_easy_init();
    flight->headers = curl_slist_append(flight->headers, "Content-Type: application/fhir+json");
    if (flight->kind == FlightKind::kOutbox) {
      const std::string number = std::to_string(flight->item.number);
      flight->headers = curl_slist_append(flight->headers, ("X-Event-Number: " + number).c_str());
      flight->headers = curl_slist_append(flight->headers, ("Idempotency-Key: " + destination.id + ":" + number).c_str());
    }
    if (!destination.secret.empty()) {
      flight->headers = curl_slist_append(
          flight->headers, ("X-Signature: sha256=" + hmacSha256Hex(destination.secret, flight->body)).c_str());
    }
    for (const std::string& header : destination.headers) flight->headers = curl_slist_append(flight->headers, header.c_str());
    flight->headers = curl_slist_append(flight->headers, "Expect:");
    CURL* easy = flight->easy;
    int64_t timeout_ms = config_.delivery.timeout_ms;
    if (destination.subscription && destination.subscription->timeout_seconds > 0) {
      timeout_ms = std::min<int64_t>(timeout_ms, destination.subscription->timeout_seconds * 1000);
    }
    curl_easy_setopt(easy, CURLOPT_URL, destination.endpoint.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, flight->body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(flight->body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, flight->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout_ms, 5000)));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &discardBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &flight->response);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, flight.get());
    curl_multi_add_handle(multi, easy);
    if (destination.subscription) last_sent_ms[destination.subscription->id] = flight->started_ms;
    in_flight.emplace(destination.key, std::move(flight));
  };

  while (true) {
    const bool stopping = stopping_.load();
    int64_t next_retry_ms = INT64_MAX;  // earliest retry among destinations waiting for one
    if (!stopping) {
      woken_ = false;
      const int64_t now = nowMs();
      for (Destination& destination : currentDestinations()) {
        if (in_flight.count(destination.key) != 0) continue;
        auto flight = std::make_unique<InFlight>();
        flight->started_ms = now;
        if (destination.subscription && destination.subscription->status == "requested") {
          flight->kind = FlightKind::kHandshake;
          flight->body = notificationBundle(*destination.subscription, NotificationType::kHandshake, 0, {}, base_url_);
          flight->destination = std::move(destination);
          launch(std::move(flight));
          continue;
        }
        size_t held_back = 0;
        {
          std::lock_guard lock(uncommitted_->mutex);
          held_back = uncommitted_->numbers[destination.key].size();
        }
        // Rows whose delivered-mark is pending are the lowest numbers, so one more is enough.
        auto head = store_->pendingHead(destination.key, held_back + 1);
        if (!head.ok()) continue;
        std::optional<OutboxItem> next;
        {
          std::lock_guard lock(uncommitted_->mutex);
          const std::set<int64_t>& sent = uncommitted_->numbers[destination.key];
          for (OutboxItem& item : *head) {
            if (sent.count(item.number) == 0) {
              next = std::move(item);
              break;
            }
          }
        }
        if (next && next->next_attempt_ms > now) {  // waiting for its retry
          next_retry_ms = std::min(next_retry_ms, next->next_attempt_ms);
          continue;
        }
        if (!next) {
          const Subscription* subscription = destination.subscription ? &*destination.subscription : nullptr;
          if (subscription == nullptr || subscription->heartbeat_seconds <= 0 || subscription->status != "active") continue;
          auto last = last_sent_ms.find(subscription->id);
          if (last == last_sent_ms.end()) {
            last_sent_ms[subscription->id] = now;
            continue;
          }
          if (now - last->second < subscription->heartbeat_seconds * 1000) continue;
          auto number = store_->lastNumber(destination.key);
          flight->kind = FlightKind::kHeartbeat;
          flight->body = notificationBundle(*subscription, NotificationType::kHeartbeat, number.ok() ? *number : 0, {}, base_url_);
          flight->destination = std::move(destination);
          launch(std::move(flight));
          continue;
        }
        flight->item = std::move(*next);
        if (destination.subscription) {
          flight->body = notificationBundle(*destination.subscription, NotificationType::kEventNotification,
                                            flight->item.number, {{flight->item.number, flight->item.body}}, base_url_);
        } else {
          flight->body = flight->item.body;
        }
        flight->destination = std::move(destination);
        launch(std::move(flight));
      }
    }
    if (stopping && in_flight.empty()) break;

    int running = 0;
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      InFlight* flight = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &flight);
      const CURLcode code = message->data.result;
      const std::string key = flight->destination.key;
      finish(*flight, code);
      in_flight.erase(key);
      woken_ = true;  // that destination may have more rows now
    }
    if (!woken_.load()) {
      // Sleep until a socket is ready, new rows arrive (wake) or a retry may be due; poll soon
      // while delivered-marks are still being committed, since their rows are held back.
      bool marks_pending = false;
      {
        std::lock_guard lock(uncommitted_->mutex);
        for (const auto& [key, numbers] : uncommitted_->numbers) marks_pending |= !numbers.empty();
      }
      int64_t timeout_ms = marks_pending ? 2 : in_flight.empty() ? 200 : 20;
      if (next_retry_ms != INT64_MAX) timeout_ms = std::clamp<int64_t>(next_retry_ms - nowMs(), 0, timeout_ms);
      curl_multi_poll(multi, nullptr, 0, static_cast<int>(timeout_ms), nullptr);
    }
  }
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "gateway/delivery/delivery.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <deque>
#include <random>

#include "conformance/common/time_util.h"

namespace fhir::gateway {
namespace {

// CURLOPT_OPENSOCKETFUNCTION: refuses (CURLE_COULDNT_CONNECT) link-local and metadata addresses
// (169.254.0.0/16, fe80::/10) and the gateway's own port on a loopback or unspecified address.
curl_socket_t openCheckedSocket(void* self_port, curlsocktype, curl_sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (address->family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address->addr);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  } else if (address->family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address->addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
  }
  const std::string host(text);
  if (auth::isLinkLocalHost(host)) return CURL_SOCKET_BAD;
  const int own = *static_cast<const int*>(self_port);
  if (own != 0 && port == own && (auth::isLoopbackHost(host) || host == "0.0.0.0" || host == "::")) return CURL_SOCKET_BAD;
  return socket(address->family, address->socktype, address->protocol);
}

enum FlightKind { kOutbox, kHandshake, kHeartbeat };

constexpr size_t kFetchRows = 256;    // pending rows read from the store per query
constexpr size_t kLowWater = 32;      // read again when fewer rows are queued in memory
constexpr int64_t kRefreshMs = 50;    // subscriptions re-read from the registry
constexpr int64_t kRefetchMs = 1000;  // the store is read at least this often, even without wake()
constexpr int64_t kMinLeaseMs = 10000;     // an outbox lease lasts at least this long
constexpr int64_t kLeaseRetryMs = 500;     // a lane whose lease another process holds asks again

std::string hostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

// This process's lease holder id: host, pid and a nonce (a pid can come back after a restart).
std::string newLeaseHolder() {
  std::random_device random;
  char nonce[17];
  std::snprintf(nonce, sizeof(nonce), "%08x%08x", random(), random());
  return hostName() + "/" + std::to_string(getpid()) + "/" + nonce;
}

// True when `holder` names a process of this host that no longer runs
// (killed without releasing its leases), so its leases need not be waited out.
bool holderIsGone(const std::string& holder) {
  const size_t slash = holder.find('/');
  const size_t second = slash == std::string::npos ? slash : holder.find('/', slash + 1);
  if (second == std::string::npos || holder.substr(0, slash) != hostName()) return false;
  int pid = 0;
  const char* digits = holder.data() + slash + 1;
  if (std::from_chars(digits, holder.data() + second, pid).ptr != holder.data() + second || pid <= 0) return false;
  // This pid: another service of this process (tests), alive; a killed process whose pid came
  // back is not told apart and its lease is waited out.
  if (pid == getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

size_t keepBody(char* data, size_t size, size_t count, void* user) {
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

std::string destinationLabel(const std::string& key) { return "destination=\"" + key + "\""; }

}  // namespace

std::string lightRecord(const std::string& record, PayloadContent content) {
  if (content == PayloadContent::kFullResource) return record;
  static constexpr std::string_view kResources = ",\"resources\":[";
  static constexpr std::string_view kFocus = "\"focus\":\"";
  const size_t cut = record.find(kResources);
  const size_t focus = record.find(kFocus);
  if (cut == std::string::npos || focus == std::string::npos || focus > cut) return record;
  const size_t start = focus + kFocus.size();
  const size_t end = record.find('"', start);
  const size_t slash = record.find('/', start);
  if (end == std::string::npos || slash == std::string::npos || slash > end ||
      record.find('\\', start) < end) {
    return record;
  }
  return record.substr(0, cut) + R"(,"resources":[{"resourceType":")" + record.substr(start, slash - start) +
         R"(","id":")" + record.substr(slash + 1, end - slash - 1) + "\"}]}";
}

namespace {

}  // namespace

// One destination: its rows in memory, its easy handle (one request at a time), its breaker.
struct DeliveryService::Lane {
  explicit Lane(const DeliveryConfig& config)
      : breaker(config.circuit_breaker_failures, config.circuit_breaker_cool_down_ms) {}
  Destination destination;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  bool busy = false;
  int kind = kOutbox;
  std::string body;  // of a notification, handshake or heartbeat (outbox bodies are sent in place)
  std::string response;
  int64_t started_ms = 0;
  std::deque<OutboxItem> queue;  // pending rows read from the store, in number order; front = in flight
  int64_t cursor = 0;            // highest number taken into `queue`
  bool fetch = true;             // the store may have rows this lane has not read
  int64_t fetched_ms = 0;
  int64_t last_sent_ms = 0;  // for heartbeats
  bool bursting = false;     // batching window elapsed: send what is queued back to back
  bool present = true;       // still configured / subscribed
  int published_state = -1;  // breaker state last shown in /metrics
  int64_t lease_until = 0;   // this process holds the destination's lease until then (0: not held)
  int64_t lease_retry_ms = 0;
  CircuitBreaker breaker;
};

CircuitBreaker::State CircuitBreaker::state(int64_t now_ms) const {
  if (threshold_ <= 0 || consecutive_ < threshold_) return State::kClosed;
  return now_ms < open_until_ms_ ? State::kOpen : State::kHalfOpen;
}

bool CircuitBreaker::recordFailure(int64_t now_ms) {
  ++consecutive_;
  if (threshold_ <= 0 || consecutive_ < threshold_) return false;
  open_until_ms_ = now_ms + cool_down_ms_;  // the threshold reached, or a failed probe
  return true;
}

void CircuitBreaker::recordSuccess() {
  consecutive_ = 0;
  open_until_ms_ = 0;
}

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
    : config_(config),
      store_(std::move(store)),
      metrics_(metrics),
      lease_holder_(newLeaseHolder()),
      lease_ms_(std::max<int64_t>(kMinLeaseMs, 3 * config.delivery.timeout_ms)) {
  for (const PayerConfig& payer : config.payers) {
    destinations_.push_back({"payer:" + payer.id, payer.id, payer.endpoint, payer.secret, {}, std::nullopt, payer.options});
  }
  for (const FeedConfig& feed : config.feeds) {
    destinations_.push_back({"feed:" + feed.id, feed.id, feed.endpoint, feed.secret, {}, std::nullopt, feed.options});
  }
}

DeliveryService::~DeliveryService() { stop(); }

std::vector<Destination> DeliveryService::currentDestinations() const {
  std::vector<Destination> destinations = destinations_;
  if (registry_ == nullptr) return destinations;
  for (Subscription& subscription : registry_->all()) {
    if (subscription.status == "off") continue;
    Destination destination{"subscription:" + subscription.id, subscription.id, subscription.endpoint, "",
                            subscription.headers, std::nullopt, {}};
    destination.subscription = std::move(subscription);
    destinations.push_back(std::move(destination));
  }
  return destinations;
}

void DeliveryService::setSubscriptionStatus(Lane& lane, const std::string& status, const std::string& error) {
  Subscription& subscription = *lane.destination.subscription;
  if (subscription.status == status && subscription.error == error) return;
  const std::string old_status = subscription.status;
  const std::string old_error = subscription.error;
  subscription.status = status;
  subscription.error = error;
  if (registry_ == nullptr || !registry_->setStatus(subscription.id, status, error)) return;
  Status saved = store_->putSubscription(SubscriptionRow{subscription.id, status, error, subscription.resource_json});
  if (!saved.ok()) {
    // Not kept: the status goes back, so the next outcome sets and writes it again.
    registry_->setStatus(subscription.id, old_status, old_error);
    subscription.status = old_status;
    subscription.error = old_error;
    metrics_.countDelivery(lane.destination.key, "store_error");
  }
}

// A store failure on a lease is not "another process holds it": counted and logged; the lane
// asks again after kLeaseRetryMs (its rows wait, nothing is lost or sent twice).
void DeliveryService::leaseStoreFailed(const std::string& destination, const char* doing, const std::string& message) {
  metrics_.countDelivery(destination, "lease_store_error");
  std::fprintf(stderr, "delivery: %s: the store failed %s the outbox lease (asked again in %lld ms): %s\n",
               destination.c_str(), doing, static_cast<long long>(kLeaseRetryMs), message.c_str());
}

bool DeliveryService::holdLease(Lane& lane, int64_t now) {
  const std::string& key = lane.destination.key;
  if (lane.lease_until - now > lease_ms_ / 2) return true;
  if (lane.lease_until != 0) {
    auto extended = store_->extendLease(key, lease_holder_, now, lease_ms_);
    if (extended.ok() && *extended) {
      lane.lease_until = now + lease_ms_;
      return true;
    }
    if (!extended.ok()) leaseStoreFailed(key, "extending", extended.message());
    if (!extended.ok() && lane.lease_until > now) return false;  // still ours; the store failed: wait
    // Lost (taken over after it ran out): what was read may be sent by the new holder, so forget it.
    lane.lease_until = 0;
    lane.queue.clear();
    lane.cursor = 0;
    lane.fetch = true;
    lane.lease_retry_ms = now;
  }
  if (now < lane.lease_retry_ms) return false;
  lane.lease_retry_ms = now + kLeaseRetryMs;
  // A read first: while another live process holds the lease, asking costs no write.
  auto current = store_->leaseOf(key);
  if (!current.ok()) {
    leaseStoreFailed(key, "reading", current.message());
    return false;
  }
  std::string dead_holder;
  if (current->has_value() && !(*current)->holder.empty() && (*current)->holder != lease_holder_ &&
      (*current)->expires_ms > now) {
    if (!holderIsGone((*current)->holder)) return false;
    dead_holder = (*current)->holder;
  }
  auto lease = store_->claimLease(key, lease_holder_, now, lease_ms_, dead_holder);
  if (!lease.ok()) {
    leaseStoreFailed(key, "claiming", lease.message());
    return false;
  }
  if (lease->holder != lease_holder_) return false;  // another live process holds it
  lane.lease_until = now + lease_ms_;
  // Read from the head: the previous holder may have left rows pending anywhere.
  lane.queue.clear();
  lane.cursor = 0;
  lane.fetch = true;
  return true;
}

void DeliveryService::releaseLease(Lane& lane) {
  if (lane.lease_until == 0) return;
  lane.lease_until = 0;
  Status released = store_->releaseLease(lane.destination.key, lease_holder_);
  if (!released.ok()) metrics_.countDelivery(lane.destination.key, "store_error");  // it runs out instead
}

void DeliveryService::start() {
  multi_ = curl_multi_init();
  curl_multi_setopt(static_cast<CURLM*>(multi_), CURLMOPT_MAXCONNECTS, 256L);
  worker_ = std::thread([this] { run(); });
  pthread_setname_np(worker_.native_handle(), "delivery");
}

void DeliveryService::stop() {
  if (!worker_.joinable()) return;
  stopping_ = true;
  wake();
  worker_.join();
  for (auto& [key, lane] : lanes_) {
    releaseLease(*lane);
    curl_easy_cleanup(lane->easy);
  }
  lanes_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  multi_ = nullptr;
}

void DeliveryService::wake() {
  wake_generation_++;
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

// Lanes follow the configuration and the live subscriptions; a lane whose destination went away
// is dropped once its request is done.
void DeliveryService::refreshLanes(int64_t now) {
  for (auto& [key, lane] : lanes_) lane->present = false;
  for (Destination& destination : currentDestinations()) {
    std::unique_ptr<Lane>& lane = lanes_[destination.key];
    if (!lane) {
      lane = std::make_unique<Lane>(config_.delivery);
      lane->last_sent_ms = now;
    } else if (lane->easy != nullptr && !lane->busy && lane->destination.endpoint != destination.endpoint) {
      curl_easy_cleanup(lane->easy);  // the subscription moved: a new handle for the new endpoint
      lane->easy = nullptr;
    }
    if (lane->busy) destination.endpoint = lane->destination.endpoint;  // compared again when done
    lane->destination = std::move(destination);
    lane->present = true;
  }
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    if (!it->second->present && !it->second->busy) {
      releaseLease(*it->second);
      curl_easy_cleanup(it->second->easy);
      it = lanes_.erase(it);
    } else {
      ++it;
    }
  }
}

// Reads the lane's next pending rows. Rows numbered above the cursor are new to this process;
// when nothing of the lane is queued or settling, it reads from the head instead, which also
// finds replayed dead letters. The set of settling numbers is copied before the query, so a row
// whose mark commits meanwhile is still left out.
void DeliveryService::fetchRows(Lane& lane, int64_t now) {
  if (lane.queue.size() >= kLowWater) return;
  if (!lane.fetch && now - lane.fetched_ms < kRefetchMs) return;
  lane.fetch = false;
  lane.fetched_ms = now;
  const std::string& key = lane.destination.key;
  std::set<int64_t> settling;
  {
    std::lock_guard lock(uncommitted_->mutex);
    settling = uncommitted_->numbers[key];
  }
  const bool from_head = settling.empty() && lane.queue.empty();
  auto rows = from_head ? store_->pendingHead(key, kFetchRows) : store_->pendingAfter(key, lane.cursor, kFetchRows);
  if (!rows.ok()) return;
  if (rows->size() == kFetchRows) lane.fetch = true;  // more behind them
  for (OutboxItem& row : *rows) {
    if (settling.count(row.number) != 0) continue;
    if (!lane.queue.empty() && row.number <= lane.queue.back().number) continue;
    lane.cursor = std::max(lane.cursor, row.number);
    lane.queue.push_back(std::move(row));
  }
}

int64_t DeliveryService::tryLaunch(Lane& lane, int64_t now) {
  if (lane.busy || !lane.present) return INT64_MAX;
  if (!holdLease(lane, now)) return lane.lease_retry_ms;
  const Subscription* subscription = lane.destination.subscription ? &*lane.destination.subscription : nullptr;
  if (subscription != nullptr && subscription->status == "requested") {
    launch(lane, kHandshake, now);
    return INT64_MAX;
  }
  publishBreaker(lane, now);
  if (!lane.breaker.allows(now)) return lane.breaker.openUntilMs();
  fetchRows(lane, now);
  if (lane.queue.empty()) {
    lane.bursting = false;
    if (subscription == nullptr || subscription->heartbeat_seconds <= 0 || subscription->status != "active") {
      return INT64_MAX;
    }
    const int64_t due = lane.last_sent_ms + subscription->heartbeat_seconds * 1000;
    if (now < due) return due;
    launch(lane, kHeartbeat, now);
    return INT64_MAX;
  }
  const OutboxItem& head = lane.queue.front();
  if (head.next_attempt_ms > now) return head.next_attempt_ms;  // waiting for its retry
  // Batching window: the first row waits until it is batchWindowMs old, then everything queued
  // goes out back to back on the kept-alive connection.
  const int64_t window = lane.destination.options.batch_window_ms;
  if (window > 0 && !lane.bursting) {
    if (now < head.created_ms + window) return head.created_ms + window;
    lane.bursting = true;
  }
  launch(lane, kOutbox, now);
  return INT64_MAX;
}

void DeliveryService::launch(Lane& lane, int kind, int64_t now) {
  const Destination& destination = lane.destination;
  if (lane.easy == nullptr) {
    // Options that stay for the lane's life; the connection is kept alive between requests.
    CURL* easy = lane.easy = curl_easy_init();
    int64_t timeout_ms = config_.delivery.timeout_ms;
    if (destination.subscription && destination.subscription->timeout_seconds > 0) {
      timeout_ms = std::min<int64_t>(timeout_ms, destination.subscription->timeout_seconds * 1000);
    }
    curl_easy_setopt(easy, CURLOPT_URL, destination.endpoint.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout_ms, 5000)));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &keepBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &lane.response);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, &lane);
    // access.md: no redirects, never a link-local or metadata address, never the gateway itself
    // (checked on the address actually connected to, after name resolution).
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &openCheckedSocket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &self_port_);
    const EndpointOptions& options = destination.options;
    if (!options.client_cert.empty()) {
      curl_easy_setopt(easy, CURLOPT_SSLCERT, options.client_cert.c_str());
      curl_easy_setopt(easy, CURLOPT_SSLKEY, (options.client_key.empty() ? options.client_cert : options.client_key).c_str());
    }
    if (!options.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_file.c_str());
  }
  lane.kind = kind;
  lane.started_ms = now;
  lane.response.clear();
  const std::string* body = &lane.body;
  if (kind == kHandshake) {
    lane.body = *notificationBundle(*destination.subscription, NotificationType::kHandshake, 0, {}, base_url_);  // no events
  } else if (kind == kHeartbeat) {
    auto number = store_->lastNumber(destination.key);
    if (!number.ok()) {  // a heartbeat must not claim 0 events: it goes a heartbeat period later
      lane.last_sent_ms = now;
      metrics_.countDelivery(destination.key, "store_error");
      return;
    }
    lane.body = *notificationBundle(*destination.subscription, NotificationType::kHeartbeat, *number, {}, base_url_);
  } else if (destination.subscription) {
    const OutboxItem& item = lane.queue.front();
    auto bundle = notificationBundle(*destination.subscription, NotificationType::kEventNotification, item.number,
                                     {{item.number, lightRecord(item.body, destination.subscription->content)}}, base_url_);
    if (!bundle.ok()) {  // the row's stored record is unreadable: a failed attempt naming why (retried, then dead)
      DeliveryAttempt attempt;
      attempt.at_ms = now;
      attempt.error = bundle.message();
      std::fprintf(stderr, "delivery: %s: %s\n", destination.key.c_str(), bundle.message().c_str());
      finishOutbox(lane, false, attempt, "unreadable_record");
      return;
    }
    lane.body = std::move(*bundle);
  } else {
    body = &lane.queue.front().body;  // stays at the queue's front until the request is done
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/fhir+json");
  if (kind == kOutbox) {
    const std::string number = std::to_string(lane.queue.front().number);
    headers = curl_slist_append(headers, ("X-Event-Number: " + number).c_str());
    headers = curl_slist_append(headers, ("Idempotency-Key: " + destination.id + ":" + number).c_str());
  }
  if (!destination.secret.empty()) {
    headers = curl_slist_append(headers, ("X-Signature: sha256=" + hmacSha256Hex(destination.secret, *body)).c_str());
  }
  for (const std::string& header : destination.headers) headers = curl_slist_append(headers, header.c_str());
  if (!destination.options.auth_header_name.empty()) {
    headers = curl_slist_append(
        headers, (destination.options.auth_header_name + ": " + destination.options.auth_header_value).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");
  lane.headers = headers;
  curl_easy_setopt(lane.easy, CURLOPT_POSTFIELDS, body->data());
  curl_easy_setopt(lane.easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  curl_easy_setopt(lane.easy, CURLOPT_HTTPHEADER, headers);
  curl_multi_add_handle(static_cast<CURLM*>(multi_), lane.easy);
  lane.busy = true;
  lane.last_sent_ms = now;
}

void DeliveryService::publishBreaker(Lane& lane, int64_t now) {
  if (config_.delivery.circuit_breaker_failures <= 0) return;
  const auto state = static_cast<int>(lane.breaker.state(now));
  if (state == lane.published_state) return;
  lane.published_state = state;
  metrics_.setGauge("gateway_delivery_circuit_state", destinationLabel(lane.destination.key), state);
}

void DeliveryService::finish(Lane& lane, int result) {
  const auto code = static_cast<CURLcode>(result);
  long http_status = 0;
  curl_easy_getinfo(lane.easy, CURLINFO_RESPONSE_CODE, &http_status);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), lane.easy);
  curl_slist_free_all(lane.headers);
  lane.headers = nullptr;
  lane.busy = false;
  const int64_t now = nowMs();
  DeliveryAttempt attempt;
  attempt.at_ms = lane.started_ms;
  attempt.http_status = static_cast<int>(http_status);
  attempt.duration_ms = now - lane.started_ms;
  const bool success = code == CURLE_OK && http_status >= 200 && http_status < 300;
  const std::string failure = code != CURLE_OK ? std::string(curl_easy_strerror(code)) : "HTTP " + std::to_string(http_status);
  if (on_attempt_) {
    std::string scheme, host;
    int port = 0;
    auth::splitUrl(lane.destination.endpoint, scheme, host, port);
    on_attempt_(lane.destination.key, host, static_cast<int>(http_status), success ? std::string() : failure);
  }
  if (success) {
    lane.breaker.recordSuccess();
  } else if (lane.breaker.recordFailure(now)) {
    metrics_.countCircuitOpened(lane.destination.key);
  }
  publishBreaker(lane, now);
  if (lane.kind != kOutbox) {
    // Handshakes and heartbeats take no number and are not retried from the outbox.
    if (lane.kind == kHandshake) {
      setSubscriptionStatus(lane, success ? "active" : "error", success ? "" : "handshake failed: " + failure);
    } else if (!success) {
      setSubscriptionStatus(lane, "error", "heartbeat failed: " + failure);
    }
    metrics_.countDelivery(lane.destination.key, success ? "delivered" : failureClass(code, http_status));
    return;
  }
  if (lane.destination.subscription) {
    const std::string& status = lane.destination.subscription->status;
    if (success && status == "error") setSubscriptionStatus(lane, "active", "");
    if (!success && status == "active") setSubscriptionStatus(lane, "error", "delivery failed: " + failure);
  }
  if (!success) attempt.error = failure;
  finishOutbox(lane, success, attempt, success ? "" : failureClass(code, http_status));
}

// Settles the row at the lane's front: a delivered-mark joins the next batch; a failure waits
// for its retry (never before the breaker's cool-down ends) or becomes a dead letter.
void DeliveryService::finishOutbox(Lane& lane, bool success, const DeliveryAttempt& done,
                                   const std::string& failure_class) {
  OutboxItem& item = lane.queue.front();
  DeliveryAttempt attempt = done;
  attempt.outbox_id = item.id;
  const std::string& key = lane.destination.key;
  if (success) {
    {
      std::lock_guard lock(uncommitted_->mutex);
      uncommitted_->numbers[key].insert(item.number);
    }
    marks_.push_back(attempt);
    marked_numbers_.emplace_back(key, item.number);
    metrics_.countDelivery(key, "delivered");
    lane.queue.pop_front();
    return;
  }
  const int64_t first = item.first_attempt_ms != 0 ? item.first_attempt_ms : attempt.at_ms;
  const auto give_up_ms = static_cast<int64_t>(config_.delivery.give_up_after_hours * 3600 * 1000);
  int64_t next = nowMs() + backoffMs(config_.delivery, item.attempts + 1);
  if (!lane.breaker.allows(nowMs())) next = std::max(next, lane.breaker.openUntilMs());
  const bool dead = next - first > give_up_ms;
  std::function<void(const Status&)> on_commit = [](const Status&) {};
  if (dead) {
    std::lock_guard lock(uncommitted_->mutex);
    uncommitted_->numbers[key].insert(item.number);
    on_commit = [state = uncommitted_, key, number = item.number](const Status&) {
      std::lock_guard lock(state->mutex);
      state->numbers[key].erase(number);
    };
  }
  store_->recordFailedAsync(attempt, next, dead, std::move(on_commit));
  metrics_.countDelivery(key, dead ? "dead" : failure_class);
  if (dead) {
    lane.queue.pop_front();
    return;
  }
  item.attempts++;
  item.first_attempt_ms = first;
  item.next_attempt_ms = next;
  item.last_error = attempt.error;
}

// Hands the delivered-marks gathered so far to the store as one job of its next group commit.
void DeliveryService::flushMarks() {
  if (marks_.empty()) return;
  store_->recordDeliveredManyAsync(std::move(marks_), [state = uncommitted_, numbers = std::move(marked_numbers_)](
                                                          const Status&) {
    std::lock_guard lock(state->mutex);
    for (const auto& [key, number] : numbers) state->numbers[key].erase(number);
  });
  marks_.clear();
  marked_numbers_.clear();
}

void DeliveryService::run() {
  auto* multi = static_cast<CURLM*>(multi_);
  uint64_t seen_generation = wake_generation_.load() - 1;
  int64_t refreshed_ms = 0;
  while (true) {
    const bool stopping = stopping_.load();
    int64_t now = nowMs();
    int64_t next_due = INT64_MAX;  // earliest time a lane wants attention (retry, window, heartbeat)
    if (!stopping) {
      if (now - refreshed_ms >= kRefreshMs) {
        refreshLanes(now);
        refreshed_ms = now;
      }
      const uint64_t generation = wake_generation_.load();
      if (generation != seen_generation) {
        seen_generation = generation;
        for (auto& [key, lane] : lanes_) lane->fetch = true;
      }
      for (auto& [key, lane] : lanes_) next_due = std::min(next_due, tryLaunch(*lane, now));
    }
    const bool busy = std::any_of(lanes_.begin(), lanes_.end(), [](const auto& entry) { return entry.second->busy; });
    if (stopping && !busy) break;

    int running = 0;
    curl_multi_perform(multi, &running);
    int queued = 0;
    bool finished = false;
    while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      Lane* lane = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &lane);
      finish(*lane, message->data.result);
      finished = true;
    }
    flushMarks();
    if (finished) continue;  // those lanes may send their next row at once
    if (wake_generation_.load() != seen_generation && !stopping) continue;
    // Sleep until a socket is ready, new rows arrive (wake), or a retry, window or heartbeat is due.
    now = nowMs();
    int64_t timeout_ms = std::min<int64_t>(kRefreshMs, next_due == INT64_MAX ? kRefreshMs : std::max<int64_t>(0, next_due - now));
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(timeout_ms), nullptr);
  }
  flushMarks();
}

}  // namespace fhir::gateway

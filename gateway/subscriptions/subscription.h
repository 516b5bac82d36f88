// SPDX-License-Identifier: Apache-2.0
#pragma once

// Subscriptions per the FHIR Subscriptions R5 Backport IG for R4: parsing and checking the
// Subscription resource, the in-memory registry of live subscriptions, filter matching and the
// notification Bundles (history, with the backport-subscription-status-r4 Parameters).

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "gateway/subscriptions/topics.h"

namespace fhir::gateway {

inline constexpr std::string_view kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

enum class PayloadContent { kEmpty, kIdOnly, kFullResource };

struct SubscriptionFilter {
  std::string resource_type;  // may be empty
  std::string parameter;      // patient | payer | practice | code
  std::string value;
};

struct Subscription {
  std::string id;
  std::string status;  // requested | active | error | off
  std::string error;   // reason for error/off
  std::string topic;   // canonical
  std::string endpoint;
  std::vector<std::string> headers;  // "Name: value"
  PayloadContent content = PayloadContent::kIdOnly;
  int64_t heartbeat_seconds = 0;  // 0: no heartbeat
  int64_t timeout_seconds = 0;
  std::vector<SubscriptionFilter> filters;
  std::string resource_json;  // the Subscription as submitted (status/reason are replaced on output)
  std::string owner;          // the client that created it (empty when auth is off)
};

// Checks a posted Subscription against the backport profile and our topics. Issues carry
// FHIRPath expressions (`Subscription.channel.endpoint`).
std::optional<Subscription> parseSubscription(const json::Value& resource, const TopicCatalog& topics,
                                              IssueList& issues);

// The Subscription resource as served: stored JSON with id, status and reason (error) current.
std::string subscriptionJson(const Subscription& subscription);

// What an ingest event is about, for filters: patient = "Patient/{id}", payer ids, practice NPIs,
// codes as "system|code".
struct EventFacts {
  std::string patient;
  std::set<std::string> payers;
  std::set<std::string> practices;
  std::set<std::string> codes;
};

// All filters must match (each against the facts of the event or of its focus).
bool filtersMatch(const Subscription& subscription, const EventFacts& facts);

// Live subscriptions, shared by request threads, the ingest transaction and delivery.
class SubscriptionRegistry {
 public:
  void put(Subscription subscription);
  void remove(const std::string& id);
  std::optional<Subscription> get(const std::string& id) const;
  std::vector<Subscription> all() const;
  // Sets status/error; returns false when unknown.
  bool setStatus(const std::string& id, const std::string& status, const std::string& error);

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, Subscription> subscriptions_;
};

// What the outbox keeps for one notification: the topic, the focus and (for full-resource) the
// resources; the status Parameters are added when it is sent, with its event number.
std::string notificationRecord(const std::string& topic, const std::string& focus_reference,
                               const std::vector<const json::Value*>& resources);

enum class NotificationType { kHandshake, kHeartbeat, kEventNotification, kQueryStatus, kQueryEvent };

struct NotificationEvent {
  int64_t number = 0;
  std::string record;  // notificationRecord()
};

// A `history` Bundle whose first entry is the SubscriptionStatus Parameters
// (backport-subscription-status-r4), followed by the focus entries the payload content asks for.
// An error when an event's stored record cannot be read (never a Bundle without that event).
Result<std::string> notificationBundle(const Subscription& subscription, NotificationType type,
                               int64_t events_since_start, const std::vector<NotificationEvent>& events,
                               const std::string& base_url);

}  // namespace fhir::gateway

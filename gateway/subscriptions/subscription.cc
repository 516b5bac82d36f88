// SPDX-License-Identifier: Apache-2.0
#include "gateway/subscriptions/subscription.h"

#include <mutex>

#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

std::string backport(std::string_view name) { return std::string(kBackport) + std::string(name); }

const json::Value* extensionOf(const json::Value* holder, std::string_view url) {
  if (holder == nullptr) return nullptr;
  const json::Value* extensions = json::find(*holder, "extension");
  if (extensions == nullptr || !extensions->IsArray()) return nullptr;
  for (const json::Value& extension : extensions->GetArray()) {
    if (json::getString(extension, "url") == url) return &extension;
  }
  return nullptr;
}

void error(IssueList& issues, std::string code, std::string expression, std::string message) {
  issues.atExpression(Severity::kError, std::move(code), std::move(expression), std::move(message));
}

std::string_view typeName(NotificationType type) {
  switch (type) {
    case NotificationType::kHandshake: return "handshake";
    case NotificationType::kHeartbeat: return "heartbeat";
    case NotificationType::kEventNotification: return "event-notification";
    case NotificationType::kQueryStatus: return "query-status";
    case NotificationType::kQueryEvent: return "query-event";
  }
  return "event-notification";
}

}  // namespace

std::optional<Subscription> parseSubscription(const json::Value& resource, const TopicCatalog& topics,
                                              IssueList& issues) {
  Subscription subscription;
  if (json::getString(resource, "resourceType") != "Subscription") {
    error(issues, "invalid", "Subscription", "the body must be a Subscription resource");
    return std::nullopt;
  }
  subscription.id = std::string(json::getString(resource, "id").value_or(""));
  auto criteria = json::getString(resource, "criteria");
  if (!criteria) {
    error(issues, "required", "Subscription.criteria", "criteria must hold a SubscriptionTopic canonical URL");
  } else if (topics.find(*criteria) == nullptr) {
    error(issues, "not-supported", "Subscription.criteria",
          "'" + std::string(*criteria) + "' is not a topic of this server (see GET /fhir/SubscriptionTopic)");
  } else {
    subscription.topic = std::string(*criteria);
  }
  const Topic* topic = criteria ? topics.find(*criteria) : nullptr;
  if (const json::Value* criteria_ext = json::find(resource, "_criteria")) {
    const json::Value* extensions = json::find(*criteria_ext, "extension");
    for (rapidjson::SizeType i = 0; extensions != nullptr && extensions->IsArray() && i < extensions->Size(); ++i) {
      const json::Value& extension = (*extensions)[i];
      if (json::getString(extension, "url") != backport("backport-filter-criteria")) continue;
      const std::string where = "Subscription.criteria.extension[" + std::to_string(i) + "]";
      auto text = json::getString(extension, "valueString");
      if (!text) {
        error(issues, "required", where, "backport-filter-criteria needs a valueString");
        continue;
      }
      SubscriptionFilter filter;
      std::string_view rest = *text;
      if (size_t mark = rest.find('?'); mark != std::string_view::npos) {
        filter.resource_type = std::string(rest.substr(0, mark));
        rest.remove_prefix(mark + 1);
      }
      size_t equals = rest.find('=');
      if (equals == std::string_view::npos || equals == 0 || equals + 1 == rest.size()) {
        error(issues, "value", where, "'" + std::string(*text) + "' is not {resourceType}?{filter}={value}");
        continue;
      }
      filter.parameter = std::string(rest.substr(0, equals));
      filter.value = std::string(rest.substr(equals + 1));
      if (topic != nullptr && std::find(topic->filter_parameters.begin(), topic->filter_parameters.end(),
                                        filter.parameter) == topic->filter_parameters.end()) {
        error(issues, "not-supported", where, "topic " + topic->id + " cannot filter by '" + filter.parameter + "'");
        continue;
      }
      subscription.filters.push_back(std::move(filter));
    }
  }
  const json::Value* channel = json::find(resource, "channel");
  if (channel == nullptr || !channel->IsObject()) {
    error(issues, "required", "Subscription.channel", "channel is required");
    return std::nullopt;
  }
  if (json::getString(*channel, "type") != "rest-hook") {
    error(issues, "not-supported", "Subscription.channel.type", "only rest-hook channels are supported");
  }
  auto endpoint = json::getString(*channel, "endpoint");
  if (!endpoint || (endpoint->rfind("http://", 0) != 0 && endpoint->rfind("https://", 0) != 0)) {
    error(issues, "required", "Subscription.channel.endpoint", "a rest-hook needs an http(s) endpoint");
  } else {
    subscription.endpoint = std::string(*endpoint);
  }
  if (auto payload = json::getString(*channel, "payload");
      payload && *payload != "application/fhir+json" && *payload != "application/json") {
    error(issues, "not-supported", "Subscription.channel.payload", "payload must be application/fhir+json");
  }
  if (const json::Value* content = extensionOf(json::find(*channel, "_payload"), backport("backport-payload-content"))) {
    auto code = json::getString(*content, "valueCode").value_or("");
    if (code == "empty") subscription.content = PayloadContent::kEmpty;
    else if (code == "id-only") subscription.content = PayloadContent::kIdOnly;
    else if (code == "full-resource") subscription.content = PayloadContent::kFullResource;
    else error(issues, "code-invalid", "Subscription.channel.payload.extension[0]", "payload content must be empty, id-only or full-resource");
  }
  if (const json::Value* headers = json::find(*channel, "header"); headers != nullptr && headers->IsArray()) {
    for (rapidjson::SizeType i = 0; i < headers->Size(); ++i) {
      const json::Value& header = (*headers)[i];
      if (!json::isString(header) || json::stringView(header).find(':') == std::string_view::npos) {
        error(issues, "value", "Subscription.channel.header[" + std::to_string(i) + "]", "a header is 'Name: value'");
        continue;
      }
      subscription.headers.emplace_back(json::stringView(header));
    }
  }
  if (const json::Value* heartbeat = extensionOf(channel, backport("backport-heartbeat-period"))) {
    const json::Value* value = json::find(*heartbeat, "valueUnsignedInt");
    auto seconds = value ? json::numberAsInt64(*value) : std::nullopt;
    if (!seconds || *seconds < 0) {
      error(issues, "value", "Subscription.channel.extension", "backport-heartbeat-period needs a valueUnsignedInt");
    } else {
      subscription.heartbeat_seconds = *seconds;
    }
  }
  if (const json::Value* timeout = extensionOf(channel, backport("backport-timeout"))) {
    const json::Value* value = json::find(*timeout, "valueUnsignedInt");
    if (auto seconds = value ? json::numberAsInt64(*value) : std::nullopt) subscription.timeout_seconds = *seconds;
  }
  if (issues.hasErrors()) return std::nullopt;
  subscription.status = "requested";
  subscription.resource_json = json::serialize(resource);
  return subscription;
}

std::string subscriptionJson(const Subscription& subscription) {
  auto doc = json::parse(subscription.resource_json);
  if (!doc.ok()) return subscription.resource_json;
  auto& a = doc->GetAllocator();
  for (const char* key : {"id", "status", "error"}) doc->RemoveMember(key);
  json::Value out(rapidjson::kObjectType);
  json::addString(out, "resourceType", "Subscription", a);
  json::addString(out, "id", subscription.id, a);
  for (auto& member : doc->GetObject()) {
    std::string_view name = json::stringView(member.name);
    if (name == "resourceType") continue;
    if (name == "reason" || name == "criteria" || name == "channel" || name == "_criteria" || name == "meta" ||
        name == "end" || name == "contact" || name == "extension" || name == "text" || name == "language" ||
        name == "implicitRules" || name == "contained" || name == "modifierExtension") {
      json::Value copy;
      copy.CopyFrom(member.value, a);
      json::addMember(out, name, std::move(copy), a);
    }
  }
  json::addString(out, "status", subscription.status, a);
  if (!subscription.error.empty()) json::addString(out, "error", subscription.error, a);
  return json::serialize(out);
}

bool filtersMatch(const Subscription& subscription, const EventFacts& facts) {
  for (const SubscriptionFilter& filter : subscription.filters) {
    bool matched = false;
    if (filter.parameter == "patient") matched = facts.patient == filter.value;
    else if (filter.parameter == "payer") matched = facts.payers.count(filter.value) != 0;
    else if (filter.parameter == "practice") matched = facts.practices.count(filter.value) != 0;
    else if (filter.parameter == "code") matched = facts.codes.count(filter.value) != 0;
    if (!matched) return false;
  }
  return true;
}

void SubscriptionRegistry::put(Subscription subscription) {
  std::unique_lock lock(mutex_);
  subscriptions_[subscription.id] = std::move(subscription);
}

void SubscriptionRegistry::remove(const std::string& id) {
  std::unique_lock lock(mutex_);
  subscriptions_.erase(id);
}

std::optional<Subscription> SubscriptionRegistry::get(const std::string& id) const {
  std::shared_lock lock(mutex_);
  auto found = subscriptions_.find(id);
  if (found == subscriptions_.end()) return std::nullopt;
  return found->second;
}

std::vector<Subscription> SubscriptionRegistry::all() const {
  std::shared_lock lock(mutex_);
  std::vector<Subscription> out;
  for (const auto& [id, subscription] : subscriptions_) out.push_back(subscription);
  return out;
}

bool SubscriptionRegistry::setStatus(const std::string& id, const std::string& status, const std::string& error) {
  std::unique_lock lock(mutex_);
  auto found = subscriptions_.find(id);
  if (found == subscriptions_.end()) return false;
  found->second.status = status;
  found->second.error = error;
  return true;
}

std::string notificationRecord(const std::string& topic, const std::string& focus_reference,
                               const std::vector<const json::Value*>& resources) {
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  json::addString(doc, "topic", topic, a);
  json::addString(doc, "focus", focus_reference, a);
  json::addString(doc, "timestamp", nowIso(), a);
  json::Value list(rapidjson::kArrayType);
  for (const json::Value* resource : resources) {
    json::Value copy;
    copy.CopyFrom(*resource, a);
    list.PushBack(copy, a);
  }
  json::addMember(doc, "resources", std::move(list), a);
  return json::serialize(doc);
}

Result<std::string> notificationBundle(const Subscription& subscription, NotificationType type,
                                       int64_t events_since_start, const std::vector<NotificationEvent>& events,
                                       const std::string& base_url) {
  json::Document bundle;
  bundle.SetObject();
  auto& a = bundle.GetAllocator();
  const std::string subscription_url = base_url + "/Subscription/" + subscription.id;
  json::addString(bundle, "resourceType", "Bundle", a);
  json::addString(bundle, "type", type == NotificationType::kQueryStatus ? "searchset" : "history", a);
  json::addString(bundle, "timestamp", nowIso(), a);

  // The SubscriptionStatus, R4 form. It has an id (the uuid of its fullUrl): a searchset match
  // ($status) must have one (the validator's "Search results must have ids", as the HL7 one).
  const std::string last_number = events.empty() ? std::to_string(nowMs()) : std::to_string(events.back().number);
  const std::string status_id = fhir::deriveId({"notification", subscription.id, typeName(type), last_number});
  json::Value status(rapidjson::kObjectType);
  json::addString(status, "resourceType", "Parameters", a);
  json::addString(status, "id", status_id, a);
  json::Value meta(rapidjson::kObjectType);
  json::Value profiles(rapidjson::kArrayType);
  profiles.PushBack(json::makeString(backport("backport-subscription-status-r4"), a), a);
  json::addMember(meta, "profile", std::move(profiles), a);
  json::addMember(status, "meta", std::move(meta), a);
  json::Value parameters(rapidjson::kArrayType);
  auto parameter = [&](std::string_view name, std::string_view value_key, json::Value value) {
    json::Value p(rapidjson::kObjectType);
    json::addString(p, "name", name, a);
    json::addMember(p, value_key, std::move(value), a);
    parameters.PushBack(p, a);
  };
  json::Value reference(rapidjson::kObjectType);
  json::addString(reference, "reference", subscription_url, a);
  parameter("subscription", "valueReference", std::move(reference));
  parameter("topic", "valueCanonical", json::makeString(subscription.topic, a));
  parameter("status", "valueCode", json::makeString(subscription.status, a));
  parameter("type", "valueCode", json::makeString(typeName(type), a));
  parameter("events-since-subscription-start", "valueString", json::makeString(std::to_string(events_since_start), a));

  std::vector<json::Document> records;
  for (const NotificationEvent& event : events) {
    auto record = json::parse(event.record);
    if (!record.ok()) {
      return Error{"the stored record of notification event " + std::to_string(event.number) + " of Subscription/" +
                   subscription.id + " is unreadable: " + record.message()};
    }
    json::Value part(rapidjson::kObjectType);
    json::addString(part, "name", "notification-event", a);
    json::Value parts(rapidjson::kArrayType);
    json::Value number(rapidjson::kObjectType);
    json::addString(number, "name", "event-number", a);
    json::addString(number, "valueString", std::to_string(event.number), a);
    parts.PushBack(number, a);
    if (auto timestamp = json::getString(*record, "timestamp")) {
      json::Value stamp(rapidjson::kObjectType);
      json::addString(stamp, "name", "timestamp", a);
      json::addString(stamp, "valueInstant", *timestamp, a);
      parts.PushBack(stamp, a);
    }
    if (subscription.content != PayloadContent::kEmpty) {
      json::Value focus(rapidjson::kObjectType);
      json::addString(focus, "name", "focus", a);
      json::Value ref(rapidjson::kObjectType);
      json::addString(ref, "reference", base_url + "/" + std::string(json::getString(*record, "focus").value_or("")), a);
      json::addMember(focus, "valueReference", std::move(ref), a);
      parts.PushBack(focus, a);
    }
    json::addMember(part, "part", std::move(parts), a);
    parameters.PushBack(part, a);
    records.push_back(std::move(*record));
  }
  json::addMember(status, "parameter", std::move(parameters), a);

  json::Value entries(rapidjson::kArrayType);
  json::Value first(rapidjson::kObjectType);
  json::addString(first, "fullUrl", "urn:uuid:" + status_id, a);
  json::addMember(first, "resource", std::move(status), a);
  if (type != NotificationType::kQueryStatus) {
    json::Value request(rapidjson::kObjectType);
    json::addString(request, "method", "GET", a);
    json::addString(request, "url", subscription_url + "/$status", a);
    json::addMember(first, "request", std::move(request), a);
    json::Value response(rapidjson::kObjectType);
    json::addString(response, "status", "200", a);
    json::addMember(first, "response", std::move(response), a);
  } else {
    json::Value search(rapidjson::kObjectType);
    json::addString(search, "mode", "match", a);
    json::addMember(first, "search", std::move(search), a);
  }
  entries.PushBack(first, a);

  if (subscription.content != PayloadContent::kEmpty) {
    for (json::Document& record : records) {
      const std::string focus(json::getString(record, "focus").value_or(""));
      const json::Value* resources = json::find(record, "resources");
      for (rapidjson::SizeType i = 0; resources != nullptr && i < resources->Size(); ++i) {
        const json::Value& resource = (*resources)[i];
        const std::string key = std::string(json::getString(resource, "resourceType").value_or("")) + "/" +
                                std::string(json::getString(resource, "id").value_or(""));
        if (subscription.content == PayloadContent::kIdOnly && key != focus) continue;
        json::Value entry(rapidjson::kObjectType);
        json::addString(entry, "fullUrl", base_url + "/" + key, a);
        if (subscription.content == PayloadContent::kFullResource) {
          json::Value copy;
          copy.CopyFrom(resource, a);
          json::addMember(entry, "resource", std::move(copy), a);
        }
        json::Value request(rapidjson::kObjectType);
        json::addString(request, "method", "PUT", a);
        json::addString(request, "url", key, a);
        json::addMember(entry, "request", std::move(request), a);
        json::Value response(rapidjson::kObjectType);
        json::addString(response, "status", "200", a);
        json::addMember(entry, "response", std::move(response), a);
        entries.PushBack(entry, a);
      }
    }
  }
  json::addMember(bundle, "entry", std::move(entries), a);
  return json::serialize(bundle);
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/subscription_routes.h"

#include <charconv>
#include <map>

#include "conformance/json/json.h"
#include "gateway/auth/audit.h"
#include "gateway/server/fhir_http.h"
#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

constexpr const char* kBackportOperations = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/";

Answer refusal(const auth::Refusal& refused) { return outcomeAnswer(refused.status, refused.code, refused.why); }

// The request's AuditEvent for a write's transaction, as answered `status` (none without auditing);
// writtenAudit() tells the router it was committed with the write.
std::vector<AuditRecord> takeAudit(const ServerContext& context, int status) {
  auth::PendingAudit* pending = context.audit != nullptr ? auth::PendingAudit::current() : nullptr;
  if (pending == nullptr) return {};
  auto record = pending->take(status, {}, nowMs());
  return record ? std::vector<AuditRecord>{std::move(*record)} : std::vector<AuditRecord>{};
}
void writtenAudit(const ServerContext& context) {
  if (context.audit != nullptr && auth::PendingAudit::current() != nullptr) auth::PendingAudit::current()->written();
}

// meta.versionId and meta.lastUpdated of a Subscription's stored JSON (1 and none for one stored
// before versions were kept).
struct SubscriptionVersion {
  int64_t version = 1;
  std::string updated;
};
SubscriptionVersion versionOf(const Subscription& subscription) {
  SubscriptionVersion out;
  auto doc = json::parse(subscription.resource_json);
  if (!doc.ok() || !doc->IsObject()) return out;
  const json::Value* meta = json::find(*doc, "meta");
  if (meta == nullptr || !meta->IsObject()) return out;
  const std::string version(json::getString(*meta, "versionId").value_or("1"));
  int64_t number = 0;
  auto [end, error] = std::from_chars(version.data(), version.data() + version.size(), number);
  if (error == std::errc() && end == version.data() + version.size() && number > 0) out.version = number;
  out.updated = std::string(json::getString(*meta, "lastUpdated").value_or(""));
  return out;
}

// `resource_json` with meta.versionId and meta.lastUpdated set.
std::string withVersion(const std::string& text, int64_t version, const std::string& updated) {
  auto doc = json::parse(text);
  if (!doc.ok() || !doc->IsObject()) return text;
  auto& a = doc->GetAllocator();
  json::Value* meta = json::find(*doc, "meta");
  if (meta == nullptr || !meta->IsObject()) {
    doc->RemoveMember("meta");
    json::addMember(*doc, "meta", json::Value(rapidjson::kObjectType), a);
    meta = json::find(*doc, "meta");
  }
  meta->RemoveMember("versionId");
  meta->RemoveMember("lastUpdated");
  json::addString(*meta, "versionId", std::to_string(version), a);
  json::addString(*meta, "lastUpdated", updated, a);
  return json::serialize(*doc);
}

class SubscriptionRoutes {
 public:
  SubscriptionRoutes(ServerContext& context, const auth::AccessPolicy& policy) : context_(context), policy_(policy) {}

  // Every Subscription interaction: scope, then (for an instance) the owner; the subscription
  // when there is one and the caller may see it.
  std::optional<Answer> admit(FhirCall& call, auth::Interaction interaction, char action, std::optional<Subscription>& found) {
    Access& access = call.access;
    access.audit.subtype = call.interaction == FhirInteraction::kOperation ? "operation"
                           : call.interaction == FhirInteraction::kVread    ? "vread"
                                                                            : std::string(interactionCode(call.interaction));
    access.audit.action = action;
    if (!call.id.empty()) access.audit.entities.push_back("Subscription/" + call.id);
    if (!context_.topics || context_.subscriptions == nullptr) {
      return outcomeAnswer(503, "transient", "subscriptions are not available: no topics loaded");
    }
    if (auto refused = policy_.fhir(access.caller, interaction, "Subscription")) return refusal(*refused);
    if (call.id.empty()) return std::nullopt;
    found = context_.subscriptions->get(call.id);
    // Another client's Subscription does not exist for this one (an update of it neither).
    if (found) {
      if (auto refused = policy_.subscriptionOwner(access.caller, call.id, found->owner)) return refusal(*refused);
    }
    return std::nullopt;
  }

  Answer create(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kCreate, 'C', found)) return *refused;
    if (const std::string* criteria = call.request.head.header("if-none-exist")) {
      // Conditional create: no new Subscription when one the caller sees matches the criteria.
      auto matched = matching(call, *criteria);
      if (!matched.ok()) return outcomeAnswer(400, "invalid", "If-None-Exist: " + matched.message());
      if (matched->size() > 1) {
        return outcomeAnswer(412, "duplicate", "If-None-Exist matches " + std::to_string(matched->size()) + " Subscriptions");
      }
      if (matched->size() == 1) {
        const Subscription& existing = matched->front();
        call.access.audit.entities = {"Subscription/" + existing.id};
        return answerCurrent(call, existing, 200);
      }
    }
    return put(call, "");
  }

  Answer read(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kRead, 'R', found)) return *refused;
    if (!found) return outcomeAnswer(404, "not-found", "Subscription/" + call.id + " is not known");
    if (call.interaction == FhirInteraction::kVread) {
      // Only the current version of a Subscription is kept.
      if (call.version != std::to_string(versionOf(*found).version)) {
        return outcomeAnswer(404, "not-found", "Subscription/" + call.id + " version " + call.version +
                                                   " is not kept (only the current version of a Subscription is)");
      }
    }
    return answerCurrent(call, *found, 200);
  }

  // GET /fhir/Subscription/{id}/_history: only the current version of a Subscription is kept
  // (FHIR lets a server keep no more), so the history Bundle holds that version, or nothing
  // when `_since` is after it.
  Answer history(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kRead, 'R', found)) return *refused;
    if (!found) return outcomeAnswer(404, "not-found", "Subscription/" + call.id + " is not known");
    const SubscriptionVersion version = versionOf(*found);
    bool listed = true;
    for (const auto& [name, value] : call.parameters) {
      if (name == "_count") {
        if (!fhirhttp::positiveInteger(value)) return outcomeAnswer(400, "invalid", "_count '" + value + "' is not a positive integer");
      } else if (name == "_since") {
        auto since = fhirhttp::parseInstantMs(value);
        if (!since) return outcomeAnswer(400, "invalid", "_since '" + value + "' is not an instant (2026-12-03T10:00:00Z)");
        auto updated = fhirhttp::parseInstantMs(version.updated);
        listed = !updated || *updated >= *since;
      } else {
        return outcomeAnswer(400, "not-supported",
                             "a Subscription's history has no parameter '" + name + "' (_count, _since)");
      }
    }
    json::Document bundle;
    auto& a = bundle.GetAllocator();
    bundle.SetObject();
    json::addString(bundle, "resourceType", "Bundle", a);
    json::addString(bundle, "type", "history", a);
    const std::string reference = "Subscription/" + found->id;
    json::Value self(rapidjson::kObjectType);
    json::addString(self, "relation", "self", a);
    json::addString(self, "url", context_.base_url + "/" + reference + "/_history", a);
    json::Value links(rapidjson::kArrayType);
    links.PushBack(std::move(self), a);
    json::addMember(bundle, "link", std::move(links), a);
    json::Value entries(rapidjson::kArrayType);
    if (listed) {
      auto resource = json::parse(subscriptionJson(*found));
      if (!resource.ok()) return outcomeAnswer(500, "exception", reference + " as stored is not JSON: " + resource.message());
      json::Value entry(rapidjson::kObjectType);
      json::addString(entry, "fullUrl", context_.base_url + "/" + reference, a);
      json::Value copy;
      copy.CopyFrom(*resource, a);
      json::addMember(entry, "resource", std::move(copy), a);
      const bool created = version.version == 1;
      json::Value request(rapidjson::kObjectType);
      json::addString(request, "method", created ? "POST" : "PUT", a);
      json::addString(request, "url", created ? std::string("Subscription") : reference, a);
      json::addMember(entry, "request", std::move(request), a);
      json::Value response(rapidjson::kObjectType);
      json::addString(response, "status", created ? "201 Created" : "200 OK", a);
      json::addString(response, "etag", "W/\"" + std::to_string(version.version) + "\"", a);
      if (!version.updated.empty()) json::addString(response, "lastModified", version.updated, a);
      json::addMember(entry, "response", std::move(response), a);
      entries.PushBack(std::move(entry), a);
    }
    json::addMember(bundle, "entry", std::move(entries), a);
    return Answer{200, "application/fhir+json", json::serialize(bundle), ""};
  }

  Answer update(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kUpdate, 'U', found)) return *refused;
    if (auto stale = precondition(call, found)) return *stale;
    return put(call, call.id);
  }

  Answer remove(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kDelete, 'D', found)) return *refused;
    if (auto stale = precondition(call, found)) return *stale;
    if (!found) return outcomeAnswer(404, "not-found", "Subscription/" + call.id + " is not known");
    Status deleted = context_.store->deleteSubscription(call.id, takeAudit(context_, 200));
    if (!deleted.ok()) return outcomeAnswer(503, "transient", deleted.message());
    writtenAudit(context_);
    context_.subscriptions->remove(call.id);
    IssueList done;
    done.add(Issue{Severity::kInformation, "informational", "Subscription/" + call.id + " deleted", {}, {}});
    return Answer{200, "application/fhir+json", toOperationOutcomeJson(done), ""};
  }

  Answer operation(FhirCall& call) {
    std::optional<Subscription> found;
    if (auto refused = admit(call, auth::Interaction::kRead, 'R', found)) return *refused;
    if (!found) return outcomeAnswer(404, "not-found", "Subscription/" + call.id + " is not known");
    const std::string destination = "subscription:" + call.id;
    auto last = context_.store->lastNumber(destination);
    if (!last.ok()) return outcomeAnswer(503, "transient", last.message());
    if (call.operation == "$status") {
      auto status = notificationBundle(*found, NotificationType::kQueryStatus, *last, {}, context_.base_url);
      if (!status.ok()) return outcomeAnswer(500, "exception", status.message());
      return Answer{200, "application/fhir+json", std::move(*status), ""};
    }
    std::map<std::string, std::string> parameters(call.parameters.begin(), call.parameters.end());
    int64_t since = 1;
    int64_t until = *last;
    try {
      if (parameters.count("eventsSinceNumber")) since = std::stoll(parameters["eventsSinceNumber"]);
      if (parameters.count("eventsUntilNumber")) until = std::stoll(parameters["eventsUntilNumber"]);
    } catch (const std::exception&) {
      return outcomeAnswer(400, "value", "eventsSinceNumber and eventsUntilNumber must be integers");
    }
    auto rows = context_.store->outboxRange(destination, since, until);
    if (!rows.ok()) return outcomeAnswer(503, "transient", rows.message());
    std::vector<NotificationEvent> events;
    for (const OutboxItem& row : *rows) events.push_back({row.number, row.body});
    // A stored record that cannot be read is the store's data gone bad: 500 naming the event,
    // never a Bundle that silently leaves the event out.
    auto bundle = notificationBundle(*found, NotificationType::kQueryEvent, *last, events, context_.base_url);
    if (!bundle.ok()) return outcomeAnswer(500, "exception", bundle.message());
    return Answer{200, "application/fhir+json", std::move(*bundle), ""};
  }

  // GET /fhir/SubscriptionTopic: the topics as `Basic` resources, each at a fullUrl that answers.
  Answer topics(FhirCall& call) {
    call.access.audit.subtype = "search";
    if (!context_.topics) return outcomeAnswer(503, "transient", "subscriptions are not available: no topics loaded");
    std::string out = R"({"resourceType":"Bundle","type":"searchset","total":)" +
                      std::to_string(context_.topics->topics().size()) + R"(,"link":[{"relation":"self","url":")" +
                      context_.base_url + R"(/SubscriptionTopic"}],"entry":[)";
    bool first = true;
    for (const Topic& topic : context_.topics->topics()) {
      if (!first) out.push_back(',');
      first = false;
      out += R"({"fullUrl":")" + context_.base_url + "/Basic/" + topic.id + R"(","resource":)" + topic.basic_json +
             R"(,"search":{"mode":"match"}})";
    }
    out += "]}";
    return Answer{200, "application/fhir+json", out, ""};
  }

  // GET /fhir/Basic/{id}: a topic (the only Basic resources this gateway serves).
  Answer topic(FhirCall& call) {
    call.access.audit.subtype = "read";
    call.access.audit.entities.push_back("Basic/" + call.id);
    if (context_.topics) {
      for (const Topic& topic : context_.topics->topics()) {
        if (topic.id == call.id) return Answer{200, "application/fhir+json", topic.basic_json, ""};
      }
    }
    return outcomeAnswer(404, "not-found", "Basic/" + call.id + " is not known (the Basic resources here are the subscription topics)");
  }

 private:
  // The answer with the Subscription as it stands, its version headers and Location.
  Answer answerCurrent(FhirCall& call, const Subscription& subscription, int status) {
    const SubscriptionVersion version = versionOf(subscription);
    fhirhttp::addVersionHeaders(call.access, version.version, version.updated);
    const std::string url =
        context_.base_url + "/Subscription/" + subscription.id + "/_history/" + std::to_string(version.version);
    if (call.request.head.method == "GET" || call.request.head.method == "HEAD") {
      call.access.headers.emplace_back("Content-Location", url);
      if (fhirhttp::notModified(call.request, version.version, version.updated)) return Answer{304, "application/fhir+json", ""};
      return Answer{status, "application/fhir+json", subscriptionJson(subscription), ""};
    }
    return fhirhttp::shapedWrite(call.request, Answer{status, "application/fhir+json", subscriptionJson(subscription), url},
                                 "Subscription/" + subscription.id + " is at version " + std::to_string(version.version));
  }

  // If-Match on PUT/DELETE: 412 when it names another version than the current one, or when
  // there is no current one.
  static std::optional<Answer> precondition(FhirCall& call, const std::optional<Subscription>& found) {
    auto wanted = fhirhttp::ifMatch(call.request);
    if (!wanted) return std::nullopt;
    if (!found) return outcomeAnswer(412, "conflict", "If-Match: Subscription/" + call.id + " does not exist");
    const int64_t current = versionOf(*found).version;
    if (wanted->empty() || *wanted == std::to_string(current)) return std::nullopt;
    return outcomeAnswer(412, "conflict", "If-Match: W/\"" + *wanted + "\" is stale: Subscription/" + call.id +
                                              " is at version " + std::to_string(current));
  }

  // The caller's Subscriptions matching If-None-Exist criteria (_id, status, criteria, url, type).
  Result<std::vector<Subscription>> matching(FhirCall& call, const std::string& criteria) {
    auto parameters = http::parseQuery(criteria.starts_with("?") ? criteria.substr(1) : criteria);
    if (!parameters.ok()) return parameters.error();
    if (parameters->empty()) return Error{"no criteria"};
    std::vector<Subscription> out;
    for (const Subscription& candidate : context_.subscriptions->all()) {
      if (policy_.subscriptionOwner(call.access.caller, candidate.id, candidate.owner)) continue;
      auto doc = json::parse(candidate.resource_json);
      const json::Value* channel = doc.ok() ? json::find(*doc, "channel") : nullptr;
      bool all = true;
      for (const auto& [name, value] : *parameters) {
        std::string actual;
        if (name == "_id") {
          actual = candidate.id;
        } else if (name == "status") {
          actual = candidate.status;
        } else if (name == "criteria") {
          actual = candidate.topic;
        } else if (name == "url") {
          actual = candidate.endpoint;
        } else if (name == "type") {
          actual = channel != nullptr ? std::string(json::getString(*channel, "type").value_or("")) : "";
        } else {
          return Error{"parameter '" + name + "' is not supported (_id, status, criteria, url, type)"};
        }
        bool any = false;
        size_t start = 0;
        while (start <= value.size()) {  // comma = OR
          size_t comma = value.find(',', start);
          if (comma == std::string::npos) comma = value.size();
          any = any || value.substr(start, comma - start) == actual;
          start = comma + 1;
        }
        all = all && any;
      }
      if (all) out.push_back(candidate);
    }
    return out;
  }

  Answer put(FhirCall& call, const std::string& path_id) {
    const auth::Caller& caller = call.access.caller;
    std::string body;
    if (auto refused = readRequestBody(call.request, static_cast<size_t>(context_.config.max_body_bytes), body)) return *refused;
    json::Document doc;
    json::ParseError error;
    if (!json::parse(body, doc, error)) return outcomeAnswer(400, "structure", "the body is not well-formed JSON: " + error.describe());
    IssueList issues;
    if (context_.validator) context_.validator->validate(doc, ValidationRequest{}, issues);
    if (issues.hasErrors()) return Answer{422, "application/fhir+json", toOperationOutcomeJson(issues), ""};
    IssueList subscription_issues;
    auto subscription = parseSubscription(doc, *context_.topics, subscription_issues);
    if (!subscription) return Answer{422, "application/fhir+json", toOperationOutcomeJson(subscription_issues), ""};
    // Headers are sent as given: a CR or LF would start another header or request.
    for (const std::string& header : subscription->headers) {
      if (header.find_first_of("\r\n") != std::string::npos) {
        return outcomeAnswer(422, "value", "Subscription.channel.header must not contain CR or LF");
      }
    }
    {
      std::string scheme, self_host;
      int self_port = 0;
      auth::splitUrl(context_.base_url, scheme, self_host, self_port);
      if (auto refused = policy_.subscriptionEndpoint(caller, subscription->endpoint, self_host, self_port)) {
        return refusal(*refused);
      }
    }
    subscription->owner = caller.id();
    if (!path_id.empty()) {
      if (!subscription->id.empty() && subscription->id != path_id) {
        return outcomeAnswer(400, "invalid", "the resource id '" + subscription->id + "' differs from the URL id '" + path_id + "'");
      }
      subscription->id = path_id;
    } else {
      subscription->id = fhir::deriveId({"Subscription", std::to_string(nowMs()), body});
    }
    if (!isResourceIdText(subscription->id)) return outcomeAnswer(400, "invalid", "'" + subscription->id + "' is not a valid id");
    const auto existing = context_.subscriptions->get(subscription->id);
    const bool created = !existing.has_value();
    if (existing) subscription->owner = existing->owner;  // an update keeps the owner (checked above)
    subscription->resource_json = withVersion(subscription->resource_json, existing ? versionOf(*existing).version + 1 : 1, nowIso());
    call.access.audit.entities = {"Subscription/" + subscription->id};
    if (created && !caller.open() && !caller.admin() && context_.auth != nullptr) {
      const int64_t limit = context_.auth->config().max_subscriptions_per_client;
      int64_t owned = 0;
      for (const Subscription& other : context_.subscriptions->all()) owned += other.owner == caller.id() ? 1 : 0;
      if (owned >= limit) {
        return outcomeAnswer(422, "business-rule", "client '" + caller.id() + "' already has " + std::to_string(owned) +
                                                       " Subscriptions (auth.maxSubscriptionsPerClient)");
      }
    }
    SubscriptionRow row{subscription->id, subscription->status, "", subscription->resource_json, subscription->owner};
    row.audit = takeAudit(context_, created ? 201 : 200);  // same transaction as the row
    Status stored = context_.store->putSubscription(row);
    if (!stored.ok()) return outcomeAnswer(503, "transient", stored.message());
    writtenAudit(context_);
    context_.subscriptions->put(*subscription);
    if (context_.wake_delivery) context_.wake_delivery();
    return answerCurrent(call, *subscription, created ? 201 : 200);
  }

  ServerContext& context_;
  const auth::AccessPolicy& policy_;
};

}  // namespace

void registerSubscriptionRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy) {
  auto subscriptions = std::make_shared<SubscriptionRoutes>(context, policy);
  FhirTypeRoutes& entry = routes.type("Subscription");
  entry.documentation = "Topic-based Subscriptions (R5 Backport IG for R4): criteria is a topic canonical; rest-hook";
  entry.versioned = true;
  entry.conditional_create = true;
  entry.conditional_read = true;
  entry.conditional_update = true;
  routes.add("Subscription", FhirInteraction::kCreate, [subscriptions](FhirCall& call) { return subscriptions->create(call); });
  routes.add("Subscription", FhirInteraction::kRead, [subscriptions](FhirCall& call) { return subscriptions->read(call); });
  routes.add("Subscription", FhirInteraction::kVread, [subscriptions](FhirCall& call) { return subscriptions->read(call); });
  routes.add("Subscription", FhirInteraction::kHistoryInstance,
             [subscriptions](FhirCall& call) { return subscriptions->history(call); });
  routes.add("Subscription", FhirInteraction::kUpdate, [subscriptions](FhirCall& call) { return subscriptions->update(call); });
  routes.add("Subscription", FhirInteraction::kDelete, [subscriptions](FhirCall& call) { return subscriptions->remove(call); });
  for (const char* name : {"status", "events"}) {
    FhirOperation operation;
    operation.name = name;
    operation.definition = std::string(kBackportOperations) + "backport-subscription-" + name;
    operation.level = FhirOperation::Level::kInstance;
    operation.methods = {"GET"};
    operation.handler = [subscriptions](FhirCall& call) { return subscriptions->operation(call); };
    routes.addOperation("Subscription", std::move(operation));
  }
  routes.type("Basic").documentation = "The subscription topics (R4 backport representation of SubscriptionTopic)";
  routes.add("Basic", FhirInteraction::kRead, [subscriptions](FhirCall& call) { return subscriptions->topic(call); });
  routes.addPath("SubscriptionTopic", [subscriptions](FhirCall& call) { return subscriptions->topics(call); });
}

}  // namespace fhir::gateway

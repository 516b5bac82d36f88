// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/http_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <filesystem>
#include <map>
#include <fstream>
#include <istream>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/store/time_util.h"
#include "mappers/common/ids.h"

namespace fhir::gateway {
namespace {

using Poco::Net::HTTPRequestHandler;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr size_t kQuarantinePrefixBytes = 1 << 20;

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : path) {
    if (c == '/') {
      if (!current.empty()) parts.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

bool isResourceType(const std::string& text) {
  if (text.empty() || text[0] < 'A' || text[0] > 'Z') return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool isResourceId(const std::string& text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

Answer issueAnswer(int status, std::string code, std::string diagnostics) {
  IssueList issues;
  issues.add(Issue{Severity::kError, std::move(code), std::move(diagnostics), {}, {}});
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

class Router final : public HTTPRequestHandler {
 public:
  explicit Router(ServerContext& context) : context_(context) {}

  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    if (context_.auth != nullptr && auth::AuthService::handles(request.getURI().substr(0, request.getURI().find('?')))) {
      serveAuth(request, response);
      return;
    }
    Answer answer;
    try {
      answer = route(request);
    } catch (const std::exception& error) {
      answer = issueAnswer(500, "exception", std::string("internal error: ") + error.what());
    }
    context_.metrics.countHttp(answer.status);
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
    response.setContentType(answer.content_type);
    response.setContentLength64(static_cast<Poco::UInt64>(answer.body.size()));
    if (!answer.location.empty()) response.set("Location", answer.location);
    std::ostream& out = response.send();
    out.write(answer.body.data(), static_cast<std::streamsize>(answer.body.size()));
  }

 private:
  // The auth service's routes (gateway/auth): its answers carry their own headers.
  void serveAuth(HTTPServerRequest& request, HTTPServerResponse& response) {
    constexpr size_t kMaxFormBytes = 64 * 1024;
    std::string body(kMaxFormBytes + 1, '\0');
    request.stream().read(body.data(), static_cast<std::streamsize>(body.size()));
    body.resize(static_cast<size_t>(request.stream().gcount()));
    const std::string path = request.getURI().substr(0, request.getURI().find('?'));
    auth::AuthAnswer answer =
        body.size() > kMaxFormBytes
            ? auth::AuthAnswer{413, "application/json", R"({"error":"invalid_request","error_description":"the body is too large"})", {}}
            : context_.auth->handle(request.getMethod(), path, request.getContentType(), body, nowMs());
    context_.metrics.countHttp(answer.status);
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
    response.setContentType(answer.content_type);
    for (const auto& [name, value] : answer.headers) response.set(name, value);
    response.setContentLength64(static_cast<Poco::UInt64>(answer.body.size()));
    response.send().write(answer.body.data(), static_cast<std::streamsize>(answer.body.size()));
  }

  Answer route(HTTPServerRequest& request) {
    const std::string& method = request.getMethod();
    std::string uri = request.getURI();
    std::string query;
    if (size_t mark = uri.find('?'); mark != std::string::npos) {
      query = uri.substr(mark + 1);
      uri.resize(mark);
    }
    const std::vector<std::string> parts = splitPath(uri);
    const bool get = method == "GET";
    const bool post = method == "POST";

    if (get && uri == "/healthz") return Answer{200, "application/json", R"({"status":"ok"})"};
    if (get && uri == "/readyz") {
      if (context_.validator && context_.store) return Answer{200, "application/json", R"({"status":"ready"})"};
      return issueAnswer(503, "transient", "not ready: definitions or store not loaded");
    }
    if (get && uri == "/metrics") return metrics();
    if (post && uri == "/ingest/econsult") {
      std::string body;
      if (auto refused = readBody(request, "econsult", body)) {
        return Pipeline::econsultRefusal(std::move(*refused), request.getContentType());
      }
      return context_.pipeline.ingestEconsult(body, request.getContentType());
    }
    if (post && uri == "/ingest/care-management") {
      std::string body;
      if (auto refused = readBody(request, "care-management", body)) return *refused;
      return context_.pipeline.ingestCareManagement(body, request.getContentType());
    }
    if (post && parts.size() == 3 && parts[0] == "ingest" && (parts[1] == "claims" || parts[1] == "roster")) {
      // Payer files stream through the mapper record by record (chunked or not); maxBodyBytes
      // does not cap them (README, "Configuration").
      return context_.pipeline.ingestPayerFile(parts[1], parts[2], request.stream(), request.getContentType());
    }
    if (parts.size() >= 2 && parts[0] == "fhir" && (parts[1] == "Subscription" || parts[1] == "SubscriptionTopic")) {
      return subscriptionRoute(request, method, parts, query);
    }
    if (parts.size() >= 1 && parts[0] == "fhir") {
      if (get && parts.size() == 2 && parts[1] == "metadata") return capabilityStatement();
      if (post && ((parts.size() == 2 && parts[1] == "$validate") ||
                   (parts.size() == 3 && isResourceType(parts[1]) && parts[2] == "$validate"))) {
        return validate(request, parts.size() == 3 ? parts[1] : "", query);
      }
      if (get && parts.size() == 3 && isResourceType(parts[1])) {
        if (!isResourceId(parts[2])) return issueAnswer(404, "not-found", "'" + parts[2] + "' is not a valid resource id");
        auto stored = context_.store->readResource(parts[1], parts[2]);
        if (!stored.ok()) return issueAnswer(503, "transient", stored.message());
        if (!stored->has_value()) return issueAnswer(404, "not-found", parts[1] + "/" + parts[2] + " is not known");
        return Answer{200, "application/fhir+json", (*stored)->json};
      }
    }
    if (get && uri == "/admin/quarantine") return quarantineList();
    if (get && uri == "/admin/unroutable") return unroutableList();
    if (get && uri == "/admin/dead-letters") return deadLetterList();
    if (post && parts.size() == 4 && parts[0] == "admin" && parts[1] == "quarantine" && parts[3] == "replay") {
      return context_.pipeline.replayQuarantined(parts[2]).answer;
    }
    if (post && parts.size() == 4 && parts[0] == "admin" && parts[1] == "dead-letters" && parts[3] == "replay") {
      int64_t id = 0;
      try {
        id = std::stoll(parts[2]);
      } catch (const std::exception&) {
        return issueAnswer(404, "not-found", "'" + parts[2] + "' is not a dead-letter id");
      }
      auto replayed = context_.store->replayDeadLetter(id);
      if (!replayed.ok()) return issueAnswer(503, "transient", replayed.message());
      if (!*replayed) return issueAnswer(404, "not-found", "no dead letter " + parts[2]);
      if (context_.wake_delivery) context_.wake_delivery();
      IssueList done;
      done.add(Issue{Severity::kInformation, "informational", "dead letter " + parts[2] + " queued for delivery again", {}, {}});
      return Answer{200, "application/fhir+json", toOperationOutcomeJson(done), ""};
    }
    return issueAnswer(404, "not-found", method + " " + uri + " is not a route of this gateway");
  }

  // Reads the request body into `body`, refusing (and quarantining a prefix of) bodies over
  // maxBodyBytes. Returns the refusal, or nullopt when `body` is complete.
  std::optional<Answer> readBody(HTTPServerRequest& request, std::string_view channel, std::string& body) {
    const auto limit = static_cast<size_t>(context_.config.max_body_bytes);
    std::istream& stream = request.stream();
    const bool declared_too_big = request.hasContentLength() && request.getContentLength64() > static_cast<Poco::Int64>(limit);
    const size_t keep = declared_too_big ? std::min(limit, kQuarantinePrefixBytes) : limit + 1;
    body.resize(keep);
    stream.read(body.data(), static_cast<std::streamsize>(keep));
    body.resize(static_cast<size_t>(stream.gcount()));
    if (!declared_too_big && body.size() <= limit) return std::nullopt;
    if (body.size() > kQuarantinePrefixBytes) body.resize(kQuarantinePrefixBytes);
    IssueList issues;
    issues.add(Issue{Severity::kError, "too-long",
                     "the body is larger than maxBodyBytes (" + std::to_string(limit) +
                         " bytes); the first " + std::to_string(body.size()) + " bytes are kept in quarantine",
                     {}, {}});
    return context_.pipeline.reject(channel, body, request.getContentType(), 413, issues, true);
  }

  // Reads the body of a request that is not an ingest (nothing to quarantine): 413 past
  // maxBodyBytes.
  std::optional<Answer> readRequestBody(HTTPServerRequest& request, std::string& body) {
    const auto limit = static_cast<size_t>(context_.config.max_body_bytes);
    body.resize(limit + 1);
    request.stream().read(body.data(), static_cast<std::streamsize>(limit + 1));
    body.resize(static_cast<size_t>(request.stream().gcount()));
    if (body.size() > limit) return issueAnswer(413, "too-long", "the body is larger than maxBodyBytes");
    return std::nullopt;
  }

  Answer validate(HTTPServerRequest& request, const std::string& type, const std::string& query) {
    if (!context_.validator) return issueAnswer(503, "transient", "the validator is not loaded");
    std::string body;
    if (auto refused = readRequestBody(request, body)) return *refused;
    ValidationRequest validation;
    for (const std::string& pair : [&] {
           std::vector<std::string> items;
           std::stringstream stream(query);
           std::string item;
           while (std::getline(stream, item, '&')) items.push_back(item);
           return items;
         }()) {
      if (pair.rfind("profile=", 0) == 0) validation.profiles.push_back(decode(pair.substr(8)));
    }
    json::Document doc;
    json::ParseError error;
    IssueList issues;
    if (!json::parse(body, doc, error)) {
      context_.validator->validateText(body, validation, issues);
      return Answer{200, "application/fhir+json", toOperationOutcomeJson(issues)};
    }
    const json::Value* resource = &doc;
    if (json::getString(doc, "resourceType") == "Parameters") {
      resource = nullptr;
      if (const json::Value* parameters = json::find(doc, "parameter"); parameters && parameters->IsArray()) {
        for (const json::Value& parameter : parameters->GetArray()) {
          if (json::getString(parameter, "name") == "resource") resource = json::find(parameter, "resource");
          if (json::getString(parameter, "name") == "profile") {
            if (auto url = json::getString(parameter, "valueUri")) validation.profiles.emplace_back(*url);
            if (auto url = json::getString(parameter, "valueCanonical")) validation.profiles.emplace_back(*url);
          }
        }
      }
      if (resource == nullptr) return issueAnswer(400, "required", "Parameters has no 'resource' parameter");
    }
    if (!type.empty() && json::getString(*resource, "resourceType") != type) {
      return issueAnswer(400, "invalid", "the body is not a " + type + " resource");
    }
    context_.validator->validate(*resource, validation, issues);
    return Answer{200, "application/fhir+json", toOperationOutcomeJson(issues)};
  }

  static std::string decode(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '%' && i + 2 < text.size()) {
        out.push_back(static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(text[i] == '+' ? ' ' : text[i]);
      }
    }
    return out;
  }

  Answer metrics() {
    std::ostringstream extra;
    if (auto depths = context_.store->outboxDepth(); depths.ok()) {
      extra << "# TYPE gateway_outbox_depth gauge\n";
      for (const auto& depth : *depths) extra << "gateway_outbox_depth{destination=\"" << depth.destination << "\"} " << depth.pending << "\n";
      extra << "# TYPE gateway_dead_letters gauge\n";
      for (const auto& depth : *depths) extra << "gateway_dead_letters{destination=\"" << depth.destination << "\"} " << depth.dead << "\n";
      extra << "# TYPE gateway_outbox_oldest_pending_timestamp_ms gauge\n";
      for (const auto& depth : *depths) {
        extra << "gateway_outbox_oldest_pending_timestamp_ms{destination=\"" << depth.destination << "\"} " << depth.oldest_pending_ms << "\n";
      }
    }
    return Answer{200, "text/plain; version=0.0.4", context_.metrics.render(extra.str())};
  }

  Answer capabilityStatement() {
    json::Document doc;
    doc.SetObject();
    auto& a = doc.GetAllocator();
    json::addString(doc, "resourceType", "CapabilityStatement", a);
    json::addString(doc, "status", "active", a);
    json::addString(doc, "date", "2026-11-24", a);
    json::addString(doc, "kind", "instance", a);
    json::Value software(rapidjson::kObjectType);
    json::addString(software, "name", "fhir-gateway", a);
    json::addString(software, "version", "0.1.0", a);
    json::addMember(doc, "software", std::move(software), a);
    json::addString(doc, "fhirVersion", "4.0.1", a);
    json::Value formats(rapidjson::kArrayType);
    formats.PushBack(json::makeString("application/fhir+json", a), a);
    formats.PushBack(json::makeString("json", a), a);
    json::addMember(doc, "format", std::move(formats), a);
    json::Value rest(rapidjson::kObjectType);
    json::addString(rest, "mode", "server", a);
    json::Value resources(rapidjson::kArrayType);
    for (const char* type : {"Patient", "Coverage", "Organization", "Practitioner", "ServiceRequest", "Task",
                             "Communication", "Claim"}) {
      json::Value resource(rapidjson::kObjectType);
      json::addString(resource, "type", type, a);
      json::Value interactions(rapidjson::kArrayType);
      json::Value read(rapidjson::kObjectType);
      json::addString(read, "code", "read", a);
      interactions.PushBack(read, a);
      json::addMember(resource, "interaction", std::move(interactions), a);
      resources.PushBack(resource, a);
    }
    json::addMember(rest, "resource", std::move(resources), a);
    json::Value operations(rapidjson::kArrayType);
    json::Value validate_op(rapidjson::kObjectType);
    json::addString(validate_op, "name", "validate", a);
    json::addString(validate_op, "definition", "http://hl7.org/fhir/OperationDefinition/Resource-validate", a);
    operations.PushBack(validate_op, a);
    json::addMember(rest, "operation", std::move(operations), a);
    if (!context_.topic_canonicals.empty()) {
      json::Value extensions(rapidjson::kArrayType);
      for (const std::string& canonical : context_.topic_canonicals) {
        json::Value extension(rapidjson::kObjectType);
        json::addString(extension, "url",
                        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical", a);
        json::addString(extension, "valueCanonical", canonical, a);
        extensions.PushBack(extension, a);
      }
      json::addMember(rest, "extension", std::move(extensions), a);
    }
    json::Value rests(rapidjson::kArrayType);
    rests.PushBack(rest, a);
    json::addMember(doc, "rest", std::move(rests), a);
    return Answer{200, "application/fhir+json", json::serialize(doc)};
  }

  static std::map<std::string, std::string> queryParameters(const std::string& query) {
    std::map<std::string, std::string> parameters;
    std::stringstream stream(query);
    std::string pair;
    while (std::getline(stream, pair, '&')) {
      size_t equals = pair.find('=');
      if (equals == std::string::npos) continue;
      parameters[decode(pair.substr(0, equals))] = decode(pair.substr(equals + 1));
    }
    return parameters;
  }

  Answer subscriptionRoute(HTTPServerRequest& request, const std::string& method,
                           const std::vector<std::string>& parts, const std::string& query) {
    if (!context_.topics || context_.subscriptions == nullptr) {
      return issueAnswer(503, "transient", "subscriptions are not available: no topics loaded");
    }
    if (parts[1] == "SubscriptionTopic") {
      if (method != "GET" || parts.size() != 2) return issueAnswer(405, "not-supported", "SubscriptionTopic is read-only");
      std::string out = R"({"resourceType":"Bundle","type":"searchset","total":)" +
                        std::to_string(context_.topics->topics().size()) + R"(,"entry":[)";
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
    SubscriptionRegistry& registry = *context_.subscriptions;
    if (parts.size() == 2 && method == "POST") return putSubscription(request, "");
    if (parts.size() < 3) return issueAnswer(405, "not-supported", method + " /fhir/Subscription is not supported");
    const std::string& id = parts[2];
    if (parts.size() == 3 && method == "PUT") return putSubscription(request, id);
    auto subscription = registry.get(id);
    if (!subscription) return issueAnswer(404, "not-found", "Subscription/" + id + " is not known");
    if (parts.size() == 3 && method == "GET") return Answer{200, "application/fhir+json", subscriptionJson(*subscription), ""};
    if (parts.size() == 3 && method == "DELETE") {
      Status deleted = context_.store->deleteSubscription(id);
      if (!deleted.ok()) return issueAnswer(503, "transient", deleted.message());
      registry.remove(id);
      IssueList done;
      done.add(Issue{Severity::kInformation, "informational", "Subscription/" + id + " deleted", {}, {}});
      return Answer{200, "application/fhir+json", toOperationOutcomeJson(done), ""};
    }
    const std::string destination = "subscription:" + id;
    auto last = context_.store->lastNumber(destination);
    if (!last.ok()) return issueAnswer(503, "transient", last.message());
    if (parts.size() == 4 && method == "GET" && parts[3] == "$status") {
      return Answer{200, "application/fhir+json",
                    notificationBundle(*subscription, NotificationType::kQueryStatus, *last, {}, context_.base_url), ""};
    }
    if (parts.size() == 4 && method == "GET" && parts[3] == "$events") {
      auto parameters = queryParameters(query);
      int64_t since = 1;
      int64_t until = *last;
      try {
        if (parameters.count("eventsSinceNumber")) since = std::stoll(parameters["eventsSinceNumber"]);
        if (parameters.count("eventsUntilNumber")) until = std::stoll(parameters["eventsUntilNumber"]);
      } catch (const std::exception&) {
        return issueAnswer(400, "value", "eventsSinceNumber and eventsUntilNumber must be integers");
      }
      auto rows = context_.store->outboxRange(destination, since, until);
      if (!rows.ok()) return issueAnswer(503, "transient", rows.message());
      std::vector<NotificationEvent> events;
      for (const OutboxItem& row : *rows) events.push_back({row.number, row.body});
      return Answer{200, "application/fhir+json",
                    notificationBundle(*subscription, NotificationType::kQueryEvent, *last, events, context_.base_url), ""};
    }
    return issueAnswer(404, "not-found", method + " " + request.getURI() + " is not a Subscription operation");
  }

  Answer putSubscription(HTTPServerRequest& request, const std::string& path_id) {
    std::string body;
    if (auto refused = readRequestBody(request, body)) return *refused;
    json::Document doc;
    json::ParseError error;
    if (!json::parse(body, doc, error)) return issueAnswer(400, "structure", "the body is not well-formed JSON: " + error.describe());
    IssueList issues;
    if (context_.validator) context_.validator->validate(doc, ValidationRequest{}, issues);
    if (issues.hasErrors()) return Answer{422, "application/fhir+json", toOperationOutcomeJson(issues), ""};
    IssueList subscription_issues;
    auto subscription = parseSubscription(doc, *context_.topics, subscription_issues);
    if (!subscription) return Answer{422, "application/fhir+json", toOperationOutcomeJson(subscription_issues), ""};
    if (!path_id.empty()) {
      if (!subscription->id.empty() && subscription->id != path_id) {
        return issueAnswer(400, "invalid", "the resource id '" + subscription->id + "' differs from the URL id '" + path_id + "'");
      }
      subscription->id = path_id;
    } else {
      subscription->id = mappers::deriveId({"Subscription", std::to_string(nowMs()), body});
    }
    if (!isResourceId(subscription->id)) return issueAnswer(400, "invalid", "'" + subscription->id + "' is not a valid id");
    const bool created = !context_.subscriptions->get(subscription->id).has_value();
    Status stored = context_.store->putSubscription(
        SubscriptionRow{subscription->id, subscription->status, "", subscription->resource_json});
    if (!stored.ok()) return issueAnswer(503, "transient", stored.message());
    context_.subscriptions->put(*subscription);
    if (context_.wake_delivery) context_.wake_delivery();
    return Answer{created ? 201 : 200, "application/fhir+json", subscriptionJson(*subscription),
                  context_.base_url + "/Subscription/" + subscription->id};
  }

  // {"items": [...]} with one object per element, filled by `fill(element, object, allocator)`.
  template <typename T, typename Fill>
  static Answer itemList(const std::vector<T>& elements, Fill fill) {
    json::Document doc;
    doc.SetObject();
    auto& allocator = doc.GetAllocator();
    json::Value list(rapidjson::kArrayType);
    for (const T& element : elements) {
      json::Value object(rapidjson::kObjectType);
      fill(element, object, allocator);
      list.PushBack(object, allocator);
    }
    json::addMember(doc, "items", std::move(list), allocator);
    return Answer{200, "application/json", json::serialize(doc)};
  }

  // A stored OperationOutcome as a value (stored outcomes are our own serialized JSON).
  static json::Value outcomeValue(const std::string& text, json::Allocator& allocator) {
    json::Value value;
    auto parsed = json::parse(text);
    if (parsed.ok()) value.CopyFrom(*parsed, allocator);
    return value;
  }

  Answer unroutableList() {
    auto items = context_.store->listUnroutable(1000);
    if (!items.ok()) return issueAnswer(503, "transient", items.message());
    return itemList(*items, [](const UnroutableWrite& item, json::Value& object, json::Allocator& a) {
      json::addString(object, "claimId", item.claim_id, a);
      json::addString(object, "patientId", item.patient_id, a);
      json::addString(object, "dateOfService", item.date_of_service, a);
      json::addString(object, "code", item.code, a);
      json::addString(object, "reason", item.reason, a);
      json::addMember(object, "outcome", outcomeValue(item.outcome_json, a), a);
    });
  }

  Answer deadLetterList() {
    auto items = context_.store->listDeadLetters(1000);
    if (!items.ok()) return issueAnswer(503, "transient", items.message());
    return itemList(*items, [](const OutboxItem& item, json::Value& object, json::Allocator& a) {
      json::addMember(object, "id", json::makeNumber(std::to_string(item.id), a), a);
      json::addString(object, "destination", item.destination, a);
      json::addMember(object, "eventNumber", json::makeNumber(std::to_string(item.number), a), a);
      json::addMember(object, "attempts", json::makeNumber(std::to_string(item.attempts), a), a);
      if (!item.last_error.empty()) json::addString(object, "lastError", item.last_error, a);
    });
  }

  Answer quarantineList() {
    auto entries = context_.store->listQuarantine(100);
    if (!entries.ok()) return issueAnswer(503, "transient", entries.message());
    return itemList(*entries, [](const QuarantineEntry& entry, json::Value& object, json::Allocator& a) {
      json::addString(object, "id", entry.id, a);
      json::addString(object, "channel", entry.channel, a);
      json::addString(object, "receivedAt", entry.received_at, a);
      json::addString(object, "contentType", entry.content_type, a);
      json::addMember(object, "truncated", json::Value(entry.truncated), a);
      json::addMember(object, "outcome", outcomeValue(entry.outcome_json, a), a);
      json::addString(object, "payload", entry.payload, a);
      json::addString(object, "status", entry.status, a);
      json::addMember(object, "replays", json::makeNumber(std::to_string(entry.replays), a), a);
      if (entry.replays > 0) {
        json::Value last(rapidjson::kObjectType);
        json::addString(last, "at", entry.replayed_at, a);
        json::addMember(last, "status", json::makeNumber(std::to_string(entry.replay_status), a), a);
        json::addMember(last, "answer", outcomeValue(entry.replay_answer, a), a);
        json::addMember(object, "lastReplay", std::move(last), a);
      }
    });
  }

  ServerContext& context_;
};

class RouterFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit RouterFactory(ServerContext& context) : context_(context) {}
  HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new Router(context_); }

 private:
  ServerContext& context_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(ServerContext& context) : context(context), pool(2, 64) {}
  ServerContext& context;
  Poco::ThreadPool pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;
};

HttpServer::HttpServer(ServerContext& context) : impl_(std::make_unique<Impl>(context)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start(const std::string& host, uint16_t port) {
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(host, port), true);
    socket.listen(256);
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(64);
    params->setMaxQueued(1024);
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(0);
    impl_->server = std::make_unique<Poco::Net::HTTPServer>(new RouterFactory(impl_->context), impl_->pool,
                                                            socket, params);
    impl_->server->start();
  } catch (const Poco::Exception& error) {
    return Error{"cannot listen on " + host + ":" + std::to_string(port) + ": " + error.displayText()};
  }
  return Status::Ok();
}

void HttpServer::stop() {
  if (impl_->server) {
    impl_->server->stopAll(false);
    impl_->pool.joinAll();
    impl_->server.reset();
  }
}

}  // namespace fhir::gateway

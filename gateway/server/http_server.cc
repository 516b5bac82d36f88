// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/http_server.h"

#include <filesystem>
#include <map>
#include <fstream>
#include <istream>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/server/listener.h"
#include "gateway/store/time_util.h"
#include "mappers/common/ids.h"

namespace fhir::gateway {
namespace {

using HTTPServerRequest = http::Request;

constexpr size_t kQuarantinePrefixBytes = 1 << 20;

std::string contentTypeOf(const HTTPServerRequest& request) {
  const std::string* type = request.head.header("content-type");
  return type != nullptr ? *type : std::string();
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

class Router final {
 public:
  explicit Router(ServerContext& context) : context_(context) {}

  http::Response handle(HTTPServerRequest& request) {
    if (context_.auth != nullptr && auth::AuthService::handles(request.target.path)) return serveAuth(request);
    Answer answer;
    try {
      answer = route(request);
    } catch (const std::exception& error) {
      answer = issueAnswer(500, "exception", std::string("internal error: ") + error.what());
    }
    context_.metrics.countHttp(answer.status);
    http::Response response{answer.status, std::move(answer.content_type), std::move(answer.body), {}};
    if (!answer.location.empty()) response.headers.emplace_back("Location", answer.location);
    return response;
  }

 private:
  // The auth service's routes (gateway/auth): its answers carry their own headers.
  http::Response serveAuth(HTTPServerRequest& request) {
    constexpr size_t kMaxFormBytes = 64 * 1024;
    std::string body;
    readUpTo(request, kMaxFormBytes, body);
    auth::AuthAnswer answer =
        body.size() > kMaxFormBytes
            ? auth::AuthAnswer{413, "application/json", R"({"error":"invalid_request","error_description":"the body is too large"})", {}}
            : context_.auth->handle(request.head.method, request.target.path, contentTypeOf(request), body, nowMs(),
                                    request.peer_subject);
    context_.metrics.countHttp(answer.status);
    http::Response response{answer.status, std::move(answer.content_type), std::move(answer.body), {}};
    for (auto& [name, value] : answer.headers) response.headers.emplace_back(name, value);
    return response;
  }

  Answer route(HTTPServerRequest& request) {
    const std::string& method = request.head.method;
    const std::string& uri = request.target.path;
    const std::string& query = request.target.query;
    const std::vector<std::string>& parts = request.target.segments;
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
        return Pipeline::econsultRefusal(std::move(*refused), contentTypeOf(request));
      }
      return context_.pipeline.ingestEconsult(body, contentTypeOf(request));
    }
    if (post && uri == "/ingest/care-management") {
      std::string body;
      if (auto refused = readBody(request, "care-management", body)) return *refused;
      return context_.pipeline.ingestCareManagement(body, contentTypeOf(request));
    }
    if (post && parts.size() == 3 && parts[0] == "ingest" && (parts[1] == "claims" || parts[1] == "roster")) {
      // Payer files stream through the mapper record by record (chunked or not); maxBodyBytes
      // does not cap them (README, "Configuration").
      auto parameters = http::parseQuery(query);
      if (!parameters.ok()) {
        return issueAnswer(400, "invalid", "query: " + parameters.message());
      }
      std::string as_of;
      for (const auto& [name, value] : *parameters) {
        if (name == "asOf") as_of = value;
      }
      return context_.pipeline.ingestPayerFile(parts[1], parts[2], request.body, contentTypeOf(request),
                                               [&request]() -> std::optional<BodyProblem> {
                                                 if (request.body_reader.complete()) return std::nullopt;
                                                 const bool slow = request.body_reader.state() ==
                                                                   http::BodyReader::State::kTimedOut;
                                                 return BodyProblem{slow ? 408 : 400, request.body_reader.problem()};
                                               },
                                               as_of);
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
    if (get && uri == "/admin/quarantine") return quarantineList(query);
    if (get && parts.size() == 3 && parts[0] == "admin" && parts[1] == "quarantine") return quarantineEntry(parts[2]);
    if (get && uri == "/admin/unroutable") return unroutableList();
    if (get && uri == "/admin/dead-letters") return deadLetterList();
    if (get && uri == "/admin/conflicts") return conflictList();
    if (get && uri == "/admin/routing-conflicts") return routingConflictList();
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

  // Reads at most `limit` + 1 bytes of the body into `body` (room grows with what arrives, so a
  // large declared length costs nothing until the bytes come).
  static void readUpTo(HTTPServerRequest& request, size_t limit, std::string& body) {
    body.clear();
    char chunk[1 << 16];
    while (body.size() <= limit) {
      request.body.read(chunk, static_cast<std::streamsize>(std::min(sizeof chunk, limit + 1 - body.size())));
      if (request.body.gcount() <= 0) break;
      body.append(chunk, static_cast<size_t>(request.body.gcount()));
    }
  }

  // The answer to a body that did not arrive as framed: 408 when it stopped arriving, 400 when
  // it ended early or its chunks are malformed. nullopt when the body is complete.
  static std::optional<Answer> bodyProblem(const HTTPServerRequest& request) {
    if (request.body_reader.complete()) return std::nullopt;
    const bool slow = request.body_reader.state() == http::BodyReader::State::kTimedOut;
    return issueAnswer(slow ? 408 : 400, slow ? "timeout" : "incomplete", request.body_reader.problem());
  }

  // Reads the request body into `body`, refusing (and quarantining a prefix of) bodies over
  // maxBodyBytes and bodies that did not arrive whole. Returns the refusal, or nullopt when
  // `body` is complete.
  std::optional<Answer> readBody(HTTPServerRequest& request, std::string_view channel, std::string& body) {
    const auto limit = static_cast<size_t>(context_.config.max_body_bytes);
    const http::BodyFraming& framing = request.body_reader.framing();
    const bool declared_too_big = framing.kind == http::BodyFraming::Kind::kLength && framing.length > limit;
    readUpTo(request, declared_too_big ? std::min(limit, kQuarantinePrefixBytes) : limit, body);
    IssueList issues;
    int status = 413;
    if (!declared_too_big && body.size() <= limit) {
      auto problem = bodyProblem(request);
      if (!problem) return std::nullopt;
      status = problem->status;
      issues.add(Issue{Severity::kError, status == 408 ? "timeout" : "incomplete",
                       request.body_reader.problem() + "; nothing was ingested, the bytes received are kept in quarantine",
                       {}, {}});
    } else {
      issues.add(Issue{Severity::kError, "too-long",
                       "the body is larger than maxBodyBytes (" + std::to_string(limit) + " bytes); the first " +
                           std::to_string(std::min(body.size(), kQuarantinePrefixBytes)) + " bytes are kept in quarantine",
                       {}, {}});
    }
    if (body.size() > kQuarantinePrefixBytes) body.resize(kQuarantinePrefixBytes);
    return context_.pipeline.reject(channel, body, contentTypeOf(request), status, issues, true);
  }

  // Reads the body of a request that is not an ingest (nothing to quarantine): 413 past
  // maxBodyBytes, 408/400 for a body that did not arrive whole.
  std::optional<Answer> readRequestBody(HTTPServerRequest& request, std::string& body) {
    const auto limit = static_cast<size_t>(context_.config.max_body_bytes);
    readUpTo(request, limit, body);
    if (body.size() > limit) return issueAnswer(413, "too-long", "the body is larger than maxBodyBytes");
    return bodyProblem(request);
  }

  Answer validate(HTTPServerRequest& request, const std::string& type, const std::string& query) {
    if (!context_.validator) return issueAnswer(503, "transient", "the validator is not loaded");
    std::string body;
    if (auto refused = readRequestBody(request, body)) return *refused;
    ValidationRequest validation;
    auto parameters = http::parseQuery(query);
    if (!parameters.ok()) return issueAnswer(400, "invalid", parameters.message());
    for (const auto& [name, value] : *parameters) {
      if (name == "profile") validation.profiles.push_back(value);
    }
    json::Document doc;
    json::ParseError error;
    IssueList issues;
    if (!json::parse(body, doc, error)) {
      // Validation cannot run on a document nested deeper than maxJsonDepth.
      if (error.too_deep) return issueAnswer(400, "too-costly", "the body is not accepted: " + error.describe());
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
      auto parsed = http::parseQuery(query);
      if (!parsed.ok()) return issueAnswer(400, "invalid", parsed.message());
      std::map<std::string, std::string> parameters(parsed->begin(), parsed->end());
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
    return issueAnswer(404, "not-found", method + " " + request.head.target + " is not a Subscription operation");
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

  // Patients that share a payer member id but disagree on demographics (issue 11): not merged.
  Answer conflictList() {
    auto items = context_.store->listConflicts(1000);
    if (!items.ok()) return issueAnswer(503, "transient", items.message());
    return itemList(*items, [](const PatientConflict& item, json::Value& object, json::Allocator& a) {
      json::addString(object, "coverage", "Coverage/" + item.coverage_id, a);
      json::Value patients(rapidjson::kArrayType);
      patients.PushBack(json::makeString("Patient/" + item.patient_a, a), a);
      patients.PushBack(json::makeString("Patient/" + item.patient_b, a), a);
      json::addMember(object, "patients", std::move(patients), a);
      json::addString(object, "elements", item.elements, a);
      json::Document detail;
      json::ParseError error;
      json::Value sides;
      if (json::parse(item.detail, detail, error)) sides.CopyFrom(detail, a);
      json::addMember(object, "sides", std::move(sides), a);
      json::addString(object, "detectedAt", item.detected_at, a);
    });
  }

  // Claims already delivered that a later roster or claim file contradicts (issue 11).
  Answer routingConflictList() {
    auto items = context_.store->listRoutingConflicts(1000);
    if (!items.ok()) return issueAnswer(503, "transient", items.message());
    return itemList(*items, [](const RoutingConflict& item, json::Value& object, json::Allocator& a) {
      json::addString(object, "claimId", item.routed.claim_id, a);
      json::addString(object, "patientId", item.routed.patient_id, a);
      json::addString(object, "dateOfService", item.routed.date_of_service, a);
      json::addString(object, "code", item.routed.code, a);
      json::addString(object, "deliveredTo", item.routed.payer_id, a);
      json::addString(object, "coveredNowBy", item.now_payer_id, a);
      json::addString(object, "reason", item.reason, a);
      json::addString(object, "detectedAt", item.detected_at, a);
    });
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

  // RFC 4648 base64: payloads are bytes, and only base64 carries any byte sequence in JSON.
  static std::string base64(std::string_view bytes) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t at = 0;
    for (; at + 3 <= bytes.size(); at += 3) {
      const uint32_t triple = (static_cast<uint8_t>(bytes[at]) << 16) | (static_cast<uint8_t>(bytes[at + 1]) << 8) |
                              static_cast<uint8_t>(bytes[at + 2]);
      for (int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(triple >> shift) & 63]);
    }
    if (at < bytes.size()) {
      uint32_t triple = static_cast<uint8_t>(bytes[at]) << 16;
      if (at + 1 < bytes.size()) triple |= static_cast<uint8_t>(bytes[at + 1]) << 8;
      out.push_back(kAlphabet[(triple >> 18) & 63]);
      out.push_back(kAlphabet[(triple >> 12) & 63]);
      out.push_back(at + 1 < bytes.size() ? kAlphabet[(triple >> 6) & 63] : '=');
      out.push_back('=');
    }
    return out;
  }

  // One quarantine entry as JSON, without its payload (GET /admin/quarantine/{id} has it).
  static void quarantineFields(const QuarantineEntry& entry, json::Value& object, json::Allocator& a) {
    json::addString(object, "id", entry.id, a);
    json::addString(object, "channel", entry.channel, a);
    json::addString(object, "receivedAt", entry.received_at, a);
    if (!entry.last_received_at.empty()) json::addString(object, "lastReceivedAt", entry.last_received_at, a);
    json::addMember(object, "count", json::makeNumber(std::to_string(entry.count), a), a);
    json::addString(object, "contentType", entry.content_type, a);
    json::addMember(object, "truncated", json::Value(entry.truncated), a);
    json::addMember(object, "payloadBytes", json::makeNumber(std::to_string(entry.payload_bytes), a), a);
    if (!entry.payload_sha256.empty()) json::addString(object, "payloadSha256", entry.payload_sha256, a);
    json::addMember(object, "outcome", outcomeValue(entry.outcome_json, a), a);
    json::addString(object, "status", entry.status, a);
    json::addMember(object, "replays", json::makeNumber(std::to_string(entry.replays), a), a);
    if (entry.replays > 0) {
      json::Value last(rapidjson::kObjectType);
      json::addString(last, "at", entry.replayed_at, a);
      json::addMember(last, "status", json::makeNumber(std::to_string(entry.replay_status), a), a);
      json::addMember(last, "answer", outcomeValue(entry.replay_answer, a), a);
      json::addMember(object, "lastReplay", std::move(last), a);
    }
  }

  // GET /admin/quarantine?_count=&cursor=&channel=&status=&since=: one page, newest first,
  // without payloads; `nextCursor` is there while more entries follow.
  Answer quarantineList(const std::string& query) {
    auto parameters = http::parseQuery(query);
    if (!parameters.ok()) return issueAnswer(400, "invalid", parameters.message());
    QuarantineQuery request;
    for (const auto& [name, value] : *parameters) {
      if (name == "_count") {
        if (value.empty() || value.size() > 4 || value.find_first_not_of("0123456789") != std::string::npos ||
            std::stoi(value) < 1 || std::stoi(value) > 1000) {
          return issueAnswer(400, "invalid", "_count must be an integer from 1 to 1000");
        }
        request.count = static_cast<size_t>(std::stoi(value));
      } else if (name == "cursor") {
        if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 18) {
          return issueAnswer(400, "invalid", "cursor '" + value + "' is not one this gateway gave");
        }
        request.cursor = value;
      } else if (name == "channel") {
        request.channel = value;
      } else if (name == "status") {
        if (value != "quarantined" && value != "accepted") return issueAnswer(400, "invalid", "status must be quarantined or accepted");
        request.status = value;
      } else if (name == "since") {
        request.since = value;
      } else {
        return issueAnswer(400, "not-supported", "GET /admin/quarantine has no parameter '" + name + "'");
      }
    }
    auto page = context_.store->listQuarantinePage(request);
    if (!page.ok()) return issueAnswer(503, "transient", page.message());
    json::Document doc;
    doc.SetObject();
    auto& allocator = doc.GetAllocator();
    json::Value list(rapidjson::kArrayType);
    for (const QuarantineEntry& entry : page->entries) {
      json::Value object(rapidjson::kObjectType);
      quarantineFields(entry, object, allocator);
      list.PushBack(object, allocator);
    }
    json::addMember(doc, "items", std::move(list), allocator);
    if (!page->next_cursor.empty()) json::addString(doc, "nextCursor", page->next_cursor, allocator);
    return Answer{200, "application/json", json::serialize(doc)};
  }

  // GET /admin/quarantine/{id}: the entry with its payload, base64 (`payloadBase64`).
  Answer quarantineEntry(const std::string& id) {
    auto entry = context_.store->readQuarantine(id);
    if (!entry.ok()) return issueAnswer(503, "transient", entry.message());
    if (!entry->has_value()) return issueAnswer(404, "not-found", "no quarantine entry '" + id + "'");
    json::Document doc;
    doc.SetObject();
    auto& allocator = doc.GetAllocator();
    quarantineFields(**entry, doc, allocator);
    json::addString(doc, "payloadBase64", base64((*entry)->payload), allocator);
    return Answer{200, "application/json", json::serialize(doc)};
  }

  ServerContext& context_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(ServerContext& context)
      : router(context),
        listener(context.config.limits, [this](http::Request& request) { return router.handle(request); },
                 context.config.tls) {}
  Router router;
  http::Listener listener;
};

HttpServer::HttpServer(ServerContext& context) : impl_(std::make_unique<Impl>(context)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start(const std::string& host, uint16_t port) {
  Status started = impl_->listener.start(host, port);
  if (!started.ok()) return started;
  port_ = impl_->listener.port();
  return Status::Ok();
}

void HttpServer::stop() { impl_->listener.stop(); }

}  // namespace fhir::gateway

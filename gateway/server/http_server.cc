// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/http_server.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <fstream>
#include <istream>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/auth/certificate.h"
#include "gateway/export/export_routes.h"
#include "gateway/server/capability.h"
#include "gateway/server/fhir_http.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/read_routes.h"
#include "gateway/server/subscription_routes.h"
#include "gateway/server/listener.h"
#include "gateway/server/search_route.h"
#include "gateway/server/measure_route.h"
#include "gateway/server/scorecard_routes.h"
#include "gateway/store/search_index.h"
#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

using HTTPServerRequest = http::Request;

constexpr size_t kQuarantinePrefixBytes = 1 << 20;

std::string contentTypeOf(const HTTPServerRequest& request) {
  const std::string* type = request.head.header("content-type");
  return type != nullptr ? *type : std::string();
}

Answer issueAnswer(int status, std::string code, std::string diagnostics) {
  return outcomeAnswer(status, std::move(code), std::move(diagnostics));
}

Answer refusal(const auth::Refusal& refused) { return issueAnswer(refused.status, refused.code, refused.why); }

// Routes that answer without a token (access.md): liveness, readiness, the CapabilityStatement.
// (/auth/token and /.well-known/smart-configuration are the auth service's.)
bool openRoute(const HTTPServerRequest& request) {
  const std::string& path = request.target.path;
  return path == "/healthz" || path == "/readyz" || path == "/fhir/metadata";
}

// The interaction a request asks for, as the audit's subtype names it.
std::string subtypeOf(const std::string& method, const std::vector<std::string>& parts) {
  if (!parts.empty() && parts[0] == "ingest") return "ingest";
  if (!parts.empty() && parts[0] != "fhir") return "admin";
  if (method == "POST") {
    if (!parts.empty() && parts.back().rfind('$', 0) == 0) return "operation";
    return "create";
  }
  if (method == "PUT") return "update";
  if (method == "DELETE") return "delete";
  if (parts.size() >= 4 && parts[3].rfind('$', 0) == 0) return "operation";
  return parts.size() == 3 ? "read" : "search";
}

// "Type/id" of every entry fullUrl of a stored Bundle answer (what an ingest wrote).
std::vector<std::string> entitiesOf(const std::string& bundle) {
  std::vector<std::string> out;
  static constexpr std::string_view kFullUrl = "\"fullUrl\":\"";
  size_t at = 0;
  while ((at = bundle.find(kFullUrl, at)) != std::string::npos) {
    at += kFullUrl.size();
    const size_t end = bundle.find('"', at);
    if (end == std::string::npos) break;
    const std::string_view url(bundle.data() + at, end - at);
    const size_t last = url.rfind('/');
    const size_t type_start = last == std::string_view::npos || last == 0 ? std::string_view::npos : url.rfind('/', last - 1);
    if (type_start != std::string_view::npos) {
      std::string reference(url.substr(type_start + 1));
      if (std::find(out.begin(), out.end(), reference) == out.end()) out.push_back(std::move(reference));
    }
    at = end;
  }
  return out;
}

// The `source` an event names: `source` of a JSON event, MSH-3 of an HL7 v2 message. Empty when
// the body does not say (the channel then refuses it as it would anyway).
std::string eventSource(const std::string& body) {
  if (body.rfind("MSH", 0) == 0 && body.size() > 4) {
    const char separator = body[3];
    const std::string_view segment(body.data(), std::min(body.find_first_of("\r\n"), body.size()));
    size_t start = 0;
    for (int field = 0; field < 2; ++field) {
      start = segment.find(separator, start);
      if (start == std::string_view::npos) return {};
      ++start;
    }
    const std::string_view msh3 = segment.substr(start, segment.find(separator, start) - start);
    return std::string(msh3.substr(0, msh3.find('^')));
  }
  json::Document doc;
  json::ParseError error;
  if (!json::parse(body, doc, error) || !doc.IsObject()) return {};
  return std::string(json::getString(doc, "source").value_or(""));
}

class Router final {
 public:
  explicit Router(ServerContext& context) : context_(context), open_policy_(nullptr, nullptr) { registerFhirRoutes(); }

  void warm() { scorecard_.warm(); }

  http::Response handle(HTTPServerRequest& request) {
    if (context_.auth != nullptr && auth::AuthService::handles(request.target.path)) return serveAuth(request);
    if (auto page = scorecard_.handle(request)) return std::move(*page);  // /scorecard: its own session auth (issue 20)
    Access access;
    access.caller.address = request.peer;
    if (context_.auth != nullptr && !openRoute(request)) {
      if (auto refused = authenticate(request, access)) return std::move(*refused);
    }
    Answer answer;
    // A write commits this request's AuditEvent in its own transaction (PendingAudit); the rest
    // are queued to the background writer below.
    access.audit.agent = access.caller.id();
    access.audit.address = access.caller.address;
    auth::PendingAudit pending(access.audit);
    try {
      answer = route(request, access);
    } catch (const std::exception& error) {
      answer = issueAnswer(500, "exception", std::string("internal error: ") + error.what());
    }
    if (answer.status == 403 && access.audit.subtype.empty()) {
      access.audit.subtype = subtypeOf(request.head.method, request.target.segments);
    }
    if (pending.isWritten() && pending.writtenStatus() == answer.status) access.audit.subtype.clear();
    if (!access.audit.subtype.empty()) {
      if (access.audit.entities.empty()) access.audit.entities.push_back(request.target.path);
      audit(access, answer.status, answer.status >= 400 ? diagnosticsOf(answer) : std::string());
    }
    context_.metrics.countHttp(answer.status);
    http::Response response{answer.status, std::move(answer.content_type), std::move(answer.body), {}};
    if (!answer.location.empty()) response.headers.emplace_back("Location", answer.location);
    if (answer.retry_after > 0) response.headers.emplace_back("Retry-After", std::to_string(answer.retry_after));
    for (auto& header : access.headers) response.headers.push_back(std::move(header));
    return response;
  }

 private:
  const auth::AccessPolicy& policy() const { return context_.policy != nullptr ? *context_.policy : open_policy_; }

  // The first issue's diagnostics of an OperationOutcome answer (the audit's outcomeDesc).
  static std::string diagnosticsOf(const Answer& answer) {
    static constexpr std::string_view kDiagnostics = "\"diagnostics\":\"";
    const size_t at = answer.body.find(kDiagnostics);
    if (at == std::string::npos) return {};
    const size_t start = at + kDiagnostics.size();
    size_t end = start;
    while (end < answer.body.size() && answer.body[end] != '"') end += answer.body[end] == '\\' ? 2 : 1;
    return answer.body.substr(start, std::min<size_t>(end - start, 300));
  }

  void audit(Access& access, int status, std::string why) {
    if (context_.audit == nullptr) return;
    access.audit.status = status;
    access.audit.agent = access.caller.id();
    access.audit.address = access.caller.address;
    if (access.audit.why.empty()) access.audit.why = std::move(why);
    context_.audit->record(access.audit, nowMs());
  }

  // Reads `Authorization: Bearer <token>` and verifies it: the caller's client and scopes, or
  // the 401 answer (audited).
  std::optional<http::Response> authenticate(HTTPServerRequest& request, Access& access) {
    std::string why = "the request has no Bearer access token";
    if (const std::string* header = request.head.header("authorization")) {
      const size_t space = header->find(' ');
      std::string scheme = header->substr(0, space);
      std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string_view token = space == std::string::npos ? std::string_view() : std::string_view(*header).substr(space + 1);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      if (scheme != "bearer" || token.empty()) {
        why = "the Authorization header is not a Bearer access token";
      } else {
        auto grant = context_.auth->verifyAccessToken(token, nowMs());
        // A client bound to a TLS client certificate presents its token over that one only.
        const bool certificates = context_.config.tls && !context_.config.tls->client_ca_file.empty();
        if (grant.ok() && certificates && !grant->client->certificate_subject.empty() &&
            !auth::certificateMatches(*grant->client, request.peer_subject)) {
          why = "the access token's client is bound to another TLS client certificate";
        } else if (grant.ok()) {
          access.caller.client = grant->client;
          access.caller.scopes = grant->scopes;
          return std::nullopt;
        } else {
          why = grant.message();
        }
      }
    }
    access.audit.subtype = subtypeOf(request.head.method, request.target.segments);
    access.audit.entities.push_back(request.target.path);
    audit(access, 401, why);
    auth::AuthAnswer answer = auth::AuthService::invalidTokenAnswer(why);
    context_.metrics.countHttp(answer.status);
    http::Response response{answer.status, std::move(answer.content_type), std::move(answer.body), {}};
    for (auto& [name, value] : answer.headers) response.headers.emplace_back(name, value);
    return response;
  }

  // The auth service's routes (gateway/auth): its answers carry their own headers.
  http::Response serveAuth(HTTPServerRequest& request) {
    constexpr size_t kMaxFormBytes = 64 * 1024;
    std::string body;
    readUpTo(request, kMaxFormBytes, body);
    std::string client_id;
    auth::AuthAnswer answer =
        body.size() > kMaxFormBytes
            ? auth::AuthAnswer{413, "application/json", R"({"error":"invalid_request","error_description":"the body is too large"})", {}}
            : context_.auth->handle(request.head.method, request.target.path, contentTypeOf(request), body, nowMs(),
                                    request.peer_subject, &client_id);
    if (request.target.path == "/auth/token" && context_.audit != nullptr) {
      // Token decisions (issued or refused): the client once it is known, never the assertion.
      Access access;
      access.caller.address = request.peer;
      access.audit.type = "login";
      access.audit.subtype = "token";
      access.audit.action = 'E';
      access.audit.entities.push_back(request.target.path);
      auth::AuditEntry& entry = access.audit;
      entry.status = answer.status;
      entry.agent = client_id;
      entry.address = request.peer;
      if (answer.status != 200) {
        auto doc = json::parse(answer.body);
        if (doc.ok() && doc->IsObject()) entry.why = std::string(json::getString(*doc, "error").value_or(""));
      }
      context_.audit->record(entry, nowMs());
    }
    context_.metrics.countHttp(answer.status);
    http::Response response{answer.status, std::move(answer.content_type), std::move(answer.body), {}};
    for (auto& [name, value] : answer.headers) response.headers.emplace_back(name, value);
    return response;
  }

  Answer route(HTTPServerRequest& request, Access& access) {
    const auth::Caller& caller = access.caller;
    auth::AuditEntry& audit = access.audit;
    const std::string& method = request.head.method;
    const std::string& uri = request.target.path;
    const std::string& query = request.target.query;
    const std::vector<std::string>& parts = request.target.segments;
    const bool get = method == "GET";
    const bool post = method == "POST";

    if (get && uri == "/healthz") return Answer{200, "application/json", R"({"status":"ok"})"};
    if (get && uri == "/readyz") {
      if (!context_.validator || !context_.store) return issueAnswer(503, "transient", "not ready: definitions or store not loaded");
      // One round trip to the store (a PostgreSQL server may be down while this process runs).
      auto store = context_.store->probe();
      if (!store.ok()) return issueAnswer(503, "transient", "not ready: the store cannot be reached");
      return Answer{200, "application/json", R"({"status":"ready","store":")" + *store + "\"}"};
    }
    if (get && uri == "/metrics") {
      if (auto refused = policy().admin(caller)) return refusal(*refused);
      return metrics();
    }
    if (post && (uri == "/ingest/econsult" || uri == "/ingest/care-management")) {
      // The policy's ingest check sits here, at the route (the channels are being split out of
      // pipeline.cc): scope first, then the event's `source` against an EHR's `sources`. A
      // refusal stores nothing, not even in quarantine.
      const std::string channel = parts[1];
      audit.subtype = "ingest";
      audit.action = 'C';
      if (auto refused = policy().ingestEvent(caller, channel, "")) return refusal(*refused);
      std::string body;
      if (auto refused = readBody(request, channel, body)) {
        return channel == "econsult" ? Pipeline::econsultRefusal(std::move(*refused), contentTypeOf(request)) : *refused;
      }
      if (!caller.open() && caller.client->kind == auth::ClientKind::kEhr) {
        if (auto refused = policy().ingestEvent(caller, channel, eventSource(body))) return refusal(*refused);
      }
      Answer answer = channel == "econsult" ? context_.pipeline.ingestEconsult(body, contentTypeOf(request))
                                            : context_.pipeline.ingestCareManagement(body, contentTypeOf(request));
      if (answer.status < 300) audit.entities = entitiesOf(answer.body);
      return answer;
    }
    if (post && parts.size() == 3 && parts[0] == "ingest" && (parts[1] == "claims" || parts[1] == "roster")) {
      audit.subtype = "ingest";
      audit.action = 'C';
      if (auto refused = policy().ingestPayerFile(caller, parts[1], parts[2])) return refusal(*refused);
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
    if (!parts.empty() && parts[0] == "fhir") return fhirRoute(request, access);
    if (context_.exports != nullptr) {
      if (auto answer = serveExportPath(context_, *context_.exports, request, access)) return std::move(*answer);
    }
    if (parts.size() >= 1 && parts[0] == "admin") {
      audit.subtype = "admin";
      audit.action = post ? 'E' : 'R';
      if (auto refused = policy().admin(caller)) return refusal(*refused);
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

  // Every /fhir route: the query, format negotiation (406), then the route table.
  Answer fhirRoute(HTTPServerRequest& request, Access& access) {
    auto parsed = http::parseQuery(request.target.query);
    if (!parsed.ok()) return issueAnswer(400, "invalid", "query: " + parsed.message());
    fhirhttp::Parameters parameters(parsed->begin(), parsed->end());
    bool pretty = false;
    if (auto refused = fhirhttp::negotiate(request, parameters, pretty)) return *refused;
    Answer answer = routes_.dispatch(request, access, pretty, std::move(parameters));
    if (pretty && answer.content_type.find("json") != std::string::npos) answer.body = fhirhttp::prettyJson(answer.body);
    return answer;
  }

  // The route table of /fhir (fhir_routes.h): what the router serves and the CapabilityStatement lists.
  void registerFhirRoutes() {
    registerReadRoutes(routes_, context_, policy());
    registerSubscriptionRoutes(routes_, context_, policy());
    if (context_.exports != nullptr) registerExportRoutes(routes_, context_, *context_.exports);
    registerMeasureRoutes(routes_, context_, policy());  // Measure, $evaluate-measure (issue 20)
    routes_.type("AuditEvent").documentation = "The audit trail (admin only), append-only";
    for (const char* name : {"date", "agent", "entity", "subtype"}) {
      routes_.type("AuditEvent").search_params.push_back(
          {name, std::string("http://hl7.org/fhir/SearchParameter/AuditEvent-") + name, name == std::string("date") ? "date" : name == std::string("subtype") ? "token" : "reference"});
    }
    auto audit_events = [this](FhirCall& call) {
      Access& access = call.access;
      access.audit.subtype = call.id.empty() ? "search" : "read";
      if (auto refused = policy().admin(access.caller)) return refusal(*refused);
      if (context_.audit != nullptr) (void)context_.audit->flush();  // what was recorded before this request
      access.audit.query = call.request.target.query;
      auth::AuditSearchAnswer found = !call.id.empty() ? readAudit(call.id) : auth::searchAudit(*context_.store, call.parameters, context_.base_url);
      if (found.status == 400) return issueAnswer(400, "invalid", found.body);
      if (found.status != 200) return issueAnswer(found.status, found.status == 404 ? "not-found" : "transient", found.body);
      return Answer{200, "application/fhir+json", found.body};
    };
    routes_.add("AuditEvent", FhirInteraction::kRead, audit_events);
    routes_.add("AuditEvent", FhirInteraction::kSearchType, audit_events);
    // Search (search_route.h) on every other stored type, listed with the parameters the store
    // indexes (gateway/store/search_index.h).
    auto search = [this](FhirCall& call) {
      auto answer = serveSearch(context_, call.request, call.access.caller, call.access.audit, policy());
      return answer ? std::move(*answer) : issueAnswer(404, "not-found", "'" + call.type + "' is not searchable");
    };
    auto indexed = searchindex::registry();
    routes_.addSearch(storedResourceTypes(), search, [indexed](const std::string& type) {
      return indexed.ok() ? searchParamsOf(**indexed, type) : std::vector<SearchParamInfo>{};
    });
    routes_.addSystem(FhirInteraction::kCapabilities, [this](FhirCall&) {
      CapabilityOptions options{context_.base_url, context_.auth != nullptr ? context_.auth->tokenUrl() : "", context_.topic_canonicals};
      return Answer{200, "application/fhir+json", capabilityStatement(routes_, options)};
    });
    // $validate: any client with a valid token (validation reads nothing stored).
    const std::string validate_definition = "http://hl7.org/fhir/OperationDefinition/Resource-validate";
    routes_.addSystemOperation({"validate", validate_definition, FhirOperation::Level::kSystem, {"POST"},
                                [this](FhirCall& call) { return validate(call.request, "", call.request.target.query); }});
    routes_.addAnyTypeOperation({"validate", validate_definition, FhirOperation::Level::kType, {"POST"},
                                 [this](FhirCall& call) { return validate(call.request, call.type, call.request.target.query); }});
  }

  static void readUpTo(HTTPServerRequest& request, size_t limit, std::string& body) { readBodyUpTo(request, limit, body); }

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

  std::optional<Answer> readRequestBody(HTTPServerRequest& request, std::string& body) {
    return gateway::readRequestBody(request, static_cast<size_t>(context_.config.max_body_bytes), body);
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

  // GET /fhir/AuditEvent/{id}: the one record, as a resource.
  auth::AuditSearchAnswer readAudit(const std::string& id) {
    if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos) {
      return {404, "AuditEvent/" + id + " is not known"};
    }
    AuditQuery query;
    query.count = 1;
    query.id = std::stoll(id);
    auto rows = context_.store->listAudit(query);
    if (!rows.ok()) return {503, rows.message()};
    if (rows->empty()) return {404, "AuditEvent/" + id + " is not known"};
    return {200, auth::AuditLog::withId(rows->front().json, rows->front().id)};
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
  auth::AccessPolicy open_policy_;  // auth off: every check allows
  FhirRoutes routes_;
  ScorecardRoutes scorecard_{context_};
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
  impl_->router.warm();
  return Status::Ok();
}

void HttpServer::stop() { impl_->listener.stop(); }

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/scorecard_routes.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "conformance/common/time_util.h"
#include "conformance/json/json.h"
#include "gateway/auth/certificate.h"
#include "gateway/measure/measure.h"
#include "gateway/scorecard/pages.h"
#include "gateway/scorecard/quality.h"
#include "gateway/server/fhir_routes.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr std::string_view kCookie = "scorecard_session";
constexpr int64_t kSessionMs = 15 * 60 * 1000;
constexpr size_t kMaxSessions = 10000;
constexpr size_t kMaxCachedReports = 512;
constexpr const char* kNpiSystem = "http://hl7.org/fhir/sid/us-npi";

struct Session {
  const auth::AuthClient* client = nullptr;  // null: auth is off
  auth::ScopeSet scopes;
  int64_t expires_ms = 0;
};

struct CachedReport {
  int64_t data_version = -1;
  std::shared_ptr<const json::Document> report;
};

bool isDate(const std::string& text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  const int month = std::stoi(text.substr(5, 2));
  const int day = std::stoi(text.substr(8, 2));
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

std::string randomId() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : bytes) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

// The value of cookie `name` in the request's Cookie headers; empty when absent.
std::string cookieValue(const http::Request& request, std::string_view name) {
  for (const auto& [header, value] : request.head.headers) {
    if (header != "cookie") continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t end = rest.find(';');
      std::string_view pair = rest.substr(0, end);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      const size_t equals = pair.find('=');
      if (equals != std::string_view::npos && pair.substr(0, equals) == name) return std::string(pair.substr(equals + 1));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
  }
  return {};
}

}  // namespace

struct ScorecardRoutes::Impl {
  explicit Impl(ServerContext& server) : context(server), open_policy(nullptr, nullptr) {}

  const auth::AccessPolicy& policy() const { return context.policy != nullptr ? *context.policy : open_policy; }

  struct Reply {
    int status = 200;
    std::string content_type = "text/html; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers = {};
  };

  static Reply page(int status, std::string body) { return Reply{status, "text/html; charset=utf-8", std::move(body)}; }
  static Reply problem(int status, const std::string& title, const std::string& why) { return page(status, scorecard::messagePage(title, why)); }

  std::optional<http::Response> handle(http::Request& request) {
    const std::vector<std::string>& parts = request.target.segments;
    if (parts.empty() || parts[0] != "scorecard" || request.target.path.rfind("/scorecard", 0) != 0) return std::nullopt;
    auth::AuditEntry audit;
    audit.subtype = "scorecard";
    audit.entities.push_back(request.target.path);
    audit.query = request.target.query;
    auth::Caller caller;
    caller.address = request.peer;
    Reply reply = route(request, caller, audit);
    if (context.audit != nullptr) {
      audit.status = reply.status;
      audit.agent = caller.id();
      audit.address = request.peer;
      context.audit->record(audit, nowMs());
    }
    context.metrics.countHttp(reply.status);
    http::Response response{reply.status, std::move(reply.content_type), std::move(reply.body), std::move(reply.headers)};
    response.headers.emplace_back("Cache-Control", "no-store");
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
    response.headers.emplace_back("Content-Security-Policy", scorecard::kContentSecurityPolicy);
    response.headers.emplace_back("X-Frame-Options", "DENY");
    return response;
  }

  Reply route(http::Request& request, auth::Caller& caller, auth::AuditEntry& audit) {
    const std::vector<std::string>& parts = request.target.segments;
    const std::string& method = request.head.method;
    const bool read = method == "GET";
    if (parts.size() == 2 && parts[1] == "session") {
      audit.type = "login";
      audit.subtype = "session";
      audit.action = 'E';
      if (method == "POST") return openSession(request, caller, audit);
      if (method == "DELETE") return endSession(request);
      return Reply{405, "text/html; charset=utf-8", scorecard::messagePage("Not allowed", method + " is not served on /scorecard/session"),
                   {{"Allow", "POST, DELETE"}}};
    }
    const bool known = parts.size() == 1 || (parts.size() == 2 && parts[1] == "quality") || (parts.size() == 3 && parts[1] == "practice");
    if (!known) return problem(404, "Not found", request.target.path + " is not a page of this gateway");
    if (!read) return Reply{405, "text/html; charset=utf-8", scorecard::messagePage("Not allowed", method + " is not served here"), {{"Allow", "GET"}}};
    if (auto refused = authenticate(request, caller, audit)) return std::move(*refused);
    auto parameters = http::parseQuery(request.target.query);
    if (!parameters.ok()) return problem(400, "Bad request", parameters.message());
    scorecard::PageFilters filters;
    std::string format;
    const std::string year = nowIso().substr(0, 4);
    filters.period_start = year + "-01-01";
    filters.period_end = year + "-12-31";
    for (const auto& [name, value] : *parameters) {
      if (name == "payer" && parts.size() == 1) {
        filters.payer = value;
      } else if (name == "practice" && parts.size() == 1) {
        filters.practice_npi = value;
      } else if (name == "periodStart" && parts.size() != 2) {
        if (!value.empty()) filters.period_start = value;
      } else if (name == "periodEnd" && parts.size() != 2) {
        if (!value.empty()) filters.period_end = value;
      } else if (name == "format" && parts.size() == 2) {
        format = value;
      } else {
        return problem(400, "Bad request", request.target.path + " has no parameter '" + name + "'");
      }
    }
    if (!isDate(filters.period_start) || !isDate(filters.period_end) || filters.period_end < filters.period_start) {
      return problem(400, "Bad request", "periodStart and periodEnd must be dates (YYYY-MM-DD), periodStart not after periodEnd");
    }
    if (parts.size() == 3) return practiceReport(caller, parts[2], filters);
    if (auto refused = policy().admin(caller)) return problem(refused->status, "Forbidden", "the regional scorecard is the convener's (admin)");
    if (parts.size() == 2) return quality(format);
    return convener(filters);
  }

  // A session cookie or a Bearer token; nullopt when the caller is known (or auth is off).
  std::optional<Reply> authenticate(http::Request& request, auth::Caller& caller, auth::AuditEntry& audit) {
    if (context.auth == nullptr) return std::nullopt;
    const std::string id = cookieValue(request, kCookie);
    if (!id.empty()) {
      std::lock_guard lock(mutex);
      auto found = sessions.find(id);
      if (found != sessions.end() && found->second.expires_ms > nowMs()) {
        caller.client = found->second.client;
        caller.scopes = found->second.scopes;
        return std::nullopt;
      }
    }
    std::string why = id.empty() ? "no session: POST /scorecard/session with an access token first" : "the session has ended";
    if (request.head.header("authorization") != nullptr) {
      auto grant = bearer(request);
      if (grant.ok()) {
        caller.client = grant->client;
        caller.scopes = grant->scopes;
        return std::nullopt;
      }
      why = grant.message();
    }
    audit.why = why;
    Reply reply = problem(401, "Sign in", why);
    reply.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return reply;
  }

  // The verified `Authorization: Bearer` token (bound to its TLS client certificate when the
  // client is).
  Result<auth::AccessGrant> bearer(const http::Request& request) {
    const std::string* header = request.head.header("authorization");
    if (header == nullptr) return Error{"the request has no Bearer access token"};
    const size_t space = header->find(' ');
    std::string scheme = header->substr(0, space);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view token = space == std::string::npos ? std::string_view() : std::string_view(*header).substr(space + 1);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    if (scheme != "bearer" || token.empty()) return Error{"the Authorization header is not a Bearer access token"};
    auto grant = context.auth->verifyAccessToken(token, nowMs());
    if (!grant.ok()) return grant.error();
    const bool certificates = context.config.tls && !context.config.tls->client_ca_file.empty();
    if (certificates && !grant->client->certificate_subject.empty() && !auth::certificateMatches(*grant->client, request.peer_subject)) {
      return Error{"the access token's client is bound to another TLS client certificate"};
    }
    return grant;
  }

  Reply openSession(http::Request& request, auth::Caller& caller, auth::AuditEntry& audit) {
    auto parameters = http::parseQuery(request.target.query);
    const bool token_in_url = !parameters.ok() || std::any_of(parameters->begin(), parameters->end(), [](const auto& parameter) {
      return parameter.first.find("token") != std::string::npos || parameter.first == "assertion" || parameter.first == "client_assertion";
    });
    if (token_in_url) {
      // A token in a URL ends up in logs and histories: refused, never read.
      return problem(400, "Bad request", "an access token is taken from the Authorization header only, never from the URL");
    }
    Session session;
    if (context.auth != nullptr) {
      auto grant = bearer(request);
      if (!grant.ok()) {
        audit.why = grant.message();
        Reply reply = problem(401, "Sign in", grant.message());
        reply.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return reply;
      }
      caller.client = grant->client;
      caller.scopes = grant->scopes;
      if (!caller.admin() && caller.client->kind != auth::ClientKind::kPractice) {
        audit.why = "the scorecard is for the admin and for practices";
        return problem(403, "Forbidden", audit.why);
      }
      session.client = grant->client;
      session.scopes = grant->scopes;
    }
    const int64_t now = nowMs();
    session.expires_ms = now + kSessionMs;
    const std::string id = randomId();
    if (id.empty()) return problem(503, "Unavailable", "no random bytes for a session id");
    {
      std::lock_guard lock(mutex);
      if (sessions.size() >= kMaxSessions) std::erase_if(sessions, [now](const auto& item) { return item.second.expires_ms <= now; });
      if (sessions.size() >= kMaxSessions) return problem(503, "Unavailable", "too many open sessions; try again later");
      sessions[id] = session;
    }
    json::Document doc;
    doc.SetObject();
    auto& a = doc.GetAllocator();
    json::addString(doc, "client", caller.id(), a);
    json::addMember(doc, "expiresIn", json::makeNumber(std::to_string(kSessionMs / 1000), a), a);
    json::addString(doc, "path", "/scorecard", a);
    if (caller.client != nullptr && caller.client->kind == auth::ClientKind::kPractice) {
      json::addString(doc, "report", "/scorecard/practice/" + caller.client->practice_npi, a);
    } else {
      json::addString(doc, "report", "/scorecard", a);
    }
    Reply reply{200, "application/json", json::serialize(doc)};
    reply.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + id + "; Max-Age=" + std::to_string(kSessionMs / 1000) +
                                                 "; Path=/scorecard; HttpOnly; Secure; SameSite=Strict");
    return reply;
  }

  Reply endSession(http::Request& request) {
    const std::string id = cookieValue(request, kCookie);
    {
      std::lock_guard lock(mutex);
      sessions.erase(id);
    }
    Reply reply{204, "text/plain", ""};
    reply.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=; Max-Age=0; Path=/scorecard; HttpOnly; Secure; SameSite=Strict");
    return reply;
  }

  // The store's newest commit: reports evaluated at it are still true while it is the newest.
  Result<int64_t> dataVersion() {
    HistoryQuery query;
    query.count = 1;
    auto newest = context.store->history(query);
    if (!newest.ok()) return newest.error();
    return newest->empty() ? int64_t{0} : newest->front().event_seq * 1000003 + newest->front().version;
  }

  std::string measureTitle(const std::string& id) {
    std::lock_guard lock(mutex);
    auto found = titles.find(id);
    if (found != titles.end()) return found->second;
    std::ifstream in(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package/Measure-" + id + ".json");
    std::stringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    std::string title = doc.ok() ? std::string(json::getString(*doc, "title").value_or(id)) : id;
    return titles[id] = title;
  }

  // Every measure of the library for `subject` over the period, evaluated on both cores when
  // not cached.
  Result<std::vector<scorecard::MeasureView>> measures(const std::string& subject, const scorecard::PageFilters& filters) {
    auto library = measure::MeasureLibrary::bundled();
    if (!library.ok()) return library.error();
    auto version = dataVersion();
    if (!version.ok()) return version.error();
    std::vector<scorecard::MeasureView> views;
    std::vector<std::pair<size_t, std::future<Result<std::string>>>> pending;
    for (const std::string& id : (*library)->ids()) {
      scorecard::MeasureView view;
      view.id = id;
      view.title = measureTitle(id);
      view.link = "/fhir/Measure/" + id + "/$evaluate-measure?periodStart=" + filters.period_start + "&periodEnd=" + filters.period_end;
      if (!subject.empty()) view.link += "&subject=" + scorecard::urlEncode(subject);
      {
        std::lock_guard lock(mutex);
        auto cached = reports.find(view.link);
        if (cached != reports.end() && cached->second.data_version == *version) view.report = cached->second.report;
      }
      if (view.report == nullptr) {
        const measure::CompiledMeasure* compiled = (*library)->find(id);
        measure::EvaluateParams params;
        params.period_start = filters.period_start;
        params.period_end = filters.period_end;
        params.subject = subject;
        params.report_type = "population";
        params.now = nowIso();
        Store* store = context.store.get();
        std::string base_url = context.base_url;
        pending.emplace_back(views.size(), std::async(std::launch::async, [compiled, params, store, base_url] {
          return measure::evaluate(*compiled, params, measure::storeSearch(*store, base_url));
        }));
      }
      views.push_back(std::move(view));
    }
    std::optional<Error> failed;
    for (auto& [index, future] : pending) {
      auto report = future.get();
      if (!report.ok()) {
        if (!failed) failed = report.error();
        continue;
      }
      auto doc = std::make_shared<json::Document>();
      json::ParseError error;
      if (!json::parse(*report, *doc, error)) {
        if (!failed) failed = Error{"a MeasureReport did not parse"};
        continue;
      }
      views[index].report = doc;
      std::lock_guard lock(mutex);
      if (reports.size() >= kMaxCachedReports) reports.clear();
      reports[views[index].link] = CachedReport{*version, doc};
    }
    if (failed) return *failed;
    return views;
  }

  // Organizations with an NPI (the practices), by name.
  Result<std::vector<scorecard::Practice>> practices() {
    auto found = measure::storeSearch(*context.store, context.base_url)("Organization", {});
    if (!found.ok()) return found.error();
    std::vector<scorecard::Practice> out;
    for (const std::string& text : *found) {
      auto doc = json::parse(text);
      if (!doc.ok()) continue;
      const json::Value* identifiers = json::find(*doc, "identifier");
      if (identifiers == nullptr || !identifiers->IsArray()) continue;
      for (const auto& identifier : identifiers->GetArray()) {
        if (json::getString(identifier, "system") != kNpiSystem) continue;
        scorecard::Practice practice;
        practice.npi = std::string(json::getString(identifier, "value").value_or(""));
        practice.name = std::string(json::getString(*doc, "name").value_or(practice.npi));
        practice.organization_id = std::string(json::getString(*doc, "id").value_or(""));
        if (!practice.npi.empty()) out.push_back(std::move(practice));
        break;
      }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return std::tie(a.name, a.npi) < std::tie(b.name, b.npi); });
    return out;
  }

  std::vector<std::string> payerIds() const {
    std::vector<std::string> out;
    for (const auto& payer : context.config.payers) out.push_back(payer.id);
    return out;
  }

  Reply unavailable(const std::string& why) {
    Reply reply = problem(503, "Unavailable", "the scorecard cannot be computed now: " + why);
    reply.headers.emplace_back("Retry-After", "1");
    return reply;
  }

  Reply convener(const scorecard::PageFilters& filters) {
    const std::vector<std::string> payers = payerIds();
    if (!filters.payer.empty() && std::find(payers.begin(), payers.end(), filters.payer) == payers.end()) {
      return problem(400, "Bad request", "payer '" + filters.payer + "' is not configured");
    }
    auto list = practices();
    if (!list.ok()) return unavailable(list.message());
    std::string subject;
    if (!filters.practice_npi.empty()) {
      auto found = std::find_if(list->begin(), list->end(), [&](const auto& practice) { return practice.npi == filters.practice_npi; });
      if (found == list->end()) return problem(404, "Not found", "no practice with NPI " + filters.practice_npi);
      subject = "Organization/" + found->organization_id;
    }
    auto views = measures(subject, filters);
    if (!views.ok()) return unavailable(views.message());
    auto report = qualityReport();
    if (!report.ok()) return unavailable(report.message());
    return page(200, scorecard::convenerPage(filters, payers, *list, *views, **report));
  }

  Reply practiceReport(const auth::Caller& caller, const std::string& npi, const scorecard::PageFilters& filters) {
    if (!caller.admin()) {
      if (caller.client->kind != auth::ClientKind::kPractice) return problem(403, "Forbidden", "practice reports are for the admin and for practices");
      // Another practice's report does not exist for this client (no existence leak).
      if (caller.client->practice_npi != npi) return problem(404, "Not found", "no practice with NPI " + npi);
    }
    auto list = practices();
    if (!list.ok()) return unavailable(list.message());
    auto found = std::find_if(list->begin(), list->end(), [&](const auto& practice) { return practice.npi == npi; });
    if (found == list->end()) return problem(404, "Not found", "no practice with NPI " + npi);
    auto views = measures("Organization/" + found->organization_id, filters);
    if (!views.ok()) return unavailable(views.message());
    return page(200, scorecard::practicePage(*found, filters, payerIds(), *views));
  }

  // The data-quality report, computed again when what it reads has changed: the store's newest
  // version (accepted records, unroutable claims, conflicts come with commits), the newest
  // quarantine entry and its count, and each destination's pending and dead rows (deliveries).
  Result<std::shared_ptr<const scorecard::QualityReport>> qualityReport() {
    auto elements = scorecard::DesignElements::bundled();
    if (!elements.ok()) return elements.error();
    auto version = dataVersion();
    if (!version.ok()) return version.error();
    QuarantineQuery newest;
    newest.count = 1;
    auto head = context.store->listQuarantinePage(newest);
    if (!head.ok()) return head.error();
    auto depths = context.store->outboxDepth();
    if (!depths.ok()) return depths.error();
    std::string key = std::to_string(*version);
    if (!head->entries.empty()) key += "|" + head->entries.front().id + ":" + std::to_string(head->entries.front().count);
    for (const DestinationDepth& depth : *depths) {
      key += "|" + depth.destination + ":" + std::to_string(depth.pending) + ":" + std::to_string(depth.dead);
    }
    {
      std::lock_guard lock(mutex);
      if (quality_report != nullptr && quality_key == key) return quality_report;
    }
    auto report = scorecard::computeQuality(*context.store, context.base_url, **elements);
    if (!report.ok()) return report.error();
    auto shared = std::make_shared<const scorecard::QualityReport>(std::move(*report));
    std::lock_guard lock(mutex);
    quality_key = key;
    quality_report = shared;
    return shared;
  }

  Reply quality(const std::string& format) {
    if (!format.empty() && format != "json" && format != "html") return problem(400, "Bad request", "format must be json or html");
    auto report = qualityReport();
    if (!report.ok()) return unavailable(report.message());
    if (format == "json") return Reply{200, "application/json", scorecard::qualityJson(**report)};
    return page(200, scorecard::qualityPage(**report));
  }

  ServerContext& context;
  auth::AccessPolicy open_policy;
  std::mutex mutex;
  std::unordered_map<std::string, Session> sessions;
  std::map<std::string, CachedReport> reports;
  std::map<std::string, std::string> titles;
  std::string quality_key;
  std::shared_ptr<const scorecard::QualityReport> quality_report;
};

ScorecardRoutes::ScorecardRoutes(ServerContext& context) : impl_(std::make_unique<Impl>(context)) {}
ScorecardRoutes::~ScorecardRoutes() = default;

std::optional<http::Response> ScorecardRoutes::handle(http::Request& request) { return impl_->handle(request); }

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/scorecard_routes.h"

#include <openssl/rand.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
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
constexpr size_t kMaxCachedFigures = 256;
constexpr const char* kNpiSystem = "http://hl7.org/fhir/sid/us-npi";

struct Session {
  const auth::AuthClient* client = nullptr;  // null: auth is off
  auth::ScopeSet scopes;
  int64_t expires_ms = 0;
};

// Figures that take long to compute (every measure for one subject and period; the data-quality
// report), kept per key with the data version they were computed at and computed again on one
// background thread (niced: pages give way to ingest) when a page asks for a key whose version
// is older than the data's. Pages are answered from here, never by computing on the request.
class Refresher {
 public:
  using Value = std::shared_ptr<const void>;
  using Compute = std::function<Result<Value>(const std::atomic<bool>& stopping)>;
  using Version = std::function<Result<std::string>()>;

  struct Figures {
    Value value;             // null: none computed yet
    bool current = false;    // computed at the data version asked for, or after the request came
    int64_t as_of_ms = 0;    // when the run that gave them started
    int64_t took_ms = 0;     // how long the last run took (0: none finished yet)
    std::string error;       // the last run's failure ("" when it succeeded)
  };

  // A page waits for figures being computed for it while that is quick: while the run in
  // progress, the runs queued before theirs and their own are expected to take at most
  // `quick_ms` in all (each as long as its figures' last run took, or the last run of their kind;
  // unknown counts as quick until the run in progress is older than `quick_ms`, except a warm-up
  // run's, which counts as slow). A small store's pages are then always current. Otherwise a page
  // waits at most `stale_wait_ms` and shows the figures there are, marked with their time (issue
  // 20: every page in < 500 ms, at 100,000 members too). Configuration `scorecard`
  // (gateway/config/config.h).
  // `done` is called on the refresher's thread after every run: the key's kind (before its first
  // '|'), whether it succeeded, and how long it took.
  using Done = std::function<void(const std::string& kind, bool ok, int64_t took_ms)>;
  Refresher(const ScorecardConfig& config, Done done) : config_(config), on_done_(std::move(done)), worker_([this] { run(); }) {}
  ~Refresher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      stopping_atomic_ = true;
    }
    jobs_ready_.notify_all();
    done_.notify_all();
    worker_.join();
  }

  // The figures of `key` for data at `version` (which `version_now` gives again when the run
  // starts): the cached ones when current; otherwise a run is queued and the call waits as
  // described at the constructor, until `deadline_ms` at the latest (0: this call sets it, so
  // that the figures of one page share one wait).
  Figures get(const std::string& key, const std::string& version, Version version_now, Compute compute, int64_t& deadline_ms) {
    const int64_t asked_ms = nowMs();
    std::unique_lock lock(mutex_);
    Slot& slot = slots_[key];
    slot.used_ms = asked_ms;
    auto current = [&] { return slot.value != nullptr && (slot.version == version || slot.as_of_ms >= asked_ms); };
    if (!current()) {
      if (!slot.queued) queue(key, slot, version_now, compute);
      const int64_t wait_ms = expectedWaitMs(key, asked_ms) <= config_.quick_ms ? config_.quick_ms : config_.stale_wait_ms;
      deadline_ms = deadline_ms == 0 ? asked_ms + wait_ms : std::min(deadline_ms, asked_ms + wait_ms);
      // (No wait at all when the deadline has passed: a timed wait still lets the run take the
      // lock and finish first.)
      if (deadline_ms > asked_ms) {
        done_.wait_for(lock, std::chrono::milliseconds(deadline_ms - asked_ms), [&] { return !slot.queued || stopping_; });
      }
      // The run that ended may have started before this data version: queue the next one.
      if (!current() && !slot.queued && !stopping_) queue(key, slot, version_now, compute);
    }
    return Figures{slot.value, current(), slot.as_of_ms, slot.took_ms, slot.error};
  }

  // Queues a run for `key` unless one is queued (warming the figures pages will ask for).
  void warm(const std::string& key, Version version_now, Compute compute) {
    std::lock_guard lock(mutex_);
    Slot& slot = slots_[key];
    if (!slot.queued) queue(key, slot, version_now, compute, true);
  }

 private:
  struct Slot {
    Value value;
    std::string version;
    int64_t as_of_ms = 0;
    int64_t took_ms = 0;  // the last run's (0: none finished)
    int64_t used_ms = 0;
    bool queued = false;
    std::string error;
  };
  struct Job {
    std::string key;
    Version version;
    Compute compute;
    bool warm = false;  // queued at start: a store with data, of unknown size
  };

  static std::string kindOf(const std::string& key) { return key.substr(0, key.find('|')); }

  // How long a run of `key` is expected to take: its figures' last run, else the last run of
  // its kind, else 0 (unknown).
  int64_t expectedMs(const std::string& key) const {
    auto slot = slots_.find(key);
    if (slot != slots_.end() && slot->second.took_ms > 0) return slot->second.took_ms;
    auto kind = kind_took_ms_.find(kindOf(key));
    return kind != kind_took_ms_.end() ? kind->second : 0;
  }

  // How long the runs up to `key`'s queued one take, as expected: the one in progress (in whole:
  // a slow run nearly done still makes pages wait for slow work; unknown counts as slow once it
  // is older than quick_ms) and every queued run up to `key`'s.
  int64_t expectedWaitMs(const std::string& key, int64_t now_ms) const {
    int64_t total = 0;
    // A warm-up run of unknown time counts as slow: the first pages after a start on a large store
    // answer at once (with 202) instead of waiting quick_ms to learn that it is large.
    const int64_t slow = config_.quick_ms + 1;
    if (!running_key_.empty()) {
      const int64_t expected = expectedMs(running_key_);
      const int64_t age = now_ms - running_since_ms_;
      total += std::max(expected, age > config_.quick_ms || (running_warm_ && expected == 0) ? slow : int64_t{0});
    }
    for (const Job& job : jobs_) {
      const int64_t expected = expectedMs(job.key);
      total += job.warm && expected == 0 ? slow : expected;
      if (job.key == key) break;
    }
    return total;
  }

  void queue(const std::string& key, Slot& slot, Version version_now, Compute compute, bool warm = false) {
    slot.queued = true;
    jobs_.push_back(Job{key, std::move(version_now), std::move(compute), warm});
    if (slots_.size() > kMaxCachedFigures) {
      // The least recently asked figures go first; queued ones stay.
      auto oldest = slots_.end();
      for (auto it = slots_.begin(); it != slots_.end(); ++it) {
        if (!it->second.queued && (oldest == slots_.end() || it->second.used_ms < oldest->second.used_ms)) oldest = it;
      }
      if (oldest != slots_.end()) slots_.erase(oldest);
    }
    jobs_ready_.notify_one();
  }

  void run() {
    // Lower priority for this thread and the evaluation threads it starts (Linux threads inherit it).
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    std::unique_lock lock(mutex_);
    while (true) {
      jobs_ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      const int64_t started_ms = nowMs();
      running_key_ = job.key;
      running_since_ms_ = started_ms;
      running_warm_ = job.warm;
      lock.unlock();
      auto version = job.version();
      Result<Value> value = version.ok() ? job.compute(stopping_atomic_) : Result<Value>(version.error());
      const int64_t took_ms = nowMs() - started_ms;
      if (on_done_) on_done_(kindOf(job.key), value.ok(), took_ms);
      lock.lock();
      running_key_.clear();
      kind_took_ms_[kindOf(job.key)] = std::max<int64_t>(took_ms, 1);
      auto found = slots_.find(job.key);
      if (found == slots_.end()) {  // (never: a queued key is not dropped)
        done_.notify_all();
        continue;
      }
      Slot& slot = found->second;
      slot.queued = false;
      slot.took_ms = std::max<int64_t>(took_ms, 1);
      if (value.ok()) {
        slot.value = std::move(*value);
        slot.version = std::move(*version);
        slot.as_of_ms = started_ms;
        slot.error.clear();
      } else {
        slot.error = value.message();
      }
      done_.notify_all();
    }
  }

  const ScorecardConfig config_;
  const Done on_done_;
  std::mutex mutex_;
  std::condition_variable jobs_ready_, done_;
  std::map<std::string, Slot> slots_;
  std::map<std::string, int64_t> kind_took_ms_;  // the last run's time per kind
  std::deque<Job> jobs_;
  std::string running_key_;  // the run in progress ("" none), since when, whether a warm-up
  int64_t running_since_ms_ = 0;
  bool running_warm_ = false;
  bool stopping_ = false;
  std::atomic<bool> stopping_atomic_{false};
  std::thread worker_;
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
  explicit Impl(ServerContext& server)
      : context(server),
        open_policy(nullptr, nullptr),
        refresher(server.config.scorecard, [&metrics = server.metrics](const std::string& kind, bool ok, int64_t took_ms) {
          metrics.countScorecard(kind, ok ? "ok" : "failed");
          metrics.setGauge("gateway_scorecard_computation_ms", "figures=\"" + kind + "\"", took_ms);
        }) {}

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

  // The store's newest commit: figures computed at it are still true while it is the newest.
  Result<std::string> dataVersion() {
    HistoryQuery query;
    query.count = 1;
    auto newest = context.store->history(query);
    if (!newest.ok()) return newest.error();
    if (newest->empty()) return std::string("0");
    return std::to_string(newest->front().event_seq) + "." + std::to_string(newest->front().version);
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

  using Reports = std::vector<std::shared_ptr<const json::Document>>;

  // Every measure of the library for `subject` over the period, in one read of the store
  // (measure::evaluateMany), on the refresher's thread; `stopping` ends it early.
  Refresher::Compute measuresCompute(const std::string& subject, const std::string& start, const std::string& end) {
    Store* store = context.store.get();
    const std::string base_url = context.base_url;
    return [store, base_url, subject, start, end](const std::atomic<bool>& stopping) -> Result<Refresher::Value> {
      auto library = measure::MeasureLibrary::bundled();
      if (!library.ok()) return library.error();
      std::vector<const measure::CompiledMeasure*> list;
      for (const std::string& id : (*library)->ids()) list.push_back((*library)->find(id));
      measure::EvaluateParams params;
      params.period_start = start;
      params.period_end = end;
      params.subject = subject;
      params.report_type = "population";
      params.now = nowIso();
      const measure::SearchAll search = measure::storeSearch(*store, base_url);
      const measure::SearchAll stoppable = [&stopping, &search](const std::string& type, const measure::SearchParams& criteria)
          -> Result<std::vector<std::string>> {
        if (stopping) return Error{"the gateway is stopping"};
        return search(type, criteria);
      };
      auto texts = measure::evaluateMany(list, params, stoppable);
      if (!texts.ok()) return texts.error();
      auto reports = std::make_shared<Reports>();
      for (const std::string& text : *texts) {
        auto doc = std::make_shared<json::Document>();
        json::ParseError error;
        if (!json::parse(text, *doc, error)) return Error{"a MeasureReport did not parse"};
        reports->push_back(std::move(doc));
      }
      return Refresher::Value(std::move(reports));
    };
  }

  Refresher::Version versionNow() {
    return [this] { return dataVersion(); };
  }

  static std::string measuresKey(const std::string& subject, const std::string& start, const std::string& end) {
    return "measures|" + subject + "|" + start + "|" + end;
  }

  struct MeasureFigures {
    std::vector<scorecard::MeasureView> views;  // empty: none computed yet
    scorecard::Freshness freshness;
    std::string error;  // the last computation's failure
  };

  // The figures of every measure for `subject` over the period (the refresher's: computed in the
  // background, see Refresher), for the data at `data_version` (the page's dataVersion()).
  MeasureFigures measures(const std::string& subject, const scorecard::PageFilters& filters, const std::string& data_version,
                          int64_t& deadline_ms) {
    MeasureFigures out;
    auto library = measure::MeasureLibrary::bundled();
    if (!library.ok()) {
      out.error = library.message();
      return out;
    }
    Refresher::Figures figures = refresher.get(measuresKey(subject, filters.period_start, filters.period_end), data_version, versionNow(),
                                               measuresCompute(subject, filters.period_start, filters.period_end), deadline_ms);
    out.error = figures.error;
    if (figures.value == nullptr) return out;
    const auto& reports = *std::static_pointer_cast<const Reports>(figures.value);
    const std::vector<std::string> ids = (*library)->ids();
    for (size_t i = 0; i < ids.size() && i < reports.size(); ++i) {
      scorecard::MeasureView view;
      view.id = ids[i];
      view.title = measureTitle(ids[i]);
      view.link = "/fhir/Measure/" + ids[i] + "/$evaluate-measure?periodStart=" + filters.period_start + "&periodEnd=" + filters.period_end;
      if (!subject.empty()) view.link += "&subject=" + scorecard::urlEncode(subject);
      view.report = reports[i];
      out.views.push_back(std::move(view));
    }
    out.freshness.current = figures.current;
    out.freshness.as_of = isoOfMs(figures.as_of_ms);
    out.freshness.took_ms = figures.took_ms;
    return out;
  }

  // Warms the figures the first pages will ask for: the region's measures for this year and the
  // data-quality report (nothing for an empty store).
  void warm() {
    auto version = dataVersion();
    if (!version.ok() || *version == "0") return;
    const std::string year = nowIso().substr(0, 4);
    refresher.warm(measuresKey("", year + "-01-01", year + "-12-31"), versionNow(), measuresCompute("", year + "-01-01", year + "-12-31"));
    refresher.warm("quality", recordsVersionNow(), recordsCompute());
    refresher.warm("feeds", feedsVersionNow(), feedsCompute());
  }

  // The practices at data version `version` (dataVersion()): read again only when the data
  // changed, not on every page (every Organization is read: billing providers, payers, ...).
  Result<std::shared_ptr<const std::vector<scorecard::Practice>>> practicesAt(const std::string& version) {
    {
      std::lock_guard lock(practices_mutex);
      if (practices_cache != nullptr && practices_version == version) return practices_cache;
    }
    auto list = practices();
    if (!list.ok()) return list.error();
    auto shared = std::make_shared<const std::vector<scorecard::Practice>>(std::move(*list));
    std::lock_guard lock(practices_mutex);
    // Read after `version` was: at worst newer than it, never older.
    practices_version = version;
    practices_cache = shared;
    return shared;
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
    auto version = dataVersion();
    if (!version.ok()) return unavailable(version.message());
    auto cached = practicesAt(*version);
    if (!cached.ok()) return unavailable(cached.message());
    const std::vector<scorecard::Practice>* list = cached->get();
    std::string subject;
    if (!filters.practice_npi.empty()) {
      auto found = std::find_if(list->begin(), list->end(), [&](const auto& practice) { return practice.npi == filters.practice_npi; });
      if (found == list->end()) return problem(404, "Not found", "no practice with NPI " + filters.practice_npi);
      subject = "Organization/" + found->organization_id;
    }
    int64_t deadline_ms = 0;
    MeasureFigures figures = measures(subject, filters, *version, deadline_ms);
    QualityFigures quality = qualityReport(*version, deadline_ms);
    if (figures.views.empty()) return notYet(figures.error);
    if (quality.report == nullptr) return notYet(quality.error);
    return page(200, scorecard::convenerPage(filters, payers, *list, figures.views, *quality.report, figures.freshness));
  }

  Reply practiceReport(const auth::Caller& caller, const std::string& npi, const scorecard::PageFilters& filters) {
    if (!caller.admin()) {
      if (caller.client->kind != auth::ClientKind::kPractice) return problem(403, "Forbidden", "practice reports are for the admin and for practices");
      // Another practice's report does not exist for this client (no existence leak).
      if (caller.client->practice_npi != npi) return problem(404, "Not found", "no practice with NPI " + npi);
    }
    auto version = dataVersion();
    if (!version.ok()) return unavailable(version.message());
    auto cached = practicesAt(*version);
    if (!cached.ok()) return unavailable(cached.message());
    const std::vector<scorecard::Practice>& list = **cached;
    auto found = std::find_if(list.begin(), list.end(), [&](const auto& practice) { return practice.npi == npi; });
    if (found == list.end()) return problem(404, "Not found", "no practice with NPI " + npi);
    int64_t deadline_ms = 0;
    MeasureFigures figures = measures("Organization/" + found->organization_id, filters, *version, deadline_ms);
    if (figures.views.empty()) return notYet(figures.error);
    return page(200, scorecard::practicePage(*found, filters, payerIds(), figures.views, figures.freshness));
  }

  // The data-quality report is kept as two sets of figures, each computed again when what it
  // reads changes: the records part (accepted, quarantined, unroutable, conflicts) reads the
  // store's newest version and the newest quarantine entry with its count; the feeds part reads
  // each destination's pending and dead rows, which every delivery changes (so deliveries do not
  // make the records part, every Provenance, be read again). `data_version`: dataVersion().
  Result<std::string> recordsVersion(const std::string& data_version) {
    QuarantineQuery newest;
    newest.count = 1;
    auto head = context.store->listQuarantinePage(newest);
    if (!head.ok()) return head.error();
    std::string key = data_version;
    if (!head->entries.empty()) key += "|" + head->entries.front().id + ":" + std::to_string(head->entries.front().count);
    return key;
  }

  Result<std::string> feedsVersion() {
    auto depths = context.store->outboxDepth();
    if (!depths.ok()) return depths.error();
    std::string key;
    for (const DestinationDepth& depth : *depths) {
      key += depth.destination + ":" + std::to_string(depth.pending) + ":" + std::to_string(depth.dead) + "|";
    }
    return key;
  }

  Refresher::Version recordsVersionNow() {
    return [this]() -> Result<std::string> {
      auto version = dataVersion();
      if (!version.ok()) return version.error();
      return recordsVersion(*version);
    };
  }

  Refresher::Version feedsVersionNow() {
    return [this] { return feedsVersion(); };
  }

  Refresher::Compute recordsCompute() {
    Store* store = context.store.get();
    const std::string base_url = context.base_url;
    return [store, base_url](const std::atomic<bool>& stopping) -> Result<Refresher::Value> {
      auto elements = scorecard::DesignElements::bundled();
      if (!elements.ok()) return elements.error();
      auto report = scorecard::computeRecordQuality(*store, base_url, **elements, &stopping);
      if (!report.ok()) return report.error();
      return Refresher::Value(std::make_shared<const scorecard::QualityReport>(std::move(*report)));
    };
  }

  Refresher::Compute feedsCompute() {
    Store* store = context.store.get();
    return [store](const std::atomic<bool>&) -> Result<Refresher::Value> {
      auto feeds = scorecard::computeFeedLags(*store);
      if (!feeds.ok()) return feeds.error();
      return Refresher::Value(std::make_shared<const std::vector<scorecard::FeedLag>>(std::move(*feeds)));
    };
  }

  struct QualityFigures {
    std::shared_ptr<const scorecard::QualityReport> report;  // null: none computed yet
    std::string error;
  };

  // Both parts, as one report.
  QualityFigures qualityReport(const std::string& data_version, int64_t& deadline_ms) {
    auto version = recordsVersion(data_version);
    if (!version.ok()) return QualityFigures{nullptr, version.message()};
    auto feeds_version = feedsVersion();
    if (!feeds_version.ok()) return QualityFigures{nullptr, feeds_version.message()};
    Refresher::Figures records = refresher.get("quality", *version, recordsVersionNow(), recordsCompute(), deadline_ms);
    Refresher::Figures feeds = refresher.get("feeds", *feeds_version, feedsVersionNow(), feedsCompute(), deadline_ms);
    if (records.value == nullptr || feeds.value == nullptr) {
      return QualityFigures{nullptr, !records.error.empty() ? records.error : feeds.error};
    }
    auto report = std::make_shared<scorecard::QualityReport>(*std::static_pointer_cast<const scorecard::QualityReport>(records.value));
    report->feeds = *std::static_pointer_cast<const std::vector<scorecard::FeedLag>>(feeds.value);
    return QualityFigures{std::move(report), ""};
  }

  // Nothing computed yet for this page: 202, and the browser asks again (Refresh) after a few
  // seconds; 503 when the computation failed.
  Reply notYet(const std::string& error) {
    if (!error.empty()) return unavailable(error);
    Reply reply = page(202, scorecard::messagePage("Computing", "The figures for this page are being computed from the store; "
                                                              "this page reloads itself in a few seconds."));
    reply.headers.emplace_back("Refresh", "3");
    reply.headers.emplace_back("Retry-After", "3");
    return reply;
  }

  Reply quality(const std::string& format) {
    if (!format.empty() && format != "json" && format != "html") return problem(400, "Bad request", "format must be json or html");
    auto version = dataVersion();
    if (!version.ok()) return unavailable(version.message());
    int64_t deadline_ms = 0;
    QualityFigures figures = qualityReport(*version, deadline_ms);
    if (figures.report == nullptr && format == "json" && figures.error.empty()) {
      Reply reply{202, "application/json", R"({"status":"computing","retryAfterSeconds":3})"};
      reply.headers.emplace_back("Retry-After", "3");
      return reply;
    }
    if (figures.report == nullptr) return notYet(figures.error);
    if (format == "json") return Reply{200, "application/json", scorecard::qualityJson(*figures.report)};
    return page(200, scorecard::qualityPage(*figures.report));
  }

  ServerContext& context;
  auth::AccessPolicy open_policy;
  std::mutex mutex;
  std::unordered_map<std::string, Session> sessions;
  std::map<std::string, std::string> titles;
  std::mutex practices_mutex;
  std::string practices_version;  // the data version practices_cache was read at
  std::shared_ptr<const std::vector<scorecard::Practice>> practices_cache;
  Refresher refresher;  // last: its thread stops before the rest goes
};

ScorecardRoutes::ScorecardRoutes(ServerContext& context) : impl_(std::make_unique<Impl>(context)) {}
ScorecardRoutes::~ScorecardRoutes() = default;

std::optional<http::Response> ScorecardRoutes::handle(http::Request& request) { return impl_->handle(request); }

void ScorecardRoutes::warm() { impl_->warm(); }

}  // namespace fhir::gateway

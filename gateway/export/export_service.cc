// SPDX-License-Identifier: Apache-2.0
#include "gateway/export/export_service.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_set>

#include "conformance/json/json.h"
#include "conformance/search/search.h"
#include "gateway/server/http_framing.h"
#include "gateway/server/read_routes.h"
#include "gateway/store/search_index.h"
#include "conformance/common/time_util.h"
#include "gateway_paths.h"

namespace fhir::gateway::exports {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kAtrExportType = "hl7.fhir.us.davinci-atr";

Answer issue(int status, std::string code, std::string diagnostics, Severity severity = Severity::kError) {
  IssueList issues;
  issues.add(Issue{severity, std::move(code), std::move(diagnostics), {}, {}});
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

ExportAnswer plain(Answer answer) { return ExportAnswer{std::move(answer), {}}; }

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  json::appendEscaped(text, out);
  out += '"';
  return out;
}

std::string newJobId() {
  static thread_local std::mt19937_64 random{std::random_device{}() ^
                                             static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int part = 0; part < 2; ++part) {
    uint64_t bits = random();
    for (int nibble = 0; nibble < 16; ++nibble, bits >>= 4) id += kHex[bits & 15];
  }
  return id;
}

bool isJobId(std::string_view id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// "Patient/123" (or "<base>/Patient/123") -> "Patient/123" when the type is one of `types`.
std::string localReference(std::string_view reference) {
  const size_t slash = reference.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  const size_t type_start = reference.rfind('/', slash - 1);
  std::string_view type = reference.substr(type_start == std::string_view::npos ? 0 : type_start + 1,
                                           slash - (type_start == std::string_view::npos ? 0 : type_start + 1));
  return std::string(type) + "/" + std::string(reference.substr(slash + 1));
}

// Every `reference` string anywhere in a JSON value.
void collectReferences(const json::Value& value, std::vector<std::string>& out) {
  if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      if (json::stringView(member.name) == "reference" && json::isString(member.value)) {
        out.push_back(localReference(json::stringView(member.value)));
      } else {
        collectReferences(member.value, out);
      }
    }
  } else if (value.IsArray()) {
    for (const json::Value& item : value.GetArray()) collectReferences(item, out);
  }
}

// The Patient members of a Group JSON ("Patient/<id>").
std::vector<std::string> patientMembers(const json::Value& group) {
  std::vector<std::string> out;
  const json::Value* members = json::find(group, "member");
  if (members == nullptr || !members->IsArray()) return out;
  for (const json::Value& member : members->GetArray()) {
    const json::Value* entity = json::find(member, "entity");
    if (entity == nullptr || !entity->IsObject()) continue;
    std::string reference = localReference(json::getString(*entity, "reference").value_or(""));
    if (reference.rfind("Patient/", 0) == 0) out.push_back(std::move(reference));
  }
  return out;
}

std::string lastUpdatedOf(const std::string& resource) {
  static constexpr std::string_view kKey = "\"lastUpdated\":\"";
  const size_t at = resource.find(kKey);
  if (at == std::string::npos) return {};
  const size_t start = at + kKey.size();
  const size_t end = resource.find('"', start);
  return end == std::string::npos ? std::string() : resource.substr(start, end - start);
}

bool writeAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    done += static_cast<size_t>(wrote);
  }
  return true;
}

std::string errnoText() { return std::strerror(errno); }

}  // namespace

Result<Compartment> loadCompartment(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read the Patient compartment " + path};
  std::stringstream text;
  text << in.rdbuf();
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text.str(), doc, error) || !doc.IsObject()) return Error{path + " is not JSON: " + error.describe()};
  const json::Value* resources = json::find(doc, "resource");
  if (resources == nullptr || !resources->IsArray()) return Error{path + " has no resource list"};
  Compartment compartment;
  for (const json::Value& resource : resources->GetArray()) {
    const json::Value* params = json::find(resource, "param");
    if (params == nullptr || !params->IsArray()) continue;
    auto& list = compartment[std::string(json::getString(resource, "code").value_or(""))];
    for (const json::Value& param : params->GetArray()) {
      if (json::isString(param)) list.emplace_back(json::stringView(param));
    }
  }
  return compartment;
}

std::string defaultCompartmentPath() {
  const char* env = std::getenv("FHIR_GATEWAY_PROFILES");
  const std::string root = env != nullptr && *env != '\0' ? env : GATEWAY_PROFILES_DIR;
  return root + "/r4-core/CompartmentDefinition-patient.json";
}

ExportOptions ExportService::optionsOf(const Config& config) {
  ExportOptions options;
  options.dir = config.export_.dir.empty() ? (fs::path(config.data_dir) / "export").string() : config.export_.dir;
  options.lease_ms = std::max<int64_t>(1, static_cast<int64_t>(config.export_.lease_seconds * 1000.0));
  // A SQLite store is one process's: its name for the leases outlives a restart (the restarted
  // gateway resumes its jobs at once). On PostgreSQL each process is a holder of its own.
  if (config.store.kind != "postgresql") options.holder = "sqlite " + options.dir;
  options.retention_hours = config.export_.retention_hours;
  options.max_resources_per_file = config.export_.max_resources_per_file;
  options.max_concurrent_jobs = config.export_.max_concurrent_jobs;
  options.max_resources_per_second = config.export_.max_resources_per_second;
  return options;
}

Result<std::unique_ptr<ExportService>> ExportService::create(StorePtr store, const auth::AccessPolicy* policy,
                                                             ExportOptions options, ExportJobStorePtr jobs) {
  std::error_code error;
  fs::create_directories(options.dir, error);
  if (error) return Error{"cannot create the export directory " + options.dir + ": " + error.message()};
  if (!jobs) {
    auto opened = openSqliteExportJobs((fs::path(options.dir) / "jobs.db").string());
    if (!opened.ok()) return opened.error();
    jobs = *opened;
  }
  if (options.holder.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    options.holder = std::string(host) + ":" + std::to_string(::getpid()) + ":" + newJobId().substr(0, 8);
  }
  options.lease_ms = std::max<int64_t>(options.lease_ms, 1);
  auto compartment = loadCompartment(defaultCompartmentPath());
  if (!compartment.ok()) return compartment.error();
  return std::unique_ptr<ExportService>(
      new ExportService(std::move(store), policy, std::move(options), std::move(jobs), std::move(*compartment)));
}

ExportService::ExportService(StorePtr store, const auth::AccessPolicy* policy, ExportOptions options,
                             ExportJobStorePtr jobs, Compartment compartment)
    : store_(std::move(store)), policy_(policy), options_(std::move(options)), jobs_(std::move(jobs)),
      compartment_(std::move(compartment)) {}

ExportService::~ExportService() { stop(); }

void ExportService::start() {
  std::lock_guard lock(mutex_);
  if (!stopping_) return;
  stopping_ = false;
  for (int64_t index = 0; index < options_.max_concurrent_jobs; ++index) workers_.emplace_back([this] { work(); });
}

void ExportService::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

std::string ExportService::statusPath(const std::string& job_id) { return "/export/status/" + job_id; }

std::string ExportService::jobDir(const std::string& id) const { return (fs::path(options_.dir) / id).string(); }

bool ExportService::cancelled(const std::string& id) {
  std::lock_guard lock(mutex_);
  return cancelled_.count(id) > 0;
}

bool ExportService::ownedBy(const ExportJob& job, const auth::Caller& caller) const { return job.owner == caller.id(); }

bool ExportService::expired(const ExportJob& job, int64_t now_ms) const {
  if (job.ended_ms == 0) return false;
  return now_ms >= job.ended_ms + static_cast<int64_t>(options_.retention_hours * 3600.0 * 1000.0);
}

ExportAnswer ExportService::kickOff(const KickOff& request, const auth::Caller& caller, const std::string& public_base) {
  if (!request.respond_async) {
    return plain(issue(400, "invalid", "a Bulk Data kick-off needs the header 'Prefer: respond-async'"));
  }
  if (!request.unknown.empty()) {
    return plain(issue(400, "not-supported", "this server does not support the export parameter '" + request.unknown.front() + "'"));
  }
  for (const std::string& format : request.output_formats) {
    if (format != "application/fhir+ndjson" && format != "application/ndjson" && format != "ndjson") {
      return plain(issue(400, "not-supported", "_outputFormat '" + format + "' is not supported (application/fhir+ndjson is)"));
    }
  }
  for (const std::string& type : request.export_types) {
    if (type != kAtrExportType) {
      return plain(issue(400, "not-supported", "exportType '" + type + "' is not supported (" + std::string(kAtrExportType) + " is)"));
    }
  }
  if (request.since.size() > 1) return plain(issue(400, "invalid", "_since is given more than once"));
  ExportJob job;
  if (!request.since.empty()) {
    if (searchindex::instantUs(request.since.front()) == 0 || request.since.front().size() < 10) {
      return plain(issue(400, "invalid", "_since '" + request.since.front() + "' is not an instant"));
    }
    job.since = request.since.front();
  }
  if (!caller.open() && caller.client->kind != auth::ClientKind::kPayer && caller.client->kind != auth::ClientKind::kHie &&
      caller.client->kind != auth::ClientKind::kAdmin) {
    return plain(issue(403, "forbidden", std::string("a client of kind '") + auth::clientKindName(caller.client->kind) +
                                             "' may not export (payer, hie and admin clients may)"));
  }
  const std::vector<std::string>& stored = storedResourceTypes();
  auto inCompartment = [&](const std::string& type) {
    if (type == "Patient") return true;
    if (request.level == "group" && (type == "Practitioner" || type == "Organization")) return true;
    auto found = compartment_.find(type);
    return found != compartment_.end() && !found->second.empty();
  };
  std::vector<std::string> asked = request.types;
  if (asked.empty()) {
    for (const std::string& type : stored) {
      if (request.level == "system" || inCompartment(type)) asked.push_back(type);
    }
  }
  for (const std::string& type : asked) {
    if (std::find(stored.begin(), stored.end(), type) == stored.end()) {
      return plain(issue(400, "not-supported", "_type: this gateway does not store '" + type + "' resources"));
    }
    if (request.level != "system" && !inCompartment(type)) {
      return plain(issue(400, "invalid", "_type: '" + type + "' resources are not in the Patient compartment"));
    }
    if (std::find(job.types.begin(), job.types.end(), type) != job.types.end() ||
        std::find(job.refused.begin(), job.refused.end(), type) != job.refused.end()) {
      continue;
    }
    const bool allowed = policy_ == nullptr || !policy_->fhir(caller, auth::Interaction::kSearch, type).has_value();
    (allowed ? job.types : job.refused).push_back(type);
  }
  if (job.types.empty()) return plain(issue(403, "forbidden", "the access token allows none of the types asked for"));

  auto registry = searchindex::registry();
  if (!registry.ok()) return plain(issue(503, "transient", "search parameters are not loaded: " + registry.message()));
  for (const std::string& filter : request.type_filters) {
    const size_t question = filter.find('?');
    const std::string type = filter.substr(0, question);
    if (question == std::string::npos || std::find(job.types.begin(), job.types.end(), type) == job.types.end()) {
      return plain(issue(400, "invalid", "_typeFilter '" + filter + "' is not 'Type?query' for an exported type"));
    }
    auto params = http::parseQuery(filter.substr(question + 1));
    if (!params.ok()) return plain(issue(400, "invalid", "_typeFilter '" + filter + "': " + params.message()));
    auto query = search::parseQuery(**registry, type, *params);
    if (!query.ok()) return plain(issue(400, "invalid", "_typeFilter '" + filter + "': " + query.message()));
    job.type_filters.push_back(filter);
  }

  if (request.level == "group") {
    auto group = store_->readResource("Group", request.group_id);
    if (!group.ok()) return plain(issue(503, "transient", "the store cannot read now: " + group.message()));
    std::optional<std::string> seen;
    if (group->has_value()) {
      seen = (*group)->json;
      if (policy_ != nullptr && !caller.open()) {
        auto visible = policy_->visible(caller, "Group", request.group_id, (*group)->json);
        if (!visible.ok()) return plain(issue(503, "transient", "the store cannot read now: " + visible.message()));
        seen = *visible;
      }
    }
    if (!seen) return plain(issue(404, "not-found", "Group/" + request.group_id + " is not known"));
    auto doc = json::parse(*seen);
    if (!doc.ok() || !doc->IsObject()) return plain(issue(500, "exception", "Group/" + request.group_id + " is not readable"));
    job.members = patientMembers(*doc);
    std::vector<std::string> references;
    collectReferences(*doc, references);
    for (const std::string& reference : references) {
      if (reference.rfind("Practitioner/", 0) == 0 || reference.rfind("Organization/", 0) == 0) job.members.push_back(reference);
    }
    if (!job.since.empty()) {
      // Members the Group did not list before `_since` come with all their resources.
      const int64_t since_us = searchindex::instantUs(job.since);
      std::vector<std::string> before;
      bool found_before = false;
      HistoryQuery history{"Group", request.group_id, "", 100, std::nullopt};
      while (!found_before) {
        auto versions = store_->history(history);
        if (!versions.ok()) return plain(issue(503, "transient", "the store cannot read now: " + versions.message()));
        for (const ResourceVersion& version : *versions) {
          if (searchindex::instantUs(version.updated_at) < since_us) {
            auto old = json::parse(version.json);
            if (old.ok() && old->IsObject()) before = patientMembers(*old);
            found_before = true;
            break;
          }
        }
        if (versions->size() < history.count) break;
        history.before = versions->back();
      }
      for (const std::string& member : job.members) {
        if (member.rfind("Patient/", 0) == 0 && std::find(before.begin(), before.end(), member) == before.end()) {
          job.new_members.push_back(member);
        }
      }
    }
  }

  job.id = newJobId();
  job.owner = caller.id();
  job.level = request.level;
  job.group_id = request.group_id;
  job.request = request.request;
  job.export_type = request.export_types.empty() ? std::string() : request.export_types.front();
  job.transaction_time = nowIso();
  job.created_ms = nowMs();
  std::error_code error;
  fs::create_directories(jobDir(job.id), error);
  if (error) return plain(issue(503, "transient", "cannot create the job's folder: " + error.message()));
  if (Status created = jobs_->create(job); !created.ok()) {
    return plain(issue(503, "transient", "the export job cannot be kept now: " + created.message()));
  }
  wake_.notify_all();
  ExportAnswer answer{issue(202, "informational", "export job " + job.id + " accepted; poll its Content-Location",
                            Severity::kInformation),
                      {}};
  answer.headers.emplace_back("Content-Location", public_base + statusPath(job.id));
  return answer;
}

ExportAnswer ExportService::status(const std::string& job_id, const auth::Caller& caller, const std::string& public_base) {
  if (!isJobId(job_id)) return plain(issue(404, "not-found", "no export job " + job_id));
  auto found = jobs_->find(job_id);
  if (!found.ok()) return plain(issue(503, "transient", "the export jobs cannot be read now: " + found.message()));
  const int64_t now = nowMs();
  if (!found->has_value() || !ownedBy(**found, caller) || (*found)->status == "cancelled" || expired(**found, now)) {
    return plain(issue(404, "not-found", "no export job " + job_id));
  }
  const ExportJob& job = **found;
  if (job.status == "queued" || job.status == "running") {
    const int64_t wait_ms = options_.retry_after_seconds * 1000;
    {
      std::lock_guard lock(mutex_);
      int64_t& last = last_poll_ms_[job.id];
      // A client that polls sooner than it was told (a 10% allowance for clocks) is 429.
      if (last != 0 && now - last < wait_ms * 9 / 10) {
        Answer refused = issue(429, "throttled", "polled again " + std::to_string(now - last) + " ms after the last poll; Retry-After is " +
                                                     std::to_string(options_.retry_after_seconds) + " s");
        refused.retry_after = options_.retry_after_seconds;
        return plain(std::move(refused));
      }
      last = now;
    }
    int64_t written = job.written;  // as last saved; a running job's worker knows more
    {
      std::lock_guard lock(mutex_);
      if (auto live = live_written_.find(job.id); live != live_written_.end()) written = std::max(written, live->second);
    }
    Answer running{202, "application/fhir+json", ""};
    running.retry_after = options_.retry_after_seconds;
    const std::string progress = job.status == "queued" ? std::string("queued")
                                                        : std::to_string(written) + " resources written, type " +
                                                              std::to_string(std::min<int64_t>(job.unit + 1, static_cast<int64_t>(job.types.size()))) +
                                                              " of " + std::to_string(job.types.size());
    return ExportAnswer{std::move(running), {{"X-Progress", progress}}};
  }
  if (job.status == "failed") return plain(issue(500, "exception", "export job " + job.id + " failed: " + job.failure));
  std::string body = "{\"transactionTime\":" + jsonString(job.transaction_time) + ",\"request\":" + jsonString(job.request) +
                     ",\"requiresAccessToken\":" + (policy_ != nullptr && policy_->enabled() ? "true" : "false");
  auto files = [&](const std::vector<ExportFile>& list) {
    std::string out = "[";
    for (size_t index = 0; index < list.size(); ++index) {
      if (index > 0) out += ',';
      out += "{\"type\":" + jsonString(list[index].type) + ",\"url\":" +
             jsonString(public_base + "/export/files/" + job.id + "/" + list[index].name) +
             ",\"count\":" + std::to_string(list[index].count) + "}";
    }
    return out + "]";
  };
  body += ",\"output\":" + files(job.outputs) + ",\"error\":" + files(job.errors);
  // Bulk Data IG: with `_since`, `deleted` lists the resources deleted since then. This store
  // never deletes a resource (no FHIR delete of a stored type; updates keep the id), so the list
  // is empty, said explicitly; without `_since` the key is left out.
  if (!job.since.empty()) body += ",\"deleted\":[]";
  if (!job.export_type.empty()) {
    body += ",\"extension\":{\"exportType\":" + jsonString(job.export_type) + "}";
  }
  body += "}";
  return plain(Answer{200, "application/json", std::move(body)});
}

ExportAnswer ExportService::cancel(const std::string& job_id, const auth::Caller& caller) {
  if (!isJobId(job_id)) return plain(issue(404, "not-found", "no export job " + job_id));
  auto found = jobs_->find(job_id);
  if (!found.ok()) return plain(issue(503, "transient", "the export jobs cannot be read now: " + found.message()));
  if (!found->has_value() || !ownedBy(**found, caller) || (*found)->status == "cancelled") {
    return plain(issue(404, "not-found", "no export job " + job_id));
  }
  {
    std::lock_guard lock(mutex_);
    cancelled_.insert(job_id);
    last_poll_ms_.erase(job_id);
  }
  if (Status removed = jobs_->remove(job_id); !removed.ok()) {
    return plain(issue(503, "transient", "the export job cannot be removed now: " + removed.message()));
  }
  std::error_code error;
  fs::remove_all(jobDir(job_id), error);
  {
    std::lock_guard lock(mutex_);
    if (active_.count(job_id) == 0) cancelled_.erase(job_id);  // else the worker forgets it once it stopped
  }
  return plain(issue(202, "informational", "export job " + job_id + " cancelled; its files are deleted", Severity::kInformation));
}

ExportAnswer ExportService::file(const std::string& job_id, const std::string& name, const auth::Caller& caller) {
  if (!isJobId(job_id)) return plain(issue(404, "not-found", "no export file " + name));
  auto found = jobs_->find(job_id);
  if (!found.ok()) return plain(issue(503, "transient", "the export jobs cannot be read now: " + found.message()));
  if (!found->has_value() || !ownedBy(**found, caller) || (*found)->status != "done" || expired(**found, nowMs())) {
    return plain(issue(404, "not-found", "no export file " + name));
  }
  const ExportJob& job = **found;
  auto listed = [&](const std::vector<ExportFile>& list) {
    return std::any_of(list.begin(), list.end(), [&](const ExportFile& file) { return file.name == name; });
  };
  if (!listed(job.outputs) && !listed(job.errors)) return plain(issue(404, "not-found", "no export file " + name));
  // Read whole into the answer (the listener has no streamed bodies): files are split at
  // max_file_bytes, so one download holds at most that much (plus the listener's copy).
  const fs::path path = fs::path(jobDir(job.id)) / name;
  std::error_code size_error;
  const uintmax_t size = fs::file_size(path, size_error);
  std::ifstream in(path, std::ios::binary);
  if (!in || size_error) return plain(issue(404, "not-found", "export file " + name + " is gone"));
  std::string body(static_cast<size_t>(size), '\0');
  if (!in.read(body.data(), static_cast<std::streamsize>(size))) {
    return plain(issue(500, "exception", "export file " + name + " cannot be read"));
  }
  return plain(Answer{200, "application/fhir+ndjson", std::move(body)});
}

bool ExportService::waitIdle(int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto open = jobs_->unfinished();
    bool idle = false;
    {
      std::lock_guard lock(mutex_);
      idle = open.ok() && open->empty() && active_.empty();
    }
    if (idle) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void ExportService::sweepExpired() {
  const int64_t retention_ms = static_cast<int64_t>(options_.retention_hours * 3600.0 * 1000.0);
  auto ended = jobs_->ended(nowMs() - retention_ms);
  if (!ended.ok()) return;
  for (const ExportJob& job : *ended) {
    std::error_code error;
    fs::remove_all(jobDir(job.id), error);
    if (!error) (void)jobs_->remove(job.id);
    std::lock_guard lock(mutex_);
    last_poll_ms_.erase(job.id);
  }
}

void ExportService::work() {
  // Export yields to ingest: this thread runs at the lowest CPU priority (Linux: per thread).
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  while (true) {
    std::optional<ExportJob> next;
    {
      std::unique_lock lock(mutex_);
      if (stopping_) return;
      const int64_t now = nowMs();
      if (now - last_sweep_ms_ >= 1000) {
        last_sweep_ms_ = now;
        lock.unlock();
        sweepExpired();
        lock.lock();
      }
      const int64_t page_limit = stop_after_pages_.load();
      auto open = page_limit > 0 && pages_.load() >= page_limit ? Result<std::vector<ExportJob>>(std::vector<ExportJob>())
                                                                 : jobs_->unfinished();
      if (open.ok()) {
        for (ExportJob& job : *open) {
          if (active_.count(job.id) > 0 || cancelled_.count(job.id) > 0) continue;
          // Another instance's live lease: that instance runs it (checked again by takeLease).
          if (!job.lease_holder.empty() && job.lease_holder != options_.holder && job.lease_expires_ms > now) continue;
          const int64_t expires = nowMs() + options_.lease_ms;
          auto taken = jobs_->takeLease(job.id, options_.holder, nowMs(), expires);
          if (!taken.ok() || !*taken) continue;
          job.lease_holder = options_.holder;
          job.lease_expires_ms = expires;
          next = std::move(job);
          break;
        }
      }
      if (!next) {
        wake_.wait_for(lock, std::chrono::seconds(1));
        continue;
      }
      active_.insert(next->id);
    }
    run(*next);
    {
      std::lock_guard lock(mutex_);
      active_.erase(next->id);
      live_written_.erase(next->id);
      if (cancelled_.erase(next->id) > 0) {
        std::error_code error;
        fs::remove_all(jobDir(next->id), error);
        (void)jobs_->remove(next->id);
      }
    }
    wake_.notify_all();
  }
}

void ExportService::run(ExportJob& job) {
  // The job's lease is this service's (work() took it); every save below renews it and is
  // refused once another instance took the job over.
  auto finish = [&](std::string status, std::string why) {
    job.status = std::move(status);
    job.failure = std::move(why);
    job.ended_ms = nowMs();
    auto saved = saveLeased(job);
    if (saved.ok() && !*saved) leftJob(job);
  };
  auth::Caller caller;
  if (!job.owner.empty()) {
    caller.client = policy_ != nullptr ? policy_->client(job.owner) : nullptr;
    if (caller.client == nullptr) {
      finish("failed", "the client '" + job.owner + "' that started the export is no longer configured");
      return;
    }
  }
  if (job.status != "running") {
    job.status = "running";
    auto saved = saveLeased(job);
    if (!saved.ok()) return;  // the store is failing: a later pass tries again
    if (!*saved) return leftJob(job);
  }
  while (job.unit < static_cast<int64_t>(job.types.size())) {
    bool stopped = false;
    Status step = runUnit(job, caller, stopped);
    if (stopped || cancelled(job.id)) return;
    if (!step.ok()) {
      finish("failed", step.message());
      return;
    }
  }
  if (Status errors = writeErrors(job); !errors.ok()) {
    finish("failed", errors.message());
  } else {
    finish("done", "");
  }
}

Result<bool> ExportService::saveLeased(ExportJob& job) {
  job.lease_holder = options_.holder;
  job.lease_expires_ms = nowMs() + options_.lease_ms;
  return jobs_->saveProgress(job);
}

Result<bool> ExportService::renewLease(ExportJob& job) {
  const int64_t now = nowMs();
  auto taken = jobs_->takeLease(job.id, options_.holder, now, now + options_.lease_ms);
  if (taken.ok() && *taken) job.lease_expires_ms = now + options_.lease_ms;
  return taken;
}

void ExportService::leftJob(const ExportJob& job) {
  auto found = jobs_->find(job.id);
  if (found.ok() && !found->has_value()) {
    // Cancelled on another instance while this worker wrote: what it wrote after that goes too.
    std::error_code error;
    fs::remove_all(jobDir(job.id), error);
  }
}

Status ExportService::writeErrors(ExportJob& job) {
  if (job.refused.empty() || !job.errors.empty()) return Status::Ok();
  std::string lines;
  for (const std::string& type : job.refused) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "forbidden",
                     "the access token does not allow exporting " + type + " resources; none are in this export", {}, {}});
    lines += toOperationOutcomeJson(issues) + "\n";
  }
  const std::string name = "OperationOutcome-1.ndjson";
  const std::string path = (fs::path(jobDir(job.id)) / name).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Error{"cannot write " + path + ": " + errnoText()};
  const bool ok = writeAll(fd, lines) && ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok) return Error{"cannot write " + path + ": " + errnoText()};
  job.errors.push_back(ExportFile{"OperationOutcome", name, static_cast<int64_t>(job.refused.size())});
  return Status::Ok();
}

Status ExportService::runUnit(ExportJob& job, const auth::Caller& caller, bool& stopped) {
  const std::string type = job.types[static_cast<size_t>(job.unit)];
  auto registry = searchindex::registry();
  if (!registry.ok()) return Error{"search parameters are not loaded: " + registry.message()};

  std::vector<std::string> filters;
  for (const std::string& filter : job.type_filters) {
    if (filter.rfind(type + "?", 0) == 0) filters.push_back(filter.substr(type.size() + 1));
  }
  const bool group = job.level == "group";
  // With `_since`, a Group's new members come with all their resources: the date is then
  // checked here, not in the query.
  const bool since_in_code = group && !job.since.empty() && !job.new_members.empty();
  std::vector<std::pair<std::string, std::string>> criteria;
  if (!job.since.empty() && !since_in_code) criteria.emplace_back("_lastUpdated", "ge" + job.since);
  std::vector<search::Query> or_filters;  // several _typeFilter of one type: any of them
  if (filters.size() == 1) {
    auto params = http::parseQuery(filters.front());
    if (!params.ok()) return Error{"_typeFilter: " + params.message()};
    criteria.insert(criteria.end(), params->begin(), params->end());
  } else {
    for (const std::string& filter : filters) {
      auto params = http::parseQuery(filter);
      if (!params.ok()) return Error{"_typeFilter: " + params.message()};
      auto query = search::parseQuery(**registry, type, *params);
      if (!query.ok()) return Error{"_typeFilter: " + query.message()};
      or_filters.push_back(std::move(*query));
    }
  }
  criteria.emplace_back("_count", std::to_string(options_.page_size));
  criteria.emplace_back("_total", "none");
  auto query = search::parseQuery(**registry, type, criteria, search::QueryOptions{false, "", static_cast<int>(options_.page_size), 50});
  if (!query.ok()) return Error{"the export query of " + type + ": " + query.message()};

  const std::unordered_set<std::string> members(job.members.begin(), job.members.end());
  const std::unordered_set<std::string> new_members(job.new_members.begin(), job.new_members.end());
  const std::vector<std::string>* compartment_params = nullptr;
  if (auto found = compartment_.find(type); found != compartment_.end()) compartment_params = &found->second;
  const int64_t since_us = job.since.empty() ? 0 : searchindex::instantUs(job.since);
  const bool compartment_level = job.level != "system";
  const bool needs_rows = compartment_level || !or_filters.empty();

  // Whether a found resource goes into this export.
  auto belongs = [&](const SearchHit& hit) {
    if (!needs_rows) return true;
    const std::string updated = lastUpdatedOf(hit.json);
    std::vector<search::IndexRow> rows = searchindex::indexRows(**registry, hit.json, updated);
    if (!or_filters.empty()) {
      search::MatchOptions match;
      match.now = nowMs() * 1000;
      const bool any = std::any_of(or_filters.begin(), or_filters.end(),
                                   [&](const search::Query& filter) { return search::matches(filter, rows, match); });
      if (!any) return false;
    }
    if (!compartment_level) return true;
    auto referencesMember = [&](const std::unordered_set<std::string>* set) {
      if (type == "Patient") return set == nullptr || set->count("Patient/" + hit.id) > 0;
      if (group && (type == "Practitioner" || type == "Organization")) {
        return set == &members && members.count(type + "/" + hit.id) > 0;
      }
      if (compartment_params == nullptr) return false;
      for (const search::IndexRow& row : rows) {
        if (row.ref_type != "Patient" || row.ref_id.empty()) continue;
        if (std::find(compartment_params->begin(), compartment_params->end(), row.param) == compartment_params->end()) continue;
        if (set == nullptr || set->count("Patient/" + row.ref_id) > 0) return true;
      }
      return false;
    };
    if (!referencesMember(group ? &members : nullptr)) return false;
    if (since_in_code && searchindex::instantUs(updated) < since_us) return referencesMember(&new_members);
    return true;
  };

  std::function<Result<std::optional<std::string>>(std::string_view, std::string_view, const std::string&)> visible;
  if (policy_ != nullptr && !caller.open() && caller.client->kind != auth::ClientKind::kAdmin) {
    visible = [this, &caller](std::string_view t, std::string_view id, const std::string& json) {
      return policy_->visible(caller, t, id, json);
    };
  }

  const std::string dir = jobDir(job.id);
  auto pathOf = [&](int64_t seq) { return (fs::path(dir) / (type + "-" + std::to_string(seq) + ".ndjson")).string(); };
  int fd = -1;
  bool dir_dirty = false;  // a file was created since the last checkpoint
  int64_t last_checkpoint_ms = nowMs();
  int64_t pages_since_checkpoint = 0;
  const int64_t paced_since_ms = nowMs();
  int64_t paced_read = 0;  // resources read since paced_since_ms
  std::string buffer;  // the lines of the page being read, not yet written
  auto closeFile = [&]() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  if (job.file_seq > 0) {
    // Resume: the open file holds exactly the bytes saved with the cursor; later bytes (pages
    // written after the last checkpoint, torn lines) are cut and written again from the cursor.
    fd = ::open(pathOf(job.file_seq).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(job.file_bytes)) != 0 || ::lseek(fd, 0, SEEK_END) < 0) {
      const std::string why = errnoText();
      closeFile();
      return Error{"cannot resume " + pathOf(job.file_seq) + ": " + why};
    }
  }
  auto startFile = [&]() -> Status {
    job.file_seq += 1;
    job.file_count = 0;
    job.file_bytes = 0;
    fd = ::open(pathOf(job.file_seq).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return Error{"cannot create " + pathOf(job.file_seq) + ": " + errnoText()};
    dir_dirty = true;
    return Status::Ok();
  };
  // Appends the buffered lines to the open file (no sync: a checkpoint syncs).
  auto writeBuffer = [&]() -> Status {
    if (buffer.empty()) return Status::Ok();
    if (!writeAll(fd, buffer)) return Error{"cannot write " + pathOf(job.file_seq) + ": " + errnoText()};
    job.file_bytes += static_cast<int64_t>(buffer.size());
    buffer.clear();
    return Status::Ok();
  };
  // Closes the open file, synced: a checkpoint lists it among the closed files only once it is
  // whole on disk.
  auto finishFile = [&]() -> Status {
    if (fd < 0) return Status::Ok();
    if (Status written = writeBuffer(); !written.ok()) return written;
    if (::fdatasync(fd) != 0) return Error{"cannot sync " + pathOf(job.file_seq) + ": " + errnoText()};
    closeFile();
    if (job.file_count > 0) {
      job.outputs.push_back(ExportFile{type, fs::path(pathOf(job.file_seq)).filename().string(), job.file_count});
    }
    return Status::Ok();
  };
  // Makes everything written so far durable (the open file, new directory entries), then saves
  // the job's progress with the cursor that goes with those bytes: a restart resumes from here.
  // The save renews the lease; when another instance took the job over (or it was cancelled
  // there) nothing is saved and `lease_lost` says the worker leaves the job.
  bool lease_lost = false;
  auto checkpoint = [&]() -> Status {
    if (fd >= 0 && ::fdatasync(fd) != 0) return Error{"cannot sync " + pathOf(job.file_seq) + ": " + errnoText()};
    if (dir_dirty) {
      const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      const bool synced = dir_fd >= 0 && ::fsync(dir_fd) == 0;
      if (dir_fd >= 0) ::close(dir_fd);
      if (!synced) return Error{"cannot sync the folder " + dir + ": " + errnoText()};
      dir_dirty = false;
    }
    auto saved = saveLeased(job);
    if (!saved.ok()) return saved.error();
    if (!*saved) {
      lease_lost = true;
      return Status::Ok();
    }
    last_checkpoint_ms = nowMs();
    pages_since_checkpoint = 0;
    return Status::Ok();
  };
  // Leaves the job to the instance that took it over: nothing more is written or saved.
  auto leave = [&]() {
    closeFile();
    stopped = true;
    leftJob(job);
    return Status::Ok();
  };
  auto failed = [&](Status status) {
    closeFile();
    return status;
  };

  while (true) {
    const int64_t limit = stop_after_pages_.load();
    if (limit > 0 && pages_.load() >= limit) {
      closeFile();  // as a killed process: what was written after the last checkpoint is not saved
      stopped = true;
      return Status::Ok();
    }
    bool stopping = false;
    bool cancelled_now = false;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      cancelled_now = cancelled_.count(job.id) > 0;
    }
    if (stopping || cancelled_now) {
      if (!cancelled_now) {
        // A stop saves the progress (a failure here only costs a redo) and frees the lease: another
        // instance may go on at once.
        if (checkpoint().ok() && !lease_lost) (void)jobs_->releaseLease(job.id, options_.holder);
      }
      closeFile();
      stopped = true;
      return Status::Ok();
    }
    // The lease is renewed every third of its length, also while the worker waits for its pace.
    if (nowMs() >= job.lease_expires_ms - options_.lease_ms * 2 / 3) {
      auto renewed = renewLease(job);
      if (renewed.ok() && !*renewed) return leave();
      // A store that fails now: the lease runs on until it expires (checked before a write).
    }
    if (options_.max_resources_per_second > 0) {
      // export.maxResourcesPerSecond: the next page waits until the pages read so far are due,
      // in slices short enough that a stop or a cancel is seen at once.
      const int64_t due_ms = paced_since_ms + paced_read * 1000 / options_.max_resources_per_second;
      if (const int64_t wait_ms = due_ms - nowMs(); wait_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(wait_ms, 50)));
        continue;
      }
    }
    SearchRequest request;
    request.query = &*query;
    request.cursor = job.cursor;
    request.now_us = nowMs() * 1000;
    request.visible = visible;
    Result<SearchPage> page = Error{"not read"};
    for (int attempt = 0; attempt < 5; ++attempt) {
      page = store_->search(request);
      if (page.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    }
    if (!page.ok()) return failed(Error{"the store cannot search " + type + ": " + page.message()});
    if (nowMs() >= job.lease_expires_ms) {
      // The lease ran out while the page was read (a slow or unreachable store): another instance
      // may own the job by now, so this page is not written. The job is left as it was saved;
      // this or another worker takes it again through its lease.
      closeFile();
      stopped = true;
      return Status::Ok();
    }
    paced_read += static_cast<int64_t>(page->entries.size());
    for (const SearchHit& hit : page->entries) {
      if (hit.include || !belongs(hit)) continue;
      // The stored bytes as they are (the store already added meta); one line per resource,
      // so a resource stored pretty-printed is written compact.
      std::string compact;
      if (hit.json.find('\n') != std::string::npos) {
        auto doc = json::parse(hit.json);
        compact = doc.ok() ? json::serialize(*doc) : std::string();
      }
      const std::string_view line = compact.empty() ? std::string_view(hit.json) : std::string_view(compact);
      const int64_t line_bytes = static_cast<int64_t>(line.size()) + 1;
      const bool full = job.file_count >= options_.max_resources_per_file ||
                        (job.file_count > 0 &&
                         job.file_bytes + static_cast<int64_t>(buffer.size()) + line_bytes > options_.max_file_bytes);
      if (fd < 0 || full) {
        if (Status finished = finishFile(); !finished.ok()) return failed(finished);
        if (Status started = startFile(); !started.ok()) return failed(started);
      }
      buffer += line;
      buffer += '\n';
      job.file_count += 1;
      job.written += 1;
    }
    if (fd >= 0) {
      if (Status written = writeBuffer(); !written.ok()) return failed(written);
    }
    job.cursor = page->next_cursor;
    pages_ += 1;
    pages_since_checkpoint += 1;
    {
      std::lock_guard lock(mutex_);
      live_written_[job.id] = job.written;
    }
    if (job.cursor.empty()) {
      if (Status finished = finishFile(); !finished.ok()) return failed(finished);
      job.unit += 1;
      job.file_seq = 0;
      job.file_count = 0;
      job.file_bytes = 0;
      if (Status saved = checkpoint(); !saved.ok()) return failed(saved);
      if (lease_lost) return leave();
      return Status::Ok();
    }
    const bool due = (options_.checkpoint_pages > 0 && pages_since_checkpoint >= options_.checkpoint_pages) ||
                     nowMs() - last_checkpoint_ms >= options_.checkpoint_ms;
    if (due) {
      if (Status saved = checkpoint(); !saved.ok()) return failed(saved);
      if (lease_lost) return leave();
    }
  }
}

}  // namespace fhir::gateway::exports

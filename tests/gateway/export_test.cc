// SPDX-License-Identifier: Apache-2.0
// Bulk export (issue 16, gateway/export): the durable job table (gateway/store/export_jobs.h,
// with its leases, issue 17) on both stores, and the service over both stores (SQLite,
// PostgreSQL, each with its own job table): every resource exactly once in NDJSON split at
// maxResourcesPerFile, _type, _since, _typeFilter, the Patient compartment (Patient/$export),
// Group members (Group/{id}/$export, with _since: new members bring all their resources), resume
// after a stop mid-job with torn bytes at the end of the open file, cancel, 429, expiry, and
// access (a payer's export holds only what it may see; another client gets 404), and two
// services on one store as two instances: a job whose holder died is taken over only once its
// lease expired, and a DELETE on one instance stops the worker of the other.
//
// Expected ids are written out by hand from the resources each test writes.

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/auth/policy.h"
#include "gateway/store/export_jobs.h"
#include "gateway/export/export_service.h"
#include "gateway/store/pg_store.h"
#include "gateway/store/store.h"
#include "conformance/common/time_util.h"
#include "tests/support/test_postgres.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::exports {
namespace {

namespace fs = std::filesystem;
using Ids = std::multiset<std::string>;

constexpr const char* kBase = "http://gw.test";

struct StoreKind {
  std::string name;
  std::function<Result<StorePtr>(const std::string& dir)> open;
  // A handle on the export jobs of the store of `dir` (SQLite: <dir>/export/jobs.db, where the
  // service keeps them; PostgreSQL: the store's export_jobs table).
  std::function<Result<ExportJobStorePtr>(const std::string& dir)> jobs;
};
void PrintTo(const StoreKind& kind, std::ostream* out) { *out << kind.name; }

Result<PostgresStoreOptions> postgresOptions(const std::string& dir) {
  auto cluster = testing::testPostgres();
  if (!cluster.ok()) return cluster.error();
  PostgresStoreOptions options;
  options.url = cluster->url;
  options.password = cluster->password;
  options.schema = testing::testSchemaFor(dir);
  return options;
}

Result<StorePtr> openPostgres(const std::string& dir) {
  auto options = postgresOptions(dir);
  if (!options.ok()) return options.error();
  return openPostgresStore(*options);
}

Result<ExportJobStorePtr> openPostgresJobs(const std::string& dir) {
  auto options = postgresOptions(dir);
  if (!options.ok()) return options.error();
  return openPostgresExportJobs(*options);
}

Result<ExportJobStorePtr> openSqliteJobs(const std::string& dir) {
  std::error_code error;
  fs::create_directories(fs::path(dir) / "export", error);
  return openSqliteExportJobs((fs::path(dir) / "export" / "jobs.db").string());
}

const StoreKind kKinds[] = {
    {"sqlite", [](const std::string& dir) { return openSqliteStore(dir); }, &openSqliteJobs},
    {"postgresql", &openPostgres, &openPostgresJobs},
};

ResourceWrite resourceOf(const std::string& json) {
  auto doc = json::parse(json);
  EXPECT_TRUE(doc.ok()) << json;
  return ResourceWrite{std::string(json::getString(*doc, "resourceType").value_or("")),
                       std::string(json::getString(*doc, "id").value_or("")), json};
}

std::string patient(const std::string& id) { return R"({"resourceType":"Patient","id":")" + id + R"(","gender":"female"})"; }
std::string observation(const std::string& id, const std::string& subject, const std::string& status = "final") {
  return R"({"resourceType":"Observation","id":")" + id + R"(","status":")" + status +
         R"(","code":{"text":"x"},"subject":{"reference":"Patient/)" + subject + R"("}})";
}
std::string organization(const std::string& id) { return R"({"resourceType":"Organization","id":")" + id + R"("})"; }

KickOff kickOf(std::string level, std::vector<std::pair<std::string, std::string>> params = {}, std::string group = "") {
  KickOff kick;
  kick.level = std::move(level);
  kick.group_id = std::move(group);
  kick.request = std::string(kBase) + "/fhir/$export";
  kick.respond_async = true;
  for (auto& [name, value] : params) {
    if (name == "_type") {
      std::stringstream types(value);  // the route splits _type at commas
      for (std::string type; std::getline(types, type, ',');) kick.types.push_back(type);
    }
    else if (name == "_since") kick.since.push_back(value);
    else if (name == "_typeFilter") kick.type_filters.push_back(value);
    else if (name == "_outputFormat") kick.output_formats.push_back(value);
    else kick.unknown.push_back(name);
  }
  return kick;
}

std::string header(const ExportAnswer& answer, const std::string& name) {
  for (const auto& [key, value] : answer.headers) {
    if (key == name) return value;
  }
  return {};
}

std::string jobIdOf(const ExportAnswer& kicked) {
  const std::string location = header(kicked, "Content-Location");
  return location.substr(location.rfind('/') + 1);
}

// What a finished export holds: per type the "Type/id" lines of all its files, and the counts
// the manifest gives.
struct Downloaded {
  std::map<std::string, Ids> lines;
  std::map<std::string, int64_t> manifest_counts;
  std::vector<int64_t> file_counts;
  int files = 0;
  std::string manifest;
  int errors = 0;
};

class Export : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    auto opened = GetParam().open(dir_.path().string());
    ASSERT_TRUE(opened.ok()) << opened.message();
    store_ = *opened;
  }
  void TearDown() override {
    if (service_) service_->stop();
  }

  void write(const std::string& key, const std::vector<std::string>& jsons, const std::string& channel = "test",
             std::vector<CoverageFact> coverage = {}) {
    IngestCommit commit;
    commit.channel = channel;
    commit.idempotency_key = key;
    commit.payload = "{}";
    commit.answer = "ok";
    for (const std::string& json : jsons) commit.resources.push_back(resourceOf(json));
    commit.coverage = std::move(coverage);
    auto done = store_->commitIngest(std::move(commit));
    ASSERT_TRUE(done.ok()) << done.message();
  }

  ExportOptions options(int64_t per_file = 100000) {
    ExportOptions out;
    out.dir = (dir_.path() / "export").string();
    out.max_resources_per_file = per_file;
    out.max_concurrent_jobs = 2;
    out.page_size = 3;  // several pages even for small exports
    return out;
  }

  // A service (an instance) on the test's store with a job handle of its own, started.
  std::unique_ptr<ExportService> newService(ExportOptions opts, const auth::AccessPolicy* policy = nullptr) {
    auto jobs = GetParam().jobs(dir_.path().string());
    EXPECT_TRUE(jobs.ok()) << jobs.message();
    if (!jobs.ok()) return nullptr;
    auto created = ExportService::create(store_, policy, std::move(opts), *jobs);
    EXPECT_TRUE(created.ok()) << created.message();
    if (!created.ok()) return nullptr;
    (*created)->start();
    return std::move(*created);
  }

  void startService(ExportOptions opts, const auth::AccessPolicy* policy = nullptr) {
    if (service_) service_->stop();
    service_.reset();
    service_ = newService(std::move(opts), policy);
    ASSERT_NE(service_, nullptr);
  }

  // Kicks off, waits, reads the manifest and every file.
  Downloaded exportAll(const KickOff& kick, const auth::Caller& caller = {}) {
    Downloaded out;
    ExportAnswer kicked = service_->kickOff(kick, caller, kBase);
    EXPECT_EQ(kicked.answer.status, 202) << kicked.answer.body;
    if (kicked.answer.status != 202) return out;
    EXPECT_TRUE(service_->waitIdle(60000));
    const std::string id = jobIdOf(kicked);
    ExportAnswer status = service_->status(id, caller, kBase);
    EXPECT_EQ(status.answer.status, 200) << status.answer.body;
    out.manifest = status.answer.body;
    auto doc = json::parse(status.answer.body);
    EXPECT_TRUE(doc.ok());
    if (!doc.ok()) return out;
    for (const json::Value& entry : json::find(*doc, "output")->GetArray()) {
      const std::string type(json::getString(entry, "type").value_or(""));
      const std::string url(json::getString(entry, "url").value_or(""));
      const int64_t count = json::numberAsInt64(*json::find(entry, "count")).value_or(-1);
      out.manifest_counts[type] += count;
      out.file_counts.push_back(count);
      ++out.files;
      EXPECT_EQ(url.rfind(std::string(kBase) + "/export/files/" + id + "/", 0), 0u) << url;
      ExportAnswer file = service_->file(id, url.substr(url.rfind('/') + 1), caller);
      EXPECT_EQ(file.answer.status, 200);
      EXPECT_EQ(file.answer.content_type, "application/fhir+ndjson");
      std::istringstream lines(file.answer.body);
      std::string line;
      int64_t in_file = 0;
      while (std::getline(lines, line)) {
        auto resource = json::parse(line);
        EXPECT_TRUE(resource.ok() && resource->IsObject()) << line;
        if (!resource.ok()) continue;
        EXPECT_EQ(json::getString(*resource, "resourceType").value_or(""), type);
        out.lines[type].insert(type + "/" + std::string(json::getString(*resource, "id").value_or("")));
        ++in_file;
      }
      EXPECT_EQ(in_file, count) << url;
    }
    out.errors = static_cast<int>(json::find(*doc, "error")->Size());
    return out;
  }

  testing::TempDir dir_;
  StorePtr store_;
  std::unique_ptr<ExportService> service_;
};

class ExportJobs : public ::testing::TestWithParam<StoreKind> {
 protected:
  ExportJobStorePtr handle() {
    auto jobs = GetParam().jobs(dir_.path().string());
    EXPECT_TRUE(jobs.ok()) << jobs.message();
    return jobs.ok() ? *jobs : nullptr;
  }
  static ExportJob queued(const std::string& id, int64_t created_ms) {
    ExportJob job;
    job.id = id;
    job.level = "system";
    job.types = {"Patient"};
    job.created_ms = created_ms;
    return job;
  }
  testing::TempDir dir_;
};

TEST_P(ExportJobs, AJobIsKeptAsCreatedAndItsProgressAsSaved) {
  ExportJobStorePtr jobs = handle();
  ASSERT_NE(jobs, nullptr);
  ExportJob job;
  job.id = "j1";
  job.owner = "payer-a";
  job.level = "group";
  job.group_id = "g1";
  job.request = "http://x/fhir/Group/g1/$export?_type=Patient";
  job.types = {"Patient", "Coverage"};
  job.type_filters = {"Coverage?status=active"};
  job.members = {"Patient/p1", "Practitioner/d1"};
  job.new_members = {"Patient/p1"};
  job.since = "2026-01-01T00:00:00Z";
  job.transaction_time = "2026-02-01T00:00:00.000Z";
  job.created_ms = 5;
  ASSERT_TRUE(jobs->create(job).ok());
  ExportJob job2 = job;
  job2.id = "j2";
  job2.created_ms = 6;
  ASSERT_TRUE(jobs->create(job2).ok());
  EXPECT_FALSE(jobs->create(job2).ok()) << "an id is unique";

  job.status = "running";
  job.unit = 1;
  job.cursor = "c\"1";
  job.file_seq = 2;
  job.file_count = 7;
  job.file_bytes = 700;
  job.written = 107;
  job.outputs = {{"Patient", "Patient-1.ndjson", 100}};
  job.failure = std::string("a \0 byte and \xff", 14);  // messages may quote what a client sent
  ASSERT_TRUE(jobs->saveProgress(job).ok());
  auto found = jobs->find("j1");
  ASSERT_TRUE(found.ok() && found->has_value());
  const ExportJob& read = **found;
  EXPECT_EQ(read.owner, "payer-a");
  EXPECT_EQ(read.group_id, "g1");
  EXPECT_EQ(read.request, job.request);
  EXPECT_EQ(read.types, job.types);
  EXPECT_EQ(read.type_filters, job.type_filters);
  EXPECT_EQ(read.members, job.members);
  EXPECT_EQ(read.new_members, job.new_members);
  EXPECT_EQ(read.since, job.since);
  EXPECT_EQ(read.transaction_time, job.transaction_time);
  EXPECT_EQ(read.status, "running");
  EXPECT_EQ(read.cursor, "c\"1");
  EXPECT_EQ(read.file_seq, 2);
  EXPECT_EQ(read.file_count, 7);
  EXPECT_EQ(read.file_bytes, 700);
  EXPECT_EQ(read.written, 107);
  ASSERT_EQ(read.outputs.size(), 1u);
  EXPECT_EQ(read.outputs[0].name, "Patient-1.ndjson");
  EXPECT_EQ(read.outputs[0].count, 100);
  EXPECT_EQ(read.failure, job.failure);
  EXPECT_EQ(read.lease_holder, "") << "nobody took its lease";

  auto open = jobs->unfinished();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 2u);
  EXPECT_EQ((*open)[0].id, "j1");
  job2.status = "done";
  job2.ended_ms = 1000;
  ASSERT_TRUE(jobs->saveProgress(job2).ok());
  EXPECT_EQ(jobs->unfinished()->size(), 1u);
  EXPECT_TRUE(jobs->ended(1000)->empty()) << "ended at 1000 is not before 1000";
  EXPECT_EQ(jobs->ended(1001)->size(), 1u);
  ASSERT_TRUE(jobs->remove("j2").ok());
  EXPECT_FALSE(jobs->find("j2")->has_value());
  EXPECT_TRUE(jobs->remove("nope").ok());

  // Durable: another handle on the store reads the same.
  ExportJobStorePtr again = handle();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->find("j1")->value().written, 107);
}

// Issue 17: one holder at a time. Handles `a` and `b` are two instances on one store; times are
// the callers' clocks, written out here.
TEST_P(ExportJobs, ALeaseIsTakenOverByASecondHandleOnlyAfterItExpired) {
  ExportJobStorePtr a = handle();
  ExportJobStorePtr b = handle();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->create(queued("j1", 1)).ok());
  EXPECT_TRUE(*a->takeLease("j1", "A", 1000, 2000));
  EXPECT_FALSE(*b->takeLease("j1", "B", 1500, 2500)) << "A's lease is live until 2000";
  EXPECT_FALSE(*b->takeLease("j1", "B", 1999, 2999));
  auto seen = b->find("j1");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->lease_holder, "A");
  EXPECT_EQ((*seen)->lease_expires_ms, 2000);
  auto open_jobs = b->unfinished();
  ASSERT_TRUE(open_jobs.ok() && open_jobs->size() == 1);
  EXPECT_EQ(open_jobs->front().lease_holder, "A") << "unfinished() tells who holds each job";

  // A renews: by taking it again, then by a checkpoint (saveProgress under its lease).
  EXPECT_TRUE(*a->takeLease("j1", "A", 1800, 2800));
  EXPECT_FALSE(*b->takeLease("j1", "B", 2500, 3500)) << "renewed until 2800";
  ExportJob mine = **seen;
  mine.status = "running";
  mine.written = 5;
  mine.lease_holder = "A";
  mine.lease_expires_ms = 3500;
  EXPECT_TRUE(*a->saveProgress(mine));
  EXPECT_FALSE(*b->takeLease("j1", "B", 3000, 4000)) << "the checkpoint renewed it until 3500";
  EXPECT_EQ(b->find("j1")->value().lease_expires_ms, 3500);

  // A dies; at 3500 its lease has expired and B takes the job over.
  EXPECT_TRUE(*b->takeLease("j1", "B", 3500, 4500));
  ExportJob late = mine;  // A was not dead after all: its checkpoint must not overwrite B's job
  late.written = 6;
  late.lease_expires_ms = 5000;
  EXPECT_FALSE(*a->saveProgress(late));
  EXPECT_FALSE(*a->takeLease("j1", "A", 3600, 4600));
  auto taken = a->find("j1");
  ASSERT_TRUE(taken.ok() && taken->has_value());
  EXPECT_EQ((*taken)->lease_holder, "B");
  EXPECT_EQ((*taken)->lease_expires_ms, 4500);
  EXPECT_EQ((*taken)->written, 5) << "A's refused save changed nothing";
  ExportJob theirs = **taken;
  theirs.written = 9;
  theirs.lease_holder = "B";
  theirs.lease_expires_ms = 5500;
  EXPECT_TRUE(*b->saveProgress(theirs));

  // Releasing: only the holder's release frees it; then anyone may take it at once.
  ASSERT_TRUE(a->releaseLease("j1", "A").ok());
  EXPECT_EQ(a->find("j1")->value().lease_holder, "B");
  ASSERT_TRUE(b->releaseLease("j1", "B").ok());
  EXPECT_EQ(a->find("j1")->value().lease_holder, "");
  EXPECT_TRUE(*a->takeLease("j1", "A", 3700, 4700)) << "a freed lease is free before it would have expired";

  // A save without a holder (no lease rules) saves and leaves the lease as it is.
  ExportJob plain = theirs;
  plain.lease_holder = "";
  plain.written = 11;
  EXPECT_TRUE(*b->saveProgress(plain));
  EXPECT_EQ(a->find("j1")->value().written, 11);
  EXPECT_EQ(a->find("j1")->value().lease_holder, "A");
  EXPECT_EQ(a->find("j1")->value().lease_expires_ms, 4700);

  // An ended job has no lease to take; a job that is gone neither, nor can it be saved.
  ExportJob done = plain;
  done.status = "done";
  done.ended_ms = 4000;
  done.lease_holder = "A";
  done.lease_expires_ms = 4700;
  EXPECT_TRUE(*a->saveProgress(done));
  EXPECT_FALSE(*b->takeLease("j1", "B", 99999, 100999));
  EXPECT_FALSE(*b->takeLease("nope", "B", 1, 2));
  ASSERT_TRUE(b->remove("j1").ok());
  EXPECT_FALSE(*a->saveProgress(done)) << "cancelled on another instance";
  EXPECT_FALSE(*a->saveProgress(plain));
}

// Two handles that try to take the same free leases at the same moment: each job gets one holder.
TEST_P(ExportJobs, OfTwoHandlesTakingAFreeLeaseAtOnceExactlyOneWins) {
  ExportJobStorePtr a = handle();
  ExportJobStorePtr b = handle();
  ASSERT_TRUE(a && b);
  constexpr int kJobs = 40;
  for (int n = 0; n < kJobs; ++n) ASSERT_TRUE(a->create(queued("race" + std::to_string(n), n)).ok());
  std::vector<int> won_a(kJobs, 0);
  std::vector<int> won_b(kJobs, 0);
  auto race = [&](const ExportJobStorePtr& jobs, const std::string& holder, std::vector<int>& won) {
    for (int n = 0; n < kJobs; ++n) {
      auto taken = jobs->takeLease("race" + std::to_string(n), holder, 1000, 60000);
      EXPECT_TRUE(taken.ok()) << taken.message();
      won[n] = taken.ok() && *taken ? 1 : 0;
    }
  };
  std::thread first(race, std::cref(a), "A", std::ref(won_a));
  std::thread second(race, std::cref(b), "B", std::ref(won_b));
  first.join();
  second.join();
  for (int n = 0; n < kJobs; ++n) {
    EXPECT_EQ(won_a[n] + won_b[n], 1) << "race" << n;
    auto job = a->find("race" + std::to_string(n));
    ASSERT_TRUE(job.ok() && job->has_value());
    EXPECT_EQ((*job)->lease_holder, won_a[n] == 1 ? "A" : "B");
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, ExportJobs, ::testing::ValuesIn(kKinds),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

TEST_P(Export, ASystemExportHoldsEveryResourceOnceSplitAtMaxResourcesPerFile) {
  std::vector<std::string> batch;
  for (int n = 0; n < 11; ++n) batch.push_back(patient("p" + std::to_string(n)));
  for (int n = 0; n < 5; ++n) batch.push_back(observation("o" + std::to_string(n), "p" + std::to_string(n)));
  batch.push_back(organization("org1"));
  write("k1", batch);
  startService(options(4));
  Downloaded got = exportAll(kickOf("system"));
  EXPECT_EQ(got.lines["Patient"].size(), 11u);
  EXPECT_EQ(got.lines["Observation"].size(), 5u);
  EXPECT_EQ(got.lines["Organization"], (Ids{"Organization/org1"}));
  for (const auto& [type, ids] : got.lines) {
    for (const std::string& id : ids) EXPECT_EQ(ids.count(id), 1u) << id << " appears more than once";
    EXPECT_EQ(got.manifest_counts[type], static_cast<int64_t>(ids.size())) << type;
  }
  // 11 Patients at 4 per file: 4, 4, 3; 5 Observations: 4, 1; one Organization.
  EXPECT_EQ(got.files, 6);
  EXPECT_EQ(got.file_counts, (std::vector<int64_t>{4, 4, 3, 4, 1, 1}));
  EXPECT_EQ(got.errors, 0);
  auto manifest = json::parse(got.manifest);
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(json::getString(*manifest, "request").value_or(""), std::string(kBase) + "/fhir/$export");
  EXPECT_FALSE(json::find(*manifest, "requiresAccessToken")->GetBool()) << "auth is off";
  EXPECT_FALSE(json::getString(*manifest, "transactionTime").value_or("").empty());
}

TEST_P(Export, MaxResourcesPerSecondPacesTheReadsAndLosesNothing) {
  std::vector<std::string> batch;
  for (int n = 0; n < 12; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  ExportOptions opts = options();
  opts.max_resources_per_second = 20;  // pages of 3: one page every 150 ms
  startService(opts);
  const auto started = std::chrono::steady_clock::now();
  Downloaded got = exportAll(kickOf("system"));
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(got.lines["Patient"].size(), 12u);
  EXPECT_EQ(got.manifest_counts["Patient"], 12);
  // Four pages read at 0, 150, 300 and 450 ms at the earliest (a lower bound: the pace is a
  // limit, never a promise of speed).
  EXPECT_GE(elapsed_ms, 450);
}

TEST_P(Export, TypeSinceAndTypeFilterNarrowTheExport) {
  write("k1", {patient("p1"), observation("o1", "p1", "final"), observation("o2", "p1", "preliminary")});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a later lastUpdated (ms precision)
  const std::string since = nowIso();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write("k2", {patient("p2"), observation("o3", "p2", "final")});
  startService(options());
  Downloaded typed = exportAll(kickOf("system", {{"_type", "Observation"}}));
  EXPECT_EQ(typed.lines.size(), 1u);
  EXPECT_EQ(typed.lines["Observation"], (Ids{"Observation/o1", "Observation/o2", "Observation/o3"}));
  Downloaded recent = exportAll(kickOf("system", {{"_since", since}}));
  EXPECT_EQ(recent.lines["Patient"], (Ids{"Patient/p2"}));
  EXPECT_EQ(recent.lines["Observation"], (Ids{"Observation/o3"}));
  Downloaded filtered = exportAll(kickOf("system", {{"_type", "Observation"}, {"_typeFilter", "Observation?status=final"}}));
  EXPECT_EQ(filtered.lines["Observation"], (Ids{"Observation/o1", "Observation/o3"}));
  // Two filters of one type: either matches.
  Downloaded either = exportAll(kickOf("system", {{"_type", "Observation,Patient"},
                                                  {"_typeFilter", "Observation?status=preliminary"},
                                                  {"_typeFilter", "Observation?subject=Patient/p2"}}));
  EXPECT_EQ(either.lines["Observation"], (Ids{"Observation/o2", "Observation/o3"}));
  EXPECT_EQ(either.lines["Patient"], (Ids{"Patient/p1", "Patient/p2"}));
}

TEST_P(Export, KickOffErrorsAreOperationOutcomes) {
  startService(options());
  KickOff sync = kickOf("system");
  sync.respond_async = false;
  EXPECT_EQ(service_->kickOff(sync, {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_outputFormat", "text/csv"}}), {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_outputFormat", "application/fhir+ndjson"}}), {}, kBase).answer.status, 202);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_type", "Medication"}}), {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_since", "yesterday"}}), {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_typeFilter", "Observation?nonsense=1"}}), {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("system", {{"_elements", "id"}}), {}, kBase).answer.status, 400);
  EXPECT_EQ(service_->kickOff(kickOf("patient", {{"_type", "Organization"}}), {}, kBase).answer.status, 400)
      << "Organization is not in the Patient compartment";
  ExportAnswer no_group = service_->kickOff(kickOf("group", {}, "missing"), {}, kBase);
  EXPECT_EQ(no_group.answer.status, 404);
  EXPECT_NE(no_group.answer.body.find("OperationOutcome"), std::string::npos);
}

TEST_P(Export, PatientLevelExportsThePatientCompartment) {
  write("k1", {patient("p1"), observation("o1", "p1"), organization("org1"),
               R"({"resourceType":"Coverage","id":"c1","status":"active","beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/org1"}]})",
               R"({"resourceType":"Observation","id":"o-nobody","status":"final","code":{"text":"x"}})"});
  startService(options());
  Downloaded got = exportAll(kickOf("patient"));
  EXPECT_EQ(got.lines["Patient"], (Ids{"Patient/p1"}));
  EXPECT_EQ(got.lines["Observation"], (Ids{"Observation/o1"})) << "an Observation about nobody is in no compartment";
  EXPECT_EQ(got.lines["Coverage"], (Ids{"Coverage/c1"}));
  EXPECT_EQ(got.lines.count("Organization"), 0u);
}

TEST_P(Export, GroupLevelExportsItsMembersAndWithSinceNewMembersComeWhole) {
  write("k1", {patient("p1"), patient("p2"), patient("p3"), observation("o1", "p1"), observation("o2", "p2"),
               observation("o3", "p3"), organization("org1"), organization("org2"),
               R"({"resourceType":"Practitioner","id":"d1"})",
               R"({"resourceType":"Group","id":"g1","type":"person","actual":true,"managingEntity":{"reference":"Organization/org1"},"member":[{"entity":{"reference":"Patient/p1"}}]})"});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string since = nowIso();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // After `since`: p2 joins the Group (its old Observation comes too), p1's Observation changes.
  write("k2", {R"({"resourceType":"Group","id":"g1","type":"person","actual":true,"managingEntity":{"reference":"Organization/org1"},"member":[{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}},{"extension":[{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributedProvider","valueReference":{"reference":"Practitioner/d1"}}],"entity":{"reference":"Patient/p2"}}]})",
               observation("o1", "p1", "amended")});
  startService(options());
  Downloaded all = exportAll(kickOf("group", {}, "g1"));
  EXPECT_EQ(all.lines["Patient"], (Ids{"Patient/p1", "Patient/p2"}));
  EXPECT_EQ(all.lines["Observation"], (Ids{"Observation/o1", "Observation/o2"}));
  EXPECT_EQ(all.lines["Group"], (Ids{"Group/g1"}));
  EXPECT_EQ(all.lines["Organization"], (Ids{"Organization/org1"}));
  EXPECT_EQ(all.lines["Practitioner"], (Ids{"Practitioner/d1"}));
  Downloaded recent = exportAll(kickOf("group", {{"_since", since}}, "g1"));
  EXPECT_EQ(recent.lines["Patient"], (Ids{"Patient/p2"})) << "p2 is new; p1 did not change since";
  EXPECT_EQ(recent.lines["Observation"], (Ids{"Observation/o1", "Observation/o2"}));
  KickOff atr = kickOf("group", {}, "g1");
  atr.export_types = {"hl7.fhir.us.davinci-atr"};
  Downloaded alias = exportAll(atr);
  EXPECT_EQ(alias.lines["Patient"], (Ids{"Patient/p1", "Patient/p2"}));
  EXPECT_NE(alias.manifest.find("hl7.fhir.us.davinci-atr"), std::string::npos);
}

TEST_P(Export, AStoppedJobResumesAndItsFilesHoldEveryResourceOnce) {
  std::vector<std::string> batch;
  for (int n = 0; n < 40; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  ExportOptions opts = options(7);
  opts.checkpoint_pages = 2;          // progress saved after pages 2 and 4 ...
  opts.checkpoint_ms = 3600 * 1000;   // ... and never by time
  opts.holder = "this-gateway";       // the restarted service has the name of the first (as on SQLite)
  startService(opts);
  service_->stopAfterPages(5);  // 15 of 40 Patients written, then the worker stops as a killed one would
  ExportAnswer kicked = service_->kickOff(kickOf("system", {{"_type", "Patient"}}), {}, kBase);
  ASSERT_EQ(kicked.answer.status, 202);
  const std::string id = jobIdOf(kicked);
  for (int wait = 0; wait < 3000 && service_->pagesWritten() < 5; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(service_->pagesWritten(), 5);
  service_->stop();
  // What the "killed" worker left: the progress of its last checkpoint (page 4: 12 Patients) ...
  {
    auto jobs = GetParam().jobs(dir_.path().string());
    ASSERT_TRUE(jobs.ok()) << jobs.message();
    auto saved = (*jobs)->find(id);
    ASSERT_TRUE(saved.ok() && saved->has_value());
    EXPECT_EQ((*saved)->status, "running");
    EXPECT_EQ((*saved)->written, 12);
    EXPECT_EQ((*saved)->file_seq, 2);
    EXPECT_EQ((*saved)->file_count, 5);
    EXPECT_EQ((*saved)->outputs.size(), 1u) << "Patient-1.ndjson (7 Patients) is closed";
  }
  const fs::path job_dir = fs::path(opts.dir) / id;
  // ... and page 5 after it: p12 and p13 fill Patient-2 (5 + 2 lines), p14 begins Patient-3. The
  // resume must cut Patient-2 back to 5 lines and write Patient-3 anew.
  auto linesOf = [&](const std::string& name) {
    std::ifstream in(job_dir / name);
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  };
  EXPECT_EQ(linesOf("Patient-2.ndjson"), 7);
  EXPECT_EQ(linesOf("Patient-3.ndjson"), 1);
  // A crash in the middle of a write besides: torn bytes at the file's end.

  fs::path open_file;
  for (const auto& entry : fs::directory_iterator(job_dir)) {
    if (open_file.empty() || entry.path().filename().string() > open_file.filename().string()) open_file = entry.path();
  }
  ASSERT_FALSE(open_file.empty());
  {
    std::ofstream torn(open_file, std::ios::app | std::ios::binary);
    torn << R"({"resourceType":"Patient","id":"p15"})" << "\n" << R"({"resourceType":"Pat)";
  }
  startService(opts);  // a new process: resumes from the saved cursor
  ASSERT_TRUE(service_->waitIdle(60000));
  ExportAnswer status = service_->status(id, {}, kBase);
  ASSERT_EQ(status.answer.status, 200) << status.answer.body;
  auto manifest = json::parse(status.answer.body);
  ASSERT_TRUE(manifest.ok());
  Ids ids;
  int64_t total = 0;
  for (const json::Value& entry : json::find(*manifest, "output")->GetArray()) {
    const std::string url(json::getString(entry, "url").value_or(""));
    ExportAnswer file = service_->file(id, url.substr(url.rfind('/') + 1), {});
    ASSERT_EQ(file.answer.status, 200);
    std::istringstream lines(file.answer.body);
    std::string line;
    while (std::getline(lines, line)) {
      auto resource = json::parse(line);
      ASSERT_TRUE(resource.ok()) << "a torn line is left in " << url << ": " << line;
      ids.insert(std::string(json::getString(*resource, "id").value_or("")));
    }
    total += json::numberAsInt64(*json::find(entry, "count")).value_or(0);
  }
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(total, 40);
  for (int n = 0; n < 40; ++n) EXPECT_EQ(ids.count("p" + std::to_string(n)), 1u) << "p" << n;
}

// Issue 17: two services on one store and one folder are two gateway instances. Instance A's
// worker dies mid-job (stopAfterPages: nothing more is saved, its lease is not freed); instance B
// answers the job's status from the store at once, does not take the job while A's lease is live,
// takes it over once it expired, and finishes it from A's last checkpoint; both serve the result.
TEST_P(Export, AnotherInstanceTakesOverAJobOnlyOnceTheLeaseOfItsDeadHolderExpired) {
  std::vector<std::string> batch;
  for (int n = 0; n < 40; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  ExportOptions opts = options(7);
  opts.checkpoint_pages = 2;         // progress saved after pages 2 and 4 ...
  opts.checkpoint_ms = 3600 * 1000;  // ... and never by time (the lease is renewed all the same)
  opts.lease_ms = 1500;
  ExportOptions opts_a = opts;
  opts_a.holder = "instance-a";
  ExportOptions opts_b = opts;
  opts_b.holder = "instance-b";
  std::unique_ptr<ExportService> a = newService(opts_a);
  ASSERT_NE(a, nullptr);
  a->stopAfterPages(5);
  ExportAnswer kicked = a->kickOff(kickOf("system", {{"_type", "Patient"}}), {}, kBase);
  ASSERT_EQ(kicked.answer.status, 202);
  const std::string id = jobIdOf(kicked);
  for (int wait = 0; wait < 3000 && a->pagesWritten() < 5; ++wait) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(a->pagesWritten(), 5) << "A's worker has died after page 5";

  std::unique_ptr<ExportService> b = newService(opts_b);
  ASSERT_NE(b, nullptr);
  ExportAnswer polled = b->status(id, {}, kBase);
  EXPECT_EQ(polled.answer.status, 202) << "B knows A's job from the store";
  EXPECT_EQ(header(polled, "X-Progress"), "12 resources written, type 1 of 1") << "A's last checkpoint: page 4";
  auto jobs = GetParam().jobs(dir_.path().string());
  ASSERT_TRUE(jobs.ok()) << jobs.message();
  auto held = (*jobs)->find(id);
  ASSERT_TRUE(held.ok() && held->has_value());
  ASSERT_EQ((*held)->lease_holder, "instance-a");
  const int64_t expires = (*held)->lease_expires_ms;
  // While A's lease is live, B's workers (which look every second) leave the job alone.
  while (nowMs() < expires - 100) {
    auto now_held = (*jobs)->find(id);
    ASSERT_TRUE(now_held.ok() && now_held->has_value());
    ASSERT_EQ((*now_held)->lease_holder, "instance-a") << "B took a job whose lease was live";
    ASSERT_EQ((*now_held)->written, 12);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(b->waitIdle(60000)) << "B finishes the job once A's lease expired";
  auto finished = (*jobs)->find(id);
  ASSERT_TRUE(finished.ok() && finished->has_value());
  EXPECT_EQ((*finished)->status, "done");
  EXPECT_EQ((*finished)->lease_holder, "instance-b");
  EXPECT_EQ(a->pagesWritten(), 5) << "A wrote nothing after it died";

  for (ExportService* instance : {a.get(), b.get()}) {
    ExportAnswer status = instance->status(id, {}, kBase);
    ASSERT_EQ(status.answer.status, 200) << status.answer.body;
    auto manifest = json::parse(status.answer.body);
    ASSERT_TRUE(manifest.ok());
    Ids ids;
    int64_t total = 0;
    for (const json::Value& entry : json::find(*manifest, "output")->GetArray()) {
      const std::string url(json::getString(entry, "url").value_or(""));
      ExportAnswer file = instance->file(id, url.substr(url.rfind('/') + 1), {});
      ASSERT_EQ(file.answer.status, 200) << url;
      std::istringstream lines(file.answer.body);
      for (std::string line; std::getline(lines, line);) {
        auto resource = json::parse(line);
        ASSERT_TRUE(resource.ok()) << "a torn line in " << url << ": " << line;
        ids.insert(std::string(json::getString(*resource, "id").value_or("")));
      }
      total += json::numberAsInt64(*json::find(entry, "count")).value_or(0);
    }
    EXPECT_EQ(total, 40);
    EXPECT_EQ(ids.size(), 40u);
    for (int n = 0; n < 40; ++n) EXPECT_EQ(ids.count("p" + std::to_string(n)), 1u) << "p" << n;
  }
  a->stop();
  b->stop();
}

// A DELETE on instance B of a job instance A runs: B removes the row and the folder; A's worker
// finds its lease gone at its next renewal or checkpoint, stops and leaves nothing behind.
TEST_P(Export, ADeleteOnAnotherInstanceStopsTheWorkerThatRunsTheJob) {
  std::vector<std::string> batch;
  for (int n = 0; n < 60; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  ExportOptions opts = options(7);
  opts.max_resources_per_second = 15;  // pages of 3: one page every 200 ms, 4 s in all
  opts.checkpoint_ms = 300;
  opts.lease_ms = 900;
  ExportOptions opts_a = opts;
  opts_a.holder = "instance-a";
  ExportOptions opts_b = opts;
  opts_b.holder = "instance-b";
  std::unique_ptr<ExportService> a = newService(opts_a);
  std::unique_ptr<ExportService> b = newService(opts_b);
  ASSERT_TRUE(a && b);
  ExportAnswer kicked = a->kickOff(kickOf("system", {{"_type", "Patient"}}), {}, kBase);
  ASSERT_EQ(kicked.answer.status, 202);
  const std::string id = jobIdOf(kicked);
  for (int wait = 0; wait < 3000 && a->pagesWritten() + b->pagesWritten() < 2; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(a->pagesWritten() + b->pagesWritten(), 2) << "the job runs";
  ExportService& runner = a->pagesWritten() > 0 ? *a : *b;  // whichever worker took the lease
  ExportService& other = &runner == a.get() ? *b : *a;
  EXPECT_EQ(other.cancel(id, {}).answer.status, 202);
  EXPECT_EQ(runner.status(id, {}, kBase).answer.status, 404);
  EXPECT_TRUE(runner.waitIdle(5000)) << "the worker left the cancelled job";
  const int64_t pages = runner.pagesWritten();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(runner.pagesWritten(), pages) << "nothing is read for the job any more";
  EXPECT_FALSE(fs::exists(fs::path(opts.dir) / id)) << "its folder is gone";
  EXPECT_FALSE((*GetParam().jobs(dir_.path().string()))->find(id)->has_value());
  a->stop();
  b->stop();
}

TEST_P(Export, FilesAreSplitAtMaxFileBytesAndStillHoldEveryResourceOnce) {
  std::vector<std::string> batch;
  for (int n = 0; n < 12; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  ExportOptions opts = options();
  // A Patient line with its meta is about 120 bytes: two fit in 300, a third does not.
  opts.max_file_bytes = 300;
  startService(opts);
  Downloaded got = exportAll(kickOf("system", {{"_type", "Patient"}}));
  EXPECT_EQ(got.lines["Patient"].size(), 12u);
  for (const std::string& id : got.lines["Patient"]) EXPECT_EQ(got.lines["Patient"].count(id), 1u) << id;
  EXPECT_EQ(got.manifest_counts["Patient"], 12);
  EXPECT_EQ(got.files, 6);
  for (const auto& entry : fs::directory_iterator(fs::path(opts.dir))) {
    if (!entry.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(entry.path())) {
      EXPECT_LE(file.file_size(), 300u) << file.path();
      EXPECT_GT(file.file_size(), 200u) << file.path() << " holds two Patients";
    }
  }
}

TEST_P(Export, WithSinceTheManifestSaysNothingWasDeleted) {
  // The store never deletes a resource (updates keep it), so `deleted` is empty with `_since`
  // (Bulk Data IG: the server MAY return an empty array when none were deleted) and absent
  // without it.
  write("k1", {patient("p1")});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a later lastUpdated (ms precision)
  const std::string since = nowIso();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write("k2", {R"({"resourceType":"Patient","id":"p1","gender":"male"})", patient("p2")});  // p1 updated, p2 new
  startService(options());
  Downloaded recent = exportAll(kickOf("system", {{"_since", since}}));
  EXPECT_EQ(recent.lines["Patient"], (Ids{"Patient/p1", "Patient/p2"}));
  auto manifest = json::parse(recent.manifest);
  ASSERT_TRUE(manifest.ok());
  const json::Value* deleted = json::find(*manifest, "deleted");
  ASSERT_NE(deleted, nullptr) << recent.manifest;
  ASSERT_TRUE(deleted->IsArray());
  EXPECT_EQ(deleted->Size(), 0u);
  Downloaded all = exportAll(kickOf("system"));
  auto full = json::parse(all.manifest);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(json::find(*full, "deleted"), nullptr) << "no `_since`, no `deleted`";
}

TEST_P(Export, DeleteCancelsAndRemovesTheFiles) {
  write("k1", {patient("p1"), patient("p2")});
  ExportOptions opts = options();
  startService(opts);
  ExportAnswer kicked = service_->kickOff(kickOf("system"), {}, kBase);
  ASSERT_EQ(kicked.answer.status, 202);
  const std::string id = jobIdOf(kicked);
  ASSERT_TRUE(service_->waitIdle(60000));
  ASSERT_TRUE(fs::exists(fs::path(opts.dir) / id / "Patient-1.ndjson"));
  EXPECT_EQ(service_->cancel(id, {}).answer.status, 202);
  EXPECT_FALSE(fs::exists(fs::path(opts.dir) / id));
  EXPECT_EQ(service_->status(id, {}, kBase).answer.status, 404);
  EXPECT_EQ(service_->file(id, "Patient-1.ndjson", {}).answer.status, 404);
  EXPECT_EQ(service_->cancel(id, {}).answer.status, 404);
}

TEST_P(Export, PollingFasterThanRetryAfterIs429) {
  std::vector<std::string> batch;
  for (int n = 0; n < 30; ++n) batch.push_back(patient("p" + std::to_string(n)));
  write("k1", batch);
  startService(options());
  service_->stopAfterPages(1);  // the job stays running
  ExportAnswer kicked = service_->kickOff(kickOf("system"), {}, kBase);
  const std::string id = jobIdOf(kicked);
  ExportAnswer first = service_->status(id, {}, kBase);
  EXPECT_EQ(first.answer.status, 202);
  EXPECT_EQ(first.answer.retry_after, 1);
  EXPECT_FALSE(header(first, "X-Progress").empty());
  ExportAnswer again = service_->status(id, {}, kBase);
  EXPECT_EQ(again.answer.status, 429);
  EXPECT_EQ(again.answer.retry_after, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(service_->status(id, {}, kBase).answer.status, 202) << "after Retry-After the poll is answered";
}

TEST_P(Export, AFinishedJobExpiresAfterRetentionHours) {
  write("k1", {patient("p1")});
  ExportOptions opts = options();
  opts.retention_hours = 0.5 / 3600.0;  // half a second
  startService(opts);
  ExportAnswer kicked = service_->kickOff(kickOf("system"), {}, kBase);
  const std::string id = jobIdOf(kicked);
  ASSERT_TRUE(service_->waitIdle(60000));
  EXPECT_EQ(service_->status(id, {}, kBase).answer.status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(service_->status(id, {}, kBase).answer.status, 404);
  EXPECT_EQ(service_->file(id, "Patient-1.ndjson", {}).answer.status, 404);
  service_->sweepExpired();
  EXPECT_FALSE(fs::exists(fs::path(opts.dir) / id));
}

TEST_P(Export, APayerExportsOnlyWhatItSeesAndAnotherClientGets404) {
  // One patient covered by two payers (as in the search test): each payer's Coverage and Claims
  // are its own.
  write("patient", {patient("shared")}, "roster:payer-a");
  write("cov-a", {R"({"resourceType":"Coverage","id":"cov-a","status":"active","beneficiary":{"reference":"Patient/shared"},"payor":[{"reference":"Organization/a"}]})"},
        "roster:payer-a", {CoverageFact{"cov-a", "shared", "payer-a", "m-a", "medicaid", "2026-01-01", "", "payer", 0}});
  write("cov-b", {R"({"resourceType":"Coverage","id":"cov-b","status":"active","beneficiary":{"reference":"Patient/shared"},"payor":[{"reference":"Organization/b"}]})"},
        "roster:payer-b", {CoverageFact{"cov-b", "shared", "payer-b", "m-b", "medicaid", "2026-01-01", "", "payer", 0}});
  write("claim-a", {R"({"resourceType":"Claim","id":"a1","status":"active","use":"claim","patient":{"reference":"Patient/shared"}})"}, "claims:payer-a");
  write("claim-b", {R"({"resourceType":"Claim","id":"b1","status":"active","use":"claim","patient":{"reference":"Patient/shared"}})"}, "claims:payer-b");
  auth::AuthConfig config;
  auth::AuthClient payer_a;
  payer_a.id = "a";
  payer_a.kind = auth::ClientKind::kPayer;
  payer_a.payer_id = "payer-a";
  auth::AuthClient payer_b = payer_a;
  payer_b.id = "b";
  payer_b.payer_id = "payer-b";
  auth::AuthClient ehr;
  ehr.id = "ehr";
  ehr.kind = auth::ClientKind::kEhr;
  config.clients = {payer_a, payer_b, ehr};
  auth::AccessPolicy policy(&config, store_);
  auto callerOf = [&](const std::string& id) {
    const auth::AuthClient* client = config.findClient(id);
    return auth::Caller{client, auth::ScopeSet::allowedFor(client->kind), "127.0.0.1"};
  };
  startService(options(), &policy);
  Downloaded a = exportAll(kickOf("system", {{"_type", "Patient,Coverage,Claim"}}), callerOf("a"));
  EXPECT_EQ(a.lines["Patient"], (Ids{"Patient/shared"}));
  EXPECT_EQ(a.lines["Coverage"], (Ids{"Coverage/cov-a"}));
  EXPECT_EQ(a.lines["Claim"], (Ids{"Claim/a1"}));
  EXPECT_NE(a.manifest.find("\"requiresAccessToken\":true"), std::string::npos);
  Downloaded b = exportAll(kickOf("patient", {{"_type", "Claim,Coverage"}}), callerOf("b"));
  EXPECT_EQ(b.lines["Coverage"], (Ids{"Coverage/cov-b"}));
  EXPECT_EQ(b.lines["Claim"], (Ids{"Claim/b1"}));
  // Payer A's job and files do not exist for payer B.
  ExportAnswer kicked = service_->kickOff(kickOf("system", {{"_type", "Claim"}}), callerOf("a"), kBase);
  ASSERT_EQ(kicked.answer.status, 202);
  ASSERT_TRUE(service_->waitIdle(60000));
  const std::string id = jobIdOf(kicked);
  EXPECT_EQ(service_->status(id, callerOf("a"), kBase).answer.status, 200);
  EXPECT_EQ(service_->status(id, callerOf("b"), kBase).answer.status, 404);
  EXPECT_EQ(service_->file(id, "Claim-1.ndjson", callerOf("b")).answer.status, 404);
  EXPECT_EQ(service_->file(id, "Claim-1.ndjson", callerOf("a")).answer.status, 200);
  EXPECT_EQ(service_->cancel(id, callerOf("b")).answer.status, 404);
  EXPECT_EQ(service_->status(id, callerOf("a"), kBase).answer.status, 200) << "B's DELETE changed nothing";
  // An EHR client may not export.
  EXPECT_EQ(service_->kickOff(kickOf("system"), callerOf("ehr"), kBase).answer.status, 403);
}

INSTANTIATE_TEST_SUITE_P(Stores, Export, ::testing::ValuesIn(kKinds),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

}  // namespace
}  // namespace fhir::gateway::exports

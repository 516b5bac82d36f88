// SPDX-License-Identifier: Apache-2.0
// Measures over a large store (issue 20 Acceptance, docs/BENCHMARKS.md "Measures"): a direct
// loader that writes, through the store API (commitIngestMany, not HTTP), N attributed members
// with about ten resources each, made from the alignment guide's valid examples
// (fhir_profiles/alignment/examples/valid: a Patient with race and ethnicity, its Coverage, an
// e-consult ServiceRequest with its Task and answering Communication, an HRSN panel and a
// positive-domain Observation, a RiskAssessment, a CarePlan, a Claim, and for every third member
// a co-management EpisodeOfCare and a social referral), 12 attribution Groups (4 practices x
// 3 payers) and the 4 practices' Organizations; then it evaluates every bundled Measure for
// everyone attributed with measure::evaluateMany (one read of the store, patients on every core)
// and prints the time.
//
//   measure_bench --dir DIR [--members N] [--threads T] [--load-only | --query-only] [--subject REF]
//                 [--provenances] [--quality]
//
// N = 100,000 writes about 1.07M resources. The load is skipped with --query-only.
// --provenances: the load also writes the mapping Provenances ingest writes, five per member as
// if its resources came as five records (a roster row: Patient and Coverage; an e-consult
// request: ServiceRequest and Task; its response: Communication and Claim; an HRSN screening: the
// two Observations; a care plan: RiskAssessment and CarePlan; a third of the members' EpisodeOfCare
// and social referral are left without). --quality: instead of the measures, the data-quality
// report's two parts (scorecard::computeRecordQuality, computeFeedLags), timed.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "conformance/json/json.h"
#include "gateway/measure/measure.h"
#include "gateway/scorecard/quality.h"
#include "gateway/store/store.h"
#include "gateway_paths.h"

namespace {

using namespace fhir;
using namespace fhir::gateway;
using Clock = std::chrono::steady_clock;

const char* kPayers[] = {"lakeshore-medicaid", "northwind-commercial", "prairie-medicare"};
const char* kPractices[] = {"1093817413", "1093817421", "1093817439", "1093817447"};

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
}

struct Template {
  std::string type;
  std::string text;  // the example, compact
  int every = 1;     // for members i with i % every == 0
};

// The example with this member's ids and references: "okafor" becomes m<i>, the e-consult's id
// one of the member's, the payer one of three.
std::string instance(const Template& t, int i) {
  std::string text = t.text;
  const std::string member = "m" + std::to_string(i);
  replaceAll(text, "econsult-ec-2026-000451", "econsult-" + member);
  replaceAll(text, "okafor", member);
  replaceAll(text, "lakeshore-medicaid", kPayers[i % 3]);
  return text;
}

std::string idOf(const std::string& text) {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text, doc, error)) return "";
  return std::string(json::getString(doc, "id").value_or(""));
}

// The mapping Provenances of member `i`'s resources (--provenances), as the channels write them
// (the record's channel and position in entity.what, its source in agent.who).
std::vector<ResourceWrite> provenancesOf(int i, const std::vector<ResourceWrite>& resources) {
  struct Record {
    const char* name;
    std::string record;
    std::string agent;
    std::vector<const char*> types;
  };
  const std::string payer = kPayers[i % 3];
  const std::string ehr = R"({"identifier":{"system":"https://fhir.alignment-gateway.org/sid/source-system","value":"riverview-ehr"}})";
  const std::vector<Record> records = {
      {"roster", payer + ":POST /ingest/roster/" + payer + ":line " + std::to_string(i + 2),
       R"({"identifier":{"system":"https://fhir.alignment-gateway.org/sid/payer","value":")" + payer + R"("}})",
       {"Patient", "Coverage"}},
      {"request", "econsult:POST /ingest/econsult:request", ehr, {"ServiceRequest", "Task"}},
      {"response", "econsult:POST /ingest/econsult:response", ehr, {"Communication", "Claim"}},
      {"hrsn", "care-management:POST /ingest/care-management:hrsn-screening", ehr, {"Observation"}},
      {"plan", "care-management:POST /ingest/care-management:care-plan", ehr, {"RiskAssessment", "CarePlan"}}};
  std::vector<ResourceWrite> out;
  for (const Record& record : records) {
    std::string targets;
    for (const ResourceWrite& resource : resources) {
      if (std::find(record.types.begin(), record.types.end(), resource.type) == record.types.end()) continue;
      if (resource.type == "ServiceRequest" && resource.id.find("econsult") == std::string::npos) continue;
      targets += std::string(targets.empty() ? "" : ",") + R"({"reference":")" + resource.type + "/" + resource.id + R"("})";
    }
    const std::string id = "prov-m" + std::to_string(i) + "-" + record.name;
    out.push_back({"Provenance", id,
                   R"({"resourceType":"Provenance","id":")" + id +
                       R"(","meta":{"profile":["https://fhir.alignment-gateway.org/StructureDefinition/mapping-provenance"]},"target":[)" +
                       targets + R"(],"recorded":"2026-06-01T00:00:00Z","agent":[{"who":)" + record.agent +
                       R"(}],"entity":[{"role":"source","what":{"identifier":{"system":"https://fhir.alignment-gateway.org/sid/source-record","value":")" +
                       record.record + R"("}}}]})"});
  }
  return out;
}

long peakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, subject;
  int members = 1000;
  unsigned threads = 0;
  bool load = true, query = true, provenances = false, quality = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--dir") dir = next();
    else if (arg == "--members") members = std::atoi(next().c_str());
    else if (arg == "--threads") threads = static_cast<unsigned>(std::atoi(next().c_str()));
    else if (arg == "--subject") subject = next();
    else if (arg == "--load-only") query = false;
    else if (arg == "--query-only") load = false;
    else if (arg == "--provenances") provenances = true;
    else if (arg == "--quality") quality = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (dir.empty() || members <= 0) {
    std::fprintf(stderr, "usage: measure_bench --dir DIR [--members N] [--threads T] [--load-only|--query-only] [--subject REF] "
                 "[--provenances] [--quality]\n");
    return 2;
  }
  auto opened = openSqliteStore(dir);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.message().c_str());
    return 1;
  }
  StorePtr store = *opened;
  if (load) {
    const std::string examples = std::string(GATEWAY_PROFILES_DIR) + "/alignment/examples/valid/";
    std::vector<Template> templates;
    const std::vector<std::pair<const char*, int>> files = {
        {"Patient-okafor", 1}, {"Coverage-lakeshore-okafor", 1}, {"ServiceRequest-econsult", 1},
        {"Task-econsult", 1}, {"Communication-econsult-response", 1}, {"Observation-hrsn-panel", 1},
        {"Observation-hrsn-positive-food", 1}, {"RiskAssessment-high", 1}, {"CarePlan-ccm", 1},
        {"Claim-econsult-99451", 1}, {"EpisodeOfCare-comanagement", 3}, {"ServiceRequest-social-referral", 3}};
    for (const auto& [file, every] : files) {
      auto doc = json::parse(readText(examples + file + ".json"));
      if (!doc.ok()) {
        std::fprintf(stderr, "%s: %s\n", file, doc.message().c_str());
        return 1;
      }
      templates.push_back({std::string(json::getString(*doc, "resourceType").value_or("")), json::serialize(*doc), every});
    }
    const auto start = Clock::now();
    const int per_commit = 50;  // members per commitIngestMany call
    int64_t resources = 0;
    std::map<std::string, std::string> group_members;  // group id -> member entries
    for (int first = 0; first < members; first += per_commit) {
      std::vector<IngestCommit> commits;
      for (int i = first; i < std::min(members, first + per_commit); ++i) {
        IngestCommit commit;
        commit.channel = "bench";
        commit.idempotency_key = "measure-bench-" + std::to_string(i);
        commit.payload = "{}";
        commit.answer = "ok";
        for (const Template& t : templates) {
          if (i % t.every != 0) continue;
          std::string text = instance(t, i);
          commit.resources.push_back({t.type, idOf(text), std::move(text)});
        }
        if (provenances) {
          for (ResourceWrite& provenance : provenancesOf(i, commit.resources)) commit.resources.push_back(std::move(provenance));
        }
        resources += static_cast<int64_t>(commit.resources.size());
        commits.push_back(std::move(commit));
        const std::string group = "attr-" + std::to_string(i % 4) + "-" + kPayers[i % 3];
        std::string& list = group_members[group];
        if (!list.empty()) list += ',';
        list += R"({"entity":{"reference":"Patient/m)" + std::to_string(i) +
                R"("},"period":{"start":"2026-01-01","end":"2026-12-31"}})";
      }
      auto done = store->commitIngestMany(std::move(commits));
      if (!done.ok()) {
        std::fprintf(stderr, "load: %s\n", done.message().c_str());
        return 1;
      }
    }
    IngestCommit groups;
    groups.channel = "bench";
    groups.idempotency_key = "measure-bench-groups";
    groups.payload = "{}";
    groups.answer = "ok";
    for (const auto& [id, list] : group_members) {
      const std::string npi = kPractices[id[5] - '0'];
      groups.resources.push_back({"Group", id,
                                  R"({"resourceType":"Group","id":")" + id + R"(","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":")" +
                                      npi + R"("}],"active":true,"type":"person","actual":true,"member":[)" + list + "]}"});
      ++resources;
    }
    // The practices' Organizations (the scorecard pages list the practices by them).
    for (const char* npi : kPractices) {
      const std::string id = std::string("practice-") + npi;
      groups.resources.push_back({"Organization", id,
                                  R"({"resourceType":"Organization","id":")" + id + R"(","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":")" +
                                      npi + R"("}],"active":true,"name":"Practice )" + npi + R"("})"});
      ++resources;
    }
    if (auto done = store->commitIngest(std::move(groups)); !done.ok()) {
      std::fprintf(stderr, "load groups: %s\n", done.message().c_str());
      return 1;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("loaded %lld resources (%d members) in %.1f s: %.0f resources/s\n", static_cast<long long>(resources), members,
                seconds, static_cast<double>(resources) / seconds);
  }
  if (!query) return 0;
  if (quality) {
    auto elements = scorecard::DesignElements::bundled();
    if (!elements.ok()) {
      std::fprintf(stderr, "%s\n", elements.message().c_str());
      return 1;
    }
    const auto start = Clock::now();
    auto records = scorecard::computeRecordQuality(*store, "http://localhost/fhir", **elements);
    const double records_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!records.ok()) {
      std::fprintf(stderr, "quality: %s\n", records.message().c_str());
      return 1;
    }
    const auto feeds_start = Clock::now();
    auto feeds = scorecard::computeFeedLags(*store);
    const double feeds_seconds = std::chrono::duration<double>(Clock::now() - feeds_start).count();
    if (!feeds.ok()) {
      std::fprintf(stderr, "feeds: %s\n", feeds.message().c_str());
      return 1;
    }
    int64_t accepted = 0;
    for (const scorecard::QualityRow& row : records->sources) accepted += row.accepted;
    std::printf("quality records: %lld accepted records counted in %.2f s; feeds (%zu destinations) in %.3f s; peak RSS %ld MB\n",
                static_cast<long long>(accepted), records_seconds, feeds->size(), feeds_seconds, peakRssMb());
    return 0;
  }
  auto library = measure::MeasureLibrary::bundled();
  if (!library.ok()) {
    std::fprintf(stderr, "%s\n", library.message().c_str());
    return 1;
  }
  std::vector<const measure::CompiledMeasure*> measures;
  for (const std::string& id : (*library)->ids()) measures.push_back((*library)->find(id));
  measure::EvaluateParams params;
  params.period_start = "2026-01-01";
  params.period_end = "2026-12-31";
  params.subject = subject;
  params.now = "2026-12-31T00:00:00Z";
  const auto start = Clock::now();
  auto reports = measure::evaluateMany(measures, params, measure::storeSearch(*store, "http://localhost/fhir"), threads);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!reports.ok()) {
    std::fprintf(stderr, "evaluate: %s\n", reports.message().c_str());
    return 1;
  }
  // The attributed-members count, as a check that the run evaluated what was loaded.
  std::string members_count = "?";
  const std::vector<std::string> ids = (*library)->ids();
  for (size_t m = 0; m < measures.size(); ++m) {
    if (ids[m] != "attributed-members") continue;
    auto doc = json::parse((*reports)[m]);
    if (doc.ok()) {
      if (auto count = json::numberAsInt64((*doc)["group"][0]["population"][0]["count"])) members_count = std::to_string(*count);
    }
  }
  std::printf("evaluated %zu measures for %s attributed members (subject %s) in %.2f s, peak RSS %ld MB\n", measures.size(),
              members_count.c_str(), subject.empty() ? "everyone" : subject.c_str(), seconds, peakRssMb());
  return 0;
}

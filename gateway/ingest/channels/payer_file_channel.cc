// SPDX-License-Identifier: Apache-2.0
// POST /ingest/claims/{payerId} and POST /ingest/roster/{payerId}: a payer file streamed record
// by record (the payer's `format` spec, or `roster`), staged, and published once the body has
// ended as declared.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "gateway/auth/audit.h"
#include "gateway/dispatch/router.h"
#include "gateway/ingest/channels/channels.h"
#include "gateway/ingest/event_facts.h"
#include "gateway/ingest/gateway_directory.h"
#include "gateway/ingest/ingest_service.h"
#include "conformance/common/time_util.h"
#include "gateway/subscriptions/matching.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

bool isIsoDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return text.substr(5, 2) >= "01" && text.substr(5, 2) <= "12" && text.substr(8, 2) >= "01" && text.substr(8, 2) <= "31";
}

// The media type each payer format arrives in (contracts/http-api.md).
std::string_view mediaTypeOfSpec(std::string_view spec) {
  if (spec == "northwind-commercial") return "application/x-ndjson";
  if (spec == "x12-837p") return "application/edi-x12";
  return "text/csv";
}

// Passes a body through unchanged and keeps its first line with its line ending: the CSV
// header that a record cut out of the file needs to be replayed alone.
class FirstLineRecorder : public std::streambuf {
 public:
  explicit FirstLineRecorder(std::istream& source) : source_(source) {}
  const std::string& firstLine() const { return first_line_; }

 protected:
  int_type underflow() override {
    source_.read(buffer_, sizeof buffer_);
    const auto got = static_cast<size_t>(source_.gcount());
    if (got == 0) return traits_type::eof();
    if (!line_done_) {
      const std::string_view chunk(buffer_, got);
      const size_t end = chunk.find('\n');
      line_done_ = end != std::string_view::npos;
      first_line_.append(chunk.substr(0, line_done_ ? end + 1 : got));
    }
    setg(buffer_, buffer_, buffer_ + got);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::istream& source_;
  char buffer_[1 << 14];
  std::string first_line_;
  bool line_done_ = false;
};

// A refused payer file: its first kRefusedPrefixBytes for quarantine (`truncated` when more
// followed). The rest is read and dropped, so the connection can carry the next request.
constexpr size_t kRefusedPrefixBytes = 1 << 20;

// Reads what is left of `body` and drops it; true when there was something.
bool discardRest(std::istream& body) {
  bool any = false;
  char sink[1 << 14];
  while (body.read(sink, sizeof sink), body.gcount() > 0) any = true;
  return any;
}

std::string refusedBodyPrefix(std::istream& body, bool& truncated) {
  std::string prefix(kRefusedPrefixBytes, '\0');
  body.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  prefix.resize(static_cast<size_t>(body.gcount()));
  truncated = discardRest(body);
  return prefix;
}

// A staged record whose merge with what is stored was invalid (validate last): quarantined at
// publication, so the answer moves it from `bundleIds` to `quarantineIds`.
struct RefusedRecord {
  std::string bundle_id;
  std::string quarantine_id;
};

class PayerFileChannel final : public Channel {
 public:
  PayerFileChannel(IngestService& service, std::string kind) : service_(service), kind_(std::move(kind)) {}

  // Channel
  Answer ingest(const IngestRequest& request) override {
    if (request.stream != nullptr) {
      return ingestFile(kind_, request.argument, *request.stream, request.content_type, request.body_ended, request.as_of);
    }
    std::istringstream input{std::string(request.body)};
    return ingestFile(kind_, request.argument, input, request.content_type, {}, request.as_of);
  }

 private:
  Answer ingestFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                    std::string_view content_type, const BodyEnded& body_ended, std::string_view as_of);
  // Commits the staged records of payer file `file` in batches.
  Status publishStaged(std::string_view kind, const std::string& payer_id, const std::string& channel, int64_t file,
                       std::string_view as_of, bool full_roster, std::vector<RefusedRecord>& refused);

  IngestService& service_;
  const std::string kind_;
};

Answer PayerFileChannel::ingestFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                                    std::string_view content_type, const BodyEnded& body_ended, std::string_view as_of) {
  const std::string channel = std::string(kind) + ":" + payer_id;
  auto refuse = [&](int status, const IssueList& issues) {
    bool truncated = false;
    const std::string prefix = refusedBodyPrefix(body, truncated);
    return service_.reject(channel, prefix, content_type, status, issues, truncated);
  };
  const PayerConfig* payer = service_.config().findPayer(payer_id);
  if (payer == nullptr) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-found", "payer '" + payer_id + "' is not configured", {}, {}});
    return refuse(404, issues);
  }
  // asOf: the date a roster describes (payer-formats.md); required in `full` mode.
  const bool full_roster = kind == "roster" && payer->roster_mode == "full";
  if (!as_of.empty() && !isIsoDate(as_of)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "value", "asOf '" + std::string(as_of) + "' is not a date (YYYY-MM-DD)", {}, {"asOf"}});
    return refuse(400, issues);
  }
  if (full_roster && as_of.empty()) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "required",
                     "payer '" + payer_id + "' sends full rosters (rosterMode full): asOf=YYYY-MM-DD is required", {}, {"asOf"}});
    return refuse(400, issues);
  }
  const std::string spec = kind == "roster" ? "roster" : payer->format;
  if (!service_.specs() || !service_.specs()->has(spec)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported", "no mapping spec '" + spec + "' is loaded", {}, {}});
    return refuse(422, issues);
  }
  if (mediaType(content_type) != mediaTypeOfSpec(spec)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) + "' is not accepted for format " + spec + ": send " +
                         std::string(mediaTypeOfSpec(spec)),
                     {}, {}});
    return refuse(415, issues);
  }

  GatewayDirectory directory(service_.config(), service_.store());
  mappers::engine::MapOptions options;
  options.payer_id = payer_id;
  options.directory = &directory;
  options.source_name = "POST /ingest/" + std::string(kind) + "/" + payer_id;
  options.base_url = service_.baseUrl();
  options.validator = service_.validator();
  options.max_record_bytes = static_cast<size_t>(service_.config().limits.max_record_bytes);
  // Accepted records are staged in batches as the body streams in and published only once the
  // body has ended as declared (publishStaged); the answer's id lists are kept as JSON text
  // (about 40 bytes per record).
  auto staged_file = service_.store().beginStagedFile(channel);
  if (!staged_file.ok()) {
    discardRest(body);
    return storeFailure(staged_file.message());
  }
  const int64_t file = *staged_file;
  std::vector<StagedRecord> staged;
  int64_t staged_count = 0;
  std::string bundle_ids;
  std::string quarantine_ids;
  std::string last_quarantine_id;
  std::string store_error;
  FirstLineRecorder recorder(body);
  std::istream input(&recorder);
  const bool keeps_header = mediaTypeOfSpec(spec) == "text/csv";
  auto stageBatch = [&]() {
    if (staged.empty() || !store_error.empty()) return staged.clear();
    Status written = service_.store().stageRecords(file, std::move(staged));
    staged.clear();
    if (!written.ok()) store_error = written.message();
  };
  auto appendId = [](std::string& list, std::string_view id) {
    if (!list.empty()) list.push_back(',');
    list.push_back('"');
    list.append(id);
    list.push_back('"');
  };
  auto summary = service_.specs()->mapSource(
      spec, input, options,
      [&](mappers::engine::MappedBundle& mapped) {
        if (store_error.empty()) {
          if (auto failure = directory.failure()) store_error = *failure;  // mapped without what the store holds
        }
        if (!store_error.empty()) return;  // the answer is a 503; the rest of the body is only read
        auto bundle_id = json::getString(mapped.bundle, "id");
        appendId(bundle_ids, bundle_id ? *bundle_id : std::string_view(mapped.record_id));
        staged.push_back(StagedRecord{++staged_count, mapped.record_id, json::serialize(mapped.bundle)});
        if (staged.size() >= kPayerFileBatch) stageBatch();
      },
      [&](mappers::engine::Rejection& rejected) {
        if (store_error.empty()) {
          if (auto failure = directory.failure()) store_error = *failure;  // not the record's fault
        }
        if (!store_error.empty()) return;
        service_.metrics().countIngest(channel, "rejected");
        // A record keeps what a replay needs to read it alone (the CSV header; an X12 claim's
        // envelope and transaction header, from the reader); a fatal rejection keeps what the
        // reader had of the body (the body itself is a stream, never held). A rejected record
        // is quarantined even when the body later ends early: it was received whole.
        QuarantineWrite write{channel, std::string(content_type), rejected.raw, !rejected.raw_sha256.empty(),
                              toOperationOutcomeJson(rejected.issues), !rejected.fatal,
                              keeps_header ? recorder.firstLine() : std::move(rejected.replay_prefix),
                              std::move(rejected.replay_suffix), std::move(rejected.raw_sha256)};
        auto id = service_.keep(std::move(write));
        if (!id.ok()) {
          store_error = id.message();
          return;
        }
        appendId(quarantine_ids, *id);
        last_quarantine_id = *id;
      });
  // A stream that ended fatally (bad header, broken ISA) was not read to its end.
  discardRest(input);
  stageBatch();
  std::optional<BodyProblem> problem = body_ended ? body_ended() : std::nullopt;
  if (!summary.ok() || !store_error.empty() || problem || (summary.ok() && summary->fatal && summary->accepted == 0)) {
    service_.dropStaged(file);
  }
  if (!summary.ok()) return storeFailure(summary.message());
  if (!store_error.empty()) return storeFailure(store_error);
  if (problem) {
    IssueList issues;
    issues.add(Issue{Severity::kError, problem->status == 408 ? "timeout" : "incomplete",
                     problem->text + "; nothing of this file was published (" + std::to_string(staged_count) +
                         " mapped records dropped)",
                     {}, {}});
    return Answer{problem->status, "application/fhir+json", toOperationOutcomeJson(issues)};
  }
  if (summary->fatal && summary->accepted == 0) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "nothing in the body could be read; see the quarantined record", {}, {}});
    return Answer{400, "application/fhir+json",
                  toOperationOutcomeJson(issues, last_quarantine_id.empty() ? std::optional<std::string_view>()
                                                                            : std::string_view(last_quarantine_id))};
  }
  std::vector<RefusedRecord> refused;
  Status published = publishStaged(kind, payer_id, channel, file, as_of, full_roster, refused);
  service_.dropStaged(file);
  if (!published.ok()) return storeFailure(published.message());
  for (const RefusedRecord& record : refused) {
    const std::string quoted = "\"" + record.bundle_id + "\"";
    if (size_t at = bundle_ids.find(quoted); at != std::string::npos) {
      const bool last = at + quoted.size() == bundle_ids.size();
      bundle_ids.erase(at > 0 && last ? at - 1 : at, quoted.size() + (at > 0 || !last ? 1 : 0));
    }
    appendId(quarantine_ids, record.quarantine_id);
  }
  const size_t accepted = summary->accepted - std::min(summary->accepted, refused.size());
  std::string out = "{\"records\":" + std::to_string(summary->records) + ",\"accepted\":" + std::to_string(accepted) +
                    ",\"rejected\":" + std::to_string(summary->rejected + refused.size()) + ",\"bundleIds\":[";
  out += bundle_ids;
  out += "],\"quarantineIds\":[";
  out += quarantine_ids;
  out += "]}";
  return Answer{200, "application/json", out};
}

Status PayerFileChannel::publishStaged(std::string_view kind, const std::string& payer_id, const std::string& channel,
                                       int64_t file, std::string_view as_of, bool full_roster,
                                       std::vector<RefusedRecord>& refused) {
  std::vector<Subscription> live = service_.liveSubscriptions();
  auth::PendingAudit* pending = auth::PendingAudit::current();
  bool audit_taken = false;     // the file's AuditEvent went into a commit
  bool audit_in_batch = false;  // ... into the first commit of the batch being written
  std::set<std::string> touched_patients;
  // Roster: the Groups the file contributes to, and per Group the members it lists (one Group
  // version per file, written after the rows; a full roster ends the members it does not list).
  std::map<std::string, std::set<std::string>> groups;
  std::string row_keys;
  int64_t after = 0;
  for (;;) {
    auto records = service_.store().stagedRecords(file, after, kPayerFileBatch);
    if (!records.ok()) return records.error();
    if (records->empty()) break;
    std::vector<IngestCommit> batch;
    std::vector<json::Document> bundles;
    std::vector<std::string> record_ids;
    for (StagedRecord& record : *records) {
      after = record.seq;
      json::Document bundle;
      json::ParseError parse_error;
      if (!json::parse(record.bundle_json, bundle, parse_error)) return Error{"a staged Bundle is unreadable: " + parse_error.describe()};
      IngestCommit commit;
      commit.channel = channel;
      const std::string bundle_json = std::move(record.bundle_json);
      // A record sent again unchanged is the same event; a changed one is a new version. The
      // record's bytes decide (the Provenance's source digest), not the Bundle, whose
      // Provenance.recorded differs on every post.
      commit.idempotency_key = channel + '\x1f' + record.record_id + '\x1f' + sourceDigestOf(bundle, bundle_json);
      if (!as_of.empty()) commit.idempotency_key += '\x1f' + std::string(as_of);
      row_keys += commit.idempotency_key + '\n';
      commit.payload = bundle_json;
      commit.answer = bundle_json;
      commit.status = 200;
      EventFacts facts;
      facts.payers.insert(payer_id);
      for (const json::Value& entry : bundle["entry"].GetArray()) {
        const json::Value& resource = entry["resource"];
        const std::string type(json::getString(resource, "resourceType").value_or(""));
        const std::string id(json::getString(resource, "id").value_or(""));
        if (type == "Patient") facts.patient = "Patient/" + id;
        commit.resources.push_back(ResourceWrite{type, id, json::serialize(resource)});
      }
      // Patient, Coverage and Group are this payer's contributions, merged in the store with
      // what other sources said (issue 11); the patient is matched to known ones there (by
      // member id, or by the roster demographics key). A claim file adds evidence of coverage
      // on its dates of service.
      takeContributions(service_.mergeRules(), bundle,
                        ContributionSource{std::string(kind), payer_id, payer_id, std::string(as_of), record.record_id},
                        commit);
      commit.defer_groups = kind == "roster";
      if (kind != "roster") commit.coverage = claimEvidence(bundle, payer_id);
      // The request's AuditEvent commits with the file's first record (access.md "Audit": with
      // the data); the router audits a different final answer once more.
      if (pending != nullptr && batch.empty() && !audit_taken) {
        if (auto audit = pending->take(200, {"/ingest/" + std::string(kind) + "/" + payer_id}, nowMs())) {
          commit.audit.push_back(std::move(*audit));
          audit_taken = true;
          audit_in_batch = true;
        }
      }
      if (service_.topics() && !live.empty()) commit.change_context = encodeChangeContext(ChangeContext{facts, {}, false});
      batch.push_back(std::move(commit));
      bundles.push_back(std::move(bundle));
      record_ids.push_back(std::move(record.record_id));
    }
    // Validate last: each row's merge with what is stored is validated before it is committed;
    // the feeds get the row's Bundle with the merged resources. A row whose merge is invalid is
    // quarantined (its mapped Bundle and the OperationOutcome naming the element) and the file
    // goes on.
    std::vector<IssueList> invalid;
    auto committed = service_.commitValidated(
        batch,
        [&](size_t i, IngestCommit& commit) -> Status {
          // Each feed gets it as its hie client may see it (feedRows).
          auto feeds = service_.feedRows(json::serialize(withMergedResources(bundles[i], commit.merge_expected)), commit);
          if (!feeds.ok()) return Status(feeds.error());
          for (OutboxWrite& row : *feeds) commit.outbox.push_back(std::move(row));
          return Status::Ok();
        },
        invalid);
    if (!committed.ok()) return committed.error();
    if (audit_in_batch && !committed->empty() && committed->front() && committed->front()->audited) pending->written();
    audit_in_batch = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!invalid[i].hasErrors()) {
        service_.metrics().countIngest(channel, "accepted");
        for (const merge::Contribution& contribution : batch[i].contributions) {
          if (!contribution.patient_id.empty()) touched_patients.insert(contribution.patient_id);
          if (contribution.type == "Group") groups[contribution.id].insert("Patient/" + contribution.patient_id);
        }
        continue;
      }
      service_.metrics().countIngest(channel, "rejected");
      QuarantineWrite write{channel, "application/fhir+json", batch[i].payload, false, toOperationOutcomeJson(invalid[i]), true};
      auto id = service_.keep(std::move(write));
      if (!id.ok()) return id.error();
      refused.push_back(RefusedRecord{std::string(json::getString(bundles[i], "id").value_or(record_ids[i])), *id});
    }
    // A failure here answers the file 503: posted again, its rows are duplicates and their
    // patients' waiting claims are routed then.
    Status routed = service_.routeWaitingClaims(touched_patients, true);
    if (!routed.ok()) return routed;
    touched_patients.clear();
    service_.notifyOutbox();
  }
  if (!groups.empty()) {
    std::vector<IssueList> invalid;
    auto merged = service_.commitValidated({rosterGroupCommit(channel, payer_id, as_of, full_roster, groups, row_keys)},
                                           [](size_t, IngestCommit&) { return Status::Ok(); }, invalid);
    if (!merged.ok()) return merged.error();
    if (invalid[0].hasErrors()) {  // no row's fault: the Groups keep their last valid version
      service_.metrics().countIngest(channel, "group_invalid");
      std::fprintf(stderr, "ingest: the merged attribution Groups of %s are invalid and were not stored: %s\n",
                   channel.c_str(), toOperationOutcomeJson(invalid[0]).c_str());
    }
  }
  return Status::Ok();
}

}  // namespace

ChannelPtr makePayerFileChannel(IngestService& service, std::string kind) {
  return std::make_unique<PayerFileChannel>(service, std::move(kind));
}

}  // namespace fhir::gateway

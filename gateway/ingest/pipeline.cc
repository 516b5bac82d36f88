// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/pipeline.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "gateway/dispatch/patient_match.h"
#include "gateway/dispatch/router.h"
#include "mappers/common/ids.h"
#include "mappers/econsult/econsult_mapper.h"

namespace fhir::gateway {
namespace {

// Payers from the configuration, coverage from the store.
class GatewayDirectory final : public mappers::Directory {
 public:
  GatewayDirectory(const Config& config, Store& store) : config_(config), store_(store) {}

  // mappers::Directory
  std::optional<mappers::PayerInfo> payer(std::string_view payer_id) const override {
    const PayerConfig* payer = config_.findPayer(payer_id);
    if (payer == nullptr) return std::nullopt;
    return mappers::PayerInfo{payer->id, payer->name, payer->identifier_system, payer->identifier_value};
  }
  std::vector<mappers::CoverageFact> coverageOf(std::string_view patient_id) const override {
    auto facts = store_.coverageOf(patient_id);
    return facts.ok() ? std::move(*facts) : std::vector<mappers::CoverageFact>{};
  }

 private:
  const Config& config_;
  Store& store_;
};

Answer outcomeAnswer(int status, const IssueList& issues) {
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

Answer storeFailure(const std::string& message) {
  IssueList issues;
  issues.add(Issue{Severity::kFatal, "exception", "the store failed: " + message, {}, {}});
  return outcomeAnswer(503, issues);
}

std::string_view mediaType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return media;
}

bool isJsonContentType(std::string_view content_type) {
  std::string_view media = mediaType(content_type);
  return media == "application/json" || media == "application/fhir+json";
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

// A stored resource as mapped: without the meta the store adds.
void dropStoredMeta(json::Document& resource) {
  if (json::Value* meta = json::find(resource, "meta")) {
    meta->RemoveMember("versionId");
    meta->RemoveMember("lastUpdated");
  }
}

// While a quarantined payload is replayed on this thread, the channel's rejections of it are
// recorded against its quarantine entry instead of quarantining it a second time.
struct ReplayCapture {
  std::string quarantine_id;
  bool record = false;    // the entry is one record of a file: its rejections are the entry's
  bool rejected = false;  // the channel rejected it again
};
thread_local ReplayCapture* t_replay = nullptr;

// A channel a quarantined payload can be replayed through. `argument` is what follows ':' in
// the quarantine row's channel (the payer id of "claims:<payer>").
using ReplayChannel = Answer (*)(Pipeline& pipeline, const std::string& argument, std::string_view payload,
                                 std::string_view content_type);

// Replay dispatch by channel name: a new ingest channel is one line here.
const std::map<std::string, ReplayChannel, std::less<>>& replayChannels() {
  static const std::map<std::string, ReplayChannel, std::less<>> kChannels = {
      {"econsult", [](Pipeline& p, const std::string&, std::string_view body, std::string_view type) {
         return p.ingestEconsult(body, type);
       }},
      {"care-management", [](Pipeline& p, const std::string&, std::string_view body, std::string_view type) {
         return p.ingestCareManagement(body, type);
       }},
      {"claims", [](Pipeline& p, const std::string& payer, std::string_view body, std::string_view type) {
         return p.ingestPayerFile("claims", payer, body, type);
       }},
      {"roster", [](Pipeline& p, const std::string& payer, std::string_view body, std::string_view type) {
         return p.ingestPayerFile("roster", payer, body, type);
       }},
  };
  return kChannels;
}

ReplayOutcome notReplayable(int status, const std::string& code, const std::string& why, const std::string& result) {
  IssueList issues;
  issues.add(Issue{Severity::kError, code, why, {}, {}});
  return ReplayOutcome{outcomeAnswer(status, issues), result};
}

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

// The source-record digest the engine puts in a mapped Bundle's Provenance (its last entry);
// the hash of `bundle_json` when there is none.
std::string sourceDigestOf(const json::Value& bundle, const std::string& bundle_json) {
  const json::Value& entries = bundle["entry"];
  if (!entries.Empty()) {
    const json::Value& provenance = entries[entries.Size() - 1]["resource"];
    const json::Value* entities = json::find(provenance, "entity");
    const json::Value* extensions = entities && entities->IsArray() && !entities->Empty() ? json::find((*entities)[0], "extension") : nullptr;
    if (extensions && extensions->IsArray()) {
      for (const json::Value& extension : extensions->GetArray()) {
        if (json::getString(extension, "url").value_or("").ends_with("/source-record-digest")) {
          if (auto digest = json::getString(extension, "valueString")) return std::string(*digest);
        }
      }
    }
  }
  return mappers::sha256Hex(bundle_json);
}

// Coverage resources of a mapped Bundle as routing facts.
std::vector<mappers::CoverageFact> coverageFacts(const json::Value& bundle, const std::string& payer_id) {
  std::vector<mappers::CoverageFact> facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Coverage") continue;
    mappers::CoverageFact fact;
    fact.coverage_id = std::string(json::getString(resource, "id").value_or(""));
    fact.payer_id = payer_id;
    fact.member_id = std::string(json::getString(resource, "subscriberId").value_or(""));
    if (const json::Value* beneficiary = json::find(resource, "beneficiary")) {
      std::string_view reference = json::getString(*beneficiary, "reference").value_or("");
      if (reference.rfind("Patient/", 0) == 0) fact.patient_id = std::string(reference.substr(8));
    }
    if (const json::Value* period = json::find(resource, "period")) {
      fact.start = std::string(json::getString(*period, "start").value_or(""));
      fact.end = std::string(json::getString(*period, "end").value_or(""));
    }
    if (const json::Value* type = json::find(resource, "type"); type && json::find(*type, "coding")) {
      const json::Value& codings = (*type)["coding"];
      if (codings.IsArray() && !codings.Empty()) fact.line_of_business = std::string(json::getString(codings[0], "code").value_or(""));
    }
    if (!fact.coverage_id.empty() && !fact.patient_id.empty()) facts.push_back(std::move(fact));
  }
  return facts;
}

// Queues one notification per live subscription whose topic fires for a changed resource and
// whose filters match. `claim_facts` holds, per routed Claim id, the facts of that claim
// (its payer and code); a Claim that was not routed announces nothing.
ChangeHook subscriptionHook(TopicCatalogPtr topics, std::vector<Subscription> subscriptions, EventFacts facts,
                            std::map<std::string, EventFacts> claim_facts, bool claims_need_route = true) {
  return [topics = std::move(topics), subscriptions = std::move(subscriptions), facts = std::move(facts),
          claim_facts = std::move(claim_facts), claims_need_route](const std::vector<ResourceChangeRecord>& changes,
                                                std::vector<OutboxWrite>& outbox) {
    std::vector<json::Document> currents(changes.size());
    std::vector<json::Document> previous(changes.size());
    std::vector<ResourceChange> parsed;
    for (size_t i = 0; i < changes.size(); ++i) {
      json::ParseError error;
      if (!json::parse(*changes[i].current_json, currents[i], error)) continue;
      ResourceChange change{changes[i].type, changes[i].id, nullptr, &currents[i]};
      if (!changes[i].previous_json.empty() && json::parse(changes[i].previous_json, previous[i], error)) {
        change.previous = &previous[i];
      }
      parsed.push_back(change);
    }
    for (const Subscription& subscription : subscriptions) {
      if (subscription.status != "active" && subscription.status != "error") continue;
      const Topic* topic = topics->find(subscription.topic);
      if (topic == nullptr) continue;
      for (const ResourceChange& change : parsed) {
        const EventFacts* focus_facts = &facts;
        if (change.type == "Claim" && claims_need_route) {
          auto found = claim_facts.find(change.id);
          if (found == claim_facts.end()) continue;
          focus_facts = &found->second;
        }
        if (!topics->fires(*topic, change) || !filtersMatch(subscription, *focus_facts)) continue;
        outbox.push_back(OutboxWrite{"subscription:" + subscription.id, "notification",
                                     notificationRecord(subscription.topic, change.type + "/" + change.id, {change.current})});
        break;  // one notification per subscription and event
      }
    }
  };
}

// ---- care-management (POST /ingest/care-management) ------------------------------------------

// The event's own Coverage resources as routing facts; the payer is the suffix of the member-id
// identifier system (`.../CodeSystem/member-id/{payerId}`, as the specs write it).
std::vector<mappers::CoverageFact> eventCoverage(const json::Value& bundle) {
  static constexpr std::string_view kMemberId = "https://fhir.alignment-gateway.org/CodeSystem/member-id/";
  std::vector<mappers::CoverageFact> facts = coverageFacts(bundle, "");
  for (mappers::CoverageFact& fact : facts) {
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      if (json::getString(resource, "resourceType") != "Coverage" || json::getString(resource, "id") != fact.coverage_id) continue;
      const json::Value* identifiers = json::find(resource, "identifier");
      if (!identifiers || !identifiers->IsArray() || identifiers->Empty()) continue;
      std::string_view system = json::getString((*identifiers)[0], "system").value_or("");
      if (system.rfind(kMemberId, 0) == 0) fact.payer_id = std::string(system.substr(kMemberId.size()));
    }
  }
  return facts;
}

// The billing Claims of a mapped Bundle as routing facts, each with the coverage valid on its
// date of service among `known`.
std::vector<mappers::BillingFact> billingFacts(const json::Value& bundle, const std::vector<mappers::CoverageFact>& known) {
  std::vector<mappers::BillingFact> out;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Claim") continue;
    const json::Value* items = json::find(resource, "item");
    if (!items || !items->IsArray() || items->Empty()) continue;
    const json::Value& item = (*items)[0];
    mappers::BillingFact fact;
    fact.claim_id = std::string(json::getString(resource, "id").value_or(""));
    fact.date_of_service = std::string(json::getString(item, "servicedDate").value_or(""));
    if (const json::Value* product = json::find(item, "productOrService"); product && json::find(*product, "coding")) {
      const json::Value& codings = (*product)["coding"];
      if (codings.IsArray() && !codings.Empty()) {
        fact.system = std::string(json::getString(codings[0], "system").value_or(""));
        fact.code = std::string(json::getString(codings[0], "code").value_or(""));
      }
    }
    if (const mappers::CoverageFact* chosen = mappers::selectCoverage(known, fact.date_of_service)) fact.coverage = *chosen;
    out.push_back(std::move(fact));
  }
  return out;
}

// Hands each billing Claim to its payer's outbox, or keeps it waiting as unroutable with the
// reason (the same rules as e-consult billing: routeClaim, payerBundle).
void dispatchBilling(const Config& config, Store& store, const std::string& base_url, const json::Value& bundle,
                     const std::vector<mappers::BillingFact>& billing, const std::string& patient_id,
                     const EventFacts& facts, IngestCommit& commit, std::map<std::string, EventFacts>& claim_facts) {
  for (const mappers::BillingFact& fact : billing) {
    RouteDecision decision = routeClaim(config, fact);
    if (decision.payer != nullptr) {
      EventFacts claim = facts;
      claim.payers = {decision.payer->id};
      claim.codes = {fact.system + "|" + fact.code};
      claim_facts.emplace(fact.claim_id, std::move(claim));
      commit.outbox.push_back(OutboxWrite{payerDestination(decision.payer->id), "claim",
                                          payerBundle(bundle, fact.claim_id, store, base_url)});
      continue;
    }
    IssueList reason;
    reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
    commit.unroutable.push_back(UnroutableWrite{fact.claim_id, patient_id, fact.date_of_service, fact.code, decision.reason,
                                                toOperationOutcomeJson(reason)});
  }
}

// A stored ACM Claim with the same id (patient, specialist, calendar month) that another event
// created: the second ACM of that month (contracts/econsult-event.md). Returns the issue.
std::optional<IssueList> secondAcm(Store& store, const json::Value& bundle, const json::Value& event) {
  static constexpr std::string_view kAcmSystem = "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing";
  auto identifierOf = [](const json::Value& claim) {
    const json::Value* identifiers = json::find(claim, "identifier");
    if (!identifiers || !identifiers->IsArray() || identifiers->Empty()) return std::string();
    return std::string(json::getString((*identifiers)[0], "system").value_or("")) + "|" +
           std::string(json::getString((*identifiers)[0], "value").value_or(""));
  };
  for (const mappers::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.system != kAcmSystem || fact.code != "ACM") continue;
    auto stored = store.readResource("Claim", fact.claim_id);
    if (!stored.ok() || !stored->has_value()) continue;
    json::Document previous;
    json::ParseError ignored;
    if (!json::parse((*stored)->json, previous, ignored)) continue;
    const json::Value* claim = nullptr;
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "id") == fact.claim_id) claim = &entry["resource"];
    }
    if (claim == nullptr || identifierOf(previous) == identifierOf(*claim)) continue;
    // The billing entry of this Claim: the ACM entry with its date of service.
    std::string location = "$.episode.billing";
    const json::Value* episode = json::find(event, "episode");
    const json::Value* entries = episode ? json::find(*episode, "billing") : nullptr;
    for (rapidjson::SizeType index = 0; entries && entries->IsArray() && index < entries->Size(); ++index) {
      const json::Value& item = (*entries)[index];
      if (json::getString(item, "code") == "ACM" && json::getString(item, "dateOfService") == fact.date_of_service) {
        location += "[" + std::to_string(index) + "]";
        break;
      }
    }
    IssueList issues;
    issues.atLocation(Severity::kError, "business-rule", location,
                      location + ": a second ACM for the same patient, specialist and calendar month (" +
                          fact.date_of_service.substr(0, 7) + "); the first came with event " +
                          identifierOf(previous).substr(identifierOf(previous).find('|') + 1));
    return issues;
  }
  return std::nullopt;
}

// The answer of an accepted event: the stored Bundle, with warnings as a last OperationOutcome entry.
std::string answerWithWarnings(const json::Value& bundle, const IssueList& warnings) {
  json::Document answer;
  answer.CopyFrom(bundle, answer.GetAllocator());
  json::Value entry(rapidjson::kObjectType);
  json::addMember(entry, "resource", toOperationOutcome(warnings, answer.GetAllocator()), answer.GetAllocator());
  answer["entry"].PushBack(entry, answer.GetAllocator());
  return json::serialize(answer);
}

bool hasAcmClaim(const json::Value& bundle) {
  for (const mappers::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.code == "ACM") return true;
  }
  return false;
}

// Subscription filter facts of a care-management event: patient, payers, practice, codes.
EventFacts careManagementFacts(const json::Value& bundle, const json::Value& event,
                               const std::vector<mappers::CoverageFact>& coverage) {
  EventFacts facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    std::string_view type = json::getString(resource, "resourceType").value_or("");
    if (type == "Patient") facts.patient = "Patient/" + std::string(json::getString(resource, "id").value_or(""));
    if (type != "Claim" && type != "Condition") continue;
    const json::Value* code = type == "Claim" ? nullptr : json::find(resource, "code");
    if (type == "Claim" && json::find(resource, "item") && !resource["item"].Empty()) code = json::find(resource["item"][0], "productOrService");
    if (!code || !json::find(*code, "coding") || !(*code)["coding"].IsArray() || (*code)["coding"].Empty()) continue;
    const json::Value& coding = (*code)["coding"][0];
    facts.codes.insert(std::string(json::getString(coding, "system").value_or("")) + "|" +
                       std::string(json::getString(coding, "code").value_or("")));
  }
  for (const mappers::CoverageFact& fact : coverage) facts.payers.insert(fact.payer_id);
  if (const json::Value* panel = json::find(event, "panel")) {
    if (auto practice = json::getString(*panel, "practiceNpi")) facts.practices.insert(std::string(*practice));
  }
  return facts;
}

}  // namespace

Pipeline::Pipeline(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
                   std::function<void()> on_outbox)
    : config_(config),
      store_(std::move(store)),
      validator_(std::move(validator)),
      metrics_(metrics),
      on_outbox_(std::move(on_outbox)) {}

Answer Pipeline::reject(std::string_view channel, std::string_view payload,
                        std::string_view content_type, int status, const IssueList& issues,
                        bool truncated) {
  metrics_.countIngest(std::string(channel), "rejected");
  QuarantineWrite write{std::string(channel), std::string(content_type), std::string(payload), truncated,
                        toOperationOutcomeJson(issues)};
  auto id = keep(std::move(write));
  if (!id.ok()) return storeFailure(id.message());
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues, *id)};
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::string_view body,
                                 std::string_view content_type) {
  std::istringstream input{std::string(body)};
  return ingestPayerFile(kind, payer_id, input, content_type);
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                                 std::string_view content_type) {
  const std::string channel = std::string(kind) + ":" + payer_id;
  auto refuse = [&](int status, const IssueList& issues) {
    bool truncated = false;
    const std::string prefix = refusedBodyPrefix(body, truncated);
    return reject(channel, prefix, content_type, status, issues, truncated);
  };
  const PayerConfig* payer = config_.findPayer(payer_id);
  if (payer == nullptr) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-found", "payer '" + payer_id + "' is not configured", {}, {}});
    return refuse(404, issues);
  }
  const std::string spec = kind == "roster" ? "roster" : payer->format;
  if (!specs_ || !specs_->has(spec)) {
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

  GatewayDirectory directory(config_, *store_);
  mappers::engine::MapOptions options;
  options.payer_id = payer_id;
  options.directory = &directory;
  options.source_name = "POST /ingest/" + std::string(kind) + "/" + payer_id;
  options.base_url = base_url_;
  options.validator = validator_.get();
  // Accepted records are committed in batches as the body streams in; the answer's id lists
  // are kept as JSON text (about 40 bytes per record).
  std::vector<IngestCommit> batch;
  std::string bundle_ids;
  std::string quarantine_ids;
  std::string last_quarantine_id;
  std::string store_error;
  std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
  std::set<std::string> touched_patients;
  FirstLineRecorder recorder(body);
  std::istream input(&recorder);
  const bool keeps_header = mediaTypeOfSpec(spec) == "text/csv";
  auto commitBatch = [&]() {
    if (batch.empty() || !store_error.empty()) return batch.clear();
    auto committed = store_->commitIngestMany(std::move(batch));
    batch.clear();
    if (!committed.ok()) {
      store_error = committed.message();
      return;
    }
    routeWaitingClaims(touched_patients);
    touched_patients.clear();
    if (on_outbox_) on_outbox_();
  };
  auto appendId = [](std::string& list, std::string_view id) {
    if (!list.empty()) list.push_back(',');
    list.push_back('"');
    list.append(id);
    list.push_back('"');
  };
  auto summary = specs_->mapSource(
      spec, input, options,
      [&](mappers::engine::MappedBundle& mapped) {
        metrics_.countIngest(channel, "accepted");
        if (!store_error.empty()) return;  // the answer is a 503; the rest of the body is only read
        // A roster row about a known patient is about that Patient (payer-formats.md).
        const std::vector<std::string> matched =
            kind == "roster" ? adoptKnownPatient(mapped.bundle, payer_id, *store_) : std::vector<std::string>{};
        IngestCommit commit;
        commit.channel = channel;
        const std::string bundle_json = json::serialize(mapped.bundle);
        // A record sent again unchanged is the same event; a changed one is a new version. The
        // record's bytes decide (the Provenance's source digest), not the Bundle, whose
        // Provenance.recorded differs on every post.
        commit.idempotency_key = channel + '\x1f' + mapped.record_id + '\x1f' + sourceDigestOf(mapped.bundle, bundle_json);
        commit.payload = bundle_json;
        commit.answer = bundle_json;
        commit.status = 200;
        EventFacts facts;
        facts.payers.insert(payer_id);
        for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
          const json::Value& resource = entry["resource"];
          const std::string type(json::getString(resource, "resourceType").value_or(""));
          const std::string id(json::getString(resource, "id").value_or(""));
          if (type == "Patient") facts.patient = "Patient/" + id;
          commit.resources.push_back(ResourceWrite{type, id, json::serialize(resource)});
        }
        if (!matched.empty()) facts.patient = "Patient/" + matched.front();
        commit.coverage = coverageFacts(mapped.bundle, payer_id);
        // A row matches patients already known by this payer's member id (payer-formats.md):
        // the coverage counts for them too, and their waiting claims are routed again below.
        const size_t own = commit.coverage.size();
        for (size_t i = 0; i < own; ++i) {
          auto known = store_->patientsWithMember(payer_id, commit.coverage[i].member_id);
          if (!known.ok()) continue;
          known->insert(known->end(), matched.begin(), matched.end());
          for (const std::string& patient : *known) {
            if (patient == commit.coverage[i].patient_id) continue;
            mappers::CoverageFact shared = commit.coverage[i];
            shared.patient_id = patient;
            commit.coverage.push_back(std::move(shared));
            touched_patients.insert(patient);
          }
        }
        for (size_t i = 0; i < own; ++i) touched_patients.insert(commit.coverage[i].patient_id);
        for (const FeedConfig& feed : config_.feeds) {
          commit.outbox.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
        }
        if (topics_ && !live.empty()) commit.on_changes = subscriptionHook(topics_, live, facts, {}, false);
        auto bundle_id = json::getString(mapped.bundle, "id");
        appendId(bundle_ids, bundle_id ? *bundle_id : std::string_view(mapped.record_id));
        batch.push_back(std::move(commit));
        if (batch.size() >= kPayerFileBatch) commitBatch();
      },
      [&](mappers::engine::Rejection& rejected) {
        metrics_.countIngest(channel, "rejected");
        // A record keeps what a replay needs to read it alone (the CSV header); a fatal rejection
        // keeps what the reader had of the body (the body itself is a stream, never held).
        QuarantineWrite write{channel, std::string(content_type), rejected.raw, false,
                              toOperationOutcomeJson(rejected.issues), !rejected.fatal,
                              keeps_header ? recorder.firstLine() : std::string()};
        auto id = keep(std::move(write));
        if (!id.ok()) {
          store_error = id.message();
          return;
        }
        appendId(quarantine_ids, *id);
        last_quarantine_id = *id;
      });
  // A stream that ended fatally (bad header, broken ISA) was not read to its end.
  discardRest(input);
  if (!summary.ok()) return storeFailure(summary.message());
  commitBatch();
  if (!store_error.empty()) return storeFailure(store_error);
  if (summary->fatal && summary->accepted == 0) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "nothing in the body could be read; see the quarantined record", {}, {}});
    return Answer{400, "application/fhir+json",
                  toOperationOutcomeJson(issues, last_quarantine_id.empty() ? std::optional<std::string_view>()
                                                                            : std::string_view(last_quarantine_id))};
  }
  std::string out = "{\"records\":" + std::to_string(summary->records) + ",\"accepted\":" + std::to_string(summary->accepted) +
                    ",\"rejected\":" + std::to_string(summary->rejected) + ",\"bundleIds\":[";
  out += bundle_ids;
  out += "],\"quarantineIds\":[";
  out += quarantine_ids;
  out += "]}";
  return Answer{200, "application/json", out};
}

Result<std::string> Pipeline::keep(QuarantineWrite write) {
  if (t_replay != nullptr && (!write.record || t_replay->record)) {
    t_replay->rejected = true;
    return t_replay->quarantine_id;
  }
  return store_->quarantine(std::move(write));
}

ReplayOutcome Pipeline::replayQuarantined(const std::string& quarantine_id) {
  auto entry = store_->readQuarantine(quarantine_id);
  if (!entry.ok()) return ReplayOutcome{storeFailure(entry.message()), "failed"};
  if (!entry->has_value()) return notReplayable(404, "not-found", "no quarantined payload " + quarantine_id, "not-found");
  const QuarantineEntry& kept = **entry;
  if (kept.truncated) {
    return notReplayable(422, "not-supported",
                         "only the first " + std::to_string(kept.payload.size()) +
                             " bytes of this oversized body were kept; it cannot be replayed (send it again)",
                         "not-replayable");
  }
  const size_t colon = kept.channel.find(':');
  const std::string name = kept.channel.substr(0, colon);
  const std::string argument = colon == std::string::npos ? std::string() : kept.channel.substr(colon + 1);
  auto channel = replayChannels().find(name);
  if (channel == replayChannels().end()) {
    return notReplayable(422, "not-supported", "payloads of channel '" + kept.channel + "' cannot be replayed",
                         "not-replayable");
  }
  if (kept.record && kept.replay_prefix.empty() && mediaType(kept.content_type) == "application/edi-x12") {
    return notReplayable(422, "not-supported",
                         "this claim was cut out of its X12 interchange and cannot be read alone; send the "
                         "interchange again",
                         "not-replayable");
  }
  ReplayCapture capture{quarantine_id, kept.record};
  t_replay = &capture;
  Answer answer = channel->second(*this, argument, kept.replay_prefix + kept.payload, kept.content_type);
  t_replay = nullptr;
  const bool accepted = answer.status < 300 && !capture.rejected;
  const std::string result = accepted ? "accepted" : answer.status >= 500 ? "failed" : "rejected";
  auto recorded = store_->recordReplay(quarantine_id, answer.status, answer.body, accepted);
  if (!recorded.ok()) return ReplayOutcome{storeFailure(recorded.message()), "failed"};
  return ReplayOutcome{std::move(answer), result};
}

std::optional<IngestCommit> Pipeline::rerouteCommit(const UnroutableWrite& waiting, const mappers::CoverageFact& coverage,
                                                    const PayerConfig& payer, const std::vector<Subscription>& live) {
  auto stored = store_->readResource("Claim", waiting.claim_id);
  if (!stored.ok() || !stored->has_value()) return std::nullopt;
  json::Document previous;
  json::ParseError parse_error;
  if (!json::parse((*stored)->json, previous, parse_error)) return std::nullopt;
  dropStoredMeta(previous);
  json::Document claim;
  claim.CopyFrom(previous, claim.GetAllocator());
  auto& allocator = claim.GetAllocator();
  json::Value* insurance = json::find(claim, "insurance");
  if (insurance == nullptr || !insurance->IsArray() || insurance->Empty()) return std::nullopt;
  json::Value reference(rapidjson::kObjectType);
  json::addString(reference, "reference", "Coverage/" + coverage.coverage_id, allocator);
  (*insurance)[0].RemoveMember("coverage");
  json::addMember((*insurance)[0], "coverage", std::move(reference), allocator);
  json::Value insurer(rapidjson::kObjectType);
  json::addString(insurer, "reference", "Organization/" + mappers::deriveId({"Organization", "payer", payer.id}), allocator);
  claim.RemoveMember("insurer");
  json::addMember(claim, "insurer", std::move(insurer), allocator);
  if (validator_) {
    IssueList validation;
    validator_->validate(claim, ValidationRequest{}, validation);
    if (validation.hasErrors()) return std::nullopt;  // keeps waiting, with its reason
  }

  IngestCommit commit;
  commit.channel = "reroute";
  commit.idempotency_key = "reroute\x1f" + waiting.claim_id;
  commit.routes_unroutable = waiting.claim_id;
  commit.status = 200;
  const std::string claim_json = json::serialize(claim);
  commit.payload = claim_json;
  commit.resources.push_back(ResourceWrite{"Claim", waiting.claim_id, claim_json});
  json::Document mapped;
  mapped.SetObject();
  json::Value entry(rapidjson::kObjectType);
  json::Value resource;
  resource.CopyFrom(claim, mapped.GetAllocator());
  json::addMember(entry, "resource", std::move(resource), mapped.GetAllocator());
  json::Value entries(rapidjson::kArrayType);
  entries.PushBack(entry, mapped.GetAllocator());
  json::addMember(mapped, "entry", std::move(entries), mapped.GetAllocator());
  commit.outbox.push_back(OutboxWrite{payerDestination(payer.id), "claim", payerBundle(mapped, waiting.claim_id, *store_, base_url_)});

  // billing-routed fires now, when the claim reaches a payer's outbox, even when the new
  // version equals the old one (the coverage kept its id and only its period grew).
  if (topics_ && !live.empty()) {
    EventFacts facts;
    facts.patient = "Patient/" + waiting.patient_id;
    facts.payers = {payer.id};
    const json::Value* item = json::find(claim, "item");
    if (item != nullptr && item->IsArray() && !item->Empty()) {
      const json::Value* product = json::find((*item)[0], "productOrService");
      const json::Value* codings = product ? json::find(*product, "coding") : nullptr;
      if (codings != nullptr && codings->IsArray() && !codings->Empty()) {
        facts.codes = {std::string(json::getString((*codings)[0], "system").value_or("")) + "|" + waiting.code};
      }
    }
    std::map<std::string, EventFacts> claim_facts{{waiting.claim_id, facts}};
    const std::string previous_json = json::serialize(previous);
    subscriptionHook(topics_, live, facts, std::move(claim_facts))(
        {ResourceChangeRecord{"Claim", waiting.claim_id, previous_json, &claim_json}}, commit.outbox);
  }
  return commit;
}

void Pipeline::routeWaitingClaims(const std::set<std::string>& patients) {
  const std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
  for (const std::string& patient : patients) {
    auto waiting = store_->unroutableOf(patient);
    if (!waiting.ok() || waiting->empty()) continue;
    auto coverage = store_->coverageOf(patient);
    if (!coverage.ok()) continue;
    for (const UnroutableWrite& claim : *waiting) {
      mappers::BillingFact billing;
      billing.claim_id = claim.claim_id;
      billing.code = claim.code;
      billing.date_of_service = claim.date_of_service;
      if (const mappers::CoverageFact* chosen = mappers::selectCoverage(*coverage, claim.date_of_service)) {
        billing.coverage = *chosen;
      }
      RouteDecision decision = routeClaim(config_, billing);
      if (decision.payer == nullptr) continue;
      auto commit = rerouteCommit(claim, *billing.coverage, *decision.payer, live);
      if (commit) (void)store_->commitIngest(std::move(*commit));
    }
  }
}

Answer Pipeline::ingestEconsult(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "econsult";
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json or application/fhir+json",
                     {}, {}});
    return reject(kChannel, body, content_type, 415, issues);
  }

  // Decode
  json::Document event;
  json::ParseError parse_error;
  if (!json::parse(body, event, parse_error)) {
    IssueList issues;
    std::string where = "line " + std::to_string(parse_error.line) + ", column " + std::to_string(parse_error.column);
    issues.add(Issue{Severity::kError, "structure", "the body is not well-formed JSON: " + parse_error.describe(), {}, {where}});
    return reject(kChannel, body, content_type, 400, issues);
  }

  // Idempotency: a re-posted event gets the first answer.
  std::string idempotency_key;
  if (auto source = json::getString(event, "source"), event_id = json::getString(event, "eventId"); source && event_id) {
    idempotency_key = std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = store_->findAnswer(idempotency_key);
    if (!answer.ok()) return storeFailure(answer.message());
    if (answer->has_value()) {
      metrics_.countIngest(std::string(kChannel), "duplicate");
      return Answer{(*answer)->status, "application/fhir+json", (*answer)->answer};
    }
  }

  // Map
  GatewayDirectory directory(config_, *store_);
  json::Document previous;
  mappers::EconsultContext context{directory, base_url_, nullptr};
  if (auto request_id = mappers::EconsultMapper::serviceRequestIdOf(event)) {
    auto stored = store_->readResource("ServiceRequest", *request_id);
    if (!stored.ok()) return storeFailure(stored.message());
    json::ParseError ignored;
    if (stored->has_value() && json::parse((*stored)->json, previous, ignored)) {
      if (json::Value* meta = json::find(previous, "meta")) {
        meta->RemoveMember("versionId");
        meta->RemoveMember("lastUpdated");
      }
      context.previous_service_request = &previous;
    }
  }
  mappers::MappedEvent mapped;
  IssueList issues;
  mappers::EconsultMapper mapper;
  if (!mapper.map(event, context, mapped, issues)) return reject(kChannel, body, content_type, 422, issues);

  // Validate
  if (validator_) {
    auto started = std::chrono::steady_clock::now();
    IssueList validation;
    validator_->validate(mapped.bundle, ValidationRequest{}, validation);
    metrics_.observeValidation(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (validation.hasErrors()) return reject(kChannel, body, content_type, 422, validation);
    // Warnings of the validator travel with the mapper's own.
    for (const Issue& issue : validation.issues()) {
      if (issue.severity == Severity::kWarning) issues.add(issue);
    }
  }

  // Answer: the stored Bundle, with warnings as a last OperationOutcome entry.
  IngestCommit commit;
  commit.channel = std::string(kChannel);
  commit.idempotency_key = idempotency_key;
  commit.payload = std::string(body);
  commit.status = 202;
  const std::string bundle_json = json::serialize(mapped.bundle);
  if (issues.empty()) {
    commit.answer = bundle_json;
  } else {
    json::Document answer;
    answer.CopyFrom(mapped.bundle, answer.GetAllocator());
    json::Value entry(rapidjson::kObjectType);
    json::addMember(entry, "resource", toOperationOutcome(issues, answer.GetAllocator()), answer.GetAllocator());
    answer["entry"].PushBack(entry, answer.GetAllocator());
    commit.answer = json::serialize(answer);
  }
  for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    commit.resources.push_back(ResourceWrite{std::string(*json::getString(resource, "resourceType")),
                                             std::string(*json::getString(resource, "id")),
                                             json::serialize(resource)});
  }
  commit.coverage = mapped.coverage;

  // Dispatch: every feed gets the accepted Bundle; each Claim goes to its payer or waits.
  for (const FeedConfig& feed : config_.feeds) {
    commit.outbox.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
  }
  EventFacts facts;
  facts.patient = "Patient/" + mapped.patient_id;
  for (const mappers::CoverageFact& coverage : mapped.coverage) facts.payers.insert(coverage.payer_id);
  facts.practices.insert(mapped.practice_npis.begin(), mapped.practice_npis.end());
  facts.codes.insert(mapped.codes.begin(), mapped.codes.end());
  std::map<std::string, EventFacts> claim_facts;
  for (const mappers::BillingFact& billing : mapped.billing) {
    RouteDecision decision = routeClaim(config_, billing);
    if (decision.payer != nullptr) {
      EventFacts claim = facts;
      claim.payers = {decision.payer->id};
      claim.codes = {billing.system + "|" + billing.code};
      claim_facts.emplace(billing.claim_id, std::move(claim));
      commit.outbox.push_back(OutboxWrite{payerDestination(decision.payer->id), "claim",
                                          payerBundle(mapped.bundle, billing.claim_id, *store_, base_url_)});
      continue;
    }
    IssueList reason;
    reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
    commit.unroutable.push_back(UnroutableWrite{billing.claim_id, mapped.patient_id, billing.date_of_service,
                                                billing.code, decision.reason, toOperationOutcomeJson(reason)});
  }
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  bool has_subscriptions = false;
  if (topics_ && registry_ != nullptr) {
    std::vector<Subscription> live = registry_->all();
    has_subscriptions = !live.empty();
    if (has_subscriptions) commit.on_changes = subscriptionHook(topics_, std::move(live), std::move(facts), std::move(claim_facts));
  }

  const bool has_outbox = !commit.outbox.empty() || has_subscriptions;
  auto outcome = store_->commitIngest(std::move(commit));
  if (!outcome.ok()) return storeFailure(outcome.message());
  metrics_.countIngest(std::string(kChannel), outcome->duplicate ? "duplicate" : "accepted");
  if (has_outbox && !outcome->duplicate && on_outbox_) on_outbox_();
  return Answer{outcome->status, "application/fhir+json", outcome->answer};
}

}  // namespace fhir::gateway

namespace fhir::gateway {

Answer Pipeline::ingestCareManagement(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "care-management";
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json or application/fhir+json",
                     {}, {}});
    return reject(kChannel, body, content_type, 415, issues);
  }
  json::Document event;
  json::ParseError parse_error;
  if (!json::parse(body, event, parse_error)) {
    IssueList issues;
    std::string where = "line " + std::to_string(parse_error.line) + ", column " + std::to_string(parse_error.column);
    issues.add(Issue{Severity::kError, "structure", "the body is not well-formed JSON: " + parse_error.describe(), {}, {where}});
    return reject(kChannel, body, content_type, 400, issues);
  }
  if (!specs_ || !specs_->has(std::string(kChannel))) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported", "no mapping spec 'care-management' is loaded", {}, {}});
    return reject(kChannel, body, content_type, 422, issues);
  }

  // Idempotency: a re-posted event (same source + eventId) gets the first answer.
  std::string idempotency_key;
  if (auto source = json::getString(event, "source"), event_id = json::getString(event, "eventId"); source && event_id) {
    idempotency_key = std::string(kChannel) + '\x1f' + std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = store_->findAnswer(idempotency_key);
    if (!answer.ok()) return storeFailure(answer.message());
    if (answer->has_value()) {
      metrics_.countIngest(std::string(kChannel), "duplicate");
      return Answer{(*answer)->status, "application/fhir+json", (*answer)->answer};
    }
  }

  // Map and validate (the spec; the validator runs inside mapSource).
  GatewayDirectory directory(config_, *store_);
  mappers::engine::MapOptions options;
  options.directory = &directory;
  options.source_name = "POST /ingest/care-management";
  options.base_url = base_url_;
  options.validator = validator_.get();
  options.single_document = true;
  std::optional<mappers::engine::MappedBundle> mapped;
  IssueList rejected;
  std::string input_text(body);
  std::istringstream input(input_text);
  auto started = std::chrono::steady_clock::now();
  auto summary = specs_->mapSource(
      std::string(kChannel), input, options, [&](mappers::engine::MappedBundle& bundle) { mapped = std::move(bundle); },
      [&](mappers::engine::Rejection& rejection) { rejected = std::move(rejection.issues); });
  metrics_.observeValidation(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!summary.ok()) return storeFailure(summary.message());
  if (!mapped) return reject(kChannel, body, content_type, 422, rejected);
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  std::unique_lock<std::mutex> acm_lock(acm_mutex_, std::defer_lock);
  if (hasAcmClaim(mapped->bundle)) acm_lock.lock();
  if (auto second = secondAcm(*store_, mapped->bundle, event)) return reject(kChannel, body, content_type, 422, *second);

  IngestCommit commit;
  commit.channel = std::string(kChannel);
  commit.idempotency_key = idempotency_key;
  commit.payload = std::string(body);
  commit.status = 202;
  const std::string bundle_json = json::serialize(mapped->bundle);
  commit.answer = mapped->warnings.empty() ? bundle_json : answerWithWarnings(mapped->bundle, mapped->warnings);
  std::string patient_id;
  for (const json::Value& entry : mapped->bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string type(json::getString(resource, "resourceType").value_or(""));
    const std::string id(json::getString(resource, "id").value_or(""));
    if (type == "Patient") patient_id = id;
    commit.resources.push_back(ResourceWrite{type, id, json::serialize(resource)});
  }
  commit.coverage = eventCoverage(mapped->bundle);

  // Dispatch: feeds get the Bundle; billing Claims go to the payer covering their date.
  for (const FeedConfig& feed : config_.feeds) {
    commit.outbox.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
  }
  std::vector<mappers::CoverageFact> known = directory.coverageOf(patient_id);
  for (const mappers::CoverageFact& fact : commit.coverage) {
    auto same = std::find_if(known.begin(), known.end(), [&](const mappers::CoverageFact& k) { return k.coverage_id == fact.coverage_id; });
    if (same != known.end()) *same = fact;
    else known.push_back(fact);
  }
  EventFacts facts = careManagementFacts(mapped->bundle, event, commit.coverage);
  std::map<std::string, EventFacts> claim_facts;
  dispatchBilling(config_, *store_, base_url_, mapped->bundle, billingFacts(mapped->bundle, known), patient_id, facts, commit,
                  claim_facts);
  bool has_subscriptions = false;
  if (topics_ && registry_ != nullptr) {
    std::vector<Subscription> live = registry_->all();
    has_subscriptions = !live.empty();
    if (has_subscriptions) commit.on_changes = subscriptionHook(topics_, std::move(live), std::move(facts), std::move(claim_facts));
  }
  const bool has_outbox = !commit.outbox.empty() || has_subscriptions;
  auto outcome = store_->commitIngest(std::move(commit));
  if (!outcome.ok()) return storeFailure(outcome.message());
  metrics_.countIngest(std::string(kChannel), outcome->duplicate ? "duplicate" : "accepted");
  if (has_outbox && !outcome->duplicate && on_outbox_) on_outbox_();
  return Answer{outcome->status, "application/fhir+json", outcome->answer};
}

}  // namespace fhir::gateway

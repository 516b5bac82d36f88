// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/pipeline.h"

#include <chrono>
#include <map>
#include <set>
#include <sstream>

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
  auto id = store_->quarantine(std::move(write));
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
      spec, body, options,
      [&](mappers::engine::MappedBundle& mapped) {
        metrics_.countIngest(channel, "accepted");
        if (!store_error.empty()) return;  // the answer is a 503; the rest of the body is only read
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
        commit.coverage = coverageFacts(mapped.bundle, payer_id);
        // A row matches patients already known by this payer's member id (payer-formats.md):
        // the coverage counts for them too, and their waiting claims are routed again below.
        const size_t own = commit.coverage.size();
        for (size_t i = 0; i < own; ++i) {
          auto known = store_->patientsWithMember(payer_id, commit.coverage[i].member_id);
          if (!known.ok()) continue;
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
        auto id = store_->quarantine(QuarantineWrite{channel, std::string(content_type), rejected.raw, false,
                                                     toOperationOutcomeJson(rejected.issues)});
        if (!id.ok()) {
          store_error = id.message();
          return;
        }
        appendId(quarantine_ids, *id);
        last_quarantine_id = *id;
      });
  // A stream that ended fatally (bad header, broken ISA) was not read to its end.
  discardRest(body);
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

void Pipeline::routeWaitingClaims(const std::set<std::string>& patients) {
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
      json::Document none;
      none.SetObject();
      const std::string body = payerBundle(none, claim.claim_id, *store_, base_url_);
      (void)store_->routeUnroutable(claim.claim_id, OutboxWrite{payerDestination(decision.payer->id), "claim", body});
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

// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/ingest_service.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>

#include "gateway/auth/audit.h"
#include "gateway/dispatch/router.h"
#include "gateway/ingest/cpu_gate.h"
#include "gateway/ingest/event_facts.h"
#include "gateway/ingest/gateway_directory.h"
#include "gateway/merge/merge_service.h"
#include "gateway/store/time_util.h"
#include "gateway/subscriptions/matching.h"

namespace fhir::gateway {
namespace {

// Hands each billing Claim to its payer's outbox, or keeps it waiting as unroutable with the
// reason (the same rules as e-consult billing: routeClaim, payerBundle).
// A store failure reading what the payer's Bundle references is the commit's failure.
Status dispatchBilling(const Config& config, Store& store, const std::string& base_url, const json::Value& bundle,
                       const std::vector<mappers::BillingFact>& billing, const std::string& patient_id,
                       const EventFacts& facts, IngestCommit& commit, std::map<std::string, EventFacts>& claim_facts) {
  for (const mappers::BillingFact& fact : billing) {
    RouteDecision decision = routeClaim(config, fact);
    if (decision.payer != nullptr) {
      EventFacts claim = facts;
      claim.payers = {decision.payer->id};
      claim.codes = {fact.system + "|" + fact.code};
      claim_facts.emplace(fact.claim_id, std::move(claim));
      commit.routed.push_back(RoutedClaim{fact.claim_id, patient_id, decision.payer->id, fact.date_of_service, fact.code});
      auto payer_bundle = payerBundle(bundle, fact.claim_id, store, base_url);
      if (!payer_bundle.ok()) return payer_bundle.error();
      commit.outbox.push_back(OutboxWrite{payerDestination(decision.payer->id), "claim", std::move(*payer_bundle)});
      continue;
    }
    IssueList reason;
    reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
    commit.unroutable.push_back(UnroutableWrite{fact.claim_id, patient_id, fact.date_of_service, fact.code, decision.reason,
                                                toOperationOutcomeJson(reason)});
  }
  return Status::Ok();
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

}  // namespace

// The commit of a posted JSON event: 202 with the stored Bundle, warnings as a last entry.
IngestCommit acceptedEvent(std::string_view channel, const std::string& idempotency_key, std::string_view body,
                           const json::Value& bundle, const IssueList& warnings) {
  IngestCommit commit;
  commit.channel = std::string(channel);
  commit.idempotency_key = idempotency_key;
  commit.payload = std::string(body);
  commit.status = 202;
  commit.answer = warnings.empty() ? json::serialize(bundle) : answerWithWarnings(bundle, warnings);
  return commit;
}

IngestService::IngestService(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
                             std::function<void()> on_outbox)
    : config_(config),
      store_(std::move(store)),
      validator_(std::move(validator)),
      metrics_(metrics),
      on_outbox_(std::move(on_outbox)) {
  // Precedence of sources (fhir_profiles/alignment/merge-rules.json), merged in the store's
  // ingest transaction.
  auto rules = merge::MergeRules::load(merge::MergeRules::defaultPath());
  if (!rules.ok()) {
    merge_status_ = Error{rules.message()};
    rules = merge::MergeRules::parse(R"({"resources":{}})");
  }
  merge_rules_ = std::make_shared<const merge::MergeRules>(std::move(*rules));
  store_->setMergeHook(merge::makeMergeHook(merge_rules_));
}

std::vector<Subscription> IngestService::liveSubscriptions() const {
  return registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
}

Answer IngestService::reject(std::string_view channel, std::string_view payload, std::string_view content_type,
                             int status, const IssueList& issues, bool truncated) {
  metrics_.countIngest(std::string(channel), "rejected");
  QuarantineWrite write{std::string(channel), std::string(content_type), std::string(payload), truncated,
                        toOperationOutcomeJson(issues)};
  auto id = keep(std::move(write));
  if (!id.ok()) return storeFailure(id.message());
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues, *id)};
}

int IngestService::mapEvent(std::string_view channel, const std::string& spec, const json::Value& record,
                            std::string_view raw, mappers::engine::MappedBundle& mapped, IssueList& issues) {
  if (!specs_ || !specs_->has(spec)) {
    issues.add(Issue{Severity::kError, "not-supported", "no mapping spec '" + spec + "' is loaded", {}, {}});
    return 422;
  }
  CpuGate::Slot cpu_slot(CpuGate::shared());  // mapping + validation: about one request per core
  GatewayDirectory directory(config_, *store_);
  mappers::engine::MapOptions options;
  options.directory = &directory;
  options.source_name = "POST /ingest/" + std::string(channel);
  options.base_url = base_url_;
  // The consult's ServiceRequest is updated by later events ("update": "merge" in the spec).
  options.stored_resource = [&directory](const std::string& type, const std::string& id) {
    return directory.storedResource(type, id);
  };
  auto done = specs_->mapRecord(spec, record, std::string(raw), "request", options, mapped, issues);
  // What the mapper read from the store failed: whatever it concluded ("no coverage") is not
  // about the data. The caller answers 503 and keeps nothing in quarantine.
  if (auto failure = directory.failure()) {
    issues = IssueList();
    issues.add(Issue{Severity::kFatal, "transient", "the store failed: " + *failure, {}, {}});
    return kStoreFailed;
  }
  if (!done.ok() || !*done) {
    if (!done.ok()) issues.add(Issue{Severity::kError, "exception", done.message(), {}, {}});
    return 422;
  }
  issues.append(mapped.warnings);
  if (validator_) {
    auto started = std::chrono::steady_clock::now();
    IssueList validation;
    validator_->validate(mapped.bundle, ValidationRequest{}, validation);
    metrics_.observeValidation(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (validation.hasErrors()) {
      issues = std::move(validation);
      return 422;
    }
    // Warnings of the validator travel with the mapper's own.
    for (const Issue& issue : validation.issues()) {
      if (issue.severity == Severity::kWarning) issues.add(issue);
    }
  }
  return 0;
}

Result<CommitOutcome> IngestService::commitEvent(const json::Value& bundle, IngestCommit commit,
                                                 const std::vector<mappers::BillingFact>& billing,
                                                 const std::string& patient_id, EventFacts facts,
                                                 const ContributionSource& source) {
  const std::string channel = commit.channel;
  const std::string bundle_json = json::serialize(bundle);
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    commit.resources.push_back(ResourceWrite{std::string(*json::getString(resource, "resourceType")),
                                             std::string(*json::getString(resource, "id")),
                                             json::serialize(resource)});
  }
  // Patient and Coverage are the source's contributions, merged in the store (issue 11).
  takeContributions(*merge_rules_, bundle, source, commit);
  commit.coverage.clear();

  // Dispatch: every feed gets the accepted Bundle as its client may see it; each Claim goes to
  // its payer or waits.
  auto feeds = feedRows(bundle_json, commit);
  if (!feeds.ok()) return feeds.error();
  for (OutboxWrite& row : *feeds) commit.outbox.push_back(std::move(row));
  std::map<std::string, EventFacts> claim_facts;
  Status dispatched = dispatchBilling(config_, *store_, base_url_, bundle, billing, patient_id, facts, commit, claim_facts);
  if (!dispatched.ok()) return Error{dispatched.message()};
  bool has_subscriptions = false;
  if (topics_ && registry_ != nullptr) {
    std::vector<Subscription> live = registry_->all();
    has_subscriptions = !live.empty();
    if (has_subscriptions) {
      commit.change_context = encodeChangeContext(ChangeContext{std::move(facts), std::move(claim_facts), true});
    }
  }

  const bool has_outbox = !commit.outbox.empty() || has_subscriptions;
  const bool waits = !commit.unroutable.empty();
  // The request's AuditEvent commits with the data (access.md "Audit").
  auth::PendingAudit* pending = auth::PendingAudit::current();
  if (pending != nullptr) {
    std::vector<std::string> entities;
    for (const ResourceWrite& resource : commit.resources) entities.push_back(resource.type + "/" + resource.id);
    if (auto record = pending->take(commit.status, entities, nowMs())) commit.audit.push_back(std::move(*record));
  }
  auto outcome = store_->commitIngest(std::move(commit));
  if (!outcome.ok()) return outcome.error();
  if (pending != nullptr && outcome->audited) pending->written();
  if (!outcome->slot_taken.empty()) return outcome;  // refused, nothing written: the caller answers
  metrics_.countIngest(channel, outcome->duplicate ? "duplicate" : "accepted");
  // The event may have joined its patient to one a payer knows (in the commit's merge): its
  // waiting claims are routed on the merged timeline now.
  // The event is durable and answered as committed even when this fails: the claims keep
  // waiting (GET /admin/unroutable) and are routed again when the patient's coverage next changes.
  if (waits && !outcome->duplicate && !patient_id.empty()) {
    Status routed = routeWaitingClaims({patient_id}, false);
    if (!routed.ok()) {
      metrics_.countIngest(channel, "reroute_failed");
      std::fprintf(stderr, "ingest: routing the waiting claims of Patient/%s failed (they keep waiting): %s\n",
                   patient_id.c_str(), routed.message().c_str());
    }
  }
  if (has_outbox && !outcome->duplicate && on_outbox_) on_outbox_();
  return outcome;
}

OwnerVisibility ownerVisibility(const auth::AccessPolicy* policy) {
  if (policy == nullptr || !policy->enabled()) return {};
  return [policy](const std::string& owner, const std::string& type, const std::string& id,
                  const std::string& json_text) -> Result<std::optional<std::string>> {
    if (owner.empty()) return std::optional<std::string>(json_text);
    const auth::AuthClient* client = policy->client(owner);
    if (client == nullptr) return std::optional<std::string>();
    return policy->visible(auth::AccessPolicy::callerOf(client), type, id, json_text);
  };
}

void IngestService::setAccess(const auth::AccessPolicy* policy) {
  policy_ = policy;
  owner_visibility_ = ownerVisibility(policy);
}

Result<std::vector<OutboxWrite>> IngestService::feedRows(const std::string& bundle_json, const IngestCommit& commit) const {
  std::vector<OutboxWrite> rows;
  ResourceOrigins pending;
  bool pending_made = false;
  for (const FeedConfig& feed : config_.feeds) {
    const auth::AuthClient* client =
        policy_ != nullptr && policy_->enabled() && !feed.client.empty() ? policy_->client(feed.client) : nullptr;
    // No policy (auth off), or an hie that sees every practice: the whole Bundle.
    if (client == nullptr || (client->kind == auth::ClientKind::kHie && client->all_practices)) {
      rows.push_back(OutboxWrite{feedDestination(feed.id), "bundle", bundle_json});
      continue;
    }
    if (!pending_made) {
      pending.events.push_back(ResourceOrigins::Event{commit.channel, commit.idempotency_key, commit.payload});
      pending.contributions = commit.contributions;
      pending_made = true;
    }
    auto seen = policy_->visibleBundle(auth::AccessPolicy::callerOf(client), bundle_json, pending);
    if (!seen.ok()) return seen.error();
    if (seen->has_value()) rows.push_back(OutboxWrite{feedDestination(feed.id), "bundle", std::move(**seen)});
  }
  return rows;
}

void IngestService::dropStaged(int64_t file) {
  // Not the request's failure: what was published is committed, and staged rows are never read
  // again (a start-up drops every staged file a previous process left). Logged and counted.
  Status dropped = store_->dropStagedFile(file);
  if (dropped.ok()) return;
  metrics_.countIngest("staging", "drop_failed");
  std::fprintf(stderr, "ingest: dropping staged payer file %lld failed (dropped at the next start): %s\n",
               static_cast<long long>(file), dropped.message().c_str());
}

}  // namespace fhir::gateway

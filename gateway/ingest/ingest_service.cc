// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/ingest_service.h"

#include <algorithm>
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
#include "gateway/merge/merge_preview.h"
#include "gateway/merge/merge_service.h"
#include "conformance/common/time_util.h"
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

// The merge gave back this commit's own contribution unchanged (same type, id and JSON). A
// resource valid as a Bundle entry is valid on its own: %resource and %rootResource are the
// resource in both, and the checks a Bundle adds (references resolved in it, their target
// profiles) are not made without one (conformance/validator/walker_references.cc).
bool isOwnContribution(const IngestCommit& commit, const ResourceWrite& write) {
  return std::any_of(commit.contributions.begin(), commit.contributions.end(), [&](const merge::Contribution& c) {
    return c.type == write.type && c.id == write.id && c.json == write.json;
  });
}

// The key of IngestService::valid_: what decides "unchanged" for the store, with the type.
std::string validKey(const ResourceWrite& write) {
  return write.type + '\x1f' + (write.same_as.empty() ? write.json : write.same_as);
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

Status IngestService::checkMerges(const std::vector<IngestCommit*>& commits, std::vector<IssueList>& invalid) {
  invalid.assign(commits.size(), IssueList());
  auto merged = merge::previewMerge(*store_, *merge_rules_, std::vector<const IngestCommit*>(commits.begin(), commits.end()));
  if (!merged.ok()) return Error{merged.message()};
  for (size_t i = 0; i < commits.size(); ++i) {
    IngestCommit& commit = *commits[i];
    if (commit.contributions.empty() && commit.remerge.empty()) continue;
    if (validator_) {
      CpuGate::Slot cpu_slot(CpuGate::shared());
      for (const ResourceWrite& write : (*merged)[i].writes) {
        if (commit.contributions_validated && isOwnContribution(commit, write)) continue;
        const std::string valid_key = validKey(write);
        if (knownValid(valid_key)) continue;
        json::Document resource;
        json::ParseError parse_error;
        IssueList issues;
        if (!json::parse(write.json, resource, parse_error)) {
          issues.add(Issue{Severity::kError, "structure", "not JSON: " + parse_error.describe(), {}, {}});
        } else {
          validator_->validate(resource, ValidationRequest{}, issues);
        }
        if (!issues.hasErrors()) rememberValid(valid_key);
        for (Issue& issue : issues.issues()) {
          if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
          issue.diagnostics = write.type + "/" + write.id +
                              " as merged from what every source contributed (merge-rules.json) is invalid: " +
                              issue.diagnostics;
          if (issue.expression.empty()) issue.expression.push_back(write.type);
          invalid[i].add(std::move(issue));
        }
      }
    }
    commit.merge_checked = true;
    commit.merge_expected = std::move((*merged)[i].writes);
    commit.merge_trace = std::move((*merged)[i].trace);
  }
  return Status::Ok();
}

bool IngestService::knownValid(const std::string& key) const {
  std::lock_guard lock(valid_mutex_);
  return valid_.count(key) > 0;
}

void IngestService::rememberValid(const std::string& key) {
  std::lock_guard lock(valid_mutex_);
  if (!valid_.insert(key).second) return;
  valid_order_.push_back(key);
  if (valid_order_.size() > kValidMerges) {
    valid_.erase(valid_order_.front());
    valid_order_.pop_front();
  }
}

json::Document withMergedResources(const json::Value& bundle, const std::vector<ResourceWrite>& merged) {
  json::Document out;
  out.CopyFrom(bundle, out.GetAllocator());
  json::Value* entries = json::find(out, "entry");
  if (merged.empty() || entries == nullptr || !entries->IsArray()) return out;
  for (json::Value& entry : entries->GetArray()) {
    json::Value* resource = json::find(entry, "resource");
    if (resource == nullptr) continue;
    const std::string_view type = json::getString(*resource, "resourceType").value_or("");
    const std::string_view id = json::getString(*resource, "id").value_or("");
    for (const ResourceWrite& write : merged) {
      if (write.type != type || write.id != id) continue;
      json::Document parsed;
      json::ParseError error;
      if (json::parse(write.json, parsed, error)) resource->CopyFrom(parsed, out.GetAllocator());
      break;
    }
  }
  return out;
}

Result<std::vector<std::optional<CommitOutcome>>> IngestService::commitValidated(
    std::vector<IngestCommit> commits, const std::function<Status(size_t, IngestCommit&)>& deliver,
    std::vector<IssueList>& invalid) {
  std::vector<std::optional<CommitOutcome>> outcomes(commits.size());
  invalid.assign(commits.size(), IssueList());
  std::vector<size_t> pending(commits.size());
  for (size_t i = 0; i < commits.size(); ++i) pending[i] = i;
  for (int attempt = 1; !pending.empty(); ++attempt) {
    if (attempt > kMergeAttempts) {
      return Error{"the merge of " + std::to_string(pending.size()) + " commit(s) changed under concurrent commits " +
                   std::to_string(kMergeAttempts) + " times; they were not stored"};
    }
    std::vector<IngestCommit> round;
    for (size_t i : pending) round.push_back(commits[i]);
    std::vector<IngestCommit*> checked;
    for (IngestCommit& commit : round) checked.push_back(&commit);
    std::vector<IssueList> issues;
    Status merged = checkMerges(checked, issues);
    if (!merged.ok()) return Error{merged.message()};
    std::vector<size_t> committed;  // indices into `commits`
    std::vector<IngestCommit> batch;
    for (size_t k = 0; k < round.size(); ++k) {
      if (issues[k].hasErrors()) {
        invalid[pending[k]] = std::move(issues[k]);
        continue;
      }
      Status delivered = deliver(pending[k], round[k]);
      if (!delivered.ok()) return Error{delivered.message()};
      committed.push_back(pending[k]);
      batch.push_back(std::move(round[k]));
    }
    pending.clear();
    if (batch.empty()) break;
    {
      // The search index rows of what is stored (issue 12): computed here, on the request thread,
      // so the store's single writer only inserts them.
      CpuGate::Slot cpu_slot(CpuGate::shared());
      for (IngestCommit& commit : batch) prepareIndex(commit);
    }
    Result<std::vector<CommitOutcome>> results = std::vector<CommitOutcome>();
    if (batch.size() > 1) {
      results = store_->commitIngestMany(std::move(batch));
    } else if (auto one = store_->commitIngest(std::move(batch[0])); one.ok()) {
      results->push_back(std::move(*one));
    } else {
      results = one.error();
    }
    if (!results.ok()) return results.error();
    for (size_t k = 0; k < committed.size(); ++k) {
      if ((*results)[k].merge_changed) {  // a concurrent commit changed what it merges: again
        metrics_.countIngest(commits[committed[k]].channel, "merge_changed");
        pending.push_back(committed[k]);
      } else {
        outcomes[committed[k]] = std::move((*results)[k]);
      }
    }
  }
  return outcomes;
}

Result<EventCommit> IngestService::commitEvent(const json::Value& bundle, IngestCommit mapped_commit,
                                               const std::vector<mappers::BillingFact>& billing,
                                               const std::string& patient_id, EventFacts facts,
                                               const ContributionSource& source) {
  const std::string channel = mapped_commit.channel;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    mapped_commit.resources.push_back(ResourceWrite{std::string(*json::getString(resource, "resourceType")),
                                                    std::string(*json::getString(resource, "id")),
                                                    json::serialize(resource)});
  }
  // Patient and Coverage are the source's contributions, merged in the store (issue 11).
  takeContributions(*merge_rules_, bundle, source, mapped_commit);
  mapped_commit.contributions_validated = true;  // `bundle` passed mapEvent's validation
  mapped_commit.coverage.clear();
  const bool has_subscriptions = topics_ && registry_ != nullptr && !registry_->all().empty();

  // The request's AuditEvent commits with the data (access.md "Audit"), in whichever round of
  // commitValidated is written.
  auth::PendingAudit* pending = auth::PendingAudit::current();
  if (pending != nullptr) {
    std::vector<std::string> entities;
    for (const ResourceWrite& resource : mapped_commit.resources) entities.push_back(resource.type + "/" + resource.id);
    if (auto record = pending->take(mapped_commit.status, entities, nowMs())) mapped_commit.audit.push_back(std::move(*record));
  }
  bool waits = false;
  bool has_outbox = false;
  std::vector<IssueList> invalid;
  auto outcomes = commitValidated(
      {std::move(mapped_commit)},
      [&](size_t, IngestCommit& commit) -> Status {
        // Every feed gets the accepted Bundle with the merged resources; each Claim goes to its
        // payer (with the merged resources it references) or waits.
        // Each feed gets it as its hie client may see it (feedRows).
        const json::Document delivered = withMergedResources(bundle, commit.merge_expected);
        auto feeds = feedRows(json::serialize(delivered), commit);
        if (!feeds.ok()) return Status(feeds.error());
        for (OutboxWrite& row : *feeds) commit.outbox.push_back(std::move(row));
        std::map<std::string, EventFacts> claim_facts;
        Status dispatched = dispatchBilling(config_, *store_, base_url_, delivered, billing, patient_id, facts, commit, claim_facts);
        if (!dispatched.ok()) return dispatched;
        if (has_subscriptions) commit.change_context = encodeChangeContext(ChangeContext{facts, std::move(claim_facts), true});
        has_outbox = !commit.outbox.empty() || has_subscriptions;
        waits = !commit.unroutable.empty();
        return Status::Ok();
      },
      invalid);
  if (!outcomes.ok()) return outcomes.error();
  if (invalid[0].hasErrors()) return EventCommit{CommitOutcome{}, std::move(invalid[0])};
  const std::optional<CommitOutcome>& outcome = (*outcomes)[0];
  if (!outcome) return Error{"the event was neither committed nor refused"};
  if (pending != nullptr && outcome->audited) pending->written();
  if (!outcome->slot_taken.empty()) return EventCommit{*outcome, {}};  // refused, nothing written: the caller answers
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
  return EventCommit{*outcome, {}};
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

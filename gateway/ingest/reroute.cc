// SPDX-License-Identifier: Apache-2.0
// Re-routing (issue 11): claims that wait for a payer leave when the patient's merged coverage
// timeline decides, each in its own commit; routed claims a later roster contradicts are listed.
#include <map>
#include <set>

#include "gateway/dispatch/router.h"
#include "gateway/ingest/ingest_service.h"
#include "gateway/subscriptions/matching.h"

namespace fhir::gateway {
namespace {

// A stored resource as mapped: without the meta the store adds.
void dropStoredMeta(json::Document& resource) {
  if (json::Value* meta = json::find(resource, "meta")) {
    meta->RemoveMember("versionId");
    meta->RemoveMember("lastUpdated");
  }
}

}  // namespace

Result<std::optional<IngestCommit>> IngestService::rerouteCommit(const UnroutableWrite& waiting,
                                                                 const fhir::CoverageFact& coverage,
                                                                 const PayerConfig& payer,
                                                                 const std::vector<Subscription>& live) {
  auto stored = store_->readResource("Claim", waiting.claim_id);
  if (!stored.ok()) return stored.error();
  if (!stored->has_value()) return std::optional<IngestCommit>();
  json::Document previous;
  json::ParseError parse_error;
  if (!json::parse((*stored)->json, previous, parse_error)) {
    return Error{"stored Claim/" + waiting.claim_id + " is unreadable: " + parse_error.describe()};
  }
  dropStoredMeta(previous);
  json::Document claim;
  claim.CopyFrom(previous, claim.GetAllocator());
  json::Value* insurance = json::find(claim, "insurance");
  if (insurance == nullptr || !insurance->IsArray() || insurance->Empty()) return std::optional<IngestCommit>();
  settleClaimResource(claim, claim.GetAllocator(), coverage.coverage_id, payer.id);
  if (validator_) {
    IssueList validation;
    validator_->validate(claim, ValidationRequest{}, validation);
    if (validation.hasErrors()) return std::optional<IngestCommit>();  // keeps waiting, with its reason
  }

  IngestCommit commit;
  commit.channel = "reroute";
  commit.idempotency_key = "reroute\x1f" + waiting.claim_id;
  commit.routes_unroutable = waiting.claim_id;
  commit.routed.push_back(RoutedClaim{waiting.claim_id, waiting.patient_id, payer.id, waiting.date_of_service, waiting.code});
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
  auto payer_bundle = payerBundle(mapped, waiting.claim_id, *store_, base_url_);
  if (!payer_bundle.ok()) return payer_bundle.error();
  commit.outbox.push_back(OutboxWrite{payerDestination(payer.id), "claim", std::move(*payer_bundle)});

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
    // One notification per live subscription whose topic fires, whose filters match and whose
    // owner may see the Claim (the same rules as the matcher's).
    std::map<std::string, EventFacts> claim_facts{{waiting.claim_id, facts}};
    const std::string previous_json = json::serialize(previous);
    Status matched = matchChanges(*topics_, live, ChangeContext{facts, std::move(claim_facts), true},
                                  {ResourceChangeRecord{"Claim", waiting.claim_id, previous_json, &claim_json}},
                                  commit.outbox, owner_visibility_ ? &owner_visibility_ : nullptr);
    if (!matched.ok()) return Error{matched.message()};
  }
  return std::optional<IngestCommit>(std::move(commit));
}

Status IngestService::routeWaitingClaims(const std::set<std::string>& patients, bool check_routed) {
  const std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
  std::set<std::string> members;  // the patients and every patient linked to them
  for (const std::string& patient : patients) {
    auto cluster = store_->clusterOf(patient);
    if (!cluster.ok()) return Error{cluster.message()};
    members.insert(cluster->begin(), cluster->end());
  }
  for (const std::string& patient : members) {
    auto coverage = store_->coverageOf(patient);
    if (!coverage.ok()) return Error{coverage.message()};
    auto waiting = store_->unroutableOf(patient);
    if (!waiting.ok()) return Error{waiting.message()};
    for (const UnroutableWrite& claim : *waiting) {
      fhir::BillingFact billing;
      billing.claim_id = claim.claim_id;
      billing.code = claim.code;
      billing.date_of_service = claim.date_of_service;
      CoverageChoice choice = chooseCoverage(*coverage, claim.date_of_service);
      billing.coverage = std::move(choice.coverage);
      billing.coverage_reason = std::move(choice.reason);
      RouteDecision decision = routeClaim(config_, billing);
      if (decision.payer == nullptr) {
        if (decision.reason != claim.reason) {
          IssueList reason;
          reason.atExpression(Severity::kWarning, "business-rule", "Claim", decision.reason);
          Status updated = store_->updateUnroutableReason(claim.claim_id, decision.reason, toOperationOutcomeJson(reason));
          if (!updated.ok()) return updated;
        }
        continue;
      }
      auto commit = rerouteCommit(claim, *billing.coverage, *decision.payer, live);
      if (!commit.ok()) return Error{commit.message()};
      if (!commit->has_value()) continue;  // its stored Claim is gone or would not validate: it keeps waiting
      auto committed = store_->commitIngest(std::move(**commit));
      if (!committed.ok()) return Error{committed.message()};
    }
    if (!check_routed) continue;
    // A claim already handed to a payer stays with it; a roster or claim file that now says
    // otherwise is listed for people to settle (GET /admin/routing-conflicts).
    auto routed = store_->routedOf(patient);
    if (!routed.ok()) return Error{routed.message()};
    for (const RoutedClaim& claim : *routed) {
      CoverageChoice now = chooseCoverage(*coverage, claim.date_of_service);
      const std::string now_payer = now.coverage ? now.coverage->payer_id : std::string();
      if (now_payer == claim.payer_id) continue;
      const std::string reason = now.coverage ? "the coverage of payer '" + now_payer + "' is valid on " +
                                                    claim.date_of_service + " (Coverage/" + now.coverage->coverage_id + ")"
                                              : now.reason;
      Status listed = store_->putRoutingConflict(RoutingConflict{claim, now_payer, reason, ""});
      if (!listed.ok()) return listed;
    }
  }
  return Status::Ok();
}

}  // namespace fhir::gateway

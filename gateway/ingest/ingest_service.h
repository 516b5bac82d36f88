// SPDX-License-Identifier: Apache-2.0
#pragma once

// The channel-neutral ingest service: what every channel (gateway/ingest/channel.h) hands an
// event to once it has decoded it. Map and validate (mapEvent), plan routing, feeds and
// notifications and commit (commitEvent), quarantine (reject, keep), route waiting claims when
// a patient's coverage changed (routeWaitingClaims, reroute.cc). Thread-safe: request threads
// call it concurrently; the answer of a commit comes only after it is durable.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "gateway/auth/policy.h"
#include "gateway/config/config.h"
#include "gateway/ingest/answer.h"
#include "gateway/ingest/contributions.h"
#include "gateway/merge/merge.h"
#include "conformance/common/metrics.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/matching.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "mappers/engine/engine.h"

namespace fhir::gateway {

// What commitEvent did: committed (`outcome`), or refused because the merge of the event's
// resources with what is stored is invalid (validate last): then nothing was stored and the
// caller rejects the event (422) with `invalid_merge`, which names the resource and element.
struct EventCommit {
  CommitOutcome outcome;
  IssueList invalid_merge;
};

class IngestService {
 public:
  // `validator` may be null only in tests that exercise mapping alone. `on_outbox` is called
  // after a commit that wrote outbox rows (it wakes the delivery workers).
  IngestService(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
                std::function<void()> on_outbox);

  void setSpecs(std::shared_ptr<const mappers::engine::SpecLibrary> specs) { specs_ = std::move(specs); }
  void setSubscriptions(TopicCatalogPtr topics, const SubscriptionRegistry* registry) {
    topics_ = std::move(topics);
    registry_ = registry;
  }
  void setBaseUrl(std::string base_url) { base_url_ = std::move(base_url); }
  // Who sees what (gateway/auth): static feeds receive what their hie client may see, rerouted
  // claims notify only owners that may see them. Null (the default): auth is off.
  void setAccess(const auth::AccessPolicy* policy);
  // The merge rules could not be loaded (then nothing is merged).
  const Status& mergeStatus() const { return merge_status_; }

  const Config& config() const { return config_; }
  Store& store() const { return *store_; }
  Metrics& metrics() const { return metrics_; }
  const Validator* validator() const { return validator_.get(); }
  const mappers::engine::SpecLibrary* specs() const { return specs_.get(); }
  const std::string& baseUrl() const { return base_url_; }
  const merge::MergeRules& mergeRules() const { return *merge_rules_; }
  // Topics when subscriptions are on, else null.
  const TopicCatalogPtr& topics() const { return topics_; }
  // The live subscriptions (empty when subscriptions are off).
  std::vector<Subscription> liveSubscriptions() const;
  // Wakes the delivery workers after a commit that wrote outbox rows.
  void notifyOutbox() const {
    if (on_outbox_) on_outbox_();
  }

  // Keeps `payload` in quarantine and answers `status` with the issues and the quarantine id.
  Answer reject(std::string_view channel, std::string_view payload, std::string_view content_type, int status,
                const IssueList& issues, bool truncated = false);
  // Quarantines a rejected payload, or during a replay records the rejection on the replayed
  // entry (replay.cc).
  Result<std::string> keep(QuarantineWrite write);

  // Maps one posted event (e-consult, care-management) of `channel` with `spec` and validates it:
  // 0, or the HTTP status of the rejection with its issues. Warnings (unknown members, validator)
  // end up in `issues`. kStoreFailed: the store failed while the mapper read from it (`issues`
  // says so); the caller answers 503 and quarantines nothing.
  static constexpr int kStoreFailed = 503;
  int mapEvent(std::string_view channel, const std::string& spec, const json::Value& record, std::string_view raw,
               mappers::engine::MappedBundle& mapped, IssueList& issues);

  // Stores an accepted event Bundle (e-consult, care-management): resources, its contributions
  // to merged resources, feed rows, each of `billing` to its payer or waiting, the change record
  // for subscriptions.
  // Validate last: the Bundle's contributions are merged with what is stored before the commit
  // (checkMerges) and the feeds' and payers' Bundles carry the merged resources. `bundle` is one
  // mapEvent validated, unchanged in its merged resource types since.
  Result<EventCommit> commitEvent(const json::Value& bundle, IngestCommit commit,
                                  const std::vector<fhir::BillingFact>& billing, const std::string& patient_id,
                                  EventFacts facts, const ContributionSource& source);

  // Validate last (gateway/merge/merge_preview.h): merges the commits' contributions as their
  // transactions will, in order, validates every merged resource and marks each commit checked
  // with its merge (IngestCommit::merge_checked, merge_expected). invalid[i] holds the errors of
  // commit i's merge (empty: valid; such a commit must not be committed). An error when the
  // store failed.
  Status checkMerges(const std::vector<IngestCommit*>& commits, std::vector<IssueList>& invalid);
  // Commits `commits` validate-last, in order: checks their merges (checkMerges), lets
  // `deliver(i, commit)` add what depends on the merged resources (outbox rows carrying them),
  // commits the valid ones (one group) and checks again those whose merge a concurrent commit
  // changed, at most kMergeAttempts times (then an error). invalid[i]: the errors of commit i's
  // merge, which was not committed (outcome unset). An error when the store failed.
  Result<std::vector<std::optional<CommitOutcome>>> commitValidated(
      std::vector<IngestCommit> commits, const std::function<Status(size_t, IngestCommit&)>& deliver,
      std::vector<IssueList>& invalid);
  static constexpr int kMergeAttempts = 5;

  // Routes the waiting claims of these patients (and the patients linked to them) whose merged
  // coverage now decides; `check_routed`: also lists claims already routed that the coverage
  // now contradicts (GET /admin/routing-conflicts). An error when the store failed (what was
  // done before stays done; the rest is done on the next call for these patients). reroute.cc.
  Status routeWaitingClaims(const std::set<std::string>& patients, bool check_routed);

  // The outbox rows of every static feed for an event Bundle that `commit` is about to store:
  // the Bundle as each feed's client may see it (AccessPolicy::visibleBundle with the commit's
  // event and contributions), no row when it may see none of it. An error when the store failed.
  Result<std::vector<OutboxWrite>> feedRows(const std::string& bundle_json, const IngestCommit& commit) const;

  // Drops a staged payer file; a failure is logged and counted (gateway_ingest_events_total
  // {channel="staging",outcome="drop_failed"}), not answered.
  void dropStaged(int64_t file);

 private:
  // The commit that routes one waiting claim: a new version of the Claim whose insurance and
  // insurer are the coverage valid on its date of service, its delivery to that payer and its
  // billing-routed notifications. nullopt when the stored Claim is gone or the new version does
  // not validate (the claim keeps waiting); an error when the store failed. reroute.cc.
  Result<std::optional<IngestCommit>> rerouteCommit(const UnroutableWrite& waiting, const fhir::CoverageFact& coverage,
                                                    const PayerConfig& payer, const std::vector<Subscription>& live);

  // Merged resources the validator passed, by what decides "unchanged" (ResourceWrite::same_as,
  // else the JSON): the same merge again (the same sources' words, the same citation) is not
  // validated again. A merge citation differs from its same_as only by `recorded`, the time of the
  // merge, always an instant. The last kValidMerges of them; checkMerges.
  // `key`: validKey() of the write (ingest_service.cc), built once per write.
  bool knownValid(const std::string& key) const;
  void rememberValid(const std::string& key);
  static constexpr size_t kValidMerges = 1024;

  const Config& config_;
  StorePtr store_;
  ValidatorPtr validator_;
  mutable std::mutex valid_mutex_;
  std::unordered_set<std::string> valid_;
  std::deque<std::string> valid_order_;  // oldest first
  Metrics& metrics_;
  std::function<void()> on_outbox_;
  std::string base_url_ = "http://127.0.0.1:8080/fhir";
  TopicCatalogPtr topics_;
  std::shared_ptr<const mappers::engine::SpecLibrary> specs_;
  const SubscriptionRegistry* registry_ = nullptr;
  std::shared_ptr<const merge::MergeRules> merge_rules_;
  const auth::AccessPolicy* policy_ = nullptr;
  OwnerVisibility owner_visibility_;
  Status merge_status_ = Status::Ok();
};

// What a Subscription owner may see (matching.h) by `policy`: an owner that is not a configured
// client sees nothing; an empty owner (made while auth was off, by the operator) everything.
// Empty (no check) when `policy` is null or off.
OwnerVisibility ownerVisibility(const auth::AccessPolicy* policy);

// `bundle` with every entry that is one of `merged` replaced by the merged resource: what a
// payer or a feed is delivered.
json::Document withMergedResources(const json::Value& bundle, const std::vector<ResourceWrite>& merged);

// The commit of a posted JSON event: 202 with the stored Bundle, warnings as a last entry.
IngestCommit acceptedEvent(std::string_view channel, const std::string& idempotency_key, std::string_view body,
                           const json::Value& bundle, const IssueList& warnings);

}  // namespace fhir::gateway

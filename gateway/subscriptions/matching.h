// SPDX-License-Identifier: Apache-2.0
#pragma once

// Subscription matching on committed changes (issue 12, Build 2). An ingest commit records what
// changed (the changed resource versions and a ChangeContext: the facts filters need) in the
// store's change log, inside its transaction; the SubscriptionMatcher reads that log after the
// commit, on its own thread, runs the topics' FHIRPath triggers and the filters, and commits the
// notification rows together with its cursor (Store::commitPlanned). So the writer's critical
// section holds no FHIRPath, and each change is matched exactly once: a crash before the
// matcher's commit leaves the cursor where it was and the changes are matched again; a crash
// after it leaves the rows and the moved cursor. Rows of a subscription are numbered in change
// order, without gaps (the store numbers them as it numbers every outbox row).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"

namespace fhir::gateway {

// What the filters of an event's notifications need, beside the changed resources.
struct ChangeContext {
  EventFacts facts;                             // of the event
  std::map<std::string, EventFacts> claim_facts;  // per routed Claim id: its payer and code
  // A changed Claim announces only when it was routed (in claim_facts); false: the event's facts
  // count for every Claim (payer rosters).
  bool claims_need_route = true;
};

// The context as JSON (IngestCommit::change_context) and back. decode: nullopt when malformed.
std::string encodeChangeContext(const ChangeContext& context);
std::optional<ChangeContext> decodeChangeContext(std::string_view text);

// What a Subscription's owner may see of a changed resource (access.md: an hie client's
// Subscriptions receive only what its `practices` allow): the resource as the owner may see it,
// nullopt when it may not; an error when the store failed. gateway/auth's AccessPolicy::visible.
using OwnerVisibility = std::function<Result<std::optional<std::string>>(
    const std::string& owner, const std::string& type, const std::string& id, const std::string& json)>;

// Appends one notification per live subscription whose topic fires for a changed resource, whose
// filters match and whose owner may see it (`visibility` null: every owner sees everything), at
// most one per subscription and event. An error when `visibility` failed (nothing is appended).
Status matchChanges(const TopicCatalog& topics, const std::vector<Subscription>& subscriptions,
                    const ChangeContext& context, const std::vector<ResourceChangeRecord>& changes,
                    std::vector<OutboxWrite>& outbox, const OwnerVisibility* visibility = nullptr);

class SubscriptionMatcher {
 public:
  static constexpr std::string_view kConsumer = "subscriptions";

  // `on_outbox` runs (on the matcher's thread) after notification rows were committed.
  SubscriptionMatcher(StorePtr store, TopicCatalogPtr topics, const SubscriptionRegistry* registry,
                      std::function<void()> on_outbox);
  // Notifications only of what each Subscription's owner may see (set before start()).
  void setVisibility(OwnerVisibility visibility) { visibility_ = std::move(visibility); }
  ~SubscriptionMatcher();
  SubscriptionMatcher(const SubscriptionMatcher&) = delete;
  SubscriptionMatcher& operator=(const SubscriptionMatcher&) = delete;

  void start();
  void stop();
  // New changes were committed.
  void wake();
  // Wakes the matcher and waits (at most `timeout`) until a pass that began after this call has
  // finished, so the caller's committed changes have their notification rows: an ingest answer
  // then implies its notifications are queued, as when matching ran inside the commit. Returns at
  // once when no subscription is live. False on timeout (the rows still come, exactly once).
  bool catchUp(std::chrono::milliseconds timeout);
  // Matches every change recorded so far (the thread's loop calls it; tests call it directly).
  // Returns the number of notification rows committed, or the store's error.
  Result<size_t> runOnce();

 private:
  void run();

  StorePtr store_;
  TopicCatalogPtr topics_;
  const SubscriptionRegistry* registry_;
  std::function<void()> on_outbox_;
  OwnerVisibility visibility_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  bool woken_ = false;
  bool running_ = false;
  uint64_t requested_ = 0;  // passes asked for by catchUp
  uint64_t completed_ = 0;  // the highest request number a finished pass began after
  bool stopping_ = false;
};

}  // namespace fhir::gateway

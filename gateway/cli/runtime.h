// SPDX-License-Identifier: Apache-2.0
#pragma once

// What `serve` and `replay` both need before they can run the pipeline: the store in the data
// directory, the validator with the bundled (or FHIR_GATEWAY_PROFILES) definitions, the
// subscription topics, the subscriptions kept in the store, and the mapping specs.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "conformance/common/result.h"
#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/store/export_jobs.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "mappers/engine/engine.h"

namespace fhir::gateway::cli {

// Keeps a registry in step with the Subscriptions kept in the store, which other gateways may
// share (PostgreSQL, issue 17): one created, changed or deleted on another instance reaches this
// one's registry without a restart. A pass reads the store's rows and applies to the registry
// only those that differ from what the pass before read (what this instance wrote itself is in
// its registry already, and its delivery's status change that is not yet committed is not undone);
// a row gone from the store leaves the registry.
class SubscriptionSync {
 public:
  SubscriptionSync(Store& store, const TopicCatalog& topics, SubscriptionRegistry& registry)
      : store_(store), topics_(topics), registry_(registry) {}
  ~SubscriptionSync() { stop(); }
  SubscriptionSync(const SubscriptionSync&) = delete;
  SubscriptionSync& operator=(const SubscriptionSync&) = delete;

  // One pass; how many registry entries it put or removed.
  Result<int> poll();
  // A pass every `interval` on a thread of its own; `on_change` after a pass that changed the
  // registry (delivery wakes for a new Subscription). A failed pass is logged and tried again.
  void start(std::chrono::milliseconds interval, std::function<void()> on_change);
  void stop();

 private:
  struct Seen {
    std::string status, error, resource_json, owner;
    bool operator==(const Seen&) const = default;
  };
  Store& store_;
  const TopicCatalog& topics_;
  SubscriptionRegistry& registry_;
  std::mutex poll_mutex_;  // one pass at a time
  std::map<std::string, Seen> seen_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

struct Runtime {
  StorePtr store;
  ValidatorPtr validator;
  TopicCatalogPtr topics;
  SubscriptionRegistry registry;
  std::shared_ptr<const mappers::engine::SpecLibrary> specs;
  // Loaded the registry at start-up; `serve` on a shared store runs it every second. Declared
  // last: stopped before what it uses goes.
  std::unique_ptr<SubscriptionSync> subscription_sync;
};

// The store `config.store` names: SQLite in config.data_dir, or PostgreSQL (the password read
// from store.passwordFile; it appears in no message).
Result<StorePtr> openStore(const Config& config);
// The Bulk export jobs of `config.store`: on PostgreSQL its `export_jobs` table, which every
// instance on the store shares; null on SQLite (the export service keeps them beside the files,
// in export.dir/jobs.db).
Result<exports::ExportJobStorePtr> openExportJobs(const Config& config);

// Loads everything for `config`; an Error names what could not be loaded (one line, for stderr).
Result<std::unique_ptr<Runtime>> loadRuntime(const Config& config);

}  // namespace fhir::gateway::cli

// SPDX-License-Identifier: Apache-2.0
#include "gateway/cli/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway/store/pg_store.h"
#include "gateway_paths.h"

namespace fhir::gateway::cli {
namespace {

std::string profilesDir() {
  if (const char* env = std::getenv("FHIR_GATEWAY_PROFILES"); env != nullptr && *env != '\0') return env;
  return GATEWAY_PROFILES_DIR;
}

}  // namespace

Result<int> SubscriptionSync::poll() {
  std::lock_guard pass(poll_mutex_);
  auto rows = store_.listSubscriptions();
  if (!rows.ok()) return Error{rows.message()};
  int changed = 0;
  std::map<std::string, Seen> now;
  for (const SubscriptionRow& row : *rows) {
    Seen seen{row.status, row.error, row.resource_json, row.owner};
    auto before = seen_.find(row.id);
    const bool same = before != seen_.end() && before->second == seen;
    now.emplace(row.id, std::move(seen));
    if (same) continue;
    auto resource = json::parse(row.resource_json);
    IssueList ignored;
    if (!resource.ok()) continue;  // kept by an earlier version and no longer valid: not served
    auto subscription = parseSubscription(*resource, topics_, ignored);
    if (!subscription) continue;
    subscription->id = row.id;
    subscription->status = row.status;
    subscription->error = row.error;
    subscription->owner = row.owner;
    registry_.put(std::move(*subscription));
    ++changed;
  }
  for (const auto& [id, seen] : seen_) {
    if (now.count(id) == 0 && registry_.get(id).has_value()) {  // deleted, here or on another instance
      registry_.remove(id);
      ++changed;
    }
  }
  seen_ = std::move(now);
  return changed;
}

void SubscriptionSync::start(std::chrono::milliseconds interval, std::function<void()> on_change) {
  stop();
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this, interval, on_change = std::move(on_change)] {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, interval, [&] { return stopping_; })) {
      lock.unlock();
      auto changed = poll();
      if (!changed.ok()) {
        std::fprintf(stderr, "subscriptions: cannot read the store's Subscriptions (tried again in %lld ms): %s\n",
                     static_cast<long long>(interval.count()), changed.message().c_str());
      } else if (*changed > 0 && on_change) {
        on_change();
      }
      lock.lock();
    }
  });
}

void SubscriptionSync::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

Result<PostgresStoreOptions> postgresOptions(const Config& config) {
  PostgresStoreOptions options;
  options.url = config.store.url;
  options.sslmode = config.store.sslmode;
  options.schema = config.store.schema;
  if (!config.store.password_file.empty()) {
    std::ifstream in(config.store.password_file, std::ios::binary);
    if (!in) return Error{"cannot read store.passwordFile " + config.store.password_file};
    std::ostringstream text;
    text << in.rdbuf();
    options.password = text.str();
    if (!options.password.empty() && options.password.back() == '\n') options.password.pop_back();
    if (!options.password.empty() && options.password.back() == '\r') options.password.pop_back();
  }
  return options;
}

}  // namespace

Result<StorePtr> openStore(const Config& config) {
  if (config.store.kind != "postgresql") return openSqliteStore(config.data_dir);
  auto options = postgresOptions(config);
  if (!options.ok()) return options.error();
  return openPostgresStore(*options);
}

Result<exports::ExportJobStorePtr> openExportJobs(const Config& config) {
  if (config.store.kind != "postgresql") return exports::ExportJobStorePtr();
  auto options = postgresOptions(config);
  if (!options.ok()) return options.error();
  return exports::openPostgresExportJobs(*options);
}

Result<std::unique_ptr<Runtime>> loadRuntime(const Config& config) {
  auto runtime = std::make_unique<Runtime>();
  auto store = openStore(config);
  if (!store.ok()) return Error{store.message()};
  runtime->store = std::move(*store);

  const std::string profiles = profilesDir();
  ValidatorOptions validator_options;
  validator_options.core_package_dir = profiles + "/r4-core/package";
  const std::string alignment = profiles + "/alignment/package";
  for (const std::string& package : {profiles + "/subscriptions-backport/package",
                                     profiles + "/r5-cross-version/package", alignment}) {
    if (std::filesystem::is_directory(package)) validator_options.extra_paths.push_back(package);
  }
  // `igs` (contracts/cli.md): extra packages beside the bundled ones, as `validate --ig`.
  for (const std::string& package : config.igs.packages) validator_options.extra_paths.push_back(package);
  validator_options.strict_dependencies = config.igs.strict_dependencies;
  if (config.igs.unchecked_bindings_are_errors) validator_options.unchecked_binding = Severity::kError;
  // The types every e-consult and subscription request uses: compiled before the first request.
  validator_options.preload = {"Bundle", "Patient", "Coverage", "Organization", "Practitioner", "ServiceRequest",
                               "Task", "Communication", "Claim", "Subscription"};
  auto validator = createValidator(validator_options);
  if (!validator.ok()) return Error{"cannot load definitions: " + validator.message()};
  runtime->validator = std::move(*validator);

  auto topics = TopicCatalog::load(alignment);
  if (!topics.ok()) return Error{"cannot load subscription topics: " + topics.message()};
  runtime->topics = std::move(*topics);
  runtime->subscription_sync = std::make_unique<SubscriptionSync>(*runtime->store, *runtime->topics, runtime->registry);
  auto subscriptions = runtime->subscription_sync->poll();  // the subscriptions kept in the store
  if (!subscriptions.ok()) return Error{subscriptions.message()};

  auto specs = mappers::engine::SpecLibrary::load({});
  if (!specs.ok()) return Error{"cannot load mapping specs: " + specs.message()};
  runtime->specs = std::shared_ptr<const mappers::engine::SpecLibrary>(std::move(*specs));
  return Result<std::unique_ptr<Runtime>>(std::move(runtime));
}

}  // namespace fhir::gateway::cli

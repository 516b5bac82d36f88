// SPDX-License-Identifier: Apache-2.0
#include "gateway/cli/runtime.h"

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

// The subscriptions kept in the store, as the registry serves them.
Status loadSubscriptions(Store& store, const TopicCatalog& topics, SubscriptionRegistry& registry) {
  auto rows = store.listSubscriptions();
  if (!rows.ok()) return Error{rows.message()};
  for (const SubscriptionRow& row : *rows) {
    auto resource = json::parse(row.resource_json);
    IssueList ignored;
    if (!resource.ok()) continue;
    auto subscription = parseSubscription(*resource, topics, ignored);
    if (!subscription) continue;
    subscription->id = row.id;
    subscription->status = row.status;
    subscription->error = row.error;
    subscription->owner = row.owner;
    registry.put(std::move(*subscription));
  }
  return Status::Ok();
}

}  // namespace

Result<StorePtr> openStore(const Config& config) {
  if (config.store.kind != "postgresql") return openSqliteStore(config.data_dir);
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
  return openPostgresStore(options);
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
  Status subscriptions = loadSubscriptions(*runtime->store, *runtime->topics, runtime->registry);
  if (!subscriptions.ok()) return Error{subscriptions.message()};

  auto specs = mappers::engine::SpecLibrary::load({});
  if (!specs.ok()) return Error{"cannot load mapping specs: " + specs.message()};
  runtime->specs = std::shared_ptr<const mappers::engine::SpecLibrary>(std::move(*specs));
  return Result<std::unique_ptr<Runtime>>(std::move(runtime));
}

}  // namespace fhir::gateway::cli

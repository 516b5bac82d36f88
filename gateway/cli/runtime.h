// SPDX-License-Identifier: Apache-2.0
#pragma once

// What `serve` and `replay` both need before they can run the pipeline: the store in the data
// directory, the validator with the bundled (or FHIR_GATEWAY_PROFILES) definitions, the
// subscription topics, the subscriptions kept in the store, and the mapping specs.

#include <memory>
#include <string>

#include "conformance/common/result.h"
#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "mappers/engine/engine.h"

namespace fhir::gateway::cli {

struct Runtime {
  StorePtr store;
  ValidatorPtr validator;
  TopicCatalogPtr topics;
  SubscriptionRegistry registry;
  std::shared_ptr<const mappers::engine::SpecLibrary> specs;
};

// The store `config.store` names: SQLite in config.data_dir, or PostgreSQL (the password read
// from store.passwordFile; it appears in no message).
Result<StorePtr> openStore(const Config& config);

// Loads everything for `config`; an Error names what could not be loaded (one line, for stderr).
Result<std::unique_ptr<Runtime>> loadRuntime(const Config& config);

}  // namespace fhir::gateway::cli

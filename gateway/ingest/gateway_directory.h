// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the mapper may ask while it maps (mappers::Directory), answered from the configuration
// and the store, for one request.

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "mappers/common/directory.h"

namespace fhir::gateway {

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
  // A store failure cannot be said through mappers::Directory (whose answers are data): it is
  // kept, the mapper sees no coverage, and the caller turns the whole mapping into a 503
  // (failure()), never into "no coverage".
  std::vector<fhir::CoverageFact> coverageOf(std::string_view patient_id) const override {
    auto facts = store_.coverageOf(patient_id);
    if (facts.ok()) return std::move(*facts);
    noteFailure(facts.message());
    return {};
  }

  // The stored JSON of a resource for MapOptions::stored_resource, with the same failure rule.
  std::optional<std::string> storedResource(const std::string& type, const std::string& id) const {
    auto stored = store_.readResource(type, id);
    if (!stored.ok()) {
      noteFailure(stored.message());
      return std::nullopt;
    }
    if (!stored->has_value()) return std::nullopt;
    return std::move((*stored)->json);
  }

  // The first store failure met while mapping, if any.
  std::optional<std::string> failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  void noteFailure(const std::string& message) const {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = message;
  }

  const Config& config_;
  Store& store_;
  mutable std::mutex mutex_;
  mutable std::optional<std::string> failure_;
};

}  // namespace fhir::gateway

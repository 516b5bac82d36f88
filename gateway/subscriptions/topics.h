// SPDX-License-Identifier: Apache-2.0
#pragma once

// Subscription topics as data: the R4 Subscriptions Backport representation (Basic resources
// with the R5 SubscriptionTopic cross-version extensions) read from the alignment IG, with each
// resourceTrigger's fhirPathCriteria compiled once.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"

namespace fhir::gateway {

struct TopicTrigger {
  std::string resource_type;  // "ServiceRequest"
  bool on_create = false;
  bool on_update = false;
  bool on_delete = false;
  fhirpath::ExpressionPtr criteria;  // null: every matching interaction fires
};

struct Topic {
  std::string id;         // "econsult-requested"
  std::string canonical;  // "https://fhir.alignment-gateway.org/SubscriptionTopic/econsult-requested"
  std::vector<TopicTrigger> triggers;
  std::vector<std::string> filter_parameters;  // canFilterBy filterParameter values
  std::string basic_json;  // the Basic resource as read, for GET /fhir/SubscriptionTopic
};

// One resource written by an ingest transaction.
struct ResourceChange {
  std::string type;
  std::string id;
  const json::Value* previous = nullptr;  // null on create
  const json::Value* current = nullptr;
};

class TopicCatalog {
 public:
  // Reads every Basic resource coded as SubscriptionTopic in `package_dir`. Errors name the file
  // and the criteria that does not compile.
  static Result<std::shared_ptr<const TopicCatalog>> load(const std::string& package_dir);

  const Topic* find(std::string_view canonical) const;
  const std::vector<Topic>& topics() const { return topics_; }

  // True when `change` fires `topic` (%current and %previous bound as the backport IG says).
  bool fires(const Topic& topic, const ResourceChange& change) const;

 private:
  std::vector<Topic> topics_;
  fhirpath::ModelPtr model_;
};

using TopicCatalogPtr = std::shared_ptr<const TopicCatalog>;

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Routing of billing Claims to the payer that covers the patient on the date of service, and
// the outbound Bundles for payers and static feeds.

#include <optional>
#include <string>

#include "conformance/json/json.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "mappers/common/directory.h"

namespace fhir::gateway {

struct RouteDecision {
  const PayerConfig* payer = nullptr;  // null: unroutable
  std::string reason;                  // why unroutable
};

// The payer for one billing entry: the coverage valid on its date of service, if that payer's
// `routes` take the code and line of business.
RouteDecision routeClaim(const Config& config, const mappers::BillingFact& billing);

// The `collection` Bundle a payer receives: the Claim and the resources it references
// (Patient, Coverage, Practitioner, Organization), taken from the mapped Bundle or, when an
// earlier event stored them, from the store.
std::string payerBundle(const json::Value& mapped_bundle, const std::string& claim_id, Store& store,
                        const std::string& base_url);

inline std::string payerDestination(const std::string& payer_id) { return "payer:" + payer_id; }
inline std::string feedDestination(const std::string& feed_id) { return "feed:" + feed_id; }

}  // namespace fhir::gateway

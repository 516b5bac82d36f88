// SPDX-License-Identifier: Apache-2.0
#pragma once

// GET /fhir/metadata: the CapabilityStatement generated from the route table (fhir_routes.h),
// so it lists exactly what the router serves: every type with its interactions, search
// parameters (with their SearchParameter definitions) and operations, the system interactions
// and operations, the Subscription topics (backport extension on the Subscription entry) and,
// with auth on, SMART Backend Services as rest.security.

#include <string>
#include <vector>

#include "conformance/search/search.h"
#include "gateway/server/fhir_routes.h"

namespace fhir::gateway {

struct CapabilityOptions {
  std::string base_url;                        // implementation.url
  std::string token_url;                       // empty: auth is off, no rest.security
  std::vector<std::string> topic_canonicals;   // on the Subscription entry
};

std::string capabilityStatement(const FhirRoutes& routes, const CapabilityOptions& options);

// The search parameters of `type` as the statement lists them: code, the SearchParameter's
// canonical URL, its type; ordered by code (Registry::forType()).
std::vector<SearchParamInfo> searchParamsOf(const search::Registry& registry, const std::string& type);

// The backport IG's extension naming a topic a server supports.
inline constexpr const char* kTopicCanonicalExtension =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical";

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Topic-based Subscriptions over FHIR (R5 Backport IG for R4, contracts/http-api.md): create
// (with If-None-Exist), read and vread of the current version (ETag, 304), update and delete
// (If-Match: 412 when stale), $status and $events, the SubscriptionTopic listing and the `Basic`
// topics it lists (so its entries' fullUrls resolve). A Subscription's version is kept in its
// meta.versionId: 1 on create, +1 on each update. Every route asks the access policy (scopes,
// the owner: another client's Subscription does not exist for the caller).

#include "gateway/auth/policy.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/http_server.h"

namespace fhir::gateway {

// Registers Subscription, Basic (the topics) and the /fhir/SubscriptionTopic path; without
// topics (context.topics null) the Subscription routes answer 503.
void registerSubscriptionRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy);

}  // namespace fhir::gateway

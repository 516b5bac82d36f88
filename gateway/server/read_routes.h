// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reading the store over FHIR (contracts/query.md "History and versions"): read, vread,
// history-instance, history-type and history-system on every stored type, each answer filtered
// by the access policy (a resource the caller may not see is 404 on read and vread and absent
// from history) and carrying the version headers (ETag, Last-Modified; 304 for a conditional
// read that matches).
//
// History Bundles are newest first; `_since` (an instant), `_count` (default 50, at most 1000)
// and keyset paging: the `next` link carries the last version of the page (`_page`), so pages
// stay right while new versions are written (they are newer than every page's key).

#include <string>
#include <vector>

#include "gateway/auth/policy.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/http_server.h"

namespace fhir::gateway {

// The resource types the gateway stores and serves (query.md's list): each gets read, vread,
// history-instance and history-type.
const std::vector<std::string>& storedResourceTypes();

// Registers the read and history routes on `routes`; `context` and `policy` outlive them.
void registerReadRoutes(FhirRoutes& routes, ServerContext& context, const auth::AccessPolicy& policy);

}  // namespace fhir::gateway

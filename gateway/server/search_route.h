// SPDX-License-Identifier: Apache-2.0
#pragma once

// Search routes (issue 15, contracts/query.md "Search"): `GET /fhir/{type}?…` and
// `POST /fhir/{type}/_search` (form body) answer a `searchset` Bundle with `self` and `next`
// links under the server's base URL. Every candidate goes through the access policy before it is
// counted or paged (Store::search, SearchRequest::visible).

#include <optional>

#include "gateway/auth/audit.h"
#include "gateway/auth/policy.h"
#include "gateway/ingest/answer.h"
#include "gateway/server/http_server.h"
#include "gateway/server/listener.h"

namespace fhir::gateway {

// The answer to a search request; nullopt when `request` is not one (another route serves it).
std::optional<Answer> serveSearch(ServerContext& context, http::Request& request, const auth::Caller& caller,
                                  auth::AuditEntry& audit, const auth::AccessPolicy& policy);

}  // namespace fhir::gateway

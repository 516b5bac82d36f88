// SPDX-License-Identifier: Apache-2.0
#pragma once

// The scorecard's browser routes (issue 20, Build 4 and 5; docs/SCORECARD.md "The pages"):
//  - POST /scorecard/session with `Authorization: Bearer <access token>` (an admin's, or a
//    `practice` client's) answers 200 and `Set-Cookie: scorecard_session=<random id>;
//    Max-Age=900; Path=/scorecard; HttpOnly; Secure; SameSite=Strict`: a browser cannot send a
//    Backend Services token on navigation. The session is kept here (in memory: a restart ends
//    every session), bound to the token's client and scopes, for 15 minutes; the token is never
//    taken from a URL. DELETE /scorecard/session ends it.
//  - GET /scorecard?payer=&practice=&periodStart=&periodEnd= (admin): the convener's page.
//  - GET /scorecard/practice/{npi}?periodStart=&periodEnd=: the practice's unified report, for
//    the admin and the `practice` client of that NPI; any other practice's NPI is 404, as for
//    anything a client may not see; other client kinds 403.
//  - GET /scorecard/quality[?format=json] (admin): the data-quality scorecard, as a page or JSON.
// Pages authenticate with the session cookie or, for API clients, a Bearer token; without an
// `auth` block they are open (loopback only, like the rest). Every request is audited
// (`login`/`session` for the exchange, `scorecard` for pages); the session id and the token
// never appear in an AuditEvent. The figures (every measure for a subject and period, in one
// read of the store; the quality report) are computed on a background thread and kept with the
// data version they were computed at: a page whose figures are older than the data queues a new
// computation and waits for it while computing is quick (under 5 s the last time), otherwise at
// most 250 ms, then shows the figures there are with the time they are "as of"; a page with no
// figures yet answers 202 and reloads itself (`Refresh`). warm() computes the region's page and
// the quality report at start. Thread-safe.

#include <memory>
#include <optional>

#include "gateway/server/http_server.h"
#include "gateway/server/listener.h"

namespace fhir::gateway {

class ScorecardRoutes {
 public:
  explicit ScorecardRoutes(ServerContext& context);
  ~ScorecardRoutes();
  ScorecardRoutes(const ScorecardRoutes&) = delete;
  ScorecardRoutes& operator=(const ScorecardRoutes&) = delete;

  // The answer to a request whose path is /scorecard or under it (authenticated, audited and
  // counted here); nullopt for every other path.
  std::optional<http::Response> handle(http::Request& request);
  // Starts computing the figures the first pages ask for (the region this year, data quality)
  // in the background; nothing for an empty store.
  void warm();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhir::gateway

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
// never appear in an AuditEvent. MeasureReports are cached per (measure, subject, period) and
// kept while the store's newest version is the same (a new commit evaluates again); the quality
// report while that version, the newest quarantine entry and the outbox depths are the same.
// Thread-safe.

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// HTTP semantics shared by every /fhir route (contracts/query.md "HTTP semantics"): format
// negotiation (JSON only: XML is 406), `_pretty`, version headers (ETag W/"<versionId>",
// Last-Modified), conditional reads (If-None-Match, If-Modified-Since: 304), If-Match (412 when
// stale), Prefer (return=minimal|representation|OperationOutcome, handling=lenient), and the
// time formats they use. Plain functions over a request and an answer.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/ingest/answer.h"
#include "gateway/server/fhir_routes.h"
#include "gateway/server/listener.h"

namespace fhir::gateway::fhirhttp {

using Parameters = std::vector<std::pair<std::string, std::string>>;

// Takes `_format` and `_pretty` out of `parameters`. Returns the 406 (or 400 for a bad
// `_pretty`) answer when the client asks for something but JSON (an `Accept` without a JSON type,
// `*/*` or `application/*`; a `_format` that is not json); nullopt when JSON is fine. `pretty`
// receives `_pretty=true`.
std::optional<Answer> negotiate(const http::Request& request, Parameters& parameters, bool& pretty);

// ETag: W/"<version>" and Last-Modified (from meta.lastUpdated, an ISO instant).
void addVersionHeaders(Access& access, int64_t version, std::string_view last_updated);
// A read's conditional headers: true (answer 304) when If-None-Match names this version (or
// `*`), or, without If-None-Match, when If-Modified-Since is not before `last_updated`.
bool notModified(const http::Request& request, int64_t version, std::string_view last_updated);
// If-Match on PUT/DELETE: nullopt without it; else the version it names ("" for `*`, which any
// existing resource matches). Accepts W/"3", "3" and 3.
std::optional<std::string> ifMatch(const http::Request& request);

enum class Return { kRepresentation, kMinimal, kOperationOutcome };
// Prefer: return=... (default representation).
Return preferReturn(const http::Request& request);
// Prefer: handling=lenient.
bool preferLenient(const http::Request& request);
// The answer of a create or update as Prefer asks: the resource, nothing, or an informational
// OperationOutcome saying what was done.
Answer shapedWrite(const http::Request& request, Answer written, const std::string& what);

// The body of a JSON answer, pretty-printed (unchanged when it is not JSON).
std::string prettyJson(const std::string& body);

// RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of seconds since the epoch, and back
// (also the obsolete RFC 850 and asctime forms).
std::string httpDate(int64_t epoch_seconds);
std::optional<int64_t> parseHttpDate(std::string_view text);
// A FHIR instant, dateTime or date ("2026-12-03", "2026-12-03T10:00:00+01:00") as milliseconds
// since the epoch (a date or a time without a zone is UTC); nullopt when it is not one.
std::optional<int64_t> parseInstantMs(std::string_view text);
// Milliseconds since the epoch as the store writes updated_at: 2026-11-24T21:11:55.123Z.
std::string isoMs(int64_t ms);
// A positive decimal integer (a version id, `_count`): digits only, 1 or more, at most 18 digits.
std::optional<int64_t> positiveInteger(std::string_view text);

}  // namespace fhir::gateway::fhirhttp

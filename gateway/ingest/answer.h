// SPDX-License-Identifier: Apache-2.0
#pragma once

// What an ingest request is answered with, and the answers every channel shares: an
// OperationOutcome, and the 503 of a failing store (with Retry-After, nothing quarantined).

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "conformance/outcome/outcome.h"

namespace fhir::gateway {

struct Answer {
  Answer() = default;
  Answer(int status_code, std::string type, std::string text, std::string location_url = {})
      : status(status_code), content_type(std::move(type)), body(std::move(text)), location(std::move(location_url)) {}

  int status = 200;
  std::string content_type = "application/fhir+json";
  std::string body;
  std::string location;  // Location header, when set
  int retry_after = 0;   // Retry-After header in seconds, when > 0 (a 503 of a failing store)
};

// What a replay of a quarantined payload came to: the channel's answer, and `result`:
// "accepted", "rejected" (the channel rejected it again; it stays quarantined), "not-found",
// "not-replayable" (a truncated body, an X12 claim kept without its interchange's envelope,
// a channel without replay) or "failed" (the store failed).
struct ReplayOutcome {
  Answer answer;
  std::string result;
};

// Why a streamed body did not end as declared: 408 (it stopped arriving) or 400 (it ended early,
// or its chunked framing broke), with the reason in words.
struct BodyProblem {
  int status = 400;
  std::string text;
};
// Asked once a streamed body has been read to its end: nullopt when it ended as declared.
using BodyEnded = std::function<std::optional<BodyProblem>()>;

// `issues` as an OperationOutcome answer with `status`.
Answer outcomeAnswer(int status, const IssueList& issues);
// The store failed (disk, SQL, closing): 503 with Retry-After and the issues (or the message);
// the sender posts again (an event it had committed is answered from the store, idempotently).
Answer storeFailureOf(const IssueList& issues);
Answer storeFailure(const std::string& message);

// The media type of a Content-Type (without parameters) and the kinds the channels accept.
std::string_view mediaType(std::string_view content_type);
bool isJsonContentType(std::string_view content_type);
bool isHl7v2ContentType(std::string_view content_type);

}  // namespace fhir::gateway

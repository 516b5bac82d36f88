// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/answer.h"

namespace fhir::gateway {

Answer outcomeAnswer(int status, const IssueList& issues) {
  return Answer{status, "application/fhir+json", toOperationOutcomeJson(issues)};
}

// The store failed (disk, SQL, closing): 503 with Retry-After, nothing quarantined; the sender
// posts again (an event it had committed is answered from the store, idempotently).
constexpr int kStoreRetryAfterSeconds = 1;

Answer storeFailureOf(const IssueList& issues) {
  Answer answer = outcomeAnswer(503, issues);
  answer.retry_after = kStoreRetryAfterSeconds;
  return answer;
}

Answer storeFailure(const std::string& message) {
  IssueList issues;
  issues.add(Issue{Severity::kFatal, "transient", "the store failed: " + message, {}, {}});
  return storeFailureOf(issues);
}

std::string_view mediaType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return media;
}

bool isJsonContentType(std::string_view content_type) {
  std::string_view media = mediaType(content_type);
  return media == "application/json" || media == "application/fhir+json";
}

bool isHl7v2ContentType(std::string_view content_type) { return mediaType(content_type) == "x-application/hl7-v2+er7"; }

}  // namespace fhir::gateway

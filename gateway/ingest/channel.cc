// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/channel.h"

#include "gateway/ingest/channels/channels.h"
#include "gateway/ingest/ingest_service.h"

namespace fhir::gateway {

void registerBuiltinChannels(ChannelTable& table, IngestService& service) {
  table.add("econsult", makeEconsultChannel(service));
  table.add("care-management", makeCareManagementChannel(service));
  table.add("claims", makePayerFileChannel(service, "claims"));
  table.add("roster", makePayerFileChannel(service, "roster"));
}

std::optional<Answer> decodeJsonEvent(IngestService& service, std::string_view channel, std::string_view key_prefix,
                                      std::string_view body, std::string_view content_type, json::Document& event,
                                      std::string& idempotency_key) {
  json::ParseError parse_error;
  if (!json::parse(body, event, parse_error)) {
    IssueList issues;
    std::string where = "line " + std::to_string(parse_error.line) + ", column " + std::to_string(parse_error.column);
    std::string why = "the body is not well-formed JSON: " + parse_error.describe();
    if (auto bad = json::invalidUtf8Offset(body)) {  // issue 14: invalid UTF-8 names its byte offset
      where += ", byte offset " + std::to_string(*bad);
      why += " (not valid UTF-8 at byte offset " + std::to_string(*bad) + ")";
    }
    issues.add(Issue{Severity::kError, "structure", why, {}, {where}});
    return service.reject(channel, body, content_type, 400, issues);
  }
  // Idempotency: a re-posted event (same source + eventId) gets the first answer.
  if (auto source = json::getString(event, "source"), event_id = json::getString(event, "eventId"); source && event_id) {
    idempotency_key = std::string(key_prefix) + std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = service.store().findAnswer(idempotency_key);
    if (!answer.ok()) return storeFailure(answer.message());
    if (answer->has_value()) {
      service.metrics().countIngest(std::string(channel), "duplicate");
      return Answer{(*answer)->status, "application/fhir+json", (*answer)->answer};
    }
  }
  return std::nullopt;
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/pipeline.h"

#include <sstream>

namespace fhir::gateway {

Pipeline::Pipeline(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
                   std::function<void()> on_outbox)
    : service_(config, std::move(store), std::move(validator), metrics, std::move(on_outbox)) {
  registerBuiltinChannels(channels_, service_);
}

Answer Pipeline::ingest(std::string_view channel, const IngestRequest& request) {
  Channel* found = channels_.find(channel);
  if (found == nullptr) {  // registerBuiltinChannels registers every channel the routes name
    IssueList issues;
    issues.add(Issue{Severity::kFatal, "exception", "no ingest channel '" + std::string(channel) + "' is registered", {}, {}});
    return outcomeAnswer(500, issues);
  }
  return found->ingest(request);
}

Answer Pipeline::ingestEconsult(std::string_view body, std::string_view content_type) {
  return ingest("econsult", IngestRequest{{}, content_type, body});
}

Answer Pipeline::ingestCareManagement(std::string_view body, std::string_view content_type) {
  return ingest("care-management", IngestRequest{{}, content_type, body});
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::string_view body,
                                 std::string_view content_type, std::string_view as_of) {
  return ingest(kind, IngestRequest{payer_id, content_type, body, nullptr, {}, as_of});
}

Answer Pipeline::ingestPayerFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                                 std::string_view content_type, const BodyEnded& body_ended, std::string_view as_of) {
  return ingest(kind, IngestRequest{payer_id, content_type, {}, &body, body_ended, as_of});
}

ReplayOutcome Pipeline::replayQuarantined(const std::string& quarantine_id) {
  return gateway::replayQuarantined(service_, channels_, quarantine_id);
}

}  // namespace fhir::gateway

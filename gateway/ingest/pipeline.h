// SPDX-License-Identifier: Apache-2.0
#pragma once

// The ingest pipeline as the server and the CLI see it: the channel table (gateway/ingest/
// channel.h, one channel per format) in front of the channel-neutral IngestService
// (ingest_service.h: map -> merge -> validate -> plan routing and notifications -> commit).
// Thread-safe: request threads call it concurrently; durability comes from the store's commit,
// and the answer is produced only after it.

#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/ingest/answer.h"
#include "gateway/ingest/channel.h"
#include "gateway/ingest/channels/channels.h"
#include "gateway/ingest/ingest_service.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "mappers/engine/engine.h"

namespace fhir::gateway {

class Pipeline {
 public:
  // `validator` may be null only in tests that exercise mapping alone. `on_outbox` is called
  // after a commit that wrote outbox rows (it wakes the delivery workers).
  Pipeline(const Config& config, StorePtr store, ValidatorPtr validator, Metrics& metrics,
           std::function<void()> on_outbox);

  // POST /ingest/econsult: a JSON event, or an HL7 v2 message (x-application/hl7-v2+er7).
  Answer ingestEconsult(std::string_view body, std::string_view content_type);
  // A body refused before ingest (413 with its OperationOutcome) as the answer the sender of
  // `content_type` expects: for HL7 v2 an ER7 ACK with AR and the diagnostics in ERR, else as is.
  static Answer econsultRefusal(Answer refused, std::string_view content_type) {
    return gateway::econsultRefusal(std::move(refused), content_type);
  }

  // POST /ingest/care-management: one care-management event (JSON), mapped by spec
  // `care-management`; billing Claims are routed as e-consult billing is.
  Answer ingestCareManagement(std::string_view body, std::string_view content_type);

  // POST /ingest/claims/{payerId} (`kind` "claims", the payer's `format` spec) and
  // POST /ingest/roster/{payerId} (`kind` "roster"): one Bundle per claim or roster row, each
  // validated and committed; bad records are quarantined and the file goes on.
  // `as_of`: the `asOf` query parameter of a roster (YYYY-MM-DD; required in rosterMode full).
  Answer ingestPayerFile(std::string_view kind, const std::string& payer_id, std::string_view body,
                         std::string_view content_type, std::string_view as_of = {});
  // The same over a stream (the request body as it arrives, chunked or not): records are mapped
  // as they are read, in constant memory, and accepted Bundles are staged in the store in batches
  // of kPayerFileBatch. Only when `body_ended` (when given) reports the body complete are they
  // published (committed, routed, delivered: one group commit per batch); otherwise the file is
  // dropped and the answer is its 400/408. The answer comes after the last commit. Not capped
  // by maxBodyBytes (README, "Configuration").
  Answer ingestPayerFile(std::string_view kind, const std::string& payer_id, std::istream& body,
                         std::string_view content_type, const BodyEnded& body_ended = {},
                         std::string_view as_of = {});
  static constexpr size_t kPayerFileBatch = gateway::kPayerFileBatch;

  // POST /admin/quarantine/{id}/replay and `fhir-gateway replay`: runs a kept payload again
  // through the channel it came in on (with a payer file's payer), so the same mapping and
  // validator decide; answers what that channel answers. A rejection of the payload is recorded
  // against this entry (its id in the OperationOutcome) instead of a new entry; the entry is
  // never deleted: it records the replay, its answer, and "accepted" once one is accepted.
  ReplayOutcome replayQuarantined(const std::string& quarantine_id);

  void setSpecs(std::shared_ptr<const mappers::engine::SpecLibrary> specs) { service_.setSpecs(std::move(specs)); }

  // Keeps `payload` in quarantine and answers `status` with the issues and the quarantine id.
  Answer reject(std::string_view channel, std::string_view payload, std::string_view content_type,
                int status, const IssueList& issues, bool truncated = false) {
    return service_.reject(channel, payload, content_type, status, issues, truncated);
  }

  // Topic-based subscriptions: accepted events record their changes for the SubscriptionMatcher
  // (gateway/subscriptions/matching.h). Without this call no changes are recorded.
  void setSubscriptions(TopicCatalogPtr topics, const SubscriptionRegistry* registry) {
    service_.setSubscriptions(std::move(topics), registry);
  }

  // The merge rules could not be loaded (then nothing is merged): serve refuses to start.
  const Status& mergeStatus() const { return service_.mergeStatus(); }

  // fullUrl base of stored resources (`http://host:port/fhir`).
  void setBaseUrl(std::string base_url) { service_.setBaseUrl(std::move(base_url)); }
  // Who sees what: feeds and rerouted notifications (IngestService::setAccess).
  void setAccess(const auth::AccessPolicy* policy) { service_.setAccess(policy); }

 private:
  Answer ingest(std::string_view channel, const IngestRequest& request);

  IngestService service_;
  ChannelTable channels_;
};

// Replays quarantined entry `quarantine_id` through the channel of `channels` it came in on
// (replay.cc; Pipeline::replayQuarantined).
ReplayOutcome replayQuarantined(IngestService& service, const ChannelTable& channels, const std::string& quarantine_id);

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// The ingest pipeline: decode -> map -> validate -> dispatch -> store, one call per request.
// Thread-safe: request threads call it concurrently; durability comes from the store's commit,
// and the answer is produced only after it.

#include <functional>
#include <map>
#include <memory>
#include <istream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/ingest/contributions.h"
#include "gateway/merge/merge.h"
#include "gateway/server/metrics.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"
#include "mappers/engine/engine.h"

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
  static Answer econsultRefusal(Answer refused, std::string_view content_type);

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
  static constexpr size_t kPayerFileBatch = 256;

  // POST /admin/quarantine/{id}/replay and `fhir-gateway replay`: runs a kept payload again
  // through the channel it came in on (with a payer file's payer), so the same mapping and
  // validator decide; answers what that channel answers. A rejection of the payload is recorded
  // against this entry (its id in the OperationOutcome) instead of a new entry; the entry is
  // never deleted: it records the replay, its answer, and "accepted" once one is accepted.
  ReplayOutcome replayQuarantined(const std::string& quarantine_id);

  void setSpecs(std::shared_ptr<const mappers::engine::SpecLibrary> specs) { specs_ = std::move(specs); }

  // Keeps `payload` in quarantine and answers `status` with the issues and the quarantine id.
  Answer reject(std::string_view channel, std::string_view payload, std::string_view content_type,
                int status, const IssueList& issues, bool truncated = false);

  // Topic-based subscriptions: accepted events record their changes for the SubscriptionMatcher
  // (gateway/subscriptions/matching.h). Without this call no changes are recorded.
  void setSubscriptions(TopicCatalogPtr topics, const SubscriptionRegistry* registry) {
    topics_ = std::move(topics);
    registry_ = registry;
  }

  // The merge rules could not be loaded (then nothing is merged): serve refuses to start.
  const Status& mergeStatus() const { return merge_status_; }

  // fullUrl base of stored resources (`http://host:port/fhir`).
  void setBaseUrl(std::string base_url) { base_url_ = std::move(base_url); }

 private:
  // Parses a JSON event body into `event` and sets `idempotency_key` (`key_prefix` + source +
  // eventId, when both are there). An answer when the request ends here: the 400 of a body that
  // is not JSON (quarantined), or the first answer of a re-posted event.
  std::optional<Answer> decodeEvent(std::string_view channel, std::string_view key_prefix, std::string_view body,
                                    std::string_view content_type, json::Document& event, std::string& idempotency_key);
  // Commits the staged records of payer file `file` (ingestPayerFile) in batches.
  Status publishStaged(std::string_view kind, const std::string& payer_id, const std::string& channel, int64_t file,
                       std::string_view as_of, bool full_roster);
  // Routes the waiting claims of these patients (and the patients linked to them) whose merged
  // coverage now decides; `check_routed`: also lists claims already routed that the coverage
  // now contradicts (GET /admin/routing-conflicts).
  // An error when the store failed (what was done before stays done; the rest is done on the
  // next call for these patients).
  Status routeWaitingClaims(const std::set<std::string>& patients, bool check_routed);
  // The commit that routes one waiting claim: a new version of the Claim whose insurance and
  // insurer are the coverage valid on its date of service, its delivery to that payer and its
  // billing-routed notifications. nullopt when the stored Claim is gone or the new version does
  // not validate (the claim keeps waiting); an error when the store failed.
  Result<std::optional<IngestCommit>> rerouteCommit(const UnroutableWrite& waiting, const mappers::CoverageFact& coverage,
                                            const PayerConfig& payer, const std::vector<Subscription>& live);
  // Drops a staged payer file; a failure is logged and counted (gateway_ingest_events_total
  // {channel="staging",outcome="drop_failed"}), not answered.
  void dropStaged(int64_t file);
  // Quarantines a rejected payload, or during a replay records the rejection on the replayed entry.
  Result<std::string> keep(QuarantineWrite write);

  // E-consult: POST /ingest/econsult with an HL7 v2 REF^I12/RRI^I12 (answered with an ER7 ACK).
  Answer ingestEconsultV2(std::string_view body, std::string_view content_type);
  // Maps one posted event (e-consult, care-management) of `channel` with `spec` and validates it:
  // 0, or the HTTP status of the rejection with its issues. Warnings (unknown members, validator)
  // end up in `issues`. kStoreFailed: the store failed while the mapper read from it (`issues`
  // says so); the caller answers 503 and quarantines nothing.
  static constexpr int kStoreFailed = 503;
  int mapEvent(std::string_view channel, const std::string& spec, const json::Value& record, std::string_view raw,
               mappers::engine::MappedBundle& mapped, IssueList& issues);
  // Stores an accepted event Bundle (e-consult, care-management) with `commit.coverage` set:
  // resources, feed rows, each of `billing` to its payer or waiting, subscription notifications.
  Result<CommitOutcome> commitEvent(const json::Value& bundle, IngestCommit commit,
                                    const std::vector<mappers::BillingFact>& billing, const std::string& patient_id,
                                    EventFacts facts, const ContributionSource& source);

  const Config& config_;
  StorePtr store_;
  ValidatorPtr validator_;
  Metrics& metrics_;
  std::function<void()> on_outbox_;
  std::string base_url_ = "http://127.0.0.1:8080/fhir";
  TopicCatalogPtr topics_;
  std::shared_ptr<const mappers::engine::SpecLibrary> specs_;
  const SubscriptionRegistry* registry_ = nullptr;
  std::shared_ptr<const merge::MergeRules> merge_rules_;
  Status merge_status_ = Status::Ok();
};

}  // namespace fhir::gateway

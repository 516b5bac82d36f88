// SPDX-License-Identifier: Apache-2.0
#pragma once

// The durable store: append-only event log, current resources, coverage index, outbox,
// delivery attempts, quarantine and unroutable claims.
//
// Contract: every write method returns only after its transaction is durable (committed with
// synchronous=FULL on SQLite). Writes from many threads are grouped into shared transactions
// (group commit); an accepted event, its resources and its outbox rows are one transaction, so
// a crash leaves either all or none. Methods are thread-safe. Errors are failures of the store
// itself (disk, SQL), never of the data.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "mappers/common/directory.h"

namespace fhir::gateway {

struct ResourceWrite {
  std::string type;
  std::string id;
  std::string json;  // the resource as mapped, without meta.versionId/lastUpdated
};

struct OutboxWrite {
  std::string destination;  // "payer:<id>" or "feed:<id>" or "subscription:<id>"
  std::string kind;         // "claim", "bundle", "notification"
  std::string body;
};

struct UnroutableWrite {
  std::string claim_id;
  std::string patient_id;
  std::string date_of_service;
  std::string code;
  std::string reason;
  std::string outcome_json;
};

// A resource written by an ingest transaction, as the subscription matcher sees it.
struct ResourceChangeRecord {
  std::string type;
  std::string id;
  std::string previous_json;  // empty on create
  const std::string* current_json = nullptr;
};

// Called inside the ingest transaction with the resources that changed, so notifications are
// queued atomically with the event; it appends outbox rows.
using ChangeHook = std::function<void(const std::vector<ResourceChangeRecord>& changes,
                                      std::vector<OutboxWrite>& outbox)>;

struct IngestCommit {
  std::string channel;          // "econsult", ...
  std::string idempotency_key;  // e.g. source + '\x1f' + eventId
  std::string payload;          // the raw request body
  int status = 202;             // the HTTP answer recorded for idempotent re-posts
  std::string answer;
  std::vector<ResourceWrite> resources;
  std::vector<mappers::CoverageFact> coverage;
  std::vector<OutboxWrite> outbox;
  std::vector<UnroutableWrite> unroutable;
  ChangeHook on_changes;  // optional
  // A waiting claim this commit routes: it is marked routed in the same transaction. When it is
  // no longer waiting (routed meanwhile) nothing is written and the outcome is a duplicate.
  std::string routes_unroutable;
};

struct CommitOutcome {
  bool duplicate = false;  // the key was already committed: status/answer are the first ones
  int status = 0;
  std::string answer;
  int64_t event_seq = 0;
};

struct StoredAnswer {
  int status = 0;
  std::string answer;
};

struct StoredResource {
  std::string json;  // with meta.versionId and meta.lastUpdated filled in
  int64_t version = 0;
};

struct QuarantineWrite {
  std::string channel;
  std::string content_type;
  std::string payload;
  bool truncated = false;  // payload is only the first bytes of an oversized body
  std::string outcome_json;
  // One record cut out of a larger body (a claim or roster row), not the whole body.
  bool record = false;
  // Bytes a replay puts before and after the payload so the channel can read it alone (a CSV
  // record's header line; an X12 claim's interchange envelope and transaction header before it,
  // its SE, GE and IEA after it); empty when none is needed or known.
  std::string replay_prefix = {};
  std::string replay_suffix = {};
};

struct QuarantineEntry {
  std::string id;
  std::string channel;
  std::string received_at;
  std::string content_type;
  std::string payload;
  bool truncated = false;
  std::string outcome_json;
  bool record = false;
  std::string replay_prefix;
  std::string replay_suffix;
  std::string status;       // "quarantined", or "accepted" once a replay was accepted
  int64_t replays = 0;      // how many times it was replayed
  std::string replayed_at;  // of the last replay, empty when none
  int replay_status = 0;    // HTTP status the channel answered the last replay with
  std::string replay_answer;
};

// The demographic key roster rows are matched by when no member id matches
// (payer-formats.md): exact family name, first given name, birth date and sex.
struct PatientDemographics {
  std::string family;
  std::string given;
  std::string birth_date;
  std::string gender;
  bool complete() const { return !family.empty() && !given.empty() && !birth_date.empty() && !gender.empty(); }
};

struct OutboxItem {
  int64_t id = 0;
  std::string destination;
  int64_t number = 0;  // X-Event-Number: 1, 2, 3 ... per destination
  std::string kind;
  std::string body;
  int attempts = 0;
  int64_t created_ms = 0;
  int64_t first_attempt_ms = 0;  // 0 before the first attempt
  int64_t next_attempt_ms = 0;
  std::string last_error;        // of the latest failed attempt, empty when none
};

struct DeliveryAttempt {
  int64_t outbox_id = 0;
  int64_t at_ms = 0;
  int http_status = 0;  // 0 when no HTTP answer (refused, timeout)
  std::string error;    // empty on success
  int64_t duration_ms = 0;
};

struct DestinationDepth {
  std::string destination;
  int64_t pending = 0;
  int64_t dead = 0;
  int64_t oldest_pending_ms = 0;  // created_ms of the oldest pending row, 0 if none
};

struct SubscriptionRow {
  std::string id;
  std::string status;
  std::string error;
  std::string resource_json;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::optional<StoredAnswer>> findAnswer(std::string_view idempotency_key) = 0;
  // Commits an accepted event. When the key is already present nothing is written and the
  // outcome carries the first answer (duplicate = true).
  virtual Result<CommitOutcome> commitIngest(IngestCommit commit) = 0;
  // Commits many accepted records, grouped into as few transactions as the writer makes; the
  // outcomes are in input order. Returns after all of them are durable.
  virtual Result<std::vector<CommitOutcome>> commitIngestMany(std::vector<IngestCommit> commits) = 0;
  // Keeps a rejected payload; returns its quarantine id.
  virtual Result<std::string> quarantine(QuarantineWrite write) = 0;
  virtual Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) = 0;
  virtual Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) = 0;
  // Entries no replay has been accepted for yet, oldest first.
  virtual Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) = 0;
  // Records a replay of an entry and the channel's answer; `accepted` marks it "accepted". The
  // entry itself stays (nothing is deleted). False when no entry has this id.
  virtual Result<bool> recordReplay(std::string_view id, int status, std::string_view answer, bool accepted) = 0;

  virtual Result<std::optional<StoredResource>> readResource(std::string_view type,
                                                              std::string_view id) = 0;
  virtual Result<std::vector<mappers::CoverageFact>> coverageOf(std::string_view patient_id) = 0;

  // Outbox: the lowest-numbered pending row of a destination, if its next attempt is due.
  virtual Result<std::optional<OutboxItem>> nextDue(std::string_view destination, int64_t now_ms) = 0;
  virtual Status recordDelivered(const DeliveryAttempt& attempt) = 0;
  // The same without waiting: the mark joins the writer's next group commit and `on_commit`
  // runs (on the writer thread) once it is durable. Until then the caller must not send the row
  // again; after a crash before the commit the row is still pending and is sent again with the
  // same Idempotency-Key.
  virtual void recordDeliveredAsync(const DeliveryAttempt& attempt, std::function<void(const Status&)> on_commit) = 0;
  // Up to `limit` pending rows of a destination in number order, due or not.
  virtual Result<std::vector<OutboxItem>> pendingHead(std::string_view destination, size_t limit) = 0;
  // A failed attempt: the row waits until `next_attempt_ms`, or becomes a dead letter.
  virtual Status recordFailed(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) = 0;
  // Delivery worker's batched forms. Pending rows of a destination numbered above `after`, in
  // number order, at most `limit`.
  virtual Result<std::vector<OutboxItem>> pendingAfter(std::string_view destination, int64_t after, size_t limit) = 0;
  // Many delivered-marks in one job of the writer's next group; `on_commit` runs once they are
  // durable (or failed), as for recordDeliveredAsync.
  virtual void recordDeliveredManyAsync(std::vector<DeliveryAttempt> attempts,
                                        std::function<void(const Status&)> on_commit) = 0;
  // recordFailed without waiting; `on_commit` as above.
  virtual void recordFailedAsync(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead,
                                 std::function<void(const Status&)> on_commit) = 0;
  virtual Result<std::vector<DestinationDepth>> outboxDepth() = 0;
  virtual Result<std::vector<DeliveryAttempt>> attemptsOf(int64_t outbox_id) = 0;
  // Rows of a destination with numbers in [from, to], in order (delivered or not).
  virtual Result<std::vector<OutboxItem>> outboxRange(std::string_view destination, int64_t from, int64_t to) = 0;
  // The last number given to a destination (0 when none).
  virtual Result<int64_t> lastNumber(std::string_view destination) = 0;

  // Dead letters: rows that gave up. replay puts one back at the head of its destination.
  virtual Result<std::vector<OutboxItem>> listDeadLetters(size_t limit) = 0;
  // Returns false when no dead letter has this id.
  virtual Result<bool> replayDeadLetter(int64_t outbox_id) = 0;
  // Claims waiting for a payer: JSON objects {claimId, patientId, dateOfService, code, reason, outcome}.
  virtual Result<std::vector<UnroutableWrite>> listUnroutable(size_t limit) = 0;

  // Patients that coverage with this payer member id was recorded for (events, claims, rosters).
  virtual Result<std::vector<std::string>> patientsWithMember(std::string_view payer_id, std::string_view member_id) = 0;
  // Stored Patients with exactly these demographics (name[0].family, name[0].given[0],
  // birthDate, gender), indexed whenever a Patient is written.
  virtual Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) = 0;
  // A patient's claims still waiting for a payer.
  virtual Result<std::vector<UnroutableWrite>> unroutableOf(std::string_view patient_id) = 0;
  // (A waiting claim is routed by an IngestCommit with `routes_unroutable`.)

  // Subscriptions (resource JSON and status), kept across restarts.
  virtual Status putSubscription(const SubscriptionRow& row) = 0;
  virtual Status deleteSubscription(std::string_view id) = 0;
  virtual Result<std::vector<SubscriptionRow>> listSubscriptions() = 0;

  // Client assertion replay protection (access.md, shared by every instance on the store):
  // records `jti` of `client_id` until `expires_ms`. True when it is new (or its earlier record
  // has expired); false when the same (client, jti) is recorded and not expired: a replay.
  // Records past their expiry are removed as new ones are written.
  virtual Result<bool> claimAssertionJti(std::string_view client_id, std::string_view jti, int64_t expires_ms,
                                         int64_t now_ms) = 0;
};

using StorePtr = std::shared_ptr<Store>;

// Opens (creating when needed) the SQLite store in `data_dir` (gateway.db, WAL mode).
Result<StorePtr> openSqliteStore(const std::string& data_dir);

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// The durable store: append-only event log, current resources, coverage index, outbox,
// delivery attempts, quarantine, unroutable claims, outbox leases and the change log.
//
// The contract (every implementation passes tests/gateway/store_contract_test.cc):
// - Durability: every write method returns only after its transaction is durable (committed
//   with synchronous=FULL on SQLite). Writes from many threads may be grouped into shared
//   transactions (group commit); an accepted event, its resources, its outbox rows, its
//   uniqueness slots and its change record are one transaction, so a crash leaves all or none.
// - Numbers: outbox rows get 1, 2, 3 ... per destination, without gaps, in commit order, also
//   when several threads or several store handles (processes) on one database commit at once.
// - Uniqueness rules are checked inside the commit transaction, not by callers' locks: the
//   idempotency key (a second commit with a key returns the first answer) and unique slots
//   (IngestCommit::unique_slots: a slot held by another owner refuses the whole commit).
// - Leases: a destination's pending rows are sent only by the holder of its lease (claimLease);
//   a lease runs out at its expiry unless extended and may then be taken over by another holder,
//   also through another handle on the same database.
// - Threads: every method may be called from any thread at any time; callbacks of the *Async
//   methods run on a store thread and must not call back into the store and wait.
// - Ownership: arguments are copied or moved in; nothing returned refers to store memory.
// - Errors: a failed Result/Status is a failure of the store itself (disk, SQL, closing), never
//   a statement about the data: "not found" is an empty optional / empty list / false, so
//   callers must turn an error into a retry (503), never into "no data".

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/merge/merge.h"
#include "conformance/common/coverage.h"

namespace fhir::search {
struct Query;
}

namespace fhir::gateway {

namespace searchindex {
struct PreparedIndex;  // search_index.h
}
struct MergeTrace;  // merge_trace.h

struct ResourceWrite {
  std::string type;
  std::string id;
  std::string json;  // the resource as mapped, without meta.versionId/lastUpdated
  // What decides "unchanged, no new version" when not empty (default: the JSON itself). A merge
  // Provenance leaves its `recorded` out of it, so citing the same contributions again adds no
  // version.
  std::string same_as = {};
  // The search index rows of `json`, computed on the caller's thread before the commit
  // (prepareIndex below), so the writer only inserts them. The writer uses them only when they
  // were computed from exactly this `json` (its length and digest); otherwise (none, or the JSON
  // changed after) it computes the rows itself. So the index is always that of what is stored.
  std::shared_ptr<const searchindex::PreparedIndex> index = {};
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

// Matches changed resources against subscriptions and appends notification rows (the
// subscription matcher's signature; it runs after the commit, never inside the store).
using ChangeHook = std::function<void(const std::vector<ResourceChangeRecord>& changes,
                                      std::vector<OutboxWrite>& outbox)>;

// A uniqueness rule as data: at most one owner per key, across every commit (ACM slot: one ACM
// per patient, specialist and calendar month; its owner is the event that billed it).
struct UniqueSlot {
  std::string key;    // e.g. "acm|<claim id>"
  std::string owner;  // commits with the same owner may write the slot again
};

// A claim handed to a payer's outbox: kept so that a later roster contradicting the routing is
// noticed (GET /admin/routing-conflicts); the claim itself is never sent to another payer.
struct RoutedClaim {
  std::string claim_id;
  std::string patient_id;
  std::string payer_id;
  std::string date_of_service;
  std::string code;
};

// A roster or claim file that, after the fact, says another payer (or none) covered a claim
// already delivered.
struct RoutingConflict {
  RoutedClaim routed;
  std::string now_payer_id;  // empty: no payer decides any more
  std::string reason;
  std::string detected_at;
};

// Two Patients that share a payer member id (one Coverage) but disagree on demographics: they
// are not merged (issue 11); `sources` names each side's contributions.
struct PatientConflict {
  std::string coverage_id;
  std::string patient_a;
  std::string patient_b;
  std::string elements;   // e.g. "birthDate"
  std::string detail;     // JSON object: each side's values and sources
  std::string detected_at;
};

// One audit record (access.md "Audit"), appended and never changed.
struct AuditRecord {
  int64_t id = 0;            // given by the store
  int64_t recorded_ms = 0;
  std::string subtype;       // the interaction: read, search, create, update, delete, token, ...
  std::string agent;         // client id; empty: no (valid) token
  std::string address;       // the client's network address
  std::vector<std::string> entities;  // "Patient/123", ...
  std::string json;          // the AuditEvent resource without `id` (readers give it the row id)
};

struct IngestCommit {
  std::string channel;          // "econsult", ...
  std::string idempotency_key;  // e.g. source + '\x1f' + eventId
  std::string payload;          // the raw request body
  int status = 202;             // the HTTP answer recorded for idempotent re-posts
  std::string answer;
  std::vector<ResourceWrite> resources;
  std::vector<CoverageFact> coverage;
  std::vector<OutboxWrite> outbox;
  std::vector<UnroutableWrite> unroutable;
  // Non-empty: when any resource changed, the commit records a change row with this context
  // (opaque to the store) and the changed resources' versions, which the subscription matcher
  // reads after the commit (changesAfter). Empty: no change row.
  std::string change_context;
  // Checked and taken inside the transaction, before anything is written.
  std::vector<UniqueSlot> unique_slots;
  // A waiting claim this commit routes: it is marked routed in the same transaction. When it is
  // no longer waiting (routed meanwhile) nothing is written and the outcome is a duplicate.
  std::string routes_unroutable;
  // Sources' facts about merged resource types (Patient, Coverage, Group), merged by the
  // store's MergeHook in this transaction; `remerge` names resources ("Group/<id>") to merge
  // again without a new contribution; `defer_groups`: Group contributions wait for a re-merge
  // (one Group version per roster file).
  std::vector<merge::Contribution> contributions;
  std::vector<std::string> remerge;
  bool defer_groups = false;
  // Every contribution's JSON passed the validator as an entry of the event's Bundle (the
  // service's commitEvent): a merge that gives one of them back unchanged needs no second check.
  bool contributions_validated = false;
  // Claims this commit hands to payers.
  std::vector<RoutedClaim> routed;
  // The AuditEvents of the access that makes this commit (access.md "Audit": written with the
  // data, same transaction). Appended when the commit writes its event or finds it already
  // committed (a duplicate); not when a unique slot is taken or the waiting claim was routed
  // meanwhile (CommitOutcome::audited says which).
  std::vector<AuditRecord> audit = {};
  // Validate last (issue 12): what the service merged and validated before this commit
  // (gateway/merge/merge_preview.h). When `merge_checked`, the merge in this transaction must
  // give exactly these writes (type, id and same_as, else JSON, in order), and these are
  // written; when it gives anything else (another commit changed what they merge since),
  // nothing is written and the outcome says `merge_changed`: the service merges and validates
  // again.
  bool merge_checked = false;
  std::vector<ResourceWrite> merge_expected = {};
  // With `merge_checked`: the calls the service's merge made on its MergeTx and what each read
  // returned (merge_trace.h). A store may replay them instead of running the MergeHook: when
  // every read returns the same in its transaction, the merge is `merge_expected`.
  std::shared_ptr<const MergeTrace> merge_trace = {};
};

struct CommitOutcome {
  bool duplicate = false;  // the key was already committed: status/answer are the first ones
  int status = 0;
  std::string answer;
  int64_t event_seq = 0;
  // Set when a unique slot is held by another owner: nothing was written, status/answer unset.
  std::string slot_taken = {};   // the slot's key
  std::string slot_owner = {};   // who holds it
  int64_t slot_event_seq = 0;    // the event that took it
  bool audited = false;          // IngestCommit::audit was appended in this commit's transaction
  // IngestCommit::merge_checked and the merge is no longer the validated one: nothing written.
  bool merge_changed = false;
};

struct StoredAnswer {
  int status = 0;
  std::string answer;
};

struct StoredResource {
  std::string json;  // with meta.versionId and meta.lastUpdated filled in
  int64_t version = 0;
};

// One kept version of a resource (query.md "History and versions").
struct ResourceVersion {
  std::string type;
  std::string id;
  int64_t version = 0;
  std::string updated_at;  // meta.lastUpdated as stored (UTC, milliseconds, 'Z')
  std::string json;        // with meta.versionId and meta.lastUpdated filled in
  int64_t event_seq = 0;   // the commit that wrote it; 0 for a version kept before history was
};

// A page of history, newest first: by the writing commit (event_seq) descending, then type, id
// and version descending. Keyset paging: `before` is the last version of the previous page, and
// versions committed after the first page was read never shift a later page.
struct HistoryQuery {
  std::string type;   // empty: every type (system level)
  std::string id;     // with `type`: one resource (instance level)
  std::string since;  // only versions with updated_at >= since (same format); empty: all
  size_t count = 50;
  std::optional<ResourceVersion> before;  // its event_seq, type, id and version are used
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
  // SHA-256 (hex) of the whole payload when `payload` is only its first bytes; empty: the store
  // takes the digest of `payload`.
  std::string payload_sha256 = {};
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
  // The same payload on the same channel is kept once (issue 14): how often it came, when last.
  int64_t count = 1;
  std::string last_received_at;
  std::string payload_sha256;  // of the whole payload as received
  int64_t payload_bytes = 0;   // bytes kept (payload may be empty in a listing)
};

// One page of GET /admin/quarantine: newest first, filtered.
struct QuarantineQuery {
  size_t count = 50;     // entries per page
  std::string cursor;    // next_cursor of the previous page; empty: from the newest
  std::string channel;   // exact channel; empty: any
  std::string status;    // "quarantined" or "accepted"; empty: any
  std::string since;     // entries whose last arrival is at or after this instant (ISO 8601 UTC)
};
struct QuarantinePage {
  std::vector<QuarantineEntry> entries;  // without their payloads (readQuarantine has them)
  std::string next_cursor;               // empty on the last page
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

// The writer's transaction as the merge (gateway/merge/merge_service.h) sees it: contributions,
// patient clusters and conflicts. Only valid inside Store::MergeHook.
class MergeTx {
 public:
  virtual ~MergeTx() = default;
  // Keeps a contribution (replacing the one of the same type, id and contributor).
  virtual Status putContribution(const merge::Contribution& contribution) = 0;
  virtual Result<std::vector<merge::Contribution>> contributions(std::string_view type, std::string_view id) = 0;
  // (type, id) of every contribution about this patient.
  virtual Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) = 0;
  // Patients other contributions to the same Coverage ids are about.
  virtual Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) = 0;
  virtual Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) = 0;
  // Patients a recorded link (putLink) joins to this one.
  virtual Result<std::vector<std::string>> linked(std::string_view patient_id) = 0;
  // The surviving Patient recorded for a patient; empty when none is.
  virtual Result<std::string> survivorOf(std::string_view patient_id) = 0;
  virtual Status setSurvivor(std::string_view patient_id, std::string_view survivor_id) = 0;
  // A link between two patients and what it rests on ("member-id ...", "demographics ...").
  virtual Status putLink(std::string_view patient_id, std::string_view other_id, std::string_view evidence) = 0;
  virtual Status putConflict(const PatientConflict& conflict) = 0;
};

// Called in the ingest transaction when a commit carries contributions or asks for a re-merge:
// appends the merged resources to write (a resource whose merge did not change gets no new
// version) and their coverage facts (which replace the index rows of those Coverage ids).
using MergeHook = std::function<Status(MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                                       std::vector<CoverageFact>& coverage)>;

// In the ingest transaction, after the MergeHook: whether its `merged` writes are the ones the
// commit was checked with (IngestCommit::merge_checked); when they are, `merged` becomes the
// validated writes. Every Store implementation calls it.
inline bool takeCheckedMerge(const IngestCommit& commit, std::vector<ResourceWrite>& merged) {
  if (!commit.merge_checked) return true;
  if (merged.size() != commit.merge_expected.size()) return false;
  for (size_t i = 0; i < merged.size(); ++i) {
    const ResourceWrite& a = merged[i];
    const ResourceWrite& b = commit.merge_expected[i];
    if (a.type != b.type || a.id != b.id || (a.same_as.empty() ? a.json : a.same_as) != (b.same_as.empty() ? b.json : b.same_as)) {
      return false;
    }
  }
  merged = commit.merge_expected;
  return true;
}

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

// Who may send a destination's pending rows, until when.
struct OutboxLease {
  std::string destination;
  std::string holder;  // empty: nobody
  int64_t expires_ms = 0;
};

// A resource written by a committed event, as the change log gives it back.
struct ChangedResource {
  std::string type;
  std::string id;
  int64_t version = 0;
  std::string previous_json;  // empty on create
  std::string current_json;
};

// One committed event's changes (IngestCommit::change_context and the resources it changed).
struct ChangeRecord {
  int64_t event_seq = 0;
  std::string context;
  std::vector<ChangedResource> resources;
};

// An outbox row planned from a change record.
struct PlannedOutbox {
  int64_t event_seq = 0;
  OutboxWrite write;
};

struct SubscriptionRow {
  std::string id;
  std::string status;
  std::string error;
  std::string resource_json;
  // The client that created it (access.md: an hie client's own Subscriptions); empty when auth
  // was off. A put with an empty owner keeps the recorded one.
  std::string owner = {};
  // Appended in the same transaction as the row (the AuditEvent of the request that wrote it).
  std::vector<AuditRecord> audit = {};
};

// Where a stored resource came from, for the access policy (gateway/auth/policy.h): the events
// that wrote any of its versions, the contributions merged into it, and the payers a Claim of
// this id was routed to.
struct ResourceOrigins {
  struct Event {
    std::string channel;          // "econsult", "care-management", "claims:<payer>", ...
    std::string idempotency_key;  // as committed (IngestCommit::idempotency_key)
    std::string payload;          // the raw body; only when asked for
  };
  std::vector<Event> events;
  std::vector<merge::Contribution> contributions;  // with their JSON
  std::vector<std::string> routed_payers;
  // Patient only: the JSON of the Group contributions (attribution) that list it as a member.
  std::vector<std::string> attributions = {};
};

struct AuditQuery {
  int64_t id = 0;         // exactly this record; 0: any
  int64_t from_ms = 0;    // recorded at or after; 0: any
  int64_t to_ms = 0;      // recorded before; 0: any
  std::string agent;      // exact client id or address
  std::string entity;     // exact "Type/id"
  std::string subtype;
  size_t count = 100;
};

// One mapped record of a payer file waiting in staging until the body has ended as declared.
struct StagedRecord {
  int64_t seq = 0;         // 1, 2, 3 ... within the file
  std::string record_id;   // the source record's id (claim id, roster row)
  std::string bundle_json; // the mapped, validated Bundle
};

// Search (issue 15, contracts/query.md): what Store::search reads one page with.
struct SearchRequest {
  const search::Query* query = nullptr;  // parsed by search::parseQuery; must outlive the call
  std::string cursor;                    // the previous page's next_cursor; empty: the first page
  int64_t now_us = 0;                    // the instant `ap` measures from (microseconds, UTC)
  std::string base_url;                  // absolute references under it are local ("Patient/1")
  // What the caller may see of a stored resource (auth::AccessPolicy::visible): the JSON it sees,
  // nullopt when it may not see it at all. Applied to every candidate before it is counted or
  // paged, and to _include/_revinclude and chain targets. Null: everything is visible.
  std::function<Result<std::optional<std::string>>(std::string_view type, std::string_view id,
                                                   const std::string& json)> visible = {};
};

struct SearchHit {
  std::string type;
  std::string id;
  std::string json;      // as the caller may see it, with meta.versionId and meta.lastUpdated
  int64_t version = 0;
  bool include = false;  // an _include/_revinclude target (search.mode "include"), else a match
};

struct SearchPage {
  std::vector<SearchHit> entries;  // the page's matches in order, then the included resources
  int64_t total = -1;              // matches over all pages; -1: not counted (_total=none, or unknown)
  std::string next_cursor;         // empty on the last page
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
  // Keeping the same payload (same channel, same SHA-256) again while its entry is still
  // quarantined counts it on that entry and returns its id: nothing is stored twice.
  virtual Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) = 0;
  virtual Result<QuarantinePage> listQuarantinePage(const QuarantineQuery& query) = 0;
  virtual Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) = 0;
  // Entries no replay has been accepted for yet, oldest first.
  virtual Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) = 0;
  // Records a replay of an entry and the channel's answer; `accepted` marks it "accepted". The
  // entry itself stays (nothing is deleted). False when no entry has this id.
  virtual Result<bool> recordReplay(std::string_view id, int status, std::string_view answer, bool accepted) = 0;

  virtual Result<std::optional<StoredResource>> readResource(std::string_view type,
                                                              std::string_view id) = 0;
  virtual Result<std::vector<CoverageFact>> coverageOf(std::string_view patient_id) = 0;
  // One kept version (vread); empty when the resource or that version is not kept.
  virtual Result<std::optional<StoredResource>> readVersion(std::string_view type, std::string_view id,
                                                            int64_t version) = 0;
  // Kept versions in history order (HistoryQuery), at most query.count.
  virtual Result<std::vector<ResourceVersion>> history(const HistoryQuery& query) = 0;

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

  // Outbox leases (per destination). Claims, extends or takes over the lease of `destination` for
  // `holder` until now_ms + duration_ms when it is free, expired, already `holder`'s, or held by
  // `dead_holder` (non-empty: a holder the caller knows has died, e.g. a killed process on this
  // host). Returns the lease as it stands after the call: the caller holds it only when its
  // holder is `holder`. Durable like every write.
  virtual Result<OutboxLease> claimLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                                         int64_t duration_ms, std::string_view dead_holder) = 0;
  // Moves the expiry of `holder`'s lease to now_ms + duration_ms. False when `holder` no longer
  // holds it (taken over or released): the caller must stop sending the destination's rows and
  // forget what it read of them.
  virtual Result<bool> extendLease(std::string_view destination, std::string_view holder, int64_t now_ms,
                                   int64_t duration_ms) = 0;
  // Gives the lease up; nothing happens when `holder` does not hold it.
  virtual Status releaseLease(std::string_view destination, std::string_view holder) = 0;
  virtual Result<std::optional<OutboxLease>> leaseOf(std::string_view destination) = 0;

  // Change log: committed events' change records with event_seq > after_seq, in seq order, at
  // most `limit`.
  virtual Result<std::vector<ChangeRecord>> changesAfter(int64_t after_seq, size_t limit) = 0;
  // The last change seq `consumer` has processed (0 when none).
  virtual Result<int64_t> changeCursor(std::string_view consumer) = 0;
  // In one transaction: appends `outbox` (numbered like commitIngest's rows) and moves
  // `consumer`'s cursor from `from_seq` to `to_seq`. False, with nothing written, when the cursor
  // is no longer at `from_seq` (another handle processed these changes): exactly once.
  virtual Result<bool> commitPlanned(std::string_view consumer, int64_t from_seq, int64_t to_seq,
                                     std::vector<PlannedOutbox> outbox) = 0;

  // Payer files staged as they stream (issue 14). Nothing staged is readable, routed or delivered:
  // the pipeline publishes a file's records through commitIngestMany only once its body has
  // ended as declared, then drops the file; a body that ended early is dropped unpublished.
  // Staged files are never answered, so a start-up drops every one left by a previous process.
  virtual Result<int64_t> beginStagedFile(std::string_view channel) = 0;
  // Appends records (their `seq` ascending, above the file's earlier ones) in one transaction.
  virtual Status stageRecords(int64_t file, std::vector<StagedRecord> records) = 0;
  // The file's records with seq > `after_seq`, in order, at most `limit`.
  virtual Result<std::vector<StagedRecord>> stagedRecords(int64_t file, int64_t after_seq, size_t limit) = 0;
  // Deletes the file and all its staged records.
  virtual Status dropStagedFile(int64_t file) = 0;
  // Number of staged files and records held (what a test checks is left behind).
  virtual Result<std::pair<int64_t, int64_t>> stagedCounts() = 0;

  // Many sources (issue 11). The hook merges contributions in the ingest transaction.
  virtual void setMergeHook(MergeHook hook) = 0;
  // Runs `read` over a read-only MergeTx on one consistent snapshot of the merge's tables, outside
  // the writer (validate last: the service merges a commit before it commits). Writes through
  // the view fail; its result is `read`'s.
  virtual Status readMerge(const std::function<Status(MergeTx&)>& read) = 0;
  // The patient and every patient linked to it (one surviving Patient), the patient first.
  virtual Result<std::vector<std::string>> clusterOf(std::string_view patient_id) = 0;
  virtual Result<std::vector<RoutedClaim>> routedOf(std::string_view patient_id) = 0;
  // A waiting claim's reason changed (the coverage timeline did, and still does not decide).
  virtual Status updateUnroutableReason(std::string_view claim_id, std::string_view reason, std::string_view outcome_json) = 0;
  virtual Status putRoutingConflict(const RoutingConflict& conflict) = 0;
  virtual Result<std::vector<RoutingConflict>> listRoutingConflicts(size_t limit) = 0;
  virtual Result<std::vector<PatientConflict>> listConflicts(size_t limit) = 0;

  // Subscriptions (resource JSON and status), kept across restarts.
  virtual Status putSubscription(const SubscriptionRow& row) = 0;
  // `audit` is appended in the same transaction as the delete.
  virtual Status deleteSubscription(std::string_view id, std::vector<AuditRecord> audit) = 0;
  virtual Result<std::vector<SubscriptionRow>> listSubscriptions() = 0;

  // Client assertion replay protection (access.md, shared by every instance on the store):
  // records `jti` of `client_id` until `expires_ms`. True when it is new (or its earlier record
  // has expired); false when the same (client, jti) is recorded and not expired: a replay.
  // Records past their expiry are removed as new ones are written.
  virtual Result<bool> claimAssertionJti(std::string_view client_id, std::string_view jti, int64_t expires_ms,
                                         int64_t now_ms) = 0;

  // Access (issue 13). What a resource's ownership rests on; `with_payloads` also reads the
  // events' bodies (practice NPIs). A resource never written gives empty lists.
  virtual Result<ResourceOrigins> originsOf(std::string_view type, std::string_view id, bool with_payloads) = 0;
  // Appends audit records in one transaction (append-only: nothing updates or deletes them);
  // each gets the next row id.
  virtual Status appendAudit(std::vector<AuditRecord> records) = 0;
  // Audit records matching every given criterion, oldest first, at most query.count.
  virtual Result<std::vector<AuditRecord>> listAudit(const AuditQuery& query) = 0;
  // Search (issue 15): one page of the resources of query->type that match, selected over the
  // index rows written with each resource (search::extractIndex, same transaction) and checked
  // again with search::matches. Keyset paging: next_cursor carries the last sort key and entry,
  // so a resource that matched and did not change appears exactly once across the pages while
  // others write; with `_sort` the pages also leave out what was written after the first page.
  // An invalid cursor is an Error whose message starts with "invalid:".
  virtual Result<SearchPage> search(const SearchRequest& request) {
    (void)request;
    return Error{"not-supported: this store does not search"};
  }
  // GET /readyz: the store's kind ("sqlite", "postgresql") once a round trip to it succeeded; an
  // error when it cannot be reached. The default reads through lastNumber.
  virtual Result<std::string> probe() {
    auto read = lastNumber("");
    if (!read.ok()) return read.error();
    return std::string("sqlite");
  }
};

using StorePtr = std::shared_ptr<Store>;

// Computes, on the calling thread, the search index rows of every resource `commit` writes (its
// resources and its checked merge, IngestCommit::merge_expected) that has none yet
// (ResourceWrite::index): the store's single writer then only inserts them (issue 12: FHIRPath
// over every search parameter, off the writer). Optional: a write without rows is indexed by the
// writer. Both stores use these rows (search_exec.cc).
void prepareIndex(IngestCommit& commit);

// Opens (creating when needed) the SQLite store in `data_dir` (gateway.db, WAL mode).
Result<StorePtr> openSqliteStore(const std::string& data_dir);

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#pragma once

// A Store that forwards every call to another one: tests derive from it and override the calls
// they make fail (a store error injected where the ingest path reads or writes).

#include <utility>

#include "gateway/store/store.h"

namespace fhir::gateway::test_stores {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(StorePtr inner) : inner_(std::move(inner)) {}
  const StorePtr& inner() const { return inner_; }

  // Store
  Result<std::optional<StoredAnswer>> findAnswer(std::string_view idempotency_key) override { return inner_->findAnswer(idempotency_key); }
  Result<CommitOutcome> commitIngest(IngestCommit commit) override { return inner_->commitIngest(std::move(commit)); }
  Result<std::vector<CommitOutcome>> commitIngestMany(std::vector<IngestCommit> commits) override { return inner_->commitIngestMany(std::move(commits)); }
  Result<std::string> quarantine(QuarantineWrite write) override { return inner_->quarantine(std::move(write)); }
  Result<std::vector<QuarantineEntry>> listQuarantine(size_t limit) override { return inner_->listQuarantine(limit); }
  Result<QuarantinePage> listQuarantinePage(const QuarantineQuery& query) override { return inner_->listQuarantinePage(query); }
  Result<std::optional<QuarantineEntry>> readQuarantine(std::string_view id) override { return inner_->readQuarantine(id); }
  Result<std::vector<QuarantineEntry>> listQuarantineToReplay(size_t limit) override { return inner_->listQuarantineToReplay(limit); }
  Result<bool> recordReplay(std::string_view id, int status, std::string_view answer, bool accepted) override { return inner_->recordReplay(id, status, answer, accepted); }
  Result<std::optional<StoredResource>> readResource(std::string_view type, std::string_view id) override { return inner_->readResource(type, id); }
  Result<std::optional<StoredResource>> readVersion(std::string_view type, std::string_view id, int64_t version) override {
    return inner_->readVersion(type, id, version);
  }
  Result<std::vector<ResourceVersion>> history(const HistoryQuery& query) override { return inner_->history(query); }
  Result<std::vector<CoverageFact>> coverageOf(std::string_view patient_id) override { return inner_->coverageOf(patient_id); }
  Result<std::optional<OutboxItem>> nextDue(std::string_view destination, int64_t now_ms) override { return inner_->nextDue(destination, now_ms); }
  Status recordDelivered(const DeliveryAttempt& attempt) override { return inner_->recordDelivered(attempt); }
  void recordDeliveredAsync(const DeliveryAttempt& attempt, std::function<void(const Status&)> on_commit) override { return inner_->recordDeliveredAsync(attempt, std::move(on_commit)); }
  Result<std::vector<OutboxItem>> pendingHead(std::string_view destination, size_t limit) override { return inner_->pendingHead(destination, limit); }
  Status recordFailed(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) override { return inner_->recordFailed(attempt, next_attempt_ms, dead); }
  Result<std::vector<OutboxItem>> pendingAfter(std::string_view destination, int64_t after, size_t limit) override { return inner_->pendingAfter(destination, after, limit); }
  void recordDeliveredManyAsync(std::vector<DeliveryAttempt> attempts, std::function<void(const Status&)> on_commit) override { return inner_->recordDeliveredManyAsync(std::move(attempts), std::move(on_commit)); }
  void recordFailedAsync(const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead, std::function<void(const Status&)> on_commit) override { return inner_->recordFailedAsync(attempt, next_attempt_ms, dead, std::move(on_commit)); }
  Result<std::vector<DestinationDepth>> outboxDepth() override { return inner_->outboxDepth(); }
  Result<std::vector<DeliveryAttempt>> attemptsOf(int64_t outbox_id) override { return inner_->attemptsOf(outbox_id); }
  Result<std::vector<OutboxItem>> outboxRange(std::string_view destination, int64_t from, int64_t to) override { return inner_->outboxRange(destination, from, to); }
  Result<int64_t> lastNumber(std::string_view destination) override { return inner_->lastNumber(destination); }
  Result<std::vector<OutboxItem>> listDeadLetters(size_t limit) override { return inner_->listDeadLetters(limit); }
  Result<bool> replayDeadLetter(int64_t outbox_id) override { return inner_->replayDeadLetter(outbox_id); }
  Result<std::vector<UnroutableWrite>> listUnroutable(size_t limit) override { return inner_->listUnroutable(limit); }
  Result<std::vector<std::string>> patientsWithMember(std::string_view payer_id, std::string_view member_id) override { return inner_->patientsWithMember(payer_id, member_id); }
  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override { return inner_->patientsWithDemographics(who); }
  Result<std::vector<UnroutableWrite>> unroutableOf(std::string_view patient_id) override { return inner_->unroutableOf(patient_id); }
  Result<OutboxLease> claimLease(std::string_view destination, std::string_view holder, int64_t now_ms, int64_t duration_ms, std::string_view dead_holder) override { return inner_->claimLease(destination, holder, now_ms, duration_ms, dead_holder); }
  Result<bool> extendLease(std::string_view destination, std::string_view holder, int64_t now_ms, int64_t duration_ms) override { return inner_->extendLease(destination, holder, now_ms, duration_ms); }
  Status releaseLease(std::string_view destination, std::string_view holder) override { return inner_->releaseLease(destination, holder); }
  Result<std::optional<OutboxLease>> leaseOf(std::string_view destination) override { return inner_->leaseOf(destination); }
  Result<std::vector<ChangeRecord>> changesAfter(int64_t after_seq, size_t limit) override { return inner_->changesAfter(after_seq, limit); }
  Result<int64_t> changeCursor(std::string_view consumer) override { return inner_->changeCursor(consumer); }
  Result<bool> commitPlanned(std::string_view consumer, int64_t from_seq, int64_t to_seq, std::vector<PlannedOutbox> outbox) override { return inner_->commitPlanned(consumer, from_seq, to_seq, std::move(outbox)); }
  Result<int64_t> beginStagedFile(std::string_view channel) override { return inner_->beginStagedFile(channel); }
  Status stageRecords(int64_t file, std::vector<StagedRecord> records) override { return inner_->stageRecords(file, std::move(records)); }
  Result<std::vector<StagedRecord>> stagedRecords(int64_t file, int64_t after_seq, size_t limit) override { return inner_->stagedRecords(file, after_seq, limit); }
  Status dropStagedFile(int64_t file) override { return inner_->dropStagedFile(file); }
  Result<std::pair<int64_t, int64_t>> stagedCounts() override { return inner_->stagedCounts(); }
  void setMergeHook(MergeHook hook) override { return inner_->setMergeHook(std::move(hook)); }
  Status readMerge(const std::function<Status(MergeTx&)>& read) override { return inner_->readMerge(read); }
  Result<std::vector<std::string>> clusterOf(std::string_view patient_id) override { return inner_->clusterOf(patient_id); }
  Result<std::vector<RoutedClaim>> routedOf(std::string_view patient_id) override { return inner_->routedOf(patient_id); }
  Status updateUnroutableReason(std::string_view claim_id, std::string_view reason, std::string_view outcome_json) override { return inner_->updateUnroutableReason(claim_id, reason, outcome_json); }
  Status putRoutingConflict(const RoutingConflict& conflict) override { return inner_->putRoutingConflict(conflict); }
  Result<std::vector<RoutingConflict>> listRoutingConflicts(size_t limit) override { return inner_->listRoutingConflicts(limit); }
  Result<std::vector<PatientConflict>> listConflicts(size_t limit) override { return inner_->listConflicts(limit); }
  Status putSubscription(const SubscriptionRow& row) override { return inner_->putSubscription(row); }
  Status deleteSubscription(std::string_view id, std::vector<AuditRecord> audit) override { return inner_->deleteSubscription(id, std::move(audit)); }
  Result<std::vector<SubscriptionRow>> listSubscriptions() override { return inner_->listSubscriptions(); }
  Result<bool> claimAssertionJti(std::string_view client_id, std::string_view jti, int64_t expires_ms, int64_t now_ms) override { return inner_->claimAssertionJti(client_id, jti, expires_ms, now_ms); }
  Result<ResourceOrigins> originsOf(std::string_view type, std::string_view id, bool with_payloads) override { return inner_->originsOf(type, id, with_payloads); }
  Status appendAudit(std::vector<AuditRecord> records) override { return inner_->appendAudit(std::move(records)); }
  Result<std::vector<AuditRecord>> listAudit(const AuditQuery& query) override { return inner_->listAudit(query); }
  Result<std::string> probe() override { return inner_->probe(); }
  Result<SearchPage> search(const SearchRequest& request) override { return inner_->search(request); }

 protected:
  StorePtr inner_;
};

}  // namespace fhir::gateway::test_stores

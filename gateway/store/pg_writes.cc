// SPDX-License-Identifier: Apache-2.0
// The PostgreSQL store's writes inside the writer's group transaction (pg_store.cc runs them):
// an accepted event, outbox numbering, delivery marks, leases, the change log, quarantine.
//
// Lock order, so that concurrent groups of several handles do not deadlock in the common case
// (a deadlock that still happens is detected by the server and the group runs again):
//   change_order (only groups that record changes) → event key → unique slots (by key) →
//   resources → outbox bodies (by hash) → destination_seq rows (by destination, at the end).
#include <algorithm>
#include <charconv>
#include <map>

#include "gateway/store/pg_internal.h"
#include "gateway/store/pg_search.h"
#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway::pg {
namespace {

// One statement per resource: a new version only when the content changed (the upsert's WHERE
// leaves an unchanged row alone and returns nothing), and the history row of that version. The
// upsert locks the row: two handles writing one resource give it consecutive versions.
#define PG_WRITE_RESOURCE                                                                                          \
  "WITH v AS (INSERT INTO resources (type, id, version, updated_at, content_hash) VALUES ($1, $2, 1, $3, $4) "       \
  "ON CONFLICT (type, id) DO UPDATE SET version = resources.version + 1, updated_at = excluded.updated_at, "        \
  "content_hash = excluded.content_hash WHERE resources.content_hash <> excluded.content_hash RETURNING version), " \
  "h AS (INSERT INTO resource_history (type, id, version, updated_at, event_seq, json) "                           \
  "SELECT $1, $2, version, $3, $5::bigint, $6::bytea FROM v) "
constexpr const char* kWriteResource = PG_WRITE_RESOURCE "SELECT version FROM v";
// A Patient's also keeps its demographic key (name[0].family, name[0].given[0], birthDate,
// gender), read by the server's JSON functions as SQLite's json_extract does.
constexpr const char* kWritePatient =
    PG_WRITE_RESOURCE
    ", d AS (INSERT INTO patient_demographics (patient_id, family, given, birth_date, gender) "
    "SELECT $2, COALESCE(j #>> '{name,0,family}', ''), COALESCE(j #>> '{name,0,given,0}', ''), "
    "COALESCE(j ->> 'birthDate', ''), COALESCE(j ->> 'gender', '') "
    "FROM v, (SELECT convert_from($6::bytea, 'UTF8')::jsonb AS j) s "
    "ON CONFLICT (patient_id) DO UPDATE SET family = excluded.family, given = excluded.given, "
    "birth_date = excluded.birth_date, gender = excluded.gender) SELECT version FROM v";

// Sends the resources' statements in one round trip (with whatever is queued before them), then
// queues the search rows of those that got a new version: an unchanged resource keeps its rows,
// and its index rows are not even computed.
Status writeResources(Connection& db, const IngestCommit& commit, const std::vector<ResourceWrite>& merged,
                      int64_t seq, const std::string& now, std::vector<ChangedResource>& changes) {
  std::vector<const ResourceWrite*> writes;
  for (const ResourceWrite& resource : commit.resources) writes.push_back(&resource);
  for (const ResourceWrite& resource : merged) writes.push_back(&resource);
  std::vector<int64_t> versions(writes.size(), 0);
  for (size_t i = 0; i < writes.size(); ++i) {
    const ResourceWrite& resource = *writes[i];
    const std::string hash = fhir::sha256Hex(resource.same_as.empty() ? resource.json : resource.same_as);
    Query(db, resource.type == "Patient" ? kWritePatient : kWriteResource)
        .text(resource.type).text(resource.id).text(now).text(hash).integer(seq).bytes(resource.json)
        .later([&versions, i](const Rows& rows) {
          versions[i] = rows.empty() ? 0 : rows.integer(0, 0);
          return Status::Ok();
        });
  }
  Status sent = db.flush();  // the callbacks above see `versions` while it lives
  if (!sent.ok()) return sent;
  for (size_t i = 0; i < writes.size(); ++i) {
    if (versions[i] == 0) continue;  // unchanged: no new version
    const ResourceWrite& resource = *writes[i];
    Status searchable = writeSearchIndex(db, resource, seq, now);  // issue 15
    if (!searchable.ok()) return searchable;
    if (!commit.change_context.empty()) changes.push_back(ChangedResource{resource.type, resource.id, versions[i], {}, {}});
  }
  return Status::Ok();
}

Status writeCoverage(Connection& db, const IngestCommit& commit, const std::vector<CoverageFact>& merged) {
  for (const CoverageFact& fact : merged) {  // a merged Coverage replaces its rows
    Query(db, "DELETE FROM coverage_index WHERE coverage_id = $1").text(fact.coverage_id).later();
  }
  for (const CoverageFact& fact : commit.coverage) {
    if (fact.basis != "evidence") continue;  // a claim file's date of service
    Query(db, "INSERT INTO coverage_evidence (coverage_id, patient_id, payer_id, member_id, "
              "line_of_business, date) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
        .text(fact.coverage_id).text(fact.patient_id).text(fact.payer_id).text(fact.member_id)
        .text(fact.line_of_business).text(fact.start).later();
  }
  for (const RoutedClaim& routed : commit.routed) {
    Query(db, "INSERT INTO routed_claims (claim_id, patient_id, payer_id, date_of_service, code) "
              "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
        .text(routed.claim_id).text(routed.patient_id).text(routed.payer_id).text(routed.date_of_service)
        .text(routed.code).later();
  }
  std::vector<const CoverageFact*> index_rows;
  for (const CoverageFact& fact : commit.coverage) {
    if (fact.basis != "evidence") index_rows.push_back(&fact);
  }
  for (const CoverageFact& fact : merged) index_rows.push_back(&fact);
  for (const CoverageFact* fact : index_rows) {
    Query(db, "INSERT INTO coverage_index (coverage_id, patient_id, payer_id, member_id, line_of_business, "
              "start_date, end_date, basis, ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
              "ON CONFLICT (coverage_id, patient_id) DO UPDATE SET payer_id = excluded.payer_id, "
              "member_id = excluded.member_id, line_of_business = excluded.line_of_business, "
              "start_date = excluded.start_date, end_date = excluded.end_date, basis = excluded.basis, "
              "ord = excluded.ord")
        .text(fact->coverage_id).text(fact->patient_id).text(fact->payer_id).text(fact->member_id)
        .text(fact->line_of_business).text(fact->start).text(fact->end).text(fact->basis)
        .integer(fact->order).later();
  }
  return Status::Ok();
}

Status recordChanges(Connection& db, int64_t seq, const std::string& context, const std::vector<ChangedResource>& changed) {
  std::string lines;
  for (const ChangedResource& resource : changed) {
    lines += resource.type + '\t' + resource.id + '\t' + std::to_string(resource.version) + '\n';
  }
  Query(db, "INSERT INTO change_log (event_seq, context, changed) VALUES ($1, $2, $3)")
      .integer(seq).bytes(context).bytes(lines).later();
  return Status::Ok();
}

void insertAttempt(Connection& db, const DeliveryAttempt& attempt) {
  Query(db, "INSERT INTO delivery_attempts (outbox_id, at_ms, http_status, error, duration_ms) "
            "VALUES ($1, $2, $3, $4, $5)")
      .integer(attempt.outbox_id).integer(attempt.at_ms).integer(attempt.http_status).text(attempt.error)
      .integer(attempt.duration_ms).later();
}

Result<std::string> historyJson(Connection& db, const std::string& type, const std::string& id, int64_t version) {
  auto rows = Query(db, "SELECT json FROM resource_history WHERE type = $1 AND id = $2 AND version = $3")
                  .text(type).text(id).integer(version).run();
  if (!rows.ok()) return rows.error();
  return rows->empty() ? std::string() : rows->text(0, 0);
}

}  // namespace

Status writeIngest(Connection& db, Tx& tx, const IngestCommit& commit, const MergeHook& merge_hook,
                   CommitOutcome& outcome) {
  if (!commit.change_context.empty() && !tx.change_order_locked) {
    // Before the event's seq is taken: groups that record changes commit in seq order.
    Query(db, "SELECT one FROM change_order FOR UPDATE").later();  // sent with the event's insert
    tx.change_order_locked = true;
  }
  const std::string now = nowIso();
  const int64_t now_ms = nowMs();
  const bool answer_is_payload = commit.answer == commit.payload;
  // The key's unique index decides between concurrent commits of one key, also across handles:
  // the second waits for the first and then finds its row.
  auto event = Query(db, "INSERT INTO events (channel, idem_key, received_at, payload, status, answer, answer_is_payload) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idem_key) DO NOTHING RETURNING seq")
                   .text(commit.channel).bytes(commit.idempotency_key).text(now).bytes(commit.payload)
                   .integer(commit.status).bytes(answer_is_payload ? std::string_view() : std::string_view(commit.answer))
                   .integer(answer_is_payload ? 1 : 0).run();
  if (!event.ok()) return event.error();
  if (event->empty()) {
    auto first = Query(db, "SELECT seq, status, CASE WHEN answer_is_payload THEN payload ELSE answer END "
                           "FROM events WHERE idem_key = $1")
                     .bytes(commit.idempotency_key).run();
    if (!first.ok()) return first.error();
    if (first->empty()) return Error{"postgresql: event key conflict without a row"};
    outcome = CommitOutcome{true, static_cast<int>(first->integer(0, 1)), first->text(0, 2), first->integer(0, 0)};
    // A re-post is an access too: its AuditEvent commits with this answer.
    Status audited = insertAudit(db, commit.audit);
    if (!audited.ok()) return audited;
    outcome.audited = !commit.audit.empty();
    return Status::Ok();
  }
  const int64_t seq = event->integer(0, 0);

  // Unique slots, taken in key order: the primary key refuses a second owner also when another
  // handle takes the slot at the same moment (the later one waits, then finds the owner).
  std::vector<const UniqueSlot*> slots;
  for (const UniqueSlot& slot : commit.unique_slots) slots.push_back(&slot);
  std::sort(slots.begin(), slots.end(), [](const UniqueSlot* a, const UniqueSlot* b) { return a->key < b->key; });
  // Queued: their answers come with the next round trip (the merge's first read, or the
  // resources'), and are looked at then. A refused one undoes the job, with all it wrote.
  std::vector<char> taken(slots.size(), 0);
  for (size_t i = 0; i < slots.size(); ++i) {
    Query(db, "INSERT INTO unique_slots (slot, owner, event_seq) VALUES ($1, $2, $3) "
              "ON CONFLICT (slot) DO UPDATE SET event_seq = excluded.event_seq "
              "WHERE unique_slots.owner = excluded.owner RETURNING owner")
        .text(slots[i]->key).text(slots[i]->owner).integer(seq)
        .later([&taken, i](const Rows& rows) {
          taken[i] = rows.empty() ? 2 : 1;  // 0: not answered yet
          return Status::Ok();
        });
  }
  // True (and the outcome set, the job undone) when a slot has another owner.
  auto slotRefused = [&]() -> Result<bool> {
    if (slots.empty()) return false;
    if (taken[0] == 0) {
      Status sent = db.flush();
      if (!sent.ok()) return Error{sent.message()};
    }
    for (size_t i = 0; i < slots.size(); ++i) {
      if (taken[i] == 1) continue;
      const UniqueSlot* slot = slots[i];
      auto held = Query(db, "SELECT owner, event_seq FROM unique_slots WHERE slot = $1").text(slot->key).run();
      if (!held.ok()) return held.error();
      outcome = CommitOutcome{};
      outcome.slot_taken = slot->key;
      if (!held->empty()) {
        outcome.slot_owner = held->text(0, 0);
        outcome.slot_event_seq = held->integer(0, 1);
      }
      tx.undo_job = true;  // the event row and everything after it go
      return true;
    }
    return false;
  };
  if (!commit.routes_unroutable.empty()) {
    auto resolved = Query(db, "UPDATE unroutable SET resolved_at = $1 WHERE claim_id = $2 AND resolved_at = ''")
                        .text(now).text(commit.routes_unroutable).run();
    if (!resolved.ok()) return resolved.error();
    auto refused = slotRefused();
    if (!refused.ok()) return refused.error();
    if (*refused) return Status::Ok();
    if (resolved->affected() == 0) {  // routed meanwhile: nothing to write
      outcome = CommitOutcome{true, commit.status, commit.answer, 0};
      tx.undo_job = true;
      return Status::Ok();
    }
  }

  // Contributions are merged in this transaction (gateway/merge/merge_service.h).
  std::vector<ResourceWrite> merged;
  std::vector<CoverageFact> merged_coverage;
  if (merge_hook && (!commit.contributions.empty() || !commit.remerge.empty())) {
    auto merge_tx = makeMergeTx(db);
    Status status = merge_hook(*merge_tx, commit, merged, merged_coverage);
    if (!status.ok()) return status;
    auto refused = slotRefused();
    if (!refused.ok()) return refused.error();
    if (*refused) return Status::Ok();
    if (!takeCheckedMerge(commit, merged)) {  // not the merge the service validated: nothing written
      outcome = CommitOutcome{};
      outcome.merge_changed = true;
      tx.undo_job = true;
      return Status::Ok();
    }
  }
  std::vector<ChangedResource> changes;
  Status status = writeResources(db, commit, merged, seq, now, changes);
  if (!status.ok()) return status;
  auto refused = slotRefused();  // answered by now
  if (!refused.ok()) return refused.error();
  if (*refused) return Status::Ok();
  status = writeCoverage(db, commit, merged_coverage);
  if (!status.ok()) return status;
  for (const OutboxWrite& write : commit.outbox) tx.outbox.push_back(DeferredOutbox{write, seq, now_ms});
  if (!changes.empty()) {
    status = recordChanges(db, seq, commit.change_context, changes);
    if (!status.ok()) return status;
  }
  for (const UnroutableWrite& write : commit.unroutable) {
    Query(db, "INSERT INTO unroutable (claim_id, patient_id, date_of_service, code, reason, outcome, event_seq, "
              "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (claim_id) DO NOTHING")
        .text(write.claim_id).text(write.patient_id).text(write.date_of_service).text(write.code)
        .text(write.reason).bytes(write.outcome_json).integer(seq).text(now).later();
  }
  // The AuditEvent of the access that wrote this (access.md: same transaction as the data).
  status = insertAudit(db, commit.audit);
  if (!status.ok()) return status;
  outcome = CommitOutcome{false, commit.status, commit.answer, seq};
  outcome.audited = !commit.audit.empty();
  return Status::Ok();
}

Status flushOutbox(Connection& db, Tx& tx) {
  if (tx.outbox.empty()) return Status::Ok();
  // Queued, with nothing to wait for: the bodies once per distinct text (by SHA-256, in hash
  // order), then per destination (in name order) one statement that takes a block of numbers from
  // its sequence row and inserts the rows with them, each naming its body by hash. The sequence
  // row stays locked until the commit, so the next commit to this destination numbers after it.
  std::vector<std::string> hashes(tx.outbox.size());
  std::map<std::string, const std::string*> bodies;
  for (size_t i = 0; i < tx.outbox.size(); ++i) {
    hashes[i] = fhir::sha256Hex(tx.outbox[i].write.body);
    bodies.emplace(hashes[i], &tx.outbox[i].write.body);
  }
  for (const auto& [hash, body] : bodies) {
    Query(db, "INSERT INTO outbox_bodies (hash, body) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING").text(hash).bytes(*body).later();
  }
  std::map<std::string, std::vector<size_t>> by_destination;
  for (size_t i = 0; i < tx.outbox.size(); ++i) by_destination[tx.outbox[i].write.destination].push_back(i);
  constexpr size_t kRowsPerStatement = 200;
  for (const auto& [destination, rows] : by_destination) {
    for (size_t start = 0; start < rows.size(); start += kRowsPerStatement) {
      const size_t end = std::min(rows.size(), start + kRowsPerStatement);
      std::vector<std::string> values{destination, std::to_string(end - start)};
      std::vector<int> formats{1, 0};
      std::string sql =
          "WITH s AS (INSERT INTO destination_seq (destination, last_number) VALUES ($1::text, $2::bigint) "
          "ON CONFLICT (destination) DO UPDATE SET last_number = destination_seq.last_number + excluded.last_number "
          "RETURNING last_number) INSERT INTO outbox (destination, number, kind, body_id, event_seq, created_ms, "
          "next_attempt_ms) SELECT $1::text, s.last_number - $2::bigint + v.k, v.kind, "
          "(SELECT b.id FROM outbox_bodies b WHERE b.hash = v.hash), v.event_seq, v.now_ms, v.now_ms FROM s, (VALUES ";
      for (size_t r = start; r < end; ++r) {
        const DeferredOutbox& row = tx.outbox[rows[r]];
        const size_t n = values.size();
        sql += (r > start ? ", ($" : "($") + std::to_string(n + 1) + "::bigint, $" + std::to_string(n + 2) + "::text, $" +
               std::to_string(n + 3) + "::text, $" + std::to_string(n + 4) + "::bigint, $" + std::to_string(n + 5) +
               "::bigint)";
        values.insert(values.end(), {std::to_string(r - start + 1), row.write.kind, hashes[rows[r]],
                                     std::to_string(row.event_seq), std::to_string(row.now_ms)});
        formats.insert(formats.end(), {0, 1, 1, 0, 0});
      }
      sql += ") v(k, kind, hash, event_seq, now_ms)";
      db.queueText(std::move(sql), std::move(values), std::move(formats));
    }
  }
  tx.outbox.clear();
  return Status::Ok();
}

Status markDelivered(Connection& db, const DeliveryAttempt& attempt) {
  insertAttempt(db, attempt);
  Query(db, "UPDATE outbox SET status = 1, attempts = attempts + 1, delivered_ms = $1, "
            "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN $1 ELSE first_attempt_ms END, "
            "last_error = '' WHERE id = $2")
      .integer(attempt.at_ms).integer(attempt.outbox_id).later();
  return Status::Ok();
}

Status markFailed(Connection& db, const DeliveryAttempt& attempt, int64_t next_attempt_ms, bool dead) {
  insertAttempt(db, attempt);
  Query(db, "UPDATE outbox SET status = $1, attempts = attempts + 1, next_attempt_ms = $2, "
            "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN $3 ELSE first_attempt_ms END, "
            "last_error = $4 WHERE id = $5")
      .integer(dead ? 2 : 0).integer(next_attempt_ms).integer(attempt.at_ms).text(attempt.error)
      .integer(attempt.outbox_id).later();
  return Status::Ok();
}

Result<OutboxLease> claimLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                               int64_t duration_ms, std::string_view dead_holder) {
  const int64_t expires = now_ms + duration_ms;
  auto locked = Query(db, "SELECT holder, expires_ms FROM outbox_leases WHERE destination = $1 FOR UPDATE SKIP LOCKED")
                    .text(destination).run();
  if (!locked.ok()) return locked.error();
  if (!locked->empty()) {
    const std::string current = locked->text(0, 0);
    const int64_t current_expiry = locked->integer(0, 1);
    const bool free = current == holder || current.empty() || current_expiry <= now_ms ||
                      (!dead_holder.empty() && current == dead_holder);
    if (!free) return OutboxLease{std::string(destination), current, current_expiry};
    Status taken = Query(db, "UPDATE outbox_leases SET holder = $2, expires_ms = $3 WHERE destination = $1")
                       .text(destination).text(holder).integer(expires).done();
    if (!taken.ok()) return Error{taken.message()};
    return OutboxLease{std::string(destination), std::string(holder), expires};
  }
  // No row, or one another handle has locked: an insert settles the first case; in the second
  // the other handle decides and this claim reports the lease as it was last committed.
  auto inserted = Query(db, "INSERT INTO outbox_leases (destination, holder, expires_ms) VALUES ($1, $2, $3) "
                            "ON CONFLICT (destination) DO NOTHING RETURNING holder")
                      .text(destination).text(holder).integer(expires).run();
  if (!inserted.ok()) return inserted.error();
  if (!inserted->empty()) return OutboxLease{std::string(destination), std::string(holder), expires};
  auto current = Query(db, "SELECT holder, expires_ms FROM outbox_leases WHERE destination = $1").text(destination).run();
  if (!current.ok()) return current.error();
  if (current->empty()) return OutboxLease{std::string(destination), "", 0};
  return OutboxLease{std::string(destination), current->text(0, 0), current->integer(0, 1)};
}

Result<std::vector<ChangeRecord>> changesAfter(Connection& db, int64_t after_seq, size_t limit) {
  std::vector<ChangeRecord> records;
  auto rows = Query(db, "SELECT event_seq, context, changed FROM change_log WHERE event_seq > $1 ORDER BY event_seq LIMIT $2")
                  .integer(after_seq).integer(static_cast<int64_t>(limit)).run();
  if (!rows.ok()) return rows.error();
  for (int row = 0; row < rows->size(); ++row) {
    ChangeRecord record{rows->integer(row, 0), rows->text(row, 1), {}};
    const std::string lines = rows->text(row, 2);
    size_t start = 0;
    while (start < lines.size()) {
      size_t end = lines.find('\n', start);
      if (end == std::string::npos) end = lines.size();
      const std::string line = lines.substr(start, end - start);
      start = end + 1;
      const size_t tab1 = line.find('\t');
      const size_t tab2 = tab1 == std::string::npos ? tab1 : line.find('\t', tab1 + 1);
      if (tab2 == std::string::npos) return Error{"change_log row " + std::to_string(record.event_seq) + " is malformed"};
      ChangedResource resource;
      resource.type = line.substr(0, tab1);
      resource.id = line.substr(tab1 + 1, tab2 - tab1 - 1);
      std::from_chars(line.data() + tab2 + 1, line.data() + line.size(), resource.version);
      record.resources.push_back(std::move(resource));
    }
    records.push_back(std::move(record));
  }
  for (ChangeRecord& record : records) {
    for (ChangedResource& resource : record.resources) {
      auto current = historyJson(db, resource.type, resource.id, resource.version);
      if (!current.ok()) return current.error();
      resource.current_json = std::move(*current);
      if (resource.version > 1) {
        auto previous = historyJson(db, resource.type, resource.id, resource.version - 1);
        if (!previous.ok()) return previous.error();
        resource.previous_json = std::move(*previous);
      }
    }
  }
  return records;
}

Result<bool> moveChangeCursor(Connection& db, std::string_view consumer, int64_t from_seq, int64_t to_seq) {
  Status created = Query(db, "INSERT INTO change_cursors (consumer, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING")
                       .text(consumer).done();
  if (!created.ok()) return Error{created.message()};
  // A concurrent move of the same cursor waits for the row and then sees it moved: 0 rows.
  auto moved = Query(db, "UPDATE change_cursors SET last_seq = $1 WHERE consumer = $2 AND last_seq = $3")
                   .integer(to_seq).text(consumer).integer(from_seq).run();
  if (!moved.ok()) return moved.error();
  if (moved->affected() == 0) return false;
  Status pruned = Query(db, "DELETE FROM change_log WHERE event_seq <= (SELECT MIN(last_seq) FROM change_cursors)").done();
  if (!pruned.ok()) return Error{pruned.message()};
  return true;
}

Result<std::string> insertQuarantine(Connection& db, const std::string& id, const QuarantineWrite& write,
                                     const std::string& now) {
  const std::string digest = write.payload_sha256.empty() ? fhir::sha256Hex(write.payload) : write.payload_sha256;
  auto kept = Query(db, "INSERT INTO quarantine (id, channel, received_at, content_type, payload, truncated, outcome, record, "
                        "replay_prefix, replay_suffix, payload_sha256, count, last_received_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $3) "
                        "ON CONFLICT (channel, payload_sha256) WHERE status = 'quarantined' DO UPDATE SET "
                        "count = quarantine.count + 1, last_received_at = excluded.last_received_at RETURNING id")
                  .text(id).text(write.channel).text(now).bytes(write.content_type).bytes(write.payload)
                  .integer(write.truncated ? 1 : 0).bytes(write.outcome_json).integer(write.record ? 1 : 0)
                  .bytes(write.replay_prefix).bytes(write.replay_suffix).text(digest).run();
  if (!kept.ok()) return kept.error();
  if (kept->empty()) return Error{"postgresql: quarantine insert returned no id"};
  return kept->text(0, 0);
}

Result<QuarantinePage> selectQuarantinePage(Connection& db, const QuarantineQuery& request) {
  // Newest first by seq (the order of first arrival); the cursor is the last seq shown.
  int64_t before = INT64_MAX;
  if (!request.cursor.empty()) {
    auto [end, error] = std::from_chars(request.cursor.data(), request.cursor.data() + request.cursor.size(), before);
    if (error != std::errc() || end != request.cursor.data() + request.cursor.size()) return Error{"bad cursor"};
  }
  auto rows = Query(db, "SELECT seq, id, channel, received_at, content_type, truncated, outcome, record, status, replays, "
                        "replayed_at, replay_status, replay_answer, count, last_received_at, payload_sha256, "
                        "octet_length(payload) FROM quarantine WHERE seq < $1 AND ($2 = '' OR channel = $2) "
                        "AND ($3 = '' OR status = $3) AND ($4 = '' OR last_received_at >= $4) ORDER BY seq DESC LIMIT $5")
                  .integer(before).text(request.channel).text(request.status).text(request.since)
                  .integer(static_cast<int64_t>(request.count + 1)).run();
  if (!rows.ok()) return rows.error();
  QuarantinePage page;
  int64_t last_seq = 0;
  for (int row = 0; row < rows->size(); ++row) {
    if (page.entries.size() == request.count) {
      page.next_cursor = std::to_string(last_seq);
      break;
    }
    last_seq = rows->integer(row, 0);
    QuarantineEntry entry;
    entry.id = rows->text(row, 1);
    entry.channel = rows->text(row, 2);
    entry.received_at = rows->text(row, 3);
    entry.content_type = rows->text(row, 4);
    entry.truncated = rows->integer(row, 5) != 0;
    entry.outcome_json = rows->text(row, 6);
    entry.record = rows->integer(row, 7) != 0;
    entry.status = rows->text(row, 8);
    entry.replays = rows->integer(row, 9);
    entry.replayed_at = rows->text(row, 10);
    entry.replay_status = static_cast<int>(rows->integer(row, 11));
    entry.replay_answer = rows->text(row, 12);
    entry.count = rows->integer(row, 13);
    entry.last_received_at = rows->text(row, 14);
    entry.payload_sha256 = rows->text(row, 15);
    entry.payload_bytes = rows->integer(row, 16);
    page.entries.push_back(std::move(entry));
  }
  return page;
}

}  // namespace fhir::gateway::pg

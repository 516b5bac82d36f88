// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway store copy`: a SQLite store (a data directory) copied into an empty PostgreSQL
// store, so a site can move up to several gateways (issue 17). One PostgreSQL transaction: the
// target holds all of it or nothing. Ids, event seqs, outbox numbers and destination sequences
// are kept, so delivery goes on from where the SQLite gateway stopped (rows not yet delivered are
// pending in the copy; receivers drop a re-sent row by its Idempotency-Key).
//
// Not copied: outbox leases (they belong to the processes that held them) and staged payer files
// (never answered: the senders send them again).
#include <sqlite3.h>

#include <filesystem>

#include "gateway/store/pg_internal.h"
#include "gateway/store/pg_store.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

struct TableCopy {
  const char* name;
  const char* select;  // on SQLite
  const char* insert;  // on PostgreSQL, $1.. in the select's column order
};

// In dependency-free order (the PostgreSQL schema has no foreign keys).
const TableCopy kTables[] = {
    {"events", "SELECT seq, channel, idem_key, received_at, payload, status, answer, answer_is_payload FROM events",
     "INSERT INTO events (seq, channel, idem_key, received_at, payload, status, answer, answer_is_payload) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
    {"resources", "SELECT type, id, version, updated_at, content_hash FROM resources",
     "INSERT INTO resources (type, id, version, updated_at, content_hash) VALUES ($1, $2, $3, $4, $5)"},
    {"resource_history", "SELECT type, id, version, updated_at, event_seq, json FROM resource_history",
     "INSERT INTO resource_history (type, id, version, updated_at, event_seq, json) VALUES ($1, $2, $3, $4, $5, $6)"},
    // Resources written before resource_history existed keep their JSON in `resources`.
    {"resource_history (older resources)",
     "SELECT type, id, version, updated_at, 0, json FROM resources WHERE length(json) > 0",
     "INSERT INTO resource_history (type, id, version, updated_at, event_seq, json) VALUES ($1, $2, $3, $4, $5, $6) "
     "ON CONFLICT DO NOTHING"},
    {"coverage_index",
     "SELECT coverage_id, patient_id, payer_id, member_id, line_of_business, start, end, basis, ord FROM coverage_index",
     "INSERT INTO coverage_index (coverage_id, patient_id, payer_id, member_id, line_of_business, start_date, end_date, "
     "basis, ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
    {"destination_seq", "SELECT destination, last_number FROM destination_seq",
     "INSERT INTO destination_seq (destination, last_number) VALUES ($1, $2)"},
    {"outbox_bodies", "SELECT id, hash, body FROM outbox_bodies",
     "INSERT INTO outbox_bodies (id, hash, body) VALUES ($1, $2, $3)"},
    // Rows written before outbox_bodies have their body inline (body_id 0): it joins outbox_bodies.
    {"outbox bodies (older rows)", "SELECT DISTINCT body FROM outbox WHERE body_id = 0",
     "INSERT INTO outbox_bodies (hash, body) VALUES (encode(sha256($1::bytea), 'hex'), $1) ON CONFLICT (hash) DO NOTHING"},
    {"outbox",
     "SELECT id, destination, number, kind, body_id, body, event_seq, status, attempts, created_ms, first_attempt_ms, "
     "next_attempt_ms, delivered_ms, last_error FROM outbox",
     "INSERT INTO outbox (id, destination, number, kind, body_id, event_seq, status, attempts, created_ms, "
     "first_attempt_ms, next_attempt_ms, delivered_ms, last_error) VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint = 0 THEN "
     "(SELECT b.id FROM outbox_bodies b WHERE b.hash = encode(sha256($6::bytea), 'hex')) ELSE $5 END, $7, $8, $9, $10, "
     "$11, $12, $13, $14)"},
    {"delivery_attempts", "SELECT id, outbox_id, at_ms, http_status, error, duration_ms FROM delivery_attempts",
     "INSERT INTO delivery_attempts (id, outbox_id, at_ms, http_status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)"},
    {"quarantine",
     "SELECT rowid, id, channel, received_at, content_type, payload, truncated, outcome, status, record, replay_prefix, "
     "replay_suffix, replays, replayed_at, replay_status, replay_answer, payload_sha256, count, last_received_at "
     "FROM quarantine ORDER BY rowid",
     "INSERT INTO quarantine (seq, id, channel, received_at, content_type, payload, truncated, outcome, status, record, "
     "replay_prefix, replay_suffix, replays, replayed_at, replay_status, replay_answer, payload_sha256, count, "
     "last_received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
     "CASE WHEN $17 = '' THEN encode(sha256($6::bytea), 'hex') ELSE $17 END, $18, CASE WHEN $19 = '' THEN $4 ELSE $19 END) "
     "ON CONFLICT (channel, payload_sha256) WHERE status = 'quarantined' DO UPDATE SET count = quarantine.count + excluded.count"},
    {"patient_demographics", "SELECT patient_id, family, given, birth_date, gender FROM patient_demographics",
     "INSERT INTO patient_demographics (patient_id, family, given, birth_date, gender) VALUES ($1, $2, $3, $4, $5)"},
    {"subscriptions", "SELECT id, status, error, resource_json, owner FROM subscriptions",
     "INSERT INTO subscriptions (id, status, error, resource_json, owner) VALUES ($1, $2, $3, $4, $5)"},
    {"audit_events", "SELECT id, recorded_ms, subtype, agent, address, json FROM audit_events",
     "INSERT INTO audit_events (id, recorded_ms, subtype, agent, address, json) VALUES ($1, $2, $3, $4, $5, $6)"},
    {"audit_entities", "SELECT audit_id, entity FROM audit_entities",
     "INSERT INTO audit_entities (audit_id, entity) VALUES ($1, $2)"},
    {"unroutable",
     "SELECT id, claim_id, patient_id, date_of_service, code, reason, outcome, event_seq, created_at, resolved_at "
     "FROM unroutable",
     "INSERT INTO unroutable (id, claim_id, patient_id, date_of_service, code, reason, outcome, event_seq, created_at, "
     "resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
    {"assertion_jti", "SELECT client_id, jti, expires_ms FROM assertion_jti",
     "INSERT INTO assertion_jti (client_id, jti, expires_ms) VALUES ($1, $2, $3)"},
    {"change_log", "SELECT event_seq, context, changed FROM change_log",
     "INSERT INTO change_log (event_seq, context, changed) VALUES ($1, $2, $3)"},
    {"change_cursors", "SELECT consumer, last_seq FROM change_cursors",
     "INSERT INTO change_cursors (consumer, last_seq) VALUES ($1, $2)"},
    {"unique_slots", "SELECT slot, owner, event_seq FROM unique_slots",
     "INSERT INTO unique_slots (slot, owner, event_seq) VALUES ($1, $2, $3)"},
    {"contributions",
     "SELECT type, id, contributor, kind, organization, payer, rank, tiebreak, provenance, patient_id, json FROM contributions",
     "INSERT INTO contributions (type, id, contributor, kind, organization, payer, rank, tiebreak, provenance, patient_id, "
     "json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"},
    {"patient_survivor", "SELECT patient_id, survivor FROM patient_survivor",
     "INSERT INTO patient_survivor (patient_id, survivor) VALUES ($1, $2)"},
    {"patient_links", "SELECT patient_id, other_id, evidence FROM patient_links",
     "INSERT INTO patient_links (patient_id, other_id, evidence) VALUES ($1, $2, $3)"},
    {"patient_conflicts", "SELECT coverage_id, patient_a, patient_b, elements, detail, detected_at FROM patient_conflicts",
     "INSERT INTO patient_conflicts (coverage_id, patient_a, patient_b, elements, detail, detected_at) "
     "VALUES ($1, $2, $3, $4, $5, $6)"},
    {"coverage_evidence",
     "SELECT coverage_id, patient_id, payer_id, member_id, line_of_business, date FROM coverage_evidence",
     "INSERT INTO coverage_evidence (coverage_id, patient_id, payer_id, member_id, line_of_business, date) "
     "VALUES ($1, $2, $3, $4, $5, $6)"},
    {"routed_claims", "SELECT claim_id, patient_id, payer_id, date_of_service, code FROM routed_claims",
     "INSERT INTO routed_claims (claim_id, patient_id, payer_id, date_of_service, code) VALUES ($1, $2, $3, $4, $5)"},
    {"routing_conflicts",
     "SELECT id, claim_id, patient_id, routed_payer, date_of_service, code, now_payer, reason, detected_at "
     "FROM routing_conflicts",
     "INSERT INTO routing_conflicts (id, claim_id, patient_id, routed_payer, date_of_service, code, now_payer, reason, "
     "detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
};

// Identity columns whose sequences must continue after the copied ids.
const char* const kSequences[] = {
    "SELECT setval(pg_get_serial_sequence('events', 'seq'), GREATEST((SELECT max(seq) FROM events), 1))",
    "SELECT setval(pg_get_serial_sequence('outbox', 'id'), GREATEST((SELECT max(id) FROM outbox), 1))",
    "SELECT setval(pg_get_serial_sequence('outbox_bodies', 'id'), GREATEST((SELECT max(id) FROM outbox_bodies), 1))",
    "SELECT setval(pg_get_serial_sequence('delivery_attempts', 'id'), GREATEST((SELECT max(id) FROM delivery_attempts), 1))",
    "SELECT setval(pg_get_serial_sequence('quarantine', 'seq'), GREATEST((SELECT max(seq) FROM quarantine), 1))",
    "SELECT setval(pg_get_serial_sequence('unroutable', 'id'), GREATEST((SELECT max(id) FROM unroutable), 1))",
    "SELECT setval(pg_get_serial_sequence('routing_conflicts', 'id'), GREATEST((SELECT max(id) FROM routing_conflicts), 1))",
    "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), GREATEST((SELECT max(id) FROM audit_events), 1))",
};

// Copies one table row by row: SQLite integers as integers, everything else as raw bytes.
Result<int64_t> copyTable(sqlite3* source, pg::Connection& target, const TableCopy& table) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(source, table.select, -1, &statement, nullptr) != SQLITE_OK) {
    return Error{std::string("sqlite: ") + table.name + ": " + sqlite3_errmsg(source)};
  }
  int64_t rows = 0;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    pg::Query insert(target, table.insert);
    for (int column = 0; column < sqlite3_column_count(statement); ++column) {
      if (sqlite3_column_type(statement, column) == SQLITE_INTEGER) {
        insert.integer(sqlite3_column_int64(statement, column));
        continue;
      }
      const auto* data = static_cast<const char*>(sqlite3_column_blob(statement, column));
      const int size = sqlite3_column_bytes(statement, column);
      insert.bytes(data == nullptr ? std::string_view() : std::string_view(data, static_cast<size_t>(size)));
    }
    Status status = insert.done();
    if (!status.ok()) {
      sqlite3_finalize(statement);
      return Error{std::string(table.name) + ": " + status.message()};
    }
    ++rows;
  }
  const std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(source);
  sqlite3_finalize(statement);
  if (!error.empty()) return Error{std::string("sqlite: ") + table.name + ": " + error};
  return rows;
}

Error rollback(pg::Connection& db, const std::string& message) {
  (void)db.exec("ROLLBACK");
  return Error{message};
}

}  // namespace

Result<std::vector<std::pair<std::string, int64_t>>> copySqliteToPostgres(const std::string& data_dir,
                                                                           const PostgresStoreOptions& target) {
  const std::string path = (std::filesystem::path(data_dir) / "gateway.db").string();
  if (!std::filesystem::exists(path)) return Error{"no SQLite store at " + path};
  {
    // Opening the SQLite store once brings an older one up to the current columns; opening the
    // PostgreSQL store creates (or migrates) its tables.
    auto source = openSqliteStore(data_dir);
    if (!source.ok()) return Error{"cannot open the SQLite store: " + source.message()};
    auto destination = openPostgresStore(target);
    if (!destination.ok()) return Error{destination.message()};
  }
  sqlite3* source = nullptr;
  if (sqlite3_open_v2(path.c_str(), &source, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string message = source != nullptr ? sqlite3_errmsg(source) : "out of memory";
    sqlite3_close(source);
    return Error{"cannot open " + path + ": " + message};
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> source_guard(source, &sqlite3_close);
  const pg::ConnectOptions options = pg::connectOptionsOf(target, "fhir-gateway store copy");
  pg::Connection db(options);
  Status status = db.open();
  if (!status.ok()) return Error{status.message()};
  // One read transaction on SQLite: a gateway still running on it cannot tear the copy.
  if (sqlite3_exec(source, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error{std::string("sqlite: ") + sqlite3_errmsg(source)};
  }
  status = db.exec("BEGIN");
  if (!status.ok()) return Error{status.message()};
  // Nobody else writes the target meanwhile, and it must be empty.
  status = db.exec("LOCK TABLE events, outbox IN EXCLUSIVE MODE");
  if (!status.ok()) return rollback(db, status.message());
  auto used = pg::Query(db, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM outbox) + "
                            "(SELECT count(*) FROM quarantine) + (SELECT count(*) FROM resources)").run();
  if (!used.ok()) return rollback(db, used.message());
  if (used->integer(0, 0) != 0) {
    return rollback(db, "the PostgreSQL store (schema " + target.schema + ") is not empty: copy into an empty one");
  }
  std::vector<std::pair<std::string, int64_t>> copied;
  for (const TableCopy& table : kTables) {
    auto rows = copyTable(source, db, table);
    if (!rows.ok()) return rollback(db, rows.message());
    copied.emplace_back(table.name, *rows);
  }
  for (const char* sequence : kSequences) {
    status = db.exec(sequence);
    if (!status.ok()) return rollback(db, status.message());
  }
  status = db.exec("COMMIT");
  if (!status.ok()) return rollback(db, status.message());
  return copied;
}

}  // namespace fhir::gateway

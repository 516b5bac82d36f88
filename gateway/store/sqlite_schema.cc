// SPDX-License-Identifier: Apache-2.0
// The SQLite store's schema and its migrations.
#include "gateway/store/sqlite_connection.h"

namespace fhir::gateway::sqlite {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  idem_key TEXT NOT NULL UNIQUE,
  received_at TEXT NOT NULL,
  payload BLOB NOT NULL,
  status INTEGER NOT NULL,
  answer BLOB NOT NULL,
  answer_is_payload INTEGER NOT NULL DEFAULT 0);  -- 1: the answer is the payload, not stored twice
CREATE TABLE IF NOT EXISTS resources (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
  content_hash TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resource_history (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
  event_seq INTEGER NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coverage_index (
  coverage_id TEXT NOT NULL, patient_id TEXT NOT NULL, payer_id TEXT NOT NULL,
  member_id TEXT NOT NULL, line_of_business TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL,
  PRIMARY KEY (coverage_id, patient_id));
CREATE INDEX IF NOT EXISTS coverage_by_member ON coverage_index (payer_id, member_id);
CREATE INDEX IF NOT EXISTS coverage_by_patient ON coverage_index (patient_id);
CREATE TABLE IF NOT EXISTS destination_seq (
  destination TEXT PRIMARY KEY, last_number INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  destination TEXT NOT NULL, number INTEGER NOT NULL, kind TEXT NOT NULL,
  body BLOB NOT NULL DEFAULT '',              -- only in rows written before outbox_bodies
  body_id INTEGER NOT NULL DEFAULT 0,         -- outbox_bodies.id, 0 when the body is inline
  event_seq INTEGER NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,          -- 0 pending, 1 delivered, 2 dead letter
  attempts INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL, first_attempt_ms INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL, delivered_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE (destination, number));
-- Only pending rows are indexed: a delivered-mark removes its entry from a small index instead
-- of moving it in one that holds every row ever sent (stores made earlier: migrate()).
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, number) WHERE status = 0;
CREATE TABLE IF NOT EXISTS outbox_bodies (
  id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS delivery_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, at_ms INTEGER NOT NULL,
  http_status INTEGER NOT NULL, error TEXT NOT NULL, duration_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_by_outbox ON delivery_attempts (outbox_id);
CREATE TABLE IF NOT EXISTS quarantine (
  id TEXT PRIMARY KEY, channel TEXT NOT NULL, received_at TEXT NOT NULL,
  content_type TEXT NOT NULL, payload BLOB NOT NULL, truncated INTEGER NOT NULL,
  outcome TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'quarantined',
  record INTEGER NOT NULL DEFAULT 0, replay_prefix BLOB NOT NULL DEFAULT '',
  replays INTEGER NOT NULL DEFAULT 0, replayed_at TEXT NOT NULL DEFAULT '',
  replay_status INTEGER NOT NULL DEFAULT 0, replay_answer BLOB NOT NULL DEFAULT '',
  replay_suffix BLOB NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS patient_demographics (
  patient_id TEXT PRIMARY KEY, family TEXT NOT NULL, given TEXT NOT NULL, birth_date TEXT NOT NULL,
  gender TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS patients_by_demographics ON patient_demographics (family, birth_date, given, gender);
CREATE TABLE IF NOT EXISTS subscriptions (
  id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT NOT NULL, resource_json TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unroutable (
  id INTEGER PRIMARY KEY AUTOINCREMENT, claim_id TEXT NOT NULL UNIQUE, patient_id TEXT NOT NULL,
  date_of_service TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, outcome TEXT NOT NULL,
  event_seq INTEGER NOT NULL, created_at TEXT NOT NULL, resolved_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS assertion_jti (
  client_id TEXT NOT NULL, jti TEXT NOT NULL, expires_ms INTEGER NOT NULL, PRIMARY KEY (client_id, jti)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS assertion_jti_expiry ON assertion_jti (expires_ms);
CREATE TABLE IF NOT EXISTS outbox_leases (
  destination TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_log (
  event_seq INTEGER PRIMARY KEY, context BLOB NOT NULL, changed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS change_cursors (
  consumer TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
-- Uniqueness rules as data (IngestCommit::unique_slots): at most one owner per slot.
CREATE TABLE IF NOT EXISTS unique_slots (
  slot TEXT PRIMARY KEY, owner TEXT NOT NULL, event_seq INTEGER NOT NULL) WITHOUT ROWID;
)sql";

// Brings a store made by an earlier version up to the current schema.
// Rows written before these columns existed keep their data where it was (an inline outbox body,
// an answer stored beside its payload, a resource's JSON in `resources`); the reads take it from
// there (OUTBOX_COLUMNS, EVENT_ANSWER, RESOURCE_JSON), so nothing has to be rewritten.
Status migrate(Connection& db) {
  const std::pair<const char*, const char*> columns[] = {
      {"quarantine", "record INTEGER NOT NULL DEFAULT 0"},
      {"quarantine", "replay_prefix BLOB NOT NULL DEFAULT ''"},
      {"quarantine", "replays INTEGER NOT NULL DEFAULT 0"},
      {"quarantine", "replayed_at TEXT NOT NULL DEFAULT ''"},
      {"quarantine", "replay_status INTEGER NOT NULL DEFAULT 0"},
      {"quarantine", "replay_answer BLOB NOT NULL DEFAULT ''"},
      {"quarantine", "replay_suffix BLOB NOT NULL DEFAULT ''"},
      {"events", "answer_is_payload INTEGER NOT NULL DEFAULT 0"},
      {"outbox", "body_id INTEGER NOT NULL DEFAULT 0"},
      {"coverage_index", "basis TEXT NOT NULL DEFAULT ''"},
      {"coverage_index", "ord INTEGER NOT NULL DEFAULT 0"}};
  for (const auto& [table, column] : columns) {
    Status added = db.exec(("ALTER TABLE " + std::string(table) + " ADD COLUMN " + column).c_str());
    if (!added.ok() && added.message().find("duplicate column") == std::string::npos) return added;
  }
  Status dropped = db.exec("DROP INDEX IF EXISTS outbox_pending");  // replaced by outbox_due
  if (!dropped.ok()) return dropped;
  // Patients stored before the demographics index existed.
  return db.exec("INSERT OR IGNORE INTO patient_demographics (patient_id, family, given, birth_date, gender) "
                 "SELECT id, " DEMOGRAPHICS_OF("CAST(" RESOURCE_JSON("r") " AS TEXT)") " FROM resources r WHERE type = 'Patient' "
                 "AND NOT EXISTS (SELECT 1 FROM patient_demographics LIMIT 1)");
}


}  // namespace

Status createSchema(Connection& db) {
  Status status = db.exec(kSchema);
  if (!status.ok()) return status;
  return migrate(db);
}

}  // namespace fhir::gateway::sqlite

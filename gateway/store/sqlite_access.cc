// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/sqlite_access.h"

namespace fhir::gateway::sqlite {

Status prepareAccess(Connection& db) {
  Status added = db.exec("ALTER TABLE subscriptions ADD COLUMN owner TEXT NOT NULL DEFAULT ''");
  if (!added.ok() && added.message().find("duplicate column") == std::string::npos) return added;
  // Append-only: no statement of the gateway updates or deletes a row; the triggers make a
  // stray one fail instead of rewriting history.
  return db.exec(
      "CREATE TABLE IF NOT EXISTS audit_events ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_ms INTEGER NOT NULL, subtype TEXT NOT NULL,"
      "  agent TEXT NOT NULL, address TEXT NOT NULL, json BLOB NOT NULL);"
      "CREATE TABLE IF NOT EXISTS audit_entities (audit_id INTEGER NOT NULL, entity TEXT NOT NULL,"
      "  PRIMARY KEY (entity, audit_id)) WITHOUT ROWID;"
      "CREATE INDEX IF NOT EXISTS audit_entities_by_audit ON audit_entities (audit_id);"
      "CREATE INDEX IF NOT EXISTS audit_by_time ON audit_events (recorded_ms);"
      "CREATE INDEX IF NOT EXISTS audit_by_agent ON audit_events (agent, recorded_ms);"
      "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_events "
      "  BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;"
      "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_events "
      "  BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;");
}

Result<ResourceOrigins> selectOrigins(Connection& db, std::string_view type, std::string_view id, bool with_payloads) {
  ResourceOrigins origins;
  {
    Query query(db, with_payloads
                        ? "SELECT DISTINCT e.channel, e.idem_key, e.payload FROM resource_history h JOIN events e "
                          "ON e.seq = h.event_seq WHERE h.type = ? AND h.id = ?"
                        : "SELECT DISTINCT e.channel, e.idem_key, '' FROM resource_history h JOIN events e "
                          "ON e.seq = h.event_seq WHERE h.type = ? AND h.id = ?");
    query.bind(1, type).bind(2, id);
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) origins.events.push_back({query.text(0), query.text(1), query.text(2)});
    if (rc != SQLITE_DONE) return Error{query.error()};
  }
  {
    Query query(db, "SELECT type, id, contributor, kind, organization, payer, patient_id, json FROM contributions "
                    "WHERE type = ? AND id = ?");
    query.bind(1, type).bind(2, id);
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) {
      merge::Contribution row;
      row.type = query.text(0);
      row.id = query.text(1);
      row.contributor = query.text(2);
      row.kind = query.text(3);
      row.organization = query.text(4);
      row.payer = query.text(5);
      row.patient_id = query.text(6);
      row.json = query.text(7);
      origins.contributions.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return Error{query.error()};
  }
  if (type == "Claim") {
    Query query(db, "SELECT payer_id FROM routed_claims WHERE claim_id = ?");
    query.bind(1, id);
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) origins.routed_payers.push_back(query.text(0));
    if (rc != SQLITE_DONE) return Error{query.error()};
  }
  if (type == "Patient") {
    Query query(db, "SELECT json FROM contributions WHERE patient_id = ? AND type = 'Group'");
    query.bind(1, id);
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) origins.attributions.push_back(query.text(0));
    if (rc != SQLITE_DONE) return Error{query.error()};
  }
  return origins;
}

Status insertAudit(Connection& db, const std::vector<AuditRecord>& records) {
  for (const AuditRecord& record : records) {
    Query insert(db, "INSERT INTO audit_events (recorded_ms, subtype, agent, address, json) VALUES (?, ?, ?, ?, ?)");
    insert.bind(1, record.recorded_ms).bind(2, record.subtype).bind(3, record.agent).bind(4, record.address);
    insert.bindBlob(5, record.json);
    if (insert.step() != SQLITE_DONE) return Error{insert.error()};
    const int64_t row = sqlite3_last_insert_rowid(db.handle());
    for (const std::string& entity : record.entities) {
      Query link(db, "INSERT OR IGNORE INTO audit_entities (audit_id, entity) VALUES (?, ?)");
      link.bind(1, row).bind(2, entity);
      if (link.step() != SQLITE_DONE) return Error{link.error()};
    }
  }
  return Status::Ok();
}

Status appendCommitAudit(Connection& db, const IngestCommit& commit, CommitOutcome& outcome) {
  Status inserted = insertAudit(db, commit.audit);
  if (!inserted.ok()) return inserted;
  outcome.audited = !commit.audit.empty();
  return Status::Ok();
}

Result<std::vector<AuditRecord>> selectAudit(Connection& db, const AuditQuery& query) {
  // Static SQL (the connection caches statements by their text's address): an empty or zero
  // criterion matches everything. With an entity, the entity index leads.
  static const char* const kByEntity =
      "SELECT a.id, a.recorded_ms, a.subtype, a.agent, a.address, a.json FROM audit_entities e "
      "JOIN audit_events a ON a.id = e.audit_id WHERE e.entity = ?1 AND (?2 = '' OR a.agent = ?2 OR a.address = ?2) "
      "AND (?3 = '' OR a.subtype = ?3) AND (?4 = 0 OR a.recorded_ms >= ?4) AND (?5 = 0 OR a.recorded_ms < ?5) "
      "AND (?7 = 0 OR a.id = ?7) ORDER BY a.id LIMIT ?6";
  static const char* const kAll =
      "SELECT a.id, a.recorded_ms, a.subtype, a.agent, a.address, a.json FROM audit_events a WHERE ?1 = '' "
      "AND (?2 = '' OR a.agent = ?2 OR a.address = ?2) AND (?3 = '' OR a.subtype = ?3) "
      "AND (?4 = 0 OR a.recorded_ms >= ?4) AND (?5 = 0 OR a.recorded_ms < ?5) AND (?7 = 0 OR a.id = ?7) "
      "ORDER BY a.id LIMIT ?6";
  Query select(db, query.entity.empty() ? kAll : kByEntity);
  select.bind(1, query.entity).bind(2, query.agent).bind(3, query.subtype);
  select.bind(4, query.from_ms).bind(5, query.to_ms).bind(6, static_cast<int64_t>(query.count)).bind(7, query.id);
  std::vector<AuditRecord> rows;
  int rc;
  while ((rc = select.step()) == SQLITE_ROW) {
    AuditRecord record;
    record.id = select.integer(0);
    record.recorded_ms = select.integer(1);
    record.subtype = select.text(2);
    record.agent = select.text(3);
    record.address = select.text(4);
    record.json = select.text(5);
    rows.push_back(std::move(record));
  }
  if (rc != SQLITE_DONE) return Error{select.error()};
  // Entities of each row.
  for (AuditRecord& record : rows) {
    Query entities(db, "SELECT entity FROM audit_entities WHERE audit_id = ? ORDER BY entity");
    entities.bind(1, record.id);
    while ((rc = entities.step()) == SQLITE_ROW) record.entities.push_back(entities.text(0));
    if (rc != SQLITE_DONE) return Error{entities.error()};
  }
  return rows;
}

}  // namespace fhir::gateway::sqlite

// SPDX-License-Identifier: Apache-2.0
// The PostgreSQL side of access (issue 13): what a resource's ownership rests on, and the
// append-only audit log. The statements are sqlite_access.cc's, in PostgreSQL's dialect; the
// tables are migration 2 (pg_schema.cc).
#include "gateway/store/pg_internal.h"

namespace fhir::gateway::pg {

Result<ResourceOrigins> selectOrigins(Connection& db, std::string_view type, std::string_view id, bool with_payloads) {
  ResourceOrigins origins;
  {
    auto rows = Query(db, with_payloads
                              ? "SELECT DISTINCT e.channel, e.idem_key, e.payload FROM resource_history h JOIN events e "
                                "ON e.seq = h.event_seq WHERE h.type = $1 AND h.id = $2"
                              : "SELECT DISTINCT e.channel, e.idem_key, ''::bytea FROM resource_history h JOIN events e "
                                "ON e.seq = h.event_seq WHERE h.type = $1 AND h.id = $2")
                    .text(type).text(id).run();
    if (!rows.ok()) return rows.error();
    for (int row = 0; row < rows->size(); ++row) {
      origins.events.push_back({rows->text(row, 0), rows->text(row, 1), rows->text(row, 2)});
    }
  }
  {
    auto rows = Query(db, "SELECT " PG_CONTRIBUTION_COLUMNS " FROM contributions WHERE type = $1 AND id = $2 "
                          "ORDER BY contributor COLLATE \"C\"")
                    .text(type).text(id).run();
    if (!rows.ok()) return rows.error();
    for (int row = 0; row < rows->size(); ++row) origins.contributions.push_back(contributionOf(*rows, row));
  }
  if (type == "Claim") {
    auto rows = Query(db, "SELECT payer_id FROM routed_claims WHERE claim_id = $1").text(id).run();
    if (!rows.ok()) return rows.error();
    for (int row = 0; row < rows->size(); ++row) origins.routed_payers.push_back(rows->text(row, 0));
  }
  if (type == "Patient") {
    auto rows = Query(db, "SELECT json FROM contributions WHERE patient_id = $1 AND type = 'Group' "
                          "ORDER BY id COLLATE \"C\", contributor COLLATE \"C\"")
                    .text(id).run();
    if (!rows.ok()) return rows.error();
    for (int row = 0; row < rows->size(); ++row) origins.attributions.push_back(rows->text(row, 0));
  }
  return origins;
}

namespace {

// A text[] literal ({"a","b"}) of `items`, for a parameter sent in text format.
std::string arrayLiteral(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : item) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

Status insertAudit(Connection& db, const std::vector<AuditRecord>& records) {
  // One queued statement per record: the event and its entities.
  for (const AuditRecord& record : records) {
    Query(db, "WITH a AS (INSERT INTO audit_events (recorded_ms, subtype, agent, address, json) "
              "VALUES ($1, $2, $3, $4, $5) RETURNING id) INSERT INTO audit_entities (audit_id, entity) "
              "SELECT a.id, e FROM a, unnest($6::text[]) e ON CONFLICT DO NOTHING")
        .integer(record.recorded_ms).text(record.subtype).text(record.agent).text(record.address).bytes(record.json)
        .literal(arrayLiteral(record.entities)).later();
  }
  return Status::Ok();
}

Result<std::vector<AuditRecord>> selectAudit(Connection& db, const AuditQuery& query) {
  // An empty or zero criterion matches everything. With an entity, the entity index leads. The
  // times and the id are bigint: `$4 = 0` alone would type $4 integer (millisecond times overflow).
  static const char* const kByEntity =
      "SELECT a.id, a.recorded_ms, a.subtype, a.agent, a.address, a.json FROM audit_entities e "
      "JOIN audit_events a ON a.id = e.audit_id WHERE e.entity = $1 AND ($2 = '' OR a.agent = $2 OR a.address = $2) "
      "AND ($3 = '' OR a.subtype = $3) AND ($4::bigint = 0 OR a.recorded_ms >= $4) "
      "AND ($5::bigint = 0 OR a.recorded_ms < $5) AND ($7::bigint = 0 OR a.id = $7) ORDER BY a.id LIMIT $6";
  static const char* const kAll =
      "SELECT a.id, a.recorded_ms, a.subtype, a.agent, a.address, a.json FROM audit_events a WHERE $1 = '' "
      "AND ($2 = '' OR a.agent = $2 OR a.address = $2) AND ($3 = '' OR a.subtype = $3) "
      "AND ($4::bigint = 0 OR a.recorded_ms >= $4) AND ($5::bigint = 0 OR a.recorded_ms < $5) "
      "AND ($7::bigint = 0 OR a.id = $7) ORDER BY a.id LIMIT $6";
  auto rows = Query(db, query.entity.empty() ? kAll : kByEntity)
                  .text(query.entity).text(query.agent).text(query.subtype).integer(query.from_ms).integer(query.to_ms)
                  .integer(static_cast<int64_t>(query.count)).integer(query.id).run();
  if (!rows.ok()) return rows.error();
  std::vector<AuditRecord> out;
  for (int row = 0; row < rows->size(); ++row) {
    AuditRecord record;
    record.id = rows->integer(row, 0);
    record.recorded_ms = rows->integer(row, 1);
    record.subtype = rows->text(row, 2);
    record.agent = rows->text(row, 3);
    record.address = rows->text(row, 4);
    record.json = rows->text(row, 5);
    auto entities = Query(db, "SELECT entity FROM audit_entities WHERE audit_id = $1 ORDER BY entity COLLATE \"C\"")
                        .integer(record.id).run();
    if (!entities.ok()) return entities.error();
    for (int e = 0; e < entities->size(); ++e) record.entities.push_back(entities->text(e, 0));
    out.push_back(std::move(record));
  }
  return out;
}

}  // namespace fhir::gateway::pg

// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/sqlite_quarantine.h"

#include "conformance/common/ids.h"

namespace fhir::gateway::sqlite {

Status prepareQuarantine(Connection& db) {
  for (const char* column : {"payload_sha256 TEXT NOT NULL DEFAULT ''", "count INTEGER NOT NULL DEFAULT 1",
                             "last_received_at TEXT NOT NULL DEFAULT ''"}) {
    Status added = db.exec(("ALTER TABLE quarantine ADD COLUMN " + std::string(column)).c_str());
    if (!added.ok() && added.message().find("duplicate column") == std::string::npos) return added;
  }
  // Entries from before: their last arrival is their first.
  Status filled = db.exec("UPDATE quarantine SET last_received_at = received_at WHERE last_received_at = ''");
  if (!filled.ok()) return filled;
  return db.exec(
      "CREATE INDEX IF NOT EXISTS quarantine_by_digest ON quarantine (channel, payload_sha256) "
      "WHERE payload_sha256 <> '' AND status = 'quarantined';"
      "CREATE INDEX IF NOT EXISTS quarantine_by_arrival ON quarantine (last_received_at);");
}

Result<std::string> insertQuarantine(Connection& db, const std::string& id, const QuarantineWrite& write,
                                     const std::string& now) {
  const std::string digest = write.payload_sha256.empty() ? fhir::sha256Hex(write.payload) : write.payload_sha256;
  {
    Query existing(db, "SELECT id FROM quarantine WHERE channel = ? AND payload_sha256 = ? AND status = 'quarantined' "
                       "ORDER BY rowid LIMIT 1");
    existing.bind(1, write.channel).bind(2, digest);
    int rc = existing.step();
    if (rc == SQLITE_ROW) {
      const std::string kept = existing.text(0);
      Query counted(db, "UPDATE quarantine SET count = count + 1, last_received_at = ? WHERE id = ?");
      counted.bind(1, now).bind(2, kept);
      if (counted.step() != SQLITE_DONE) return Error{counted.error()};
      return kept;
    }
    if (rc != SQLITE_DONE) return Error{existing.error()};
  }
  Query query(db,
              "INSERT INTO quarantine (id, channel, received_at, content_type, payload, truncated, outcome, record, "
              "replay_prefix, replay_suffix, payload_sha256, count, last_received_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)");
  query.bind(1, id).bind(2, write.channel).bind(3, now).bind(4, write.content_type);
  query.bindBlob(5, write.payload.empty() ? kEmptyBlob : std::string_view(write.payload));
  query.bind(6, int64_t{write.truncated ? 1 : 0}).bind(7, write.outcome_json);
  query.bind(8, int64_t{write.record ? 1 : 0}).bindBlob(9, write.replay_prefix);
  query.bindBlob(10, write.replay_suffix).bind(11, digest).bind(12, now);
  if (query.step() != SQLITE_DONE) return Error{query.error()};
  return id;
}

Result<QuarantinePage> selectQuarantinePage(Connection& db, const QuarantineQuery& request) {
  // Newest first by rowid (the order of first arrival); the cursor is the last rowid shown.
  int64_t before = INT64_MAX;
  if (!request.cursor.empty()) {
    try {
      before = std::stoll(request.cursor);
    } catch (const std::exception&) {
      return Error{"bad cursor"};
    }
  }
  Query query(db,
              "SELECT rowid, id, channel, received_at, content_type, truncated, outcome, record, status, replays, "
              "replayed_at, replay_status, replay_answer, count, last_received_at, payload_sha256, length(payload) "
              "FROM quarantine WHERE rowid < ?1 AND (?2 = '' OR channel = ?2) AND (?3 = '' OR status = ?3) "
              "AND (?4 = '' OR last_received_at >= ?4) ORDER BY rowid DESC LIMIT ?5");
  query.bind(1, before).bind(2, request.channel).bind(3, request.status).bind(4, request.since);
  query.bind(5, static_cast<int64_t>(request.count + 1));
  QuarantinePage page;
  int rc;
  int64_t last_rowid = 0;
  while ((rc = query.step()) == SQLITE_ROW) {
    if (page.entries.size() == request.count) {
      page.next_cursor = std::to_string(last_rowid);
      break;
    }
    last_rowid = query.integer(0);
    QuarantineEntry entry;
    entry.id = query.text(1);
    entry.channel = query.text(2);
    entry.received_at = query.text(3);
    entry.content_type = query.text(4);
    entry.truncated = query.integer(5) != 0;
    entry.outcome_json = query.text(6);
    entry.record = query.integer(7) != 0;
    entry.status = query.text(8);
    entry.replays = query.integer(9);
    entry.replayed_at = query.text(10);
    entry.replay_status = static_cast<int>(query.integer(11));
    entry.replay_answer = query.text(12);
    entry.count = query.integer(13);
    entry.last_received_at = query.text(14);
    entry.payload_sha256 = query.text(15);
    entry.payload_bytes = query.integer(16);
    page.entries.push_back(std::move(entry));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error{query.error()};
  return page;
}

Status readQuarantineCounts(Connection& db, QuarantineEntry& entry) {
  Query query(db, "SELECT count, last_received_at, payload_sha256, length(payload) FROM quarantine WHERE id = ?");
  query.bind(1, entry.id);
  int rc = query.step();
  if (rc == SQLITE_ROW) {
    entry.count = query.integer(0);
    entry.last_received_at = query.text(1);
    entry.payload_sha256 = query.text(2);
    entry.payload_bytes = query.integer(3);
    return Status::Ok();
  }
  if (rc == SQLITE_DONE) return Status::Ok();
  return Error{query.error()};
}

QuarantineEntry quarantineEntryOf(const Query& query) {
  QuarantineEntry entry;
  entry.id = query.text(0);
  entry.channel = query.text(1);
  entry.received_at = query.text(2);
  entry.content_type = query.text(3);
  entry.payload = query.text(4);
  entry.truncated = query.integer(5) != 0;
  entry.outcome_json = query.text(6);
  entry.record = query.integer(7) != 0;
  entry.replay_prefix = query.text(8);
  entry.status = query.text(9);
  entry.replays = query.integer(10);
  entry.replayed_at = query.text(11);
  entry.replay_status = static_cast<int>(query.integer(12));
  entry.replay_answer = query.text(13);
  entry.replay_suffix = query.text(14);
  return entry;
}

}  // namespace fhir::gateway::sqlite

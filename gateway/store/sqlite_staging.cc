// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/sqlite_staging.h"

namespace fhir::gateway::sqlite {

Status prepareStaging(Connection& db) {
  Status created = db.exec(
      "CREATE TABLE IF NOT EXISTS staged_files ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, started_at TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS staged_records ("
      "  file INTEGER NOT NULL, seq INTEGER NOT NULL, record_id TEXT NOT NULL, bundle BLOB NOT NULL,"
      "  PRIMARY KEY (file, seq)) WITHOUT ROWID;");
  if (!created.ok()) return created;
  // No staged file was ever answered: whatever a previous process left is a body that did not
  // end (or a publish the client never heard of and will send again; commits are idempotent).
  return db.exec("DELETE FROM staged_records; DELETE FROM staged_files;");
}

Result<int64_t> insertStagedFile(Connection& db, std::string_view channel, std::string_view started_at) {
  Query query(db, "INSERT INTO staged_files (channel, started_at) VALUES (?, ?)");
  query.bind(1, channel).bind(2, started_at);
  if (query.step() != SQLITE_DONE) return Error{query.error()};
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db.handle()));
}

Status insertStagedRecords(Connection& db, int64_t file, const std::vector<StagedRecord>& records) {
  for (const StagedRecord& record : records) {
    Query query(db, "INSERT INTO staged_records (file, seq, record_id, bundle) VALUES (?, ?, ?, ?)");
    query.bind(1, file).bind(2, record.seq).bind(3, record.record_id).bindBlob(4, record.bundle_json);
    if (query.step() != SQLITE_DONE) return Error{query.error()};
  }
  return Status::Ok();
}

Result<std::vector<StagedRecord>> selectStagedRecords(Connection& db, int64_t file, int64_t after_seq, size_t limit) {
  Query query(db, "SELECT seq, record_id, bundle FROM staged_records WHERE file = ? AND seq > ? ORDER BY seq LIMIT ?");
  query.bind(1, file).bind(2, after_seq).bind(3, static_cast<int64_t>(limit));
  std::vector<StagedRecord> records;
  int rc;
  while ((rc = query.step()) == SQLITE_ROW) records.push_back(StagedRecord{query.integer(0), query.text(1), query.text(2)});
  if (rc != SQLITE_DONE) return Error{query.error()};
  return records;
}

Status deleteStagedFile(Connection& db, int64_t file) {
  Query records(db, "DELETE FROM staged_records WHERE file = ?");
  records.bind(1, file);
  if (records.step() != SQLITE_DONE) return Error{records.error()};
  Query files(db, "DELETE FROM staged_files WHERE id = ?");
  files.bind(1, file);
  if (files.step() != SQLITE_DONE) return Error{files.error()};
  return Status::Ok();
}

Result<std::pair<int64_t, int64_t>> countStaged(Connection& db) {
  Query query(db, "SELECT (SELECT count(*) FROM staged_files), (SELECT count(*) FROM staged_records)");
  if (query.step() != SQLITE_ROW) return Error{query.error()};
  return std::pair<int64_t, int64_t>{query.integer(0), query.integer(1)};
}

}  // namespace fhir::gateway::sqlite

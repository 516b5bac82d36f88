// SPDX-License-Identifier: Apache-2.0
// The change log on SQLite: `change_log` holds, per committed event that asked for it, the
// context its committer gave and the resource versions it wrote; `change_cursors` holds how far
// each consumer (the subscription matcher) has processed it. The resources themselves are read
// back from resource_history, so a change row costs one small insert on the writer.
#include <charconv>

#include "gateway/store/sqlite_leases.h"

namespace fhir::gateway::sqlite {
namespace {

Result<std::string> historyJson(Connection& db, const std::string& type, const std::string& id, int64_t version) {
  Query query(db, "SELECT json FROM resource_history WHERE type = ? AND id = ? AND version = ?");
  query.bind(1, type).bind(2, id).bind(3, version);
  int rc = query.step();
  if (rc == SQLITE_ROW) return query.text(0);
  if (rc != SQLITE_DONE) return Error{query.error()};
  return std::string();  // none: a version written before resource_history existed
}

}  // namespace

Status recordChanges(Connection& db, int64_t seq, const std::string& context,
                     const std::vector<ChangedResource>& changed) {
  std::string lines;
  for (const ChangedResource& resource : changed) {
    lines += resource.type + '\t' + resource.id + '\t' + std::to_string(resource.version) + '\n';
  }
  Query insert(db, "INSERT INTO change_log (event_seq, context, changed) VALUES (?, ?, ?)");
  insert.bind(1, seq).bindBlob(2, context).bindBlob(3, lines);
  if (insert.step() != SQLITE_DONE) return Error{insert.error()};
  return Status::Ok();
}

Result<std::vector<ChangeRecord>> changesAfter(Connection& db, int64_t after_seq, size_t limit) {
  std::vector<ChangeRecord> records;
  {
    Query query(db, "SELECT event_seq, context, changed FROM change_log WHERE event_seq > ? ORDER BY event_seq LIMIT ?");
    query.bind(1, after_seq).bind(2, static_cast<int64_t>(limit));
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) {
      ChangeRecord record{query.integer(0), query.text(1), {}};
      const std::string lines = query.text(2);
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
        const char* digits = line.data() + tab2 + 1;
        std::from_chars(digits, line.data() + line.size(), resource.version);
        record.resources.push_back(std::move(resource));
      }
      records.push_back(std::move(record));
    }
    if (rc != SQLITE_DONE) return Error{query.error()};
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

Result<int64_t> changeCursor(Connection& db, std::string_view consumer) {
  Query query(db, "SELECT last_seq FROM change_cursors WHERE consumer = ?");
  query.bind(1, consumer);
  int rc = query.step();
  if (rc == SQLITE_ROW) return query.integer(0);
  if (rc != SQLITE_DONE) return Error{query.error()};
  return int64_t{0};
}

Status moveChangeCursor(Connection& db, std::string_view consumer, int64_t from_seq, int64_t to_seq, bool& moved) {
  {
    Query create(db, "INSERT INTO change_cursors (consumer, last_seq) VALUES (?, 0) ON CONFLICT (consumer) DO NOTHING");
    create.bind(1, consumer);
    if (create.step() != SQLITE_DONE) return Error{create.error()};
  }
  {
    Query move(db, "UPDATE change_cursors SET last_seq = ? WHERE consumer = ? AND last_seq = ?");
    move.bind(1, to_seq).bind(2, consumer).bind(3, from_seq);
    if (move.step() != SQLITE_DONE) return Error{move.error()};
    moved = sqlite3_changes(db.handle()) > 0;
  }
  if (!moved) return Status::Ok();
  Query prune(db, "DELETE FROM change_log WHERE event_seq <= (SELECT MIN(last_seq) FROM change_cursors)");
  if (prune.step() != SQLITE_DONE) return Error{prune.error()};
  return Status::Ok();
}

}  // namespace fhir::gateway::sqlite

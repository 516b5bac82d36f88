// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/sqlite_history.h"

#include <limits>

#include "conformance/json/json.h"

namespace fhir::gateway::sqlite {

Status prepareHistory(Connection& db) {
  bool made = false;
  {
    Query exists(db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'resource_history_by_type_seq'");
    if (!exists.ok()) return Error{db.lastError()};
    const int rc = exists.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error{exists.error()};
    made = rc == SQLITE_ROW;
  }
  if (made) return Status::Ok();
  // A store from before resource_history keeps its resources' JSON in `resources` only: their
  // current versions become history rows once, so every read of versions has one place to look.
  Status copied = db.exec(
      "INSERT OR IGNORE INTO resource_history (type, id, version, updated_at, event_seq, json) "
      "SELECT type, id, version, updated_at, 0, json FROM resources WHERE length(json) > 0");
  if (!copied.ok()) return copied;
  return db.exec(
      "CREATE INDEX IF NOT EXISTS resource_history_by_seq ON resource_history (event_seq);"
      "CREATE INDEX IF NOT EXISTS resource_history_by_type_seq ON resource_history (type, event_seq);");
}

Result<std::optional<StoredResource>> selectVersion(Connection& db, std::string_view type, std::string_view id,
                                                    int64_t version) {
  Query query(db, "SELECT updated_at, json FROM resource_history WHERE type = ? AND id = ? AND version = ?");
  if (!query.ok()) return Error{db.lastError()};
  query.bind(1, type).bind(2, id).bind(3, version);
  const int rc = query.step();
  if (rc == SQLITE_DONE) return std::optional<StoredResource>();
  if (rc != SQLITE_ROW) return Error{query.error()};
  return std::optional<StoredResource>(StoredResource{withMeta(query.text(1), version, query.text(0)), version});
}

namespace {

// History order is (event_seq, type, id, version) descending; `event_seq <= ?` lets the index
// start at the page, the row value then cuts inside one commit.
#define HISTORY_PAGE                                                                                   \
  " updated_at >= ?3 AND event_seq <= ?4 AND (event_seq, type, id, version) < (?4, ?5, ?6, ?7) "       \
  "ORDER BY event_seq DESC, type DESC, id DESC, version DESC LIMIT ?8"
constexpr const char* kInstance =
    "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE type = ?1 AND id = ?2 AND"
    HISTORY_PAGE;
constexpr const char* kType =
    "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE type = ?1 AND ?2 = '' AND"
    HISTORY_PAGE;
constexpr const char* kSystem =
    "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE ?1 = '' AND ?2 = '' AND"
    HISTORY_PAGE;
#undef HISTORY_PAGE

}  // namespace

Result<std::vector<ResourceVersion>> selectHistory(Connection& db, const HistoryQuery& request) {
  const char* sql = request.type.empty() ? kSystem : request.id.empty() ? kType : kInstance;
  return selectRows<ResourceVersion>(
      db, sql,
      [&](Query& query) {
        query.bind(1, request.type).bind(2, request.id).bind(3, request.since);
        if (request.before) {
          query.bind(4, request.before->event_seq).bind(5, request.before->type).bind(6, request.before->id);
          query.bind(7, request.before->version);
        } else {
          // Past every key: the first page.
          query.bind(4, std::numeric_limits<int64_t>::max()).bind(5, std::string_view("")).bind(6, std::string_view(""));
          query.bind(7, int64_t{0});
        }
        query.bind(8, static_cast<int64_t>(request.count));
      },
      [](const Query& query) {
        ResourceVersion version;
        version.type = query.text(0);
        version.id = query.text(1);
        version.version = query.integer(2);
        version.updated_at = query.text(3);
        version.event_seq = query.integer(4);
        version.json = withMeta(query.text(5), version.version, version.updated_at);
        return version;
      });
}

}  // namespace fhir::gateway::sqlite

// SPDX-License-Identifier: Apache-2.0
// The PostgreSQL side of history and vread (issue 15): sqlite_history.cc's reads of
// resource_history in PostgreSQL's dialect. Every version has its history row here (pg_copy.cc
// copies the older ones of a SQLite store).
#include <limits>

#include "gateway/store/pg_internal.h"

namespace fhir::gateway::pg {

Result<std::optional<StoredResource>> selectVersion(Connection& db, std::string_view type, std::string_view id,
                                                    int64_t version) {
  auto rows = Query(db, "SELECT updated_at, json FROM resource_history WHERE type = $1 AND id = $2 AND version = $3")
                  .text(type).text(id).integer(version).run();
  if (!rows.ok()) return rows.error();
  if (rows->empty()) return std::optional<StoredResource>();
  return std::optional<StoredResource>(StoredResource{withMeta(rows->text(0, 1), version, rows->text(0, 0)), version});
}

Result<std::vector<ResourceVersion>> selectHistory(Connection& db, const HistoryQuery& request) {
  // History order is (event_seq, type, id, version) descending, text in byte order (COLLATE "C")
  // so that the page key and the order agree whatever the database's collation.
#define HISTORY_PAGE                                                                                         \
  " updated_at >= $3 AND event_seq <= $4 AND (event_seq, type COLLATE \"C\", id COLLATE \"C\", version) < "  \
  "($4, $5::text COLLATE \"C\", $6::text COLLATE \"C\", $7) ORDER BY event_seq DESC, type COLLATE \"C\" DESC, "           \
  "id COLLATE \"C\" DESC, version DESC LIMIT $8"
  static constexpr const char* kInstance =
      "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE type = $1 AND id = $2 AND"
      HISTORY_PAGE;
  static constexpr const char* kType =
      "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE type = $1 AND $2 = '' AND"
      HISTORY_PAGE;
  static constexpr const char* kSystem =
      "SELECT type, id, version, updated_at, event_seq, json FROM resource_history WHERE $1 = '' AND $2 = '' AND"
      HISTORY_PAGE;
#undef HISTORY_PAGE
  const char* sql = request.type.empty() ? kSystem : request.id.empty() ? kType : kInstance;
  Query query(db, sql);
  query.text(request.type).text(request.id).text(request.since);
  if (request.before) {
    query.integer(request.before->event_seq).text(request.before->type).text(request.before->id);
    query.integer(request.before->version);
  } else {
    query.integer(std::numeric_limits<int64_t>::max()).text("").text("").integer(0);
  }
  query.integer(static_cast<int64_t>(request.count));
  auto rows = query.run();
  if (!rows.ok()) return rows.error();
  std::vector<ResourceVersion> versions;
  for (int row = 0; row < rows->size(); ++row) {
    ResourceVersion version;
    version.type = rows->text(row, 0);
    version.id = rows->text(row, 1);
    version.version = rows->integer(row, 2);
    version.updated_at = rows->text(row, 3);
    version.event_seq = rows->integer(row, 4);
    version.json = withMeta(rows->text(row, 5), version.version, version.updated_at);
    versions.push_back(std::move(version));
  }
  return versions;
}

}  // namespace fhir::gateway::pg

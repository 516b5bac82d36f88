// SPDX-License-Identifier: Apache-2.0
// Outbox leases on SQLite: one row per destination in `outbox_leases`. Every statement runs in the
// writer's transaction (BEGIN IMMEDIATE), which SQLite serialises across connections and
// processes, so a claim reads and writes the row without another handle in between.
#include "gateway/store/sqlite_leases.h"

namespace fhir::gateway::sqlite {

Status claimLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                  int64_t duration_ms, std::string_view dead_holder, OutboxLease& lease) {
  Query claim(db,
              "INSERT INTO outbox_leases (destination, holder, expires_ms) VALUES (?1, ?2, ?3) "
              "ON CONFLICT (destination) DO UPDATE SET holder = ?2, expires_ms = ?3 "
              "WHERE outbox_leases.holder = ?2 OR outbox_leases.holder = '' OR outbox_leases.expires_ms <= ?4 "
              "OR (?5 <> '' AND outbox_leases.holder = ?5)");
  claim.bind(1, destination).bind(2, holder).bind(3, now_ms + duration_ms).bind(4, now_ms).bind(5, dead_holder);
  if (claim.step() != SQLITE_DONE) return Error{claim.error()};
  Query current(db, "SELECT holder, expires_ms FROM outbox_leases WHERE destination = ?");
  current.bind(1, destination);
  if (current.step() != SQLITE_ROW) return Error{current.error()};
  lease = OutboxLease{std::string(destination), current.text(0), current.integer(1)};
  return Status::Ok();
}

Status extendLease(Connection& db, std::string_view destination, std::string_view holder, int64_t now_ms,
                   int64_t duration_ms, bool& extended) {
  // An expired lease nobody took over is still the holder's: no one else sent its rows meanwhile
  // (a takeover changes the holder), so extending it is safe.
  Query extend(db, "UPDATE outbox_leases SET expires_ms = ? WHERE destination = ? AND holder = ?");
  extend.bind(1, now_ms + duration_ms).bind(2, destination).bind(3, holder);
  if (extend.step() != SQLITE_DONE) return Error{extend.error()};
  extended = sqlite3_changes(db.handle()) > 0;
  return Status::Ok();
}

Status releaseLease(Connection& db, std::string_view destination, std::string_view holder) {
  Query release(db, "DELETE FROM outbox_leases WHERE destination = ? AND holder = ?");
  release.bind(1, destination).bind(2, holder);
  if (release.step() != SQLITE_DONE) return Error{release.error()};
  return Status::Ok();
}

Result<std::optional<OutboxLease>> leaseOf(Connection& db, std::string_view destination) {
  Query current(db, "SELECT holder, expires_ms FROM outbox_leases WHERE destination = ?");
  current.bind(1, destination);
  int rc = current.step();
  if (rc == SQLITE_DONE) return std::optional<OutboxLease>();
  if (rc != SQLITE_ROW) return Error{current.error()};
  return std::optional<OutboxLease>(OutboxLease{std::string(destination), current.text(0), current.integer(1)});
}

}  // namespace fhir::gateway::sqlite

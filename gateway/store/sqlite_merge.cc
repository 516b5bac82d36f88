// SPDX-License-Identifier: Apache-2.0
// The SQLite side of the merge (issue 11): contribution rows and patient clusters, read and
// written inside the writer's transaction (gateway/merge/merge_service.h decides what to merge).
#include "gateway/store/sqlite_merge.h"

#include <map>
#include <set>
#include <tuple>

#include "gateway/store/merge_trace.h"

#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"
#include "conformance/common/time_util.h"

namespace fhir::gateway::sqlite {

const char* const kMergeSchema = R"sql(
CREATE TABLE IF NOT EXISTS contributions (
  type TEXT NOT NULL, id TEXT NOT NULL, contributor TEXT NOT NULL, kind TEXT NOT NULL,
  organization TEXT NOT NULL, payer TEXT NOT NULL, rank TEXT NOT NULL, tiebreak TEXT NOT NULL, provenance TEXT NOT NULL,
  patient_id TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY (type, id, contributor));
CREATE INDEX IF NOT EXISTS contributions_by_patient ON contributions (patient_id);
CREATE TABLE IF NOT EXISTS patient_survivor (patient_id TEXT PRIMARY KEY, survivor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS patients_by_survivor ON patient_survivor (survivor);
CREATE TABLE IF NOT EXISTS patient_links (
  patient_id TEXT NOT NULL, other_id TEXT NOT NULL, evidence TEXT NOT NULL, PRIMARY KEY (patient_id, other_id));
CREATE TABLE IF NOT EXISTS patient_conflicts (
  coverage_id TEXT NOT NULL, patient_a TEXT NOT NULL, patient_b TEXT NOT NULL, elements TEXT NOT NULL,
  detail TEXT NOT NULL, detected_at TEXT NOT NULL, PRIMARY KEY (coverage_id, patient_a, patient_b));
CREATE TABLE IF NOT EXISTS coverage_evidence (
  coverage_id TEXT NOT NULL, patient_id TEXT NOT NULL, payer_id TEXT NOT NULL, member_id TEXT NOT NULL,
  line_of_business TEXT NOT NULL, date TEXT NOT NULL, PRIMARY KEY (coverage_id, patient_id, date));
CREATE INDEX IF NOT EXISTS evidence_by_patient ON coverage_evidence (patient_id);
CREATE TABLE IF NOT EXISTS merge_state (name TEXT PRIMARY KEY, done_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS routed_claims (
  claim_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, payer_id TEXT NOT NULL, date_of_service TEXT NOT NULL,
  code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS routed_by_patient ON routed_claims (patient_id);
CREATE TABLE IF NOT EXISTS routing_conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, claim_id TEXT NOT NULL, patient_id TEXT NOT NULL, routed_payer TEXT NOT NULL,
  date_of_service TEXT NOT NULL, code TEXT NOT NULL, now_payer TEXT NOT NULL, reason TEXT NOT NULL,
  detected_at TEXT NOT NULL, UNIQUE (claim_id, now_payer));
)sql";

namespace {

#define RESOURCE_TEXT                                                                              \
  "(CASE WHEN length(r.json) > 0 THEN r.json ELSE (SELECT h.json FROM resource_history h WHERE h.type = r.type " \
  "AND h.id = r.id AND h.version = r.version) END)"

merge::Contribution contributionRow(const Query& query) {
  merge::Contribution row;
  row.type = query.text(0);
  row.id = query.text(1);
  row.contributor = query.text(2);
  row.kind = query.text(3);
  row.organization = query.text(4);
  row.rank = query.text(5);
  row.tiebreak = query.text(6);
  row.provenance = query.text(7);
  row.patient_id = query.text(8);
  row.json = query.text(9);
  row.payer = query.text(10);
  return row;
}

class SqliteMergeTx final : public MergeTx {
 public:
  explicit SqliteMergeTx(Connection& db) : db_(db) {}

  Status putContribution(const merge::Contribution& c) override {
    // A source's later word replaces its earlier one whatever the arrival order: a higher rank,
    // or the same rank and a tiebreak not above the kept one's.
    Query query(db_, "INSERT INTO contributions (type, id, contributor, kind, organization, rank, tiebreak, "
                     "provenance, patient_id, json, payer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (type, id, contributor) DO UPDATE SET kind = excluded.kind, organization = "
                     "excluded.organization, rank = excluded.rank, tiebreak = excluded.tiebreak, provenance = "
                     "excluded.provenance, patient_id = excluded.patient_id, json = excluded.json, payer = excluded.payer "
                     "WHERE excluded.rank > contributions.rank OR (excluded.rank = contributions.rank AND "
                     "excluded.tiebreak <= contributions.tiebreak)");
    query.bind(1, c.type).bind(2, c.id).bind(3, c.contributor).bind(4, c.kind).bind(5, c.organization);
    query.bind(6, c.rank).bind(7, c.tiebreak).bind(8, c.provenance).bind(9, c.patient_id).bindBlob(10, c.json).bind(11, c.payer);
    return done(query);
  }

  Result<std::vector<merge::Contribution>> contributions(std::string_view type, std::string_view id) override {
    Query query(db_, "SELECT type, id, contributor, kind, organization, rank, tiebreak, provenance, patient_id, json, payer "
                     "FROM contributions WHERE type = ? AND id = ? ORDER BY contributor");
    query.bind(1, type).bind(2, id);
    std::vector<merge::Contribution> out;
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) out.push_back(contributionRow(query));
    if (rc != SQLITE_DONE) return Error{query.error()};
    return out;
  }

  Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) override {
    Query query(db_, "SELECT DISTINCT type, id FROM contributions WHERE patient_id = ? ORDER BY type, id");
    query.bind(1, patient_id);
    std::vector<std::pair<std::string, std::string>> out;
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) out.emplace_back(query.text(0), query.text(1));
    if (rc != SQLITE_DONE) return Error{query.error()};
    return out;
  }

  Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) override {
    return strings("SELECT DISTINCT b.patient_id FROM contributions a JOIN contributions b ON b.type = 'Coverage' "
                   "AND b.id = a.id WHERE a.type = 'Coverage' AND a.patient_id = ?1 AND b.patient_id <> ?1 "
                   "AND b.patient_id <> '' ORDER BY 1",
                   patient_id);
  }

  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    Query query(db_, "SELECT patient_id FROM patient_demographics WHERE family = ? AND birth_date = ? AND given = ? "
                     "AND gender = ? ORDER BY patient_id");
    query.bind(1, who.family).bind(2, who.birth_date).bind(3, who.given).bind(4, who.gender);
    return collect(query);
  }

  Result<std::vector<std::string>> linked(std::string_view patient_id) override {
    return strings("SELECT other_id FROM patient_links WHERE patient_id = ?1 UNION "
                   "SELECT patient_id FROM patient_links WHERE other_id = ?1 ORDER BY 1",
                   patient_id);
  }

  Result<std::string> survivorOf(std::string_view patient_id) override {
    auto found = strings("SELECT survivor FROM patient_survivor WHERE patient_id = ?1", patient_id);
    if (!found.ok()) return found.error();
    return found->empty() ? std::string() : found->front();
  }

  Status setSurvivor(std::string_view patient_id, std::string_view survivor_id) override {
    Query query(db_, "INSERT OR REPLACE INTO patient_survivor (patient_id, survivor) VALUES (?, ?)");
    query.bind(1, patient_id).bind(2, survivor_id);
    return done(query);
  }

  Status putLink(std::string_view patient_id, std::string_view other_id, std::string_view evidence) override {
    Query query(db_, "INSERT OR IGNORE INTO patient_links (patient_id, other_id, evidence) VALUES (?, ?, ?)");
    query.bind(1, patient_id).bind(2, other_id).bind(3, evidence);
    return done(query);
  }

  Status putConflict(const PatientConflict& conflict) override {
    Query query(db_, "INSERT OR REPLACE INTO patient_conflicts (coverage_id, patient_a, patient_b, elements, detail, detected_at) "
                     "VALUES (?, ?, ?, ?, ?, COALESCE((SELECT detected_at FROM patient_conflicts WHERE coverage_id = ?1 "
                     "AND patient_a = ?2 AND patient_b = ?3), ?6))");
    query.bind(1, conflict.coverage_id).bind(2, conflict.patient_a).bind(3, conflict.patient_b);
    query.bind(4, conflict.elements).bind(5, conflict.detail).bind(6, nowIso());
    return done(query);
  }

 private:
  static Status done(Query& query) {
    if (!query.ok()) return Error{query.error()};
    if (query.step() != SQLITE_DONE) return Error{query.error()};
    return Status::Ok();
  }
  static Result<std::vector<std::string>> collect(Query& query) {
    if (!query.ok()) return Error{query.error()};
    std::vector<std::string> out;
    int rc;
    while ((rc = query.step()) == SQLITE_ROW) out.push_back(query.text(0));
    if (rc != SQLITE_DONE) return Error{query.error()};
    return out;
  }
  Result<std::vector<std::string>> strings(const char* sql, std::string_view argument) {
    Query query(db_, sql);
    query.bind(1, argument);
    return collect(query);
  }

  Connection& db_;
};

// The merge's tables read outside the writer (Store::readMerge): every write is refused.
class ReadOnlyMergeTx final : public MergeTx {
 public:
  explicit ReadOnlyMergeTx(Connection& db) : reads_(db) {}
  Status putContribution(const merge::Contribution&) override { return refused(); }
  Result<std::vector<merge::Contribution>> contributions(std::string_view type, std::string_view id) override {
    return reads_.contributions(type, id);
  }
  Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) override {
    return reads_.contributedAbout(patient_id);
  }
  Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) override {
    return reads_.coverageNeighbours(patient_id);
  }
  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    return reads_.patientsWithDemographics(who);
  }
  Result<std::vector<std::string>> linked(std::string_view patient_id) override { return reads_.linked(patient_id); }
  Result<std::string> survivorOf(std::string_view patient_id) override { return reads_.survivorOf(patient_id); }
  Status setSurvivor(std::string_view, std::string_view) override { return refused(); }
  Status putLink(std::string_view, std::string_view, std::string_view) override { return refused(); }
  Status putConflict(const PatientConflict&) override { return refused(); }

 private:
  static Status refused() { return Error{"sqlite: the merge's read view (Store::readMerge) cannot write"}; }
  SqliteMergeTx reads_;
};

}  // namespace

std::unique_ptr<MergeTx> makeMergeTx(Connection& db) { return std::make_unique<SqliteMergeTx>(db); }

Status readMerge(Connection& db, const std::function<Status(MergeTx&)>& read) {
  Status begun = db.run("BEGIN");  // the first read takes the snapshot every later read sees
  if (!begun.ok()) return begun;
  ReadOnlyMergeTx view(db);
  Status status = read(view);
  Status ended = db.run(status.ok() ? "COMMIT" : "ROLLBACK");
  return status.ok() ? ended : status;
}

Status mergeInTransaction(Connection& db, const MergeHook& hook, const IngestCommit& commit,
                          std::vector<ResourceWrite>& merged, std::vector<CoverageFact>& coverage,
                          bool& changed) {
  changed = false;
  if (!hook || (commit.contributions.empty() && commit.remerge.empty())) return Status::Ok();
  Status status = db.run("SAVEPOINT merge");
  if (!status.ok()) return status;
  auto tx = makeMergeTx(db);
  if (commit.merge_checked && commit.merge_trace) {
    // The service's merge replayed (merge_trace.h): when every read it made returns the same
    // here, this transaction's merge is the checked one, without merging again.
    auto replayed = replayMergeTrace(*tx, *commit.merge_trace);
    if (!replayed.ok()) return Error{replayed.message()};  // the job's savepoint undoes everything
    if (*replayed) {
      merged = commit.merge_expected;
      coverage = commit.merge_trace->coverage;
      return db.run("RELEASE merge");
    }
    status = db.run("ROLLBACK TO merge");  // a read differs: undone, and merged as before
    if (!status.ok()) return status;
  }
  status = hook(*tx, commit, merged, coverage);
  if (!status.ok()) return status;  // the job's savepoint undoes everything
  if (!takeCheckedMerge(commit, merged)) {
    changed = true;
    merged.clear();
    coverage.clear();
    status = db.run("ROLLBACK TO merge");
    if (!status.ok()) return status;
  }
  return db.run("RELEASE merge");
}

Status backfillContributions(Connection& db) {
  // Once: resources of the merged types stored before contributions existed become one
  // contribution each (kind "stored", the last in every precedence list), so the first merge
  // after the upgrade keeps what they said. Coverage keeps its payer from the coverage index.
  return db.exec(
      "BEGIN IMMEDIATE;"
      "INSERT OR IGNORE INTO contributions (type, id, contributor, kind, organization, payer, rank, tiebreak, provenance, "
      "patient_id, json) SELECT r.type, r.id, 'stored', 'stored', '', "
      "CASE WHEN r.type = 'Coverage' THEN COALESCE((SELECT payer_id FROM coverage_index i WHERE i.coverage_id = r.id "
      "LIMIT 1), '') ELSE '' END, '', '', '', "
      "CASE r.type WHEN 'Patient' THEN r.id WHEN 'Coverage' THEN COALESCE(substr(json_extract(CAST(" RESOURCE_TEXT
      " AS TEXT), '$.beneficiary.reference'), 9), '') ELSE '' END, " RESOURCE_TEXT " FROM resources r "
      "WHERE r.type IN ('Patient', 'Coverage', 'Group', 'Organization', 'Practitioner') "
      "AND NOT EXISTS (SELECT 1 FROM merge_state WHERE name = 'backfill');"
      "INSERT OR IGNORE INTO merge_state (name, done_at) VALUES ('backfill', datetime('now'));"
      "COMMIT;");
}

Result<std::vector<std::string>> clusterOf(Connection& db, std::string_view patient_id) {
  auto members = selectRows<std::string>(
      db,
      "SELECT patient_id FROM patient_survivor WHERE survivor = (SELECT survivor FROM patient_survivor "
      "WHERE patient_id = ?1) AND patient_id <> ?1 ORDER BY 1",
      [&](Query& query) { query.bind(1, patient_id); }, [](const Query& query) { return query.text(0); });
  if (members.ok()) members->insert(members->begin(), std::string(patient_id));
  return members;
}

Result<std::vector<RoutedClaim>> routedOf(Connection& db, std::string_view patient_id) {
  return selectRows<RoutedClaim>(
      db, "SELECT claim_id, patient_id, payer_id, date_of_service, code FROM routed_claims WHERE patient_id = ? ORDER BY 1",
      [&](Query& query) { query.bind(1, patient_id); },
      [](const Query& q) { return RoutedClaim{q.text(0), q.text(1), q.text(2), q.text(3), q.text(4)}; });
}

Result<std::vector<RoutingConflict>> routingConflicts(Connection& db, size_t limit) {
  return selectRows<RoutingConflict>(
      db,
      "SELECT claim_id, patient_id, routed_payer, date_of_service, code, now_payer, reason, detected_at "
      "FROM routing_conflicts ORDER BY id LIMIT ?",
      [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); },
      [](const Query& q) {
        return RoutingConflict{RoutedClaim{q.text(0), q.text(1), q.text(2), q.text(3), q.text(4)}, q.text(5), q.text(6), q.text(7)};
      });
}

Result<std::vector<PatientConflict>> patientConflicts(Connection& db, size_t limit) {
  return selectRows<PatientConflict>(
      db,
      "SELECT coverage_id, patient_a, patient_b, elements, detail, detected_at FROM patient_conflicts "
      "ORDER BY detected_at, coverage_id, patient_a, patient_b LIMIT ?",
      [&](Query& query) { query.bind(1, static_cast<int64_t>(limit)); },
      [](const Query& q) { return PatientConflict{q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5)}; });
}

Result<std::vector<std::string>> patientsWithDemographics(Connection& db, const PatientDemographics& who) {
  return selectRows<std::string>(
      db,
      "SELECT patient_id FROM patient_demographics WHERE family = ? AND birth_date = ? AND given = ? AND gender = ? "
      "ORDER BY patient_id",
      [&](Query& query) { query.bind(1, who.family).bind(2, who.birth_date).bind(3, who.given).bind(4, who.gender); },
      [](const Query& query) { return query.text(0); });
}

Result<std::vector<std::string>> patientsWithMember(Connection& db, std::string_view payer_id, std::string_view member_id) {
  return selectRows<std::string>(
      db, "SELECT DISTINCT patient_id FROM coverage_index WHERE payer_id = ? AND member_id = ?",
      [&](Query& query) { query.bind(1, payer_id).bind(2, member_id); }, [](const Query& query) { return query.text(0); });
}

Status updateUnroutableReason(Connection& db, std::string_view claim_id, std::string_view reason,
                              std::string_view outcome_json) {
  Query query(db, "UPDATE unroutable SET reason = ?, outcome = ? WHERE claim_id = ? AND resolved_at = '' AND reason <> ?1");
  query.bind(1, reason).bind(2, outcome_json).bind(3, claim_id);
  if (query.step() != SQLITE_DONE) return Error{query.error()};
  return Status::Ok();
}

Status putRoutingConflict(Connection& db, const RoutingConflict& c) {
  Query query(db, "INSERT OR IGNORE INTO routing_conflicts (claim_id, patient_id, routed_payer, date_of_service, code, "
                  "now_payer, reason, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  query.bind(1, c.routed.claim_id).bind(2, c.routed.patient_id).bind(3, c.routed.payer_id);
  query.bind(4, c.routed.date_of_service).bind(5, c.routed.code).bind(6, c.now_payer_id).bind(7, c.reason).bind(8, nowIso());
  if (query.step() != SQLITE_DONE) return Error{query.error()};
  return Status::Ok();
}

Status indexDemographics(Connection& db, const std::string& id, const std::string& patient_json) {
  Query query(db, "INSERT OR REPLACE INTO patient_demographics (patient_id, family, given, birth_date, gender) "
                  "VALUES (?1, " DEMOGRAPHICS_OF("?2") ")");
  query.bind(1, id).bind(2, patient_json);
  if (query.step() != SQLITE_DONE) return Error{query.error()};
  return Status::Ok();
}

namespace {

using CoverageRow = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, int64_t>;

// The merged Coverages whose coverage_index rows already are exactly what the merge gives (the
// same merge again, as on every event of a patient whose coverage did not change): they are left
// as they are instead of deleted and written back, which rewrote four b-trees per event
// (issue 12). Not a Coverage the commit also names in its own facts, which are written between.
Result<std::set<std::string>> unchangedCoverage(Connection& db, const IngestCommit& commit,
                                                const std::vector<CoverageFact>& merged_coverage) {
  std::map<std::string, std::map<std::string, CoverageRow>> wanted;  // coverage id -> patient -> row
  for (const CoverageFact& fact : merged_coverage) {  // INSERT OR REPLACE: the last one stays
    wanted[fact.coverage_id][fact.patient_id] =
        CoverageRow{fact.payer_id, fact.member_id, fact.line_of_business, fact.start, fact.end, fact.basis, fact.order};
  }
  for (const CoverageFact& fact : commit.coverage) {
    if (fact.basis != "evidence") wanted.erase(fact.coverage_id);
  }
  std::set<std::string> same;
  for (const auto& [coverage_id, rows] : wanted) {
    Query stored(db, "SELECT patient_id, payer_id, member_id, line_of_business, start, end, basis, ord "
                     "FROM coverage_index WHERE coverage_id = ? ORDER BY patient_id");
    stored.bind(1, coverage_id);
    auto row = rows.begin();
    bool equal = true;
    int rc;
    while ((rc = stored.step()) == SQLITE_ROW) {
      if (row == rows.end() || row->first != stored.text(0) ||
          row->second != CoverageRow{stored.text(1), stored.text(2), stored.text(3), stored.text(4), stored.text(5),
                                     stored.text(6), stored.integer(7)}) {
        equal = false;
        break;
      }
      ++row;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error{stored.error()};
    if (equal && row == rows.end()) same.insert(coverage_id);
  }
  return same;
}

}  // namespace

Status writeCoverageFacts(Connection& db, const IngestCommit& commit,
                          const std::vector<CoverageFact>& merged_coverage) {
  auto unchanged = unchangedCoverage(db, commit, merged_coverage);
  if (!unchanged.ok()) return unchanged.error();
  for (const CoverageFact& fact : merged_coverage) {  // a merged Coverage replaces its rows
    if (unchanged->count(fact.coverage_id)) continue;
    Query drop(db, "DELETE FROM coverage_index WHERE coverage_id = ?");
    drop.bind(1, fact.coverage_id);
    if (drop.step() != SQLITE_DONE) return Error{drop.error()};
  }
  for (const CoverageFact& fact : commit.coverage) {
    if (fact.basis != "evidence") continue;  // a claim file's date of service
    Query evidence(db, "INSERT OR IGNORE INTO coverage_evidence (coverage_id, patient_id, payer_id, member_id, "
                       "line_of_business, date) VALUES (?, ?, ?, ?, ?, ?)");
    evidence.bind(1, fact.coverage_id).bind(2, fact.patient_id).bind(3, fact.payer_id).bind(4, fact.member_id);
    evidence.bind(5, fact.line_of_business).bind(6, fact.start);
    if (evidence.step() != SQLITE_DONE) return Error{evidence.error()};
  }
  for (const RoutedClaim& routed : commit.routed) {
    Query row(db, "INSERT OR IGNORE INTO routed_claims (claim_id, patient_id, payer_id, date_of_service, code) "
                  "VALUES (?, ?, ?, ?, ?)");
    row.bind(1, routed.claim_id).bind(2, routed.patient_id).bind(3, routed.payer_id).bind(4, routed.date_of_service);
    row.bind(5, routed.code);
    if (row.step() != SQLITE_DONE) return Error{row.error()};
  }
  std::vector<CoverageFact> index_rows;
  for (const CoverageFact& fact : commit.coverage) {
    if (fact.basis != "evidence") index_rows.push_back(fact);
  }
  for (const CoverageFact& fact : merged_coverage) {
    if (!unchanged->count(fact.coverage_id)) index_rows.push_back(fact);
  }
  for (const CoverageFact& fact : index_rows) {
    Query coverage(db,
                   "INSERT OR REPLACE INTO coverage_index (coverage_id, patient_id, payer_id, member_id, line_of_business, "
                   "start, end, basis, ord) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    coverage.bind(1, fact.coverage_id).bind(2, fact.patient_id).bind(3, fact.payer_id).bind(4, fact.member_id);
    coverage.bind(5, fact.line_of_business).bind(6, fact.start).bind(7, fact.end).bind(8, fact.basis);
    coverage.bind(9, int64_t{fact.order});
    if (coverage.step() != SQLITE_DONE) return Error{coverage.error()};
  }
  return Status::Ok();
}

}  // namespace fhir::gateway::sqlite

// SPDX-License-Identifier: Apache-2.0
// The PostgreSQL side of the merge (issue 11): contribution rows and patient clusters, read and
// written inside the writer's group transaction (gateway/merge/merge_service.h decides what to
// merge). Writes are queued (Connection::queue): they reach the server with the next read, in order. The statements are sqlite_merge.cc's, in PostgreSQL's dialect.
#include <algorithm>
#include <map>
#include <set>

#include "gateway/store/pg_internal.h"
#include "conformance/common/time_util.h"

namespace fhir::gateway::pg {
namespace {

class PgMergeTx final : public MergeTx {
 public:
  PgMergeTx(Connection& db, bool read_only) : db_(db), read_only_(read_only) {}

  Status putContribution(const merge::Contribution& c) override {
    cache_.erase({c.type, c.id});
    put_.insert({c.type, c.id});
    // A source's later word replaces its earlier one whatever the arrival order: a higher rank,
    // or the same rank and a tiebreak not above the kept one's.
    return write(Query(db_, "INSERT INTO contributions (type, id, contributor, kind, organization, rank, tiebreak, "
                      "provenance, patient_id, json, payer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                      "ON CONFLICT (type, id, contributor) DO UPDATE SET kind = excluded.kind, organization = "
                      "excluded.organization, rank = excluded.rank, tiebreak = excluded.tiebreak, provenance = "
                      "excluded.provenance, patient_id = excluded.patient_id, json = excluded.json, payer = excluded.payer "
                      "WHERE excluded.rank > contributions.rank OR (excluded.rank = contributions.rank AND "
                      "excluded.tiebreak <= contributions.tiebreak)")
        .text(c.type).text(c.id).text(c.contributor).text(c.kind).text(c.organization).text(c.rank).text(c.tiebreak)
        .text(c.provenance).text(c.patient_id).bytes(c.json).text(c.payer));  // sent with the next read
  }

  Result<std::vector<merge::Contribution>> contributions(std::string_view type, std::string_view id) override {
    const Key key{std::string(type), std::string(id)};
    auto cached = cache_.find(key);
    if (cached != cache_.end()) return cached->second;
    if (type == "Patient") {
      // The merge reads the own contributions of every patient of a cluster, one after another;
      // the patients the cluster's look-ups returned are read with this one in one round trip.
      std::string ids(id);
      std::set<std::string> more = candidates_;
      for (const Key& put : put_) {
        if (put.first == "Patient") more.insert(put.second);
      }
      for (const std::string& candidate : more) {
        if (candidate != id && !cache_.count({"Patient", candidate})) ids += "\n" + candidate;
      }
      auto rows = Query(db_, "SELECT " PG_CONTRIBUTION_COLUMNS " FROM contributions WHERE type = 'Patient' "
                             "AND id = ANY(string_to_array($1::text, E'\\n')) ORDER BY id, contributor COLLATE \"C\"")
                      .text(ids).run();
      if (!rows.ok()) return rows.error();
      size_t start = 0;
      while (start <= ids.size()) {  // every id asked for is cached, also those without rows
        const size_t end = std::min(ids.find('\n', start), ids.size());
        cache_[{"Patient", ids.substr(start, end - start)}];
        start = end + 1;
      }
      for (int row = 0; row < rows->size(); ++row) {
        merge::Contribution c = contributionOf(*rows, row);
        cache_[{c.type, c.id}].push_back(std::move(c));
      }
      return cache_[key];
    }
    if (put_.count(key)) {
      // The merge reads back what the event contributed, one resource after another: all of
      // those not read yet are read with this one in one round trip (after the queued puts).
      std::string types, ids;
      std::vector<Key> asked;
      for (const Key& put : put_) {
        if (put.first == "Patient" || cache_.count(put)) continue;
        types += (types.empty() ? "" : "\n") + put.first;
        ids += (ids.empty() ? "" : "\n") + put.second;
        asked.push_back(put);
      }
      auto rows = Query(db_, "SELECT " PG_CONTRIBUTION_COLUMNS " FROM contributions WHERE (type, id) IN (SELECT t, i FROM "
                             "unnest(string_to_array($1::text, E'\\n'), string_to_array($2::text, E'\\n')) u(t, i)) "
                             "ORDER BY type, id, contributor COLLATE \"C\"")
                      .text(types).text(ids).run();
      if (!rows.ok()) return rows.error();
      for (const Key& each : asked) cache_[each];  // also those without rows
      for (int row = 0; row < rows->size(); ++row) {
        merge::Contribution c = contributionOf(*rows, row);
        cache_[{c.type, c.id}].push_back(std::move(c));
      }
      return cache_[key];
    }
    // COLLATE "C": the byte order SQLite sorts by, whatever the database's collation.
    auto rows = Query(db_, "SELECT " PG_CONTRIBUTION_COLUMNS " FROM contributions WHERE type = $1 AND id = $2 "
                           "ORDER BY contributor COLLATE \"C\"")
                    .text(type).text(id).run();
    if (!rows.ok()) return rows.error();
    std::vector<merge::Contribution> out;
    for (int row = 0; row < rows->size(); ++row) out.push_back(contributionOf(*rows, row));
    return out;
  }

  Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) override {
    auto rows = Query(db_, "SELECT DISTINCT type COLLATE \"C\", id COLLATE \"C\" FROM contributions WHERE patient_id = $1 "
                           "ORDER BY 1, 2")
                    .text(patient_id).run();
    if (!rows.ok()) return rows.error();
    std::vector<std::pair<std::string, std::string>> out;
    for (int row = 0; row < rows->size(); ++row) out.emplace_back(rows->text(row, 0), rows->text(row, 1));
    return out;
  }

  Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) override {
    return candidates(Query(db_, "SELECT DISTINCT b.patient_id COLLATE \"C\" FROM contributions a JOIN contributions b "
                              "ON b.type = 'Coverage' AND b.id = a.id WHERE a.type = 'Coverage' AND a.patient_id = $1 "
                              "AND b.patient_id <> $1 AND b.patient_id <> '' ORDER BY 1")
                       .text(patient_id));
  }

  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    return candidates(Query(db_, "SELECT patient_id FROM patient_demographics WHERE family = $1 AND birth_date = $2 "
                              "AND given = $3 AND gender = $4 ORDER BY patient_id COLLATE \"C\"")
                       .text(who.family).text(who.birth_date).text(who.given).text(who.gender));
  }

  Result<std::vector<std::string>> linked(std::string_view patient_id) override {
    return candidates(Query(db_, "SELECT other_id COLLATE \"C\" FROM patient_links WHERE patient_id = $1 UNION "
                              "SELECT patient_id COLLATE \"C\" FROM patient_links WHERE other_id = $1 ORDER BY 1")
                       .text(patient_id));
  }

  Result<std::string> survivorOf(std::string_view patient_id) override {
    auto found = strings(Query(db_, "SELECT survivor FROM patient_survivor WHERE patient_id = $1").text(patient_id));
    if (!found.ok()) return found.error();
    return found->empty() ? std::string() : found->front();
  }

  Status setSurvivor(std::string_view patient_id, std::string_view survivor_id) override {
    return write(Query(db_, "INSERT INTO patient_survivor (patient_id, survivor) VALUES ($1, $2) "
                      "ON CONFLICT (patient_id) DO UPDATE SET survivor = excluded.survivor")
        .text(patient_id).text(survivor_id));
  }

  Status putLink(std::string_view patient_id, std::string_view other_id, std::string_view evidence) override {
    return write(Query(db_, "INSERT INTO patient_links (patient_id, other_id, evidence) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .text(patient_id).text(other_id).text(evidence));
  }

  Status putConflict(const PatientConflict& conflict) override {
    // The first detection's time is kept.
    return write(Query(db_, "INSERT INTO patient_conflicts (coverage_id, patient_a, patient_b, elements, detail, detected_at) "
                      "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (coverage_id, patient_a, patient_b) DO UPDATE SET "
                      "elements = excluded.elements, detail = excluded.detail")
        .text(conflict.coverage_id).text(conflict.patient_a).text(conflict.patient_b).text(conflict.elements)
        .text(conflict.detail).text(nowIso()));
  }

 private:
  // A write goes with the next read (queued); in a read view it runs at once, and is refused.
  Status write(Query query) {
    if (read_only_) return query.done();
    query.later();
    return Status::Ok();
  }

  static Result<std::vector<std::string>> strings(Query query) {
    auto rows = query.run();
    if (!rows.ok()) return rows.error();
    std::vector<std::string> out;
    for (int row = 0; row < rows->size(); ++row) out.push_back(rows->text(row, 0));
    return out;
  }

  // Patient ids the cluster look-ups returned: their contributions are read together.
  Result<std::vector<std::string>> candidates(Query query) {
    auto found = strings(std::move(query));
    if (found.ok()) candidates_.insert(found->begin(), found->end());
    return found;
  }

  using Key = std::pair<std::string, std::string>;  // type, id
  Connection& db_;
  const bool read_only_;
  std::map<Key, std::vector<merge::Contribution>> cache_;  // this transaction's reads, until a put
  std::set<std::string> candidates_;
  std::set<Key> put_;  // the resources contributed to in this transaction
};

}  // namespace

std::unique_ptr<MergeTx> makeMergeTx(Connection& db, bool read_only) { return std::make_unique<PgMergeTx>(db, read_only); }

merge::Contribution contributionOf(const Rows& rows, int row) {
  merge::Contribution c;
  c.type = rows.text(row, 0);
  c.id = rows.text(row, 1);
  c.contributor = rows.text(row, 2);
  c.kind = rows.text(row, 3);
  c.organization = rows.text(row, 4);
  c.rank = rows.text(row, 5);
  c.tiebreak = rows.text(row, 6);
  c.provenance = rows.text(row, 7);
  c.patient_id = rows.text(row, 8);
  c.json = rows.text(row, 9);
  c.payer = rows.text(row, 10);
  return c;
}

}  // namespace fhir::gateway::pg

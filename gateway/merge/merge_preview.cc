// SPDX-License-Identifier: Apache-2.0
#include "gateway/merge/merge_preview.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "gateway/dispatch/patient_match.h"
#include "gateway/merge/merge_service.h"
#include "gateway/store/merge_trace.h"

namespace fhir::gateway::merge {
namespace {

using Key = std::pair<std::string, std::string>;  // (type, id)

bool sameDemographics(const PatientDemographics& a, const PatientDemographics& b) {
  return a.family == b.family && a.given == b.given && a.birth_date == b.birth_date && a.gender == b.gender;
}

// The statements of the store's MergeTx (sqlite_merge.cc, pg_merge.cc) over the base's rows
// plus what this overlay was told to write; the same order of rows as their ORDER BY (byte order).
class MergeOverlay final : public MergeTx {
 public:
  explicit MergeOverlay(MergeTx& base) : base_(base) {}

  Status putContribution(const Contribution& c) override {
    auto rows = contributions(c.type, c.id);
    if (!rows.ok()) return rows.error();
    for (const Contribution& kept : *rows) {
      // INSERT ... ON CONFLICT DO UPDATE ... WHERE a higher rank, or the same rank and a tiebreak
      // not above the kept one's.
      if (kept.contributor == c.contributor && !(c.rank > kept.rank || (c.rank == kept.rank && c.tiebreak <= kept.tiebreak))) {
        return Status::Ok();
      }
    }
    written_[Key{c.type, c.id}][c.contributor] = c;
    about_[c.patient_id].insert(Key{c.type, c.id});
    return Status::Ok();
  }

  Result<std::vector<Contribution>> contributions(std::string_view type, std::string_view id) override {
    const Key key{std::string(type), std::string(id)};
    auto stored = base_rows_.find(key);
    if (stored == base_rows_.end()) {
      auto read = base_.contributions(type, id);
      if (!read.ok()) return read.error();
      stored = base_rows_.emplace(key, std::move(*read)).first;
    }
    auto mine = written_.find(key);
    if (mine == written_.end()) return stored->second;
    std::map<std::string, Contribution> by_contributor;
    for (const Contribution& c : stored->second) by_contributor[c.contributor] = c;
    for (const auto& [contributor, c] : mine->second) by_contributor[contributor] = c;
    std::vector<Contribution> out;
    for (auto& [contributor, c] : by_contributor) out.push_back(std::move(c));
    return out;
  }

  Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) override {
    auto stored = base_.contributedAbout(patient_id);
    if (!stored.ok()) return stored.error();
    std::set<Key> candidates(stored->begin(), stored->end());
    if (auto mine = about_.find(std::string(patient_id)); mine != about_.end()) candidates.insert(mine->second.begin(), mine->second.end());
    std::vector<std::pair<std::string, std::string>> out;
    for (const Key& key : candidates) {
      if (!written_.count(key)) {
        out.push_back(key);
        continue;
      }
      auto rows = contributions(key.first, key.second);  // a replaced row may name another patient now
      if (!rows.ok()) return rows.error();
      if (std::any_of(rows->begin(), rows->end(), [&](const Contribution& c) { return c.patient_id == patient_id; })) {
        out.push_back(key);
      }
    }
    return out;
  }

  Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) override {
    auto about = contributedAbout(patient_id);
    if (!about.ok()) return about.error();
    std::set<std::string> out;
    for (const auto& [type, id] : *about) {
      if (type != "Coverage") continue;
      auto rows = contributions(type, id);
      if (!rows.ok()) return rows.error();
      for (const Contribution& c : *rows) {
        if (c.patient_id != patient_id && !c.patient_id.empty()) out.insert(c.patient_id);
      }
    }
    return std::vector<std::string>(out.begin(), out.end());
  }

  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override {
    auto stored = base_.patientsWithDemographics(who);
    if (!stored.ok()) return stored.error();
    std::set<std::string> out;
    for (const std::string& patient : *stored) {
      auto mine = demographics_.find(patient);
      if (mine == demographics_.end() || sameDemographics(mine->second, who)) out.insert(patient);
    }
    for (const auto& [patient, key] : demographics_) {
      if (sameDemographics(key, who)) out.insert(patient);
    }
    return std::vector<std::string>(out.begin(), out.end());
  }

  Result<std::vector<std::string>> linked(std::string_view patient_id) override {
    auto stored = base_.linked(patient_id);
    if (!stored.ok()) return stored.error();
    std::set<std::string> out(stored->begin(), stored->end());
    for (const auto& [a, b] : links_) {
      if (a == patient_id) out.insert(b);
      if (b == patient_id) out.insert(a);
    }
    return std::vector<std::string>(out.begin(), out.end());
  }

  Result<std::string> survivorOf(std::string_view patient_id) override {
    if (auto mine = survivors_.find(std::string(patient_id)); mine != survivors_.end()) return mine->second;
    return base_.survivorOf(patient_id);
  }
  Status setSurvivor(std::string_view patient_id, std::string_view survivor_id) override {
    survivors_[std::string(patient_id)] = std::string(survivor_id);
    return Status::Ok();
  }
  Status putLink(std::string_view patient_id, std::string_view other_id, std::string_view) override {
    links_.emplace(std::string(patient_id), std::string(other_id));
    return Status::Ok();
  }
  Status putConflict(const PatientConflict&) override { return Status::Ok(); }  // read by nothing in a merge

  void wrote(const std::vector<ResourceWrite>& writes) {
    for (const ResourceWrite& write : writes) {
      if (write.type != "Patient") continue;
      json::Document patient;
      json::ParseError error;
      if (json::parse(write.json, patient, error)) demographics_[write.id] = demographicsOf(patient);
    }
  }

 private:
  MergeTx& base_;
  std::map<Key, std::vector<Contribution>> base_rows_;  // one snapshot: read once
  std::map<Key, std::map<std::string, Contribution>> written_;
  std::map<std::string, std::set<Key>> about_;
  std::map<std::string, std::string> survivors_;
  std::set<std::pair<std::string, std::string>> links_;
  std::map<std::string, PatientDemographics> demographics_;
};

}  // namespace

Result<std::vector<PreviewedMerge>> previewMerge(Store& store, const MergeRules& rules,
                                                 const std::vector<const IngestCommit*>& commits) {
  std::vector<PreviewedMerge> merged(commits.size());
  bool any = false;
  for (const IngestCommit* commit : commits) any = any || !commit->contributions.empty() || !commit->remerge.empty();
  if (!any) return merged;
  Status read = store.readMerge([&](MergeTx& base) -> Status {
    MergeOverlay overlay(base);
    for (size_t i = 0; i < commits.size(); ++i) {
      const IngestCommit& commit = *commits[i];
      if (commit.contributions.empty() && commit.remerge.empty()) continue;
      auto trace = std::make_shared<MergeTrace>();
      RecordingMergeTx recording(overlay, *trace);  // what the merge asked and was told
      Status status = mergeCommit(rules, recording, commit, merged[i].writes, trace->coverage);
      if (!status.ok()) return status;
      overlay.wrote(merged[i].writes);
      merged[i].trace = std::move(trace);
    }
    return Status::Ok();
  });
  if (!read.ok()) return Error{read.message()};
  return merged;
}

}  // namespace fhir::gateway::merge

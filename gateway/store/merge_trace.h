// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validate last without merging twice (issue 12). The service merges a commit over a read
// snapshot before it commits (gateway/merge/merge_preview.h), and the store's transaction used to
// run the same merge again only to find out whether it still gives the validated resources. The
// merge (gateway/merge/merge_service.h mergeCommit) is a function of the rules, the commit and
// what its MergeTx calls return; so instead the preview records every call it made, in order,
// with what each read returned (MergeTrace, by RecordingMergeTx), and the store's transaction
// replays them (replayMergeTrace): each read made again on the transaction and compared, each
// write made. When every read returns what the preview saw, the merge in the transaction would
// make exactly these writes and give exactly IngestCommit::merge_expected, so the store takes
// them without running the MergeHook. At the first read that returns something else the replay
// stops; the store undoes what it wrote and runs the MergeHook as before (which then finds the
// merge changed, or not). Internal to gateway/store and gateway/merge.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/store/store.h"

namespace fhir::gateway {

struct MergeTrace {
  enum class Op {
    kPutContribution,
    kContributions,
    kContributedAbout,
    kCoverageNeighbours,
    kPatientsWithDemographics,
    kLinked,
    kSurvivorOf,
    kSetSurvivor,
    kPutLink,
    kPutConflict,
  };
  struct Step {
    Op op = Op::kContributions;
    // Arguments: (type, id), a patient id, (patient, other or survivor, evidence).
    std::string a;
    std::string b;
    std::string c;
    merge::Contribution contribution = {};  // kPutContribution
    PatientDemographics who = {};           // kPatientsWithDemographics
    PatientConflict conflict = {};          // kPutConflict
    // What a read returned.
    std::vector<merge::Contribution> contributions = {};
    std::vector<std::pair<std::string, std::string>> keys = {};
    std::vector<std::string> ids = {};
    std::string text = {};
  };
  std::vector<Step> steps;
  // The coverage facts the merge gave (the MergeHook's `coverage`).
  std::vector<CoverageFact> coverage;
};

// A MergeTx that passes every call to `inner` and appends it, with what it returned, to `trace`.
// A call that fails is not recorded (the merge fails with it).
class RecordingMergeTx final : public MergeTx {
 public:
  RecordingMergeTx(MergeTx& inner, MergeTrace& trace) : inner_(inner), trace_(trace) {}
  Status putContribution(const merge::Contribution& contribution) override;
  Result<std::vector<merge::Contribution>> contributions(std::string_view type, std::string_view id) override;
  Result<std::vector<std::pair<std::string, std::string>>> contributedAbout(std::string_view patient_id) override;
  Result<std::vector<std::string>> coverageNeighbours(std::string_view patient_id) override;
  Result<std::vector<std::string>> patientsWithDemographics(const PatientDemographics& who) override;
  Result<std::vector<std::string>> linked(std::string_view patient_id) override;
  Result<std::string> survivorOf(std::string_view patient_id) override;
  Status setSurvivor(std::string_view patient_id, std::string_view survivor_id) override;
  Status putLink(std::string_view patient_id, std::string_view other_id, std::string_view evidence) override;
  Status putConflict(const PatientConflict& conflict) override;

 private:
  MergeTx& inner_;
  MergeTrace& trace_;
};

// Makes the calls of `trace` on `tx`, in order. True when every read returned what was recorded
// (then every write was made); false at the first read that did not (the writes before it were
// made: the caller undoes them). An error when `tx` failed.
Result<bool> replayMergeTrace(MergeTx& tx, const MergeTrace& trace);

}  // namespace fhir::gateway

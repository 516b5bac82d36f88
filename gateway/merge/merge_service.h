// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the store's ingest transaction merges (issue 11), over the store's MergeTx view:
// - keeps each contribution of the commit;
// - finds the patient cluster of every patient the commit is about: patients named by
//   contributions to the same Coverage (one payer member id), unless they disagree on an element
//   of `conflictOn` (then both stay apart and the conflict is recorded), and patients with the
//   exact roster demographics key when one side is a payer's roster row (the link records that
//   evidence); the survivor is chosen by the rules' `survivor` precedence;
// - merges every Patient of those clusters (the survivor holds the merge of all of them and
//   `link` `replaces`; the others their own and `link` `replaced-by`), every Coverage and Group
//   the commit contributes to or whose patients' survivor changed, pointing their Patient
//   references at survivors;
// - gives the merged Coverages' routing facts (coverage index rows).

#include <memory>

#include "gateway/merge/merge.h"
#include "gateway/store/store.h"

namespace fhir::gateway::merge {

MergeHook makeMergeHook(std::shared_ptr<const MergeRules> rules);

// What the hook does for one commit: keeps its contributions through `tx` and appends the merged
// resources (with their citations) and the merged Coverages' index rows.
Status mergeCommit(const MergeRules& rules, MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                   std::vector<fhir::CoverageFact>& coverage);

// The coverage index row of a merged Coverage: payer and member, period and what it rests on
// ("payer" when a roster gave it, "ehr" when an event did), Coverage.order.
fhir::CoverageFact coverageFactOf(const json::Value& coverage, const Merged& merged, const std::string& payer_id,
                                     const std::string& patient_id);

}  // namespace fhir::gateway::merge

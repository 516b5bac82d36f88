// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validate last (issue 12): the merge of commits before they are committed, outside the writer.
// The ingest service merges a commit's contributions over one read snapshot of the store
// (Store::readMerge), validates what the merge gives, delivers it (a payer's and a feed's Bundle
// carry the merged resources) and commits with `IngestCommit::merge_checked`: the store's
// transaction merges again and writes the validated resources only when it gets the same
// (optimistic: another commit changing what they merge meanwhile makes the service merge and
// validate again). So the writer's critical section keeps only SQL and the merge's JSON, never
// the validator, and what is validated is what is stored.

#include <memory>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/merge/merge.h"
#include "gateway/store/store.h"

namespace fhir::gateway::merge {

// One commit's merge as previewed: its merged resources, and the calls the merge made with what
// each read returned (gateway/store/merge_trace.h), which the store's transaction replays instead
// of merging again (IngestCommit::merge_trace). `trace` is null when the commit merges nothing.
struct PreviewedMerge {
  std::vector<ResourceWrite> writes;
  std::shared_ptr<const MergeTrace> trace;
};

// What the commits' transactions would merge now, in order, each seeing the commits before it
// (a payer file's batch): merged[i] is commit i's merge (no writes when it merges nothing). The
// store's writes (contributions, survivors, links) are kept in memory, never written. An error
// when the store failed.
Result<std::vector<PreviewedMerge>> previewMerge(Store& store, const MergeRules& rules,
                                                 const std::vector<const IngestCommit*>& commits);

}  // namespace fhir::gateway::merge

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

#include <vector>

#include "conformance/common/result.h"
#include "gateway/merge/merge.h"
#include "gateway/store/store.h"

namespace fhir::gateway::merge {

// What the commits' transactions would merge now, in order, each seeing the commits before it
// (a payer file's batch): merged[i] is commit i's merged resources (empty when it merges
// nothing). The store's writes (contributions, survivors, links) are kept in memory, never
// written. An error when the store failed.
Result<std::vector<std::vector<ResourceWrite>>> previewMerge(Store& store, const MergeRules& rules,
                                                            const std::vector<const IngestCommit*>& commits);

}  // namespace fhir::gateway::merge

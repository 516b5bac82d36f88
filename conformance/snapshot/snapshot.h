// SPDX-License-Identifier: Apache-2.0
#pragma once

// Snapshot generation: StructureDefinition differential + base snapshot -> snapshot.
//
// Used at load time by the definitions loader for every StructureDefinition that carries only a
// differential (our alignment IG is written that way). Profile-on-profile works because the
// resolver may itself return a generated snapshot.

#include <functional>
#include <string_view>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

namespace fhir::snapshot {

// Returns the StructureDefinition (with a snapshot) for a canonical URL (optionally
// `url|version`), or nullptr when unknown. For a profile whose base has no snapshot yet the
// resolver is expected to generate it first.
using Resolver = std::function<const json::Value*(std::string_view canonical)>;

// Produces `profile` with its `snapshot.element` generated from `profile.baseDefinition`'s
// snapshot and `profile.differential.element`. The result is a complete StructureDefinition
// allocated in the returned document. An Error names the differential element that could not
// be placed (unknown path, slice without a slicing on its base, type constraint not allowed by
// the base) or the missing base.
Result<json::Document> generateSnapshot(const json::Value& profile, const Resolver& resolve);

}  // namespace fhir::snapshot

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Snapshot generation: StructureDefinition differential + base snapshot -> snapshot.
//
// Used at load time by the definitions loader for every StructureDefinition that carries only a
// differential (our alignment IG is written that way). Profile-on-profile works because the
// resolver may itself return a generated snapshot.
//
// What the generator does, following the snapshots the HL7 IG Publisher produces (tested element
// for element against US Core 6.1.0 and CARIN BB 2.0.0 in tests/conformance/snapshot):
//  * Elements keep the base's order; a slice follows the element it slices and that element's
//    children. Differential elements are placed by their `id` (or, without one, by `path`,
//    `sliceName` and the slices of the previous differential element).
//  * Constraining below an element whose base lists no children (Patient.identifier.system)
//    brings in the children of its single type from that type's snapshot (or of the type's
//    profile when it names exactly one); a contentReference brings in the referenced children
//    and is replaced by the referenced element's type. A profile on a profile that names a
//    sliced data-type element without constraining its children keeps only that element,
//    without the children its base profile had written out (Backbone elements keep theirs).
//  * A new slice starts from the base definition of the sliced element (with its base
//    children), not from that element as the differential constrained it, and with min 0
//    unless the differential gives one. Extension elements are sliced by url implicitly;
//    slicing any other element needs `slicing` in the base or the differential.
//  * A renamed choice (valueQuantity) restricts value[x] to that type in place when below a
//    slice (unless the differential also names value[x] itself), and otherwise becomes the type slice value[x]:valueQuantity under a type/$this
//    slicing, as the Publisher does. `value[x]:valueQuantity` ids are read the same way. A
//    single-valued choice whose type slice is mandatory is narrowed to that type and minimum,
//    with the slicing closed.
//  * Merge: `type` replaces the base types (each must be a base type, a specialisation of one,
//    or any type where the base says Element/Resource), and a binding left without any coded
//    type is dropped; `binding` members override the base
//    binding's; `constraint` entries are appended (same key replaces); `condition` and
//    `mapping` are appended; every other member replaces the base's.
// The generator is pure: it keeps no state between calls and may run on any thread as long as
// the resolver can.

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

// SPDX-License-Identifier: Apache-2.0
#pragma once

// `_summary` and `_elements` (R4 search 3.1.1.5.8 and 3.1.1.5.9), on search and on reads (read,
// vread, history): the resource as the client asked for it, with the `SUBSETTED` tag
// (http://terminology.hl7.org/CodeSystem/v3-ObservationValue) when anything may have been left
// out.
//  * `_summary=true`: the elements the R4 StructureDefinition of the type marks `isSummary`,
//    recursively inside backbone elements (Claim.insurance.sequence); a data type's value
//    (HumanName, CodeableConcept, ...) is kept whole.
//  * `_summary=text`: `text`, `id`, `meta` and the top-level mandatory elements (min > 0).
//  * `_summary=data`: everything but `text`. `_summary=false`: everything (no tag).
//  * `_elements=a,b`: the listed top-level elements (a choice by its name, `value` for
//    `valueQuantity`; `Patient.name` for `name`), plus `id`, `meta` and the mandatory ones.
// The definitions are data: `StructureDefinition-{Type}.json` of the bundled R4 core package
// (FHIR_GATEWAY_PROFILES or GATEWAY_PROFILES_DIR, `r4-core/package`), read once per type.

#include <string>
#include <utility>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::gateway::subset {

struct Shape {
  std::string summary;                // "", "true", "text", "data", "false" ("count" is search's)
  std::vector<std::string> elements;  // _elements
  // Whether the answer is a subset (and carries SUBSETTED).
  bool subsets() const { return summary == "true" || summary == "text" || summary == "data" || !elements.empty(); }
};

// Takes `_summary` and `_elements` out of `parameters` into `shape`. An Error ("invalid: ...")
// for a `_summary` that is not true, text, data or false (count is a search's), a repeated one,
// or both `_summary` and `_elements`.
Status take(std::vector<std::pair<std::string, std::string>>& parameters, Shape& shape);

// The resource `json` as `shape` asks; unchanged when the shape subsets nothing. An Error when
// the JSON is not a resource or the type's StructureDefinition cannot be read.
Result<std::string> apply(const Shape& shape, const std::string& json);

}  // namespace fhir::gateway::subset

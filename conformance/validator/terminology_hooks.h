// SPDX-License-Identifier: Apache-2.0
#pragma once

// FHIRPath terminology functions answered by the validator's local terminology (the same
// expansions the binding checks use): memberOf(), subsumes(), subsumedBy().

#include <optional>
#include <string>
#include <string_view>

#include "conformance/fhirpath/fhirpath.h"
#include "conformance/terminology/terminology.h"

namespace fhir::validator {

// memberOf(url) for a code/string/uri, Coding or CodeableConcept item: true/false when the local
// expansion decides, nullopt (FHIRPath empty) when the value set is unknown or the code's system
// is not available locally.
std::optional<bool> memberOf(const terminology::Terminology& terminology,
                             std::string_view value_set, const fhirpath::Item& coded);

// subsumes(): whether `general` subsumes or equals `specific` (Coding or CodeableConcept
// nodes) in a local CodeSystem hierarchy (nested concepts, `parent`/`child`/`subsumedBy`
// properties). An Error naming why when it cannot be decided locally.
Result<bool> subsumes(const terminology::Terminology& terminology, const fhirpath::Item& general,
                      const fhirpath::Item& specific);

// Sets the terminology hooks of `context` (memberOf(), subsumes()/subsumedBy(), %terminologies)
// to answer from `terminology`. When a call cannot be
// decided locally, the value set's URL is stored in `*undecided` (if not null), so that a
// constraint failing because of it is reported as not checked rather than failed.
void installTerminology(fhirpath::EvaluationContext& context,
                        const terminology::Terminology& terminology, std::string* undecided);

}  // namespace fhir::validator

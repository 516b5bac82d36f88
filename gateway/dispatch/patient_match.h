// SPDX-License-Identifier: Apache-2.0
#pragma once

// Roster rows and known patients (contracts/payer-formats.md, Rosters): a row is matched to
// known patients by the payer's member id when an event or claim has given it, otherwise by
// exact family name, first given name, birth date and sex.

#include <string>
#include <vector>

#include "conformance/json/json.h"
#include "gateway/store/store.h"

namespace fhir::gateway {

// The demographic key of a Patient resource: name[0].family, name[0].given[0], birthDate,
// gender (the same members the store indexes).
PatientDemographics demographicsOf(const json::Value& patient);

// Matches the member of a mapped roster Bundle to known patients. When one or more match, the
// Bundle is rewritten to be about the first of them (in id order): the roster's own Patient
// entry is removed and every `Patient/<own id>` reference (Coverage.beneficiary, the attribution
// Group's member, the Provenance target) points at the known Patient instead, so the stored
// Coverage, the coverage index and the Bundles delivered later agree. Returns the matched
// patient ids (empty: no match, the Bundle is unchanged). Store failures count as no match.
std::vector<std::string> adoptKnownPatient(json::Document& bundle, const std::string& payer_id, Store& store);

}  // namespace fhir::gateway

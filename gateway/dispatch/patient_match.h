// SPDX-License-Identifier: Apache-2.0
#pragma once

// The demographic key known patients are matched by (contracts/payer-formats.md, Rosters): a
// roster row is matched to known patients by the payer's member id when an event or claim has
// given it, otherwise by exact family name, first given name, birth date and sex. The matching
// itself is the merge's patient clusters (gateway/merge/merge_service.h), order-independent.

#include "conformance/json/json.h"
#include "gateway/store/store.h"

namespace fhir::gateway {

// The demographic key of a Patient resource: name[0].family, name[0].given[0], birthDate,
// gender (the same members the store indexes).
PatientDemographics demographicsOf(const json::Value& patient);

}  // namespace fhir::gateway

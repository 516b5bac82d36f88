// SPDX-License-Identifier: Apache-2.0
#include "gateway/dispatch/patient_match.h"

namespace fhir::gateway {
namespace {

std::string text(const json::Value& object, std::string_view key) {
  return std::string(json::getString(object, key).value_or(""));
}

}  // namespace

PatientDemographics demographicsOf(const json::Value& patient) {
  PatientDemographics who;
  if (const json::Value* names = json::find(patient, "name"); names && names->IsArray() && !names->Empty()) {
    const json::Value& name = (*names)[0];
    who.family = text(name, "family");
    if (const json::Value* given = json::find(name, "given"); given && given->IsArray() && !given->Empty() &&
                                                                json::isString((*given)[0])) {
      who.given = std::string(json::stringView((*given)[0]));
    }
  }
  who.birth_date = text(patient, "birthDate");
  who.gender = text(patient, "gender");
  return who;
}

}  // namespace fhir::gateway

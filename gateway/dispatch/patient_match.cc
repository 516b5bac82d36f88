// SPDX-License-Identifier: Apache-2.0
#include "gateway/dispatch/patient_match.h"

#include <algorithm>

namespace fhir::gateway {
namespace {

std::string text(const json::Value& object, std::string_view key) {
  return std::string(json::getString(object, key).value_or(""));
}

// The first resource of `type` in a Bundle, or null.
json::Value* firstOfType(json::Document& bundle, std::string_view type) {
  json::Value* entries = json::find(bundle, "entry");
  if (entries == nullptr || !entries->IsArray()) return nullptr;
  for (json::Value& entry : entries->GetArray()) {
    json::Value* resource = json::find(entry, "resource");
    if (resource != nullptr && json::getString(*resource, "resourceType") == type) return resource;
  }
  return nullptr;
}

// Points every {"reference": from} below `value` at `to`.
void replaceReferences(json::Value& value, const std::string& from, const std::string& to, json::Allocator& allocator) {
  if (value.IsArray()) {
    for (json::Value& item : value.GetArray()) replaceReferences(item, from, to, allocator);
    return;
  }
  if (!value.IsObject()) return;
  for (auto& member : value.GetObject()) {
    if (member.name == "reference" && json::isString(member.value) && json::stringView(member.value) == from) {
      member.value = json::makeString(to, allocator);
    } else {
      replaceReferences(member.value, from, to, allocator);
    }
  }
}

void removePatientEntry(json::Document& bundle, const std::string& patient_id) {
  json::Value& entries = bundle["entry"];
  for (auto entry = entries.Begin(); entry != entries.End(); ++entry) {
    const json::Value* resource = json::find(*entry, "resource");
    if (resource != nullptr && json::getString(*resource, "resourceType") == "Patient" &&
        json::getString(*resource, "id") == patient_id) {
      entries.Erase(entry);
      return;
    }
  }
}

std::vector<std::string> without(Result<std::vector<std::string>> found, const std::string& own_id) {
  if (!found.ok()) return {};
  std::vector<std::string> others;
  for (std::string& id : *found) {
    if (id != own_id && std::find(others.begin(), others.end(), id) == others.end()) others.push_back(std::move(id));
  }
  std::sort(others.begin(), others.end());
  return others;
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

std::vector<std::string> adoptKnownPatient(json::Document& bundle, const std::string& payer_id, Store& store) {
  const json::Value* coverage = firstOfType(bundle, "Coverage");
  json::Value* patient = firstOfType(bundle, "Patient");
  if (coverage == nullptr || patient == nullptr) return {};
  const std::string own_id = text(*patient, "id");
  const std::string member_id = text(*coverage, "subscriberId");
  std::vector<std::string> known;
  if (!member_id.empty()) known = without(store.patientsWithMember(payer_id, member_id), own_id);
  if (known.empty()) {
    const PatientDemographics who = demographicsOf(*patient);
    if (who.complete()) known = without(store.patientsWithDemographics(who), own_id);
  }
  if (known.empty()) return {};
  removePatientEntry(bundle, own_id);
  replaceReferences(bundle, "Patient/" + own_id, "Patient/" + known.front(), bundle.GetAllocator());
  return known;
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
#include "mappers/common/fhir_builder.h"

namespace fhir::mappers {

json::Value FhirBuilder::resource(std::string_view type, std::string_view id,
                                  std::string_view profile) const {
  json::Value resource = object();
  set(resource, "resourceType", type);
  set(resource, "id", id);
  if (!profile.empty()) {
    json::Value meta = object();
    set(meta, "profile", single(string(profile)));
    set(resource, "meta", std::move(meta));
  }
  return resource;
}

void FhirBuilder::set(json::Value& object, std::string_view key, json::Value value) const {
  if (json::Value* existing = json::find(object, key)) {
    *existing = std::move(value);
    return;
  }
  json::addMember(object, key, std::move(value), allocator_);
}

void FhirBuilder::set(json::Value& object, std::string_view key, std::string_view text) const {
  set(object, key, string(text));
}

void FhirBuilder::setIfPresent(json::Value& object, std::string_view key,
                               std::string_view text) const {
  if (!text.empty()) set(object, key, text);
}

json::Value FhirBuilder::reference(std::string_view type, std::string_view id) const {
  json::Value ref = object();
  std::string text(type);
  text.push_back('/');
  text.append(id);
  set(ref, "reference", text);
  return ref;
}

json::Value FhirBuilder::coding(std::string_view system, std::string_view code,
                                std::string_view display) const {
  json::Value coding = object();
  set(coding, "system", system);
  set(coding, "code", code);
  setIfPresent(coding, "display", display);
  return coding;
}

json::Value FhirBuilder::codeableConcept(std::string_view system, std::string_view code,
                                         std::string_view display) const {
  json::Value concept_value = object();
  set(concept_value, "coding", single(coding(system, code, display)));
  return concept_value;
}

json::Value FhirBuilder::identifier(std::string_view system, std::string_view value) const {
  json::Value identifier = object();
  set(identifier, "system", system);
  set(identifier, "value", value);
  return identifier;
}

json::Value FhirBuilder::single(json::Value value) const {
  json::Value list = array();
  list.PushBack(value, allocator_);
  return list;
}

}  // namespace fhir::mappers

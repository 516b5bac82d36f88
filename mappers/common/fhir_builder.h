// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers for writing FHIR JSON with RapidJSON values, so mappers read like the mapping
// tables they implement.

#include <string>
#include <string_view>

#include "conformance/json/json.h"

namespace fhir::mappers {

class FhirBuilder {
 public:
  explicit FhirBuilder(json::Allocator& allocator) : allocator_(allocator) {}

  json::Value object() const { return json::Value(rapidjson::kObjectType); }
  json::Value array() const { return json::Value(rapidjson::kArrayType); }
  json::Value string(std::string_view text) const { return json::makeString(text, allocator_); }

  // A new resource object with resourceType, id and meta.profile (when profile is not empty).
  json::Value resource(std::string_view type, std::string_view id, std::string_view profile) const;

  void set(json::Value& object, std::string_view key, json::Value value) const;
  void set(json::Value& object, std::string_view key, std::string_view text) const;
  // Sets only when `text` is not empty.
  void setIfPresent(json::Value& object, std::string_view key, std::string_view text) const;
  void push(json::Value& array, json::Value value) const { array.PushBack(value, allocator_); }

  json::Value reference(std::string_view type, std::string_view id) const;
  json::Value coding(std::string_view system, std::string_view code,
                     std::string_view display = {}) const;
  json::Value codeableConcept(std::string_view system, std::string_view code,
                              std::string_view display = {}) const;
  json::Value identifier(std::string_view system, std::string_view value) const;
  // [value] as a one-element array.
  json::Value single(json::Value value) const;

  json::Allocator& allocator() const { return allocator_; }

 private:
  json::Allocator& allocator_;
};

}  // namespace fhir::mappers

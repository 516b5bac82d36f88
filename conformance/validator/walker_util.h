// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers shared by the instance walker's files. Internal to conformance/validator.

#include <string>
#include <string_view>

#include "conformance/json/json.h"

namespace fhir::validator {

// Restores the path to its length at construction.
class PathMark {
 public:
  explicit PathMark(std::string& path) : path_(path), size_(path.size()) {}
  ~PathMark() { path_.resize(size_); }
  PathMark(const PathMark&) = delete;
  PathMark& operator=(const PathMark&) = delete;

 private:
  std::string& path_;
  size_t size_;
};

inline std::string_view memberName(const json::Value& name) {
  return std::string_view(name.GetString(), name.GetStringLength());
}

inline const char* jsonKindName(const json::Value& value) {
  if (value.IsNull()) return "null";
  if (value.IsObject()) return "an Object";
  if (value.IsArray()) return "an Array";
  return "a Primitive property";
}

inline void appendIndex(std::string& path, size_t index) {
  path += '[';
  path += std::to_string(index);
  path += ']';
}

bool isAbsoluteUrl(std::string_view url);

// Deep "contains" comparison: every member of `pattern` is matched in `value`; arrays match when
// each pattern item matches some value item. Numbers compare by value.
bool matchesPattern(const json::Value& value, const json::Value& pattern);
// Exact equality for fixed[x]: same members, no extra ones.
bool matchesFixed(const json::Value& value, const json::Value& fixed);
// A value for messages: strings and numbers as text, the rest as JSON.
std::string describeValue(const json::Value& value);

}  // namespace fhir::validator

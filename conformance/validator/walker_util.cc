// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

bool isAbsoluteUrl(std::string_view url) {
  size_t colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = url[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
    if (!ok) return false;
  }
  return true;
}

bool matchesPattern(const json::Value& value, const json::Value& pattern) {
  if (json::isNumber(pattern)) {
    return json::isNumber(value) && json::numberAsDouble(value) == json::numberAsDouble(pattern);
  }
  if (json::isString(pattern)) return json::isString(value) && json::stringView(value) == json::stringView(pattern);
  if (pattern.IsBool()) return value.IsBool() && value.GetBool() == pattern.GetBool();
  if (pattern.IsArray()) {
    if (!value.IsArray()) return pattern.Size() == 1 && matchesPattern(value, pattern[0]);
    for (const json::Value& wanted : pattern.GetArray()) {
      bool found = false;
      for (const json::Value& candidate : value.GetArray()) found = found || matchesPattern(candidate, wanted);
      if (!found) return false;
    }
    return true;
  }
  if (pattern.IsObject()) {
    if (!value.IsObject()) return false;
    for (auto it = pattern.MemberBegin(); it != pattern.MemberEnd(); ++it) {
      const json::Value* member = json::find(value, std::string_view(it->name.GetString(), it->name.GetStringLength()));
      if (!member || !matchesPattern(*member, it->value)) return false;
    }
    return true;
  }
  return value.IsNull() && pattern.IsNull();
}

bool matchesFixed(const json::Value& value, const json::Value& fixed) {
  if (fixed.IsObject()) {
    if (!value.IsObject() || value.MemberCount() != fixed.MemberCount()) return false;
  }
  if (fixed.IsArray() && (!value.IsArray() || value.Size() != fixed.Size())) return false;
  return matchesPattern(value, fixed);
}

std::string describeValue(const json::Value& value) {
  if (json::isString(value)) return std::string(json::stringView(value));
  if (json::isNumber(value)) return json::numberText(value);
  return json::serialize(value);
}

}  // namespace fhir::validator

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reading JSON source events member by member, reporting each problem at its JSON path
// (`$.patient.coverage[0].payerId`) as an Issue with `location`.

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"

namespace fhir::mappers {

// Calendar date YYYY-MM-DD with a real month and day.
bool isDate(std::string_view text);
// FHIR dateTime with a time: YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm). The offset is required.
bool isDateTimeWithOffset(std::string_view text);

class EventReader {
 public:
  explicit EventReader(IssueList& issues) : issues_(issues) {}

  void error(const std::string& path, std::string_view code, std::string_view message);
  void warning(const std::string& path, std::string_view code, std::string_view message);

  static std::string child(const std::string& path, std::string_view key);
  static std::string index(const std::string& path, size_t position);

  // Member `key` of `parent`: reports a missing required member or a wrong JSON type.
  const json::Value* object(const json::Value& parent, const std::string& path, std::string_view key,
                            bool required);
  const json::Value* array(const json::Value& parent, const std::string& path, std::string_view key,
                           bool required);
  std::optional<std::string> string(const json::Value& parent, const std::string& path,
                                    std::string_view key, bool required);
  // A string from a closed list.
  std::optional<std::string> oneOf(const json::Value& parent, const std::string& path,
                                   std::string_view key, bool required,
                                   std::initializer_list<std::string_view> allowed);
  std::optional<std::string> date(const json::Value& parent, const std::string& path,
                                  std::string_view key, bool required);
  std::optional<std::string> dateTime(const json::Value& parent, const std::string& path,
                                      std::string_view key, bool required);
  std::optional<int64_t> integer(const json::Value& parent, const std::string& path,
                                 std::string_view key, bool required, int64_t minimum);
  // A 10-digit NPI with a valid check digit.
  std::optional<std::string> npi(const json::Value& parent, const std::string& path,
                                 std::string_view key, bool required);

  // Warns about members not in `known` (they are ignored).
  void unknownMembers(const json::Value& object, const std::string& path,
                      std::initializer_list<std::string_view> known);

  bool failed() const { return issues_.hasErrors(); }

 private:
  const json::Value* member(const json::Value& parent, const std::string& path,
                            std::string_view key, bool required);
  IssueList& issues_;
};

}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
#include "mappers/common/event_reader.h"

#include <algorithm>

#include "mappers/common/ids.h"

namespace fhir::mappers {
namespace {

bool digits(std::string_view text, size_t from, size_t count) {
  if (from + count > text.size()) return false;
  for (size_t i = from; i < from + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

int number(std::string_view text, size_t from, size_t count) {
  int value = 0;
  for (size_t i = from; i < from + count; ++i) value = value * 10 + (text[i] - '0');
  return value;
}

bool isDatePrefix(std::string_view text) {
  if (text.size() < 10 || !digits(text, 0, 4) || text[4] != '-' || !digits(text, 5, 2) ||
      text[7] != '-' || !digits(text, 8, 2)) {
    return false;
  }
  int year = number(text, 0, 4);
  int month = number(text, 5, 2);
  int day = number(text, 8, 2);
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1]) return false;
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return !(month == 2 && day == 29 && !leap);
}

const char* typeName(const json::Value& value) {
  if (value.IsNull()) return "null";
  if (value.IsBool()) return "a boolean";
  if (json::isNumber(value)) return "a number";
  if (value.IsString()) return "a string";
  if (value.IsArray()) return "an array";
  return "an object";
}

}  // namespace

bool isDate(std::string_view text) { return text.size() == 10 && isDatePrefix(text); }

bool isDateTimeWithOffset(std::string_view text) {
  if (!isDatePrefix(text) || text.size() < 20 || text[10] != 'T') return false;
  if (!digits(text, 11, 2) || text[13] != ':' || !digits(text, 14, 2) || text[16] != ':' ||
      !digits(text, 17, 2)) {
    return false;
  }
  if (number(text, 11, 2) > 23 || number(text, 14, 2) > 59 || number(text, 17, 2) > 60) return false;
  size_t position = 19;
  if (position < text.size() && text[position] == '.') {
    size_t start = ++position;
    while (position < text.size() && text[position] >= '0' && text[position] <= '9') ++position;
    if (position == start) return false;
  }
  std::string_view zone = text.substr(position);
  if (zone == "Z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) &&
         zone[3] == ':' && digits(zone, 4, 2) && number(zone, 1, 2) <= 14 && number(zone, 4, 2) <= 59;
}

void EventReader::error(const std::string& path, std::string_view code, std::string_view message) {
  issues_.atLocation(Severity::kError, std::string(code), path, path + ": " + std::string(message));
}

void EventReader::warning(const std::string& path, std::string_view code, std::string_view message) {
  issues_.atLocation(Severity::kWarning, std::string(code), path, path + ": " + std::string(message));
}

std::string EventReader::child(const std::string& path, std::string_view key) {
  return path + "." + std::string(key);
}

std::string EventReader::index(const std::string& path, size_t position) {
  return path + "[" + std::to_string(position) + "]";
}

const json::Value* EventReader::member(const json::Value& parent, const std::string& path,
                                       std::string_view key, bool required) {
  const json::Value* value = json::find(parent, key);
  if (value == nullptr || value->IsNull()) {
    if (required) error(child(path, key), "required", "required member is missing");
    return nullptr;
  }
  return value;
}

const json::Value* EventReader::object(const json::Value& parent, const std::string& path,
                                       std::string_view key, bool required) {
  const json::Value* value = member(parent, path, key, required);
  if (value != nullptr && !value->IsObject()) {
    error(child(path, key), "structure", std::string("must be an object, not ") + typeName(*value));
    return nullptr;
  }
  return value;
}

const json::Value* EventReader::array(const json::Value& parent, const std::string& path,
                                      std::string_view key, bool required) {
  const json::Value* value = member(parent, path, key, required);
  if (value != nullptr && !value->IsArray()) {
    error(child(path, key), "structure", std::string("must be an array, not ") + typeName(*value));
    return nullptr;
  }
  return value;
}

std::optional<std::string> EventReader::string(const json::Value& parent, const std::string& path,
                                               std::string_view key, bool required) {
  const json::Value* value = member(parent, path, key, required);
  if (value == nullptr) return std::nullopt;
  if (!json::isString(*value)) {
    error(child(path, key), "structure", std::string("must be a string, not ") + typeName(*value));
    return std::nullopt;
  }
  std::string_view text = json::stringView(*value);
  auto blank = std::all_of(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\t'; });
  if (blank) {
    if (required) error(child(path, key), "required", "must not be empty");
    return std::nullopt;
  }
  return std::string(text);
}

std::optional<std::string> EventReader::oneOf(const json::Value& parent, const std::string& path,
                                              std::string_view key, bool required,
                                              std::initializer_list<std::string_view> allowed) {
  auto text = string(parent, path, key, required);
  if (!text) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *text) == allowed.end()) {
    std::string list;
    for (std::string_view option : allowed) list += (list.empty() ? "" : ", ") + std::string(option);
    error(child(path, key), "code-invalid", "'" + *text + "' is not one of " + list);
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> EventReader::date(const json::Value& parent, const std::string& path,
                                             std::string_view key, bool required) {
  auto text = string(parent, path, key, required);
  if (text && !isDate(*text)) {
    error(child(path, key), "value", "'" + *text + "' is not a date (YYYY-MM-DD)");
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> EventReader::dateTime(const json::Value& parent, const std::string& path,
                                                 std::string_view key, bool required) {
  auto text = string(parent, path, key, required);
  if (text && !isDateTimeWithOffset(*text)) {
    error(child(path, key), "value",
          "'" + *text + "' is not a date-time with seconds and offset (YYYY-MM-DDThh:mm:ss+hh:mm)");
    return std::nullopt;
  }
  return text;
}

std::optional<int64_t> EventReader::integer(const json::Value& parent, const std::string& path,
                                            std::string_view key, bool required, int64_t minimum) {
  const json::Value* value = member(parent, path, key, required);
  if (value == nullptr) return std::nullopt;
  auto result = json::numberAsInt64(*value);
  if (!result) {
    error(child(path, key), "structure", std::string("must be an integer, not ") + typeName(*value));
    return std::nullopt;
  }
  if (*result < minimum) {
    error(child(path, key), "value",
          std::to_string(*result) + " is below the minimum of " + std::to_string(minimum));
    return std::nullopt;
  }
  return result;
}

std::optional<std::string> EventReader::npi(const json::Value& parent, const std::string& path,
                                            std::string_view key, bool required) {
  auto text = string(parent, path, key, required);
  if (text && !isValidNpi(*text)) {
    error(child(path, key), "value",
          "'" + *text + "' is not a valid NPI (10 digits with a Luhn check digit over 80840 + NPI)");
    return std::nullopt;
  }
  return text;
}

void EventReader::unknownMembers(const json::Value& object, const std::string& path,
                                 std::initializer_list<std::string_view> known) {
  if (!object.IsObject()) return;
  for (const auto& item : object.GetObject()) {
    std::string_view name = json::stringView(item.name);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      warning(child(path, name), "informational", "unknown member ignored");
    }
  }
}

}  // namespace fhir::mappers

// SPDX-License-Identifier: Apache-2.0
#include "mappers/common/dates.h"

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

}  // namespace fhir::mappers

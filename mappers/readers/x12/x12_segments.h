// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internal to the X12 reader (x12_reader.cc): segment ids and the segments the records keep.
// Split out of x12_reader.cc to keep it under 1,000 lines.

#include <cstdint>
#include <string_view>

namespace fhir::mappers::readers::x12::detail {

// A segment id of up to 4 characters as one number: ids compare without memcmp.
constexpr uint32_t idCode(std::string_view id) {
  uint32_t code = 0;
  for (char c : id) code = code << 8 | static_cast<unsigned char>(c);
  return code;
}

// A two-character code (entity identifier, hierarchical level), compared inline.
constexpr bool isCode(std::string_view value, const char (&code)[3]) {
  return value.size() == 2 && value[0] == code[0] && value[1] == code[1];
}

// The segments kept in the loop objects, with their ids as constants (member names and "@id"
// values refer to them instead of copying), and whether they repeat (an array of segments).
struct KeptSegment {
  uint32_t code;
  std::string_view id;
  bool repeating;
};
constexpr KeptSegment kKeptSegments[] = {
    {idCode("NM1"), "NM1", false}, {idCode("N3"), "N3", false},   {idCode("N4"), "N4", false},
    {idCode("DMG"), "DMG", false}, {idCode("SBR"), "SBR", false}, {idCode("PAT"), "PAT", false},
    {idCode("PRV"), "PRV", false}, {idCode("CLM"), "CLM", false}, {idCode("SV1"), "SV1", false},
    {idCode("REF"), "REF", true},  {idCode("DTP"), "DTP", true},  {idCode("HI"), "HI", true},
    {idCode("PER"), "PER", true},  {idCode("AMT"), "AMT", true},  {idCode("NTE"), "NTE", true},
};

// ASCII only, unlike std::isupper (a call per character, and locale dependent).
constexpr bool isUpper(char c) { return c >= 'A' && c <= 'Z'; }
constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }

inline bool isSegmentId(std::string_view id) {
  if (id.size() < 2 || id.size() > 3) return false;
  for (char c : id) {
    if (!isUpper(c) && !isDigit(c)) return false;
  }
  return isUpper(id[0]);
}

}  // namespace fhir::mappers::readers::x12::detail

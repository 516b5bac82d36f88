// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internal to the X12 reader (x12_reader.cc): what its records are cut from (a transaction set's
// frame), the records past maxRecordBytes, and the separator scan. Split out of x12_reader.cc to keep it under 1,000
// lines.

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "conformance/common/ids.h"
#include "mappers/readers/reader.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fhir::mappers::readers::x12::detail {

// A record past maxRecordBytes, not held: its first bytes, and the digest and size of all of it.
struct Oversized {
  Sha256Stream digest;
  std::string head;
  uint64_t total = 0;
  std::string location;  // where the record starts: "segment 20 (CLM)"
  void add(std::string_view bytes, size_t max) {
    digest.update(bytes);
    total += bytes.size();
    if (head.size() < max) head.append(bytes.substr(0, max - head.size()));
  }
};

// Segments that end a transaction set, group or interchange (and so every loop in it).
inline bool isEnvelope(std::string_view id) {
  for (std::string_view boundary : {"SE", "ST", "GS", "GE", "IEA", "ISA"}) {
    if (id == boundary) return true;
  }
  return false;
}

// Segments that end a claim (its loop 2300 and 2400s).
inline bool endsClaim(std::string_view id) { return id == "CLM" || id == "HL" || isEnvelope(id); }

// The envelope and header of the transaction set a claim was read from: the claim's raw bytes
// (its billing provider, subscriber and patient loops and loop 2300) between prefix() and
// suffix() are an interchange of that one claim, which this reader reads as it read the claim.
// Built once per transaction set (a few hundred bytes); complete at its first HL, before any of
// its claims shares it.
class TransactionFrame final : public RecordFrame {
 public:
  std::string isa;     // as read: 106 bytes, its terminator included
  std::string gs;      // the group's GS, with its terminator
  std::string header;  // ST and the segments before the first HL (BHT, 1000A, 1000B), terminated
  std::string isa_control, gs_control, st_control;
  char element = '*', terminator = '~';

  // RecordFrame
  std::string prefix() const override { return isa + gs + header; }
  // SE counting ST to SE of the new transaction set, GE and IEA counting one each.
  std::string suffix(std::string_view raw) const override {
    const auto segments = std::count(header.begin(), header.end(), terminator) +
                          std::count(raw.begin(), raw.end(), terminator) + 1;
    std::string out;
    appendSegment(out, {"SE", std::to_string(segments), st_control});
    appendSegment(out, {"GE", "1", gs_control});
    appendSegment(out, {"IEA", "1", isa_control});
    return out;
  }

 private:
  void appendSegment(std::string& out, std::initializer_list<std::string_view> elements) const {
    for (std::string_view text : elements) out.append(text).push_back(element);
    out.back() = terminator;
  }
};

// Which of the kBlockBytes bytes at `bytes` are element and component separators, as bit masks
// (bit k: byte k); only the first `available` bytes are the segment's, but all are readable.
constexpr size_t kBlockBytes = 16;
static_assert(kBlockBytes <= BufferedInput::kPadding, "a block may start at the segment's last byte");
struct SeparatorMarks {
  uint32_t elements = 0, components = 0;
};

inline SeparatorMarks markSeparators(const char* bytes, size_t available, char element, char component) {
  SeparatorMarks marks;
#if defined(__SSE2__)
  const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
  marks.elements = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8(element))));
  marks.components = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8(component))));
#else
  for (size_t index = 0; index < kBlockBytes; ++index) {
    marks.elements |= static_cast<uint32_t>(bytes[index] == element) << index;
    marks.components |= static_cast<uint32_t>(bytes[index] == component) << index;
  }
#endif
  if (available < kBlockBytes) {
    const uint32_t segment_bytes = (uint32_t{1} << available) - 1;
    marks.elements &= segment_bytes;
    marks.components &= segment_bytes;
  }
  return marks;
}

}  // namespace fhir::mappers::readers::x12::detail

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Helpers shared by the libFuzzer targets (docs/FUZZING.md).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "mappers/readers/reader.h"

namespace fhir::fuzz {

inline std::string_view view(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// A finding of the target's own oracle (not a sanitizer report): print and abort, so that
// libFuzzer keeps the input as a crash file.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz oracle failed: %s\n", what);
  std::abort();
}

// What every produced document must satisfy: it serializes, and its serialization parses back to
// the same serialization.
inline void checkRoundTrip(const json::Value& value) {
  const std::string once = json::serialize(value);
  json::Document again;
  json::ParseError error;
  if (!json::parse(once, again, error)) fail("a serialized document does not parse again");
  if (json::serialize(again) != once) fail("serialize(parse(serialize(x))) != serialize(x)");
}

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF) without NUL: what a JSON string may hold (conformance/json).
inline bool jsonText(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (byte == 0) return false;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if (byte >= 0xC2 && byte <= 0xDF) {
      length = 2, code = byte & 0x1F;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      length = 3, code = byte & 0x0F;
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      length = 4, code = byte & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

// Reads every record of `reader`; a reader that does not end within `max_calls` calls (every call
// consumes input or ends) is a finding. Records must round-trip through JSON when
// `check_round_trip`: the CSV, NDJSON and X12 readers reject a record with invalid UTF-8 or a NUL
// byte, so theirs always must; the v2 reader does not (its channel refuses such a message before
// it reads), so its harness passes whether the input is valid UTF-8 without NUL. With `max_record_bytes` (the limit the reader was given, issue
// 14) no record holds more bytes than it, and a record over it holds exactly its first
// `max_record_bytes` bytes, with a digest and a larger size.
inline void drain(mappers::readers::RecordReader& reader, size_t max_calls, bool check_round_trip,
                  size_t max_record_bytes = 0) {
  using mappers::readers::ReadStatus;
  for (size_t calls = 0; calls < max_calls; ++calls) {
    mappers::readers::SourceRecord record;
    IssueList issues;
    const ReadStatus status = reader.next(record, issues);
    if (status == ReadStatus::kEnd || status == ReadStatus::kFatal) return;
    if (max_record_bytes > 0) {
      if (record.raw.size() > max_record_bytes) fail("a record holds more than maxRecordBytes");
      if (!record.raw_sha256.empty() && (status != ReadStatus::kRejected || record.raw.size() != max_record_bytes ||
                                         record.raw_total <= max_record_bytes || record.raw_sha256.size() != 64)) {
        fail("a record over maxRecordBytes is not rejected with its first maxRecordBytes bytes, size and digest");
      }
    }
    if (status == ReadStatus::kRecord) {
      if (!record.doc.IsObject()) fail("a record that is not a JSON object");
      if (check_round_trip) {
        checkRoundTrip(record.doc);
      } else {
        (void)json::serialize(record.doc);
      }
      if (record.frame) {
        (void)record.frame->prefix();
        (void)record.frame->suffix(record.raw);
      }
    } else if (!issues.hasErrors()) {
      fail("a rejected record without an error issue");
    }
  }
  fail("the reader did not reach the end of its input");
}

}  // namespace fhir::fuzz

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

// Reads every record of `reader`; a reader that does not end within `max_calls` calls (every call
// consumes input or ends) is a finding.
inline void drain(mappers::readers::RecordReader& reader, size_t max_calls) {
  using mappers::readers::ReadStatus;
  for (size_t calls = 0; calls < max_calls; ++calls) {
    mappers::readers::SourceRecord record;
    IssueList issues;
    const ReadStatus status = reader.next(record, issues);
    if (status == ReadStatus::kEnd || status == ReadStatus::kFatal) return;
    if (status == ReadStatus::kRecord) {
      if (!record.doc.IsObject()) fail("a record that is not a JSON object");
      checkRoundTrip(record.doc);
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

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internal to the X12 reader (x12_reader.cc): building segment values as JSON with few
// allocations. Split out of x12_reader.cc to keep it under 1,000 lines.

#include <string>
#include <string_view>
#include <vector>

#include "conformance/json/json.h"

namespace fhir::mappers::readers::x12::detail {

// Element member names "01".."99" as constant strings (no formatting or copying per segment).
struct ElementNames {
  char text[100][3];
  ElementNames() {
    for (int index = 0; index < 100; ++index) {
      text[index][0] = static_cast<char>('0' + index / 10);
      text[index][1] = static_cast<char>('0' + index % 10);
      text[index][2] = '\0';
    }
  }
};

// The stack of a SegmentBuilder: one buffer kept for the reader's life (a document frees its
// stack after every Populate() and would allocate it again for the next segment).
class KeptStack {
 public:
  static const bool kNeedFree = false;
  void* Malloc(size_t size) { return Realloc(nullptr, 0, size); }
  void* Realloc(void* /*original*/, size_t /*original_size*/, size_t size) {
    if (size > buffer_.size()) buffer_.resize(size);  // keeps the contents, as Realloc must
    return buffer_.data();
  }
  static void Free(void* /*pointer*/) {}

 private:
  std::vector<char> buffer_;
};

// Builds values of json::Allocator from SAX events (its values are json::Values).
using SegmentBuilder = rapidjson::GenericDocument<rapidjson::UTF8<>, json::Allocator, KeptStack>;
constexpr size_t kBuilderStackBytes = 1024;  // room for 32 elements before the stack grows

inline void copyString(SegmentBuilder& out, std::string_view text) {
  out.String(text.data(), static_cast<rapidjson::SizeType>(text.size()), true);
}

// Member name "01".."99" as a constant string (no formatting or copying per segment).
inline void elementName(SegmentBuilder& out, size_t index) {
  static const ElementNames kNames;
  if (index < 100) {
    out.Key(kNames.text[index], 2, false);
  } else {
    std::string name = std::to_string(index);
    out.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()), true);
  }
}

// A copy of `value` in `allocator` (RapidJSON's CopyFrom replays SAX events, several times
// slower than this direct walk).
inline json::Value deepCopy(const json::Value& value, json::Allocator& allocator) {
  switch (value.GetType()) {
    case rapidjson::kObjectType: {
      json::Value object(rapidjson::kObjectType);
      for (const auto& member : value.GetObject()) {
        object.AddMember(deepCopy(member.name, allocator), deepCopy(member.value, allocator), allocator);
      }
      return object;
    }
    case rapidjson::kArrayType: {
      json::Value array(rapidjson::kArrayType);
      array.Reserve(value.Size(), allocator);
      for (const json::Value& item : value.GetArray()) array.PushBack(deepCopy(item, allocator), allocator);
      return array;
    }
    case rapidjson::kStringType:
      return json::Value(value.GetString(), value.GetStringLength(), allocator);
    default: {
      json::Value copy;
      copy.CopyFrom(value, allocator);
      return copy;
    }
  }
}

}  // namespace fhir::mappers::readers::x12::detail

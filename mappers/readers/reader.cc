// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/reader.h"

#include <cstring>
#include <vector>

namespace fhir::mappers::readers {

bool BufferedInput::refill() {
  consumed_ += size_;
  position_ = size_ = 0;
  if (!stream_) return false;
  stream_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size() - kPadding));
  size_ = static_cast<size_t>(stream_.gcount());
  position_ = 0;
  return size_ > 0;
}

bool BufferedInput::readUntil(char delimiter, std::string& out) {
  bool any = false;
  while (true) {
    if (position_ == size_ && !refill()) return any;
    any = true;
    const char* start = buffer_.data() + position_;
    const void* hit = std::memchr(start, delimiter, size_ - position_);
    if (hit) {
      size_t length = static_cast<const char*>(hit) - start + 1;
      out.append(start, length);
      position_ += length;
      return true;
    }
    out.append(start, size_ - position_);
    position_ = size_;
  }
}

std::optional<std::string> invalidUtf8(std::string_view raw, uint64_t start, const std::string& position,
                                       std::string_view whole) {
  // "<position>, byte N of <whole>: <why>"; with the stream offset known, "<position>, byte offset
  // S (byte N of <whole>): <why>".
  auto describe = [&](uint64_t in_record, const char* why) {
    const std::string of = " of " + std::string(whole);
    if (start == kUnknownOffset) return position + ", byte " + std::to_string(in_record) + of + ": " + why;
    return position + ", byte offset " + std::to_string(start + in_record) + " (byte " + std::to_string(in_record) + of + "): " + why;
  };
  // A NUL byte is UTF-8, but no JSON or FHIR string may hold one (conformance/json refuses
  // "\u0000"): a record with one would be stored as JSON the gateway cannot read again.
  if (const void* nul = std::memchr(raw.data(), '\0', raw.size())) {
    return describe(static_cast<uint64_t>(static_cast<const char*>(nul) - raw.data()), "a NUL byte");
  }
  // ASCII eight bytes at a time; the full check only from the first byte >= 0x80.
  size_t at = 0;
  while (at + 8 <= raw.size()) {
    uint64_t word;
    std::memcpy(&word, raw.data() + at, 8);
    if (word & 0x8080808080808080ULL) break;
    at += 8;
  }
  auto offset = json::invalidUtf8Offset(raw.substr(at));
  if (!offset) return std::nullopt;
  return describe(at + *offset, "not valid UTF-8");
}

std::string describeLocation(const json::Value& record, const std::vector<std::string>& path,
                             bool json_paths) {
  const json::Value* current = &record;
  const json::Value* anchor = nullptr;
  size_t anchor_step = 0;  // index of the first step below the anchor
  auto isAnchor = [](const json::Value& value) {
    return value.IsObject() && (json::find(value, "@line") || json::find(value, "@segment"));
  };
  if (isAnchor(record)) anchor = &record;
  for (size_t step = 0; step < path.size() && current; ++step) {
    const json::Value* next = nullptr;
    if (current->IsArray()) {
      size_t index = std::strtoul(path[step].c_str(), nullptr, 10);
      if (index < current->Size()) next = &(*current)[static_cast<rapidjson::SizeType>(index)];
    } else if (current->IsObject()) {
      next = json::find(*current, path[step]);
    }
    current = next;
    if (current && isAnchor(*current)) {
      anchor = current;
      anchor_step = step + 1;
    }
  }
  if (!anchor) return "record";
  std::string out;
  if (const json::Value* segment = json::find(*anchor, "@segment")) {
    out = "segment " + json::numberText(*segment);
    if (auto id = json::getString(*anchor, "@id")) out += " (" + std::string(*id) + ")";
    bool hl7 = json::find(*anchor, "@hl7") != nullptr;
    size_t step = anchor_step;
    if (step < path.size()) {
      out += (hl7 ? ", field " : ", element ") + std::to_string(std::strtoul(path[step].c_str(), nullptr, 10));
      ++step;
    }
    if (hl7 && step + 1 < path.size() && path[step] == "repetitions") {
      out += ", repetition " + std::to_string(std::strtoul(path[step + 1].c_str(), nullptr, 10) + 1);
      step += 2;
    }
    if (step < path.size()) {
      out += ", component " + std::to_string(std::strtoul(path[step].c_str(), nullptr, 10) + 1);
    }
    return out;
  }
  out = "line " + json::numberText(*json::find(*anchor, "@line"));
  if (anchor_step >= path.size()) return out;
  if (!json_paths) return out + ", column " + path[anchor_step];
  out += ", $";
  const json::Value* walk = anchor;
  for (size_t step = anchor_step; step < path.size(); ++step) {
    if (walk && walk->IsArray()) {
      out += "[" + path[step] + "]";
      size_t index = std::strtoul(path[step].c_str(), nullptr, 10);
      walk = index < walk->Size() ? &(*walk)[static_cast<rapidjson::SizeType>(index)] : nullptr;
    } else {
      out += "." + path[step];
      walk = walk && walk->IsObject() ? json::find(*walk, path[step]) : nullptr;
    }
  }
  return out;
}

}  // namespace fhir::mappers::readers

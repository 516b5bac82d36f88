// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/ndjson/ndjson_reader.h"

#include <cstring>
#include <memory>

#include "conformance/common/ids.h"

namespace fhir::mappers::readers::ndjson {
namespace {

// Parses `text` into the record; `line` is the physical line of its first byte.
ReadStatus parseRecord(std::string_view text, size_t line, SourceRecord& record, IssueList& issues) {
  record.doc = json::Document();
  json::ParseError error;
  if (!json::parse(text, record.doc, error)) {
    std::string location = "line " + std::to_string(line + error.line - 1) + ", column " + std::to_string(error.column);
    issues.atLocation(Severity::kError, "structure", location, location + ": " + error.message);
    return ReadStatus::kRejected;
  }
  if (!record.doc.IsObject()) {
    std::string location = "line " + std::to_string(line) + ", $";
    issues.atLocation(Severity::kError, "structure", location, location + ": the record is not a JSON object");
    return ReadStatus::kRejected;
  }
  if (json::find(record.doc, "@line")) record.doc.RemoveMember("@line");
  record.doc.AddMember("@line", json::Value(static_cast<uint64_t>(line)), record.doc.GetAllocator());
  return ReadStatus::kRecord;
}

}  // namespace

bool NdjsonReader::readLine(std::string& raw) {
  const size_t limit = max_record_bytes_ == 0 ? SIZE_MAX : max_record_bytes_;
  std::unique_ptr<Sha256Stream> digest;  // past the limit: the rest of the line is hashed, not held
  uint64_t total = 0;
  bool any = false;
  while (true) {
    std::string_view bytes = input_.buffered();
    if (bytes.empty()) break;
    any = true;
    const void* hit = std::memchr(bytes.data(), '\n', bytes.size());
    const size_t length = hit ? static_cast<size_t>(static_cast<const char*>(hit) - bytes.data()) + 1 : bytes.size();
    std::string_view piece = bytes.substr(0, length);
    total += length;
    if (!digest && raw.size() + length > limit) {
      digest = std::make_unique<Sha256Stream>();
      digest->update(raw);
      raw.append(piece.substr(0, limit - raw.size()));
      digest->update(piece);
    } else if (digest) {
      digest->update(piece);
    } else {
      raw.append(piece);
    }
    input_.skip(length);
    if (hit) break;
  }
  if (digest) {
    oversized_sha256_ = digest->hex();
    oversized_total_ = total;
  }
  return any;
}

ReadStatus NdjsonReader::next(SourceRecord& record, IssueList& issues) {
  while (true) {
    record.raw.clear();
    oversized_sha256_.clear();
    const uint64_t start = input_.offset();
    if (!readLine(record.raw)) {
      if (input_.failed()) {
        issues.atLocation(Severity::kFatal, "exception", "line " + std::to_string(line_ + 1), "the input could not be read");
        return ReadStatus::kFatal;
      }
      return ReadStatus::kEnd;
    }
    ++line_;
    if (!oversized_sha256_.empty()) {
      record.position = "line " + std::to_string(line_);
      record.raw_sha256 = std::move(oversized_sha256_);
      record.raw_total = oversized_total_;
      oversized_sha256_.clear();
      issues.atLocation(Severity::kError, "too-long", record.position,
                        record.position + ": the record is " + std::to_string(record.raw_total) +
                            " bytes, larger than maxRecordBytes (" + std::to_string(max_record_bytes_) + ")");
      return ReadStatus::kRejected;
    }
    std::string_view text = record.raw;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    if (line_ == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    record.position = "line " + std::to_string(line_);
    if (auto where = invalidUtf8(record.raw, start, record.position)) {
      record.doc = json::Document();
      record.doc.SetObject();
      issues.atLocation(Severity::kError, "structure", record.position, *where);
      return ReadStatus::kRejected;
    }
    return parseRecord(text, line_, record, issues);
  }
}

ReadStatus JsonDocumentReader::next(SourceRecord& record, IssueList& issues) {
  if (done_) return ReadStatus::kEnd;
  done_ = true;
  const size_t limit = max_record_bytes_ == 0 ? SIZE_MAX : max_record_bytes_;
  std::unique_ptr<Sha256Stream> digest;  // past the limit: the rest is hashed, not held
  uint64_t total = 0;
  record.raw.clear();
  char chunk[1 << 16];
  while (true) {
    stream_.read(chunk, sizeof chunk);
    const auto count = static_cast<size_t>(stream_.gcount());
    if (count == 0) break;
    const std::string_view piece(chunk, count);
    total += count;
    if (!digest && record.raw.size() + count > limit) {
      digest = std::make_unique<Sha256Stream>();
      digest->update(record.raw);
      record.raw.append(piece.substr(0, limit - record.raw.size()));
      digest->update(piece);
    } else if (digest) {
      digest->update(piece);
    } else {
      record.raw.append(piece);
    }
  }
  if (stream_.bad()) {
    issues.atLocation(Severity::kFatal, "exception", "line 1", "the input could not be read");
    return ReadStatus::kFatal;
  }
  record.position = "line 1";
  if (digest) {
    record.doc = json::Document();
    record.doc.SetObject();
    record.raw_sha256 = digest->hex();
    record.raw_total = total;
    issues.atLocation(Severity::kError, "too-long", record.position,
                      "the JSON document is " + std::to_string(total) + " bytes, larger than maxRecordBytes (" +
                          std::to_string(max_record_bytes_) + "); it was not read");
    return ReadStatus::kRejected;
  }
  if (auto where = invalidUtf8(record.raw, 0, record.position)) {
    record.doc = json::Document();
    record.doc.SetObject();
    issues.atLocation(Severity::kError, "structure", record.position, *where);
    return ReadStatus::kRejected;
  }
  return parseRecord(record.raw, 1, record, issues);
}

}  // namespace fhir::mappers::readers::ndjson

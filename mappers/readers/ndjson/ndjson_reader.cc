// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/ndjson/ndjson_reader.h"

#include <iterator>

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

ReadStatus NdjsonReader::next(SourceRecord& record, IssueList& issues) {
  while (true) {
    record.raw.clear();
    if (!input_.readUntil('\n', record.raw)) {
      if (input_.failed()) {
        issues.atLocation(Severity::kFatal, "exception", "line " + std::to_string(line_ + 1), "the input could not be read");
        return ReadStatus::kFatal;
      }
      return ReadStatus::kEnd;
    }
    ++line_;
    std::string_view text = record.raw;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    if (line_ == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    record.position = "line " + std::to_string(line_);
    return parseRecord(text, line_, record, issues);
  }
}

ReadStatus JsonDocumentReader::next(SourceRecord& record, IssueList& issues) {
  if (done_) return ReadStatus::kEnd;
  done_ = true;
  record.raw.assign(std::istreambuf_iterator<char>(stream_), std::istreambuf_iterator<char>());
  if (stream_.bad()) {
    issues.atLocation(Severity::kFatal, "exception", "line 1", "the input could not be read");
    return ReadStatus::kFatal;
  }
  record.position = "line 1";
  return parseRecord(record.raw, 1, record, issues);
}

}  // namespace fhir::mappers::readers::ndjson

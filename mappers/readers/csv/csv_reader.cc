// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/csv/csv_reader.h"

#include <algorithm>
#include <bit>
#include <unordered_set>

#include "conformance/common/ids.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fhir::mappers::readers::csv {
namespace {

// Length of the leading bytes of `bytes` that a field takes as they are: outside quotes anything
// but a comma, a quote or a line break; inside quotes anything but a quote or a line feed.
// `bytes` is BufferedInput::buffered(): BufferedInput::kPadding bytes after it are readable, so
// the scan reads 16 bytes at a time.
size_t ordinaryRun(std::string_view bytes, bool quoted) {
#if defined(__SSE2__)
  static_assert(BufferedInput::kPadding >= 16);
  const __m128i comma = _mm_set1_epi8(','), quote = _mm_set1_epi8('"');
  const __m128i carriage_return = _mm_set1_epi8('\r'), line_feed = _mm_set1_epi8('\n');
  for (size_t at = 0; at < bytes.size(); at += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes.data() + at));
    __m128i stops = _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, line_feed));
    if (!quoted) {
      stops = _mm_or_si128(stops, _mm_or_si128(_mm_cmpeq_epi8(block, comma), _mm_cmpeq_epi8(block, carriage_return)));
    }
    if (const int mask = _mm_movemask_epi8(stops); mask != 0) {
      return std::min(bytes.size(), at + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(mask))));
    }
  }
  return bytes.size();
#else
  size_t length = 0;
  if (quoted) {
    while (length < bytes.size() && bytes[length] != '"' && bytes[length] != '\n') ++length;
    return length;
  }
  while (length < bytes.size()) {
    const char c = bytes[length];
    if (c == ',' || c == '"' || c == '\r' || c == '\n') break;
    ++length;
  }
  return length;
#endif
}

}  // namespace

std::string CsvReader::columnName(size_t field) const {
  if (field < header_.size() && !header_[field].empty()) return header_[field];
  return std::to_string(field + 1);
}

bool CsvReader::readRow(std::string& raw, size_t& first_line, Problem& problem) {
  fields_.clear();
  raw.clear();
  problem = Problem{};
  // Skip blank lines between records.
  while (true) {
    int c = input_.peek();
    if (c == -1) return false;
    if (c == '\r' || c == '\n') {
      input_.get();
      if (c == '\n') ++line_;
      if (c == '\r' && input_.peek() != '\n') ++line_;
      continue;
    }
    break;
  }
  first_line = line_;
  row_offset_ = input_.offset();
  oversized_sha256_.clear();
  std::string field;
  bool quoted = false;        // inside a quoted field
  bool was_quoted = false;    // the current field started with a quote
  bool after_quote = false;   // the closing quote of a quoted field was read
  size_t quote_line = line_;
  auto fail = [&](std::string message) {
    if (problem.message.empty()) {
      problem.line = line_;
      problem.field = fields_.size();
      problem.message = std::move(message);
    }
  };
  while (true) {
    if (raw.size() > limit_) {  // past maxRecordBytes: the rest is hashed, not held
      skipOversized(raw, quoted, field.empty() && !was_quoted && !after_quote);
      fields_.clear();
      return true;
    }
    // Runs of ordinary bytes are copied in one go; the bytes that change state go one by one.
    if (size_t run = ordinaryRun(input_.buffered(), quoted); run > 0) {
      std::string_view bytes = input_.buffered().substr(0, run);
      if (!quoted && after_quote) fail("characters after the closing quote of a quoted field");
      raw.append(bytes);
      field.append(bytes);
      input_.skip(run);
      continue;
    }
    int c = input_.get();
    if (c == -1) {
      if (quoted) {
        problem = Problem{quote_line, fields_.size(), "quoted field is not closed before the end of the file"};
      }
      fields_.push_back(std::move(field));
      return true;
    }
    raw.push_back(static_cast<char>(c));
    if (quoted) {
      if (c == '"') {
        if (input_.peek() == '"') {
          raw.push_back(static_cast<char>(input_.get()));
          field.push_back('"');
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++line_;
        field.push_back(static_cast<char>(c));
      }
      continue;
    }
    if (c == ',') {
      fields_.push_back(std::move(field));
      field.clear();
      was_quoted = after_quote = false;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && input_.peek() == '\n') raw.push_back(static_cast<char>(input_.get()));
      ++line_;
      fields_.push_back(std::move(field));
      return true;
    }
    if (c == '"') {
      if (field.empty() && !was_quoted && !after_quote) {
        quoted = was_quoted = true;
        quote_line = line_;
        continue;
      }
      fail("a quote inside an unquoted field (RFC 4180 requires the field to be quoted)");
    } else if (after_quote) {
      fail("characters after the closing quote of a quoted field");
    }
    field.push_back(static_cast<char>(c));
  }
}

void CsvReader::skipOversized(std::string& raw, bool quoted, bool field_start) {
  Sha256Stream digest;
  digest.update(raw);
  uint64_t total = raw.size();
  raw.resize(max_record_bytes_);
  std::string pending;  // hashed in large pieces
  auto take = [&](std::string_view bytes) {
    pending.append(bytes);
    total += bytes.size();
    input_.skip(bytes.size());
    if (pending.size() >= (1u << 16)) {
      digest.update(pending);
      pending.clear();
    }
  };
  // The same state machine as readRow(), holding nothing: a record ends at a line break outside quotes.
  while (true) {
    std::string_view bytes = input_.buffered();
    if (bytes.empty()) break;
    if (size_t run = ordinaryRun(bytes, quoted); run > 0) {
      take(bytes.substr(0, run));
      field_start = false;
      continue;
    }
    const char c = bytes[0];
    take(bytes.substr(0, 1));
    if (quoted) {
      if (c == '"') {
        if (input_.peek() == '"') {
          take(input_.buffered().substr(0, 1));
        } else {
          quoted = false;
        }
      } else if (c == '\n') {
        ++line_;
      }
      continue;
    }
    if (c == ',') {
      field_start = true;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && input_.peek() == '\n') take(input_.buffered().substr(0, 1));
      ++line_;
      break;
    }
    if (c == '"' && field_start) quoted = true;
    field_start = false;
  }
  digest.update(pending);
  oversized_sha256_ = digest.hex();
  oversized_total_ = total;
}

ReadStatus CsvReader::next(SourceRecord& record, IssueList& issues) {
  if (done_) return ReadStatus::kEnd;
  Problem problem;
  size_t first_line = 0;
  if (!started_) {
    started_ = true;
    limit_ = max_record_bytes_ == 0 ? SIZE_MAX : max_record_bytes_;
    // A UTF-8 byte order mark is dropped.
    if (input_.peek() == 0xEF) {
      std::string bom;
      bom.push_back(static_cast<char>(input_.get()));
      if (input_.get() != 0xBB || input_.get() != 0xBF) {
        issues.atLocation(Severity::kFatal, "structure", "line 1", "line 1: the file starts with an incomplete byte order mark");
        done_ = true;
        return ReadStatus::kFatal;
      }
    }
    if (!readRow(record.raw, first_line, problem)) {
      issues.atLocation(Severity::kFatal, "structure", "line 1", "line 1: the file has no header row");
      done_ = true;
      return ReadStatus::kFatal;
    }
    if (!problem.message.empty()) {
      std::string location = "line " + std::to_string(problem.line);
      issues.atLocation(Severity::kFatal, "structure", location, location + ": header row: " + problem.message);
      done_ = true;
      return ReadStatus::kFatal;
    }
    if (!oversized_sha256_.empty()) {
      issues.atLocation(Severity::kFatal, "too-long", "line 1",
                        "line 1: the header row is " + std::to_string(oversized_total_) +
                            " bytes, larger than maxRecordBytes (" + std::to_string(max_record_bytes_) + ")");
      done_ = true;
      return ReadStatus::kFatal;
    }
    if (auto where = invalidUtf8(record.raw, row_offset_, "line 1")) {
      issues.atLocation(Severity::kFatal, "structure", "line 1", *where + " (header row)");
      done_ = true;
      return ReadStatus::kFatal;
    }
    header_ = fields_;
    std::unordered_set<std::string> seen;
    for (size_t index = 0; index < header_.size(); ++index) {
      std::string location = "line 1, column " + std::to_string(index + 1);
      if (header_[index].empty()) {
        issues.atLocation(Severity::kFatal, "structure", location, location + ": empty column name in the header");
      } else if (header_[index] == "@line") {
        // Each record carries its line as "@line" (reader.h): a column of that name would be a
        // second member of the same name, a record that is not JSON (found by csv_reader_fuzz).
        issues.atLocation(Severity::kFatal, "structure", location,
                          location + ": column name @line is reserved (each record's line number)");
      } else if (!seen.insert(header_[index]).second) {
        issues.atLocation(Severity::kFatal, "structure", location,
                          location + ": column " + header_[index] + " appears twice in the header");
      }
    }
    if (issues.hasErrors()) {
      done_ = true;
      return ReadStatus::kFatal;
    }
  }
  record.doc = json::Document();
  record.doc.SetObject();  // rejected rows keep an empty object
  if (!readRow(record.raw, first_line, problem)) {
    if (input_.failed()) {
      issues.atLocation(Severity::kFatal, "exception", "line " + std::to_string(line_), "the input could not be read");
      done_ = true;
      return ReadStatus::kFatal;
    }
    done_ = true;
    return ReadStatus::kEnd;
  }
  record.position = "line " + std::to_string(first_line);
  if (!oversized_sha256_.empty()) {
    record.raw_sha256 = std::move(oversized_sha256_);
    record.raw_total = oversized_total_;
    oversized_sha256_.clear();
    issues.atLocation(Severity::kError, "too-long", record.position,
                      record.position + ": the record is " + std::to_string(oversized_total_) +
                          " bytes, larger than maxRecordBytes (" + std::to_string(max_record_bytes_) + ")");
    return ReadStatus::kRejected;
  }
  if (auto where = invalidUtf8(record.raw, row_offset_, record.position)) {
    issues.atLocation(Severity::kError, "structure", record.position, *where);
    return ReadStatus::kRejected;
  }
  if (!problem.message.empty()) {
    std::string location = "line " + std::to_string(problem.line) + ", column " + columnName(problem.field);
    issues.atLocation(Severity::kError, "structure", location, location + ": " + problem.message);
    return ReadStatus::kRejected;
  }
  if (fields_.size() != header_.size()) {
    std::string location = "line " + std::to_string(first_line);
    issues.atLocation(Severity::kError, "structure", location,
                      location + ": " + std::to_string(fields_.size()) + " fields, the header has " +
                          std::to_string(header_.size()));
    return ReadStatus::kRejected;
  }
  // Built from SAX events, so that the object's member array is allocated once at its size.
  auto events = [&](json::Document& out) {
    out.StartObject();
    out.Key("@line", 5, false);
    out.Uint64(first_line);
    for (size_t index = 0; index < fields_.size(); ++index) {
      out.Key(header_[index].data(), static_cast<rapidjson::SizeType>(header_[index].size()), true);
      out.String(fields_[index].data(), static_cast<rapidjson::SizeType>(fields_[index].size()), true);
    }
    return out.EndObject(static_cast<rapidjson::SizeType>(fields_.size() + 1));
  };
  record.doc.Populate(events);
  return ReadStatus::kRecord;
}

}  // namespace fhir::mappers::readers::csv

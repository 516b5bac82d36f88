// SPDX-License-Identifier: Apache-2.0
#pragma once

// RFC 4180 CSV with a header row: UTF-8, optional BOM, CRLF or LF line ends, quoted fields
// (with "" for a quote, and line breaks inside quotes). Each data row becomes a record
//   {"@line": N, "<header name>": "<field>", ...}
// where N is the physical line the row starts on (the header is line 1). Blank lines are
// skipped. A row with the wrong number of fields or a malformed quote is rejected with the
// location `line N, column <name>` (or `line N` for a field-count error) and reading goes on.
// A missing or malformed header is fatal.

#include <cstdint>
#include <string>
#include <vector>

#include "mappers/readers/reader.h"

namespace fhir::mappers::readers::csv {

class CsvReader final : public RecordReader {
 public:
  explicit CsvReader(std::istream& stream) : input_(stream) {}

  // The header names (after the first next() call).
  const std::vector<std::string>& header() const { return header_; }
  // The fields of the row last read, as far as they could be read, also when it was rejected
  // (so a caller can still tell which claim a bad row belongs to).
  const std::vector<std::string>& lastFields() const { return fields_; }

  // RecordReader
  ReadStatus next(SourceRecord& record, IssueList& issues) override;

 private:
  struct Problem {
    size_t line = 0;
    size_t field = 0;
    std::string message;
  };
  // Reads one physical record into fields_. False at end of input.
  bool readRow(std::string& raw, size_t& first_line, Problem& problem);
  std::string columnName(size_t field) const;
  // Past maxRecordBytes: keeps the first bytes of `raw`, hashes the rest of the record while
  // skipping to its end (oversized_sha256_, oversized_total_).
  void skipOversized(std::string& raw, bool quoted, bool field_start);

  BufferedInput input_;
  std::vector<std::string> header_;
  std::vector<std::string> fields_;
  size_t line_ = 1;  // physical line of the next byte
  bool started_ = false;
  size_t limit_ = SIZE_MAX;        // maxRecordBytes, or no limit
  uint64_t row_offset_ = 0;        // byte offset of the row last read
  std::string oversized_sha256_;   // set when the row last read was over the limit
  uint64_t oversized_total_ = 0;
  bool done_ = false;
};

}  // namespace fhir::mappers::readers::csv

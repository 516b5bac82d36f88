// SPDX-License-Identifier: Apache-2.0
#pragma once

// NDJSON (one JSON object per line, LF or CRLF; blank lines skipped) and single JSON documents.
// Each line becomes its parsed object plus "@line": N (the physical line, 1-based). A line that
// is not valid JSON (syntax, duplicate keys) or not an object is rejected with the location
// `line N, column C` and reading goes on; invalid UTF-8 is rejected naming its byte offset in the
// stream; a line longer than maxRecordBytes is rejected without being held (reader.h). Numbers keep their exact text (json.h).
//
// JsonDocumentReader reads a whole stream as one JSON object (one event), for sources that post
// a single event per request. A stream longer than maxRecordBytes is one rejected record
// ("too-long", naming the limit) without being held: its first bytes, and the digest and size of
// all of it (reader.h).

#include "mappers/readers/reader.h"

namespace fhir::mappers::readers::ndjson {

class NdjsonReader final : public RecordReader {
 public:
  explicit NdjsonReader(std::istream& stream) : input_(stream) {}

  // RecordReader
  ReadStatus next(SourceRecord& record, IssueList& issues) override;

 private:
  // Reads one line (with its '\n') into `raw`, up to maxRecordBytes (then oversized_*). False at end.
  bool readLine(std::string& raw);
  BufferedInput input_;
  size_t line_ = 0;
  std::string oversized_sha256_;  // set when the line last read was over maxRecordBytes
  uint64_t oversized_total_ = 0;
};

class JsonDocumentReader final : public RecordReader {
 public:
  explicit JsonDocumentReader(std::istream& stream) : stream_(stream) {}

  // RecordReader
  ReadStatus next(SourceRecord& record, IssueList& issues) override;

 private:
  std::istream& stream_;
  bool done_ = false;
};

}  // namespace fhir::mappers::readers::ndjson

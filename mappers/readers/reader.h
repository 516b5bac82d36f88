// SPDX-License-Identifier: Apache-2.0
#pragma once

// Streaming source readers: one record at a time, in constant memory.
//
// A reader turns a byte stream (CSV, NDJSON, ASC X12 837P, ...) into records. A record is a JSON
// object the mapping engine addresses with source paths; objects inside it that stand for one
// physical piece of the source carry meta members naming where it came from:
//   "@line": N                   the physical line (CSV row, NDJSON line), 1-based
//   "@segment": N, "@id": "SV1"  an X12 segment, numbered within its transaction set (ST = 1)
// A data value's source location ("line 3, column dos_from", "segment 23 (SV1), element 1",
// "line 4, $.member.dob") is found from the nearest enclosing object carrying these members
// (see describeLocation()).
//
// Readers are not thread-safe; one reader per stream. They never throw for bad data.

#include <istream>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"

namespace fhir::mappers::readers {

// What a record cut out of its stream needs around its bytes to be read again on its own (the X12
// reader's interchange envelope and transaction header). Built once per stream section and shared
// by its records; its text is made only when asked for (a record is quarantined).
class RecordFrame {
 public:
  virtual ~RecordFrame() = default;
  // The bytes before and after `raw` (a record's SourceRecord::raw) that make it a stream of its own.
  virtual std::string prefix() const = 0;
  virtual std::string suffix(std::string_view raw) const = 0;
};

struct SourceRecord {
  json::Document doc;    // the record (an object); fresh for every record
  std::string raw;       // the exact source bytes of the record (hashed into the Provenance)
  std::string position;  // where it starts, for people and Provenance: "line 2", "segment 20"
  // What `doc` needs beyond itself and must outlive it (the X12 reader's loop contexts, shared with
  // other records: `doc` holds read-only views of them instead of copies; and the memory `doc`
  // allocates from); moves along with `doc`.
  std::shared_ptr<const void> shared;
  // How to read `raw` alone; null when it reads alone as it is, or the reader cannot tell.
  std::shared_ptr<const RecordFrame> frame;
  // Set when the record is larger than the reader's maxRecordBytes (RecordReader::setMaxRecordBytes):
  // `raw` holds only its first bytes and `raw_sha256` the SHA-256 (hex) of all `raw_total` bytes;
  // the reader skipped to the record's end without holding it, and returns kRejected.
  std::string raw_sha256;
  uint64_t raw_total = 0;
};

enum class ReadStatus {
  kRecord,    // `record` holds the next record
  kRejected,  // the next record is unreadable: `issues` say where, `record.raw` holds its bytes;
              // reading goes on with the record after it
  kEnd,       // no more records
  kFatal,     // the stream cannot be read any further (bad header, broken X12 envelope header,
              // I/O error); `issues` say why; every later call returns kEnd
};

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Reads the next record. `issues` receives the problems of this record only (the caller
  // passes an empty list per call). Never throws for bad data.
  virtual ReadStatus next(SourceRecord& record, IssueList& issues) = 0;
  // limits.maxRecordBytes (0: no limit): a longer record is not held, see SourceRecord::raw_sha256.
  // Readers that honour it: CSV (one physical record), NDJSON (one line), X12 (one claim with
  // its loops' segments, or one segment outside a claim).
  void setMaxRecordBytes(size_t bytes) { max_record_bytes_ = bytes; }

 protected:
  size_t max_record_bytes_ = 0;
};

using RecordReaderPtr = std::unique_ptr<RecordReader>;

// Reads `stream` in large blocks; the common base of the text readers.
class BufferedInput {
 public:
  // Bytes readable after the end of buffered() (values unspecified), for scans that read a
  // whole word at a time.
  static constexpr size_t kPadding = 16;
  explicit BufferedInput(std::istream& stream, size_t block = 1 << 16)
      : stream_(stream), buffer_(block + kPadding, '\0') {}
  // Next byte or -1 at end of input.
  int get() {
    if (position_ == size_) {
      if (!refill()) return -1;
    }
    return static_cast<unsigned char>(buffer_[position_++]);
  }
  int peek() {
    if (position_ == size_) {
      if (!refill()) return -1;
    }
    return static_cast<unsigned char>(buffer_[position_]);
  }
  // Appends bytes up to and including `delimiter` (or to the end) to `out`. False at end of input
  // when nothing was read.
  bool readUntil(char delimiter, std::string& out);
  // The bytes read but not yet taken (refilled when none are left; empty at end of input), to
  // scan in place (kPadding more bytes are readable after them); take them with skip().
  std::string_view buffered() {
    if (position_ == size_) refill();
    return std::string_view(buffer_.data() + position_, size_ - position_);
  }
  void skip(size_t count) { position_ += count; }
  // Bytes taken from the stream so far (the offset in it of the next byte).
  uint64_t offset() const { return consumed_ + position_; }
  bool failed() const { return stream_.bad(); }

 private:
  bool refill();
  std::istream& stream_;
  std::string buffer_;
  size_t position_ = 0;
  size_t size_ = 0;
  uint64_t consumed_ = 0;  // bytes of the stream before buffer_
};

// Where `raw` (a record starting at byte `start` of its stream) is not UTF-8: "line 3, byte offset
// 1234 (byte 17 of the record): not valid UTF-8"; with `start` kUnknownOffset (a record put
// together from several places of its stream, as an X12 claim): "segment 20 (CLM), byte 17 of the
// record: not valid UTF-8". A NUL byte is reported the same way ("...: a NUL byte"): no JSON
// string may hold one. nullopt when it is valid. Cheap on ASCII.
inline constexpr uint64_t kUnknownOffset = UINT64_MAX;
// `whole`: what `raw` is, in the message ("byte 17 of the segment").
std::optional<std::string> invalidUtf8(std::string_view raw, uint64_t start, const std::string& position,
                                       std::string_view whole = "the record");

// "line 3, column dos_from" / "segment 23 (SV1), element 1" / "line 4, $.member.dob": the source
// location of `path` (steps of a record: member names and array indices) in `record`.
// `json_paths` selects the NDJSON style (the JSON path below the "@line" object).
std::string describeLocation(const json::Value& record, const std::vector<std::string>& path,
                             bool json_paths);

}  // namespace fhir::mappers::readers

// SPDX-License-Identifier: Apache-2.0
// The reader glue: mapSource/mapRecord over the readers of each source format.

#include "mappers/engine/runtime.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "mappers/common/dates.h"
#include "conformance/common/ids.h"
#include "mappers/engine/fhir_paths.h"
#include "mappers/engine/spec_json.h"
#include "mappers/readers/csv/csv_reader.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"
#include "mappers/readers/ndjson/ndjson_reader.h"
#include "mappers/readers/x12/x12_reader.h"

namespace fhir::mappers::engine {

namespace readers = ::fhir::mappers::readers;

namespace {

// "splitColumns": a column's text becomes the list of its trimmed, non-empty parts.
void splitColumns(const CompiledSpec& spec, json::Document& doc) {
  if (!doc.IsObject()) return;
  for (const auto& [column, separator] : spec.split_columns) {
    auto found = doc.FindMember(column.c_str());
    if (found == doc.MemberEnd() || !json::isString(found->value)) continue;
    std::string text(json::stringView(found->value));
    json::Value list(rapidjson::kArrayType);
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find(separator, start);
      if (end == std::string::npos) end = text.size();
      size_t first = start, last = end;
      while (first < last && std::isspace(static_cast<unsigned char>(text[first]))) ++first;
      while (last > first && std::isspace(static_cast<unsigned char>(text[last - 1]))) --last;
      if (last > first) {
        list.PushBack(json::Value(text.data() + first, static_cast<rapidjson::SizeType>(last - first), doc.GetAllocator()),
                      doc.GetAllocator());
      }
      start = end + separator.size();
    }
    found->value = std::move(list);
  }
}

// Reads `head` (bytes already taken from `rest`), then `rest`.
class PrefixedBuffer final : public std::streambuf {
 public:
  PrefixedBuffer(std::string head, std::istream& rest) : head_(std::move(head)), rest_(rest) {
    setg(head_.data(), head_.data(), head_.data() + head_.size());
  }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    rest_.read(block_, sizeof block_);
    std::streamsize got = rest_.gcount();
    if (got <= 0) return traits_type::eof();
    setg(block_, block_, block_ + got);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string head_;
  std::istream& rest_;
  char block_[1 << 16];
};

// "json-events": NDJSON when the first non-blank line is a JSON value on its own, else one JSON
// document (a pretty-printed event); both stream from the same input. The sniffing reads at most
// maxRecordBytes (+1) bytes: when the blank lines and the first line are longer, that line is an
// oversized record either way, and the NDJSON reader skips it unheld (issue 14).
class JsonEventsReader final : public readers::RecordReader {
 public:
  explicit JsonEventsReader(std::istream& input) : input_(input) {}

  // readers::RecordReader
  readers::ReadStatus next(readers::SourceRecord& record, IssueList& issues) override {
    if (!inner_) {
      const size_t limit = max_record_bytes_ == 0 ? SIZE_MAX : max_record_bytes_;
      std::string head;
      bool one_per_line = true;
      std::streambuf& in = *input_.rdbuf();
      while (head.size() <= limit) {
        const size_t start = head.size();
        bool newline = false;
        for (int c = in.sbumpc(); c != std::char_traits<char>::eof(); c = in.sbumpc()) {
          head.push_back(static_cast<char>(c));
          if (c == '\n') {
            newline = true;
            break;
          }
          if (head.size() > limit) break;
        }
        if (head.size() > limit) break;  // too long to sniff: NDJSON, whose reader skips the line
        std::string_view line = std::string_view(head).substr(start);
        if (newline) line.remove_suffix(1);
        if (line.find_first_not_of(" \t\r\xEF\xBB\xBF") == std::string_view::npos) {
          if (newline) continue;
          break;  // the end of the input
        }
        json::Document probe;
        json::ParseError ignored;
        one_per_line = json::parse(line, probe, ignored);
        break;
      }
      buffer_ = std::make_unique<PrefixedBuffer>(std::move(head), input_);
      stream_ = std::make_unique<std::istream>(buffer_.get());
      if (one_per_line) inner_ = std::make_unique<readers::ndjson::NdjsonReader>(*stream_);
      else inner_ = std::make_unique<readers::ndjson::JsonDocumentReader>(*stream_);
      inner_->setMaxRecordBytes(max_record_bytes_);
    }
    return inner_->next(record, issues);
  }

 private:
  std::istream& input_;
  std::unique_ptr<PrefixedBuffer> buffer_;
  std::unique_ptr<std::istream> stream_;
  std::unique_ptr<readers::RecordReader> inner_;
};

// What a run needs besides the options: its payer (the one named, else the spec's id) and time.
struct RunContext {
  RunContext(const CompiledSpec& spec, const MapOptions& options)
      : payer_id(options.payer_id.empty() ? spec.id : options.payer_id),
        payer(options.directory ? options.directory->payer(payer_id) : std::nullopt),
        now(options.now.empty() ? nowUtc() : options.now) {}
  const PayerInfo* payerInfo() const { return payer ? &*payer : nullptr; }

  std::string payer_id;
  std::optional<PayerInfo> payer;
  std::string now;
};

}  // namespace

Result<bool> SpecLibrary::mapRecord(const std::string& spec_id, const json::Value& record, const std::string& raw,
                                    const std::string& position, const MapOptions& options, MappedBundle& out,
                                    IssueList& issues) const {
  auto found = specs_.find(spec_id);
  if (found == specs_.end()) return Error{"unknown source spec '" + spec_id + "'"};
  const CompiledSpec& spec = *found->second;
  RunContext context(spec, options);
  Run run(spec, options, context.payer_id, context.payerInfo(), context.now);
  return run.map(record, raw, position, out, issues);
}

Result<MapSummary> SpecLibrary::mapSource(const std::string& spec_id, std::istream& input, const MapOptions& options,
                                          const BundleCallback& on_bundle, const RejectionCallback& on_rejection) const {
  auto found = specs_.find(spec_id);
  if (found == specs_.end()) return Error{"unknown source spec '" + spec_id + "'"};
  const CompiledSpec& spec = *found->second;
  RunContext context(spec, options);
  Run run(spec, options, context.payer_id, context.payerInfo(), context.now);

  std::unique_ptr<readers::RecordReader> reader;
  switch (spec.reader) {
    case ReaderKind::kCsv: reader = std::make_unique<readers::csv::CsvReader>(input); break;
    case ReaderKind::kNdjson: reader = std::make_unique<readers::ndjson::NdjsonReader>(input); break;
    case ReaderKind::kJson: reader = std::make_unique<readers::ndjson::JsonDocumentReader>(input); break;
    case ReaderKind::kX12: reader = std::make_unique<readers::x12::X12Reader>(input); break;
    case ReaderKind::kHl7v2: reader = std::make_unique<readers::hl7v2::Hl7v2Reader>(input); break;
    case ReaderKind::kJsonEvents: reader = std::make_unique<JsonEventsReader>(input); break;
  }
  reader->setMaxRecordBytes(options.max_record_bytes);  // readers skip an oversized record unheld

  MapSummary summary;
  auto reject = [&](IssueList issues, std::string raw, std::string position, bool fatal,
                    const readers::RecordFrame* frame = nullptr, std::string raw_sha256 = {}) {
    Rejection rejection{std::move(issues), std::move(raw), std::move(position), fatal};
    rejection.raw_sha256 = std::move(raw_sha256);
    if (frame != nullptr && rejection.raw_sha256.empty()) {
      rejection.replay_prefix = frame->prefix();
      rejection.replay_suffix = frame->suffix(rejection.raw);
    }
    ++summary.rejected;
    on_rejection(rejection);
  };
  const size_t max_record = options.max_record_bytes;
  // A record over maxRecordBytes, rejected whole: its first bytes and the digest of all.
  auto rejectOversized = [&](std::string raw, size_t total, std::string digest, std::string position) {
    IssueList issues;
    issues.atLocation(Severity::kError, "too-long", position,
                      position + ": the record is " + std::to_string(total) + " bytes, larger than maxRecordBytes (" +
                          std::to_string(max_record) + "); its first " + std::to_string(std::min(total, max_record)) +
                          " bytes are kept, SHA-256 of the whole " + digest);
    if (raw.size() > max_record) raw.resize(max_record);
    reject(std::move(issues), std::move(raw), std::move(position), false, nullptr, std::move(digest));
  };
  auto mapRecord = [&](const json::Value& record, const std::string& raw, const std::string& position,
                       const readers::RecordFrame* frame = nullptr) {
    ++summary.records;
    if (max_record > 0 && raw.size() > max_record) {
      rejectOversized(raw.substr(0, max_record), raw.size(), sha256Hex(raw), position);
      return;
    }
    MappedBundle mapped;
    IssueList issues;
    if (!run.map(record, raw, position, mapped, issues)) {
      reject(std::move(issues), raw, position, false, frame);
      return;
    }
    if (options.validator) {
      IssueList validation;
      options.validator->validate(mapped.bundle, ValidationRequest{}, validation);
      if (validation.hasErrors()) {
        reject(std::move(validation), raw, position, false, frame);
        return;
      }
    }
    ++summary.accepted;
    on_bundle(mapped);
  };

  // Grouping (CSV): consecutive rows with the same key become {"lines": [row, ...]}.
  // The rows' own documents stay alive while their group is mapped, so the group's "lines" array
  // takes their values without copying the strings. A row the reader rejects poisons its group
  // ("a bad line rejects its whole claim"): the group is rejected with every issue found.
  json::Document group;
  std::vector<std::unique_ptr<json::Document>> group_rows;
  std::string group_key, group_raw, group_position;
  IssueList group_issues;
  bool group_open = false;
  // A group past maxRecordBytes keeps its first bytes and a running digest, not its rows.
  size_t group_bytes = 0;
  std::unique_ptr<Sha256Stream> group_digest;
  auto addToGroup = [&](const std::string& raw) {
    group_bytes += raw.size();
    if (group_digest) {
      group_digest->update(raw);
      return;
    }
    if (max_record > 0 && group_bytes > max_record) {
      group_digest = std::make_unique<Sha256Stream>();
      group_digest->update(group_raw);
      group_digest->update(raw);
      group_raw.append(raw, 0, max_record - std::min(max_record, group_raw.size()));
      group = json::Document();  // the rows are not held any longer
      group.SetObject();
      group_rows.clear();
      return;
    }
    group_raw += raw;
  };
  auto flush = [&]() {
    if (!group_open) return;
    group_open = false;
    if (group_digest) {
      ++summary.records;
      rejectOversized(std::move(group_raw), group_bytes, group_digest->hex(), group_position);
      group_digest.reset();
      group_issues = IssueList();
      return;
    }
    if (group_issues.hasErrors()) {
      ++summary.records;
      reject(std::move(group_issues), std::move(group_raw), group_position, false);
      group_issues = IssueList();
      return;
    }
    mapRecord(group, group_raw, group_position);
  };
  auto startGroup = [&](const std::string& key, std::string position) {
    flush();
    group = json::Document();
    group.SetObject();
    group.AddMember("lines", json::Value(rapidjson::kArrayType), group.GetAllocator());
    group_rows.clear();
    group_raw.clear();
    group_bytes = 0;
    group_issues = IssueList();
    group_key = key;
    group_position = std::move(position);
    group_open = true;
  };
  size_t group_column = 0;
  // Header problems of a CSV spec: every column it names must be in the file.
  bool header_checked = spec.reader != ReaderKind::kCsv;

  while (true) {
    readers::SourceRecord record;
    IssueList issues;
    readers::ReadStatus status = reader->next(record, issues);
    if (status == readers::ReadStatus::kEnd) break;
    if (status == readers::ReadStatus::kFatal) {
      flush();
      ++summary.records;
      summary.fatal = true;
      reject(std::move(issues), std::move(record.raw), std::move(record.position), true);
      break;
    }
    if (!header_checked) {
      header_checked = true;
      const auto& header = static_cast<readers::csv::CsvReader&>(*reader).header();
      IssueList missing;
      for (const std::string& field : spec.fields) {
        std::string column = spec.group_by.empty() ? field : field.substr(8);  // "lines.*."
        if (spec.optional_columns.count(column)) continue;
        if (std::find(header.begin(), header.end(), column) == header.end()) {
          missing.atLocation(Severity::kFatal, "structure", "line 1", "line 1: the header has no column " + column);
        }
      }
      if (!missing.empty()) {
        ++summary.records;
        summary.fatal = true;
        reject(std::move(missing), std::string(), "line 1", true);
        break;
      }
      if (!spec.group_by.empty()) {
        group_column = static_cast<size_t>(std::find(header.begin(), header.end(), spec.group_by) - header.begin());
      }
    }
    if (status == readers::ReadStatus::kRejected && !record.raw_sha256.empty()) {  // over maxRecordBytes
      flush();
      ++summary.records;
      rejectOversized(std::move(record.raw), record.raw_total, std::move(record.raw_sha256), std::move(record.position));
      continue;
    }
    if (status == readers::ReadStatus::kRejected) {
      const auto* csv = spec.group_by.empty() ? nullptr : static_cast<readers::csv::CsvReader*>(reader.get());
      if (!csv || group_column >= csv->lastFields().size()) {
        flush();
        ++summary.records;
        reject(std::move(issues), std::move(record.raw), std::move(record.position), false, record.frame.get());
        continue;
      }
      std::string key = csv->lastFields()[group_column];
      if (!group_open || key != group_key) startGroup(key, record.position);
      if (!group_digest) group_issues.append(issues);
      addToGroup(record.raw);
      continue;
    }
    if (!spec.split_columns.empty()) splitColumns(spec, record.doc);
    if (spec.group_by.empty()) {
      mapRecord(record.doc, record.raw, record.position, record.frame.get());
      continue;
    }
    auto key_value = json::getString(record.doc, spec.group_by);
    std::string key = key_value ? std::string(*key_value) : std::string();
    if (!group_open || key != group_key) startGroup(key, record.position);
    addToGroup(record.raw);
    if (group_digest) continue;
    group_rows.push_back(std::make_unique<json::Document>(std::move(record.doc)));
    group["lines"].PushBack(static_cast<json::Value&>(*group_rows.back()), group.GetAllocator());
  }
  flush();
  return summary;
}

}  // namespace fhir::mappers::engine

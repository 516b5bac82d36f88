// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/hl7v2/hl7v2_reader.h"

#include <cctype>
#include <vector>

namespace fhir::mappers::readers::hl7v2 {
namespace {

struct Separators {
  char field = '|', component = '^', repetition = '~', escape = '\\', subcomponent = '&';
};

std::string unescape(std::string_view text, const Separators& separators) {
  if (text.find(separators.escape) == std::string_view::npos) return std::string(text);
  std::string out;
  for (size_t position = 0; position < text.size(); ++position) {
    char c = text[position];
    size_t close = c == separators.escape ? text.find(separators.escape, position + 1) : std::string_view::npos;
    if (close == std::string_view::npos) {
      out.push_back(c);
      continue;
    }
    std::string_view code = text.substr(position + 1, close - position - 1);
    if (code == "F") out.push_back(separators.field);
    else if (code == "S") out.push_back(separators.component);
    else if (code == "T") out.push_back(separators.subcomponent);
    else if (code == "R") out.push_back(separators.repetition);
    else if (code == "E") out.push_back(separators.escape);
    else out.append(text.substr(position, close - position + 1));  // \X..\, \.br\ etc. kept as sent
    position = close;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

json::Value component(std::string_view text, const Separators& separators, json::Allocator& allocator) {
  if (text.find(separators.subcomponent) == std::string_view::npos) {
    return json::makeString(unescape(text, separators), allocator);
  }
  json::Value parts(rapidjson::kArrayType);
  for (std::string_view part : split(text, separators.subcomponent)) {
    parts.PushBack(json::makeString(unescape(part, separators), allocator), allocator);
  }
  return parts;
}

json::Value repetition(std::string_view text, const Separators& separators, json::Allocator& allocator) {
  if (text.find(separators.component) == std::string_view::npos) return component(text, separators, allocator);
  json::Value parts(rapidjson::kArrayType);
  for (std::string_view part : split(text, separators.component)) parts.PushBack(component(part, separators, allocator), allocator);
  return parts;
}

json::Value fieldValue(std::string_view text, const Separators& separators, json::Allocator& allocator) {
  if (text.find(separators.repetition) == std::string_view::npos) return repetition(text, separators, allocator);
  json::Value list(rapidjson::kArrayType);
  for (std::string_view part : split(text, separators.repetition)) list.PushBack(repetition(part, separators, allocator), allocator);
  json::Value object(rapidjson::kObjectType);
  object.AddMember("repetitions", list, allocator);
  return object;
}

bool isSegmentId(std::string_view id) {
  if (id.size() != 3) return false;
  for (char c : id) {
    if (!std::isupper(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string text(const json::Value& segment, const char* field) {
  const json::Value* value = json::find(segment, field);
  if (!value) return std::string();
  if (json::isString(*value)) return std::string(json::stringView(*value));
  if (value->IsArray() && !value->Empty() && json::isString((*value)[0])) return std::string(json::stringView((*value)[0]));
  return std::string();
}

// Escapes `value` for an ER7 field with the default separators.
std::string escapeField(std::string_view value) {
  std::string out;
  for (char c : value) {
    switch (c) {
      case '|': out += "\\F\\"; break;
      case '^': out += "\\S\\"; break;
      case '&': out += "\\T\\"; break;
      case '~': out += "\\R\\"; break;
      case '\\': out += "\\E\\"; break;
      case '\r': case '\n': out.push_back(' '); break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool Hl7v2Reader::readSegment(std::string& segment) {
  while (true) {
    segment.clear();
    bool any = false;
    while (true) {
      int c = input_.get();
      if (c == -1) break;
      any = true;
      if (c == '\r' || c == '\n') break;
      segment.push_back(static_cast<char>(c));
    }
    if (!segment.empty()) return true;
    if (!any) return false;  // end of input; empty lines are skipped
  }
}

ReadStatus Hl7v2Reader::next(SourceRecord& record, IssueList& issues) {
  std::vector<std::string> segments;
  std::string segment;
  if (have_pending_) {
    segments.push_back(std::move(pending_));
    have_pending_ = false;
  }
  while (readSegment(segment)) {
    if (!segments.empty() && segment.rfind("MSH", 0) == 0) {
      pending_ = std::move(segment);
      have_pending_ = true;
      break;
    }
    segments.push_back(segment);
  }
  if (segments.empty()) return input_.failed() ? ReadStatus::kFatal : ReadStatus::kEnd;
  record.raw.clear();
  for (const std::string& line : segments) record.raw += line + "\r";
  record.position = "message starting at segment 1";
  record.doc = json::Document();
  record.doc.SetObject();
  json::Allocator& allocator = record.doc.GetAllocator();
  const std::string& msh = segments[0];
  if (msh.size() < 8 || msh.compare(0, 3, "MSH") != 0) {
    issues.atLocation(Severity::kError, "structure", "segment 1", "segment 1: a message starts with MSH");
    return ReadStatus::kRejected;
  }
  Separators separators;
  separators.field = msh[3];
  separators.component = msh[4];
  separators.repetition = msh[5];
  separators.escape = msh[6];
  separators.subcomponent = msh[7];
  // The delimiters split fields byte by byte: a byte of a multi-byte UTF-8 character as one would
  // cut characters in two (found by hl7v2_reader_fuzz: MSH-2 "^~\\" followed by U+06C3 made 0xDB
  // the subcomponent separator, and the fields invalid UTF-8), and two equal ones are ambiguous.
  // (An MSH-2 of three characters, "|^~\\|", has no subcomponent separator: MSH-1 again.)
  const bool no_subcomponent = msh[7] == msh[3];
  const std::string_view delimiters(msh.data() + 3, no_subcomponent ? 4 : 5);
  for (size_t i = 0; i < delimiters.size(); ++i) {
    const auto c = static_cast<unsigned char>(delimiters[i]);
    if (c < 0x21 || c > 0x7E || delimiters.find(delimiters[i]) != i) {
      issues.atLocation(Severity::kError, "structure", "segment 1 (MSH)",
                        "segment 1 (MSH): the field separator and encoding characters (MSH-1, MSH-2) must be five different "
                        "printable ASCII characters, e.g. |^~\\&");
      return ReadStatus::kRejected;
    }
  }
  record.doc.AddMember("@hl7", true, allocator);
  for (size_t index = 0; index < segments.size(); ++index) {
    std::vector<std::string_view> fields = split(segments[index], separators.field);
    std::string location = "segment " + std::to_string(index + 1);
    if (!isSegmentId(fields[0])) {
      issues.atLocation(Severity::kError, "structure", location,
                        location + ": '" + std::string(fields[0].substr(0, 10)) + "' is not a segment id");
      return ReadStatus::kRejected;
    }
    json::Value object(rapidjson::kObjectType);
    object.AddMember("@segment", json::Value(static_cast<uint64_t>(index + 1)), allocator);
    object.AddMember("@id", json::makeString(fields[0], allocator), allocator);
    object.AddMember("@hl7", true, allocator);
    bool is_msh = fields[0] == "MSH";
    if (is_msh) {
      object.AddMember("1", json::makeString(std::string(1, separators.field), allocator), allocator);
      object.AddMember("2", json::makeString(fields.size() > 1 ? fields[1] : std::string_view(), allocator), allocator);
    }
    for (size_t field = is_msh ? 2 : 1; field < fields.size(); ++field) {
      size_t number = is_msh ? field + 1 : field;
      object.AddMember(json::makeString(std::to_string(number), allocator), fieldValue(fields[field], separators, allocator),
                       allocator);
    }
    json::Value* list = json::find(record.doc, fields[0]);
    if (!list) {
      record.doc.AddMember(json::makeString(fields[0], allocator), json::Value(rapidjson::kArrayType), allocator);
      list = json::find(record.doc, fields[0]);
    }
    list->PushBack(object, allocator);
  }
  record.position = "message " + text(record.doc["MSH"][0], "10");
  return ReadStatus::kRecord;
}

std::string buildAck(const json::Value* message, const IssueList& issues, const std::string& timestamp,
                     const std::string& control_id) {
  std::string sending_app, sending_facility, receiving_app, receiving_facility, message_control;
  if (message) {
    if (const json::Value* msh = json::find(*message, "MSH"); msh && msh->IsArray() && !msh->Empty()) {
      sending_app = text((*msh)[0], "3");
      sending_facility = text((*msh)[0], "4");
      receiving_app = text((*msh)[0], "5");
      receiving_facility = text((*msh)[0], "6");
      message_control = text((*msh)[0], "10");
    }
  }
  const char* code = !message ? "AR" : issues.hasErrors() ? "AE" : "AA";
  std::string ack = "MSH|^~\\&|" + escapeField(receiving_app) + "|" + escapeField(receiving_facility) + "|" +
                    escapeField(sending_app) + "|" + escapeField(sending_facility) + "|" + timestamp +
                    "||ACK^I12^ACK|" + escapeField(control_id) + "|P|2.5.1\r";
  ack += std::string("MSA|") + code + "|" + escapeField(message_control) + "\r";
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    std::string location = issue.location.empty() ? std::string() : issue.location[0];
    ack += "ERR||" + escapeField(location) + "|207^Application internal error^HL70357|E||||" +
           escapeField(issue.diagnostics) + "\r";
  }
  return ack;
}

}  // namespace fhir::mappers::readers::hl7v2

// SPDX-License-Identifier: Apache-2.0
#include "mappers/engine/spec_json.h"

#include "conformance/json/string_problem.h"

#include <memory>
#include <string>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

namespace fhir::mappers::engine {
namespace {

// Forwards SAX events to the Document being built and notes where each object starts. The DOM
// keeps objects in the order their '{' appeared, so a pre-order walk pairs them up afterwards.
struct LineRecorder {
  json::Document& out;
  rapidjson::StringStream& stream;
  std::string_view text;
  std::vector<size_t>& object_lines;
  size_t scanned = 0;
  size_t line = 1;
  const char* string_problem = nullptr;

  size_t currentLine() {
    size_t offset = stream.Tell();
    for (; scanned < offset && scanned < text.size(); ++scanned) {
      if (text[scanned] == '\n') ++line;
    }
    return line;
  }
  bool Null() { return out.Null(); }
  bool Bool(bool b) { return out.Bool(b); }
  bool Int(int i) { return out.Int(i); }
  bool Uint(unsigned u) { return out.Uint(u); }
  bool Int64(int64_t i) { return out.Int64(i); }
  bool Uint64(uint64_t u) { return out.Uint64(u); }
  bool Double(double d) { return out.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return out.RawNumber(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return acceptable(s, n) && out.String(s, n, copy); }
  bool StartObject() {
    object_lines.push_back(currentLine());
    return out.StartObject();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return acceptable(s, n) && out.Key(s, n, copy); }
  // A NUL or an unpaired surrogate escape would make the spec's own output unparsable.
  bool acceptable(const char* s, rapidjson::SizeType n) {
    if (const char* problem = json::stringProblem(s, n)) {
      string_problem = problem;
      return false;
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType n) { return out.EndObject(n); }
  bool StartArray() { return out.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return out.EndArray(n); }
};

void assignLines(const json::Value& value, const std::vector<size_t>& object_lines, size_t& next,
                 std::unordered_map<const json::Value*, size_t>& lines) {
  if (value.IsObject()) {
    if (next < object_lines.size()) lines[&value] = object_lines[next];
    ++next;
    for (const auto& member : value.GetObject()) assignLines(member.value, object_lines, next, lines);
  } else if (value.IsArray()) {
    for (const json::Value& element : value.GetArray()) assignLines(element, object_lines, next, lines);
  }
}

}  // namespace

Result<std::unique_ptr<SpecDocument>> SpecDocument::parse(std::string_view text) {
  auto spec = std::make_unique<SpecDocument>();
  std::string copy(text);
  rapidjson::StringStream stream(copy.c_str());
  std::vector<size_t> object_lines;
  rapidjson::ParseResult result;
  const char* string_problem = nullptr;
  auto generator = [&](json::Document& handler) {
    LineRecorder recorder{handler, stream, copy, object_lines};
    rapidjson::Reader reader;
    result = reader.Parse<rapidjson::kParseCommentsFlag | rapidjson::kParseValidateEncodingFlag>(stream, recorder);
    string_problem = recorder.string_problem;
    return !result.IsError();
  };
  spec->doc_.Populate(generator);
  if (result.IsError()) {
    size_t line = 1, column = 1;
    for (size_t index = 0; index < result.Offset() && index < copy.size(); ++index) {
      if (copy[index] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    const std::string why = string_problem == nullptr ? std::string(rapidjson::GetParseError_En(result.Code()))
                            : std::string_view(string_problem) == "nul"
                                ? std::string("string contains a NUL character (\\u0000)")
                                : std::string("string contains an unpaired surrogate escape (\\uDC00-\\uDFFF)");
    return Error{"line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + why};
  }
  size_t next = 0;
  assignLines(spec->doc_, object_lines, next, spec->lines_);
  // A member given twice: the JSON parser refuses it (conformance/json), and here it would be
  // silently one of the two (found by spec_loader_fuzz: a rule with two "set" members).
  if (auto duplicate = json::findDuplicateKey(spec->doc_)) {
    return Error{"line " + std::to_string(spec->lineOf(*duplicate->object)) + ": the object has the member \"" +
                 std::string(duplicate->name->GetString(), duplicate->name->GetStringLength()) + "\" twice"};
  }
  return spec;
}

size_t SpecDocument::lineOf(const json::Value& object) const {
  auto found = lines_.find(&object);
  return found == lines_.end() ? 0 : found->second;
}

}  // namespace fhir::mappers::engine

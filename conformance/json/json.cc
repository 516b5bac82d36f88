// SPDX-License-Identifier: Apache-2.0
#include "conformance/json/json.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/itoa.h>
#include <rapidjson/reader.h>

namespace fhir::json {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseIterativeFlag;

// Forwards SAX events to the Document's own handler, tagging numbers and rejecting NUL.
class TaggingHandler {
 public:
  explicit TaggingHandler(Document& doc) : doc_(doc) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned i) { return doc_.Uint(i); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t i) { return doc_.Uint64(i); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* str, rapidjson::SizeType length, bool) {
    scratch_.assign(1, '\0');
    scratch_.append(str, length);
    return doc_.String(scratch_.data(), static_cast<rapidjson::SizeType>(scratch_.size()), true);
  }
  bool String(const char* str, rapidjson::SizeType length, bool) {
    if (std::memchr(str, '\0', length) != nullptr) {
      nul_in_string_ = true;
      return false;
    }
    return doc_.String(str, length, true);
  }
  bool StartObject() { return doc_.StartObject(); }
  bool Key(const char* str, rapidjson::SizeType length, bool copy) { return String(str, length, copy); }
  bool EndObject(rapidjson::SizeType count) { return doc_.EndObject(count); }
  bool StartArray() { return doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType count) { return doc_.EndArray(count); }

  bool nulInString() const { return nul_in_string_; }

 private:
  Document& doc_;
  std::string scratch_;
  bool nul_in_string_ = false;
};

struct Generator {
  std::string_view text;
  rapidjson::ParseResult result;
  bool nul_in_string = false;

  bool operator()(Document& doc) {
    rapidjson::Reader reader;
    rapidjson::MemoryStream stream(text.data(), text.size());
    TaggingHandler handler(doc);
    result = reader.Parse<kParseFlags>(stream, handler);
    nul_in_string = handler.nulInString();
    return !result.IsError();
  }
};

void lineAndColumn(std::string_view text, size_t offset, size_t& line, size_t& column) {
  line = 1;
  size_t line_start = 0;
  offset = std::min(offset, text.size());
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  column = offset - line_start + 1;
}

// Returns the first duplicated key found anywhere in the tree, or nullptr.
const Value* findDuplicateKey(const Value& value) {
  if (value.IsArray()) {
    for (const Value& item : value.GetArray()) {
      if (const Value* dup = findDuplicateKey(item)) return dup;
    }
    return nullptr;
  }
  if (!value.IsObject()) return nullptr;
  const rapidjson::SizeType count = value.MemberCount();
  auto begin = value.MemberBegin();
  if (count <= 16) {
    for (rapidjson::SizeType i = 1; i < count; ++i) {
      const Value& name = begin[i].name;
      for (rapidjson::SizeType j = 0; j < i; ++j) {
        const Value& other = begin[j].name;
        if (name.GetStringLength() == other.GetStringLength() &&
            std::memcmp(name.GetString(), other.GetString(), name.GetStringLength()) == 0) {
          return &name;
        }
      }
    }
  } else {
    std::vector<std::string_view> names;
    names.reserve(count);
    for (const auto& member : value.GetObject()) {
      names.emplace_back(member.name.GetString(), member.name.GetStringLength());
    }
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) {
      for (const auto& member : value.GetObject()) {
        if (std::string_view(member.name.GetString(), member.name.GetStringLength()) == *dup) {
          return &member.name;
        }
      }
    }
  }
  for (const auto& member : value.GetObject()) {
    if (const Value* dup = findDuplicateKey(member.value)) return dup;
  }
  return nullptr;
}

bool isTaggedNumber(const Value& value) {
  return value.IsString() && value.GetStringLength() > 0 && value.GetString()[0] == '\0';
}

void appendNative(const Value& value, std::string& out) {
  char buffer[32];
  char* end = nullptr;
  if (value.IsInt64()) {
    end = rapidjson::internal::i64toa(value.GetInt64(), buffer);
  } else if (value.IsUint64()) {
    end = rapidjson::internal::u64toa(value.GetUint64(), buffer);
  } else {
    end = rapidjson::internal::dtoa(value.GetDouble(), buffer);
  }
  out.append(buffer, end);
}

void write(const Value& value, std::string& out, int indent, int depth) {
  auto newline = [&](int level) {
    if (indent < 0) return;
    out.push_back('\n');
    out.append(static_cast<size_t>(level * indent), ' ');
  };
  switch (value.GetType()) {
    case rapidjson::kNullType:
      out.append("null");
      break;
    case rapidjson::kFalseType:
      out.append("false");
      break;
    case rapidjson::kTrueType:
      out.append("true");
      break;
    case rapidjson::kNumberType:
      appendNative(value, out);
      break;
    case rapidjson::kStringType:
      if (isTaggedNumber(value)) {
        out.append(value.GetString() + 1, value.GetStringLength() - 1);
      } else {
        out.push_back('"');
        appendEscaped(std::string_view(value.GetString(), value.GetStringLength()), out);
        out.push_back('"');
      }
      break;
    case rapidjson::kArrayType: {
      out.push_back('[');
      bool first = true;
      for (const Value& item : value.GetArray()) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        write(item, out, indent, depth + 1);
      }
      if (!first) newline(depth);
      out.push_back(']');
      break;
    }
    case rapidjson::kObjectType: {
      out.push_back('{');
      bool first = true;
      for (const auto& member : value.GetObject()) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        out.push_back('"');
        appendEscaped(std::string_view(member.name.GetString(), member.name.GetStringLength()), out);
        out.append(indent < 0 ? "\":" : "\": ");
        write(member.value, out, indent, depth + 1);
      }
      if (!first) newline(depth);
      out.push_back('}');
      break;
    }
  }
}

}  // namespace

std::string ParseError::describe() const {
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message;
}

bool parse(std::string_view text, Document& doc, ParseError& error) {
  Generator generator{text, {}, false};
  doc.Populate(generator);
  if (generator.result.IsError() || generator.nul_in_string) {
    error.offset = generator.result.Offset();
    error.message = generator.nul_in_string
                        ? std::string("string contains a NUL character (\\u0000)")
                        : std::string(rapidjson::GetParseError_En(generator.result.Code()));
    lineAndColumn(text, error.offset, error.line, error.column);
    doc.SetNull();
    return false;
  }
  if (const Value* dup = findDuplicateKey(doc)) {
    error.message = "duplicate key \"" + std::string(dup->GetString(), dup->GetStringLength()) + "\"";
    // Locate the second occurrence in the text for a useful position.
    std::string needle = "\"" + std::string(dup->GetString(), dup->GetStringLength()) + "\"";
    size_t first = text.find(needle);
    size_t second = first == std::string_view::npos ? first : text.find(needle, first + 1);
    error.offset = second == std::string_view::npos ? 0 : second;
    lineAndColumn(text, error.offset, error.line, error.column);
    doc.SetNull();
    return false;
  }
  return true;
}

Result<Document> parse(std::string_view text) {
  Document doc;
  ParseError error;
  if (!parse(text, doc, error)) return Error{error.describe()};
  return doc;
}

bool isNumber(const Value& value) { return value.IsNumber() || isTaggedNumber(value); }

std::string numberText(const Value& value) {
  if (isTaggedNumber(value)) return std::string(value.GetString() + 1, value.GetStringLength() - 1);
  if (value.IsNumber()) {
    std::string out;
    appendNative(value, out);
    return out;
  }
  return {};
}

Value makeNumber(std::string_view text, Allocator& allocator) {
  std::string tagged(1, '\0');
  tagged.append(text);
  Value value;
  value.SetString(tagged.data(), static_cast<rapidjson::SizeType>(tagged.size()), allocator);
  return value;
}

std::optional<double> numberAsDouble(const Value& value) {
  if (value.IsNumber()) return value.GetDouble();
  if (!isTaggedNumber(value)) return std::nullopt;
  std::string text(value.GetString() + 1, value.GetStringLength() - 1);
  char* end = nullptr;
  double result = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return result;
}

std::optional<int64_t> numberAsInt64(const Value& value) {
  if (value.IsInt64()) return value.GetInt64();
  if (value.IsNumber()) return std::nullopt;
  if (!isTaggedNumber(value)) return std::nullopt;
  std::string text(value.GetString() + 1, value.GetStringLength() - 1);
  if (text.find_first_of(".eE") != std::string::npos) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long result = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || end != text.c_str() + text.size()) return std::nullopt;
  return static_cast<int64_t>(result);
}

bool isString(const Value& value) { return value.IsString() && !isTaggedNumber(value); }

std::string_view stringView(const Value& value) {
  return std::string_view(value.GetString(), value.GetStringLength());
}

const Value* find(const Value& object, std::string_view key) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(
      Value(rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

Value* find(Value& object, std::string_view key) {
  return const_cast<Value*>(find(static_cast<const Value&>(object), key));
}

std::optional<std::string_view> getString(const Value& object, std::string_view key) {
  const Value* value = find(object, key);
  if (value == nullptr || !isString(*value)) return std::nullopt;
  return stringView(*value);
}

Value makeString(std::string_view text, Allocator& allocator) {
  Value value;
  value.SetString(text.data(), static_cast<rapidjson::SizeType>(text.size()), allocator);
  return value;
}

void addMember(Value& object, std::string_view key, Value value, Allocator& allocator) {
  object.AddMember(makeString(key, allocator), value, allocator);
}

void addString(Value& object, std::string_view key, std::string_view text, Allocator& allocator) {
  addMember(object, key, makeString(text, allocator), allocator);
}

void serializeTo(const Value& value, std::string& out) { write(value, out, -1, 0); }

std::string serialize(const Value& value) {
  std::string out;
  write(value, out, -1, 0);
  return out;
}

std::string serializePretty(const Value& value) {
  std::string out;
  write(value, out, 2, 0);
  return out;
}

void appendEscaped(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte != '"' && byte != '\\') continue;
    // Copy the run of characters that need no escaping in one go.
    out.append(text.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (byte) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        out.append("\\u00");
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xF]);
    }
  }
  out.append(text.data() + run_start, text.size() - run_start);
}

}  // namespace fhir::json

// SPDX-License-Identifier: Apache-2.0
#include "conformance/json/json.h"
#include "conformance/json/string_problem.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <rapidjson/error/en.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/itoa.h>
#include <rapidjson/reader.h>

namespace fhir::json {
namespace {

std::atomic<size_t> max_depth{kDefaultMaxDepth};

size_t maxDepth() { return max_depth.load(std::memory_order_relaxed); }

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
    if (const char* problem = stringProblem(str, length)) {
      (problem[0] == 'n' ? nul_in_string_ : surrogate_in_string_) = true;
      return false;
    }
    return doc_.String(str, length, true);
  }
  bool StartObject() { return enter() && doc_.StartObject(); }
  bool Key(const char* str, rapidjson::SizeType length, bool copy) { return String(str, length, copy); }
  bool EndObject(rapidjson::SizeType count) {
    --depth_;
    return doc_.EndObject(count);
  }
  bool StartArray() { return enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType count) {
    --depth_;
    return doc_.EndArray(count);
  }

  bool nulInString() const { return nul_in_string_; }
  bool tooDeep() const { return too_deep_; }
  bool surrogateInString() const { return surrogate_in_string_; }

 private:
  Document& doc_;
  // The parse is iterative (kParseIterativeFlag) and the Document's pool allocator frees
  // without recursion, but every walk over a parsed tree (writers, validator, FHIRPath, mapper)
  // recurses on its depth: the limit here bounds them all.
  bool enter() {
    if (++depth_ <= maxDepth()) return true;
    too_deep_ = true;
    return false;
  }

  std::string scratch_;
  bool nul_in_string_ = false;
  bool too_deep_ = false;
  size_t depth_ = 0;
  bool surrogate_in_string_ = false;
};

struct Generator {
  std::string_view text;
  rapidjson::ParseResult result;
  bool nul_in_string = false;
  bool too_deep = false;
  bool surrogate_in_string = false;

  bool operator()(Document& doc) {
    rapidjson::Reader reader;
    rapidjson::MemoryStream stream(text.data(), text.size());
    TaggingHandler handler(doc);
    result = reader.Parse<kParseFlags>(stream, handler);
    nul_in_string = handler.nulInString();
    too_deep = handler.tooDeep();
    surrogate_in_string = handler.surrogateInString();
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

// The first duplicated key among one object's own members, or nullptr.
const Value* duplicateMember(const Value& object) {
  const rapidjson::SizeType count = object.MemberCount();
  auto begin = object.MemberBegin();
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
    return nullptr;
  }
  std::vector<std::string_view> names;
  names.reserve(count);
  for (const auto& member : object.GetObject()) {
    names.emplace_back(member.name.GetString(), member.name.GetStringLength());
  }
  std::sort(names.begin(), names.end());
  auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup == names.end()) return nullptr;
  for (const auto& member : object.GetObject()) {
    if (std::string_view(member.name.GetString(), member.name.GetStringLength()) == *dup) return &member.name;
  }
  return nullptr;
}

// RFC 8259 number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool isNumberText(std::string_view text) {
  size_t at = 0;
  auto digits = [&] {
    size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    return at > start;
  };
  if (at < text.size() && text[at] == '-') ++at;
  if (at < text.size() && text[at] == '0') {
    ++at;
  } else if (!digits()) {
    return false;
  }
  if (at < text.size() && text[at] == '.') {
    ++at;
    if (!digits()) return false;
  }
  if (at < text.size() && (text[at] == 'e' || text[at] == 'E')) {
    ++at;
    if (at < text.size() && (text[at] == '+' || text[at] == '-')) ++at;
    if (!digits()) return false;
  }
  return at == text.size();
}

// A '\0' followed by number text. A string that merely starts with NUL (built in code from
// arbitrary bytes: parse() never yields one) stays a string and is written quoted.
bool isTaggedNumber(const Value& value) {
  return value.IsString() && value.GetStringLength() > 1 && value.GetString()[0] == '\0' &&
         isNumberText(std::string_view(value.GetString() + 1, value.GetStringLength() - 1));
}

// Output through a stack buffer: a document is written in many pieces of a few bytes, and
// std::string::push_back/append per piece cost more than copying the bytes.
class Output {
 public:
  explicit Output(std::string& out) : out_(out) {}
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  ~Output() { flush(); }

  void put(char c) {
    if (used_ == sizeof buffer_) flush();
    buffer_[used_++] = c;
  }
  void append(const char* data, size_t size) {
    if (size > sizeof buffer_ - used_) {
      flush();
      if (size > sizeof buffer_) {
        out_.append(data, size);
        return;
      }
    }
    std::memcpy(buffer_ + used_, data, size);
    used_ += size;
  }
  void append(std::string_view text) { append(text.data(), text.size()); }
  // Room for `size` bytes (size <= kRoomLimit) written through the pointer, then advance().
  static constexpr size_t kRoomLimit = 1024;
  char* room(size_t size) {
    if (size > sizeof buffer_ - used_) flush();
    return buffer_ + used_;
  }
  void advance(size_t size) { used_ += size; }
  void flush() {
    out_.append(buffer_, used_);
    used_ = 0;
  }

 private:
  char buffer_[8192];
  size_t used_ = 0;
  std::string& out_;
};

// True when none of the 8 bytes of `word` needs escaping (a control character, '"' or '\\').
// Bytes >= 0x80 (UTF-8 sequences) pass.
bool plainWord(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t quote = word ^ (kOnes * '"');
  const uint64_t backslash = word ^ (kOnes * '\\');
  const uint64_t flagged = ((word - kOnes * 0x20) & ~word) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
  return (flagged & kHigh) == 0;
}

// Whether a byte needs escaping: a control character, '"' or '\\'.
constexpr std::array<bool, 256> kNeedsEscape = [] {
  std::array<bool, 256> table{};
  for (int byte = 0; byte < 0x20; ++byte) table[byte] = true;
  table['"'] = table['\\'] = true;
  return table;
}();

void escapeTo(std::string_view text, Output& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* data = text.data();
  const size_t size = text.size();
  size_t run_start = 0;
  size_t i = 0;
  while (i < size) {
    if (i + 8 <= size) {
      uint64_t word;
      std::memcpy(&word, data + i, 8);
      if (plainWord(word)) {
        i += 8;
        continue;
      }
    } else if (size >= 8) {
      // Fewer than 8 bytes left: test the last 8 bytes of the text (those before `i` were
      // already passed as plain or escaped) instead of going byte by byte.
      uint64_t word;
      std::memcpy(&word, data + size - 8, 8);
      if (plainWord(word)) {
        i = size;
        break;
      }
    }
    const auto byte = static_cast<unsigned char>(data[i]);
    if (!kNeedsEscape[byte]) {
      ++i;
      continue;
    }
    // Copy the run of characters that need no escaping in one go.
    out.append(data + run_start, i - run_start);
    run_start = ++i;
    switch (byte) {
      case '"': out.append("\\\"", 2); break;
      case '\\': out.append("\\\\", 2); break;
      case '\n': out.append("\\n", 2); break;
      case '\r': out.append("\\r", 2); break;
      case '\t': out.append("\\t", 2); break;
      case '\b': out.append("\\b", 2); break;
      case '\f': out.append("\\f", 2); break;
      default: {
        const char escaped[6] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xF]};
        out.append(escaped, 6);
      }
    }
  }
  out.append(data + run_start, size - run_start);
}

// Copies `size` bytes from `from` to `to` (room for `size` bytes) when none needs escaping;
// false otherwise, having copied some of them. Reads and writes only inside both ranges, in
// overlapping 16-, 8- or 4-byte blocks.
bool copyPlain(const char* from, size_t size, char* to) {
#if defined(__SSE2__)
  if (size >= 16) {
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1F);
    auto block = [&](size_t at) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + at));
      const __m128i flagged = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)),
                                           _mm_cmpeq_epi8(_mm_max_epu8(bytes, control), control));  // byte <= 0x1F
      if (_mm_movemask_epi8(flagged) != 0) return false;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(to + at), bytes);
      return true;
    };
    size_t at = 0;
    for (; at + 16 <= size; at += 16) {
      if (!block(at)) return false;
    }
    return at == size || block(size - 16);
  }
#endif
  if (size >= 8) {
    size_t at = 0;
    for (; at + 8 <= size; at += 8) {
      uint64_t word;
      std::memcpy(&word, from + at, 8);
      if (!plainWord(word)) return false;
      std::memcpy(to + at, &word, 8);
    }
    if (at == size) return true;
    uint64_t last;
    std::memcpy(&last, from + size - 8, 8);
    if (!plainWord(last)) return false;
    std::memcpy(to + size - 8, &last, 8);
    return true;
  }
  if (size >= 4) {
    uint32_t first, last;
    std::memcpy(&first, from, 4);
    std::memcpy(&last, from + size - 4, 4);
    if (!plainWord(static_cast<uint64_t>(first) | static_cast<uint64_t>(last) << 32)) return false;
    std::memcpy(to, &first, 4);
    std::memcpy(to + size - 4, &last, 4);
    return true;
  }
  for (size_t at = 0; at < size; ++at) {
    if (kNeedsEscape[static_cast<unsigned char>(from[at])]) return false;
    to[at] = from[at];
  }
  return true;
}

// Writes `text` quoted and escaped, followed by `suffix` (a member name's ':', or nothing):
// text that needs no escaping (nearly all) is copied straight into the output buffer.
void writeQuoted(std::string_view text, Output& out, char suffix = 0) {
  const size_t size = text.size();
  if (size + 3 <= Output::kRoomLimit) {
    char* at = out.room(size + 3);
    if (copyPlain(text.data(), size, at + 1)) {
      at[0] = '"';
      at[size + 1] = '"';
      at[size + 2] = suffix;
      out.advance(size + (suffix ? 3 : 2));
      return;
    }
  }
  out.put('"');
  escapeTo(text, out);
  out.put('"');
  if (suffix) out.put(suffix);
}

inline std::string_view stringOf(const Value& value) {
  return std::string_view(value.GetString(), value.GetStringLength());
}

void appendNative(const Value& value, Output& out) {
  char buffer[32];
  char* end = nullptr;
  if (value.IsInt64()) {
    end = rapidjson::internal::i64toa(value.GetInt64(), buffer);
  } else if (value.IsUint64()) {
    end = rapidjson::internal::u64toa(value.GetUint64(), buffer);
  } else {
    end = rapidjson::internal::dtoa(value.GetDouble(), buffer);
  }
  out.append(buffer, static_cast<size_t>(end - buffer));
}

// A value that is neither an object nor an array.
void writeScalar(const Value& value, Output& out) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      out.append("null", 4);
      break;
    case rapidjson::kFalseType:
      out.append("false", 5);
      break;
    case rapidjson::kTrueType:
      out.append("true", 4);
      break;
    case rapidjson::kNumberType:
      appendNative(value, out);
      break;
    case rapidjson::kStringType: {
      std::string_view text = stringOf(value);
      if (isTaggedNumber(value)) {
        out.append(text.substr(1));
      } else {
        writeQuoted(text, out);
      }
      break;
    }
    case rapidjson::kArrayType:
    case rapidjson::kObjectType:
      break;
  }
}

// Indented by `indent` spaces per level.
void writePretty(const Value& value, Output& out, int indent, int depth) {
  auto newline = [&](int level) {
    out.put('\n');
    for (int space = 0; space < level * indent; ++space) out.put(' ');
  };
  if (value.IsArray()) {
    out.put('[');
    bool first = true;
    for (const Value& item : value.GetArray()) {
      if (!first) out.put(',');
      first = false;
      newline(depth + 1);
      writePretty(item, out, indent, depth + 1);
    }
    if (!first) newline(depth);
    out.put(']');
  } else if (value.IsObject()) {
    out.put('{');
    bool first = true;
    for (const auto& member : value.GetObject()) {
      if (!first) out.put(',');
      first = false;
      newline(depth + 1);
      writeQuoted(stringOf(member.name), out, ':');
      out.put(' ');
      writePretty(member.value, out, indent, depth + 1);
    }
    if (!first) newline(depth);
    out.put('}');
  } else {
    writeScalar(value, out);
  }
}

// Without indentation: the form documents are stored and sent in.
void writeCompact(const Value& value, Output& out) {
  if (value.IsArray()) {
    out.put('[');
    bool first = true;
    for (const Value& item : value.GetArray()) {
      if (!first) out.put(',');
      first = false;
      writeCompact(item, out);
    }
    out.put(']');
  } else if (value.IsObject()) {
    out.put('{');
    bool first = true;
    for (const auto& member : value.GetObject()) {
      if (!first) out.put(',');
      first = false;
      writeQuoted(stringOf(member.name), out, ':');
      writeCompact(member.value, out);
    }
    out.put('}');
  } else {
    writeScalar(value, out);
  }
}

void write(const Value& value, std::string& out, int indent) {
  Output output(out);
  if (indent < 0) {
    writeCompact(value, output);
  } else {
    writePretty(value, output, indent, 0);
  }
}

}  // namespace

std::optional<DuplicateKey> findDuplicateKey(const Value& root) {
  std::vector<const Value*> pending{&root};
  while (!pending.empty()) {
    const Value* value = pending.back();
    pending.pop_back();
    if (value->IsArray()) {
      for (rapidjson::SizeType index = value->Size(); index > 0; --index) {
        const Value& item = (*value)[index - 1];
        if (item.IsArray() || item.IsObject()) pending.push_back(&item);
      }
    } else if (value->IsObject()) {
      if (const Value* dup = duplicateMember(*value)) return DuplicateKey{value, dup};
      for (auto member = value->MemberEnd(); member != value->MemberBegin();) {
        --member;
        if (member->value.IsArray() || member->value.IsObject()) pending.push_back(&member->value);
      }
    }
  }
  return std::nullopt;
}

void setMaxDepth(size_t depth) { max_depth.store(depth == 0 ? kDefaultMaxDepth : depth, std::memory_order_relaxed); }

std::string ParseError::describe() const {
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message;
}

bool parse(std::string_view text, Document& doc, ParseError& error) {
  Generator generator{text, {}, false};
  doc.Populate(generator);
  if (generator.result.IsError() || generator.nul_in_string || generator.surrogate_in_string) {
    error.offset = generator.result.Offset();
    error.too_deep = generator.too_deep;
    if (generator.too_deep) {
      error.message = "nesting depth " + std::to_string(maxDepth() + 1) + " exceeds maxJsonDepth (" +
                      std::to_string(maxDepth()) + ")";
    } else {
      error.message = generator.nul_in_string ? std::string("string contains a NUL character (\\u0000)")
                      : generator.surrogate_in_string
                          ? std::string("string contains an unpaired surrogate escape (\\uDC00-\\uDFFF)")
                          : std::string(rapidjson::GetParseError_En(generator.result.Code()));
    }
    lineAndColumn(text, error.offset, error.line, error.column);
    doc.SetNull();
    return false;
  }
  if (auto duplicate = findDuplicateKey(doc)) {
    const Value* dup = duplicate->name;
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
    {
      Output output(out);
      appendNative(value, output);
    }
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
  // A linear scan like FindMember, comparing length and first byte before the bytes.
  if (key.empty()) {
    for (const auto& member : object.GetObject()) {
      if (member.name.GetStringLength() == 0) return &member.value;
    }
    return nullptr;
  }
  const auto length = static_cast<rapidjson::SizeType>(key.size());
  for (const auto& member : object.GetObject()) {
    if (member.name.GetStringLength() != length) continue;
    const char* name = member.name.GetString();
    if (name[0] == key[0] && std::memcmp(name, key.data(), key.size()) == 0) return &member.value;
  }
  return nullptr;
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

Value constantString(std::string_view text) {
  return Value(rapidjson::StringRef(text.data(), static_cast<rapidjson::SizeType>(text.size())));
}

void addMember(Value& object, std::string_view key, Value value, Allocator& allocator) {
  object.AddMember(makeString(key, allocator), value, allocator);
}

void addString(Value& object, std::string_view key, std::string_view text, Allocator& allocator) {
  addMember(object, key, makeString(text, allocator), allocator);
}

void serializeTo(const Value& value, std::string& out) { write(value, out, -1); }

std::string serialize(const Value& value) {
  std::string out;
  write(value, out, -1);
  return out;
}

std::string serializePretty(const Value& value) {
  std::string out;
  write(value, out, 2);
  return out;
}

const char* stringProblem(const char* text, size_t length) {
  if (std::memchr(text, '\0', length) != nullptr) return "nul";
  const char* end = text + length;
  for (const char* at = text; (at = static_cast<const char*>(std::memchr(at, 0xED, static_cast<size_t>(end - at)))) != nullptr;
       ++at) {
    if (at + 1 < end && (static_cast<unsigned char>(at[1]) & 0xE0) == 0xA0) return "surrogate";
  }
  return nullptr;
}

std::optional<size_t> invalidUtf8Offset(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  size_t at = 0;
  while (at < size) {
    const unsigned char lead = bytes[at];
    if (lead < 0x80) {
      ++at;
      continue;
    }
    size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;  // the allowed range of the second byte (RFC 3629 table)
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return at;
    }
    if (at + length > size) return at;
    if (bytes[at + 1] < low || bytes[at + 1] > high) return at;
    for (size_t next = 2; next < length; ++next) {
      if (bytes[at + next] < 0x80 || bytes[at + next] > 0xBF) return at;
    }
    at += length;
  }
  return std::nullopt;
}

void appendEscaped(std::string_view text, std::string& out) {
  Output output(out);
  escapeTo(text, output);
}

}  // namespace fhir::json

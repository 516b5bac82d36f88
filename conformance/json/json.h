// SPDX-License-Identifier: Apache-2.0
#pragma once

// FHIR JSON on RapidJSON.
//
// Every JSON document in the project goes through parse() and serialize() here, because FHIR
// needs three things plain RapidJSON does not give:
//  * Numbers keep their exact text (`1.50` is not `1.5`; integers may exceed a double). A JSON
//    number is stored as a RapidJSON *string* value whose first byte is '\0' followed by the raw
//    number text. Use isNumber()/numberText()/makeNumber(); never GetString() on a number.
//    Plain RapidJSON IsNumber() values (built by code) are accepted everywhere as numbers too.
//  * Duplicate object keys are an error (RapidJSON accepts them silently).
//  * Strings are valid UTF-8 and contain no NUL, which is what makes the '\0' tag unambiguous.
//
// Values built in code may use ordinary RapidJSON numbers (SetInt64, SetDouble); serialize()
// writes both kinds correctly. Do not use rapidjson::Writer on documents directly.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "conformance/common/result.h"

namespace fhir::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;
using Allocator = rapidjson::Document::AllocatorType;

struct ParseError {
  std::string message;  // e.g. "missing a comma or '}' after an object member"
  size_t offset = 0;    // byte offset into the text
  size_t line = 0;      // 1-based
  size_t column = 0;    // 1-based, in bytes
  bool too_deep = false;  // nested deeper than the maximum depth (setMaxDepth)
  std::string describe() const;  // "line 3, column 17: <message>"
};

// Parses `text` into `doc`. On failure returns false and fills `error`. Duplicate keys, NUL in
// strings, invalid UTF-8 and nesting deeper than the process-wide maximum depth (objects and
// arrays counted; "nesting depth N exceeds maxJsonDepth (M)") are parse errors.
bool parse(std::string_view text, Document& doc, ParseError& error);

// The first object (in document order, each before its members' values) with a member name given
// twice, and that name; nullopt when none. Iterative: the depth costs heap, not stack. parse()
// refuses such documents; readers that parse otherwise (JSON with comments) check with it.
struct DuplicateKey {
  const Value* object;
  const Value* name;
};
std::optional<DuplicateKey> findDuplicateKey(const Value& root);

// The maximum nesting depth parse() accepts (configuration `limits.maxJsonDepth`; set once at
// start-up, 0 restores the default). Every recursive walk over a parsed document is bounded by it.
constexpr size_t kDefaultMaxDepth = 100;
void setMaxDepth(size_t depth);

// Convenience wrapper: Error message is ParseError::describe().
Result<Document> parse(std::string_view text);

// --- numbers -------------------------------------------------------------------------------
bool isNumber(const Value& value);
// Raw text of a number value ("1.50"). For RapidJSON-native numbers, their canonical text.
std::string numberText(const Value& value);
// A number value keeping `text` exactly. `text` must be a valid JSON number.
Value makeNumber(std::string_view text, Allocator& allocator);
// Numeric value of a number (parsed from the raw text); nullopt if not a number.
std::optional<double> numberAsDouble(const Value& value);
// Integer value when the number is an integer in int64 range (no fraction or exponent).
std::optional<int64_t> numberAsInt64(const Value& value);

// --- strings ---------------------------------------------------------------------------------
// A genuine JSON string (not a tagged number).
bool isString(const Value& value);
std::string_view stringView(const Value& value);  // precondition: isString(value)

// Member lookup that returns nullptr when absent (no assert).
const Value* find(const Value& object, std::string_view key);
Value* find(Value& object, std::string_view key);
// String member or nullopt (absent, or not a string).
std::optional<std::string_view> getString(const Value& object, std::string_view key);

// Value helpers for building documents.
Value makeString(std::string_view text, Allocator& allocator);
// A string value that refers to `text` without copying it: `text` must outlive the value and
// every copy of it (RapidJSON copies such strings by reference), e.g. a literal or a string kept
// for the life of the process.
Value constantString(std::string_view text);
void addMember(Value& object, std::string_view key, Value value, Allocator& allocator);
void addString(Value& object, std::string_view key, std::string_view text, Allocator& allocator);

// --- output ----------------------------------------------------------------------------------
std::string serialize(const Value& value);
std::string serializePretty(const Value& value);
void serializeTo(const Value& value, std::string& out);

// The byte offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or nullopt when all of `text` is.
std::optional<size_t> invalidUtf8Offset(std::string_view text);

// JSON string escaping for hand-written output (no surrounding quotes).
void appendEscaped(std::string_view text, std::string& out);

}  // namespace fhir::json

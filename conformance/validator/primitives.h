// SPDX-License-Identifier: Apache-2.0
#pragma once

// FHIR R4 primitive types: the JSON kind each one travels as, and the lexical rules of its value
// (the regexes of the R4 primitive StructureDefinitions, written out by hand so that checking
// costs no regex engine, plus the integer ranges and date validity).

#include <string>
#include <string_view>

#include "conformance/json/json.h"

namespace fhir::validator {

enum class JsonKind { kString, kNumber, kBoolean };

// True for the FHIR primitive type names ("string", "dateTime", "positiveInt", "xhtml" ...).
bool isPrimitiveType(std::string_view type);

// The JSON kind a primitive of `type` must have.
JsonKind jsonKindOf(std::string_view type);

// Checks `value` (a non-null JSON value) against primitive `type`. On failure returns false and
// sets `message` (human text) and `code` (IssueType: "structure" for a wrong JSON kind, "invalid"
// for a bad lexical form or range).
bool checkPrimitive(std::string_view type, const json::Value& value, std::string& message,
                    std::string& code);

// Lexical checks on their own, for reuse (e.g. Bundle.entry.fullUrl, ids).
bool isValidId(std::string_view text);
bool isValidDate(std::string_view text);
bool isValidDateTime(std::string_view text, bool& missing_offset);
bool isValidInstant(std::string_view text);
bool isValidTime(std::string_view text);
bool isValidBase64(std::string_view text);

// UCUM units we convert between (length, mass, time, volume): the factor to the dimension's base
// unit and a dimension letter. False for other units.
bool ucumFactor(std::string_view code, double& factor, char& dimension);

// Narrative checks (txt-1, txt-2), implemented in instance_walker.cc.
bool narrativeIsSafe(std::string_view div);
bool narrativeHasContent(std::string_view div);

// True when `text` holds something shaped like an HTML start tag: `<`, a name, attributes
// `name="value"`, optional `/`, `>` (security checks on string values).
bool containsHtmlTag(std::string_view text);
// True when markdown `text` holds an unescaped `<` starting a tag (`<name` followed by space, `/`
// or `>`, or `</name`); backslash-escaped `\<` and autolinks (`<http://..>`) are not tags.
bool markdownContainsHtmlTag(std::string_view text);

// True when absolute URL `text` has an RFC 2606 example host (example.org/.com/.net or a
// subdomain of one).
bool isExampleUrl(std::string_view text);

// Decoded byte length of base64 text (whitespace ignored).
size_t base64DecodedLength(std::string_view text);

}  // namespace fhir::validator

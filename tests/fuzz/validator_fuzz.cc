// SPDX-License-Identifier: Apache-2.0
// The validator (conformance/validator) on a fixed profile set: R4 core plus the bundled
// alignment and subscriptions-backport packages, as the gateway loads them. Two kinds of input:
//  * JSON text (it starts with '{', '[', '"', a digit, '-' or whitespace): validateText as is
//    (syntax, duplicate keys, encoding, then the resource against its type and the profiles it
//    declares in meta.profile);
//  * anything else: the first byte picks one primitive element of a small resource (kPrimitives,
//    one per FHIR primitive type), and the rest of the input is that element's value, as a JSON
//    string (escaped here, so that it always parses) or, for the JSON number and boolean types, as
//    raw text. Whole resources rarely mutate into interesting primitive values (a date, a code
//    with inner whitespace, a uuid); this puts the fuzzer on the primitive checks directly.
#include <iterator>
#include <string>

#include "conformance/validator/validator.h"
#include "tests/fuzz/fuzz_support.h"
#include "gateway_paths.h"

namespace {

const fhir::Validator& validator() {
  static const fhir::ValidatorPtr* validator = [] {
    const std::string profiles = GATEWAY_PROFILES_DIR;
    fhir::ValidatorOptions options;
    options.core_package_dir = profiles + "/r4-core/package";
    options.extra_paths = {profiles + "/subscriptions-backport/package", profiles + "/alignment/package"};
    auto created = fhir::createValidator(options);
    if (!created.ok()) fhir::fuzz::fail("cannot load the validator's definitions");
    return new fhir::ValidatorPtr(std::move(*created));
  }();
  return **validator;
}

struct Primitive {
  const char* before;  // the resource up to the value
  const char* after;   // and after it
  bool quoted;         // a JSON string (else raw text: numbers, booleans)
};
// resourceType and the other required members set, so that the value is what is checked.
constexpr Primitive kPrimitives[] = {
    {R"({"resourceType":"Patient","gender":)", "}", true},                                        // code
    {R"({"resourceType":"Patient","id":)", "}", true},                                            // id
    {R"({"resourceType":"Patient","birthDate":)", "}", true},                                     // date
    {R"({"resourceType":"Patient","deceasedDateTime":)", "}", true},                              // dateTime
    {R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":)", "}", true},  // instant
    {R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":)", "}", true},  // time
    {R"({"resourceType":"Patient","implicitRules":)", "}", true},                                 // uri
    {R"({"resourceType":"Patient","meta":{"profile":[)", "]}}", true},                            // canonical
    {R"({"resourceType":"Patient","identifier":[{"system":"urn:ietf:rfc:3986","value":)", "}]}", true},  // string
    {R"({"resourceType":"Patient","photo":[{"data":)", "}]}", true},                              // base64Binary
    {R"({"resourceType":"Patient","contact":[{"telecom":[{"system":"phone","value":"1","rank":)", "}]}]}", false},  // positiveInt
    {R"({"resourceType":"Patient","multipleBirthInteger":)", "}", false},                         // integer
    {R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":)", "}}", false},  // decimal
    {R"({"resourceType":"Patient","active":)", "}", false},                                       // boolean
    {R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":)", "}]}}", true},  // code in a Coding
    {R"({"resourceType":"Patient","text":{"status":"generated","div":)", "}}", true},             // xhtml
};

bool isJsonStart(uint8_t byte) {
  return byte == '{' || byte == '[' || byte == '"' || byte == '-' || (byte >= '0' && byte <= '9') || byte == ' ' ||
         byte == '\t' || byte == '\r' || byte == '\n';
}

// `value` as a JSON string: quote, backslash and control characters escaped, other bytes as they are
// (invalid UTF-8 stays invalid: the validator reports it).
std::string jsonString(std::string_view value) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      out += "\\u00";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)validator();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fhir::IssueList issues;
  if (size > 0 && !isJsonStart(data[0])) {
    const Primitive& primitive = kPrimitives[data[0] % std::size(kPrimitives)];
    const std::string_view value = fhir::fuzz::view(data + 1, size - 1);
    const std::string text = primitive.before + (primitive.quoted ? jsonString(value) : std::string(value)) + primitive.after;
    validator().validateText(text, fhir::ValidationRequest{}, issues);
    (void)fhir::toOperationOutcomeJson(issues);
    return 0;
  }
  validator().validateText(fhir::fuzz::view(data, size), fhir::ValidationRequest{}, issues);
  (void)fhir::toOperationOutcomeJson(issues);
  return 0;
}

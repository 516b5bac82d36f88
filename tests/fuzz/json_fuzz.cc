// SPDX-License-Identifier: Apache-2.0
// The JSON parser (conformance/json): parse, and what parses serializes and parses back the same.
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fhir::json::Document doc;
  fhir::json::ParseError error;
  if (fhir::json::parse(fhir::fuzz::view(data, size), doc, error)) {
    fhir::fuzz::checkRoundTrip(doc);
    (void)fhir::json::serializePretty(doc);
  } else {
    if (error.message.empty()) fhir::fuzz::fail("a parse error without a message");
    if (error.offset > size) fhir::fuzz::fail("a parse error offset past the end of the text");
    (void)error.describe();
  }
  return 0;
}

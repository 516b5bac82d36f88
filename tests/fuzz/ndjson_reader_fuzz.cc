// SPDX-License-Identifier: Apache-2.0
// The NDJSON source reader and the single-document JSON reader (mappers/readers/ndjson): every
// record of any byte stream, to its end. Inputs of odd length are read with maxRecordBytes 1024
// (longer lines are skipped unheld, issue 14), even ones without a limit.
#include <sstream>

#include "mappers/readers/ndjson/ndjson_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(fhir::fuzz::view(data, size));
  {
    std::istringstream stream(text);
    fhir::mappers::readers::ndjson::NdjsonReader reader(stream);
    if (size % 2 == 1) reader.setMaxRecordBytes(1024);
    fhir::fuzz::drain(reader, size + 2, true);
  }
  {
    std::istringstream stream(text);
    fhir::mappers::readers::ndjson::JsonDocumentReader reader(stream);
    fhir::fuzz::drain(reader, 3, true);
  }
  return 0;
}

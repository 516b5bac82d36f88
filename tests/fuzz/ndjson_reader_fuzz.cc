// SPDX-License-Identifier: Apache-2.0
// The NDJSON source reader and the single-document JSON reader (mappers/readers/ndjson): every
// record of any byte stream, to its end. Inputs of odd length are read with maxRecordBytes 1024
// by both (longer lines, or a longer document, are skipped unheld, issue 14), even ones without a
// limit.
#include <sstream>

#include "mappers/readers/ndjson/ndjson_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(fhir::fuzz::view(data, size));
  const size_t limit = size % 2 == 1 ? 1024 : 0;
  {
    std::istringstream stream(text);
    fhir::mappers::readers::ndjson::NdjsonReader reader(stream);
    reader.setMaxRecordBytes(limit);
    fhir::fuzz::drain(reader, size + 2, true, limit);
  }
  {
    std::istringstream stream(text);
    fhir::mappers::readers::ndjson::JsonDocumentReader reader(stream);
    reader.setMaxRecordBytes(limit);
    fhir::fuzz::drain(reader, 3, true, limit);
  }
  return 0;
}

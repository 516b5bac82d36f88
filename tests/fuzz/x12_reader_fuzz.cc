// SPDX-License-Identifier: Apache-2.0
// The x12 source reader (mappers/readers/x12): every record of any byte stream, to its end.
// Inputs of odd length are read with maxRecordBytes 1024 (claims, loops and segments past it are
// skipped unheld, issue 14; no record holds more), even ones without a limit.
#include <sstream>

#include "mappers/readers/x12/x12_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream stream(std::string(fhir::fuzz::view(data, size)));
  fhir::mappers::readers::x12::X12Reader reader(stream);
  const size_t limit = size % 2 == 1 ? 1024 : 0;
  reader.setMaxRecordBytes(limit);
  fhir::fuzz::drain(reader, size + 2, true, limit);
  return 0;
}

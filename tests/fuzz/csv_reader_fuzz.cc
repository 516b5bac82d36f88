// SPDX-License-Identifier: Apache-2.0
// The csv source reader (mappers/readers/csv): every record of any byte stream, to its end.
#include <sstream>

#include "mappers/readers/csv/csv_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream stream(std::string(fhir::fuzz::view(data, size)));
  fhir::mappers::readers::csv::CsvReader reader(stream);
  fhir::fuzz::drain(reader, size + 2, true);
  return 0;
}

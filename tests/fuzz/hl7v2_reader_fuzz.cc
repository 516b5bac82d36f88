// SPDX-License-Identifier: Apache-2.0
// The HL7 v2 source reader (mappers/readers/hl7v2): every message of any byte stream, to its end,
// and the ACK built for each (accepted or rejected).
#include <sstream>

#include "mappers/readers/hl7v2/hl7v2_reader.h"
#include "tests/fuzz/fuzz_support.h"

namespace readers = fhir::mappers::readers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream stream(std::string(fhir::fuzz::view(data, size)));
  readers::hl7v2::Hl7v2Reader reader(stream);
  for (size_t calls = 0; calls < size + 2; ++calls) {
    readers::SourceRecord record;
    fhir::IssueList issues;
    const readers::ReadStatus status = reader.next(record, issues);
    if (status == readers::ReadStatus::kEnd || status == readers::ReadStatus::kFatal) return 0;
    if (status == readers::ReadStatus::kRecord) {
      if (!record.doc.IsObject()) fhir::fuzz::fail("a message that is not a JSON object");
      if (fhir::fuzz::jsonText(fhir::fuzz::view(data, size))) fhir::fuzz::checkRoundTrip(record.doc);
      (void)readers::hl7v2::buildAck(&record.doc, issues, "20261203090000", "ACK1");
    } else {
      if (!issues.hasErrors()) fhir::fuzz::fail("a rejected message without an error issue");
      (void)readers::hl7v2::buildAck(record.doc.IsObject() ? &record.doc : nullptr, issues, "20261203090000", "ACK1");
    }
  }
  fhir::fuzz::fail("the reader did not reach the end of its input");
}

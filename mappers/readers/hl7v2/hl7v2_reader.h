// SPDX-License-Identifier: Apache-2.0
#pragma once

// HL7 v2.5.1 ER7 messages (REF^I12 / RRI^I12 referrals, contracts/econsult-event.md), one record
// per message; a stream may hold several messages, each starting with MSH. Segments end with CR
// (LF and CRLF tolerated). Separators come from MSH-1 and MSH-2. A message becomes
//   {"@hl7": true, "MSH": [seg], "PID": [seg], "PRD": [seg, seg], ...}
// every segment id mapping to the list of its segments in order, and a segment to
//   {"@segment": N, "@id": "PID", "@hl7": true, "1": field, "2": field, ...}
// with N counted from MSH = 1 and fields numbered as HL7 does (MSH-1 is the field separator,
// MSH-2 the encoding characters). A field is a string; with components, an array of them (a
// component with subcomponents is an array again); with repetitions, {"repetitions": [...]}.
// Escapes (\F\ \S\ \T\ \R\ \E\) are resolved. Locations read `segment 3 (PID), field 5`.
// A message that does not start with MSH, or a segment id that is not three letters/digits, is
// rejected; reading goes on with the next MSH.

#include <string>

#include "conformance/outcome/outcome.h"
#include "mappers/readers/reader.h"

namespace fhir::mappers::readers::hl7v2 {

class Hl7v2Reader final : public RecordReader {
 public:
  explicit Hl7v2Reader(std::istream& stream) : input_(stream) {}

  // RecordReader
  ReadStatus next(SourceRecord& record, IssueList& issues) override;

 private:
  bool readSegment(std::string& segment);
  BufferedInput input_;
  std::string pending_;  // an MSH read ahead that starts the next message
  bool have_pending_ = false;
};

// The ER7 acknowledgement of `message` (a record from Hl7v2Reader, or null when the message could
// not be read): MSA-1 `AA` when `issues` has no errors, else `AE` (or `AR` when `message` is
// null) with one ERR segment per error (ERR-2 the location, ERR-3 code 207, ERR-4 E, ERR-8 the
// diagnostics). `timestamp` is MSH-7 (YYYYMMDDHHMMSS±ZZZZ), `control_id` MSH-10 of the ACK.
std::string buildAck(const json::Value* message, const IssueList& issues, const std::string& timestamp,
                     const std::string& control_id);

}  // namespace fhir::mappers::readers::hl7v2

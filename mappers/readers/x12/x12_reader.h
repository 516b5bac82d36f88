// SPDX-License-Identifier: Apache-2.0
#pragma once

// ASC X12 837 Professional (005010X222A1), streamed claim by claim (contracts/payer-formats.md).
//
// Separators come from the ISA (0-based byte offsets: element 3, repetition 82, component 104,
// segment terminator 105); line breaks and spaces after a terminator are skipped. Each claim
// (loop 2300 with its 2400 service lines) becomes one record:
//   {"transaction": {"ST": seg, "BHT": seg},
//    "billingProvider": {"HL", "PRV", "NM1", "N3", "N4", "REF": [..]},          // 2000A/2010AA
//    "subscriber": {"HL", "SBR", "NM1", "N3", "N4", "DMG", "REF": [..]},        // 2000B/2010BA
//    "payer": {"NM1", "N3", "N4", "REF": [..]},                                  // 2010BB
//    "patient": {"HL", "PAT", "NM1", "N3", "N4", "DMG"},  // 2000C/2010CA, or the subscriber's
//    "subscriberIsPatient": true|false,
//    "claim": {"CLM", "HI": [..], "DTP": [..], "REF": [..],
//              "renderingProvider": {"NM1", "PRV"}},                             // 2300/2310B
//    "lines": [{"LX", "SV1", "DTP": [..], "REF": [..]}]}                         // 2400
// The loop contexts (transaction, billingProvider, subscriber, payer, patient) are built once per
// loop and shared by its claims' records: read-only views kept alive by SourceRecord::shared (a
// context changed after a record was passed on is copied first), which also holds the memory the
// record's document allocates from. Records must not be modified.
// A claim's record (accepted or rejected) carries SourceRecord::frame: the transaction set's
// envelope and header (the ISA and GS as read, ST, and the segments before the first HL: BHT,
// 1000A, 1000B), shared by its claims. prefix() + raw + suffix(raw) is an interchange of that one
// claim (SE counting its segments, GE and IEA counting one, the original control numbers), which
// reads back as one record with the same raw: how a quarantined claim is replayed alone.
// A segment is {"@segment": N, "@id": "SV1", "01": "...", "02": [component, ...], ...}: N counts
// from ST = 1 within the transaction set; an element holding component separators is an array
// of its components; empty elements are "".
//
// Envelope checks: ISA/IEA control numbers and the IEA group count, GS/GE control numbers and
// the GE transaction count, ST/SE control numbers and the SE segment count. A failed check is a
// rejected record whose location names the segment and element (`segment 36 (SE), element 1`;
// envelope segments outside a transaction set are numbered within the interchange:
// `interchange segment 40 (GE), element 1`). Claims of a transaction set are passed on as soon as
// they are complete, so a bad SE count is reported after that set's claims (memory stays
// constant however large the set). A subscriber or patient loop without a claim, a claim without
// service lines, and segments out of their loop are rejected records. An ISA that is not 106
// bytes with the element separator at every fixed position is fatal.
//
// maxRecordBytes (RecordReader::setMaxRecordBytes): a claim whose bytes (its billing provider,
// subscriber and patient loops and loop 2300 with its 2400s, as in `raw`) grow past it, by one
// huge segment or element or by many segments, is not held: its first bytes are kept, all of it
// is hashed (SourceRecord::raw_sha256, raw_total), and it is one rejected record ("too-long") at
// the claim's CLM when the claim ends; the next claim is read as usual. A segment past it outside
// a claim (or one that starts a loop or ends the transaction set) is such a record on its own,
// at that segment, and is otherwise skipped. No segment is held beyond maxRecordBytes bytes.
// A loop whose bytes grow past it while no claim is open (a billing provider, subscriber or
// patient loop of very many segments: its bytes, with those of the loops above it, begin every
// claim of it) is not held either: from there on it is hashed with its child loops and their
// claims until an HL of its level or a higher one (or an envelope segment), and it is one rejected
// record ("too-long") at its HL, its first bytes being those of the loops above it, then its own.
// A transaction set header (ST up to the first HL) past it is such a record at the ST; the set's
// claims then have no frame. No loop context grows beyond maxRecordBytes bytes.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "mappers/readers/reader.h"

namespace fhir::mappers::readers::x12 {

class X12Reader final : public RecordReader {
 public:
  explicit X12Reader(std::istream& stream);
  ~X12Reader() override;

  // RecordReader
  ReadStatus next(SourceRecord& record, IssueList& issues) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace fhir::mappers::readers::x12

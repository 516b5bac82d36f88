// SPDX-License-Identifier: Apache-2.0
#include "mappers/readers/x12/x12_reader.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <initializer_list>

#include "conformance/common/ids.h"
#include "mappers/readers/x12/x12_json.h"
#include "mappers/readers/x12/x12_records.h"
#include "mappers/readers/x12/x12_segments.h"

namespace fhir::mappers::readers::x12 {
namespace {

using detail::copyString;
using detail::deepCopy;
using detail::elementName;
using detail::endsClaim;
using detail::isEnvelope;
using detail::KeptStack;
using detail::kBlockBytes;
using detail::idCode;
using detail::isCode;
using detail::isSegmentId;
using detail::KeptSegment;
using detail::kKeptSegments;
using detail::markSeparators;
using detail::SeparatorMarks;
using detail::kBuilderStackBytes;
using detail::Oversized;
using detail::SegmentBuilder;
using detail::TransactionFrame;

// Where loop-level segments (N3, N4, REF, ...) currently belong.
enum class Loop { kHeader, k2000A, k2010AA, k2010AB, k2000B, k2010BA, k2010BB, k2000C, k2010CA,
                  k2300, k2310B, k2310Other, k2400, k2420 };

struct Pending {
  ReadStatus status = ReadStatus::kRecord;
  json::Document doc;
  std::string raw;
  std::string position;
  std::shared_ptr<const void> shared;  // the loop contexts `doc` views
  std::shared_ptr<const RecordFrame> frame;  // a claim's transaction set, to read it alone
  IssueList issues;
  std::string raw_sha256;  // over maxRecordBytes: `raw` is its first bytes (SourceRecord::raw_sha256)
  uint64_t raw_total = 0;
};

// 0-based offsets of the element separators inside the fixed-width ISA; the separator at
// kIsaSeparators[k] ends element k.
constexpr std::array<size_t, 16> kIsaSeparators = {3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103};

// A loop context (billing provider, subscriber, payer, ...) is built once per loop and shared by
// the records of all its claims: a record holds a read-only view of the context's value (the same
// members and strings, nothing copied) and keeps the context document alive (SourceRecord::shared).
// A pool-allocated value frees nothing when destroyed, so the view never frees what it shares.
static_assert(!json::Allocator::kNeedFree, "views need a pool allocator that frees nothing per value");

// The memory of a loop context or a claim: its first block inline, so that a loop or a claim costs
// one allocation (a document on its own allocates itself, its allocator and a first block of
// 64 KiB, for values that mostly need 1-6 KiB).
template <size_t kInlineBytes>
struct InlineMemory {
  static constexpr size_t kBlockBytes = 8192;  // each further block
  InlineMemory() : pool(inline_block, sizeof inline_block, kBlockBytes) {}
  InlineMemory(const InlineMemory&) = delete;
  InlineMemory& operator=(const InlineMemory&) = delete;
  alignas(std::max_align_t) char inline_block[kInlineBytes];
  json::Allocator pool;
};

// A context document (an object) allocating from its memory, which outlives it.
class ContextDocument : private InlineMemory<2048>, public json::Document {
 public:
  ContextDocument() : json::Document(rapidjson::kObjectType, &pool) {}
};
using Context = std::shared_ptr<ContextDocument>;

json::Value view(const json::Value& value) {
  json::Value alias;
  std::memcpy(static_cast<void*>(&alias), static_cast<const void*>(&value), sizeof alias);
  return alias;
}

Context newContext() { return std::make_shared<ContextDocument>(); }

// An open claim: the document of its record (an object), and what the record needs beyond it,
// kept alive as long as the record (SourceRecord::shared): the memory the document allocates from
// (the record's document takes its values and allocator when the claim is complete) and the
// contexts it views.
class ClaimDocument : private InlineMemory<8192>, public json::Document {
 public:
  ClaimDocument() : json::Document(rapidjson::kObjectType, &pool) {}
  Context transaction, billing, subscriber, payer, patient;
};

std::string printable(char c) {
  if (std::isprint(static_cast<unsigned char>(c))) return std::string("'") + c + "'";
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02X", static_cast<unsigned char>(c));
  return buffer;
}

}  // namespace

struct X12Reader::State {
  explicit State(std::istream& stream) : input(stream) {}

  BufferedInput input;
  char element = '*', repetition = 0, component = ':', terminator = '~';
  bool in_interchange = false;
  bool done = false;
  std::deque<Pending> pending;

  size_t interchange_segment = 0;
  std::string isa_control;
  std::string isa_raw;  // the ISA as read, for TransactionFrame
  size_t group_count = 0;
  bool in_group = false;
  std::string gs_control;
  std::string gs_raw;
  size_t transaction_count = 0;

  bool in_transaction = false;
  size_t segment_number = 0;
  std::string st_control;
  Context transaction = newContext(), billing = newContext(), subscriber = newContext(), payer = newContext(),
          patient = newContext();
  bool has_patient_loop = false;
  std::string billing_raw, subscriber_raw, patient_raw;
  // The open transaction set's envelope and header (null outside a functional group); its header
  // grows until the first HL (`header_open`).
  std::shared_ptr<TransactionFrame> frame;
  bool header_open = false;
  // Invalid UTF-8 or a NUL byte in the open transaction set's ST or BHT (they are in every claim's
  // record, not in its bytes): each of its claims is rejected with it.
  std::optional<std::string> header_problem;
  std::optional<std::string> headerSegmentProblem() const {
    return invalidUtf8(rawSegment(), kUnknownOffset, "the transaction set's " + here(0), "the segment");
  }

  std::shared_ptr<ClaimDocument> claim;
  std::string claim_raw;
  // limits.maxRecordBytes (0: none). A claim larger than it (one huge segment, or many) is not
  // held: from there on its bytes are hashed, its first ones kept, and it is rejected as one record
  // when it ends (`big_claim` instead of `claim`). A segment larger than it outside a claim is
  // such a record on its own (`big_segment`). `segment_oversized`: the current segment is one of
  // these, `segment` holds only its first bytes.
  size_t max_record = 0;
  std::unique_ptr<Oversized> big_claim, big_segment;
  // A loop (2000A, 2000B or 2000C with their 2010s; or the transaction set's header, ST up to the
  // first HL) whose bytes grow past maxRecordBytes while no claim is open: from there on it is
  // hashed, not held, with its child loops and their claims, and it is one rejected record when
  // it ends (at an HL of its level or a higher one, or an envelope segment). `big_loop_level`:
  // "20", "22", "23", or "" for the header.
  std::unique_ptr<Oversized> big_loop;
  std::string big_loop_level;
  bool segment_oversized = false;
  size_t claim_segment = 0;
  Loop loop = Loop::kHeader;

  bool hl_open = false;
  size_t hl_segment = 0;
  std::string hl_level;
  size_t hl_claims = 0;

  // The current segment without its terminator: a view into the input's buffer, or into `text`
  // when it crosses a block boundary; either way BufferedInput::kPadding bytes after it are
  // readable. `elements` views it; composite[k] says whether element k holds component separators.
  std::string text;
  std::string_view segment;
  std::vector<std::string_view> elements;
  std::vector<char> composite;
  uint32_t id_code = 0;  // idCode(elements[0])
  KeptStack builder_stack;  // segmentValue()'s
  bool is(std::string_view id) const { return id_code == idCode(id); }

  // --- locations ---
  std::string here(size_t element_index) const {
    std::string id(elements.empty() ? std::string_view("?") : elements[0]);
    std::string out = in_transaction ? "segment " + std::to_string(segment_number) + " (" + id + ")"
                                     : "interchange segment " + std::to_string(interchange_segment) + " (" + id + ")";
    if (element_index > 0) out += ", element " + std::to_string(element_index);
    return out;
  }
  std::string field(size_t index) const { return std::string(at(index)); }
  std::string_view at(size_t index) const { return index < elements.size() ? elements[index] : std::string_view(); }

  void reject(std::string location, std::string message, std::string raw, std::string code = "structure") {
    Pending item;
    item.status = ReadStatus::kRejected;
    item.raw = std::move(raw);
    item.position = location;
    item.issues.atLocation(Severity::kError, std::move(code), location, location + ": " + message);
    pending.push_back(std::move(item));
  }
  void fatal(std::string location, std::string message) {
    Pending item;
    item.status = ReadStatus::kFatal;
    item.position = location;
    item.issues.atLocation(Severity::kFatal, "structure", location, location + ": " + message);
    pending.push_back(std::move(item));
    done = true;
  }
  std::string rawSegment() const {
    std::string raw;
    appendRawSegment(raw);
    return raw;
  }
  void appendRawSegment(std::string& raw) const {
    raw.append(segment);
    raw.push_back(terminator);
  }

  // --- building ---
  // The segment as an object, built from SAX events on a document stack so that its member array
  // and its components' arrays are allocated once at their exact size (AddMember and PushBack
  // start at room for 16 members, several times what most segments need).
  json::Value segmentValue(json::Allocator& allocator, std::string_view id) {
    SegmentBuilder builder(&allocator, kBuilderStackBytes, &builder_stack);
    auto events = [this, id](SegmentBuilder& out) {
      out.StartObject();
      out.Key("@segment", 8, false);
      out.Uint64(in_transaction ? segment_number : interchange_segment);
      out.Key("@id", 3, false);
      out.String(id.data(), static_cast<rapidjson::SizeType>(id.size()), false);
      for (size_t index = 1; index < elements.size(); ++index) {
        elementName(out, index);
        std::string_view value = elements[index];
        if (!composite[index]) {
          copyString(out, value);
          continue;
        }
        out.StartArray();
        rapidjson::SizeType parts = 0;
        size_t start = 0;
        while (true) {
          size_t end = value.find(component, start);
          copyString(out, value.substr(start, end - start));
          ++parts;
          if (end == std::string_view::npos) break;
          start = end + 1;
        }
        out.EndArray(parts);
      }
      return out.EndObject(static_cast<rapidjson::SizeType>(elements.size() + 1));
    };
    builder.Populate(events);
    json::Value object;
    object = static_cast<json::Value&>(builder);  // moves the built object out
    return object;
  }
  static void resetObject(Context& context) {
    if (context.use_count() == 1 && context->ObjectEmpty()) return;  // nothing to forget (an unused payer or patient)
    context = newContext();
  }
  // `context`, ready to change: a context that records still view is copied first (copy on write).
  static json::Document& writable(Context& context) {
    if (context.use_count() > 1) {
      Context copy = newContext();
      static_cast<json::Value&>(*copy) = deepCopy(*context, copy->GetAllocator());
      context = std::move(copy);
    }
    return *context;
  }
  // Sets (or, for `repeating` ids, appends to) member `id` of `object`: the current segment. `id`
  // is its id as a constant (a literal or from kKeptSegments), kept by reference as the member
  // name and the "@id" value instead of copied.
  void put(json::Value& object, json::Allocator& allocator, std::string_view id, bool repeating) {
    json::Value segment = segmentValue(allocator, id);
    json::Value* existing = json::find(object, id);
    if (repeating) {
      if (!existing) {
        object.AddMember(json::constantString(id), json::Value(rapidjson::kArrayType), allocator);
        existing = &(object.MemberEnd() - 1)->value;
      }
      existing->PushBack(segment, allocator);
    } else if (existing) {
      *existing = segment;
    } else {
      object.AddMember(json::constantString(id), segment, allocator);
    }
  }

  // --- records past maxRecordBytes ---
  size_t claimBytes() const { return billing_raw.size() + subscriber_raw.size() + patient_raw.size() + claim_raw.size(); }
  // The open claim (its loops' bytes so far) is past maxRecordBytes: drop what is held of it.
  void claimToOversized() {
    big_claim = std::make_unique<Oversized>();
    big_claim->location = "segment " + std::to_string(claim_segment) + " (CLM)";
    for (const std::string* raw : {&billing_raw, &subscriber_raw, &patient_raw, &claim_raw}) big_claim->add(*raw, max_record);
    claim.reset();
    claim_raw.clear();
  }
  // A segment turned out larger than maxRecordBytes (`first`: its first bytes): where its bytes go.
  Oversized& beginOversized(std::string_view first) {
    std::string_view id = first.substr(0, std::min<size_t>(first.find(element), first.size()));
    if (in_transaction && big_loop) {
      if (id != "HL" && !isEnvelope(id)) return *big_loop;
      closeBigLoop();  // a huge HL or envelope segment: a record of its own, after the loop's
    }
    const bool claim_open = claim || big_claim;
    const bool clm = id == "CLM" && hl_open && (isCode(hl_level, "22") || isCode(hl_level, "23"));
    if (in_transaction && claim_open && !endsClaim(id)) {
      if (!big_claim) claimToOversized();
      return *big_claim;
    }
    if (in_transaction && clm) {
      closeClaim();
      claim_segment = segment_number + 1;
      claim_raw.clear();
      claimToOversized();
      loop = Loop::k2300;
      ++hl_claims;
      return *big_claim;
    }
    big_segment = std::make_unique<Oversized>();
    return *big_segment;
  }
  // The bytes a claim of the open loop starts with (its billing provider, subscriber and patient
  // loops, as in closeClaim()): those of the loop at `level` and the loops above it.
  size_t loopBytes(std::string_view level) const {
    if (isCode(level, "20")) return billing_raw.size();
    if (isCode(level, "22")) return billing_raw.size() + subscriber_raw.size();
    return billing_raw.size() + subscriber_raw.size() + patient_raw.size();
  }
  // The open loop (no claim in it open) is past maxRecordBytes: its record is the loops above it
  // and its own bytes so far; they and its context are dropped, and the loop is closed (no claim of
  // it is read, and none is missing).
  void loopToOversized() {
    big_loop = std::make_unique<Oversized>();
    big_loop_level = hl_level;
    big_loop->location = "segment " + std::to_string(hl_segment) + " (HL)";
    big_loop->add(billing_raw, max_record);
    if (!isCode(hl_level, "20")) big_loop->add(subscriber_raw, max_record);
    if (isCode(hl_level, "23")) big_loop->add(patient_raw, max_record);
    if (isCode(hl_level, "20")) {
      billing_raw.clear();
      resetObject(billing);
    }
    if (!isCode(hl_level, "23")) {
      subscriber_raw.clear();
      resetObject(subscriber);
      resetObject(payer);
    }
    patient_raw.clear();
    resetObject(patient);
    hl_open = false;
    loop = Loop::kHeader;
  }
  // The transaction set's header (ST up to the first HL) is past maxRecordBytes: it is one record,
  // and the set's claims have no frame (they cannot be replayed alone).
  void headerToOversized() {
    big_loop = std::make_unique<Oversized>();
    big_loop_level.clear();
    big_loop->location = "segment 1 (ST)";
    big_loop->add(frame->header, max_record);
    frame.reset();
    header_open = false;
  }
  // Whether the current segment ends the oversized loop: an envelope segment, or an HL that is
  // not of a loop below it (2000B and 2000C below 2000A, 2000C below 2000B; every HL ends the
  // header).
  bool endsBigLoop() const {
    if (!is("HL")) return isEnvelope(elements[0]);
    const std::string_view next = at(3);
    if (isCode(big_loop_level, "20")) return !isCode(next, "22") && !isCode(next, "23");
    if (isCode(big_loop_level, "22")) return !isCode(next, "23");
    return true;
  }
  void closeBigLoop() {
    if (!big_loop) return;
    std::unique_ptr<Oversized> big = std::move(big_loop);
    const std::string what = big_loop_level.empty() ? "the transaction set header (ST and the segments before the first HL)"
                             : isCode(big_loop_level, "20") ? "loop 2000A (the billing provider, with its subscribers and claims)"
                             : isCode(big_loop_level, "22") ? "loop 2000B (the subscriber, with the billing provider loop and its claims)"
                                                            : "loop 2000C (the patient, with the loops above it and its claims)";
    rejectOversized(big->location, what, *big);
  }

  // After step() read an oversized segment: counted; a segment alone is rejected now, a claim's
  // part of it when the claim ends.
  void oversizedSegment() {
    if (in_transaction) ++segment_number;
    if (!big_segment) return;
    std::unique_ptr<Oversized> big = std::move(big_segment);
    rejectOversized(here(0), "the segment", *big);
  }
  void rejectOversized(std::string location, const std::string& what, Oversized& big) {
    reject(location, what + " is " + std::to_string(big.total) + " bytes, larger than maxRecordBytes (" +
                         std::to_string(max_record) + ")", std::move(big.head), "too-long");
    pending.back().raw_sha256 = big.digest.hex();
    pending.back().raw_total = big.total;
  }

  // --- loops ---
  void closeClaim() {
    if (big_claim) {
      std::unique_ptr<Oversized> big = std::move(big_claim);
      rejectOversized(big->location, "the claim", *big);
    }
    if (!claim) return;
    std::shared_ptr<ClaimDocument> doc = std::move(claim);
    json::Allocator& allocator = doc->GetAllocator();
    std::string raw;
    raw.reserve(billing_raw.size() + subscriber_raw.size() + patient_raw.size() + claim_raw.size());
    raw.append(billing_raw).append(subscriber_raw).append(patient_raw).append(claim_raw);
    claim_raw.clear();
    const json::Value& lines = (*doc)["lines"];
    if (lines.Empty()) {
      reject("segment " + std::to_string(claim_segment) + " (CLM)", "the claim has no service line (loop 2400: LX, SV1)", std::move(raw), "required");
      pending.back().frame = frame;
      return;
    }
    for (const json::Value& line : lines.GetArray()) {
      if (!json::find(line, "SV1")) {
        std::string lx = "segment " + json::numberText(line["LX"]["@segment"]) + " (LX)";
        reject(lx, "the service line has no SV1", std::move(raw), "required");
        pending.back().frame = frame;
        return;
      }
    }
    // Issue 14: invalid UTF-8 is never passed on (it would be stored and delivered).
    if (auto where = header_problem ? header_problem : invalidUtf8(raw, kUnknownOffset, "the claim")) {
      reject("segment " + std::to_string(claim_segment) + " (CLM)", *where, std::move(raw), "structure");
      pending.back().frame = frame;
      return;
    }
    const Context& patient_context = has_patient_loop ? patient : subscriber;
    doc->AddMember("transaction", view(*transaction), allocator);
    doc->AddMember("billingProvider", view(*billing), allocator);
    doc->AddMember("subscriber", view(*subscriber), allocator);
    doc->AddMember("payer", view(*payer), allocator);
    doc->AddMember("patient", view(*patient_context), allocator);
    doc->AddMember("subscriberIsPatient", json::Value(!has_patient_loop), allocator);
    Pending item;
    item.position.reserve(64);
    item.position.append("interchange ").append(isa_control).append(", transaction set ").append(st_control);
    item.position.append(", segment ").append(std::to_string(claim_segment));
    doc->transaction = transaction;
    doc->billing = billing;
    doc->subscriber = subscriber;
    doc->payer = payer;
    doc->patient = patient_context;
    item.doc = std::move(static_cast<json::Document&>(*doc));
    item.shared = std::move(doc);
    item.frame = frame;
    item.raw = std::move(raw);
    pending.push_back(std::move(item));
  }
  // Closes the open HL loop; `next_level` is the level of the HL that follows ("" for SE). A
  // subscriber loop followed by its patient loop (23) needs no claim of its own.
  void closeHl(std::string_view next_level) {
    closeClaim();
    if (!hl_open) return;
    hl_open = false;
    bool needs_claim = isCode(hl_level, "23") || (isCode(hl_level, "22") && !isCode(next_level, "23"));
    if (needs_claim && hl_claims == 0) {
      std::string loop_name = isCode(hl_level, "22") ? "2000B" : "2000C";
      reject("segment " + std::to_string(hl_segment) + " (HL)",
             "loop " + loop_name + " has no claim (CLM, loop 2300)",
             isCode(hl_level, "22") ? subscriber_raw : patient_raw, "required");
    }
  }

  static json::Value* contextObject(Context& context, json::Allocator*& allocator) {
    json::Document& doc = writable(context);
    allocator = &doc.GetAllocator();
    return &doc;
  }
  json::Value* loopObject(json::Allocator*& allocator) {
    switch (loop) {
      case Loop::k2000A: case Loop::k2010AA: return contextObject(billing, allocator);
      case Loop::k2000B: case Loop::k2010BA: return contextObject(subscriber, allocator);
      case Loop::k2010BB: return contextObject(payer, allocator);
      case Loop::k2000C: case Loop::k2010CA: return contextObject(patient, allocator);
      case Loop::k2300: allocator = &claim->GetAllocator(); return &claimObject();
      case Loop::k2310B: {
        allocator = &claim->GetAllocator();
        json::Value& claim_object = claimObject();
        if (!json::find(claim_object, "renderingProvider")) {
          claim_object.AddMember("renderingProvider", json::Value(rapidjson::kObjectType), *allocator);
        }
        return json::find(claim_object, "renderingProvider");
      }
      case Loop::k2400: {
        allocator = &claim->GetAllocator();
        json::Value& lines = claimLines();
        return &lines[lines.Size() - 1];
      }
      default: return nullptr;
    }
  }
  std::string* rawOwner() {
    switch (loop) {
      case Loop::k2000A: case Loop::k2010AA: case Loop::k2010AB: return &billing_raw;
      case Loop::k2000B: case Loop::k2010BA: case Loop::k2010BB: return &subscriber_raw;
      case Loop::k2000C: case Loop::k2010CA: return &patient_raw;
      case Loop::k2300: case Loop::k2310B: case Loop::k2310Other: case Loop::k2400: case Loop::k2420: return &claim_raw;
      case Loop::kHeader: return header_open ? &frame->header : nullptr;
      default: return nullptr;
    }
  }
  bool inClaim() const { return loop >= Loop::k2300; }
  // The open claim's "claim" and "lines" members, its first two (CLM adds them), found without
  // comparing names.
  json::Value& claimObject() { return claim->MemberBegin()->value; }
  json::Value& claimLines() { return (claim->MemberBegin() + 1)->value; }

  void transactionSegment();
  void envelopeSegment();
  void openFrame();
  bool readIsa();
  bool readSegment();
  void splitElements();
  void step();
};

bool X12Reader::State::readIsa() {
  int c = input.peek();
  while (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
    input.get();
    c = input.peek();
  }
  if (c == -1) return false;
  std::string isa;
  while (isa.size() < 106) {
    int byte = input.get();
    if (byte == -1) break;
    isa.push_back(static_cast<char>(byte));
  }
  interchange_segment = 1;
  elements.assign(1, "ISA");
  composite.assign(1, 0);
  in_transaction = false;
  if (isa.compare(0, 3, "ISA") != 0) {
    fatal("interchange segment 1", "the interchange does not start with an ISA segment");
    return false;
  }
  if (isa.size() < 106) {
    fatal("interchange segment 1 (ISA)", "the ISA segment is shorter than its fixed 106 bytes");
    return false;
  }
  element = isa[3];
  for (size_t index = 1; index < kIsaSeparators.size(); ++index) {
    if (isa[kIsaSeparators[index]] != element) {
      fatal(here(index), "the element separator " + printable(element) + " (ISA byte 3) was expected at byte " +
                             std::to_string(kIsaSeparators[index]) + ", found " + printable(isa[kIsaSeparators[index]]) +
                             ": wrong separators or a fixed-width ISA element of the wrong length");
      return false;
    }
  }
  repetition = isa[82];
  component = isa[104];
  terminator = isa[105];
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (alnum(element) || alnum(component) || alnum(terminator) || component == element || terminator == element ||
      terminator == component) {
    fatal(here(16), "the separators are not distinct non-alphanumeric characters (element " + printable(element) +
                        ", component " + printable(component) + ", segment terminator " + printable(terminator) + ")");
    return false;
  }
  if (alnum(repetition) || repetition == element || repetition == component || repetition == terminator) repetition = 0;
  isa_control = isa.substr(90, 9);
  isa_raw = std::move(isa);
  group_count = 0;
  in_interchange = true;
  return true;
}

void X12Reader::State::envelopeSegment() {
  std::string_view id = elements[0];
  if (id == "GS") {
    if (in_group) reject(here(0), "GS inside a functional group (GE missing)", rawSegment());
    in_group = true;
    gs_control = field(6);
    gs_raw = rawSegment();
    transaction_count = 0;
    ++group_count;
  } else if (id == "GE") {
    if (!in_group) {
      reject(here(0), "GE without GS", rawSegment());
      return;
    }
    in_group = false;
    if (field(1) != std::to_string(transaction_count)) {
      reject(here(1), "GE01 says " + field(1) + " transaction sets, the group has " + std::to_string(transaction_count),
             rawSegment());
    }
    if (field(2) != gs_control) {
      reject(here(2), "GE02 " + field(2) + " does not match the GS06 control number " + gs_control, rawSegment());
    }
  } else if (id == "IEA") {
    if (in_group) reject(here(0), "IEA inside a functional group (GE missing)", rawSegment());
    in_group = false;
    in_interchange = false;
    if (field(1) != std::to_string(group_count)) {
      reject(here(1), "IEA01 says " + field(1) + " functional groups, the interchange has " + std::to_string(group_count),
             rawSegment());
    }
    if (field(2) != isa_control) {
      reject(here(2), "IEA02 " + field(2) + " does not match the ISA13 control number " + isa_control, rawSegment());
    }
  } else if (id == "ST") {
    if (!in_group) reject(here(0), "ST outside a functional group (GS missing)", rawSegment());
    in_transaction = true;
    segment_number = 1;
    st_control = field(2);
    ++transaction_count;
    resetObject(transaction);
    put(*transaction, transaction->GetAllocator(), "ST", false);
    resetObject(billing);
    resetObject(subscriber);
    resetObject(payer);
    resetObject(patient);
    billing_raw.clear();
    subscriber_raw.clear();
    patient_raw.clear();
    has_patient_loop = false;
    loop = Loop::kHeader;
    hl_open = false;
    openFrame();
    header_problem = headerSegmentProblem();
    if (field(1) != "837") reject(here(1), "transaction set " + field(1) + " is not an 837", rawSegment(), "value");
  } else {
    reject(here(0), "segment " + std::string(id) + " outside a transaction set", rawSegment());
  }
}

// At ST: a new frame for the transaction set's claims (none when no GS opened a group).
void X12Reader::State::openFrame() {
  header_open = in_group;
  if (!in_group) {
    frame.reset();
    return;
  }
  frame = std::make_shared<TransactionFrame>();
  frame->isa = isa_raw;
  frame->gs = gs_raw;
  appendRawSegment(frame->header);
  frame->isa_control = isa_control;
  frame->gs_control = gs_control;
  frame->st_control = st_control;
  frame->element = element;
  frame->terminator = terminator;
}

void X12Reader::State::transactionSegment() {
  ++segment_number;
  std::string_view id = elements[0];
  if (big_loop) {  // the rest of a loop past maxRecordBytes: hashed, not held
    if (!endsBigLoop()) {
      big_loop->add(segment, max_record);
      big_loop->add(std::string_view(&terminator, 1), max_record);
      return;
    }
    closeBigLoop();
  }
  if (big_claim && !endsClaim(id)) {  // the rest of a claim past maxRecordBytes: hashed, not held
    big_claim->add(segment, max_record);
    big_claim->add(std::string_view(&terminator, 1), max_record);
    return;
  }
  if (is("SE")) {
    closeHl("");
    size_t count = segment_number;
    if (field(1) != std::to_string(count)) {
      reject(here(1), "SE01 says " + field(1) + " segments, the transaction set has " + std::to_string(count),
             rawSegment());
    }
    if (field(2) != st_control) {
      reject(here(2), "SE02 " + field(2) + " does not match the ST02 control number " + st_control, rawSegment());
    }
    in_transaction = false;
    return;
  }
  if (is("ST") || is("GS") || is("GE") || is("IEA") || is("ISA")) {
    reject(here(0), "SE missing before " + std::string(id), rawSegment());
    closeHl("");
    in_transaction = false;
    envelopeSegment();
    return;
  }
  if (is("BHT")) {
    if (header_open) appendRawSegment(frame->header);
    // A fresh context with the ST and this BHT: replacing the BHT in place would keep the old one
    // in the context's pool (it frees nothing), and a stream of BHTs would grow it without bound.
    Context fresh = newContext();
    if (const json::Value* st = json::find(*transaction, "ST")) {
      fresh->AddMember(json::constantString("ST"), deepCopy(*st, fresh->GetAllocator()), fresh->GetAllocator());
    }
    if (!header_problem) header_problem = headerSegmentProblem();
    put(*fresh, fresh->GetAllocator(), "BHT", false);
    transaction = std::move(fresh);
    return;
  }
  if (is("HL")) {
    header_open = false;
    closeHl(at(3));
    hl_open = true;
    hl_segment = segment_number;
    hl_level = at(3);
    hl_claims = 0;
    if (isCode(hl_level, "20")) {
      loop = Loop::k2000A;
      resetObject(billing);
      billing_raw.clear();
      put(*billing, billing->GetAllocator(), "HL", false);
    } else if (isCode(hl_level, "22")) {
      loop = Loop::k2000B;
      resetObject(subscriber);
      resetObject(payer);
      resetObject(patient);
      subscriber_raw.clear();
      patient_raw.clear();
      has_patient_loop = false;
      put(*subscriber, subscriber->GetAllocator(), "HL", false);
    } else if (isCode(hl_level, "23")) {
      loop = Loop::k2000C;
      resetObject(patient);
      patient_raw.clear();
      has_patient_loop = true;
      put(*patient, patient->GetAllocator(), "HL", false);
    } else {
      hl_open = false;
      loop = Loop::kHeader;
      reject(here(3), "unknown hierarchical level code " + field(3) + " (20, 22 or 23 expected)", rawSegment(), "value");
      return;
    }
    if (std::string* raw = rawOwner()) {
      raw->clear();  // keeps its capacity for the next loop
      appendRawSegment(*raw);
    }
    return;
  }
  if (is("CLM")) {
    if (!hl_open || (!isCode(hl_level, "22") && !isCode(hl_level, "23"))) {
      closeClaim();
      loop = Loop::kHeader;
      reject(here(0), "CLM outside a subscriber (2000B) or patient (2000C) loop", rawSegment());
      return;
    }
    closeClaim();
    claim = std::make_shared<ClaimDocument>();
    json::Allocator& allocator = claim->GetAllocator();
    claim->AddMember("claim", json::Value(rapidjson::kObjectType), allocator);
    claim->AddMember("lines", json::Value(rapidjson::kArrayType), allocator);
    put(claimObject(), allocator, "CLM", false);
    claim_segment = segment_number;
    claim_raw.clear();
    appendRawSegment(claim_raw);
    loop = Loop::k2300;
    ++hl_claims;
    return;
  }
  if (is("LX")) {
    if (!claim) {
      reject(here(0), "LX outside a claim (loop 2300)", rawSegment());
      return;
    }
    json::Allocator& allocator = claim->GetAllocator();
    json::Value line(rapidjson::kObjectType);
    put(line, allocator, "LX", false);
    claimLines().PushBack(line, allocator);
    loop = Loop::k2400;
    appendRawSegment(claim_raw);
    return;
  }
  if (is("SV1") && loop != Loop::k2400) {
    reject(here(0), "SV1 outside a service line (loop 2400 starts with LX)", rawSegment());
    return;
  }
  if (is("NM1")) {
    std::string_view qualifier = at(1);
    if (isCode(qualifier, "41") || isCode(qualifier, "40")) loop = Loop::kHeader;
    else if (isCode(qualifier, "85") && (loop == Loop::k2000A || loop == Loop::k2010AA || loop == Loop::k2010AB)) loop = Loop::k2010AA;
    else if (isCode(qualifier, "87") && (loop == Loop::k2000A || loop == Loop::k2010AA || loop == Loop::k2010AB)) loop = Loop::k2010AB;
    else if (isCode(qualifier, "IL") && (loop == Loop::k2000B || loop == Loop::k2010BA)) loop = Loop::k2010BA;
    else if (isCode(qualifier, "PR") && (loop == Loop::k2000B || loop == Loop::k2010BA || loop == Loop::k2010BB)) loop = Loop::k2010BB;
    else if (isCode(qualifier, "QC") && (loop == Loop::k2000C || loop == Loop::k2010CA)) loop = Loop::k2010CA;
    else if (claim && loop != Loop::k2400 && loop != Loop::k2420) loop = isCode(qualifier, "82") ? Loop::k2310B : Loop::k2310Other;
    else if (claim) loop = Loop::k2420;
    else {
      reject(here(1), "NM1 with entity code " + std::string(qualifier) + " is out of place here", rawSegment());
      return;
    }
  }
  if (std::string* raw = rawOwner()) appendRawSegment(*raw);
  json::Allocator* allocator = nullptr;
  json::Value* object = loopObject(allocator);
  if (!object) return;  // segments of loops the mapping does not use (1000A/B, 2010AB, 2310A/C, 2420)
  for (const KeptSegment& kept : kKeptSegments) {
    if (kept.code == id_code) return put(*object, *allocator, kept.id, kept.repeating);
  }
}

bool X12Reader::State::readSegment() {
  segment_oversized = false;
  big_segment.reset();
  std::string_view buffered = input.buffered();
  size_t end = buffered.find(terminator);
  if (end != std::string_view::npos && (max_record == 0 || end < max_record)) {
    segment = buffered.substr(0, end);
    input.skip(end + 1);
    return true;
  }
  // Across blocks, or longer than maxRecordBytes: then only its first bytes are held. Line breaks
  // and spaces before its id are skipped first: no record holds them, so neither does its size
  // (x12_reader_fuzz found one of maxRecordBytes + 1 rejected "at maxRecordBytes bytes").
  while (!(buffered = input.buffered()).empty()) {
    const size_t blank = std::min(buffered.find_first_not_of("\r\n \t"), buffered.size());
    input.skip(blank);
    if (blank < buffered.size()) break;
  }
  text.clear();
  Oversized* sink = nullptr;
  bool any = false;
  while (!(buffered = input.buffered()).empty()) {
    any = true;
    end = buffered.find(terminator);
    const std::string_view piece = buffered.substr(0, end == std::string_view::npos ? buffered.size() : end);
    // Past maxRecordBytes once its bytes with the terminator would be (as the fast path decides).
    if (!sink && max_record > 0 && text.size() + piece.size() >= max_record) {
      const size_t held = text.size();
      text.append(piece.substr(0, max_record - held));
      sink = &beginOversized(text);  // from its id on: the blanks before it were skipped above
      sink->add(std::string_view(text).substr(0, held), max_record);
      sink->add(piece, max_record);
      segment_oversized = true;
    } else if (sink) {
      sink->add(piece, max_record);
    } else {
      text.append(piece);
    }
    input.skip(piece.size());
    if (end != std::string_view::npos) {
      input.skip(1);
      if (sink) sink->add(std::string_view(&terminator, 1), max_record);
      break;
    }
  }
  if (!any) return false;
  // The input ended inside it: a record holds a terminator after it all the same, so its size and
  // digest do too (x12_reader_fuzz: one of maxRecordBytes bytes made a record of one more).
  if (sink && end == std::string_view::npos) sink->add(std::string_view(&terminator, 1), max_record);
  const size_t size = text.size();
  text.append(BufferedInput::kPadding, '\0');  // readable after the segment, as in the input's buffer
  segment = std::string_view(text.data(), size);
  return true;
}

// The elements of the segment and which of them hold component separators, in one pass over its
// bytes, 16 at a time (segments are short: a search call per element costs more than the bytes).
void X12Reader::State::splitElements() {
  elements.clear();
  composite.clear();
  const char* data = segment.data();
  const size_t size = segment.size();
  size_t from = 0;  // where the current element starts
  bool has_component = false;
  for (size_t base = 0; base < size; base += kBlockBytes) {
    SeparatorMarks marks = markSeparators(data + base, size - base, element, component);
    while (marks.elements != 0) {
      const unsigned offset = static_cast<unsigned>(std::countr_zero(marks.elements));
      const uint32_t before = (uint32_t{1} << offset) - 1;
      has_component = has_component || (marks.components & before) != 0;
      marks.components &= ~before;
      const size_t end = base + offset;
      elements.emplace_back(data + from, end - from);
      composite.push_back(has_component);
      has_component = false;
      from = end + 1;
      marks.elements &= marks.elements - 1;
    }
    has_component = has_component || marks.components != 0;
  }
  elements.emplace_back(data + from, size - from);
  composite.push_back(has_component);
}

void X12Reader::State::step() {
  if (!in_interchange) {
    if (!readIsa()) {
      if (!done) done = true;  // clean end of input
      return;
    }
    return;
  }
  if (!readSegment()) {
    if (input.failed()) {
      fatal(here(0), "the input could not be read");
      return;
    }
    if (in_transaction) {
      closeBigLoop();
      closeHl("");
      reject("segment " + std::to_string(segment_number + 1), "the input ends inside transaction set " + st_control +
                                                                  " (SE, GE and IEA missing)", std::string());
    } else {
      reject("interchange segment " + std::to_string(interchange_segment + 1),
             "the input ends inside interchange " + isa_control + " (IEA missing)", std::string());
    }
    done = true;
    return;
  }
  auto blank = [](char c) { return c == '\r' || c == '\n' || c == ' ' || c == '\t'; };
  while (!segment.empty() && blank(segment.front())) segment.remove_prefix(1);
  if (segment.empty()) return;  // whitespace before the end of input
  splitElements();
  ++interchange_segment;
  if (!isSegmentId(elements[0])) {
    std::string shown(elements[0].substr(0, 20));
    for (char& c : shown) {
      if (!std::isprint(static_cast<unsigned char>(c))) c = ' ';
    }
    std::string location = in_transaction ? "segment " + std::to_string(segment_number + 1)
                                          : "interchange segment " + std::to_string(interchange_segment);
    fatal(location, "'" + shown + "' is not a segment id; the ISA declares element separator " + printable(element) +
                        " and segment terminator " + printable(terminator) + " (wrong separators?)");
    return;
  }
  id_code = idCode(elements[0]);
  if (segment_oversized) {
    oversizedSegment();
  } else if (in_transaction) {
    transactionSegment();
    if (max_record > 0 && !big_loop) {
      if (claim) {
        if (claimBytes() > max_record) claimToOversized();
      } else if (header_open) {
        if (frame->header.size() > max_record) headerToOversized();
      } else if (hl_open && !big_claim && loopBytes(hl_level) > max_record) {
        loopToOversized();
      }
    }
  } else {
    envelopeSegment();
  }
}

X12Reader::X12Reader(std::istream& stream) : state_(std::make_unique<State>(stream)) {}
X12Reader::~X12Reader() = default;

ReadStatus X12Reader::next(SourceRecord& record, IssueList& issues) {
  State& state = *state_;
  state.max_record = max_record_bytes_;
  while (state.pending.empty()) {
    if (state.done) return ReadStatus::kEnd;
    state.step();
  }
  Pending item = std::move(state.pending.front());
  state.pending.pop_front();
  record.doc = std::move(item.doc);
  record.raw = std::move(item.raw);
  record.position = std::move(item.position);
  record.shared = std::move(item.shared);
  record.frame = std::move(item.frame);
  record.raw_sha256 = std::move(item.raw_sha256);
  record.raw_total = item.raw_total;
  issues.append(item.issues);
  if (item.status == ReadStatus::kFatal) state.pending.clear();
  return item.status;
}

}  // namespace fhir::mappers::readers::x12

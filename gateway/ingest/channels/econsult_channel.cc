// SPDX-License-Identifier: Apache-2.0
// POST /ingest/econsult: JSON events (mappers/specs/econsult.json) and HL7 v2 REF^I12/RRI^I12
// messages (econsult-v2.json), answered in the sender's format (FHIR JSON, an ER7 ACK).
#include <chrono>
#include <ctime>
#include <sstream>

#include "gateway/ingest/channels/channels.h"
#include "gateway/ingest/event_facts.h"
#include "gateway/ingest/ingest_service.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"

namespace fhir::gateway {
namespace {

// The current time as an HL7 v2 DTM in UTC (ACK MSH-7).
std::string hl7Now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%d%H%M%S+0000", &parts);
  return buffer;
}

class EconsultChannel final : public Channel {
 public:
  explicit EconsultChannel(IngestService& service) : service_(service) {}

  // Channel
  Answer ingest(const IngestRequest& request) override {
    if (isHl7v2ContentType(request.content_type)) return ingestV2(request.body, request.content_type);
    return ingestJson(request.body, request.content_type);
  }

 private:
  Answer ingestJson(std::string_view body, std::string_view content_type);
  Answer ingestV2(std::string_view body, std::string_view content_type);

  IngestService& service_;
};

Answer EconsultChannel::ingestJson(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "econsult";
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json, application/fhir+json or "
                         "x-application/hl7-v2+er7",
                     {}, {}});
    return service_.reject(kChannel, body, content_type, 415, issues);
  }

  // Decode; a re-post gets the first answer (keys without a channel prefix, as stored since #2).
  json::Document event;
  std::string idempotency_key;
  if (auto done = decodeJsonEvent(service_, kChannel, "", body, content_type, event, idempotency_key)) {
    return std::move(*done);
  }

  // Map (mappers/specs/econsult.json) and validate
  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = service_.mapEvent("econsult", "econsult", event, body, mapped, issues); status != 0) {
    if (status == IngestService::kStoreFailed) return storeFailureOf(issues);
    return service_.reject(kChannel, body, content_type, status, issues);
  }

  // Routing on the merged coverage timeline; the Claims name the coverage it chose.
  auto read_facts = econsultFacts(mapped.bundle, service_.store());
  if (!read_facts.ok()) return storeFailure(read_facts.message());
  EconsultFacts& facts = *read_facts;
  settleBilling(service_.config(), mapped.bundle, facts.billing);
  // Answer: the stored Bundle, with warnings as a last OperationOutcome entry.
  IngestCommit commit = acceptedEvent(kChannel, idempotency_key, body, mapped.bundle, issues);
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  auto outcome = service_.commitEvent(
      mapped.bundle, std::move(commit), facts.billing, facts.patient_id, std::move(facts.event),
      eventSource(json::getString(event, "source").value_or(""), json::getString(event, "eventId").value_or(""),
                  json::getString(event, "occurredAt").value_or("")));
  if (!outcome.ok()) return storeFailure(outcome.message());
  if (outcome->invalid_merge.hasErrors()) return service_.reject(kChannel, body, content_type, 422, outcome->invalid_merge);
  return Answer{outcome->outcome.status, "application/fhir+json", outcome->outcome.answer};
}

Answer EconsultChannel::ingestV2(std::string_view body, std::string_view content_type) {
  static constexpr std::string_view kChannel = "econsult";
  static constexpr const char* kEr7 = "x-application/hl7-v2+er7";
  const std::string now = hl7Now();
  auto ack = [&](int status, const json::Value* message, const IssueList& issues) {
    std::string control = "ACK";
    if (message) {
      if (const json::Value* msh = json::find(*message, "MSH"); msh && msh->IsArray() && !msh->Empty()) {
        if (auto id = json::getString((*msh)[0], "10")) control += "-" + std::string(*id);
      }
    }
    return Answer{status, kEr7, mappers::readers::hl7v2::buildAck(message, issues, now, control)};
  };
  auto quarantined = [&](int status, const json::Value* message, IssueList issues) {
    Answer kept = service_.reject(kChannel, body, content_type, status, issues);
    if (kept.status == 503) return econsultRefusal(std::move(kept), content_type);
    return ack(status, message, issues);
  };
  // A v2 sender reads ER7 only: a store failure is an ACK too (AR, status 503), never JSON.
  auto failed = [&](const std::string& message) { return econsultRefusal(storeFailure(message), content_type); };

  // Invalid UTF-8 is refused before anything reads the message (it would reach the store and
  // break every JSON document it is copied into).
  if (auto offset = json::invalidUtf8Offset(body)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure",
                     "the message is not valid UTF-8: byte offset " + std::to_string(*offset), {}, {}});
    return quarantined(400, nullptr, std::move(issues));
  }
  // A NUL byte is UTF-8, but no JSON string may hold one: it reached the store's merge as a
  // contribution that did not parse again, a 503 the sender retried forever.
  if (const size_t nul = body.find('\0'); nul != std::string_view::npos) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "the message holds a NUL byte at byte offset " + std::to_string(nul), {}, {}});
    return quarantined(400, nullptr, std::move(issues));
  }

  // Decode: one message.
  const std::string text(body);
  std::istringstream input(text);
  mappers::readers::hl7v2::Hl7v2Reader reader(input);
  mappers::readers::SourceRecord record;
  IssueList read_issues;
  mappers::readers::ReadStatus read = reader.next(record, read_issues);
  if (read != mappers::readers::ReadStatus::kRecord) {
    if (read_issues.empty()) read_issues.add(Issue{Severity::kError, "structure", "the body holds no HL7 v2 message", {}, {}});
    return quarantined(400, nullptr, std::move(read_issues));
  }
  mappers::readers::SourceRecord extra;
  IssueList extra_issues;
  if (reader.next(extra, extra_issues) != mappers::readers::ReadStatus::kEnd) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "structure", "the body holds more than one message: post one message per request", {}, {}});
    return quarantined(422, &record.doc, std::move(issues));
  }

  // Idempotency: MSH-3 (source) + MSH-10 (eventId), kept apart from JSON events.
  std::string idempotency_key;
  const json::Value& msh = record.doc["MSH"][0];
  if (auto source = json::getString(msh, "3"), event_id = json::getString(msh, "10"); source && event_id) {
    idempotency_key = "hl7v2\x1f" + std::string(*source) + '\x1f' + std::string(*event_id);
    auto answer = service_.store().findAnswer(idempotency_key);
    if (!answer.ok()) return failed(answer.message());
    if (answer->has_value()) {
      service_.metrics().countIngest(std::string(kChannel), "duplicate");
      return Answer{(*answer)->status, kEr7, (*answer)->answer};
    }
  }

  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = service_.mapEvent("econsult", "econsult-v2", record.doc, record.raw, mapped, issues); status != 0) {
    if (status == IngestService::kStoreFailed) return econsultRefusal(storeFailureOf(issues), content_type);
    return quarantined(status, &record.doc, std::move(issues));
  }
  if (idempotency_key.empty()) {
    // Mapping takes the first component of a composite MSH-3/MSH-10; the message's identity
    // needs the whole field as one value. Kept, and answered AE (issue 14: this was a JSON 503
    // and nothing was kept, so the sender retried forever).
    IssueList identity;
    identity.add(Issue{Severity::kError, "value",
                       "MSH-3 (sending application) and MSH-10 (message control id) must each be one value, without "
                       "component separators: the message cannot be identified",
                       {}, {"MSH-3"}});
    return quarantined(422, &record.doc, std::move(identity));
  }
  auto read_facts = econsultFacts(mapped.bundle, service_.store());
  if (!read_facts.ok()) return failed(read_facts.message());
  EconsultFacts& facts = *read_facts;
  settleBilling(service_.config(), mapped.bundle, facts.billing);
  IngestCommit commit;
  commit.channel = std::string(kChannel);
  commit.idempotency_key = idempotency_key;
  commit.payload = text;
  commit.status = 200;
  commit.answer = ack(200, &record.doc, IssueList()).body;
  auto outcome = service_.commitEvent(
      mapped.bundle, std::move(commit), facts.billing, facts.patient_id, std::move(facts.event),
      eventSource(json::getString(msh, "3").value_or(""), json::getString(msh, "10").value_or(""),
                  json::getString(msh, "7").value_or("")));
  if (!outcome.ok()) return failed(outcome.message());
  if (outcome->invalid_merge.hasErrors()) return quarantined(422, &record.doc, std::move(outcome->invalid_merge));
  return Answer{outcome->outcome.status, kEr7, outcome->outcome.answer};
}

}  // namespace

ChannelPtr makeEconsultChannel(IngestService& service) { return std::make_unique<EconsultChannel>(service); }

Answer econsultRefusal(Answer refused, std::string_view content_type) {
  if (!isHl7v2ContentType(content_type)) return refused;
  IssueList issues;
  json::Document outcome;
  json::ParseError ignored;
  if (json::parse(refused.body, outcome, ignored)) {
    if (const json::Value* list = json::find(outcome, "issue"); list && list->IsArray()) {
      for (const json::Value& issue : list->GetArray()) {
        issues.add(Issue{Severity::kError, std::string(json::getString(issue, "code").value_or("exception")),
                         std::string(json::getString(issue, "diagnostics").value_or("")), {}, {}});
      }
    }
  }
  if (issues.empty()) issues.add(Issue{Severity::kError, "exception", "the body was refused", {}, {}});
  Answer ack{refused.status, "x-application/hl7-v2+er7", mappers::readers::hl7v2::buildAck(nullptr, issues, hl7Now(), "ACK")};
  ack.retry_after = refused.retry_after;
  return ack;
}

}  // namespace fhir::gateway

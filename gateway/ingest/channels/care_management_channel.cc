// SPDX-License-Identifier: Apache-2.0
// POST /ingest/care-management: one care-management event (JSON, mappers/specs/care-management.json).
#include "gateway/ingest/channels/channels.h"
#include "gateway/ingest/event_facts.h"
#include "gateway/ingest/ingest_service.h"

namespace fhir::gateway {
namespace {

// A stored ACM Claim with the same id (patient, specialist, calendar month) that another event
// created: the second ACM of that month (contracts/econsult-event.md). Returns the issue, located
// at the billing entry the mapper says the Claim came from (its "billing" fact); an error when
// the store failed reading the stored Claim.
Result<std::optional<IssueList>> secondAcm(Store& store, const mappers::engine::MappedBundle& mapped) {
  const json::Value& bundle = mapped.bundle;
  static constexpr std::string_view kAcmSystem = "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing";
  auto identifierOf = [](const json::Value& claim) {
    const json::Value* identifiers = json::find(claim, "identifier");
    if (!identifiers || !identifiers->IsArray() || identifiers->Empty()) return std::string();
    return std::string(json::getString((*identifiers)[0], "system").value_or("")) + "|" +
           std::string(json::getString((*identifiers)[0], "value").value_or(""));
  };
  for (const fhir::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.system != kAcmSystem || fact.code != "ACM") continue;
    auto stored = store.readResource("Claim", fact.claim_id);
    if (!stored.ok()) return stored.error();
    if (!stored->has_value()) continue;
    json::Document previous;
    json::ParseError parse_error;
    if (!json::parse((*stored)->json, previous, parse_error)) {
      return Error{"stored Claim/" + fact.claim_id + " is unreadable: " + parse_error.describe()};
    }
    const json::Value* claim = nullptr;
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "id") == fact.claim_id) claim = &entry["resource"];
    }
    if (claim == nullptr || identifierOf(previous) == identifierOf(*claim)) continue;
    // The billing entry of this Claim, as the spec's "billing" fact places it.
    const std::string reference = "Claim/" + fact.claim_id;
    std::string location = reference;
    for (const mappers::engine::ResourceFact& made : mapped.facts) {
      if (made.kind == "billing" && made.reference == reference) location = made.location;
    }
    IssueList issues;
    issues.atLocation(Severity::kError, "business-rule", location,
                      location + ": a second ACM for the same patient, specialist and calendar month (" +
                          fact.date_of_service.substr(0, 7) + "); the first came with event " +
                          identifierOf(previous).substr(identifierOf(previous).find('|') + 1));
    return std::optional<IssueList>(std::move(issues));
  }
  return std::optional<IssueList>();
}

// Subscription filter facts of a care-management event: patient, payers, practice, codes, read
// from the mapped Bundle (the practice: its `prov` Organization, as for e-consults).
EventFacts careManagementFacts(const json::Value& bundle, const std::vector<fhir::CoverageFact>& coverage) {
  EventFacts facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    std::string_view type = json::getString(resource, "resourceType").value_or("");
    if (type == "Patient") facts.patient = "Patient/" + std::string(json::getString(resource, "id").value_or(""));
    if (type != "Claim" && type != "Condition") continue;
    const json::Value* code = type == "Claim" ? nullptr : json::find(resource, "code");
    if (type == "Claim" && json::find(resource, "item") && !resource["item"].Empty()) code = json::find(resource["item"][0], "productOrService");
    if (!code || !json::find(*code, "coding") || !(*code)["coding"].IsArray() || (*code)["coding"].Empty()) continue;
    const json::Value& coding = (*code)["coding"][0];
    facts.codes.insert(std::string(json::getString(coding, "system").value_or("")) + "|" +
                       std::string(json::getString(coding, "code").value_or("")));
  }
  for (const fhir::CoverageFact& fact : coverage) facts.payers.insert(fact.payer_id);
  facts.practices = practicesOf(bundle);
  return facts;
}

class CareManagementChannel final : public Channel {
 public:
  explicit CareManagementChannel(IngestService& service) : service_(service) {}

  // Channel
  Answer ingest(const IngestRequest& request) override;

 private:
  IngestService& service_;
};

Answer CareManagementChannel::ingest(const IngestRequest& request) {
  static constexpr std::string_view kChannel = "care-management";
  const std::string_view body = request.body;
  const std::string_view content_type = request.content_type;
  if (!isJsonContentType(content_type)) {
    IssueList issues;
    issues.add(Issue{Severity::kError, "not-supported",
                     "Content-Type '" + std::string(content_type) +
                         "' is not accepted here: send application/json or application/fhir+json",
                     {}, {}});
    return service_.reject(kChannel, body, content_type, 415, issues);
  }
  json::Document event;
  std::string idempotency_key;
  const std::string key_prefix = std::string(kChannel) + '\x1f';
  if (auto done = decodeJsonEvent(service_, kChannel, key_prefix, body, content_type, event, idempotency_key)) {
    return std::move(*done);
  }

  // Map (mappers/specs/care-management.json) and validate
  mappers::engine::MappedBundle mapped;
  IssueList issues;
  if (int status = service_.mapEvent(kChannel, std::string(kChannel), event, body, mapped, issues); status != 0) {
    if (status == IngestService::kStoreFailed) return storeFailureOf(issues);
    return service_.reject(kChannel, body, content_type, status, issues);
  }
  if (idempotency_key.empty()) return storeFailure("event without source/eventId passed mapping");
  auto second = secondAcm(service_.store(), mapped);
  if (!second.ok()) return storeFailure(second.message());
  if (*second) return service_.reject(kChannel, body, content_type, 422, **second);

  std::string patient_id;
  for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
    if (json::getString(entry["resource"], "resourceType") == "Patient") {
      patient_id = std::string(json::getString(entry["resource"], "id").value_or(""));
    }
  }
  const std::vector<fhir::CoverageFact> declared = eventCoverage(mapped.bundle);

  // Billing Claims go to the payer covering their date (commitEvent: feeds, payers, subscriptions).
  auto stored_coverage = service_.store().coverageOf(patient_id);
  if (!stored_coverage.ok()) return storeFailure(stored_coverage.message());
  std::vector<fhir::CoverageFact> known = withEventCoverage(std::move(*stored_coverage), declared);
  std::vector<fhir::BillingFact> billing = billingFacts(mapped.bundle, known);
  settleBilling(service_.config(), mapped.bundle, billing);
  IngestCommit commit = acceptedEvent(kChannel, idempotency_key, body, mapped.bundle, issues);
  commit.unique_slots = acmSlots(mapped.bundle);
  EventFacts facts = careManagementFacts(mapped.bundle, declared);
  auto outcome = service_.commitEvent(
      mapped.bundle, std::move(commit), billing, patient_id, std::move(facts),
      eventSource(json::getString(event, "source").value_or(""), json::getString(event, "eventId").value_or(""),
                  json::getString(event, "occurredAt").value_or("")));
  if (!outcome.ok()) return storeFailure(outcome.message());
  if (outcome->invalid_merge.hasErrors()) return service_.reject(kChannel, body, content_type, 422, outcome->invalid_merge);
  const CommitOutcome& committed = outcome->outcome;
  if (!committed.slot_taken.empty()) {  // another event took this ACM slot since secondAcm read it
    auto taken = secondAcm(service_.store(), mapped);
    if (!taken.ok()) return storeFailure(taken.message());
    if (*taken) return service_.reject(kChannel, body, content_type, 422, **taken);
    return storeFailure("ACM slot " + committed.slot_taken + " is held by " + committed.slot_owner + " whose Claim cannot be read");
  }
  return Answer{committed.status, "application/fhir+json", committed.answer};
}

}  // namespace

ChannelPtr makeCareManagementChannel(IngestService& service) { return std::make_unique<CareManagementChannel>(service); }

}  // namespace fhir::gateway

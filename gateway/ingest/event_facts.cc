// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/event_facts.h"

#include "gateway/dispatch/router.h"
#include "gateway/merge/merge.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

const json::Value* bundleEntry(const json::Value& bundle, std::string_view reference) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string key = std::string(json::getString(resource, "resourceType").value_or("")) + "/" +
                            std::string(json::getString(resource, "id").value_or(""));
    if (key == reference) return &resource;
  }
  return nullptr;
}

std::string firstCodingOf(const json::Value& concept_value, bool with_system) {
  const json::Value* codings = json::find(concept_value, "coding");
  if (!codings || !codings->IsArray() || codings->Empty()) return {};
  std::string code(json::getString((*codings)[0], "code").value_or(""));
  if (!with_system) return code;
  return std::string(json::getString((*codings)[0], "system").value_or("")) + "|" + code;
}

std::string identifierValue(const json::Value& resource, std::string_view system) {
  const json::Value* identifiers = json::find(resource, "identifier");
  if (!identifiers || !identifiers->IsArray()) return {};
  for (const json::Value& identifier : identifiers->GetArray()) {
    if (json::getString(identifier, "system") == system) return std::string(json::getString(identifier, "value").value_or(""));
  }
  return {};
}

}  // namespace

// The source-record digest the engine puts in a mapped Bundle's Provenance (its last entry);
// the hash of `bundle_json` when there is none.
std::string sourceDigestOf(const json::Value& bundle, const std::string& bundle_json) {
  const json::Value& entries = bundle["entry"];
  if (!entries.Empty()) {
    const json::Value& provenance = entries[entries.Size() - 1]["resource"];
    const json::Value* entities = json::find(provenance, "entity");
    const json::Value* extensions = entities && entities->IsArray() && !entities->Empty() ? json::find((*entities)[0], "extension") : nullptr;
    if (extensions && extensions->IsArray()) {
      for (const json::Value& extension : extensions->GetArray()) {
        if (json::getString(extension, "url").value_or("").ends_with("/source-record-digest")) {
          if (auto digest = json::getString(extension, "valueString")) return std::string(*digest);
        }
      }
    }
  }
  return fhir::sha256Hex(bundle_json);
}

// Coverage resources of a mapped Bundle as routing facts.
std::vector<fhir::CoverageFact> coverageFacts(const json::Value& bundle, const std::string& payer_id) {
  std::vector<fhir::CoverageFact> facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Coverage") continue;
    fhir::CoverageFact fact;
    fact.coverage_id = std::string(json::getString(resource, "id").value_or(""));
    fact.payer_id = payer_id;
    fact.member_id = std::string(json::getString(resource, "subscriberId").value_or(""));
    if (const json::Value* beneficiary = json::find(resource, "beneficiary")) {
      std::string_view reference = json::getString(*beneficiary, "reference").value_or("");
      if (reference.rfind("Patient/", 0) == 0) fact.patient_id = std::string(reference.substr(8));
    }
    if (const json::Value* period = json::find(resource, "period")) {
      fact.start = std::string(json::getString(*period, "start").value_or(""));
      fact.end = std::string(json::getString(*period, "end").value_or(""));
    }
    if (const json::Value* type = json::find(resource, "type"); type && json::find(*type, "coding")) {
      const json::Value& codings = (*type)["coding"];
      if (codings.IsArray() && !codings.Empty()) fact.line_of_business = std::string(json::getString(codings[0], "code").value_or(""));
    }
    if (!fact.coverage_id.empty() && !fact.patient_id.empty()) facts.push_back(std::move(fact));
  }
  return facts;
}

// ---- care-management (POST /ingest/care-management) and e-consult: routing facts -------------

// The event's own Coverage resources as routing facts; the payer is the payer-id identifier of
// the Organization in Coverage.payor (as both event specs write it).
std::vector<fhir::CoverageFact> eventCoverage(const json::Value& bundle) {
  std::vector<fhir::CoverageFact> facts = coverageFacts(bundle, "");
  for (fhir::CoverageFact& fact : facts) {
    const json::Value* coverage = bundleEntry(bundle, "Coverage/" + fact.coverage_id);
    const json::Value* payors = coverage ? json::find(*coverage, "payor") : nullptr;
    if (payors && payors->IsArray() && !payors->Empty()) {
      if (const json::Value* payer = bundleEntry(bundle, json::getString((*payors)[0], "reference").value_or(""))) {
        fact.payer_id = identifierValue(*payer, "https://fhir.alignment-gateway.org/CodeSystem/payer-id");
      }
    }
  }
  return facts;
}

// Points each routable billing Claim of a mapped Bundle at the coverage routing chose (the
// mapper's pick may be another one of an ambiguous timeline).
void settleBilling(const Config& config, json::Document& bundle, const std::vector<fhir::BillingFact>& billing) {
  for (const fhir::BillingFact& fact : billing) {
    RouteDecision decision = routeClaim(config, fact);
    if (decision.payer != nullptr) settleClaim(bundle, fact.claim_id, fact.coverage->coverage_id, decision.payer->id);
  }
}

// Who an event's contributions come from: its source, ranked by occurredAt (in UTC).
ContributionSource eventSource(std::string_view source, std::string_view event_id, std::string_view occurred_at) {
  return ContributionSource{"ehr", std::string(source), "", merge::utcRank(occurred_at),
                            std::string(source) + '\x1f' + std::string(event_id)};
}

// The billing Claims of a mapped Bundle as routing facts (code, date, billing NPI), each with the
// coverage valid on its date of service among `known`.
std::vector<fhir::BillingFact> billingFacts(const json::Value& bundle, const std::vector<fhir::CoverageFact>& known) {
  std::vector<fhir::BillingFact> out;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Claim") continue;
    const json::Value* items = json::find(resource, "item");
    if (!items || !items->IsArray() || items->Empty()) continue;
    const json::Value& item = (*items)[0];
    fhir::BillingFact fact;
    fact.claim_id = std::string(json::getString(resource, "id").value_or(""));
    fact.date_of_service = std::string(json::getString(item, "servicedDate").value_or(""));
    if (const json::Value* product = json::find(item, "productOrService")) {
      const std::string system_code = firstCodingOf(*product, true);
      fact.system = system_code.substr(0, system_code.find('|'));
      fact.code = system_code.find('|') == std::string::npos ? std::string() : system_code.substr(system_code.find('|') + 1);
    }
    if (const json::Value* provider = json::find(resource, "provider")) {
      if (const json::Value* practitioner = bundleEntry(bundle, json::getString(*provider, "reference").value_or(""))) {
        fact.npi = identifierValue(*practitioner, "http://hl7.org/fhir/sid/us-npi");
      }
    }
    CoverageChoice choice = chooseCoverage(known, fact.date_of_service);
    fact.coverage = std::move(choice.coverage);
    fact.coverage_reason = std::move(choice.reason);
    out.push_back(std::move(fact));
  }
  return out;
}

std::set<std::string> practicesOf(const json::Value& bundle) {
  std::set<std::string> out;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Organization") continue;
    const json::Value* types = json::find(resource, "type");
    if (types && types->IsArray() && !types->Empty() && firstCodingOf((*types)[0], false) == "prov") {
      out.insert(identifierValue(resource, "http://hl7.org/fhir/sid/us-npi"));
    }
  }
  return out;
}

// A store failure reading the patient's coverage is an error, never "no coverage".
Result<EconsultFacts> econsultFacts(const json::Value& bundle, Store& store) {
  EconsultFacts out;
  out.coverage = eventCoverage(bundle);
  for (const fhir::CoverageFact& fact : out.coverage) out.event.payers.insert(fact.payer_id);
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string_view type = json::getString(resource, "resourceType").value_or("");
    const std::string id(json::getString(resource, "id").value_or(""));
    if (type == "Patient" && out.patient_id.empty()) out.patient_id = id;
    if (type == "ServiceRequest") {
      if (const json::Value* reasons = json::find(resource, "reasonCode"); reasons && reasons->IsArray()) {
        for (const json::Value& reason : reasons->GetArray()) out.event.codes.insert(firstCodingOf(reason, true));
      }
    }
  }
  out.event.practices = practicesOf(bundle);
  out.event.patient = "Patient/" + out.patient_id;
  auto stored = store.coverageOf(out.patient_id);
  if (!stored.ok()) return stored.error();
  out.billing = billingFacts(bundle, withEventCoverage(std::move(*stored), out.coverage));
  for (const fhir::BillingFact& billing : out.billing) out.event.codes.insert(billing.system + "|" + billing.code);
  return out;
}

// The ACM slots an event takes (one ACM per patient, specialist and calendar month: the Claim id
// says which), owned by the event's Claim identifier; the store refuses a commit whose slot
// another event holds (Store: unique slots), so two concurrent second ACMs cannot both pass.
std::vector<UniqueSlot> acmSlots(const json::Value& bundle) {
  std::vector<UniqueSlot> slots;
  for (const fhir::BillingFact& fact : billingFacts(bundle, {})) {
    if (fact.code != "ACM") continue;
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      const json::Value& claim = entry["resource"];
      if (json::getString(claim, "id") != fact.claim_id) continue;
      const json::Value* identifiers = json::find(claim, "identifier");
      std::string owner;
      if (identifiers && identifiers->IsArray() && !identifiers->Empty()) {
        owner = std::string(json::getString((*identifiers)[0], "system").value_or("")) + "|" +
                std::string(json::getString((*identifiers)[0], "value").value_or(""));
      }
      slots.push_back(UniqueSlot{"acm|" + fact.claim_id, owner});
    }
  }
  return slots;
}

}  // namespace fhir::gateway

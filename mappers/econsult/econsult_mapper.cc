// SPDX-License-Identifier: Apache-2.0
#include "mappers/econsult/econsult_mapper.h"

#include <map>

#include "mappers/common/alignment.h"
#include "mappers/common/event_reader.h"
#include "mappers/common/fhir_builder.h"
#include "mappers/common/ids.h"

namespace fhir::mappers {
namespace {

namespace al = alignment;

// E-consult billing codes of the alignment-billing-codes value set (canonicals.md); ACM is
// co-management, not e-consult, so it is not accepted here.
#define ECONSULT_CODES "99446", "99447", "99448", "99449", "99451", "99452"

struct Person {
  std::string npi;
  std::string name;
  std::string specialty;         // NUCC taxonomy (specialist)
  std::string organization_npi;  // requester's practice
};

// Everything read from the event before any resource is built.
struct Event {
  std::string event_id, source, event_type, occurred_at, consult_id;
  std::string mrn, mrn_system, family, birth_date, sex;
  std::vector<std::string> given;
  struct Coverage {
    std::string payer_id, member_id, line_of_business, start, end;
  };
  std::vector<Coverage> coverage;
  std::optional<Person> requester, specialist;
  std::string question, urgency, answered_at, recommendation, reason;
  std::optional<int64_t> minutes_spent;
  std::vector<std::pair<std::string, std::string>> reason_codes;  // system, code
  struct Attachment {
    std::string content_type, title, url;
  };
  std::vector<Attachment> attachments;
  struct Billing {
    std::string code, system, billed_by, npi, date_of_service;
  };
  std::vector<Billing> billing;
};

std::optional<Person> readPerson(EventReader& reader, const json::Value& event, std::string_view key,
                                 bool required, bool is_specialist) {
  const std::string path = EventReader::child("$", key);
  const json::Value* object = reader.object(event, "$", key, required);
  if (object == nullptr) return std::nullopt;
  Person person;
  person.npi = reader.npi(*object, path, "npi", true).value_or("");
  person.name = reader.string(*object, path, "name", false).value_or("");
  if (is_specialist) {
    person.specialty = reader.string(*object, path, "specialty", false).value_or("");
    reader.unknownMembers(*object, path, {"npi", "name", "specialty"});
  } else {
    reader.oneOf(*object, path, "role", false, {"pcp", "specialist"});
    person.organization_npi = reader.npi(*object, path, "organizationNpi", false).value_or("");
    reader.unknownMembers(*object, path, {"npi", "name", "role", "organizationNpi"});
  }
  return person;
}

void readPatient(EventReader& reader, const json::Value& event, const Directory& directory,
                 Event& out) {
  const json::Value* patient = reader.object(event, "$", "patient", true);
  if (patient == nullptr) return;
  const std::string path = "$.patient";
  out.mrn = reader.string(*patient, path, "mrn", true).value_or("");
  out.mrn_system = reader.string(*patient, path, "mrnSystem", true).value_or("");
  out.family = reader.string(*patient, path, "family", false).value_or("");
  if (const json::Value* given = reader.array(*patient, path, "given", false)) {
    for (rapidjson::SizeType i = 0; i < given->Size(); ++i) {
      if (!json::isString((*given)[i])) {
        reader.error(EventReader::index(path + ".given", i), "structure", "must be a string");
      } else {
        out.given.emplace_back(json::stringView((*given)[i]));
      }
    }
  }
  out.birth_date = reader.date(*patient, path, "birthDate", false).value_or("");
  out.sex = reader.oneOf(*patient, path, "sex", false, {"male", "female", "other", "unknown"}).value_or("");
  if (const json::Value* coverage = reader.array(*patient, path, "coverage", false)) {
    for (rapidjson::SizeType i = 0; i < coverage->Size(); ++i) {
      const std::string item_path = EventReader::index(path + ".coverage", i);
      const json::Value& item = (*coverage)[i];
      if (!item.IsObject()) {
        reader.error(item_path, "structure", "must be an object");
        continue;
      }
      Event::Coverage entry;
      entry.payer_id = reader.string(item, item_path, "payerId", true).value_or("");
      if (!entry.payer_id.empty() && !directory.payer(entry.payer_id)) {
        reader.error(item_path + ".payerId", "not-found",
                     "unknown payerId '" + entry.payer_id + "' (not in the gateway configuration)");
      }
      entry.member_id = reader.string(item, item_path, "memberId", true).value_or("");
      entry.line_of_business =
          reader.oneOf(item, item_path, "lineOfBusiness", false,
                       {"medicare-ffs", "medicare-advantage", "medicaid", "commercial"})
              .value_or("");
      entry.start = reader.date(item, item_path, "start", false).value_or("");
      entry.end = reader.date(item, item_path, "end", false).value_or("");
      if (!entry.start.empty() && !entry.end.empty() && entry.end < entry.start) {
        reader.error(item_path + ".end", "value", "coverage ends before it starts");
      }
      reader.unknownMembers(item, item_path,
                            {"payerId", "memberId", "lineOfBusiness", "start", "end"});
      out.coverage.push_back(std::move(entry));
    }
  }
  reader.unknownMembers(*patient, path,
                        {"mrn", "mrnSystem", "family", "given", "birthDate", "sex", "coverage"});
}

void readBilling(EventReader& reader, const json::Value& event, Event& out) {
  const json::Value* billing = reader.array(event, "$", "billing", false);
  if (billing == nullptr) return;
  for (rapidjson::SizeType i = 0; i < billing->Size(); ++i) {
    const std::string path = EventReader::index("$.billing", i);
    const json::Value& item = (*billing)[i];
    if (!item.IsObject()) {
      reader.error(path, "structure", "must be an object");
      continue;
    }
    Event::Billing entry;
    entry.system = reader.string(item, path, "system", true).value_or("");
    if (!entry.system.empty() && entry.system != al::kCptSystem) {
      reader.error(path + ".system", "code-invalid",
                   "'" + entry.system + "' is not the e-consult billing code system " +
                       std::string(al::kCptSystem));
    }
    entry.code = reader.oneOf(item, path, "code", true, {ECONSULT_CODES}).value_or("");
    entry.billed_by = reader.oneOf(item, path, "billedBy", true, {"specialist", "pcp"}).value_or("");
    entry.npi = reader.npi(item, path, "npi", true).value_or("");
    entry.date_of_service = reader.date(item, path, "dateOfService", true).value_or("");
    reader.unknownMembers(item, path, {"code", "system", "billedBy", "npi", "dateOfService"});
    out.billing.push_back(std::move(entry));
  }
}

bool readEvent(const json::Value& event, const Directory& directory, Event& out, IssueList& issues) {
  EventReader reader(issues);
  if (!event.IsObject()) {
    reader.error("$", "structure", "an e-consult event must be a JSON object");
    return false;
  }
  out.event_id = reader.string(event, "$", "eventId", true).value_or("");
  out.source = reader.string(event, "$", "source", true).value_or("");
  out.event_type =
      reader.oneOf(event, "$", "eventType", true, {"request", "response", "closed", "cancelled"})
          .value_or("");
  out.occurred_at = reader.dateTime(event, "$", "occurredAt", true).value_or("");
  out.consult_id = reader.string(event, "$", "consultId", true).value_or("");
  readPatient(reader, event, directory, out);

  const bool request = out.event_type == "request";
  const bool response = out.event_type == "response";
  out.requester = readPerson(reader, event, "requester", request, false);
  out.specialist = readPerson(reader, event, "specialist", request || response, true);
  out.question = reader.string(event, "$", "question", request).value_or("");
  out.urgency = reader.oneOf(event, "$", "urgency", false, {"routine", "urgent", "asap", "stat"})
                    .value_or("");
  if (const json::Value* reasons = reader.array(event, "$", "reasonCodes", false)) {
    for (rapidjson::SizeType i = 0; i < reasons->Size(); ++i) {
      const std::string path = EventReader::index("$.reasonCodes", i);
      const json::Value& item = (*reasons)[i];
      if (!item.IsObject()) {
        reader.error(path, "structure", "must be an object {system, code}");
        continue;
      }
      auto system = reader.string(item, path, "system", true);
      auto code = reader.string(item, path, "code", true);
      reader.unknownMembers(item, path, {"system", "code", "display"});
      if (system && code) out.reason_codes.emplace_back(*system, *code);
    }
  }
  if (const json::Value* attachments = reader.array(event, "$", "attachments", false)) {
    for (rapidjson::SizeType i = 0; i < attachments->Size(); ++i) {
      const std::string path = EventReader::index("$.attachments", i);
      const json::Value& item = (*attachments)[i];
      if (!item.IsObject()) {
        reader.error(path, "structure", "must be an object");
        continue;
      }
      Event::Attachment attachment;
      attachment.content_type = reader.string(item, path, "contentType", false).value_or("");
      attachment.title = reader.string(item, path, "title", false).value_or("");
      attachment.url = reader.string(item, path, "url", true).value_or("");
      reader.unknownMembers(item, path, {"contentType", "title", "url"});
      out.attachments.push_back(std::move(attachment));
    }
  }
  out.answered_at = reader.dateTime(event, "$", "answeredAt", response).value_or("");
  out.recommendation = reader.string(event, "$", "recommendation", response).value_or("");
  out.minutes_spent = reader.integer(event, "$", "minutesSpent", response, response ? 5 : 1);
  out.reason = reader.string(event, "$", "reason", false).value_or("");
  readBilling(reader, event, out);
  reader.unknownMembers(event, "$",
                        {"eventId", "source", "eventType", "occurredAt", "consultId", "patient",
                         "requester", "specialist", "question", "reasonCodes", "urgency",
                         "attachments", "answeredAt", "recommendation", "minutesSpent", "billing",
                         "reason"});
  return !issues.hasErrors();
}

class BundleWriter {
 public:
  BundleWriter(json::Document& doc, std::string base_url)
      : doc_(doc), build_(doc.GetAllocator()), base_url_(std::move(base_url)) {
    doc_.SetObject();
    build_.set(doc_, "resourceType", "Bundle");
    build_.set(doc_, "type", "collection");
    build_.set(doc_, "entry", build_.array());
  }
  const FhirBuilder& build() const { return build_; }

  // Adds a resource once per type/id; a later add of the same resource replaces it.
  void add(json::Value resource) {
    std::string key = std::string(*json::getString(resource, "resourceType")) + "/" +
                      std::string(*json::getString(resource, "id"));
    auto found = positions_.find(key);
    json::Value& entries = doc_["entry"];
    if (found != positions_.end()) {
      entries[found->second]["resource"] = std::move(resource);
      return;
    }
    json::Value entry = build_.object();
    build_.set(entry, "fullUrl", base_url_ + "/" + key);
    build_.set(entry, "resource", std::move(resource));
    positions_.emplace(key, entries.Size());
    build_.push(entries, std::move(entry));
  }

 private:
  json::Document& doc_;
  FhirBuilder build_;
  std::string base_url_;
  std::map<std::string, rapidjson::SizeType> positions_;
};

std::string practitionerId(std::string_view npi) { return deriveId({"Practitioner", npi}); }

json::Value practitioner(const FhirBuilder& b, const Person& person) {
  json::Value resource = b.resource("Practitioner", practitionerId(person.npi), al::profile("alignment-practitioner"));
  b.set(resource, "identifier", b.single(b.identifier(al::kNpiSystem, person.npi)));
  if (!person.name.empty()) {
    json::Value name = b.object();
    b.set(name, "text", person.name);
    b.set(resource, "name", b.single(std::move(name)));
  }
  if (!person.specialty.empty()) {
    json::Value qualification = b.object();
    b.set(qualification, "code", b.codeableConcept(al::kNuccSystem, person.specialty));
    b.set(resource, "qualification", b.single(std::move(qualification)));
  }
  return resource;
}

json::Value practitionerFromNpi(const FhirBuilder& b, std::string_view npi) {
  Person person;
  person.npi = std::string(npi);
  return practitioner(b, person);
}

}  // namespace

std::optional<std::string> EconsultMapper::serviceRequestIdOf(const json::Value& event) {
  auto source = json::getString(event, "source");
  auto consult = json::getString(event, "consultId");
  if (!source || !consult) return std::nullopt;
  return deriveId({"ServiceRequest", *source, *consult});
}

bool EconsultMapper::map(const json::Value& event_json, const EconsultContext& context,
                         MappedEvent& out, IssueList& issues) const {
  Event event;
  if (!readEvent(event_json, context.directory, event, issues)) return false;

  BundleWriter writer(out.bundle, context.base_url);
  const FhirBuilder& b = writer.build();
  out.source = event.source;
  out.event_id = event.event_id;
  out.event_type = event.event_type;
  out.consult_id = event.consult_id;
  if (event.requester && !event.requester->organization_npi.empty()) {
    out.practice_npis.push_back(event.requester->organization_npi);
  }
  for (const auto& [system, code] : event.reason_codes) out.codes.push_back(system + "|" + code);
  for (const Event::Billing& entry : event.billing) out.codes.push_back(entry.system + "|" + entry.code);

  // Patient
  const std::string patient_id = deriveId({"Patient", event.mrn_system, event.mrn});
  out.patient_id = patient_id;
  {
    json::Value patient = b.resource("Patient", patient_id, al::profile("alignment-patient"));
    json::Value identifier = b.identifier(event.mrn_system, event.mrn);
    b.set(identifier, "type", b.codeableConcept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR"));
    b.set(patient, "identifier", b.single(std::move(identifier)));
    if (!event.family.empty() || !event.given.empty()) {
      json::Value name = b.object();
      b.setIfPresent(name, "family", event.family);
      if (!event.given.empty()) {
        json::Value given = b.array();
        for (const std::string& part : event.given) b.push(given, b.string(part));
        b.set(name, "given", std::move(given));
      }
      b.set(patient, "name", b.single(std::move(name)));
    }
    b.setIfPresent(patient, "gender", event.sex);
    b.setIfPresent(patient, "birthDate", event.birth_date);
    writer.add(std::move(patient));
  }

  // Payers and Coverage
  for (const Event::Coverage& entry : event.coverage) {
    PayerInfo payer = *context.directory.payer(entry.payer_id);  // checked by readEvent
    const std::string organization_id = deriveId({"Organization", "payer", payer.id});
    json::Value organization = b.resource("Organization", organization_id, al::profile("alignment-organization"));
    json::Value identifiers = b.array();
    b.push(identifiers, b.identifier(al::codeSystem("payer-id"), payer.id));
    if (!payer.identifier_system.empty()) {
      b.push(identifiers, b.identifier(payer.identifier_system, payer.identifier_value));
    }
    b.set(organization, "identifier", std::move(identifiers));
    b.set(organization, "active", json::Value(true));
    b.set(organization, "type", b.single(b.codeableConcept("http://terminology.hl7.org/CodeSystem/organization-type", "pay")));
    b.set(organization, "name", payer.name);
    writer.add(std::move(organization));

    CoverageFact fact;
    fact.coverage_id = deriveId({"Coverage", payer.id, entry.member_id});
    fact.patient_id = patient_id;
    fact.payer_id = payer.id;
    fact.member_id = entry.member_id;
    fact.line_of_business = entry.line_of_business;
    fact.start = entry.start;
    fact.end = entry.end;
    json::Value coverage = b.resource("Coverage", fact.coverage_id, al::profile("alignment-coverage"));
    b.set(coverage, "identifier", b.single(b.identifier(al::codeSystem("member-id") + "/" + payer.id, entry.member_id)));
    b.set(coverage, "status", "active");
    if (!entry.line_of_business.empty()) {
      b.set(coverage, "type", b.codeableConcept(al::codeSystem("line-of-business"), entry.line_of_business));
    }
    b.set(coverage, "subscriberId", entry.member_id);
    b.set(coverage, "beneficiary", b.reference("Patient", patient_id));
    if (fact.dated()) {
      json::Value period = b.object();
      b.setIfPresent(period, "start", entry.start);
      b.setIfPresent(period, "end", entry.end);
      b.set(coverage, "period", std::move(period));
    }
    b.set(coverage, "payor", b.single(b.reference("Organization", organization_id)));
    writer.add(std::move(coverage));
    out.coverage.push_back(std::move(fact));
  }

  // Practitioners (and the requester's practice)
  if (event.requester) {
    writer.add(practitioner(b, *event.requester));
    if (!event.requester->organization_npi.empty()) {
      json::Value practice = b.resource("Organization", deriveId({"Organization", "npi", event.requester->organization_npi}),
                                        al::profile("alignment-organization"));
      b.set(practice, "identifier", b.single(b.identifier(al::kNpiSystem, event.requester->organization_npi)));
      b.set(practice, "active", json::Value(true));
      b.set(practice, "type", b.single(b.codeableConcept("http://terminology.hl7.org/CodeSystem/organization-type", "prov")));
      b.set(practice, "name", "Practice " + event.requester->organization_npi);
      writer.add(std::move(practice));
    }
  }
  if (event.specialist) writer.add(practitioner(b, *event.specialist));

  // ServiceRequest: created by the request, updated by later events.
  const std::string service_request_id = deriveId({"ServiceRequest", event.source, event.consult_id});
  {
    json::Value request(rapidjson::kObjectType);
    if (context.previous_service_request != nullptr && context.previous_service_request->IsObject()) {
      request.CopyFrom(*context.previous_service_request, b.allocator());
    } else {
      request = b.resource("ServiceRequest", service_request_id, al::profile("econsult-servicerequest"));
      b.set(request, "identifier", b.single(b.identifier(al::codeSystem("consult-id") + "/" + event.source, event.consult_id)));
      b.set(request, "intent", "order");
      b.set(request, "category", b.single(b.codeableConcept(al::codeSystem("alignment-category"), "e-consult", "E-consult")));
      b.set(request, "code", b.codeableConcept(al::codeSystem("alignment-category"), "e-consult", "E-consult"));
      b.set(request, "subject", b.reference("Patient", patient_id));
    }
    const char* status = event.event_type == "closed"      ? "completed"
                         : event.event_type == "cancelled" ? "revoked"
                                                           : "active";
    b.set(request, "status", status);
    if (event.event_type == "request") b.set(request, "authoredOn", event.occurred_at);
    if (event.requester) b.set(request, "requester", b.reference("Practitioner", practitionerId(event.requester->npi)));
    if (event.specialist) {
      b.set(request, "performer", b.single(b.reference("Practitioner", practitionerId(event.specialist->npi))));
      if (!event.specialist->specialty.empty()) {
        b.set(request, "performerType", b.codeableConcept(al::kNuccSystem, event.specialist->specialty));
      }
    }
    if (!event.urgency.empty()) b.set(request, "priority", event.urgency);
    if (!event.reason_codes.empty()) {
      json::Value reasons = b.array();
      for (const auto& [system, code] : event.reason_codes) b.push(reasons, b.codeableConcept(system, code));
      b.set(request, "reasonCode", std::move(reasons));
    }
    if (!event.question.empty()) {
      json::Value note = b.object();
      b.set(note, "text", event.question);
      b.set(request, "note", b.single(std::move(note)));
    }
    if (!event.attachments.empty()) {
      json::Value info = b.array();
      for (const Event::Attachment& attachment : event.attachments) {
        json::Value ref = b.object();
        b.set(ref, "display", attachment.title.empty() ? attachment.url : attachment.title);
        json::Value identifier = b.identifier("urn:ietf:rfc:3986", attachment.url);
        b.set(ref, "identifier", std::move(identifier));
        b.push(info, std::move(ref));
      }
      b.set(request, "supportingInfo", std::move(info));
    }
    writer.add(std::move(request));
  }

  // Task tracking the consult.
  {
    json::Value task = b.resource("Task", deriveId({"Task", event.source, event.consult_id}), al::profile("econsult-task"));
    const char* status = event.event_type == "request"    ? "requested"
                         : event.event_type == "response" ? "completed"
                         : event.event_type == "closed"   ? "completed"
                                                          : "cancelled";
    b.set(task, "identifier", b.single(b.identifier(al::codeSystem("consult-id") + "/" + event.source, event.consult_id)));
    b.set(task, "status", status);
    json::Value business = b.object();
    b.set(business, "text", event.event_type == "response" ? "answered" : event.event_type);
    b.set(task, "businessStatus", std::move(business));
    b.set(task, "intent", "order");
    b.set(task, "code", b.codeableConcept("http://hl7.org/fhir/CodeSystem/task-code", "fulfill"));
    b.set(task, "focus", b.reference("ServiceRequest", service_request_id));
    b.set(task, "for", b.reference("Patient", patient_id));
    b.set(task, "lastModified", event.occurred_at);
    if (event.event_type == "request") b.set(task, "authoredOn", event.occurred_at);
    if (event.requester) b.set(task, "requester", b.reference("Practitioner", practitionerId(event.requester->npi)));
    if (event.specialist) b.set(task, "owner", b.reference("Practitioner", practitionerId(event.specialist->npi)));
    if (event.event_type == "cancelled" && !event.reason.empty()) {
      json::Value reason = b.object();
      b.set(reason, "text", event.reason);
      b.set(task, "statusReason", std::move(reason));
    }
    writer.add(std::move(task));
  }

  // Communication: the specialist's answer.
  if (event.event_type == "response") {
    json::Value communication = b.resource("Communication", deriveId({"Communication", event.source, event.consult_id, event.event_id}),
                                           al::profile("econsult-communication"));
    b.set(communication, "basedOn", b.single(b.reference("ServiceRequest", service_request_id)));
    b.set(communication, "status", "completed");
    b.set(communication, "category", b.single(b.codeableConcept(al::codeSystem("alignment-category"), "e-consult", "E-consult")));
    b.set(communication, "subject", b.reference("Patient", patient_id));
    b.set(communication, "sent", event.answered_at);
    b.set(communication, "sender", b.reference("Practitioner", practitionerId(event.specialist->npi)));
    json::Value payload = b.object();
    b.set(payload, "contentString", event.recommendation);
    b.set(communication, "payload", b.single(std::move(payload)));
    json::Value minutes = b.object();
    b.set(minutes, "url", al::profile("minutes-spent"));
    b.set(minutes, "valueInteger", json::Value(static_cast<int64_t>(*event.minutes_spent)));
    json::Value extensions = b.single(std::move(minutes));
    communication.AddMember("extension", extensions, b.allocator());
    writer.add(std::move(communication));
  }

  // Claims, one per billing entry, with the coverage valid on the date of service.
  std::vector<CoverageFact> known = context.directory.coverageOf(patient_id);
  for (const CoverageFact& fact : out.coverage) {
    bool replaced = false;
    for (CoverageFact& existing : known) {
      if (existing.coverage_id == fact.coverage_id) {
        existing = fact;
        replaced = true;
      }
    }
    if (!replaced) known.push_back(fact);
  }
  for (size_t index = 0; index < event.billing.size(); ++index) {
    const Event::Billing& entry = event.billing[index];
    const CoverageFact* chosen = selectCoverage(known, entry.date_of_service);
    const std::string location = "$.billing[" + std::to_string(index) + "]";
    // R4 Claim.insurance is 1..*: without any coverage of the patient the claim cannot exist.
    const CoverageFact* insurance = chosen != nullptr ? chosen : (known.empty() ? nullptr : &known.back());
    if (insurance == nullptr) {
      issues.atLocation(Severity::kError, "required", location + ".dateOfService",
                        location + ": the patient has no coverage at all, so the claim has no insurer "
                        "(send patient.coverage or a roster first)");
      continue;
    }
    BillingFact billing;
    billing.claim_id = deriveId({"Claim", event.source, event.event_id, std::to_string(index)});
    billing.system = entry.system;
    billing.code = entry.code;
    billing.date_of_service = entry.date_of_service;
    billing.npi = entry.npi;
    billing.billed_by = entry.billed_by;
    if (chosen != nullptr) billing.coverage = *chosen;

    writer.add(practitionerFromNpi(b, entry.npi));
    if (event.specialist && event.specialist->npi == entry.npi) writer.add(practitioner(b, *event.specialist));
    if (event.requester && event.requester->npi == entry.npi) writer.add(practitioner(b, *event.requester));

    json::Value claim = b.resource("Claim", billing.claim_id, al::profile("billing-claim"));
    b.set(claim, "status", "active");
    b.set(claim, "type", b.codeableConcept(al::kClaimTypeSystem, "professional"));
    b.set(claim, "use", "claim");
    b.set(claim, "patient", b.reference("Patient", patient_id));
    b.set(claim, "created", event.occurred_at);
    b.set(claim, "insurer", b.reference("Organization", deriveId({"Organization", "payer", insurance->payer_id})));
    b.set(claim, "provider", b.reference("Practitioner", practitionerId(entry.npi)));
    b.set(claim, "priority", b.codeableConcept(al::kPrioritySystem, "normal"));
    b.set(claim, "referral", b.reference("ServiceRequest", service_request_id));
    json::Value coverage = b.object();
    b.set(coverage, "sequence", json::Value(1));
    b.set(coverage, "focal", json::Value(true));
    b.set(coverage, "coverage", b.reference("Coverage", insurance->coverage_id));
    b.set(claim, "insurance", b.single(std::move(coverage)));
    json::Value item = b.object();
    b.set(item, "sequence", json::Value(1));
    b.set(item, "productOrService", b.codeableConcept(entry.system, entry.code));
    b.set(item, "servicedDate", entry.date_of_service);
    b.set(claim, "item", b.single(std::move(item)));
    writer.add(std::move(claim));
    out.billing.push_back(std::move(billing));
  }
  return !issues.hasErrors();
}

}  // namespace fhir::mappers

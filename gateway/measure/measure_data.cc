// SPDX-License-Identifier: Apache-2.0
// What each patient's measure variables hold, read through Store::search (the caller's SearchAll).
#include <algorithm>
#include <map>

#include "conformance/search/search.h"
#include "gateway/measure/measure_internal.h"
#include "gateway/store/search_index.h"
#include "conformance/common/time_util.h"

namespace fhir::gateway::measure {
namespace {

constexpr std::string_view kNpi = "http://hl7.org/fhir/sid/us-npi";

Result<std::vector<std::unique_ptr<json::Document>>> readAll(const SearchAll& search, const std::string& type,
                                                               const SearchParams& params) {
  auto found = search(type, params);
  if (!found.ok()) return found.error();
  std::vector<std::unique_ptr<json::Document>> out;
  for (const std::string& text : *found) {
    auto doc = std::make_unique<json::Document>();
    json::ParseError error;
    if (!json::parse(text, *doc, error) || !doc->IsObject()) return Error{"a stored " + type + " is not JSON"};
    out.push_back(std::move(doc));
  }
  return out;
}

// Inclusive periods of dates or dateTimes (their date part) overlapping [start, end].
bool overlaps(const json::Value* period, const std::string& start, const std::string& end) {
  if (!period || !period->IsObject()) return true;
  auto from = json::getString(*period, "start");
  auto to = json::getString(*period, "end");
  if (from && std::string(from->substr(0, 10)) > end) return false;
  if (to && std::string(to->substr(0, 10)) < start) return false;
  return true;
}

std::string npiOf(const json::Value& resource) {
  const json::Value* identifiers = json::find(resource, "identifier");
  if (!identifiers || !identifiers->IsArray()) return "";
  for (const auto& identifier : identifiers->GetArray()) {
    if (json::getString(identifier, "system") == std::optional<std::string_view>(kNpi)) {
      if (auto value = json::getString(identifier, "value")) return std::string(*value);
    }
  }
  return "";
}

bool uses(const CompiledMeasure& measure, const char* name) { return measure.variables.count(name) > 0; }

bool hasCategory(const json::Value& resource, std::string_view code) {
  const json::Value* categories = json::find(resource, "category");
  if (!categories || !categories->IsArray()) return false;
  for (const auto& category : categories->GetArray()) {
    const json::Value* codings = json::find(category, "coding");
    if (!codings || !codings->IsArray()) continue;
    for (const auto& coding : codings->GetArray()) {
      if (json::getString(coding, "code") == std::optional<std::string_view>(code)) return true;
    }
  }
  return false;
}

}  // namespace

std::string referenceId(const json::Value* reference, std::string_view type) {
  if (!reference || !reference->IsObject()) return "";
  auto text = json::getString(*reference, "reference");
  if (!text) return "";
  std::string_view ref = *text;
  const std::string prefix = std::string(type) + "/";
  size_t at = ref.rfind(prefix);
  if (at == std::string_view::npos || (at > 0 && ref[at - 1] != '/')) return "";
  std::string_view id = ref.substr(at + prefix.size());
  if (id.find('/') != std::string_view::npos) return "";
  return std::string(id);
}

SearchAll storeSearch(Store& store, const std::string& base_url,
                      std::function<Result<std::optional<std::string>>(std::string_view, std::string_view, const std::string&)> visible) {
  return [&store, base_url, visible](const std::string& type, const SearchParams& params) -> Result<std::vector<std::string>> {
    auto registry = searchindex::registry();
    if (!registry.ok()) return registry.error();
    SearchParams criteria = params;
    criteria.emplace_back("_count", "1000");
    search::QueryOptions options;
    options.base_url = base_url;
    auto query = search::parseQuery(**registry, type, criteria, options);
    if (!query.ok()) return query.error();
    std::vector<std::string> out;
    SearchRequest request;
    request.query = &*query;
    request.base_url = base_url;
    request.now_us = nowMs() * 1000;
    request.visible = visible;
    while (true) {
      auto page = store.search(request);
      if (!page.ok()) return page.error();
      for (auto& hit : page->entries) {
        if (!hit.include) out.push_back(std::move(hit.json));
      }
      if (page->next_cursor.empty()) break;
      request.cursor = page->next_cursor;
    }
    return out;
  };
}

Result<std::string> subjectPracticeNpi(const std::string& subject, const SearchAll& search) {
  const size_t slash = subject.find('/');
  if (slash == std::string::npos) return std::string();
  const std::string type = subject.substr(0, slash);
  const std::string id = subject.substr(slash + 1);
  if (type != "Group" && type != "Organization") return std::string();
  auto found = readAll(search, type, {{"_id", id}});
  if (!found.ok()) return found.error();
  if (found->empty()) return Error{"not-found: no " + subject};
  return npiOf(*found->front());
}

Result<Population> loadPopulation(const CompiledMeasure& measure, const EvaluateParams& params, const SearchAll& search) {
  Population population;
  const std::string& start = params.period_start;
  const std::string& end = params.period_end;

  // Patients and their clusters: a member linked `replaced-by` another counts as its survivor.
  auto patients = readAll(search, "Patient", {});
  if (!patients.ok()) return patients.error();
  std::map<std::string, const json::Value*> patient_by_id;
  std::map<std::string, std::string> survivor_of;
  for (const auto& doc : *patients) {
    auto id = json::getString(*doc, "id");
    if (!id) continue;
    patient_by_id[std::string(*id)] = doc.get();
    if (const json::Value* links = json::find(*doc, "link"); links && links->IsArray()) {
      for (const auto& link : links->GetArray()) {
        if (json::getString(link, "type") == std::optional<std::string_view>("replaced-by")) {
          std::string other = referenceId(json::find(link, "other"), "Patient");
          if (!other.empty()) survivor_of[std::string(*id)] = other;
        }
      }
    }
  }
  auto survivor = [&](std::string id) {
    for (int hops = 0; hops < 8; ++hops) {
      auto next = survivor_of.find(id);
      if (next == survivor_of.end()) break;
      id = next->second;
    }
    return id;
  };
  for (auto& doc : *patients) population.docs.push_back(std::move(doc));

  // The subject.
  std::string subject_type, subject_id, practice_npi;
  if (!params.subject.empty()) {
    const size_t slash = params.subject.find('/');
    subject_type = params.subject.substr(0, slash);
    subject_id = slash == std::string::npos ? "" : params.subject.substr(slash + 1);
    if (subject_type != "Group" && subject_type != "Organization" && subject_type != "Patient") {
      return Error{"invalid: subject must be a Group, an Organization (a practice) or a Patient: " + params.subject};
    }
  }
  if (subject_type == "Patient" && !patient_by_id.count(subject_id)) return Error{"not-found: no " + params.subject};

  // Attribution memberships overlapping the period: one Group per membership, with that member.
  auto groups = readAll(search, "Group", {});
  if (!groups.ok()) return groups.error();
  std::map<std::string, PatientData> by_patient;
  bool subject_found = subject_type.empty() || subject_type == "Patient";
  if (subject_type == "Organization") {
    auto npi = subjectPracticeNpi(params.subject, search);
    if (!npi.ok()) return npi.error();
    practice_npi = *npi;
    subject_found = true;
    population.reporter = params.subject;
  }
  for (const auto& group : *groups) {
    const std::string group_id(json::getString(*group, "id").value_or(""));
    const std::string npi = npiOf(*group);
    if (npi.empty()) continue;  // not a practice's attribution list
    if (subject_type == "Group" && group_id != subject_id) continue;
    if (subject_type == "Organization" && npi != practice_npi) continue;
    if (subject_type == "Group") {
      subject_found = true;
      practice_npi = npi;
    }
    const json::Value* members = json::find(*group, "member");
    if (!members || !members->IsArray()) continue;
    for (const auto& member : members->GetArray()) {
      if (member.HasMember("inactive") && member["inactive"].IsBool() && member["inactive"].GetBool()) continue;
      if (!overlaps(json::find(member, "period"), start, end)) continue;
      std::string patient = referenceId(json::find(member, "entity"), "Patient");
      if (patient.empty()) continue;
      patient = survivor(patient);
      if (subject_type == "Patient" && patient != survivor(subject_id)) continue;
      auto one = std::make_unique<json::Document>();
      one->CopyFrom(*group, one->GetAllocator());
      json::Value& list = (*one)["member"];
      list.SetArray();
      json::Value copy;
      copy.CopyFrom(member, one->GetAllocator());
      list.PushBack(std::move(copy), one->GetAllocator());
      by_patient[patient].memberships.push_back(one.get());
      population.docs.push_back(std::move(one));
    }
  }
  if (!subject_found) return Error{"not-found: no attribution " + params.subject};
  if (subject_type == "Group" && !practice_npi.empty()) {
    auto orgs = readAll(search, "Organization", {{"identifier", std::string(kNpi) + "|" + practice_npi}});
    if (!orgs.ok()) return orgs.error();
    if (!orgs->empty()) population.reporter = "Organization/" + std::string(json::getString(*orgs->front(), "id").value_or(""));
    for (auto& doc : *orgs) population.docs.push_back(std::move(doc));
  }
  if (subject_type == "Patient") by_patient[survivor(subject_id)];
  for (auto& doc : *groups) population.docs.push_back(std::move(doc));

  // The patients' resources, by type: each bucketed by its (survivor) patient.
  auto bucket = [&](const char* type, const char* element, auto&& keep, auto&& add) -> Status {
    auto found = readAll(search, type, {});
    if (!found.ok()) return found.error();
    for (auto& doc : *found) {
      std::string patient = referenceId(json::find(*doc, element), "Patient");
      if (patient.empty()) continue;
      auto at = by_patient.find(survivor(patient));
      if (at == by_patient.end() || !keep(*doc)) continue;
      add(at->second, doc.get());
      population.docs.push_back(std::move(doc));
    }
    return Status::Ok();
  };
  auto always = [](const json::Value&) { return true; };
  if (uses(measure, "coverages")) {
    auto in_period = [&](const json::Value& coverage) { return overlaps(json::find(coverage, "period"), start, end); };
    if (auto status = bucket("Coverage", "beneficiary", in_period, [](PatientData& p, const json::Value* r) { p.coverages.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "consults")) {
    auto econsult = [](const json::Value& request) { return hasCategory(request, "e-consult"); };
    if (auto status = bucket("ServiceRequest", "subject", econsult, [](PatientData& p, const json::Value* r) { p.consults.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "communications")) {
    if (auto status = bucket("Communication", "subject", always, [](PatientData& p, const json::Value* r) { p.communications.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "tasks")) {
    if (auto status = bucket("Task", "for", always, [](PatientData& p, const json::Value* r) { p.tasks.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "observations")) {
    if (auto status = bucket("Observation", "subject", always, [](PatientData& p, const json::Value* r) { p.observations.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "carePlans")) {
    if (auto status = bucket("CarePlan", "subject", always, [](PatientData& p, const json::Value* r) { p.care_plans.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "claims")) {
    if (auto status = bucket("Claim", "patient", always, [](PatientData& p, const json::Value* r) { p.claims.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "riskAssessments")) {
    if (auto status = bucket("RiskAssessment", "subject", always, [](PatientData& p, const json::Value* r) { p.risk_assessments.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  if (uses(measure, "episodes")) {
    if (auto status = bucket("EpisodeOfCare", "patient", always, [](PatientData& p, const json::Value* r) { p.episodes.push_back(r); }); !status.ok()) return Error{status.message()};
  }
  for (auto& [id, data] : by_patient) {
    data.id = id;
    auto found = patient_by_id.find(id);
    data.patient = found == patient_by_id.end() ? nullptr : found->second;
    population.patients.push_back(std::move(data));
  }
  return population;
}

}  // namespace fhir::gateway::measure

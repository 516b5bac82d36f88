// SPDX-License-Identifier: Apache-2.0
// What each patient's measure variables hold, read through Store::search (the caller's SearchAll).
#include <algorithm>
#include <limits>
#include <map>
#include <unordered_map>

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

// Every resource of `type` matching `params`, parsed into the population's pool; their roots in
// order (pointers stay valid: `values` is a deque).
Result<std::vector<json::Value*>> readInto(Population& population, const SearchAll& search, const std::string& type,
                                           const SearchParams& params) {
  auto found = search(type, params);
  if (!found.ok()) return found.error();
  std::vector<json::Value*> out;
  out.reserve(found->size());
  for (std::string& text : *found) {
    json::Document doc(population.pool.get());
    json::ParseError error;
    if (!json::parse(text, doc, error) || !doc.IsObject()) return Error{"a stored " + type + " is not JSON"};
    std::string().swap(text);
    population.values.emplace_back(std::move(static_cast<json::Value&>(doc)));
    out.push_back(&population.values.back());
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

bool uses(const std::set<std::string>& variables, const char* name) { return variables.count(name) > 0; }

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

Status forEachStored(Store& store, const std::string& base_url, const std::string& type, const SearchParams& params,
                     const std::function<Status(std::string&& json)>& visit, const Visible& visible) {
  auto registry = searchindex::registry();
  if (!registry.ok()) return registry.error();
  SearchParams criteria = params;
  criteria.emplace_back("_count", "1000");
  search::QueryOptions options;
  options.base_url = base_url;
  auto query = search::parseQuery(**registry, type, criteria, options);
  if (!query.ok()) return query.error();
  SearchRequest request;
  request.query = &*query;
  request.base_url = base_url;
  request.now_us = nowMs() * 1000;
  request.visible = visible;
  while (true) {
    auto page = store.search(request);
    if (!page.ok()) return page.error();
    for (auto& hit : page->entries) {
      if (hit.include) continue;
      if (Status visited = visit(std::move(hit.json)); !visited.ok()) return visited;
    }
    if (page->next_cursor.empty()) return Status::Ok();
    request.cursor = page->next_cursor;
  }
}

SearchAll storeSearch(Store& store, const std::string& base_url, Visible visible) {
  return [&store, base_url, visible](const std::string& type, const SearchParams& params) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    if (type == kUnroutable) {
      auto waiting = store.listUnroutable(static_cast<size_t>(std::numeric_limits<int64_t>::max()));
      if (!waiting.ok()) return waiting.error();
      for (const UnroutableWrite& claim : *waiting) {
        std::string row = "{\"claimId\":\"";
        json::appendEscaped(claim.claim_id, row);
        row += "\",\"patientId\":\"";
        json::appendEscaped(claim.patient_id, row);
        row += "\"}";
        out.push_back(std::move(row));
      }
      return out;
    }
    Status scanned = forEachStored(store, base_url, type, params, [&out](std::string&& json) {
      out.push_back(std::move(json));
      return Status::Ok();
    }, visible);
    if (!scanned.ok()) return Error{scanned.message()};
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

Result<Population> loadPopulation(const std::set<std::string>& variables, const EvaluateParams& params, const SearchAll& search) {
  Population population;
  const std::string& start = params.period_start;
  const std::string& end = params.period_end;
  json::Allocator& pool = *population.pool;

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
  if (subject_type == "Organization") {
    auto npi = subjectPracticeNpi(params.subject, search);
    if (!npi.ok()) return npi.error();
    practice_npi = *npi;
    population.reporter = params.subject;
  }

  // Attribution lists (every Group: a region has a few per practice and payer).
  auto groups = readInto(population, search, "Group", {});
  if (!groups.ok()) return groups.error();
  // The Groups the subject takes its members from (every one for everyone or a Patient).
  auto relevant = [&](const json::Value& group, const std::string& npi) {
    if (npi.empty()) return false;  // not a practice's attribution list
    if (subject_type == "Group") return json::getString(group, "id") == std::optional<std::string_view>(subject_id);
    if (subject_type == "Organization") return npi == practice_npi;
    return true;
  };

  // Patients and their clusters: a member linked `replaced-by` another counts as its survivor.
  // For everyone, every Patient is read. For a subject, only its members' records, by `_id`
  // through the index, a hop at a time: the members, what replaced them (`replaced-by`), and the
  // records their survivors replace (`replaces`: gateway/merge writes both directions).
  std::unordered_map<std::string, const json::Value*> patient_by_id;
  std::unordered_map<std::string, std::string> survivor_of;
  std::vector<std::string> linked;  // ids the records read link to, either way
  auto take = [&](const std::vector<json::Value*>& docs) {
    for (const json::Value* doc : docs) {
      auto id = json::getString(*doc, "id");
      if (!id || !patient_by_id.emplace(std::string(*id), doc).second) continue;
      const json::Value* links = json::find(*doc, "link");
      if (!links || !links->IsArray()) continue;
      for (const auto& link : links->GetArray()) {
        std::string other = referenceId(json::find(link, "other"), "Patient");
        if (other.empty()) continue;
        auto type = json::getString(link, "type");
        if (type == std::optional<std::string_view>("replaced-by")) survivor_of[std::string(*id)] = other;
        if (type == std::optional<std::string_view>("replaced-by") || type == std::optional<std::string_view>("replaces")) {
          linked.push_back(std::move(other));
        }
      }
    }
  };
  // Every resource of `type` whose `param` is one of `values` (200 a query).
  auto readAny = [&](const char* type, const char* param, const std::vector<std::string>& values) -> Result<std::vector<json::Value*>> {
    std::vector<json::Value*> out;
    constexpr size_t kChunk = 200;
    for (size_t from = 0; from < values.size(); from += kChunk) {
      std::string any;
      for (size_t i = from; i < std::min(values.size(), from + kChunk); ++i) any += (any.empty() ? "" : ",") + values[i];
      auto found = readInto(population, search, type, {{param, any}});
      if (!found.ok()) return found.error();
      out.insert(out.end(), found->begin(), found->end());
    }
    return out;
  };
  if (subject_type.empty()) {
    auto patients = readInto(population, search, "Patient", {});
    if (!patients.ok()) return patients.error();
    take(*patients);
  } else {
    std::set<std::string> wanted;
    if (subject_type == "Patient") wanted.insert(subject_id);
    for (const json::Value* group : *groups) {
      if (subject_type == "Patient" || !relevant(*group, npiOf(*group))) continue;
      const json::Value* members = json::find(*group, "member");
      if (!members || !members->IsArray()) continue;
      for (const auto& member : members->GetArray()) {
        std::string patient = referenceId(json::find(member, "entity"), "Patient");
        if (!patient.empty()) wanted.insert(std::move(patient));
      }
    }
    std::vector<std::string> ids(wanted.begin(), wanted.end());
    for (int hops = 0; hops < 8 && !ids.empty(); ++hops) {
      auto found = readAny("Patient", "_id", ids);
      if (!found.ok()) return found.error();
      take(*found);
      ids.clear();
      for (std::string& id : linked) {
        if (!patient_by_id.count(id) && wanted.insert(id).second) ids.push_back(std::move(id));
      }
      linked.clear();
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
  if (subject_type == "Patient" && !patient_by_id.count(subject_id)) return Error{"not-found: no " + params.subject};

  // Attribution memberships overlapping the period: one Group per membership, with that member
  // (the Group's other elements, not its other members: a practice's list has thousands).
  std::map<std::string, PatientData> by_patient;
  bool subject_found = subject_type.empty() || subject_type == "Patient" || subject_type == "Organization";
  for (const json::Value* group : *groups) {
    const std::string npi = npiOf(*group);
    if (!relevant(*group, npi)) continue;
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
      json::Value one(rapidjson::kObjectType);
      for (const auto& field : group->GetObject()) {
        json::Value name(field.name, pool);
        json::Value value(rapidjson::kArrayType);
        if (std::string_view(field.name.GetString(), field.name.GetStringLength()) == "member") {
          value.PushBack(json::Value(member, pool), pool);
        } else {
          value.CopyFrom(field.value, pool);
        }
        one.AddMember(name, value, pool);
      }
      population.values.push_back(std::move(one));
      by_patient[patient].memberships.push_back(&population.values.back());
    }
  }
  if (!subject_found) return Error{"not-found: no attribution " + params.subject};
  if (subject_type == "Group" && !practice_npi.empty()) {
    auto orgs = readInto(population, search, "Organization", {{"identifier", std::string(kNpi) + "|" + practice_npi}});
    if (!orgs.ok()) return orgs.error();
    if (!orgs->empty()) population.reporter = "Organization/" + std::string(json::getString(*orgs->front(), "id").value_or(""));
  }
  if (subject_type == "Patient") by_patient[survivor(subject_id)];

  // The patients' resources, by type: each bucketed by its (survivor) patient. With a subject,
  // only its patients' (and their linked records') resources are read, through the reference
  // index (`param=Patient/a,Patient/b,...`, 200 a query); for everyone, every resource of the type.
  std::vector<std::string> references;
  if (!subject_type.empty()) {
    std::unordered_map<std::string, std::vector<std::string>> cluster;  // survivor -> linked ids
    for (const auto& [id, next] : survivor_of) cluster[survivor(id)].push_back(id);
    for (const auto& [id, data] : by_patient) {
      references.push_back("Patient/" + id);
      if (auto linked = cluster.find(id); linked != cluster.end()) {
        for (const std::string& other : linked->second) references.push_back("Patient/" + other);
      }
    }
  }
  auto read = [&](const char* type, const char* param) -> Result<std::vector<json::Value*>> {
    if (subject_type.empty()) return readInto(population, search, type, {});
    return readAny(type, param, references);
  };
  auto bucket = [&](const char* type, const char* element, auto&& add) -> Status {
    // The search parameter of `element` (R4: Coverage.beneficiary, Task.for as `subject`, ...).
    const char* param = std::string_view(element) == "for" ? "subject" : element;
    auto found = read(type, param);
    if (!found.ok()) return found.error();
    for (const json::Value* doc : *found) {
      std::string patient = referenceId(json::find(*doc, element), "Patient");
      if (patient.empty()) continue;
      auto at = by_patient.find(survivor(patient));
      if (at == by_patient.end()) continue;
      add(at->second, doc);
    }
    return Status::Ok();
  };
  if (uses(variables, "coverages")) {
    auto status = bucket("Coverage", "beneficiary", [&](PatientData& p, const json::Value* r) {
      if (overlaps(json::find(*r, "period"), start, end)) p.coverages.push_back(r);
    });
    if (!status.ok()) return Error{status.message()};
  }
  if (uses(variables, "consults") || uses(variables, "referrals")) {
    auto status = bucket("ServiceRequest", "subject", [](PatientData& p, const json::Value* r) {
      if (hasCategory(*r, "e-consult")) p.consults.push_back(r);
      if (hasCategory(*r, "social-referral")) p.referrals.push_back(r);
    });
    if (!status.ok()) return Error{status.message()};
  }
  struct Simple {
    const char* variable;
    const char* type;
    const char* element;
    std::vector<const json::Value*> PatientData::*list;
  };
  static const Simple kSimple[] = {
      {"communications", "Communication", "subject", &PatientData::communications},
      {"tasks", "Task", "for", &PatientData::tasks},
      {"observations", "Observation", "subject", &PatientData::observations},
      {"carePlans", "CarePlan", "subject", &PatientData::care_plans},
      {"riskAssessments", "RiskAssessment", "subject", &PatientData::risk_assessments},
      {"episodes", "EpisodeOfCare", "patient", &PatientData::episodes},
  };
  for (const Simple& simple : kSimple) {
    if (!uses(variables, simple.variable)) continue;
    auto status = bucket(simple.type, simple.element, [&](PatientData& p, const json::Value* r) { (p.*simple.list).push_back(r); });
    if (!status.ok()) return Error{status.message()};
  }
  if (uses(variables, "claims") || uses(variables, "unroutable")) {
    // %unroutable: the routing state the store keeps beside the resources (claims waiting for a
    // payer), answered by the search callback as the pseudo-type `$unroutable` (measure.h).
    std::set<std::string> waiting;
    if (uses(variables, "unroutable")) {
      auto found = search(std::string(kUnroutable), {});
      if (!found.ok()) return found.error();
      for (const std::string& text : *found) {
        json::Document doc;
        json::ParseError error;
        if (!json::parse(text, doc, error) || !doc.IsObject()) return Error{"a routing-state row is not JSON"};
        if (auto id = json::getString(doc, "claimId")) waiting.insert(std::string(*id));
      }
    }
    auto status = bucket("Claim", "patient", [&](PatientData& p, const json::Value* r) {
      p.claims.push_back(r);
      if (waiting.count(std::string(json::getString(*r, "id").value_or("")))) p.unroutable.push_back(r);
    });
    if (!status.ok()) return Error{status.message()};
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

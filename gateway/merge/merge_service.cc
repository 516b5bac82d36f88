// SPDX-License-Identifier: Apache-2.0
#include "gateway/merge/merge_service.h"

#include <algorithm>
#include <deque>
#include <optional>

#include "gateway/dispatch/patient_match.h"
#include "conformance/common/time_util.h"
#include "conformance/common/ids.h"

namespace fhir::gateway::merge {
namespace {

#define RETURN_IF_ERROR(expr)       \
  do {                              \
    Status status_ = (expr);        \
    if (!status_.ok()) return Error{status_.message()}; \
  } while (false)

constexpr std::string_view kPatientEvidenceDemographics = "demographics: family, first given name, birthDate, gender";

std::string patientOfReference(const json::Value* reference) {
  if (reference == nullptr) return {};
  const std::string_view text = json::getString(*reference, "reference").value_or("");
  return text.rfind("Patient/", 0) == 0 ? std::string(text.substr(8)) : std::string();
}

// The merge cites its contributions (issue 11): one Provenance per merged resource, its id
// derived from the resource's, targeting it, with the Provenance of every contribution it merged
// as an entity (role `source`), in id order (each source's latest word: a later one replaces its
// row). `recorded` is the time of the merge; the store decides
// "unchanged" without it (ResourceWrite::same_as), so citing the same contributions again adds
// no version, and a new contribution a new one.
// Nothing when no contribution has a Provenance (resources stored before contributions existed).
std::optional<ResourceWrite> citation(const std::string& type, const std::string& id,
                                      const std::vector<Contribution>& contributions) {
  std::set<std::string> cited;
  for (const Contribution& c : contributions) {
    if (!c.provenance.empty()) cited.insert(c.provenance);
  }
  if (cited.empty()) return std::nullopt;
  json::Document provenance;
  provenance.SetObject();
  auto& allocator = provenance.GetAllocator();
  const std::string provenance_id = fhir::deriveId({"Provenance", "merge", type, id});
  json::addString(provenance, "resourceType", "Provenance", allocator);
  json::addString(provenance, "id", provenance_id, allocator);
  json::Value targets(rapidjson::kArrayType);
  json::Value target(rapidjson::kObjectType);
  json::addString(target, "reference", type + "/" + id, allocator);
  targets.PushBack(target, allocator);
  json::addMember(provenance, "target", std::move(targets), allocator);
  json::Value agent(rapidjson::kObjectType);
  {
    json::Value coding(rapidjson::kObjectType);
    json::addString(coding, "system", "http://terminology.hl7.org/CodeSystem/provenance-participant-type", allocator);
    json::addString(coding, "code", "assembler", allocator);
    json::Value codings(rapidjson::kArrayType);
    codings.PushBack(coding, allocator);
    json::Value agent_type(rapidjson::kObjectType);
    json::addMember(agent_type, "coding", std::move(codings), allocator);
    json::addMember(agent, "type", std::move(agent_type), allocator);
    json::Value who(rapidjson::kObjectType);
    json::addString(who, "display", "fhir-gateway: merge of the sources' contributions (merge-rules.json)", allocator);
    json::addMember(agent, "who", std::move(who), allocator);
  }
  json::Value agents(rapidjson::kArrayType);
  agents.PushBack(agent, allocator);
  json::addMember(provenance, "agent", std::move(agents), allocator);
  json::Value entities(rapidjson::kArrayType);
  for (const std::string& provenance_id : cited) {  // a std::set: id order, any arrival order
    json::Value entity(rapidjson::kObjectType);
    json::addString(entity, "role", "source", allocator);
    json::Value what(rapidjson::kObjectType);
    json::addString(what, "reference", "Provenance/" + provenance_id, allocator);
    json::addMember(entity, "what", std::move(what), allocator);
    entities.PushBack(entity, allocator);
  }
  json::addMember(provenance, "entity", std::move(entities), allocator);
  ResourceWrite write{"Provenance", provenance_id, {}, json::serialize(provenance)};
  json::addString(provenance, "recorded", nowIso(), allocator);
  write.json = json::serialize(provenance);
  return write;
}

// One hook call: caches what it read in the transaction.
class MergeRun {
 public:
  MergeRun(const MergeRules& rules, MergeTx& tx) : rules_(rules), tx_(tx) {}

  Status run(const IngestCommit& commit, std::vector<ResourceWrite>& out, std::vector<fhir::CoverageFact>& coverage) {
    std::set<std::pair<std::string, std::string>> targets;
    std::set<std::pair<std::string, std::string>> deferred;  // merged by a later commit (one version per file)
    std::set<std::string> touched;
    for (const Contribution& contribution : commit.contributions) {
      RETURN_IF_ERROR(tx_.putContribution(contribution));
      if (commit.defer_groups && contribution.type == "Group") deferred.emplace(contribution.type, contribution.id);
      else targets.emplace(contribution.type, contribution.id);
      if (!contribution.patient_id.empty()) touched.insert(contribution.patient_id);
    }
    for (const std::string& reference : commit.remerge) {
      const size_t slash = reference.find('/');
      if (slash != std::string::npos) targets.emplace(reference.substr(0, slash), reference.substr(slash + 1));
    }
    std::set<std::string> clustered;
    for (const std::string& patient : touched) {
      if (clustered.count(patient)) continue;
      auto members = cluster(patient);
      if (!members.ok()) return members.error();
      std::map<std::string, std::set<std::string>> kinds;
      for (const std::string& member : *members) {
        auto own = contributionsOf("Patient", member);
        if (!own.ok()) return own.error();
        for (const Contribution& c : **own) kinds[member].insert(c.kind);
        if ((*own)->empty()) kinds[member];
      }
      const std::string survivor = chooseSurvivor(rules_, kinds);
      for (const std::string& member : *members) {
        clustered.insert(member);
        auto previous = tx_.survivorOf(member);
        if (!previous.ok()) return previous.error();
        survivors_[member] = survivor;
        targets.emplace("Patient", member);
        if (*previous == survivor) continue;
        RETURN_IF_ERROR(tx_.setSurvivor(member, survivor));
        auto about = tx_.contributedAbout(member);
        if (!about.ok()) return about.error();
        for (const auto& target : *about) {
          if (!deferred.count(target)) targets.insert(target);
        }
      }
      cluster_of_[survivor] = *members;
    }
    for (const auto& [type, id] : targets) {
      RETURN_IF_ERROR(type == "Patient" ? mergePatient(id, out) : mergeOther(type, id, out, coverage));
    }
    return Status::Ok();
  }

 private:
  Result<const std::vector<Contribution>*> contributionsOf(const std::string& type, const std::string& id) {
    const std::string key = type + "/" + id;
    auto found = contributions_.find(key);
    if (found == contributions_.end()) {
      auto read = tx_.contributions(type, id);
      if (!read.ok()) return read.error();
      found = contributions_.emplace(key, std::move(*read)).first;
    }
    return &found->second;
  }

  // The merge of one patient's own Patient contributions (null when it has none).
  Result<const json::Document*> ownPatient(const std::string& id) {
    auto found = own_.find(id);
    if (found != own_.end()) return found->second.IsObject() ? &found->second : nullptr;
    auto mine = contributionsOf("Patient", id);
    if (!mine.ok()) return mine.error();
    json::Document doc;
    if (!(*mine)->empty()) {
      auto merged = merge(rules_, **mine);
      if (!merged.ok()) return merged.error();
      json::ParseError error;
      json::parse(merged->json, doc, error);
    }
    auto& kept = own_.emplace(id, std::move(doc)).first->second;
    return kept.IsObject() ? &kept : nullptr;
  }

  // Whether a payer's roster contributed this patient; an error when the store failed.
  Result<bool> fromRoster(const std::string& id) {
    auto mine = contributionsOf("Patient", id);
    if (!mine.ok()) return mine.error();
    return std::any_of((*mine)->begin(), (*mine)->end(), [](const Contribution& c) { return c.kind == "roster"; });
  }

  // Sides of a conflict: each patient's values of the disputed elements and its sources. An error
  // when the store failed reading the sources (never a side without sources).
  Result<std::string> conflictDetail(const std::string& a, const json::Value& pa, const std::string& b, const json::Value& pb,
                             const std::vector<std::string>& elements) {
    json::Document detail;
    detail.SetObject();
    auto& allocator = detail.GetAllocator();
    for (const auto& [id, patient] : {std::pair<const std::string&, const json::Value&>{a, pa}, {b, pb}}) {
      json::Value side(rapidjson::kObjectType);
      for (const std::string& element : elements) {
        if (const json::Value* value = json::find(patient, element)) {
          json::Value copy;
          copy.CopyFrom(*value, allocator);
          json::addMember(side, element, std::move(copy), allocator);
        }
      }
      json::Value sources(rapidjson::kArrayType);
      auto mine = contributionsOf("Patient", id);
      if (!mine.ok()) return mine.error();
      for (const Contribution& c : **mine) {
        json::Value source(rapidjson::kObjectType);
        json::addString(source, "kind", c.kind, allocator);
        json::addString(source, "organization", c.organization, allocator);
        if (!c.provenance.empty()) json::addString(source, "provenance", "Provenance/" + c.provenance, allocator);
        sources.PushBack(source, allocator);
      }
      json::addMember(side, "sources", std::move(sources), allocator);
      json::addMember(detail, "Patient/" + id, std::move(side), allocator);
    }
    return json::serialize(detail);
  }

  // Patients linked to `start`: shared Coverage (unless demographics conflict), recorded links,
  // and the roster demographics key.
  Result<std::vector<std::string>> cluster(const std::string& start) {
    std::set<std::string> seen{start};
    std::deque<std::string> queue{start};
    while (!queue.empty()) {
      const std::string patient = queue.front();
      queue.pop_front();
      auto own = ownPatient(patient);
      if (!own.ok()) return own.error();
      std::vector<std::pair<std::string, std::string>> next;  // (patient, evidence)
      auto neighbours = tx_.coverageNeighbours(patient);
      if (!neighbours.ok()) return neighbours.error();
      for (const std::string& other : *neighbours) {
        if (seen.count(other)) continue;
        auto theirs = ownPatient(other);
        if (!theirs.ok()) return theirs.error();
        if (*own && *theirs) {
          const std::vector<std::string> disputed = conflictingElements(rules_, **own, **theirs);
          if (!disputed.empty()) {
            std::string elements;
            for (const std::string& element : disputed) elements += (elements.empty() ? "" : ",") + element;
            const auto& [a, b] = std::minmax(patient, other);
            const json::Value& pa = a == patient ? **own : **theirs;
            const json::Value& pb = a == patient ? **theirs : **own;
            auto shared = sharedCoverage(patient, other);
            if (!shared.ok()) return shared.error();
            auto detail = conflictDetail(a, pa, b, pb, disputed);
            if (!detail.ok()) return detail.error();
            RETURN_IF_ERROR(tx_.putConflict(PatientConflict{*shared, a, b, elements, std::move(*detail), ""}));
            continue;
          }
        }
        auto shared = sharedCoverage(patient, other);
        if (!shared.ok()) return shared.error();
        next.emplace_back(other, "member-id: Coverage/" + *shared);
      }
      auto links = tx_.linked(patient);
      if (!links.ok()) return links.error();
      for (const std::string& other : *links) next.emplace_back(other, "");
      if (*own) {
        const PatientDemographics who = demographicsOf(**own);
        if (who.complete()) {
          auto same = tx_.patientsWithDemographics(who);
          if (!same.ok()) return same.error();
          auto roster = fromRoster(patient);
          if (!roster.ok()) return roster.error();
          for (const std::string& other : *same) {
            if (other == patient) continue;
            auto other_roster = *roster ? Result<bool>(true) : fromRoster(other);
            if (!other_roster.ok()) return other_roster.error();
            if (*other_roster) next.emplace_back(other, std::string(kPatientEvidenceDemographics));
          }
        }
      }
      for (const auto& [other, evidence] : next) {
        if (other.empty() || !seen.insert(other).second) continue;
        if (!evidence.empty()) {
          const auto& [a, b] = std::minmax(patient, other);
          RETURN_IF_ERROR(tx_.putLink(a, b, evidence));
        }
        queue.push_back(other);
      }
    }
    return std::vector<std::string>(seen.begin(), seen.end());
  }

  // The Coverage id two patients both have contributions to; empty when none. An error when the
  // store failed (never "none").
  Result<std::string> sharedCoverage(const std::string& a, const std::string& b) {
    auto about = tx_.contributedAbout(a);
    if (!about.ok()) return about.error();
    auto other = tx_.contributedAbout(b);
    if (!other.ok()) return other.error();
    for (const auto& [type, id] : *about) {
      if (type == "Coverage" && std::find(other->begin(), other->end(), std::make_pair(type, id)) != other->end()) return id;
    }
    return std::string();
  }

  Result<std::string> survivorOf(const std::string& patient) {
    auto known = survivors_.find(patient);
    if (known != survivors_.end()) return known->second;
    auto stored = tx_.survivorOf(patient);
    if (!stored.ok()) return stored.error();
    const std::string survivor = stored->empty() ? patient : *stored;
    survivors_[patient] = survivor;
    return survivor;
  }

  Status mergePatient(const std::string& id, std::vector<ResourceWrite>& out) {
    auto survivor = survivorOf(id);
    if (!survivor.ok()) return survivor.error();
    std::vector<Contribution> all;
    std::vector<std::string> others;
    if (*survivor == id) {
      auto members = cluster_of_.find(id);
      std::vector<std::string> list = members != cluster_of_.end() ? members->second : std::vector<std::string>{id};
      for (const std::string& member : list) {
        auto mine = contributionsOf("Patient", member);
        if (!mine.ok()) return mine.error();
        for (Contribution c : **mine) {
          c.id = id;
          all.push_back(std::move(c));
        }
        if (member != id) others.push_back(member);
      }
    } else {
      auto mine = contributionsOf("Patient", id);
      if (!mine.ok()) return mine.error();
      all = **mine;
      others.push_back(*survivor);
    }
    if (all.empty()) return Status::Ok();
    auto merged = merge(rules_, all);
    if (!merged.ok()) return merged.error();
    if (auto cites = citation("Patient", id, all)) out.push_back(std::move(*cites));
    if (others.empty()) {
      out.push_back(ResourceWrite{"Patient", id, std::move(merged->json), {}});
      return Status::Ok();
    }
    json::Document patient;
    json::ParseError error;
    if (!json::parse(merged->json, patient, error)) return Error{"merge: merged Patient is not JSON"};
    auto& allocator = patient.GetAllocator();
    json::Value links(rapidjson::kArrayType);
    for (const std::string& other : others) {
      json::Value link(rapidjson::kObjectType);
      json::Value reference(rapidjson::kObjectType);
      json::addString(reference, "reference", "Patient/" + other, allocator);
      json::addMember(link, "other", std::move(reference), allocator);
      json::addString(link, "type", *survivor == id ? "replaces" : "replaced-by", allocator);
      links.PushBack(link, allocator);
    }
    patient.RemoveMember("link");
    json::addMember(patient, "link", std::move(links), allocator);
    out.push_back(ResourceWrite{"Patient", id, json::serialize(patient), {}});
    return Status::Ok();
  }

  Status mergeOther(const std::string& type, const std::string& id, std::vector<ResourceWrite>& out,
                    std::vector<fhir::CoverageFact>& coverage) {
    auto all = contributionsOf(type, id);
    if (!all.ok()) return all.error();
    if ((*all)->empty()) return Status::Ok();
    Survivors survivors;
    std::string payer;
    for (const Contribution& c : **all) {
      if (!c.payer.empty() && payer.empty()) payer = c.payer;
      std::vector<std::string> patients{c.patient_id};
      if (c.kind == "roster-full") {
        json::Document marker;
        json::ParseError error;
        if (json::parse(c.json, marker, error)) {
          if (const json::Value* listed = json::find(marker, "listed"); listed && listed->IsArray()) {
            for (const json::Value& item : listed->GetArray()) {
              if (json::isString(item) && json::stringView(item).rfind("Patient/", 0) == 0) {
                patients.emplace_back(json::stringView(item).substr(8));
              }
            }
          }
        }
      }
      for (const std::string& patient : patients) {
        if (patient.empty()) continue;
        auto survivor = survivorOf(patient);
        if (!survivor.ok()) return survivor.error();
        if (*survivor != patient) survivors[patient] = *survivor;
      }
    }
    auto merged = merge(rules_, **all, survivors);
    if (!merged.ok()) return merged.error();
    if (type == "Coverage") {
      json::Document resource;
      json::ParseError error;
      if (json::parse(merged->json, resource, error)) {
        const std::string patient = patientOfReference(json::find(resource, "beneficiary"));
        if (!patient.empty()) coverage.push_back(coverageFactOf(resource, *merged, payer, patient));
        // A patient this Coverage names that is not the beneficiary's (conflicting demographics)
        // gets a row that stops routing its claims rather than guess (router: basis "conflict").
        std::set<std::string> others;
        for (const Contribution& c : **all) {
          if (c.patient_id.empty()) continue;
          auto survivor = survivorOf(c.patient_id);
          if (!survivor.ok()) return survivor.error();
          if (*survivor != patient) others.insert(*survivor);
        }
        for (const std::string& other : others) {
          fhir::CoverageFact fact = coverageFactOf(resource, *merged, payer, other);
          fact.basis = "conflict";
          coverage.push_back(std::move(fact));
        }
      }
    }
    if (auto cites = citation(type, id, **all)) out.push_back(std::move(*cites));
    out.push_back(ResourceWrite{type, id, std::move(merged->json), {}});
    return Status::Ok();
  }

  const MergeRules& rules_;
  MergeTx& tx_;
  std::map<std::string, std::vector<Contribution>> contributions_;
  std::map<std::string, json::Document> own_;
  std::map<std::string, std::string> survivors_;
  std::map<std::string, std::vector<std::string>> cluster_of_;
};

}  // namespace

fhir::CoverageFact coverageFactOf(const json::Value& coverage, const Merged& merged, const std::string& payer_id,
                                     const std::string& patient_id) {
  fhir::CoverageFact fact;
  fact.coverage_id = std::string(json::getString(coverage, "id").value_or(""));
  fact.patient_id = patient_id;
  fact.payer_id = payer_id;
  fact.member_id = std::string(json::getString(coverage, "subscriberId").value_or(""));
  if (const json::Value* type = json::find(coverage, "type")) {
    if (const json::Value* codings = json::find(*type, "coding"); codings && codings->IsArray() && !codings->Empty()) {
      fact.line_of_business = std::string(json::getString((*codings)[0], "code").value_or(""));
    }
  }
  if (const json::Value* period = json::find(coverage, "period")) {
    fact.start = std::string(json::getString(*period, "start").value_or(""));
    fact.end = std::string(json::getString(*period, "end").value_or(""));
  }
  auto winner = merged.winners.find("period");
  if (winner != merged.winners.end()) fact.basis = winner->second == "roster" ? "payer" : winner->second;
  if (const json::Value* order = json::find(coverage, "order"); order && json::isNumber(*order)) {
    fact.order = static_cast<int>(json::numberAsInt64(*order).value_or(0));
  }
  return fact;
}

Status mergeCommit(const MergeRules& rules, MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                   std::vector<fhir::CoverageFact>& coverage) {
  MergeRun run(rules, tx);
  return run.run(commit, merged, coverage);
}

MergeHook makeMergeHook(std::shared_ptr<const MergeRules> rules) {
  return [rules](MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                 std::vector<fhir::CoverageFact>& coverage) { return mergeCommit(*rules, tx, commit, merged, coverage); };
}

}  // namespace fhir::gateway::merge

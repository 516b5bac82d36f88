// SPDX-License-Identifier: Apache-2.0
#include "gateway/ingest/contributions.h"

#include <algorithm>
#include <set>

#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

constexpr std::string_view kPayerIdSystem = "https://fhir.alignment-gateway.org/CodeSystem/payer-id";

std::string patientOf(const json::Value* reference) {
  if (reference == nullptr) return {};
  const std::string_view text = json::getString(*reference, "reference").value_or("");
  return text.rfind("Patient/", 0) == 0 ? std::string(text.substr(8)) : std::string();
}

const json::Value* entryResource(const json::Value& bundle, std::string_view reference) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (reference == std::string(json::getString(resource, "resourceType").value_or("")) + "/" +
                         std::string(json::getString(resource, "id").value_or(""))) {
      return &resource;
    }
  }
  return nullptr;
}

std::string payerOfCoverage(const json::Value& bundle, const json::Value& coverage) {
  const json::Value* payors = json::find(coverage, "payor");
  if (!payors || !payors->IsArray() || payors->Empty()) return {};
  const json::Value* payer = entryResource(bundle, json::getString((*payors)[0], "reference").value_or(""));
  const json::Value* identifiers = payer ? json::find(*payer, "identifier") : nullptr;
  for (rapidjson::SizeType i = 0; identifiers && identifiers->IsArray() && i < identifiers->Size(); ++i) {
    if (json::getString((*identifiers)[i], "system") == kPayerIdSystem) {
      return std::string(json::getString((*identifiers)[i], "value").value_or(""));
    }
  }
  return {};
}

}  // namespace

void takeContributions(const merge::MergeRules& rules, const json::Value& bundle, const ContributionSource& source,
                       IngestCommit& commit) {
  std::string provenance;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    if (json::getString(entry["resource"], "resourceType") == "Provenance") {
      provenance = std::string(json::getString(entry["resource"], "id").value_or(""));
    }
  }
  std::vector<ResourceWrite> kept;
  for (ResourceWrite& write : commit.resources) {
    if (!rules.merged(write.type)) {
      kept.push_back(std::move(write));
      continue;
    }
    const json::Value* resource = entryResource(bundle, write.type + "/" + write.id);
    merge::Contribution contribution;
    contribution.type = write.type;
    contribution.id = write.id;
    contribution.kind = source.kind;
    contribution.organization = source.organization;
    contribution.rank = source.rank;
    contribution.tiebreak = source.tiebreak;
    contribution.provenance = provenance;
    // One row per source (per member of a Group): its latest word (store: rank, then tiebreak).
    contribution.contributor = source.kind + '|' + source.organization;
    if (write.type == "Patient") {
      contribution.patient_id = write.id;
    } else if (write.type == "Coverage" && resource) {
      contribution.patient_id = patientOf(json::find(*resource, "beneficiary"));
      contribution.payer = source.payer.empty() ? payerOfCoverage(bundle, *resource) : source.payer;
    } else if (write.type == "Group" && resource) {
      const json::Value* members = json::find(*resource, "member");
      if (members && members->IsArray() && !members->Empty()) contribution.patient_id = patientOf(json::find((*members)[0], "entity"));
      // One contribution per member: a roster row of one member does not replace another's.
      contribution.contributor += '|' + contribution.patient_id;
    }
    contribution.json = std::move(write.json);
    commit.contributions.push_back(std::move(contribution));
  }
  commit.resources = std::move(kept);
}

std::vector<fhir::CoverageFact> claimEvidence(const json::Value& bundle, const std::string& payer_id) {
  std::set<std::string> dates;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    const std::string_view type = json::getString(resource, "resourceType").value_or("");
    if (type != "Claim" && type != "ExplanationOfBenefit") continue;
    const json::Value* items = json::find(resource, "item");
    for (rapidjson::SizeType i = 0; items && items->IsArray() && i < items->Size(); ++i) {
      if (auto date = json::getString((*items)[i], "servicedDate")) dates.emplace(*date);
      if (const json::Value* period = json::find((*items)[i], "servicedPeriod")) {
        if (auto start = json::getString(*period, "start")) dates.emplace(*start);
        if (auto end = json::getString(*period, "end")) dates.emplace(*end);
      }
    }
  }
  std::vector<fhir::CoverageFact> facts;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Coverage") continue;
    for (const std::string& date : dates) {
      fhir::CoverageFact fact;
      fact.coverage_id = std::string(json::getString(resource, "id").value_or(""));
      fact.patient_id = patientOf(json::find(resource, "beneficiary"));
      fact.payer_id = payer_id;
      fact.member_id = std::string(json::getString(resource, "subscriberId").value_or(""));
      if (const json::Value* lob = json::find(resource, "type")) {
        if (const json::Value* codings = json::find(*lob, "coding"); codings && codings->IsArray() && !codings->Empty()) {
          fact.line_of_business = std::string(json::getString((*codings)[0], "code").value_or(""));
        }
      }
      fact.start = fact.end = date.substr(0, 10);
      fact.basis = "evidence";
      if (!fact.coverage_id.empty() && !fact.patient_id.empty()) facts.push_back(std::move(fact));
    }
  }
  return facts;
}

void settleClaimResource(json::Value& claim, json::Allocator& allocator, const std::string& coverage_id,
                         const std::string& payer_id) {
  json::Value* insurance = json::find(claim, "insurance");
  if (insurance == nullptr || !insurance->IsArray() || insurance->Empty()) return;
  json::Value reference(rapidjson::kObjectType);
  json::addString(reference, "reference", "Coverage/" + coverage_id, allocator);
  (*insurance)[0].RemoveMember("coverage");
  json::addMember((*insurance)[0], "coverage", std::move(reference), allocator);
  json::Value insurer(rapidjson::kObjectType);
  json::addString(insurer, "reference", "Organization/" + fhir::deriveId({"Organization", "payer", payer_id}), allocator);
  claim.RemoveMember("insurer");
  json::addMember(claim, "insurer", std::move(insurer), allocator);
}

bool settleClaim(json::Document& bundle, const std::string& claim_id, const std::string& coverage_id,
                 const std::string& payer_id) {
  for (json::Value& entry : bundle["entry"].GetArray()) {
    json::Value& resource = entry["resource"];
    if (json::getString(resource, "resourceType") != "Claim" || json::getString(resource, "id") != claim_id) continue;
    if (!json::find(resource, "insurance")) return false;
    settleClaimResource(resource, bundle.GetAllocator(), coverage_id, payer_id);
    return true;
  }
  return false;
}

// The coverage known for routing: the stored (merged) timeline, with the event's own entries
// joining it. An event's entry never changes a payer's period (issue 11): it replaces a stored
// entry of the same Coverage only when that one rests on no payer source and the event's is dated.
std::vector<fhir::CoverageFact> withEventCoverage(std::vector<fhir::CoverageFact> known,
                                                     std::vector<fhir::CoverageFact> event) {
  for (fhir::CoverageFact& fact : event) {
    fact.basis = "ehr";
    auto same = std::find_if(known.begin(), known.end(), [&](const auto& existing) {
      return existing.coverage_id == fact.coverage_id && existing.basis != "evidence";
    });
    if (same == known.end()) known.push_back(std::move(fact));
    else if (same->basis != "payer" && same->basis != "conflict" && fact.dated()) *same = std::move(fact);
  }
  return known;
}

IngestCommit rosterGroupCommit(const std::string& channel, const std::string& payer_id, std::string_view as_of,
                                         bool full, const std::map<std::string, std::set<std::string>>& groups,
                                         const std::string& row_keys) {
  IngestCommit commit;
  commit.channel = channel;
  commit.status = 200;
  commit.answer = "{}";
  commit.payload = "{}";
  // The same file again (same rows, same asOf) is the same commit: nothing new to merge.
  commit.idempotency_key = "roster-groups\x1f" + payer_id + '\x1f' + std::string(as_of) + '\x1f' + fhir::sha256Hex(row_keys);
  for (const auto& [group_id, listed] : groups) {
    commit.remerge.push_back("Group/" + group_id);
    if (!full) continue;
    merge::Contribution marker;
    marker.type = "Group";
    marker.id = group_id;
    marker.kind = "roster-full";
    marker.organization = payer_id;
    marker.payer = payer_id;
    marker.rank = std::string(as_of);
    marker.tiebreak = payer_id;
    marker.contributor = "roster-full|" + payer_id;
    std::string json = "{\"listed\":[";
    for (const std::string& member : listed) {
      if (json.back() != '[') json += ',';
      json += '"' + member + '"';
    }
    marker.json = json + "]}";
    commit.contributions.push_back(std::move(marker));
  }
  return commit;
}

}  // namespace fhir::gateway

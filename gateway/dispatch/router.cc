// SPDX-License-Identifier: Apache-2.0
#include "gateway/dispatch/router.h"

#include <map>
#include <set>

namespace fhir::gateway {
namespace {

// "Patient/abc" -> ("Patient", "abc").
std::optional<std::pair<std::string, std::string>> splitReference(const json::Value& reference) {
  auto text = json::getString(reference, "reference");
  if (!text) return std::nullopt;
  size_t slash = text->find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(text->substr(0, slash)), std::string(text->substr(slash + 1)));
}

std::string payerList(const std::set<std::string>& payers) {
  std::string out;
  size_t i = 0;
  for (const std::string& payer : payers) {
    out += (i == 0 ? "" : i + 1 == payers.size() ? " and " : ", ") + ("'" + payer + "'");
    ++i;
  }
  return out;
}

int basisRank(const std::string& basis) { return basis == "payer" ? 0 : basis == "ehr" ? 1 : basis == "evidence" ? 3 : 2; }

// The fact of one payer to cite: a roster period before an event's dates before claim evidence.
const fhir::CoverageFact* bestOf(const std::vector<const fhir::CoverageFact*>& facts, const std::string& payer) {
  const fhir::CoverageFact* best = nullptr;
  for (const fhir::CoverageFact* fact : facts) {
    if (fact->payer_id != payer) continue;
    if (best == nullptr || basisRank(fact->basis) < basisRank(best->basis) ||
        (basisRank(fact->basis) == basisRank(best->basis) && fact->coverage_id < best->coverage_id)) {
      best = fact;
    }
  }
  return best;
}

}  // namespace

CoverageChoice chooseCoverage(const std::vector<fhir::CoverageFact>& facts, const std::string& date) {
  CoverageChoice choice;
  std::vector<const fhir::CoverageFact*> dated, covering, undated;
  for (const fhir::CoverageFact& fact : facts) {
    if (fact.basis == "conflict") {
      choice.reason = "member id " + fact.member_id + " of payer '" + fact.payer_id + "' (Coverage/" + fact.coverage_id +
                      ") belongs to a patient with other demographics; settle the conflict (GET /admin/conflicts) first";
      return choice;
    }
    (fact.dated() ? dated : undated).push_back(&fact);
    if (fact.dated() && fact.coversDate(date)) covering.push_back(&fact);
  }
  const std::vector<const fhir::CoverageFact*>& candidates = dated.empty() ? undated : covering;
  std::set<std::string> payers;
  for (const fhir::CoverageFact* fact : candidates) payers.insert(fact->payer_id);
  if (payers.empty()) {
    choice.reason = "no coverage of the patient is valid on the date of service " + date;
    return choice;
  }
  if (payers.size() == 1) {
    choice.coverage = *bestOf(candidates, *payers.begin());
    return choice;
  }
  if (!dated.empty()) {
    // Coverage.order (1 = primary) of each payer on that date; one lowest order decides.
    std::map<int, std::set<std::string>> by_order;
    bool all_ordered = true;
    for (const std::string& payer : payers) {
      int order = 0;
      for (const fhir::CoverageFact* fact : covering) {
        if (fact->payer_id == payer && fact->order > 0 && (order == 0 || fact->order < order)) order = fact->order;
      }
      if (order == 0) all_ordered = false;
      by_order[order].insert(payer);
    }
    if (all_ordered && by_order.begin()->second.size() == 1) {
      choice.coverage = *bestOf(covering, *by_order.begin()->second.begin());
      return choice;
    }
    choice.reason = "ambiguous coverage: dated coverages of payers " + payerList(payers) + " overlap on " + date +
                    " and no Coverage.order says which is primary";
    return choice;
  }
  choice.reason = "ambiguous coverage: undated coverage entries name payers " + payerList(payers) +
                  " and no dated coverage (a payer roster or claim file) decides";
  return choice;
}

RouteDecision routeClaim(const Config& config, const fhir::BillingFact& billing) {
  RouteDecision decision;
  if (!billing.coverage) {
    decision.reason = !billing.coverage_reason.empty()
                          ? billing.coverage_reason
                          : "no coverage of the patient is valid on the date of service " + billing.date_of_service;
    return decision;
  }
  const PayerConfig* payer = config.findPayer(billing.coverage->payer_id);
  if (payer == nullptr) {
    decision.reason = "payer '" + billing.coverage->payer_id + "' is no longer configured";
    return decision;
  }
  if (!payer->routesCode(billing.code)) {
    decision.reason = "payer '" + payer->id + "' routes exclude code " + billing.code;
    return decision;
  }
  if (!billing.coverage->line_of_business.empty() &&
      !payer->routesLineOfBusiness(billing.coverage->line_of_business)) {
    decision.reason = "payer '" + payer->id + "' routes exclude line of business " +
                      billing.coverage->line_of_business;
    return decision;
  }
  decision.payer = payer;
  return decision;
}

Result<std::string> payerBundle(const json::Value& mapped_bundle, const std::string& claim_id, Store& store,
                                const std::string& base_url) {
  json::Document out;
  out.SetObject();
  auto& allocator = out.GetAllocator();
  json::addString(out, "resourceType", "Bundle", allocator);
  json::addString(out, "type", "collection", allocator);
  json::Value entries(rapidjson::kArrayType);
  std::set<std::string> added;
  std::optional<Error> failure;  // the store failed reading a referenced resource

  auto findInBundle = [&](const std::string& type, const std::string& id) -> const json::Value* {
    const json::Value* list = json::find(mapped_bundle, "entry");
    if (list == nullptr || !list->IsArray()) return nullptr;
    for (const json::Value& entry : list->GetArray()) {
      const json::Value* resource = json::find(entry, "resource");
      if (resource == nullptr) continue;
      if (json::getString(*resource, "resourceType") == type && json::getString(*resource, "id") == id) {
        return resource;
      }
    }
    return nullptr;
  };
  auto add = [&](const std::string& type, const std::string& id) -> const json::Value* {
    const std::string key = type + "/" + id;
    if (!added.insert(key).second) return nullptr;
    json::Value resource;
    if (const json::Value* found = findInBundle(type, id)) {
      resource.CopyFrom(*found, allocator);
    } else {
      auto stored = store.readResource(type, id);
      if (!stored.ok()) {
        if (!failure) failure = stored.error();
        return nullptr;
      }
      if (!stored->has_value()) return nullptr;
      json::Document parsed;
      json::ParseError error;
      if (!json::parse((*stored)->json, parsed, error)) {
        if (!failure) failure = Error{"stored " + key + " is unreadable: " + error.describe()};
        return nullptr;
      }
      resource.CopyFrom(parsed, allocator);
    }
    json::Value entry(rapidjson::kObjectType);
    json::addString(entry, "fullUrl", base_url + "/" + key, allocator);
    json::addMember(entry, "resource", std::move(resource), allocator);
    entries.PushBack(entry, allocator);
    return &entries[entries.Size() - 1]["resource"];
  };

  const json::Value* claim = add("Claim", claim_id);
  if (claim != nullptr) {
    std::vector<std::pair<std::string, std::string>> references;
    for (const char* key : {"patient", "provider", "insurer"}) {
      if (const json::Value* ref = json::find(*claim, key)) {
        if (auto parts = splitReference(*ref)) references.push_back(*parts);
      }
    }
    if (const json::Value* insurance = json::find(*claim, "insurance"); insurance && insurance->IsArray()) {
      for (const json::Value& item : insurance->GetArray()) {
        if (const json::Value* ref = json::find(item, "coverage")) {
          if (auto parts = splitReference(*ref)) references.push_back(*parts);
        }
      }
    }
    for (const auto& [type, id] : references) add(type, id);
  }
  if (failure) return *failure;
  json::addMember(out, "entry", std::move(entries), allocator);
  return json::serialize(out);
}

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
// Rules between conformance resources that R4 states in the resources' definitions:
// SearchParameter.derivedFrom, CapabilityStatement search parameters against their definitions,
// and a MeasureReport against its Measure.
#include <algorithm>

#include "conformance/validator/instance_walker.h"
#include "conformance/validator/validator_impl.h"
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

namespace {

std::vector<std::string_view> stringList(const json::Value& object, std::string_view key) {
  std::vector<std::string_view> out;
  const json::Value* array = json::find(object, key);
  if (!array || !array->IsArray()) return out;
  for (const json::Value& item : array->GetArray()) {
    if (json::isString(item)) out.push_back(json::stringView(item));
  }
  return out;
}

std::string versioned(const json::Value& resource) {
  std::string url(json::getString(resource, "url").value_or(""));
  if (auto version = json::getString(resource, "version")) url += "|" + std::string(*version);
  return url;
}

}  // namespace

// R4 SearchParameter.derivedFrom: "the details in the search parameter must be consistent with
// the definition from which it is defined": the same type, and only bases the definition has.
void InstanceWalker::checkSearchParameter(const json::Value& parameter) {
  auto derived_from = json::getString(parameter, "derivedFrom");
  if (!derived_from || derived_from->empty()) return;
  const json::Value* base =
      validator_.registry().find(definitions::ResourceKind::kSearchParameter, *derived_from);
  if (!base) {
    reportAt(Severity::kWarning, "not-found", path_ + ".derivedFrom",
             "The SearchParameter '" + std::string(*derived_from) +
                 "' this one is derived from is not known, so consistency with it was not checked");
    return;
  }
  auto type = json::getString(parameter, "type");
  auto base_type = json::getString(*base, "type");
  if (type && base_type && *type != *base_type) {
    report(Severity::kError, "invalid",
           "The type " + std::string(*type) + " is different to the type " + std::string(*base_type) +
               " in the derivedFrom SearchParameter " + std::string(*derived_from));
  }
  std::vector<std::string_view> allowed = stringList(*base, "base");
  for (std::string_view resource_type : stringList(parameter, "base")) {
    // "Resource" and "DomainResource" bases cover every resource type.
    bool covered = std::find(allowed.begin(), allowed.end(), resource_type) != allowed.end() ||
                   std::find(allowed.begin(), allowed.end(), "Resource") != allowed.end() ||
                   (resource_type != "Bundle" && resource_type != "Parameters" && resource_type != "Binary" &&
                    std::find(allowed.begin(), allowed.end(), "DomainResource") != allowed.end());
    if (!covered) {
      report(Severity::kError, "invalid",
             "The resource type " + std::string(resource_type) +
                 " is not listed as a base in the SearchParameter this is derived from (" +
                 std::string(*derived_from) + ")");
    }
  }
}

// R4 CapabilityStatement.rest.resource.searchParam: `definition` is "an absolute URI that is a
// formal reference to where this parameter was first defined", and `type` is "the type of value
// a search parameter refers to": it must be the definition's type.
void InstanceWalker::checkCapabilityStatement(const json::Value& statement) {
  const json::Value* rests = json::find(statement, "rest");
  if (!rests || !rests->IsArray()) return;
  for (rapidjson::SizeType r = 0; r < rests->Size(); ++r) {
    const json::Value& rest = (*rests)[r];
    const json::Value* resources = rest.IsObject() ? json::find(rest, "resource") : nullptr;
    if (!resources || !resources->IsArray()) continue;
    for (rapidjson::SizeType i = 0; i < resources->Size(); ++i) {
      const json::Value& resource = (*resources)[i];
      const json::Value* params = resource.IsObject() ? json::find(resource, "searchParam") : nullptr;
      if (!params || !params->IsArray()) continue;
      for (rapidjson::SizeType p = 0; p < params->Size(); ++p) {
        const json::Value& param = (*params)[p];
        if (!param.IsObject()) continue;
        auto definition = json::getString(param, "definition");
        auto type = json::getString(param, "type");
        if (!definition || !type) continue;
        const json::Value* defined =
            validator_.registry().find(definitions::ResourceKind::kSearchParameter, *definition);
        if (!defined) continue;  // an unknown definition cannot be compared
        auto defined_type = json::getString(*defined, "type");
        if (!defined_type || *defined_type == *type) continue;
        std::string where = path_ + ".rest";
        appendIndex(where, r);
        where += ".resource";
        appendIndex(where, i);
        where += ".searchParam";
        appendIndex(where, p);
        reportAt(Severity::kError, "invalid", std::move(where),
                 "Type mismatch - SearchParameter '" + versioned(*defined) + "' type is " +
                     std::string(*defined_type) + ", but type here is " + std::string(*type));
      }
    }
  }
}

namespace {

// Whether two CodeableConcepts share a coding (system and code).
bool sameConcept(const json::Value* a, const json::Value* b) {
  if (!a || !b || !a->IsObject() || !b->IsObject()) return false;
  const json::Value* left = json::find(*a, "coding");
  const json::Value* right = json::find(*b, "coding");
  if (!left || !right || !left->IsArray() || !right->IsArray()) return false;
  for (const json::Value& x : left->GetArray()) {
    for (const json::Value& y : right->GetArray()) {
      if (!x.IsObject() || !y.IsObject()) continue;
      auto code = json::getString(x, "code");
      if (code && code == json::getString(y, "code") && json::getString(x, "system") == json::getString(y, "system")) {
        return true;
      }
    }
  }
  return false;
}

// The group of `measure` a report group reports: the one with the same code, else the only one.
const json::Value* measureGroup(const json::Value& measure, const json::Value& report_group) {
  const json::Value* groups = json::find(measure, "group");
  if (!groups || !groups->IsArray()) return nullptr;
  for (const json::Value& group : groups->GetArray()) {
    if (group.IsObject() && sameConcept(json::find(group, "code"), json::find(report_group, "code"))) return &group;
  }
  if (groups->Size() == 1 && !json::find(report_group, "code")) return &(*groups)[0];
  return nullptr;
}

}  // namespace

// A MeasureReport against its Measure (when the Measure is loaded):
// * R4 measure-scoring `cohort` is "a cohort definition [whose] result is a population of
//   individuals", so a cohort measure's report has populations and no measureScore;
// * MeasureReport.group.stratifier.code is "the meaning of this stratifier, as defined in the
//   measure definition": a reported stratifier names, by code, a stratifier of the Measure's
//   group it reports.
void InstanceWalker::checkMeasureReport(const json::Value& report_resource) {
  auto measure_url = json::getString(report_resource, "measure");
  if (!measure_url) return;
  const json::Value* measure =
      validator_.registry().find(definitions::ResourceKind::kMeasure, *measure_url);
  if (!measure) return;
  if (const json::Value* groups = json::find(report_resource, "group"); groups && groups->IsArray()) {
    for (rapidjson::SizeType g = 0; g < groups->Size(); ++g) {
      const json::Value& group = (*groups)[g];
      if (!group.IsObject()) continue;
      const json::Value* defined = measureGroup(*measure, group);
      const json::Value* stratifiers = json::find(group, "stratifier");
      if (!defined || !stratifiers || !stratifiers->IsArray()) continue;
      const json::Value* definitions = json::find(*defined, "stratifier");
      for (rapidjson::SizeType s = 0; s < stratifiers->Size(); ++s) {
        const json::Value& stratifier = (*stratifiers)[s];
        if (!stratifier.IsObject()) continue;
        bool matched = false;
        const json::Value* codes = json::find(stratifier, "code");
        for (rapidjson::SizeType c = 0; codes && codes->IsArray() && c < codes->Size() && !matched; ++c) {
          for (rapidjson::SizeType d = 0; definitions && definitions->IsArray() && d < definitions->Size(); ++d) {
            if ((*definitions)[d].IsObject() && sameConcept(&(*codes)[c], json::find((*definitions)[d], "code"))) {
              matched = true;
            }
          }
        }
        if (matched) continue;
        std::string where = path_ + ".group";
        appendIndex(where, g);
        where += ".stratifier";
        appendIndex(where, s);
        reportAt(Severity::kError, "business-rule", std::move(where),
                 "The stratifier has no code that matches a stratifier of the Measure group it reports ('" +
                     versioned(*measure) + "')");
      }
    }
  }
  const json::Value* scoring = json::find(*measure, "scoring");
  const json::Value* codings = scoring && scoring->IsObject() ? json::find(*scoring, "coding") : nullptr;
  bool cohort = false;
  if (codings && codings->IsArray()) {
    for (const json::Value& coding : codings->GetArray()) {
      cohort = cohort || (coding.IsObject() &&
                          json::getString(coding, "system") == "http://terminology.hl7.org/CodeSystem/measure-scoring" &&
                          json::getString(coding, "code") == "cohort");
    }
  }
  if (!cohort) return;
  const json::Value* groups = json::find(report_resource, "group");
  if (!groups || !groups->IsArray()) return;
  for (rapidjson::SizeType g = 0; g < groups->Size(); ++g) {
    const json::Value& group = (*groups)[g];
    if (!group.IsObject() || !json::find(group, "measureScore")) continue;
    std::string where = path_ + ".group";
    appendIndex(where, g);
    where += ".measureScore";
    reportAt(Severity::kError, "business-rule", std::move(where),
             "No measureScore when the scoring of the Measure '" + versioned(*measure) + "' is 'cohort'");
  }
}

}  // namespace fhir::validator

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internals of the measure evaluator shared by measure.cc (compile, aggregate, report) and
// measure_data.cc (what each patient's variables hold, read through Store::search).

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "conformance/fhirpath/fhirpath.h"
#include "gateway/measure/measure.h"

namespace fhir::gateway::measure {

struct CompiledPopulation {
  std::string code;  // initial-population, denominator, numerator, measure-population, measure-observation ...
  std::string expression_text;
  fhirpath::ExpressionPtr expression;
};

struct CompiledStratifier {
  std::string code;  // equity-stratifier code
  std::string expression_text;
  fhirpath::ExpressionPtr expression;
};

struct CompiledGroup {
  std::string id;
  std::string code_json;  // the group's `code` as JSON ("" when absent)
  std::string aggregate;  // count | proportion | median | p90
  std::vector<CompiledPopulation> populations;
  std::vector<CompiledStratifier> stratifiers;
};

struct CompiledMeasure {
  std::string id;
  std::string url;
  std::string basis = "boolean";  // or a resource type
  std::string improvement_json;   // improvementNotation as JSON ("" when absent)
  std::vector<CompiledGroup> groups;
  std::set<std::string> variables;  // the %names the expressions use
};

// One patient's variables (pointers into Population::docs).
struct PatientData {
  std::string id;
  const json::Value* patient = nullptr;
  std::vector<const json::Value*> memberships, coverages, consults, communications, tasks, observations, care_plans,
      claims, episodes, risk_assessments;
};

struct Population {
  std::vector<std::unique_ptr<json::Document>> docs;
  std::vector<PatientData> patients;  // ordered by id
  std::string reporter;               // "Organization/x" for a practice subject, else ""
};

// Reads what the subject's patients need, for the variables `measure` uses.
Result<Population> loadPopulation(const CompiledMeasure& measure, const EvaluateParams& params, const SearchAll& search);

// "Type/id" -> id when the reference is to `type` (relative or absolute), else "".
std::string referenceId(const json::Value* reference, std::string_view type);

}  // namespace fhir::gateway::measure

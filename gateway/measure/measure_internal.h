// SPDX-License-Identifier: Apache-2.0
#pragma once

// Internals of the measure evaluator shared by measure.cc (compile, aggregate, report) and
// measure_data.cc (what each patient's variables hold, read through Store::search).

#include <deque>
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
  std::string system;  // the code's system (equity-stratifier, or measure-stratifier for per-item strata)
  std::string code;
  std::string expression_text;
  fhirpath::ExpressionPtr expression;
};

struct CompiledGroup {
  std::string id;
  std::string code_json;  // the group's `code` as JSON ("" when absent)
  std::string aggregate;  // count | proportion | median | p90
  std::string basis;      // the Measure's population basis, or the group's own (measure-population-basis on the group)
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
  std::vector<const json::Value*> memberships, coverages, consults, referrals, communications, tasks, observations,
      care_plans, claims, unroutable, episodes, risk_assessments;
};

struct Population {
  // Every resource read lives in `pool` (one allocator, not one per resource: a million small
  // documents would each hold an allocator chunk); `values` keeps their roots.
  std::unique_ptr<json::Allocator> pool = std::make_unique<json::Allocator>();
  std::deque<json::Value> values;
  std::vector<PatientData> patients;  // ordered by id
  std::string reporter;               // "Organization/x" for a practice subject, else ""
};

// Reads what the subject's patients need, for the variables `variables` names (the union of the
// measures evaluated together).
Result<Population> loadPopulation(const std::set<std::string>& variables, const EvaluateParams& params, const SearchAll& search);

// "Type/id" -> id when the reference is to `type` (relative or absolute), else "".
std::string referenceId(const json::Value* reference, std::string_view type);

}  // namespace fhir::gateway::measure

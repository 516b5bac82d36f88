// SPDX-License-Identifier: Apache-2.0
#pragma once

// Problems found in data, and their OperationOutcome form.
//
// Every component that judges data (decoder, mapper, validator) reports into an IssueList;
// the gateway turns the list into an OperationOutcome. Failures of the code or environment are
// fhir::Error values instead (result.h).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/json/json.h"

namespace fhir {

enum class Severity { kFatal, kError, kWarning, kInformation };

std::string_view severityName(Severity severity);

struct Issue {
  Severity severity = Severity::kError;
  std::string code;         // IssueType: "structure", "required", "value", "invariant", "code-invalid", ...
  std::string diagnostics;  // human text; for source positions it repeats the location in words
  std::vector<std::string> expression;  // FHIRPath locations inside FHIR resources
  std::vector<std::string> location;    // source positions: "$.billing[0].code", "line 12, column dos_from"
};

class IssueList {
 public:
  void add(Issue issue) { issues_.push_back(std::move(issue)); }
  // Shorthand for an issue at a FHIRPath location.
  void atExpression(Severity severity, std::string code, std::string expression,
                    std::string diagnostics);
  // Shorthand for an issue at a source location.
  void atLocation(Severity severity, std::string code, std::string location,
                  std::string diagnostics);
  void append(const IssueList& other);

  bool hasErrors() const;  // any fatal or error
  size_t errorCount() const;
  bool empty() const { return issues_.empty(); }
  const std::vector<Issue>& issues() const { return issues_; }
  std::vector<Issue>& issues() { return issues_; }

 private:
  std::vector<Issue> issues_;
};

inline constexpr std::string_view kQuarantineIdSystem =
    "https://fhir.alignment-gateway.org/CodeSystem/quarantine-id";

// Builds an OperationOutcome resource. An empty list yields the single informational issue R4
// requires ("All OK"). When `quarantine_id` is set it is carried in issue[0].details.coding.
json::Value toOperationOutcome(const IssueList& issues, json::Allocator& allocator,
                               std::optional<std::string_view> quarantine_id = std::nullopt);
std::string toOperationOutcomeJson(const IssueList& issues,
                                   std::optional<std::string_view> quarantine_id = std::nullopt);

}  // namespace fhir

// SPDX-License-Identifier: Apache-2.0
#include "conformance/outcome/outcome.h"

namespace fhir {

std::string_view severityName(Severity severity) {
  switch (severity) {
    case Severity::kFatal: return "fatal";
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInformation: return "information";
  }
  return "error";
}

void IssueList::atExpression(Severity severity, std::string code, std::string expression,
                             std::string diagnostics) {
  Issue issue;
  issue.severity = severity;
  issue.code = std::move(code);
  issue.diagnostics = std::move(diagnostics);
  issue.expression.push_back(std::move(expression));
  issues_.push_back(std::move(issue));
}

void IssueList::atLocation(Severity severity, std::string code, std::string location,
                           std::string diagnostics) {
  Issue issue;
  issue.severity = severity;
  issue.code = std::move(code);
  issue.diagnostics = std::move(diagnostics);
  issue.location.push_back(std::move(location));
  issues_.push_back(std::move(issue));
}

void IssueList::append(const IssueList& other) {
  issues_.insert(issues_.end(), other.issues_.begin(), other.issues_.end());
}

bool IssueList::hasErrors() const { return errorCount() > 0; }

size_t IssueList::errorCount() const {
  size_t count = 0;
  for (const Issue& issue : issues_) {
    if (issue.severity == Severity::kError || issue.severity == Severity::kFatal) ++count;
  }
  return count;
}

json::Value toOperationOutcome(const IssueList& issues, json::Allocator& allocator,
                               std::optional<std::string_view> quarantine_id) {
  using json::Value;
  Value outcome(rapidjson::kObjectType);
  json::addString(outcome, "resourceType", "OperationOutcome", allocator);
  Value list(rapidjson::kArrayType);
  auto stringArray = [&](const std::vector<std::string>& items) {
    Value array(rapidjson::kArrayType);
    for (const std::string& item : items) array.PushBack(json::makeString(item, allocator), allocator);
    return array;
  };
  for (const Issue& issue : issues.issues()) {
    Value entry(rapidjson::kObjectType);
    json::addString(entry, "severity", severityName(issue.severity), allocator);
    json::addString(entry, "code", issue.code.empty() ? "processing" : issue.code, allocator);
    if (!issue.diagnostics.empty()) json::addString(entry, "diagnostics", issue.diagnostics, allocator);
    if (!issue.location.empty()) json::addMember(entry, "location", stringArray(issue.location), allocator);
    if (!issue.expression.empty()) {
      json::addMember(entry, "expression", stringArray(issue.expression), allocator);
    }
    list.PushBack(entry, allocator);
  }
  if (list.Empty()) {
    Value entry(rapidjson::kObjectType);
    json::addString(entry, "severity", "information", allocator);
    json::addString(entry, "code", "informational", allocator);
    json::addString(entry, "diagnostics", "All OK", allocator);
    list.PushBack(entry, allocator);
  }
  if (quarantine_id) {
    Value coding(rapidjson::kObjectType);
    json::addString(coding, "system", kQuarantineIdSystem, allocator);
    json::addString(coding, "code", *quarantine_id, allocator);
    Value codings(rapidjson::kArrayType);
    codings.PushBack(coding, allocator);
    Value details(rapidjson::kObjectType);
    json::addMember(details, "coding", std::move(codings), allocator);
    json::addMember(list[0], "details", std::move(details), allocator);
  }
  json::addMember(outcome, "issue", std::move(list), allocator);
  return outcome;
}

std::string toOperationOutcomeJson(const IssueList& issues,
                                   std::optional<std::string_view> quarantine_id) {
  json::Document doc;
  json::Value outcome = toOperationOutcome(issues, doc.GetAllocator(), quarantine_id);
  return json::serialize(outcome);
}

}  // namespace fhir

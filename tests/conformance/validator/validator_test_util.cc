// SPDX-License-Identifier: Apache-2.0
#include "tests/conformance/validator/validator_test_util.h"

#include <cstdlib>
#include <filesystem>

#include "tests/support/test_support.h"

namespace fhir::testing {

const Validator& sharedValidator() {
  static const ValidatorPtr validator = [] {
    ValidatorOptions options;
    std::filesystem::path profiles = testDataDir() / "validator" / "profiles";
    if (std::filesystem::exists(profiles)) options.extra_paths.push_back(profiles.string());
    auto created = createValidator(options);
    if (!created.ok()) {
      ADD_FAILURE() << "createValidator: " << created.message();
      std::abort();
    }
    return *created;
  }();
  return *validator;
}

IssueList validateJson(std::string_view text, const ValidationRequest& request) {
  IssueList issues;
  sharedValidator().validateText(text, request, issues);
  return issues;
}

std::string describe(const IssueList& issues) {
  std::string out;
  for (const Issue& issue : issues.issues()) {
    out += std::string(severityName(issue.severity)) + " " + issue.code + " " +
           (issue.expression.empty() ? std::string("-") : issue.expression.front()) + ": " +
           issue.diagnostics + "\n";
  }
  return out.empty() ? "(no issues)\n" : out;
}

size_t countIssues(const IssueList& issues, Severity severity, std::string_view code,
                   std::string_view expression) {
  size_t count = 0;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity == severity && issue.code == code && !issue.expression.empty() &&
        issue.expression.front() == expression) {
      ++count;
    }
  }
  return count;
}

}  // namespace fhir::testing

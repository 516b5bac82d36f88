// SPDX-License-Identifier: Apache-2.0
#pragma once

// Helpers for the validator tests: one validator per test program (creating it is the expensive
// part), and matchers over the issues it reports.

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"

namespace fhir::testing {

// The validator over the bundled R4 core package plus tests/data/validator/profiles.
const Validator& sharedValidator();

// Validates JSON text and returns the issues.
IssueList validateJson(std::string_view text, const ValidationRequest& request = {});

// Renders issues one per line ("error structure Patient.name[0]: text") for failure messages.
std::string describe(const IssueList& issues);

// Number of issues with this severity, code and first expression.
size_t countIssues(const IssueList& issues, Severity severity, std::string_view code,
                   std::string_view expression);

}  // namespace fhir::testing

// Asserts exactly one error-or-fatal issue list is empty.
#define EXPECT_NO_ERRORS(issues) EXPECT_FALSE((issues).hasErrors()) << ::fhir::testing::describe(issues)

#define EXPECT_ISSUE(issues, severity, code, expression)                                     \
  EXPECT_EQ(::fhir::testing::countIssues((issues), (severity), (code), (expression)), 1u)    \
      << "expected one " << (code) << " issue at " << (expression) << "; got:\n"            \
      << ::fhir::testing::describe(issues)

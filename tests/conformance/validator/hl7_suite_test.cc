// SPDX-License-Identifier: Apache-2.0
// Runs the HL7 validator test cases (tests/data/validator/hl7, R4 subset of FHIR/fhir-test-cases)
// and compares our outcome with the Java reference validator's: valid versus invalid first, then
// error counts and expression paths (reported, informative). Cases needing the tx.fhir.org
// terminology server are skipped. The test fails when agreement drops below 233 or a
// case that is not listed in disagreements.txt disagrees.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;

// Issue 18: valid-versus-invalid agreement on at least 233 of the 245 outcomes compared.
constexpr size_t kRequiredAgreed = 233;

fs::path suiteDir() { return testDataDir() / "validator" / "hl7"; }

json::Document loadJson(const fs::path& path) {
  auto doc = json::parse(readFile(path));
  EXPECT_TRUE(doc.ok()) << path << ": " << doc.message();
  return doc.ok() ? std::move(*doc) : json::Document();
}

std::vector<std::string> strings(const json::Value& object, std::string_view key) {
  std::vector<std::string> out;
  if (!object.IsObject()) return out;
  const json::Value* array = json::find(object, key);
  if (!array || !array->IsArray()) return out;
  for (const json::Value& item : array->GetArray()) {
    if (json::isString(item)) out.emplace_back(json::stringView(item));
  }
  return out;
}

// Java writes `Bundle.entry[0].resource/*Patient/1*/.name[0]`; we write
// `Bundle.entry[0].resource.name[0]`.
std::string normalizeExpression(std::string text) {
  for (size_t start; (start = text.find("/*")) != std::string::npos;) {
    size_t end = text.find("*/", start + 2);
    if (end == std::string::npos) break;
    text.erase(start, end + 2 - start);
  }
  if (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

struct Outcome {
  size_t errors = 0;
  std::multiset<std::string> error_paths;
};

Outcome fromJava(const json::Value& outcome) {
  Outcome out;
  const json::Value* issues = json::find(outcome, "issue");
  if (!issues || !issues->IsArray()) return out;
  for (const json::Value& issue : issues->GetArray()) {
    auto severity = json::getString(issue, "severity");
    if (severity != "error" && severity != "fatal") continue;
    ++out.errors;
    auto paths = strings(issue, "expression");
    out.error_paths.insert(paths.empty() ? std::string() : normalizeExpression(paths.front()));
  }
  return out;
}

Outcome fromOurs(const IssueList& issues) {
  Outcome out;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    ++out.errors;
    out.error_paths.insert(issue.expression.empty() ? std::string() : issue.expression.front());
  }
  return out;
}

std::map<std::string, std::string> loadDisagreements() {
  std::map<std::string, std::string> listed;
  std::ifstream in(testDataDir() / "validator" / "disagreements.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find_first_of(" \t");
    std::string key = line.substr(0, space);
    std::string reason = space == std::string::npos ? std::string() : line.substr(space + 1);
    listed[key] = reason;
  }
  return listed;
}

std::string describeIssues(const IssueList& issues) {
  std::string out;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    out += "      ours: " + (issue.expression.empty() ? std::string("-") : issue.expression.front()) +
           ": " + issue.diagnostics.substr(0, 160) + "\n";
  }
  return out;
}

std::string describeJava(const json::Value& outcome) {
  std::string out;
  const json::Value* issues = json::find(outcome, "issue");
  if (!issues || !issues->IsArray()) return out;
  for (const json::Value& issue : issues->GetArray()) {
    auto severity = json::getString(issue, "severity");
    if (severity != "error" && severity != "fatal") continue;
    auto paths = strings(issue, "expression");
    std::string text;
    if (const json::Value* details = json::find(issue, "details"); details && details->IsObject()) {
      text = std::string(json::getString(*details, "text").value_or(""));
    }
    out += "      java: " + (paths.empty() ? std::string("-") : normalizeExpression(paths.front())) +
           ": " + text.substr(0, 160) + "\n";
  }
  return out;
}

TEST(Hl7ValidatorSuite, AgreesWithJavaReference) {
  json::Document manifest = loadJson(suiteDir() / "manifest-r4-subset.json");
  json::Document index = loadJson(suiteDir() / "index-r4-subset.json");
  ASSERT_TRUE(manifest.IsObject() && index.IsArray());
  std::map<std::string, const json::Value*> rows;
  for (const json::Value& row : index.GetArray()) {
    rows[std::string(json::getString(row, "name").value_or(""))] = &row;
  }
  std::map<std::string, std::string> listed = loadDisagreements();

  size_t compared = 0, agreed = 0, skipped = 0, same_count = 0, same_paths = 0;
  std::vector<std::string> unexpected;
  std::vector<std::string> now_agreeing;
  std::ostringstream report;

  auto compare = [&](const std::string& key, const IssueList& ours, const fs::path& java_file) {
    json::Document java = loadJson(java_file);
    Outcome expected = fromJava(java);
    Outcome actual = fromOurs(ours);
    ++compared;
    bool agree = (expected.errors == 0) == (actual.errors == 0);
    if (agree) ++agreed;
    if (expected.errors == actual.errors) ++same_count;
    if (expected.error_paths == actual.error_paths) ++same_paths;
    bool is_listed = listed.count(key) > 0;
    if (!agree && !is_listed) unexpected.push_back(key);
    if (agree && is_listed) now_agreeing.push_back(key);
    if (!agree || expected.errors != actual.errors) {
      report << (agree ? "  count " : "  DISAGREE ") << key << ": java " << expected.errors
             << " errors, ours " << actual.errors << (is_listed ? " (listed)" : "") << "\n"
             << describeJava(java) << describeIssues(ours);
    }
  };

  const json::Value& cases = manifest["test-cases"];
  for (const json::Value& test_case : cases.GetArray()) {
    std::string name(json::getString(test_case, "name").value_or(""));
    auto row = rows.find(name);
    if (row == rows.end()) continue;
    const json::Value* needs_tx = json::find(*row->second, "needs_terminology_server");
    if (needs_tx && needs_tx->IsBool() && needs_tx->GetBool()) {
      ++skipped;
      continue;
    }
    std::vector<std::string> extra;
    for (const std::string& file : strings(test_case, "profiles")) extra.push_back((suiteDir() / file).string());
    for (const std::string& file : strings(test_case, "supporting")) extra.push_back((suiteDir() / file).string());
    std::string text = readFile(suiteDir() / std::string(json::getString(test_case, "file").value_or("")));

    ValidatorOptions options;
    options.extra_paths = extra;
    // The case's validator options that we support (the Java validator's names).
    const json::Value* security = json::find(test_case, "security-checks");
    options.security_checks = security && security->IsBool() && security->GetBool();
    const json::Value* no_html = json::find(test_case, "noHtmlInMarkdown");
    options.no_html_in_markdown = no_html && no_html->IsBool() && no_html->GetBool();
    options.validate_contained = json::getString(test_case, "validateContains") != "IGNORE";
    const json::Value* examples = json::find(test_case, "examples");
    options.allow_example_urls = !examples || !examples->IsBool() || examples->GetBool();
    options.check_references =
        json::getString(test_case, "validateReference").value_or("").rfind("CHECK_EXISTS", 0) == 0;
    auto base_validator = createValidator(options);
    if (!base_validator.ok()) {
      report << "  SETUP " << name << ": " << base_validator.message() << "\n";
    } else if (auto java = json::getString(test_case, "java")) {
      IssueList issues;
      (*base_validator)->validateText(text, {}, issues);
      compare(name, issues, suiteDir() / "outcomes" / std::string(*java));
    }

    const json::Value* profile = json::find(test_case, "profile");
    if (!profile || !profile->IsObject()) continue;
    auto source = json::getString(*profile, "source");
    auto java = json::getString(*profile, "java");
    if (!source || !java) continue;
    options.extra_paths.push_back((suiteDir() / std::string(*source)).string());
    for (const std::string& file : strings(*profile, "supporting")) {
      options.extra_paths.push_back((suiteDir() / file).string());
    }
    auto profile_validator = createValidator(options);
    json::Document profile_doc = loadJson(suiteDir() / std::string(*source));
    auto url = json::getString(profile_doc, "url");
    if (!profile_validator.ok() || !url) {
      report << "  SETUP " << name << ":profile: "
             << (profile_validator.ok() ? "profile has no url" : profile_validator.message()) << "\n";
      continue;
    }
    ValidationRequest request;
    request.profiles.emplace_back(*url);
    IssueList issues;
    (*profile_validator)->validateText(text, request, issues);
    compare(name + ":profile", issues, suiteDir() / "outcomes" / std::string(*java));
  }

  double agreement = compared ? static_cast<double>(agreed) / static_cast<double>(compared) : 0;
  std::cout << "HL7 validator suite (R4, no terminology server): " << compared << " outcomes compared, "
            << skipped << " cases skipped (tx)\n"
            << "  valid/invalid agreement: " << agreed << "/" << compared << " = "
            << static_cast<int>(agreement * 1000) / 10.0 << "%\n"
            << "  same error count: " << same_count << ", same error paths: " << same_paths << "\n"
            << report.str();
  // The known-failure list is exact: a listed case that now agrees fails too, so the list
  // changes with the validator.
  for (const std::string& key : now_agreeing) {
    ADD_FAILURE() << "now agrees with the Java reference: remove it from disagreements.txt: " << key;
  }
  EXPECT_GE(agreed, kRequiredAgreed);
  for (const std::string& key : unexpected) {
    ADD_FAILURE() << "disagrees with the Java reference and is not in disagreements.txt: " << key;
  }
}

}  // namespace
}  // namespace fhir::testing

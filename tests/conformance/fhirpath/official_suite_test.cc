// SPDX-License-Identifier: Apache-2.0
// Runs the official FHIRPath R4 suite (tests/data/fhirpath/tests-fhir-r4.xml) against the JSON
// twins of its inputs. Tests listed in known-failures.txt are expected to fail; one that starts
// passing fails the run so the list stays honest.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <Poco/AutoPtr.h>
#include <Poco/DOM/DOMParser.h>
#include <Poco/DOM/Document.h>
#include <Poco/DOM/Element.h>
#include <Poco/DOM/NodeList.h>
#include <gtest/gtest.h>

#include "conformance/fhirpath/fhirpath.h"
#include "tests/support/test_support.h"

namespace fhir::fhirpath {
namespace {

struct Expected {
  std::string type;  // may be empty
  std::string text;
};

struct SuiteCase {
  std::string group;
  std::string name;
  std::string input;       // json file name, empty when none
  std::string expression;
  std::string invalid;     // syntax | semantic | execution | ""
  bool predicate = false;
  bool strict = false;
  bool ordered = true;
  bool check_ordered_functions = false;
  std::vector<Expected> outputs;
};

std::filesystem::path dataDir() { return fhir::testing::testDataDir() / "fhirpath"; }

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<SuiteCase> loadSuite() {
  std::vector<SuiteCase> cases;
  Poco::XML::DOMParser parser;
  Poco::AutoPtr<Poco::XML::Document> doc = parser.parseString(slurp(dataDir() / "tests-fhir-r4.xml"));
  Poco::AutoPtr<Poco::XML::NodeList> tests = doc->getElementsByTagName("test");
  std::map<std::string, int> seen;
  for (unsigned long i = 0; i < tests->length(); ++i) {
    auto* test = static_cast<Poco::XML::Element*>(tests->item(i));
    SuiteCase c;
    auto* parent = static_cast<Poco::XML::Element*>(test->parentNode());
    c.group = parent->getAttribute("name");
    c.name = test->getAttribute("name");
    if (c.name.empty()) c.name = c.group + "_unnamed";
    if (int n = seen[c.name]++; n > 0) c.name += "_" + std::to_string(n + 1);
    std::string input = test->getAttribute("inputfile");
    if (!input.empty()) {
      if (input.size() > 4 && input.substr(input.size() - 4) == ".xml") {
        input = input.substr(0, input.size() - 4) + ".json";
      }
      c.input = input;
    }
    c.predicate = test->getAttribute("predicate") == "true";
    c.strict = test->getAttribute("mode") == "strict";
    c.ordered = test->getAttribute("ordered") != "false";
    c.check_ordered_functions = test->getAttribute("checkOrderedFunctions") == "true";
    Poco::AutoPtr<Poco::XML::NodeList> expressions = test->getElementsByTagName("expression");
    if (expressions->length() == 0) continue;
    auto* expression = static_cast<Poco::XML::Element*>(expressions->item(0));
    c.expression = expression->innerText();
    c.invalid = expression->getAttribute("invalid");
    if (expression->getAttribute("mode") == "strict") c.strict = true;
    Poco::AutoPtr<Poco::XML::NodeList> outputs = test->getElementsByTagName("output");
    for (unsigned long j = 0; j < outputs->length(); ++j) {
      auto* output = static_cast<Poco::XML::Element*>(outputs->item(j));
      c.outputs.push_back({output->getAttribute("type"), output->innerText()});
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::map<std::string, std::string> loadKnownFailures() {
  std::map<std::string, std::string> known;
  std::ifstream in(dataDir() / "known-failures.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find_first_of(" \t");
    std::string name = line.substr(0, space);
    known[name] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return known;
}

const std::vector<SuiteCase>& suite() {
  static const std::vector<SuiteCase> kCases = loadSuite();
  return kCases;
}

const std::map<std::string, std::string>& knownFailures() {
  static const std::map<std::string, std::string> kKnown = loadKnownFailures();
  return kKnown;
}

const json::Document* inputDocument(const std::string& name) {
  static std::map<std::string, std::unique_ptr<json::Document>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  auto doc = std::make_unique<json::Document>();
  json::ParseError error;
  if (!json::parse(slurp(dataDir() / "input" / name), *doc, error)) return nullptr;
  return cache.emplace(name, std::move(doc)).first->second.get();
}

bool decimalTextEqual(const std::string& a, const std::string& b) {
  char* end_a = nullptr;
  char* end_b = nullptr;
  double x = std::strtod(a.c_str(), &end_a);
  double y = std::strtod(b.c_str(), &end_b);
  if (end_a == a.c_str() || end_b == b.c_str()) return false;
  return std::fabs(x - y) <= 1e-9 * std::max(1.0, std::fabs(x));
}

// The item in the suite's output notation.
std::string render(const Item& item) {
  if (item.isNode()) {
    std::string_view type = item.typeName();
    auto text = item.primitiveText();
    if (!text) return "<complex " + std::string(type) + ">";
    if (type == "date" || type == "dateTime" || type == "instant") return "@" + *text;
    if (type == "time") return "@T" + *text;
    return *text;
  }
  return toLiteral(item);
}

bool matchesOutput(const Item& item, const Expected& expected) {
  std::string actual = render(item);
  const std::string& type = expected.type;
  if (type == "boolean") {
    bool is_bool = item.kind() == Item::Kind::kBoolean ||
                   (item.isNode() && item.value() != nullptr && item.value()->IsBool());
    return is_bool && actual == expected.text;
  }
  if (type == "integer") {
    bool is_int = item.kind() == Item::Kind::kInteger ||
                  (item.isNode() && item.value() != nullptr && json::isNumber(*item.value()));
    return is_int && actual == expected.text;
  }
  if (type == "decimal") return decimalTextEqual(actual, expected.text);
  if (type == "Quantity") {
    // "4 'wk'" or "4 week": compare value and unit separately.
    auto split = [](const std::string& text) {
      size_t space = text.find(' ');
      return std::pair<std::string, std::string>(text.substr(0, space),
                                                 space == std::string::npos ? "" : text.substr(space + 1));
    };
    auto [value_a, unit_a] = split(actual);
    auto [value_b, unit_b] = split(expected.text);
    return decimalTextEqual(value_a, value_b) && unit_a == unit_b;
  }
  // Untyped outputs (the boundary tests) compare decimals by value too: -0.0 is 0.0.
  if (type.empty() && item.kind() == Item::Kind::kDecimal) {
    return decimalTextEqual(actual, expected.text);
  }
  return actual == expected.text;
}

std::string describe(const Collection& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += render(items[i]);
  }
  return out + "]";
}

// Runs one case; returns an empty string on success, else what went wrong.
std::string runCase(const SuiteCase& c) {
  CompileError detail;
  auto compiled = compile(c.expression, &detail);
  if (!compiled.ok()) {
    if (!c.invalid.empty()) return {};
    return "compile failed: " + compiled.message();
  }
  if (c.invalid == "syntax") return "expected a syntax error";
  EvaluationContext context;
  context.model = Model::bundled();
  context.strict = c.strict;
  context.check_ordered_functions = c.check_ordered_functions;
  Item focus;
  const json::Document* doc = nullptr;
  if (!c.input.empty()) {
    doc = inputDocument(c.input);
    if (doc == nullptr) return "cannot read input " + c.input;
  }
  Result<Collection> result = doc != nullptr ? evaluate(**compiled, *doc, context)
                                             : evaluate(**compiled, Item::node(nullptr, ""), context);
  if (!result.ok()) {
    if (!c.invalid.empty()) return {};
    return "evaluation failed: " + result.message();
  }
  if (!c.invalid.empty()) {
    return "expected an " + c.invalid + " error, got " + describe(*result);
  }
  Collection items = *result;
  if (c.predicate) items = {Item::boolean(!items.empty())};
  if (items.size() != c.outputs.size()) {
    return "expected " + std::to_string(c.outputs.size()) + " items, got " + describe(items);
  }
  if (c.ordered) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (!matchesOutput(items[i], c.outputs[i])) {
        return "item " + std::to_string(i) + ": expected " + c.outputs[i].text + " (" +
               c.outputs[i].type + "), got " + describe(items);
      }
    }
  } else {
    std::vector<bool> used(items.size(), false);
    for (const Expected& expected : c.outputs) {
      bool found = false;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!used[i] && matchesOutput(items[i], expected)) {
          used[i] = found = true;
          break;
        }
      }
      if (!found) return "missing " + expected.text + " in " + describe(items);
    }
  }
  return {};
}

int g_passed = 0;
int g_expected_failures = 0;

class OfficialSuite : public ::testing::TestWithParam<size_t> {};

TEST_P(OfficialSuite, Case) {
  const SuiteCase& c = suite()[GetParam()];
  std::string problem = runCase(c);
  auto known = knownFailures().find(c.name);
  if (known != knownFailures().end()) {
    EXPECT_FALSE(problem.empty()) << c.name << " is listed in known-failures.txt but passes now: "
                                  << "remove it from the list";
    if (!problem.empty()) ++g_expected_failures;
    return;
  }
  EXPECT_TRUE(problem.empty()) << c.group << "/" << c.name << ": " << c.expression << "\n  "
                               << problem;
  if (problem.empty()) ++g_passed;
}

std::string caseName(const ::testing::TestParamInfo<size_t>& info) {
  std::string name = suite()[info.param].name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name + "_" + std::to_string(info.param);
}

std::vector<size_t> caseIndices() {
  std::vector<size_t> indices(suite().size());
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  return indices;
}

INSTANTIATE_TEST_SUITE_P(FhirR4, OfficialSuite, ::testing::ValuesIn(caseIndices()), caseName);

TEST(OfficialSuiteList, KnownFailuresNameRealTests) {
  std::set<std::string> names;
  for (const auto& c : suite()) names.insert(c.name);
  for (const auto& [name, reason] : knownFailures()) {
    EXPECT_TRUE(names.count(name) == 1) << "known-failures.txt names unknown test " << name;
    EXPECT_FALSE(reason.empty()) << "known-failures.txt entry " << name << " needs a reason";
  }
}

class SummaryEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    size_t total = suite().size();
    if (g_passed + g_expected_failures == 0) return;
    std::cout << "FHIRPath R4 suite: " << g_passed << " of " << total << " tests pass ("
              << (total == 0 ? 0.0 : 100.0 * g_passed / static_cast<double>(total)) << "%), "
              << g_expected_failures << " known failures\n";
  }
};

const auto* const kSummary = ::testing::AddGlobalTestEnvironment(new SummaryEnvironment);

}  // namespace
}  // namespace fhir::fhirpath

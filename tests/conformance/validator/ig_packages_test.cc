// SPDX-License-Identifier: Apache-2.0
// Extra IG packages (contracts/cli.md `igs` / `validate --ig`): FHIR NPM package tarballs loaded
// beside the core, canonicals scoped per package (US Core 3.1 and 6.1 together), dependencies
// that are not loaded reported with what goes unchecked, the published US Core 6.1 and CARIN BB
// 2.0 examples validated with their packages, and the terminology wired into FHIRPath
// (memberOf) and into bindings whose value set is not available locally.

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::testing {
namespace {

namespace fs = std::filesystem;

fs::path igsDir() { return testDataDir() / "igs"; }
std::string package(const char* name) { return (igsDir() / "packages" / name).string(); }

ValidatorPtr makeValidator(std::vector<std::string> packages,
                           Severity unchecked = Severity::kWarning) {
  ValidatorOptions options;
  options.extra_paths = std::move(packages);
  options.unchecked_binding = unchecked;
  auto created = createValidator(options);
  EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.message());
  if (!created.ok()) std::abort();
  return *created;
}

const Validator& usCore6() {
  static const ValidatorPtr validator = makeValidator({package("us-core-6.1.0.tgz")});
  return *validator;
}

const Validator& carin() {
  static const ValidatorPtr validator =
      makeValidator({package("us-core-3.1.0.tgz"), package("carin-bb-2.0.0.tgz")});
  return *validator;
}

IssueList validate(const Validator& validator, const std::string& text,
                   const ValidationRequest& request = {}) {
  IssueList issues;
  validator.validateText(text, request, issues);
  return issues;
}

std::string describe(const IssueList& issues, bool errors_only = false) {
  std::string out;
  for (const Issue& issue : issues.issues()) {
    if (errors_only && issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    out += std::string(severityName(issue.severity)) + " " + issue.code + " " +
           (issue.expression.empty() ? std::string("-") : issue.expression.front()) + ": " +
           issue.diagnostics + "\n";
  }
  return out.empty() ? "(no issues)\n" : out;
}

size_t count(const IssueList& issues, Severity severity, std::string_view code,
             std::string_view expression, std::string_view text = {}) {
  size_t found = 0;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != severity || issue.code != code) continue;
    if ((issue.expression.empty() ? std::string() : issue.expression.front()) != expression) continue;
    if (!text.empty() && issue.diagnostics.find(text) == std::string::npos) continue;
    ++found;
  }
  return found;
}

// file -> reason, from tests/data/igs/known-wrong.txt ("<folder>/<file> <reason>").
std::map<std::string, std::string> knownWrong() {
  std::map<std::string, std::string> out;
  std::ifstream in(igsDir() / "known-wrong.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find(' ');
    out[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return out;
}

// Every example of `folder` validates without errors, except the listed genuinely wrong ones,
// which must have errors (the list fails the test when it changes either way).
void checkExamples(const Validator& validator, const std::string& folder, size_t minimum) {
  std::map<std::string, std::string> listed = knownWrong();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(igsDir() / "examples" / folder)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), minimum);
  size_t clean = 0;
  for (const fs::path& file : files) {
    std::string key = folder + "/" + file.filename().string();
    IssueList issues = validate(validator, readFile(file));
    bool wrong = listed.count(key) > 0;
    if (wrong) {
      EXPECT_TRUE(issues.hasErrors()) << key << " is listed in known-wrong.txt (" << listed[key]
                                      << ") but now validates: remove it";
    } else {
      EXPECT_FALSE(issues.hasErrors()) << key << ":\n" << describe(issues, true);
      ++clean;
    }
  }
  std::cout << folder << ": " << clean << " of " << files.size() << " examples without errors\n";
}

TEST(IgPackagesTest, TarballsLoadAndBothUsCoreVersionsResolveByVersion) {
  ValidatorPtr both = makeValidator({package("us-core-3.1.0.tgz"), package("us-core-6.1.0.tgz")});
  const std::string patient = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";
  EXPECT_TRUE(both->knowsProfile(patient + "|3.1.0"));
  EXPECT_TRUE(both->knowsProfile(patient + "|6.1.0"));
  ValidationRequest v3, v6;
  v3.profiles.push_back(patient + "|3.1.0");
  v6.profiles.push_back(patient + "|6.1.0");
  std::string example = readFile(igsDir() / "examples" / "us-core-6.1.0" / "Patient-example.json");
  EXPECT_FALSE(validate(*both, example, v6).hasErrors()) << describe(validate(*both, example, v6));
  EXPECT_FALSE(validate(*both, example, v3).hasErrors()) << describe(validate(*both, example, v3));

  // 6.1 slices Patient.extension:sex (max 1); 3.1 has no such slice.
  const char* kTwoSexes = R"j({"resourceType":"Patient","identifier":[{"system":"http://example.org","value":"1"}],
      "name":[{"family":"Doe"}],"gender":"female","extension":[
        {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex","valueCode":"248152002"},
        {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex","valueCode":"248153007"}]})j";
  IssueList issues6 = validate(*both, kTwoSexes, v6);
  EXPECT_EQ(count(issues6, Severity::kError, "structure", "Patient", "Patient.extension:sex: max allowed = 1"), 1u)
      << describe(issues6);
  EXPECT_FALSE(validate(*both, kTwoSexes, v3).hasErrors()) << describe(validate(*both, kTwoSexes, v3));

  // The race extension each profile reaches is its own package's: 3.1.0 enumerates the OMB
  // codes (9999-9 is an error), 6.1.0 imports VSAC value sets that are not loaded (not checked).
  const char* kRace = R"j({"resourceType":"Patient","identifier":[{"system":"http://example.org","value":"1"}],
      "name":[{"family":"Doe"}],"gender":"female","extension":[{
        "url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[
          {"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"9999-9"}},
          {"url":"text","valueString":"Unknown"}]}]})j";
  const char* kWhere = "Patient.extension[0].extension[0].value.ofType(Coding)";
  IssueList race3 = validate(*both, kRace, v3);
  EXPECT_EQ(count(race3, Severity::kError, "code-invalid", kWhere, "omb-race-category|3.1.0"), 1u) << describe(race3);
  IssueList race6 = validate(*both, kRace, v6);
  EXPECT_EQ(count(race6, Severity::kWarning, "not-supported", kWhere, "omb-race-category|6.1.0"), 1u)
      << describe(race6);
  EXPECT_EQ(count(race6, Severity::kError, "code-invalid", kWhere, "omb-race-category|6.1.0"), 0u) << describe(race6);
}

// A required binding that cannot be checked locally is a warning naming the value set, never
// silence; the configured policy makes it an error.
TEST(IgPackagesTest, UncheckedBindingIsAWarningOrByPolicyAnError) {
  const char* kRace = R"j({"resourceType":"Patient","extension":[{
        "url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[
          {"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"9999-9"}},
          {"url":"text","valueString":"Unknown"}]}]})j";
  const char* kWhere = "Patient.extension[0].extension[0].value.ofType(Coding)";
  IssueList warned = validate(usCore6(), kRace);
  EXPECT_FALSE(warned.hasErrors()) << describe(warned);
  EXPECT_EQ(count(warned, Severity::kWarning, "not-supported", kWhere,
                  "http://hl7.org/fhir/us/core/ValueSet/omb-race-category"), 1u) << describe(warned);
  ValidatorPtr strict = makeValidator({package("us-core-6.1.0.tgz")}, Severity::kError);
  IssueList failed = validate(*strict, kRace);
  EXPECT_EQ(count(failed, Severity::kError, "not-supported", kWhere,
                  "http://hl7.org/fhir/us/core/ValueSet/omb-race-category"), 1u) << describe(failed);
}

TEST(IgPackagesTest, MissingDependenciesAreWarningsListingWhatGoesUnchecked) {
  const std::vector<std::string>& warnings = usCore6().startupWarnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("hl7.fhir.us.core#6.1.0 depends on"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("us.nlm.vsac#0.10.0"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("hl7.terminology.r4#5.0.0"), std::string::npos) << warnings[0];
  // The OMB race value sets import VSAC value sets that are not loaded.
  EXPECT_NE(warnings[0].find("http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113762.1.4.1021.102"),
            std::string::npos)
      << warnings[0];

  // CARIN BB 2.0 names US Core 3.1.1; 3.1.0 is what is loaded.
  bool named = false;
  for (const std::string& warning : carin().startupWarnings()) {
    named = named || warning.find("hl7.fhir.us.core#3.1.1 (loaded: 3.1.0)") != std::string::npos;
  }
  EXPECT_TRUE(named) << ::testing::PrintToString(carin().startupWarnings());

  ValidatorOptions strict;
  strict.extra_paths = {package("us-core-6.1.0.tgz")};
  strict.strict_dependencies = true;
  auto created = createValidator(strict);
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.message().find("strictDependencies"), std::string::npos) << created.message();
}

TEST(IgPackagesTest, BrokenTarballIsAnErrorNamingTheFile) {
  fs::path broken = fs::temp_directory_path() / "validator-broken-package.tgz";
  {
    std::ofstream out(broken, std::ios::binary);
    out << "not a gzip stream";
  }
  ValidatorOptions options;
  options.extra_paths = {broken.string()};
  auto created = createValidator(options);
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.message().find(broken.string()), std::string::npos) << created.message();
  fs::remove(broken);
}

// The R5 cross-version SubscriptionTopic extensions (fhir_profiles/r5-cross-version) make the
// gateway's topic Basic resources checkable: the published topic is clean, a broken copy fails.
TEST(IgPackagesTest, CrossVersionTopicExtensionsAreKnown) {
  fs::path profiles(GATEWAY_PROFILES_DIR);
  ValidatorPtr validator = makeValidator({(profiles / "r5-cross-version" / "package").string()});
  std::string topic = readFile(profiles / "alignment" / "package" / "Basic-topic-econsult-requested.json");
  IssueList clean = validate(*validator, topic);
  EXPECT_FALSE(clean.hasErrors()) << describe(clean);
  auto doc = json::parse(topic);
  ASSERT_TRUE(doc.ok());
  json::Value& extensions = (*doc)["extension"];
  int status = -1, filter = -1;
  for (rapidjson::SizeType index = 0; index < extensions.Size(); ++index) {
    std::string_view url = json::stringView(extensions[index]["url"]);
    if (url.size() > 7 && url.substr(url.size() - 7) == ".status") status = static_cast<int>(index);
    if (filter < 0 && url.size() > 12 && url.substr(url.size() - 12) == ".canFilterBy") filter = static_cast<int>(index);
  }
  ASSERT_GE(status, 0);
  ASSERT_GE(filter, 0);
  extensions[status]["valueCode"].SetString("bogus", doc->GetAllocator());
  json::Value& parts = extensions[filter]["extension"];
  for (rapidjson::SizeType index = 0; index < parts.Size(); ++index) {
    if (json::stringView(parts[index]["url"]) == "filterParameter") {
      parts.Erase(parts.Begin() + index);
      break;
    }
  }
  IssueList broken = validate(*validator, json::serialize(*doc));
  std::string at_status = "Basic.extension[" + std::to_string(status) + "].value.ofType(code)";
  std::string at_filter = "Basic.extension[" + std::to_string(filter) + "]";
  EXPECT_EQ(count(broken, Severity::kError, "code-invalid", at_status, "bogus"), 1u) << describe(broken);
  EXPECT_EQ(count(broken, Severity::kError, "structure", at_filter, "filterParameter"), 1u) << describe(broken);
  EXPECT_EQ(broken.errorCount(), 2u) << describe(broken);
}

// memberOf() in CARIN's invariants answers from the package's own value sets: the published
// inpatient EOB holds EOB-institutional-item-or-header-adjudication (adjudication amounts at the
// header only); a copy that also puts a C4BBAdjudication amount on the item breaks it.
TEST(IgPackagesTest, MemberOfInCarinInvariants) {
  std::string text = readFile(igsDir() / "examples" / "carin-bb-2.0.0" / "ExplanationOfBenefit-EOBInpatient1.json");
  IssueList clean = validate(carin(), text);
  EXPECT_FALSE(clean.hasErrors()) << describe(clean, true);
  auto doc = json::parse(text);
  ASSERT_TRUE(doc.ok());
  auto& allocator = doc->GetAllocator();
  auto item_adjudication = json::parse(R"j([{"category":{"coding":[{
      "system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication","code":"paidtoprovider"}]},
      "amount":{"value":10,"currency":"USD"}}])j");
  ASSERT_TRUE(item_adjudication.ok());
  json::Value copy(*item_adjudication, allocator);
  json::Value& item = (*doc)["item"][0];
  if (item.HasMember("adjudication")) item.RemoveMember("adjudication");
  item.AddMember("adjudication", copy, allocator);
  IssueList broken = validate(carin(), json::serialize(*doc));
  EXPECT_EQ(count(broken, Severity::kError, "invariant", "ExplanationOfBenefit",
                  "EOB-institutional-item-or-header-adjudication"), 1u)
      << describe(broken);
}

TEST(IgPackagesTest, UsCore61ExamplesValidate) { checkExamples(usCore6(), "us-core-6.1.0", 180); }

TEST(IgPackagesTest, CarinBb20ExamplesValidate) { checkExamples(carin(), "carin-bb-2.0.0", 30); }

}  // namespace
}  // namespace fhir::testing

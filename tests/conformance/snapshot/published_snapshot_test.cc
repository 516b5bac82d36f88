// SPDX-License-Identifier: Apache-2.0
// Regenerates the snapshots of published US Core 6.1.0 and CARIN BB 2.0.0 profiles from their
// differentials (tests/data/profiles, see SOURCE.md) and compares them, element for element,
// with the snapshots the HL7 IG Publisher produced. Profiles whose base is another profile of
// the set (blood pressure on US Core vital signs on core vitalsigns) are resolved to our
// generated snapshot of that base, so the chain runs through the generator end to end.

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/conformance/snapshot/definition_index.h"
#include "tests/support/test_support.h"

namespace fhir::snapshot {
namespace {

using testing::DefinitionIndex;

std::string text(const json::Value& object, std::string_view key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

std::string minText(const json::Value& element) {
  const json::Value* min = json::find(element, "min");
  return min != nullptr && json::isNumber(*min) ? json::numberText(*min) : std::string();
}

std::vector<std::string> strings(const json::Value* array) {
  std::vector<std::string> out;
  if (array == nullptr || !array->IsArray()) return out;
  for (const json::Value& item : array->GetArray()) {
    if (json::isString(item)) out.emplace_back(json::stringView(item));
  }
  return out;
}

// The compared projection of an element: id, path, min, max, types (code, profiles, target
// profiles), binding strength and value set, constraint keys.
std::string describe(const json::Value& element) {
  std::string out = "id=" + text(element, "id") + " path=" + text(element, "path") +
                    " min=" + minText(element) + " max=" + text(element, "max") + " type=[";
  if (const json::Value* types = json::find(element, "type"); types && types->IsArray()) {
    for (const json::Value& type : types->GetArray()) {
      out += text(type, "code") + "{";
      for (const auto& profile : strings(json::find(type, "profile"))) out += profile + ",";
      out += "|";
      for (const auto& target : strings(json::find(type, "targetProfile"))) out += target + ",";
      out += "} ";
    }
  }
  out += "] binding=";
  if (const json::Value* binding = json::find(element, "binding")) {
    out += text(*binding, "strength") + " " + text(*binding, "valueSet");
  }
  std::vector<std::string> keys;
  if (const json::Value* constraints = json::find(element, "constraint");
      constraints && constraints->IsArray()) {
    for (const json::Value& constraint : constraints->GetArray()) {
      keys.push_back(text(constraint, "key"));
    }
  }
  std::sort(keys.begin(), keys.end());
  out += " constraints=";
  for (const auto& key : keys) out += key + ",";
  return out;
}

class PublishedSnapshotTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    index_ = new DefinitionIndex();
    index_->addFolder(testing::corePackageDir());
    for (const auto& url : index_->addFolder(testing::testDataDir() / "profiles")) {
      index_->ignorePublishedSnapshot(url);
    }
  }
  static void TearDownTestSuite() {
    delete index_;
    index_ = nullptr;
  }
  static DefinitionIndex* index_;
};

DefinitionIndex* PublishedSnapshotTest::index_ = nullptr;

TEST_P(PublishedSnapshotTest, GeneratedSnapshotEqualsPublished) {
  const std::string url = GetParam();
  const json::Value* published = index_->published(url);
  ASSERT_NE(published, nullptr) << url;
  const json::Value* generated = index_->withSnapshot(url);
  ASSERT_NE(generated, nullptr) << index_->lastError();

  const json::Value& expected = (*published)["snapshot"]["element"];
  const json::Value& actual = (*generated)["snapshot"]["element"];
  std::vector<std::string> expected_lines;
  std::vector<std::string> actual_lines;
  for (const json::Value& element : expected.GetArray()) expected_lines.push_back(describe(element));
  for (const json::Value& element : actual.GetArray()) actual_lines.push_back(describe(element));
  size_t common = std::min(expected_lines.size(), actual_lines.size());
  for (size_t index = 0; index < common; ++index) {
    ASSERT_EQ(expected_lines[index], actual_lines[index]) << "element " << index << " of " << url;
  }
  EXPECT_EQ(expected_lines.size(), actual_lines.size())
      << "first extra: "
      << (expected_lines.size() > common ? expected_lines[common]
                                          : actual_lines.size() > common ? actual_lines[common]
                                                                         : std::string());
}

// Every published profile in tests/data/profiles (see SOURCE.md): the whole of US Core 6.1.0
// except us-core-questionnaireresponse, whose base (SDC) is not in our material, and CARIN BB
// 2.0.0 Coverage, RelatedPerson and ExplanationOfBenefit with two of its profiles.
std::vector<std::string> publishedProfiles() {
  DefinitionIndex index;
  std::vector<std::string> urls = index.addFolder(testing::testDataDir() / "profiles");
  EXPECT_GE(urls.size(), 50u);
  return urls;
}

std::string testName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.rfind('/') + 1);
  std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(UsCoreAndCarin, PublishedSnapshotTest,
                         ::testing::ValuesIn(publishedProfiles()), testName);

}  // namespace
}  // namespace fhir::snapshot

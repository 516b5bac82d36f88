// SPDX-License-Identifier: Apache-2.0
// Differentials that cannot be placed on their base, and differentials written without element
// ids (path + sliceName only), on small hand-written profiles over R4 core.

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/conformance/snapshot/definition_index.h"

namespace fhir::snapshot {
namespace {

using testing::DefinitionIndex;

class SnapshotErrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    index_ = new DefinitionIndex();
    index_->addFolder(testing::corePackageDir());
  }
  static void TearDownTestSuite() { delete index_; }

  static Result<json::Document> generate(const std::string& differential_elements,
                                         const std::string& base = "Patient") {
    std::string text = R"({"resourceType":"StructureDefinition","url":"http://example.org/sd/t",)"
                       R"("type":")" + base + R"(","derivation":"constraint",)"
                       R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/)" + base +
                       R"(","differential":{"element":[)" + differential_elements + "]}}";
    auto parsed = json::parse(text);
    EXPECT_TRUE(parsed.ok()) << text;
    return generateSnapshot(*parsed, index_->resolver());
  }

  static const json::Value* find(const json::Document& sd, std::string_view id) {
    for (const json::Value& element : sd["snapshot"]["element"].GetArray()) {
      if (json::getString(element, "id") == id) return &element;
    }
    return nullptr;
  }

  static DefinitionIndex* index_;
};

DefinitionIndex* SnapshotErrorsTest::index_ = nullptr;

TEST_F(SnapshotErrorsTest, UnknownElementIsAnErrorNamingIt) {
  auto result = generate(R"({"id":"Patient.nickname","path":"Patient.nickname","min":1})");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("Patient.nickname"), std::string::npos) << result.message();
}

TEST_F(SnapshotErrorsTest, SliceWithoutSlicingIsAnError) {
  auto result = generate(
      R"({"id":"Patient.identifier:mrn","path":"Patient.identifier","sliceName":"mrn"})");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("without a slicing"), std::string::npos) << result.message();
}

TEST_F(SnapshotErrorsTest, TypeNotAllowedByTheBaseIsAnError) {
  auto result = generate(
      R"({"id":"Patient.birthDate","path":"Patient.birthDate","type":[{"code":"string"}]})");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("not allowed"), std::string::npos) << result.message();
}

TEST_F(SnapshotErrorsTest, ChoiceRenamedToATypeItDoesNotAllowIsAnError) {
  auto result = generate(R"({"id":"Patient.deceasedString","path":"Patient.deceasedString"})");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("String"), std::string::npos) << result.message();
}

TEST_F(SnapshotErrorsTest, MissingBaseIsAnError) {
  auto result = generate("", "NoSuchResource");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.message().find("NoSuchResource"), std::string::npos) << result.message();
}

TEST_F(SnapshotErrorsTest, SliceChildrenComeFromTheTypeAndIdsFromPathAndSliceName) {
  // No element ids: the slice of the child element is taken from the element before it.
  auto result = generate(
      R"({"path":"Patient.identifier","slicing":{"discriminator":[{"type":"value","path":"system"}],"rules":"open"}},)"
      R"({"path":"Patient.identifier","sliceName":"mrn","min":1,"max":"1"},)"
      R"({"path":"Patient.identifier.system","min":1,"fixedUri":"urn:oid:1.2.3"})");
  ASSERT_TRUE(result.ok()) << result.message();
  const json::Value* slice = find(*result, "Patient.identifier:mrn");
  ASSERT_NE(slice, nullptr);
  EXPECT_EQ(json::getString(*slice, "sliceName"), "mrn");
  EXPECT_EQ(json::getString(*slice, "path"), "Patient.identifier");
  EXPECT_EQ(json::numberText((*slice)["min"]), "1");
  const json::Value* system = find(*result, "Patient.identifier:mrn.system");
  ASSERT_NE(system, nullptr);
  EXPECT_EQ(json::getString(*system, "path"), "Patient.identifier.system");
  EXPECT_EQ(json::getString(*system, "fixedUri"), "urn:oid:1.2.3");
  // The unsliced element keeps its base children unexpanded: nothing constrained them.
  EXPECT_EQ(find(*result, "Patient.identifier.system"), nullptr);
  // Slices follow the sliced element; the next base element follows the slices.
  const json::Value& elements = (*result)["snapshot"]["element"];
  std::vector<std::string> order;
  for (const json::Value& element : elements.GetArray()) {
    order.emplace_back(json::getString(element, "id").value_or(""));
  }
  auto at = std::find(order.begin(), order.end(), "Patient.identifier");
  ASSERT_NE(at, order.end());
  EXPECT_EQ(*(at + 1), "Patient.identifier:mrn");
  EXPECT_EQ(*(at + 2), "Patient.identifier:mrn.id");
  EXPECT_EQ(order.back(), "Patient.link.type");
}

TEST_F(SnapshotErrorsTest, DifferentialConstraintsAddToInheritedOnes) {
  auto result = generate(
      R"json({"id":"Patient.name","path":"Patient.name","constraint":[{"key":"t-1",)json"
      R"json("severity":"error","human":"h","expression":"family.exists()"}]})json");
  ASSERT_TRUE(result.ok()) << result.message();
  const json::Value* name = find(*result, "Patient.name");
  ASSERT_NE(name, nullptr);
  ASSERT_EQ((*name)["constraint"].Size(), 2u);
  EXPECT_EQ(json::getString((*name)["constraint"][0], "key"), "ele-1");
  EXPECT_EQ(json::getString((*name)["constraint"][1], "key"), "t-1");
}

}  // namespace
}  // namespace fhir::snapshot

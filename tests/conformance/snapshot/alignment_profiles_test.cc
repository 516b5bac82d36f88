// SPDX-License-Identifier: Apache-2.0
// The alignment implementation guide (fhir_profiles/alignment): every profile's snapshot is
// generated from its differential at load time, including the profile-on-profile HRSN
// observations; the terminology its bindings name exists; the examples declare known profiles;
// the subscription topics are the ten of contracts/canonicals.md.

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/conformance/snapshot/definition_index.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::snapshot {
namespace {

namespace fs = std::filesystem;
using testing::DefinitionIndex;

constexpr std::string_view kBase = "https://fhir.alignment-gateway.org";

fs::path alignmentDir() { return fs::path(GATEWAY_PROFILES_DIR) / "alignment"; }

std::string str(const json::Value& object, std::string_view key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

json::Document load(const fs::path& path) {
  auto parsed = json::parse(testing::readFile(path));
  EXPECT_TRUE(parsed.ok()) << path << ": " << (parsed.ok() ? "" : parsed.message());
  if (!parsed.ok()) return json::Document();
  return std::move(parsed.value());
}

// All package resources of one type, by URL.
std::map<std::string, json::Document> packageResources(std::string_view resource_type) {
  std::map<std::string, json::Document> out;
  for (const auto& entry : fs::directory_iterator(alignmentDir() / "package")) {
    if (entry.path().extension() != ".json" || entry.path().filename() == "package.json") continue;
    json::Document doc = load(entry.path());
    if (!doc.IsObject() || str(doc, "resourceType") != resource_type) continue;
    std::string key = resource_type == "Basic" ? str(doc, "id") : str(doc, "url");
    out.emplace(key, std::move(doc));
  }
  return out;
}

class AlignmentGuideTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    index_ = new DefinitionIndex();
    index_->addFolder(testing::corePackageDir());
    urls_ = new std::vector<std::string>(index_->addFolder(alignmentDir() / "package"));
  }
  static void TearDownTestSuite() {
    delete index_;
    delete urls_;
  }

  // The generated snapshot element with this id, or nullptr.
  static const json::Value* element(const std::string& profile_id, std::string_view element_id) {
    const json::Value* sd =
        index_->withSnapshot(std::string(kBase) + "/StructureDefinition/" + profile_id);
    if (sd == nullptr) return nullptr;
    for (const json::Value& element : (*sd)["snapshot"]["element"].GetArray()) {
      if (str(element, "id") == element_id) return &element;
    }
    return nullptr;
  }

  static std::vector<std::string> constraintKeys(const json::Value& element) {
    std::vector<std::string> keys;
    if (const json::Value* constraints = json::find(element, "constraint")) {
      for (const json::Value& constraint : constraints->GetArray()) {
        keys.push_back(str(constraint, "key"));
      }
    }
    return keys;
  }

  static DefinitionIndex* index_;
  static std::vector<std::string>* urls_;
};

DefinitionIndex* AlignmentGuideTest::index_ = nullptr;
std::vector<std::string>* AlignmentGuideTest::urls_ = nullptr;

TEST_F(AlignmentGuideTest, EveryProfileHasTheFixedIdAndGeneratesASnapshot) {
  const std::vector<std::string> fixed = {
      "alignment-patient", "alignment-coverage", "alignment-organization",
      "alignment-practitioner", "attribution-group", "econsult-servicerequest", "econsult-task",
      "econsult-communication", "billing-claim", "comanagement-episodeofcare",
      "care-management-careplan", "risk-tier-riskassessment", "hrsn-screening-observation",
      "hrsn-positive-domain-observation", "social-referral-servicerequest", "social-referral-task",
      "equity-measurereport", "mapping-provenance", "alignment-condition", "care-management-goal",
      "care-management-careteam", "empanelment-careteam"};
  std::set<std::string> loaded(urls_->begin(), urls_->end());
  for (const auto& id : fixed) {
    EXPECT_TRUE(loaded.contains(std::string(kBase) + "/StructureDefinition/" + id)) << id;
  }
  ASSERT_GE(urls_->size(), fixed.size());
  for (const auto& url : *urls_) {
    const json::Value* published = index_->published(url);
    ASSERT_NE(published, nullptr);
    EXPECT_EQ(json::find(*published, "snapshot"), nullptr) << url << " is written as a differential";
    const json::Value* generated = index_->withSnapshot(url);
    ASSERT_NE(generated, nullptr) << url << ": " << index_->lastError();
    // Every differential element is in the snapshot, and ids are unique.
    std::set<std::string> ids;
    for (const json::Value& element : (*generated)["snapshot"]["element"].GetArray()) {
      EXPECT_TRUE(ids.insert(str(element, "id")).second) << url << " repeats " << str(element, "id");
    }
    for (const json::Value& diff : (*published)["differential"]["element"].GetArray()) {
      EXPECT_TRUE(ids.contains(str(diff, "id"))) << url << " lost " << str(diff, "id");
    }
  }
}

TEST_F(AlignmentGuideTest, PatientSnapshotCarriesExtensionSlicesAndExpandedIdentifier) {
  const json::Value* race = element("alignment-patient", "Patient.extension:race");
  ASSERT_NE(race, nullptr);
  EXPECT_EQ(str(*race, "path"), "Patient.extension");
  EXPECT_EQ(str((*race)["type"][0], "code"), "Extension");
  EXPECT_EQ(json::stringView((*race)["type"][0]["profile"][0]),
            std::string(kBase) + "/StructureDefinition/race");
  const json::Value* extension = element("alignment-patient", "Patient.extension");
  ASSERT_NE(extension, nullptr);
  ASSERT_NE(json::find(*extension, "slicing"), nullptr) << "extensions are sliced by url";
  const json::Value* system = element("alignment-patient", "Patient.identifier.system");
  ASSERT_NE(system, nullptr) << "children of Identifier come from the Identifier type";
  EXPECT_EQ(json::numberText((*system)["min"]), "1");
  EXPECT_EQ(constraintKeys(*system), std::vector<std::string>{"ele-1"});
  const json::Value* use = element("alignment-patient", "Patient.identifier.use");
  ASSERT_NE(use, nullptr);
  EXPECT_EQ(str((*use)["binding"], "strength"), "required") << "inherited binding";
  const json::Value* root = element("alignment-patient", "Patient");
  ASSERT_NE(root, nullptr);
  auto keys = constraintKeys(*root);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "dom-2"), keys.end()) << "inherited constraint";
  EXPECT_NE(std::find(keys.begin(), keys.end(), "align-pat-1"), keys.end());
}

TEST_F(AlignmentGuideTest, NpiInvariantSitsOnPractitionerIdentifier) {
  const json::Value* identifier = element("alignment-practitioner", "Practitioner.identifier");
  ASSERT_NE(identifier, nullptr);
  EXPECT_EQ(constraintKeys(*identifier), (std::vector<std::string>{"ele-1", "align-npi"}));
}

TEST_F(AlignmentGuideTest, ClaimConstrainsChoiceTypeAndBinding) {
  const json::Value* serviced = element("billing-claim", "Claim.item.serviced[x]");
  ASSERT_NE(serviced, nullptr);
  ASSERT_EQ((*serviced)["type"].Size(), 1u);
  EXPECT_EQ(str((*serviced)["type"][0], "code"), "date");
  const json::Value* product = element("billing-claim", "Claim.item.productOrService");
  ASSERT_NE(product, nullptr);
  EXPECT_EQ(str((*product)["binding"], "strength"), "required");
  EXPECT_EQ(str((*product)["binding"], "valueSet"),
            std::string(kBase) + "/ValueSet/alignment-billing-codes");
  const json::Value* insurer = element("billing-claim", "Claim.insurer");
  ASSERT_NE(insurer, nullptr);
  EXPECT_EQ(json::numberText((*insurer)["min"]), "1");
  EXPECT_EQ(json::stringView((*insurer)["type"][0]["targetProfile"][0]),
            std::string(kBase) + "/StructureDefinition/alignment-organization");
}

TEST_F(AlignmentGuideTest, ProfileOnProfileKeepsTheBaseProfileSlicesAndConstraints) {
  // hrsn-screening-observation derives from alignment-sdoh-observation, which slices category.
  const std::string id = "hrsn-screening-observation";
  const json::Value* sd =
      index_->withSnapshot(std::string(kBase) + "/StructureDefinition/" + id);
  ASSERT_NE(sd, nullptr) << index_->lastError();
  std::vector<std::string> category_ids;
  for (const json::Value& element : (*sd)["snapshot"]["element"].GetArray()) {
    if (str(element, "path") == "Observation.category") category_ids.push_back(str(element, "id"));
  }
  EXPECT_EQ(category_ids,
            (std::vector<std::string>{"Observation.category", "Observation.category:sdoh",
                                      "Observation.category:socialHistory"}));
  const json::Value* category = element(id, "Observation.category");
  ASSERT_NE(category, nullptr);
  EXPECT_EQ(json::numberText((*category)["min"]), "2") << "tightened by the derived profile";
  EXPECT_NE(json::find(*category, "slicing"), nullptr) << "slicing inherited from the base profile";
  const json::Value* subject = element(id, "Observation.subject");
  ASSERT_NE(subject, nullptr);
  EXPECT_EQ(json::numberText((*subject)["min"]), "1") << "inherited from the base profile";
  const json::Value* sdoh = element("hrsn-positive-domain-observation", "Observation.category:sdoh");
  ASSERT_NE(sdoh, nullptr);
  EXPECT_NE(json::find(*sdoh, "patternCodeableConcept"), nullptr);
}

TEST_F(AlignmentGuideTest, BindingsNameValueSetsOfTheGuideOrOfR4Core) {
  auto value_sets = packageResources("ValueSet");
  auto code_systems = packageResources("CodeSystem");
  for (const auto& url : *urls_) {
    const json::Value* generated = index_->withSnapshot(url);
    ASSERT_NE(generated, nullptr);
    for (const json::Value& element : (*generated)["snapshot"]["element"].GetArray()) {
      const json::Value* binding = json::find(element, "binding");
      if (binding == nullptr) continue;
      std::string value_set = str(*binding, "valueSet");
      value_set = value_set.substr(0, value_set.find('|'));
      if (value_set.rfind(std::string(kBase), 0) == 0) {
        EXPECT_TRUE(value_sets.contains(value_set)) << url << " " << str(element, "id") << " -> "
                                                    << value_set;
      }
    }
  }
  // Local code systems named by our value sets exist and hold every enumerated code.
  for (const auto& [url, value_set] : value_sets) {
    for (const json::Value& include : value_set["compose"]["include"].GetArray()) {
      std::string system = str(include, "system");
      if (system.rfind(std::string(kBase), 0) != 0) continue;
      auto code_system = code_systems.find(system);
      ASSERT_NE(code_system, code_systems.end()) << url << " includes unknown " << system;
      std::set<std::string> codes;
      for (const json::Value& coded : code_system->second["concept"].GetArray()) {
        codes.insert(str(coded, "code"));
      }
      if (const json::Value* concepts = json::find(include, "concept")) {
        for (const json::Value& coded : concepts->GetArray()) {
          EXPECT_TRUE(codes.contains(str(coded, "code"))) << url << ": " << str(coded, "code");
        }
      }
    }
  }
}

TEST_F(AlignmentGuideTest, BillingCodesAreThoseOfTheContract) {
  auto value_sets = packageResources("ValueSet");
  const auto& billing = value_sets.at(std::string(kBase) + "/ValueSet/alignment-billing-codes");
  std::set<std::string> codes;
  for (const json::Value& include : billing["compose"]["include"].GetArray()) {
    for (const json::Value& coded : include["concept"].GetArray()) {
      codes.insert(str(include, "system") + "|" + str(coded, "code"));
    }
  }
  // canonicals.md's e-consult codes and ACM, and the behavioral health integration codes a care
  // plan may bill (issue 19: general BHI 99484, collaborative care 99492, 99493, 99494).
  const std::string cpt = "http://www.ama-assn.org/go/cpt|";
  EXPECT_EQ(codes, (std::set<std::string>{cpt + "99446", cpt + "99447", cpt + "99448",
                                          cpt + "99449", cpt + "99451", cpt + "99452",
                                          cpt + "99484", cpt + "99492", cpt + "99493", cpt + "99494",
                                          std::string(kBase) + "/CodeSystem/alignment-billing|ACM"}));
}

TEST_F(AlignmentGuideTest, TheTenSubscriptionTopicsOfTheContract) {
  auto topics = packageResources("Basic");
  const std::string ext = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.";
  std::set<std::string> ids;
  for (const auto& [id, topic] : topics) {
    ids.insert(id);
    EXPECT_EQ(str(topic["code"]["coding"][0], "code"), "SubscriptionTopic");
    std::string url;
    int triggers = 0;
    std::map<std::string, std::set<std::string>> filters_by_resource;
    std::set<std::string> trigger_resources;
    for (const json::Value& extension : topic["extension"].GetArray()) {
      std::string name = str(extension, "url").substr(ext.size());
      if (name == "url") url = str(extension, "valueUri");
      if (name != "resourceTrigger" && name != "canFilterBy") continue;
      std::string resource;
      std::string filter;
      for (const json::Value& part : extension["extension"].GetArray()) {
        if (str(part, "url") == "resource") resource = str(part, "valueUri");
        if (str(part, "url") == "filterParameter") filter = str(part, "valueString");
      }
      if (name == "resourceTrigger") {
        ++triggers;
        trigger_resources.insert(resource);
      } else {
        filters_by_resource[resource].insert(filter);
      }
    }
    EXPECT_EQ(url, std::string(kBase) + "/SubscriptionTopic/" + id);
    EXPECT_GE(triggers, 1) << id;
    for (const auto& resource : trigger_resources) {
      EXPECT_EQ(filters_by_resource[resource],
                (std::set<std::string>{"patient", "payer", "practice", "code"}))
          << id << " " << resource;
    }
  }
  EXPECT_EQ(ids, (std::set<std::string>{"econsult-requested", "econsult-answered",
                                        "econsult-closed", "comanagement-started",
                                        "comanagement-ended", "billing-routed", "hrsn-positive",
                                        "careplan-changed", "claim-received",
                                        "attribution-changed"}));
}

TEST_F(AlignmentGuideTest, EveryExampleParsesAndDeclaresAKnownProfileOfItsType) {
  std::set<std::string> loaded(urls_->begin(), urls_->end());
  size_t count = 0;
  for (const char* folder : {"valid", "invalid"}) {
    for (const auto& entry : fs::directory_iterator(alignmentDir() / "examples" / folder)) {
      if (entry.path().filename() == "manifest.json") continue;
      json::Document example = load(entry.path());
      ASSERT_TRUE(example.IsObject()) << entry.path();
      const json::Value* meta = json::find(example, "meta");
      ASSERT_NE(meta, nullptr) << entry.path();
      std::string profile(json::stringView((*meta)["profile"][0]));
      ASSERT_TRUE(loaded.contains(profile)) << entry.path() << " declares " << profile;
      EXPECT_EQ(str(*index_->published(profile), "type"), str(example, "resourceType"))
          << entry.path();
      ++count;
    }
  }
  EXPECT_GE(count, 40u);
}

TEST_F(AlignmentGuideTest, PackageIndexListsEveryResource) {
  json::Document package = load(alignmentDir() / "package" / "package.json");
  EXPECT_EQ(str(package, "canonical"), kBase);
  EXPECT_EQ(str(package["dependencies"], "hl7.fhir.r4.core"), "4.0.1");
  json::Document index = load(alignmentDir() / "package" / ".index.json");
  std::set<std::string> listed;
  for (const json::Value& file : index["files"].GetArray()) listed.insert(str(file, "filename"));
  std::set<std::string> present;
  for (const auto& entry : fs::directory_iterator(alignmentDir() / "package")) {
    std::string name = entry.path().filename().string();
    if (name != "package.json" && name != ".index.json") present.insert(name);
  }
  EXPECT_EQ(listed, present);
}

TEST_F(AlignmentGuideTest, GeneratingTheWholeGuideIsFast) {
  DefinitionIndex fresh;
  fresh.addFolder(testing::corePackageDir());
  auto urls = fresh.addFolder(alignmentDir() / "package");
  auto start = std::chrono::steady_clock::now();
  for (const auto& url : urls) ASSERT_NE(fresh.withSnapshot(url), nullptr) << url;
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  RecordProperty("generation_ms", static_cast<int>(elapsed.count()));
  // The start-up budget of the whole conformance engine is 300 ms; snapshot generation of the
  // guide must be a small part of it even in unoptimised builds.
  EXPECT_LT(elapsed.count(), 250);
}

}  // namespace
}  // namespace fhir::snapshot

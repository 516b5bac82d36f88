// SPDX-License-Identifier: Apache-2.0
// Behavioral health integration through mappers/specs/care-management.json (issue 19): the
// collaborative care roles with their NUCC codes (ConceptMap care-team-role-nucc), the plan's
// category on the CareTeam where invariant align-ct-3 reads it, an unknown role kept as text with a
// warning, and a care plan's billing entries as Claims (ValueSet care-management-billing-codes).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "conformance/common/ids.h"
#include "tests/mappers/specs/golden.h"

namespace fhir::mappers::testing {
namespace {

constexpr const char* kRole = "https://fhir.alignment-gateway.org/CodeSystem/care-team-role";
constexpr const char* kNucc = "http://nucc.org/provider-taxonomy";

// A BHI care-plan event with these (npi, role) members and billing entries (JSON objects).
std::string bhiPlan(const std::vector<std::pair<std::string, std::string>>& team, const std::string& billing = "",
                    const std::string& category = "behavioral-health-integration") {
  std::string members;
  for (const auto& [npi, role] : team) {
    members += std::string(members.empty() ? "" : ",") + R"({"npi":")" + npi + R"(","role":")" + role + "\"}";
  }
  return R"({"eventId":"bhi-1","source":"epic-prod-northshore","eventType":"care-plan","occurredAt":"2026-10-03T08:00:00-05:00",)"
         R"("patient":{"mrn":"NS-884213","mrnSystem":"urn:oid:2.16.840.1.113883.3.7418.1","family":"Okafor","given":["Adaeze"],)"
         R"("birthDate":"1961-03-19","sex":"female","coverage":[{"payerId":"lakeshore-medicaid","memberId":"LMC00918273",)"
         R"("lineOfBusiness":"medicaid","start":"2026-01-01","end":"2026-12-31"}]},)"
         R"("carePlan":{"planId":"BHI-4","status":"active","category":")" + category +
         R"(","conditions":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"F32.1"}],"goals":["PHQ-9 below 10"],)"
         R"("careTeam":[)" + members + "]" + (billing.empty() ? "" : R"(,"billing":[)" + billing + "]") + "}}";
}

struct Mapped {
  std::vector<engine::MappedBundle> bundles;
  std::vector<engine::Rejection> rejections;
};

Mapped mapEvent(const std::string& event) {
  Mapped out;
  json::Document record;
  json::ParseError error;
  EXPECT_TRUE(json::parse(event, record, error)) << error.describe();
  FakeDirectory directory;
  engine::MapOptions options;
  options.directory = &directory;
  options.now = "2026-10-03T09:00:00-05:00";
  engine::MappedBundle bundle;
  IssueList issues;
  auto done = bundledSpecs().mapRecord("care-management", record, event, "request", options, bundle, issues);
  EXPECT_TRUE(done.ok()) << done.message();
  if (done.ok() && *done) out.bundles.push_back(std::move(bundle));
  else out.rejections.push_back(engine::Rejection{std::move(issues), event, "request", false});
  return out;
}

const json::Value* resourceOf(const json::Value& bundle, std::string_view type) {
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    if (json::getString(entry["resource"], "resourceType") == type) return &entry["resource"];
  }
  return nullptr;
}

// role text or care-team-role code -> the codings ("system|code") of that participant's role.
std::map<std::string, std::set<std::string>> rolesOf(const json::Value& team) {
  std::map<std::string, std::set<std::string>> roles;
  for (const json::Value& participant : team["participant"].GetArray()) {
    const json::Value& role = participant["role"][0];
    std::string key(json::getString(role, "text").value_or(""));
    std::set<std::string> codings;
    if (const json::Value* list = json::find(role, "coding")) {
      for (const json::Value& coding : list->GetArray()) {
        std::string system(json::getString(coding, "system").value_or(""));
        std::string code(json::getString(coding, "code").value_or(""));
        if (system == kRole) key = code;
        codings.insert(system + "|" + code);
      }
    }
    roles[key] = codings;
  }
  return roles;
}

TEST(CareManagementBhi, CollaborativeCareTeamCarriesItsRolesWithNuccCodesAndValidates) {
  Mapped mapped = mapEvent(bhiPlan({{"1467583922", "pcp"},
                                    {"1526384916", "behavioral-health-care-manager"},
                                    {"1728394051", "psychiatric-consultant"},
                                    {"1987654328", "pharmacist"},
                                    {"1304050606", "social-worker"},
                                    {"1234567893", "care-manager"}}));
  for (const engine::Rejection& rejection : mapped.rejections) ADD_FAILURE() << toOperationOutcomeJson(rejection.issues);
  ASSERT_EQ(mapped.bundles.size(), 1u);
  EXPECT_TRUE(mapped.bundles[0].warnings.empty()) << toOperationOutcomeJson(mapped.bundles[0].warnings);
  const json::Value* team = resourceOf(mapped.bundles[0].bundle, "CareTeam");
  ASSERT_NE(team, nullptr);
  const std::string r(kRole), n(kNucc);
  // NUCC codes where ConceptMap care-team-role-nucc has one; none for the PCP, the behavioral
  // health care manager and the clinical-staff care manager (functions, not taxonomies).
  std::map<std::string, std::set<std::string>> expected = {
      {"pcp", {r + "|pcp"}},
      {"behavioral-health-care-manager", {r + "|behavioral-health-care-manager"}},
      {"psychiatric-consultant", {r + "|psychiatric-consultant", n + "|2084P0800X"}},
      {"pharmacist", {r + "|pharmacist", n + "|183500000X"}},
      {"social-worker", {r + "|social-worker", n + "|1041C0700X"}},
      {"care-manager", {r + "|care-manager"}}};
  EXPECT_EQ(rolesOf(*team), expected);
  // The plan's category is on the team, where align-ct-3 reads it.
  EXPECT_EQ(json::stringView((*team)["category"][0]["coding"][0]["code"]), "behavioral-health-integration");
  expectValid(mapped.bundles[0].bundle);
}

TEST(CareManagementBhi, BhiTeamWithoutABehavioralHealthCareManagerBreaksAlignCt3) {
  Mapped mapped = mapEvent(bhiPlan({{"1467583922", "pcp"}, {"1728394051", "psychiatric-consultant"}}));
  ASSERT_EQ(mapped.bundles.size(), 1u);  // the mapper maps; the profile's invariant refuses
  std::string errors = validationErrorText(mapped.bundles[0].bundle);
  EXPECT_NE(errors.find("align-ct-3"), std::string::npos) << errors;
  // The same team under a chronic-care-management plan needs no behavioral health care manager.
  Mapped ccm = mapEvent(bhiPlan({{"1467583922", "pcp"}, {"1728394051", "psychiatric-consultant"}}, "",
                                "chronic-care-management"));
  ASSERT_EQ(ccm.bundles.size(), 1u);
  expectValid(ccm.bundles[0].bundle);
}

TEST(CareManagementBhi, UnknownRoleIsKeptAsTextWithAWarning) {
  Mapped mapped = mapEvent(bhiPlan({{"1467583922", "pcp"},
                                    {"1526384916", "behavioral-health-care-manager"},
                                    {"1987654328", "peer-support-specialist"}}));
  for (const engine::Rejection& rejection : mapped.rejections) ADD_FAILURE() << toOperationOutcomeJson(rejection.issues);
  ASSERT_EQ(mapped.bundles.size(), 1u);
  const IssueList& warnings = mapped.bundles[0].warnings;
  ASSERT_EQ(warnings.issues().size(), 1u) << toOperationOutcomeJson(warnings);
  const Issue& warning = warnings.issues()[0];
  EXPECT_EQ(warning.severity, Severity::kWarning);
  EXPECT_EQ(warning.location, std::vector<std::string>{"$.carePlan.careTeam[2].role"});
  EXPECT_NE(warning.diagnostics.find("'peer-support-specialist'"), std::string::npos) << warning.diagnostics;
  const json::Value* team = resourceOf(mapped.bundles[0].bundle, "CareTeam");
  ASSERT_NE(team, nullptr);
  const json::Value& role = (*team)["participant"][2]["role"][0];
  EXPECT_EQ(json::getString(role, "text"), "peer-support-specialist");
  EXPECT_EQ(json::find(role, "coding"), nullptr);
  expectValid(mapped.bundles[0].bundle);
}

TEST(CareManagementBhi, CarePlanBillingBecomesOneClaimPerEntry) {
  Mapped mapped = mapEvent(bhiPlan(
      {{"1467583922", "pcp"}, {"1526384916", "behavioral-health-care-manager"}},
      R"({"code":"99492","system":"http://www.ama-assn.org/go/cpt","billedBy":"pcp","npi":"1467583922","dateOfService":"2026-10-31"},)"
      R"({"code":"99494","system":"http://www.ama-assn.org/go/cpt","billedBy":"pcp","npi":"1467583922","dateOfService":"2026-10-31"})"));
  for (const engine::Rejection& rejection : mapped.rejections) ADD_FAILURE() << toOperationOutcomeJson(rejection.issues);
  ASSERT_EQ(mapped.bundles.size(), 1u);
  std::vector<std::string> codes;
  for (const json::Value& entry : mapped.bundles[0].bundle["entry"].GetArray()) {
    const json::Value& claim = entry["resource"];
    if (json::getString(claim, "resourceType") != "Claim") continue;
    codes.emplace_back(json::stringView(claim["item"][0]["productOrService"]["coding"][0]["code"]));
    EXPECT_EQ(json::stringView(claim["item"][0]["servicedDate"]), "2026-10-31");
    EXPECT_EQ(json::stringView(claim["insurer"]["reference"]),
              "Organization/" + deriveId({"Organization", "payer", "lakeshore-medicaid"}));
    EXPECT_EQ(json::stringView(claim["insurance"][0]["coverage"]["reference"]),
              "Coverage/" + deriveId({"Coverage", "lakeshore-medicaid", "LMC00918273"}));
    EXPECT_EQ(json::stringView(claim["provider"]["reference"]), "Practitioner/" + deriveId({"Practitioner", "1467583922"}));
  }
  EXPECT_EQ(codes, (std::vector<std::string>{"99492", "99494"}));
  expectValid(mapped.bundles[0].bundle);
}

TEST(CareManagementBhi, CarePlanBillingOutsideTheCareManagementCodesIsRejectedAtItsPath) {
  Mapped mapped = mapEvent(bhiPlan(
      {{"1467583922", "pcp"}, {"1526384916", "behavioral-health-care-manager"}},
      R"({"code":"99451","system":"http://www.ama-assn.org/go/cpt","billedBy":"pcp","npi":"1467583922","dateOfService":"2026-10-31"})"));
  ASSERT_EQ(mapped.rejections.size(), 1u);
  std::set<std::string> locations;
  for (const Issue& issue : mapped.rejections[0].issues.issues()) locations.insert(issue.location.at(0));
  EXPECT_EQ(locations, std::set<std::string>{"$.carePlan.billing[0].code"});
}

}  // namespace
}  // namespace fhir::mappers::testing

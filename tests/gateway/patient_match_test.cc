// SPDX-License-Identifier: Apache-2.0
// The demographic key roster rows are matched by (payer-formats.md, Rosters). Matching a roster
// row to known patients (by member id, else by this key) is the merge's patient clusters,
// whatever the arrival order: tests/gateway/sources_test.cc.

#include "gateway/dispatch/patient_match.h"

#include <gtest/gtest.h>

namespace fhir::gateway {
namespace {

TEST(PatientMatchTest, DemographicsAreFamilyFirstGivenBirthDateAndSex) {
  auto patient = json::parse(R"({"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Adaeze", "N"]},
      {"family": "Other"}], "gender": "female", "birthDate": "1961-03-19"})");
  ASSERT_TRUE(patient.ok());
  PatientDemographics who = demographicsOf(*patient);
  EXPECT_EQ(who.family, "Okafor");
  EXPECT_EQ(who.given, "Adaeze");
  EXPECT_EQ(who.birth_date, "1961-03-19");
  EXPECT_EQ(who.gender, "female");
  EXPECT_TRUE(who.complete());
  EXPECT_FALSE(demographicsOf(*json::parse(R"({"resourceType": "Patient", "gender": "female"})")).complete());
}

}  // namespace
}  // namespace fhir::gateway

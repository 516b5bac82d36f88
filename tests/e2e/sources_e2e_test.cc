// SPDX-License-Identifier: Apache-2.0
// Records from many sources (issue 11) against the real binary: a few arrival orders of two
// payers' rosters, two e-consults with undated coverage and a claim file (every order runs in
// process in tests/gateway/sources_test.cc), the attribution Group over HTTP, and the conflict
// lists of /admin.

#include <fstream>

#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRosterHeader =
    "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
    "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n";

std::string consult(const std::string& type, const std::string& id, const std::string& consult_id, const std::string& day,
                    const std::string& birth_date = "1961-03-19", const std::string& mrn = "NS-884213") {
  std::string text = R"({"eventId": ")" + id + R"(", "source": "epic-prod-northshore", "eventType": ")" + type +
                     R"(", "occurredAt": ")" + day + R"(T09:00:00-05:00", "consultId": ")" + consult_id + R"(",
    "patient": {"mrn": ")" + mrn + R"(", "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.1",
      "family": "Okafor", "given": ["Adaeze", "N"], "birthDate": ")" + birth_date + R"(", "sex": "female",
      "coverage": [{"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"},
                   {"payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial"}]},
    "specialist": {"npi": "1881726354", "name": "Ravi Menon MD", "specialty": "207RC0000X"})";
  if (type == "request") {
    return text + R"(, "requester": {"npi": "1467583922", "name": "Dana Whitfield MD", "role": "pcp", "organizationNpi": "1093817462"},
      "question": "Persistent AF on apixaban?", "reasonCodes": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I48.91"}]})";
  }
  return text + R"(, "answeredAt": ")" + day + R"(T08:00:00-05:00", "recommendation": "Start metoprolol.", "minutesSpent": 15,
      "billing": [{"code": "99451", "system": "http://www.ama-assn.org/go/cpt", "billedBy": "specialist",
                   "npi": "1881726354", "dateOfService": ")" + day + R"("}]})";
}

class SourcesE2eTest : public GatewayFixture {
 protected:
  void SetUp() override {
    config_path_ = (data_.path() / "config.json").string();
    std::ofstream config(config_path_);
    config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "endpoint": ")" << payer_.url("/bundles") << R"(", "routes": { "codes": ["99451", "99452", "ACM"] } },
    { "id": "northwind-commercial", "name": "Northwind Commercial", "format": "northwind-commercial",
      "endpoint": ")" << payer_b_.url("/bundles") << R"(", "rosterMode": "full" }
  ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 400 }
})";
    config.close();
    startGateway();
  }

  void postAll(const std::vector<int>& order) {
    for (int unit : order) {
      switch (unit) {
        case 0: roster("lakeshore-medicaid", "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20260630,1093817462,,20260101,\r\n"); break;
        case 1: roster("northwind-commercial", "NW-55,Okafor,Adaeze,19610319,F,commercial,20260701,,1093817462,,20260701,\r\n", "2026-07-01"); break;
        case 2:
          event(consult("request", "e1-req", "EC-1", "2026-06-14"));
          event(consult("response", "e1-resp", "EC-1", "2026-06-15"));
          break;
        case 3:
          event(consult("request", "e2-req", "EC-2", "2026-07-19"));
          event(consult("response", "e2-resp", "EC-2", "2026-07-20"));
          break;
        default: {
          const std::string claims =
              "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
              "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,units,"
              "charge_amount,paid_amount,claim_status\r\n"
              "LC-2001,1,LMC00918273,Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567,20260610,20260610,11,99214,,,"
              "E119,,,,1,180.00,112.50,P\r\n";
          HttpResult posted = gateway_->post("/ingest/claims/lakeshore-medicaid", claims, "text/csv");
          ASSERT_EQ(posted.status, 200) << posted.body;
        }
      }
    }
  }
  void roster(const std::string& payer, const std::string& rows, const std::string& as_of = "") {
    HttpResult posted = gateway_->post("/ingest/roster/" + payer + (as_of.empty() ? "" : "?asOf=" + as_of),
                                       std::string(kRosterHeader) + rows, "text/csv");
    ASSERT_EQ(posted.status, 200) << posted.body;
  }
  void event(const std::string& body) {
    HttpResult posted = gateway_->post("/ingest/econsult", body, "application/json");
    ASSERT_EQ(posted.status, 202) << posted.body;
  }

  // The one claim each payer received, with its date of service.
  void expectEachClaimAtItsPayerOnce() {
    ASSERT_TRUE(payer_.waitForAccepted(1, 20s));
    ASSERT_TRUE(payer_b_.waitForAccepted(1, 20s));
    for (auto [receiver, day] : {std::pair{&payer_, "2026-06-15"}, std::pair{&payer_b_, "2026-07-20"}}) {
      std::vector<ReceivedRequest> got = receiver->accepted();
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].header("x-event-number"), "1");
      json::Document bundle = parse(got[0].body);
      const json::Value* claim = findEntry(bundle, "Claim");
      ASSERT_NE(claim, nullptr);
      EXPECT_EQ(json::serialize((*claim)["item"][0]["servicedDate"]), std::string("\"") + day + "\"");
    }
    json::Document waiting = parse(gateway_->get("/admin/unroutable").body);
    EXPECT_TRUE(waiting["items"].Empty()) << json::serialize(waiting);
    json::Document conflicts = parse(gateway_->get("/admin/routing-conflicts").body);
    EXPECT_TRUE(conflicts["items"].Empty()) << json::serialize(conflicts);
  }

  LoopbackReceiver payer_b_;
};

TEST_F(SourcesE2eTest, RostersFirst) {
  postAll({0, 1, 2, 3, 4});
  expectEachClaimAtItsPayerOnce();
}

TEST_F(SourcesE2eTest, EventsFirstWaitUntilTheRostersSettleThem) {
  postAll({2, 3});
  json::Document waiting = parse(gateway_->get("/admin/unroutable").body);
  ASSERT_EQ(waiting["items"].Size(), 2u);
  EXPECT_NE(json::serialize(waiting).find("ambiguous coverage"), std::string::npos);
  postAll({4, 1, 0});
  expectEachClaimAtItsPayerOnce();
}

TEST_F(SourcesE2eTest, ClaimFileAndJulyFirst) {
  postAll({4, 3, 0, 2, 1});
  expectEachClaimAtItsPayerOnce();
  // One surviving Patient (the EHR's) carries the identifiers of every source.
  const std::string survivor = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"});
  HttpResult patient = gateway_->get("/fhir/Patient/" + survivor);
  ASSERT_EQ(patient.status, 200);
  EXPECT_NE(patient.body.find("LMC00918273"), std::string::npos) << patient.body;
  EXPECT_NE(patient.body.find("NW-55"), std::string::npos) << patient.body;
  EXPECT_NE(patient.body.find("\"replaces\""), std::string::npos) << patient.body;
  HttpResult coverage = gateway_->get("/fhir/Coverage/" + fhir::deriveId({"Coverage", "lakeshore-medicaid", "LMC00918273"}));
  ASSERT_EQ(coverage.status, 200);
  EXPECT_NE(coverage.body.find(R"("period":{"start":"2026-01-01","end":"2026-06-30"})"), std::string::npos) << coverage.body;
  EXPECT_NE(coverage.body.find("Patient/" + survivor), std::string::npos) << coverage.body;
}

TEST_F(SourcesE2eTest, TheAttributionGroupHoldsEveryMemberOfThreeDeltaFilesAndAFullRosterEndsTheMissingOne) {
  auto row = [](const std::string& member, const std::string& family, const std::string& end = "") {
    return member + "," + family + ",Ann,19700101,F,medicaid,20260101,,1093817462,,20260101," + end + "\r\n";
  };
  roster("lakeshore-medicaid", row("M1", "Ames") + row("M2", "Baker"), "2026-01-31");
  roster("lakeshore-medicaid", row("M3", "Cole"), "2026-02-28");
  roster("lakeshore-medicaid", row("M1", "Ames", "20260315"), "2026-03-31");
  const std::string group = fhir::deriveId({"Group", "attribution", "lakeshore-medicaid", "1093817462"});
  json::Document stored = parse(gateway_->get("/fhir/Group/" + group).body);
  ASSERT_TRUE(stored.HasMember("member")) << json::serialize(stored);
  EXPECT_EQ(stored["member"].Size(), 3u) << json::serialize(stored);
  EXPECT_EQ(std::string(*json::getString(stored["meta"], "versionId")), "3");
  EXPECT_NE(json::serialize(stored).find(R"("period":{"start":"2026-01-01","end":"2026-03-15"})"), std::string::npos);

  // Northwind sends full rosters: without asOf the file is refused.
  HttpResult refused = gateway_->post("/ingest/roster/northwind-commercial", std::string(kRosterHeader) + row("N1", "Dunn"), "text/csv");
  EXPECT_EQ(refused.status, 400) << refused.body;
  roster("northwind-commercial", row("N1", "Dunn") + row("N2", "Ellis"), "2026-01-31");
  roster("northwind-commercial", row("N2", "Ellis"), "2026-03-31");
  const std::string group_b = fhir::deriveId({"Group", "attribution", "northwind-commercial", "1093817462"});
  json::Document full = parse(gateway_->get("/fhir/Group/" + group_b).body);
  ASSERT_EQ(full["member"].Size(), 2u) << json::serialize(full);
  EXPECT_NE(json::serialize(full).find(R"("period":{"start":"2026-01-01","end":"2026-03-31"})"), std::string::npos)
      << json::serialize(full);
}

TEST_F(SourcesE2eTest, ConflictingDemographicsAreListedAndNotMerged) {
  roster("lakeshore-medicaid", "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20260630,1093817462,,20260101,\r\n");
  event(consult("request", "x-req", "EC-9", "2026-06-14", "1971-03-19", "NS-999"));
  json::Document conflicts = parse(gateway_->get("/admin/conflicts").body);
  ASSERT_EQ(conflicts["items"].Size(), 1u) << json::serialize(conflicts);
  const json::Value& item = conflicts["items"][0];
  EXPECT_EQ(std::string(*json::getString(item, "elements")), "birthDate");
  EXPECT_EQ(item["patients"].Size(), 2u);
  const std::string text = json::serialize(item);
  EXPECT_NE(text.find("1971-03-19"), std::string::npos) << text;
  EXPECT_NE(text.find("1961-03-19"), std::string::npos) << text;
  EXPECT_NE(text.find("epic-prod-northshore"), std::string::npos) << text;
  const std::string ehr = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-999"});
  HttpResult patient = gateway_->get("/fhir/Patient/" + ehr);
  ASSERT_EQ(patient.status, 200);
  EXPECT_NE(patient.body.find("1971-03-19"), std::string::npos);
  EXPECT_EQ(patient.body.find("\"link\""), std::string::npos);
}

}  // namespace
}  // namespace fhir::testing

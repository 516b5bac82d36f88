// SPDX-License-Identifier: Apache-2.0
// E-consults as HL7 v2 (issue 5) through the real server: a REF^I12 then an RRI^I12 posted with
// Content-Type x-application/hl7-v2+er7 are answered with ER7 ACKs, stored as the JSON events
// would be, and the RRI's billing Claim reaches the payer. Bad messages get AE/AR and are kept.

#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kEr7 = "x-application/hl7-v2+er7";

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

// tests/data/mappers/econsult-v2/messages.hl7: message 1 the REF, message 2 the RRI.
std::string message(size_t number) {
  const std::string stream = readFile(testDataDir() / "mappers" / "econsult-v2" / "messages.hl7");
  size_t start = 0;
  for (size_t index = 1; index < number; ++index) start = stream.find("\rMSH|", start) + 1;
  size_t next = stream.find("\rMSH|", start);
  return stream.substr(start, next == std::string::npos ? std::string::npos : next + 1 - start);
}

// The segments of an ER7 answer.
std::vector<std::string> segments(const std::string& er7) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < er7.size()) {
    size_t end = er7.find('\r', start);
    out.push_back(er7.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

class EconsultV2EndToEnd : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }
  // Expects the answer to be an ER7 ACK with MSA-1 = `code` acknowledging `control_id`.
  static std::vector<std::string> expectAck(const HttpResult& result, const std::string& code, const std::string& control_id) {
    EXPECT_EQ(result.content_type.substr(0, std::string(kEr7).size()), kEr7) << result.body;
    std::vector<std::string> parts = segments(result.body);
    EXPECT_GE(parts.size(), 2u) << result.body;
    if (parts.size() < 2) return parts;
    EXPECT_EQ(parts[0].rfind("MSH|^~\\&|GATEWAY|ALIGN|epic-prod-northshore|NORTHSHORE|", 0), 0u) << parts[0];
    EXPECT_NE(parts[0].find("|ACK^I12^ACK|"), std::string::npos) << parts[0];
    EXPECT_EQ(parts[1], "MSA|" + code + "|" + control_id);
    return parts;
  }
};

TEST_F(EconsultV2EndToEnd, RefThenRriAreAcknowledgedStoredAndTheClaimReachesThePayer) {
  HttpResult ref = gateway_->post("/ingest/econsult", message(1), kEr7);
  ASSERT_EQ(ref.status, 200) << ref.body;
  EXPECT_EQ(expectAck(ref, "AA", "evt-7f3a-0001").size(), 2u);
  HttpResult rri = gateway_->post("/ingest/econsult", message(2), kEr7);
  ASSERT_EQ(rri.status, 200) << rri.body;
  expectAck(rri, "AA", "evt-7f3a-0002");

  // Stored under the ids of the contract's id table, as the JSON events would be.
  const std::string request_id = fhir::deriveId({"ServiceRequest", "epic-prod-northshore", "EC-2026-000451"});
  HttpResult request = gateway_->get("/fhir/ServiceRequest/" + request_id);
  ASSERT_EQ(request.status, 200);
  json::Document stored = parse(request.body);
  EXPECT_EQ(str(stored, "status"), "active");
  EXPECT_EQ(str(stored["note"][0], "text"), "Persistent AF on apixaban; add rate control or refer for ablation?");
  EXPECT_EQ(str(stored, "priority"), "routine");
  // The RRI merges into what the REF created and changes nothing in it: still version 1.
  EXPECT_EQ(str(stored["meta"], "versionId"), "1");
  HttpResult task = gateway_->get("/fhir/Task/" + fhir::deriveId({"Task", "epic-prod-northshore", "EC-2026-000451"}));
  ASSERT_EQ(task.status, 200);
  EXPECT_EQ(str(parse(task.body), "status"), "completed");
  HttpResult answer = gateway_->get("/fhir/Communication/" +
                                    fhir::deriveId({"Communication", "epic-prod-northshore", "EC-2026-000451", "evt-7f3a-0002"}));
  ASSERT_EQ(answer.status, 200);
  EXPECT_EQ(json::numberAsInt64(parse(answer.body)["extension"][0]["valueInteger"]), 15);
  const std::string claim_id = fhir::deriveId({"Claim", "epic-prod-northshore", "evt-7f3a-0002", "0"});
  ASSERT_EQ(gateway_->get("/fhir/Claim/" + claim_id).status, 200);
  EXPECT_EQ(gateway_->get("/fhir/Patient/" + fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"})).status, 200);

  // The payer receives the 99451 Claim; the HIE both Bundles.
  ASSERT_TRUE(payer_.waitForAccepted(1, 20s));
  json::Document delivered = parse(payer_.accepted()[0].body);
  const json::Value* claim = findEntry(delivered, "Claim");
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(str(*claim, "id"), claim_id);
  EXPECT_EQ(str((*claim)["item"][0]["productOrService"]["coding"][0], "code"), "99451");
  EXPECT_EQ(str((*claim)["item"][0], "servicedDate"), "2026-10-03");
  ASSERT_TRUE(hie_.waitForAccepted(2, 20s));

  // Re-posting is idempotent: the same ACK, no new version, no new delivery.
  HttpResult again = gateway_->post("/ingest/econsult", message(2), kEr7);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, rri.body);
  EXPECT_EQ(str(parse(gateway_->get("/fhir/ServiceRequest/" + request_id).body)["meta"], "versionId"), "1");
  ASSERT_EQ(gateway_->post("/ingest/econsult", event("closed")).status, 202);
  ASSERT_TRUE(hie_.waitForAccepted(3, 20s));
  EXPECT_EQ(hie_.accepted().size(), 3u);
  // The JSON closed event completes the consult the v2 messages opened.
  EXPECT_EQ(str(parse(gateway_->get("/fhir/ServiceRequest/" + request_id).body), "status"), "completed");
  EXPECT_EQ(hie_.accepted()[2].header("x-event-number"), "3");
  ASSERT_TRUE(payer_.waitForAccepted(2, 20s));
  EXPECT_EQ(payer_.accepted().size(), 2u);
}

TEST_F(EconsultV2EndToEnd, BadMessagesAreAcknowledgedWithTheErrorAndQuarantined) {
  // AE (422): an NPI with a wrong check digit, named by segment and field in ERR-2.
  std::string bad = message(1);
  bad.replace(bad.find("1881726354^^^^NPI"), 10, "1881726355");
  HttpResult rejected = gateway_->post("/ingest/econsult", bad, kEr7);
  EXPECT_EQ(rejected.status, 422) << rejected.body;
  std::vector<std::string> parts = expectAck(rejected, "AE", "evt-7f3a-0001");
  ASSERT_GE(parts.size(), 3u);
  EXPECT_EQ(parts[2].rfind("ERR||segment 4 (PRD), field 7, repetition 1, component 1|207^", 0), 0u) << parts[2];
  EXPECT_NE(parts[2].find("1881726355"), std::string::npos);

  // AR (400): not a message at all.
  HttpResult unreadable = gateway_->post("/ingest/econsult", "hello\r", kEr7);
  EXPECT_EQ(unreadable.status, 400) << unreadable.body;
  std::vector<std::string> ar = segments(unreadable.body);
  ASSERT_GE(ar.size(), 2u);
  EXPECT_EQ(ar[1].rfind("MSA|AR|", 0), 0u);

  // AE (422): two messages in one request.
  HttpResult two = gateway_->post("/ingest/econsult", message(1) + message(2), kEr7);
  EXPECT_EQ(two.status, 422) << two.body;
  expectAck(two, "AE", "evt-7f3a-0001");

  // AR (413): over maxBodyBytes (64 KiB in the fixture), still an ER7 answer.
  std::string big = message(1);
  big.replace(big.find("Persistent AF"), 0, std::string(70000, 'x'));
  HttpResult too_big = gateway_->post("/ingest/econsult", big, kEr7);
  EXPECT_EQ(too_big.status, 413);
  std::vector<std::string> refused = segments(too_big.body);
  ASSERT_GE(refused.size(), 3u) << too_big.body;
  EXPECT_EQ(refused[1], "MSA|AR|");
  EXPECT_EQ(refused[2].rfind("ERR|||207^", 0), 0u);

  // Both are kept with their payload.
  json::Document items = parse(gateway_->get("/admin/quarantine").body);
  std::vector<std::string> payloads;
  for (const json::Value& item : items["items"].GetArray()) payloads.push_back(quarantinedPayload(str(item, "id")));
  EXPECT_NE(std::find(payloads.begin(), payloads.end(), bad), payloads.end());
  EXPECT_NE(std::find(payloads.begin(), payloads.end(), "hello\r"), payloads.end());

  // Replayed (replayChannels: the econsult channel, read as v2 by the kept Content-Type), the bad
  // REF gets the same AE and its entry counts the replay; the two-message body is refused again.
  auto entryOf = [&](const std::string& payload) {
    json::Document list = parse(gateway_->get("/admin/quarantine").body);
    for (const json::Value& item : list["items"].GetArray()) {
      if (quarantinedPayload(str(item, "id")) == payload) return str(item, "id");
    }
    return std::string();
  };
  const std::string bad_entry = entryOf(bad);
  ASSERT_FALSE(bad_entry.empty());
  HttpResult replayed = gateway_->post("/admin/quarantine/" + bad_entry + "/replay", "");
  EXPECT_EQ(replayed.status, 422) << replayed.body;
  expectAck(replayed, "AE", "evt-7f3a-0001");
  json::Document after = parse(gateway_->get("/admin/quarantine").body);
  for (const json::Value& item : after["items"].GetArray()) {
    if (str(item, "id") == bad_entry) {
      EXPECT_EQ(json::numberAsInt64(item["replays"]), 1);
    }
  }
  const std::string two_entry = entryOf(message(1) + message(2));
  ASSERT_FALSE(two_entry.empty());
  EXPECT_EQ(gateway_->post("/admin/quarantine/" + two_entry + "/replay", "").status, 422);
  EXPECT_EQ(gateway_->get("/fhir/ServiceRequest/" +
                          fhir::deriveId({"ServiceRequest", "epic-prod-northshore", "EC-2026-000451"})).status, 404);
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Payer files are streamed: POST /ingest/claims/{payerId} with a chunked body several times
// larger than maxBodyBytes (65536 in the fixture) is mapped record by record and answered
// after the last batch commit (contracts/http-api.md, README "Configuration").

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <set>

#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kHeader[] =
    "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,"
    "billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,"
    "units,charge_amount,paid_amount,claim_status\r\n";

// `claims` lakeshore-medicaid claims of two lines (payer-formats.md columns; valid NPIs with
// their Luhn check digits); claim `bad` has the date of service 20261341, which is no date.
std::string claimFile(size_t claims, size_t bad) {
  std::string text = kHeader;
  for (size_t claim = 1; claim <= claims; ++claim) {
    const std::string id = "LC-" + std::to_string(5000 + claim);
    const std::string member = "LMC" + std::to_string(20000000 + claim);
    const std::string date = claim == bad ? "20261341" : "20261001";
    text += id + ",1," + member + ",Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567," + date + "," + date +
            ",11,99214,,,E119,I10,,,1,180.00,112.50,P\r\n";
    text += id + ",2," + member + ",Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567," + date + "," + date +
            ",11,83036,,,E119,,,,1,65.00,0.00,P\r\n";
  }
  return text;
}

// POST with Transfer-Encoding: chunked, written in pieces of `piece` bytes.
HttpResult postChunked(uint16_t port, const std::string& path, const std::string& body, const std::string& content_type,
                       size_t piece) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(120, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType(content_type);
  request.setChunkedTransferEncoding(true);
  std::ostream& out = session.sendRequest(request);
  for (size_t at = 0; at < body.size(); at += piece) {
    out.write(body.data() + at, static_cast<std::streamsize>(std::min(piece, body.size() - at)));
    out.flush();
  }
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpResult result;
  result.status = static_cast<int>(response.getStatus());
  result.content_type = response.getContentType();
  Poco::StreamCopier::copyToString(in, result.body);
  return result;
}

class PayerStream : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }
};

TEST_F(PayerStream, ChunkedClaimFileLargerThanMaxBodyBytesIsMappedRecordByRecord) {
  // 700 claims (about 190 KB, nearly three times maxBodyBytes): more than two commit batches of 256.
  const std::string file = claimFile(700, 350);
  ASSERT_GT(file.size(), 2u * 65536u);
  HttpResult result = postChunked(gateway_->port(), "/ingest/claims/lakeshore-medicaid", file, "text/csv", 4096);
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.content_type, "application/json");
  json::Document summary = parse(result.body);
  EXPECT_EQ(json::numberAsInt64(summary["records"]), 700);
  EXPECT_EQ(json::numberAsInt64(summary["accepted"]), 699);
  EXPECT_EQ(json::numberAsInt64(summary["rejected"]), 1);
  ASSERT_EQ(summary["bundleIds"].Size(), 699u);
  std::set<std::string> ids;
  for (const json::Value& id : summary["bundleIds"].GetArray()) ids.emplace(json::stringView(id));
  EXPECT_EQ(ids.size(), 699u);
  ASSERT_EQ(summary["quarantineIds"].Size(), 1u);

  // The bad claim is quarantined with the line and column of its date (lines 699 and 700 of
  // the file: header, then two lines per claim).
  json::Document items = parse(gateway_->get("/admin/quarantine").body);
  ASSERT_GE(items["items"].Size(), 1u);
  const json::Value& quarantined = items["items"][0];
  EXPECT_EQ(std::string(json::stringView(quarantined["id"])), std::string(json::stringView(summary["quarantineIds"][0])));
  EXPECT_EQ(std::string(json::stringView(quarantined["channel"])), "claims:lakeshore-medicaid");
  EXPECT_NE(quarantinedPayload(std::string(json::stringView(quarantined["id"]))).find("LC-5350,1,"), std::string::npos);
  const std::string diagnostics(json::stringView(quarantined["outcome"]["issue"][0]["diagnostics"]));
  EXPECT_NE(diagnostics.find("line 700"), std::string::npos) << diagnostics;
  EXPECT_NE(diagnostics.find("dos_from"), std::string::npos) << diagnostics;

  // Every accepted claim was committed before the answer: the feed gets them all.
  ASSERT_TRUE(hie_.waitForAccepted(699, 120s));

  // The same file again, as one fixed-length body this time: the same records, no new ones.
  HttpResult again = gateway_->post("/ingest/claims/lakeshore-medicaid", file, "text/csv");
  ASSERT_EQ(again.status, 200) << again.body;
  json::Document second = parse(again.body);
  EXPECT_EQ(json::numberAsInt64(second["accepted"]), 699);
  EXPECT_TRUE(second["bundleIds"] == summary["bundleIds"]);
}

TEST_F(PayerStream, RefusedStreamIsQuarantinedAsATruncatedPrefix) {
  // An unknown payer: the body is not mapped; a prefix of it (1 MiB at most) is kept.
  const std::string file = claimFile(4000, 0);  // about 1.4 MB
  HttpResult result = postChunked(gateway_->port(), "/ingest/claims/nobody", file, "text/csv", 65536);
  ASSERT_EQ(result.status, 404) << result.body;
  json::Document items = parse(gateway_->get("/admin/quarantine").body);
  ASSERT_GE(items["items"].Size(), 1u);
  EXPECT_TRUE(items["items"][0]["truncated"].GetBool());
  EXPECT_EQ(json::numberAsInt64(items["items"][0]["payloadBytes"]), 1 << 20);
  // The connection was read to its end: the gateway answers the next request.
  EXPECT_EQ(gateway_->get("/healthz").status, 200);
}

TEST_F(PayerStream, UnreadableFileIsReadToItsEndSoTheConnectionGoesOn) {
  // A header without the spec's columns ends the mapping at line 1 (400); the rest of the body
  // is still read, so the next request on the same keep-alive connection is understood.
  std::string file = claimFile(600, 0);
  file.replace(0, file.find(','), "claim");
  Poco::Net::HTTPClientSession session("127.0.0.1", gateway_->port());
  session.setTimeout(Poco::Timespan(60, 0));
  session.setKeepAlive(true);
  Poco::Net::HTTPRequest post(Poco::Net::HTTPRequest::HTTP_POST, "/ingest/claims/lakeshore-medicaid",
                              Poco::Net::HTTPMessage::HTTP_1_1);
  post.setContentType("text/csv");
  post.setContentLength64(static_cast<Poco::Int64>(file.size()));
  post.setKeepAlive(true);
  session.sendRequest(post).write(file.data(), static_cast<std::streamsize>(file.size()));
  Poco::Net::HTTPResponse answer;
  std::string body;
  Poco::StreamCopier::copyToString(session.receiveResponse(answer), body);
  ASSERT_EQ(static_cast<int>(answer.getStatus()), 400) << body;
  EXPECT_NE(body.find("nothing in the body could be read"), std::string::npos) << body;

  Poco::Net::HTTPRequest health(Poco::Net::HTTPRequest::HTTP_GET, "/healthz", Poco::Net::HTTPMessage::HTTP_1_1);
  health.setKeepAlive(true);
  session.sendRequest(health);
  Poco::Net::HTTPResponse healthy;
  body.clear();
  Poco::StreamCopier::copyToString(session.receiveResponse(healthy), body);
  EXPECT_EQ(static_cast<int>(healthy.getStatus()), 200) << body;
  EXPECT_EQ(body, R"({"status":"ok"})");
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Issue 20: who may evaluate a measure (contracts/access.md: the scorecard is the admin's, and a
// `practice` client's for its own practice only). With auth on: the admin evaluates any subject;
// a practice client its own practice's Organization and attribution Groups, another practice's
// is answered as if it did not exist (404), no subject or a patient 403; other kinds 403.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "conformance/json/json.h"
#include "gateway/auth/jose.h"
#include "tests/e2e/raw_client.h"
#include "tests/gateway/auth_test_keys.h"
#include "tests/support/gateway_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

constexpr const char* kAssertionType = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
constexpr const char* kOwnPractice = "1093817413";    // PRACTICES[0] of tests/data/scorecard/generate.py
constexpr const char* kOtherPractice = "1093817421";  // PRACTICES[1]

class ScorecardAccessE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = makeEcKey();
    const std::string jwks = R"({"keys":[)" + gateway::auth::publicJwkJson(key_, gateway::auth::Algorithm::kES384, "k1") + "]}";
    const std::string config_path = (data_.path() / "config.json").string();
    std::ofstream config(config_path);
    config << R"({"dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [{ "id": "lakeshore-medicaid", "name": "Lakeshore", "format": "lakeshore-medicaid", "endpoint": ")"
           << payer_.url("/bundles") << R"(" }],
  "auth": { "createSigningKey": true, "clients": [
    { "id": "clinic", "kind": "practice", "practiceNpi": ")" << kOwnPractice << R"(", "jwks": )" << jwks << R"( },
    { "id": "lakeshore", "kind": "payer", "payerId": "lakeshore-medicaid", "jwks": )" << jwks << R"( },
    { "id": "convener", "kind": "admin", "jwks": )" << jwks << R"( } ] }
})";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
    ASSERT_NE(gateway_->port(), 0);
    token_url_ = "http://127.0.0.1:" + std::to_string(gateway_->port()) + "/auth/token";
    RawResponse roster = call("POST", "/ingest/roster/lakeshore-medicaid", "convener",
                              readFile(testDataDir() / "scorecard" / "roster-lakeshore-medicaid.csv"), "text/csv");
    ASSERT_EQ(roster.status, 200) << roster.body;
  }

  std::string token(const std::string& client) {
    if (auto found = tokens_.find(client); found != tokens_.end()) return found->second;
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const std::string assertion = signAssertion(key_.get(), "k1", assertionClaims(client, token_url_, now + 60, "jti-" + std::to_string(++jti_)));
    HttpResult answer = gateway_->post("/auth/token",
                                       "grant_type=client_credentials&client_assertion_type=" + std::string(kAssertionType) +
                                           "&client_assertion=" + assertion,
                                       "application/x-www-form-urlencoded");
    EXPECT_EQ(answer.status, 200) << answer.body;
    auto doc = json::parse(answer.body);
    return tokens_[client] = doc.ok() ? std::string(json::getString(*doc, "access_token").value_or("")) : "";
  }

  RawResponse call(const std::string& method, const std::string& path, const std::string& client, const std::string& body = "",
                   const std::string& content_type = "application/json") {
    std::string bytes = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    bytes += "Authorization: Bearer " + token(client) + "\r\n";
    if (method == "POST") bytes += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return rawRequest(gateway_->port(), bytes + "\r\n" + body, 20000);
  }

  // Organization/<id> of a practice, found by the admin.
  std::string practice(const std::string& npi) {
    RawResponse found = call("GET", "/fhir/Organization?identifier=http://hl7.org/fhir/sid/us-npi%7C" + npi, "convener");
    EXPECT_EQ(found.status, 200) << found.body;
    auto doc = json::parse(found.body);
    if (!doc.ok() || !doc->HasMember("entry") || (*doc)["entry"].Empty()) return "";
    return "Organization/" + std::string(json::getString((*doc)["entry"][0]["resource"], "id").value_or(""));
  }
  std::string attributionGroup(const std::string& npi) {
    RawResponse found = call("GET", "/fhir/Group?identifier=http://hl7.org/fhir/sid/us-npi%7C" + npi, "convener");
    EXPECT_EQ(found.status, 200) << found.body;
    auto doc = json::parse(found.body);
    if (!doc.ok() || !doc->HasMember("entry") || (*doc)["entry"].Empty()) return "";
    return "Group/" + std::string(json::getString((*doc)["entry"][0]["resource"], "id").value_or(""));
  }

  int evaluate(const std::string& client, const std::string& subject) {
    std::string path = "/fhir/Measure/attributed-members/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31";
    if (!subject.empty()) path += "&subject=" + subject;
    RawResponse answer = call("GET", path, client);
    if (answer.status != 200) {
      EXPECT_NE(answer.body.find("OperationOutcome"), std::string::npos) << answer.body;
    }
    return answer.status;
  }

  TempDir data_;
  LoopbackReceiver payer_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::shared_ptr<EVP_PKEY> key_;
  std::string token_url_;
  std::map<std::string, std::string> tokens_;
  int jti_ = 0;
};

TEST_F(ScorecardAccessE2e, APracticeEvaluatesItsOwnPracticeOnlyAndTheAdminEverything) {
  const std::string own = practice(kOwnPractice);
  const std::string other = practice(kOtherPractice);
  const std::string own_group = attributionGroup(kOwnPractice);
  const std::string other_group = attributionGroup(kOtherPractice);
  ASSERT_FALSE(own.empty());
  ASSERT_FALSE(other.empty());
  ASSERT_FALSE(own_group.empty());
  ASSERT_FALSE(other_group.empty());

  EXPECT_EQ(evaluate("clinic", own), 200);
  EXPECT_EQ(evaluate("clinic", own_group), 200);
  EXPECT_EQ(evaluate("clinic", other), 404);        // as if it did not exist
  EXPECT_EQ(evaluate("clinic", other_group), 404);
  EXPECT_EQ(evaluate("clinic", ""), 403);           // the whole region is the convener's
  EXPECT_EQ(evaluate("lakeshore", own), 403);       // not a payer's
  EXPECT_EQ(evaluate("convener", ""), 200);
  EXPECT_EQ(evaluate("convener", other), 200);
  EXPECT_EQ(evaluate("convener", other_group), 200);
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// SMART Backend Services against the real binary (issue 13, the part without the route policy):
// keys made by the openssl CLI, assertions signed in the test with OpenSSL (RS384, ES384), the
// token endpoint's answers and refusals, a replayed jti refused by a second gateway process on
// the same data directory, and `fhir-gateway token`. Access tokens are checked with the gateway's
// signing key by an AuthService of the test, as another instance would.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "conformance/json/json.h"
#include "gateway/auth/auth_service.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "tests/gateway/auth_test_keys.h"
#include "tests/support/gateway_process.h"
#include "tests/support/test_support.h"
#include "gateway_test_paths.h"

namespace fhir::testing {
namespace {

using gateway::auth::Algorithm;

constexpr const char* kForm = "application/x-www-form-urlencoded";
constexpr const char* kAssertionType = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class AuthE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ec_pem_ = (keys_.path() / "ehr-es384.pem").string();
    rsa_pem_ = (keys_.path() / "admin-rs384.pem").string();
    ASSERT_EQ(runCommand("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " + ec_pem_, scratch_).exit_code, 0);
    ASSERT_EQ(runCommand("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + rsa_pem_, scratch_).exit_code, 0);
    auto ec = gateway::auth::readPrivateKeyFile(ec_pem_);
    auto rsa = gateway::auth::readPrivateKeyFile(rsa_pem_);
    ASSERT_TRUE(ec.ok() && rsa.ok());
    ec_ = ec->key;
    rsa_ = rsa->key;
    // The CLI names its key by RFC 7638 thumbprint; the test's own assertions use "ehr-1".
    ec_kid_ = gateway::auth::jwkThumbprint(ec_, Algorithm::kES384);
    rsa_kid_ = gateway::auth::jwkThumbprint(rsa_, Algorithm::kRS384);
    auth_block_ = R"({"createSigningKey":true,"clients":[
        {"id":"riverview-ehr","kind":"ehr","sources":["riverview-ehr"],"jwks":{"keys":[)" +
                  gateway::auth::publicJwkJson(ec_, Algorithm::kES384, "ehr-1") + "," +
                  gateway::auth::publicJwkJson(ec_, Algorithm::kES384, ec_kid_) + R"(]}},
        {"id":"convener","kind":"admin","jwks":{"keys":[)" +
                  gateway::auth::publicJwkJson(rsa_, Algorithm::kRS384, rsa_kid_) + R"(]}}]})";
    writeConfig("a.json", "");
  }

  std::string writeConfig(const std::string& name, const std::string& public_base_url) {
    const std::string path = (keys_.path() / name).string();
    std::ofstream out(path);
    out << "{" << (public_base_url.empty() ? "" : "\"publicBaseUrl\":\"" + public_base_url + "\",") << "\"auth\":" << auth_block_
        << "}";
    return path;
  }

  std::unique_ptr<GatewayProcess> start(const std::string& config) {
    return std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config, "--data", data_.path().string()});
  }

  static HttpResult postAssertion(const GatewayProcess& gateway, const std::string& assertion, const std::string& scope = "") {
    std::string form = "grant_type=client_credentials&client_assertion_type=" + std::string(kAssertionType) +
                       "&client_assertion=" + assertion;
    if (!scope.empty()) form += "&scope=" + scope;
    return gateway.post("/auth/token", form, kForm);
  }

  static std::string field(const std::string& body, const char* name) {
    auto doc = json::parse(body);
    if (!doc.ok() || !doc->IsObject()) return {};
    return std::string(json::getString(*doc, name).value_or(""));
  }

  // Checks an access token as another instance would: same configuration, same signing key.
  // The grant points into the checking service, which the fixture keeps.
  Result<gateway::auth::AccessGrant> verify(const std::string& token) {
    if (checker_service_) return checker_service_->verifyAccessToken(token, nowSeconds() * 1000);
    auto config = gateway::loadConfig((keys_.path() / "a.json").string());
    if (!config.ok()) return config.error();
    auto store = gateway::openSqliteStore(checker_.path().string());
    if (!store.ok()) return store.error();
    config->auth->create_signing_key = false;  // must read the gateway's key, not make one
    config->auth->signing_key_file = (data_.path() / "auth" / "gateway-es384.pem").string();
    auto service = gateway::auth::AuthService::create(*config->auth, *store, checker_.path().string());
    if (!service.ok()) return service.error();
    checker_service_ = std::move(*service);
    return checker_service_->verifyAccessToken(token, nowSeconds() * 1000);
  }

  TempDir keys_, data_, scratch_, checker_;
  std::string ec_pem_, rsa_pem_, ec_kid_, rsa_kid_, auth_block_;
  std::shared_ptr<EVP_PKEY> ec_, rsa_;
  std::unique_ptr<gateway::auth::AuthService> checker_service_;
};

TEST_F(AuthE2eTest, TokensAreIssuedRefusedAndReplaysRefusedByASecondProcess) {
  auto first = start((keys_.path() / "a.json").string());
  ASSERT_TRUE(first->running());
  const std::string base = "http://127.0.0.1:" + std::to_string(first->port());
  const std::string token_url = base + "/auth/token";

  HttpResult smart = first->get("/.well-known/smart-configuration");
  ASSERT_EQ(smart.status, 200);
  EXPECT_EQ(field(smart.body, "token_endpoint"), token_url);
  EXPECT_NE(smart.body.find("\"client-confidential-asymmetric\""), std::string::npos);
  EXPECT_NE(smart.body.find("\"permission-v2\""), std::string::npos);

  // ES384 and RS384 assertions signed here.
  const std::string es384 = signAssertion(ec_.get(), "ehr-1", assertionClaims("riverview-ehr", token_url, nowSeconds() + 60, "e1"));
  HttpResult issued = postAssertion(*first, es384, "system/*.rs+ingest/econsult+admin");
  ASSERT_EQ(issued.status, 200) << issued.body;
  EXPECT_EQ(field(issued.body, "token_type"), "bearer");
  EXPECT_EQ(field(issued.body, "scope"), "system/*.rs ingest/econsult");
  auto grant = verify(field(issued.body, "access_token"));
  ASSERT_TRUE(grant.ok()) << grant.message();
  EXPECT_EQ(grant->client->id, "riverview-ehr");
  EXPECT_TRUE(grant->scopes.allowsIngest("econsult"));
  HttpResult rs384 = postAssertion(
      *first, signAssertion(rsa_.get(), rsa_kid_, assertionClaims("convener", token_url, nowSeconds() + 60, "r1")));
  ASSERT_EQ(rs384.status, 200) << rs384.body;
  EXPECT_TRUE(verify(field(rs384.body, "access_token"))->scopes.isAdmin());

  // Each refusal with its RFC 6749 error.
  const auto claims = [&](const std::string& client, const std::string& aud, int64_t exp_in, const std::string& jti) {
    return assertionClaims(client, aud, nowSeconds() + exp_in, jti);
  };
  struct Case {
    const char* what;
    std::string assertion;
    std::string scope;
    int status;
    const char* error;
  };
  const Case cases[] = {
      {"alg none",
       gateway::auth::base64UrlEncode(R"({"alg":"none","kid":"ehr-1"})") + "." +
           gateway::auth::base64UrlEncode(claims("riverview-ehr", token_url, 60, "n1")) + ".",
       "", 401, "invalid_client"},
      {"HS384 with the public key", signHs384(publicPem(ec_.get()), "ehr-1", claims("riverview-ehr", token_url, 60, "h1")),
       "", 401, "invalid_client"},
      {"unknown kid", signAssertion(ec_.get(), "nope", claims("riverview-ehr", token_url, 60, "k1")), "", 401, "invalid_client"},
      {"wrong aud", signAssertion(ec_.get(), "ehr-1", claims("riverview-ehr", base + "/fhir", 60, "a1")), "", 401,
       "invalid_client"},
      {"expired", signAssertion(ec_.get(), "ehr-1", claims("riverview-ehr", token_url, -10, "x1")), "", 401, "invalid_client"},
      {"exp too far ahead", signAssertion(ec_.get(), "ehr-1", claims("riverview-ehr", token_url, 600, "f1")), "", 401,
       "invalid_client"},
      {"unknown client", signAssertion(ec_.get(), "ehr-1", claims("stranger", token_url, 60, "u1")), "", 401, "invalid_client"},
      {"only unregistered scopes", signAssertion(ec_.get(), "ehr-1", claims("riverview-ehr", token_url, 60, "s1")),
       "launch+patient/*.rs", 400, "invalid_scope"},
  };
  for (const Case& refused : cases) {
    HttpResult answer = postAssertion(*first, refused.assertion, refused.scope);
    EXPECT_EQ(answer.status, refused.status) << refused.what << ": " << answer.body;
    EXPECT_EQ(field(answer.body, "error"), refused.error) << refused.what;
  }

  // A second process on the same data directory, published under the same base URL, refuses
  // the jti the first one accepted; a fresh jti works there.
  auto second = start(writeConfig("b.json", base));
  ASSERT_TRUE(second->running());
  HttpResult replay = postAssertion(*second, es384);
  EXPECT_EQ(replay.status, 401) << replay.body;
  EXPECT_EQ(field(replay.body, "error"), "invalid_client");
  HttpResult fresh = postAssertion(
      *second, signAssertion(ec_.get(), "ehr-1", claims("riverview-ehr", token_url, 60, "e2")));
  ASSERT_EQ(fresh.status, 200) << fresh.body;
  EXPECT_TRUE(verify(field(fresh.body, "access_token")).ok());  // same key for both processes
  EXPECT_EQ(postAssertion(*first, es384).status, 401);
  EXPECT_EQ(first->terminate(), 0);
  EXPECT_EQ(second->terminate(), 0);
}

TEST_F(AuthE2eTest, TokenCommandPrintsAnAccessTokenAlone) {
  auto gateway = start((keys_.path() / "a.json").string());
  ASSERT_TRUE(gateway->running());
  const std::string base = "http://127.0.0.1:" + std::to_string(gateway->port());
  CommandRun ehr = runCommand(std::string(GATEWAY_BINARY) + " token --url " + base + " --client riverview-ehr --key " +
                                  ec_pem_ + " --scope 'system/*.rs ingest/care-management'",
                              scratch_);
  ASSERT_EQ(ehr.exit_code, 0) << (ehr.err.empty() ? "" : ehr.err[0]);
  ASSERT_EQ(ehr.out.size(), 1u);
  auto grant = verify(ehr.out[0]);
  ASSERT_TRUE(grant.ok()) << grant.message();
  EXPECT_TRUE(grant->scopes.allowsIngest("care-management"));
  EXPECT_FALSE(grant->scopes.allowsIngest("econsult"));
  CommandRun admin = runCommand(std::string(GATEWAY_BINARY) + " token --url " + base + "/ --client convener --key " + rsa_pem_,
                                scratch_);
  ASSERT_EQ(admin.exit_code, 0);
  ASSERT_EQ(admin.out.size(), 1u);
  EXPECT_TRUE(verify(admin.out[0])->scopes.isAdmin());
  // The gateway refuses: exit 1 and its error on stderr, nothing on stdout.
  CommandRun refused = runCommand(std::string(GATEWAY_BINARY) + " token --url " + base + " --client convener --key " + ec_pem_,
                                  scratch_);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(refused.out.empty());
  ASSERT_FALSE(refused.err.empty());
  EXPECT_NE(refused.err[0].find("invalid_client"), std::string::npos);
  CommandRun usage = runCommand(std::string(GATEWAY_BINARY) + " token --url " + base, scratch_);
  EXPECT_EQ(usage.exit_code, 2);
  CommandRun help = runCommand(std::string(GATEWAY_BINARY) + " token --help", scratch_);
  EXPECT_EQ(help.exit_code, 0);
  ASSERT_FALSE(help.out.empty());
  EXPECT_NE(help.out[0].find("--url BASE --client ID --key FILE [--scope S]"), std::string::npos);
  EXPECT_EQ(gateway->terminate(), 0);
}

}  // namespace
}  // namespace fhir::testing

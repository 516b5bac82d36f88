// SPDX-License-Identifier: Apache-2.0
// The token endpoint and access tokens (contracts/access.md "Tokens"): every refusal of a client
// assertion with its RFC 6749 §5.2 error, key rotation by kid, scopes, access token checks.
#include "gateway/auth/auth_service.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tests/gateway/auth_test_keys.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::auth {
namespace {

using fhir::testing::assertionClaims;
using fhir::testing::signAssertion;

constexpr const char* kBase = "http://gateway.test:8080";
constexpr const char* kTokenUrl = "http://gateway.test:8080/auth/token";
constexpr const char* kAssertionType = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct TestKeys {
  std::shared_ptr<EVP_PKEY> ec = fhir::testing::makeEcKey();
  std::shared_ptr<EVP_PKEY> ec_rotated = fhir::testing::makeEcKey();
  std::shared_ptr<EVP_PKEY> rsa = fhir::testing::makeRsaKey();
};

const TestKeys& keys() {
  static const TestKeys* made = new TestKeys();  // RSA generation is slow: once per run
  return *made;
}

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = openSqliteStore(dir_.path().string());
    ASSERT_TRUE(store.ok()) << store.message();
    store_ = *store;
    service_ = makeService(dir_.path().string() + "/gateway.pem");
  }

  std::unique_ptr<AuthService> makeService(const std::string& signing_key_file) {
    const std::string config_text =
        R"({"signingKeyFile":")" + signing_key_file + R"(","createSigningKey":true,"tokenLifetimeSeconds":300,"clients":[
          {"id":"riverview-ehr","kind":"ehr","sources":["riverview-ehr"],"jwks":{"keys":[)" +
        publicJwkJson(keys().ec, Algorithm::kES384, "ec-1") + "," + publicJwkJson(keys().rsa, Algorithm::kRS384, "rsa-1") + "," +
        publicJwkJson(keys().ec_rotated, Algorithm::kES384, "ec-2") + R"(]}},
          {"id":"regional-hie","kind":"hie","practices":"all","subscriptionEndpoints":["https://hie.example.org/notify/"],
           "jwks":{"keys":[)" + publicJwkJson(keys().ec, Algorithm::kES384, "hie-1") + R"(]}},
          {"id":"convener","kind":"admin","jwks":{"keys":[)" + publicJwkJson(keys().rsa, Algorithm::kRS384, "admin-1") + R"(]}}]})";
    auto doc = json::parse(config_text);
    EXPECT_TRUE(doc.ok()) << doc.message();
    auto config = parseAuthConfig(*doc, {});
    EXPECT_TRUE(config.ok()) << config.message();
    if (!config.ok()) return nullptr;
    auto service = AuthService::create(std::move(*config), store_, dir_.path().string());
    EXPECT_TRUE(service.ok()) << service.message();
    if (!service.ok()) return nullptr;
    (*service)->setBaseUrl(kBase);
    return std::move(*service);
  }

  AuthAnswer post(const std::string& assertion, const std::string& scope = "system/*.rs") {
    std::string form = "grant_type=client_credentials&client_assertion_type=" + std::string(kAssertionType) +
                       "&client_assertion=" + assertion;
    if (!scope.empty()) form += "&scope=" + scope;
    return service_->tokenRequest("application/x-www-form-urlencoded", form, nowSeconds() * 1000);
  }

  std::string claims(const std::string& client = "riverview-ehr", int64_t exp_in = 120) {
    return assertionClaims(client, kTokenUrl, nowSeconds() + exp_in, "jti-" + std::to_string(++jti_counter_));
  }

  static json::Document parse(const std::string& text) {
    auto doc = json::parse(text);
    EXPECT_TRUE(doc.ok()) << text;
    return doc.ok() ? std::move(*doc) : json::Document();
  }
  static std::string error(const AuthAnswer& answer) {
    auto doc = parse(answer.body);
    return std::string(json::getString(doc, "error").value_or(""));
  }

  fhir::testing::TempDir dir_;
  StorePtr store_;
  std::unique_ptr<AuthService> service_;
  int jti_counter_ = 0;
};

TEST_F(AuthServiceTest, Es384AssertionGetsAVerifiableAccessToken) {
  AuthAnswer answer = post(signAssertion(keys().ec.get(), "ec-1", claims()));
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto doc = parse(answer.body);
  EXPECT_EQ(json::getString(doc, "token_type"), "bearer");
  EXPECT_EQ(json::numberAsInt64(*json::find(doc, "expires_in")), 300);
  EXPECT_EQ(json::getString(doc, "scope"), "system/*.rs");
  bool no_store = false;
  for (const auto& [name, value] : answer.headers) no_store = no_store || (name == "Cache-Control" && value == "no-store");
  EXPECT_TRUE(no_store);
  const std::string token(*json::getString(doc, "access_token"));
  auto grant = service_->verifyAccessToken(token, nowSeconds() * 1000);
  ASSERT_TRUE(grant.ok()) << grant.message();
  EXPECT_EQ(grant->client->id, "riverview-ehr");
  EXPECT_TRUE(grant->scopes.allows(Interaction::kRead, "Patient"));
  EXPECT_FALSE(grant->scopes.allows(Interaction::kCreate, "Patient"));
  EXPECT_FALSE(grant->scopes.allowsIngest("econsult"));  // not asked
  // Cached: the same answer again.
  auto again = service_->verifyAccessToken(token, nowSeconds() * 1000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->client->id, "riverview-ehr");
}

TEST_F(AuthServiceTest, Rs384AssertionIsAccepted) {
  AuthAnswer answer = post(signAssertion(keys().rsa.get(), "rsa-1", claims()));
  EXPECT_EQ(answer.status, 200) << answer.body;
}

TEST_F(AuthServiceTest, RotatedKeyWorksByItsKidAndOnlyByIt) {
  EXPECT_EQ(post(signAssertion(keys().ec_rotated.get(), "ec-2", claims())).status, 200);
  AuthAnswer wrong_kid = post(signAssertion(keys().ec_rotated.get(), "ec-1", claims()));
  EXPECT_EQ(wrong_kid.status, 401);
  EXPECT_EQ(error(wrong_kid), "invalid_client");
}

TEST_F(AuthServiceTest, AlgNoneIsInvalidClient) {
  const std::string unsigned_jwt = base64UrlEncode(R"({"alg":"none","typ":"JWT","kid":"ec-1"})") + "." +
                                   base64UrlEncode(claims()) + ".";
  AuthAnswer answer = post(unsigned_jwt);
  EXPECT_EQ(answer.status, 401);
  EXPECT_EQ(error(answer), "invalid_client");
}

TEST_F(AuthServiceTest, Hs384WithThePublicKeyAsSecretIsInvalidClient) {
  for (const auto& [key, kid] : {std::pair{keys().rsa.get(), "rsa-1"}, std::pair{keys().ec.get(), "ec-1"}}) {
    AuthAnswer answer = post(fhir::testing::signHs384(fhir::testing::publicPem(key), kid, claims()));
    EXPECT_EQ(answer.status, 401) << kid;
    EXPECT_EQ(error(answer), "invalid_client");
  }
}

TEST_F(AuthServiceTest, RefusalsOfBadAssertionsAreInvalidClient) {
  struct Case {
    const char* what;
    const char* why;  // in error_description: refused for this reason, not another
    std::string assertion;
  };
  const std::string tampered = [&] {
    std::string jwt = signAssertion(keys().ec.get(), "ec-1", claims());
    const size_t dot = jwt.find('.');
    return jwt.substr(0, dot + 1) + base64UrlEncode(claims()) + jwt.substr(jwt.rfind('.'));
  }();
  const Case cases[] = {
      {"unknown kid", "kid is not a key", signAssertion(keys().ec.get(), "no-such-kid", claims())},
      {"wrong aud", "aud must be", signAssertion(keys().ec.get(), "ec-1",
                                  assertionClaims("riverview-ehr", "http://other.test/auth/token", nowSeconds() + 60, "a1"))},
      {"expired", "has expired", signAssertion(keys().ec.get(), "ec-1", claims("riverview-ehr", -5))},
      {"exp too far ahead", "more than 5 minutes", signAssertion(keys().ec.get(), "ec-1", claims("riverview-ehr", 400))},
      {"unknown client", "unknown client", signAssertion(keys().ec.get(), "ec-1", claims("nobody"))},
      {"signed by another key", "does not verify", signAssertion(keys().ec_rotated.get(), "ec-1", claims())},
      {"RSA key named for an ES384 kid", "does not fit", signAssertion(keys().rsa.get(), "ec-1", claims())},
      {"tampered claims", "does not verify", tampered},
      {"not a JWT", "malformed", "abc.def"},
      {"iss differs from sub", "iss and sub", signAssertion(keys().ec.get(), "ec-1",
                                             R"({"iss":"riverview-ehr","sub":"convener","aud":")" + std::string(kTokenUrl) +
                                                 R"(","exp":)" + std::to_string(nowSeconds() + 60) + R"(,"jti":"x"})")},
      {"no jti", "no jti", signAssertion(keys().ec.get(), "ec-1",
                               R"({"iss":"riverview-ehr","sub":"riverview-ehr","aud":")" + std::string(kTokenUrl) +
                                   R"(","exp":)" + std::to_string(nowSeconds() + 60) + "}")},
  };
  for (const Case& refused : cases) {
    AuthAnswer answer = post(refused.assertion);
    EXPECT_EQ(answer.status, 401) << refused.what << ": " << answer.body;
    EXPECT_EQ(error(answer), "invalid_client") << refused.what;
    EXPECT_NE(answer.body.find(refused.why), std::string::npos) << refused.what << ": " << answer.body;
  }
  // Within five minutes is fine.
  EXPECT_EQ(post(signAssertion(keys().ec.get(), "ec-1", claims("riverview-ehr", 290))).status, 200);
}

TEST_F(AuthServiceTest, ReplayedJtiIsInvalidClient) {
  const std::string assertion = signAssertion(keys().ec.get(), "ec-1", claims());
  EXPECT_EQ(post(assertion).status, 200);
  AuthAnswer replay = post(assertion);
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(error(replay), "invalid_client");
  // Another client may use the same jti text: replay is per client.
  EXPECT_EQ(post(signAssertion(keys().ec.get(), "hie-1",
                               assertionClaims("regional-hie", kTokenUrl, nowSeconds() + 60, "jti-1")))
                .status,
            200);
}

TEST_F(AuthServiceTest, ScopesAreTheIntersectionAndOnlyUnregisteredIsInvalidScope) {
  AuthAnswer unregistered = post(signAssertion(keys().ec.get(), "ec-1", claims()), "patient/*.rs%20launch%20foo");
  EXPECT_EQ(unregistered.status, 400);
  EXPECT_EQ(error(unregistered), "invalid_scope");
  AuthAnswer not_allowed = post(signAssertion(keys().ec.get(), "ec-1", claims()), "admin%20ingest/claims");
  EXPECT_EQ(not_allowed.status, 400);
  EXPECT_EQ(error(not_allowed), "invalid_scope");
  AuthAnswer mixed = post(signAssertion(keys().ec.get(), "ec-1", claims()),
                          "system/*.cruds+foo+ingest/econsult+ingest/claims+admin");
  ASSERT_EQ(mixed.status, 200) << mixed.body;
  EXPECT_EQ(json::getString(parse(mixed.body), "scope"), "system/*.rs ingest/econsult");
  AuthAnswer v1 = post(signAssertion(keys().ec.get(), "hie-1", claims("regional-hie")), "system/*.read+system/*.write");
  ASSERT_EQ(v1.status, 200) << v1.body;
  EXPECT_EQ(json::getString(parse(v1.body), "scope"), "system/*.rs system/Subscription.cruds");
  // No scope asked: everything the kind allows.
  AuthAnswer all = post(signAssertion(keys().rsa.get(), "admin-1", claims("convener")), "");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(json::getString(parse(all.body), "scope"),
            "system/*.cruds ingest/econsult ingest/care-management ingest/claims ingest/roster admin");
}

TEST_F(AuthServiceTest, MalformedRequestsAreInvalidRequestOrUnsupportedGrantType) {
  const int64_t now_ms = nowSeconds() * 1000;
  const std::string assertion = signAssertion(keys().ec.get(), "ec-1", claims());
  AuthAnswer grant = service_->tokenRequest("application/x-www-form-urlencoded",
                                            "grant_type=authorization_code&client_assertion_type=" +
                                                std::string(kAssertionType) + "&client_assertion=" + assertion,
                                            now_ms);
  EXPECT_EQ(grant.status, 400);
  EXPECT_EQ(error(grant), "unsupported_grant_type");
  for (const std::string& form :
       {std::string("grant_type=client_credentials"), "client_assertion=" + assertion,
        "grant_type=client_credentials&client_assertion_type=other&client_assertion=" + assertion,
        "grant_type=client_credentials&grant_type=client_credentials&client_assertion_type=" +
            std::string(kAssertionType) + "&client_assertion=" + assertion,
        std::string("grant_type=client_credentials%ZZ")}) {
    AuthAnswer answer = service_->tokenRequest("application/x-www-form-urlencoded", form, now_ms);
    EXPECT_EQ(answer.status, 400) << form;
    EXPECT_EQ(error(answer), "invalid_request") << form;
  }
  AuthAnswer json_body = service_->tokenRequest("application/json", "{}", now_ms);
  EXPECT_EQ(json_body.status, 400);
  EXPECT_EQ(error(json_body), "invalid_request");
}

TEST_F(AuthServiceTest, AccessTokensExpireAndTamperingIsRefused) {
  auto token = service_->issueAccessToken(*service_->config().findClient("regional-hie"), ScopeSet::parse("system/*.rs"),
                                          nowSeconds() * 1000);
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(service_->verifyAccessToken(*token, nowSeconds() * 1000).ok());
  // Past its expiry (also from the cache).
  EXPECT_FALSE(service_->verifyAccessToken(*token, (nowSeconds() + 301) * 1000).ok());
  auto fresh = service_->issueAccessToken(*service_->config().findClient("regional-hie"), ScopeSet::parse("system/*.rs"),
                                          nowSeconds() * 1000);
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(service_->verifyAccessToken(*fresh, (nowSeconds() + 301) * 1000).ok());  // not cached yet
  // A payload swapped for one granting admin, keeping the signature.
  std::string forged = *fresh;
  const size_t first = forged.find('.');
  const size_t second = forged.rfind('.');
  forged = forged.substr(0, first + 1) +
           base64UrlEncode(R"({"sub":"convener","scope":"admin","exp":)" + std::to_string(nowSeconds() + 100) + "}") +
           forged.substr(second);
  EXPECT_FALSE(service_->verifyAccessToken(forged, nowSeconds() * 1000).ok());
  EXPECT_FALSE(service_->verifyAccessToken("not-a-token", nowSeconds() * 1000).ok());
  AuthAnswer refusal = AuthService::invalidTokenAnswer("the access token has expired");
  EXPECT_EQ(refusal.status, 401);
  ASSERT_EQ(refusal.headers.size(), 1u);
  EXPECT_EQ(refusal.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(refusal.headers[0].second, "Bearer error=\"invalid_token\"");
  auto outcome = parse(refusal.body);
  EXPECT_EQ(json::getString(outcome, "resourceType"), "OperationOutcome");
  EXPECT_EQ(json::getString((*json::find(outcome, "issue"))[0], "code"), "login");
}

TEST_F(AuthServiceTest, AnotherInstanceWithTheSameKeyVerifiesAndOneWithAnotherKeyDoesNot) {
  auto token = service_->issueAccessToken(*service_->config().findClient("convener"), ScopeSet::parse("admin"),
                                          nowSeconds() * 1000);
  ASSERT_TRUE(token.ok());
  auto same_key = makeService(dir_.path().string() + "/gateway.pem");
  ASSERT_NE(same_key, nullptr);
  auto grant = same_key->verifyAccessToken(*token, nowSeconds() * 1000);
  ASSERT_TRUE(grant.ok()) << grant.message();
  EXPECT_TRUE(grant->scopes.isAdmin());
  auto other_key = makeService(dir_.path().string() + "/other.pem");
  ASSERT_NE(other_key, nullptr);
  EXPECT_FALSE(other_key->verifyAccessToken(*token, nowSeconds() * 1000).ok());
}

TEST_F(AuthServiceTest, MissingSigningKeyIsAnErrorUnlessCreationIsConfigured) {
  AuthConfig config;
  config.signing_key_file = dir_.path().string() + "/absent.pem";
  auto refused = AuthService::create(config, store_, dir_.path().string());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("absent.pem"), std::string::npos);
  config.signing_key_file.clear();
  config.create_signing_key = true;
  auto created = AuthService::create(config, store_, dir_.path().string());
  ASSERT_TRUE(created.ok()) << created.message();
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "auth" / "gateway-es384.pem"));
}

TEST_F(AuthServiceTest, SmartConfigurationNamesTheContractFields) {
  auto doc = parse(service_->smartConfiguration());
  EXPECT_EQ(json::getString(doc, "token_endpoint"), kTokenUrl);
  auto strings = [&](const char* name) {
    std::vector<std::string> out;
    for (const auto& item : json::find(doc, name)->GetArray()) out.emplace_back(json::stringView(item));
    return out;
  };
  EXPECT_EQ(strings("grant_types_supported"), std::vector<std::string>{"client_credentials"});
  EXPECT_EQ(strings("token_endpoint_auth_methods_supported"), std::vector<std::string>{"private_key_jwt"});
  EXPECT_EQ(strings("token_endpoint_auth_signing_alg_values_supported"), (std::vector<std::string>{"RS384", "ES384"}));
  EXPECT_EQ(strings("capabilities"), (std::vector<std::string>{"client-confidential-asymmetric", "permission-v2"}));
  const auto scopes = strings("scopes_supported");
  for (const char* scope : {"system/*.rs", "system/Claim.rs", "system/Subscription.cruds", "ingest/econsult", "admin"}) {
    EXPECT_NE(std::find(scopes.begin(), scopes.end(), scope), scopes.end()) << scope;
  }
}

}  // namespace
}  // namespace fhir::gateway::auth

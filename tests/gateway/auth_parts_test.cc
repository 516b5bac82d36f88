// SPDX-License-Identifier: Apache-2.0
// gateway/auth pieces: base64url, JWK sets, JWS, scopes, the `auth` configuration block, and the
// store's jti replay record shared by two store handles on one file.
#include <gtest/gtest.h>

#include <fstream>

#include "gateway/auth/auth_config.h"
#include "gateway/auth/auth_service.h"
#include "gateway/auth/jose.h"
#include "gateway/auth/scopes.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "tests/gateway/auth_test_keys.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::auth {
namespace {

TEST(Base64UrlTest, Rfc4648VectorsWithoutPadding) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg"},         {"fo", "Zm8"},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64UrlEncode(plain), encoded);
    auto decoded = base64UrlDecode(encoded);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, plain);
  }
  EXPECT_EQ(base64UrlEncode("\xfb\xff"), "-_8");  // the URL-safe letters
  EXPECT_FALSE(base64UrlDecode("Zm9v=").ok());
  EXPECT_FALSE(base64UrlDecode("Zm+v").ok());
  EXPECT_FALSE(base64UrlDecode("Zh").ok());  // non-zero padding bits
}

TEST(JoseTest, SignaturesMadeByTheTestVerifyAndTheLibrarysMatchThem) {
  for (auto key : {fhir::testing::makeEcKey(), fhir::testing::makeRsaKey()}) {
    const Algorithm algorithm = EVP_PKEY_is_a(key.get(), "EC") ? Algorithm::kES384 : Algorithm::kRS384;
    auto jwk = json::parse(publicJwkJson(key, algorithm, "k1"));
    ASSERT_TRUE(jwk.ok());
    auto public_key = parsePublicJwk(*jwk, "jwk");
    ASSERT_TRUE(public_key.ok()) << public_key.message();
    EXPECT_EQ(public_key->algorithm, algorithm);
    auto jws = parseJws(fhir::testing::signAssertion(key.get(), "k1", R"({"a":1})"));
    ASSERT_TRUE(jws.ok()) << jws.message();
    EXPECT_TRUE(verifySignature(*public_key, jws->signing_input, jws->signature));
    EXPECT_FALSE(verifySignature(*public_key, jws->signing_input + "x", jws->signature));
    // The library's signer, read back by the test's key through PEM.
    auto private_key = readPrivateKeyPem(fhir::testing::privatePem(key.get()));
    ASSERT_TRUE(private_key.ok()) << private_key.message();
    auto signed_jws = signJws(*private_key, "k1", R"({"b":2})");
    ASSERT_TRUE(signed_jws.ok());
    auto parsed = parseJws(*signed_jws);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->alg, algorithmName(algorithm));
    EXPECT_EQ(parsed->kid, "k1");
    if (algorithm == Algorithm::kES384) {
      EXPECT_EQ(parsed->signature.size(), 96u);
    }
    EXPECT_TRUE(verifySignature(*public_key, parsed->signing_input, parsed->signature));
    // The thumbprint is stable and names the public key only.
    EXPECT_EQ(jwkThumbprint(key, algorithm), jwkThumbprint(public_key->key, algorithm));
    EXPECT_EQ(jwkThumbprint(key, algorithm).size(), 43u);  // 32 bytes of SHA-256, base64url
  }
}

TEST(JoseTest, JwksRefusesPrivateKeysOtherCurvesAndDuplicateKids) {
  auto ec = fhir::testing::makeEcKey();
  const std::string jwk = publicJwkJson(ec, Algorithm::kES384, "same");
  auto duplicate = json::parse(R"({"keys":[)" + jwk + "," + jwk + "]}");
  ASSERT_TRUE(duplicate.ok());
  EXPECT_NE(parseJwks(*duplicate, "jwks").message().find("duplicate kid"), std::string::npos);
  auto with_d = json::parse(jwk.substr(0, jwk.size() - 1) + R"(,"d":"AAAA"})");
  EXPECT_NE(parsePublicJwk(*with_d, "jwk").message().find("private"), std::string::npos);
  auto p256 = json::parse(R"({"kty":"EC","crv":"P-256","kid":"a","x":"AA","y":"AA"})");
  EXPECT_NE(parsePublicJwk(*p256, "jwk").message().find("P-384"), std::string::npos);
  auto hmac = json::parse(R"({"kty":"oct","kid":"a","k":"AAAA"})");
  EXPECT_FALSE(parsePublicJwk(*hmac, "jwk").ok());
  auto no_kid = json::parse(R"({"kty":"EC","crv":"P-384","x":"AA","y":"AA"})");
  EXPECT_NE(parsePublicJwk(*no_kid, "jwk").message().find("kid"), std::string::npos);
  // A point that is not on the curve.
  auto off_curve = json::parse(R"({"kty":"EC","crv":"P-384","kid":"a","x":")" + base64UrlEncode(std::string(48, '\1')) +
                               R"(","y":")" + base64UrlEncode(std::string(48, '\2')) + R"("})");
  EXPECT_FALSE(parsePublicJwk(*off_curve, "jwk").ok());
  std::string mislabelled = jwk;
  mislabelled.replace(mislabelled.find("ES384"), 5, "RS384");
  auto wrong_alg = json::parse(mislabelled);
  EXPECT_NE(parsePublicJwk(*wrong_alg, "jwk").message().find("does not fit"), std::string::npos);
}

TEST(ScopeSetTest, ParsesV2AndV1FormsAndAnswersQueries) {
  std::vector<std::string> unknown;
  ScopeSet set = ScopeSet::parse("system/Claim.rs system/Patient.read ingest/roster admin patient/*.rs system/*.sr foo",
                                 &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"patient/*.rs", "system/*.sr", "foo"}));
  EXPECT_TRUE(set.allows(Interaction::kRead, "Claim"));
  EXPECT_TRUE(set.allows(Interaction::kSearch, "Claim"));
  EXPECT_FALSE(set.allows(Interaction::kCreate, "Claim"));
  EXPECT_TRUE(set.allows(Interaction::kSearch, "Patient"));  // v1 read = v2 rs
  EXPECT_FALSE(set.allows(Interaction::kRead, "Coverage"));
  EXPECT_TRUE(set.allowsIngest("roster"));
  EXPECT_FALSE(set.allowsIngest("claims"));
  EXPECT_TRUE(set.isAdmin());
  EXPECT_EQ(ScopeSet::parse("system/*.*").toString(), "system/*.cruds");
  EXPECT_EQ(ScopeSet::parse("system/*.write").toString(), "system/*.cud");
}

TEST(ScopeSetTest, EachKindIsAllowedWhatTheContractTableSays) {
  const ScopeSet ehr = ScopeSet::allowedFor(ClientKind::kEhr);
  EXPECT_TRUE(ehr.allowsIngest("econsult"));
  EXPECT_TRUE(ehr.allowsIngest("care-management"));
  EXPECT_FALSE(ehr.allowsIngest("claims"));
  EXPECT_TRUE(ehr.allows(Interaction::kSearch, "Patient"));
  EXPECT_FALSE(ehr.allows(Interaction::kCreate, "Subscription"));
  EXPECT_FALSE(ehr.isAdmin());
  const ScopeSet payer = ScopeSet::allowedFor(ClientKind::kPayer);
  EXPECT_TRUE(payer.allowsIngest("claims"));
  EXPECT_TRUE(payer.allowsIngest("roster"));
  EXPECT_FALSE(payer.allowsIngest("econsult"));
  const ScopeSet hie = ScopeSet::allowedFor(ClientKind::kHie);
  for (Interaction interaction : {Interaction::kCreate, Interaction::kRead, Interaction::kUpdate, Interaction::kDelete,
                                  Interaction::kSearch}) {
    EXPECT_TRUE(hie.allows(interaction, "Subscription"));
  }
  EXPECT_FALSE(hie.allows(Interaction::kCreate, "Patient"));
  EXPECT_FALSE(hie.allowsIngest("econsult"));
  const ScopeSet practice = ScopeSet::allowedFor(ClientKind::kPractice);
  EXPECT_TRUE(practice.allows(Interaction::kRead, "Patient"));
  EXPECT_FALSE(practice.allows(Interaction::kCreate, "Subscription"));
  EXPECT_TRUE(ScopeSet::allowedFor(ClientKind::kAdmin).isAdmin());
  // Intersection narrows a type and its permissions.
  EXPECT_EQ(ScopeSet::parse("system/*.cruds").intersect(hie).toString(), "system/*.rs system/Subscription.cruds");
  EXPECT_EQ(ScopeSet::parse("system/Claim.cr").intersect(payer).toString(), "system/Claim.r");
  EXPECT_TRUE(ScopeSet::parse("admin").intersect(payer).empty());
}

std::string configWith(const std::string& auth) {
  return R"({"payers":[{"id":"prairie-medicaid","name":"Prairie","format":"roster","endpoint":"http://127.0.0.1:1/b"}],
            "auth":)" + auth + "}";
}

TEST(AuthConfigTest, ParsesTheContractExampleShape) {
  fhir::testing::TempDir dir;
  const std::string jwks = R"({"keys":[)" + publicJwkJson(fhir::testing::makeEcKey(), Algorithm::kES384, "k1") + "]}";
  {
    std::ofstream out(dir.path() / "payer.jwks.json");
    out << jwks;
  }
  // certificateSubject needs client certificates (tls.clientCaFile); the files are only read by the listener.
  const std::string pem = (dir.path() / "payer.jwks.json").string();
  const std::string tls = R"({"tls":{"certFile":")" + pem + R"(","keyFile":")" + pem + R"(","clientCaFile":")" + pem + R"("},)";
  auto config = parseConfig(tls + configWith(R"({"signingKeyFile":"keys/gateway-es384.pem","tokenLifetimeSeconds":600,
      "maxSubscriptionsPerClient":7,"clients":[
      {"id":"riverview-ehr","kind":"ehr","jwks":)" + jwks + R"(,"sources":["riverview-ehr"]},
      {"id":"prairie","kind":"payer","jwksFile":")" + (dir.path() / "payer.jwks.json").string() + R"(","payerId":"prairie-medicaid"},
      {"id":"regional-hie","kind":"hie","jwks":)" + jwks + R"(,"subscriptionEndpoints":["https://hie.example.org/notify/"],"practices":"all"},
      {"id":"clinic","kind":"practice","jwks":)" + jwks + R"(,"practiceNpi":"1234567893","certificateSubject":"CN=clinic"},
      {"id":"convener","kind":"admin","jwks":)" + jwks + R"(}]})").substr(1));
  ASSERT_TRUE(config.ok()) << config.message();
  ASSERT_TRUE(config->auth.has_value());
  const AuthConfig& auth = *config->auth;
  EXPECT_EQ(auth.signing_key_file, "keys/gateway-es384.pem");
  EXPECT_EQ(auth.token_lifetime_seconds, 600);
  EXPECT_EQ(auth.max_subscriptions_per_client, 7);
  ASSERT_EQ(auth.clients.size(), 5u);
  EXPECT_EQ(auth.findClient("prairie")->payer_id, "prairie-medicaid");
  EXPECT_NE(auth.findClient("prairie")->findKey("k1"), nullptr);
  EXPECT_TRUE(auth.findClient("regional-hie")->all_practices);
  EXPECT_EQ(auth.findClient("clinic")->practice_npi, "1234567893");
  EXPECT_EQ(auth.findClient("clinic")->certificate_subject, "CN=clinic");
  EXPECT_EQ(auth.findClient("riverview-ehr")->sources, std::vector<std::string>{"riverview-ehr"});
  EXPECT_EQ(auth.findClient("convener")->kind, ClientKind::kAdmin);
  auto open = parseConfig("{}");
  ASSERT_TRUE(open.ok());
  EXPECT_FALSE(open->auth.has_value());
}

TEST(AuthConfigTest, BadBlocksAreErrorsNamingTheKey) {
  const std::string jwks = R"({"keys":[)" + publicJwkJson(fhir::testing::makeEcKey(), Algorithm::kES384, "k1") + "]}";
  const std::pair<std::string, std::string> cases[] = {
      {R"({"clients":[],"tokenLifetime":5})", "'auth.tokenLifetime'"},
      {R"({"clients":[{"id":"a","kind":"admin","jwks":)" + jwks + R"(,"colour":"red"}]})", "'auth.clients[0].colour'"},
      {R"({"clients":[{"id":"a","kind":"robot","jwks":)" + jwks + "}]}", "auth.clients[0].kind"},
      {R"({"clients":[{"id":"a","kind":"payer","jwks":)" + jwks + R"(,"payerId":"other"}]})", "auth.clients[0].payerId"},
      {R"({"clients":[{"id":"a","kind":"payer","jwks":)" + jwks + R"(,"payerId":"prairie-medicaid","sources":["x"]}]})",
       "auth.clients[0].sources"},
      {R"({"clients":[{"id":"a","kind":"ehr","jwks":)" + jwks + "}]}", "auth.clients[0].sources"},
      {R"({"clients":[{"id":"a","kind":"admin"}]})", "auth.clients[0]"},
      {R"({"clients":[{"id":"a","kind":"admin","jwksFile":"/nonexistent/x.json"}]})", "auth.clients[0].jwksFile"},
      {R"({"clients":[{"id":"a","kind":"admin","jwks":{"keys":[]}}]})", "auth.clients[0].jwks"},
      {R"({"clients":[{"id":"a","kind":"admin","jwks":)" + jwks + R"(},{"id":"a","kind":"admin","jwks":)" + jwks + "}]}",
       "duplicate client id 'a'"},
      {R"({"clients":[{"id":"a","kind":"hie","jwks":)" + jwks + R"(,"practices":"some"}]})", "auth.clients[0].practices"},
      {R"({"tokenLifetimeSeconds":0,"clients":[]})", "auth.tokenLifetimeSeconds"},
  };
  for (const auto& [auth, named] : cases) {
    auto config = parseConfig(configWith(auth));
    ASSERT_FALSE(config.ok()) << auth;
    EXPECT_NE(config.message().find(named), std::string::npos) << config.message();
  }
}

TEST(AssertionJtiStoreTest, AReplayIsRefusedAcrossTwoStoreHandlesOnOneFileUntilItExpires) {
  fhir::testing::TempDir dir;
  auto first = openSqliteStore(dir.path().string());
  auto second = openSqliteStore(dir.path().string());
  ASSERT_TRUE(first.ok() && second.ok());
  const int64_t now = 1'800'000'000'000;
  auto claimed = (*first)->claimAssertionJti("riverview-ehr", "j1", now + 60'000, now);
  ASSERT_TRUE(claimed.ok()) << claimed.message();
  EXPECT_TRUE(*claimed);
  auto replay = (*second)->claimAssertionJti("riverview-ehr", "j1", now + 60'000, now + 1'000);
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(*replay);
  EXPECT_FALSE(*(*first)->claimAssertionJti("riverview-ehr", "j1", now + 120'000, now + 59'999));
  // Another client's jti of the same text is its own.
  EXPECT_TRUE(*(*second)->claimAssertionJti("prairie", "j1", now + 60'000, now + 2'000));
  // Past its lifetime the record is gone (an expired assertion is refused before the store anyway).
  EXPECT_TRUE(*(*second)->claimAssertionJti("riverview-ehr", "j1", now + 200'000, now + 60'000));
}

TEST(FormTest, DecodesAndRefusesRepeatsAndBadEscapes) {
  auto form = parseForm("a=b+c&scope=system%2F*.rs%20admin&empty=");
  ASSERT_TRUE(form.ok());
  ASSERT_EQ(form->size(), 3u);
  EXPECT_EQ((*form)[0].second, "b c");
  EXPECT_EQ((*form)[1].second, "system/*.rs admin");
  EXPECT_EQ((*form)[2].second, "");
  EXPECT_FALSE(parseForm("a=1&a=2").ok());
  EXPECT_FALSE(parseForm("a=%4").ok());
}

}  // namespace
}  // namespace fhir::gateway::auth

// SPDX-License-Identifier: Apache-2.0
#include "gateway/config/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/gateway/auth_test_keys.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

// config/sample.json names the development JWK set `var/dev-client.jwks.json` (relative to where
// `scripts/dev run` serves it); here it is a fresh key's, in a temporary directory.
Result<Config> loadSample() {
  static testing::TempDir keys;
  const std::string jwks = (keys.path() / "dev-client.jwks.json").string();
  std::ofstream(jwks) << R"({"keys":[)" << auth::publicJwkJson(testing::makeEcKey(), auth::Algorithm::kES384, "dev") << "]}";
  std::string text = testing::readFile(std::string(GATEWAY_SOURCE_DIR) + "/config/sample.json");
  for (size_t at; (at = text.find("var/dev-client.jwks.json")) != std::string::npos;) {
    text.replace(at, std::string("var/dev-client.jwks.json").size(), jwks);
  }
  return parseConfig(text);
}

TEST(ConfigTest, ReadsTheContractExample) {
  auto config = loadSample();
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->listen, "127.0.0.1:8080");
  EXPECT_EQ(config->max_body_bytes, 10485760);
  ASSERT_EQ(config->payers.size(), 1u);
  const PayerConfig& payer = config->payers[0];
  EXPECT_EQ(payer.id, "lakeshore-medicaid");
  EXPECT_EQ(payer.identifier_value, "1548271034");
  EXPECT_TRUE(payer.routesCode("99451"));
  EXPECT_FALSE(payer.routesCode("99446"));
  EXPECT_TRUE(payer.routesLineOfBusiness("medicaid"));
  EXPECT_FALSE(payer.routesLineOfBusiness("commercial"));
  ASSERT_EQ(config->feeds.size(), 1u);
  EXPECT_EQ(config->feeds[0].client, "regional-hie");
  // Auth is on in the sample: the development admin and the feed's HIE (scripts/dev run).
  ASSERT_TRUE(config->auth.has_value());
  ASSERT_EQ(config->auth->clients.size(), 2u);
  EXPECT_EQ(config->auth->clients[0].kind, auth::ClientKind::kAdmin);
  EXPECT_EQ(config->auth->clients[1].kind, auth::ClientKind::kHie);
  EXPECT_TRUE(config->auth->clients[1].all_practices);
  EXPECT_EQ(config->delivery.initial_backoff_ms, 500);
  EXPECT_EQ(config->findPayer("lakeshore-medicaid"), &config->payers[0]);
  EXPECT_EQ(config->findPayer("other"), nullptr);
}

TEST(ConfigTest, AStaticFeedIsBoundToAnHieClientWhenAuthIsOn) {
  const std::string jwks = R"({"keys": [)" + auth::publicJwkJson(testing::makeEcKey(), auth::Algorithm::kES384, "k") + "]}";
  auto with = [&](const std::string& feed) {
    return parseConfig(R"({"feeds": [)" + feed + R"(], "auth": {"clients": [
        {"id": "hie", "kind": "hie", "practices": ["1093817462"], "jwks": )" + jwks + R"(},
        {"id": "admin", "kind": "admin", "jwks": )" + jwks + "}]}}");
  };
  auto bound = with(R"({"id": "f", "endpoint": "http://x", "client": "hie"})");
  ASSERT_TRUE(bound.ok()) << bound.message();
  EXPECT_EQ(bound->feeds[0].client, "hie");
  EXPECT_EQ(with(R"({"id": "f", "endpoint": "http://x"})").message(),
            "configuration key 'feeds[0].client' is required with 'auth': a feed receives what its hie client may see");
  EXPECT_EQ(with(R"({"id": "f", "endpoint": "http://x", "client": "nobody"})").message(),
            "configuration key 'feeds[0].client': no client 'nobody' in 'auth.clients'");
  EXPECT_EQ(with(R"({"id": "f", "endpoint": "http://x", "client": "admin"})").message(),
            "configuration key 'feeds[0].client': client 'admin' is not of kind 'hie'");
  EXPECT_EQ(parseConfig(R"({"feeds": [{"id": "f", "endpoint": "http://x", "client": "hie"}]})").message(),
            "configuration key 'feeds[0].client' needs an 'auth' block: clients are defined there");
}

TEST(ConfigTest, OnlyRequiredKeysGiveDefaults) {
  auto config = parseConfig(R"({"payers": [{"id": "p", "name": "P", "format": "roster", "endpoint": "http://127.0.0.1:1/x"}]})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->data_dir, "./var");
  EXPECT_TRUE(config->payers[0].routesCode("anything"));
  EXPECT_DOUBLE_EQ(config->delivery.give_up_after_hours, 72);
}

TEST(ConfigTest, ReadsLimitsWithSafeDefaults) {
  auto defaults = parseConfig(R"({})");
  ASSERT_TRUE(defaults.ok()) << defaults.message();
  EXPECT_EQ(defaults->limits.max_json_depth, 100);
  EXPECT_EQ(defaults->limits.header_timeout_ms, 10000);
  EXPECT_EQ(defaults->limits.max_connections_per_address, 32);
  EXPECT_EQ(defaults->limits.max_record_bytes, 1 << 20);
  auto config = parseConfig(R"({"limits": {"maxJsonDepth": 40, "headerTimeoutMs": 500, "bodyIdleTimeoutMs": 700,
      "maxHeaderBytes": 4096, "maxConnections": 10, "maxConnectionsPerAddress": 2, "maxRecordBytes": 1000,
      "maxQuarantinePayloadBytes": 2000}})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->limits.max_json_depth, 40);
  EXPECT_EQ(config->limits.header_timeout_ms, 500);
  EXPECT_EQ(config->limits.body_idle_timeout_ms, 700);
  EXPECT_EQ(config->limits.max_header_bytes, 4096);
  EXPECT_EQ(config->limits.max_connections, 10);
  EXPECT_EQ(config->limits.max_connections_per_address, 2);
  EXPECT_EQ(config->limits.max_record_bytes, 1000);
  EXPECT_EQ(config->limits.max_quarantine_payload_bytes, 2000);
  EXPECT_EQ(parseConfig(R"({"limits": {"maxConnection": 1}})").message(), "unknown configuration key 'limits.maxConnection'");
  EXPECT_EQ(parseConfig(R"({"limits": {"maxConnections": 0}})").message(),
            "configuration key 'limits.maxConnections' must be at least 1");
}

TEST(ConfigTest, ReadsExportWithContractDefaults) {
  auto defaults = parseConfig(R"({})");
  ASSERT_TRUE(defaults.ok()) << defaults.message();
  EXPECT_EQ(defaults->export_.retention_hours, 24);
  EXPECT_EQ(defaults->export_.max_resources_per_file, 100000);
  EXPECT_EQ(defaults->export_.max_concurrent_jobs, 2);
  EXPECT_EQ(defaults->export_.max_resources_per_second, 0);
  auto config = parseConfig(
      R"({"export": {"retentionHours": 0.5, "maxResourcesPerFile": 10, "maxConcurrentJobs": 3, "maxResourcesPerSecond": 5000}})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->export_.retention_hours, 0.5);
  EXPECT_EQ(config->export_.max_resources_per_file, 10);
  EXPECT_EQ(config->export_.max_concurrent_jobs, 3);
  EXPECT_EQ(config->export_.max_resources_per_second, 5000);
  EXPECT_EQ(parseConfig(R"({"export": {"maxJobs": 1}})").message(), "unknown configuration key 'export.maxJobs'");
  EXPECT_EQ(parseConfig(R"({"export": {"maxConcurrentJobs": 0}})").message(),
            "configuration key 'export.maxConcurrentJobs' must be at least 1");
}

TEST(ConfigTest, ReadsTheScorecardsWaitsWithTheirDefaults) {
  auto defaults = parseConfig(R"({})");
  ASSERT_TRUE(defaults.ok()) << defaults.message();
  EXPECT_EQ(defaults->scorecard.quick_ms, 5000);
  EXPECT_EQ(defaults->scorecard.stale_wait_ms, 250);
  auto config = parseConfig(R"({"scorecard": {"quickMs": 0, "staleWaitMs": 100}})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->scorecard.quick_ms, 0);
  EXPECT_EQ(config->scorecard.stale_wait_ms, 100);
  EXPECT_EQ(parseConfig(R"({"scorecard": {"waitMs": 1}})").message(), "unknown configuration key 'scorecard.waitMs'");
  EXPECT_EQ(parseConfig(R"({"scorecard": {"staleWaitMs": -1}})").message(),
            "configuration key 'scorecard.staleWaitMs' must be at least 0");
}

TEST(ConfigTest, ExportDirAndLeaseSecondsDefaultToTheDataDirectoryAndThirtySeconds) {
  auto defaults = parseConfig(R"({"dataDir": "/srv/gw"})");
  ASSERT_TRUE(defaults.ok()) << defaults.message();
  EXPECT_EQ(defaults->export_.dir, "") << "empty: <dataDir>/export (ExportService::optionsOf)";
  EXPECT_EQ(defaults->export_.lease_seconds, 30);
  auto config = parseConfig(R"({"dataDir": "/srv/gw", "export": {"dir": "/mnt/shared/export", "leaseSeconds": 2.5}})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->export_.dir, "/mnt/shared/export");
  EXPECT_EQ(config->export_.lease_seconds, 2.5);
  EXPECT_EQ(parseConfig(R"({"export": {"dir": 7}})").message(), "configuration key 'export.dir' must be a string");
  EXPECT_EQ(parseConfig(R"({"export": {"leaseSeconds": 0}})").message(),
            "configuration key 'export.leaseSeconds' must be a positive number");
}

TEST(ConfigTest, UnknownKeysAreErrorsNamingTheKey) {
  EXPECT_EQ(parseConfig(R"({"listen": "127.0.0.1:1", "colour": {}})").message(), "unknown configuration key 'colour'");
  EXPECT_EQ(parseConfig(R"({"payers": [{"id": "p", "name": "P", "format": "f", "endpoint": "http://x", "colour": 1}]})").message(),
            "unknown configuration key 'payers[0].colour'");
  EXPECT_EQ(parseConfig(R"({"delivery": {"retries": 3}})").message(), "unknown configuration key 'delivery.retries'");
}

TEST(ConfigTest, MissingAndMistypedKeysAreErrors) {
  EXPECT_EQ(parseConfig(R"({"payers": [{"id": "p", "name": "P", "format": "f"}]})").message(),
            "missing required configuration key 'payers[0].endpoint'");
  EXPECT_EQ(parseConfig(R"({"maxBodyBytes": "big"})").message(), "configuration key 'maxBodyBytes' must be an integer");
  EXPECT_EQ(parseConfig(R"({"feeds": [{"id": "f", "endpoint": "ftp://x"}]})").message(),
            "configuration key 'feeds[0].endpoint' must be an http:// or https:// URL");
  EXPECT_EQ(parseConfig(R"({"feeds": [{"id": "f", "endpoint": "http://x"}, {"id": "f", "endpoint": "http://y"}]})").message(),
            "duplicate feed id 'f' in configuration key 'feeds'");
  EXPECT_NE(parseConfig("{").message().find("not valid JSON"), std::string::npos);
}

TEST(ConfigTest, ReadsTlsAndAllowPlainHttp) {
  testing::TempDir dir;
  const std::string cert = (dir.path() / "cert.pem").string();
  const std::string key = (dir.path() / "key.pem").string();
  std::ofstream(cert) << "certificate";  // read by OpenSSL when the listener starts, not here
  std::ofstream(key) << "key";
  auto config = parseConfig(R"({"tls": {"certFile": ")" + cert + R"(", "keyFile": ")" + key + R"(", "clientCaFile": ")" +
                            cert + R"("}, "allowPlainHttp": true})");
  ASSERT_TRUE(config.ok()) << config.message();
  ASSERT_TRUE(config->tls.has_value());
  EXPECT_EQ(config->tls->cert_file, cert);
  EXPECT_EQ(config->tls->key_file, key);
  EXPECT_EQ(config->tls->client_ca_file, cert);
  EXPECT_TRUE(config->allow_plain_http);
  auto defaults = parseConfig("{}");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->tls.has_value());
  EXPECT_FALSE(defaults->allow_plain_http);

  EXPECT_EQ(parseConfig(R"({"tls": {"certFile": ")" + cert + R"("}})").message(),
            "missing required configuration key 'tls.keyFile'");
  EXPECT_EQ(parseConfig(R"({"tls": {"certFile": "/nonexistent.pem", "keyFile": ")" + key + R"("}})").message(),
            "configuration key 'tls.certFile': cannot read file '/nonexistent.pem'");
  EXPECT_EQ(parseConfig(R"({"tls": {"certFile": ")" + cert + R"(", "keyFile": ")" + key + R"(", "ciphers": "x"}})").message(),
            "unknown configuration key 'tls.ciphers'");
  EXPECT_EQ(parseConfig(R"({"allowPlainHttp": "yes"})").message(), "configuration key 'allowPlainHttp' must be true or false");

  // certificateSubject is checked only with client certificates: without clientCaFile it is an error.
  const std::string client = R"({"auth": {"clients": [{"id": "c", "kind": "admin", "certificateSubject": "CN=c",
      "jwks": {"keys": [)" + auth::publicJwkJson(testing::makeEcKey(), auth::Algorithm::kES384, "k") + "]}}]}";
  EXPECT_EQ(parseConfig(client + "}").message(),
            "configuration key 'auth.clients[0].certificateSubject' needs 'tls.clientCaFile': client certificates are "
            "only asked for then");
  EXPECT_TRUE(parseConfig(client + R"(, "tls": {"certFile": ")" + cert + R"(", "keyFile": ")" + key +
                          R"(", "clientCaFile": ")" + cert + R"("}})").ok());
}

TEST(ConfigTest, PublicBaseUrlIsTheOneBaseOfPublishedUrls) {
  auto config = parseConfig(R"({"publicBaseUrl": "https://gateway.example.org/hie/"})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->public_base_url, "https://gateway.example.org/hie");
  EXPECT_EQ(*publicBase(*config, "0.0.0.0", 8443), "https://gateway.example.org/hie");

  for (const char* bad : {"https://0.0.0.0:8443", "http://[::]:8080", "https://", "ftp://gateway.example.org",
                          "https://gateway.example.org/?a=b", "https://gateway.example.org/#top", "gateway.example.org"}) {
    EXPECT_FALSE(parseConfig(std::string(R"({"publicBaseUrl": ")") + bad + R"("})").ok()) << bad;
  }
  EXPECT_NE(parseConfig(R"({"publicBaseUrl": "https://0.0.0.0:8443"})").message().find("not a wildcard"), std::string::npos);

  // Default: the listen address, https:// with tls; never a wildcard address.
  Config plain;
  EXPECT_EQ(*publicBase(plain, "127.0.0.1", 8080), "http://127.0.0.1:8080");
  EXPECT_EQ(*publicBase(plain, "::1", 8080), "http://[::1]:8080");
  plain.tls = TlsConfig{"cert.pem", "key.pem", ""};
  EXPECT_EQ(*publicBase(plain, "127.0.0.1", 8443), "https://127.0.0.1:8443");
  for (const char* wildcard : {"0.0.0.0", "::", "0:0:0:0:0:0:0:0"}) {
    auto refused = publicBase(plain, wildcard, 8443);
    ASSERT_FALSE(refused.ok()) << wildcard;
    EXPECT_NE(refused.message().find("needs 'publicBaseUrl'"), std::string::npos) << refused.message();
  }

  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(splitListen("[::1]:8443", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8443);
  EXPECT_FALSE(splitListen("127.0.0.1", host, port));
  EXPECT_FALSE(splitListen("127.0.0.1:70000", host, port));
}

TEST(ConfigTest, IgsAsPathsOrWithPolicies) {
  auto paths = parseConfig(R"({"igs": ["packages/us-core-6.1.0.tgz", "packages/carin"]})");
  ASSERT_TRUE(paths.ok()) << paths.message();
  EXPECT_EQ(paths->igs.packages, (std::vector<std::string>{"packages/us-core-6.1.0.tgz", "packages/carin"}));
  EXPECT_FALSE(paths->igs.strict_dependencies);
  EXPECT_FALSE(paths->igs.unchecked_bindings_are_errors);
  auto policies = parseConfig(
      R"({"igs": {"packages": ["a.tgz"], "strictDependencies": true, "uncheckedBindings": "error"}})");
  ASSERT_TRUE(policies.ok()) << policies.message();
  EXPECT_EQ(policies->igs.packages, std::vector<std::string>{"a.tgz"});
  EXPECT_TRUE(policies->igs.strict_dependencies);
  EXPECT_TRUE(policies->igs.unchecked_bindings_are_errors);
  EXPECT_EQ(parseConfig(R"({"igs": [1]})").message(),
            "configuration key 'igs' must be an array of package paths (folders or .tgz files)");
  EXPECT_EQ(parseConfig(R"({"igs": {"packages": [], "strict": true}})").message(),
            "unknown configuration key 'igs.strict'");
  EXPECT_EQ(parseConfig(R"({"igs": {"uncheckedBindings": "fatal"}})").message(),
            "configuration key 'igs.uncheckedBindings' must be \"warning\" or \"error\"");
}

}  // namespace
}  // namespace fhir::gateway

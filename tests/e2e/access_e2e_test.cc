// SPDX-License-Identifier: Apache-2.0
// Who sees what (issue 13, contracts/access.md) against the real binary: tokens from the token
// endpoint (ES384 assertions signed here with OpenSSL), every route × every client kind (and no
// token) as the contract's table says, two payers covering one patient in different months,
// refused ingest that stores nothing, Subscription endpoint rules, and the audit trail.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "conformance/json/json.h"
#include "gateway/auth/auth_service.h"
#include "gateway/auth/jose.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"
#include "tests/gateway/auth_test_keys.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAssertionType = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
constexpr const char* kTopicBase = "https://fhir.alignment-gateway.org/SubscriptionTopic/";
constexpr const char* kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

// The clients of the matrix, in its column order ("" is a request without a token).
const std::vector<std::string> kClients = {"", "ehr", "ehr2", "lakeshore", "northwind", "hie", "clinic", "convener"};

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string str(const json::Value& object, const char* key) { return std::string(json::getString(object, key).value_or("")); }

class AccessE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = makeEcKey();
    const std::string jwks =
        R"({"keys":[)" + gateway::auth::publicJwkJson(key_, gateway::auth::Algorithm::kES384, "k1") + "]}";
    config_path_ = (data_.path() / "config.json").string();
    std::ofstream config(config_path_);
    config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "endpoint": ")" << lakeshore_.url("/bundles") << R"(" },
    { "id": "northwind-commercial", "name": "Northwind Health Plan", "format": "northwind-commercial",
      "endpoint": ")" << northwind_.url("/bundles") << R"(" }
  ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 200 },
  "auth": { "createSigningKey": true, "maxSubscriptionsPerClient": 3, "clients": [
    { "id": "ehr", "kind": "ehr", "sources": ["epic-prod-northshore"], "jwks": )" << jwks << R"( },
    { "id": "ehr2", "kind": "ehr", "sources": ["other-ehr"], "jwks": )" << jwks << R"( },
    { "id": "lakeshore", "kind": "payer", "payerId": "lakeshore-medicaid", "jwks": )" << jwks << R"( },
    { "id": "northwind", "kind": "payer", "payerId": "northwind-commercial", "jwks": )" << jwks << R"( },
    { "id": "hie", "kind": "hie", "practices": "all", "jwks": )" << jwks << R"(,
      "subscriptionEndpoints": [")" << hie_.url("/ok/") << R"(", ")" << redirector_.url("/ok/") << R"("] },
    { "id": "clinic", "kind": "practice", "practiceNpi": "1881726354", "jwks": )" << jwks << R"( },
    { "id": "convener", "kind": "admin", "jwks": )" << jwks << R"( }
  ] }
})";
    config.close();
    // The gateway's stderr goes to a file the test reads (no token may appear in it).
    log_path_ = (data_.path() / "gateway.log").string();
    const int saved = dup(STDERR_FILENO);
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(log, STDERR_FILENO);
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(log);
    ASSERT_NE(gateway_->port(), 0);
    token_url_ = "http://127.0.0.1:" + std::to_string(gateway_->port()) + "/auth/token";
  }

  // A signed assertion for `client` (a fresh jti each time).
  std::string assertion(const std::string& client) {
    const std::string claims = assertionClaims(client, token_url_, nowSeconds() + 60, "jti-" + std::to_string(++jti_));
    assertions_.push_back(signAssertion(key_.get(), "k1", claims));
    return assertions_.back();
  }

  HttpResult tokenRequest(const std::string& client) {
    return gateway_->post("/auth/token",
                          "grant_type=client_credentials&client_assertion_type=" + std::string(kAssertionType) +
                              "&client_assertion=" + assertion(client),
                          "application/x-www-form-urlencoded");
  }

  // An access token of `client` (everything its kind may have), kept for the grep at the end.
  std::string token(const std::string& client) {
    if (client.empty()) return {};
    if (auto found = tokens_.find(client); found != tokens_.end()) return found->second;
    HttpResult answer = tokenRequest(client);
    EXPECT_EQ(answer.status, 200) << answer.body;
    auto doc = json::parse(answer.body);
    const std::string access = doc.ok() ? str(*doc, "access_token") : std::string();
    EXPECT_FALSE(access.empty());
    return tokens_[client] = access;
  }

  RawResponse call(const std::string& method, const std::string& path, const std::string& client,
                   const std::string& body = "", const std::string& content_type = "application/json") {
    std::string bytes = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!client.empty()) bytes += "Authorization: Bearer " + token(client) + "\r\n";
    if (method == "POST" || method == "PUT" || !body.empty()) {
      bytes += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    return rawRequest(gateway_->port(), bytes + "\r\n" + body, 20000);
  }

  std::string subscription(const std::string& endpoint, const std::string& header = R"("X-Hie: 1")") const {
    return R"({"resourceType": "Subscription",
  "meta": {"profile": [")" + std::string(kBackport) + R"(backport-subscription"]},
  "status": "requested", "reason": "HIE feed", "criteria": ")" + std::string(kTopicBase) + R"(billing-routed",
  "channel": {"type": "rest-hook", "endpoint": ")" + endpoint + R"(", "payload": "application/fhir+json",
    "_payload": {"extension": [{"url": ")" + std::string(kBackport) + R"(backport-payload-content", "valueCode": "id-only"}]},
    "header": [)" + header + R"(]}})";
  }

  // The Type/id of the entries of an ingest answer whose JSON holds `marker`.
  static std::string entryId(const std::string& bundle_text, const std::string& type, const std::string& marker = "") {
    auto doc = json::parse(bundle_text);
    if (!doc.ok() || !doc->IsObject() || !json::find(*doc, "entry")) return {};
    for (const json::Value& entry : (*doc)["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      if (str(resource, "resourceType") != type) continue;
      if (!marker.empty() && json::serialize(resource).find(marker) == std::string::npos) continue;
      return str(resource, "id");
    }
    return {};
  }

  TempDir data_;
  LoopbackReceiver lakeshore_, northwind_, hie_, redirector_, elsewhere_;
  std::shared_ptr<EVP_PKEY> key_;
  std::string config_path_, log_path_, token_url_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::map<std::string, std::string> tokens_;
  std::vector<std::string> assertions_;
  int jti_ = 0;
};

// One route and what each client (kClients order) gets. 0: anything but 401 and 403 (a payer
// file the route then reads: its answer depends on the file, not on access).
struct Row {
  std::string method;
  std::string path;
  std::string body;
  std::string content_type;
  std::vector<int> expected;
};

TEST_F(AccessE2e, EveryRouteAnswersEachClientKindAsTheContractSays) {
  // One patient covered by lakeshore-medicaid until 2026-06-30 and by northwind-commercial from
  // 2026-07-01: the June claim is routed to lakeshore, the July one to northwind.
  RawResponse june = call("POST", "/ingest/econsult", "ehr", billingEvent("acc-june", "2026-06-15"));
  ASSERT_EQ(june.status, 202) << june.body;
  RawResponse july = call("POST", "/ingest/econsult", "ehr", billingEvent("acc-july", "2026-07-15"));
  ASSERT_EQ(july.status, 202) << july.body;
  const std::string patient = entryId(june.body, "Patient");
  const std::string june_claim = entryId(june.body, "Claim");
  const std::string july_claim = entryId(july.body, "Claim");
  const std::string lakeshore_coverage = entryId(june.body, "Coverage", "LMC00918273");
  const std::string northwind_coverage = entryId(july.body, "Coverage", "NW-55");
  ASSERT_FALSE(patient.empty() || june_claim.empty() || july_claim.empty() || lakeshore_coverage.empty() ||
               northwind_coverage.empty())
      << june.body;
  ASSERT_NE(june_claim, july_claim);
  ASSERT_TRUE(lakeshore_.waitForAccepted(1, 20s));
  ASSERT_TRUE(northwind_.waitForAccepted(1, 20s));

  RawResponse hie_subscription = call("POST", "/fhir/Subscription", "hie", subscription(hie_.url("/ok/a")), "application/fhir+json");
  ASSERT_EQ(hie_subscription.status, 201) << hie_subscription.body;
  const std::string hie_id = str(*json::parse(hie_subscription.body), "id");
  RawResponse admin_subscription =
      call("POST", "/fhir/Subscription", "convener", subscription(hie_.url("/ok/b")), "application/fhir+json");
  ASSERT_EQ(admin_subscription.status, 201) << admin_subscription.body;
  const std::string admin_id = str(*json::parse(admin_subscription.body), "id");

  const std::vector<int> open = {200, 200, 200, 200, 200, 200, 200, 200};
  const std::vector<int> admin_only = {401, 403, 403, 403, 403, 403, 403, 200};
  const std::string lake_roster = "member_id,member_last\r\n";
  const std::vector<Row> rows = {
      {"GET", "/healthz", "", "", open},
      {"GET", "/readyz", "", "", open},
      {"GET", "/fhir/metadata", "", "", open},
      {"GET", "/.well-known/smart-configuration", "", "", open},
      {"GET", "/metrics", "", "", admin_only},
      {"GET", "/admin/quarantine", "", "", admin_only},
      {"GET", "/admin/unroutable", "", "", admin_only},
      {"GET", "/admin/dead-letters", "", "", admin_only},
      {"GET", "/admin/conflicts", "", "", admin_only},
      {"GET", "/admin/routing-conflicts", "", "", admin_only},
      {"POST", "/admin/dead-letters/999/replay", "", "application/json", {401, 403, 403, 403, 403, 403, 403, 404}},
      {"GET", "/fhir/AuditEvent", "", "", admin_only},
      // Ingest: an EHR only for its own sources (re-posting the June event is idempotent).
      {"POST", "/ingest/econsult", billingEvent("acc-june", "2026-06-15"), "application/json",
       {401, 202, 403, 403, 403, 403, 403, 202}},
      {"POST", "/ingest/care-management", R"({"source":"other-ehr"})", "application/json",
       {401, 403, 422, 403, 403, 403, 403, 422}},
      {"POST", "/ingest/claims/lakeshore-medicaid", "", "text/csv", {401, 403, 403, 0, 403, 403, 403, 0}},
      {"POST", "/ingest/roster/northwind-commercial", lake_roster, "text/csv", {401, 403, 403, 403, 0, 403, 403, 0}},
      // Reads: what a client may not see does not exist for it. Each payer sees the shared
      // patient, its own Coverage and the Claim routed to it, and nothing of the other payer's.
      {"GET", "/fhir/Patient/" + patient, "", "", {401, 200, 404, 200, 200, 200, 200, 200}},
      {"GET", "/fhir/Claim/" + june_claim, "", "", {401, 200, 404, 200, 404, 200, 200, 200}},
      {"GET", "/fhir/Claim/" + july_claim, "", "", {401, 200, 404, 404, 200, 200, 200, 200}},
      {"GET", "/fhir/Coverage/" + lakeshore_coverage, "", "", {401, 200, 404, 200, 404, 200, 200, 200}},
      {"GET", "/fhir/Coverage/" + northwind_coverage, "", "", {401, 200, 404, 404, 200, 200, 200, 200}},
      {"GET", "/fhir/Patient/no-such-patient", "", "", {401, 404, 404, 404, 404, 404, 404, 404}},
      // Versions and history (issue 15) answer as the read does.
      {"GET", "/fhir/Claim/" + june_claim + "/_history/1", "", "", {401, 200, 404, 200, 404, 200, 200, 200}},
      {"GET", "/fhir/Claim/" + july_claim + "/_history", "", "", {401, 200, 404, 404, 200, 200, 200, 200}},
      {"GET", "/fhir/Coverage/" + northwind_coverage + "/_history/1", "", "", {401, 200, 404, 404, 200, 200, 200, 200}},
      {"GET", "/fhir/Claim/_history", "", "", {401, 200, 200, 200, 200, 200, 200, 200}},
      {"POST", "/fhir/$validate", R"({"resourceType":"Basic","code":{"text":"x"}})", "application/fhir+json",
       {401, 200, 200, 200, 200, 200, 200, 200}},
      // Subscriptions: an HIE creates its own (the others have no Subscription.c); each sees only
      // its own, admin all.
      {"POST", "/fhir/Subscription", subscription(hie_.url("/ok/c")), "application/fhir+json",
       {401, 403, 403, 403, 403, 201, 403, 201}},
      {"GET", "/fhir/Subscription/" + hie_id, "", "", {401, 404, 404, 404, 404, 200, 404, 200}},
      {"GET", "/fhir/Subscription/" + hie_id + "/$status", "", "", {401, 404, 404, 404, 404, 200, 404, 200}},
      {"GET", "/fhir/Subscription/" + admin_id, "", "", {401, 404, 404, 404, 404, 404, 404, 200}},
      {"DELETE", "/fhir/Subscription/" + admin_id, "", "", {401, 403, 403, 403, 403, 404, 403, 200}},
      {"GET", "/no-such-route", "", "", {401, 404, 404, 404, 404, 404, 404, 404}},
  };
  for (const Row& row : rows) {
    for (size_t column = 0; column < kClients.size(); ++column) {
      RawResponse answer = call(row.method, row.path, kClients[column], row.body, row.content_type);
      const int expected = row.expected[column];
      const std::string what = row.method + " " + row.path + " as '" + kClients[column] + "': " + answer.body.substr(0, 300);
      if (expected == 0) {
        EXPECT_NE(answer.status, 401) << what;
        EXPECT_NE(answer.status, 403) << what;
        EXPECT_NE(answer.status, 0) << what;
      } else {
        EXPECT_EQ(answer.status, expected) << what;
      }
      if (answer.status == 401) {
        EXPECT_EQ(answer.headers["www-authenticate"], "Bearer error=\"invalid_token\"") << what;
        EXPECT_NE(answer.body.find("\"login\""), std::string::npos) << what;
      }
      if (answer.status == 403) {
        EXPECT_NE(answer.body.find("\"forbidden\""), std::string::npos) << what;
      }
    }
  }

  // Search (issue 15): each payer finds its own Claim and Coverage of the shared patient and not
  // the other payer's, and counts only what it finds (no existence leak through _total).
  struct Own {
    std::string client, claim, coverage, other_claim, other_coverage;
  };
  for (const Own& own : {Own{"lakeshore", june_claim, lakeshore_coverage, july_claim, northwind_coverage},
                         Own{"northwind", july_claim, northwind_coverage, june_claim, lakeshore_coverage}}) {
    for (const auto& [type, mine, theirs] : {std::tuple{std::string("Claim"), own.claim, own.other_claim},
                                             std::tuple{std::string("Coverage"), own.coverage, own.other_coverage}}) {
      RawResponse found = call("GET", "/fhir/" + type + "?patient=Patient/" + patient + "&_total=accurate", own.client);
      ASSERT_EQ(found.status, 200) << own.client << " " << type << ": " << found.body;
      auto bundle = json::parse(found.body);
      ASSERT_TRUE(bundle.ok());
      std::set<std::string> ids;
      if (const json::Value* entries = json::find(*bundle, "entry")) {
        for (const json::Value& entry : entries->GetArray()) ids.insert(str(entry["resource"], "id"));
      }
      EXPECT_EQ(ids.count(mine), 1u) << own.client << " " << type << ": " << found.body;
      EXPECT_EQ(ids.count(theirs), 0u) << own.client << " " << type << ": " << found.body;
      const json::Value* total = json::find(*bundle, "total");
      ASSERT_NE(total, nullptr);
      EXPECT_EQ(json::numberText(*total), std::to_string(ids.size())) << own.client << " " << type;
    }
    // Included resources go through the same policy: _revinclude=* from the shared patient brings
    // the payer's own Claim and Coverage and not the other payer's, and _include=* (with
    // :iterate) from the own Claim does not reach the other payer's Coverage either.
    for (const std::string& query : {"/fhir/Patient?_id=" + patient + "&_revinclude=*&_count=1000",
                                     "/fhir/Claim?_id=" + own.claim + "&_include=*&_include:iterate=*&_count=1000"}) {
      RawResponse found = call("GET", query, own.client);
      ASSERT_EQ(found.status, 200) << own.client << " " << query << ": " << found.body;
      EXPECT_EQ(found.body.find("\"" + own.other_claim + "\""), std::string::npos) << own.client << " " << query;
      EXPECT_EQ(found.body.find("\"" + own.other_coverage + "\""), std::string::npos) << own.client << " " << query;
    }
    RawResponse revincluded = call("GET", "/fhir/Patient?_id=" + patient + "&_revinclude=*&_count=1000", own.client);
    EXPECT_NE(revincluded.body.find("\"id\":\"" + own.claim + "\""), std::string::npos) << own.client << ": " << revincluded.body;
    EXPECT_NE(revincluded.body.find("\"id\":\"" + own.coverage + "\""), std::string::npos) << own.client << ": " << revincluded.body;
  }

  // Type and system history leave out what a client may not see: each payer finds its own Claim
  // and Coverage versions and none of the other payer's.
  for (const auto& [client, own_claim, other_claim, own_coverage, other_coverage] :
       std::vector<std::array<std::string, 5>>{{"lakeshore", june_claim, july_claim, lakeshore_coverage, northwind_coverage},
                                               {"northwind", july_claim, june_claim, northwind_coverage, lakeshore_coverage}}) {
    RawResponse claims = call("GET", "/fhir/Claim/_history?_count=1000", client);
    ASSERT_EQ(claims.status, 200) << claims.body;
    EXPECT_NE(claims.body.find("/Claim/" + own_claim + "\""), std::string::npos) << client;
    EXPECT_EQ(claims.body.find(other_claim), std::string::npos) << client;
    RawResponse everything = call("GET", "/fhir/_history?_count=1000", client);
    ASSERT_EQ(everything.status, 200) << everything.body;
    EXPECT_NE(everything.body.find("/Coverage/" + own_coverage + "\""), std::string::npos) << client;
    EXPECT_EQ(everything.body.find(other_coverage), std::string::npos) << client;
    EXPECT_EQ(everything.body.find(other_claim), std::string::npos) << client;
  }

  // Expired, tampered and foreign tokens are 401 with WWW-Authenticate. The expired one is
  // signed with the gateway's own key, as another instance would, ten minutes in the past.
  auto config = gateway::loadConfig(config_path_);
  ASSERT_TRUE(config.ok()) << config.message();
  config->auth->create_signing_key = false;
  config->auth->signing_key_file = (data_.path() / "var" / "auth" / "gateway-es384.pem").string();
  TempDir scratch;
  auto store = gateway::openSqliteStore(scratch.path().string());
  ASSERT_TRUE(store.ok());
  auto service = gateway::auth::AuthService::create(*config->auth, *store, scratch.path().string());
  ASSERT_TRUE(service.ok()) << service.message();
  (*service)->setBaseUrl("http://127.0.0.1:" + std::to_string(gateway_->port()));
  const auto* ehr = (*service)->config().findClient("ehr");
  ASSERT_NE(ehr, nullptr);
  auto expired = (*service)->issueAccessToken(*ehr, gateway::auth::ScopeSet::allowedFor(gateway::auth::ClientKind::kEhr),
                                              (nowSeconds() - 600) * 1000);
  ASSERT_TRUE(expired.ok());
  auto fresh = (*service)->issueAccessToken(*ehr, gateway::auth::ScopeSet::allowedFor(gateway::auth::ClientKind::kEhr),
                                            nowSeconds() * 1000);
  ASSERT_TRUE(fresh.ok());
  RawResponse by_other_instance = rawRequest(gateway_->port(), "GET /fhir/Patient/" + patient +
                                                                   " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                                                                   *fresh + "\r\n\r\n");
  EXPECT_EQ(by_other_instance.status, 200) << by_other_instance.body;
  std::string tampered = token("ehr");
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& bad : {*expired, tampered, std::string("not.a.token"), std::string("")}) {
    RawResponse answer = rawRequest(gateway_->port(), "GET /fhir/Patient/" + patient +
                                                          " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                                                          bad + "\r\n\r\n");
    EXPECT_EQ(answer.status, 401) << bad;
    EXPECT_EQ(answer.headers["www-authenticate"], "Bearer error=\"invalid_token\"");
  }
  EXPECT_EQ(gateway_->terminate(), 0);
}

TEST_F(AccessE2e, RefusedIngestStoresNothingAndScriptedRequestsLeaveExactlyTheirAuditEvents) {
  // The script: each request and the AuditEvent it must leave (subtype, agent, status).
  std::vector<std::string> expected;
  auto expect = [&](const std::string& subtype, const std::string& agent, int status) {
    expected.push_back(subtype + "|" + agent + "|" + std::to_string(status));
  };
  token("ehr");
  expect("token", "ehr", 200);
  EXPECT_EQ(tokenRequest("stranger").status, 401);
  expect("token", "", 401);
  // An EHR posting another client's source, a payer posting to another payer's path: 403,
  // nothing stored (not even in quarantine), audited.
  RawResponse foreign = call("POST", "/ingest/econsult", "ehr2", billingEvent("acc-1", "2026-06-15"));
  expect("token", "ehr2", 200);
  EXPECT_EQ(foreign.status, 403) << foreign.body;
  expect("ingest", "ehr2", 403);
  RawResponse roster = call("POST", "/ingest/roster/northwind-commercial", "lakeshore", "member_id\r\nX1\r\n", "text/csv");
  expect("token", "lakeshore", 200);
  EXPECT_EQ(roster.status, 403) << roster.body;
  expect("ingest", "lakeshore", 403);
  RawResponse quarantine = call("GET", "/admin/quarantine", "convener");
  expect("token", "convener", 200);
  ASSERT_EQ(quarantine.status, 200);
  EXPECT_EQ(quarantine.body, R"({"items":[]})");
  expect("admin", "convener", 200);
  // The event its own EHR then posts is the first one stored.
  RawResponse accepted = call("POST", "/ingest/econsult", "ehr", billingEvent("acc-1", "2026-06-15"));
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  expect("ingest", "ehr", 202);
  const std::string patient = entryId(accepted.body, "Patient");
  EXPECT_EQ(call("GET", "/fhir/Patient/" + patient, "ehr").status, 200);
  expect("read", "ehr", 200);
  EXPECT_EQ(call("GET", "/fhir/Patient/" + patient, "").status, 401);
  expect("read", "", 401);
  EXPECT_EQ(call("GET", "/admin/quarantine", "ehr").status, 403);
  expect("admin", "ehr", 403);
  EXPECT_EQ(call("GET", "/fhir/Patient/" + patient, "ehr2").status, 404);
  expect("read", "ehr2", 404);
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);  // open routes are not audited
  ASSERT_TRUE(lakeshore_.waitForAccepted(1, 20s));
  expect("deliver", "", 200);

  // The delivery's audit is written after the receiver answered: wait for it (bounded).
  size_t deliveries = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    RawResponse answer = call("GET", "/fhir/AuditEvent?subtype=deliver", "convener");
    ASSERT_EQ(answer.status, 200) << answer.body;
    expect("search", "convener", 200);
    auto found = json::parse(answer.body);
    ASSERT_TRUE(found.ok()) << answer.body;
    deliveries = (*found)["entry"].Size();
  } while (deliveries == 0 && std::chrono::steady_clock::now() < deadline && (std::this_thread::sleep_for(50ms), true));
  ASSERT_EQ(deliveries, 1u);
  RawResponse all = call("GET", "/fhir/AuditEvent?_count=1000", "convener");
  ASSERT_EQ(all.status, 200) << all.body;
  auto parsed = json::parse(all.body);
  ASSERT_TRUE(parsed.ok()) << all.body;
  const json::Value& bundle = *parsed;
  std::vector<std::string> actual;
  for (const json::Value& entry : bundle["entry"].GetArray()) {
    const json::Value& event = entry["resource"];
    EXPECT_EQ(str(event, "resourceType"), "AuditEvent");
    EXPECT_FALSE(str(event, "id").empty());
    EXPECT_FALSE(str(event, "recorded").empty());
    const std::string desc = str(event, "outcomeDesc");
    const json::Value& who = event["agent"][0]["who"];
    const json::Value* identifier = json::find(who, "identifier");
    actual.push_back(std::string(json::stringView(event["subtype"][0]["code"])) + "|" +
                     (identifier ? str(*identifier, "value") : std::string()) + "|" + desc.substr(0, desc.find(' ')));
    // Refused and failed requests are outcome 4; the client's address is there.
    EXPECT_EQ(str(event, "outcome"), desc.rfind("4", 0) == 0 ? "4" : "0") << desc;
    if (str(event, "outcome") == "0" && std::string(json::stringView(event["subtype"][0]["code"])) != "deliver") {
      EXPECT_EQ(str(event["agent"][0]["network"], "address"), "127.0.0.1");
    }
  }
  std::sort(actual.begin(), actual.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(actual, expected);
  // The read's entity is the patient; the accepted ingest names the patient too.
  RawResponse by_entity = call("GET", "/fhir/AuditEvent?entity=Patient/" + patient + "&subtype=read&agent=ehr", "convener");
  ASSERT_EQ(by_entity.status, 200);
  EXPECT_EQ((*json::parse(by_entity.body))["entry"].Size(), 1u) << by_entity.body;
  RawResponse by_date = call("GET", "/fhir/AuditEvent?date=lt2000-01-01", "convener");
  ASSERT_EQ(by_date.status, 200);
  EXPECT_EQ((*json::parse(by_date.body))["entry"].Size(), 0u);
  EXPECT_EQ(call("GET", "/fhir/AuditEvent?colour=blue", "convener").status, 400);
  EXPECT_EQ(gateway_->terminate(), 0);

  // No token or assertion in the log or anywhere in the store's files.
  std::string everything = readFile(log_path_);
  for (const auto& entry : std::filesystem::directory_iterator(data_.path() / "var")) {
    if (entry.is_regular_file()) everything += readFile(entry.path());
  }
  ASSERT_FALSE(tokens_.empty());
  for (const auto& [client, access] : tokens_) {
    EXPECT_EQ(everything.find(access.substr(access.rfind('.') + 1)), std::string::npos) << "token of " << client;
  }
  for (const std::string& signed_assertion : assertions_) {
    EXPECT_EQ(everything.find(signed_assertion.substr(signed_assertion.rfind('.') + 1)), std::string::npos);
  }
}

TEST_F(AccessE2e, SubscriptionEndpointsHeadersRedirectsAndLimitsAreChecked) {
  auto post = [&](const std::string& client, const std::string& body) {
    return call("POST", "/fhir/Subscription", client, body, "application/fhir+json");
  };
  const std::string self = "http://127.0.0.1:" + std::to_string(gateway_->port()) + "/admin/quarantine";
  // Outside the HIE's allow-list, link-local or metadata, the gateway itself, a CR/LF header,
  // plain http off loopback: 422.
  for (const auto& [client, body] : std::vector<std::pair<std::string, std::string>>{
           {"hie", subscription(elsewhere_.url("/ok/"))},
           {"hie", subscription("https://hie.example.org/notify/")},
           {"convener", subscription("http://169.254.169.254/latest/meta-data/")},
           {"convener", subscription("http://[fe80::1]:8080/x")},
           {"convener", subscription(self)},
           {"convener", subscription("http://hie.example.org/notify/")},
           {"hie", subscription(hie_.url("/ok/x"), R"("X-A: 1\r\nX-Smuggled: 2")")},
           {"hie", subscription(hie_.url("/ok/x"), R"("X-A: 1\nGET / HTTP/1.1")")},
       }) {
    RawResponse answer = post(client, body);
    EXPECT_EQ(answer.status, 422) << client << ": " << body << "\n" << answer.body;
  }
  // A receiver answering 302 to another address: the handshake is not followed there, the
  // subscription goes to error with the 302.
  redirector_.setStatus(302);
  redirector_.setLocation(hie_.url("/ok/redirected"));
  RawResponse redirected = post("hie", subscription(redirector_.url("/ok/r")));
  ASSERT_EQ(redirected.status, 201) << redirected.body;
  const std::string id = str(*json::parse(redirected.body), "id");
  std::string status;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    RawResponse read = call("GET", "/fhir/Subscription/" + id, "hie");
    ASSERT_EQ(read.status, 200);
    status = str(*json::parse(read.body), "status");
    if (status == "error") break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, "error");
  EXPECT_FALSE(redirector_.requests().empty());
  for (const ReceivedRequest& request : hie_.requests()) EXPECT_NE(request.path, "/ok/redirected");
  // maxSubscriptionsPerClient (3 here): the third is accepted, the fourth is 422; admin has no limit.
  EXPECT_EQ(post("hie", subscription(hie_.url("/ok/2"))).status, 201);
  EXPECT_EQ(post("hie", subscription(hie_.url("/ok/3"))).status, 201);
  RawResponse over = post("hie", subscription(hie_.url("/ok/4")));
  EXPECT_EQ(over.status, 422) << over.body;
  EXPECT_NE(over.body.find("maxSubscriptionsPerClient"), std::string::npos);
  EXPECT_EQ(post("convener", subscription(hie_.url("/ok/5"))).status, 201);
  // After deleting one of its own, the HIE may create one again.
  EXPECT_EQ(call("DELETE", "/fhir/Subscription/" + id, "hie").status, 200);
  EXPECT_EQ(post("hie", subscription(hie_.url("/ok/6"))).status, 201);
  EXPECT_EQ(gateway_->terminate(), 0);
}

}  // namespace
}  // namespace fhir::testing

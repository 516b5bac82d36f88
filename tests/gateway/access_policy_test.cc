// SPDX-License-Identifier: Apache-2.0
// The access policy's parts (gateway/auth/policy.h, audit.h) without a server: whom a stored
// resource belongs to, route checks per kind, endpoint rules, and the AuditEvent's shape.
#include <gtest/gtest.h>

#include <thread>

#include "conformance/json/json.h"
#include "gateway/auth/audit.h"
#include "gateway/auth/policy.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::auth {
namespace {

AuthClient client(std::string id, ClientKind kind) {
  AuthClient out;
  out.id = std::move(id);
  out.kind = kind;
  return out;
}

Caller caller(const AuthClient& who) { return Caller{&who, ScopeSet::allowedFor(who.kind), "10.1.2.3"}; }

TEST(AccessPolicy, OwnersComeFromEventKeysChannelsContributionsRoutingAndPayloads) {
  ResourceOrigins origins;
  origins.events.push_back({"econsult", "epic\x1f" "e1", R"({"requester":{"npi":"111","organizationNpi":"222"}})"});
  origins.events.push_back({"econsult", "hl7v2\x1f" "cerner\x1f" "e2", "MSH|^~\\&|cerner"});
  origins.events.push_back({"care-management", "care-management\x1f" "athena\x1f" "e3", R"({"panel":{"practiceNpi":"333"}})"});
  origins.events.push_back({"roster:payer-a", "roster:payer-a\x1f" "r1", ""});
  merge::Contribution coverage;
  coverage.kind = "ehr";
  coverage.organization = "epic";
  coverage.payer = "payer-b";
  coverage.patient_id = "p1";
  origins.contributions.push_back(coverage);
  origins.routed_payers.push_back("payer-c");
  const Owners owners = ownersOf(origins, "Coverage", "cov1", R"({"beneficiary":{"reference":"Patient/p2"}})");
  EXPECT_EQ(owners.sources, (std::vector<std::string>{"epic", "cerner", "athena"}));
  EXPECT_EQ(owners.payers, (std::vector<std::string>{"payer-a", "payer-b", "payer-c"}));
  EXPECT_EQ(owners.practices, (std::vector<std::string>{"111", "222", "333"}));
  EXPECT_EQ(owners.patients, (std::vector<std::string>{"p1", "p2"}));
}

TEST(AccessPolicy, AnAttributionGroupAndThePatientsItListsBelongToItsPractice) {
  ResourceOrigins patient;
  patient.attributions.push_back(
      R"({"resourceType":"Group","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}]})");
  EXPECT_EQ(ownersOf(patient, "Patient", "p1", "{}").practices, std::vector<std::string>{"1234567893"});
  const Owners group = ownersOf(ResourceOrigins{}, "Group", "g1",
                                R"({"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"},)"
                                R"({"system":"urn:other","value":"x"}]})");
  EXPECT_EQ(group.practices, std::vector<std::string>{"1234567893"});
}

TEST(AccessPolicy, RouteChecksFollowKindAndScope) {
  AccessPolicy policy(nullptr, nullptr);
  AuthClient ehr = client("ehr", ClientKind::kEhr);
  ehr.sources = {"epic"};
  AuthClient payer = client("lake", ClientKind::kPayer);
  payer.payer_id = "lakeshore";
  AuthClient admin = client("convener", ClientKind::kAdmin);
  EXPECT_FALSE(policy.ingestEvent(caller(ehr), "econsult", "epic"));
  EXPECT_EQ(policy.ingestEvent(caller(ehr), "econsult", "other")->status, 403);
  EXPECT_EQ(policy.ingestEvent(caller(ehr), "claims", "")->status, 403);
  EXPECT_FALSE(policy.ingestPayerFile(caller(payer), "roster", "lakeshore"));
  EXPECT_EQ(policy.ingestPayerFile(caller(payer), "roster", "northwind")->status, 403);
  EXPECT_EQ(policy.ingestEvent(caller(payer), "econsult", "")->status, 403);
  EXPECT_FALSE(policy.ingestPayerFile(caller(admin), "claims", "northwind"));
  EXPECT_EQ(policy.admin(caller(ehr))->status, 403);
  EXPECT_FALSE(policy.admin(caller(admin)));
  EXPECT_FALSE(policy.admin(Caller{}));  // auth off
  EXPECT_FALSE(policy.fhir(caller(ehr), Interaction::kRead, "Claim"));
  EXPECT_EQ(policy.fhir(caller(ehr), Interaction::kCreate, "Subscription")->status, 403);
  EXPECT_EQ(policy.subscriptionOwner(caller(ehr), "s1", "hie")->status, 404);
  EXPECT_FALSE(policy.subscriptionOwner(caller(admin), "s1", "hie"));
}

TEST(AccessPolicy, SubscriptionEndpointsAreCheckedAgainstTheAllowListAndAddresses) {
  AccessPolicy policy(nullptr, nullptr);
  AuthClient hie = client("hie", ClientKind::kHie);
  hie.subscription_endpoints = {"https://hie.example.org/notify/", "http://127.0.0.1:9201/"};
  AuthClient admin = client("convener", ClientKind::kAdmin);
  EXPECT_FALSE(policy.subscriptionEndpoint(caller(hie), "https://hie.example.org/notify/a", "127.0.0.1", 8080));
  EXPECT_FALSE(policy.subscriptionEndpoint(caller(hie), "http://127.0.0.1:9201/x", "127.0.0.1", 8080));
  EXPECT_EQ(policy.subscriptionEndpoint(caller(hie), "https://hie.example.org.evil.com/notify/", "127.0.0.1", 8080)->status, 422);
  EXPECT_EQ(policy.subscriptionEndpoint(caller(admin), "http://hie.example.org/notify/", "127.0.0.1", 8080)->status, 422);
  EXPECT_EQ(policy.subscriptionEndpoint(caller(admin), "http://169.254.169.254/latest", "127.0.0.1", 8080)->status, 422);
  EXPECT_EQ(policy.subscriptionEndpoint(caller(admin), "https://[fe80::1%25eth0]/", "127.0.0.1", 8080)->status, 422);
  EXPECT_EQ(policy.subscriptionEndpoint(caller(admin), "http://localhost:8080/admin", "127.0.0.1", 8080)->status, 422);
  EXPECT_FALSE(policy.subscriptionEndpoint(caller(admin), "http://localhost:8081/x", "127.0.0.1", 8080));
  EXPECT_EQ(policy.subscriptionEndpoint(Caller{}, "ftp://x/", "127.0.0.1", 8080)->status, 422);
  EXPECT_TRUE(isLinkLocalHost("169.254.0.1"));
  EXPECT_TRUE(isLinkLocalHost("fe80::abcd"));
  EXPECT_TRUE(isLinkLocalHost("::ffff:169.254.169.254"));
  EXPECT_FALSE(isLinkLocalHost("169.255.0.1"));
  EXPECT_FALSE(isLinkLocalHost("fec0::1"));
  EXPECT_TRUE(isLoopbackHost("127.0.0.2"));
  EXPECT_FALSE(isLoopbackHost("128.0.0.1"));
}

// A feed row is filtered before its event commits: visibleWith/visibleBundle add the pending
// event to the stored origins, so the one rule of visible() decides.
TEST(AccessPolicy, AFeedBundleKeepsWhatTheHieMaySeeCountingThePendingEvent) {
  fhir::testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  // An earlier event of practice 999 wrote Organization/org1.
  IngestCommit earlier;
  earlier.channel = "econsult";
  earlier.idempotency_key = "epic\x1f" "e0";
  earlier.payload = R"({"requester":{"organizationNpi":"999"}})";
  earlier.resources.push_back({"Organization", "org1", R"({"resourceType":"Organization","id":"org1"})"});
  ASSERT_TRUE((*store)->commitIngest(earlier).ok());

  AuthConfig config;
  config.clients = {client("hie-a", ClientKind::kHie), client("hie-b", ClientKind::kHie), client("hie-c", ClientKind::kHie)};
  config.clients[0].practices = {"222"};
  config.clients[1].practices = {"999"};
  config.clients[2].practices = {"555"};
  AccessPolicy policy(&config, *store);
  ResourceOrigins pending;  // the event being committed: practice 222
  pending.events.push_back({"econsult", "epic\x1f" "e1", R"({"requester":{"organizationNpi":"222"}})"});
  const std::string bundle =
      R"({"resourceType":"Bundle","type":"collection","entry":[)"
      R"({"resource":{"resourceType":"ServiceRequest","id":"sr1","subject":{"reference":"Patient/p1"}}},)"
      R"({"resource":{"resourceType":"Organization","id":"org1"}}]})";
  auto entries = [](const std::optional<std::string>& text) {
    std::vector<std::string> out;
    if (!text) return out;
    auto doc = json::parse(*text);
    for (const json::Value& entry : (*doc)["entry"].GetArray()) out.push_back(std::string(*json::getString(entry["resource"], "id")));
    return out;
  };
  // 222: everything of its own event.
  auto a = policy.visibleBundle(AccessPolicy::callerOf(policy.client("hie-a")), bundle, pending);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(entries(*a), (std::vector<std::string>{"sr1", "org1"}));
  // 999: only what its own earlier event wrote.
  auto b = policy.visibleBundle(AccessPolicy::callerOf(policy.client("hie-b")), bundle, pending);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(entries(*b), std::vector<std::string>{"org1"});
  // 555: nothing, so no row at all.
  auto c = policy.visibleBundle(AccessPolicy::callerOf(policy.client("hie-c")), bundle, pending);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
  // Without the pending event (what visible() reads before the commit) 222 would see nothing.
  auto before = policy.visible(AccessPolicy::callerOf(policy.client("hie-a")), "ServiceRequest", "sr1",
                               R"({"resourceType":"ServiceRequest","id":"sr1"})");
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->has_value());
}

TEST(AuditLog, APendingAuditIsTakenOnceWrittenAndIsThisThreadsOnly) {
  EXPECT_EQ(PendingAudit::current(), nullptr);
  AuditEntry entry;
  entry.subtype = "ingest";
  entry.action = 'C';
  entry.agent = "ehr";
  entry.address = "10.1.2.3";
  {
    PendingAudit pending(entry);
    ASSERT_EQ(PendingAudit::current(), &pending);
    auto record = pending.take(202, {"Patient/p1"}, 1767225600000);
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->subtype, "ingest");
    EXPECT_EQ(record->agent, "ehr");
    EXPECT_EQ(record->entities, std::vector<std::string>{"Patient/p1"});
    EXPECT_NE(record->json.find("\"outcomeDesc\":\"202\""), std::string::npos) << record->json;
    EXPECT_TRUE(pending.take(202, {}, 1).has_value());  // not written yet: a retry may take it again
    pending.written();
    EXPECT_TRUE(pending.isWritten());
    EXPECT_EQ(pending.writtenStatus(), 202);
    EXPECT_FALSE(pending.take(202, {}, 1).has_value());
    std::thread([] { EXPECT_EQ(PendingAudit::current(), nullptr); }).join();
  }
  EXPECT_EQ(PendingAudit::current(), nullptr);
}

TEST(AuditLog, AnAuditEventIsAnR4AuditEventShapedLikeBalp) {
  AuditEntry entry;
  entry.subtype = "read";
  entry.status = 404;
  entry.why = "Patient/p1 is not known";
  entry.agent = "ehr";
  entry.address = "10.1.2.3";
  entry.entities = {"Patient/p1"};
  const std::string text = AuditLog::withId(AuditLog::toJson(entry, 1767225600123, 3), 42);
  auto doc = json::parse(text);
  ASSERT_TRUE(doc.ok()) << text;
  EXPECT_EQ(json::getString(*doc, "id"), "42");
  EXPECT_EQ(json::getString((*doc)["type"], "code"), "rest");
  EXPECT_EQ(json::getString((*doc)["subtype"][0], "system"), "http://hl7.org/fhir/restful-interaction");
  EXPECT_EQ(json::getString(*doc, "action"), "R");
  EXPECT_EQ(json::getString(*doc, "recorded"), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(json::getString(*doc, "outcome"), "4");
  EXPECT_NE(std::string(*json::getString(*doc, "outcomeDesc")).find("3 earlier refused requests"), std::string::npos);
  EXPECT_EQ(json::getString((*doc)["agent"][0]["who"]["identifier"], "value"), "ehr");
  EXPECT_EQ(json::getString((*doc)["agent"][0]["network"], "address"), "10.1.2.3");
  EXPECT_EQ(json::getString((*doc)["entity"][0]["what"], "reference"), "Patient/p1");
  EXPECT_EQ(json::getString((*doc)["source"]["observer"], "display"), "fhir-gateway");
}

TEST(AuditLog, RefusedRequestsAreAuditedAtMostTwentyPerMinuteFromOneAddress) {
  fhir::testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  AuditLog log(*store);
  AuditEntry refused;
  refused.subtype = "read";
  refused.status = 401;
  refused.address = "10.9.9.9";
  for (int i = 0; i < 25; ++i) log.record(refused, 1000 + i);
  AuditEntry other = refused;
  other.address = "10.9.9.10";
  log.record(other, 1100);
  AuditEntry allowed = refused;
  allowed.status = 200;
  log.record(allowed, 1200);  // not a refusal: never limited
  ASSERT_TRUE(log.flush().ok());
  auto rows = (*store)->listAudit(AuditQuery{0, 0, 0, "10.9.9.9", "", "", 1000});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 21u);  // 20 refused + the allowed one
  log.record(refused, 1000 + AuditLog::kWindowMs);  // the next window: says what was left out
  ASSERT_TRUE(log.flush().ok());
  rows = (*store)->listAudit(AuditQuery{0, 0, 0, "10.9.9.9", "", "", 1000});
  ASSERT_TRUE(rows.ok() && rows->size() == 22u);
  EXPECT_NE(rows->back().json.find("5 earlier refused requests"), std::string::npos) << rows->back().json;
  auto other_rows = (*store)->listAudit(AuditQuery{0, 0, 0, "10.9.9.10", "", "", 1000});
  ASSERT_TRUE(other_rows.ok());
  EXPECT_EQ(other_rows->size(), 1u);
  log.stop();
}

}  // namespace
}  // namespace fhir::gateway::auth

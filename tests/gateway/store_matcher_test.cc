// SPDX-License-Identifier: Apache-2.0
// Subscription matching on committed changes (issue 12, Build 2): the SubscriptionMatcher reads
// the store's change log after the commit and queues each notification exactly once, numbered
// without gaps, also when the process stopped between a commit and its matching.

#include <gtest/gtest.h>

#include "gateway/subscriptions/matching.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr const char* kTopic = "https://fhir.alignment-gateway.org/SubscriptionTopic/econsult-requested";

std::shared_ptr<const TopicCatalog> topics() {
  auto loaded = TopicCatalog::load(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package");
  EXPECT_TRUE(loaded.ok()) << loaded.message();
  return loaded.ok() ? *loaded : nullptr;
}

Subscription subscription(const std::string& id, const std::string& patient_filter) {
  Subscription s;
  s.id = id;
  s.status = "active";
  s.topic = kTopic;
  s.endpoint = "http://127.0.0.1:9/notify";
  if (!patient_filter.empty()) s.filters.push_back({"ServiceRequest", "patient", patient_filter});
  return s;
}

// An event storing an e-consult ServiceRequest for `patient`, with the change context the
// ingest path records.
IngestCommit econsult(const std::string& key, const std::string& patient, const std::string& category_code = "e-consult") {
  IngestCommit commit;
  commit.channel = "econsult";
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.answer = "ok";
  commit.resources.push_back({"ServiceRequest", "sr-" + key,
                              R"({"resourceType":"ServiceRequest","id":"sr-)" + key +
                                  R"(","category":[{"coding":[{"system":"https://fhir.alignment-gateway.org/CodeSystem/alignment-category","code":")" +
                                  category_code + R"("}]}]})"});
  ChangeContext context;
  context.facts.patient = "Patient/" + patient;
  commit.change_context = encodeChangeContext(context);
  return commit;
}

TEST(ChangeContextTest, RoundTripsAndRefusesMalformedText) {
  ChangeContext context;
  context.facts.patient = "Patient/p1";
  context.facts.payers = {"lakeshore"};
  context.facts.codes = {"http://loinc.org|1234-5"};
  context.claim_facts["c1"].payers = {"northwind"};
  context.claims_need_route = false;
  auto decoded = decodeChangeContext(encodeChangeContext(context));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->facts.patient, "Patient/p1");
  EXPECT_EQ(decoded->facts.payers, std::set<std::string>{"lakeshore"});
  EXPECT_EQ(decoded->facts.codes, std::set<std::string>{"http://loinc.org|1234-5"});
  EXPECT_EQ(decoded->claim_facts.at("c1").payers, std::set<std::string>{"northwind"});
  EXPECT_FALSE(decoded->claims_need_route);
  EXPECT_FALSE(decodeChangeContext("{").has_value());
  EXPECT_FALSE(decodeChangeContext(R"({"facts":{}})").has_value());
}

TEST(SubscriptionMatcherTest, QueuesEachMatchOnceAndResumesAfterAStopBetweenCommitAndMatching) {
  testing::TempDir dir;
  auto catalog = topics();
  ASSERT_TRUE(catalog);
  SubscriptionRegistry registry;
  registry.put(subscription("all", ""));
  registry.put(subscription("p2-only", "Patient/p2"));
  {
    auto store = openSqliteStore(dir.path().string());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->commitIngest(econsult("e1", "p1")).ok());
    ASSERT_TRUE((*store)->commitIngest(econsult("e2", "p2")).ok());
    ASSERT_TRUE((*store)->commitIngest(econsult("e3", "p2", "referral")).ok());  // the trigger's criteria fails
    // Nothing is queued by the commits themselves.
    EXPECT_EQ(*(*store)->lastNumber("subscription:all"), 0);
    SubscriptionMatcher matcher(*store, catalog, &registry, nullptr);
    auto planned = matcher.runOnce();
    ASSERT_TRUE(planned.ok()) << planned.message();
    EXPECT_EQ(*planned, 3u);  // e1, e2 for "all"; e2 for "p2-only"
    EXPECT_EQ(*matcher.runOnce(), 0u);  // matched once
    // The process stops after this commit, before matching it.
    ASSERT_TRUE((*store)->commitIngest(econsult("e4", "p2")).ok());
  }
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  SubscriptionMatcher matcher(*store, catalog, &registry, nullptr);
  EXPECT_EQ(*matcher.runOnce(), 2u);  // e4 for both, after the restart
  auto all = (*store)->outboxRange("subscription:all", 1, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].number, static_cast<int64_t>(i + 1));
  EXPECT_NE((*all)[0].body.find("ServiceRequest/sr-e1"), std::string::npos);
  EXPECT_NE((*all)[1].body.find("ServiceRequest/sr-e2"), std::string::npos);
  EXPECT_NE((*all)[2].body.find("ServiceRequest/sr-e4"), std::string::npos);
  auto p2 = (*store)->outboxRange("subscription:p2-only", 1, 10);
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->size(), 2u);
  EXPECT_NE((*p2)[0].body.find("sr-e2"), std::string::npos);
  EXPECT_NE((*p2)[1].body.find("sr-e4"), std::string::npos);
}

TEST(SubscriptionMatcherTest, TwoMatchersOnOneDatabaseQueueEachNotificationOnce) {
  testing::TempDir dir;
  auto catalog = topics();
  ASSERT_TRUE(catalog);
  SubscriptionRegistry registry;
  registry.put(subscription("all", ""));
  auto first = openSqliteStore(dir.path().string());
  auto second = openSqliteStore(dir.path().string());
  ASSERT_TRUE(first.ok() && second.ok());
  SubscriptionMatcher a(*first, catalog, &registry, nullptr);
  SubscriptionMatcher b(*second, catalog, &registry, nullptr);
  a.start();
  b.start();
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE((*first)->commitIngest(econsult("k" + std::to_string(i), "p1")).ok());
    a.wake();
    b.wake();
  }
  EXPECT_TRUE(a.catchUp(std::chrono::seconds(10)));
  EXPECT_TRUE(b.catchUp(std::chrono::seconds(10)));
  a.stop();
  b.stop();
  auto rows = (*first)->outboxRange("subscription:all", 1, 100);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 30u);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ((*rows)[i].number, i + 1);
    EXPECT_NE((*rows)[i].body.find("sr-k" + std::to_string(i) + "\""), std::string::npos) << i;
  }
}

}  // namespace
}  // namespace fhir::gateway

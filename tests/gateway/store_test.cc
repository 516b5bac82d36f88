// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/store.h"

#include <thread>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

IngestCommit commitFor(const std::string& key, const std::string& patient_json) {
  IngestCommit commit;
  commit.channel = "econsult";
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.answer = "answer-" + key;
  commit.resources.push_back({"Patient", "p1", patient_json});
  commit.outbox.push_back({"feed:hie", "bundle", "body-" + key});
  return commit;
}

TEST(SqliteStoreTest, CommitIsIdempotentAndVersionsOnlyChangedResources) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok()) << store.message();
  auto first = (*store)->commitIngest(commitFor("k1", R"({"resourceType":"Patient","id":"p1"})"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->duplicate);
  auto again = (*store)->commitIngest(commitFor("k1", R"({"resourceType":"Patient","id":"p1","gender":"male"})"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->answer, "answer-k1");
  auto read = (*store)->readResource("Patient", "p1");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->version, 1);
  EXPECT_EQ((*read)->json.find("male"), std::string::npos);

  // Same content from another event: no new version. Changed content: version 2.
  ASSERT_TRUE((*store)->commitIngest(commitFor("k2", R"({"resourceType":"Patient","id":"p1"})")).ok());
  EXPECT_EQ((*(*store)->readResource("Patient", "p1"))->version, 1);
  ASSERT_TRUE((*store)->commitIngest(commitFor("k3", R"({"resourceType":"Patient","id":"p1","gender":"male"})")).ok());
  auto changed = (*store)->readResource("Patient", "p1");
  EXPECT_EQ((*changed)->version, 2);
  EXPECT_NE((*changed)->json.find("\"versionId\":\"2\""), std::string::npos);
  EXPECT_NE((*changed)->json.find("\"lastUpdated\""), std::string::npos);

  auto answer = (*store)->findAnswer("k2");
  ASSERT_TRUE(answer.ok() && answer->has_value());
  EXPECT_EQ((*answer)->answer, "answer-k2");
  EXPECT_FALSE((*(*store)->findAnswer("nope")).has_value());
}

TEST(SqliteStoreTest, OutboxNumbersAreGapFreePerDestinationUnderConcurrentCommits) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto done = (*store)->commitIngest(commitFor("k" + std::to_string(t) + "-" + std::to_string(i),
                                                     R"({"resourceType":"Patient","id":"p1"})"));
        EXPECT_TRUE(done.ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // Deliver everything in order and check the numbers are exactly 1..200.
  for (int64_t expected = 1; expected <= 200; ++expected) {
    auto item = (*store)->nextDue("feed:hie", INT64_MAX);
    ASSERT_TRUE(item.ok() && item->has_value());
    EXPECT_EQ((*item)->number, expected);
    ASSERT_TRUE((*store)->recordDelivered({(*item)->id, 1, 200, "", 1}).ok());
  }
  EXPECT_FALSE((*(*store)->nextDue("feed:hie", INT64_MAX)).has_value());
}

TEST(SqliteStoreTest, FailedRowsWaitForTheirRetryAndDeadLettersAreCounted) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->commitIngest(commitFor("k1", "{}")).ok());
  ASSERT_TRUE((*store)->commitIngest(commitFor("k2", "{}")).ok());
  auto item = *(*store)->nextDue("feed:hie", INT64_MAX);
  ASSERT_TRUE(item.has_value());
  ASSERT_TRUE((*store)->recordFailed({item->id, 1000, 503, "HTTP 503", 3}, 5000, false).ok());
  EXPECT_FALSE((*(*store)->nextDue("feed:hie", 4999)).has_value());  // not yet due, and order holds
  auto retry = *(*store)->nextDue("feed:hie", 5000);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->number, 1);
  EXPECT_EQ(retry->attempts, 1);
  EXPECT_EQ(retry->first_attempt_ms, 1000);
  ASSERT_TRUE((*store)->recordFailed({retry->id, 6000, 0, "refused", 1}, 9000, true).ok());
  auto next = *(*store)->nextDue("feed:hie", INT64_MAX);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->number, 2);  // the dead letter no longer blocks the destination
  auto depth = *(*store)->outboxDepth();
  ASSERT_EQ(depth.size(), 1u);
  EXPECT_EQ(depth[0].pending, 1);
  EXPECT_EQ(depth[0].dead, 1);
  auto attempts = *(*store)->attemptsOf(item->id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 503);
  EXPECT_EQ(attempts[1].error, "refused");
}

TEST(SqliteStoreTest, QuarantineKeepsPayloadAndOutcome) {
  testing::TempDir dir;
  auto store = openSqliteStore(dir.path().string());
  ASSERT_TRUE(store.ok());
  auto id = (*store)->quarantine({"econsult", "application/json", "{bad", false, R"({"resourceType":"OperationOutcome"})"});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->rfind("q-", 0), 0u);
  auto list = *(*store)->listQuarantine(10);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, *id);
  EXPECT_EQ(list[0].payload, "{bad");
  EXPECT_EQ(list[0].channel, "econsult");
}

}  // namespace
}  // namespace fhir::gateway

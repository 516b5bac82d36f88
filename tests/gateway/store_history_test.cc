// SPDX-License-Identifier: Apache-2.0
// The store contract's history and vread (store.h readVersion/history, issue 15) on SQLite and
// PostgreSQL: every version kept, newest first, keyset pages that stay right while new versions
// are committed, `since`.

#include <array>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/store/pg_store.h"
#include "gateway/store/store.h"
#include "conformance/common/time_util.h"
#include "tests/support/test_postgres.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

struct HistoryStoreFactory {
  std::string name;
  std::function<Result<StorePtr>(const std::string& data_dir)> open;
};
void PrintTo(const HistoryStoreFactory& factory, std::ostream* out) { *out << factory.name; }

Result<StorePtr> openPostgres(const std::string& dir) {
  auto cluster = testing::testPostgres();
  if (!cluster.ok()) return cluster.error();
  PostgresStoreOptions options;
  options.url = cluster->url;
  options.password = cluster->password;
  options.schema = testing::testSchemaFor(dir);
  return openPostgresStore(options);
}

const HistoryStoreFactory kStores[] = {
    {"sqlite", [](const std::string& dir) { return openSqliteStore(dir); }},
    {"postgresql", &openPostgres},
};

class StoreHistory : public ::testing::TestWithParam<HistoryStoreFactory> {
 protected:
  void SetUp() override {
    auto opened = GetParam().open(dir_.path().string());
    ASSERT_TRUE(opened.ok()) << opened.message();
    store_ = *opened;
  }
  // One event writing `resources` ({type, id, status}) as one commit.
  void commit(const std::string& key, const std::vector<std::array<std::string, 3>>& resources) {
    IngestCommit commit;
    commit.channel = "history";
    commit.idempotency_key = key;
    commit.payload = key;
    commit.answer = key;
    for (const auto& [type, id, status] : resources) {
      commit.resources.push_back(
          {type, id, R"({"resourceType":")" + type + R"(","id":")" + id + R"(","status":")" + status + "\"}"});
    }
    auto outcome = store_->commitIngest(commit);
    ASSERT_TRUE(outcome.ok()) << outcome.message();
  }
  std::vector<std::string> keys(const std::vector<ResourceVersion>& versions) {
    std::vector<std::string> out;
    for (const ResourceVersion& version : versions) {
      out.push_back(version.type + "/" + version.id + "/" + std::to_string(version.version));
    }
    return out;
  }
  std::vector<ResourceVersion> history(HistoryQuery query) {
    auto read = store_->history(query);
    EXPECT_TRUE(read.ok()) << read.message();
    return read.ok() ? *read : std::vector<ResourceVersion>{};
  }

  testing::TempDir dir_;
  StorePtr store_;
};

TEST_P(StoreHistory, EveryVersionIsKeptAndReadBackWithItsMeta) {
  commit("e1", {{"Task", "t1", "requested"}, {"Patient", "p1", "a"}});
  commit("e2", {{"Task", "t1", "accepted"}});
  commit("e3", {{"Task", "t1", "accepted"}});  // unchanged: no version
  commit("e4", {{"Task", "t1", "completed"}});

  auto first = store_->readVersion("Task", "t1", 1);
  ASSERT_TRUE(first.ok()) << first.message();
  ASSERT_TRUE(first->has_value());
  EXPECT_NE((*first)->json.find(R"("status":"requested")"), std::string::npos);
  EXPECT_NE((*first)->json.find(R"("versionId":"1")"), std::string::npos);
  EXPECT_EQ((*first)->version, 1);
  auto third = store_->readVersion("Task", "t1", 3);
  ASSERT_TRUE(third.ok() && third->has_value());
  EXPECT_NE((*third)->json.find(R"("status":"completed")"), std::string::npos);
  auto current = store_->readResource("Task", "t1");
  ASSERT_TRUE(current.ok() && current->has_value());
  EXPECT_EQ((*current)->json, (*third)->json);  // the current version is the newest kept one
  for (int64_t missing : {0, 4}) {
    auto none = store_->readVersion("Task", "t1", missing);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value()) << missing;
  }
  auto unknown = store_->readVersion("Task", "t9", 1);
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());

  HistoryQuery instance;
  instance.type = "Task";
  instance.id = "t1";
  EXPECT_EQ(keys(history(instance)), (std::vector<std::string>{"Task/t1/3", "Task/t1/2", "Task/t1/1"}));
  HistoryQuery type;
  type.type = "Patient";
  EXPECT_EQ(keys(history(type)), (std::vector<std::string>{"Patient/p1/1"}));
  // System level: newest commit first; inside one commit by type then id, descending.
  EXPECT_EQ(keys(history(HistoryQuery{})),
            (std::vector<std::string>{"Task/t1/3", "Task/t1/2", "Task/t1/1", "Patient/p1/1"}));
  std::vector<ResourceVersion> all = history(HistoryQuery{});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_NE(all[0].json.find(R"("lastUpdated":")" + all[0].updated_at + "\""), std::string::npos);
  EXPECT_GT(all[0].event_seq, all[1].event_seq);
  EXPECT_EQ(all[2].event_seq, all[3].event_seq);  // one commit wrote Task v1 and Patient v1
}

TEST_P(StoreHistory, KeysetPagesStayRightWhileNewVersionsAreCommitted) {
  for (int event = 0; event < 10; ++event) {
    commit("seed-" + std::to_string(event), {{"Observation", "o" + std::to_string(event % 4), "v" + std::to_string(event)},
                                              {"Patient", "p" + std::to_string(event), "x"}});
  }
  const std::vector<std::string> expected = keys(history(HistoryQuery{}));
  ASSERT_EQ(expected.size(), 20u);
  // Page through three at a time; after each page another commit lands (newer than every key).
  std::vector<std::string> paged;
  HistoryQuery page;
  page.count = 3;
  for (int round = 0; round < 20; ++round) {
    std::vector<ResourceVersion> versions = history(page);
    for (const std::string& key : keys(versions)) paged.push_back(key);
    commit("late-" + std::to_string(round), {{"Observation", "o1", "late" + std::to_string(round)}});
    if (versions.size() < page.count) break;
    page.before = versions.back();
  }
  // Every page after the first was read after late commits, which are newer than its key: the
  // pages together are the seed history exactly once, in order.
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(std::set<std::string>(paged.begin(), paged.end()).size(), paged.size());

  HistoryQuery instance;
  instance.type = "Observation";
  instance.id = "o1";
  instance.count = 2;
  std::vector<ResourceVersion> newest = history(instance);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_GT(newest[0].version, newest[1].version);
  instance.before = newest.back();
  std::vector<ResourceVersion> older = history(instance);
  ASSERT_EQ(older.size(), 2u);
  EXPECT_EQ(older[0].version, newest[1].version - 1);
}

TEST_P(StoreHistory, SinceKeepsOnlyVersionsWrittenFromThatInstant) {
  commit("old", {{"Goal", "g1", "proposed"}});
  std::vector<ResourceVersion> before = history(HistoryQuery{});
  ASSERT_EQ(before.size(), 1u);
  // The store keeps milliseconds: wait until the clock has moved past the first version.
  const std::string first_updated = before[0].updated_at;
  std::string since;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    since = nowIso();
  } while (since <= first_updated);
  commit("new", {{"Goal", "g1", "accepted"}, {"Goal", "g2", "proposed"}});
  HistoryQuery query;
  query.since = since;
  EXPECT_EQ(keys(history(query)), (std::vector<std::string>{"Goal/g2/1", "Goal/g1/2"}));
  query.type = "Goal";
  query.id = "g1";
  EXPECT_EQ(keys(history(query)), (std::vector<std::string>{"Goal/g1/2"}));
  query.since = "9999-12-31T23:59:59.999Z";
  EXPECT_TRUE(history(query).empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreHistory, ::testing::ValuesIn(kStores),
                         [](const ::testing::TestParamInfo<HistoryStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
// The store contract (gateway/store/store.h, issue 12 Build 3): one suite every Store
// implementation passes. It is parameterised over a factory that opens a store on a data
// directory; opening it twice on one directory gives two handles on one database, as two
// gateway processes would have. It runs on SQLite and on PostgreSQL (issue 17: the throwaway
// cluster of scripts/pg-test, one schema per data directory). A later issue that gives the store
// a new duty adds its tests here.

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <ostream>
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

struct StoreFactory {
  std::string name;
  std::function<Result<StorePtr>(const std::string& data_dir)> open;
};

// What gtest (and so ctest's test names) print for a parameter.
void PrintTo(const StoreFactory& factory, std::ostream* out) { *out << factory.name; }

// PostgreSQL: the cluster the ctest fixture started; a missing one fails every test here.
Result<StorePtr> openTestPostgres(const std::string& dir) {
  auto cluster = testing::testPostgres();
  if (!cluster.ok()) return cluster.error();
  PostgresStoreOptions options;
  options.url = cluster->url;
  options.password = cluster->password;
  options.schema = testing::testSchemaFor(dir);
  return openPostgresStore(options);
}

const StoreFactory kFactories[] = {
    {"sqlite", [](const std::string& dir) { return openSqliteStore(dir); }},
    {"postgresql", &openTestPostgres},
};

IngestCommit eventCommit(const std::string& key, std::vector<std::string> destinations = {"feed:hie"}) {
  IngestCommit commit;
  commit.channel = "contract";
  commit.idempotency_key = key;
  commit.payload = "{\"event\":\"" + key + "\"}";
  commit.answer = "answer-" + key;
  commit.resources.push_back({"Observation", "o-" + key, R"({"resourceType":"Observation","id":"o-)" + key + "\"}"});
  for (const std::string& destination : destinations) commit.outbox.push_back({destination, "bundle", "body-" + key});
  return commit;
}

class StoreContract : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    auto opened = GetParam().open(dir_.path().string());
    ASSERT_TRUE(opened.ok()) << opened.message();
    store_ = *opened;
  }
  // Another handle on the same database.
  StorePtr second() {
    auto opened = GetParam().open(dir_.path().string());
    EXPECT_TRUE(opened.ok()) << opened.message();
    return opened.ok() ? *opened : nullptr;
  }
  std::vector<int64_t> numbersOf(Store& store, const std::string& destination) {
    auto last = store.lastNumber(destination);
    EXPECT_TRUE(last.ok());
    auto rows = store.outboxRange(destination, 1, last.ok() ? *last : 0);
    EXPECT_TRUE(rows.ok());
    std::vector<int64_t> numbers;
    if (rows.ok()) {
      for (const OutboxItem& row : *rows) numbers.push_back(row.number);
    }
    return numbers;
  }
  static std::vector<int64_t> oneTo(int64_t n) {
    std::vector<int64_t> numbers;
    for (int64_t i = 1; i <= n; ++i) numbers.push_back(i);
    return numbers;
  }

  testing::TempDir dir_;
  StorePtr store_;
};

// --- events: idempotent commit, outbox rows, numbers ------------------------------------------

TEST_P(StoreContract, EventCommitIsIdempotentWithItsOutboxRows) {
  auto first = store_->commitIngest(eventCommit("k1", {"feed:hie", "payer:p1"}));
  ASSERT_TRUE(first.ok()) << first.message();
  EXPECT_FALSE(first->duplicate);
  EXPECT_GT(first->event_seq, 0);
  EXPECT_EQ(first->answer, "answer-k1");

  IngestCommit again = eventCommit("k1", {"feed:hie", "payer:p1", "payer:p2"});
  again.answer = "another answer";
  auto duplicate = store_->commitIngest(std::move(again));
  ASSERT_TRUE(duplicate.ok());
  EXPECT_TRUE(duplicate->duplicate);
  EXPECT_EQ(duplicate->answer, "answer-k1");  // the first answer
  EXPECT_EQ(duplicate->event_seq, first->event_seq);

  // The duplicate wrote nothing: one row per destination of the first commit, none for p2.
  EXPECT_EQ(numbersOf(*store_, "feed:hie"), oneTo(1));
  EXPECT_EQ(numbersOf(*store_, "payer:p1"), oneTo(1));
  EXPECT_EQ(*store_->lastNumber("payer:p2"), 0);
  auto row = store_->outboxRange("payer:p1", 1, 1);
  ASSERT_TRUE(row.ok() && row->size() == 1);
  EXPECT_EQ(row->front().body, "body-k1");
  EXPECT_EQ(row->front().kind, "bundle");

  auto answer = store_->findAnswer("k1");
  ASSERT_TRUE(answer.ok() && answer->has_value());
  EXPECT_EQ((*answer)->answer, "answer-k1");
  EXPECT_FALSE(store_->findAnswer("unknown")->has_value());
  auto resource = store_->readResource("Observation", "o-k1");
  ASSERT_TRUE(resource.ok() && resource->has_value());
  EXPECT_EQ((*resource)->version, 1);
}

TEST_P(StoreContract, ConcurrentCommitsFromThreadsAndHandlesNumberEachDestinationWithoutGaps) {
  StorePtr other = second();
  ASSERT_TRUE(other);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& store = t % 2 == 0 ? *store_ : *other;
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Every event goes to the shared feed; every other one also to the thread's own payer.
        std::vector<std::string> destinations{"feed:shared"};
        if (i % 2 == 0) destinations.push_back("payer:t" + std::to_string(t));
        if (!store.commitIngest(eventCommit(key, destinations)).ok()) failures++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(numbersOf(*store_, "feed:shared"), oneTo(kThreads * kPerThread));
  EXPECT_EQ(numbersOf(*other, "feed:shared"), oneTo(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(numbersOf(*store_, "payer:t" + std::to_string(t)), oneTo(kPerThread / 2));
  // Each event's row is there once: the bodies are distinct.
  auto rows = store_->outboxRange("feed:shared", 1, kThreads * kPerThread);
  ASSERT_TRUE(rows.ok());
  std::set<std::string> bodies;
  for (const OutboxItem& row : *rows) bodies.insert(row.body);
  EXPECT_EQ(bodies.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_P(StoreContract, ADuplicateKeyCommittedConcurrentlyThroughTwoHandlesReturnsTheFirstAnswer) {
  StorePtr other = second();
  ASSERT_TRUE(other);
  Result<CommitOutcome> outcomes[2] = {Error{"not run"}, Error{"not run"}};
  std::thread a([&] {
    IngestCommit commit = eventCommit("same");
    commit.answer = "from-a";
    outcomes[0] = store_->commitIngest(std::move(commit));
  });
  std::thread b([&] {
    IngestCommit commit = eventCommit("same");
    commit.answer = "from-b";
    outcomes[1] = other->commitIngest(std::move(commit));
  });
  a.join();
  b.join();
  ASSERT_TRUE(outcomes[0].ok() && outcomes[1].ok());
  EXPECT_NE(outcomes[0]->duplicate, outcomes[1]->duplicate);  // exactly one was first
  const std::string winner = outcomes[0]->duplicate ? "from-b" : "from-a";
  EXPECT_EQ(outcomes[0]->answer, winner);
  EXPECT_EQ(outcomes[1]->answer, winner);
  EXPECT_EQ(numbersOf(*store_, "feed:hie"), oneTo(1));
}

TEST_P(StoreContract, ManyCommitsKeepInputOrderAndNumberInIt) {
  std::vector<IngestCommit> commits;
  for (int i = 0; i < 5; ++i) commits.push_back(eventCommit("m" + std::to_string(i)));
  commits.push_back(eventCommit("m1"));  // a duplicate inside the batch
  auto outcomes = store_->commitIngestMany(std::move(commits));
  ASSERT_TRUE(outcomes.ok()) << outcomes.message();
  ASSERT_EQ(outcomes->size(), 6u);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE((*outcomes)[i].duplicate);
  EXPECT_TRUE((*outcomes)[5].duplicate);
  auto rows = store_->outboxRange("feed:hie", 1, 5);
  ASSERT_TRUE(rows.ok() && rows->size() == 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*rows)[i].body, "body-m" + std::to_string(i));
}

// --- uniqueness rules as constraints -----------------------------------------------------------

TEST_P(StoreContract, AUniqueSlotHeldByAnotherOwnerRefusesTheWholeCommit) {
  IngestCommit first = eventCommit("acm-1", {"payer:p1"});
  first.unique_slots = {{"acm|claim-1", "event-1"}};
  auto taken = store_->commitIngest(std::move(first));
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(taken->slot_taken.empty());

  IngestCommit second_acm = eventCommit("acm-2", {"payer:p1"});
  second_acm.unique_slots = {{"acm|claim-1", "event-2"}};
  auto refused = store_->commitIngest(std::move(second_acm));
  ASSERT_TRUE(refused.ok()) << refused.message();
  EXPECT_EQ(refused->slot_taken, "acm|claim-1");
  EXPECT_EQ(refused->slot_owner, "event-1");
  EXPECT_EQ(refused->slot_event_seq, taken->event_seq);
  EXPECT_FALSE(refused->duplicate);
  // Nothing of the refused commit was written: no answer, no row, no resource.
  EXPECT_FALSE(store_->findAnswer("acm-2")->has_value());
  EXPECT_EQ(numbersOf(*store_, "payer:p1"), oneTo(1));
  EXPECT_FALSE(store_->readResource("Observation", "o-acm-2")->has_value());

  // The owner may write its slot again (a correction of the same event); other slots are free.
  IngestCommit same_owner = eventCommit("acm-3", {"payer:p1"});
  same_owner.unique_slots = {{"acm|claim-1", "event-1"}, {"acm|claim-2", "event-1"}};
  auto again = store_->commitIngest(std::move(same_owner));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->slot_taken.empty());
  EXPECT_EQ(numbersOf(*store_, "payer:p1"), oneTo(2));
}

TEST_P(StoreContract, ConcurrentCommitsForOneSlotThroughTwoHandlesLetExactlyOneIn) {
  StorePtr other = second();
  ASSERT_TRUE(other);
  std::atomic<int> accepted{0}, refused{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      IngestCommit commit = eventCommit("slot-" + std::to_string(t), {"payer:p1"});
      commit.unique_slots = {{"acm|claim-x", "event-" + std::to_string(t)}};
      auto outcome = (t % 2 == 0 ? store_ : other)->commitIngest(std::move(commit));
      if (!outcome.ok()) failed++;
      else if (outcome->slot_taken.empty()) accepted++;
      else refused++;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(refused.load(), 5);
  EXPECT_EQ(numbersOf(*store_, "payer:p1"), oneTo(1));
}

// --- outbox order, delivery marks, dead letters -------------------------------------------------

TEST_P(StoreContract, PendingRowsComeInNumberOrderAndLeaveWhenDelivered) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(store_->commitIngest(eventCommit("o" + std::to_string(i))).ok());
  auto head = store_->pendingHead("feed:hie", 10);
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size(), 4u);
  for (size_t i = 0; i < head->size(); ++i) {
    EXPECT_EQ((*head)[i].number, static_cast<int64_t>(i + 1));
    EXPECT_EQ((*head)[i].body, "body-o" + std::to_string(i));
  }
  ASSERT_TRUE(store_->recordDelivered(DeliveryAttempt{(*head)[0].id, nowMs(), 200, "", 3}).ok());
  auto due = store_->nextDue("feed:hie", nowMs());
  ASSERT_TRUE(due.ok() && due->has_value());
  EXPECT_EQ((*due)->number, 2);
  auto after = store_->pendingAfter("feed:hie", 2, 10);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ(after->front().number, 3);

  // A failed attempt waits for its retry time; it stays at the head of its destination.
  const int64_t later = nowMs() + 60000;
  ASSERT_TRUE(store_->recordFailed(DeliveryAttempt{(*head)[1].id, nowMs(), 503, "HTTP 503", 2}, later, false).ok());
  auto not_due = store_->nextDue("feed:hie", nowMs());
  ASSERT_TRUE(not_due.ok());
  EXPECT_FALSE(not_due->has_value());
  auto still = store_->pendingHead("feed:hie", 1);
  ASSERT_TRUE(still.ok() && still->size() == 1u);
  EXPECT_EQ(still->front().number, 2);
  EXPECT_EQ(still->front().attempts, 1);
  EXPECT_EQ(still->front().last_error, "HTTP 503");
  auto attempts = store_->attemptsOf((*head)[1].id);
  ASSERT_TRUE(attempts.ok() && attempts->size() == 1u);
  EXPECT_EQ(attempts->front().http_status, 503);

  auto depth = store_->outboxDepth();
  ASSERT_TRUE(depth.ok() && depth->size() == 1u);
  EXPECT_EQ(depth->front().pending, 3);
}

TEST_P(StoreContract, ADeadLetterLeavesTheQueueAndAReplayPutsItBackAtTheHead) {
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(store_->commitIngest(eventCommit("d" + std::to_string(i))).ok());
  auto head = store_->pendingHead("feed:hie", 10);
  ASSERT_TRUE(head.ok() && head->size() == 2u);
  ASSERT_TRUE(store_->recordFailed(DeliveryAttempt{(*head)[0].id, nowMs(), 0, "refused", 1}, nowMs(), true).ok());
  auto dead = store_->listDeadLetters(10);
  ASSERT_TRUE(dead.ok() && dead->size() == 1u);
  EXPECT_EQ(dead->front().number, 1);
  auto pending = store_->pendingHead("feed:hie", 10);
  ASSERT_TRUE(pending.ok() && pending->size() == 1u);
  EXPECT_EQ(pending->front().number, 2);
  EXPECT_EQ(store_->outboxDepth()->front().dead, 1);

  EXPECT_TRUE(*store_->replayDeadLetter(dead->front().id));
  EXPECT_FALSE(*store_->replayDeadLetter(dead->front().id));  // no longer a dead letter
  EXPECT_FALSE(*store_->replayDeadLetter(999999));
  auto replayed = store_->pendingHead("feed:hie", 10);
  ASSERT_TRUE(replayed.ok() && replayed->size() == 2u);
  EXPECT_EQ(replayed->front().number, 1);
  EXPECT_TRUE(store_->listDeadLetters(10)->empty());
}

TEST_P(StoreContract, AsyncMarksRunTheirCallbackOnceDurable) {
  ASSERT_TRUE(store_->commitIngest(eventCommit("a1")).ok());
  auto head = store_->pendingHead("feed:hie", 1);
  ASSERT_TRUE(head.ok() && head->size() == 1u);
  std::promise<Status> done;
  store_->recordDeliveredManyAsync({DeliveryAttempt{head->front().id, nowMs(), 200, "", 1}},
                                   [&done](const Status& status) { done.set_value(status); });
  EXPECT_TRUE(done.get_future().get().ok());
  StorePtr other = second();  // what is durable is visible through another handle
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->pendingHead("feed:hie", 1)->empty());
}

// --- quarantine and subscriptions ---------------------------------------------------------------

TEST_P(StoreContract, QuarantineKeepsThePayloadAndRecordsReplays) {
  QuarantineWrite write{"contract", "application/json", "{bad", false, R"({"resourceType":"OperationOutcome"})"};
  auto id = store_->quarantine(write);
  ASSERT_TRUE(id.ok()) << id.message();
  auto read = store_->readQuarantine(*id);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->payload, "{bad");
  EXPECT_EQ((*read)->channel, "contract");
  EXPECT_EQ((*read)->status, "quarantined");
  EXPECT_FALSE(store_->readQuarantine("q-none")->has_value());
  ASSERT_EQ(store_->listQuarantineToReplay(10)->size(), 1u);

  EXPECT_TRUE(*store_->recordReplay(*id, 422, "still bad", false));
  EXPECT_EQ(store_->listQuarantineToReplay(10)->size(), 1u);
  EXPECT_TRUE(*store_->recordReplay(*id, 202, "ok", true));
  EXPECT_TRUE(store_->listQuarantineToReplay(10)->empty());
  auto replayed = store_->readQuarantine(*id);
  EXPECT_EQ((*replayed)->status, "accepted");
  EXPECT_EQ((*replayed)->replays, 2);
  EXPECT_EQ((*replayed)->replay_status, 202);
  EXPECT_EQ((*replayed)->payload, "{bad");  // kept
  EXPECT_FALSE(*store_->recordReplay("q-none", 202, "", true));
  EXPECT_EQ(store_->listQuarantine(10)->size(), 1u);
}

TEST_P(StoreContract, SubscriptionsAreKeptReplacedAndDeleted) {
  ASSERT_TRUE(store_->putSubscription({"s1", "requested", "", R"({"resourceType":"Subscription"})"}).ok());
  ASSERT_TRUE(store_->putSubscription({"s2", "active", "", "{}"}).ok());
  ASSERT_TRUE(store_->putSubscription({"s1", "error", "handshake failed", R"({"resourceType":"Subscription"})"}).ok());
  auto listed = second()->listSubscriptions();
  ASSERT_TRUE(listed.ok() && listed->size() == 2u);
  EXPECT_EQ(listed->front().id, "s1");
  EXPECT_EQ(listed->front().status, "error");
  EXPECT_EQ(listed->front().error, "handshake failed");
  ASSERT_TRUE(store_->deleteSubscription("s1", {}).ok());
  auto left = store_->listSubscriptions();
  ASSERT_TRUE(left.ok() && left->size() == 1u);
  EXPECT_EQ(left->front().id, "s2");
}

// --- access (issue 13): subscription owners, resource origins, the audit log ------------------
TEST_P(StoreContract, ASubscriptionKeepsItsOwnerWhenAStatusUpdateNamesNone) {
  ASSERT_TRUE(store_->putSubscription({"s1", "requested", "", "{}", "regional-hie"}).ok());
  ASSERT_TRUE(store_->putSubscription({"s1", "error", "handshake failed", "{}"}).ok());  // delivery's update
  auto listed = second()->listSubscriptions();
  ASSERT_TRUE(listed.ok() && listed->size() == 1u);
  EXPECT_EQ(listed->front().owner, "regional-hie");
  EXPECT_EQ(listed->front().status, "error");
}

// --- validate last: the merge read outside the writer, checked commits --------------------------

merge::Contribution patientContribution(const std::string& id, const std::string& contributor) {
  merge::Contribution c;
  c.type = "Patient";
  c.id = id;
  c.contributor = contributor;
  c.kind = contributor.substr(0, contributor.find('|'));
  c.patient_id = id;
  c.json = R"({"resourceType":"Patient","id":")" + id + "\"}";
  return c;
}

// What listingHook writes for a Patient with these contributors.
std::string listedPatient(const std::string& id, const std::string& contributors) {
  return R"({"resourceType":"Patient","id":")" + id + R"(","contributors":")" + contributors + "\"}";
}

// A stand-in for the merge (gateway/merge is tested in sources_test): keeps the contributions
// and writes each Patient with the contributors it has, in their order.
MergeHook listingHook() {
  return [](MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
            std::vector<CoverageFact>&) -> Status {
    std::set<std::string> ids;
    for (const merge::Contribution& c : commit.contributions) {
      Status put = tx.putContribution(c);
      if (!put.ok()) return put;
      ids.insert(c.id);
    }
    for (const std::string& id : ids) {
      auto all = tx.contributions("Patient", id);
      if (!all.ok()) return Error{all.message()};
      std::string contributors;
      for (const merge::Contribution& c : *all) contributors += c.contributor + ";";
      merged.push_back(ResourceWrite{"Patient", id, listedPatient(id, contributors)});
    }
    return Status::Ok();
  };
}

TEST_P(StoreContract, TheMergeIsReadOutsideTheWriterThroughAViewThatRefusesWrites) {
  store_->setMergeHook(listingHook());
  IngestCommit first = eventCommit("m1");
  first.contributions.push_back(patientContribution("p1", "ehr|a"));
  ASSERT_TRUE(store_->commitIngest(first).ok());
  StorePtr other = second();
  ASSERT_TRUE(other);
  std::vector<std::string> seen;
  Status read = other->readMerge([&](MergeTx& tx) -> Status {
    auto rows = tx.contributions("Patient", "p1");
    if (!rows.ok()) return Error{rows.message()};
    for (const merge::Contribution& c : *rows) seen.push_back(c.contributor);
    auto about = tx.contributedAbout("p1");
    if (!about.ok()) return Error{about.message()};
    EXPECT_EQ(*about, (std::vector<std::pair<std::string, std::string>>{{"Patient", "p1"}}));
    EXPECT_FALSE(tx.putContribution(patientContribution("p1", "roster|b")).ok());
    return Status::Ok();
  });
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(seen, std::vector<std::string>{"ehr|a"});
  size_t after = 0;
  ASSERT_TRUE(store_->readMerge([&](MergeTx& tx) -> Status {
                      auto rows = tx.contributions("Patient", "p1");
                      if (!rows.ok()) return Error{rows.message()};
                      after = rows->size();
                      return Status::Ok();
                    }).ok());
  EXPECT_EQ(after, 1u);  // the refused write left nothing
  // A failing reader's error is readMerge's.
  Status failed = store_->readMerge([](MergeTx&) -> Status { return Error{"reader gave up"}; });
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("reader gave up"), std::string::npos);
}

TEST_P(StoreContract, ACheckedCommitIsWrittenOnlyWithTheMergeItWasCheckedWith) {
  store_->setMergeHook(listingHook());
  ASSERT_TRUE(store_->commitIngest([] {
    IngestCommit earlier = eventCommit("m0", {});
    earlier.contributions.push_back(patientContribution("p2", "roster|b"));
    return earlier;
  }()).ok());

  // Checked with a merge that no longer holds (it did not know roster|b): nothing is written.
  IngestCommit stale = eventCommit("m2");
  stale.contributions.push_back(patientContribution("p2", "ehr|a"));
  stale.merge_checked = true;
  stale.merge_expected = {ResourceWrite{"Patient", "p2", listedPatient("p2", "ehr|a;")}};
  auto refused = store_->commitIngest(stale);
  ASSERT_TRUE(refused.ok()) << refused.message();
  EXPECT_TRUE(refused->merge_changed);
  EXPECT_FALSE(refused->duplicate);
  auto answer = store_->findAnswer("m2");
  ASSERT_TRUE(answer.ok());
  EXPECT_FALSE(answer->has_value());
  auto observation = store_->readResource("Observation", "o-m2");
  ASSERT_TRUE(observation.ok());
  EXPECT_FALSE(observation->has_value());
  auto patient = store_->readResource("Patient", "p2");
  ASSERT_TRUE(patient.ok() && patient->has_value());
  EXPECT_EQ((*patient)->version, 1);
  EXPECT_TRUE(numbersOf(*store_, "feed:hie").empty());
  size_t contributions = 0;
  ASSERT_TRUE(store_->readMerge([&](MergeTx& tx) -> Status {
                      auto rows = tx.contributions("Patient", "p2");
                      if (!rows.ok()) return Error{rows.message()};
                      contributions = rows->size();
                      return Status::Ok();
                    }).ok());
  EXPECT_EQ(contributions, 1u);

  // Checked with the merge the transaction gives (compared by same_as): the checked writes,
  // not the transaction's own, are stored.
  IngestCommit current = stale;
  const std::string checked = R"({"resourceType":"Patient","id":"p2","checked":true})";
  current.merge_expected = {ResourceWrite{"Patient", "p2", checked, listedPatient("p2", "ehr|a;roster|b;")}};
  auto committed = store_->commitIngest(current);
  ASSERT_TRUE(committed.ok()) << committed.message();
  EXPECT_FALSE(committed->merge_changed);
  EXPECT_GT(committed->event_seq, 0);
  patient = store_->readResource("Patient", "p2");
  ASSERT_TRUE(patient.ok() && patient->has_value());
  EXPECT_EQ((*patient)->version, 2);
  EXPECT_NE((*patient)->json.find("\"checked\":true"), std::string::npos) << (*patient)->json;
  EXPECT_EQ(numbersOf(*store_, "feed:hie"), oneTo(1));
}

TEST_P(StoreContract, OriginsNameTheEventsContributionsAndRoutingOfAResource) {
  IngestCommit commit = eventCommit("src-a\x1f" "e1");
  commit.channel = "econsult";
  commit.resources.push_back({"Claim", "c1", R"({"resourceType":"Claim","id":"c1"})"});
  commit.routed.push_back({"c1", "p1", "payer-a", "2026-06-15", "99451"});
  ASSERT_TRUE(store_->commitIngest(commit).ok());
  IngestCommit second_event = eventCommit("claims-key");
  second_event.channel = "claims:payer-b";
  second_event.resources.push_back({"Claim", "c1", R"({"resourceType":"Claim","id":"c1","status":"active"})"});
  ASSERT_TRUE(store_->commitIngest(second_event).ok());
  auto origins = second()->originsOf("Claim", "c1", true);
  ASSERT_TRUE(origins.ok()) << origins.message();
  ASSERT_EQ(origins->events.size(), 2u);
  std::set<std::string> channels;
  for (const ResourceOrigins::Event& event : origins->events) {
    channels.insert(event.channel + "|" + event.idempotency_key);
    EXPECT_FALSE(event.payload.empty());
  }
  EXPECT_EQ(channels, (std::set<std::string>{"econsult|src-a\x1f" "e1", "claims:payer-b|claims-key"}));
  EXPECT_EQ(origins->routed_payers, std::vector<std::string>{"payer-a"});
  auto without = store_->originsOf("Claim", "c1", false);
  ASSERT_TRUE(without.ok());
  for (const ResourceOrigins::Event& event : without->events) EXPECT_TRUE(event.payload.empty());
  auto none = store_->originsOf("Claim", "nope", false);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->events.empty() && none->contributions.empty() && none->routed_payers.empty());
}

TEST_P(StoreContract, AuditRecordsAreAppendedNumberedAndFoundByEveryCriterion) {
  auto record = [](int64_t at, std::string subtype, std::string agent, std::vector<std::string> entities) {
    AuditRecord row;
    row.recorded_ms = at;
    row.subtype = std::move(subtype);
    row.agent = std::move(agent);
    row.address = "10.0.0.1";
    row.entities = std::move(entities);
    row.json = "{\"resourceType\":\"AuditEvent\",\"n\":" + std::to_string(at) + "}";
    return row;
  };
  ASSERT_TRUE(store_->appendAudit({record(1000, "read", "ehr", {"Patient/p1"}), record(2000, "search", "payer", {})}).ok());
  ASSERT_TRUE(second()->appendAudit({record(3000, "read", "payer", {"Patient/p1", "Claim/c1"})}).ok());
  auto all = store_->listAudit(AuditQuery{});
  ASSERT_TRUE(all.ok()) << all.message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_LT((*all)[0].id, (*all)[1].id);
  EXPECT_LT((*all)[1].id, (*all)[2].id);
  EXPECT_EQ((*all)[2].entities, (std::vector<std::string>{"Claim/c1", "Patient/p1"}));
  EXPECT_EQ((*all)[0].json, "{\"resourceType\":\"AuditEvent\",\"n\":1000}");
  auto count = [&](AuditQuery query) {
    auto rows = store_->listAudit(query);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? rows->size() : size_t{99};
  };
  AuditQuery query;
  query.entity = "Patient/p1";
  EXPECT_EQ(count(query), 2u);
  query.agent = "payer";
  EXPECT_EQ(count(query), 1u);
  query = AuditQuery{};
  query.agent = "10.0.0.1";  // an address names the agent too
  EXPECT_EQ(count(query), 3u);
  query = AuditQuery{};
  query.subtype = "search";
  EXPECT_EQ(count(query), 1u);
  query = AuditQuery{};
  query.from_ms = 2000;
  query.to_ms = 3000;
  EXPECT_EQ(count(query), 1u);
  query = AuditQuery{};
  query.id = (*all)[1].id;
  EXPECT_EQ(count(query), 1u);
  query = AuditQuery{};
  query.count = 2;
  EXPECT_EQ(count(query), 2u);
}

// access.md "Audit": a write's AuditEvent is committed in the write's own transaction, so no
// crash can leave the data without its audit (nor an audit of data that was not written).
TEST_P(StoreContract, AWritesAuditRecordsCommitInItsTransaction) {
  auto audit = [](const std::string& subtype, const std::string& entity) {
    AuditRecord row;
    row.recorded_ms = 5000;
    row.subtype = subtype;
    row.agent = "ehr";
    row.address = "10.0.0.2";
    row.entities = {entity};
    row.json = "{\"resourceType\":\"AuditEvent\",\"s\":\"" + subtype + "\"}";
    return row;
  };
  auto entityCount = [&](const std::string& entity) {
    AuditQuery query;
    query.entity = entity;
    auto rows = store_->listAudit(query);
    EXPECT_TRUE(rows.ok()) << rows.message();
    return rows.ok() ? rows->size() : size_t{99};
  };
  // Written: the event and its record, one commit.
  IngestCommit commit = eventCommit("a1");
  commit.audit = {audit("ingest", "Observation/o-a1")};
  auto written = store_->commitIngest(commit);
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_FALSE(written->duplicate);
  EXPECT_TRUE(written->audited);
  EXPECT_EQ(entityCount("Observation/o-a1"), 1u);
  // A re-post (duplicate) is audited in the transaction that answers it.
  auto again = second()->commitIngest(commit);
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_TRUE(again->duplicate);
  EXPECT_TRUE(again->audited);
  EXPECT_EQ(entityCount("Observation/o-a1"), 2u);
  // Without records nothing is appended and the outcome says so.
  auto plain = store_->commitIngest(eventCommit("a2"));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->audited);

  // A commit that fails inside its transaction (here the merge step) leaves neither the event
  // nor its audit record.
  store_->setMergeHook([](MergeTx&, const IngestCommit&, std::vector<ResourceWrite>&, std::vector<CoverageFact>&) {
    return Status(Error{"merge refused (test)"});
  });
  IngestCommit failing = eventCommit("a3");
  failing.contributions.push_back(merge::Contribution{});
  failing.contributions.back().type = "Patient";
  failing.contributions.back().id = "p-a3";
  failing.audit = {audit("ingest", "Observation/o-a3")};
  auto failed = store_->commitIngest(failing);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(entityCount("Observation/o-a3"), 0u);
  auto stored = store_->readResource("Observation", "o-a3");
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(stored->has_value());

  // Subscription rows: put and delete carry their records.
  SubscriptionRow row{"s-audit", "requested", "", "{}", "hie"};
  row.audit = {audit("create", "Subscription/s-audit")};
  ASSERT_TRUE(store_->putSubscription(row).ok());
  ASSERT_TRUE(store_->deleteSubscription("s-audit", {audit("delete", "Subscription/s-audit")}).ok());
  EXPECT_EQ(entityCount("Subscription/s-audit"), 2u);
  auto subscriptions = store_->listSubscriptions();
  ASSERT_TRUE(subscriptions.ok());
  EXPECT_TRUE(subscriptions->empty());
}

// --- outbox leases -------------------------------------------------------------------------------

TEST_P(StoreContract, ALeaseIsExclusiveUntilItRunsOutAndIsThenTakenOver) {
  const int64_t t0 = 1'000'000;
  auto a = store_->claimLease("feed:hie", "A", t0, 1000, "");
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->holder, "A");
  EXPECT_EQ(a->expires_ms, t0 + 1000);
  auto b = store_->claimLease("feed:hie", "B", t0 + 10, 1000, "");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->holder, "A");  // not B's
  EXPECT_EQ(b->expires_ms, t0 + 1000);
  EXPECT_EQ(store_->claimLease("payer:other", "B", t0, 1000, "")->holder, "B");  // per destination

  EXPECT_TRUE(*store_->extendLease("feed:hie", "A", t0 + 500, 1000));
  EXPECT_EQ(store_->claimLease("feed:hie", "B", t0 + 1200, 1000, "")->holder, "A");  // extended to t0 + 1500
  EXPECT_FALSE(*store_->extendLease("feed:hie", "B", t0 + 1200, 1000));

  // Run out: B takes over; A has lost it and cannot extend or release it.
  auto taken = store_->claimLease("feed:hie", "B", t0 + 1500, 1000, "");
  EXPECT_EQ(taken->holder, "B");
  EXPECT_EQ(taken->expires_ms, t0 + 2500);
  EXPECT_FALSE(*store_->extendLease("feed:hie", "A", t0 + 1600, 1000));
  ASSERT_TRUE(store_->releaseLease("feed:hie", "A").ok());
  EXPECT_EQ((*store_->leaseOf("feed:hie"))->holder, "B");

  // Released: free for anyone at once.
  ASSERT_TRUE(store_->releaseLease("feed:hie", "B").ok());
  EXPECT_FALSE(store_->leaseOf("feed:hie")->has_value());
  EXPECT_EQ(store_->claimLease("feed:hie", "A", t0 + 1700, 1000, "")->holder, "A");

  // A holder the caller knows is dead is taken over before its lease runs out; a live one is not.
  EXPECT_EQ(store_->claimLease("feed:hie", "C", t0 + 1800, 1000, "someone-else")->holder, "A");
  EXPECT_EQ(store_->claimLease("feed:hie", "C", t0 + 1800, 1000, "A")->holder, "C");
}

TEST_P(StoreContract, LeaseExpiryAndTakeoverWorkBetweenTwoHandlesOnOneDatabase) {
  StorePtr other = second();
  ASSERT_TRUE(other);
  const int64_t t0 = nowMs();
  ASSERT_EQ(store_->claimLease("feed:hie", "first", t0, 300, "")->holder, "first");
  auto seen = other->leaseOf("feed:hie");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->holder, "first");
  EXPECT_EQ(other->claimLease("feed:hie", "second", t0 + 100, 300, "")->holder, "first");
  EXPECT_EQ(other->claimLease("feed:hie", "second", t0 + 300, 300, "")->holder, "second");
  EXPECT_FALSE(*store_->extendLease("feed:hie", "first", t0 + 310, 300));
  EXPECT_EQ((*store_->leaseOf("feed:hie"))->holder, "second");
}

// Two handles on one database deliver one destination's rows as two gateway processes would:
// each claims the lease, sends the rows it holds it for, and marks them. One "dies" halfway
// (stops without releasing). The rows reach the "receiver" exactly in order, and never while
// the other handle is sending.
TEST_P(StoreContract, TwoHandlesSharingDeliveryNeverSendOneDestinationAtOnceAndKeepOrder) {
  constexpr int kRows = 60;
  for (int i = 0; i < kRows; ++i) ASSERT_TRUE(store_->commitIngest(eventCommit("r" + std::to_string(i))).ok());
  StorePtr other = second();
  ASSERT_TRUE(other);
  constexpr int64_t kLeaseMs = 1500;
  std::mutex received_mutex;
  std::vector<int64_t> received;
  std::atomic<int> sending{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> errors{0};
  auto worker = [&](Store& store, const std::string& holder, int die_after) {
    int sent = 0;
    const int64_t give_up = nowMs() + 30000;
    while (nowMs() < give_up) {
      auto lease = store.claimLease("feed:hie", holder, nowMs(), kLeaseMs, "");
      if (!lease.ok()) {
        errors++;
        return;
      }
      if (lease->holder != holder) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      auto rows = store.pendingHead("feed:hie", 5);
      if (!rows.ok()) {
        errors++;
        return;
      }
      if (rows->empty()) return;  // all delivered
      for (const OutboxItem& row : *rows) {
        // Before each send: the lease still holds for a while, or the rows are someone else's.
        auto extended = store.extendLease("feed:hie", holder, nowMs(), kLeaseMs);
        if (!extended.ok() || !*extended) break;
        if (sending.fetch_add(1) != 0) overlaps++;
        {
          std::lock_guard lock(received_mutex);
          received.push_back(row.number);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        sending.fetch_sub(1);
        if (!store.recordDelivered(DeliveryAttempt{row.id, nowMs(), 200, "", 2}).ok()) errors++;
        if (++sent == die_after) return;  // killed: the lease is not released, it runs out
      }
      // Let the other handle in now and then, as a process that stops would.
      if (sent % 10 == 0 && !store.releaseLease("feed:hie", holder).ok()) errors++;
    }
  };
  std::thread a([&] { worker(*store_, "process-a", 25); });
  std::thread b([&] { worker(*other, "process-b", -1); });
  a.join();
  b.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(received, oneTo(kRows));
  EXPECT_TRUE(store_->pendingHead("feed:hie", 1)->empty());
}

// --- change log ----------------------------------------------------------------------------------

TEST_P(StoreContract, TheChangeLogRecordsChangedVersionsAndIsConsumedExactlyOnce) {
  IngestCommit first = eventCommit("c1");
  first.change_context = R"({"facts":1})";
  auto one = store_->commitIngest(std::move(first));
  ASSERT_TRUE(one.ok());
  IngestCommit unchanged = eventCommit("c1-again-same-content");
  unchanged.resources = {{"Observation", "o-c1", R"({"resourceType":"Observation","id":"o-c1"})"}};
  unchanged.change_context = "{}";
  ASSERT_TRUE(store_->commitIngest(std::move(unchanged)).ok());  // nothing changed: no change record
  IngestCommit update = eventCommit("c2");
  update.resources = {{"Observation", "o-c1", R"({"resourceType":"Observation","id":"o-c1","status":"final"})"}};
  update.change_context = R"({"facts":2})";
  auto two = store_->commitIngest(std::move(update));
  ASSERT_TRUE(two.ok());
  ASSERT_TRUE(store_->commitIngest(eventCommit("c3")).ok());  // no context: no change record

  auto changes = store_->changesAfter(0, 10);
  ASSERT_TRUE(changes.ok()) << changes.message();
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].event_seq, one->event_seq);
  EXPECT_EQ((*changes)[0].context, R"({"facts":1})");
  ASSERT_EQ((*changes)[0].resources.size(), 1u);
  EXPECT_EQ((*changes)[0].resources[0].type, "Observation");
  EXPECT_EQ((*changes)[0].resources[0].id, "o-c1");
  EXPECT_TRUE((*changes)[0].resources[0].previous_json.empty());
  EXPECT_EQ((*changes)[0].resources[0].current_json, R"({"resourceType":"Observation","id":"o-c1"})");
  const ChangedResource& updated = (*changes)[1].resources.at(0);
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(updated.previous_json, R"({"resourceType":"Observation","id":"o-c1"})");
  EXPECT_NE(updated.current_json.find("final"), std::string::npos);

  // The consumer commits its planned rows with its cursor; a second consumer run that read the
  // same changes (another handle) writes nothing.
  StorePtr other = second();
  ASSERT_TRUE(other);
  EXPECT_EQ(*store_->changeCursor("subscriptions"), 0);
  std::vector<PlannedOutbox> planned{{one->event_seq, {"subscription:s1", "notification", "n1"}},
                                     {two->event_seq, {"subscription:s1", "notification", "n2"}}};
  auto moved = store_->commitPlanned("subscriptions", 0, two->event_seq, planned);
  ASSERT_TRUE(moved.ok()) << moved.message();
  EXPECT_TRUE(*moved);
  auto again = other->commitPlanned("subscriptions", 0, two->event_seq, planned);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(numbersOf(*store_, "subscription:s1"), oneTo(2));
  auto rows = store_->outboxRange("subscription:s1", 1, 2);
  EXPECT_EQ(rows->at(0).body, "n1");
  EXPECT_EQ(rows->at(1).body, "n2");
  EXPECT_EQ(*other->changeCursor("subscriptions"), two->event_seq);
  EXPECT_TRUE(store_->changesAfter(two->event_seq, 10)->empty());

  // Changes committed later are found after the cursor.
  IngestCommit later = eventCommit("c4");
  later.change_context = "{}";
  auto four = store_->commitIngest(std::move(later));
  auto next = other->changesAfter(*other->changeCursor("subscriptions"), 10);
  ASSERT_TRUE(next.ok() && next->size() == 1u);
  EXPECT_EQ(next->front().event_seq, four->event_seq);
}

// Two handles commit events with change records at once while a consumer reads the log and moves
// its cursor: every change is consumed exactly once. (A store whose event seqs could become
// visible out of order would let the cursor pass a change committed a moment later.)
TEST_P(StoreContract, AConsumerReadingWhileTwoHandlesCommitChangesMissesNone) {
  StorePtr other = second();
  ASSERT_TRUE(other);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 30;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::mutex committed_mutex;
  std::set<int64_t> committed;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      Store& store = t % 2 == 0 ? *store_ : *other;
      for (int i = 0; i < kPerThread; ++i) {
        IngestCommit commit = eventCommit("ch" + std::to_string(t) + "-" + std::to_string(i));
        commit.change_context = "{}";
        auto outcome = store.commitIngest(std::move(commit));
        if (!outcome.ok()) {
          failures++;
          continue;
        }
        std::lock_guard lock(committed_mutex);
        committed.insert(outcome->event_seq);
      }
    });
  }
  std::set<int64_t> consumed;
  int duplicates = 0;
  auto consume = [&]() -> bool {
    auto cursor = store_->changeCursor("contract");
    if (!cursor.ok()) return failures++, false;
    auto changes = store_->changesAfter(*cursor, 25);
    if (!changes.ok()) return failures++, false;
    if (changes->empty()) return false;
    for (const ChangeRecord& record : *changes) {
      if (!consumed.insert(record.event_seq).second) duplicates++;
    }
    auto moved = store_->commitPlanned("contract", *cursor, changes->back().event_seq, {});
    if (!moved.ok() || !*moved) failures++;
    return true;
  };
  std::thread consumer([&] {
    while (writing) {
      if (!consume()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (std::thread& thread : writers) thread.join();
  writing = false;
  consumer.join();
  while (consume()) {
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(committed.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(consumed, committed);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::ValuesIn(kFactories),
                         [](const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
// Issue 20 (pages < 500 ms at 100,000 members): the scorecard pages are answered from figures
// computed in the background (gateway/server/scorecard_routes.h), never by computing on the
// request. With `scorecard.quickMs` 0 and `staleWaitMs` 0 no page waits for a computation:
//  - a page with nothing computed yet answers 202 with `Refresh` (the quality JSON a JSON 202),
//    then 200 once computed;
//  - after new data, the page answers at once with the figures it has, marked
//    `data-freshness="stale"` and "as of" their time, and later with the new figures, marked
//    "current";
// against the real binary over HTTP, the figures read from the page's data attributes (as the
// browser test does) and the expected counts from the rosters posted (12, then 12 + 13).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "conformance/common/time_util.h"
#include "tests/support/gateway_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

const char* kPayers[] = {"lakeshore-medicaid", "northwind-commercial"};

// A roster of `count` members of practice 1093817413, attributed for the whole current year; every
// member its own person (names and birth dates differ: the gateway links records of one person
// across payers by them).
std::string roster(const std::string& prefix, int count, const std::string& practice_npi = "1093817413") {
  std::string csv =
      "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
      "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end,race,ethnicity,language\n";
  const std::string year = nowIso().substr(0, 4);  // the pages' default period is this year (UTC)
  for (int i = 0; i < count; ++i) {
    const std::string id = prefix + std::to_string(100000 + i);
    csv += id + "," + prefix + "Member" + std::to_string(i) + ",Test,1970" + std::to_string(1001 + i) + ",F,commercial," + year + "0101,," + practice_npi + ",1467583914," + year +
           "0101,,2106-3,2186-5,en\n";
  }
  return csv;
}

// The value of the attribute after `prefix` (up to the next quote) at its first occurrence, "" when absent.
std::string attributeAfter(const std::string& page, const std::string& prefix) {
  const size_t at = page.find(prefix);
  if (at == std::string::npos) return "";
  const size_t from = at + prefix.size();
  const size_t end = page.find('"', from);
  return end == std::string::npos ? "" : page.substr(from, end - from);
}

// The page's attributed-members count for the whole region (the figure's data-value).
std::string membersFigure(const std::string& page) {
  return attributeAfter(page,
                        R"(data-measure="attributed-members" data-group="members" data-stratum="" data-population="initial-population" data-value=")");
}

std::string freshness(const std::string& page) { return attributeAfter(page, R"(data-freshness=")"); }

class ScorecardRefreshE2e : public ::testing::Test {
 protected:
  void SetUp() override { startGateway(""); }

  // The gateway with two payers (their endpoint refuses connections), no waiting for figures,
  // and `more` (members of the configuration, each followed by a comma).
  void startGateway(const std::string& more) {
    const std::string config_path = (dir_.path() / "config.json").string();
    std::ofstream config(config_path);
    config << R"({"dataDir": ")" << (dir_.path() / "var").string() << R"(", "payers": [)";
    for (size_t i = 0; i < 2; ++i) {
      config << (i ? "," : "") << R"({"id": ")" << kPayers[i] << R"(", "name": ")" << kPayers[i] << R"(", "format": ")" << kPayers[i]
             << R"(", "endpoint": "http://127.0.0.1:9/bundles"})";
    }
    config << R"(], )" << more << R"( "scorecard": {"quickMs": 0, "staleWaitMs": 0}})";
    config.close();
    gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
    ASSERT_NE(gateway_->port(), 0);
  }

  void postRoster(const char* payer, const std::string& prefix, int count, const std::string& practice_npi = "1093817413") {
    HttpResult posted = gateway_->post(std::string("/ingest/roster/") + payer, roster(prefix, count, practice_npi), "text/csv");
    ASSERT_EQ(posted.status, 200) << posted.body;
  }

  // GET `path` until `done` holds (every answer in between 202 with Retry-After, or 200); at most 60 s.
  HttpResult until(const std::string& path, const std::function<bool(const HttpResult&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (true) {
      HttpResult page = gateway_->get(path);
      EXPECT_TRUE(page.status == 200 || page.status == 202) << page.status << "\n" << page.body;
      if (page.status == 202) {
        EXPECT_EQ(page.retry_after, "3");
      }
      if (done(page) || std::chrono::steady_clock::now() > deadline) return page;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  TempDir dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(ScorecardRefreshE2e, PagesAnswerWithTheFiguresTheyHaveMarkedStaleThenTheNewOnes) {
  postRoster(kPayers[0], "LMC", 12);

  // Nothing computed yet, and no waiting: 202, as JSON for the quality JSON, a page that the
  // browser reloads (Refresh) until the figures are there.
  HttpResult quality_first = gateway_->get("/scorecard/quality?format=json");
  EXPECT_EQ(quality_first.status, 202) << quality_first.body.substr(0, 500);
  EXPECT_EQ(quality_first.content_type, "application/json");
  EXPECT_EQ(quality_first.body, R"({"status":"computing","retryAfterSeconds":3})");
  EXPECT_EQ(quality_first.retry_after, "3");
  HttpResult first = gateway_->get("/scorecard");
  EXPECT_EQ(first.status, 202) << first.body.substr(0, 500);
  EXPECT_NE(first.body.find("being computed"), std::string::npos) << first.body;
  HttpResult computed = until("/scorecard", [](const HttpResult& page) { return page.status == 200; });
  ASSERT_EQ(computed.status, 200) << computed.body.substr(0, 500);
  EXPECT_EQ(membersFigure(computed.body), "12");
  EXPECT_EQ(freshness(computed.body), "current");

  // New data: the page answers at once with the figures it has, saying they are older than the data.
  postRoster(kPayers[1], "NWC", 13);
  HttpResult stale = gateway_->get("/scorecard");
  ASSERT_EQ(stale.status, 200) << stale.body.substr(0, 500);
  EXPECT_EQ(membersFigure(stale.body), "12");
  EXPECT_EQ(freshness(stale.body), "stale");
  EXPECT_NE(stale.body.find("newer data has arrived since"), std::string::npos);

  // The computation that page queued gives the new figures.
  HttpResult current = until("/scorecard", [](const HttpResult& page) { return page.status == 200 && freshness(page.body) == "current"; });
  EXPECT_EQ(membersFigure(current.body), "25");
  EXPECT_EQ(freshness(current.body), "current");

  // The quality report is computed the same way; its JSON counts both rosters' accepted records.
  HttpResult quality = until("/scorecard/quality?format=json", [](const HttpResult& page) {
    return page.status == 200 && page.body.find("\"accepted\":25") != std::string::npos;
  });
  EXPECT_NE(quality.body.find("\"accepted\":25"), std::string::npos) << quality.body.substr(0, 2000);
}

// A gateway restarted on a store with data computes the region's page at start (warm()), before
// any page asks: once /metrics counts that computation, the first page is 200 and current at once
// (with no waiting, a page that had to start the computation itself would answer 202).
TEST_F(ScorecardRefreshE2e, AStartWithDataComputesTheRegionsPageAhead) {
  postRoster(kPayers[0], "LMC", 12);
  HttpResult before = gateway_->get("/metrics");
  EXPECT_EQ(before.body.find("gateway_scorecard_computations_total"), std::string::npos) << "an empty store warms nothing";
  ASSERT_EQ(gateway_->terminate(), 0);
  const std::string config_path = (dir_.path() / "config.json").string();
  gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path});
  ASSERT_NE(gateway_->port(), 0);
  const std::string measures = R"(gateway_scorecard_computations_total{figures="measures",result="ok"} 1)";
  const std::string quality = R"(gateway_scorecard_computations_total{figures="quality",result="ok"} 1)";
  const std::string feeds = R"(gateway_scorecard_computations_total{figures="feeds",result="ok"} 1)";
  HttpResult metrics = until("/metrics", [&](const HttpResult& answer) {
    return answer.body.find(measures) != std::string::npos && answer.body.find(quality) != std::string::npos &&
           answer.body.find(feeds) != std::string::npos;
  });
  ASSERT_NE(metrics.body.find(measures), std::string::npos) << metrics.body;
  ASSERT_NE(metrics.body.find(quality), std::string::npos) << metrics.body;
  ASSERT_NE(metrics.body.find(feeds), std::string::npos) << metrics.body;
  HttpResult page = gateway_->get("/scorecard");
  ASSERT_EQ(page.status, 200) << page.body.substr(0, 500);
  EXPECT_EQ(membersFigure(page.body), "12");
  EXPECT_EQ(freshness(page.body), "current");
}

// The quality report's feeds change with every delivery, its records with the data: deliveries
// alone compute the feeds again, not the records (every Provenance read again). The HIE feed
// refuses (503) until the report counts the roster's rows pending, then accepts them; the report
// then shows them delivered, and /metrics counts new feeds computations but no new quality one.
TEST_F(ScorecardRefreshE2e, DeliveriesComputeTheFeedsAgainNotTheRecords) {
  LoopbackReceiver hie;
  hie.setStatus(503);
  ASSERT_EQ(gateway_->terminate(), 0);
  startGateway(R"("feeds": [{"id": "regional-hie", "endpoint": ")" + hie.url("/notify") +
               R"("}], "delivery": {"timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 200},)");
  postRoster(kPayers[0], "LMC", 12);
  const std::string feed = R"("destination":"feed:regional-hie")";
  // The feed's own entry ({"destination": ..., "rows", "delivered", "pending", ...}) says `count` pending.
  auto feedPending = [&](const HttpResult& page, const std::string& count) {
    const size_t at = page.body.find(feed);
    if (at == std::string::npos) return false;
    const std::string entry = page.body.substr(at, page.body.find('}', at) - at);
    return entry.find(R"("pending":)" + count + ",") != std::string::npos;
  };
  HttpResult waiting = until("/scorecard/quality?format=json", [&](const HttpResult& page) {
    return page.status == 200 && page.body.find("\"accepted\":12") != std::string::npos &&
           page.body.find(feed) != std::string::npos && !feedPending(page, "0");
  });
  ASSERT_EQ(waiting.status, 200) << waiting.body.substr(0, 2000);
  ASSERT_NE(waiting.body.find(feed), std::string::npos) << waiting.body.substr(0, 2000);
  ASSERT_FALSE(feedPending(waiting, "0")) << waiting.body.substr(0, 2000);
  // How many computations of `figures` /metrics counts (-1: none yet).
  auto computations = [&](const std::string& figures) {
    return gateway_->metric("gateway_scorecard_computations_total", "figures=\"" + figures + "\",result=\"ok\"");
  };
  const double records_before = computations("quality");
  const double feeds_before = computations("feeds");
  EXPECT_GE(records_before, 1);

  hie.setStatus(200);
  HttpResult delivered = until("/scorecard/quality?format=json", [&](const HttpResult& page) {
    return page.status == 200 && feedPending(page, "0");
  });
  ASSERT_TRUE(feedPending(delivered, "0")) << delivered.body.substr(0, 2000);
  EXPECT_NE(delivered.body.find("\"accepted\":12"), std::string::npos) << delivered.body.substr(0, 2000);
  EXPECT_GT(computations("feeds"), feeds_before);
  EXPECT_EQ(computations("quality"), records_before) << "the records were computed again for deliveries";
}

// The practices a page knows are read again when the data changed (they are kept per data
// version): a practice whose first roster arrives after a page said "no practice" is found by the
// next page, on the practice's report and as the convener page's filter.
TEST_F(ScorecardRefreshE2e, APracticeWhoseRosterArrivesAfterAPageIsFoundByTheNext) {
  postRoster(kPayers[0], "LMC", 3);
  const std::string report = "/scorecard/practice/1093817421";
  const std::string filtered = "/scorecard?practice=1093817421";
  HttpResult unknown = gateway_->get(report);
  EXPECT_EQ(unknown.status, 404) << unknown.body.substr(0, 500);
  EXPECT_NE(unknown.body.find("no practice with NPI 1093817421"), std::string::npos) << unknown.body.substr(0, 500);
  EXPECT_EQ(gateway_->get(filtered).status, 404);
  postRoster(kPayers[1], "NWC", 12, "1093817421");  // 12: counts under 11 are masked
  HttpResult found = until(report, [](const HttpResult& page) { return page.status == 200; });
  ASSERT_EQ(found.status, 200) << found.body.substr(0, 500);
  EXPECT_EQ(membersFigure(found.body), "12");
  HttpResult convener = until(filtered, [](const HttpResult& page) { return page.status == 200; });
  EXPECT_EQ(convener.status, 200) << convener.body.substr(0, 500);
}

}  // namespace
}  // namespace fhir::testing

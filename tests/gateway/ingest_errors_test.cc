// SPDX-License-Identifier: Apache-2.0
// Errors stay errors (issue 12, Build 4): a store that fails while the ingest path reads from it
// is a 503 with Retry-After (the sender retries), never "no coverage" (422) and never a payload
// quarantined as bad data. In process: the real specs and pipeline over a SQLite store wrapped in
// a store whose reads fail on demand.

#include <atomic>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"
#include "conformance/common/ids.h"
#include "tests/gateway/forwarding_store.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr const char* kPayerA = "lakeshore-medicaid";
constexpr const char* kPayerB = "northwind-commercial";
constexpr const char* kRosterHeader =
    "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
    "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n";

// A store whose reads fail while a flag is set.
class FailingStore final : public test_stores::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<bool> fail_coverage{false};
  std::atomic<bool> fail_clusters{false};
  std::atomic<int> coverage_reads{0};

  Result<std::vector<fhir::CoverageFact>> coverageOf(std::string_view patient_id) override {
    ++coverage_reads;
    if (fail_coverage) return Error{"disk I/O error (injected)"};
    return inner_->coverageOf(patient_id);
  }
  Result<std::vector<std::string>> clusterOf(std::string_view patient_id) override {
    if (fail_clusters) return Error{"disk I/O error (injected)"};
    return inner_->clusterOf(patient_id);
  }
};

std::filesystem::path freshDir() {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() /
              ("gateway-ingest-errors-" + std::to_string(random()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(path);
  return path;
}

Config twoPayers(const std::string& data_dir) {
  Config config;
  config.data_dir = data_dir;
  PayerConfig payer;
  payer.id = kPayerA;
  payer.name = "Lakeshore Medicaid MCO";
  payer.format = "lakeshore-medicaid";
  payer.endpoint = "http://127.0.0.1:9/a";
  payer.routes.codes = {"99451", "99452", "ACM"};
  PayerConfig other;
  other.id = kPayerB;
  other.name = "Northwind Commercial";
  other.format = "northwind-commercial";
  other.endpoint = "http://127.0.0.1:9/b";
  config.payers = {payer, other};
  return config;
}

std::shared_ptr<const mappers::engine::SpecLibrary> specs() {
  static std::shared_ptr<const mappers::engine::SpecLibrary> library = [] {
    auto loaded = mappers::engine::SpecLibrary::load({});
    EXPECT_TRUE(loaded.ok()) << loaded.message();
    return std::shared_ptr<const mappers::engine::SpecLibrary>(std::move(*loaded));
  }();
  return library;
}

// An e-consult response billing 99451; `coverage` is the patient.coverage member ("" for none:
// then only stored coverage can give the claim an insurer).
std::string response(const std::string& event_id, const std::string& coverage) {
  std::string text = R"({"eventId": ")" + event_id + R"(", "source": "epic-prod-northshore", "eventType": "response",
    "occurredAt": "2026-06-15T09:00:00-05:00", "consultId": "EC-9",
    "patient": {"mrn": "NS-884213", "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.1",
      "family": "Okafor", "given": ["Adaeze", "N"], "birthDate": "1961-03-19", "sex": "female")";
  if (!coverage.empty()) text += R"(, "coverage": )" + coverage;
  text += R"(},
    "specialist": {"npi": "1881726354", "name": "Ravi Menon MD", "specialty": "207RC0000X"},
    "answeredAt": "2026-06-15T09:00:00-05:00", "recommendation": "Start metoprolol.", "minutesSpent": 15,
    "billing": [{"code": "99451", "system": "http://www.ama-assn.org/go/cpt", "billedBy": "specialist",
                 "npi": "1881726354", "dateOfService": "2026-06-15"}]})";
  return text;
}

constexpr const char* kUndatedCoverage =
    R"([{"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"}])";
// Undated coverage of both payers: nothing decides between them until a roster does.
constexpr const char* kUndatedCoverageOfBoth =
    R"([{"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"},
        {"payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial"}])";

struct Gateway {
  Gateway() : dir(freshDir()), config(twoPayers(dir.string())) {
    auto opened = openSqliteStore(config.data_dir);
    EXPECT_TRUE(opened.ok()) << opened.message();
    store = std::make_shared<FailingStore>(*opened);
    pipeline = std::make_unique<Pipeline>(config, store, nullptr, metrics, nullptr);
    pipeline->setSpecs(specs());
  }
  ~Gateway() {
    pipeline.reset();
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  size_t quarantined() {
    auto entries = store->inner()->listQuarantine(100);
    EXPECT_TRUE(entries.ok());
    return entries.ok() ? entries->size() : 0;
  }
  size_t claimsToPayer() {
    auto last = store->inner()->lastNumber(std::string("payer:") + kPayerA);
    EXPECT_TRUE(last.ok());
    return last.ok() ? static_cast<size_t>(*last) : 0;
  }

  std::filesystem::path dir;
  Config config;
  Metrics metrics;
  std::shared_ptr<FailingStore> store;
  std::unique_ptr<Pipeline> pipeline;
};

// The answer is a 503 OperationOutcome saying the store failed, with Retry-After.
void expectStoreFailure(const Answer& answer) {
  EXPECT_EQ(answer.status, 503) << answer.body;
  EXPECT_GT(answer.retry_after, 0);
  EXPECT_NE(answer.body.find("the store failed"), std::string::npos) << answer.body;
  EXPECT_NE(answer.body.find("\"transient\""), std::string::npos) << answer.body;
  EXPECT_EQ(answer.body.find("no coverage"), std::string::npos) << answer.body;
}

// The control: with a healthy store and no coverage anywhere, the same event is a 422 "no
// coverage" and is quarantined. That is the answer a failing coverage read used to give.
TEST(IngestErrorsTest, WithoutAnyCoverageTheEventIsRefusedAsData) {
  Gateway gateway;
  Answer answer = gateway.pipeline->ingestEconsult(response("r-0", ""), "application/json");
  EXPECT_EQ(answer.status, 422) << answer.body;
  EXPECT_NE(answer.body.find("no coverage"), std::string::npos) << answer.body;
  EXPECT_EQ(gateway.quarantined(), 1u);
}

// The store fails during the mapper's coverage read (the payer's roster is stored; the event
// lists the member id without dates): 503, nothing quarantined, nothing committed; once the store
// is back the same post is accepted and the claim goes to the payer.
TEST(IngestErrorsTest, CoverageReadFailureWhileMappingIsA503NotNoCoverage) {
  Gateway gateway;
  const std::string roster = std::string(kRosterHeader) +
                             "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20261231,1093817462,1467583922,20260101,\r\n";
  ASSERT_EQ(gateway.pipeline->ingestPayerFile("roster", kPayerA, roster, "text/csv").status, 200);
  const size_t before = gateway.claimsToPayer();

  gateway.store->fail_coverage = true;
  gateway.store->coverage_reads = 0;
  const std::string body = response("r-1", kUndatedCoverage);
  expectStoreFailure(gateway.pipeline->ingestEconsult(body, "application/json"));
  EXPECT_GT(gateway.store->coverage_reads.load(), 0);  // the failure was met where it was injected
  EXPECT_EQ(gateway.quarantined(), 0u);
  auto answer = gateway.store->inner()->findAnswer("epic-prod-northshore\x1fr-1");
  ASSERT_TRUE(answer.ok());
  EXPECT_FALSE(answer->has_value());  // nothing committed
  EXPECT_EQ(gateway.claimsToPayer(), before);

  gateway.store->fail_coverage = false;
  Answer retried = gateway.pipeline->ingestEconsult(body, "application/json");
  EXPECT_EQ(retried.status, 202) << retried.body;
  EXPECT_EQ(gateway.claimsToPayer(), before + 1);
  EXPECT_EQ(gateway.quarantined(), 0u);
}

// With coverage in the event too, the routing read of the stored timeline fails: still a 503.
TEST(IngestErrorsTest, CoverageReadFailureWithEventCoverageIsA503) {
  Gateway gateway;
  gateway.store->fail_coverage = true;
  expectStoreFailure(gateway.pipeline->ingestEconsult(response("r-2", kUndatedCoverage), "application/json"));
  EXPECT_EQ(gateway.quarantined(), 0u);
  EXPECT_EQ(gateway.claimsToPayer(), 0u);
}

// A care-management event billing an ACM: the same rule on its channel.
TEST(IngestErrorsTest, CareManagementCoverageReadFailureIsA503) {
  Gateway gateway;
  const std::string lines = fhir::testing::readFile(std::filesystem::path(GATEWAY_SOURCE_DIR) / "mappers" / "samples" / "care-management.ndjson");
  std::string billed;
  for (size_t start = 0; start < lines.size();) {
    size_t end = lines.find('\n', start);
    std::string line = lines.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.find("\"billing\"") != std::string::npos) {
      billed = line;
      break;
    }
    start = end == std::string::npos ? lines.size() : end + 1;
  }
  ASSERT_FALSE(billed.empty());
  gateway.store->fail_coverage = true;
  expectStoreFailure(gateway.pipeline->ingestCareManagement(billed, "application/json"));
  EXPECT_EQ(gateway.quarantined(), 0u);
  gateway.store->fail_coverage = false;
  Answer retried = gateway.pipeline->ingestCareManagement(billed, "application/json");
  EXPECT_EQ(retried.status, 202) << retried.body;
}

// A roster whose routing of waiting claims meets a store failure is answered 503 (not 200 with
// the claims silently left waiting); posted again once the store is back, the claim leaves.
TEST(IngestErrorsTest, RosterRoutingWaitingClaimsOnAFailingStoreIsA503AndTheRepostRoutes) {
  Gateway gateway;
  // The event names both payers without dates: its June claim waits (ambiguous). Payer A's
  // roster covering June settles it.
  Answer event = gateway.pipeline->ingestEconsult(response("r-3", kUndatedCoverageOfBoth), "application/json");
  ASSERT_EQ(event.status, 202) << event.body;
  auto waiting = gateway.store->inner()->listUnroutable(10);
  ASSERT_TRUE(waiting.ok());
  ASSERT_EQ(waiting->size(), 1u);
  const size_t before = gateway.claimsToPayer();

  const std::string extended = std::string(kRosterHeader) +
                               "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20261231,1093817462,1467583922,20260101,\r\n";
  gateway.store->fail_clusters = true;
  Answer failed = gateway.pipeline->ingestPayerFile("roster", kPayerA, extended, "text/csv");
  expectStoreFailure(failed);
  EXPECT_EQ(gateway.quarantined(), 0u);
  EXPECT_EQ(gateway.claimsToPayer(), before);

  gateway.store->fail_clusters = false;
  Answer again = gateway.pipeline->ingestPayerFile("roster", kPayerA, extended, "text/csv");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(gateway.claimsToPayer(), before + 1);
  EXPECT_TRUE(gateway.store->inner()->listUnroutable(10)->empty());
}

}  // namespace
}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
// The gateway's own resources pass its own validator with zero errors (issue 18, Build 5): the
// published topic Basic resources, and every notification Bundle kind it emits (handshake,
// heartbeat, event-notification, $status query-status, $events query-event) in every payload
// content, and the `202` answers of the ingest channels (the stored Bundle, with the warnings as
// a last OperationOutcome entry), validated with the definitions the server loads.

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "mappers/engine/engine.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

namespace fs = std::filesystem;

ValidatorPtr serverValidatorPtr() {
  static const ValidatorPtr validator = [] {
    ValidatorOptions options;
    fs::path profiles(GATEWAY_PROFILES_DIR);
    for (const char* package : {"subscriptions-backport", "r5-cross-version", "alignment"}) {
      options.extra_paths.push_back((profiles / package / "package").string());
    }
    auto created = createValidator(options);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.message());
    if (!created.ok()) std::abort();
    return *created;
  }();
  return validator;
}

const Validator& serverValidator() { return *serverValidatorPtr(); }

std::string errorsOf(const std::string& text) {
  IssueList issues;
  serverValidator().validateText(text, ValidationRequest{}, issues);
  std::string out;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    out += (issue.expression.empty() ? std::string("-") : issue.expression.front()) + ": " + issue.diagnostics + "\n";
  }
  return out;
}

TEST(EmittedResourcesTest, TopicsValidate) {
  size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(GATEWAY_PROFILES_DIR) / "alignment" / "package")) {
    std::string name = entry.path().filename().string();
    if (name.rfind("Basic-topic-", 0) != 0) continue;
    EXPECT_EQ(errorsOf(testing::readFile(entry.path())), "") << name;
    ++checked;
  }
  EXPECT_GE(checked, 10u);
}

TEST(EmittedResourcesTest, EveryNotificationBundleKindValidates) {
  const std::string topic = "https://fhir.alignment-gateway.org/SubscriptionTopic/econsult-requested";
  auto patient = json::parse(R"({"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}]})");
  ASSERT_TRUE(patient.ok());
  std::vector<const json::Value*> resources{&*patient};
  std::string record = notificationRecord(topic, "Patient/p1", resources);
  std::vector<NotificationEvent> events{{7, record}, {8, record}};
  const std::string base = "http://127.0.0.1:8080/fhir";
  size_t checked = 0;
  for (PayloadContent content : {PayloadContent::kEmpty, PayloadContent::kIdOnly, PayloadContent::kFullResource}) {
    Subscription subscription;
    subscription.id = "s1";
    subscription.status = "active";
    subscription.topic = topic;
    subscription.endpoint = "http://127.0.0.1:9201/notify";
    subscription.content = content;
    for (NotificationType type : {NotificationType::kHandshake, NotificationType::kHeartbeat,
                                  NotificationType::kEventNotification, NotificationType::kQueryStatus,
                                  NotificationType::kQueryEvent}) {
      bool with_events = type == NotificationType::kEventNotification || type == NotificationType::kQueryEvent;
      std::string bundle = *notificationBundle(subscription, type, 8, with_events ? events : std::vector<NotificationEvent>{}, base);
      EXPECT_EQ(errorsOf(bundle), "") << "content " << static_cast<int>(content) << ", type "
                                      << static_cast<int>(type) << ":\n" << bundle;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 15u);
}

// A data directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device random;
    path_ = fs::temp_directory_path() / ("gateway-emitted-" + std::to_string(random()) + "-" + std::to_string(random()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The 202 answers of the JSON ingest channels, through the pipeline with the server's validator:
// an e-consult request (the contract's example event), its response with billing routed to a
// payer, and every care-management sample event.
TEST(EmittedResourcesTest, IngestAcceptedAnswersValidate) {
  TempDir dir;
  Config config;
  config.data_dir = dir.path().string();
  PayerConfig payer;
  payer.id = "lakeshore-medicaid";
  payer.name = "Lakeshore Medicaid MCO";
  payer.format = "lakeshore-medicaid";
  payer.endpoint = "http://127.0.0.1:9/a";
  payer.routes.codes = {"99451", "99452", "ACM"};
  config.payers = {payer};
  auto store = openSqliteStore(config.data_dir);
  ASSERT_TRUE(store.ok()) << store.message();
  Metrics metrics;
  Pipeline pipeline(config, *store, serverValidatorPtr(), metrics, nullptr);
  auto specs = mappers::engine::SpecLibrary::load({});
  ASSERT_TRUE(specs.ok()) << specs.message();
  pipeline.setSpecs(std::shared_ptr<const mappers::engine::SpecLibrary>(std::move(*specs)));

  const fs::path samples = fs::path(GATEWAY_SPECS_DIR).parent_path() / "samples";
  std::string request = readText(samples / "econsult.json");
  ASSERT_FALSE(request.empty());
  auto request_doc = json::parse(request);
  ASSERT_TRUE(request_doc.ok());
  std::string consult(json::getString(*request_doc, "consultId").value_or(""));
  const std::string response =
      R"({"eventId": "emitted-resp-1", "source": "epic-prod-northshore", "eventType": "response",
          "occurredAt": "2026-06-15T09:00:00-05:00", "consultId": ")" + consult + R"(",
          "patient": {"mrn": "NS-884213", "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.1",
            "family": "Okafor", "given": ["Adaeze", "N"], "birthDate": "1961-03-19", "sex": "female",
            "coverage": [{"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"}]},
          "specialist": {"npi": "1881726354", "name": "Ravi Menon MD", "specialty": "207RC0000X"},
          "answeredAt": "2026-06-15T09:00:00-05:00", "recommendation": "Start metoprolol.", "minutesSpent": 15,
          "billing": [{"code": "99451", "system": "http://www.ama-assn.org/go/cpt", "billedBy": "specialist",
                       "npi": "1881726354", "dateOfService": "2026-06-15"}]})";
  size_t accepted = 0, with_outcome = 0;
  auto check = [&](const Answer& answer, const std::string& what) {
    EXPECT_EQ(answer.status, 202) << what << ": " << answer.body;
    if (answer.status != 202) return;
    ++accepted;
    auto doc = json::parse(answer.body);
    ASSERT_TRUE(doc.ok()) << what;
    EXPECT_EQ(json::getString(*doc, "resourceType"), "Bundle") << what;
    if (answer.body.find("\"OperationOutcome\"") != std::string::npos) ++with_outcome;
    EXPECT_EQ(errorsOf(answer.body), "") << what << ":\n" << answer.body;
  };
  check(pipeline.ingestEconsult(request, "application/json"), "e-consult request");
  check(pipeline.ingestEconsult(response, "application/json"), "e-consult response with billing");
  std::istringstream lines(readText(samples / "care-management.ndjson"));
  size_t line_number = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    check(pipeline.ingestCareManagement(line, "application/json"), "care-management line " + std::to_string(++line_number));
  }
  EXPECT_EQ(accepted, 2 + line_number);
  // The validator's warnings (dom-6: no narrative) make every answer carry the OperationOutcome
  // entry, so it is validated too.
  EXPECT_EQ(with_outcome, accepted) << "an answer without its OperationOutcome entry: the entry was not validated";
}

}  // namespace
}  // namespace fhir::gateway

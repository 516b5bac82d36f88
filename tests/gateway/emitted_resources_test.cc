// SPDX-License-Identifier: Apache-2.0
// The gateway's own resources pass its own validator with zero errors (issue 18, Build 5): the
// published topic Basic resources, and every notification Bundle kind it emits (handshake,
// heartbeat, event-notification, $status query-status, $events query-event) in every payload
// content, validated with the definitions the server loads.

#include <filesystem>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "conformance/validator/validator.h"
#include "gateway/subscriptions/subscription.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

namespace fs = std::filesystem;

const Validator& serverValidator() {
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
  return *validator;
}

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
      std::string bundle = notificationBundle(subscription, type, 8, with_events ? events : std::vector<NotificationEvent>{}, base);
      EXPECT_EQ(errorsOf(bundle), "") << "content " << static_cast<int>(content) << ", type "
                                      << static_cast<int>(type) << ":\n" << bundle;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 15u);
}

}  // namespace
}  // namespace fhir::gateway

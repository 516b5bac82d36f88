// SPDX-License-Identifier: Apache-2.0
#pragma once

// The HTTP API (contracts/http-api.md) on POCO's HTTPServer.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "conformance/common/result.h"
#include "conformance/validator/validator.h"
#include "gateway/auth/audit.h"
#include "gateway/auth/auth_service.h"
#include "gateway/auth/policy.h"
#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"
#include "gateway/store/store.h"
#include "gateway/subscriptions/subscription.h"
#include "gateway/subscriptions/topics.h"

namespace fhir::gateway {

namespace exports {
class ExportService;
}

struct ServerContext {
  const Config& config;
  StorePtr store;
  ValidatorPtr validator;  // null: /readyz answers 503 and $validate is unavailable
  Pipeline& pipeline;
  Metrics& metrics;
  std::vector<std::string> topic_canonicals;  // advertised in /fhir/metadata
  TopicCatalogPtr topics;                     // null: no subscriptions
  SubscriptionRegistry* subscriptions = nullptr;
  std::function<void()> wake_delivery;        // a subscription was created or changed
  std::string base_url;                       // http://host:port/fhir, set once listening
  auth::AuthService* auth = nullptr;          // set with an `auth` block: serves /auth/token and
                                              // /.well-known/smart-configuration, and every other
                                              // route but the open ones asks for a Bearer token
  const auth::AccessPolicy* policy = nullptr; // who sees what; null: every check allows
  auth::AuditLog* audit = nullptr;            // null: nothing is audited
  exports::ExportService* exports = nullptr;  // null: no Bulk export ($export is not served)
};

class HttpServer {
 public:
  explicit HttpServer(ServerContext& context);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0 picks a free one) and starts serving.
  Status start(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  // Stops accepting, lets in-flight requests finish.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace fhir::gateway

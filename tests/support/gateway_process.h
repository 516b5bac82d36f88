// SPDX-License-Identifier: Apache-2.0
#pragma once

// The real fhir-gateway binary run as a child process, and a small HTTP client for it.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace fhir::testing {

struct HttpResult {
  int status = 0;
  std::string content_type;
  std::string body;
  std::string retry_after;  // the Retry-After header, empty when absent
};

// One HTTP request to 127.0.0.1:port (a fresh connection each time).
HttpResult httpRequest(uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body = {}, const std::string& content_type = "application/json");

// GATEWAY_TEST_STORE_PG=<scripts/pg-test env file> (the ctest label e2e-postgresql): `args` with
// its `--config FILE` replaced by FILE.postgresql.json, the same configuration plus a "store" block
// for that test cluster: one schema per data directory (`--data DIR`, else FILE's dataDir, else
// FILE: testSchemaFor of it), so a restarted gateway, a second process and a CLI run on the same
// data directory find the same data. Without the variable, or without --config, `args` come
// back unchanged.
std::vector<std::string> withTestStore(std::vector<std::string> args);
// True when GATEWAY_TEST_STORE_PG is set: the e2e tests run on the PostgreSQL store.
bool testStoreIsPostgres();

class GatewayProcess {
 public:
  // Starts `fhir-gateway serve --listen 127.0.0.1:0` with the extra arguments and waits for its
  // "listening on" line. Fails the current test when it does not come within 30 s.
  explicit GatewayProcess(const std::vector<std::string>& args);
  ~GatewayProcess();

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // SIGKILL, no cleanup at all.
  void kill();
  // SIGTERM and wait; returns the exit status.
  int terminate();

  HttpResult get(const std::string& path) const { return httpRequest(port_, "GET", path); }
  HttpResult post(const std::string& path, const std::string& body,
                  const std::string& content_type = "application/json") const {
    return httpRequest(port_, "POST", path, body, content_type);
  }
  // The value of the /metrics line `name{labels} value`, or -1 when there is none.
  double metric(const std::string& name, const std::string& labels) const;

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace fhir::testing

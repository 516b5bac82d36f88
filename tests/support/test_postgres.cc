// SPDX-License-Identifier: Apache-2.0
#include "tests/support/test_postgres.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <unistd.h>
#include <sstream>

namespace fhir::testing {

Result<TestPostgres> testPostgres() {
  const char* env_file = std::getenv("GATEWAY_TEST_PG");
  if (env_file == nullptr || *env_file == '\0') {
    return Error{"GATEWAY_TEST_PG is not set: run the test through ctest (fixture \"postgresql\"), or start a "
                 "cluster with `scripts/pg-test start DIR` and set GATEWAY_TEST_PG=DIR/env"};
  }
  return testPostgresFrom(env_file);
}

Result<TestPostgres> testPostgresFrom(const std::string& env_file) {
  std::ifstream in(env_file);
  if (!in) return Error{"cannot read " + env_file + " (did scripts/pg-test start fail?)"};
  TestPostgres pg;
  std::string line;
  while (std::getline(in, line)) {
    const size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = line.substr(0, equals);
    const std::string value = line.substr(equals + 1);
    if (key == "GATEWAY_TEST_PG_URL") pg.url = value;
    if (key == "GATEWAY_TEST_PG_PASSWORD_FILE") pg.password_file = value;
  }
  if (pg.url.empty() || pg.password_file.empty()) return Error{env_file + " lacks the URL or password file"};
  std::ifstream password(pg.password_file);
  if (!password) return Error{"cannot read " + pg.password_file};
  std::getline(password, pg.password);
  return pg;
}

std::string testSchemaFor(const std::string& key) {
  // Salted per process: a cluster kept across runs (by hand) never hands a test an old schema.
  static const size_t salt = std::hash<std::string>{}(std::to_string(std::random_device{}()) + std::to_string(::getpid()));
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "t_%016zx", std::hash<std::string>{}(key) ^ salt);
  return buffer;
}

}  // namespace fhir::testing

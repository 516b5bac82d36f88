// SPDX-License-Identifier: Apache-2.0
#pragma once

// The throwaway PostgreSQL cluster of the tests (scripts/pg-test; ctest's fixture "postgresql"
// starts it and sets GATEWAY_TEST_PG to its env file). A test that needs it and does not find it
// fails with the reason: PostgreSQL tests never skip.

#include <string>

#include "conformance/common/result.h"

namespace fhir::testing {

struct TestPostgres {
  std::string url;            // postgresql://gateway@127.0.0.1:PORT/gateway (no password)
  std::string password_file;  // the password alone in a file
  std::string password;       // its content
};

Result<TestPostgres> testPostgres();
// The same from an env file scripts/pg-test wrote.
Result<TestPostgres> testPostgresFrom(const std::string& env_file);

// A schema name of its own for `key` (a test's data directory): stores opened with the same key
// share one database, as several gateways do; different keys never see each other's rows.
std::string testSchemaFor(const std::string& key);

}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// The `store` block of the configuration (contracts/cli.md, issue 17). Parsing only: no server.
#include <gtest/gtest.h>

#include <fstream>

#include "gateway/config/config.h"
#include "gateway/store/pg_store.h"
#include "tests/support/test_support.h"

namespace fhir::gateway {
namespace {

TEST(StoreConfigTest, SqliteIsTheDefault) {
  auto config = parseConfig("{}");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->store.kind, "sqlite");
  auto explicit_sqlite = parseConfig(R"({"store": {"kind": "sqlite"}})");
  ASSERT_TRUE(explicit_sqlite.ok()) << explicit_sqlite.message();
  EXPECT_EQ(explicit_sqlite->store.kind, "sqlite");
}

TEST(StoreConfigTest, ReadsThePostgresqlBlockOfTheContract) {
  testing::TempDir dir;
  const std::string password_file = (dir.path() / "pg-password").string();
  std::ofstream(password_file) << "s3cret\n";
  auto config = parseConfig(R"({"store": {"kind": "postgresql", "url": "postgresql://gateway@db.example:5432/fhir",
                                          "passwordFile": ")" + password_file + R"(", "sslmode": "verify-full"}})");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->store.kind, "postgresql");
  EXPECT_EQ(config->store.url, "postgresql://gateway@db.example:5432/fhir");
  EXPECT_EQ(config->store.password_file, password_file);
  EXPECT_EQ(config->store.sslmode, "verify-full");
  EXPECT_EQ(config->store.schema, "public");
}

TEST(StoreConfigTest, APasswordInTheUrlIsRefused) {
  auto config = parseConfig(R"({"store": {"kind": "postgresql", "url": "postgresql://gateway:s3cret@db:5432/fhir"}})");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.message().find("store.url"), std::string::npos) << config.message();
  EXPECT_EQ(config.message().find("s3cret"), std::string::npos) << config.message();  // not echoed either
  auto in_query = parseConfig(R"({"store": {"kind": "postgresql", "url": "postgresql://db/fhir?password=s3cret"}})");
  ASSERT_FALSE(in_query.ok());
  EXPECT_EQ(in_query.message().find("s3cret"), std::string::npos) << in_query.message();
  // The store refuses it as well, whoever calls it.
  PostgresStoreOptions options;
  options.url = "postgresql://gateway:s3cret@127.0.0.1:1/fhir";
  auto opened = openPostgresStore(options);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.message().find("s3cret"), std::string::npos) << opened.message();
  EXPECT_FALSE(postgresUrlHasPassword("postgresql://gateway@db:5432/fhir?sslmode=require"));
  EXPECT_FALSE(postgresUrlHasPassword("postgresql://[::1]:5432/fhir"));
}

TEST(StoreConfigTest, BadStoreBlocksAreErrorsNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"store": {"kind": "mysql"}})", "store.kind"},
      {R"({"store": {"kind": "postgresql"}})", "store.url"},
      {R"({"store": {"kind": "postgresql", "url": "http://db/fhir"}})", "store.url"},
      {R"({"store": {"kind": "postgresql", "url": "postgresql://db/fhir", "sslmode": "sometimes"}})", "store.sslmode"},
      {R"({"store": {"kind": "postgresql", "url": "postgresql://db/fhir", "passwordFile": "/nonexistent/pw"}})",
       "store.passwordFile"},
      {R"({"store": {"kind": "postgresql", "url": "postgresql://db/fhir", "host": "db"}})", "store.host"},
      {R"({"store": {"kind": "sqlite", "url": "postgresql://db/fhir"}})", "store.url"},
  };
  for (const auto& [text, key] : cases) {
    auto config = parseConfig(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_NE(config.message().find(key), std::string::npos) << text << " -> " << config.message();
  }
}

}  // namespace
}  // namespace fhir::gateway

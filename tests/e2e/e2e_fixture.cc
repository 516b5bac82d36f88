// SPDX-License-Identifier: Apache-2.0
#include "tests/e2e/e2e_fixture.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/support/test_postgres.h"

namespace fhir::testing {

std::string replaceOnce(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::string billingEvent(const std::string& event_id, const std::string& date, const std::string& mrn) {
  std::string event = readFile(testDataDir() / "econsult" / "response.json");
  event = replaceOnce(event, "evt-7f3a-0002", event_id);
  event = replaceOnce(event, "\"mrn\": \"NS-884213\"", "\"mrn\": \"" + mrn + "\"");
  event = replaceOnce(event, R"("coverage": [{ "payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid",
                   "start": "2026-01-01", "end": "2026-12-31" }])",
                      R"("coverage": [{ "payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid",
                   "start": "2026-01-01", "end": "2026-06-30" },
                   { "payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial",
                   "start": "2026-07-01" }])");
  return replaceOnce(event, "\"dateOfService\": \"2026-10-03\"", "\"dateOfService\": \"" + date + "\"");
}

int64_t storeScalar(const std::filesystem::path& data_dir, const std::string& sql) {
  int64_t value = -1;
  if (testStoreIsPostgres()) {
    auto cluster = testPostgresFrom(std::getenv("GATEWAY_TEST_STORE_PG"));
    if (!cluster.ok()) {
      ADD_FAILURE() << cluster.message();
      return value;
    }
    const std::string schema = testSchemaFor(data_dir.string());  // as withTestStore names it
    const char* keys[] = {"dbname", "password", "options", nullptr};
    const std::string options = "-csearch_path=" + schema;
    const char* values[] = {cluster->url.c_str(), cluster->password.c_str(), options.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) == CONNECTION_OK) {
      PGresult* result = PQexec(conn, sql.c_str());
      if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) value = std::atoll(PQgetvalue(result, 0, 0));
      else ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
      PQclear(result);
    } else {
      ADD_FAILURE() << PQerrorMessage(conn);
    }
    PQfinish(conn);
    return value;
  }
  sqlite3* db = nullptr;
  const std::string path = (data_dir / "gateway.db").string();
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
      value = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  return value;
}

void GatewayFixture::SetUp() {
  config_path_ = (data_.path() / "config.json").string();
  std::ofstream config(config_path_);
  config << R"({
  "dataDir": ")" << (data_.path() / "var").string() << R"(",
  "maxBodyBytes": 65536,
  "payers": [
    { "id": "lakeshore-medicaid", "name": "Lakeshore Medicaid MCO", "format": "lakeshore-medicaid",
      "identifier": { "system": "http://hl7.org/fhir/sid/us-npi", "value": "1548271034" },
      "endpoint": ")" << payer_.url("/bundles") << R"(", "secret": "payer-secret",
      "routes": { "codes": ["99451", "99452", "ACM"], "linesOfBusiness": ["medicaid"] } }
  ],
  "feeds": [ { "id": "regional-hie", "endpoint": ")" << hie_.url("/notify") << R"(" } ],
  "delivery": { "timeoutMs": 2000, "initialBackoffMs": 50, "maxBackoffMs": 400, "giveUpAfterHours": )" << give_up_after_hours_ << R"( }
})";
}

void GatewayFixture::startGateway() {
  gateway_.reset();
  gateway_ = std::make_unique<GatewayProcess>(std::vector<std::string>{"--config", config_path_});
  ASSERT_NE(gateway_->port(), 0);
}

std::string GatewayFixture::event(const std::string& name) {
  return readFile(testDataDir() / "econsult" / (name + ".json"));
}

json::Document GatewayFixture::parse(const std::string& text) {
  auto doc = json::parse(text);
  EXPECT_TRUE(doc.ok()) << doc.message() << "\n" << text;
  return doc.ok() ? std::move(*doc) : json::Document();
}

std::string GatewayFixture::quarantinedPayload(const std::string& id) const {
  HttpResult entry = gateway_->get("/admin/quarantine/" + id);
  EXPECT_EQ(entry.status, 200) << entry.body;
  json::Document doc = parse(entry.body);
  auto encoded = json::getString(doc, "payloadBase64");
  EXPECT_TRUE(encoded.has_value()) << entry.body;
  std::string out;
  uint32_t bits = 0;
  int held = 0;
  for (char c : encoded.value_or("")) {
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* found = c == '=' ? nullptr : std::strchr(alphabet, c);
    if (found == nullptr) break;
    bits = (bits << 6) | static_cast<uint32_t>(found - alphabet);
    held += 6;
    if (held >= 8) {
      held -= 8;
      out.push_back(static_cast<char>((bits >> held) & 0xff));
    }
  }
  return out;
}

json::Document GatewayFixture::waitForDeadLetters() const {
  using namespace std::chrono_literals;
  json::Document letters;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  do {
    std::this_thread::sleep_for(50ms);
    letters = parse(gateway_->get("/admin/dead-letters").body);
  } while (letters["items"].Empty() && std::chrono::steady_clock::now() < deadline);
  return letters;
}

const json::Value* GatewayFixture::findEntry(const json::Value& bundle, const std::string& type) {
  const json::Value* entries = json::find(bundle, "entry");
  if (entries != nullptr && entries->IsArray()) {
    for (const json::Value& entry : entries->GetArray()) {
      const json::Value* resource = json::find(entry, "resource");
      if (resource != nullptr && json::getString(*resource, "resourceType") == type) return resource;
    }
  }
  ADD_FAILURE() << "no " << type << " in the Bundle";
  return nullptr;
}

}  // namespace fhir::testing

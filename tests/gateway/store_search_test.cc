// SPDX-License-Identifier: Apache-2.0
// Search through the store contract (issue 15, store.h Store::search), on SQLite and PostgreSQL:
// index rows written with each resource and rewritten when it changes, the upgrade pass over a
// store written before the index existed, every parameter type/modifier/prefix over the R4 core
// examples of tests/data/r4-examples (loaded through commitIngest), keyset paging while another
// thread writes, _sort, _total, _include/_revinclude, and the access policy (two payers on one
// patient).
//
// The expected ids of the R4 example queries were computed BY HAND from the example JSON; they
// are the ones of tests/conformance/search/search_test.cc (which explains each one next to it),
// here run through the SQL candidate selection and paging of both stores.

#include <libpq-fe.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "conformance/search/search.h"
#include "gateway/auth/policy.h"
#include "gateway/store/pg_store.h"
#include "gateway/store/search_index.h"
#include "gateway/store/store.h"
#include "tests/support/test_postgres.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

namespace fs = std::filesystem;
using Ids = std::set<std::string>;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kBase = "https://gw.example/fhir";
constexpr int64_t kS = 1000000;

struct StoreKind {
  std::string name;
  std::function<Result<StorePtr>(const std::string& dir)> open;
  // Turns the store of `dir` into one written before the search index existed: its index tables
  // are gone (PostgreSQL: and migration 3 is not recorded as applied).
  std::function<Status(const std::string& dir)> forget_index;
  // The one integer a query over the store's tables gives (read beside the store, not through it).
  std::function<Result<int64_t>(const std::string& dir, const std::string& sql)> scalar;
};
void PrintTo(const StoreKind& kind, std::ostream* out) { *out << kind.name; }

Result<StorePtr> openPostgres(const std::string& dir) {
  auto cluster = testing::testPostgres();
  if (!cluster.ok()) return cluster.error();
  PostgresStoreOptions options;
  options.url = cluster->url;
  options.password = cluster->password;
  options.schema = testing::testSchemaFor(dir);
  return openPostgresStore(options);
}

Status forgetSqliteIndex(const std::string& dir) {
  sqlite3* db = nullptr;
  if (sqlite3_open((fs::path(dir) / "gateway.db").string().c_str(), &db) != SQLITE_OK) return Error{"cannot open"};
  char* message = nullptr;
  const int rc = sqlite3_exec(db, "DROP TABLE search_entries; DROP TABLE search_rows;", nullptr, nullptr, &message);
  std::string error = message != nullptr ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  if (rc != SQLITE_OK) return Error{error};
  return Status::Ok();
}

// A connection to the test cluster with the schema of the store in `dir` on its search path.
Result<PGconn*> connectToSchemaOf(const std::string& dir) {
  auto cluster = testing::testPostgres();
  if (!cluster.ok()) return cluster.error();
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {cluster->url.c_str(), cluster->password.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (PQstatus(conn) != CONNECTION_OK) {
    PQfinish(conn);
    return Error{"cannot connect"};
  }
  PGresult* set = PQexec(conn, ("SET search_path TO \"" + testing::testSchemaFor(dir) + "\"").c_str());
  const bool ok = PQresultStatus(set) == PGRES_COMMAND_OK;
  PQclear(set);
  if (!ok) {
    PQfinish(conn);
    return Error{"cannot set the search path"};
  }
  return conn;
}

Status forgetPostgresIndex(const std::string& dir) {
  auto conn = connectToSchemaOf(dir);
  if (!conn.ok()) return Error{conn.message()};
  PGresult* result = PQexec(*conn, "DROP TABLE search_entries; DROP TABLE search_rows; "
                                   "DELETE FROM schema_migrations WHERE version = 3;");
  const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
  std::string error = ok ? "" : PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(*conn);
  if (!ok) return Error{error};
  return Status::Ok();
}

Result<int64_t> sqliteScalar(const std::string& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open((fs::path(dir) / "gateway.db").string().c_str(), &db) != SQLITE_OK) return Error{"cannot open"};
  sqlite3_stmt* statement = nullptr;
  Result<int64_t> out = Error{"no row"};
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    out = Error{sqlite3_errmsg(db)};
  } else if (sqlite3_step(statement) == SQLITE_ROW) {
    out = static_cast<int64_t>(sqlite3_column_int64(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return out;
}

Result<int64_t> postgresScalar(const std::string& dir, const std::string& sql) {
  auto conn = connectToSchemaOf(dir);
  if (!conn.ok()) return conn.error();
  PGresult* result = PQexec(*conn, sql.c_str());
  Result<int64_t> out = Error{PQresultErrorMessage(result)};
  if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) out = std::atoll(PQgetvalue(result, 0, 0));
  PQclear(result);
  PQfinish(*conn);
  return out;
}

const StoreKind kKinds[] = {
    {"sqlite", [](const std::string& dir) { return openSqliteStore(dir); }, &forgetSqliteIndex, &sqliteScalar},
    {"postgresql", &openPostgres, &forgetPostgresIndex, &postgresScalar},
};

const search::Registry& registry() {
  auto loaded = searchindex::registry();
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.message());
  return **loaded;
}

std::string readText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

IngestCommit commitOf(const std::string& key, std::vector<ResourceWrite> resources, std::string channel = "test") {
  IngestCommit commit;
  commit.channel = std::move(channel);
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.answer = "ok";
  commit.resources = std::move(resources);
  return commit;
}

ResourceWrite resourceOf(const std::string& json) {
  auto doc = json::parse(json);
  EXPECT_TRUE(doc.ok()) << json;
  return ResourceWrite{std::string(json::getString(*doc, "resourceType").value_or("")),
                       std::string(json::getString(*doc, "id").value_or("")), json};
}

struct Found {
  std::vector<std::string> ids;       // matches in page order, over every page
  std::vector<std::string> included;  // "Type/id" of included entries
  int64_t total = -1;                 // of the first page
  int pages = 0;
  std::string error;
};

class StoreSearch : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = open(); }
  StorePtr open() {
    auto opened = GetParam().open(dir_.path().string());
    EXPECT_TRUE(opened.ok()) << opened.message();
    return opened.ok() ? *opened : nullptr;
  }

  void write(const std::string& key, const std::vector<std::string>& jsons, const std::string& channel = "test",
             std::vector<CoverageFact> coverage = {}) {
    std::vector<ResourceWrite> resources;
    for (const std::string& json : jsons) resources.push_back(resourceOf(json));
    IngestCommit commit = commitOf(key, std::move(resources), channel);
    commit.coverage = std::move(coverage);
    auto done = store_->commitIngest(std::move(commit));
    ASSERT_TRUE(done.ok()) << done.message();
  }

  void loadExamples() {
    int n = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(GATEWAY_TEST_DATA_DIR) / "r4-examples")) {
      if (entry.path().extension() != ".json") continue;
      write("example-" + std::to_string(n++), {readText(entry.path())});
    }
  }

  // Every page of a search, following next_cursor.
  Found run(Store& store, const std::string& type, const Params& params, int64_t now = 0,
            std::function<Result<std::optional<std::string>>(std::string_view, std::string_view, const std::string&)>
                visible = nullptr,
            std::function<void(int page)> between_pages = nullptr) {
    Found found;
    search::QueryOptions options;
    options.base_url = kBase;
    auto query = search::parseQuery(registry(), type, params, options);
    if (!query.ok()) {
      found.error = query.message();
      return found;
    }
    SearchRequest request;
    request.query = &*query;
    request.now_us = now;
    request.base_url = kBase;
    request.visible = visible;
    while (true) {
      auto page = store.search(request);
      if (!page.ok()) {
        found.error = page.message();
        return found;
      }
      if (found.pages == 0) found.total = page->total;
      ++found.pages;
      for (const SearchHit& hit : page->entries) {
        if (hit.include) found.included.push_back(hit.type + "/" + hit.id);
        else found.ids.push_back(hit.id);
      }
      if (page->next_cursor.empty() || found.pages > 1000) break;
      request.cursor = page->next_cursor;
      if (between_pages) between_pages(found.pages);
    }
    return found;
  }

  // The ids of every match, read two per page (so the keyset paging is exercised too).
  Ids ids(const std::string& type, Params params, int64_t now = 0) {
    params.emplace_back("_count", "2");
    Found found = run(*store_, type, params, now);
    EXPECT_EQ(found.error, "");
    Ids out(found.ids.begin(), found.ids.end());
    EXPECT_EQ(out.size(), found.ids.size()) << "an id came twice";
    return found.error.empty() ? out : Ids{"<error " + found.error + ">"};
  }

  testing::TempDir dir_;
  StorePtr store_;
};

// --- index rows: written with the resource, rewritten when it changes, upgrade pass ----------

TEST_P(StoreSearch, IndexRowsAreWrittenWithTheResourceAndRewrittenWhenItChanges) {
  write("v1", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"Chalmers"}],"gender":"male"})"});
  EXPECT_EQ(ids("Patient", {{"family", "chal"}}), (Ids{"p1"}));
  write("v2", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}],"gender":"male"})"});
  EXPECT_EQ(ids("Patient", {{"family", "chal"}}), (Ids{}));  // the old version's rows are gone
  EXPECT_EQ(ids("Patient", {{"family", "smith"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"gender", "male"}}), (Ids{"p1"}));
  // _lastUpdated is the store's: the write above happened after 2020.
  EXPECT_EQ(ids("Patient", {{"_lastUpdated", "gt2020-01-01"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"_lastUpdated", "lt2020-01-01"}}), (Ids{}));
}

// The PostgreSQL writer sends each column of the index rows as one array literal: values with
// the literal's own syntax (quotes, backslashes, braces, commas, NULL, blanks) stay as written.
TEST_P(StoreSearch, ValuesWithArrayLiteralSyntaxAreIndexedAsWritten) {
  write("v1", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"O\"Brien\\x","given":["{a,b}"]}],)"
               R"("identifier":[{"system":"urn:x","value":"NULL"},{"system":"urn:y","value":" a b "}]})",
               R"({"resourceType":"Patient","id":"p2","name":[{"family":"Zoë, \"{}\""}]})"});
  // (In a search value `\` and `,` are escaped with a backslash: FHIR search's own syntax.)
  EXPECT_EQ(ids("Patient", {{"family:exact", "O\"Brien\\\\x"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"given:exact", "{a\\,b}"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"identifier", "urn:x|NULL"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"identifier", "urn:y| a b "}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"family:exact", "Zoë\\, \"{}\""}}), (Ids{"p2"}));
  EXPECT_EQ(ids("Patient", {{"family", "zoe"}}), (Ids{"p2"}));
}

// Issue 12: the rows are computed before the commit, on the request thread (prepareIndex), and
// the writer only inserts them; but only rows of exactly the JSON it stores.
TEST_P(StoreSearch, PreparedRowsAreInsertedAsGivenOnlyForTheJsonTheyWereComputedFrom) {
  // Prepared for this JSON: the writer inserts them as they are, without extracting again (a
  // row added to them after preparing is found), and adds _lastUpdated.
  const std::string jones = R"({"resourceType":"Patient","id":"p1","name":[{"family":"Jones"}]})";
  IngestCommit prepared = commitOf("k1", {resourceOf(jones)});
  prepareIndex(prepared);
  ASSERT_NE(prepared.resources[0].index, nullptr);
  auto tampered = std::make_shared<searchindex::PreparedIndex>(*prepared.resources[0].index);
  for (search::IndexRow& row : searchindex::indexRows(
           registry(), R"({"resourceType":"Patient","id":"p1","name":[{"family":"Marker"}]})", "")) {
    if (row.param == "family") tampered->rows.push_back(row);
  }
  prepared.resources[0].index = tampered;
  ASSERT_TRUE(store_->commitIngest(prepared).ok());
  EXPECT_EQ(ids("Patient", {{"family", "jones"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"family", "marker"}}), (Ids{"p1"}));  // inserted as given
  EXPECT_EQ(ids("Patient", {{"_lastUpdated", "gt2020-01-01"}}), (Ids{"p1"}));

  // Prepared for another JSON (the resource changed after): the writer indexes what it stores.
  ResourceWrite changed = resourceOf(R"({"resourceType":"Patient","id":"p2","name":[{"family":"Chalmers"}]})");
  changed.index = searchindex::prepare(registry(), R"({"resourceType":"Patient","id":"p2","name":[{"family":"Stale"}]})");
  IngestCommit stale = commitOf("k2", {changed});
  ASSERT_TRUE(store_->commitIngest(stale).ok());
  EXPECT_EQ(ids("Patient", {{"family", "chalmers"}}), (Ids{"p2"}));
  EXPECT_EQ(ids("Patient", {{"family", "stale"}}), (Ids{}));
}

// The rows follow the writer's merge: a merged resource the writer makes is indexed from its own
// JSON, and a checked merge (validate last) stores, and indexes, exactly the checked writes.
TEST_P(StoreSearch, MergedResourcesAreIndexedAsStored) {
  // A stand-in for the merge: the Patient's family is the list of its contributors.
  store_->setMergeHook([](MergeTx& tx, const IngestCommit& commit, std::vector<ResourceWrite>& merged,
                          std::vector<CoverageFact>&) -> Status {
    for (const merge::Contribution& c : commit.contributions) {
      Status put = tx.putContribution(c);
      if (!put.ok()) return put;
    }
    auto all = tx.contributions("Patient", "m1");
    if (!all.ok()) return Error{all.message()};
    std::string family;
    for (const merge::Contribution& c : *all) family += c.contributor;
    merged.push_back(ResourceWrite{"Patient", "m1", R"({"resourceType":"Patient","id":"m1","name":[{"family":")" +
                                                        family + "\"}]}"});
    return Status::Ok();
  });
  auto contribution = [](const std::string& contributor) {
    merge::Contribution c;
    c.type = "Patient";
    c.id = "m1";
    c.contributor = contributor;
    c.kind = "ehr";
    c.patient_id = "m1";
    c.json = R"({"resourceType":"Patient","id":"m1"})";
    return c;
  };
  IngestCommit first = commitOf("merge-1", {});
  first.contributions.push_back(contribution("alpha"));
  prepareIndex(first);  // nothing of the merge is known before the writer's transaction
  ASSERT_TRUE(store_->commitIngest(first).ok());
  EXPECT_EQ(ids("Patient", {{"family", "alpha"}}), (Ids{"m1"}));

  // Checked with the merge it gets: the checked writes (and their prepared rows) are stored.
  IngestCommit second = commitOf("merge-2", {});
  second.contributions.push_back(contribution("beta"));
  second.merge_checked = true;
  second.merge_expected = {
      ResourceWrite{"Patient", "m1", R"({"resourceType":"Patient","id":"m1","name":[{"family":"alphabeta"}]})"}};
  prepareIndex(second);
  ASSERT_NE(second.merge_expected[0].index, nullptr);
  auto committed = store_->commitIngest(second);
  ASSERT_TRUE(committed.ok()) << committed.message();
  EXPECT_FALSE(committed->merge_changed);
  EXPECT_EQ(ids("Patient", {{"family", "alphabeta"}}), (Ids{"m1"}));
  EXPECT_EQ(ids("Patient", {{"family:exact", "alpha"}}), (Ids{}));

  // Checked with a merge that no longer holds: nothing is stored, the index keeps the stored one.
  IngestCommit third = commitOf("merge-3", {});
  third.contributions.push_back(contribution("gamma"));
  third.merge_checked = true;
  third.merge_expected = {
      ResourceWrite{"Patient", "m1", R"({"resourceType":"Patient","id":"m1","name":[{"family":"gamma"}]})"}};
  prepareIndex(third);
  committed = store_->commitIngest(third);
  ASSERT_TRUE(committed.ok()) << committed.message();
  EXPECT_TRUE(committed->merge_changed);
  EXPECT_EQ(ids("Patient", {{"family", "gamma"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"family", "alphabeta"}}), (Ids{"m1"}));
}

TEST_P(StoreSearch, AStoreWrittenBeforeTheIndexIsIndexedWhenOpened) {
  write("old1", {R"({"resourceType":"Patient","id":"old","name":[{"family":"Levin"}]})",
                 R"({"resourceType":"Claim","id":"c1","patient":{"reference":"Patient/old"}})"});
  store_.reset();
  Status forgotten = GetParam().forget_index(dir_.path().string());
  ASSERT_TRUE(forgotten.ok()) << forgotten.message();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(ids("Patient", {{"family", "levin"}}), (Ids{"old"}));
  EXPECT_EQ(ids("Claim", {{"patient", "Patient/old"}}), (Ids{"c1"}));
  // ...and what is written afterwards is indexed as usual.
  write("new1", {R"({"resourceType":"Claim","id":"c2","patient":{"reference":"Patient/old"}})"});
  EXPECT_EQ(ids("Claim", {{"patient", "old"}}), (Ids{"c1", "c2"}));
}

// --- parameter types, modifiers, prefixes over the R4 core examples --------------------------

TEST_P(StoreSearch, StringTokenAndDateParametersOfPatients) {
  loadExamples();
  EXPECT_EQ(ids("Patient", {{"family", "chalmers"}}), (Ids{"example"}));
  EXPECT_EQ(ids("Patient", {{"family", "windsor"}}), (Ids{"example"}));
  EXPECT_EQ(ids("Patient", {{"family", "DON"}}), (Ids{"pat1", "pat2"}));
  EXPECT_EQ(ids("Patient", {{"family:exact", "donald"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"family:exact", "Donald"}}), (Ids{"pat1", "pat2"}));
  EXPECT_EQ(ids("Patient", {{"family", "heuv"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"family:contains", "heuv"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Patient", {{"given:exact", "D"}}), (Ids{"pat2"}));
  EXPECT_EQ(ids("Patient", {{"name", "msc"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Patient", {{"name", "张"}}), (Ids{"ch-example"}));
  EXPECT_EQ(ids("Patient", {{"identifier", "12345"}}), (Ids{"example", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"identifier", "urn:oid:1.2.36.146.595.217.0.1|12345"}}), (Ids{"example"}));
  EXPECT_EQ(ids("Patient", {{"identifier", "|12345"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"}}),
            (Ids{"example", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"identifier:not", "12345"}}), (Ids{"pat1", "pat2", "f001", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"gender", "male"}}), (Ids{"example", "pat1", "f001", "xcda", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"gender:not", "male"}}), (Ids{"pat2"}));
  EXPECT_EQ(ids("Patient", {{"_id", "pat1,pat2"}}), (Ids{"pat1", "pat2"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "1974"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "eq1974-12-25"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "ne1974"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "lt1950"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "gt1944-11-17"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "ge1944-11-17"}}), (Ids{"example", "ch-example", "f001"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "le1944-11"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "sa1944"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "eb1944"}}), (Ids{"xcda"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "ap1975"}}, 1767225600 * kS), (Ids{"example", "ch-example"}));
  EXPECT_EQ(ids("Patient", {{"birthdate:missing", "true"}}), (Ids{"pat1", "pat2"}));
  EXPECT_EQ(ids("Patient", {{"birthdate", "ge1940"}, {"birthdate", "lt1950"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Patient", {{"family", "chalmers,levin"}}), (Ids{"example", "xcda"}));
  EXPECT_EQ(ids("Patient", {{"family", "donald"}, {"given:exact", "D"}}), (Ids{"pat2"}));
}

TEST_P(StoreSearch, TokenReferenceDateAndChainedParametersOfObservations) {
  loadExamples();
  EXPECT_EQ(ids("Observation", {{"code", "http://loinc.org|29463-7"}}), (Ids{"example"}));
  EXPECT_EQ(ids("Observation", {{"code", "http://snomed.info/sct|85354-9"}}), (Ids{}));
  EXPECT_EQ(ids("Observation", {{"code:text", "body"}}), (Ids{"example", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"category", "vital-signs"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"category:missing", "true"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Observation", {{"subject", "Patient/example"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"patient", "example"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"patient", "https://gw.example/fhir/Patient/f001"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Observation", {{"subject:Group", "f001"}}), (Ids{}));
  EXPECT_EQ(ids("Observation", {{"patient", "http://elsewhere.org/fhir/Patient/f001"}}), (Ids{}));
  EXPECT_EQ(ids("Observation", {{"date", "2013-04-02"}}), (Ids{}));
  EXPECT_EQ(ids("Observation", {{"date", "gt2013-04-02"}}), (Ids{"f001", "example"}));
  EXPECT_EQ(ids("Observation", {{"date", "lt2000"}}), (Ids{"bmi"}));
  EXPECT_EQ(ids("Observation", {{"_profile", "http://hl7.org/fhir/StructureDefinition/vitalsigns"}}),
            (Ids{"blood-pressure", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"patient.identifier", "urn:oid:2.16.840.1.113883.2.4.6.3|738472983"}}), (Ids{"f001"}));
  EXPECT_EQ(ids("Observation", {{"patient.family", "chalmers"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(ids("Observation", {{"subject:Patient.gender", "other"}}), (Ids{}));
}

TEST_P(StoreSearch, ClaimCoverageGroupAndOrganizationParameters) {
  loadExamples();
  EXPECT_EQ(ids("Claim", {{"patient", "Patient/1"}}), (Ids{"100150", "960150", "660150"}));
  EXPECT_EQ(ids("Claim", {{"provider", "Organization/1"}}), (Ids{"100150", "960150", "660150", "MED-00050"}));
  EXPECT_EQ(ids("Claim", {{"insurer:identifier", "http://www.bindb.com/bin|123456"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(ids("Claim", {{"identifier", "http://happyvalley.com/claim|12345"}}), (Ids{"100150"}));
  EXPECT_EQ(ids("Claim", {{"created", "2015-10-16"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(ids("Claim", {{"use", "claim"}, {"status", "active"}}), (Ids{"100150", "960150", "660150", "MED-00050"}));
  EXPECT_EQ(ids("Claim", {{"service-date", "lt2015"}}), (Ids{"100150", "960150", "660150"}));
  EXPECT_EQ(ids("Claim", {{"code", "http://www.ama-assn.org/go/cpt|62264"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(ids("Claim", {{"code", "|1200"}}), (Ids{"100150"}));
  EXPECT_EQ(ids("Coverage", {{"beneficiary", "Patient/5"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(ids("Coverage", {{"payor:Patient", "5"}}), (Ids{"SP1234"}));
  EXPECT_EQ(ids("Coverage", {{"period", "ge2012-04-01"}}), (Ids{"9876B1"}));
  EXPECT_EQ(ids("Coverage", {{"period", "lt2011-04-01"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(ids("Coverage", {{"period", "sa2011-04"}}), (Ids{"9876B1"}));
  EXPECT_EQ(ids("Coverage", {{"period", "eb2012-04"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(ids("Coverage", {{"period", "2011"}}), (Ids{}));
  EXPECT_EQ(ids("Group", {{"member", "Patient/pat2"}}), (Ids{"102"}));
  EXPECT_EQ(ids("Organization", {{"name", "health level"}}), (Ids{"hl7"}));
  EXPECT_EQ(ids("Organization", {{"name:contains", "seven"}}), (Ids{"hl7"}));
}

// --- result parameters ------------------------------------------------------------------------

TEST_P(StoreSearch, SortTotalIncludeAndRevinclude) {
  loadExamples();
  // birthDate (by hand): xcda 1932-09-24, f001 1944-11-17, example and ch-example 1974-12-25,
  // pat1/pat2 none (last either way); ties keep the order the resources were first written.
  Found asc = run(*store_, "Patient", {{"_sort", "birthdate"}, {"_count", "3"}, {"_total", "accurate"}});
  ASSERT_EQ(asc.error, "");
  EXPECT_EQ(asc.total, 6);
  ASSERT_EQ(asc.ids.size(), 6u);
  EXPECT_EQ(asc.ids[0], "xcda");
  EXPECT_EQ(asc.ids[1], "f001");
  EXPECT_EQ((Ids{asc.ids[2], asc.ids[3]}), (Ids{"example", "ch-example"}));
  EXPECT_EQ((Ids{asc.ids[4], asc.ids[5]}), (Ids{"pat1", "pat2"}));
  Found desc = run(*store_, "Patient", {{"_sort", "-birthdate"}, {"_count", "4"}});
  ASSERT_EQ(desc.ids.size(), 6u);
  EXPECT_EQ((Ids{desc.ids[0], desc.ids[1]}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(desc.ids[2], "f001");
  EXPECT_EQ(desc.ids[3], "xcda");
  EXPECT_EQ(desc.total, -1);  // more than one page and no _total=accurate: not counted

  Found count = run(*store_, "Claim", {{"patient", "Patient/1"}, {"_summary", "count"}});
  EXPECT_EQ(count.total, 3);
  EXPECT_TRUE(count.ids.empty());
  Found small = run(*store_, "Claim", {{"patient", "Patient/1"}});
  EXPECT_EQ(small.total, 3);  // one page holds them all: the total is known
  Found none = run(*store_, "Claim", {{"patient", "Patient/1"}, {"_total", "none"}});
  EXPECT_EQ(none.total, -1);

  // Observation/example's subject is Patient/example; Observation/f001's is Patient/f001.
  Found included = run(*store_, "Observation", {{"_id", "example,f001"}, {"_include", "Observation:subject"}});
  EXPECT_EQ(Ids(included.included.begin(), included.included.end()), (Ids{"Patient/example", "Patient/f001"}));
  // Claims 100150, 960150, 660150 reference Patient/1, which is not stored: nothing to include.
  Found missing = run(*store_, "Claim", {{"patient", "Patient/1"}, {"_include", "Claim:patient"}});
  EXPECT_TRUE(missing.included.empty());
  // Observations example, blood-pressure and bmi have subject Patient/example.
  Found rev = run(*store_, "Patient", {{"_id", "example"}, {"_revinclude", "Observation:subject"}});
  EXPECT_EQ(rev.ids, (std::vector<std::string>{"example"}));
  EXPECT_EQ(Ids(rev.included.begin(), rev.included.end()),
            (Ids{"Observation/example", "Observation/blood-pressure", "Observation/bmi"}));

  // _revinclude=*: every example that refers to Patient/example through an indexed reference
  // parameter (grep 'Patient/example"' over tests/data/r4-examples: Observation.subject of
  // example, blood-pressure, bmi; Condition.subject of example, stroke; Task.for of example1,
  // example2; Communication.subject and ServiceRequest.subject of example).
  Found all = run(*store_, "Patient", {{"_id", "example"}, {"_revinclude", "*"}});
  EXPECT_EQ(Ids(all.included.begin(), all.included.end()),
            (Ids{"Observation/example", "Observation/blood-pressure", "Observation/bmi", "Condition/example",
                 "Condition/stroke", "Task/example1", "Task/example2", "Communication/example",
                 "ServiceRequest/example"}));
  Found tasks = run(*store_, "Patient", {{"_id", "example"}, {"_revinclude", "Task:*"}});
  EXPECT_EQ(Ids(tasks.included.begin(), tasks.included.end()), (Ids{"Task/example1", "Task/example2"}));
  // Target types: Task.for is Patient/example, so Task:subject:Group includes nothing.
  Found typed = run(*store_, "Task", {{"_id", "example1"}, {"_include", "Task:subject:Patient"}});
  EXPECT_EQ(typed.included, (std::vector<std::string>{"Patient/example"}));
  Found other = run(*store_, "Task", {{"_id", "example1"}, {"_include", "Task:subject:Group"}});
  EXPECT_TRUE(other.included.empty());
  Found any = run(*store_, "Task", {{"_id", "example1"}, {"_include", "*"}});
  EXPECT_EQ(any.included, (std::vector<std::string>{"Patient/example"}));
  // :iterate: the Observations of the Patient that Task example2 was included for come in a
  // second round; without it, only the Patient.
  Found iterated = run(*store_, "Task", {{"_id", "example2"}, {"_include", "Task:patient"},
                                         {"_revinclude:iterate", "Observation:subject"}});
  EXPECT_EQ(Ids(iterated.included.begin(), iterated.included.end()),
            (Ids{"Patient/example", "Observation/example", "Observation/blood-pressure", "Observation/bmi"}));
  Found once = run(*store_, "Task", {{"_id", "example2"}, {"_include", "Task:patient"},
                                     {"_revinclude", "Observation:subject"}});
  EXPECT_EQ(once.included, (std::vector<std::string>{"Patient/example"}));
  // Included resources go through the access policy like matches.
  auto hide_observations = [](std::string_view type, std::string_view, const std::string& json) {
    return Result<std::optional<std::string>>(type == "Observation" ? std::nullopt : std::optional<std::string>(json));
  };
  Found hidden = run(*store_, "Patient", {{"_id", "example"}, {"_revinclude", "*"}}, 0, hide_observations);
  EXPECT_EQ(hidden.included.size(), 6u);
  for (const std::string& included : hidden.included) EXPECT_NE(included.rfind("Observation/", 0), 0u) << included;
}

// `_id` is no index row (search_entries holds the id): every way a query can name it still finds
// exactly the resources of those ids.
// A list of references (`subject=Patient/a,Patient/b,...`, as the measures read a practice's
// members) drives the candidates by its index rows (referenceList in search_exec.cc): every
// match, once, in entry order, across pages of 2, alone and with another clause; a list with a
// value that is not a plain id (an absolute URL) and a `:identifier` list give the same matches.
TEST_P(StoreSearch, AListOfReferencesFindsItsResourcesInEntryOrderAcrossPages) {
  for (int i = 0; i < 30; ++i) {
    const std::string patient = "p" + std::to_string(i % 10);
    write("o" + std::to_string(i), {R"({"resourceType":"Observation","id":"o)" + std::to_string(i) +
                                    R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
                                    (i % 2 == 0 ? "even" : "odd") + R"("}]},"subject":{"reference":"Patient/)" + patient +
                                    R"(","identifier":{"system":"urn:mrn","value":"mrn-)" + patient + R"("}}})"});
  }
  const std::vector<std::string> expected = {"o1", "o3", "o7", "o11", "o13", "o17", "o21", "o23", "o27"};
  auto list = [&](Params params) {
    params.emplace_back("_count", "2");
    Found found = run(*store_, "Observation", params);
    EXPECT_EQ(found.error, "");
    return found.ids;
  };
  EXPECT_EQ(list({{"subject", "Patient/p7,Patient/p1,Patient/p3"}}), expected);
  EXPECT_EQ(list({{"subject", "Patient/p7,Patient/p1,Patient/p3,Patient/none"}}), expected);
  EXPECT_EQ(list({{"subject", "Patient/p7,Patient/p1," + std::string(kBase) + "/Patient/p3"}}), expected);
  EXPECT_EQ(list({{"subject:identifier", "urn:mrn|mrn-p7,urn:mrn|mrn-p1,urn:mrn|mrn-p3"}}), expected);
  EXPECT_EQ(list({{"subject", "Patient/p7,Patient/p1,Patient/p3"}, {"code", "http://loinc.org|odd"}}), expected);
  EXPECT_EQ(list({{"code", "http://loinc.org|even"}, {"subject", "Patient/p7,Patient/p1,Patient/p2"}}),
            (std::vector<std::string>{"o2", "o12", "o22"}));
}

TEST_P(StoreSearch, IdIsFoundThroughTheEntriesAndNotStoredAsAnIndexRow) {
  write("v1", {R"({"resourceType":"Patient","id":"p1","gender":"male"})",
               R"({"resourceType":"Patient","id":"p2","gender":"female"})",
               R"({"resourceType":"Patient","id":"p3","gender":"female"})",
               R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},)"
               R"("subject":{"reference":"Patient/p1"}})",
               R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},)"
               R"("subject":{"reference":"Patient/p2"}})"});
  auto stored = GetParam().scalar(dir_.path().string(), "SELECT count(*) FROM search_rows WHERE param = '_id'");
  ASSERT_TRUE(stored.ok()) << stored.message();
  EXPECT_EQ(*stored, 0);
  auto gender = GetParam().scalar(dir_.path().string(), "SELECT count(*) FROM search_rows WHERE param = 'gender'");
  ASSERT_TRUE(gender.ok()) << gender.message();
  EXPECT_EQ(*gender, 3);  // the other rows are written as before

  EXPECT_EQ(ids("Patient", {{"_id", "p2"}}), (Ids{"p2"}));              // one id: drives the candidates
  EXPECT_EQ(ids("Patient", {{"_id", "p1,p3"}}), (Ids{"p1", "p3"}));     // several: a filter
  EXPECT_EQ(ids("Patient", {{"_id", "p2"}, {"gender", "female"}}), (Ids{"p2"}));
  EXPECT_EQ(ids("Patient", {{"gender", "female"}, {"_id", "p1,p3"}}), (Ids{"p3"}));
  EXPECT_EQ(ids("Patient", {{"_id", "nobody"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"_id", "o1"}}), (Ids{}));                  // an id of another type
  EXPECT_EQ(ids("Patient", {{"_id:not", "p1"}}), (Ids{"p2", "p3"}));   // re-checked against idRow
  EXPECT_EQ(ids("Patient", {{"_id:missing", "false"}}), (Ids{"p1", "p2", "p3"}));
  EXPECT_EQ(ids("Patient", {{"_id:missing", "true"}}), (Ids{}));
  EXPECT_EQ(ids("Observation", {{"subject:Patient._id", "p2"}}), (Ids{"o2"}));  // chained
  EXPECT_EQ(ids("Observation", {{"patient._id", "p1,p2"}}), (Ids{"o1", "o2"}));
  EXPECT_EQ(ids("Observation", {{"patient._id", "p3"}}), (Ids{}));
  Found included = run(*store_, "Observation", {{"_id", "o1"}, {"_include", "Observation:subject"}});
  EXPECT_EQ(included.ids, (std::vector<std::string>{"o1"}));
  EXPECT_EQ(included.included, (std::vector<std::string>{"Patient/p1"}));
  Found counted = run(*store_, "Patient", {{"_id", "p1,p2,nobody"}, {"_summary", "count"}});
  EXPECT_EQ(counted.total, 2);
}

TEST_P(StoreSearch, AForeignCursorIsInvalid) {
  search::QueryOptions options;
  auto query = search::parseQuery(registry(), "Patient", {}, options);
  ASSERT_TRUE(query.ok());
  SearchRequest request;
  request.query = &*query;
  request.cursor = "c1.x.y";
  auto page = store_->search(request);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.message().rfind("invalid:", 0), 0u) << page.message();
}

// --- keyset paging while another client writes -------------------------------------------------

std::string observation(const std::string& id, const std::string& value) {
  return R"({"resourceType":"Observation","id":")" + id +
         R"(","status":"final","code":{"coding":[{"system":"http://example.org/codes","code":"paging"}]},"valueString":")" +
         value + "\"}";
}

TEST_P(StoreSearch, PagesStayRightWhileAnotherClientWrites) {
  for (int i = 0; i < 60; ++i) write("initial-" + std::to_string(i), {observation("o" + std::to_string(i), "v0")});
  for (const char* sort : {"", "_lastUpdated", "-_lastUpdated"}) {
    SCOPED_TRACE(std::string("_sort=") + sort);
    // Between two pages another handle (another client) commits a new matching resource and an
    // update of an existing one (which then changed); o30 to o59 never change. One commit per page
    // boundary keeps the writes bounded by the pages (a free-running writer on a fast store outran
    // the unsorted pages' tail and left tens of thousands of matches for the next _sort).
    std::set<std::string> changed;
    StorePtr writer_store = open();
    ASSERT_NE(writer_store, nullptr);
    Params params{{"code", "http://example.org/codes|paging"}, {"_count", "7"}};
    if (*sort != '\0') params.emplace_back("_sort", sort);
    int n = 0;
    Found found = run(*store_, "Observation", params, 0, nullptr, [&](int) {
      const std::string update = "o" + std::to_string((n * 7) % 30);
      changed.insert(update);
      std::vector<ResourceWrite> resources{
          resourceOf(observation(std::string("new-") + (sort[0] == '-' ? "d" : sort[0] ? "a" : "n") + std::to_string(n), "v1")),
          resourceOf(observation(update, std::string("v") + std::to_string(n + 2)))};
      auto done = writer_store->commitIngest(commitOf(std::string("w-") + sort + std::to_string(n), std::move(resources)));
      EXPECT_TRUE(done.ok()) << done.message();
      ++n;
    });
    ASSERT_EQ(found.error, "");
    EXPECT_GT(found.pages, 5);
    EXPECT_LE(found.pages, 1000) << "the pages did not reach the end";
    std::map<std::string, int> seen;
    for (const std::string& id : found.ids) ++seen[id];
    for (const auto& [id, times] : seen) EXPECT_EQ(times, 1) << id << " came " << times << " times";
    int unchanged = 0;
    for (int i = 0; i < 60; ++i) {
      const std::string id = "o" + std::to_string(i);
      if (changed.count(id) != 0) continue;
      ++unchanged;
      EXPECT_EQ(seen[id], 1) << id << " matched, did not change, and must appear exactly once";
    }
    EXPECT_EQ(unchanged >= 30, true);
  }
}

// --- access: two payers on one patient ---------------------------------------------------------

TEST_P(StoreSearch, EachPayerFindsOnlyItsOwnClaimsAndCoverageAndCountsOnlyThem) {
  // One patient covered by two payers; each payer's roster and claim files wrote its own
  // Coverage and Claims (the channel names the payer: ownersOf, gateway/auth/policy.cc).
  write("patient", {R"({"resourceType":"Patient","id":"shared","name":[{"family":"Both"}]})"}, "roster:payer-a");
  write("cov-a", {R"({"resourceType":"Coverage","id":"cov-a","status":"active","beneficiary":{"reference":"Patient/shared"},"payor":[{"reference":"Organization/a"}]})"}, "roster:payer-a",
        {CoverageFact{"cov-a", "shared", "payer-a", "m-a", "medicaid", "2026-01-01", "", "payer", 0}});
  write("cov-b", {R"({"resourceType":"Coverage","id":"cov-b","status":"active","beneficiary":{"reference":"Patient/shared"},"payor":[{"reference":"Organization/b"}]})"}, "roster:payer-b",
        {CoverageFact{"cov-b", "shared", "payer-b", "m-b", "medicaid", "2026-01-01", "", "payer", 0}});
  for (const char* id : {"a1", "a2", "a3"}) {
    write(std::string("claim-") + id, {std::string(R"({"resourceType":"Claim","id":")") + id + R"(","status":"active","use":"claim","patient":{"reference":"Patient/shared"}})"}, "claims:payer-a");
  }
  write("claim-b1", {R"({"resourceType":"Claim","id":"b1","status":"active","use":"claim","patient":{"reference":"Patient/shared"}})"}, "claims:payer-b");

  auth::AuthConfig config;
  auth::AccessPolicy policy(&config, store_);
  auth::AuthClient payer_a;
  payer_a.id = "a";
  payer_a.kind = auth::ClientKind::kPayer;
  payer_a.payer_id = "payer-a";
  auth::AuthClient payer_b = payer_a;
  payer_b.id = "b";
  payer_b.payer_id = "payer-b";
  auto as = [&](const auth::AuthClient& client) {
    return [&policy, caller = auth::Caller{&client, auth::ScopeSet::allowedFor(client.kind), "127.0.0.1"}](
               std::string_view type, std::string_view id, const std::string& json) {
      return policy.visible(caller, type, id, json);
    };
  };
  Found claims_a = run(*store_, "Claim", {{"patient", "Patient/shared"}, {"_total", "accurate"}, {"_count", "2"}}, 0, as(payer_a));
  ASSERT_EQ(claims_a.error, "");
  EXPECT_EQ(Ids(claims_a.ids.begin(), claims_a.ids.end()), (Ids{"a1", "a2", "a3"}));
  EXPECT_EQ(claims_a.total, 3);
  Found claims_b = run(*store_, "Claim", {{"patient", "Patient/shared"}, {"_total", "accurate"}}, 0, as(payer_b));
  EXPECT_EQ(claims_b.ids, (std::vector<std::string>{"b1"}));
  EXPECT_EQ(claims_b.total, 1);
  Found count_b = run(*store_, "Claim", {{"patient", "Patient/shared"}, {"_summary", "count"}}, 0, as(payer_b));
  EXPECT_EQ(count_b.total, 1);
  Found coverage_a = run(*store_, "Coverage", {{"beneficiary", "Patient/shared"}, {"_total", "accurate"}}, 0, as(payer_a));
  EXPECT_EQ(coverage_a.ids, (std::vector<std::string>{"cov-a"}));
  EXPECT_EQ(coverage_a.total, 1);
  Found coverage_b = run(*store_, "Coverage", {{"beneficiary", "Patient/shared"}}, 0, as(payer_b));
  EXPECT_EQ(coverage_b.ids, (std::vector<std::string>{"cov-b"}));
  // Included Claims go through the policy too: payer B's revinclude from the patient shows b1 only.
  Found rev_b = run(*store_, "Patient", {{"_id", "shared"}, {"_revinclude", "Claim:patient"}}, 0, as(payer_b));
  EXPECT_EQ(rev_b.included, (std::vector<std::string>{"Claim/b1"}));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreSearch, ::testing::ValuesIn(kKinds),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

// --- SQLite: the search rows' layout ---------------------------------------------------------

// Rows of a raw statement on a store's SQLite file, each row's columns joined by '|'.
std::vector<std::string> sqliteRows(const std::string& dir, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open((fs::path(dir) / "gateway.db").string().c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return {"<cannot open>"};
  }
  char* message = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        std::string row;
        for (int i = 0; i < n; ++i) row += (i > 0 ? "|" : "") + std::string(values[i] != nullptr ? values[i] : "NULL");
        static_cast<std::vector<std::string>*>(out)->push_back(row);
        return 0;
      },
      &rows, &message);
  if (rc != SQLITE_OK) rows = {"<error " + std::string(message != nullptr ? message : "") + ">"};
  sqlite3_free(message);
  sqlite3_close(db);
  return rows;
}

using SqliteStoreSearch = StoreSearch;

// Issue 12: search_rows is clustered by (entry, ord) without a second index on entry. A store
// written by the earlier layout (a rowid table with search_rows_by_entry, main at 5268fd4: the
// DDL below is copied from its sqlite_search.cc) is converted when opened: the same rows, each
// entry's in the order they were written, found by the same searches, replaced on the next write.
TEST_P(SqliteStoreSearch, ASearchIndexOfTheUnclusteredLayoutIsConvertedWhenOpened) {
  write("v1", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"Chalmers"},{"family":"Ng"}],"gender":"male"})",
               R"({"resourceType":"Claim","id":"c1","patient":{"reference":"Patient/p1"}})"});
  write("v2", {R"({"resourceType":"Patient","id":"p2","name":[{"family":"Levin"}],"gender":"female"})"});
  write("v3", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"Smith"},{"family":"Ng"}],"gender":"male"})"});
  const std::string dir = dir_.path().string();
  const std::string rows_sql = "SELECT entry, ord, type, " SEARCH_ROW_COLUMNS " FROM search_rows ORDER BY entry, ord";
  const std::vector<std::string> rows = sqliteRows(dir, rows_sql);
  ASSERT_GT(rows.size(), 10u);
  EXPECT_EQ(sqliteRows(dir, "SELECT sql LIKE '%WITHOUT ROWID' FROM sqlite_master WHERE name = 'search_rows'"),
            (std::vector<std::string>{"1"}));
  store_.reset();

  // The earlier layout, its rows inserted entry by entry from the last (so rowid order is not
  // entry order), each entry's rows in their order.
  const std::vector<std::string> done = sqliteRows(
      dir,
      "CREATE TABLE search_rows_v1 (\n"
      "  entry INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, key TEXT NOT NULL, ptype INTEGER NOT NULL,\n"
      "  system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, type_system TEXT NOT NULL, type_code TEXT NOT NULL,\n"
      "  value TEXT NOT NULL, normalized TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL,\n"
      "  precision INTEGER NOT NULL, ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, ref_url TEXT NOT NULL,\n"
      "  number TEXT NOT NULL, number_value REAL NOT NULL);\n"
      "INSERT INTO search_rows_v1 SELECT entry, type, " SEARCH_ROW_COLUMNS " FROM search_rows ORDER BY entry DESC, ord;\n"
      "DROP TABLE search_rows; ALTER TABLE search_rows_v1 RENAME TO search_rows;\n"
      "CREATE INDEX IF NOT EXISTS search_rows_by_key ON search_rows (type, param, key, entry);\n"
      "CREATE INDEX IF NOT EXISTS search_rows_by_entry ON search_rows (entry);\n"
      "SELECT count(*) FROM search_rows;");
  ASSERT_EQ(done, (std::vector<std::string>{std::to_string(rows.size())}));
  ASSERT_EQ(sqliteRows(dir, "SELECT count(*) FROM pragma_table_info('search_rows') WHERE name = 'ord'"),
            (std::vector<std::string>{"0"}));

  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(sqliteRows(dir, rows_sql), rows);
  EXPECT_EQ(sqliteRows(dir, "SELECT name FROM sqlite_master WHERE tbl_name = 'search_rows' ORDER BY name"),
            (std::vector<std::string>{"search_rows", "search_rows_by_key"}));
  EXPECT_EQ(ids("Patient", {{"family", "smith"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"family", "ng"}}), (Ids{"p1"}));
  EXPECT_EQ(ids("Patient", {{"family", "chalmers"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"gender", "female"}}), (Ids{"p2"}));
  EXPECT_EQ(ids("Claim", {{"patient", "Patient/p1"}}), (Ids{"c1"}));
  EXPECT_EQ(ids("Patient", {{"_id", "p2"}}), (Ids{"p2"}));

  // Written after: the converted entry's rows are replaced, not added to.
  write("v4", {R"({"resourceType":"Patient","id":"p1","name":[{"family":"Okafor"}],"gender":"male"})"});
  EXPECT_EQ(ids("Patient", {{"family", "smith"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"family", "ng"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"family", "okafor"}}), (Ids{"p1"}));
  // Opened again: nothing left to convert, the rows stay.
  const std::vector<std::string> after = sqliteRows(dir, rows_sql);
  store_.reset();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(sqliteRows(dir, rows_sql), after);
  EXPECT_EQ(ids("Patient", {{"family", "okafor"}}), (Ids{"p1"}));
}

// A store written while `_id` was an index row keeps those rows until the resource is written
// again: they are not read, so a stale one changes no answer.
TEST_P(SqliteStoreSearch, IdRowsOfAnEarlierStoreAreNotRead) {
  write("v1", {R"({"resourceType":"Patient","id":"p1","gender":"male"})",
               R"({"resourceType":"Patient","id":"p2","gender":"female"})",
               R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},)"
               R"("subject":{"reference":"Patient/p2"}})"});
  const std::string dir = dir_.path().string();
  store_.reset();
  // An `_id` row naming another id, as no writer made it: a read that used it would show.
  ASSERT_EQ(sqliteRows(dir, "INSERT INTO search_rows (entry, ord, type, " SEARCH_ROW_COLUMNS ") "
                            "SELECT seq, 99, 'Patient', '_id', 'p9', 3, '', 'p9', '', '', '', '', '', 0, 0, 0, '', "
                            "'', '', '', 0.0 FROM search_entries WHERE id = 'p2'; "
                            "SELECT count(*) FROM search_rows WHERE param = '_id'"),
            (std::vector<std::string>{"1"}));
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(ids("Patient", {{"_id", "p9"}}), (Ids{}));
  EXPECT_EQ(ids("Patient", {{"_id:not", "p9"}}), (Ids{"p1", "p2"}));
  EXPECT_EQ(ids("Patient", {{"_id", "p2"}}), (Ids{"p2"}));
  // Where every row of the page is read (_include) and where a chain reads its target's rows.
  Found all_rows = run(*store_, "Patient", {{"_id:not", "p9"}, {"_include", "*"}});
  EXPECT_EQ(all_rows.error, "");
  EXPECT_EQ(Ids(all_rows.ids.begin(), all_rows.ids.end()), (Ids{"p1", "p2"}));
  EXPECT_EQ(ids("Observation", {{"patient._id:not", "p9"}}), (Ids{"o2"}));
  EXPECT_EQ(ids("Observation", {{"patient._id", "p9"}}), (Ids{}));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SqliteStoreSearch, ::testing::Values(kKinds[0]),
                         [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

}  // namespace
}  // namespace fhir::gateway

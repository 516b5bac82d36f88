// SPDX-License-Identifier: Apache-2.0
// Records from many sources (issue 11), in process: the store, the ingest pipeline and the
// real mapping specs, without a validator or a server (the e2e tests post a few orders to the
// real binary). Two payers' rosters, two e-consults with undated coverage for both payers and
// a claim file of payer A are posted in every order; the store must end the same and each
// billing claim must reach the right payer exactly once.

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <functional>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "conformance/validator/validator.h"
#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"
#include "conformance/common/ids.h"
#include "tests/gateway/forwarding_store.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr const char* kRosterHeader =
    "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
    "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n";
constexpr const char* kClaimsHeader =
    "claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,billing_npi,billing_tin,"
    "dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,dx_1,dx_2,dx_3,dx_4,units,charge_amount,"
    "paid_amount,claim_status\r\n";
constexpr const char* kPayerA = "lakeshore-medicaid";
constexpr const char* kPayerB = "northwind-commercial";

std::string rosterA() {
  return std::string(kRosterHeader) + "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20260630,1093817462,1467583922,20260101,\r\n";
}
std::string rosterB() {
  return std::string(kRosterHeader) + "NW-55,Okafor,Adaeze,19610319,F,commercial,20260701,,1093817462,1467583922,20260701,\r\n";
}
std::string claimFileA() {
  return std::string(kClaimsHeader) +
         "LC-2001,1,LMC00918273,Okafor,Adaeze,19610319,F,1467583922,1093817462,361234567,20260610,20260610,11,99214,,,"
         "E119,,,,1,180.00,112.50,P\r\n";
}

// An e-consult event of the patient with undated coverage for both payers (the usual EHR case).
std::string event(const std::string& type, const std::string& event_id, const std::string& consult, const std::string& occurred,
                  const std::string& date_of_service = "", const std::string& birth_date = "1961-03-19",
                  const std::string& mrn = "NS-884213") {
  std::string text = R"({"eventId": ")" + event_id + R"(", "source": "epic-prod-northshore", "eventType": ")" + type +
                     R"(", "occurredAt": ")" + occurred + R"(", "consultId": ")" + consult + R"(",
    "patient": {"mrn": ")" + mrn + R"(", "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.1",
      "family": "Okafor", "given": ["Adaeze", "N"], "birthDate": ")" + birth_date + R"(", "sex": "female",
      "coverage": [{"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"},
                   {"payerId": "northwind-commercial", "memberId": "NW-55", "lineOfBusiness": "commercial"}]},
    "specialist": {"npi": "1881726354", "name": "Ravi Menon MD", "specialty": "207RC0000X"})";
  if (type == "request") {
    text += R"(, "requester": {"npi": "1467583922", "name": "Dana Whitfield MD", "role": "pcp", "organizationNpi": "1093817462"},
      "question": "Persistent AF on apixaban?", "reasonCodes": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I48.91"}])";
  } else {
    text += R"(, "answeredAt": ")" + occurred + R"(", "recommendation": "Start metoprolol.", "minutesSpent": 15,
      "billing": [{"code": "99451", "system": "http://www.ama-assn.org/go/cpt", "billedBy": "specialist",
                   "npi": "1881726354", "dateOfService": ")" + date_of_service + R"("}])";
  }
  return text + "}";
}

Config twoPayers() {
  Config config;
  PayerConfig a;
  a.id = kPayerA;
  a.name = "Lakeshore Medicaid MCO";
  a.format = "lakeshore-medicaid";
  a.endpoint = "http://127.0.0.1:9/a";
  a.routes.codes = {"99451", "99452", "ACM"};
  PayerConfig b;
  b.id = kPayerB;
  b.name = "Northwind Commercial";
  b.format = "northwind-commercial";
  b.endpoint = "http://127.0.0.1:9/b";
  config.payers = {a, b};
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

// A data directory in memory when the machine has /dev/shm: 240 runs of a dozen commits each
// would otherwise wait mostly for fsync (synchronous=FULL), which is not what is tested here.
class MemoryDir {
 public:
  MemoryDir() {
    std::random_device random;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
    path_ = base / ("gateway-sources-" + std::to_string(random()) + "-" + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~MemoryDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  MemoryDir(const MemoryDir&) = delete;
  MemoryDir& operator=(const MemoryDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One gateway in process: a store in a temp dir and the pipeline over it.
// `wrap`: a store in front of the SQLite one (a test's decorator).
struct Gateway {
  explicit Gateway(Config configuration, ValidatorPtr validator = nullptr,
                   const std::function<StorePtr(StorePtr)>& wrap = {})
      : config(std::move(configuration)) {
    config.data_dir = dir.path().string();
    auto opened = openSqliteStore(config.data_dir);
    EXPECT_TRUE(opened.ok()) << opened.message();
    store = wrap ? wrap(*opened) : *opened;
    pipeline = std::make_unique<Pipeline>(config, store, std::move(validator), metrics, nullptr);
    EXPECT_TRUE(pipeline->mergeStatus().ok()) << pipeline->mergeStatus().message();
    pipeline->setSpecs(specs());
  }

  Answer post(const std::string& body) { return pipeline->ingestEconsult(body, "application/json"); }
  Answer roster(const std::string& payer, const std::string& body, const std::string& as_of = "") {
    return pipeline->ingestPayerFile("roster", payer, body, "text/csv", as_of);
  }
  Answer claims(const std::string& payer, const std::string& body) {
    return pipeline->ingestPayerFile("claims", payer, body, "text/csv");
  }

  // Claim ids in a payer's outbox, once per row.
  std::vector<std::string> claimsSentTo(const std::string& payer) {
    std::vector<std::string> ids;
    auto last = store->lastNumber("payer:" + payer);
    if (!last.ok() || *last == 0) return ids;
    auto rows = store->outboxRange("payer:" + payer, 1, *last);
    EXPECT_TRUE(rows.ok());
    for (const OutboxItem& row : *rows) {
      auto bundle = json::parse(row.body);
      EXPECT_TRUE(bundle.ok());
      for (const json::Value& entry : (*bundle)["entry"].GetArray()) {
        if (json::getString(entry["resource"], "resourceType") == "Claim") {
          ids.emplace_back(*json::getString(entry["resource"], "id"));
        }
      }
    }
    return ids;
  }

  // Every stored resource's current JSON (type/id -> JSON), Provenance.recorded left out.
  std::map<std::string, std::string> resources() { return rows("h.version = r.version"); }
  // Every version of one resource, oldest first.
  std::vector<std::string> history(const std::string& type, const std::string& id) {
    std::vector<std::string> out;
    for (auto& [key, json] : rows("h.type = '" + type + "' AND h.id = '" + id + "'", true)) out.push_back(json);
    return out;
  }

  std::map<std::string, std::string> rows(const std::string& where, bool versions = false) {
    std::map<std::string, std::string> out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir.path() / "gateway.db").string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    const std::string sql = "SELECT h.type, h.id, h.version, h.json FROM resources r JOIN resource_history h ON h.type = r.type "
                            "AND h.id = r.id WHERE " + where + " ORDER BY h.type, h.id, h.version";
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    while (sqlite3_step(statement) == SQLITE_ROW) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)) + std::string("/") +
                        reinterpret_cast<const char*>(sqlite3_column_text(statement, 1));
      if (versions) {
        char number[16];
        std::snprintf(number, sizeof number, "/%08lld", static_cast<long long>(sqlite3_column_int64(statement, 2)));
        key += number;
      }
      std::string json(static_cast<const char*>(sqlite3_column_blob(statement, 3)), static_cast<size_t>(sqlite3_column_bytes(statement, 3)));
      auto doc = json::parse(json);
      EXPECT_TRUE(doc.ok());
      if (json::getString(*doc, "resourceType") == "Provenance") doc->RemoveMember("recorded");
      out[key] = json::serialize(*doc);
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return out;
  }

  MemoryDir dir;
  Config config;
  Metrics metrics;
  StorePtr store;
  std::unique_ptr<Pipeline> pipeline;
};

const std::string kCoverageA = fhir::deriveId({"Coverage", kPayerA, "LMC00918273"});
const std::string kCoverageB = fhir::deriveId({"Coverage", kPayerB, "NW-55"});

// The five units of the acceptance test, each a list of posts.
std::vector<std::function<void(Gateway&)>> units(bool repost) {
  auto twice = [repost](std::function<Answer(Gateway&)> post) {
    return [repost, post](Gateway& gateway) {
      for (int i = 0; i < (repost ? 2 : 1); ++i) {
        Answer answer = post(gateway);
        EXPECT_LT(answer.status, 300) << answer.body;
      }
    };
  };
  auto sequence = [](std::vector<std::function<void(Gateway&)>> steps) {
    return [steps](Gateway& gateway) {
      for (const auto& step : steps) step(gateway);
    };
  };
  return {
      twice([](Gateway& g) { return g.roster(kPayerA, rosterA()); }),
      twice([](Gateway& g) { return g.roster(kPayerB, rosterB()); }),
      sequence({twice([](Gateway& g) { return g.post(event("request", "e1-req", "EC-1", "2026-06-14T10:00:00-05:00")); }),
                twice([](Gateway& g) { return g.post(event("response", "e1-resp", "EC-1", "2026-06-15T09:00:00-05:00", "2026-06-15")); })}),
      sequence({twice([](Gateway& g) { return g.post(event("request", "e2-req", "EC-2", "2026-07-19T10:00:00-05:00")); }),
                twice([](Gateway& g) { return g.post(event("response", "e2-resp", "EC-2", "2026-07-20T09:00:00-05:00", "2026-07-20")); })}),
      twice([](Gateway& g) { return g.claims(kPayerA, claimFileA()); }),
  };
}

std::string periodOf(const std::string& coverage_json) {
  auto doc = json::parse(coverage_json);
  if (!doc.ok()) return "?";
  const json::Value* period = json::find(*doc, "period");
  return period ? json::serialize(*period) : std::string();
}

// What must hold after any order: returns the store's resources for comparison across orders.
std::map<std::string, std::string> checkOutcome(Gateway& gateway, const std::string& order) {
  SCOPED_TRACE("order " + order);
  const std::string june = fhir::deriveId({"Claim", "epic-prod-northshore", "e1-resp", "0"});
  const std::string july = fhir::deriveId({"Claim", "epic-prod-northshore", "e2-resp", "0"});
  std::vector<std::string> to_a = gateway.claimsSentTo(kPayerA);
  std::vector<std::string> to_b = gateway.claimsSentTo(kPayerB);
  EXPECT_EQ(std::count(to_a.begin(), to_a.end(), june), 1);
  EXPECT_EQ(std::count(to_b.begin(), to_b.end(), june), 0);
  EXPECT_EQ(std::count(to_b.begin(), to_b.end(), july), 1);
  EXPECT_EQ(std::count(to_a.begin(), to_a.end(), july), 0);
  EXPECT_TRUE(gateway.store->listUnroutable(10)->empty());
  EXPECT_TRUE(gateway.store->listRoutingConflicts(10)->empty());

  // Every Coverage version written once the payer's roster was there carries its period.
  for (const auto& [coverage, period] : {std::pair{kCoverageA, std::string(R"({"start":"2026-01-01","end":"2026-06-30"})")},
                                         std::pair{kCoverageB, std::string(R"({"start":"2026-07-01"})")}}) {
    std::vector<std::string> versions = gateway.history("Coverage", coverage);
    EXPECT_FALSE(versions.empty());
    if (versions.empty()) continue;
    bool seen = false;
    for (const std::string& version : versions) {
      if (periodOf(version) == period) seen = true;
      else EXPECT_FALSE(seen) << "a later version lost the payer's period: " << version;
    }
    EXPECT_TRUE(seen) << versions.back();
  }

  // One surviving Patient, the others linked to it, with the identifiers of every source.
  std::map<std::string, std::string> resources = gateway.resources();
  int survivors = 0;
  for (const auto& [key, json] : resources) {
    if (key.rfind("Patient/", 0) != 0) continue;
    if (json.find("\"replaced-by\"") != std::string::npos) continue;
    ++survivors;
    EXPECT_NE(json.find("NS-884213"), std::string::npos) << json;
    EXPECT_NE(json.find("LMC00918273"), std::string::npos) << json;
    EXPECT_NE(json.find("NW-55"), std::string::npos) << json;
    EXPECT_NE(json.find("\"Adaeze\",\"N\""), std::string::npos) << "demographics from the EHR: " << json;
  }
  EXPECT_EQ(survivors, 1);
  return resources;
}

void runAllOrders(bool repost) {
  std::vector<int> order{0, 1, 2, 3, 4};
  std::map<std::string, std::string> first;
  std::string first_order;
  int runs = 0;
  do {
    std::string name;
    for (int unit : order) name += std::to_string(unit);
    Gateway gateway(twoPayers());
    auto steps = units(repost);
    for (int unit : order) steps[static_cast<size_t>(unit)](gateway);
    std::map<std::string, std::string> stored = checkOutcome(gateway, name);
    if (runs++ == 0) {
      first = std::move(stored);
      first_order = name;
    } else {
      EXPECT_EQ(stored.size(), first.size()) << name << " vs " << first_order;
      for (const auto& [key, json] : first) {
        auto found = stored.find(key);
        if (found == stored.end()) {
          ADD_FAILURE() << key << " stored after order " << first_order << " but not after " << name;
        } else {
          EXPECT_EQ(found->second, json) << key << ": order " << name << " vs " << first_order;
        }
      }
    }
    if (::testing::Test::HasFailure()) return;  // one order's failures are enough to read
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(runs, 120);
}

TEST(SourcesTest, EveryOrderOfRostersEventsAndClaimFileStoresTheSameAndRoutesOnce) { runAllOrders(false); }

TEST(SourcesTest, EveryOrderWithEveryInputPostedTwice) { runAllOrders(true); }

TEST(SourcesTest, EventsFirstWaitAsAmbiguousThenLeaveWhenTheRostersCome) {
  Gateway gateway(twoPayers());
  ASSERT_EQ(gateway.post(event("response", "e1-resp", "EC-1", "2026-06-15T09:00:00-05:00", "2026-06-15")).status, 202);
  ASSERT_EQ(gateway.post(event("response", "e2-resp", "EC-2", "2026-07-20T09:00:00-05:00", "2026-07-20")).status, 202);
  auto waiting = gateway.store->listUnroutable(10);
  ASSERT_EQ(waiting->size(), 2u);
  for (const UnroutableWrite& claim : *waiting) {
    EXPECT_NE(claim.reason.find("ambiguous coverage: undated coverage entries name payers 'lakeshore-medicaid' and "
                                "'northwind-commercial'"),
              std::string::npos)
        << claim.reason;
  }
  EXPECT_TRUE(gateway.claimsSentTo(kPayerA).empty());
  EXPECT_TRUE(gateway.claimsSentTo(kPayerB).empty());

  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);  // June
  EXPECT_EQ(gateway.store->listUnroutable(10)->size(), 1u);  // July: A's period ended, nothing dated covers it
  ASSERT_EQ(gateway.roster(kPayerB, rosterB()).status, 200);
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
  EXPECT_EQ(gateway.claimsSentTo(kPayerB).size(), 1u);
  EXPECT_TRUE(gateway.store->listUnroutable(10)->empty());
  // The rosters again: nothing leaves twice, and no resource gets a new version.
  const std::map<std::string, std::string> versions = gateway.rows("1 = 1", true);
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  ASSERT_EQ(gateway.roster(kPayerB, rosterB()).status, 200);
  EXPECT_EQ(gateway.rows("1 = 1", true).size(), versions.size());
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
  EXPECT_EQ(gateway.claimsSentTo(kPayerB).size(), 1u);
}

// The Provenances stored now: id -> (targets, entities' references, made by the merge).
struct StoredProvenance {
  std::set<std::string> targets;
  std::set<std::string> cites;
  bool merge = false;
};
std::map<std::string, StoredProvenance> provenances(Gateway& gateway) {
  std::map<std::string, StoredProvenance> out;
  for (const auto& [key, text] : gateway.resources()) {
    if (key.rfind("Provenance/", 0) != 0) continue;
    auto doc = json::parse(text);
    EXPECT_TRUE(doc.ok());
    StoredProvenance& p = out[key];
    for (const json::Value& target : (*doc)["target"].GetArray()) p.targets.emplace(*json::getString(target, "reference"));
    if (const json::Value* entities = json::find(*doc, "entity")) {
      for (const json::Value& entity : entities->GetArray()) {
        if (auto cited = json::getString(entity["what"], "reference")) p.cites.emplace(*cited);
      }
    }
    p.merge = text.find("\"assembler\"") != std::string::npos;
  }
  return out;
}

TEST(SourcesTest, TheMergeCitesTheProvenanceOfEveryContributionAndARepostAddsNoVersion) {
  Gateway gateway(twoPayers());
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  ASSERT_EQ(gateway.post(event("request", "e1-req", "EC-1", "2026-06-14T10:00:00-05:00")).status, 202);
  ASSERT_EQ(gateway.claims(kPayerA, claimFileA()).status, 200);

  // The Patients of the one cluster, and the survivor.
  std::set<std::string> patients;
  std::string survivor;
  for (const auto& [key, text] : gateway.resources()) {
    if (key.rfind("Patient/", 0) != 0) continue;
    patients.insert(key);
    if (text.find("\"replaced-by\"") == std::string::npos) survivor = key;
  }
  ASSERT_EQ(patients.size(), 2u);  // the EHR's (by MRN) and the payer's (by member id), linked
  ASSERT_FALSE(survivor.empty());

  // What the merge must cite: the sources' own Provenances that target a Patient of the cluster
  // (the roster row's, the event's and the claim file's), read from the store, not from the merge.
  auto cites_of_merge = [&](const std::map<std::string, StoredProvenance>& all, std::string& merge_id) {
    std::set<std::string> expected, cited;
    for (const auto& [id, p] : all) {
      const bool about = std::any_of(p.targets.begin(), p.targets.end(), [&](const std::string& t) { return patients.count(t) > 0; });
      if (!about) continue;
      if (p.merge && p.targets.count(survivor)) {
        EXPECT_TRUE(merge_id.empty() || merge_id == id) << "two merge Provenances for " << survivor;
        merge_id = id;
        cited = p.cites;
      } else if (!p.merge) {
        expected.insert(id);
      }
    }
    return std::pair{expected, cited};
  };
  std::string merge_id;
  auto [expected, cited] = cites_of_merge(provenances(gateway), merge_id);
  ASSERT_FALSE(merge_id.empty()) << "no Provenance of the merge targets " << survivor;
  EXPECT_EQ(expected.size(), 3u);
  EXPECT_EQ(cited, expected);

  // The same inputs again: nothing new is cited, so no new version of anything.
  const size_t versions = gateway.rows("1 = 1", true).size();
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  ASSERT_EQ(gateway.post(event("request", "e1-req", "EC-1", "2026-06-14T10:00:00-05:00")).status, 202);
  ASSERT_EQ(gateway.claims(kPayerA, claimFileA()).status, 200);
  EXPECT_EQ(gateway.rows("1 = 1", true).size(), versions);

  // A later event of the same EHR replaces its earlier word: the merge now cites the new
  // event's Provenance instead of the first one's, in a new version of the same Provenance.
  const std::string merge_key = merge_id.substr(std::string("Provenance/").size());
  const size_t merge_versions = gateway.history("Provenance", merge_key).size();
  ASSERT_EQ(gateway.post(event("request", "e2-req", "EC-2", "2026-07-19T10:00:00-05:00")).status, 202);
  std::string merge_id_after;
  auto all_after = provenances(gateway);
  auto [expected_after, cited_after] = cites_of_merge(all_after, merge_id_after);
  EXPECT_EQ(merge_id_after, merge_id);
  // The sources' Provenances are all still stored (the first event's too); the merge cites each
  // source's latest word only.
  std::set<std::string> second_event;
  std::set_difference(expected_after.begin(), expected_after.end(), expected.begin(), expected.end(),
                      std::inserter(second_event, second_event.end()));
  ASSERT_EQ(second_event.size(), 1u);
  std::string first_event;
  for (const std::string& id : expected) {
    const auto& targets = all_after[id].targets;
    if (std::any_of(targets.begin(), targets.end(), [](const std::string& t) { return t.rfind("ServiceRequest/", 0) == 0; })) {
      EXPECT_TRUE(first_event.empty());
      first_event = id;
    }
  }
  ASSERT_FALSE(first_event.empty()) << "no Provenance of the first event targets its ServiceRequest";
  std::set<std::string> want = expected;
  want.erase(first_event);
  want.insert(*second_event.begin());
  EXPECT_EQ(cited_after, want);
  EXPECT_EQ(gateway.history("Provenance", merge_key).size(), merge_versions + 1);

  // Everything stored, merged resources and their citations included, validates with the
  // definitions the server loads (R4 and the alignment guide) with zero errors.
  ValidatorOptions options;
  options.extra_paths.push_back((std::filesystem::path(GATEWAY_PROFILES_DIR) / "alignment" / "package").string());
  auto validator = createValidator(options);
  ASSERT_TRUE(validator.ok()) << validator.message();
  size_t validated = 0;
  for (const auto& [key, text] : gateway.rows("h.version = r.version")) {
    auto doc = json::parse(text);
    ASSERT_TRUE(doc.ok());
    ++validated;
    if (!json::find(*doc, "recorded") && json::getString(*doc, "resourceType") == "Provenance") {
      json::addString(*doc, "recorded", "2026-12-03T00:00:00Z", doc->GetAllocator());  // rows() leaves it out
    }
    IssueList issues;
    (*validator)->validateText(json::serialize(*doc), ValidationRequest{}, issues);
    for (const Issue& issue : issues.issues()) {
      EXPECT_FALSE(issue.severity == Severity::kError || issue.severity == Severity::kFatal)
          << key << ": " << (issue.expression.empty() ? std::string("-") : issue.expression.front()) << ": " << issue.diagnostics;
    }
  }
  EXPECT_GE(validated, 15u);  // Patients, Coverage, Group, Claim, practitioners, Provenances...
}

TEST(SourcesTest, OverlappingDatedCoverageWithoutOrderWaitsWithThatReason) {
  Gateway gateway(twoPayers());
  ASSERT_EQ(gateway.roster(kPayerA, std::string(kRosterHeader) +
                                        "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20261231,1093817462,,20260101,\r\n")
                .status,
            200);
  ASSERT_EQ(gateway.roster(kPayerB, rosterB()).status, 200);
  ASSERT_EQ(gateway.post(event("response", "e2-resp", "EC-2", "2026-07-20T09:00:00-05:00", "2026-07-20")).status, 202);
  auto waiting = gateway.store->listUnroutable(10);
  ASSERT_EQ(waiting->size(), 1u);
  EXPECT_EQ((*waiting)[0].reason,
            "ambiguous coverage: dated coverages of payers 'lakeshore-medicaid' and 'northwind-commercial' overlap on "
            "2026-07-20 and no Coverage.order says which is primary");
  EXPECT_TRUE(gateway.claimsSentTo(kPayerA).empty());
  EXPECT_TRUE(gateway.claimsSentTo(kPayerB).empty());
  // June: only A covers it.
  ASSERT_EQ(gateway.post(event("response", "e1-resp", "EC-1", "2026-06-15T09:00:00-05:00", "2026-06-15")).status, 202);
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
}

TEST(SourcesTest, ARosterThatContradictsADeliveredClaimIsListedAndTheClaimStays) {
  Gateway gateway(twoPayers());
  // The EHR says (dated) that A covers all year: the July claim goes to A.
  std::string dated = event("response", "e2-resp", "EC-2", "2026-07-20T09:00:00-05:00", "2026-07-20");
  dated = dated.substr(0, dated.find(R"({"payerId": "lakeshore-medicaid")")) +
          R"({"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid", "start": "2026-01-01", "end": "2026-12-31"}]},)" +
          dated.substr(dated.find(R"("specialist")"));
  ASSERT_EQ(gateway.post(dated).status, 202) << dated;
  ASSERT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
  // A's roster ends June 30 and B's starts July 1: the claim is not sent again, the conflict is listed.
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  ASSERT_EQ(gateway.roster(kPayerB, rosterB()).status, 200);
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
  EXPECT_TRUE(gateway.claimsSentTo(kPayerB).empty());
  auto conflicts = gateway.store->listRoutingConflicts(10);
  ASSERT_FALSE(conflicts->empty());
  const RoutingConflict& last = conflicts->back();
  EXPECT_EQ(last.routed.payer_id, kPayerA);
  EXPECT_EQ(last.now_payer_id, kPayerB);
  EXPECT_EQ(last.routed.date_of_service, "2026-07-20");
}

std::string rosterRow(const std::string& member, const std::string& family, const std::string& start,
                      const std::string& end = "") {
  return member + "," + family + ",Ann,19700101,F,medicaid,20260101,," + "1093817462,1467583922," + start + "," + end + "\r\n";
}

// Group.member as (patient id -> period JSON).
std::map<std::string, std::string> membersOf(Gateway& gateway, const std::string& group_id) {
  std::map<std::string, std::string> out;
  auto stored = gateway.store->readResource("Group", group_id);
  EXPECT_TRUE(stored.ok() && stored->has_value());
  if (!stored.ok() || !stored->has_value()) return out;
  auto group = json::parse((*stored)->json);
  for (const json::Value& member : (*group)["member"].GetArray()) {
    out[std::string(*json::getString(member["entity"], "reference"))] = json::serialize(member["period"]);
  }
  return out;
}

std::string rosterPatient(const std::string& payer, const std::string& member) {
  return "Patient/" + fhir::deriveId({"Patient", "https://fhir.alignment-gateway.org/CodeSystem/member-id/" + payer, member});
}

TEST(SourcesTest, AGroupAccumulatesDeltaRostersOneVersionPerFileAndAFullRosterEndsTheMissingMember) {
  Config config = twoPayers();
  config.payers[1].roster_mode = "full";
  Gateway gateway(config);
  const std::string group_a = fhir::deriveId({"Group", "attribution", kPayerA, "1093817462"});
  ASSERT_EQ(gateway.roster(kPayerA, kRosterHeader + rosterRow("M1", "Ames", "20260101") + rosterRow("M2", "Baker", "20260101"),
                           "2026-01-31").status, 200);
  ASSERT_EQ(gateway.roster(kPayerA, kRosterHeader + rosterRow("M3", "Cole", "20260201"), "2026-02-28").status, 200);
  ASSERT_EQ(gateway.roster(kPayerA, kRosterHeader + rosterRow("M1", "Ames", "20260101", "20260315"), "2026-03-31").status, 200);
  std::map<std::string, std::string> members = membersOf(gateway, group_a);
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[rosterPatient(kPayerA, "M1")], R"({"start":"2026-01-01","end":"2026-03-15"})");
  EXPECT_EQ(members[rosterPatient(kPayerA, "M2")], R"({"start":"2026-01-01"})");
  EXPECT_EQ(members[rosterPatient(kPayerA, "M3")], R"({"start":"2026-02-01"})");
  EXPECT_EQ(gateway.history("Group", group_a).size(), 3u) << "one Group version per roster file";

  // Payer B sends full rosters: asOf is required, and a member a later file no longer lists ends then.
  const std::string group_b = fhir::deriveId({"Group", "attribution", kPayerB, "1093817462"});
  EXPECT_EQ(gateway.roster(kPayerB, kRosterHeader + rosterRow("N1", "Dunn", "20260101")).status, 400);
  EXPECT_EQ(gateway.roster(kPayerB, kRosterHeader + rosterRow("N1", "Dunn", "20260101"), "2026-13-01").status, 400);
  const std::string january = kRosterHeader + rosterRow("N1", "Dunn", "20260101") + rosterRow("N2", "Ellis", "20260101");
  ASSERT_EQ(gateway.roster(kPayerB, january, "2026-01-31").status, 200);
  ASSERT_EQ(gateway.roster(kPayerB, kRosterHeader + rosterRow("N2", "Ellis", "20260101"), "2026-03-31").status, 200);
  members = membersOf(gateway, group_b);
  ASSERT_EQ(members.size(), 2u) << "no member is deleted";
  EXPECT_EQ(members[rosterPatient(kPayerB, "N1")], R"({"start":"2026-01-01","end":"2026-03-31"})");
  EXPECT_EQ(members[rosterPatient(kPayerB, "N2")], R"({"start":"2026-01-01"})");
  const size_t versions = gateway.history("Group", group_b).size();
  // The January file once more (older than the one applied): nothing changes.
  ASSERT_EQ(gateway.roster(kPayerB, january, "2026-01-31").status, 200);
  EXPECT_EQ(membersOf(gateway, group_b), members);
  EXPECT_EQ(gateway.history("Group", group_b).size(), versions);
}

TEST(SourcesTest, ARosterRowMatchedOnDemographicsAloneJoinsTheEventsPatientWithThatEvidence) {
  Gateway gateway(twoPayers());
  // The event names no member id of payer A; the roster row has the same name, birth date and sex.
  std::string only_b = event("request", "e1-req", "EC-1", "2026-06-14T10:00:00-05:00");
  only_b.replace(only_b.find(R"({"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"},)"),
                 std::string(R"({"payerId": "lakeshore-medicaid", "memberId": "LMC00918273", "lineOfBusiness": "medicaid"},)").size(), "");
  ASSERT_EQ(gateway.post(only_b).status, 202);
  ASSERT_EQ(gateway.roster(kPayerA, std::string(kRosterHeader) +
                                        "LMC00918273,Okafor,Adaeze,19610319,F,medicaid,20260101,20260630,1093817462,,20260101,\r\n")
                .status,
            200);
  const std::string ehr_patient = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"});
  auto cluster = gateway.store->clusterOf(ehr_patient);
  ASSERT_TRUE(cluster.ok());
  EXPECT_EQ(cluster->size(), 2u);
  auto survivor = gateway.store->readResource("Patient", ehr_patient);
  ASSERT_TRUE(survivor.ok() && survivor->has_value());
  EXPECT_NE((*survivor)->json.find("LMC00918273"), std::string::npos) << (*survivor)->json;
  EXPECT_NE((*survivor)->json.find("\"replaces\""), std::string::npos) << (*survivor)->json;
  auto replaced = gateway.store->readResource("Patient", rosterPatient(kPayerA, "LMC00918273").substr(8));
  ASSERT_TRUE(replaced.ok() && replaced->has_value());
  EXPECT_NE((*replaced)->json.find(R"({"other":{"reference":"Patient/)" + ehr_patient + R"("},"type":"replaced-by"})"),
            std::string::npos)
      << (*replaced)->json;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((gateway.dir.path() / "gateway.db").string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT evidence FROM patient_links", -1, &statement, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0))),
            "demographics: family, first given name, birthDate, gender");
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

TEST(SourcesTest, ResourcesStoredBeforeTheMergeExistedKeepWhatTheySaid) {
  Gateway gateway(twoPayers());
  gateway.pipeline.reset();
  gateway.store.reset();
  {
    // A store as an earlier release left it: the roster's Coverage and its index row, no contributions.
    auto old = openSqliteStore(gateway.config.data_dir);
    ASSERT_TRUE(old.ok());
    IngestCommit commit;
    commit.channel = "roster:lakeshore-medicaid";
    commit.idempotency_key = "old-roster-row";
    commit.payload = "{}";
    commit.resources.push_back({"Coverage", kCoverageA, R"({"resourceType":"Coverage","id":")" + kCoverageA +
                                R"(","status":"active","subscriberId":"LMC00918273","beneficiary":{"reference":"Patient/old"},"period":{"start":"2026-01-01","end":"2026-06-30"}})"});
    fhir::CoverageFact fact;
    fact.coverage_id = kCoverageA;
    fact.patient_id = "old";
    fact.payer_id = kPayerA;
    fact.member_id = "LMC00918273";
    fact.start = "2026-01-01";
    fact.end = "2026-06-30";
    commit.coverage.push_back(fact);
    ASSERT_TRUE((*old)->commitIngest(std::move(commit)).ok());
  }
  // An earlier release had no merge tables at all.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((gateway.dir.path() / "gateway.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE merge_state; DROP TABLE contributions;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto reopened = openSqliteStore(gateway.config.data_dir);
  ASSERT_TRUE(reopened.ok()) << reopened.message();
  gateway.store = *reopened;
  gateway.pipeline = std::make_unique<Pipeline>(gateway.config, gateway.store, nullptr, gateway.metrics, nullptr);
  gateway.pipeline->setSpecs(specs());
  ASSERT_EQ(gateway.post(event("response", "e1-resp", "EC-1", "2026-06-15T09:00:00-05:00", "2026-06-15")).status, 202);
  auto coverage = gateway.store->readResource("Coverage", kCoverageA);
  ASSERT_TRUE(coverage.ok() && coverage->has_value());
  EXPECT_EQ(periodOf((*coverage)->json), R"({"start":"2026-01-01","end":"2026-06-30"})") << (*coverage)->json;
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
}

TEST(SourcesTest, ConflictingDemographicsForOneMemberIdStayTwoPatientsAndAreListed) {
  Gateway gateway(twoPayers());
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  // Another EHR patient claims member LMC00918273 with another birth date.
  ASSERT_EQ(gateway.post(event("request", "x-req", "EC-9", "2026-06-14T10:00:00-05:00", "", "1971-03-19", "NS-999")).status, 202);
  auto conflicts = gateway.store->listConflicts(10);
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ((*conflicts)[0].coverage_id, kCoverageA);
  EXPECT_EQ((*conflicts)[0].elements, "birthDate");
  EXPECT_NE((*conflicts)[0].detail.find("1971-03-19"), std::string::npos);
  EXPECT_NE((*conflicts)[0].detail.find("1961-03-19"), std::string::npos);
  EXPECT_NE((*conflicts)[0].detail.find("roster"), std::string::npos);
  EXPECT_NE((*conflicts)[0].detail.find("epic-prod-northshore"), std::string::npos);
  const std::string roster_patient =
      fhir::deriveId({"Patient", "https://fhir.alignment-gateway.org/CodeSystem/member-id/lakeshore-medicaid", "LMC00918273"});
  const std::string ehr_patient = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-999"});
  auto payer_side = gateway.store->readResource("Patient", roster_patient);
  auto ehr_side = gateway.store->readResource("Patient", ehr_patient);
  ASSERT_TRUE(payer_side.ok() && payer_side->has_value());
  ASSERT_TRUE(ehr_side.ok() && ehr_side->has_value());
  EXPECT_NE((*payer_side)->json.find("1961-03-19"), std::string::npos);
  EXPECT_EQ((*payer_side)->json.find("\"link\""), std::string::npos);
  EXPECT_NE((*ehr_side)->json.find("1971-03-19"), std::string::npos);
  EXPECT_EQ((*ehr_side)->json.find("\"link\""), std::string::npos);
  EXPECT_EQ(gateway.store->clusterOf(ehr_patient)->size(), 1u);
  // Its claims wait rather than go to payer B on an undated entry alone.
  ASSERT_EQ(gateway.post(event("response", "x-resp", "EC-9", "2026-06-15T09:00:00-05:00", "2026-06-15", "1971-03-19", "NS-999")).status, 202);
  EXPECT_TRUE(gateway.claimsSentTo(kPayerA).empty());
  EXPECT_TRUE(gateway.claimsSentTo(kPayerB).empty());
  auto waiting = gateway.store->listUnroutable(10);
  ASSERT_EQ(waiting->size(), 1u);
  EXPECT_NE((*waiting)[0].reason.find("belongs to a patient with other demographics"), std::string::npos) << (*waiting)[0].reason;
}

// --- validate last (issue 12): what is validated is what is stored and delivered --------------

// The validator the server loads for ingest: R4 and the alignment guide.
ValidatorPtr alignmentValidator() {
  static const ValidatorPtr validator = [] {
    ValidatorOptions options;
    options.extra_paths.push_back((std::filesystem::path(GATEWAY_PROFILES_DIR) / "alignment" / "package").string());
    auto created = createValidator(options);
    EXPECT_TRUE(created.ok()) << created.message();
    return created.ok() ? *created : ValidatorPtr();
  }();
  return validator;
}

// Errors of the validator on a JSON text, as "expression: diagnostics" lines.
std::string validationErrors(const std::string& text) {
  IssueList issues;
  alignmentValidator()->validateText(text, ValidationRequest{}, issues);
  std::string out;
  for (const Issue& issue : issues.issues()) {
    if (issue.severity != Severity::kError && issue.severity != Severity::kFatal) continue;
    out += (issue.expression.empty() ? std::string("-") : issue.expression.front()) + ": " + issue.diagnostics + "\n";
  }
  return out;
}

// The resources of an outbox body (a Bundle) by "Type/id".
std::map<std::string, std::string> entriesOf(const std::string& bundle_json) {
  std::map<std::string, std::string> out;
  auto bundle = json::parse(bundle_json);
  EXPECT_TRUE(bundle.ok());
  if (!bundle.ok()) return out;
  for (const json::Value& entry : (*bundle)["entry"].GetArray()) {
    const json::Value& resource = entry["resource"];
    out[std::string(*json::getString(resource, "resourceType")) + "/" + std::string(*json::getString(resource, "id"))] =
        json::serialize(resource);
  }
  return out;
}

// A stored resource as delivered: without the meta the store adds.
std::string storedWithoutMeta(Store& store, const std::string& type, const std::string& id) {
  auto stored = store.readResource(type, id);
  EXPECT_TRUE(stored.ok() && stored->has_value()) << type << "/" << id;
  if (!stored.ok() || !stored->has_value()) return {};
  auto doc = json::parse((*stored)->json);
  EXPECT_TRUE(doc.ok());
  if (json::Value* meta = json::find(*doc, "meta")) {  // Erase, not Remove: the members keep their order
    meta->EraseMember("versionId");
    meta->EraseMember("lastUpdated");
    if (meta->ObjectEmpty()) doc->EraseMember("meta");
  }
  return json::serialize(*doc);
}

std::vector<OutboxItem> outboxOf(Store& store, const std::string& destination) {
  auto last = store.lastNumber(destination);
  if (!last.ok() || *last == 0) return {};
  auto rows = store.outboxRange(destination, 1, *last);
  EXPECT_TRUE(rows.ok());
  return rows.ok() ? *rows : std::vector<OutboxItem>{};
}

// An e-consult response of the patient billing 99451 on 2026-06-15, with payer A's coverage only.
std::string responseWithCoverageA(const std::string& event_id) {
  std::string text = event("response", event_id, "EC-1", "2026-06-15T09:00:00-05:00", "2026-06-15");
  const size_t other = text.find(R"({"payerId": "northwind-commercial")");
  EXPECT_NE(other, std::string::npos);
  const size_t from = text.rfind(',', other);
  return text.erase(from, text.find(']', other) - from);
}

Config withFeed(Config config) {
  FeedConfig feed;
  feed.id = "hie";
  feed.endpoint = "http://127.0.0.1:9/feed";
  config.feeds.push_back(feed);
  return config;
}

// Counts the runs of the store's MergeHook (the merge in the writer's transaction).
class HookCountingStore final : public test_stores::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::shared_ptr<std::atomic<int>> hook_runs = std::make_shared<std::atomic<int>>(0);
  void setMergeHook(MergeHook hook) override {
    inner_->setMergeHook([runs = hook_runs, hook = std::move(hook)](MergeTx& tx, const IngestCommit& commit,
                                                                   std::vector<ResourceWrite>& merged,
                                                                   std::vector<CoverageFact>& coverage) {
      ++*runs;
      return hook(tx, commit, merged, coverage);
    });
  }
};

// Issue 12 (gateway/store/merge_trace.h): the writer replays the reads of the merge the service
// validated instead of merging again; with nothing changing between, it never runs the merge, and
// what it stores is that merge (the roster's period on the event's Coverage, as above).
TEST(SourcesTest, TheWriterReplaysTheValidatedMergesReadsInsteadOfMergingAgain) {
  std::shared_ptr<HookCountingStore> counting;
  Gateway gateway(withFeed(twoPayers()), alignmentValidator(), [&](StorePtr inner) {
    counting = std::make_shared<HookCountingStore>(std::move(inner));
    return counting;
  });
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  Answer answer = gateway.post(responseWithCoverageA("e1-resp"));
  ASSERT_EQ(answer.status, 202) << answer.body;
  EXPECT_EQ(counting->hook_runs->load(), 0);
  const std::string merged_coverage = storedWithoutMeta(*gateway.store, "Coverage", kCoverageA);
  EXPECT_EQ(periodOf(merged_coverage), R"({"start":"2026-01-01","end":"2026-06-30"})") << merged_coverage;
  EXPECT_EQ(validationErrors(merged_coverage), "");
  const std::string ehr_patient = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"});
  EXPECT_NE(storedWithoutMeta(*gateway.store, "Patient", ehr_patient).find("LMC00918273"), std::string::npos);
  // The replayed writes are kept: a re-post adds no version, and the coverage index routes.
  ASSERT_EQ(gateway.post(responseWithCoverageA("e1-resp")).status, 202);
  EXPECT_EQ(gateway.history("Coverage", kCoverageA).size(), 2u);  // the roster's merge, then the event's
  EXPECT_EQ(gateway.claimsSentTo(kPayerA).size(), 1u);
  EXPECT_EQ(counting->hook_runs->load(), 0);
}

TEST(SourcesTest, ThePayersAndTheFeedsBundlesCarryTheMergedCoverageWhichValidates) {
  Gateway gateway(withFeed(twoPayers()), alignmentValidator());
  // The payer's roster gives Coverage A its period; the EHR's event names the same member
  // without dates: both contribute to one Coverage.
  ASSERT_EQ(gateway.roster(kPayerA, rosterA()).status, 200);
  Answer answer = gateway.post(responseWithCoverageA("e1-resp"));
  ASSERT_EQ(answer.status, 202) << answer.body;

  const std::string merged_coverage = storedWithoutMeta(*gateway.store, "Coverage", kCoverageA);
  EXPECT_EQ(periodOf(merged_coverage), R"({"start":"2026-01-01","end":"2026-06-30"})") << merged_coverage;
  const std::string ehr_patient = fhir::deriveId({"Patient", "urn:oid:2.16.840.1.113883.3.7418.1", "NS-884213"});
  const std::string merged_patient = storedWithoutMeta(*gateway.store, "Patient", ehr_patient);
  EXPECT_NE(merged_patient.find("LMC00918273"), std::string::npos) << merged_patient;  // the roster's member id

  // Payer A's Bundle: the Claim with the Coverage as merged (the roster's period), not as the
  // event mapped it (no period); it validates.
  const std::vector<OutboxItem> payer = outboxOf(*gateway.store, std::string("payer:") + kPayerA);
  ASSERT_EQ(payer.size(), 1u);
  const auto delivered = entriesOf(payer[0].body);
  ASSERT_TRUE(delivered.count("Coverage/" + kCoverageA)) << payer[0].body;
  EXPECT_EQ(delivered.at("Coverage/" + kCoverageA), merged_coverage);
  EXPECT_EQ(validationErrors(payer[0].body), "");

  // The feed's Bundle of the event: the merged Coverage and Patient; it validates.
  const std::vector<OutboxItem> feed = outboxOf(*gateway.store, "feed:hie");
  ASSERT_EQ(feed.size(), 2u);  // the roster row's, then the event's
  const auto event_bundle = entriesOf(feed[1].body);
  ASSERT_TRUE(event_bundle.count("Coverage/" + kCoverageA)) << feed[1].body;
  EXPECT_EQ(event_bundle.at("Coverage/" + kCoverageA), merged_coverage);
  EXPECT_EQ(event_bundle.at("Patient/" + ehr_patient), merged_patient);
  EXPECT_EQ(validationErrors(feed[1].body), "");
  // The roster row's Bundle carries its merge as it stood then (before the event).
  const auto roster_bundle = entriesOf(feed[0].body);
  ASSERT_TRUE(roster_bundle.count("Coverage/" + kCoverageA)) << feed[0].body;
  EXPECT_EQ(periodOf(roster_bundle.at("Coverage/" + kCoverageA)), R"({"start":"2026-01-01","end":"2026-06-30"})");
  EXPECT_EQ(validationErrors(feed[0].body), "");
}

// A store as an earlier release left it: Coverage A stored without contributions, with a
// `class` that release never validated (Coverage.class.type is required). The first merge
// after the upgrade keeps it (class comes from a roster or what was stored).
void storedBeforeTheMergeWithAnInvalidClass(Gateway& gateway, ValidatorPtr validator) {
  gateway.pipeline.reset();
  gateway.store.reset();
  {
    auto old = openSqliteStore(gateway.config.data_dir);
    ASSERT_TRUE(old.ok());
    IngestCommit commit;
    commit.channel = "roster:lakeshore-medicaid";
    commit.idempotency_key = "old-roster-row";
    commit.payload = "{}";
    commit.resources.push_back({"Coverage", kCoverageA, R"({"resourceType":"Coverage","id":")" + kCoverageA +
                                R"(","status":"active","subscriberId":"LMC00918273","beneficiary":{"reference":"Patient/old"},)"
                                R"("payor":[{"display":"Lakeshore Medicaid MCO"}],"class":[{"value":"GRP-7"}]})"});
    ASSERT_TRUE((*old)->commitIngest(std::move(commit)).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((gateway.dir.path() / "gateway.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE merge_state; DROP TABLE contributions;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto reopened = openSqliteStore(gateway.config.data_dir);
  ASSERT_TRUE(reopened.ok()) << reopened.message();
  gateway.store = *reopened;
  gateway.pipeline = std::make_unique<Pipeline>(gateway.config, gateway.store, std::move(validator), gateway.metrics, nullptr);
  gateway.pipeline->setSpecs(specs());
}

// The quarantined entries' outcomes, newest first.
std::vector<QuarantineEntry> quarantined(Store& store) {
  auto entries = store.listQuarantine(10);
  EXPECT_TRUE(entries.ok());
  return entries.ok() ? *entries : std::vector<QuarantineEntry>{};
}

TEST(SourcesTest, AnEventWhoseMergeIsInvalidIsRefusedNamingTheElementAndNothingIsStored) {
  Gateway gateway(withFeed(twoPayers()));
  storedBeforeTheMergeWithAnInvalidClass(gateway, alignmentValidator());
  const std::map<std::string, std::string> before = gateway.rows("1 = 1", true);

  Answer answer = gateway.post(responseWithCoverageA("e1-resp"));
  ASSERT_EQ(answer.status, 422) << answer.body;
  // The issue names the element (expression) and why (diagnostics), of the merged resource.
  EXPECT_NE(answer.body.find(R"("expression":["Coverage.class[0]"])"), std::string::npos) << answer.body;
  EXPECT_NE(answer.body.find("Coverage/" + kCoverageA +
                             " as merged from what every source contributed (merge-rules.json) is invalid: "
                             "Coverage.class.type: minimum required = 1, but only found 0"),
            std::string::npos)
      << answer.body;
  // Quarantined with that OperationOutcome; nothing stored: no resource version, no event,
  // no outbox row, and a re-post is judged again (not answered from an event).
  const std::vector<QuarantineEntry> kept = quarantined(*gateway.store);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].channel, "econsult");
  EXPECT_NE(kept[0].outcome_json.find("Coverage.class"), std::string::npos) << kept[0].outcome_json;
  EXPECT_NE(answer.body.find(kept[0].id), std::string::npos);
  EXPECT_EQ(gateway.rows("1 = 1", true), before);
  EXPECT_TRUE(outboxOf(*gateway.store, std::string("payer:") + kPayerA).empty());
  EXPECT_TRUE(outboxOf(*gateway.store, "feed:hie").empty());
  auto first = gateway.store->findAnswer("epic-prod-northshore\x1f" "e1-resp");
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  EXPECT_EQ(gateway.post(responseWithCoverageA("e1-resp")).status, 422);
}

TEST(SourcesTest, ARosterRowWhoseMergeIsInvalidIsQuarantinedAndTheFileGoesOn) {
  Gateway gateway(twoPayers());
  storedBeforeTheMergeWithAnInvalidClass(gateway, alignmentValidator());
  const std::map<std::string, std::string> before = gateway.rows("1 = 1", true);
  // The roster's rewrite of Coverage A (its row merged with what is stored) keeps the stored
  // class, which does not validate: that row is refused; the other member's row is stored.
  const std::string roster = rosterA() + "LMC00555111,Okafor,Chidi,19640702,M,medicaid,20260101,20260630,1093817462,1467583922,20260101,\r\n";
  Answer answer = gateway.roster(kPayerA, roster);
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto summary = json::parse(answer.body);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(json::numberAsInt64((*summary)["records"]), 2);
  EXPECT_EQ(json::numberAsInt64((*summary)["accepted"]), 1);
  EXPECT_EQ(json::numberAsInt64((*summary)["rejected"]), 1);
  ASSERT_EQ((*summary)["bundleIds"].Size(), 1u);
  ASSERT_EQ((*summary)["quarantineIds"].Size(), 1u);
  const std::vector<QuarantineEntry> kept = quarantined(*gateway.store);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].id, json::stringView((*summary)["quarantineIds"][0]));
  EXPECT_EQ(kept[0].channel, std::string("roster:") + kPayerA);
  EXPECT_TRUE(kept[0].record);
  EXPECT_NE(kept[0].outcome_json.find("Coverage.class"), std::string::npos) << kept[0].outcome_json;
  auto payload = gateway.store->readQuarantine(kept[0].id);
  ASSERT_TRUE(payload.ok() && payload->has_value());
  EXPECT_NE((*payload)->payload.find("LMC00918273"), std::string::npos);  // the row's mapped Bundle
  // Coverage A and the refused row's Patient are as before; the other row is stored.
  const std::map<std::string, std::string> after = gateway.rows("1 = 1", true);
  EXPECT_EQ(after.at("Coverage/" + kCoverageA + "/00000001"), before.at("Coverage/" + kCoverageA + "/00000001"));
  EXPECT_FALSE(after.count("Coverage/" + kCoverageA + "/00000002"));
  EXPECT_FALSE(gateway.store->readResource("Patient", rosterPatient(kPayerA, "LMC00918273").substr(8))->has_value());
  EXPECT_TRUE(gateway.store->readResource("Patient", rosterPatient(kPayerA, "LMC00555111").substr(8))->has_value());
  const std::string other_coverage = fhir::deriveId({"Coverage", kPayerA, "LMC00555111"});
  EXPECT_EQ(validationErrors(storedWithoutMeta(*gateway.store, "Coverage", other_coverage)), "");
}

// A store that commits another source's roster row just before the first e-consult commit it
// forwards: the event's merge, validated before, no longer holds when its transaction runs.
class RacingStore final : public test_stores::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<void()> before_first_event;
  int event_commits = 0;
  Result<CommitOutcome> commitIngest(IngestCommit commit) override {
    if (commit.channel == "econsult" && event_commits++ == 0 && before_first_event) before_first_event();
    return inner_->commitIngest(std::move(commit));
  }
};

TEST(SourcesTest, AnEventWhoseMergeChangedBeforeItsCommitIsMergedAndValidatedAgain) {
  std::shared_ptr<RacingStore> racing;
  Gateway gateway(twoPayers(), alignmentValidator(), [&](StorePtr inner) {
    racing = std::make_shared<RacingStore>(std::move(inner));
    return racing;
  });
  // The roster comes through a second pipeline on the same store (another request thread).
  Metrics other_metrics;
  Pipeline other(gateway.config, racing->inner(), alignmentValidator(), other_metrics, nullptr);
  other.setSpecs(specs());
  racing->before_first_event = [&] { EXPECT_EQ(other.ingestPayerFile("roster", kPayerA, rosterA(), "text/csv").status, 200); };

  Answer answer = gateway.post(responseWithCoverageA("e1-resp"));
  ASSERT_EQ(answer.status, 202) << answer.body;
  EXPECT_EQ(racing->event_commits, 2);  // refused once (merge changed), then committed
  const std::string merged_coverage = storedWithoutMeta(*gateway.store, "Coverage", kCoverageA);
  EXPECT_EQ(periodOf(merged_coverage), R"({"start":"2026-01-01","end":"2026-06-30"})");
  const std::vector<OutboxItem> payer = outboxOf(*gateway.store, std::string("payer:") + kPayerA);
  ASSERT_EQ(payer.size(), 1u);
  EXPECT_EQ(entriesOf(payer[0].body).at("Coverage/" + kCoverageA), merged_coverage);
  EXPECT_EQ(validationErrors(payer[0].body), "");
  EXPECT_EQ(gateway.history("Coverage", kCoverageA).size(), 2u);  // the roster's merge, then the event's
}

}  // namespace
}  // namespace fhir::gateway

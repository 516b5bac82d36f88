// SPDX-License-Identifier: Apache-2.0
// Typed facts (issue 12, Build 1): what the gateway says about an event's source comes from facts
// the mapping spec declares and the mapper returns with the Bundle, not from the gateway reading
// the source's members. The proof: the care-management spec rewritten to call the episode's
// billing list "charges" (`episode.charges`) yields the same Claims, the same routing and the
// same second-ACM refusal, located at `$.episode.charges[i]`, with no change to the gateway.

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "gateway/config/config.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/metrics.h"
#include "mappers/engine/engine.h"
#include "tests/support/test_support.h"
#include "gateway_paths.h"

namespace fhir::gateway {
namespace {

constexpr const char* kPayer = "lakeshore-medicaid";
constexpr const char* kAcmSystem = "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing";

std::filesystem::path freshDir(const std::string& what) {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() /
              ("gateway-typed-facts-" + what + "-" + std::to_string(random()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(path);
  return path;
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The bundled specs, with care-management.json's episode billing list renamed to `member`
// ("billing" leaves them as they are).
std::shared_ptr<const mappers::engine::SpecLibrary> specsWithEpisodeList(const std::filesystem::path& dir,
                                                                          const std::string& member) {
  const std::filesystem::path bundled = std::filesystem::path(GATEWAY_SOURCE_DIR) / "mappers" / "specs";
  for (const auto& entry : std::filesystem::directory_iterator(bundled)) {
    if (entry.path().extension() != ".json") continue;
    std::string text = fhir::testing::readFile(entry.path());
    if (entry.path().filename() == "care-management.json") {
      EXPECT_NE(text.find("\"forEach\": \"episode.billing\""), std::string::npos) << "the spec no longer names episode.billing";
      replaceAll(text, "episode.billing", "episode." + member);
    }
    std::ofstream(dir / entry.path().filename(), std::ios::binary) << text;
  }
  mappers::engine::LoadOptions options;
  options.specs_dir = dir.string();
  auto loaded = mappers::engine::SpecLibrary::load(options);
  EXPECT_TRUE(loaded.ok()) << loaded.message();
  if (!loaded.ok()) return nullptr;
  return std::shared_ptr<const mappers::engine::SpecLibrary>(std::move(*loaded));
}

// A co-management event whose episode lists its billing entries under `member`: a 99452 (when
// `with_other`) and then an ACM on `date`.
std::string coManagement(const std::string& member, const std::string& event_id, const std::string& date,
                         bool with_other) {
  std::string entries;
  if (with_other) {
    entries += R"({"code":"99452","system":"http://www.ama-assn.org/go/cpt","billedBy":"pcp","npi":"1467583922",)"
               R"("dateOfService":")" + date + R"("},)";
  }
  entries += R"({"code":"ACM","system":")" + std::string(kAcmSystem) +
             R"(","billedBy":"specialist","npi":"1881726354","dateOfService":")" + date + R"("})";
  return R"({"eventId":")" + event_id + R"(","source":"epic-prod-northshore","eventType":"co-management",)"
         R"("occurredAt":"2026-10-31T17:00:00-05:00",)"
         R"("patient":{"mrn":"NS-884213","mrnSystem":"urn:oid:2.16.840.1.113883.3.7418.1",)"
         R"("family":"Okafor","given":["Adaeze"],"birthDate":"1961-03-19","sex":"female",)"
         R"("coverage":[{"payerId":"lakeshore-medicaid","memberId":"LMC00918273",)"
         R"("lineOfBusiness":"medicaid","start":"2026-01-01","end":"2026-12-31"}]},)"
         R"("episode":{"episodeId":"EP-77","condition":{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I48.91"},)"
         R"("specialistNpi":"1881726354","pcpNpi":"1467583922","start":"2026-10-01",")" + member + R"(":[)" + entries +
         "]}}";
}

// What one run of the scenario shows, to compare between the two specs.
struct Seen {
  std::vector<std::string> claims_accepted;  // Claim ids of the first event's answer
  uint64_t routed_after_first = 0;           // payer rows after the first event
  std::string refusal_location;              // the second ACM's location
  std::string refusal_diagnostics;
  size_t quarantined = 0;
  uint64_t routed_after_next_month = 0;
};

Seen runScenario(const std::string& member) {
  const std::filesystem::path specs_dir = freshDir("specs");
  const std::filesystem::path data_dir = freshDir("data");
  Seen seen;
  {
    Config config;
    config.data_dir = data_dir.string();
    PayerConfig payer;
    payer.id = kPayer;
    payer.name = "Lakeshore Medicaid MCO";
    payer.format = "lakeshore-medicaid";
    payer.endpoint = "http://127.0.0.1:9/a";
    payer.routes.codes = {"ACM"};
    config.payers = {payer};
    auto opened = openSqliteStore(config.data_dir);
    EXPECT_TRUE(opened.ok()) << opened.message();
    if (!opened.ok()) return seen;
    StorePtr store = *opened;
    Metrics metrics;
    Pipeline pipeline(config, store, nullptr, metrics, nullptr);
    pipeline.setSpecs(specsWithEpisodeList(specs_dir, member));

    Answer first = pipeline.ingestCareManagement(coManagement(member, "facts-1", "2026-10-31", false), "application/json");
    EXPECT_EQ(first.status, 202) << first.body;
    json::Document answer;
    json::ParseError error;
    EXPECT_TRUE(json::parse(first.body, answer, error));
    if (answer.IsObject() && json::find(answer, "entry")) {
      for (const json::Value& entry : answer["entry"].GetArray()) {
        if (json::getString(entry["resource"], "resourceType") == "Claim") {
          seen.claims_accepted.emplace_back(json::getString(entry["resource"], "id").value_or(""));
        }
      }
    }
    seen.routed_after_first = store->lastNumber(std::string("payer:") + kPayer).value();

    // Another event's ACM for the same patient, specialist and month, second in its list.
    Answer second = pipeline.ingestCareManagement(coManagement(member, "facts-2", "2026-10-15", true), "application/json");
    EXPECT_EQ(second.status, 422) << second.body;
    json::Document outcome;
    EXPECT_TRUE(json::parse(second.body, outcome, error));
    if (outcome.IsObject() && json::find(outcome, "issue") && !outcome["issue"].Empty()) {
      const json::Value& issue = outcome["issue"][0];
      if (json::find(issue, "location") && !issue["location"].Empty()) {
        seen.refusal_location = std::string(json::stringView(issue["location"][0]));
      }
      seen.refusal_diagnostics = std::string(json::getString(issue, "diagnostics").value_or(""));
    }
    seen.quarantined = store->listQuarantine(100).value().size();

    Answer next_month = pipeline.ingestCareManagement(coManagement(member, "facts-3", "2026-11-30", false), "application/json");
    EXPECT_EQ(next_month.status, 202) << next_month.body;
    seen.routed_after_next_month = store->lastNumber(std::string("payer:") + kPayer).value();
  }
  std::error_code ignored;
  std::filesystem::remove_all(specs_dir, ignored);
  std::filesystem::remove_all(data_dir, ignored);
  return seen;
}

// The configured payer, no stored coverage: what the mapper may ask while it maps.
class OnePayer final : public mappers::Directory {
 public:
  std::optional<mappers::PayerInfo> payer(std::string_view payer_id) const override {
    if (payer_id != kPayer) return std::nullopt;
    return mappers::PayerInfo{kPayer, "Lakeshore Medicaid MCO", "", ""};
  }
  std::vector<fhir::CoverageFact> coverageOf(std::string_view) const override { return {}; }
};

// The mapper returns the billing facts the spec declares ("fact": "billing"), each with the place
// of its source item, whatever the spec calls the list.
TEST(TypedFactsTest, TheMapperReturnsTheBillingFactsTheSpecDeclares) {
  for (const std::string member : {"billing", "charges"}) {
    SCOPED_TRACE(member);
    const std::filesystem::path dir = freshDir("specs");
    auto specs = specsWithEpisodeList(dir, member);
    ASSERT_NE(specs, nullptr);
    const std::string raw = coManagement(member, "facts-m", "2026-10-15", true);
    json::Document record;
    json::ParseError error;
    ASSERT_TRUE(json::parse(raw, record, error));
    mappers::engine::MappedBundle mapped;
    IssueList issues;
    OnePayer directory;
    mappers::engine::MapOptions options;
    options.directory = &directory;
    auto ok = specs->mapRecord("care-management", record, raw, "request", options, mapped, issues);
    ASSERT_TRUE(ok.ok()) << ok.message();
    ASSERT_TRUE(*ok) << (issues.issues().empty() ? std::string("no issues") : issues.issues()[0].diagnostics);
    std::vector<std::string> claims;
    for (const json::Value& entry : mapped.bundle["entry"].GetArray()) {
      if (json::getString(entry["resource"], "resourceType") == "Claim") {
        claims.push_back("Claim/" + std::string(json::getString(entry["resource"], "id").value_or("")));
      }
    }
    ASSERT_EQ(claims.size(), 2u);
    ASSERT_EQ(mapped.facts.size(), 2u);
    std::map<std::string, std::string> located;
    for (const mappers::engine::ResourceFact& fact : mapped.facts) {
      EXPECT_EQ(fact.kind, "billing");
      located[fact.reference] = fact.location;
    }
    // The 99452 is item 0 and the ACM item 1 of the list, each Claim located at its own item.
    std::set<std::string> locations;
    for (const std::string& claim : claims) {
      ASSERT_TRUE(located.count(claim)) << claim;
      locations.insert(located[claim]);
    }
    EXPECT_EQ(locations, (std::set<std::string>{"$.episode." + member + "[0]", "$.episode." + member + "[1]"}));
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}

TEST(TypedFactsTest, ASpecWithAnotherMemberNameRoutesAndRefusesTheSame) {
  const Seen original = runScenario("billing");
  const Seen renamed = runScenario("charges");

  ASSERT_EQ(original.claims_accepted.size(), 1u);
  EXPECT_EQ(renamed.claims_accepted, original.claims_accepted);
  EXPECT_EQ(original.routed_after_first, 1u);
  EXPECT_EQ(renamed.routed_after_first, original.routed_after_first);
  EXPECT_EQ(original.routed_after_next_month, 2u);
  EXPECT_EQ(renamed.routed_after_next_month, original.routed_after_next_month);
  EXPECT_EQ(original.quarantined, 1u);
  EXPECT_EQ(renamed.quarantined, 1u);

  // The refusal names the ACM's own item (index 1, after the 99452), by the spec's member name.
  EXPECT_EQ(original.refusal_location, "$.episode.billing[1]");
  EXPECT_EQ(renamed.refusal_location, "$.episode.charges[1]");
  EXPECT_NE(original.refusal_diagnostics.find("second ACM"), std::string::npos) << original.refusal_diagnostics;
  EXPECT_NE(renamed.refusal_diagnostics.find("second ACM"), std::string::npos) << renamed.refusal_diagnostics;
}

}  // namespace
}  // namespace fhir::gateway

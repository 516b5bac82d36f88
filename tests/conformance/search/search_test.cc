// SPDX-License-Identifier: Apache-2.0
// Search core (conformance/search): index extraction, query parsing and matching over R4 core
// examples (tests/data/r4-examples, see SOURCE.md there).
//
// Every expected result below was computed BY HAND from the example JSON (the field each
// expectation depends on is named in the comment next to it), not from the code under test.
// Instants in the date cases were computed with Python's calendar.timegm.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "conformance/search/search.h"
#include "gateway_paths.h"

namespace fhir::search {
namespace {

namespace fs = std::filesystem;
using Ids = std::set<std::string>;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr int64_t kS = 1000000;  // microseconds per second

struct Corpus {
  std::shared_ptr<const Registry> registry;
  std::vector<std::unique_ptr<json::Document>> docs;
  std::map<std::string, std::vector<IndexRow>> rows;  // "Type/id" -> rows
};

Corpus& corpus() {
  static Corpus* c = [] {
    auto* out = new Corpus();
    auto registry = Registry::loadBundled();
    EXPECT_TRUE(registry.ok()) << (registry.ok() ? "" : registry.message());
    out->registry = *registry;
    for (const auto& entry : fs::directory_iterator(fs::path(GATEWAY_TEST_DATA_DIR) / "r4-examples")) {
      if (entry.path().extension() != ".json") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      auto doc = std::make_unique<json::Document>();
      json::ParseError error;
      EXPECT_TRUE(json::parse(text.str(), *doc, error)) << entry.path();
      std::string key = std::string(*json::getString(*doc, "resourceType")) + "/" +
                        std::string(*json::getString(*doc, "id"));
      std::vector<std::string> errors;
      out->rows[key] = extractIndex(*out->registry, *doc, &errors);
      EXPECT_TRUE(errors.empty()) << key << ": " << errors.front();
      out->docs.push_back(std::move(doc));
    }
    return out;
  }();
  return *c;
}

Result<Ids> run(const std::string& type, const Params& params, int64_t now = 0) {
  Corpus& c = corpus();
  QueryOptions options;
  options.base_url = "https://gw.example/fhir";
  auto query = parseQuery(*c.registry, type, params, options);
  if (!query.ok()) return query.error();
  MatchOptions match;
  match.now = now;
  match.base_url = options.base_url;
  match.lookup = [&c](std::string_view t, std::string_view id) -> const std::vector<IndexRow>* {
    auto it = c.rows.find(std::string(t) + "/" + std::string(id));
    return it == c.rows.end() ? nullptr : &it->second;
  };
  Ids ids;
  for (const auto& [key, rows] : c.rows) {
    if (key.rfind(type + "/", 0) != 0) continue;
    if (matches(*query, rows, match)) ids.insert(key.substr(type.size() + 1));
  }
  return ids;
}

Ids search(const std::string& type, const Params& params, int64_t now = 0) {
  auto ids = run(type, params, now);
  EXPECT_TRUE(ids.ok()) << (ids.ok() ? "" : ids.message());
  return ids.ok() ? *ids : Ids{"<error>"};
}

std::string errorOf(const std::string& type, const Params& params) {
  auto ids = run(type, params);
  return ids.ok() ? "<no error>" : ids.message();
}

TEST(SearchRegistry, LoadsR4AndGuideParameters) {
  const Registry& r = *corpus().registry;
  EXPECT_EQ(r.definitionCount(), 79u);  // 76 copied R4 files + 3 of the guide
  const BoundParam* patient = r.find("Observation", "patient");
  ASSERT_NE(patient, nullptr);
  // clinical-patient bound to Observation keeps only its Observation term.
  EXPECT_EQ(patient->expression, "Observation.subject.where(resolve() is Patient)");
  ASSERT_NE(r.find("Claim", "service-date"), nullptr);
  EXPECT_EQ(r.find("Claim", "code")->def->url, "https://fhir.alignment-gateway.org/SearchParameter/claim-code");
  ASSERT_NE(r.find("Coverage", "period"), nullptr);
  ASSERT_NE(r.find("Group", "_lastUpdated"), nullptr);  // Resource parameters apply to all types
  EXPECT_EQ(r.find("Patient", "nothing"), nullptr);
}

TEST(SearchRegistry, TermsForType) {
  EXPECT_EQ(termsForType("Account.subject | (Observation.value as Quantity) | Resource.id", "Observation"),
            "(Observation.value as Quantity) | Resource.id");
  EXPECT_EQ(termsForType("A.x.where(y = 'a|b') | B.z", "A"), "A.x.where(y = 'a|b')");
}

TEST(SearchNormalize, CaseAccentsAndSpaces) {
  EXPECT_EQ(normalizeString("Bénédicte"), "benedicte");
  EXPECT_EQ(normalizeString("  Du   Marché "), "du marche");
  EXPECT_EQ(normalizeString("Straße"), "strasse");
  EXPECT_EQ(normalizeString("ŁÓDŹ"), "lodz");
  EXPECT_EQ(normalizeString("Ærø"), "aero");
  EXPECT_EQ(normalizeString("张无忌"), "张无忌");  // outside Latin: unchanged
}

TEST(SearchDate, ImplicitRangesByPrecision) {
  auto year = parseDateRange("2013");
  ASSERT_TRUE(year);
  EXPECT_EQ(year->low, 1356998400 * kS);       // 2013-01-01T00:00:00Z
  EXPECT_EQ(year->high, 1388534400 * kS - 1);  // up to 2014-01-01 exclusive
  EXPECT_EQ(year->precision, 4);
  auto month = parseDateRange("2013-02");
  EXPECT_EQ(month->high, 1362096000 * kS - 1);  // 2013-03-01 exclusive
  auto leap = parseDateRange("2012-02");
  EXPECT_EQ(leap->high - leap->low + 1, 29 * 86400 * kS);
  EXPECT_EQ(leap->low, 1328054400 * kS);
  auto day = parseDateRange("2013-05-01");
  EXPECT_EQ(day->low, 1367366400 * kS);
  EXPECT_EQ(day->high, 1367366400 * kS + 86400 * kS - 1);
  auto second = parseDateRange("2013-05-01T10:00:00+02:00");
  EXPECT_EQ(second->low, (1367366400 + 8 * 3600) * kS);  // 08:00Z
  EXPECT_EQ(second->high, (1367366400 + 8 * 3600 + 1) * kS - 1);
  auto minute = parseDateRange("2013-05-01T10:00Z");
  EXPECT_EQ(minute->high - minute->low + 1, 60 * kS);
  auto tenth = parseDateRange("2013-05-01T10:00:00.5Z");
  EXPECT_EQ(tenth->low, (1367366400 + 10 * 3600) * kS + 500000);
  EXPECT_EQ(tenth->high - tenth->low + 1, 100000);  // one digit: a tenth of a second
  EXPECT_FALSE(parseDateRange("2013-13"));
  EXPECT_FALSE(parseDateRange("13-01-01"));
  EXPECT_FALSE(parseDateRange("2013-05-01T10:00:00+0200"));
}

// Patients: family/given from Patient.name, identifier, birthDate, gender (see each JSON).
TEST(SearchPatient, String) {
  EXPECT_EQ(search("Patient", {{"family", "chalmers"}}), (Ids{"example"}));
  EXPECT_EQ(search("Patient", {{"family", "windsor"}}), (Ids{"example"}));  // maiden name
  EXPECT_EQ(search("Patient", {{"family", "DON"}}), (Ids{"pat1", "pat2"}));  // "Donald"
  EXPECT_EQ(search("Patient", {{"family:exact", "donald"}}), (Ids{}));
  EXPECT_EQ(search("Patient", {{"family:exact", "Donald"}}), (Ids{"pat1", "pat2"}));
  EXPECT_EQ(search("Patient", {{"family", "heuv"}}), (Ids{}));  // starts-with: "van de Heuvel"
  EXPECT_EQ(search("Patient", {{"family:contains", "heuv"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Patient", {{"family", "van  de"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Patient", {{"given", "d"}}), (Ids{"pat1", "pat2"}));  // "Duck", "D"
  EXPECT_EQ(search("Patient", {{"given:exact", "D"}}), (Ids{"pat2"}));
  EXPECT_EQ(search("Patient", {{"name", "jim"}}), (Ids{"example"}));     // usual given "Jim"
  EXPECT_EQ(search("Patient", {{"name", "msc"}}), (Ids{"f001"}));        // suffix "MSc"
  EXPECT_EQ(search("Patient", {{"name", "张"}}), (Ids{"ch-example"}));   // name.text
}

TEST(SearchPatient, AccentInsensitiveString) {
  auto registry = corpus().registry;
  auto doc = json::parse(R"({"resourceType":"Patient","id":"m","name":[{"family":"Müller-Łęcka"}]})");
  ASSERT_TRUE(doc.ok());
  auto rows = extractIndex(*registry, *doc);
  for (const char* value : {"muller", "MÜLL", "Muller-Le", "mÜller-łęcka"}) {
    auto q = parseQuery(*registry, "Patient", {{"family", value}});
    ASSERT_TRUE(q.ok());
    EXPECT_TRUE(matches(*q, rows)) << value;
  }
  auto exact = parseQuery(*registry, "Patient", {{"family:exact", "Muller-Lecka"}});
  EXPECT_FALSE(matches(*exact, rows));
  auto exact2 = parseQuery(*registry, "Patient", {{"family:exact", "Müller-Łęcka"}});
  EXPECT_TRUE(matches(*exact2, rows));
}

TEST(SearchPatient, Token) {
  // example and xcda both have identifier value 12345 under different systems.
  EXPECT_EQ(search("Patient", {{"identifier", "12345"}}), (Ids{"example", "xcda"}));
  EXPECT_EQ(search("Patient", {{"identifier", "urn:oid:1.2.36.146.595.217.0.1|12345"}}), (Ids{"example"}));
  EXPECT_EQ(search("Patient", {{"identifier", "|12345"}}), (Ids{}));  // both have a system
  EXPECT_EQ(search("Patient", {{"identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"}}),
            (Ids{"example", "xcda"}));
  EXPECT_EQ(search("Patient", {{"identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|738472983"}}),
            (Ids{}));  // f001's identifier has no type
  EXPECT_EQ(search("Patient", {{"identifier:not", "12345"}}), (Ids{"pat1", "pat2", "f001", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"gender", "male"}}), (Ids{"example", "pat1", "f001", "xcda", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"gender", "other"}}), (Ids{"pat2"}));
  EXPECT_EQ(search("Patient", {{"gender:not", "male"}}), (Ids{"pat2"}));
  EXPECT_EQ(search("Patient", {{"_id", "pat1,pat2"}}), (Ids{"pat1", "pat2"}));  // comma = OR
}

TEST(SearchPatient, DatePrefixes) {
  // birthDate: example 1974-12-25, ch-example 1974-12-25, f001 1944-11-17, xcda 1932-09-24,
  // pat1/pat2 none.
  EXPECT_EQ(search("Patient", {{"birthdate", "1974"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "1974-12"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "eq1974-12-25"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "1974-12-24"}}), (Ids{}));
  EXPECT_EQ(search("Patient", {{"birthdate", "ne1974"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "lt1950"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "gt1944-11-17"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "ge1944-11-17"}}), (Ids{"example", "ch-example", "f001"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "le1944-11"}}), (Ids{"f001", "xcda"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "sa1944"}}), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "eb1944"}}), (Ids{"xcda"}));
  // ap with now = 2026-01-01: 10% of 51 years widens 1975 to about 1970..1980.
  const int64_t now2026 = 1767225600 * kS;
  EXPECT_EQ(search("Patient", {{"birthdate", "ap1975"}}, now2026), (Ids{"example", "ch-example"}));
  EXPECT_EQ(search("Patient", {{"birthdate", "ap1990"}}, now2026), (Ids{}));
  EXPECT_EQ(search("Patient", {{"birthdate:missing", "true"}}), (Ids{"pat1", "pat2"}));
  // repeated = AND: a range
  EXPECT_EQ(search("Patient", {{"birthdate", "ge1940"}, {"birthdate", "lt1950"}}), (Ids{"f001"}));
}

TEST(SearchObservation, TokenReferenceDateChain) {
  EXPECT_EQ(search("Observation", {{"code", "http://loinc.org|29463-7"}}), (Ids{"example"}));
  EXPECT_EQ(search("Observation", {{"code", "85354-9"}}), (Ids{"blood-pressure"}));
  EXPECT_EQ(search("Observation", {{"code", "http://snomed.info/sct|85354-9"}}), (Ids{}));
  // :text matches words of CodeableConcept.text and the codings' displays: "Body Weight"
  // (example) and "Body mass index (BMI) [Ratio]" (bmi).
  EXPECT_EQ(search("Observation", {{"code:text", "body"}}), (Ids{"example", "bmi"}));
  EXPECT_EQ(search("Observation", {{"code:text", "mass"}}), (Ids{"bmi"}));
  EXPECT_EQ(search("Observation", {{"code:text", "glucose"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Observation", {{"category", "vital-signs"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(search("Observation", {{"category:missing", "true"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Observation", {{"subject", "Patient/example"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(search("Observation", {{"patient", "example"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(search("Observation", {{"patient", "https://gw.example/fhir/Patient/f001"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Observation", {{"subject:Patient", "f001"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Observation", {{"subject:Group", "f001"}}), (Ids{}));
  EXPECT_EQ(search("Observation", {{"patient", "http://elsewhere.org/fhir/Patient/f001"}}), (Ids{}));
  // f001: effectivePeriod.start 2013-04-02T09:30:10+01:00, no end (open upper bound).
  EXPECT_EQ(search("Observation", {{"date", "2013-04-02"}}), (Ids{}));  // not contained in the day
  EXPECT_EQ(search("Observation", {{"date", "gt2013-04-02"}}), (Ids{"f001", "example"}));  // 2016-03-28
  EXPECT_EQ(search("Observation", {{"date", "2012-09-17"}}), (Ids{"blood-pressure"}));
  EXPECT_EQ(search("Observation", {{"date", "lt2000"}}), (Ids{"bmi"}));  // 1999-07-02
  EXPECT_EQ(search("Observation", {{"_profile", "http://hl7.org/fhir/StructureDefinition/vitalsigns"}}),
            (Ids{"blood-pressure", "bmi"}));
  // Chain: Patient/f001 has identifier urn:oid:2.16.840.1.113883.2.4.6.3|738472983.
  EXPECT_EQ(search("Observation", {{"patient.identifier", "urn:oid:2.16.840.1.113883.2.4.6.3|738472983"}}),
            (Ids{"f001"}));
  EXPECT_EQ(search("Observation", {{"patient.family", "chalmers"}}), (Ids{"example", "blood-pressure", "bmi"}));
  EXPECT_EQ(search("Observation", {{"subject:Patient.gender", "other"}}), (Ids{}));
}

TEST(SearchClaim, CoreAndGuideParameters) {
  // patient: 100150/960150/660150 -> Patient/1; MED-00050 -> "#patient-1" (contained).
  EXPECT_EQ(search("Claim", {{"patient", "Patient/1"}}), (Ids{"100150", "960150", "660150"}));
  EXPECT_EQ(search("Claim", {{"provider", "Organization/1"}}), (Ids{"100150", "960150", "660150", "MED-00050"}));
  EXPECT_EQ(search("Claim", {{"insurer:identifier", "http://www.bindb.com/bin|123456"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(search("Claim", {{"identifier", "http://happyvalley.com/claim|12345"}}), (Ids{"100150"}));
  EXPECT_EQ(search("Claim", {{"created", "2014-08-16"}}), (Ids{"100150", "960150", "660150"}));
  // MED-00050 created 2015-10-16T00:00:00-07:00 = 07:00Z on the 16th.
  EXPECT_EQ(search("Claim", {{"created", "2015-10-16"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(search("Claim", {{"use", "claim"}, {"status", "active"}}), (Ids{"100150", "960150", "660150", "MED-00050"}));
  // guide's service-date (item.servicedDate) and code (item.productOrService)
  EXPECT_EQ(search("Claim", {{"service-date", "2015-10-13"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(search("Claim", {{"service-date", "lt2015"}}), (Ids{"100150", "960150", "660150"}));
  EXPECT_EQ(search("Claim", {{"code", "http://www.ama-assn.org/go/cpt|62264"}}), (Ids{"MED-00050"}));
  EXPECT_EQ(search("Claim", {{"code", "exam"}}), (Ids{"960150", "660150"}));
  EXPECT_EQ(search("Claim", {{"code", "|1200"}}), (Ids{"100150"}));  // coding without system
}

TEST(SearchCoverage, ReferenceAndPeriod) {
  // 7546D: beneficiary Patient/5, payor Organization/2, period 2011-03-17..2012-03-17
  // 9876B1: beneficiary Patient/4, payor Organization/2, period 2011-05-23..2012-05-23
  // SP1234: beneficiary Patient/5, payor Patient/5, period ..2012-03-17 (no start)
  EXPECT_EQ(search("Coverage", {{"beneficiary", "Patient/5"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(search("Coverage", {{"patient", "4"}}), (Ids{"9876B1"}));
  EXPECT_EQ(search("Coverage", {{"payor", "Organization/2"}}), (Ids{"7546D", "9876B1"}));
  EXPECT_EQ(search("Coverage", {{"payor:Patient", "5"}}), (Ids{"SP1234"}));
  EXPECT_EQ(search("Coverage", {{"period", "ge2012-04-01"}}), (Ids{"9876B1"}));
  EXPECT_EQ(search("Coverage", {{"period", "lt2011-04-01"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(search("Coverage", {{"period", "sa2011-04"}}), (Ids{"9876B1"}));
  EXPECT_EQ(search("Coverage", {{"period", "eb2012-04"}}), (Ids{"7546D", "SP1234"}));
  EXPECT_EQ(search("Coverage", {{"period", "2011"}}), (Ids{}));  // no period lies within 2011
  EXPECT_EQ(search("Coverage", {{"identifier", "SP12345678"}}), (Ids{"SP1234"}));
}

TEST(SearchGroupOrganization, Basics) {
  EXPECT_EQ(search("Group", {{"identifier", "12345"}}), (Ids{"101"}));
  EXPECT_EQ(search("Group", {{"member", "Patient/pat2"}}), (Ids{"102"}));
  EXPECT_EQ(search("Organization", {{"name", "gastro"}}), (Ids{"1"}));
  EXPECT_EQ(search("Organization", {{"name", "health level"}}), (Ids{"hl7"}));
  EXPECT_EQ(search("Organization", {{"name:contains", "seven"}}), (Ids{"hl7"}));
  EXPECT_EQ(search("Organization", {{"identifier", "http://www.acme.org.au/units|Gastro"}}), (Ids{"1"}));
}

// The per-type parameters of query.md over Condition, Task, Communication, ServiceRequest and
// Practitioner examples. By hand from the JSON:
//  Condition example: subject Patient/example, onsetDateTime 2012-05-24, code SNOMED 39065001
//    "Burn of ear" text "Burnt Ear", category encounter-diagnosis, clinicalStatus active.
//  Condition f201: subject Patient/f201, onsetDateTime 2013-04-02, code SNOMED 386661006 "Fever",
//    category SNOMED 55607006 and problem-list-item, clinicalStatus resolved.
//  Condition stroke: subject Patient/example, onsetDateTime 2010-07-18, code 422504002 text
//    "Stroke" display "Ischemic stroke (disorder)", category encounter-diagnosis, active.
//  Task example1: status in-progress, for Patient/example, authoredOn 2016-10-31T08:25:05+10:00,
//    code.text "Lipid Panel". Task example2: accepted, for Patient/example, authoredOn
//    2016-10-31T08:45:05+10:00, code.text "Specimen Collection".
//  Communication example: status completed, subject Patient/example, category acme Alert, sent
//    2014-12-12T18:01:10-08:00 (= 2014-12-13T02:01:10Z).
//  ServiceRequest example: status completed, code SNOMED 303653007, subject Patient/example, no
//    authoredOn.
//  Practitioner example: family Careful, given Adam, identifier acme 23. Practitioner f001:
//    family "van den broek", given Eric, identifiers urn:oid:2.16.528.1.1007.3.1|938273695 and
//    urn:oid:2.16.840.1.113883.2.4.6.3|129IDH4OP733.
TEST(SearchQuery, ClinicalTypesOfTheContract) {
  EXPECT_EQ(search("Condition", {{"patient", "Patient/example"}}), (Ids{"example", "stroke"}));
  EXPECT_EQ(search("Condition", {{"subject", "f201"}}), (Ids{"f201"}));
  EXPECT_EQ(search("Condition", {{"code", "http://snomed.info/sct|386661006"}}), (Ids{"f201"}));
  EXPECT_EQ(search("Condition", {{"code:text", "burnt"}}), (Ids{"example"}));
  EXPECT_EQ(search("Condition", {{"code:text", "stroke"}}), (Ids{"stroke"}));
  EXPECT_EQ(search("Condition", {{"category", "problem-list-item"}}), (Ids{"f201"}));
  EXPECT_EQ(search("Condition", {{"category:not", "problem-list-item"}}), (Ids{"example", "stroke"}));
  EXPECT_EQ(search("Condition", {{"clinical-status", "resolved"}}), (Ids{"f201"}));
  // Onset: 2012-05-24 and 2010-07-18 start before 2013; 2013-04-02 is inside 2013.
  EXPECT_EQ(search("Condition", {{"onset-date", "lt2013"}}), (Ids{"example", "stroke"}));
  EXPECT_EQ(search("Condition", {{"onset-date", "2013"}}), (Ids{"f201"}));
  EXPECT_EQ(search("Condition", {{"onset-date", "ge2012-05-24"}}), (Ids{"example", "f201"}));
  EXPECT_EQ(search("Condition", {{"patient", "Patient/example"}, {"onset-date", "gt2011"}}), (Ids{"example"}));

  EXPECT_EQ(search("Task", {{"status", "in-progress"}}), (Ids{"example1"}));
  EXPECT_EQ(search("Task", {{"patient", "Patient/example"}}), (Ids{"example1", "example2"}));
  // 08:25:05 (a second's range) ends before 08:30:00.999999; 08:45:05 is after it.
  EXPECT_EQ(search("Task", {{"authored-on", "gt2016-10-31T08:30:00+10:00"}}), (Ids{"example2"}));
  EXPECT_EQ(search("Task", {{"authored-on", "2016-10-30"}}), (Ids{"example1", "example2"}));  // 22:25Z and 22:45Z
  EXPECT_EQ(search("Task", {{"code:text", "lipid"}}), (Ids{"example1"}));
  EXPECT_EQ(search("Task", {{"code:missing", "true"}}), (Ids{}));
  EXPECT_EQ(search("Task", {{"code:missing", "false"}}), (Ids{"example1", "example2"}));

  EXPECT_EQ(search("Communication", {{"category", "http://acme.org/messagetypes|Alert"}}), (Ids{"example"}));
  EXPECT_EQ(search("Communication", {{"sent", "2014-12-13"}}), (Ids{"example"}));  // in UTC
  EXPECT_EQ(search("Communication", {{"sent", "2014-12-12"}}), (Ids{}));
  EXPECT_EQ(search("Communication", {{"patient", "Patient/example"}, {"status", "completed"}}), (Ids{"example"}));

  EXPECT_EQ(search("ServiceRequest", {{"code", "303653007"}, {"status", "completed"}}), (Ids{"example"}));
  EXPECT_EQ(search("ServiceRequest", {{"authored:missing", "true"}}), (Ids{"example"}));
  EXPECT_EQ(search("ServiceRequest", {{"authored:missing", "false"}}), (Ids{}));

  EXPECT_EQ(search("Practitioner", {{"name", "careful"}}), (Ids{"example"}));
  EXPECT_EQ(search("Practitioner", {{"name", "van den"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Practitioner", {{"name:exact", "careful"}}), (Ids{}));
  EXPECT_EQ(search("Practitioner", {{"identifier", "urn:oid:2.16.528.1.1007.3.1|938273695"}}), (Ids{"f001"}));
  EXPECT_EQ(search("Practitioner", {{"identifier", "urn:oid:2.16.528.1.1007.3.1|129IDH4OP733"}}), (Ids{}));
}

TEST(SearchQuery, ResultParametersAndErrors) {
  const Registry& r = *corpus().registry;
  auto q = parseQuery(r, "Claim",
                      {{"_count", "2000"}, {"_sort", "-_lastUpdated,created"}, {"_include", "Claim:patient"},
                       {"_revinclude", "Provenance:target"}, {"_summary", "count"}, {"_total", "accurate"},
                       {"_elements", "id,status"}});
  ASSERT_TRUE(q.ok()) << q.message();
  EXPECT_EQ(q->count, 1000);
  ASSERT_EQ(q->sort.size(), 2u);
  EXPECT_TRUE(q->sort[0].descending);
  EXPECT_EQ(q->sort[0].param, "_lastUpdated");
  EXPECT_EQ(q->sort[1].param, "created");
  EXPECT_EQ(q->include, (std::vector<search::Include>{{"Claim", "patient", "", false}}));
  EXPECT_EQ(q->revinclude, (std::vector<search::Include>{{"Provenance", "target", "", false}}));
  EXPECT_EQ(q->summary, "count");
  EXPECT_EQ(q->total, "accurate");
  EXPECT_EQ(q->elements, (std::vector<std::string>{"id", "status"}));
  EXPECT_EQ(parseQuery(r, "Claim", {})->count, 50);

  EXPECT_EQ(errorOf("Patient", {{"foo", "1"}}), "not-supported: unknown search parameter 'foo' for Patient");
  QueryOptions lenient;
  lenient.lenient = true;
  auto l = parseQuery(r, "Patient", {{"foo", "1"}, {"family", "x"}}, lenient);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->ignored, (std::vector<std::string>{"foo"}));
  EXPECT_EQ(l->clauses.size(), 1u);
  EXPECT_EQ(errorOf("Patient", {{"_count", "x"}}).rfind("invalid: _count", 0), 0u);
  EXPECT_EQ(errorOf("Patient", {{"birthdate:exact", "1974"}}).rfind("not-supported: modifier ':exact'", 0), 0u);
  EXPECT_EQ(errorOf("Patient", {{"birthdate", "1974-1"}}).rfind("invalid:", 0), 0u);
  EXPECT_EQ(errorOf("Patient", {{"gender:missing", "maybe"}}).rfind("invalid:", 0), 0u);
  EXPECT_EQ(errorOf("Claim", {{"patient.organization.name", "x"}}).rfind("not-supported: chaining more", 0), 0u);
  EXPECT_EQ(errorOf("Observation", {{"subject.name", "x"}}).rfind("invalid: chained parameter 'subject'", 0), 0u);
  EXPECT_EQ(errorOf("Patient", {{"_sort", "family"}}).rfind("not-supported: _sort", 0), 0u);
  EXPECT_EQ(errorOf("Claim", {{"_include", "Claim:status"}}).rfind("not-supported: _include", 0), 0u);
  // R4 3.1.1.5.4: Type:param[:Target], `*` as the parameter (or the whole value), :iterate.
  auto includes = parseQuery(r, "Claim",
                             {{"_include:iterate", "Claim:patient:Patient"}, {"_include", "Claim:*"},
                              {"_revinclude", "*"}, {"_revinclude:iterate", "Provenance:*:Claim"}});
  ASSERT_TRUE(includes.ok()) << includes.message();
  EXPECT_EQ(includes->include, (std::vector<search::Include>{{"Claim", "patient", "Patient", true}, {"Claim", "*", "", false}}));
  EXPECT_EQ(includes->revinclude, (std::vector<search::Include>{{"*", "*", "", false}, {"Provenance", "*", "Claim", true}}));
  // Claim.patient refers to Patient only (SearchParameter-Claim-patient target).
  EXPECT_EQ(errorOf("Claim", {{"_include", "Claim:patient:Group"}}).rfind("invalid: _include", 0), 0u);
  EXPECT_EQ(errorOf("Claim", {{"_include", "Nothing:patient"}}).rfind("invalid: _include", 0), 0u);
  EXPECT_EQ(errorOf("Claim", {{"_include", "Claim"}}).rfind("invalid: _include", 0), 0u);
  // Group characteristic-value is a composite: not indexed yet, so not offered.
  EXPECT_EQ(errorOf("Group", {{"characteristic-value", "gender$mixed"}}).rfind("not-supported:", 0), 0u);
}

TEST(SearchQuery, OrAndAnd) {
  EXPECT_EQ(search("Patient", {{"family", "chalmers,levin"}}), (Ids{"example", "xcda"}));
  EXPECT_EQ(search("Patient", {{"given", "peter"}, {"given", "jim"}}), (Ids{"example"}));
  EXPECT_EQ(search("Patient", {{"family", "donald"}, {"given:exact", "D"}}), (Ids{"pat2"}));
  EXPECT_EQ(search("Patient", {{"family", "donald"}, {"gender", "female"}}), (Ids{}));
}

}  // namespace
}  // namespace fhir::search

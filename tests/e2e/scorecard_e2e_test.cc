// SPDX-License-Identifier: Apache-2.0
// Issue 20 (first part): the fixture population of tests/data/scorecard (generate.py: 320
// patients, three payers, four practices, rosters with race/ethnicity/language, e-consults, HRSN
// screenings) posted through the ingest routes of the real gateway; `$evaluate-measure` of every
// measure, for everyone and for each practice, equals what tests/data/scorecard/expected.py
// worked out from the generator's own records (expected.json), for every group and stratum,
// suppression included; every MeasureReport validates against equity-measurereport.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "conformance/json/json.h"
#include "gateway_test_paths.h"
#include "tests/support/gateway_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

constexpr const char* kAbsent = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
constexpr const char* kProfile = "https://fhir.alignment-gateway.org/StructureDefinition/equity-measurereport";

json::Document parse(const std::string& text) {
  json::Document doc;
  json::ParseError error;
  EXPECT_TRUE(json::parse(text, doc, error)) << text.substr(0, 2000);
  return doc;
}

// Numbers keep their text (json.h): read them with numberAsInt64 / numberAsDouble.
int64_t integer(const json::Value& value) { return json::numberAsInt64(value).value_or(-1); }
double number(const json::Value& value) { return json::numberAsDouble(value).value_or(-1); }

std::string str(const json::Value& value) { return json::isString(value) ? std::string(json::stringView(value)) : ""; }

std::string percent(const std::string& text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class ScorecardE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir();
    payer_ = new LoopbackReceiver();
    const std::string config_path = (data_->path() / "config.json").string();
    std::ofstream config(config_path);
    config << R"({"dataDir": ")" << (data_->path() / "var").string() << R"(", "payers": [)";
    const char* payers[][2] = {{"lakeshore-medicaid", "lakeshore-medicaid"}, {"northwind-commercial", "northwind-commercial"},
                               {"prairie-medicare", "x12-837p"}};
    for (size_t i = 0; i < 3; ++i) {
      config << (i ? "," : "") << R"({"id": ")" << payers[i][0] << R"(", "name": ")" << payers[i][0] << R"(", "format": ")"
             << payers[i][1] << R"(", "endpoint": ")" << payer_->url("/bundles") << R"("})";
    }
    config << "]}";
    config.close();
    gateway_ = new GatewayProcess(std::vector<std::string>{"--config", config_path});
    ASSERT_NE(gateway_->port(), 0);

    const auto dir = testDataDir() / "scorecard";
    for (const char* payer : {"lakeshore-medicaid", "northwind-commercial", "prairie-medicare"}) {
      HttpResult posted = gateway_->post(std::string("/ingest/roster/") + payer,
                                         readFile(dir / (std::string("roster-") + payer + ".csv")), "text/csv");
      ASSERT_EQ(posted.status, 200) << posted.body;
      json::Document answer = parse(posted.body);
      ASSERT_EQ(integer(answer["rejected"]), 0) << posted.body;
    }
    std::ifstream events(dir / "events.ndjson");
    std::string line;
    while (std::getline(events, line)) {
      if (line.empty()) continue;
      bool care = true;  // e-consult events go to /ingest/econsult, the rest are care-management's
      for (const char* type : {"request", "response", "closed", "cancelled"}) {
        if (line.find(std::string(R"("eventType":")") + type + "\"") != std::string::npos) care = false;
      }
      HttpResult posted = gateway_->post(care ? "/ingest/care-management" : "/ingest/econsult", line, "application/json");
      ASSERT_EQ(posted.status, 202) << line.substr(0, 200) << "\n" << posted.body;
    }
    expected_ = new json::Document(parse(readFile(dir / "expected.json")));
  }

  static void TearDownTestSuite() {
    delete gateway_;
    delete payer_;
    delete data_;
    delete expected_;
  }

  // The id of the practice Organization of `npi`, found by search.
  static std::string practiceId(const std::string& npi) {
    HttpResult found = gateway_->get("/fhir/Organization?identifier=" + percent("http://hl7.org/fhir/sid/us-npi|" + npi));
    EXPECT_EQ(found.status, 200) << found.body;
    json::Document bundle = parse(found.body);
    EXPECT_TRUE(bundle.HasMember("entry") && bundle["entry"].Size() == 1) << found.body.substr(0, 1000);
    if (!bundle.HasMember("entry") || bundle["entry"].Empty()) return "";
    return str(bundle["entry"][0]["resource"]["id"]);
  }

  static HttpResult evaluate(const std::string& measure, const std::string& subject, const std::string& report_type = "") {
    const json::Value& period = (*expected_)["period"];
    std::string path = "/fhir/Measure/" + measure + "/$evaluate-measure?periodStart=" + str(period[0]) + "&periodEnd=" + str(period[1]);
    if (!subject.empty()) path += "&subject=" + percent(subject);
    if (!report_type.empty()) path += "&reportType=" + report_type;
    return gateway_->get(path);
  }

  static void expectValid(const std::string& report) {
    HttpResult checked = gateway_->post("/fhir/MeasureReport/$validate?profile=" + percent(kProfile), report, "application/fhir+json");
    ASSERT_EQ(checked.status, 200) << checked.body;
    json::Document outcome = parse(checked.body);
    for (const auto& issue : outcome["issue"].GetArray()) {
      const std::string severity = str(issue["severity"]);
      EXPECT_TRUE(severity != "error" && severity != "fatal") << checked.body;
    }
  }

  static TempDir* data_;
  static LoopbackReceiver* payer_;
  static GatewayProcess* gateway_;
  static json::Document* expected_;
};

TempDir* ScorecardE2e::data_ = nullptr;
LoopbackReceiver* ScorecardE2e::payer_ = nullptr;
GatewayProcess* ScorecardE2e::gateway_ = nullptr;
json::Document* ScorecardE2e::expected_ = nullptr;

// One cell (a group or a stratum) of the report against expected.json's cell.
void expectCell(const json::Value& actual, const json::Value& expected, const std::string& where) {
  std::map<std::string, const json::Value*> populations;
  for (const auto& population : actual["population"].GetArray()) {
    populations[str(population["code"]["coding"][0]["code"])] = &population;
  }
  for (const auto& member : expected["populations"].GetObject()) {
    const std::string code = member.name.GetString();
    ASSERT_TRUE(populations.count(code)) << where << ": no population " << code;
    const json::Value& population = *populations[code];
    if (json::isString(member.value)) {  // "masked": no number, the data-absent-reason instead
      EXPECT_FALSE(population.HasMember("count")) << where << " " << code << " must be suppressed";
      ASSERT_TRUE(population.HasMember("extension")) << where << " " << code;
      EXPECT_EQ(str(population["extension"][0]["url"]), kAbsent) << where;
      EXPECT_EQ(str(population["extension"][0]["valueCode"]), "masked") << where;
    } else {
      ASSERT_TRUE(population.HasMember("count")) << where << " " << code << " expected " << integer(member.value);
      EXPECT_EQ(integer(population["count"]), integer(member.value)) << where << " " << code;
    }
  }
  EXPECT_EQ(populations.size(), expected["populations"].MemberCount()) << where;
  if (expected["score"].IsNull()) {
    EXPECT_FALSE(actual.HasMember("measureScore")) << where;
  } else {
    ASSERT_TRUE(actual.HasMember("measureScore")) << where;
    EXPECT_NEAR(number(actual["measureScore"]["value"]), number(expected["score"]), 1e-4) << where;
  }
}

TEST_F(ScorecardE2e, EveryMeasureAndStratumMatchesTheIndependentlyWorkedOutValues) {
  for (const auto& evaluation : (*expected_)["evaluations"].GetArray()) {
    std::string subject;
    if (evaluation["subject"].IsObject()) subject = "Organization/" + practiceId(str(evaluation["subject"]["practiceNpi"]));
    for (const auto& measure : evaluation["measures"].GetObject()) {
      const std::string id = measure.name.GetString();
      HttpResult answer = evaluate(id, subject);
      ASSERT_EQ(answer.status, 200) << id << " " << subject << "\n" << answer.body;
      json::Document report = parse(answer.body);
      EXPECT_EQ(str(report["resourceType"]), "MeasureReport");
      EXPECT_EQ(str(report["type"]), "summary");
      EXPECT_EQ(str(report["measure"]), "https://fhir.alignment-gateway.org/Measure/" + id);
      if (!subject.empty()) {
        // R4 MeasureReport.subject cannot be an Organization: the practice is the reporter.
        EXPECT_FALSE(report.HasMember("subject"));
        EXPECT_EQ(str(report["reporter"]["reference"]), subject);
      }
      expectValid(answer.body);
      std::map<std::string, const json::Value*> groups;
      for (const auto& group : report["group"].GetArray()) groups[str(group["id"])] = &group;
      EXPECT_EQ(groups.size(), measure.value.MemberCount()) << id;
      for (const auto& expected_group : measure.value.GetObject()) {
        const std::string gid = expected_group.name.GetString();
        const std::string where = id + "/" + gid + " " + (subject.empty() ? "everyone" : subject);
        ASSERT_TRUE(groups.count(gid)) << where;
        const json::Value& group = *groups[gid];
        expectCell(group, expected_group.value, where);
        std::map<std::string, const json::Value*> stratifiers;
        for (const auto& stratifier : group["stratifier"].GetArray()) {
          stratifiers[str(stratifier["code"][0]["coding"][0]["code"])] = &stratifier;
        }
        for (const auto& expected_stratifier : expected_group.value["strata"].GetObject()) {
          const std::string code = expected_stratifier.name.GetString();
          ASSERT_TRUE(stratifiers.count(code)) << where << ": no stratifier " << code;
          std::map<std::string, const json::Value*> strata;
          for (const auto& stratum : (*stratifiers[code])["stratum"].GetArray()) strata[str(stratum["value"]["text"])] = &stratum;
          EXPECT_EQ(strata.size(), expected_stratifier.value.MemberCount()) << where << " " << code;
          for (const auto& expected_stratum : expected_stratifier.value.GetObject()) {
            const std::string value = expected_stratum.name.GetString();
            ASSERT_TRUE(strata.count(value)) << where << ": no stratum " << code << "=" << value;
            expectCell(*strata[value], expected_stratum.value, where + " " + code + "=" + value);
          }
        }
      }
    }
  }
}

TEST_F(ScorecardE2e, SuppressionIsExercisedAndSubjectListsNameTheirSubjects) {
  // The fixture has suppressed cells and shown ones (else the comparison above proves little).
  const std::string all = readFile(testDataDir() / "scorecard" / "expected.json");
  EXPECT_NE(all.find("\"masked\""), std::string::npos);
  // A subject-list report is not suppressed and names each counted patient in a contained List.
  const std::string npi = str((*expected_)["evaluations"][1]["subject"]["practiceNpi"]);
  HttpResult answer = evaluate("attributed-members", "Organization/" + practiceId(npi), "subject-list");
  ASSERT_EQ(answer.status, 200) << answer.body;
  json::Document report = parse(answer.body);
  EXPECT_EQ(str(report["type"]), "subject-list");
  const int64_t patients = integer((*expected_)["evaluations"][1]["patients"]);
  const json::Value& population = report["group"][0]["population"][0];
  EXPECT_EQ(integer(population["count"]), patients);
  ASSERT_TRUE(report.HasMember("contained"));
  const std::string list_ref = str(population["subjectResults"]["reference"]);
  bool found = false;
  for (const auto& list : report["contained"].GetArray()) {
    if ("#" + str(list["id"]) != list_ref) continue;
    found = true;
    EXPECT_EQ(static_cast<int64_t>(list["entry"].Size()), patients);
  }
  EXPECT_TRUE(found) << list_ref;
  expectValid(answer.body);
}

// A report without its `date` (when it was evaluated), compact, to compare two evaluations.
std::string withoutDate(const std::string& report) {
  json::Document doc = parse(report);
  if (doc.IsObject() && doc.HasMember("date")) doc.RemoveMember("date");
  return json::serialize(doc);
}

TEST_F(ScorecardE2e, ThePostedOperationStoresTheReportAndSearchFindsItBySubjectAndPeriod) {
  const json::Value& period = (*expected_)["period"];
  // A practice's attribution Group of one payer (the subject R4 allows in MeasureReport.subject).
  const std::string npi = str((*expected_)["evaluations"][1]["subject"]["practiceNpi"]);
  HttpResult groups = gateway_->get("/fhir/Group?identifier=" + percent("http://hl7.org/fhir/sid/us-npi|" + npi));
  ASSERT_EQ(groups.status, 200) << groups.body;
  json::Document bundle = parse(groups.body);
  ASSERT_TRUE(bundle.HasMember("entry") && !bundle["entry"].Empty()) << groups.body.substr(0, 500);
  const std::string subject = "Group/" + str(bundle["entry"][0]["resource"]["id"]);
  const std::string parameters = R"({"resourceType":"Parameters","parameter":[{"name":"periodStart","valueDate":")" + str(period[0]) +
                                 R"("},{"name":"periodEnd","valueDate":")" + str(period[1]) + R"("},{"name":"subject","valueString":")" +
                                 subject + R"("},{"name":"reportType","valueCode":"population"},{"name":"persist","valueBoolean":true}]})";
  HttpResult stored = gateway_->post("/fhir/Measure/hrsn-screening/$evaluate-measure", parameters, "application/fhir+json");
  ASSERT_EQ(stored.status, 201) << stored.body;
  json::Document report = parse(stored.body);
  const std::string id = str(report["id"]);
  ASSERT_FALSE(id.empty()) << stored.body;
  EXPECT_EQ(str(report["meta"]["versionId"]), "1") << stored.body;
  EXPECT_EQ(str(report["subject"]["reference"]), subject);
  expectValid(stored.body);
  // The same figures as the GET form (which stores nothing).
  HttpResult evaluated = evaluate("hrsn-screening", subject);
  ASSERT_EQ(evaluated.status, 200) << evaluated.body;
  json::Document plain = parse(evaluated.body);
  EXPECT_FALSE(plain.HasMember("id"));
  EXPECT_EQ(json::serialize(plain["group"]), json::serialize(report["group"]));
  // Found by subject and period (the MeasureReport search index), and read back.
  HttpResult found = gateway_->get("/fhir/MeasureReport?subject=" + percent(subject) + "&period=" + str(period[0]).substr(0, 4));
  ASSERT_EQ(found.status, 200) << found.body;
  json::Document hits = parse(found.body);
  ASSERT_TRUE(hits.HasMember("entry")) << found.body.substr(0, 500);
  ASSERT_EQ(hits["entry"].Size(), 1u) << found.body.substr(0, 500);
  EXPECT_EQ(str(hits["entry"][0]["resource"]["id"]), id);
  HttpResult other_year = gateway_->get("/fhir/MeasureReport?subject=" + percent(subject) + "&period=2024");
  ASSERT_EQ(other_year.status, 200) << other_year.body;
  EXPECT_FALSE(parse(other_year.body).HasMember("entry")) << other_year.body.substr(0, 500);
  HttpResult read = gateway_->get("/fhir/MeasureReport/" + id);
  ASSERT_EQ(read.status, 200) << read.body;
  // Evaluating again stores a new version of the same report (its id is the measure, subject,
  // period and report type).
  HttpResult again = gateway_->post("/fhir/Measure/hrsn-screening/$evaluate-measure", parameters, "application/fhir+json");
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(str(parse(again.body)["id"]), id);
  EXPECT_EQ(str(parse(again.body)["meta"]["versionId"]), "2") << again.body;
  // Storing is a POST's: a GET asking for it is refused; a POST without it stores nothing.
  HttpResult get_persist = gateway_->get("/fhir/Measure/hrsn-screening/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31&persist=true");
  EXPECT_EQ(get_persist.status, 400) << get_persist.body;
  const std::string no_persist = R"({"resourceType":"Parameters","parameter":[{"name":"periodStart","valueDate":"2026-01-01"},)"
                                 R"({"name":"periodEnd","valueDate":"2026-12-31"},{"name":"subject","valueReference":{"reference":")" +
                                 subject + R"("}}]})";
  HttpResult posted = gateway_->post("/fhir/Measure/attributed-members/$evaluate-measure", no_persist, "application/fhir+json");
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(withoutDate(posted.body), withoutDate(evaluate("attributed-members", subject).body));
  HttpResult bad = gateway_->post("/fhir/Measure/attributed-members/$evaluate-measure", R"({"resourceType":"Patient"})", "application/fhir+json");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("Parameters"), std::string::npos) << bad.body;
}

TEST_F(ScorecardE2e, TheMeasureCommandGivesTheSameReportsAsTheHttpOperation) {
  const json::Value& period = (*expected_)["period"];
  const std::string npi = str((*expected_)["evaluations"][2]["subject"]["practiceNpi"]);
  const std::string subject = "Organization/" + practiceId(npi);
  TempDir scratch;
  for (const auto& measure : (*expected_)["evaluations"][0]["measures"].GetObject()) {
    const std::string id = measure.name.GetString();
    CommandRun run = runCommand(std::string(GATEWAY_BINARY) + " measure --measure " + id + " --period " + str(period[0]) + "/" +
                                    str(period[1]) + " --subject " + subject + " --data " + (data_->path() / "var").string(),
                                scratch);
    ASSERT_EQ(run.exit_code, 0) << id << ": " << (run.err.empty() ? "" : run.err[0]);
    ASSERT_EQ(run.out.size(), 1u) << id;
    HttpResult http = evaluate(id, subject);
    ASSERT_EQ(http.status, 200) << http.body;
    EXPECT_EQ(withoutDate(run.out[0]), withoutDate(http.body)) << id;
  }
  CommandRun help = runCommand(std::string(GATEWAY_BINARY) + " measure --help", scratch);
  EXPECT_EQ(help.exit_code, 0);
  std::string text;
  for (const std::string& line : help.out) text += line + "\n";
  for (const char* option : {"--measure ID", "--period START/END", "--subject REF", "--config FILE", "--data DIR"}) {
    EXPECT_NE(text.find(option), std::string::npos) << option;
  }
  CommandRun unknown = runCommand(std::string(GATEWAY_BINARY) + " measure --measure no-such --period 2026-01-01/2026-12-31 --subject " +
                                      subject + " --data " + (data_->path() / "var").string(),
                                  scratch);
  EXPECT_EQ(unknown.exit_code, 2);
  ASSERT_FALSE(unknown.err.empty());
  EXPECT_NE(unknown.err[0].find("no Measure/no-such"), std::string::npos) << unknown.err[0];
  CommandRun no_subject = runCommand(std::string(GATEWAY_BINARY) + " measure --measure care-plans --period 2026-01-01/2026-12-31", scratch);
  EXPECT_EQ(no_subject.exit_code, 2);
}

TEST_F(ScorecardE2e, BadParametersAreOperationOutcomes) {
  HttpResult unknown = gateway_->get("/fhir/Measure/no-such/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_NE(unknown.body.find("OperationOutcome"), std::string::npos);
  HttpResult no_period = gateway_->get("/fhir/Measure/attributed-members/$evaluate-measure");
  EXPECT_EQ(no_period.status, 400) << no_period.body;
  HttpResult bad_date = gateway_->get("/fhir/Measure/attributed-members/$evaluate-measure?periodStart=2026-13&periodEnd=2026-12-31");
  EXPECT_EQ(bad_date.status, 400) << bad_date.body;
  HttpResult no_subject = gateway_->get(
      "/fhir/Measure/attributed-members/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31&subject=Group/nope");
  EXPECT_EQ(no_subject.status, 404) << no_subject.body;
  HttpResult measure = gateway_->get("/fhir/Measure/hrsn-screening");
  ASSERT_EQ(measure.status, 200) << measure.body;
  EXPECT_EQ(str(parse(measure.body)["resourceType"]), "Measure");
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Issue 20, Build 4: the data-quality scorecard (gateway/scorecard/quality.h) over a real SQLite
// store written by hand: accepted records (their mapping Provenance), quarantined ones, an outbox
// row delivered after a known time, an unroutable claim. Every expected figure is counted from
// what the test wrote; the pages' HTML keeps figures as data attributes and escapes text.
#include "gateway/scorecard/quality.h"

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/scorecard/pages.h"
#include "tests/support/test_support.h"

namespace fhir::gateway::scorecard {
namespace {

// A mapping Provenance as the mapper writes it (mappers/engine/runtime.cc).
std::string provenance(const std::string& id, const std::string& record, const std::string& agent_json,
                       const std::vector<std::string>& targets) {
  std::string out = R"({"resourceType":"Provenance","id":")" + id +
                    R"(","meta":{"profile":["https://fhir.alignment-gateway.org/StructureDefinition/mapping-provenance"]},"target":[)";
  for (size_t i = 0; i < targets.size(); ++i) out += std::string(i ? "," : "") + R"({"reference":")" + targets[i] + R"("})";
  out += R"(],"recorded":"2026-01-01T00:00:00Z","agent":[{"who":)" + agent_json +
         R"(}],"entity":[{"role":"source","what":{"identifier":{"system":"https://fhir.alignment-gateway.org/sid/source-record","value":")" +
         record + R"("}}}]})";
  return out;
}

IngestCommit accepted(const std::string& channel, const std::string& key, const std::string& provenance_json) {
  IngestCommit commit;
  commit.channel = channel;
  commit.idempotency_key = key;
  commit.payload = "{}";
  commit.answer = "{}";
  auto doc = json::parse(provenance_json);
  EXPECT_TRUE(doc.ok()) << provenance_json;
  commit.resources.push_back({"Provenance", std::string(json::getString(*doc, "id").value_or("")), provenance_json});
  return commit;
}

std::string outcome(const std::string& diagnostics, const std::string& code, const std::string& location) {
  return R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":")" + code + R"(","diagnostics":")" + diagnostics +
         R"(","location":[")" + location + R"("]},{"severity":"warning","code":"invariant","diagnostics":"not counted"}]})";
}

const QualityRow* row(const std::vector<QualityRow>& rows, const std::string& key) {
  for (const QualityRow& item : rows) {
    if (item.key == key) return &item;
  }
  return nullptr;
}

TEST(ScorecardQualityTest, BundledDesignElementsLoadAndClassify) {
  auto elements = DesignElements::bundled();
  ASSERT_TRUE(elements.ok()) << elements.message();
  const DesignElements& table = **elements;
  auto id = [&](std::string_view channel, std::string_view event_type, std::vector<std::string> targets) {
    const DesignElement* element = table.classify(channel, event_type, targets);
    return element != nullptr ? element->id : std::string("none");
  };
  EXPECT_EQ(id("roster", "", {}), "attribution");
  EXPECT_EQ(id("econsult", "request", {}), "econsult");
  EXPECT_EQ(id("claims", "", {"Claim", "Patient"}), "billing");
  EXPECT_EQ(id("care-management", "hrsn-screening", {}), "hrsn-screening");  // quarantined: by its event type
  EXPECT_EQ(id("care-management", "", {"Patient", "Observation"}), "hrsn-screening");  // accepted: by what it wrote
  EXPECT_EQ(id("care-management", "", {"Patient", "RiskAssessment"}), "risk-tiers");
  EXPECT_EQ(id("care-management", "", {"Patient", "CareTeam", "CarePlan", "Goal"}), "care-plans");
  EXPECT_EQ(id("care-management", "social-referral", {}), "social-referrals");
  EXPECT_EQ(id("care-management", "", {}), "none");  // an unreadable event: nothing to tell it by
  EXPECT_EQ(id("unknown-channel", "", {"Patient"}), "none");
}

TEST(ScorecardQualityTest, DesignElementsFileErrorsNameTheMember) {
  auto missing = DesignElements::parse(R"({"elements":[{"title":"x","rules":[{"channel":"roster"}]}]})");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("elements[0].id"), std::string::npos) << missing.message();
  auto unknown = DesignElements::parse(R"({"elements":[{"id":"a","rules":[{"channel":"roster","chanel":"x"}]}]})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("rules[0]: unknown member 'chanel'"), std::string::npos) << unknown.message();
  EXPECT_FALSE(DesignElements::parse(R"({"elements":[{"id":"a","rules":[]}]})").ok());
}

TEST(ScorecardQualityTest, FailuresGroupAcrossRecords) {
  FailureCount csv = failureOf("line 12, column member_sex: 'X' has no translation in ConceptMap payer-sex", "value", "line 12, column member_sex");
  EXPECT_EQ(csv.element, "column member_sex");
  EXPECT_EQ(csv.rule, "value ConceptMap payer-sex");
  EXPECT_EQ(csv.profile, "");
  FailureCount json_event = failureOf("$.screening.answers[3].answerLoinc: 'LA9' is not in ValueSet hrsn-screening-answers", "value",
                                      "$.screening.answers[3].answerLoinc");
  EXPECT_EQ(json_event.element, "$.screening.answers[].answerLoinc");
  EXPECT_EQ(json_event.rule, "value ValueSet hrsn-screening-answers");
  FailureCount profile = failureOf("Constraint failed: align-ct-3: 'x' (https://fhir.alignment-gateway.org/StructureDefinition/alignment-careteam)",
                                   "invariant", "Bundle.entry[2].resource.participant[0]");
  EXPECT_EQ(profile.element, "Bundle.entry[].resource.participant[]");
  EXPECT_EQ(profile.rule, "invariant align-ct-3");
  EXPECT_EQ(profile.profile, "alignment-careteam");
  EXPECT_EQ(failureOf("bad", "structure", "segment 23 (SV1), element 1").element, "segment (SV1), element 1");
}

TEST(ScorecardQualityTest, CountsWhatTheStoreRecords) {
  fhir::testing::TempDir dir;
  auto opened = openSqliteStore(dir.path().string());
  ASSERT_TRUE(opened.ok()) << opened.message();
  Store& store = **opened;
  const std::string ehr_agent = R"({"identifier":{"system":"https://fhir.alignment-gateway.org/sid/source-system","value":"riverview-ehr"},"display":"riverview-ehr"})";
  // Accepted: two e-consult events and an HRSN screening of riverview-ehr (the care-management
  // one's agent is a Device: its source comes from the event's idempotency key, which the
  // care-management channel prefixes with its name), three roster rows
  // of lakeshore-medicaid; a merge Provenance (no mapping profile) is not a record.
  ASSERT_TRUE(store.commitIngest(accepted("econsult", "riverview-ehr\x1f" "e1", provenance("p1", "econsult:POST /ingest/econsult:request", ehr_agent, {"Patient/a", "ServiceRequest/s1"}))).ok());
  ASSERT_TRUE(store.commitIngest(accepted("econsult", "riverview-ehr\x1f" "e2", provenance("p2", "econsult:POST /ingest/econsult:request", ehr_agent, {"Patient/a", "ServiceRequest/s2", "Communication/c"}))).ok());
  ASSERT_TRUE(store.commitIngest(accepted("care-management", "care-management\x1f" "riverview-ehr\x1f" "h1", provenance("p3", "care-management:POST /ingest/care-management:request", R"({"reference":"Device/d1"})", {"Patient/a", "Observation/o1"}))).ok());
  for (int i = 0; i < 3; ++i) {
    const std::string id = "r" + std::to_string(i);
    ASSERT_TRUE(store.commitIngest(accepted("roster:lakeshore-medicaid", "roster\x1f" + id,
                                            provenance(id, "lakeshore-medicaid:POST /ingest/roster/lakeshore-medicaid:line " + std::to_string(i + 2),
                                                       R"({"reference":"Organization/lk","display":"lakeshore-medicaid"})", {"Group/g", "Patient/x" + id}))).ok());
  }
  IngestCommit merge = accepted("econsult", "merge", R"({"resourceType":"Provenance","id":"m1","target":[{"reference":"Patient/a"}],"recorded":"2026-01-01T00:00:00Z","agent":[{"who":{"display":"merge"}}]})");
  merge.outbox.push_back({"payer:lakeshore-medicaid", "claim", "{}"});
  ASSERT_TRUE(store.commitIngest(merge).ok());
  // Quarantined: two roster rows with one failure, an HRSN event with another; one entry
  // replayed and accepted since (not counted as quarantined).
  for (int line : {5, 9}) {
    QuarantineWrite write{"roster:lakeshore-medicaid", "text/csv", "row " + std::to_string(line), false,
                          outcome("line " + std::to_string(line) + ", column member_sex: 'X' has no translation in ConceptMap payer-sex", "value",
                                  "line " + std::to_string(line) + ", column member_sex"), true};
    ASSERT_TRUE(store.quarantine(write).ok());
  }
  QuarantineWrite event{"care-management", "application/json", R"({"source":"riverview-ehr","eventType":"hrsn-screening","eventId":"bad"})", false,
                        outcome("$.screening.answers[0].answerLoinc: 'LA9' is not in ValueSet hrsn-screening-answers", "value", "$.screening.answers[0].answerLoinc")};
  ASSERT_TRUE(store.quarantine(event).ok());
  QuarantineWrite replayed{"econsult", "application/json", R"({"source":"riverview-ehr","eventType":"request","eventId":"late"})", false,
                           outcome("missing", "required", "$.patient")};
  auto replayed_id = store.quarantine(replayed);
  ASSERT_TRUE(replayed_id.ok());
  ASSERT_TRUE(store.recordReplay(*replayed_id, 202, "{}", true).ok());
  // The payer row is delivered 250 ms after its commit.
  auto rows = store.outboxRange("payer:lakeshore-medicaid", 1, 1);
  ASSERT_TRUE(rows.ok() && rows->size() == 1);
  ASSERT_TRUE(store.recordDelivered(DeliveryAttempt{rows->front().id, rows->front().created_ms + 200, 200, "", 50}).ok());
  // An unroutable claim.
  IngestCommit waiting = accepted("econsult", "waiting", provenance("p9", "econsult:POST /ingest/econsult:response", ehr_agent, {"Claim/c9"}));
  waiting.unroutable.push_back({"c9", "a", "2026-02-01", "99451", "no coverage on the date of service", "{}"});
  ASSERT_TRUE(store.commitIngest(waiting).ok());

  auto elements = DesignElements::bundled();
  ASSERT_TRUE(elements.ok());
  auto report = computeQuality(store, "http://127.0.0.1/fhir", **elements);
  ASSERT_TRUE(report.ok()) << report.message();

  const QualityRow* ehr = row(report->sources, "riverview-ehr");
  ASSERT_NE(ehr, nullptr);
  EXPECT_EQ(ehr->kind, "ehr");
  EXPECT_EQ(ehr->accepted, 4);  // p1, p2, p3 (its source from the event), p9
  EXPECT_EQ(ehr->quarantined, 1);
  ASSERT_EQ(ehr->failures.size(), 1u);
  EXPECT_EQ(ehr->failures[0].element, "$.screening.answers[].answerLoinc");
  const QualityRow* payer = row(report->sources, "lakeshore-medicaid");
  ASSERT_NE(payer, nullptr);
  EXPECT_EQ(payer->kind, "payer");
  EXPECT_EQ(payer->accepted, 3);
  EXPECT_EQ(payer->quarantined, 2);
  EXPECT_EQ(payer->received(), 5);
  ASSERT_EQ(payer->failures.size(), 1u);  // both rows break one rule: one line, counted twice
  EXPECT_EQ(payer->failures[0].count, 2);
  EXPECT_EQ(payer->failures[0].element, "column member_sex");
  EXPECT_EQ(payer->failures[0].rule, "value ConceptMap payer-sex");
  EXPECT_EQ(report->sources.front().kind, "payer");  // payers first

  EXPECT_EQ(row(report->elements, "attribution")->accepted, 3);
  EXPECT_EQ(row(report->elements, "attribution")->quarantined, 2);
  EXPECT_EQ(row(report->elements, "econsult")->accepted, 3);
  EXPECT_EQ(row(report->elements, "econsult")->quarantined, 0);  // the replayed entry was accepted
  EXPECT_EQ(row(report->elements, "hrsn-screening")->accepted, 1);
  EXPECT_EQ(row(report->elements, "hrsn-screening")->quarantined, 1);
  EXPECT_EQ(row(report->elements, "billing")->received(), 0);

  ASSERT_EQ(report->feeds.size(), 1u);
  EXPECT_EQ(report->feeds[0].destination, "payer:lakeshore-medicaid");
  EXPECT_EQ(report->feeds[0].delivered, 1);
  EXPECT_EQ(report->feeds[0].p50_ms, 250);
  EXPECT_EQ(report->feeds[0].p99_ms, 250);
  EXPECT_EQ(report->unroutable, 1);
  EXPECT_EQ(report->conflicts, 0);

  // The JSON form says the same.
  auto doc = json::parse(qualityJson(*report));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(json::numberAsInt64((*doc)["unroutable"]).value_or(-1), 1);
  bool found = false;
  for (const auto& source : (*doc)["sources"].GetArray()) {
    if (json::getString(source, "key") != "lakeshore-medicaid") continue;
    found = true;
    EXPECT_EQ(json::numberAsInt64(source["received"]).value_or(-1), 5);
    EXPECT_EQ(json::numberAsDouble(source["quarantinedShare"]).value_or(-1), 0.4);
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(json::numberAsInt64((*doc)["feeds"][0]["lagP50Ms"]).value_or(-1), 250);

  // The page shows the same figures as data attributes.
  const std::string page = qualityPage(*report);
  EXPECT_NE(page.find(R"(data-quality="sources|lakeshore-medicaid|quarantined" data-value="2")"), std::string::npos);
  EXPECT_NE(page.find(R"(data-quality="feeds|payer:lakeshore-medicaid|lagP50Ms" data-value="250")"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);

  // The two parts the pages keep apart say the same: the records without feeds, the feeds alone.
  auto records = computeRecordQuality(store, "http://127.0.0.1/fhir", **elements);
  ASSERT_TRUE(records.ok()) << records.message();
  EXPECT_TRUE(records->feeds.empty());
  records->feeds = report->feeds;
  records->generated_at = report->generated_at;
  EXPECT_EQ(qualityJson(*records), qualityJson(*report));
  auto feeds = computeFeedLags(store);
  ASSERT_TRUE(feeds.ok()) << feeds.message();
  ASSERT_EQ(feeds->size(), 1u);
  EXPECT_EQ((*feeds)[0].p99_ms, 250);
  // A gateway that is stopping ends the records' computation early.
  const std::atomic<bool> stopping{true};
  auto stopped = computeRecordQuality(store, "http://127.0.0.1/fhir", **elements, &stopping);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.message(), "the gateway is stopping");
}

TEST(ScorecardPagesTest, SuppressedCellsShowNoNumberAndTextIsEscaped) {
  auto report = std::make_shared<json::Document>();
  json::ParseError error;
  ASSERT_TRUE(json::parse(R"({"resourceType":"MeasureReport","group":[{"id":"members","code":{"text":"<b>Members</b>"},
    "population":[{"code":{"coding":[{"code":"initial-population"}]},"count":42}],
    "stratifier":[{"code":[{"coding":[{"code":"payer"}]}],"stratum":[
      {"value":{"text":"p-one"},"population":[{"code":{"coding":[{"code":"initial-population"}]},"count":35}]},
      {"value":{"text":"p-two"},"population":[{"code":{"coding":[{"code":"initial-population"}]},
        "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}]}]}]}]})",
                          *report, error));
  MeasureView view{"attributed-members", "Attributed", "/fhir/Measure/attributed-members/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31", report};
  const std::string page = practicePage(Practice{"1093817413", "Clinic & Co", "org1"}, PageFilters{"", "", "2026-01-01", "2026-12-31"},
                                        {"p-one", "p-two"}, {view});
  EXPECT_NE(page.find(R"(data-stratum="p-one" data-population="initial-population" data-value="35")"), std::string::npos);
  EXPECT_NE(page.find(R"(data-stratum="p-two" data-population="initial-population" data-value="masked")"), std::string::npos);
  EXPECT_NE(page.find("suppressed"), std::string::npos);
  EXPECT_NE(page.find("&lt;b&gt;Members&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(page.find("Clinic &amp; Co"), std::string::npos);
  EXPECT_EQ(page.find("<b>Members"), std::string::npos);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  // No link to another host: the only absolute URLs are the SVG namespace.
  auto count = [&page](const std::string& what) {
    size_t n = 0;
    for (size_t at = page.find(what); at != std::string::npos; at = page.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("http://") + count("https://"), count("http://www.w3.org/2000/svg"));
}

}  // namespace
}  // namespace fhir::gateway::scorecard

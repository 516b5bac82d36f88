// SPDX-License-Identifier: Apache-2.0
// Quarantine replay (issue 5) and `fhir-gateway replay` through the real server and the real
// binary: a payload rejected before a configuration change is accepted after it; one still bad
// keeps its OperationOutcome and its single quarantine entry.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/cli/runtime.h"
#include "gateway/config/config.h"
#include "gateway/store/store.h"
#include "conformance/common/ids.h"
#include "tests/e2e/e2e_fixture.h"
#include "gateway_test_paths.h"

namespace fhir::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRosterHeader =
    "member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
    "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end\r\n";

std::string str(const json::Value& object, const char* key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

// The quarantine id an OperationOutcome carries (http-api.md, Errors).
std::string quarantineIdOf(const json::Value& outcome) {
  const json::Value* details = json::find(outcome["issue"][0], "details");
  if (details == nullptr) return {};
  return str((*details)["coding"][0], "code");
}

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `fhir-gateway replay ARGUMENTS` and collects its output. A `--config` is the one the
// served gateway got (withTestStore: on the PostgreSQL store, the same store block).
CliRun runReplay(const TempDir& scratch, const std::vector<std::string>& arguments) {
  const std::string out_path = (scratch.path() / "replay.out").string();
  const std::string err_path = (scratch.path() / "replay.err").string();
  std::string command = std::string(GATEWAY_BINARY) + " replay";
  for (const std::string& argument : withTestStore(arguments)) command += " " + argument;
  command += " >" + out_path + " 2>" + err_path;
  const int status = std::system(command.c_str());
  CliRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = readFile(out_path);
  run.err = readFile(err_path);
  return run;
}

class Replay : public GatewayFixture {
 protected:
  // The fixture's configuration plus the Northwind payer, delivering to `northwind_`.
  void configureNorthwind() {
    addPayer("northwind-commercial", "Northwind Health Plan", "northwind-commercial", northwind_.url("/bundles"));
  }
  // The fixture's configuration plus a payer (cli.md, configuration file).
  void addPayer(const std::string& id, const std::string& name, const std::string& format, const std::string& endpoint) {
    std::string config = readFile(config_path_);
    config = replaceOnce(config, R"("payers": [)", R"("payers": [
    { "id": ")" + id + R"(", "name": ")" + name + R"(", "format": ")" + format + R"(",
      "endpoint": ")" + endpoint + R"(" },)");
    std::ofstream(config_path_) << config;
  }

  json::Document quarantine() { return parse(gateway_->get("/admin/quarantine").body); }

  const json::Value* entry(const json::Document& list, const std::string& id) {
    for (const json::Value& item : list["items"].GetArray()) {
      if (str(item, "id") == id) return &item;
    }
    ADD_FAILURE() << "no quarantine entry " << id;
    return nullptr;
  }

  std::string dataDir() const { return (data_.path() / "var").string(); }

  LoopbackReceiver northwind_;
  TempDir scratch_;
};

TEST_F(Replay, PayloadsRejectedBeforeAConfigurationChangeAreAcceptedAfterIt) {
  startGateway();
  // Northwind is not configured yet: its member's event is a 422, its roster a 404.
  HttpResult event = gateway_->post("/ingest/econsult", billingEvent("evt-replay", "2026-07-10"));
  ASSERT_EQ(event.status, 422) << event.body;
  const std::string event_entry = quarantineIdOf(parse(event.body));
  const std::string roster = std::string(kRosterHeader) +
                             "NW-55,Okafor,Adaeze,19610319,F,commercial,20260701,,1093817462,,20260701,\r\n";
  HttpResult posted_roster = gateway_->post("/ingest/roster/northwind-commercial", roster, "text/csv");
  ASSERT_EQ(posted_roster.status, 404) << posted_roster.body;
  const std::string roster_entry = quarantineIdOf(parse(posted_roster.body));
  ASSERT_FALSE(event_entry.empty());
  ASSERT_FALSE(roster_entry.empty());

  // Replayed before the change, the event gets the same answer and stays quarantined.
  HttpResult again = gateway_->post("/admin/quarantine/" + event_entry + "/replay", "");
  EXPECT_EQ(again.status, 422);
  EXPECT_EQ(again.body, event.body);
  json::Document list = quarantine();
  EXPECT_EQ(list["items"].Size(), 2u);
  const json::Value* kept = entry(list, event_entry);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(str(*kept, "status"), "quarantined");
  EXPECT_EQ(json::numberAsInt64((*kept)["replays"]), 1);
  EXPECT_EQ(json::numberAsInt64((*kept)["lastReplay"]["status"]), 422);

  // The operator adds Northwind and restarts; the event replayed now is accepted and its claim
  // (dated 2026-07-10, Northwind's) is delivered to Northwind.
  configureNorthwind();
  startGateway();
  HttpResult accepted = gateway_->post("/admin/quarantine/" + event_entry + "/replay", "");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  json::Document bundle = parse(accepted.body);
  EXPECT_EQ(str(bundle, "resourceType"), "Bundle");
  ASSERT_TRUE(northwind_.waitForAccepted(1, 20s));
  ASSERT_TRUE(hie_.waitForAccepted(1, 20s));  // the feed's copy of the event
  EXPECT_NE(northwind_.accepted()[0].body.find("\"servicedDate\":\"2026-07-10\""), std::string::npos);
  list = quarantine();
  EXPECT_EQ(list["items"].Size(), 2u);  // nothing deleted
  kept = entry(list, event_entry);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(str(*kept, "status"), "accepted");
  EXPECT_EQ(json::numberAsInt64((*kept)["replays"]), 2);
  EXPECT_EQ(json::numberAsInt64((*kept)["lastReplay"]["status"]), 202);

  // The CLI, beside the running server, replays what is left (the roster) and its feed Bundle
  // is delivered by the server.
  const size_t feed_before = hie_.accepted().size();
  CliRun run = runReplay(scratch_, {"--all", "--data", dataDir(), "--config", config_path_});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::vector<std::string> printed = lines(run.out);
  ASSERT_EQ(printed.size(), 2u) << run.out;
  json::Document item = parse(printed[0]);
  EXPECT_EQ(str(item, "quarantine"), roster_entry);
  EXPECT_EQ(str(item, "channel"), "roster:northwind-commercial");
  EXPECT_EQ(str(item, "result"), "accepted");
  EXPECT_EQ(json::numberAsInt64(item["status"]), 200);
  json::Document summary = parse(printed[1]);
  EXPECT_EQ(json::numberAsInt64(summary["replayed"]), 1);
  EXPECT_EQ(json::numberAsInt64(summary["accepted"]), 1);
  EXPECT_EQ(json::numberAsInt64(summary["rejected"]), 0);
  EXPECT_EQ(json::numberAsInt64(summary["notReplayable"]), 0);
  EXPECT_EQ(json::numberAsInt64(summary["deadLetters"]), 0);
  ASSERT_TRUE(hie_.waitForAccepted(feed_before + 1, 20s));
  EXPECT_EQ(str(*entry(quarantine(), roster_entry), "status"), "accepted");
}

// A care-management event goes back through its own channel: rejected while its payer is not
// configured (422, unknown payerId), accepted by replay once the payer is.
TEST_F(Replay, CareManagementEventReplaysThroughItsChannel) {
  startGateway();
  const std::string event =
      R"({"eventId":"cm-replay-1","source":"epic-prod-northshore","eventType":"risk-tier",)"
      R"("occurredAt":"2026-10-02T09:00:00-05:00","patient":{"mrn":"NS-884213",)"
      R"("mrnSystem":"urn:oid:2.16.840.1.113883.3.7418.1","family":"Okafor","given":["Adaeze"],)"
      R"("birthDate":"1961-03-19","sex":"female","coverage":[{"payerId":"northwind-commercial",)"
      R"("memberId":"NW-55","lineOfBusiness":"commercial","start":"2026-01-01"}]},)"
      R"("risk":{"tier":"high","method":"HCC v24","score":2.31,"assessedAt":"2026-10-01"}})";
  HttpResult rejected = gateway_->post("/ingest/care-management", event, "application/json");
  ASSERT_EQ(rejected.status, 422) << rejected.body;
  EXPECT_NE(rejected.body.find("northwind-commercial"), std::string::npos) << rejected.body;
  const std::string id = quarantineIdOf(parse(rejected.body));
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(str(*entry(quarantine(), id), "channel"), "care-management");

  configureNorthwind();
  startGateway();
  HttpResult accepted = gateway_->post("/admin/quarantine/" + id + "/replay", "");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  json::Document bundle = parse(accepted.body);
  bool risk_assessment = false;
  for (const json::Value& item : bundle["entry"].GetArray()) {
    risk_assessment |= str(item["resource"], "resourceType") == "RiskAssessment";
  }
  EXPECT_TRUE(risk_assessment) << accepted.body;
  EXPECT_EQ(str(*entry(quarantine(), id), "status"), "accepted");
}

TEST_F(Replay, StillBadPayloadKeepsItsOutcomeAndItsOneEntry) {
  startGateway();
  HttpResult bad = gateway_->post("/ingest/econsult", R"({"eventId": "evt-1", )");
  ASSERT_EQ(bad.status, 400);
  const std::string id = quarantineIdOf(parse(bad.body));
  for (int round = 0; round < 2; ++round) {
    HttpResult again = gateway_->post("/admin/quarantine/" + id + "/replay", "");
    EXPECT_EQ(again.status, 400);
    EXPECT_EQ(again.body, bad.body);
  }
  json::Document list = quarantine();
  ASSERT_EQ(list["items"].Size(), 1u);
  EXPECT_EQ(str(list["items"][0], "status"), "quarantined");
  EXPECT_EQ(json::numberAsInt64(list["items"][0]["replays"]), 2);
  EXPECT_EQ(json::numberAsInt64(list["items"][0]["lastReplay"]["status"]), 400);
  EXPECT_EQ(gateway_->post("/admin/quarantine/q-no-such-entry/replay", "").status, 404);

  // Of a body over maxBodyBytes only a prefix was kept: it cannot be replayed, and says so.
  HttpResult oversized = gateway_->post("/ingest/econsult", std::string(70000, ' '));
  ASSERT_EQ(oversized.status, 413);
  const std::string truncated = quarantineIdOf(parse(oversized.body));
  HttpResult refused = gateway_->post("/admin/quarantine/" + truncated + "/replay", "");
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("cannot be replayed"), std::string::npos) << refused.body;
  EXPECT_EQ(str(*entry(quarantine(), truncated), "status"), "quarantined");

  CliRun run = runReplay(scratch_, {"--quarantine", id, "--data", dataDir(), "--config", config_path_});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  json::Document line = parse(run.out);
  EXPECT_EQ(str(line, "result"), "rejected");
  EXPECT_EQ(json::numberAsInt64(line["status"]), 400);
  EXPECT_EQ(quarantineIdOf(line["answer"]), id);
}

TEST_F(Replay, RosterRecordIsReplayedUnderItsFilesHeader) {
  startGateway();
  // Row 3 names a line of business payer-formats.md does not have.
  const std::string roster = std::string(kRosterHeader) +
                             "LMC-1,Okafor,Adaeze,19610319,F,medicaid,20260101,,1093817462,,20260101,\r\n"
                             "LMC-2,Diallo,Moussa,19700102,M,medicare,20260101,,1093817462,,20260101,\r\n";
  HttpResult posted = gateway_->post("/ingest/roster/lakeshore-medicaid", roster, "text/csv");
  ASSERT_EQ(posted.status, 200) << posted.body;
  json::Document counts = parse(posted.body);
  EXPECT_EQ(json::numberAsInt64(counts["accepted"]), 1);
  ASSERT_EQ(counts["quarantineIds"].Size(), 1u);
  const std::string id(json::stringView(counts["quarantineIds"][0]));
  const std::string payload = quarantinedPayload(id);
  EXPECT_EQ(payload.find("member_id"), std::string::npos);  // the row alone is kept

  // The replay reads the row under its header: the same row-level rejection, recorded on the
  // same entry, not a missing-header error nor a second entry.
  HttpResult again = gateway_->post("/admin/quarantine/" + id + "/replay", "");
  ASSERT_EQ(again.status, 200) << again.body;
  json::Document replayed = parse(again.body);
  EXPECT_EQ(json::numberAsInt64(replayed["records"]), 1);
  EXPECT_EQ(json::numberAsInt64(replayed["rejected"]), 1);
  ASSERT_EQ(replayed["quarantineIds"].Size(), 1u);
  EXPECT_EQ(json::stringView(replayed["quarantineIds"][0]), id);
  json::Document list = quarantine();
  EXPECT_EQ(list["items"].Size(), 1u);
  EXPECT_EQ(str(list["items"][0], "status"), "quarantined");
  EXPECT_NE(str(list["items"][0]["outcome"]["issue"][0], "diagnostics").find("line_of_business"), std::string::npos);
}

class ReplayDeadLetters : public Replay {
 protected:
  ReplayDeadLetters() { give_up_after_hours_ = 0.0002; }  // 0.72 s of retries
};

TEST_F(ReplayDeadLetters, CliQueuesADeadLetterThatTheRunningServerDelivers) {
  hie_.setStatus(503);
  startGateway();
  ASSERT_EQ(gateway_->post("/ingest/econsult", event("request")).status, 202);
  json::Document letters = waitForDeadLetters();
  ASSERT_EQ(letters["items"].Size(), 1u);
  const std::string id = json::numberText(letters["items"][0]["id"]);

  hie_.setStatus(200);
  EXPECT_EQ(runReplay(scratch_, {"--dead-letter", "999999", "--data", dataDir(), "--config", config_path_}).exit_code, 2);
  CliRun run = runReplay(scratch_, {"--dead-letter", id, "--data", dataDir(), "--config", config_path_});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json::Document line = parse(run.out);
  EXPECT_EQ(json::numberText(line["deadLetter"]), id);
  EXPECT_EQ(str(line, "result"), "queued");
  ASSERT_TRUE(hie_.waitForAccepted(1, 20s));
  EXPECT_EQ(hie_.accepted()[0].header("x-event-number"), "1");
  EXPECT_TRUE(parse(gateway_->get("/admin/dead-letters").body)["items"].Empty());
}

TEST_F(Replay, CliUsageIsCheckedAndExplained) {
  EXPECT_EQ(runReplay(scratch_, {}).exit_code, 2);
  EXPECT_EQ(runReplay(scratch_, {"--all", "--quarantine", "q-1"}).exit_code, 2);
  EXPECT_EQ(runReplay(scratch_, {"--quarantine"}).exit_code, 2);
  EXPECT_EQ(runReplay(scratch_, {"--bogus"}).exit_code, 2);
  CliRun help = runReplay(scratch_, {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option : {"--quarantine ID", "--dead-letter ID", "--all", "--data DIR", "--config FILE"}) {
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
  }
  CliRun unknown = runReplay(scratch_, {"--quarantine", "q-none", "--data", dataDir(), "--config", config_path_});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no quarantined payload q-none"), std::string::npos) << unknown.err;
}

// X12 837P claims quarantined one by one (payer-formats.md) and replayed alone, as a one-claim
// interchange in their own interchange's envelope and transaction header.
class ReplayX12 : public Replay {
 protected:
  static constexpr const char* kPayer = "lakeshore-edi";

  // The fixture's configuration plus a payer sending X12 837P.
  void configureX12Payer() { addPayer(kPayer, "Lakeshore Medicaid MCO EDI", "x12-837p", payer_.url("/bundles")); }

  // The bundled profiles as an earlier release of the alignment IG had them: its line-of-business
  // code system without `commercial` (a Coverage of that line then breaks the required binding
  // of alignment-coverage's Coverage.type). Everything else is linked to the bundled files.
  std::string olderProfiles() {
    namespace fs = std::filesystem;
    const fs::path bundled = fs::path(GATEWAY_SOURCE_DIR) / "fhir_profiles";
    const fs::path root = old_profiles_.path();
    fs::create_symlink(bundled / "r4-core", root / "r4-core");
    fs::create_symlink(bundled / "subscriptions-backport", root / "subscriptions-backport");
    fs::create_directories(root / "alignment" / "package");
    fs::create_symlink(bundled / "alignment" / "merge-rules.json", root / "alignment" / "merge-rules.json");
    for (const fs::directory_entry& file : fs::directory_iterator(bundled / "alignment" / "package")) {
      const fs::path target = root / "alignment" / "package" / file.path().filename();
      if (file.path().filename() != "CodeSystem-line-of-business.json") {
        fs::create_symlink(file.path(), target);
        continue;
      }
      std::string code_system = readFile(file.path());
      code_system = replaceOnce(code_system, R"("count": 4,)", R"("count": 3,)");
      code_system = replaceOnce(code_system, R"(,
    {
      "code": "commercial",
      "display": "Commercial"
    })", "");
      std::ofstream(target) << code_system;
    }
    return root.string();
  }

  // Starts the gateway with the alignment IG in `profiles` (FHIR_GATEWAY_PROFILES).
  void startGatewayWithProfiles(const std::string& profiles) {
    ::setenv("FHIR_GATEWAY_PROFILES", profiles.c_str(), 1);
    startGateway();
    ::unsetenv("FHIR_GATEWAY_PROFILES");
  }

  // tests/data/mappers/x12/northshore-837p.x12 (three claims; NS-CLM-0002 and -0003 are of a
  // dependent, 2000C) with the first claim's subscriber on a commercial plan (SBR09 CI).
  static std::string interchange() {
    std::string text = readFile(testDataDir() / "mappers" / "x12" / "northshore-837p.x12");
    return replaceOnce(text, "SBR*P*18*******MC~", "SBR*P*18*******CI~");
  }

  // A payer file's answer counts these records (http-api.md).
  static void expectCounts(const json::Value& answer, int64_t records, int64_t accepted, int64_t rejected) {
    EXPECT_EQ(json::numberAsInt64(answer["records"]), records);
    EXPECT_EQ(json::numberAsInt64(answer["accepted"]), accepted);
    EXPECT_EQ(json::numberAsInt64(answer["rejected"]), rejected);
  }

  // The only quarantine entry is `id`, with this status and replay count.
  void expectOnlyEntry(const std::string& id, const std::string& status, int64_t replays) {
    json::Document list = quarantine();
    EXPECT_EQ(list["items"].Size(), 1u);
    const json::Value* kept = entry(list, id);
    ASSERT_NE(kept, nullptr);
    EXPECT_EQ(str(*kept, "status"), status);
    EXPECT_EQ(json::numberAsInt64((*kept)["replays"]), replays);
  }

  HttpResult postClaims(const std::string& body) {
    return gateway_->post(std::string("/ingest/claims/") + kPayer, body, "application/edi-x12");
  }

  TempDir old_profiles_;
};

TEST_F(ReplayX12, ClaimRejectedUnderAnOlderIgIsReplayedAloneAndAcceptedAfterTheFix) {
  configureX12Payer();
  startGatewayWithProfiles(olderProfiles());
  HttpResult posted = postClaims(interchange());
  ASSERT_EQ(posted.status, 200) << posted.body;
  json::Document counts = parse(posted.body);
  expectCounts(counts, 3, 2, 1);
  ASSERT_EQ(counts["quarantineIds"].Size(), 1u);
  const std::string id(json::stringView(counts["quarantineIds"][0]));

  // The claim alone is kept: its loops (2000A, 2000B, 2300/2400), not the envelope nor the others.
  const json::Document kept_list = quarantine();
  const json::Value* kept = entry(kept_list, id);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(str(*kept, "channel"), "claims:lakeshore-edi");
  EXPECT_EQ(str(*kept, "contentType"), "application/edi-x12");
  bool line_of_business = false;  // the cause: Coverage.type outside the older IG's value set
  for (const json::Value& issue : (*kept)["outcome"]["issue"].GetArray()) {
    line_of_business |= str(issue, "severity") == "error" && str(issue, "code") == "code-invalid" &&
                        str(issue, "diagnostics").find("line-of-business") != std::string::npos;
  }
  EXPECT_TRUE(line_of_business) << json::serialize((*kept)["outcome"]);
  const std::string payload = quarantinedPayload(id);
  EXPECT_EQ(payload.rfind("HL*1**20*1~", 0), 0u) << payload;
  EXPECT_NE(payload.find("SBR*P*18*******CI~"), std::string::npos);
  EXPECT_TRUE(payload.ends_with("DTP*472*D8*20261001~")) << payload;
  for (const char* absent : {"ISA*", "GS*", "ST*", "BHT*", "SE*", "NS-CLM-0002", "NS-CLM-0003"}) {
    EXPECT_EQ(payload.find(absent), std::string::npos) << absent;
  }

  // Replayed under the same IG, the claim is read alone and rejected again: the answer of a file
  // of one claim, the rejection recorded on the same entry.
  HttpResult again = gateway_->post("/admin/quarantine/" + id + "/replay", "");
  ASSERT_EQ(again.status, 200) << again.body;
  json::Document replayed = parse(again.body);
  expectCounts(replayed, 1, 0, 1);
  ASSERT_EQ(replayed["quarantineIds"].Size(), 1u);
  EXPECT_EQ(json::stringView(replayed["quarantineIds"][0]), id);
  expectOnlyEntry(id, "quarantined", 1);

  // With the current IG the replayed claim is accepted and stored; the entry stays, accepted.
  startGateway();
  HttpResult accepted = gateway_->post("/admin/quarantine/" + id + "/replay", "");
  ASSERT_EQ(accepted.status, 200) << accepted.body;
  json::Document result = parse(accepted.body);
  expectCounts(result, 1, 1, 0);
  EXPECT_EQ(result["bundleIds"].Size(), 1u);
  expectOnlyEntry(id, "accepted", 2);
  const std::string claim_id = fhir::deriveId({"Claim", "x12-837p", kPayer, "NS-CLM-0001"});
  HttpResult claim = gateway_->get("/fhir/Claim/" + claim_id);
  ASSERT_EQ(claim.status, 200) << claim.body;
  json::Document stored = parse(claim.body);
  EXPECT_EQ(str(stored["identifier"][0], "value"), "NS-CLM-0001");
  EXPECT_EQ(str(stored["meta"], "versionId"), "1");

  // The replayed claim is the claim as sent (same bytes, same source digest): the interchange
  // sent again makes no new version of it.
  HttpResult resent = postClaims(interchange());
  ASSERT_EQ(resent.status, 200) << resent.body;
  expectCounts(parse(resent.body), 3, 3, 0);
  EXPECT_EQ(str(parse(gateway_->get("/fhir/Claim/" + claim_id).body)["meta"], "versionId"), "1");
}

// A claim quarantined before claims kept their envelope (no replay prefix) is still refused,
// saying why.
TEST_F(ReplayX12, ClaimKeptWithoutItsEnvelopeIsRefused) {
  configureX12Payer();
  std::string id;
  {
    // The store the gateway is configured with (withTestStore: SQLite or the PostgreSQL schema).
    auto config = gateway::loadConfig(withTestStore({"--config", config_path_})[1]);
    ASSERT_TRUE(config.ok()) << config.message();
    auto store = gateway::cli::openStore(*config);
    ASSERT_TRUE(store.ok()) << store.message();
    auto written = (*store)->quarantine(gateway::QuarantineWrite{
        "claims:lakeshore-edi", "application/edi-x12", "HL*1**20*1~CLM*NS-CLM-0009*10.00***11:B:1*Y*A*Y*Y~", false,
        R"({"resourceType":"OperationOutcome","issue":[]})", true});
    ASSERT_TRUE(written.ok()) << written.message();
    id = *written;
  }
  startGateway();
  HttpResult refused = gateway_->post("/admin/quarantine/" + id + "/replay", "");
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("cut out of its X12 interchange"), std::string::npos) << refused.body;
  expectOnlyEntry(id, "quarantined", 0);
}

}  // namespace
}  // namespace fhir::testing

// SPDX-License-Identifier: Apache-2.0
// Golden tests of mappers/specs/econsult-v2.json (contracts/econsult-event.md, "HL7 v2"): a
// REF^I12 and an RRI^I12 give the Bundles the JSON events with the same content give.
#include <gtest/gtest.h>

#include "conformance/common/ids.h"
#include "tests/mappers/specs/golden.h"
#include "tests/support/test_support.h"

namespace fhir::mappers::testing {
namespace {

std::string dataFile(const std::string& dir, const std::string& name) {
  return fhir::testing::readFile(fhir::testing::testDataDir() / "mappers" / dir / name);
}

// The messages of an ER7 stream, each with its segment terminators (what the Provenance digests).
std::vector<std::string> messages(const std::string& stream) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < stream.size()) {
    size_t next = stream.find("\rMSH|", start);
    size_t end = next == std::string::npos ? stream.size() : next + 1;
    out.push_back(stream.substr(start, end - start));
    start = end;
  }
  return out;
}

// expectBundle for ER7 input: {{sha256:message N}} is the SHA-256 of the Nth message.
void expectV2Bundle(const json::Value& actual, const std::string& expected_file) {
  std::string expected = dataFile("econsult-v2", expected_file);
  std::vector<std::string> sent = messages(dataFile("econsult-v2", "messages.hl7"));
  for (size_t index = 0; index < sent.size(); ++index) {
    const std::string placeholder = "{{sha256:message " + std::to_string(index + 1) + "}}";
    for (size_t at = expected.find(placeholder); at != std::string::npos; at = expected.find(placeholder)) {
      expected.replace(at, placeholder.size(), sha256Hex(sent[index]));
    }
  }
  auto parsed = json::parse(fillPlaceholders(expected, ""));
  ASSERT_TRUE(parsed.ok()) << expected_file << ": " << parsed.message();
  auto reread = json::parse(json::serialize(actual));
  ASSERT_TRUE(reread.ok());
  EXPECT_TRUE(*reread == *parsed) << expected_file << "\nexpected:\n"
                                  << json::serializePretty(*parsed) << "\nactual:\n"
                                  << json::serializePretty(*reread);
}

TEST(EconsultV2Spec, RefAndRriMapAsTheContractSays) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult-v2", "econsult-v2", "econsult-v2", "messages.hl7");
  EXPECT_EQ(run.summary.records, 2u);
  ASSERT_EQ(run.bundles.size(), 2u) << (run.rejections.empty() ? "" : toOperationOutcomeJson(run.rejections[0].issues));
  expectV2Bundle(run.bundles[0], "expected-ref.json");
  expectV2Bundle(run.bundles[1], "expected-rri.json");
  for (const json::Document& bundle : run.bundles) expectValid(bundle);
}

// Every resource but the Provenance (which names the source bytes) equals the JSON event's.
TEST(EconsultV2Spec, SameResourcesAndIdsAsTheJsonEventWithTheSameContent) {
  GoldenRun v2 = runGolden(bundledSpecs(), "econsult-v2", "econsult-v2", "econsult-v2", "messages.hl7");
  GoldenRun events = runGolden(bundledSpecs(), "econsult", "econsult", "econsult", "events.ndjson");
  ASSERT_EQ(v2.bundles.size(), 2u);
  ASSERT_GE(events.bundles.size(), 2u);
  for (size_t index = 0; index < 2; ++index) {
    std::vector<std::string> from_v2, from_json;
    for (const json::Value& entry : v2.bundles[index]["entry"].GetArray()) {
      if (json::getString(entry["resource"], "resourceType") != "Provenance") from_v2.push_back(json::serialize(entry["resource"]));
    }
    for (const json::Value& entry : events.bundles[index]["entry"].GetArray()) {
      const json::Value& resource = entry["resource"];
      if (json::getString(resource, "resourceType") == "Provenance") continue;
      // What a v2 message does not carry: the practice Organization and the attachments.
      if (json::getString(resource, "id") == deriveId({"Organization", "npi", "1093817462"})) continue;
      json::Document copy;
      copy.CopyFrom(resource, copy.GetAllocator());
      copy.RemoveMember("supportingInfo");
      from_json.push_back(json::serialize(copy));
    }
    EXPECT_EQ(from_v2, from_json) << "message " << index + 1;
  }
}

TEST(EconsultV2Spec, BadMessagesAreRejectedAtSegmentAndField) {
  GoldenRun run = runGolden(bundledSpecs(), "econsult-v2", "econsult-v2", "econsult-v2", "bad-messages.hl7");
  EXPECT_EQ(run.summary.records, 6u);
  EXPECT_EQ(run.summary.accepted, 0u);
  expectRejections(run.rejections, "econsult-v2", "expected-rejections.txt");
}

}  // namespace
}  // namespace fhir::mappers::testing

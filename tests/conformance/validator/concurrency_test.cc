// SPDX-License-Identifier: Apache-2.0
// One validator shared by many threads from a cold start: plans are compiled lazily under
// once-flags while other threads validate, and every thread must see the same answers.

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/validator/validator.h"
#include "tests/conformance/validator/validator_test_util.h"
#include "tests/support/test_support.h"

namespace fhir::testing {
namespace {

TEST(ConcurrencyTest, ColdValidatorSharedByThreads) {
  auto created = createValidator({});
  ASSERT_TRUE(created.ok()) << created.message();
  const Validator& validator = **created;
  std::vector<std::string> texts;
  for (const char* name : {"Patient-example.json", "Observation-example.json", "Claim-100150.json",
                           "QuestionnaireResponse-3141.json"}) {
    texts.push_back(readFile(testDataDir() / "validator" / "examples" / name));
  }
  texts.push_back(R"j({"resourceType":"Patient","gender":"femme","birthDate":"1990-13-01"})j");
  std::vector<size_t> expected_errors = {0, 0, 0, 0, 2};

  constexpr int kThreads = 4;
  std::vector<std::vector<size_t>> results(kThreads);
  std::vector<std::thread> threads;
  for (int thread_index = 0; thread_index < kThreads; ++thread_index) {
    threads.emplace_back([&, thread_index] {
      for (int round = 0; round < 20; ++round) {
        for (size_t text_index = 0; text_index < texts.size(); ++text_index) {
          // Threads start at different inputs so that first uses overlap.
          size_t pick = (text_index + static_cast<size_t>(thread_index)) % texts.size();
          IssueList issues;
          validator.validateText(texts[pick], {}, issues);
          if (round == 0) results[thread_index].push_back(pick * 100 + issues.errorCount());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int thread_index = 0; thread_index < kThreads; ++thread_index) {
    for (size_t value : results[thread_index]) {
      EXPECT_EQ(value % 100, expected_errors[value / 100]) << "input " << value / 100;
    }
  }
}

TEST(ConcurrencyTest, PreloadCompilesPlansAtCreation) {
  ValidatorOptions options;
  options.preload = {"Patient", "Bundle", "http://hl7.org/fhir/StructureDefinition/vitalsigns", "NoSuchType"};
  auto created = createValidator(options);
  ASSERT_TRUE(created.ok()) << created.message();
  IssueList issues;
  (*created)->validateText(readFile(testDataDir() / "validator" / "examples" / "Patient-example.json"), {}, issues);
  EXPECT_NO_ERRORS(issues);
}

}  // namespace
}  // namespace fhir::testing

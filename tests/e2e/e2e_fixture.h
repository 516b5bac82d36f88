// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/support/gateway_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

namespace fhir::testing {

// tests/data/econsult/response.json billing 99451 on `date`, for a patient (MRN `mrn`) covered
// by lakeshore-medicaid until 2026-06-30 and by northwind-commercial from 2026-07-01.
std::string billingEvent(const std::string& event_id, const std::string& date, const std::string& mrn = "NS-884213");

// `text` with the first `from` replaced by `to`; fails the test when `from` is absent.
std::string replaceOnce(std::string text, const std::string& from, const std::string& to);

// The first column of the first row of `sql` (a count) in the store of the gateway served on
// the data directory `data_dir`: its SQLite file gateway.db, or on the PostgreSQL store
// (withTestStore) its schema in the test cluster. The SQL must mean the same to both. -1 when it
// cannot be read.
int64_t storeScalar(const std::filesystem::path& data_dir, const std::string& sql);

// A payer receiver, an HIE receiver, a data directory and a configuration pointing at them.
class GatewayFixture : public ::testing::Test {
 protected:
  void SetUp() override;

  // Starts (or restarts) the gateway on the fixture's data directory.
  void startGateway();

  static std::string event(const std::string& name);  // tests/data/econsult/<name>.json
  static json::Document parse(const std::string& text);

  // Resource of `type` in a Bundle answer; fails the test when absent.
  static const json::Value* findEntry(const json::Value& bundle, const std::string& type);
  // The payload of quarantine entry `id` (GET /admin/quarantine/{id}, base64-decoded); fails the
  // test when the entry is not there.
  std::string quarantinedPayload(const std::string& id) const;
  // GET /admin/dead-letters, polled until it lists something (at most 20 s).
  json::Document waitForDeadLetters() const;

  double give_up_after_hours_ = 72;  // set in a derived fixture's constructor to test dead letters
  TempDir data_;
  LoopbackReceiver payer_;
  LoopbackReceiver hie_;
  std::string config_path_;
  std::unique_ptr<GatewayProcess> gateway_;
};

}  // namespace fhir::testing

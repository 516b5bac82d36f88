// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "tests/support/gateway_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_support.h"

namespace fhir::testing {

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

  TempDir data_;
  LoopbackReceiver payer_;
  LoopbackReceiver hie_;
  std::string config_path_;
  std::unique_ptr<GatewayProcess> gateway_;
};

}  // namespace fhir::testing

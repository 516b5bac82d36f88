// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the fault tests share (fault_e2e_test: one gateway on SQLite; fault_scale_e2e_test: three
// gateways on one PostgreSQL): flaky receivers, the events they send, and the checks on what the
// receivers got. The checks hold per destination, after de-duplication by Idempotency-Key:
// numbers exactly 1..N, first deliveries in number order, each billing Claim once, nothing a
// routing or filter excludes.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/support/loopback_receiver.h"

namespace fhir::testing::fault {

// 30% of answers are 503, a few requests stall past the gateway's timeout (and then succeed on
// the receiver's side, so the gateway's retry is a duplicate only Idempotency-Key can remove).
std::function<int(const ReceivedRequest&)> flakyResponder(unsigned seed);

// Event i bills a date in lakeshore's period (first half of 2026) or northwind's (second half).
std::string dateOf(int i);
// The billing event of number i (fixture billingEvent, one of 50 patients).
std::string eventBody(int i);
bool isLakeshore(int i);  // its date is in lakeshore-medicaid's coverage period

// The fault tests' configuration: two payers, one feed, fast retries, `extra` members appended
// (e.g. a "store" block).
std::string configJson(const std::string& data_dir, const LoopbackReceiver& payer_a, const LoopbackReceiver& payer_b,
                       const LoopbackReceiver& feed, const std::string& extra = "");
// A Subscription to lakeshore's routed claims, delivered full-resource to `endpoint`.
std::string subscriptionJson(const std::string& endpoint);

struct Deduplicated {
  std::map<int64_t, std::string> by_number;  // X-Event-Number -> body
  size_t duplicates = 0;
  bool consistent = true;  // every repeat of a key carried the same number and body
  bool in_order = true;    // the first delivery of each number arrived after that of every lower one
};
Deduplicated deduplicate(const std::vector<ReceivedRequest>& requests, const std::string& key_prefix);
// Numbers are exactly 1..expected.
bool gapFree(const Deduplicated& received, size_t expected);
// servicedDate values of the Claims in a set of delivered bodies.
std::multiset<std::string> claimDates(const Deduplicated& received);

// The four receivers of a fault test, what each must get, and the checks: gap-free, in order,
// consistent repeats, routing and filter by Claim date. Prints one line of counts under `name`.
struct Receivers {
  LoopbackReceiver payer_a, payer_b, feed, subscriber;
  std::string subscription_id;
  // True when every receiver has all it must get for `events` events.
  bool complete(int events);
  void check(const std::string& name, int events);
};

}  // namespace fhir::testing::fault

// SPDX-License-Identifier: Apache-2.0
#pragma once

// Process metrics, rendered as Prometheus text on /metrics. Counters are lock-free; label sets
// are small and fixed, so they live in a map guarded by a mutex taken only on first use.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace fhir {

class Metrics {
 public:
  // ingest_events_total{channel, outcome}; outcome is accepted, duplicate, rejected.
  void countIngest(const std::string& channel, const std::string& outcome);
  // validation_seconds histogram.
  void observeValidation(double seconds);
  // delivery_attempts_total{destination, result}; result is delivered, dead, or the failure
  // class: timeout, connect, transport, http_5xx, http_4xx, http_other.
  void countDelivery(const std::string& destination, const std::string& result);
  void countHttp(int status);
  // delivery_circuit_opened_total{destination}: the destination's circuit breaker opened.
  void countCircuitOpened(const std::string& destination);
  // scorecard_computations_total{figures, result}: a background computation of scorecard figures
  // (figures: measures, quality) ended; result ok or failed.
  void countScorecard(const std::string& figures, const std::string& result);
  // A gauge holding its latest value, e.g. gateway_delivery_circuit_state{destination="..."}.
  void setGauge(const std::string& name, const std::string& labels, int64_t value);

  // Renders all metrics; `extra` is appended as-is (store-derived gauges).
  std::string render(const std::string& extra) const;

 private:
  std::atomic<uint64_t>& counter(const std::string& name, const std::string& labels);

  static constexpr std::array<double, 10> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                      0.005,  0.01,    0.025,  0.05,  0.1};
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>>> counters_;
  std::map<std::string, std::map<std::string, int64_t>> gauges_;
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> validation_buckets_{};
  std::atomic<uint64_t> validation_count_{0};
  std::atomic<uint64_t> validation_micros_{0};
};

}  // namespace fhir

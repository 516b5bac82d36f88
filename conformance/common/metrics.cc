// SPDX-License-Identifier: Apache-2.0
#include "conformance/common/metrics.h"

#include <sstream>

namespace fhir {

std::atomic<uint64_t>& Metrics::counter(const std::string& name, const std::string& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = counters_[name][labels];
  if (!slot) slot = std::make_unique<std::atomic<uint64_t>>(0);
  return *slot;
}

void Metrics::countIngest(const std::string& channel, const std::string& outcome) {
  counter("gateway_ingest_events_total", "channel=\"" + channel + "\",outcome=\"" + outcome + "\"")++;
}

void Metrics::countDelivery(const std::string& destination, const std::string& result) {
  counter("gateway_delivery_attempts_total",
          "destination=\"" + destination + "\",result=\"" + result + "\"")++;
}

void Metrics::countCircuitOpened(const std::string& destination) {
  counter("gateway_delivery_circuit_opened_total", "destination=\"" + destination + "\"")++;
}

void Metrics::countScorecard(const std::string& figures, const std::string& result) {
  counter("gateway_scorecard_computations_total", "figures=\"" + figures + "\",result=\"" + result + "\"")++;
}

void Metrics::countHttp(int status) {
  counter("gateway_http_responses_total", "code=\"" + std::to_string(status) + "\"")++;
}

void Metrics::setGauge(const std::string& name, const std::string& labels, int64_t value) {
  std::lock_guard lock(mutex_);
  gauges_[name][labels] = value;
}

void Metrics::observeValidation(double seconds) {
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  validation_buckets_[bucket]++;
  validation_count_++;
  validation_micros_ += static_cast<uint64_t>(seconds * 1e6);
}

std::string Metrics::render(const std::string& extra) const {
  std::ostringstream out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, series] : counters_) {
      out << "# TYPE " << name << " counter\n";
      for (const auto& [labels, value] : series) out << name << "{" << labels << "} " << value->load() << "\n";
    }
    for (const auto& [name, series] : gauges_) {
      out << "# TYPE " << name << " gauge\n";
      for (const auto& [labels, value] : series) out << name << "{" << labels << "} " << value << "\n";
    }
  }
  out << "# TYPE gateway_validation_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += validation_buckets_[i].load();
    out << "gateway_validation_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << cumulative << "\n";
  }
  cumulative += validation_buckets_[kBuckets.size()].load();
  out << "gateway_validation_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n";
  out << "gateway_validation_seconds_sum " << static_cast<double>(validation_micros_.load()) / 1e6 << "\n";
  out << "gateway_validation_seconds_count " << validation_count_.load() << "\n";
  out << extra;
  return out.str();
}

}  // namespace fhir

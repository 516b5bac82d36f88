// SPDX-License-Identifier: Apache-2.0
#pragma once

// A counting semaphore around the CPU-heavy part of an ingest request (mapping and validation),
// so that at most about one request per core does that work at a time. The HTTP server keeps a
// thread per keep-alive connection; with 64 connections on 2 cores, 64 threads mapping and
// validating at once each took ~30 times longer and the ingest p99 reached seconds
// (docs/BENCHMARKS.md, issue 12). Waiting for the store's commit happens outside the gate: a
// request whose commit waits for the writer does not hold a slot.
//
//   CpuGate::Slot slot(CpuGate::shared());   // blocks while all slots are taken
//   ... map, validate ...
//   // slot released at the end of the scope
//
// Slots of shared(): FHIR_GATEWAY_CPU_SLOTS when it is a positive number, else
// std::thread::hardware_concurrency() (at least 1).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace fhir::gateway {

class CpuGate {
 public:
  explicit CpuGate(size_t slots) : free_(slots == 0 ? 1 : slots), slots_(slots == 0 ? 1 : slots) {}
  CpuGate(const CpuGate&) = delete;
  CpuGate& operator=(const CpuGate&) = delete;

  // The process's gate for ingest mapping and validation.
  static CpuGate& shared() {
    static CpuGate gate(defaultSlots());
    return gate;
  }

  static size_t defaultSlots() {
    if (const char* text = std::getenv("FHIR_GATEWAY_CPU_SLOTS")) {
      char* end = nullptr;
      long value = std::strtol(text, &end, 10);
      if (end && *end == '\0' && value > 0 && value <= 4096) return static_cast<size_t>(value);
    }
    unsigned cores = std::thread::hardware_concurrency();
    return cores == 0 ? 1 : cores;
  }

  void acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (free_ == 0) {
      auto started = std::chrono::steady_clock::now();
      ++waiting_;
      available_.wait(lock, [this] { return free_ > 0; });
      --waiting_;
      waits_.fetch_add(1, std::memory_order_relaxed);
      wait_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::steady_clock::now() - started)
                                                   .count()),
                         std::memory_order_relaxed);
    }
    --free_;
  }

  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++free_;
    }
    available_.notify_one();
  }

  size_t slots() const { return slots_; }
  // Slots free now, and threads waiting for one now (tests, diagnostics).
  size_t freeSlots() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_;
  }
  size_t waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_;
  }
  // Acquisitions that had to wait, and their total wait, since start.
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  double waitedSeconds() const { return static_cast<double>(wait_ns_.load(std::memory_order_relaxed)) / 1e9; }

  // Holds one slot for its scope.
  class Slot {
   public:
    explicit Slot(CpuGate& gate) : gate_(gate) { gate_.acquire(); }
    ~Slot() { gate_.release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    CpuGate& gate_;
  };

 private:
  mutable std::mutex mutex_;
  std::condition_variable available_;
  size_t free_;
  size_t waiting_ = 0;
  const size_t slots_;
  std::atomic<uint64_t> waits_{0};
  std::atomic<uint64_t> wait_ns_{0};
};

}  // namespace fhir::gateway

// SPDX-License-Identifier: Apache-2.0
// The ingest CPU gate (gateway/ingest/cpu_gate.h): never more holders than slots, waiters get
// the freed slots, and the slot count comes from FHIR_GATEWAY_CPU_SLOTS or the core count.
#include "gateway/ingest/cpu_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace fhir::gateway {
namespace {

TEST(CpuGate, NeverMoreHoldersThanSlotsAndEveryWaiterGetsOne) {
  CpuGate gate(2);
  std::atomic<int> active{0}, most{0}, done{0};
  std::vector<std::thread> threads;
  for (int index = 0; index < 8; ++index) {
    threads.emplace_back([&] {
      for (int round = 0; round < 5; ++round) {
        CpuGate::Slot slot(gate);
        int now = ++active;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // hold the slot a while
        --active;
        ++done;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(done.load(), 40);
  EXPECT_EQ(most.load(), 2);  // 8 threads, 2 slots: exactly 2 at once at the peak
  EXPECT_GT(gate.waits(), 0u);
  EXPECT_GT(gate.waitedSeconds(), 0.0);
  EXPECT_EQ(gate.freeSlots(), 2u);
  EXPECT_EQ(gate.waiting(), 0u);
}

TEST(CpuGate, ASlotIsReleasedAtTheEndOfItsScope) {
  CpuGate gate(1);
  {
    CpuGate::Slot slot(gate);
    EXPECT_EQ(gate.freeSlots(), 0u);
  }
  EXPECT_EQ(gate.freeSlots(), 1u);
  EXPECT_EQ(gate.waits(), 0u);  // nobody waited
}

TEST(CpuGate, ZeroSlotsMeansOne) { EXPECT_EQ(CpuGate(0).slots(), 1u); }

TEST(CpuGate, SlotsComeFromTheEnvironmentElseTheCores) {
  setenv("FHIR_GATEWAY_CPU_SLOTS", "3", 1);
  EXPECT_EQ(CpuGate::defaultSlots(), 3u);
  setenv("FHIR_GATEWAY_CPU_SLOTS", "zero", 1);  // not a number: the cores
  unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(CpuGate::defaultSlots(), cores == 0 ? 1u : cores);
  setenv("FHIR_GATEWAY_CPU_SLOTS", "0", 1);
  EXPECT_EQ(CpuGate::defaultSlots(), cores == 0 ? 1u : cores);
  unsetenv("FHIR_GATEWAY_CPU_SLOTS");
  EXPECT_EQ(CpuGate::defaultSlots(), cores == 0 ? 1u : cores);
}

}  // namespace
}  // namespace fhir::gateway

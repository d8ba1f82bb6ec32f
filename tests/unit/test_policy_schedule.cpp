// SPDX-License-Identifier: Apache-2.0
// Pipeline schedule simulation: peak stash per stage, checked against hand-worked cases.
#include "agoq/policy/schedule.hpp"

#include <gtest/gtest.h>

#include <vector>

using agoq::peak_stash;
using agoq::pipeline_schedule;
using agoq::simulate_schedule;

// GPipe, p = 3, m = 2. Every stage runs F0 F1 B0 B1, so it holds both micro-batches before the
// first backward: peak 2 everywhere. Timeline (step: stage0 stage1 stage2):
// 0: F0 - -, 1: F1 F0 -, 2: - F1 F0, 3: - - F1, 4: - - B0, 5: - B0 B1, 6: B0 B1 -, 7: B1 - -
// -> 8 steps = 2 (m + p - 1).
TEST(PolicySchedule, GpipeHoldsAllMicroBatches) {
  const auto r = simulate_schedule(pipeline_schedule::gpipe, 3, 2);
  EXPECT_EQ(r.peak_stash, (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(r.steps, 8);
  EXPECT_EQ(peak_stash(pipeline_schedule::gpipe, 4, 8), (std::vector<int>{8, 8, 8, 8}));
}

// 1F1B, p = 4, m = 8: stage r runs p - r - 1 warm-up forwards, then one more forward before its
// first backward, so it holds p - r: 4, 3, 2, 1. Ideal time 2 (m + p - 1) = 22 steps.
TEST(PolicySchedule, OneFOneBHoldsStagesLeft) {
  const auto r = simulate_schedule(pipeline_schedule::one_f_one_b, 4, 8);
  EXPECT_EQ(r.peak_stash, (std::vector<int>{4, 3, 2, 1}));
  EXPECT_EQ(r.steps, 22);
}

// 1F1B with fewer micro-batches than stages: min(p - r, m) = min(4,2), min(3,2), min(2,2), 1.
TEST(PolicySchedule, OneFOneBFewMicroBatches) {
  EXPECT_EQ(peak_stash(pipeline_schedule::one_f_one_b, 4, 2), (std::vector<int>{2, 2, 2, 1}));
  EXPECT_EQ(peak_stash(pipeline_schedule::one_f_one_b, 1, 5), (std::vector<int>{1}));
}

// Interleaved 1F1B, p = 2, m = 4, v = 2. Stage 0's forward order (chunk, micro-batch):
// (0,0) (0,1) (1,0) (1,1) (0,2) (0,3) (1,2) (1,3); warm-up = (p-0-1)*2 + (v-1)*p = 4, then one
// more forward before the first backward: 5. Stage 1: warm-up 0*2 + 2 = 2, peak 3.
TEST(PolicySchedule, InterleavedSmall) {
  EXPECT_EQ(peak_stash(pipeline_schedule::interleaved_1f1b, 2, 4, 2), (std::vector<int>{5, 3}));
}

// The paper's example (§4.2): p = 4, m = 8, v = 2 -> 11, 9, 7, 5 (warm-up 10, 8, 6, 4, plus one).
// Ideal time 2 (m v + p - 1) = 38 chunk steps.
TEST(PolicySchedule, InterleavedPaperExample) {
  const auto r = simulate_schedule(pipeline_schedule::interleaved_1f1b, 4, 8, 2);
  EXPECT_EQ(r.peak_stash, (std::vector<int>{11, 9, 7, 5}));
  EXPECT_EQ(r.steps, 38);
}

// m == p: Megatron runs every forward first (all warm-up), so each stage holds m v = 4 chunks.
TEST(PolicySchedule, InterleavedAllWarmup) {
  EXPECT_EQ(peak_stash(pipeline_schedule::interleaved_1f1b, 2, 2, 2), (std::vector<int>{4, 4}));
}

// v = 3, p = 4, m = 16: warm-up (p-r-1)*2 + 2*4 = 14, 12, 10, 8 -> peaks 15, 13, 11, 9.
TEST(PolicySchedule, InterleavedThreeChunks) {
  EXPECT_EQ(peak_stash(pipeline_schedule::interleaved_1f1b, 4, 16, 3),
            (std::vector<int>{15, 13, 11, 9}));
}

TEST(PolicySchedule, RejectsBadArguments) {
  EXPECT_THROW(peak_stash(pipeline_schedule::one_f_one_b, 0, 8), agoq::invalid_argument);
  EXPECT_THROW(peak_stash(pipeline_schedule::gpipe, 4, 0), agoq::invalid_argument);
  EXPECT_THROW(peak_stash(pipeline_schedule::one_f_one_b, 4, 8, 2), agoq::invalid_argument);
  EXPECT_THROW(peak_stash(pipeline_schedule::interleaved_1f1b, 4, 6, 2), agoq::invalid_argument);
  try {
    peak_stash(pipeline_schedule::interleaved_1f1b, 4, 6, 2);
  } catch (const agoq::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of stages"), std::string::npos) << e.what();
  }
}

// SPDX-License-Identifier: Apache-2.0
// DBCA-PP stage widths.
#include "agoq/policy/stage_bits.hpp"

#include <gtest/gtest.h>

#include <vector>

using agoq::stage_bits;
using agoq::stage_bits_options;

// Paper stashes 11/9/7/5, budget 4 x 11 = 44: stage 2: 5 x 9 = 45 > 44 -> 4; stage 3: 6 x 7 = 42,
// 8 x 7 = 56 -> 6; stage 4: 8 x 5 = 40 -> 8 (16 not allowed).
TEST(PolicyStageBits, StrictRuleOnPaperStashes) {
  EXPECT_EQ(stage_bits({11, 9, 7, 5}), (std::vector<int>{4, 4, 6, 8}));
  static_assert(agoq::stage_width(9, 11, stage_bits_options{}) == 4, "");
  static_assert(agoq::stage_width(7, 11, stage_bits_options{}) == 6, "");
}

// With 5% tolerance the budget is 46.2: 45 fits -> the paper's 4/5/6/8. 2% (44.88) does not.
TEST(PolicyStageBits, ToleranceGivesPaperConfiguration) {
  EXPECT_EQ(stage_bits({11, 9, 7, 5}, stage_bits_options::paper()),
            (std::vector<int>{4, 5, 6, 8}));
  stage_bits_options two;
  two.tolerance = 0.02;
  EXPECT_EQ(stage_bits({11, 9, 7, 5}, two), (std::vector<int>{4, 4, 6, 8}));
  stage_bits_options exact;
  exact.tolerance = 1.0 / 44.0 + 1e-9;
  EXPECT_EQ(stage_bits({11, 9, 7, 5}, exact), (std::vector<int>{4, 5, 6, 8}));
}

// 1F1B stashes 4/3/2/1, budget 16: 5 x 3 = 15 -> 5, 8 x 2 = 16 -> 8, 8 x 1 -> 8; with 16 allowed
// the last stage gets 16 x 1 = 16.
TEST(PolicyStageBits, OneFOneBAndUnquantized) {
  EXPECT_EQ(stage_bits({4, 3, 2, 1}), (std::vector<int>{4, 5, 8, 8}));
  stage_bits_options o;
  o.allow_unquantized = true;
  EXPECT_EQ(stage_bits({4, 3, 2, 1}, o), (std::vector<int>{4, 5, 8, 16}));
  EXPECT_EQ(stage_bits({8, 8, 8}), (std::vector<int>{4, 4, 4})); // GPipe: all equal
  EXPECT_EQ(stage_bits({3, 0}), (std::vector<int>{4, 8}));      // an empty stage: widest
}

TEST(PolicyStageBits, CustomBaseAndSet) {
  stage_bits_options o;
  o.base_bits = 2;
  o.widths = agoq::width_set{2, 3, 4};
  // budget 2 x 6 = 12: 3 x 4 = 12 -> 3; 4 x 3 = 12 -> 4
  EXPECT_EQ(stage_bits({6, 4, 3}, o), (std::vector<int>{2, 3, 4}));
  EXPECT_TRUE((agoq::width_set{4, 5, 6, 8}.contains(5)));
  EXPECT_FALSE((agoq::width_set{4, 5, 6, 8}.contains(7)));
}

TEST(PolicyStageBits, RejectsBadArguments) {
  EXPECT_THROW(stage_bits({}), agoq::invalid_argument);
  EXPECT_THROW(stage_bits({3, -1}), agoq::invalid_argument);
  stage_bits_options o;
  o.base_bits = 9;
  EXPECT_THROW(stage_bits({3}, o), agoq::invalid_argument);
  o = stage_bits_options{};
  o.tolerance = -0.1;
  EXPECT_THROW(stage_bits({3}, o), agoq::invalid_argument);
}

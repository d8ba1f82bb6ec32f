// SPDX-License-Identifier: Apache-2.0
// Block-scale rules: pow2 rounding up, E8M0 encode/decode, block_scale.
#include "agoq/format/codec.hpp"
#include "agoq/format/scale.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace {

TEST(FormatScale, RoundUpPow2) {
  EXPECT_EQ(agoq::round_up_pow2(0.0f), 0.0f);
  EXPECT_EQ(agoq::round_up_pow2(1.0f), 1.0f);
  EXPECT_EQ(agoq::round_up_pow2(0.75f), 1.0f);
  EXPECT_EQ(agoq::round_up_pow2(1.0000001f), 2.0f);
  EXPECT_EQ(agoq::round_up_pow2(3.0f), 4.0f);
  EXPECT_EQ(agoq::round_up_pow2(0.001f), std::ldexp(1.0f, -9));
  EXPECT_EQ(agoq::round_up_pow2(std::ldexp(1.0f, -149)), std::ldexp(1.0f, -149));
  EXPECT_EQ(agoq::round_up_pow2(std::ldexp(3.0f, -149)), std::ldexp(1.0f, -147));
  EXPECT_EQ(agoq::round_up_pow2(std::nextafter(std::ldexp(1.0f, -126), 0.0f)),
            std::ldexp(1.0f, -126));
  EXPECT_EQ(agoq::round_up_pow2(std::ldexp(1.0f, 127)), std::ldexp(1.0f, 127));
  EXPECT_EQ(agoq::round_up_pow2(std::numeric_limits<float>::max()), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(agoq::round_up_pow2(NAN)));
  // property over random inputs: p is a power of two, p >= s, p / 2 < s
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ue(-140.0f, 120.0f), um(1.0f, 2.0f);
  for (int i = 0; i < 20000; ++i) {
    const float s = um(rng) * std::exp2(std::floor(ue(rng)));
    const float p = agoq::round_up_pow2(s);
    int e;
    EXPECT_EQ(std::frexp(p, &e), 0.5f) << s;
    EXPECT_GE(p, s);
    EXPECT_LT(p / 2, s);
  }
}

TEST(FormatScale, E8M0) {
  EXPECT_EQ(agoq::encode_e8m0(1.0f), 127);
  EXPECT_EQ(agoq::encode_e8m0(1.5f), 128);
  EXPECT_EQ(agoq::encode_e8m0(0.25f), 125);
  EXPECT_EQ(agoq::encode_e8m0(0.0f), 0);
  EXPECT_EQ(agoq::encode_e8m0(std::ldexp(1.0f, -127)), 0);
  EXPECT_EQ(agoq::encode_e8m0(std::ldexp(1.0f, -140)), 0);
  EXPECT_EQ(agoq::encode_e8m0(std::ldexp(1.0f, -126)), 1);
  EXPECT_EQ(agoq::encode_e8m0(std::ldexp(1.0f, 127)), 254);
  EXPECT_EQ(agoq::encode_e8m0(NAN), 0xFF);
  EXPECT_EQ(agoq::encode_e8m0(INFINITY), 0xFF);
  EXPECT_TRUE(std::isnan(agoq::decode_e8m0(0xFF)));
  EXPECT_EQ(agoq::decode_e8m0(0), std::ldexp(1.0f, -127));
  EXPECT_GT(agoq::decode_e8m0(0), 0.0f);
  for (int c = 0; c < 255; ++c) {
    EXPECT_EQ(agoq::decode_e8m0(std::uint8_t(c)), std::ldexp(1.0f, c - 127)) << c;
    EXPECT_EQ(agoq::encode_e8m0(agoq::decode_e8m0(std::uint8_t(c))), c);
  }
}

TEST(FormatScale, BlockScale) {
  using agoq::scale_kind;
  EXPECT_EQ(agoq::block_scale(127.0f, 127.0f, scale_kind::fp32), 1.0f);
  EXPECT_EQ(agoq::block_scale(1.0f, 7.0f, scale_kind::fp32), 1.0f / 7.0f);
  EXPECT_EQ(agoq::block_scale(1.0f, 7.0f, scale_kind::pow2), 0.25f);
  EXPECT_EQ(agoq::block_scale(1.0f, 7.0f, scale_kind::e8m0), 0.25f);
  EXPECT_EQ(agoq::block_scale(448.0f, 448.0f, scale_kind::pow2), 1.0f); // exact stays
  for (auto k : {scale_kind::fp32, scale_kind::pow2, scale_kind::e8m0}) {
    EXPECT_EQ(agoq::block_scale(0.0f, 127.0f, k), 0.0f);
    EXPECT_TRUE(std::isnan(agoq::block_scale(NAN, 127.0f, k)));
    EXPECT_TRUE(std::isnan(agoq::block_scale(INFINITY, 127.0f, k)));
  }
  EXPECT_EQ(agoq::block_scale(1e-42f, 448.0f, scale_kind::e8m0), std::ldexp(1.0f, -127));
  // store/load
  float f[2];
  std::uint8_t b[2];
  agoq::store_scale(f, 1, 0.3f, scale_kind::fp32);
  EXPECT_EQ(agoq::load_scale(f, 1, scale_kind::fp32), 0.3f);
  agoq::store_scale(b, 1, 0.25f, scale_kind::e8m0);
  EXPECT_EQ(b[1], 125);
  EXPECT_EQ(agoq::load_scale(b, 1, scale_kind::e8m0), 0.25f);
  agoq::store_scale(b, 0, 0.0f, scale_kind::e8m0);
  EXPECT_EQ(b[0], 0);
}

TEST(FormatScale, NanPropagatingMax) {
  EXPECT_TRUE(std::isnan(agoq::detail::absmax_step(1.0f, NAN)));
  EXPECT_TRUE(std::isnan(agoq::detail::absmax_step(NAN, 1.0f)));
  EXPECT_EQ(agoq::detail::absmax_step(1.0f, -3.0f), 3.0f);
  EXPECT_EQ(agoq::detail::absmax_step(0.0f, -INFINITY), INFINITY);
}

// The asymmetric block minimum and maximum do not depend on the reduction order: -0 < +0.
TEST(FormatScale, MinMaxOrderSignedZeros) {
  using agoq::detail::nan_max;
  using agoq::detail::nan_min;
  EXPECT_TRUE(std::signbit(nan_min(0.0f, -0.0f)));
  EXPECT_TRUE(std::signbit(nan_min(-0.0f, 0.0f)));
  EXPECT_FALSE(std::signbit(nan_max(0.0f, -0.0f)));
  EXPECT_FALSE(std::signbit(nan_max(-0.0f, 0.0f)));
  EXPECT_EQ(nan_min(2.0f, -1.0f), -1.0f);
  EXPECT_EQ(nan_max(2.0f, -1.0f), 2.0f);
  EXPECT_TRUE(std::isnan(nan_min(NAN, -INFINITY)));
  EXPECT_TRUE(std::isnan(nan_max(INFINITY, NAN)));
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// FP4 E2M1 codec: the OCP value table and cuda_fp4.h's host conversion.
#include "agoq/format/fp4.hpp"

#include <cuda_fp16.h>
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#include <cuda_fp4.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

namespace {

const float e2m1_values[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

std::uint8_t nv_fp4(float x) { return __nv_cvt_float_to_fp4(x, __NV_E2M1, cudaRoundNearest); }

TEST(FormatFp4, DecodeAll16) {
  for (int c = 0; c < 16; ++c) {
    const float expect = (c & 8) ? -e2m1_values[c & 7] : e2m1_values[c & 7];
    EXPECT_EQ(agoq::fp4_e2m1_decode(std::uint8_t(c)), expect) << c;
    EXPECT_EQ(std::signbit(agoq::fp4_e2m1_decode(std::uint8_t(c))), (c & 8) != 0) << c;
    const float nv = __half2float(__half(__nv_cvt_fp4_to_halfraw(std::uint8_t(c), __NV_E2M1)));
    EXPECT_EQ(agoq::fp4_e2m1_decode(std::uint8_t(c)), nv) << c;
  }
}

TEST(FormatFp4, EncodeMatchesCudaOnGridMidpointsAndSpecials) {
  std::vector<float> xs;
  for (int i = 0; i < 8; ++i) {
    xs.push_back(e2m1_values[i]);
    if (i + 1 < 8) xs.push_back((e2m1_values[i] + e2m1_values[i + 1]) / 2);
  }
  const std::size_t n = xs.size();
  for (std::size_t i = 0; i < n; ++i) {
    xs.push_back(std::nextafter(xs[i], 0.0f));
    xs.push_back(std::nextafter(xs[i], 100.0f));
  }
  for (float x : {7.0f, 6.5f, 100.0f, 1e30f, 0.25f, 0.2f, 1e-40f})
    xs.push_back(x);
  xs.push_back(std::numeric_limits<float>::infinity());
  const std::size_t m = xs.size();
  for (std::size_t i = 0; i < m; ++i)
    xs.push_back(-xs[i]);
  for (float x : xs)
    EXPECT_EQ(int(agoq::fp4_e2m1_encode(x)), int(nv_fp4(x))) << x;
  // the documented rules
  EXPECT_EQ(agoq::fp4_e2m1_encode(std::numeric_limits<float>::quiet_NaN()), 0x7);
  EXPECT_EQ(agoq::fp4_e2m1_encode(-std::numeric_limits<float>::quiet_NaN()), 0x7);
  EXPECT_EQ(int(nv_fp4(std::numeric_limits<float>::quiet_NaN())), 0x7);
  EXPECT_EQ(agoq::fp4_e2m1_encode(-std::numeric_limits<float>::infinity()), 0xF);
  EXPECT_EQ(agoq::fp4_e2m1_encode(5.0f), 0x6);  // tie 4|6 -> even mantissa (4)
  EXPECT_EQ(agoq::fp4_e2m1_encode(2.5f), 0x4);  // tie 2|3 -> 2
  EXPECT_EQ(agoq::fp4_e2m1_encode(0.75f), 0x2); // tie 0.5|1 -> 1
}

TEST(FormatFp4, EncodeMatchesCudaRandom) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<std::uint32_t> ub;
  std::uniform_real_distribution<float> ur(-8.0f, 8.0f);
  for (int i = 0; i < 100000; ++i) {
    std::uint32_t u = ub(rng);
    float x;
    std::memcpy(&x, &u, 4);
    ASSERT_EQ(int(agoq::fp4_e2m1_encode(x)), int(nv_fp4(x))) << x;
    const float y = ur(rng);
    ASSERT_EQ(int(agoq::fp4_e2m1_encode(y)), int(nv_fp4(y))) << y;
  }
}

TEST(FormatFp4, StochasticRounding) {
  // 2.25 lies a quarter of the way from 2 to 3
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(2.25f, 0.2f)), 3.0f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(2.25f, 0.3f)), 2.0f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(-5.0f, 0.49f)), -6.0f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(-5.0f, 0.5f)), -4.0f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(0.1f, 0.19f)), 0.5f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(0.1f, 0.21f)), 0.0f);
  EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(9.0f, 0.0f)), 6.0f);
  for (float v : e2m1_values)
    EXPECT_EQ(agoq::fp4_e2m1_decode(agoq::fp4_e2m1_encode_sr(v, 0.0f)), v);
}

} // namespace

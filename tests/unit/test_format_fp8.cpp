// SPDX-License-Identifier: Apache-2.0
// FP8 E4M3/E5M2 codecs against cuda_fp8.h (host path of __nv_cvt_float_to_fp8 / _fp8_to_halfraw).
#include "agoq/format/fp8.hpp"

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

std::uint32_t bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

struct fp8_kind {
  __nv_fp8_interpretation_t nv;
  std::uint8_t (*enc)(float);
  std::uint8_t (*enc_sr)(float, float);
  float (*dec)(std::uint8_t);
  float max;
};

const fp8_kind kinds[2] = {
    {__NV_E4M3, agoq::fp8_e4m3_encode, agoq::fp8_e4m3_encode_sr, agoq::fp8_e4m3_decode, 448.0f},
    {__NV_E5M2, agoq::fp8_e5m2_encode, agoq::fp8_e5m2_encode_sr, agoq::fp8_e5m2_decode, 57344.0f}};

float nv_decode(std::uint8_t c, __nv_fp8_interpretation_t k) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(c, k)));
}
std::uint8_t nv_encode(float x, __nv_fp8_interpretation_t k) {
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, k);
}

void expect_encode_matches(const fp8_kind& k, float x) {
  ASSERT_EQ(int(k.enc(x)), int(nv_encode(x, k.nv)))
      << "x=" << x << " bits=0x" << std::hex << bits(x) << " kind=" << int(k.nv);
}

// Every finite, non-negative code value, in increasing order.
std::vector<float> positive_values(const fp8_kind& k) {
  std::vector<float> v;
  for (int c = 0; c < 128; ++c) {
    const float f = nv_decode(std::uint8_t(c), k.nv);
    if (std::isfinite(f)) v.push_back(f);
  }
  return v;
}

TEST(FormatFp8, DecodeAll256MatchesCuda) {
  for (const auto& k : kinds)
    for (int c = 0; c < 256; ++c) {
      const float ref = nv_decode(std::uint8_t(c), k.nv);
      const float got = k.dec(std::uint8_t(c));
      EXPECT_EQ(bits(got), bits(ref)) << "code " << c << " kind " << int(k.nv);
    }
}

TEST(FormatFp8, DecodeKnownValues) {
  EXPECT_EQ(agoq::fp8_e4m3_decode(0x7E), 448.0f);
  EXPECT_EQ(agoq::fp8_e4m3_decode(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(agoq::fp8_e4m3_decode(0x38), 1.0f);
  EXPECT_TRUE(std::isnan(agoq::fp8_e4m3_decode(0xFF)));
  EXPECT_EQ(agoq::fp8_e5m2_decode(0x7B), 57344.0f);
  EXPECT_EQ(agoq::fp8_e5m2_decode(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(agoq::fp8_e5m2_decode(0x7C), std::numeric_limits<float>::infinity());
  EXPECT_EQ(agoq::fp8_e5m2_decode(0xFC), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits(agoq::fp8_e5m2_decode(0x80)), 0x80000000u);
}

TEST(FormatFp8, EncodeCodeValuesMidpointsAndNeighbours) {
  for (const auto& k : kinds) {
    const std::vector<float> v = positive_values(k);
    for (std::size_t i = 0; i < v.size(); ++i) {
      for (float s : {1.0f, -1.0f}) {
        const float x = s * v[i];
        expect_encode_matches(k, x);
        expect_encode_matches(k, std::nextafter(x, 0.0f));
        expect_encode_matches(k, std::nextafter(x, 2.0f * x + s));
        if (i + 1 < v.size()) {
          const float mid = s * float((double(v[i]) + double(v[i + 1])) / 2.0);
          ASSERT_EQ(double(mid), s * (double(v[i]) + double(v[i + 1])) / 2.0); // exact
          expect_encode_matches(k, mid);
          expect_encode_matches(k, std::nextafter(mid, 0.0f));
          expect_encode_matches(k, std::nextafter(mid, 2.0f * mid));
        }
      }
    }
    // beyond max: the would-be next binade step and its midpoint
    const float top = v.back();
    for (float x : {top * 1.03125f, top * 1.0625f, top * 1.07f, top * 1.125f, top * 2.0f})
      for (float s : {1.0f, -1.0f})
        expect_encode_matches(k, s * x);
  }
}

TEST(FormatFp8, EncodeSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f,
                            -0.0f,
                            inf,
                            -inf,
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::signaling_NaN(),
                            from_bits(0x7F800001u),
                            from_bits(0xFFFFFFFFu),
                            from_bits(0x7FA00000u),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(),
                            1e30f,
                            -1e30f,
                            1e-30f,
                            -1e-30f,
                            464.0f,
                            480.0f,
                            61440.0f,
                            65536.0f,
                            std::ldexp(1.0f, -10),
                            std::ldexp(1.0f, -17),
                            std::ldexp(1.0f, -18)};
  for (const auto& k : kinds)
    for (float x : specials)
      expect_encode_matches(k, x);
  // the documented special rules
  EXPECT_EQ(agoq::fp8_e4m3_encode(inf), 0x7E);
  EXPECT_EQ(agoq::fp8_e4m3_encode(-inf), 0xFE);
  EXPECT_EQ(agoq::fp8_e5m2_encode(inf), 0x7B);
  EXPECT_EQ(agoq::fp8_e5m2_encode(-inf), 0xFB);
  EXPECT_EQ(agoq::fp8_e4m3_encode(-std::numeric_limits<float>::quiet_NaN()), 0x7F);
  EXPECT_EQ(agoq::fp8_e5m2_encode(std::numeric_limits<float>::quiet_NaN()), 0x7F);
  EXPECT_EQ(agoq::fp8_e4m3_encode(-0.0f), 0x80);
}

TEST(FormatFp8, EncodeRandomFloats) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::uint32_t> ub;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ue(-24.0f, 18.0f);
  for (const auto& k : kinds) {
    for (int i = 0; i < 250000; ++i) {
      expect_encode_matches(k, from_bits(ub(rng)));
      expect_encode_matches(k, nd(rng) * std::exp2(ue(rng)));
    }
  }
}

TEST(FormatFp8, StochasticRoundingPicksNeighbours) {
  for (const auto& k : kinds) {
    const std::vector<float> v = positive_values(k);
    for (std::size_t i = 0; i + 1 < v.size(); ++i) {
      // exact values never move
      EXPECT_EQ(k.enc_sr(v[i], 0.0f), k.enc(v[i]));
      EXPECT_EQ(k.enc_sr(v[i], 0.999999f), k.enc(v[i]));
      // a quarter of the way from lo to hi (exact in fp32): hi iff u < 0.25
      const float x = float(double(v[i]) + (double(v[i + 1]) - double(v[i])) / 4.0);
      const float lo = v[i], hi = v[i + 1];
      EXPECT_EQ(k.dec(k.enc_sr(x, 0.0f)), hi);
      EXPECT_EQ(k.dec(k.enc_sr(x, 0.2499f)), hi);
      EXPECT_EQ(k.dec(k.enc_sr(x, 0.25f)), lo);
      EXPECT_EQ(k.dec(k.enc_sr(x, 0.9f)), lo);
      EXPECT_EQ(k.dec(k.enc_sr(-x, 0.1f)), -hi);
      EXPECT_EQ(k.dec(k.enc_sr(-x, 0.5f)), -lo);
    }
    // saturation
    EXPECT_EQ(k.dec(k.enc_sr(k.max * 1.5f, 0.0f)), k.max);
    EXPECT_EQ(k.dec(k.enc_sr(-std::numeric_limits<float>::infinity(), 0.0f)), -k.max);
    EXPECT_EQ(k.enc_sr(std::numeric_limits<float>::quiet_NaN(), 0.5f), 0x7F);
  }
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// Numeric edges of the host reference (the GPU matches it bit for bit, tests/gpu): finite inputs
// at the element type's largest values never decode to +-Inf (decoded products saturate, and so
// does the narrowing to bf16/fp16), blocks of tiny values (scales below 2^-126) keep their
// relative accuracy, and asymmetric blocks whose range overflows fp32 still decode finite.
#include "agoq/format/element.hpp"
#include "agoq/quant/reference.hpp"
#include "common/host_qtensor.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using agoq::format;
using agoq::quant_spec;
using agoq::rounding;
using agoq::scale_kind;

using agoq_test::all_formats;

using agoq_test::qtensor;

std::vector<quant_spec> all_specs(int block) {
  std::vector<quant_spec> v;
  for (format f : all_formats)
    for (rounding r : {rounding::nearest_even, rounding::stochastic}) {
      for (scale_kind k : {scale_kind::fp32, scale_kind::pow2, scale_kind::e8m0})
        v.push_back({f, block, k, r, true});
      if (agoq::is_integer(f)) v.push_back({f, block, scale_kind::fp32, r, false});
    }
  return v;
}

template <class T> float max_of() {
  if constexpr (std::is_same_v<T, __half>) return 65504.0f;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return 3.38953139e38f; // 0x7F7F
  return FLT_MAX;
}

template <class T> const char* name_of() {
  if constexpr (std::is_same_v<T, __half>) return "fp16";
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return "bf16";
  return "fp32";
}

//! Every spec, on blocks of values at and near T's largest finite value: every decoded value is
//! finite, within T's range, and keeps the sign of a +-max input.
template <class T> void expect_finite_round_trips() {
  const float m = max_of<T>();
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> uni(0.5f, 1.0f);
  std::vector<float> xf;
  for (int j = 0; j < 32; ++j) xf.push_back(m); // a block of +max
  for (int j = 0; j < 32; ++j) xf.push_back(j % 2 ? -m : m);
  for (int j = 0; j < 32; ++j) xf.push_back((j % 3 ? 1.0f : -1.0f) * (j == 5 ? m : m * uni(gen)));
  for (int j = 0; j < 32; ++j) xf.push_back(j == 0 ? -m : (j == 1 ? 1e-30f : 0.0f));
  std::vector<T> x(xf.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = agoq::detail::from_float<T>(xf[i]);
    ASSERT_TRUE(std::isfinite(agoq::detail::to_float(x[i])));
  }
  const std::int64_t n = std::int64_t(x.size());
  for (const quant_spec& s : all_specs(32)) {
    SCOPED_TRACE(::testing::Message() << s << " " << name_of<T>());
    qtensor q(s, 1, n);
    agoq::ref::quantize(x.data(), q.v);
    std::vector<T> y(x.size());
    std::vector<float> yf(x.size()), acc(x.size(), 0.0f);
    agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
    agoq::ref::dequantize(agoq::const_quantized_view(q.v), yf.data());
    agoq::ref::dequantize_accumulate(agoq::const_quantized_view(q.v), acc.data());
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = agoq::detail::to_float(y[std::size_t(i)]);
      ASSERT_TRUE(std::isfinite(v)) << "element " << i << " (" << xf[std::size_t(i)] << ") -> " << v;
      ASSERT_LE(std::fabs(v), m) << "element " << i;
      ASSERT_TRUE(std::isfinite(yf[std::size_t(i)])) << "fp32 output, element " << i;
      ASSERT_TRUE(std::isfinite(acc[std::size_t(i)])) << "accumulator, element " << i;
      const float xi = agoq::detail::to_float(x[std::size_t(i)]);
      if (std::fabs(xi) == m && bits_of(s.format) > 2) { // +-max decodes large, with its sign
        ASSERT_GE(v * (xi > 0 ? 1.0f : -1.0f), 0.25f * m) << "element " << i << ": " << v;
      }
    }
  }
}

TEST(numeric_edges, fp16_at_max_decodes_finite) { expect_finite_round_trips<__half>(); }
TEST(numeric_edges, bf16_at_max_decodes_finite) { expect_finite_round_trips<__nv_bfloat16>(); }
TEST(numeric_edges, fp32_at_max_decodes_finite) { expect_finite_round_trips<float>(); }

TEST(numeric_edges, fp16_int8_pow2_at_65504_saturates_to_65504) {
  // The scale rounds up to 1024, 65504 / 1024 = 63.97 rounds to 64, and 64 * 1024 = 65536 is
  // past fp16's range: the output saturates at 65504 instead of becoming +Inf.
  const quant_spec s{format::int8, 32, scale_kind::pow2};
  std::vector<__half> x(32, __float2half_rn(65504.0f)), y(32);
  qtensor q(s, 1, 32);
  agoq::ref::quantize(x.data(), q.v);
  EXPECT_EQ(q.scale(0), 1024.0f);
  agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
  for (const __half& v : y)
    EXPECT_EQ(__half2float(v), 65504.0f);
}

TEST(numeric_edges, fp32_max_with_fp32_scales_saturates_at_flt_max) {
  // 127 * RN(FLT_MAX / 127) rounds past FLT_MAX in fp32: the decoded value is FLT_MAX, not Inf.
  for (format f : {format::int8, format::int6}) {
    const quant_spec s{f, 32};
    std::vector<float> x(32, FLT_MAX), y(32);
    x[1] = -FLT_MAX;
    qtensor q(s, 1, 32);
    agoq::ref::quantize(x.data(), q.v);
    agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
    EXPECT_EQ(y[0], FLT_MAX) << s;
    EXPECT_EQ(y[1], -FLT_MAX) << s;
  }
}

TEST(numeric_edges, narrowing_saturates_and_keeps_nan) {
  using agoq::detail::to_output;
  EXPECT_EQ(__half2float(to_output<__half>(65519.0f)), 65504.0f);
  EXPECT_EQ(__half2float(to_output<__half>(65520.0f)), 65504.0f); // plain RNE gives +Inf
  EXPECT_EQ(__half2float(to_output<__half>(-1e9f)), -65504.0f);
  EXPECT_EQ(__half2float(to_output<__half>(INFINITY)), 65504.0f);
  EXPECT_EQ(__half2float(to_output<__half>(1.5f)), 1.5f);
  EXPECT_TRUE(std::isnan(__half2float(to_output<__half>(NAN))));
  EXPECT_EQ(__bfloat162float(to_output<__nv_bfloat16>(FLT_MAX)), 3.38953139e38f);
  EXPECT_EQ(__bfloat162float(to_output<__nv_bfloat16>(-INFINITY)), -3.38953139e38f);
  EXPECT_TRUE(std::isnan(__bfloat162float(to_output<__nv_bfloat16>(NAN))));
  EXPECT_EQ(to_output<float>(FLT_MAX), FLT_MAX);
  EXPECT_TRUE(std::isinf(to_output<float>(INFINITY))); // fp32 sums keep fp32 arithmetic
  EXPECT_EQ(agoq::detail::saturate_finite(-INFINITY), -FLT_MAX);
  EXPECT_TRUE(std::isnan(agoq::detail::saturate_finite(NAN)));
}

TEST(numeric_edges, tiny_fp8_e5m2_block_keeps_relative_accuracy) {
  // The case: the scale 1e-35 / 57344 is below 2^-128, so 1 / scale overflowed to +Inf
  // and every element decoded to +-1e-35.
  const quant_spec s{format::fp8_e5m2, 32};
  std::vector<float> x(32, 0.0f), y(32);
  x[0] = 1e-35f, x[1] = 1e-37f, x[2] = -2e-38f;
  qtensor q(s, 1, 32);
  agoq::ref::quantize(x.data(), q.v);
  agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
  for (int i = 0; i < 3; ++i) // E5M2 keeps 2 fraction bits: relative error <= 1/8 (+ the scale's)
    EXPECT_LE(std::fabs(y[std::size_t(i)] - x[std::size_t(i)]), 0.13f * std::fabs(x[std::size_t(i)]))
        << "element " << i << ": " << x[std::size_t(i)] << " -> " << y[std::size_t(i)];
  for (int i = 3; i < 32; ++i)
    EXPECT_EQ(y[std::size_t(i)], 0.0f);
}

TEST(numeric_edges, tiny_int8_pow2_block_rounds_to_its_step) {
  const quant_spec s{format::int8, 32, scale_kind::pow2};
  std::vector<float> x(32, 0.0f), y(32);
  x[0] = 1.2e-38f, x[1] = 1e-40f; // was 2.33e-38 twice
  qtensor q(s, 1, 32);
  agoq::ref::quantize(x.data(), q.v);
  agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
  const float step = q.scale(0);
  EXPECT_EQ(step, std::ldexp(1.0f, -132)); // round_up_pow2(1.2e-38 / 127)
  EXPECT_LE(std::fabs(y[0] - x[0]), 0.5f * step);
  EXPECT_LE(std::fabs(y[1] - x[1]), 0.5f * step);
  EXPECT_NE(y[0], y[1]);
}

//! x * 2^100 and x, for x whose scale is an exact power of two 2^-130 (below 2^-128, where
//! 1 / scale overflows): the same codes, scales 2^100 apart, decoded values 2^100 apart. Every
//! value is exact in fp32, so the pre-scaled encode must reproduce the large block's codes.
TEST(numeric_edges, tiny_blocks_encode_as_their_power_of_two_multiples) {
  constexpr int block = 32, e = 130;
  std::mt19937 gen(11);
  for (format f : all_formats)
    for (bool symmetric : {true, false}) {
      if (!symmetric && !agoq::is_integer(f)) continue;
      for (scale_kind k : {scale_kind::fp32, scale_kind::pow2}) {
        if (!symmetric && k != scale_kind::fp32) continue;
        for (rounding r : {rounding::nearest_even, rounding::stochastic}) {
          const quant_spec s{f, block, k, r, symmetric};
          SCOPED_TRACE(::testing::Message() << s);
          const float qmax = agoq::dispatch_codec(s, [](auto c) { return decltype(c)::qmax; });
          const int lim = int(qmax) * 256; // |x_j| <= qmax 2^-e with x_j = m 2^-(e + 8)
          std::uniform_int_distribution<int> m(-lim, lim);
          std::vector<float> tiny(4 * block);
          for (std::size_t b = 0; b < 4; ++b)
            for (std::size_t j = 0; j < block; ++j) {
              float v = std::ldexp(float(symmetric ? m(gen) : std::abs(m(gen))), -(e + 8));
              if (j == 0) v = symmetric ? std::ldexp(qmax, -e) : 0.0f;   // amax / qmax = 2^-e
              if (j == 1 && !symmetric) v = std::ldexp(qmax, -e);        // range / qmax = 2^-e
              tiny[b * block + j] = b % 2 ? -v : v;
            }
          std::vector<float> big(tiny.size());
          for (std::size_t i = 0; i < tiny.size(); ++i)
            big[i] = std::ldexp(tiny[i], 100);
          qtensor qt(s, 1, std::int64_t(tiny.size())), qb(s, 1, std::int64_t(big.size()));
          agoq::ref::quantize(tiny.data(), qt.v);
          agoq::ref::quantize(big.data(), qb.v);
          ASSERT_EQ(qt.codes, qb.codes);
          for (std::int64_t b = 0; b < 4; ++b) {
            ASSERT_EQ(qt.scale(b), std::ldexp(1.0f, -e)) << "block " << b;
            ASSERT_EQ(std::ldexp(qt.scale(b), 100), qb.scale(b)) << "block " << b;
          }
          std::vector<float> yt(tiny.size()), yb(big.size());
          agoq::ref::dequantize(agoq::const_quantized_view(qt.v), yt.data());
          agoq::ref::dequantize(agoq::const_quantized_view(qb.v), yb.data());
          for (std::size_t i = 0; i < yt.size(); ++i)
            ASSERT_EQ(std::ldexp(yt[i], 100), yb[i]) << "element " << i;
        }
      }
    }
}

TEST(numeric_edges, asymmetric_range_past_flt_max_decodes_finite) {
  // mx - mn = 2 FLT_MAX overflows fp32: the scale is computed in quarters instead of being +Inf
  // (which decoded every element to NaN).
  for (format f : {format::int8, format::int4, format::int2}) {
    const quant_spec s{f, 32, scale_kind::fp32, rounding::nearest_even, false};
    std::vector<float> x(32), y(32);
    for (int j = 0; j < 32; ++j)
      x[std::size_t(j)] = std::ldexp(float(j - 16), 123); // -2^127 .. 15 2^123
    x[0] = -FLT_MAX, x[1] = FLT_MAX, x[2] = 0.0f;
    qtensor q(s, 1, 32);
    agoq::ref::quantize(x.data(), q.v);
    const float step = q.scale(0);
    ASSERT_TRUE(std::isfinite(step)) << s;
    EXPECT_NEAR(step, 2.0 * FLT_MAX / ((1 << agoq::bits_of(f)) - 1), 1e-6 * step) << s;
    EXPECT_EQ(q.zeros[0], -FLT_MAX);
    agoq::ref::dequantize(agoq::const_quantized_view(q.v), y.data());
    for (int j = 0; j < 32; ++j) {
      ASSERT_TRUE(std::isfinite(y[std::size_t(j)])) << s << " element " << j;
      EXPECT_LE(std::fabs(double(y[std::size_t(j)]) - x[std::size_t(j)]), 0.501 * step)
          << s << " element " << j;
    }
  }
}

} // namespace

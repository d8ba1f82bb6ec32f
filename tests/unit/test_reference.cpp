// SPDX-License-Identifier: Apache-2.0
// The host reference quantizer: error bounds, stochastic-rounding bias, special blocks, tails,
// 2-D strides, argument validation and the fused forms, checked against independent oracles.
#include "agoq/quant/reference.hpp"
#include "common/host_qtensor.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {

using agoq::format;
using agoq::quant_spec;
using agoq::rounding;
using agoq::scale_kind;

using agoq_test::all_formats;
const int all_blocks[] = {32, 64, 128, 256};

using agoq_test::qtensor;

template <class T> T cvt(float x);
template <> float cvt<float>(float x) { return x; }
template <> __half cvt<__half>(float x) { return __float2half_rn(x); }
template <> __nv_bfloat16 cvt<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
float f32(float x) { return x; }
float f32(__half x) { return __half2float(x); }
float f32(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> double out_rel() { return 0.0; }
template <> double out_rel<__half>() { return std::ldexp(1.0, -11); }
template <> double out_rel<__nv_bfloat16>() { return std::ldexp(1.0, -8); }

// Values with a different magnitude per block, some exact zeros and ties.
template <class T> std::vector<T> make_data(std::int64_t n, int block, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> ue(-6, 6);
  std::vector<T> x(static_cast<std::size_t>(n));
  float mag = 1.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % block == 0) mag = std::ldexp(1.0f, ue(rng));
    x[std::size_t(i)] = cvt<T>(i % 17 == 3 ? 0.0f : nd(rng) * mag);
  }
  return x;
}

// Per-element error bound under nearest rounding (independent of the implementation).
double bound(const quant_spec& s, double x, double scale, double zero) {
  const double slack = (std::fabs(x) + std::fabs(zero)) * std::ldexp(1.0, -20);
  if (agoq::is_integer(s.format)) return scale / 2 * (1 + 1e-6) + slack;
  int m = 3, emin = -6; // e4m3
  if (s.format == format::fp8_e5m2) m = 2, emin = -14;
  if (s.format == format::fp4_e2m1) m = 1, emin = 0;
  return std::max(std::fabs(x) * std::ldexp(1.0, -(m + 1)), std::ldexp(1.0, emin - m - 1) * scale) *
             (1 + 1e-6) +
         slack;
}

template <class T>
void check_roundtrip(const quant_spec& s, std::int64_t rows, std::int64_t cols, unsigned seed) {
  SCOPED_TRACE(::testing::Message() << s << " rows=" << rows << " cols=" << cols);
  const std::vector<T> x = make_data<T>(rows * cols, s.block, seed);
  qtensor q(s, rows, cols);
  agoq::ref::quantize(x.data(), q.v);
  std::vector<T> y(x.size());
  agoq::ref::dequantize(q.v, y.data());
  const std::int64_t nb = agoq::blocks_per_row(s, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t bi = r * nb + c / s.block;
      const double xv = f32(x[std::size_t(r * cols + c)]), yv = f32(y[std::size_t(r * cols + c)]);
      const double z = s.symmetric ? 0.0 : q.zeros[std::size_t(bi)];
      ASSERT_LE(std::fabs(xv - yv), bound(s, xv, q.scale(bi), z) + std::fabs(yv) * out_rel<T>())
          << "r=" << r << " c=" << c << " x=" << xv << " y=" << yv << " scale=" << q.scale(bi);
    }
  // tail codes beyond cols are 0
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = cols; c < nb * s.block; ++c)
      ASSERT_EQ(q.code(r * nb + c / s.block, int(c % s.block)), 0) << "tail code " << c;
}

std::vector<quant_spec> all_specs(rounding rnd) {
  std::vector<quant_spec> v;
  for (format f : all_formats)
    for (int b : all_blocks) {
      for (scale_kind k : {scale_kind::fp32, scale_kind::pow2, scale_kind::e8m0})
        v.push_back(quant_spec{f, b, k, rnd, true});
      if (agoq::is_integer(f)) v.push_back(quant_spec{f, b, scale_kind::fp32, rnd, false});
    }
  return v;
}

TEST(Reference, RoundTripErrorBoundAllFormatsBlocksTypes) {
  unsigned seed = 1;
  for (const quant_spec& s : all_specs(rounding::nearest_even)) {
    check_roundtrip<float>(s, 1, 3 * s.block + 7, seed++);
    check_roundtrip<__half>(s, 2, 2 * s.block + 1, seed++);
    check_roundtrip<__nv_bfloat16>(s, 1, 2 * s.block - 1, seed++);
  }
}

TEST(Reference, TailLengths) {
  unsigned seed = 100;
  for (format f : {format::int8, format::int4, format::int3, format::fp8_e4m3, format::fp4_e2m1})
    for (int b : all_blocks)
      for (std::int64_t n : {std::int64_t(1), std::int64_t(b - 1), std::int64_t(b + 1)})
        check_roundtrip<float>(quant_spec{f, b}, 1, n, seed++);
  check_roundtrip<float>(quant_spec{format::int8, 128}, 1, 1000003, 7);
}

TEST(Reference, MatchesIndependentOracleInt8AndFp8) {
  const std::int64_t n = 1000;
  const std::vector<float> x = make_data<float>(n, 64, 11);
  // int8, fp32 scale, nearest-even: the rule written out directly
  quant_spec s{format::int8, 64};
  qtensor q(s, 1, n);
  agoq::ref::quantize(x.data(), q.v);
  for (std::int64_t b = 0; b * 64 < n; ++b) {
    float amax = 0;
    for (std::int64_t i = b * 64; i < std::min(n, b * 64 + 64); ++i)
      amax = std::max(amax, std::fabs(x[std::size_t(i)]));
    const float scale = amax / 127.0f, inv = scale == 0 ? 0.0f : 1.0f / scale;
    ASSERT_EQ(q.scale(b), scale);
    for (std::int64_t i = b * 64; i < std::min(n, b * 64 + 64); ++i) {
      int qi = int(std::nearbyint(x[std::size_t(i)] * inv));
      qi = std::max(-127, std::min(127, qi));
      ASSERT_EQ(q.code(b, int(i - b * 64)), qi & 0xFF) << i;
    }
  }
  // fp8 e4m3 / e5m2 against cuda_fp8.h
  for (auto [f, qmax, kind] : {std::make_tuple(format::fp8_e4m3, 448.0f, __NV_E4M3),
                               std::make_tuple(format::fp8_e5m2, 57344.0f, __NV_E5M2)}) {
    quant_spec s8{f, 32};
    qtensor q8(s8, 1, n);
    agoq::ref::quantize(x.data(), q8.v);
    for (std::int64_t b = 0; b * 32 < n; ++b) {
      float amax = 0;
      for (std::int64_t i = b * 32; i < std::min(n, b * 32 + 32); ++i)
        amax = std::max(amax, std::fabs(x[std::size_t(i)]));
      const float scale = amax / qmax, inv = scale == 0 ? 0.0f : 1.0f / scale;
      for (std::int64_t i = b * 32; i < std::min(n, b * 32 + 32); ++i)
        ASSERT_EQ(q8.code(b, int(i - b * 32)),
                  __nv_cvt_float_to_fp8(x[std::size_t(i)] * inv, __NV_SATFINITE, kind));
    }
  }
}

// Mean decoded value of v (placed next to anchors 0 and qmax so that scale = 1) over many seeds.
double sr_mean(const quant_spec& s, float v, int seeds, float* lo, float* hi) {
  float qmax = 0;
  agoq::dispatch_codec(s, [&](auto c) { qmax = decltype(c)::qmax; });
  std::vector<float> x(std::size_t(s.block), v);
  x[0] = 0.0f;
  x[1] = s.symmetric ? -qmax : qmax;
  qtensor q(s, 1, s.block);
  std::vector<float> y(x.size());
  double sum = 0;
  long cnt = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int seed = 0; seed < seeds; ++seed) {
    agoq::ref::quantize(x.data(), q.v, std::uint64_t(seed) * 0x9E3779B97F4A7C15ULL);
    agoq::ref::dequantize(q.v, y.data());
    EXPECT_EQ(y[1], x[1]);
    for (int j = 2; j < s.block; ++j) {
      sum += y[std::size_t(j)];
      ++cnt;
      *lo = std::min(*lo, y[std::size_t(j)]);
      *hi = std::max(*hi, y[std::size_t(j)]);
    }
  }
  return sum / double(cnt);
}

TEST(Reference, StochasticRoundingIsUnbiased) {
  const float v = 2.3f;
  struct c_t {
    quant_spec s;
    float lo, hi;
  };
  const c_t cases[] = {
      {{format::int8, 32, scale_kind::fp32, rounding::stochastic, true}, 2.0f, 3.0f},
      {{format::int4, 32, scale_kind::fp32, rounding::stochastic, true}, 2.0f, 3.0f},
      {{format::int4, 32, scale_kind::fp32, rounding::stochastic, false}, 2.0f, 3.0f},
      {{format::fp8_e4m3, 32, scale_kind::e8m0, rounding::stochastic, true}, 2.25f, 2.5f},
      {{format::fp8_e5m2, 32, scale_kind::pow2, rounding::stochastic, true}, 2.0f, 2.5f},
      {{format::fp4_e2m1, 32, scale_kind::fp32, rounding::stochastic, true}, 2.0f, 3.0f},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.s);
    float lo, hi;
    const double mean = sr_mean(c.s, v, 400, &lo, &hi); // 12000 samples
    // Bernoulli std <= 0.5 * (hi - lo) / sqrt(12000) ~ 0.0046 (hi - lo); allow ~6.5 sigma
    const double tol = 0.03 * (c.hi - c.lo);
    EXPECT_NEAR(mean, double(v), tol);
    EXPECT_EQ(lo, c.lo);
    EXPECT_EQ(hi, c.hi);
    // nearest rounding of the same data is biased by more than tol: the test can fail
    quant_spec rn = c.s;
    rn.rounding = rounding::nearest_even;
    const double mean_rn = sr_mean(rn, v, 1, &lo, &hi);
    EXPECT_GT(std::fabs(mean_rn - double(v)), tol);
  }
}

TEST(Reference, StochasticDiffersAcrossSeedsAndIsReproducible) {
  quant_spec s{format::int4, 64, scale_kind::fp32, rounding::stochastic};
  const std::vector<float> x = make_data<float>(640, 64, 3);
  qtensor a(s, 1, 640), b(s, 1, 640), c(s, 1, 640);
  agoq::ref::quantize(x.data(), a.v, 5);
  agoq::ref::quantize(x.data(), b.v, 5);
  agoq::ref::quantize(x.data(), c.v, 6);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_NE(a.codes, c.codes);
}

TEST(Reference, AllZeroBlock) {
  for (const quant_spec& s : all_specs(rounding::nearest_even)) {
    SCOPED_TRACE(::testing::Message() << s);
    std::vector<float> x = make_data<float>(3 * s.block, s.block, 9);
    for (int j = 0; j < s.block; ++j)
      x[std::size_t(s.block + j)] = (j % 2) ? -0.0f : 0.0f;
    qtensor q(s, 1, 3 * s.block);
    agoq::ref::quantize(x.data(), q.v);
    if (s.scale == scale_kind::e8m0) {
      EXPECT_EQ(q.scales[1], 0);
    } else {
      EXPECT_EQ(q.scale(1), 0.0f);
    }
    for (int j = 0; j < s.block; ++j)
      ASSERT_EQ(q.code(1, j), 0);
    std::vector<float> y(x.size());
    agoq::ref::dequantize(q.v, y.data());
    for (int j = 0; j < s.block; ++j)
      ASSERT_EQ(y[std::size_t(s.block + j)], 0.0f);
  }
}

TEST(Reference, NanAndInfBlocks) {
  for (rounding rnd : {rounding::nearest_even, rounding::stochastic})
    for (const quant_spec& s : all_specs(rnd)) {
      SCOPED_TRACE(::testing::Message() << s);
      std::vector<float> x = make_data<float>(3 * s.block + 5, s.block, 4);
      x[5] = std::numeric_limits<float>::quiet_NaN();
      x[std::size_t(2 * s.block + 3)] = -std::numeric_limits<float>::infinity();
      x[std::size_t(3 * s.block + 1)] = std::numeric_limits<float>::infinity(); // tail block
      qtensor q(s, 1, 3 * s.block + 5);
      agoq::ref::quantize(x.data(), q.v, 1);
      std::vector<float> y(x.size());
      agoq::ref::dequantize(q.v, y.data());
      for (int b : {0, 2, 3}) {
        if (s.scale == scale_kind::e8m0) {
          EXPECT_EQ(q.scales[std::size_t(b)], 0xFF);
        }
        EXPECT_TRUE(std::isnan(q.scale(b)));
        if (!s.symmetric) {
          EXPECT_TRUE(std::isnan(q.zeros[std::size_t(b)]));
        }
        for (int j = 0; j < s.block; ++j)
          ASSERT_EQ(q.code(b, j), 0);
        for (int j = 0; j < s.block && b * s.block + j < int(x.size()); ++j)
          ASSERT_TRUE(std::isnan(y[std::size_t(b * s.block + j)]));
      }
      EXPECT_FALSE(std::isnan(q.scale(1)));
      for (int j = 0; j < s.block; ++j)
        ASSERT_TRUE(std::isfinite(y[std::size_t(s.block + j)]));
    }
}

TEST(Reference, TwoDimensionalStrideEqualsRowByRow) {
  const std::int64_t rows = 5, cols = 300, ld = 317;
  for (format f : {format::int8, format::int5, format::fp8_e5m2})
    for (bool sym : {true, false}) {
      if (!sym && !agoq::is_integer(f)) continue;
      quant_spec s{f, 64, scale_kind::fp32, rounding::nearest_even, sym};
      const std::vector<__nv_bfloat16> x = make_data<__nv_bfloat16>(rows * ld, 64, 8);
      qtensor q(s, rows, cols);
      agoq::ref::quantize(x.data(), agoq::leading_dim{ld}, q.v);
      const std::size_t rb = agoq::codes_bytes(s, 1, cols), rs = agoq::scales_bytes(s, 1, cols);
      for (std::int64_t r = 0; r < rows; ++r) {
        qtensor q1(s, 1, cols);
        agoq::ref::quantize(x.data() + r * ld, q1.v);
        ASSERT_EQ(0, std::memcmp(q1.codes.data(), q.codes.data() + r * rb, rb)) << r;
        ASSERT_EQ(0, std::memcmp(q1.scales.data(), q.scales.data() + r * rs, rs)) << r;
        if (!sym) {
          for (std::int64_t b = 0; b < agoq::blocks_per_row(s, cols); ++b) {
            ASSERT_EQ(q1.zeros[std::size_t(b)], q.zeros[std::size_t(r * 5 + b)]);
          }
        }
      }
      // strided output equals contiguous output
      std::vector<__nv_bfloat16> y(std::size_t(rows * ld), cvt<__nv_bfloat16>(-7.0f)),
          yc(std::size_t(rows * cols));
      agoq::ref::dequantize(q.v, y.data(), agoq::leading_dim{ld});
      agoq::ref::dequantize(q.v, yc.data());
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < ld; ++c)
          ASSERT_EQ(f32(y[std::size_t(r * ld + c)]),
                    c < cols ? f32(yc[std::size_t(r * cols + c)]) : -7.0f);
    }
  // stochastic: strided input equals the same data made contiguous (same element indices)
  quant_spec s{format::int4, 32, scale_kind::fp32, rounding::stochastic};
  const std::vector<float> x = make_data<float>(rows * ld, 32, 2);
  std::vector<float> xc(std::size_t(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      xc[std::size_t(r * cols + c)] = x[std::size_t(r * ld + c)];
  qtensor a(s, rows, cols), b(s, rows, cols);
  agoq::ref::quantize(x.data(), agoq::leading_dim{ld}, a.v, 77);
  agoq::ref::quantize(xc.data(), agoq::leading_dim{cols}, b.v, 77);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
}

void expect_throw_naming(const std::function<void()>& fn, const std::string& name) {
  try {
    fn();
    ADD_FAILURE() << "expected agoq::invalid_argument naming " << name;
  } catch (const agoq::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Reference, InvalidArgumentsThrow) {
  quant_spec s{format::int8, 32};
  qtensor q(s, 2, 40);
  std::vector<float> x(100), acc(100);
  auto v = q.v;
  expect_throw_naming([&] { agoq::ref::quantize(x.data(), agoq::leading_dim{39}, v); }, "ld");
  expect_throw_naming([&] { agoq::ref::quantize<float>(nullptr, v); }, "x");
  auto bad = v;
  bad.codes = nullptr;
  expect_throw_naming([&] { agoq::ref::quantize(x.data(), bad); }, "codes");
  bad = v;
  bad.scales = nullptr;
  expect_throw_naming([&] { agoq::ref::dequantize(bad, x.data()); }, "scales");
  bad = v;
  bad.rows = -1;
  expect_throw_naming([&] { agoq::ref::quantize(x.data(), bad); }, "rows");
  bad = v;
  bad.cols = -3;
  expect_throw_naming(
      [&] { agoq::ref::dequantize_accumulate(bad, acc.data(), agoq::leading_dim{0}); }, "cols");
  bad = v;
  bad.spec.block = 48;
  expect_throw_naming([&] { agoq::ref::quantize(x.data(), bad); }, "block");
  bad = v;
  bad.spec.format = format::fp8_e4m3;
  bad.spec.symmetric = false;
  expect_throw_naming([&] { agoq::ref::quantize(x.data(), bad); }, "symmetric");
  bad = v;
  bad.spec.symmetric = false; // zeros still null
  expect_throw_naming([&] { agoq::ref::accumulate_requantize(bad, x.data()); }, "zeros");
  expect_throw_naming([&] { agoq::ref::dequantize<float>(v, nullptr); }, "y");
  expect_throw_naming([&] { agoq::ref::dequantize_accumulate(v, nullptr, agoq::leading_dim{40}); },
                      "acc");
  // a zero count is a no-op, even with null pointers
  agoq::quantized_view empty;
  empty.spec = s;
  empty.rows = 3;
  empty.cols = 0;
  EXPECT_NO_THROW(agoq::ref::quantize<float>(nullptr, empty));
  EXPECT_NO_THROW(agoq::ref::dequantize<float>(empty, nullptr));
  EXPECT_NO_THROW(agoq::ref::accumulate_requantize<float>(empty, nullptr));
}

TEST(Reference, DequantizeAccumulateDefinition) {
  for (quant_spec s :
       {quant_spec{format::int4, 32}, quant_spec{format::fp8_e4m3, 64, scale_kind::e8m0},
        quant_spec{format::int6, 32, scale_kind::fp32, rounding::nearest_even, false}}) {
    const std::vector<float> x = make_data<float>(2 * 100, 32, 5);
    qtensor q(s, 2, 100);
    agoq::ref::quantize(x.data(), q.v);
    std::vector<float> d(200), acc(2 * 110), expect;
    agoq::ref::dequantize(q.v, d.data());
    for (std::size_t i = 0; i < acc.size(); ++i)
      acc[i] = 0.1f * float(i);
    expect = acc;
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 100; ++c)
        expect[std::size_t(r * 110 + c)] =
            std::fma(d[std::size_t(r * 100 + c)], -0.75f, expect[std::size_t(r * 110 + c)]);
    agoq::ref::dequantize_accumulate(q.v, acc.data(), agoq::leading_dim{110}, -0.75f);
    for (std::size_t i = 0; i < acc.size(); ++i)
      ASSERT_EQ(acc[i], expect[i]) << i;
  }
}

TEST(Reference, AccumulateRequantizeDefinition) {
  for (quant_spec s :
       {quant_spec{format::int8, 64}, quant_spec{format::fp8_e5m2, 32, scale_kind::pow2},
        quant_spec{format::int4, 32, scale_kind::fp32, rounding::stochastic, false},
        quant_spec{format::fp4_e2m1, 32, scale_kind::e8m0, rounding::stochastic}}) {
    SCOPED_TRACE(::testing::Message() << s);
    const std::int64_t rows = 3, cols = 150, ld = 160;
    const std::vector<float> x0 = make_data<float>(rows * cols, 32, 12);
    const std::vector<__half> add = make_data<__half>(rows * ld, 32, 13);
    qtensor buf(s, rows, cols), expect(s, rows, cols);
    agoq::ref::quantize(x0.data(), buf.v, 1);
    // definition: s = dequantize(buf) + float(x) (fp32 add), then quantize s
    std::vector<float> d(std::size_t(rows * cols));
    agoq::ref::dequantize(buf.v, d.data());
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        d[std::size_t(r * cols + c)] += __half2float(add[std::size_t(r * ld + c)]);
    agoq::ref::quantize(d.data(), expect.v, 99);
    agoq::ref::accumulate_requantize(buf.v, add.data(), agoq::leading_dim{ld}, 99);
    EXPECT_EQ(buf.codes, expect.codes);
    EXPECT_EQ(buf.scales, expect.scales);
    EXPECT_EQ(buf.zeros, expect.zeros);
  }
}

} // namespace

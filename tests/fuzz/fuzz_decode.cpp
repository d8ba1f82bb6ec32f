// SPDX-License-Identifier: Apache-2.0
// Fuzzes the host decoders on arbitrary stored data: codes, scales (fp32 bit patterns or E8M0
// bytes) and zero points chosen by the fuzzer, for every spec and element type, through
// agoq::ref::dequantize, dequantize_accumulate and accumulate_requantize.
//
// Invariants:
// - no read or write outside the exact-size buffers (ASan), no write to the gaps between the
//   rows of a strided output [guard];
// - a finite stored scale (and zero point) with a finite code decodes to a finite value,
//   saturating at the output type's largest [finite]; a NaN scale or zero point decodes to NaN
//   [nan];
// - the value is the format's: T(clamp(code value x scale (+ zero))) up to fp32/T rounding
//   [value];
// - dequantize_accumulate is fmaf(dequantize<float>, alpha, acc) and accumulate_requantize is
//   quantize<float>(dequantize<float>(buf) + x) (same seed), bit for bit [consistency].
#include "fuzz_common.hpp"

#include "agoq/format/codec.hpp"
#include "agoq/format/fp4.hpp"
#include "agoq/format/fp8.hpp"
#include "agoq/quant/reference.hpp"
#include "agoq/quant/view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace agoq_fuzz;
using agoq::quant_spec;

//! The value of code c (only its low bits) in the format of s, NaN/Inf for the FP formats' NaN
//! and Inf codes: asymmetric ints unsigned, symmetric ints two's complement.
double code_value(const quant_spec& s, std::uint8_t c) {
  const int bits = agoq::bits_of(s.format);
  switch (s.format) {
  case agoq::format::fp8_e4m3: return double(agoq::fp8_e4m3_decode(c));
  case agoq::format::fp8_e5m2: return double(agoq::fp8_e5m2_decode(c));
  case agoq::format::fp4_e2m1: return double(agoq::fp4_e2m1_decode(c));
  default: {
    const int v = c & ((1 << bits) - 1);
    if (!s.symmetric) return double(v);
    return double((v & (1 << (bits - 1))) ? v - (1 << bits) : v);
  }
  }
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

template <class T> void run(reader& in, const quant_spec& s, std::uint8_t shape_byte) {
  const std::int64_t rows = 1 + shape_byte % 3;
  const std::int64_t cols = in.u16() % 601;
  const std::int64_t ld = cols + (in.u8() & 7);
  const std::uint64_t seed = in.u64();
  float alpha = elem<float>::from_bits(in.u32());
  if (!std::isfinite(alpha)) alpha = 1.0f;
  const std::string spec = describe(s);

  // stored data: scales and zero points per block (a selector picks raw bits or a plain value
  // 2^e x (1 + m/256), e in [-160, 135]), then all code bytes raw
  const std::int64_t nscales = agoq::scales_count(s, rows, cols);
  bytes scales(agoq::scales_bytes(s, rows, cols)), zeros(agoq::zeros_bytes(s, rows, cols));
  bytes codes(agoq::codes_bytes(s, rows, cols));
  auto some_float = [&]() -> float {
    const std::uint8_t sel = in.u8();
    if (sel < 96) return elem<float>::from_bits(in.u32());
    const double m = 1.0 + in.u8() / 256.0;
    const int e = int(in.u16() % 296) - 160;
    return float((sel & 1 ? -1.0 : 1.0) * std::ldexp(m, e));
  };
  for (std::int64_t b = 0; b < nscales; ++b) {
    if (s.scale == agoq::scale_kind::e8m0) {
      scales.data()[b] = in.u8();
    } else {
      const float v = some_float();
      std::memcpy(scales.data() + 4 * b, &v, 4);
    }
    if (!s.symmetric) {
      const float z = some_float();
      std::memcpy(zeros.data() + 4 * b, &z, 4);
    }
  }
  for (std::size_t i = 0; i < codes.n; ++i) codes.data()[i] = in.u8();
  const agoq::const_quantized_view view(codes.data(), scales.data(),
                                        s.symmetric ? nullptr
                                                    : reinterpret_cast<const float*>(zeros.data()),
                                        rows, cols, s);

  // dequantize<T> into a strided output whose gaps must survive
  const std::size_t ysize = rows == 0 ? 0 : std::size_t((rows - 1) * ld + cols);
  array<T> y(ysize);
  const auto sentinel = typename elem<T>::bits_t(0x7E57C0DEu);
  for (std::size_t i = 0; i < ysize; ++i) y[i] = elem<T>::from_bits(sentinel);
  agoq::ref::dequantize(view, y.data(), agoq::leading_dim{ld});
  for (std::int64_t r = 0; r + 1 < rows; ++r)
    for (std::int64_t c = cols; c < ld; ++c)
      if (elem<T>::to_bits(y[std::size_t(r * ld + c)]) != sentinel)
        fuzz_fail("guard", "dequantize<%s> %s wrote the gap element (row %lld, col %lld), "
                  "cols %lld, ld %lld", elem<T>::name, spec.c_str(), (long long)r, (long long)c,
                  (long long)cols, (long long)ld);

  const std::int64_t nb = agoq::blocks_per_row(s, cols);
  const int bits = agoq::bits_of(s.format);
  const double tmax = elem<T>::max_finite();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t bi = r * nb + c / s.block;
      const double scale = double(agoq::load_scale(scales.data(), bi, s.scale));
      float zf = 0.0f;
      if (!s.symmetric) std::memcpy(&zf, zeros.data() + 4 * bi, 4);
      const double zero = double(zf);
      const std::int64_t j = c % s.block; // element of the block: group j / 8, slot j % 8
      std::uint8_t q[8];
      agoq::unpack8(bits, codes.data() + bi * agoq::block_code_bytes(s) + (j / 8) * bits, q);
      const double cv = code_value(s, q[j % 8]);
      const double got = to_double(y[std::size_t(r * ld + c)]);
      if (std::isnan(scale) || std::isnan(zero)) {
        if (!std::isnan(got))
          fuzz_fail("nan", "dequantize<%s> %s: element (%lld, %lld) of a block with scale %a, "
                    "zero %a decodes to %a, not NaN", elem<T>::name, spec.c_str(), (long long)r,
                    (long long)c, scale, zero, got);
        continue;
      }
      if (!std::isfinite(scale) || !std::isfinite(cv) || !std::isfinite(zero))
        continue; // Inf in: no promise
      if (!std::isfinite(got)) {
        fuzz_fail("finite", "dequantize<%s> %s: element (%lld, %lld): code %u (value %a), "
                  "scale %a, zero %a decode to %a", elem<T>::name, spec.c_str(), (long long)r,
                  (long long)c, unsigned(q[j % 8]), cv, scale, zero, got);
        continue;
      }
      const double exact = cv * scale + zero; // cv * scale is exact in double
      const double want = std::max(-tmax, std::min(tmax, exact));
      const double fmax = double(std::numeric_limits<float>::max());
      const double tol = (std::fabs(exact) + std::fabs(cv * scale) + std::fabs(zero)) *
                             std::ldexp(1.0, -23) +
                         std::fabs(want) * elem<T>::rel_round() + elem<T>::abs_round() +
                         std::ldexp(1.0, -148);
      // saturation may happen in fp32 first (at FLT_MAX) and then in T
      const double want32 = std::max(-tmax, std::min(tmax, std::max(-fmax, std::min(fmax, exact))));
      if (!(std::fabs(got - want) <= tol || std::fabs(got - want32) <= tol))
        fuzz_fail("value", "dequantize<%s> %s: element (%lld, %lld): code %u (value %a) x scale "
                  "%a + zero %a = %a, clamped to the type %a, decoded %a", elem<T>::name,
                  spec.c_str(), (long long)r, (long long)c, unsigned(q[j % 8]), cv, scale, zero,
                  exact, want, got);
    }

  // float decode, dequantize_accumulate and accumulate_requantize agree with it
  array<float> yf(std::size_t(rows * cols));
  agoq::ref::dequantize(view, yf.data());
  array<float> acc(std::size_t(rows * cols)), acc0(std::size_t(rows * cols));
  for (std::size_t i = 0; i < acc.n; ++i) acc[i] = acc0[i] = float(int(i % 19) - 9) * 0.5f;
  agoq::ref::dequantize_accumulate(view, acc.data(), alpha);
  for (std::size_t i = 0; i < acc.n; ++i) {
    const float want = std::fma(yf[i], alpha, acc0[i]);
    if (!same_float(want, acc[i]))
      fuzz_fail("consistency", "dequantize_accumulate %s: element %zu: fmaf(%a, %a, %a) = %a, "
                "got %a", spec.c_str(), i, yf[i], alpha, acc0[i], want, acc[i]);
  }

  array<T> x(std::size_t(rows * cols));
  fill_values(in, value_mode::raw, x.data(), rows * cols, s.block);
  bytes codes2(codes.n), scales2(scales.n), zeros2(zeros.n);
  if (codes.n) std::memcpy(codes2.data(), codes.data(), codes.n);
  if (scales.n) std::memcpy(scales2.data(), scales.data(), scales.n);
  if (zeros.n) std::memcpy(zeros2.data(), zeros.data(), zeros.n);
  const agoq::quantized_view buf{codes2.data(), scales2.data(),
                                 s.symmetric ? nullptr : reinterpret_cast<float*>(zeros2.data()),
                                 rows, cols, s};
  agoq::ref::accumulate_requantize(buf, x.data(), seed);
  array<float> sums(std::size_t(rows * cols));
  for (std::size_t i = 0; i < sums.n; ++i) sums[i] = yf[i] + agoq::detail::to_float(x[i]);
  bytes codes3(codes.n, 0x11), scales3(scales.n, 0x22), zeros3(zeros.n, 0x33);
  const agoq::quantized_view want{codes3.data(), scales3.data(),
                                  s.symmetric ? nullptr : reinterpret_cast<float*>(zeros3.data()),
                                  rows, cols, s};
  agoq::ref::quantize(sums.data(), want, seed);
  if (!codes2.same(codes3) || !scales2.same(scales3) || !zeros2.same(zeros3))
    fuzz_fail("consistency", "accumulate_requantize<%s> %s on arbitrary stored data differs from "
              "quantize<float>(dequantize<float>(buf) + x)", elem<T>::name, spec.c_str());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t b0 = in.u8(), b1 = in.u8(), b2 = in.u8();
  const quant_spec s = spec_of(b0, b1);
  with_element(b2, [&](auto t) { run<decltype(t)>(in, s, std::uint8_t(b2 / 3)); });
  return 0;
}

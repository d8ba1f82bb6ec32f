// SPDX-License-Identifier: Apache-2.0
// Fuzzes the host quantizers (agoq::ref: quantize, dequantize, dequantize_accumulate,
// accumulate_requantize) over every format x block x scale kind x rounding x symmetry x element
// type (float, __half, __nv_bfloat16), on 1..3 rows of 0..~700 columns with a leading dimension
// >= cols. Input: a header picking the spec, shape, seed and how values are made (raw bit
// patterns, finite only, tiny/huge per-block exponents, sparse, near the type's maximum; see
// fuzz_common.hpp), then the values' bytes.
//
// Invariants (format/codec.hpp, int.hpp, fp8.hpp, fp4.hpp, scale.hpp; DESIGN.md "Numerics"):
// - every buffer has its exact size (ASan reports any overrun) and the gaps between rows of a
//   strided output (ld > cols) are never written [guard];
// - a block holding NaN or +-Inf decodes to NaN everywhere [nan]; an all-zero block decodes to
//   zeros [zero]; codes past cols in a tail block are 0 [tail];
// - a finite block decodes to finite values (saturating at the output type's largest) [finite]
//   within the format's error bound of the input (see error_bound below) [bound, or tiny when
//   the block's ideal scale is below 2^-126];
// - quantizing twice with the same seed gives the same bytes, and nearest-even ignores the seed
//   [determinism];
// - dequantize_accumulate is fmaf(dequantize<float>, alpha, acc), accumulate_requantize is
//   quantize<float>(dequantize<float>(buf) + x) with the same seed, bit for bit [consistency];
//   the requantized buffer then satisfies the same block invariants;
// - (1 input in 16) validate refuses exactly the specs outside the enums and block sizes, and
//   every ref function throws agoq::invalid_argument for a bad spec, a shape whose byte counts
//   overflow std::int64_t, ld < cols or an ld that overflows (rows - 1) x ld + cols [invalid].
#include "fuzz_common.hpp"

#include "agoq/format/codec.hpp"
#include "agoq/quant/reference.hpp"
#include "agoq/quant/view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <climits>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using namespace agoq_fuzz;
using agoq::quant_spec;

//! The fp32-domain error bound of decode(encode(x)) for element |x| = ax of a block under `s`:
//! ints: half a step (a whole step for stochastic rounding); FP formats: half an ulp of the
//! format relative to |x| plus half its smallest subnormal times the step (whole ulps for
//! stochastic). `step` is the block's ideal scale: amax / qmax (fp32 scales), rounded up to a
//! power of two (pow2; e8m0: at least 2^-127; both at most 2^127), (max - min) / (2^N - 1)
//! (asymmetric). Slack: 2^-20 relative (inverse, product and fp32 rounding), qmax * 2^-148
//! (an fp32 scale below 2^-126 is itself rounded to a multiple of 2^-149, then multiplied by a
//! code up to qmax), and what a clamped pow2 scale cannot reach (int2 blocks above 2^127).
double error_bound(const quant_spec& s, const format_facts& f, double step, double ax,
                   double slack_abs) {
  const bool sr = s.rounding == agoq::rounding::stochastic;
  double b;
  if (f.integer)
    b = (sr ? 1.0 : 0.5) * step;
  else
    b = ax * std::ldexp(1.0, -(f.man_bits + (sr ? 0 : 1))) +
        step * std::ldexp(1.0, f.emin - f.man_bits - (sr ? 0 : 1));
  b = b * (1.0 + std::ldexp(1.0, -20)) + ax * std::ldexp(1.0, -20) +
      f.qmax * std::ldexp(1.0, -148) + slack_abs;
  if (s.symmetric) b += std::max(0.0, ax - f.qmax * step); // a pow2 scale clamped at 2^127
  return b;
}

//! Checks the block invariants of one decoded tensor: x (input values as fp32-exact doubles,
//! row stride ldx) against y (decoded, row stride ldy) for output type T.
template <class T>
void check_blocks(const char* what, const quant_spec& s, std::int64_t rows, std::int64_t cols,
                  const double* x, std::int64_t ldx, const double* y, std::int64_t ldy) {
  const format_facts f = facts_of(s);
  const double rel_t = elem<T>::rel_round(), abs_t = elem<T>::abs_round();
  const std::string spec = describe(s);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c0 = 0; c0 < cols; c0 += s.block) {
      const std::int64_t n = std::min<std::int64_t>(s.block, cols - c0);
      const double* xb = x + r * ldx + c0;
      const double* yb = y + r * ldy + c0;
      bool nonfinite = false, all_zero = true;
      double amax = 0, mn = xb[0], mx = xb[0];
      for (std::int64_t j = 0; j < n; ++j) {
        if (!std::isfinite(xb[j])) nonfinite = true;
        if (xb[j] != 0) all_zero = false;
        amax = std::max(amax, std::fabs(xb[j]));
        mn = std::min(mn, xb[j]);
        mx = std::max(mx, xb[j]);
      }
      if (nonfinite) {
        for (std::int64_t j = 0; j < n; ++j)
          if (!std::isnan(yb[j]))
            fuzz_fail("nan", "%s %s %s: block (row %lld, col %lld) holds NaN/Inf but element %lld "
                      "decodes to %a", what, spec.c_str(), elem<T>::name, (long long)r,
                      (long long)c0, (long long)(c0 + j), yb[j]);
        continue;
      }
      if (all_zero) {
        for (std::int64_t j = 0; j < n; ++j)
          if (yb[j] != 0)
            fuzz_fail("zero", "%s %s %s: all-zero block (row %lld, col %lld) decodes element "
                      "%lld to %a", what, spec.c_str(), elem<T>::name, (long long)r,
                      (long long)c0, (long long)(c0 + j), yb[j]);
        continue;
      }
      double step;
      if (!s.symmetric) {
        step = (mx - mn) / f.qmax;
      } else {
        step = amax / f.qmax;
        if (s.scale != agoq::scale_kind::fp32) {
          step = std::min(ceil_pow2(step), std::ldexp(1.0, 127));
          if (s.scale == agoq::scale_kind::e8m0) step = std::max(step, std::ldexp(1.0, -127));
        }
      }
      const bool tiny = step < std::ldexp(1.0, -126);
      const double slack = s.symmetric ? 0.0 : (std::fabs(mn) + (mx - mn)) * std::ldexp(1.0, -20);
      for (std::int64_t j = 0; j < n; ++j) {
        const double ax = std::fabs(xb[j]);
        if (!std::isfinite(yb[j])) {
          fuzz_fail("finite", "%s %s %s: finite block (row %lld, col %lld, amax %a) decodes "
                    "element %lld = %a to %a", what, spec.c_str(), elem<T>::name, (long long)r,
                    (long long)c0, amax, (long long)(c0 + j), xb[j], yb[j]);
          continue;
        }
        const double qb = error_bound(s, f, step, ax, slack);
        const double bound = qb + rel_t * (ax + qb) + abs_t;
        const double err = std::fabs(xb[j] - yb[j]);
        if (!(err <= bound))
          fuzz_fail(tiny ? "tiny" : "bound",
                    "%s %s %s: block (row %lld, col %lld, amax %a, min %a, max %a, ideal step "
                    "%a): element %lld = %a decodes to %a, error %a > bound %a",
                    what, spec.c_str(), elem<T>::name, (long long)r, (long long)c0, amax, mn, mx,
                    step, (long long)(c0 + j), xb[j], yb[j], err, bound);
      }
    }
}

//! Codes of a tail block past cols must be 0 (reference.hpp).
void check_tail(const char* what, const quant_spec& s, std::int64_t rows, std::int64_t cols,
                const std::uint8_t* codes) {
  const std::int64_t nb = agoq::blocks_per_row(s, cols);
  const std::int64_t tail = cols % s.block;
  if (tail == 0 || nb == 0) return;
  const int bits = agoq::bits_of(s.format);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint8_t* blk = codes + (r * nb + nb - 1) * agoq::block_code_bytes(s);
    std::uint8_t q[8];
    for (int g = int(tail / 8); g < s.block / 8; ++g) {
      agoq::unpack8(bits, blk + g * bits, q);
      for (int i = 0; i < 8; ++i)
        if (g * 8 + i >= tail && q[i] != 0)
          fuzz_fail("tail", "%s %s: row %lld: code %d of the tail block (past cols = %lld) is "
                    "%u, not 0", what, describe(s).c_str(), (long long)r, g * 8 + i,
                    (long long)cols, unsigned(q[i]));
    }
  }
}

struct quantized {
  bytes codes, scales, zeros;
  quantized(const quant_spec& s, std::int64_t rows, std::int64_t cols, std::uint8_t fill)
      : codes(agoq::codes_bytes(s, rows, cols), fill), scales(agoq::scales_bytes(s, rows, cols), fill),
        zeros(agoq::zeros_bytes(s, rows, cols), fill) {}
  agoq::quantized_view view(const quant_spec& s, std::int64_t rows, std::int64_t cols) {
    return agoq::quantized_view{codes.data(), scales.data(),
                                s.symmetric ? nullptr : reinterpret_cast<float*>(zeros.data()),
                                rows, cols, s};
  }
  bool same(const quantized& o) const {
    return codes.same(o.codes) && scales.same(o.scales) && zeros.same(o.zeros);
  }
};

//! Exact size of a strided rows x cols buffer with leading dimension ld.
std::size_t strided_size(std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return rows == 0 ? 0 : std::size_t((rows - 1) * ld + cols);
}

//! Fills the gaps of a strided buffer with `sentinel` bits / checks they still hold them.
template <class T>
void fill_gaps(T* y, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::uint32_t sentinel) {
  for (std::int64_t r = 0; r + 1 < rows; ++r)
    for (std::int64_t c = cols; c < ld; ++c)
      std::memcpy(&y[r * ld + c], &sentinel, sizeof(T));
}
template <class T>
void check_gaps(const char* what, const T* y, std::int64_t rows, std::int64_t cols,
                std::int64_t ld, std::uint32_t sentinel) {
  for (std::int64_t r = 0; r + 1 < rows; ++r)
    for (std::int64_t c = cols; c < ld; ++c) {
      std::uint32_t b = 0;
      std::memcpy(&b, &y[r * ld + c], sizeof(T));
      std::uint32_t want = 0;
      std::memcpy(&want, &sentinel, sizeof(T));
      if (b != want)
        fuzz_fail("guard", "%s wrote element (row %lld, col %lld) of the gap between rows "
                  "(cols %lld, ld %lld)", what, (long long)r, (long long)c, (long long)cols,
                  (long long)ld);
    }
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

template <class T> void run(reader& in, const quant_spec& s, std::uint8_t shape_byte) {
  const std::int64_t rows = 1 + shape_byte % 3;
  const std::int64_t cols = in.u16() % 701;
  const std::uint8_t pads = in.u8();
  const std::int64_t ldx = cols + (pads & 7), ldy = cols + ((pads >> 3) & 7);
  const std::uint64_t seed = in.u64();
  const float alpha_choices[] = {1.0f, 0.5f, -2.0f, 0.0f, 3.0e-3f, -1.0e30f};
  const std::uint8_t alpha_byte = in.u8();
  float alpha = alpha_choices[alpha_byte % 6];
  if (alpha_byte >= 0xF0) { // a raw finite alpha
    alpha = elem<float>::from_bits(in.u32());
    if (!std::isfinite(alpha)) alpha = 1.0f;
  }
  const auto mode = value_mode(in.u8() % int(value_mode::count_));

  // the input, exact size, values per block row by row
  array<T> x(strided_size(rows, cols, ldx));
  for (std::int64_t r = 0; r < rows; ++r) {
    fill_values(in, mode, x.data() + r * ldx, cols, s.block);
    for (std::int64_t c = cols; c < ldx && r + 1 < rows; ++c)
      x[std::size_t(r * ldx + c)] = agoq::detail::from_float<T>(1.0e4f); // never read
  }
  std::vector<double> xd(std::size_t(rows * ldx), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      xd[std::size_t(r * ldx + c)] = to_double(x[std::size_t(r * ldx + c)]);
  const std::string spec = describe(s);

  // quantize: twice with the same seed (and once with another seed for nearest-even)
  quantized q(s, rows, cols, 0xA5), q2(s, rows, cols, 0x5A);
  agoq::ref::quantize(x.data(), agoq::leading_dim{ldx}, q.view(s, rows, cols), seed);
  agoq::ref::quantize(x.data(), agoq::leading_dim{ldx}, q2.view(s, rows, cols), seed);
  if (!q.same(q2))
    fuzz_fail("determinism", "%s %s: two quantizations with seed %llu differ", spec.c_str(),
              elem<T>::name, (unsigned long long)seed);
  if (s.rounding == agoq::rounding::nearest_even) {
    quantized q3(s, rows, cols, 0x00);
    agoq::ref::quantize(x.data(), agoq::leading_dim{ldx}, q3.view(s, rows, cols), seed + 1);
    if (!q.same(q3))
      fuzz_fail("determinism", "%s %s: nearest-even codes depend on the seed", spec.c_str(),
                elem<T>::name);
  }
  check_tail("quantize", s, rows, cols, q.codes.data());

  // dequantize to T (strided, gaps guarded) and to float
  const std::uint32_t sentinel = 0x7FB1C0DEu; // bits of the gap elements (a NaN as float)
  array<T> y(strided_size(rows, cols, ldy));
  fill_gaps(y.data(), rows, cols, ldy, sentinel);
  agoq::ref::dequantize(agoq::const_quantized_view(q.view(s, rows, cols)), y.data(),
                        agoq::leading_dim{ldy});
  check_gaps("dequantize", y.data(), rows, cols, ldy, sentinel);
  std::vector<double> yd(std::size_t(rows * ldy), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      yd[std::size_t(r * ldy + c)] = to_double(y[std::size_t(r * ldy + c)]);
  check_blocks<T>("quantize+dequantize", s, rows, cols, xd.data(), ldx, yd.data(), ldy);

  array<float> yf(strided_size(rows, cols, cols));
  agoq::ref::dequantize(agoq::const_quantized_view(q.view(s, rows, cols)), yf.data());

  // dequantize_accumulate: acc = fmaf(decoded, alpha, acc), gaps untouched
  array<float> acc(strided_size(rows, cols, ldy)), acc0(strided_size(rows, cols, ldy));
  fill_gaps(acc.data(), rows, cols, ldy, sentinel);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      acc[std::size_t(r * ldy + c)] = float(int((r * 131 + c * 7 + seed) % 61) - 30) * 0.25f;
  std::memcpy(acc0.data(), acc.data(), acc.n * sizeof(float));
  agoq::ref::dequantize_accumulate(agoq::const_quantized_view(q.view(s, rows, cols)), acc.data(),
                                   agoq::leading_dim{ldy}, alpha);
  check_gaps("dequantize_accumulate", acc.data(), rows, cols, ldy, sentinel);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const float d = yf[std::size_t(r * cols + c)], a0 = acc0[std::size_t(r * ldy + c)];
      const float want = std::fma(d, alpha, a0), got = acc[std::size_t(r * ldy + c)];
      if (!same_float(want, got))
        fuzz_fail("consistency", "dequantize_accumulate %s: element (%lld, %lld): fmaf(%a, %a, %a) "
                  "= %a, got %a", spec.c_str(), (long long)r, (long long)c, d, alpha, a0, want,
                  got);
    }

  // accumulate_requantize: buf := Q(D(buf) + x), against quantize<float> of the same sums
  quantized acc_q(s, rows, cols, 0);
  std::memcpy(acc_q.codes.data(), q.codes.data(), q.codes.n);
  std::memcpy(acc_q.scales.data(), q.scales.data(), q.scales.n);
  if (q.zeros.n) std::memcpy(acc_q.zeros.data(), q.zeros.data(), q.zeros.n);
  agoq::ref::accumulate_requantize(acc_q.view(s, rows, cols), x.data(), agoq::leading_dim{ldx},
                                   seed);
  array<float> sums(strided_size(rows, cols, cols));
  std::vector<double> sd(std::size_t(rows * cols), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::size_t i = std::size_t(r * cols + c);
      sums[i] = yf[i] + agoq::detail::to_float(x[std::size_t(r * ldx + c)]);
      sd[i] = double(sums[i]);
    }
  quantized want(s, rows, cols, 0x33);
  agoq::ref::quantize(sums.data(), want.view(s, rows, cols), seed);
  if (!want.same(acc_q))
    fuzz_fail("consistency", "accumulate_requantize %s %s: differs from quantize<float>("
              "dequantize<float>(buf) + x) with the same seed", spec.c_str(), elem<T>::name);
  check_tail("accumulate_requantize", s, rows, cols, acc_q.codes.data());
  array<float> y2(strided_size(rows, cols, cols));
  agoq::ref::dequantize(agoq::const_quantized_view(acc_q.view(s, rows, cols)), y2.data());
  std::vector<double> y2d(std::size_t(rows * cols), 0.0);
  for (std::size_t i = 0; i < y2.n; ++i) y2d[i] = double(y2[i]);
  check_blocks<float>("accumulate_requantize+dequantize", s, rows, cols, sd.data(), cols,
                      y2d.data(), cols);
}

//! An int64 for a shape argument: small, negative, around 2^31/2^32/2^62 or raw.
std::int64_t pick_extent(reader& in) {
  const std::uint8_t sel = in.u8();
  switch (sel % 6) {
  case 0: return sel / 6 % 5;                                       // 0..4
  case 1: return -std::int64_t(1 + sel / 6 % 3);                    // -1..-3
  case 2: return (std::int64_t(1) << (31 + sel / 6 % 3)) - 1 + sel / 128; // around 2^31..2^33
  case 3: return (std::int64_t(1) << (40 + sel / 6 % 23)) + sel / 128;    // 2^40..2^62
  case 4: return INT64_MAX - sel / 6 % 300;
  default: return std::int64_t(in.u64());
  }
}

//! Invalid arguments: a spec outside the enums / block sizes, a shape whose byte counts overflow
//! std::int64_t, ld < cols or (rows - 1) x ld + cols past INT64_MAX (reference.hpp's rules).
//! validate must refuse exactly the bad specs, and every ref function must throw
//! agoq::invalid_argument for them before touching the (tiny) buffers [invalid].
void run_invalid(reader& in) {
  quant_spec s;
  s.format = agoq::format(in.u8() % 12);
  const std::uint8_t bsel = in.u8();
  s.block = bsel < 192 ? 32 << (bsel & 3) : int(std::int16_t(in.u16()));
  s.scale = agoq::scale_kind(in.u8() % 5);
  s.rounding = agoq::rounding(in.u8() % 4);
  s.symmetric = in.u8() & 1;
  const std::int64_t rows = pick_extent(in), cols = pick_extent(in);
  const bool near_cols = (in.u8() & 1) && cols > INT64_MIN + 8 && cols < INT64_MAX - 8;
  const std::int64_t ld = near_cols ? cols + (in.u8() % 9) - 4 : pick_extent(in);

  const bool fmt_ok = int(s.format) < 10, block_ok = agoq::is_supported_block(s.block);
  const bool spec_ok = fmt_ok && block_ok && int(s.scale) < 3 && int(s.rounding) < 2 &&
                       (s.symmetric || (agoq::is_integer(s.format) && s.scale == agoq::scale_kind::fp32));
  const char* why = agoq::validate(s);
  if ((why == nullptr) != spec_ok)
    fuzz_fail("invalid", "validate(format %d, block %d, scale %d, rounding %d, symmetric %d) %s",
              int(s.format), s.block, int(s.scale), int(s.rounding), int(s.symmetric),
              why ? why : "accepts it");
  bool shape_ok = rows >= 0 && cols >= 0 && ld >= cols;
  if (shape_ok && spec_ok) {
    const __int128 nb = cols > 0 ? (cols - 1) / s.block + 1 : 0;
    if (__int128(rows) * nb * s.block > INT64_MAX) shape_ok = false;
    if (rows > 1 && __int128(rows - 1) * ld + cols > INT64_MAX) shape_ok = false;
  }
  if (spec_ok && shape_ok) return; // valid (the main path covers small valid shapes)

  std::uint8_t codes[64] = {}, scales[64] = {};
  float zeros[16] = {}, xf[16] = {}, acc[16] = {};
  const agoq::quantized_view v{codes, scales, zeros, rows, cols, s};
  const std::string what = "format " + std::to_string(int(s.format)) + ", block " +
                           std::to_string(s.block) + ", scale " + std::to_string(int(s.scale)) +
                           ", rounding " + std::to_string(int(s.rounding)) + ", symmetric " +
                           std::to_string(int(s.symmetric)) + ", rows " + std::to_string(rows) +
                           ", cols " + std::to_string(cols) + ", ld " + std::to_string(ld);
  auto must_refuse = [&](const char* fn, auto&& call) {
    try {
      call();
    } catch (const agoq::invalid_argument&) {
      return;
    } catch (const std::exception& e) {
      fuzz_fail("invalid", "agoq::ref::%s(%s) threw %s instead of agoq::invalid_argument", fn,
                what.c_str(), e.what());
      return;
    }
    fuzz_fail("invalid", "agoq::ref::%s accepted %s", fn, what.c_str());
  };
  must_refuse("quantize", [&] { agoq::ref::quantize(xf, agoq::leading_dim{ld}, v, 1); });
  must_refuse("dequantize", [&] {
    agoq::ref::dequantize(agoq::const_quantized_view(v), xf, agoq::leading_dim{ld});
  });
  must_refuse("dequantize_accumulate", [&] {
    agoq::ref::dequantize_accumulate(agoq::const_quantized_view(v), acc, agoq::leading_dim{ld});
  });
  must_refuse("accumulate_requantize",
              [&] { agoq::ref::accumulate_requantize(v, xf, agoq::leading_dim{ld}, 1); });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t b0 = in.u8(), b1 = in.u8(), b2 = in.u8();
  if (b2 >= 0xF0) { // 1 input in 16: invalid arguments
    run_invalid(in);
    return 0;
  }
  const quant_spec s = spec_of(b0, b1);
  with_element(b2, [&](auto t) { run<decltype(t)>(in, s, std::uint8_t(b2 / 3)); });
  return 0;
}

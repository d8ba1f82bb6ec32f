// SPDX-License-Identifier: Apache-2.0
//! @file format/scale.hpp
//! fp32 primitives shared by every codec (bit casts, round-to-nearest-even, floor, fused
//! multiply-add, correctly rounded multiply/divide that the compiler may not contract), the
//! NaN-propagating max used for block amax, and the block-scale rules:
//!
//! - scale_kind::fp32: s = amax / qmax (IEEE fp32 division, round to nearest even).
//! - scale_kind::pow2: s = amax / qmax as above, then rounded UP to a power of two by exact bit
//!   manipulation (a power of two, fp32 subnormals included, stays as is; 0 stays 0). The result
//!   saturates at 2^127 (the largest E8M0 value) instead of overflowing to +Inf.
//! - scale_kind::e8m0: the pow2 value, raised to at least 2^-127 (E8M0's smallest value), stored as
//!   the OCP MX E8M0 byte: biased exponent, bias 127, 0xFF = NaN. E8M0 has no zero: a scale of 0
//!   (all-zero block) is stored as code 0 (2^-127) and the block's codes are all 0, so it still
//!   decodes to zeros. Decoding E8M0 is exact (code 0 is the fp32 subnormal 2^-127).
//!
//! Device/host split: inside AGOQ_HOST_DEVICE bodies, device code uses CUDA intrinsics (__fmul_rn,
//! __fdiv_rn, rintf, floorf, fmaf, __float_as_uint) and host code uses std::memcpy / <cmath>. The
//! _rn helpers exist so that nvcc never fuses a multiply and a following add into an FMA (which
//! would change results). On the host, build without -ffp-contract=fast (ISO -std=c++17 already
//! turns contraction off in GCC).
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/format.hpp"

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cmath>
#include <cstring>
#endif

namespace agoq {
namespace detail {

//! The IEEE-754 bit pattern of `x`.
AGOQ_HOST_DEVICE std::uint32_t float_to_bits(float x) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

//! The float whose IEEE-754 bit pattern is `u`.
AGOQ_HOST_DEVICE float bits_to_float(std::uint32_t u) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

//! The default quiet NaN (0x7FC00000) used for the scale of a block that holds NaN or Inf.
AGOQ_HOST_DEVICE float quiet_nan() noexcept { return bits_to_float(0x7FC00000u); }

AGOQ_HOST_DEVICE constexpr bool is_nan(float x) noexcept { return !(x == x); }

//! True for NaN and +-Inf.
AGOQ_HOST_DEVICE bool is_nonfinite(float x) noexcept {
  return (float_to_bits(x) & 0x7F800000u) == 0x7F800000u;
}

//! |x| by clearing the sign bit (exact, NaN stays NaN).
AGOQ_HOST_DEVICE float abs_f(float x) noexcept {
  return bits_to_float(float_to_bits(x) & 0x7FFFFFFFu);
}

//! Round to nearest integer, ties to even (fp32 in, fp32 out).
AGOQ_HOST_DEVICE float rint_f(float x) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return rintf(x);
#else
  return std::nearbyint(x); // default rounding mode: to nearest, ties to even
#endif
}

AGOQ_HOST_DEVICE float floor_f(float x) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return floorf(x);
#else
  return std::floor(x);
#endif
}

//! a * b + c with one rounding.
AGOQ_HOST_DEVICE float fma_f(float a, float b, float c) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

//! a * b, round to nearest even, never contracted into an FMA.
AGOQ_HOST_DEVICE float mul_rn(float a, float b) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

//! a + b, round to nearest even, never contracted into an FMA.
AGOQ_HOST_DEVICE float add_rn(float a, float b) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

//! a - b, round to nearest even, never contracted into an FMA.
AGOQ_HOST_DEVICE float sub_rn(float a, float b) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

//! a / b, IEEE division (correctly rounded, also under --use_fast_math).
AGOQ_HOST_DEVICE float div_rn(float a, float b) noexcept {
#if AGOQ_IS_DEVICE_CODE()
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

//! max(a, b) that propagates NaN (NaN if either is NaN; fmaxf would drop it) and orders -0
//! below +0 (IEEE 754-2019 maximum), so that a block's maximum does not depend on the order in
//! which its elements are reduced (the GPU reduces in a tree).
AGOQ_HOST_DEVICE float nan_max(float a, float b) noexcept {
  if (is_nan(a) || is_nan(b)) return quiet_nan();
  if (a == b) return (float_to_bits(a) >> 31) != 0 ? b : a;
  return a > b ? a : b;
}

//! min(a, b) that propagates NaN and orders -0 below +0 (IEEE 754-2019 minimum).
AGOQ_HOST_DEVICE float nan_min(float a, float b) noexcept {
  if (is_nan(a) || is_nan(b)) return quiet_nan();
  if (a == b) return (float_to_bits(a) >> 31) != 0 ? a : b;
  return a < b ? a : b;
}

//! Reciprocal: 0 when s == 0, else 1.0f / s (IEEE fp32 division). A NaN scale gives NaN; a
//! scale below 2^-128 gives +Inf, which is why encoders take block_params' pre-scaled inverse
//! (format/codec.hpp) instead of this for such scales.
AGOQ_HOST_DEVICE float inverse_scale(float s) noexcept {
  return s == 0.0f ? 0.0f : div_rn(1.0f, s);
}

//! The largest finite fp32 value, 0x7F7FFFFF.
AGOQ_HOST_DEVICE float max_finite_f() noexcept { return bits_to_float(0x7F7FFFFFu); }

//! x with +-Inf replaced by +-FLT_MAX; NaN and finite values unchanged. Every decoded value
//! goes through it, so a block of finite values never decodes to Inf (format/codec.hpp).
AGOQ_HOST_DEVICE float saturate_finite(float x) noexcept {
#if AGOQ_IS_DEVICE_CODE() && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r; // min/max.NaN keep a NaN (fminf/fmaxf would replace it by the other operand)
  asm("min.NaN.f32 %0, %1, 0f7F7FFFFF;\n\tmax.NaN.f32 %0, %0, 0fFF7FFFFF;" : "=f"(r) : "f"(x));
  return r;
#else
  const float m = max_finite_f();
  return x > m ? m : x < -m ? -m : x; // NaN compares false both times and passes through
#endif
}

} // namespace detail

//! The smallest power of two >= s, for s >= 0 (exact bit manipulation on fp32).
//! 0 -> 0; a power of two (normal or subnormal) -> itself; anything above 2^127 -> 2^127
//! (saturation); +Inf -> 2^127; NaN -> NaN. Negative inputs are treated as |s|.
AGOQ_HOST_DEVICE float round_up_pow2(float s) noexcept {
  std::uint32_t u = detail::float_to_bits(s) & 0x7FFFFFFFu;
  if (u > 0x7F800000u) return detail::quiet_nan();
  if (u == 0) return 0.0f;
  const std::uint32_t e = u >> 23, m = u & 0x7FFFFFu;
  if (e == 0) { // subnormal: next power of two of the integer mantissa; 2^23 is the min normal
    std::uint32_t p = 1;
    while (p < m)
      p <<= 1;
    return detail::bits_to_float(p);
  }
  std::uint32_t r = (m == 0) ? (e << 23) : ((e + 1) << 23);
  if (r > 0x7F000000u) r = 0x7F000000u; // 2^127
  return detail::bits_to_float(r);
}

//! 2^-127, the smallest E8M0 value (an fp32 subnormal, bits 0x00400000).
AGOQ_HOST_DEVICE float e8m0_min_value() noexcept { return detail::bits_to_float(0x00400000u); }

//! E8M0 byte of a scale: NaN (or Inf) -> 0xFF; 0 and anything <= 2^-127 -> 0 (2^-127); otherwise
//! the biased exponent of round_up_pow2(s) (s > 2^127 saturates to 0xFE = 2^127).
AGOQ_HOST_DEVICE std::uint8_t encode_e8m0(float s) noexcept {
  if (detail::is_nonfinite(s)) return 0xFF;
  const float p = round_up_pow2(s);
  const std::uint32_t u = detail::float_to_bits(p);
  const std::uint32_t e = u >> 23; // 0 for 0 and every subnormal power of two (<= 2^-127)
  return static_cast<std::uint8_t>(e);
}

//! The value of an E8M0 byte: 0xFF -> NaN, 0 -> 2^-127, c -> 2^(c-127). Exact.
AGOQ_HOST_DEVICE float decode_e8m0(std::uint8_t c) noexcept {
  if (c == 0xFF) return detail::quiet_nan();
  if (c == 0) return e8m0_min_value();
  return detail::bits_to_float(std::uint32_t(c) << 23);
}

//! The block scale for a symmetric block whose NaN-propagating absmax is `amax`, under `kind`
//! (the value that decodes use; see the rules at the top of this file). NaN/Inf amax -> NaN.
//! For e8m0 a non-zero result is at least 2^-127 (so it equals decode_e8m0(encode_e8m0(s))); an
//! amax of 0 gives 0 for every kind.
AGOQ_HOST_DEVICE float block_scale(float amax, float qmax, scale_kind kind) noexcept {
  if (detail::is_nonfinite(amax)) return detail::quiet_nan();
  if (amax == 0.0f) return 0.0f;
  const float s = detail::div_rn(amax, qmax);
  if (kind == scale_kind::fp32) return s;
  const float p = round_up_pow2(s);
  if (kind == scale_kind::pow2) return p;
  const float lo = e8m0_min_value();
  return p < lo ? lo : p; // e8m0
}

//! Store scale `s` (from block_scale) as element `i` of a scales array of kind `kind`.
AGOQ_HOST_DEVICE void store_scale(void* scales, std::int64_t i, float s, scale_kind kind) noexcept {
  if (kind == scale_kind::e8m0)
    static_cast<std::uint8_t*>(scales)[i] = encode_e8m0(s);
  else
    static_cast<float*>(scales)[i] = s;
}

//! Load element `i` of a scales array of kind `kind` as fp32 (E8M0 decoded exactly).
AGOQ_HOST_DEVICE float load_scale(const void* scales, std::int64_t i, scale_kind kind) noexcept {
  if (kind == scale_kind::e8m0) return decode_e8m0(static_cast<const std::uint8_t*>(scales)[i]);
  return static_cast<const float*>(scales)[i];
}

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file format/fp8.hpp
//! FP8 E4M3 and E5M2 codecs by bit manipulation (no cuda_fp8.h), plus the generic small-float
//! ("minifloat") encoder/decoder that fp4.hpp reuses.
//!
//! Encode (round to nearest even, saturating) equals cuda_fp8.h's
//! __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3 / __NV_E5M2) bit for bit:
//! - |x| >= max finite (448 / 57344), +-Inf included, -> sign | max finite (0x7E / 0x7B);
//! - NaN (any sign or payload) -> 0x7F for both kinds (the canonical, positive NaN);
//! - |x| <= half the smallest subnormal (2^-10 / 2^-17) -> sign | 0 (so -0 -> 0x80);
//! - otherwise RNE on the fp32 bits (subnormal targets included).
//! Decode equals __nv_cvt_fp8_to_halfraw followed by half -> float for all 256 codes: every
//! finite code is exact; E5M2 0x7C/0xFC are +-Inf; NaN codes (E4M3 S.1111.111, E5M2 S.11111.mm
//! with mm != 0) give the canonical NaN 0x7FFFFFFF (what __half2float gives for fp16 0x7FFF).
//!
//! Stochastic rounding of a small float (the rule for every FP format): for v with |v| >= max
//! finite -> sign | max; NaN -> the NaN code as above; otherwise lo = |v| rounded toward zero to
//! the format, hi = the next larger magnitude, frac = (|v| - lo) / (hi - lo) computed in fp32
//! (sub, then IEEE div), and the result is sign | (u < frac ? hi : lo). Exact values never move.
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/scale.hpp"

#include <cstdint>

namespace agoq {
namespace detail {

//! NaN encodings of a small float format.
enum class nan_style : int {
  none,     //!< no NaN code (E2M1)
  all_ones, //!< S.1111.111 is NaN, no Inf (E4M3 "fn")
  ieee,     //!< max exponent: mantissa 0 = Inf, else NaN (E5M2)
};

//! A sign-magnitude small float with E exponent bits, M mantissa bits, exponent bias Bias;
//! MaxCode is the largest finite magnitude code, NanCode what NaN encodes to.
template <int E, int M, int Bias, std::uint32_t MaxCode, std::uint32_t NanCode, nan_style Nan>
struct minifloat {
  static constexpr int exp_bits = E;
  static constexpr int man_bits = M;
  static constexpr int bits = 1 + E + M;
  static constexpr std::uint32_t sign_bit = 1u << (E + M);
  static constexpr std::uint32_t max_code = MaxCode;
  static constexpr int emin = 1 - Bias; //!< exponent of the smallest normal

  //! The (non-negative) value of a finite magnitude code, exact.
  AGOQ_HOST_DEVICE static float magnitude(std::uint32_t c) noexcept {
    const std::uint32_t e = c >> M, m = c & ((1u << M) - 1u);
    if (e == 0) // subnormal: m * 2^(emin - M)
      return mul_rn(float(m), bits_to_float(std::uint32_t(emin - M + 127) << 23));
    return bits_to_float((std::uint32_t(int(e) - Bias + 127) << 23) | (m << (23 - M)));
  }

  //! The largest finite value, as fp32.
  AGOQ_HOST_DEVICE static float max_value() noexcept { return magnitude(MaxCode); }

  //! Magnitude code of the finite fp32 magnitude bits `a` (a < bits of max_value()), rounded to
  //! nearest even (Nearest) or toward zero.
  template <bool Nearest>
  AGOQ_HOST_DEVICE static std::uint32_t encode_magnitude(std::uint32_t a) noexcept {
    if ((a >> 23) == 0) return 0; // fp32 zero or subnormal: far below half the smallest code
    const int exp_f = int(a >> 23) - 127;
    std::uint32_t code, rem, half;
    if (exp_f >= emin) { // normal target
      code = (std::uint32_t(exp_f + Bias) << M) | ((a & 0x7FFFFFu) >> (23 - M));
      rem = a & ((1u << (23 - M)) - 1u);
      half = 1u << (22 - M);
    } else { // subnormal target: shift the full significand
      const std::uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
      const int sh = 23 - M + emin - exp_f; // > 23 - M
      if (sh > 25) return 0;                // below half the smallest subnormal
      code = m >> sh;
      rem = m & ((1u << sh) - 1u);
      half = 1u << (sh - 1);
    }
    if (Nearest && (rem > half || (rem == half && (code & 1u)))) ++code;
    return code;
  }

  //! Encode x: round to nearest even, saturate to max finite (Inf included), NaN -> NanCode.
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x) noexcept {
    const std::uint32_t u = float_to_bits(x);
    const std::uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return std::uint8_t(NanCode);
    const std::uint32_t s = (u >> 31) ? sign_bit : 0u;
    if (a >= float_to_bits(max_value())) return std::uint8_t(s | MaxCode);
    return std::uint8_t(s | encode_magnitude<true>(a));
  }

  //! Encode x with stochastic rounding by u in [0, 1) (rule at the top of fp8.hpp).
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, float u) noexcept {
    const std::uint32_t b = float_to_bits(x);
    const std::uint32_t a = b & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return std::uint8_t(NanCode);
    const std::uint32_t s = (b >> 31) ? sign_bit : 0u;
    if (a >= float_to_bits(max_value())) return std::uint8_t(s | MaxCode);
    const std::uint32_t lo_code = encode_magnitude<false>(a);
    const float lo = magnitude(lo_code), hi = magnitude(lo_code + 1u);
    const float frac = div_rn(sub_rn(bits_to_float(a), lo), sub_rn(hi, lo));
    return std::uint8_t(s | (u < frac ? lo_code + 1u : lo_code));
  }

  //! Decode a code (rule at the top of fp8.hpp).
  AGOQ_HOST_DEVICE static float decode(std::uint8_t code) noexcept {
    const std::uint32_t c = code & ((1u << bits) - 1u);
    const std::uint32_t mag = c & (sign_bit - 1u);
    const std::uint32_t e = mag >> M;
    if (Nan == nan_style::all_ones && mag == (sign_bit - 1u)) return bits_to_float(0x7FFFFFFFu);
    if (Nan == nan_style::ieee && e == (1u << E) - 1u) {
      if ((mag & ((1u << M) - 1u)) != 0) return bits_to_float(0x7FFFFFFFu);
      return bits_to_float((c & sign_bit) ? 0xFF800000u : 0x7F800000u);
    }
    const float v = magnitude(mag);
    return (c & sign_bit) ? -v : v;
  }
};

using e4m3_impl = minifloat<4, 3, 7, 0x7Eu, 0x7Fu, nan_style::all_ones>;
using e5m2_impl = minifloat<5, 2, 15, 0x7Bu, 0x7Fu, nan_style::ieee>;

} // namespace detail

//! FP8 E4M3 (OCP "e4m3fn": bias 7, max 448, no Inf, NaN 0x7F/0xFF). RNE, satfinite.
AGOQ_HOST_DEVICE std::uint8_t fp8_e4m3_encode(float x) noexcept {
  return detail::e4m3_impl::encode(x);
}
//! FP8 E4M3 with stochastic rounding by u in [0, 1).
AGOQ_HOST_DEVICE std::uint8_t fp8_e4m3_encode_sr(float x, float u) noexcept {
  return detail::e4m3_impl::encode_sr(x, u);
}
//! The fp32 value of an E4M3 code (exact; NaN codes -> 0x7FFFFFFF).
AGOQ_HOST_DEVICE float fp8_e4m3_decode(std::uint8_t c) noexcept {
  return detail::e4m3_impl::decode(c);
}

//! FP8 E5M2 (bias 15, max 57344, +-Inf 0x7C/0xFC, NaN otherwise). RNE, satfinite.
AGOQ_HOST_DEVICE std::uint8_t fp8_e5m2_encode(float x) noexcept {
  return detail::e5m2_impl::encode(x);
}
//! FP8 E5M2 with stochastic rounding by u in [0, 1).
AGOQ_HOST_DEVICE std::uint8_t fp8_e5m2_encode_sr(float x, float u) noexcept {
  return detail::e5m2_impl::encode_sr(x, u);
}
//! The fp32 value of an E5M2 code (exact; +-Inf; NaN codes -> 0x7FFFFFFF).
AGOQ_HOST_DEVICE float fp8_e5m2_decode(std::uint8_t c) noexcept {
  return detail::e5m2_impl::decode(c);
}

} // namespace agoq

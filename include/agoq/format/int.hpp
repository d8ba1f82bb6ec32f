// SPDX-License-Identifier: Apache-2.0
//! @file format/int.hpp
//! N-bit integer codecs (N = 2..8), symmetric and asymmetric. All arithmetic is fp32 and exact
//! to the rules below, so the GPU reproduces the host bit for bit.
//!
//! Symmetric int N: qmax = 2^(N-1) - 1; codes in [-qmax, qmax] stored as N-bit two's complement
//! (the low N bits of a uint8). Given the block's inv (0 if scale == 0, else 1.0f / scale):
//!   nearest_even: q = rint(x * inv)                  (fp32 multiply, round half to even)
//!   stochastic:   q = floor(fmaf(x, inv, u))          (u from Philox, see philox.hpp)
//!   then clamped to [-qmax, qmax]; a NaN product gives q = 0. (codec.hpp first multiplies x
//!   by the block's power-of-two `pre`, which keeps inv finite for tiny scales.)
//!   decode: x = float(q) * scale                     (fp32 multiply; codec.hpp saturates it)
//! Asymmetric int N: codes unsigned in [0, 2^N - 1]; zero = block minimum, scale =
//! (max - min) / (2^N - 1):
//!   nearest_even: q = rint((x - zero) * inv); stochastic: q = floor(fmaf(x - zero, inv, u));
//!   clamped to [0, 2^N - 1] (NaN -> 0); decode: x = fmaf(float(q), scale, zero).
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/scale.hpp"

#include <cstdint>

namespace agoq {
namespace detail {
//! Clamp an integral-valued float to [lo, hi] and convert; NaN -> 0.
AGOQ_HOST_DEVICE int clamp_to_int(float r, int lo, int hi) noexcept {
  if (is_nan(r)) return 0;
  if (r >= float(hi)) return hi;
  if (r <= float(lo)) return lo;
  return int(r);
}
} // namespace detail

//! Symmetric N-bit integer codec (N = Bits, 2..8).
template <int Bits> struct int_sym_codec {
  static_assert(Bits >= 2 && Bits <= 8, "int_sym_codec: Bits must be 2..8");
  static constexpr int bits = Bits;
  static constexpr int qmax = (1 << (Bits - 1)) - 1;
  static constexpr std::uint32_t mask = (1u << Bits) - 1u;

  //! The N-bit two's complement code of integer q (in [-qmax, qmax]).
  AGOQ_HOST_DEVICE static constexpr std::uint8_t from_int(int q) noexcept {
    return std::uint8_t(std::uint32_t(q) & mask);
  }
  //! The integer of an N-bit two's complement code (bits above N ignored).
  AGOQ_HOST_DEVICE static constexpr int to_int(std::uint8_t c) noexcept {
    const int v = int(c & mask);
    return (v & (1 << (Bits - 1))) ? v - (1 << Bits) : v;
  }
  //! Nearest-even: q = clamp(rint(x * inv)).
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, float inv) noexcept {
#if AGOQ_IS_DEVICE_CODE()
    // cvt.rni.s32 rounds half-even, saturates and maps NaN to 0: clamp_to_int(rint(.)) exactly.
    return from_int(max(-qmax, min(qmax, __float2int_rn(__fmul_rn(x, inv)))));
#else
    return from_int(detail::clamp_to_int(detail::rint_f(detail::mul_rn(x, inv)), -qmax, qmax));
#endif
  }
  //! Stochastic: q = clamp(floor(fmaf(x, inv, u))).
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, float inv, float u) noexcept {
#if AGOQ_IS_DEVICE_CODE()
    return from_int(max(-qmax, min(qmax, __float2int_rd(__fmaf_rn(x, inv, u)))));
#else
    return from_int(detail::clamp_to_int(detail::floor_f(detail::fma_f(x, inv, u)), -qmax, qmax));
#endif
  }
  //! x = float(q) * scale.
  AGOQ_HOST_DEVICE static float decode(std::uint8_t c, float scale) noexcept {
    return detail::mul_rn(float(to_int(c)), scale);
  }
};

//! Asymmetric (unsigned, zero point = block minimum) N-bit integer codec.
template <int Bits> struct int_asym_codec {
  static_assert(Bits >= 2 && Bits <= 8, "int_asym_codec: Bits must be 2..8");
  static constexpr int bits = Bits;
  static constexpr int qmax = (1 << Bits) - 1;

  //! Nearest-even: q = clamp(rint((x - zero) * inv)).
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, float zero, float inv) noexcept {
#if AGOQ_IS_DEVICE_CODE()
    return std::uint8_t(max(0, min(qmax, __float2int_rn(__fmul_rn(__fsub_rn(x, zero), inv)))));
#else
    return std::uint8_t(detail::clamp_to_int(
        detail::rint_f(detail::mul_rn(detail::sub_rn(x, zero), inv)), 0, qmax));
#endif
  }
  //! Stochastic: q = clamp(floor(fmaf(x - zero, inv, u))).
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, float zero, float inv, float u) noexcept {
#if AGOQ_IS_DEVICE_CODE()
    return std::uint8_t(max(0, min(qmax, __float2int_rd(__fmaf_rn(__fsub_rn(x, zero), inv, u)))));
#else
    return std::uint8_t(detail::clamp_to_int(
        detail::floor_f(detail::fma_f(detail::sub_rn(x, zero), inv, u)), 0, qmax));
#endif
  }
  //! x = fmaf(float(q), scale, zero).
  AGOQ_HOST_DEVICE static float decode(std::uint8_t c, float scale, float zero) noexcept {
    return detail::fma_f(float(c & qmax), scale, zero);
  }
};

} // namespace agoq

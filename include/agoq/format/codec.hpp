// SPDX-License-Identifier: Apache-2.0
//! @file format/codec.hpp
//! The per-block encode/decode API shared by the host reference and the GPU kernels:
//! `block_params` (scale, inv, zero), `codec<F, Symmetric>` with the format and signedness as
//! compile-time parameters, bit packing of eight N-bit codes into N bytes, and host-side runtime
//! dispatch (`dispatch_codec`, `encode_value`, `decode_value`).
//!
//! Block rules (per block of spec.block elements; a tail block uses only its valid elements):
//! - Symmetric: amax = NaN-propagating max of |x| (detail::absmax_step). params =
//!   {scale = block_scale(amax, qmax, spec.scale), inv = inverse_scale(scale), zero = 0}, with
//!   qmax = 2^(N-1)-1 for int N, 448 (E4M3), 57344 (E5M2), 6 (E2M1).
//! - Asymmetric int N: mn/mx = NaN-propagating min/max, -0 below +0; params =
//!   {scale = (mx - mn) / (2^N - 1), inv = inverse_scale(scale), zero = mn}. A range mx - mn that
//!   overflows fp32 is computed in quarters: scale = 4 ((mx/4 - mn/4) / (2^N - 1)), pre = 1/4.
//! - A block holding NaN or +-Inf gets scale = quiet NaN (asymmetric: zero NaN too; stored E8M0:
//!   0xFF) and every code 0, so it decodes to NaN. An all-zero block gets scale 0 (E8M0: code 0),
//!   codes 0, and decodes to 0.
//! - Encode (per element, u from philox_uniform(seed, row * cols + col) when stochastic):
//!   ints: see int.hpp, with x (and zero) first multiplied by the block's `pre`; FP formats:
//!   v = (x * pre) * inv (fp32), code = encode(v) (RNE, satfinite; see fp8.hpp/fp4.hpp) or
//!   encode_sr(v, u). `pre` is a power of two, 1 for almost every block: a scale below 2^-126
//!   (tiny blocks) gets pre = 2^64 and inv = 1 / (scale 2^64), because 1 / scale would overflow
//!   to +Inf below 2^-128; a block whose range overflows fp32 (asymmetric) gets pre = 1/4. Both
//!   multiplies by pre are exact (bar subnormals under pre = 1/4), so the codes are those of
//!   x / scale computed with an unbounded exponent: tiny blocks keep their relative accuracy.
//!   In every format a NaN scale gives code 0; FP formats also give code 0 (not the -0 code)
//!   for every element of a block whose scale is 0 (integers get 0 anyway).
//! - Decode: ints see int.hpp; FP formats: x = decode(code) * scale (fp32 multiply); then
//!   saturate_finite: a product that overflows fp32 becomes +-FLT_MAX, so finite blocks never
//!   decode to Inf (NaN blocks still decode to NaN). Narrowing to bf16/fp16 saturates the same
//!   way (format/element.hpp, to_output).
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/format.hpp"
#include "agoq/format/fp4.hpp"
#include "agoq/format/fp8.hpp"
#include "agoq/format/int.hpp"
#include "agoq/format/scale.hpp"

#include <cstdint>
#include <type_traits>
#if defined(__CUDACC__)
#include <cuda_fp8.h>
#endif

namespace agoq {

//! The per-block numbers an encoder or decoder needs. zero is 0 for symmetric formats. The
//! encoder's value is (x * pre - zero * pre) * inv; decoders use scale and zero only.
struct block_params {
  float scale = 0.0f; //!< decode multiplier (NaN for a block holding NaN/Inf)
  float inv = 0.0f;   //!< encode multiplier: 0 if scale == 0 or NaN, else 1 / (scale * pre)
  float zero = 0.0f;  //!< asymmetric zero point (the block minimum)
  float pre = 1.0f;   //!< power of two applied to x first: 1, 2^64 (tiny scale) or 1/4
};

namespace detail {
//! One step of the NaN-propagating absmax: nan_max(acc, |x|). Start from acc = 0.
AGOQ_HOST_DEVICE float absmax_step(float acc, float x) noexcept { return nan_max(acc, abs_f(x)); }

//! Block parameters for a finite scale s >= 0 (or NaN) and zero point: inv = 0 for s == 0 or
//! NaN (codes 0); pre = 2^64 below the smallest normal scale, where 1 / s could overflow.
AGOQ_HOST_DEVICE block_params params_for_scale(float s, float zero) noexcept {
  if (s == 0.0f || is_nan(s)) return block_params{s, 0.0f, zero, 1.0f};
  if (s < 1.17549435e-38f) // 2^-126
    return block_params{s, div_rn(1.0f, mul_rn(s, 0x1p64f)), zero, 0x1p64f};
  return block_params{s, div_rn(1.0f, s), zero, 1.0f};
}

//! Parameters for decoding from a stored scale (and zero point).
AGOQ_HOST_DEVICE block_params params_from_stored(float scale, float zero = 0.0f) noexcept {
  return params_for_scale(scale, zero);
}

//! Symmetric block parameters from the block amax (an all-zero block: scale 0, codes 0).
AGOQ_HOST_DEVICE block_params symmetric_params(float amax, float qmax, scale_kind kind) noexcept {
  return params_for_scale(block_scale(amax, qmax, kind), 0.0f);
}

//! Asymmetric block parameters from the block minimum and maximum.
AGOQ_HOST_DEVICE block_params asymmetric_params(float mn, float mx, float qmax) noexcept {
  if (is_nonfinite(mn) || is_nonfinite(mx))
    return block_params{quiet_nan(), 0.0f, quiet_nan(), 1.0f};
  const float range = sub_rn(mx, mn);
  if (is_nonfinite(range)) { // mx - mn > FLT_MAX: in quarters, where it fits (qmax >= 3)
    const float s4 = div_rn(sub_rn(mul_rn(mx, 0.25f), mul_rn(mn, 0.25f)), qmax);
    return block_params{mul_rn(s4, 4.0f), div_rn(1.0f, s4), mn, 0.25f};
  }
  return params_for_scale(div_rn(range, qmax), mn);
}

template <format F> struct fp_impl;
template <> struct fp_impl<format::fp8_e4m3> { using type = e4m3_impl; };
template <> struct fp_impl<format::fp8_e5m2> { using type = e5m2_impl; };
template <> struct fp_impl<format::fp4_e2m1> { using type = e2m1_impl; };

template <int Bits> struct int_bits_c { static constexpr int value = Bits; };
} // namespace detail

//! Codec of format F. Symmetric = false is valid only for integer formats.
//! Members: format_v, bits, symmetric, qmax (float), params(...), encode(x, p),
//! encode_sr(x, p, u), encode<R>(x, p, u), decode(code, p).
template <format F, bool Symmetric = true, bool IsInt = is_integer(F)> struct codec;

//! Symmetric integer codec (int2..int8).
template <format F> struct codec<F, true, true> {
  using impl = int_sym_codec<bits_of(F)>;
  static constexpr agoq::format format_v = F;
  static constexpr int bits = bits_of(F);
  static constexpr bool symmetric = true;
  static constexpr float qmax = float(impl::qmax);

  AGOQ_HOST_DEVICE static block_params params(float amax, scale_kind kind) noexcept {
    return detail::symmetric_params(amax, qmax, kind);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p) noexcept {
    // A NaN-scale block has inv = 0, so x * inv is 0 or NaN and encodes to 0 without this test;
    // the device skips it (one instruction per element fewer), the host states the rule.
    if (!AGOQ_IS_DEVICE_CODE() && detail::is_nan(p.scale)) return 0;
    return impl::encode(detail::mul_rn(x, p.pre), p.inv);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, const block_params& p, float u) noexcept {
    if (detail::is_nan(p.scale)) return 0;
    return impl::encode_sr(detail::mul_rn(x, p.pre), p.inv, u);
  }
  template <rounding R>
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p, float u) noexcept {
    if constexpr (R == rounding::stochastic)
      return encode_sr(x, p, u);
    else
      return encode(x, p);
  }
  AGOQ_HOST_DEVICE static float decode(std::uint8_t c, const block_params& p) noexcept {
    return detail::saturate_finite(impl::decode(c, p.scale));
  }
};

//! Asymmetric integer codec (unsigned codes, zero point).
template <format F> struct codec<F, false, true> {
  using impl = int_asym_codec<bits_of(F)>;
  static constexpr agoq::format format_v = F;
  static constexpr int bits = bits_of(F);
  static constexpr bool symmetric = false;
  static constexpr float qmax = float(impl::qmax);

  AGOQ_HOST_DEVICE static block_params params(float mn, float mx) noexcept {
    return detail::asymmetric_params(mn, mx, qmax);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p) noexcept {
    if (!AGOQ_IS_DEVICE_CODE() && detail::is_nan(p.scale)) return 0; // see the symmetric codec
    return impl::encode(detail::mul_rn(x, p.pre), detail::mul_rn(p.zero, p.pre), p.inv);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, const block_params& p, float u) noexcept {
    if (detail::is_nan(p.scale)) return 0;
    return impl::encode_sr(detail::mul_rn(x, p.pre), detail::mul_rn(p.zero, p.pre), p.inv, u);
  }
  template <rounding R>
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p, float u) noexcept {
    if constexpr (R == rounding::stochastic)
      return encode_sr(x, p, u);
    else
      return encode(x, p);
  }
  AGOQ_HOST_DEVICE static float decode(std::uint8_t c, const block_params& p) noexcept {
    return detail::saturate_finite(impl::decode(c, p.scale, p.zero));
  }
};

//! Floating-point codec (fp8_e4m3, fp8_e5m2, fp4_e2m1), always symmetric.
template <format F> struct codec<F, true, false> {
  using impl = typename detail::fp_impl<F>::type;
  static constexpr agoq::format format_v = F;
  static constexpr int bits = bits_of(F);
  static constexpr bool symmetric = true;
  static constexpr float qmax = F == format::fp8_e4m3   ? 448.0f
                                : F == format::fp8_e5m2 ? 57344.0f
                                                        : 6.0f;

  AGOQ_HOST_DEVICE static block_params params(float amax, scale_kind kind) noexcept {
    return detail::symmetric_params(amax, qmax, kind);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p) noexcept {
    const float v = detail::mul_rn(detail::mul_rn(x, p.pre), p.inv);
#if AGOQ_IS_DEVICE_CODE() && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    if constexpr (F != format::fp4_e2m1) {
      // Blocks from symmetric_params have inv == 0 exactly when the scale is 0 or NaN, so this is
      // the host's test; then cvt.rn.satfinite, which impl::encode reproduces bit for bit.
      if (p.inv == 0.0f || detail::is_nan(v)) return 0;
      return __nv_cvt_float_to_fp8(v, __NV_SATFINITE,
                                   F == format::fp8_e4m3 ? __NV_E4M3 : __NV_E5M2);
    }
#endif
    if (p.scale == 0.0f || detail::is_nan(p.scale) || detail::is_nan(v)) return 0;
    return impl::encode(v);
  }
  AGOQ_HOST_DEVICE static std::uint8_t encode_sr(float x, const block_params& p, float u) noexcept {
    const float v = detail::mul_rn(detail::mul_rn(x, p.pre), p.inv);
    if (p.scale == 0.0f || detail::is_nan(p.scale) || detail::is_nan(v)) return 0;
    return impl::encode_sr(v, u);
  }
  template <rounding R>
  AGOQ_HOST_DEVICE static std::uint8_t encode(float x, const block_params& p, float u) noexcept {
    if constexpr (R == rounding::stochastic)
      return encode_sr(x, p, u);
    else
      return encode(x, p);
  }
  AGOQ_HOST_DEVICE static float decode(std::uint8_t c, const block_params& p) noexcept {
#if AGOQ_IS_DEVICE_CODE() && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    if constexpr (F != format::fp4_e2m1) // cvt.rn.f16x2.e4m3x2/e5m2x2: exact, as impl::decode
      return detail::saturate_finite(
          detail::mul_rn(__half2float(__half(__nv_cvt_fp8_to_halfraw(
                             c, F == format::fp8_e4m3 ? __NV_E4M3 : __NV_E5M2))),
                         p.scale));
#endif
    return detail::saturate_finite(detail::mul_rn(impl::decode(c), p.scale));
  }
};

// ---------------------------------------------------------------------------------------------
// Packing: eight N-bit codes <-> N bytes. Value i of the group occupies bits [i*N, i*N + N) of
// the group's 64-bit little-endian word (int8/fp8: one byte each; int4/fp4: low nibble first).

//! Pack codes[0..8) (only their low Bits bits are used) into out[0..Bits).
template <int Bits>
AGOQ_HOST_DEVICE constexpr void pack8(const std::uint8_t* codes, std::uint8_t* out) noexcept {
  static_assert(Bits >= 1 && Bits <= 8, "pack8: Bits must be 1..8");
  std::uint64_t w = 0;
  for (int i = 0; i < 8; ++i)
    w |= std::uint64_t(codes[i] & ((1u << Bits) - 1u)) << (i * Bits);
  for (int b = 0; b < Bits; ++b)
    out[b] = std::uint8_t(w >> (8 * b));
}

//! Unpack in[0..Bits) into codes[0..8) (each in [0, 2^Bits)).
template <int Bits>
AGOQ_HOST_DEVICE constexpr void unpack8(const std::uint8_t* in, std::uint8_t* codes) noexcept {
  static_assert(Bits >= 1 && Bits <= 8, "unpack8: Bits must be 1..8");
  std::uint64_t w = 0;
  for (int b = 0; b < Bits; ++b)
    w |= std::uint64_t(in[b]) << (8 * b);
  for (int i = 0; i < 8; ++i)
    codes[i] = std::uint8_t((w >> (i * Bits)) & ((1u << Bits) - 1u));
}

//! Runtime-width pack8 (bits 1..8; other values do nothing).
AGOQ_HOST_DEVICE void pack8(int bits, const std::uint8_t* codes, std::uint8_t* out) noexcept {
  switch (bits) {
  case 1: pack8<1>(codes, out); break;
  case 2: pack8<2>(codes, out); break;
  case 3: pack8<3>(codes, out); break;
  case 4: pack8<4>(codes, out); break;
  case 5: pack8<5>(codes, out); break;
  case 6: pack8<6>(codes, out); break;
  case 7: pack8<7>(codes, out); break;
  case 8: pack8<8>(codes, out); break;
  default: break;
  }
}

//! Runtime-width unpack8 (bits 1..8; other values do nothing).
AGOQ_HOST_DEVICE void unpack8(int bits, const std::uint8_t* in, std::uint8_t* codes) noexcept {
  switch (bits) {
  case 1: unpack8<1>(in, codes); break;
  case 2: unpack8<2>(in, codes); break;
  case 3: unpack8<3>(in, codes); break;
  case 4: unpack8<4>(in, codes); break;
  case 5: unpack8<5>(in, codes); break;
  case 6: unpack8<6>(in, codes); break;
  case 7: unpack8<7>(in, codes); break;
  case 8: unpack8<8>(in, codes); break;
  default: break;
  }
}

// ---------------------------------------------------------------------------------------------
// Host-side runtime dispatch.

//! Calls fn(codec<F, S>{}) for the format and signedness of `s` (s must pass validate(s); an
//! asymmetric non-integer spec is treated as symmetric). Returns what fn returns.
template <class Fn> decltype(auto) dispatch_codec(const quant_spec& s, Fn&& fn) {
#define AGOQ_DETAIL_INT_CASE(F)                                                                    \
  case F:                                                                                          \
    if (s.symmetric) return fn(codec<F, true>{});                                                  \
    return fn(codec<F, false>{});
  switch (s.format) {
    AGOQ_DETAIL_INT_CASE(format::int2)
    AGOQ_DETAIL_INT_CASE(format::int3)
    AGOQ_DETAIL_INT_CASE(format::int4)
    AGOQ_DETAIL_INT_CASE(format::int5)
    AGOQ_DETAIL_INT_CASE(format::int6)
    AGOQ_DETAIL_INT_CASE(format::int7)
  case format::fp8_e4m3: return fn(codec<format::fp8_e4m3>{});
  case format::fp8_e5m2: return fn(codec<format::fp8_e5m2>{});
  case format::fp4_e2m1: return fn(codec<format::fp4_e2m1>{});
  case format::int8: break;
  }
#undef AGOQ_DETAIL_INT_CASE
  if (s.symmetric) return fn(codec<format::int8, true>{});
  return fn(codec<format::int8, false>{});
}

//! Block parameters for `s`: symmetric formats use a = amax (b ignored); asymmetric use
//! a = block minimum, b = block maximum.
inline block_params make_block_params(const quant_spec& s, float a, float b = 0.0f) {
  return dispatch_codec(s, [&](auto c) -> block_params {
    using C = decltype(c);
    if constexpr (C::symmetric)
      return C::params(a, s.scale);
    else
      return C::params(a, b);
  });
}

//! Encode one value of a block under `s` (u is used only when s.rounding is stochastic).
inline std::uint8_t encode_value(const quant_spec& s, float x, const block_params& p,
                                 float u = 0.0f) {
  return dispatch_codec(s, [&](auto c) -> std::uint8_t {
    using C = decltype(c);
    return s.rounding == rounding::stochastic ? C::encode_sr(x, p, u) : C::encode(x, p);
  });
}

//! Decode one code of a block under `s`.
inline float decode_value(const quant_spec& s, std::uint8_t code, const block_params& p) {
  return dispatch_codec(s, [&](auto c) -> float { return decltype(c)::decode(code, p); });
}

} // namespace agoq

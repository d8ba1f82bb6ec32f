// SPDX-License-Identifier: Apache-2.0
//! @file format/fp4.hpp
//! FP4 E2M1 (OCP MX): sign, 2 exponent bits (bias 1), 1 mantissa bit; magnitudes
//! {0, 0.5, 1, 1.5, 2, 3, 4, 6} for codes 0..7, code | 8 is the negative. No Inf, no NaN.
//!
//! Encode equals cuda_fp4.h's __nv_cvt_float_to_fp4(x, __NV_E2M1, cudaRoundNearest):
//! round to nearest even; |x| >= 6 and +-Inf -> sign | 6; NaN -> +6 (code 0x7); |x| <= 0.25 ->
//! sign | 0. Decode is exact. Stochastic rounding follows the small-float rule in fp8.hpp.
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/fp8.hpp"

#include <cstdint>

namespace agoq {
namespace detail {
using e2m1_impl = minifloat<2, 1, 1, 0x7u, 0x7u, nan_style::none>;
} // namespace detail

//! FP4 E2M1 code (low 4 bits) of x: RNE, saturating to +-6, NaN -> +6.
AGOQ_HOST_DEVICE std::uint8_t fp4_e2m1_encode(float x) noexcept {
  return detail::e2m1_impl::encode(x);
}
//! FP4 E2M1 code of x with stochastic rounding by u in [0, 1).
AGOQ_HOST_DEVICE std::uint8_t fp4_e2m1_encode_sr(float x, float u) noexcept {
  return detail::e2m1_impl::encode_sr(x, u);
}
//! The value of an E2M1 code (only the low 4 bits are read).
AGOQ_HOST_DEVICE float fp4_e2m1_decode(std::uint8_t c) noexcept {
  return detail::e2m1_impl::decode(c);
}

} // namespace agoq

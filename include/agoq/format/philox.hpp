// SPDX-License-Identifier: Apache-2.0
//! @file format/philox.hpp
//! Philox4x32-10 (Salmon et al., SC'11; Random123 constants) and the uniform draw used by
//! stochastic rounding, identical on host and device.
//!
//! Rule for element `idx` (the logical element index row * cols + col) under a 64-bit `seed`:
//!   key     = {seed & 0xFFFFFFFF, seed >> 32}
//!   counter = {(idx >> 3) & 0xFFFFFFFF, (idx >> 3) >> 32, 0, 0}
//!   r       = philox4x32_10(counter, key)[(idx >> 1) & 3]
//!   h       = (idx & 1) ? r >> 16 : r & 0xFFFF
//!   u       = h * 2^-16              (exact; u in [0, 1), 2^16 equally spaced values)
//! A kernel that handles eight consecutive elements idx = 8k..8k+7 calls Philox once. 16 bits
//! per element: the probability of rounding up is within 2^-16 of the exact fraction (finer
//! than the fp32 rounding of x * inv + u for most codes), and half the Philox calls of 32-bit
//! draws let stochastic rounding run near memory speed on H200 (bench/RESULTS.md).
#pragma once

#include "agoq/config.hpp"

#include <cstdint>

namespace agoq {

//! Four 32-bit words (a Philox counter or output block).
struct philox_block {
  std::uint32_t w[4];
};

namespace detail {
constexpr std::uint32_t philox_m0 = 0xD2511F53u;
constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
constexpr std::uint32_t philox_w0 = 0x9E3779B9u;
constexpr std::uint32_t philox_w1 = 0xBB67AE85u;

//! One Philox4x32 round: (hi,lo) = M0*c0, (hi',lo') = M1*c2;
//! out = {hi' ^ c1 ^ k0, lo', hi ^ c3 ^ k1, lo}.
AGOQ_HOST_DEVICE constexpr philox_block philox_round(philox_block c, std::uint32_t k0,
                                                     std::uint32_t k1) noexcept {
  philox_block r{};
#if AGOQ_IS_DEVICE_CODE()
  // The 32-bit halves spelled out: from the 64-bit products nvcc 13 kept an add of a zero high
  // word per product (6 instructions a round instead of 4).
  r.w[0] = __umulhi(philox_m1, c.w[2]) ^ c.w[1] ^ k0;
  r.w[1] = philox_m1 * c.w[2];
  r.w[2] = __umulhi(philox_m0, c.w[0]) ^ c.w[3] ^ k1;
  r.w[3] = philox_m0 * c.w[0];
#else
  const std::uint64_t p0 = std::uint64_t(philox_m0) * c.w[0];
  const std::uint64_t p1 = std::uint64_t(philox_m1) * c.w[2];
  r.w[0] = std::uint32_t(p1 >> 32) ^ c.w[1] ^ k0;
  r.w[1] = std::uint32_t(p1);
  r.w[2] = std::uint32_t(p0 >> 32) ^ c.w[3] ^ k1;
  r.w[3] = std::uint32_t(p0);
#endif
  return r;
}
} // namespace detail

//! Philox4x32 with 10 rounds; the key is bumped by (W0, W1) between rounds (Random123's
//! philox4x32_R(10, ctr, key)).
AGOQ_HOST_DEVICE constexpr philox_block philox4x32_10(philox_block ctr, std::uint32_t k0,
                                                      std::uint32_t k1) noexcept {
  for (int i = 0; i < 10; ++i) {
    if (i != 0) {
      k0 += detail::philox_w0;
      k1 += detail::philox_w1;
    }
    ctr = detail::philox_round(ctr, k0, k1);
  }
  return ctr;
}

//! The four random words for elements 8*(idx>>3) .. 8*(idx>>3)+7 under `seed`.
AGOQ_HOST_DEVICE constexpr philox_block philox_words(std::uint64_t seed,
                                                     std::uint64_t idx) noexcept {
  const std::uint64_t g = idx >> 3;
  return philox4x32_10(philox_block{{std::uint32_t(g), std::uint32_t(g >> 32), 0u, 0u}},
                       std::uint32_t(seed), std::uint32_t(seed >> 32));
}

//! u = h * 2^-16 for a 16-bit draw h (the low 16 bits of the argument): in [0, 1).
AGOQ_HOST_DEVICE constexpr float uniform_from_half(std::uint32_t h) noexcept {
  return float(h & 0xFFFFu) * (1.0f / 65536.0f);
}

//! The uniform draw of element `idx` under `seed` (see the rule at the top of this file).
AGOQ_HOST_DEVICE constexpr float philox_uniform(std::uint64_t seed, std::uint64_t idx) noexcept {
  const std::uint32_t r = philox_words(seed, idx).w[(idx >> 1) & 3];
  return uniform_from_half((idx & 1) ? r >> 16 : r);
}

} // namespace agoq

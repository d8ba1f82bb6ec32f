// SPDX-License-Identifier: Apache-2.0
//! @file format/philox.hpp
//! Philox4x32-10 (Salmon et al., SC'11; Random123 constants) and the uniform draw used by
//! stochastic rounding, identical on host and device.
//!
//! Rule for element `idx` (the logical element index row * cols + col) under a 64-bit `seed`:
//!   key     = {seed & 0xFFFFFFFF, seed >> 32}
//!   counter = {(idx >> 2) & 0xFFFFFFFF, (idx >> 2) >> 32, 0, 0}
//!   r       = philox4x32_10(counter, key)[idx & 3]
//!   u       = float(r >> 8) * 2^-24            (exact; u in [0, 1), 2^24 equally spaced values)
//! A kernel that handles four consecutive elements idx = 4k..4k+3 calls Philox once.
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
  const std::uint64_t p0 = std::uint64_t(philox_m0) * c.w[0];
  const std::uint64_t p1 = std::uint64_t(philox_m1) * c.w[2];
  philox_block r{};
  r.w[0] = std::uint32_t(p1 >> 32) ^ c.w[1] ^ k0;
  r.w[1] = std::uint32_t(p1);
  r.w[2] = std::uint32_t(p0 >> 32) ^ c.w[3] ^ k1;
  r.w[3] = std::uint32_t(p0);
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

//! The four random words for elements 4*(idx>>2) .. 4*(idx>>2)+3 under `seed`.
AGOQ_HOST_DEVICE constexpr philox_block philox_words(std::uint64_t seed,
                                                     std::uint64_t idx) noexcept {
  const std::uint64_t g = idx >> 2;
  return philox4x32_10(philox_block{{std::uint32_t(g), std::uint32_t(g >> 32), 0u, 0u}},
                       std::uint32_t(seed), std::uint32_t(seed >> 32));
}

//! u = float(r >> 8) * 2^-24, in [0, 1).
AGOQ_HOST_DEVICE constexpr float uniform_from_word(std::uint32_t r) noexcept {
  return float(r >> 8) * (1.0f / 16777216.0f);
}

//! The uniform draw of element `idx` under `seed` (see the rule at the top of this file).
AGOQ_HOST_DEVICE constexpr float philox_uniform(std::uint64_t seed, std::uint64_t idx) noexcept {
  return uniform_from_word(philox_words(seed, idx).w[idx & 3]);
}

} // namespace agoq

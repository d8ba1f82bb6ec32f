// SPDX-License-Identifier: Apache-2.0
// Philox4x32-10 against Random123's kat_vectors, and the element -> uniform mapping.
#include "agoq/format/philox.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

void expect_kat(agoq::philox_block ctr, std::uint32_t k0, std::uint32_t k1,
                agoq::philox_block expect) {
  const agoq::philox_block r = agoq::philox4x32_10(ctr, k0, k1);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(r.w[i], expect.w[i]) << "word " << i;
}

TEST(Philox, KnownAnswerVectors) {
  // Random123 kat_vectors: "philox4x32 10 <ctr x4> <key x2> <out x4>"
  expect_kat({{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}});
  expect_kat({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
             {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}});
  expect_kat({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
             {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}});
}

TEST(Philox, IsConstexpr) {
  constexpr agoq::philox_block r = agoq::philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  static_assert(r.w[0] == 0x6627e8d5u, "philox4x32_10 must be usable in constant expressions");
  EXPECT_EQ(r.w[3], 0x9b00dbd8u);
}

TEST(Philox, ElementMapping) {
  const std::uint64_t seed = 0x0123456789abcdefULL;
  // group (3 << 32) + 5 of eight elements; element 5 of it: word 2, high half
  const std::uint64_t idx = (std::uint64_t(3) << 35) + 8 * 5 + 5;
  const agoq::philox_block r = agoq::philox4x32_10({{5u, 3u, 0u, 0u}}, 0x89abcdefu, 0x01234567u);
  EXPECT_EQ(agoq::philox_words(seed, idx).w[2], r.w[2]);
  EXPECT_EQ(agoq::philox_uniform(seed, idx), float(r.w[2] >> 16) * 0x1p-16f);
  for (std::uint64_t i = 0; i < 24; ++i) {
    const agoq::philox_block g = agoq::philox4x32_10({{std::uint32_t(i / 8), 0, 0, 0}}, 7, 0);
    const std::uint32_t w = g.w[(i / 2) % 4], h = i % 2 ? w >> 16 : w & 0xFFFFu;
    EXPECT_EQ(agoq::philox_uniform(7, i), float(h) / 65536.0f) << "element " << i;
  }
}

TEST(Philox, UniformRangeAndMean) {
  EXPECT_EQ(agoq::uniform_from_half(0), 0.0f);
  EXPECT_EQ(agoq::uniform_from_half(0xffffu), 1.0f - 0x1p-16f);
  EXPECT_EQ(agoq::uniform_from_half(0x8000u), 0.5f);
  EXPECT_EQ(agoq::uniform_from_half(0x7fffu), 0.5f - 0x1p-16f);
  EXPECT_EQ(agoq::uniform_from_half(0x12345u), agoq::uniform_from_half(0x2345u)); // 16 bits
  double sum = 0, sum_sq = 0;
  const int n = 1 << 18;
  for (int i = 0; i < n; ++i) {
    const double u = agoq::philox_uniform(42, std::uint64_t(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u, sum_sq += u * u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);          // std of the mean ~ 0.00056
  EXPECT_NEAR(sum_sq / n, 1.0 / 3.0, 0.005); // E[u^2] of a uniform
}

} // namespace

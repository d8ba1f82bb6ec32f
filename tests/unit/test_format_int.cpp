// SPDX-License-Identifier: Apache-2.0
// N-bit integer codecs and the eight-codes-in-N-bytes packing.
#include "agoq/format/codec.hpp"
#include "agoq/format/int.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace {

template <int Bits> void check_pack_roundtrip_and_layout() {
  std::mt19937 rng(Bits);
  std::uniform_int_distribution<int> uc(0, (1 << Bits) - 1);
  for (int pos = 0; pos < 8; ++pos)
    for (int code = 0; code < (1 << Bits); ++code) {
      std::uint8_t in[8], out[8], bytes[8] = {0, 0, 0, 0, 0, 0, 0, 0}, bytes_rt[8] = {};
      for (auto& c : in)
        c = std::uint8_t(uc(rng));
      in[pos] = std::uint8_t(code);
      agoq::pack8<Bits>(in, bytes);
      // layout: bit k of value i is bit (i*Bits + k) of the little-endian byte stream
      for (int i = 0; i < 8; ++i)
        for (int k = 0; k < Bits; ++k) {
          const int b = i * Bits + k;
          ASSERT_EQ((bytes[b / 8] >> (b % 8)) & 1, (in[i] >> k) & 1) << Bits << " " << i;
        }
      for (int b = Bits; b < 8; ++b)
        ASSERT_EQ(bytes[b], 0) << "pack8 wrote past Bits bytes";
      agoq::unpack8<Bits>(bytes, out);
      for (int i = 0; i < 8; ++i)
        ASSERT_EQ(out[i], in[i]);
      agoq::pack8(Bits, in, bytes_rt); // runtime width
      for (int b = 0; b < Bits; ++b)
        ASSERT_EQ(bytes_rt[b], bytes[b]);
    }
}

TEST(FormatInt, PackUnpackEveryCodeEveryWidth) {
  check_pack_roundtrip_and_layout<2>();
  check_pack_roundtrip_and_layout<3>();
  check_pack_roundtrip_and_layout<4>();
  check_pack_roundtrip_and_layout<5>();
  check_pack_roundtrip_and_layout<6>();
  check_pack_roundtrip_and_layout<7>();
  check_pack_roundtrip_and_layout<8>();
}

TEST(FormatInt, NibbleOrderLowFirst) {
  const std::uint8_t c[8] = {0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8};
  std::uint8_t b[4];
  agoq::pack8<4>(c, b);
  EXPECT_EQ(b[0], 0x21);
  EXPECT_EQ(b[3], 0x87);
  const std::uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::uint8_t e[8];
  agoq::pack8<8>(d, e);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(e[i], d[i]);
}

template <int Bits> void check_sym_codes() {
  using C = agoq::int_sym_codec<Bits>;
  EXPECT_EQ(C::qmax, (1 << (Bits - 1)) - 1);
  for (int q = -C::qmax; q <= C::qmax; ++q) {
    const std::uint8_t c = C::from_int(q);
    EXPECT_LT(c, 1 << Bits);
    EXPECT_EQ(C::to_int(c), q);
    EXPECT_EQ(C::decode(c, 1.0f), float(q));
    EXPECT_EQ(C::decode(c, 0.5f), 0.5f * float(q));
    // two's complement: negative q stored as 2^Bits + q
    EXPECT_EQ(int(c), q < 0 ? (1 << Bits) + q : q);
    EXPECT_EQ(C::encode(float(q), 1.0f), c);
  }
  // clamping both ways, NaN product -> 0
  EXPECT_EQ(C::to_int(C::encode(1000.0f, 1.0f)), C::qmax);
  EXPECT_EQ(C::to_int(C::encode(-1000.0f, 1.0f)), -C::qmax);
  EXPECT_EQ(C::to_int(C::encode(0.0f, std::numeric_limits<float>::infinity())), 0);
  EXPECT_EQ(C::to_int(C::encode_sr(1000.0f, 1.0f, 0.5f)), C::qmax);
  EXPECT_EQ(C::to_int(C::encode_sr(-1000.0f, 1.0f, 0.5f)), -C::qmax);
}

TEST(FormatInt, SymmetricCodesDecodeToIntegers) {
  check_sym_codes<2>();
  check_sym_codes<3>();
  check_sym_codes<4>();
  check_sym_codes<5>();
  check_sym_codes<6>();
  check_sym_codes<7>();
  check_sym_codes<8>();
}

TEST(FormatInt, SymmetricRoundingRules) {
  using C = agoq::int_sym_codec<8>;
  EXPECT_EQ(C::to_int(C::encode(2.5f, 1.0f)), 2); // ties to even
  EXPECT_EQ(C::to_int(C::encode(3.5f, 1.0f)), 4);
  EXPECT_EQ(C::to_int(C::encode(-2.5f, 1.0f)), -2);
  EXPECT_EQ(C::to_int(C::encode(2.51f, 1.0f)), 3);
  EXPECT_EQ(C::to_int(C::encode(1.0f, 4.0f)), 4); // x * inv
  // stochastic: floor(x * inv + u)
  EXPECT_EQ(C::to_int(C::encode_sr(2.25f, 1.0f, 0.74f)), 2);
  EXPECT_EQ(C::to_int(C::encode_sr(2.25f, 1.0f, 0.76f)), 3);
  EXPECT_EQ(C::to_int(C::encode_sr(-2.25f, 1.0f, 0.24f)), -3);
  EXPECT_EQ(C::to_int(C::encode_sr(-2.25f, 1.0f, 0.26f)), -2);
  EXPECT_EQ(C::to_int(C::encode_sr(3.0f, 1.0f, 0.9999f)), 3);
}

TEST(FormatInt, AsymmetricCodec) {
  using C = agoq::int_asym_codec<4>;
  EXPECT_EQ(C::qmax, 15);
  // zero = -1, scale = 0.25: x = -1 + 0.25 q
  for (int q = 0; q <= 15; ++q) {
    const float x = -1.0f + 0.25f * float(q);
    EXPECT_EQ(C::encode(x, -1.0f, 4.0f), q);
    EXPECT_EQ(C::decode(std::uint8_t(q), 0.25f, -1.0f), x);
  }
  EXPECT_EQ(C::encode(-5.0f, -1.0f, 4.0f), 0);
  EXPECT_EQ(C::encode(50.0f, -1.0f, 4.0f), 15);
  EXPECT_EQ(C::encode(-1.0f + 0.125f, -1.0f, 4.0f), 0); // tie 0|1 -> 0
  EXPECT_EQ(C::encode(-1.0f + 0.375f, -1.0f, 4.0f), 2); // tie 1|2 -> 2
  EXPECT_EQ(C::encode_sr(-1.0f + 0.125f, -1.0f, 4.0f, 0.49f), 0);
  EXPECT_EQ(C::encode_sr(-1.0f + 0.125f, -1.0f, 4.0f, 0.51f), 1);
}

TEST(FormatInt, CodecBlockParams) {
  using C = agoq::codec<agoq::format::int4>;
  const agoq::block_params p = C::params(14.0f, agoq::scale_kind::fp32);
  EXPECT_EQ(p.scale, 2.0f);
  EXPECT_EQ(p.inv, 0.5f);
  EXPECT_EQ(agoq::int_sym_codec<4>::to_int(C::encode(-14.0f, p)), -7);
  EXPECT_EQ(C::decode(C::encode(-14.0f, p), p), -14.0f);
  const agoq::block_params z = C::params(0.0f, agoq::scale_kind::fp32);
  EXPECT_EQ(z.scale, 0.0f);
  EXPECT_EQ(C::encode(0.0f, z), 0);
  const agoq::block_params n = C::params(NAN, agoq::scale_kind::fp32);
  EXPECT_TRUE(std::isnan(n.scale));
  EXPECT_EQ(C::encode(NAN, n), 0);
  EXPECT_TRUE(std::isnan(C::decode(0, n)));
  using A = agoq::codec<agoq::format::int8, false>;
  const agoq::block_params a = A::params(-1.0f, 254.0f);
  EXPECT_EQ(a.scale, 1.0f);
  EXPECT_EQ(a.zero, -1.0f);
  EXPECT_EQ(A::encode(3.0f, a), 4);
  const agoq::block_params k = A::params(7.0f, 7.0f); // constant block
  EXPECT_EQ(k.scale, 0.0f);
  EXPECT_EQ(A::encode(7.0f, k), 0);
  EXPECT_EQ(A::decode(0, k), 7.0f);
  const agoq::block_params i = A::params(-INFINITY, 1.0f);
  EXPECT_TRUE(std::isnan(i.scale));
  EXPECT_TRUE(std::isnan(i.zero));
  EXPECT_TRUE(std::isnan(A::decode(A::encode(1.0f, i), i)));
  // runtime dispatch agrees with the template
  agoq::quant_spec s;
  s.format = agoq::format::int4;
  EXPECT_EQ(agoq::make_block_params(s, 14.0f).scale, 2.0f);
  EXPECT_EQ(agoq::encode_value(s, -14.0f, p), C::encode(-14.0f, p));
  EXPECT_EQ(agoq::decode_value(s, 0x9, p), -14.0f);
}

} // namespace

// The GPU integer encoders (quant/chunk_codec.cuh, int_block_in_range) drop the clamp and the NaN
// test for blocks whose scale is normal and finite, and round with t + 1.5 * 2^23 instead of a
// conversion; the decoders rebuild q from the code the same way. These are the facts they rest
// on, checked against the codecs the host reference uses.
namespace {

constexpr float kMagic = 12582912.0f; // 1.5 * 2^23
constexpr std::uint32_t kMagicBits = 0x4B400000u;

bool normal_finite(float s) {
  return s >= std::numeric_limits<float>::min() && s <= std::numeric_limits<float>::max();
}

//! |x * inv| < qmax + 1/2 for the block's extreme values, and the low N bits of
//! bits(x * inv + 1.5 * 2^23) are the codec's code, for random blocks of every magnitude.
template <agoq::format F> void check_symmetric_fast_path(agoq::scale_kind kind) {
  using C = agoq::codec<F, true>;
  std::mt19937 rng(static_cast<unsigned>(F) * 7u + static_cast<unsigned>(kind));
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-140, 120);
  std::uniform_real_distribution<float> frac(-1.0f, 1.0f);
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
  int checked = 0;
  for (int i = 0; i < 20000; ++i) {
    const float amax = std::ldexp(mant(rng), expo(rng));
    const agoq::block_params p = C::params(amax, kind);
    if (!normal_finite(p.scale)) continue; // those blocks take the per-element path
    ++checked;
    for (float x : {amax, -amax, std::nextafter(amax, 0.0f), amax * frac(rng), amax * frac(rng)}) {
      const float t = agoq::detail::mul_rn(x, p.inv);
      ASSERT_LT(std::fabs(t), C::qmax + 0.5f) << amax << " " << x;
      const std::uint32_t fast = agoq::detail::float_to_bits(agoq::detail::add_rn(t, kMagic)) & mask;
      ASSERT_EQ(fast, std::uint32_t(C::encode(x, p)) & mask) << amax << " " << x;
    }
  }
  EXPECT_GT(checked, 10000);
}

template <agoq::format F> void check_asymmetric_fast_path() {
  using C = agoq::codec<F, false>;
  std::mt19937 rng(static_cast<unsigned>(F) * 11u);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> expo(-120, 120);
  std::uniform_real_distribution<float> u01(0.0f, 1.0f);
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
  for (int i = 0; i < 20000; ++i) {
    const float a = std::ldexp(mant(rng), expo(rng)) * (u01(rng) < 0.5f ? -1.0f : 1.0f);
    const float b = a + std::ldexp(mant(rng), expo(rng));
    const float mn = std::fmin(a, b), mx = std::fmax(a, b);
    const agoq::block_params p = C::params(mn, mx);
    if (!normal_finite(p.scale)) continue;
    for (float x : {mn, mx, mn + (mx - mn) * u01(rng)}) {
      if (x < mn || x > mx) continue;
      const float t = agoq::detail::mul_rn(agoq::detail::sub_rn(x, p.zero), p.inv);
      ASSERT_GE(t, 0.0f);
      ASSERT_LT(t, C::qmax + 0.5f) << mn << " " << mx << " " << x;
      const std::uint32_t fast = agoq::detail::float_to_bits(agoq::detail::add_rn(t, kMagic)) & mask;
      ASSERT_EQ(fast, std::uint32_t(C::encode(x, p)) & mask) << mn << " " << mx << " " << x;
    }
  }
}

} // namespace

TEST(int_codec, nearest_codes_of_normal_scale_blocks_need_no_clamp) {
  using agoq::format;
  for (agoq::scale_kind k :
       {agoq::scale_kind::fp32, agoq::scale_kind::pow2, agoq::scale_kind::e8m0}) {
    check_symmetric_fast_path<format::int2>(k);
    check_symmetric_fast_path<format::int4>(k);
    check_symmetric_fast_path<format::int5>(k);
    check_symmetric_fast_path<format::int8>(k);
  }
  check_asymmetric_fast_path<format::int2>();
  check_asymmetric_fast_path<format::int4>();
  check_asymmetric_fast_path<format::int8>();
}

TEST(int_codec, magic_number_decode_rebuilds_every_code) {
  for (int bits : {4, 8}) {
    const std::uint32_t half = 1u << (bits - 1), mask = (1u << bits) - 1u;
    for (std::uint32_t code = 0; code <= mask; ++code) {
      // symmetric: code XOR 2^(N-1) is q + 2^(N-1); asymmetric: the code is q
      const float sym = agoq::detail::sub_rn(agoq::detail::bits_to_float(kMagicBits | (code ^ half)),
                                             kMagic + float(half));
      const int q = (code & half) ? int(code) - int(1u << bits) : int(code);
      EXPECT_EQ(sym, float(q)) << bits << " " << code;
      const float asym = agoq::detail::sub_rn(agoq::detail::bits_to_float(kMagicBits | code), kMagic);
      EXPECT_EQ(asym, float(code)) << bits << " " << code;
    }
  }
}

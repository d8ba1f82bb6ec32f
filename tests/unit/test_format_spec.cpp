// SPDX-License-Identifier: Apache-2.0
// The quant_spec vocabulary: widths, validation messages and the constexpr size queries.
#include <agoq/format/format.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using agoq::format;
using agoq::quant_spec;

TEST(FormatSpec, int_format_maps_every_width_and_refuses_others) {
  for (int bits = 2; bits <= 8; ++bits) {
    EXPECT_TRUE(agoq::is_integer(agoq::int_format(bits)));
    EXPECT_EQ(agoq::bits_of(agoq::int_format(bits)), bits);
  }
  for (int bits : {-1, 0, 1, 9, 16}) {
    try {
      (void)agoq::int_format(bits);
      ADD_FAILURE() << "width " << bits << " was accepted";
    } catch (const agoq::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("bits must be in 2..8"), std::string::npos) << e.what();
    }
  }
}

TEST(FormatSpec, validate_names_the_field) {
  EXPECT_EQ(agoq::validate(quant_spec{}), nullptr);
  EXPECT_NE(std::string(agoq::validate(quant_spec{format::int8, 96})).find("spec.block"),
            std::string::npos);
  quant_spec asym_fp8{format::fp8_e4m3, 128};
  asym_fp8.symmetric = false;
  EXPECT_NE(std::string(agoq::validate(asym_fp8)).find("spec.symmetric"), std::string::npos);
  quant_spec asym_pow2{format::int4, 128, agoq::scale_kind::pow2};
  asym_pow2.symmetric = false;
  EXPECT_NE(std::string(agoq::validate(asym_pow2)).find("spec.scale"), std::string::npos);
}

TEST(FormatSpec, size_queries_pad_the_tail_block_and_count_rows) {
  // int4, block 32: a block is 16 bytes of codes; 100 elements need 4 blocks.
  constexpr quant_spec s4{format::int4, 32};
  static_assert(agoq::codes_bytes(s4, 100) == 64);
  static_assert(agoq::scales_count(s4, 100) == 4);
  static_assert(agoq::scales_bytes(s4, 100) == 16);
  // int5, block 64: 40 bytes a block; 3 rows of 65 columns = 3 x 2 blocks.
  constexpr quant_spec s5{format::int5, 64};
  static_assert(agoq::codes_bytes(s5, 3, 65) == 3 * 2 * 40);
  static_assert(agoq::scales_count(s5, 3, 65) == 6);
  // E8M0 scales are one byte; asymmetric adds an fp32 zero point per block.
  constexpr quant_spec mx{format::fp8_e4m3, 32, agoq::scale_kind::e8m0};
  static_assert(agoq::scales_bytes(mx, 64) == 2);
  constexpr quant_spec a8{format::int8, 128, agoq::scale_kind::fp32,
                          agoq::rounding::nearest_even, false};
  static_assert(agoq::zeros_bytes(a8, 256) == 8);
  EXPECT_DOUBLE_EQ(agoq::bits_per_element(quant_spec{format::int8, 128}), 8.25);
  EXPECT_DOUBLE_EQ(agoq::bits_per_element(mx), 8.25);
  EXPECT_EQ(agoq::codes_bytes(s4, 0), 0u);
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// Gradient-buffer geometry (grad/layout.hpp): size queries, bytes per parameter, bucket ranges,
// sub-views, and the argument rules accumulate/dequantize_to enforce.
#include "agoq/grad/layout.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace {

using agoq::grad_layout;
using agoq::quant_spec;

TEST(GradLayout, BytesPerParamInt8Block128IsExactly1_03125) {
  const quant_spec spec{};
  EXPECT_EQ(agoq::grad_bytes_per_param(spec), 1.03125); // 1 + 4/128, exactly representable
  EXPECT_LE(agoq::grad_bytes_per_param(spec), 1.04);    // issue 6 target
  static_assert(agoq::grad_bytes_per_param(quant_spec{}) == 1.03125, "constexpr");
  quant_spec s32 = spec;
  s32.block = 32;
  EXPECT_EQ(agoq::grad_bytes_per_param(s32), 1.125);
  quant_spec e8 = spec;
  e8.format = agoq::format::fp8_e4m3;
  e8.scale = agoq::scale_kind::e8m0;
  e8.block = 32;
  EXPECT_EQ(agoq::grad_bytes_per_param(e8), 1.03125); // 1 + 1/32
}

TEST(GradLayout, BytesRequired) {
  const quant_spec spec{};
  EXPECT_EQ(agoq::grad_bytes_required(0, spec, 128), 0u);
  // 1 parameter: one padded block of codes (128 B) + one scale (4 B), each region 256-aligned.
  EXPECT_EQ(agoq::grad_bytes_required(1, spec, 128), 256u + 256u);
  const std::int64_t n = std::int64_t(1) << 20;
  const std::size_t b = agoq::grad_bytes_required(n, spec, 1 << 16);
  EXPECT_EQ(b, std::size_t(n) + std::size_t(n / 128) * 4); // both regions already aligned
  EXPECT_EQ(double(b) / double(n), 1.03125);
  // Padding is bounded: < 2 * 256 bytes + one block's codes + scale.
  const std::int64_t odd = 1000003;
  const std::size_t bo = agoq::grad_bytes_required(odd, spec, 1024);
  EXPECT_GE(bo, std::size_t(odd) + std::size_t((odd + 127) / 128) * 4);
  EXPECT_LT(bo, std::size_t(odd) + std::size_t((odd + 127) / 128) * 4 + 512 + 128);
  static_assert(grad_layout{1 << 20, quant_spec{}, 1 << 16}.total_bytes() ==
                    (std::size_t(1) << 20) + (std::size_t(1) << 20) / 32,
                "constexpr size query");
  // The bucket size does not change the memory.
  EXPECT_EQ(agoq::grad_bytes_required(odd, spec, 128), bo);
}

TEST(GradLayout, Buckets) {
  const grad_layout l{1000, quant_spec{}, 256};
  EXPECT_EQ(l.validate(), nullptr);
  EXPECT_EQ(l.bucket_count(), 4);
  EXPECT_EQ(l.bucket_offset(3), 768);
  EXPECT_EQ(l.bucket_size(0), 256);
  EXPECT_EQ(l.bucket_size(3), 1000 - 768);
  EXPECT_EQ(l.bucket_size(4), 0);
  EXPECT_EQ(l.bucket_size(-1), 0);
  EXPECT_NE(l.check_bucket(4), nullptr);
  EXPECT_EQ(l.check_bucket(3), nullptr);
  EXPECT_EQ((grad_layout{0, quant_spec{}, 128}.bucket_count()), 0);
}

TEST(GradLayout, SubViewsPointIntoTheFlatTensor) {
  const grad_layout l{1000, quant_spec{}, 256};
  alignas(256) static unsigned char mem[4096];
  const agoq::quantized_view all = l.view(mem);
  EXPECT_EQ(all.codes, static_cast<void*>(mem));
  EXPECT_EQ(all.scales, static_cast<void*>(mem + 1024)); // codes: 8 blocks * 128 B = 1024
  EXPECT_EQ(all.cols, 1000);
  const agoq::quantized_view v = l.sub_view(mem, 384, 256);
  EXPECT_EQ(v.codes, static_cast<void*>(mem + 384));
  EXPECT_EQ(v.scales, static_cast<void*>(mem + 1024 + 3 * 4));
  EXPECT_EQ(v.cols, 256);
  EXPECT_EQ(v.rows, 1);
  quant_spec s4{};
  s4.format = agoq::format::int4;
  const grad_layout l4{1000, s4, 256};
  EXPECT_EQ(l4.sub_view(mem, 256, 128).codes, static_cast<void*>(mem + 128)); // 64 B per block
}

TEST(GradLayout, WriteRangeRules) {
  const grad_layout l{1000, quant_spec{}, 256};
  EXPECT_EQ(l.check_write_range(0, 1000), nullptr);
  EXPECT_EQ(l.check_write_range(128, 256), nullptr);
  EXPECT_EQ(l.check_write_range(896, 104), nullptr); // ends at the end of the space
  EXPECT_EQ(l.check_write_range(896, 0), nullptr);
  EXPECT_STREQ(l.check_write_range(64, 128), "offset must be a multiple of spec.block");
  EXPECT_STREQ(l.check_write_range(-128, 128), "offset must be >= 0");
  EXPECT_STREQ(l.check_write_range(0, -1), "count must be >= 0");
  EXPECT_STREQ(l.check_write_range(896, 105),
               "count must not run past the buffer (offset + count <= params)");
  EXPECT_STREQ(l.check_write_range(1024, 0),
               "count must not run past the buffer (offset + count <= params)");
  EXPECT_NE(std::string(l.check_write_range(0, 100)).find("multiple of spec.block"),
            std::string::npos);
  // Reads may end inside a block.
  EXPECT_EQ(l.check_read_range(0, 100), nullptr);
  EXPECT_STREQ(l.check_read_range(1, 100), "offset must be a multiple of spec.block");
  EXPECT_NE(l.check_read_range(128, 1000), nullptr);
}

TEST(GradLayout, BadLayoutsAreRefusedByName) {
  quant_spec asym{};
  asym.symmetric = false;
  EXPECT_NE(std::string(agoq::validate_grad_layout(10, asym, 128)).find("spec.symmetric"),
            std::string::npos);
  EXPECT_STREQ(agoq::validate_grad_layout(-1, quant_spec{}, 128), "params must be >= 0");
  EXPECT_STREQ(agoq::validate_grad_layout(10, quant_spec{}, 0), "bucket_elems must be > 0");
  EXPECT_STREQ(agoq::validate_grad_layout(10, quant_spec{}, 200),
               "bucket_elems must be a multiple of spec.block");
  quant_spec bad{};
  bad.block = 100;
  EXPECT_STREQ(agoq::validate_grad_layout(10, bad, 200), "spec.block must be 32, 64, 128 or 256");
  try {
    (void)agoq::grad_bytes_required(10, quant_spec{}, 100);
    FAIL() << "expected agoq::invalid_argument";
  } catch (const agoq::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "agoq::grad_bytes_required: bucket_elems must be a multiple of spec.block");
  }
}

TEST(GradLayout, AccumulateSeedsDifferPerOffsetAndSeed) {
  EXPECT_NE(agoq::grad_accumulate_seed(1, 0), agoq::grad_accumulate_seed(1, 128));
  EXPECT_NE(agoq::grad_accumulate_seed(1, 0), agoq::grad_accumulate_seed(2, 0));
  static_assert(agoq::grad_accumulate_seed(7, 256) == agoq::grad_accumulate_seed(7, 256), "");
}

} // namespace

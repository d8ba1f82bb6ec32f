// SPDX-License-Identifier: Apache-2.0
// The host tests' list of formats, and a quantized tensor in host memory: codes (poisoned with
// 0xAB, so an unwritten code shows), scales, zero points and the view over them.
#pragma once

#include <agoq/format/format.hpp>
#include <agoq/format/scale.hpp>
#include <agoq/quant/view.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace agoq_test {

//! Every code format, for loops over all of them.
inline constexpr agoq::format all_formats[] = {
    agoq::format::int2,     agoq::format::int3,    agoq::format::int4, agoq::format::int5,
    agoq::format::int6,     agoq::format::int7,    agoq::format::int8, agoq::format::fp8_e4m3,
    agoq::format::fp8_e5m2, agoq::format::fp4_e2m1};

struct qtensor {
  std::vector<std::uint8_t> codes, scales;
  std::vector<float> zeros;
  agoq::quantized_view v;
  qtensor(const agoq::quant_spec& s, std::int64_t rows, std::int64_t cols)
      : codes(agoq::codes_bytes(s, rows, cols), 0xAB), scales(agoq::scales_bytes(s, rows, cols)),
        zeros(std::size_t(agoq::scales_count(s, rows, cols))) {
    v.codes = codes.data();
    v.scales = scales.data();
    v.zeros = s.symmetric ? nullptr : zeros.data();
    v.rows = rows;
    v.cols = cols;
    v.spec = s;
  }
  float scale(std::int64_t bi) const { return agoq::load_scale(scales.data(), bi, v.spec.scale); }
  // code j of block bi, unpacked independently of the library (bit stream read)
  int code(std::int64_t bi, int j) const {
    const int bits = agoq::bits_of(v.spec.format);
    const std::size_t base = std::size_t(bi * agoq::block_code_bytes(v.spec));
    int c = 0;
    for (int k = 0; k < bits; ++k) {
      const int b = j * bits + k;
      c |= ((codes[base + std::size_t(b / 8)] >> (b % 8)) & 1) << k;
    }
    return c;
  }
};

} // namespace agoq_test

// SPDX-License-Identifier: Apache-2.0
// A quantized tensor in host memory for the host tests: codes (poisoned with 0xAB, so an
// unwritten code shows), scales, zero points and the view over them.
#pragma once

#include <agoq/format/format.hpp>
#include <agoq/format/scale.hpp>
#include <agoq/quant/view.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace agoq_test {

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

// SPDX-License-Identifier: Apache-2.0
//! @file quant/view.hpp
//! Trivially-copyable, non-owning views of a quantized tensor (codes, scales, optional zero points,
//! shape, spec). The layout is the one documented in format/format.hpp.
#pragma once

#include "agoq/format/format.hpp"

#include <cstdint>

namespace agoq {

//! A writable quantized tensor: rows x cols logical elements stored as codes + scales (+ zeros).
struct quantized_view {
  void* codes = nullptr;   //!< codes_bytes(spec, rows, cols) bytes
  void* scales = nullptr;  //!< scales_bytes(spec, rows, cols) bytes
  float* zeros = nullptr;  //!< scales_count(spec, rows, cols) floats when !spec.symmetric, else null
  std::int64_t rows = 1;
  std::int64_t cols = 0;
  quant_spec spec{};

  constexpr std::int64_t count() const noexcept { return rows * cols; }
};

//! A read-only quantized tensor.
struct const_quantized_view {
  const void* codes = nullptr;
  const void* scales = nullptr;
  const float* zeros = nullptr;
  std::int64_t rows = 1;
  std::int64_t cols = 0;
  quant_spec spec{};

  constexpr const_quantized_view() = default;
  constexpr const_quantized_view(const void* c, const void* s, const float* z, std::int64_t r,
                                 std::int64_t n, const quant_spec& sp) noexcept
      : codes(c), scales(s), zeros(z), rows(r), cols(n), spec(sp) {}
  constexpr const_quantized_view(const quantized_view& v) noexcept // NOLINT: implicit on purpose
      : codes(v.codes), scales(v.scales), zeros(v.zeros), rows(v.rows), cols(v.cols),
        spec(v.spec) {}

  constexpr std::int64_t count() const noexcept { return rows * cols; }
};

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file quant/view.hpp
//! Trivially-copyable, non-owning views of a quantized tensor (codes, scales, optional zero points,
//! shape, spec). The layout is the one documented in format/format.hpp.
#pragma once

#include "agoq/format/format.hpp"

#include <cstdint>
#include <type_traits>

namespace agoq {

namespace detail {
//! rows/cols of a view accept any integer type (int, std::size_t, std::int64_t, ...) without a
//! narrowing error in brace initialization; the value is converted to std::int64_t.
template <class R, class C>
using if_view_extents = std::enable_if_t<std::is_integral_v<R> && std::is_integral_v<C>, int>;
} // namespace detail

//! Stochastic rounding's seed read from device memory when the kernel runs: the seed is
//! `*ptr + offset` (ptr: device memory holding a std::uint64_t, 8-byte aligned). Captured in a
//! CUDA graph, each replay reads the value then current, so a trainer that updates *ptr between
//! replays (a cudaMemcpyAsync or a counter kernel captured with it) draws new noise each time,
//! as PyTorch's Philox state does. A host seed `s` and `device_seed{p, 0}` with *p == s give the
//! same codes.
struct device_seed {
  const std::uint64_t* ptr = nullptr;
  std::uint64_t offset = 0;
};

//! The leading dimension (elements between the starts of consecutive rows, >= cols) of the
//! unquantized side of a 2-D quantizer call, e.g.
//! `agoq::quantize(d_x, agoq::leading_dim{ld}, view, seed, stream)`.
//! A strong type so that the 1-D and 2-D overloads cannot be confused: a bare integer in a
//! quantizer call is always a seed, never a size; a leading dimension is always spelled
//! `leading_dim{...}` (explicit: no integer converts to it, and it converts to nothing).
struct leading_dim {
  std::int64_t value; //!< in elements

  //! From any integer type (`leading_dim{cols}` also for a std::size_t cols); not from bool or a
  //! floating-point value.
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  constexpr explicit leading_dim(I v) noexcept : value(static_cast<std::int64_t>(v)) {}

  friend constexpr bool operator==(leading_dim a, leading_dim b) noexcept {
    return a.value == b.value;
  }
  friend constexpr bool operator!=(leading_dim a, leading_dim b) noexcept { return !(a == b); }
};

//! A writable quantized tensor: rows x cols logical elements stored as codes + scales (+ zeros).
struct quantized_view {
  void* codes = nullptr;  //!< codes_bytes(spec, rows, cols) bytes
  void* scales = nullptr; //!< scales_bytes(spec, rows, cols) bytes
  float* zeros = nullptr; //!< scales_count(spec, rows, cols) floats when !spec.symmetric, else null
  std::int64_t rows = 1;
  std::int64_t cols = 0;
  quant_spec spec{};

  constexpr quantized_view() = default;
  //! `quantized_view{codes, scales, zeros, rows, cols, spec}`: rows and cols of any integer type
  //! (e.g. a std::size_t count, which brace initialization of std::int64_t fields would reject
  //! as narrowing), stored as std::int64_t.
  template <class R, class C, detail::if_view_extents<R, C> = 0>
  constexpr quantized_view(void* c, void* s, float* z, R r, C n, const quant_spec& sp) noexcept
      : codes(c), scales(s), zeros(z), rows(static_cast<std::int64_t>(r)),
        cols(static_cast<std::int64_t>(n)), spec(sp) {}

  //! rows x cols (exact when validate_shape(spec, rows, cols) accepts the shape).
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
  //! As quantized_view's: rows and cols of any integer type, stored as std::int64_t.
  template <class R, class C, detail::if_view_extents<R, C> = 0>
  constexpr const_quantized_view(const void* c, const void* s, const float* z, R r, C n,
                                 const quant_spec& sp) noexcept
      : codes(c), scales(s), zeros(z), rows(static_cast<std::int64_t>(r)),
        cols(static_cast<std::int64_t>(n)), spec(sp) {}
  constexpr const_quantized_view(const quantized_view& v) noexcept // NOLINT: implicit on purpose
      : codes(v.codes), scales(v.scales), zeros(v.zeros), rows(v.rows), cols(v.cols), spec(v.spec) {
  }

  constexpr std::int64_t count() const noexcept { return rows * cols; }
};

} // namespace agoq

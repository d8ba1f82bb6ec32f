// SPDX-License-Identifier: Apache-2.0
//! @file format/format.hpp
//! The vocabulary of a quantized tensor: `format`, `scale_kind`, `rounding`, `quant_spec`, and the
//! constexpr size queries callers use to allocate codes and scales.
//!
//! Storage layout (one rule for every format, documented once here):
//! - A tensor is rows x cols (1-D: one row). Blocks of `spec.block` elements run along a row; the
//!   last block of a row may be partial (a masked tail).
//! - Codes: every block occupies block * bits / 8 bytes, a tail block too (its unused codes are 0),
//!   so a row holds blocks_per_row * block * bits / 8 bytes and rows are stored back to back.
//!   Within a block, each group of eight values packs into `bits` bytes, little-endian: value i of
//!   the group holds bits [i*bits, i*bits + bits) of the group's 64-bit word.
//! - Scales: one per block, row-major (rows x blocks_per_row); fp32 for scale_kind::fp32 and
//!   scale_kind::pow2, one E8M0 byte for scale_kind::e8m0.
//! - Zero points (asymmetric integers only): one fp32 block minimum per block, same indexing.
//!
//! Numeric edges (the rules in format/codec.hpp; host and GPU alike, bit for bit):
//! - A block of finite values never decodes to +-Inf or NaN: a decoded product that overflows
//!   fp32 saturates at +-FLT_MAX, and writing an output of bf16/fp16 rounds to nearest even and
//!   saturates at that type's largest finite value (65504 for fp16), as cvt.rn.satfinite does.
//!   (fp32 sums that overflow, in dequantize_accumulate or the all-reduce, follow fp32 rules.)
//! - A block of tiny values keeps its relative accuracy: scales below 2^-126 encode exactly as
//!   if fp32 had an unbounded exponent (a power-of-two pre-scale). The scale itself is an fp32
//!   number, so below 2^-126 it holds fewer bits, and a block whose largest |x| is below about
//!   qmax x 2^-150 gets scale 0 and decodes to zeros.
//! - A block holding NaN or +-Inf decodes to NaN (scale NaN, codes 0); an all-zero block decodes
//!   to zeros (scale 0).
#pragma once

#include "agoq/config.hpp"
#include "agoq/status.hpp"

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

namespace agoq {

//! Element format of the codes. Integer formats are symmetric (signed, two's complement) unless
//! `quant_spec::symmetric` is false, in which case codes are unsigned with a per-block zero point.
enum class format : std::uint8_t {
  int2,
  int3,
  int4,
  int5,
  int6,
  int7,
  int8,
  fp8_e4m3,
  fp8_e5m2,
  fp4_e2m1,
};

//! How a block's scale is chosen and stored.
enum class scale_kind : std::uint8_t {
  fp32, //!< absmax / qmax, stored as fp32 (default)
  pow2, //!< absmax / qmax rounded up to a power of two, stored as fp32
  e8m0, //!< the same power of two, stored as one OCP MX E8M0 byte
};

//! How a scaled value is rounded to a code.
enum class rounding : std::uint8_t {
  nearest_even, //!< round to nearest, ties to even (default)
  stochastic,   //!< floor(x + u), u uniform in [0,1) from Philox keyed by (seed, element index)
};

//! Element type of an unquantized buffer (float, __half, __nv_bfloat16): what the collectives,
//! the type-erased launchers and the kernel set (quant/kernel_set.hpp) name.
enum class element_type : std::uint8_t { f32, f16, bf16 };

constexpr const char* to_string(element_type t) noexcept {
  switch (t) {
  case element_type::f32: return "f32";
  case element_type::f16: return "f16";
  case element_type::bf16: return "bf16";
  }
  return "unknown_type";
}

namespace detail {
//! True for f32, f16 and bf16 (a value cast from an integer may be none of them).
constexpr bool is_known(element_type t) noexcept {
  return t == element_type::f32 || t == element_type::f16 || t == element_type::bf16;
}
} // namespace detail

//! Bytes of one element of type `t` (4 or 2).
constexpr std::size_t size_of(element_type t) noexcept { return t == element_type::f32 ? 4 : 2; }

//! Bits per code.
constexpr int bits_of(format f) noexcept {
  switch (f) {
  case format::int2: return 2;
  case format::int3: return 3;
  case format::int4: return 4;
  case format::int5: return 5;
  case format::int6: return 6;
  case format::int7: return 7;
  case format::int8: return 8;
  case format::fp8_e4m3: return 8;
  case format::fp8_e5m2: return 8;
  case format::fp4_e2m1: return 4;
  }
  return 0;
}

//! True for the integer formats int2..int8 (the only ones that may be asymmetric).
constexpr bool is_integer(format f) noexcept {
  return f != format::fp8_e4m3 && f != format::fp8_e5m2 && f != format::fp4_e2m1;
}

//! The integer format of `bits` bits. Throws agoq::invalid_argument unless 2 <= bits <= 8.
constexpr format int_format(int bits) {
  switch (bits) {
  case 2: return format::int2;
  case 3: return format::int3;
  case 4: return format::int4;
  case 5: return format::int5;
  case 6: return format::int6;
  case 7: return format::int7;
  case 8: return format::int8;
  default:
    throw invalid_argument("agoq::int_format: bits must be in 2..8, got " + std::to_string(bits));
  }
}

//! The stable name of `f`, e.g. "int4", "fp8_e4m3" (the policy text form uses it).
constexpr const char* to_string(format f) noexcept {
  switch (f) {
  case format::int2: return "int2";
  case format::int3: return "int3";
  case format::int4: return "int4";
  case format::int5: return "int5";
  case format::int6: return "int6";
  case format::int7: return "int7";
  case format::int8: return "int8";
  case format::fp8_e4m3: return "fp8_e4m3";
  case format::fp8_e5m2: return "fp8_e5m2";
  case format::fp4_e2m1: return "fp4_e2m1";
  }
  return "unknown_format";
}

//! "fp32", "pow2" or "e8m0".
constexpr const char* to_string(scale_kind s) noexcept {
  switch (s) {
  case scale_kind::fp32: return "fp32";
  case scale_kind::pow2: return "pow2";
  case scale_kind::e8m0: return "e8m0";
  }
  return "unknown_scale";
}

//! "nearest_even" or "stochastic".
constexpr const char* to_string(rounding r) noexcept {
  switch (r) {
  case rounding::nearest_even: return "nearest_even";
  case rounding::stochastic: return "stochastic";
  }
  return "unknown_rounding";
}

//! Stream the names above.
inline std::ostream& operator<<(std::ostream& os, format f) { return os << to_string(f); }
inline std::ostream& operator<<(std::ostream& os, scale_kind s) { return os << to_string(s); }
inline std::ostream& operator<<(std::ostream& os, rounding r) { return os << to_string(r); }
inline std::ostream& operator<<(std::ostream& os, element_type t) { return os << to_string(t); }

//! Everything needed to encode or decode a quantized tensor besides its shape and pointers.
//! Aggregate, so `quant_spec{format::int4, 64}` works; check it with `validate`. Prints as
//! "int4/64/fp32/nearest_even" ("int4_asym/..." when asymmetric).
struct quant_spec {
  agoq::format format = agoq::format::int8;        //!< code format
  int block = 128;                                 //!< elements per scale: 32, 64, 128 or 256
  agoq::scale_kind scale = agoq::scale_kind::fp32; //!< how block scales are chosen/stored
  agoq::rounding rounding = agoq::rounding::nearest_even; //!< how values round to codes
  bool symmetric = true; //!< false: unsigned codes + fp32 block minimum (integer formats only)

  friend constexpr bool operator==(const quant_spec& a, const quant_spec& b) noexcept {
    return a.format == b.format && a.block == b.block && a.scale == b.scale &&
           a.rounding == b.rounding && a.symmetric == b.symmetric;
  }
  friend constexpr bool operator!=(const quant_spec& a, const quant_spec& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const quant_spec& s) {
    return os << s.format << (s.symmetric ? "" : "_asym") << '/' << s.block << '/' << s.scale << '/'
              << s.rounding;
  }
};

//! True for the block sizes the library supports (32, 64, 128, 256).
constexpr bool is_supported_block(int block) noexcept {
  return block == 32 || block == 64 || block == 128 || block == 256;
}

//! A null message if `s` is a valid spec, else a sentence naming the field and the rule it broke.
constexpr const char* validate(const quant_spec& s) noexcept {
  if (!is_supported_block(s.block)) return "spec.block must be 32, 64, 128 or 256";
  if (bits_of(s.format) == 0) return "spec.format is not a known format";
  if (!s.symmetric && !is_integer(s.format))
    return "spec.symmetric may be false only for integer formats (int2..int8)";
  if (s.scale != scale_kind::fp32 && s.scale != scale_kind::pow2 && s.scale != scale_kind::e8m0)
    return "spec.scale is not a known scale_kind (fp32, pow2 or e8m0)";
  if (s.rounding != rounding::nearest_even && s.rounding != rounding::stochastic)
    return "spec.rounding is not a known rounding (nearest_even or stochastic)";
  if (s.scale != scale_kind::fp32 && !s.symmetric)
    return "spec.scale must be fp32 for asymmetric integer formats";
  return nullptr;
}

//! Blocks in one row of `cols` elements: ceil(cols / block), exact for every cols >= 0.
constexpr std::int64_t blocks_per_row(const quant_spec& s, std::int64_t cols) noexcept {
  return cols > 0 ? (cols - 1) / s.block + 1 : (cols + s.block - 1) / s.block;
}

//! Bytes of codes for one block.
constexpr std::int64_t block_code_bytes(const quant_spec& s) noexcept {
  return std::int64_t(s.block) * bits_of(s.format) / 8;
}

//! A null message if a rows x cols tensor of spec `s` (valid, see `validate`) has exact size
//! queries, else a sentence naming the argument and the rule it broke: rows and cols must be
//! >= 0, and the padded element count rows x blocks_per_row(s, cols) x s.block must fit in
//! std::int64_t (then rows x cols, the codes, scales and zeros byte counts and every element and
//! block index fit too). The launchers (quant/quantize.cuh) and agoq::ref refuse other shapes
//! with it. Example: `validate_shape(spec, 1 << 20, 4096) == nullptr`, while rows = cols = 2^32
//! is refused (codes_bytes would wrap to 0).
constexpr const char* validate_shape(const quant_spec& s, std::int64_t rows,
                                     std::int64_t cols) noexcept {
  if (rows < 0) return "rows must be >= 0";
  if (cols < 0) return "cols must be >= 0";
  const std::int64_t nb = blocks_per_row(s, cols);
  if (nb > INT64_MAX / s.block || (rows > 0 && nb * s.block > INT64_MAX / rows))
    return "rows x cols is too large: rows x ceil(cols / spec.block) x spec.block must fit in "
           "std::int64_t (the byte counts would overflow)";
  return nullptr;
}

//! Domain of the size queries below (codes_bytes, scales_count, scales_bytes, zeros_bytes and
//! their 1-D forms): they are exact for a valid spec and a shape that validate_shape accepts
//! (rows, cols >= 0 and rows x blocks_per_row x block <= INT64_MAX). They stay constexpr and
//! noexcept, so outside that domain they do not check: the arithmetic wraps and the result means
//! nothing. Check a shape that comes from outside with validate_shape first (the launchers and
//! agoq::ref do, and refuse it with invalid_argument).

//! Bytes of codes for a rows x cols tensor (tail blocks padded to a whole block). Exact in the
//! domain above.
constexpr std::size_t codes_bytes(const quant_spec& s, std::int64_t rows,
                                  std::int64_t cols) noexcept {
  return std::size_t(rows * blocks_per_row(s, cols) * block_code_bytes(s));
}
//! 1-D form: bytes of codes for `count` elements (one row).
constexpr std::size_t codes_bytes(const quant_spec& s, std::int64_t count) noexcept {
  return codes_bytes(s, 1, count);
}

//! Number of scales (= number of blocks, = number of zero points when asymmetric).
constexpr std::int64_t scales_count(const quant_spec& s, std::int64_t rows,
                                    std::int64_t cols) noexcept {
  return rows * blocks_per_row(s, cols);
}
//! 1-D form of scales_count.
constexpr std::int64_t scales_count(const quant_spec& s, std::int64_t count) noexcept {
  return scales_count(s, 1, count);
}

//! Bytes of one stored scale: 1 for E8M0, else 4.
constexpr int scale_bytes(const quant_spec& s) noexcept {
  return s.scale == scale_kind::e8m0 ? 1 : 4;
}
//! Bytes of the scales of a rows x cols tensor (scales_count x scale_bytes). Exact in the domain
//! above.
//! Example: `scales_bytes(quant_spec{format::int8, 128}, 4096)` is 32 * 4 = 128.
constexpr std::size_t scales_bytes(const quant_spec& s, std::int64_t rows,
                                   std::int64_t cols) noexcept {
  return std::size_t(scales_count(s, rows, cols)) * std::size_t(scale_bytes(s));
}
//! 1-D form of scales_bytes.
constexpr std::size_t scales_bytes(const quant_spec& s, std::int64_t count) noexcept {
  return scales_bytes(s, 1, count);
}

//! Bytes of zero points (0 when symmetric).
constexpr std::size_t zeros_bytes(const quant_spec& s, std::int64_t rows,
                                  std::int64_t cols) noexcept {
  return s.symmetric ? 0 : std::size_t(scales_count(s, rows, cols)) * sizeof(float);
}
//! 1-D form of zeros_bytes.
constexpr std::size_t zeros_bytes(const quant_spec& s, std::int64_t count) noexcept {
  return zeros_bytes(s, 1, count);
}

//! Storage bits per element including scales and zero points, for full blocks.
//! Example: 8.25 for int8 / block 128 / fp32 scales, 4.25 for fp4_e2m1 / block 32 / e8m0.
constexpr double bits_per_element(const quant_spec& s) noexcept {
  return bits_of(s.format) + (8.0 * scale_bytes(s) + (s.symmetric ? 0.0 : 32.0)) / s.block;
}

} // namespace agoq

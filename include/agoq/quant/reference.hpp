// SPDX-License-Identifier: Apache-2.0
//! @file quant/reference.hpp
//! The host reference quantizer (namespace agoq::ref): plain loops, written for clarity. It is the
//! oracle the GPU kernels must match bit for bit. Layout: format/format.hpp. Numerics: the rules
//! in format/codec.hpp (blocks, scales, NaN/Inf and zero blocks), int.hpp, fp8.hpp, fp4.hpp,
//! scale.hpp and philox.hpp (stochastic rounding uses u = philox_uniform(seed, r * cols + c)).
//!
//! Input element (r, c) is x[r * ld + c], the leading dimension passed as `agoq::leading_dim{ld}`
//! (quant/view.hpp; a bare integer argument is always a seed); 1-D overloads: one row, ld = cols.
//! Element types T: float, __half, __nv_bfloat16 (converted to fp32 exactly; outputs rounded to T
//! by to_output: nearest even, bf16/fp16 saturating). Codes of a tail block beyond cols are 0.
//!
//! Errors: agoq::invalid_argument, "agoq::ref::<function>: <argument> <rule>", for an invalid spec
//! (agoq::validate), negative rows/cols, a shape whose byte counts overflow std::int64_t
//! (agoq::validate_shape), ld < cols or too large, a null data/codes/scales pointer when
//! rows * cols > 0, a null zeros pointer when the spec is asymmetric. A zero count is a no-op.
#pragma once

#include "agoq/error.hpp"
#include "agoq/format/codec.hpp"
#include "agoq/format/element.hpp"
#include "agoq/format/format.hpp"
#include "agoq/format/philox.hpp"
#include "agoq/quant/view.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace agoq {
namespace ref {
namespace detail {

using agoq::detail::from_float; // format/element.hpp
using agoq::detail::to_float;

[[noreturn]] inline void fail(const char* fn, const std::string& what) {
  throw invalid_argument(std::string("agoq::ref::") + fn + ": " + what);
}

//! Checks the shape and pointer rules; returns false for a zero count (no-op).
inline bool check_args(const char* fn, const quant_spec& spec, std::int64_t rows, std::int64_t cols,
                       std::int64_t ld, const char* data_name, const void* data,
                       const char* view_name, const void* codes, const void* scales,
                       const float* zeros) {
  if (const char* msg = validate(spec)) fail(fn, std::string(view_name) + "." + msg);
  if (rows < 0)
    fail(fn, std::string(view_name) + ".rows must be >= 0 (got " + std::to_string(rows) + ")");
  if (cols < 0)
    fail(fn, std::string(view_name) + ".cols must be >= 0 (got " + std::to_string(cols) + ")");
  if (validate_shape(spec, rows, cols) != nullptr) // rows, cols >= 0: the byte counts overflow
    fail(fn, std::string(view_name) + ".rows x " + view_name +
                 ".cols is too large: rows x ceil(cols / spec.block) x spec.block must fit in "
                 "std::int64_t (got rows=" +
                 std::to_string(rows) + ", cols=" + std::to_string(cols) + ")");
  if (ld < cols)
    fail(fn, "ld must be >= cols (got ld=" + std::to_string(ld) + ", cols=" + std::to_string(cols) +
                 ")");
  if (rows > 1 && ld > (INT64_MAX - cols) / (rows - 1))
    fail(fn, "ld is too large: (rows - 1) x ld + cols must fit in std::int64_t (got ld=" +
                 std::to_string(ld) + ", rows=" + std::to_string(rows) + ")");
  if (rows == 0 || cols == 0) return false;
  if (data == nullptr) fail(fn, std::string(data_name) + " must not be null when rows * cols > 0");
  if (codes == nullptr)
    fail(fn, std::string(view_name) + ".codes must not be null when rows * cols > 0");
  if (scales == nullptr)
    fail(fn, std::string(view_name) + ".scales must not be null when rows * cols > 0");
  if (!spec.symmetric && zeros == nullptr)
    fail(fn, std::string(view_name) + ".zeros must not be null when spec.symmetric is false");
  return true;
}

//! Quantizes one block of n (<= spec.block) fp32 values v (element j has logical index
//! idx0 + j) into block_codes (block_code_bytes bytes, tail codes 0), scale/zero index bi.
template <class C>
inline void quantize_block(const quant_spec& spec, const float* v, int n, std::uint8_t* block_codes,
                           void* scales, float* zeros, std::int64_t bi, std::uint64_t seed,
                           std::uint64_t idx0) {
  block_params p;
  if constexpr (C::symmetric) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j)
      amax = agoq::detail::absmax_step(amax, v[j]);
    p = C::params(amax, spec.scale);
  } else {
    float mn = v[0], mx = v[0];
    for (int j = 0; j < n; ++j) {
      mn = agoq::detail::nan_min(mn, v[j]);
      mx = agoq::detail::nan_max(mx, v[j]);
    }
    p = C::params(mn, mx);
  }
  store_scale(scales, bi, p.scale, spec.scale);
  if (!spec.symmetric) zeros[bi] = p.zero;

  std::uint8_t q[256] = {}; // spec.block <= 256; tail codes stay 0
  for (int j = 0; j < n; ++j) {
    if (spec.rounding == rounding::stochastic)
      q[j] = C::encode_sr(v[j], p, philox_uniform(seed, idx0 + std::uint64_t(j)));
    else
      q[j] = C::encode(v[j], p);
  }
  for (int g = 0; g < spec.block / 8; ++g)
    pack8<C::bits>(q + g * 8, block_codes + g * C::bits);
}

//! Decodes the first n values of one block.
template <class C>
inline void decode_block(const quant_spec& spec, const std::uint8_t* block_codes, int n,
                         const void* scales, const float* zeros, std::int64_t bi, float* out) {
  const block_params p = agoq::detail::params_from_stored(load_scale(scales, bi, spec.scale),
                                                          spec.symmetric ? 0.0f : zeros[bi]);
  std::uint8_t q[8];
  for (int g = 0; g * 8 < n; ++g) {
    unpack8<C::bits>(block_codes + g * C::bits, q);
    for (int i = 0; i < 8 && g * 8 + i < n; ++i)
      out[g * 8 + i] = C::decode(q[i], p);
  }
}

//! Calls fn(r, c0, n, code_byte_offset, block_index) for every block (n = valid elements).
template <class Fn>
inline void for_each_block(const quant_spec& spec, std::int64_t rows, std::int64_t cols, Fn&& fn) {
  const std::int64_t nb = blocks_per_row(spec, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t c0 = b * spec.block;
      const int n = int(cols - c0 < spec.block ? cols - c0 : spec.block);
      const std::int64_t bi = r * nb + b;
      fn(r, c0, n, bi * block_code_bytes(spec), bi);
    }
}

} // namespace detail

//! Quantizes the rows x cols matrix x (element (r, c) at x[r * ld + c]) into `out`
//! (out.rows x out.cols, out.spec). seed keys Philox for stochastic rounding.
template <class T>
inline void quantize(const T* x, leading_dim ld_arg, quantized_view out, std::uint64_t seed = 0) {
  const std::int64_t ld = ld_arg.value;
  const quant_spec spec = out.spec;
  if (!detail::check_args("quantize", spec, out.rows, out.cols, ld, "x", x, "out", out.codes,
                          out.scales, out.zeros))
    return;
  auto* codes = static_cast<std::uint8_t*>(out.codes);
  dispatch_codec(spec, [&](auto c) {
    using C = decltype(c);
    std::vector<float> v(std::size_t(spec.block));
    detail::for_each_block(
        spec, out.rows, out.cols,
        [&](std::int64_t r, std::int64_t c0, int n, std::int64_t off, std::int64_t bi) {
          for (int j = 0; j < n; ++j)
            v[std::size_t(j)] = detail::to_float(x[r * ld + c0 + j]);
          detail::quantize_block<C>(spec, v.data(), n, codes + off, out.scales, out.zeros, bi, seed,
                                    std::uint64_t(r * out.cols + c0));
        });
  });
}

//! 1-D quantize: x holds out.rows * out.cols contiguous elements (ld = out.cols).
template <class T> inline void quantize(const T* x, quantized_view out, std::uint64_t seed = 0) {
  quantize(x, leading_dim{out.cols}, out, seed);
}

//! Dequantizes `in` into y (element (r, c) at y[r * ld + c]), rounded to T by to_output.
template <class T> inline void dequantize(const_quantized_view in, T* y, leading_dim ld_arg) {
  const std::int64_t ld = ld_arg.value;
  const quant_spec spec = in.spec;
  if (!detail::check_args("dequantize", spec, in.rows, in.cols, ld, "y", y, "in", in.codes,
                          in.scales, in.zeros))
    return;
  const auto* codes = static_cast<const std::uint8_t*>(in.codes);
  dispatch_codec(spec, [&](auto c) {
    using C = decltype(c);
    std::vector<float> v(std::size_t(spec.block));
    detail::for_each_block(
        spec, in.rows, in.cols,
        [&](std::int64_t r, std::int64_t c0, int n, std::int64_t off, std::int64_t bi) {
          detail::decode_block<C>(spec, codes + off, n, in.scales, in.zeros, bi, v.data());
          for (int j = 0; j < n; ++j)
            y[r * ld + c0 + j] = agoq::detail::to_output<T>(v[std::size_t(j)]);
        });
  });
}

//! 1-D dequantize (ld = in.cols).
template <class T> inline void dequantize(const_quantized_view in, T* y) {
  dequantize(in, y, leading_dim{in.cols});
}

//! acc[r * ld + c] = fmaf(decoded(r, c), alpha, acc[r * ld + c]) (one rounding).
inline void dequantize_accumulate(const_quantized_view in, float* acc, leading_dim ld_arg,
                                  float alpha = 1.0f) {
  const std::int64_t ld = ld_arg.value;
  const quant_spec spec = in.spec;
  if (!detail::check_args("dequantize_accumulate", spec, in.rows, in.cols, ld, "acc", acc, "in",
                          in.codes, in.scales, in.zeros))
    return;
  const auto* codes = static_cast<const std::uint8_t*>(in.codes);
  dispatch_codec(spec, [&](auto c) {
    using C = decltype(c);
    std::vector<float> v(std::size_t(spec.block));
    detail::for_each_block(
        spec, in.rows, in.cols,
        [&](std::int64_t r, std::int64_t c0, int n, std::int64_t off, std::int64_t bi) {
          detail::decode_block<C>(spec, codes + off, n, in.scales, in.zeros, bi, v.data());
          for (int j = 0; j < n; ++j) {
            float& a = acc[r * ld + c0 + j];
            a = agoq::detail::fma_f(v[std::size_t(j)], alpha, a);
          }
        });
  });
}

//! 1-D dequantize_accumulate (ld = in.cols), like the GPU launcher's 1-D form.
inline void dequantize_accumulate(const_quantized_view in, float* acc, float alpha = 1.0f) {
  dequantize_accumulate(in, acc, leading_dim{in.cols}, alpha);
}
//! An integer third argument is refused at compile time: it is neither alpha (a float) nor a
//! leading dimension (spelled leading_dim{ld}).
template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
void dequantize_accumulate(const_quantized_view in, float* acc, I alpha_or_ld) = delete;

//! buf := quantize(dequantize(buf) + x): per block, s_j = decoded_j + float(x_j) (plain fp32
//! add), then the block is requantized from s (a new scale per block; Philox index r*cols + c).
template <class T>
inline void accumulate_requantize(quantized_view buf, const T* x, leading_dim ld_arg,
                                  std::uint64_t seed = 0) {
  const std::int64_t ld = ld_arg.value;
  const quant_spec spec = buf.spec;
  if (!detail::check_args("accumulate_requantize", spec, buf.rows, buf.cols, ld, "x", x, "buf",
                          buf.codes, buf.scales, buf.zeros))
    return;
  auto* codes = static_cast<std::uint8_t*>(buf.codes);
  dispatch_codec(spec, [&](auto c) {
    using C = decltype(c);
    std::vector<float> v(std::size_t(spec.block));
    detail::for_each_block(
        spec, buf.rows, buf.cols,
        [&](std::int64_t r, std::int64_t c0, int n, std::int64_t off, std::int64_t bi) {
          detail::decode_block<C>(spec, codes + off, n, buf.scales, buf.zeros, bi, v.data());
          for (int j = 0; j < n; ++j)
            v[std::size_t(j)] =
                agoq::detail::add_rn(v[std::size_t(j)], detail::to_float(x[r * ld + c0 + j]));
          detail::quantize_block<C>(spec, v.data(), n, codes + off, buf.scales, buf.zeros, bi, seed,
                                    std::uint64_t(r * buf.cols + c0));
        });
  });
}

//! 1-D accumulate_requantize (ld = buf.cols).
template <class T>
inline void accumulate_requantize(quantized_view buf, const T* x, std::uint64_t seed = 0) {
  accumulate_requantize(buf, x, leading_dim{buf.cols}, seed);
}

} // namespace ref
} // namespace agoq

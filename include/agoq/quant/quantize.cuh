// SPDX-License-Identifier: Apache-2.0
//! @file quant/quantize.cuh
//! GPU block-wise quantizers: `quantize`, `dequantize`, `dequantize_accumulate` and
//! `accumulate_requantize`, for every format of format/format.hpp.
//!
//! Common rules of these launchers:
//! - Element types T: float, __half, __nv_bfloat16. Tensors are rows x cols with a leading
//!   dimension passed as `agoq::leading_dim{ld}` (elements, >= cols; quant/view.hpp); the 1-D
//!   overloads take `view.cols` elements (rows = 1). A bare integer argument is always a seed:
//!   `accumulate_requantize(buf, x, n, stream)` uses seed n, never leading dimension n.
//!   The quantized side uses the layout of format/format.hpp (`codes_bytes`, `scales_bytes`,
//!   `zeros_bytes` size it); a shape outside the domain of those queries (validate_shape: the
//!   byte counts would overflow std::int64_t) is refused.
//! - Pointers: codes aligned to 16 bytes (int8/fp8), 8 (int4/fp4) or 4 (int2), other widths 1;
//!   fp32/pow2 scales and zeros to 4 bytes; the unquantized x / y / acc to alignof(T).
//! - The stream is last. Nothing allocates or synchronizes; every launcher may be captured in a
//!   CUDA graph. Results are bit-identical to agoq::ref (quant/reference.hpp) for the same seed.
//! - Arguments are checked before any launch: a broken rule returns status::invalid_argument and
//!   `agoq::last_error_message()` names the argument and the rule (AGOQ_TRY turns it into an
//!   agoq::invalid_argument exception). A count of zero launches nothing and succeeds.
//! - Input and output pointers must not overlap (except accumulate_requantize's own buffer).
//!
//! Example:
//! @code
//!   // INT8, block 128, fp32 scales; d_codes and d_scales sized by codes_bytes / scales_bytes
//!   const agoq::quant_spec spec{agoq::format::int8, 128};
//!   agoq::quantized_view q{d_codes, d_scales, nullptr, 1, n, spec};
//!   AGOQ_TRY(agoq::quantize(d_x, q, /*seed=*/0, stream)); // d_x: n bf16 values
//!   AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), d_y, stream));
//! @endcode
#pragma once

#include "agoq/error.hpp"
#include "agoq/quant/dispatch.cuh"
#include "agoq/quant/flat.cuh"
#include "agoq/quant/kernels.cuh"
#include "agoq/quant/tuning.cuh"
#include "agoq/quant/view.hpp"
#include "agoq/version.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

template <class T>
inline constexpr bool is_element_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }
inline bool aligned4(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 3u) == 0; }

//! Rows may use 16-byte vector accesses when the base is aligned and every row start is too.
template <class T> bool rows_vectorizable(const T* p, std::int64_t rows, std::int64_t ld) {
  return aligned16(p) && (rows == 1 || (ld * std::int64_t(sizeof(T))) % 16 == 0);
}

//! Checks shared by all launchers; null when fine, else the rule that broke. `elem_bytes` is
//! sizeof of the unquantized side's element type (its extent must fit in std::int64_t bytes).
inline const char* check_view(const const_quantized_view& v, std::int64_t ld,
                              std::size_t elem_bytes) {
  if (const char* m = validate(v.spec)) return m;
  if (const char* m = validate_shape(v.spec, v.rows, v.cols)) return m; // rows, cols, overflow
  if (ld < v.cols) return "ld must be >= cols";
  // element (r, c) lies at r * ld + c: the last one, and its byte offset, must be representable
  if (v.rows > 1 && ld > (INT64_MAX / std::int64_t(elem_bytes) - v.cols) / (v.rows - 1))
    return "ld is too large: ((rows - 1) x ld + cols) x sizeof(T) must fit in std::int64_t";
  if (v.count() == 0) return nullptr;
  if (v.codes == nullptr) return "codes must not be null when the tensor is not empty";
  if (v.scales == nullptr) return "scales must not be null when the tensor is not empty";
  if (!v.spec.symmetric && v.zeros == nullptr)
    return "zeros must not be null for an asymmetric spec";
  if (!v.spec.symmetric && !aligned4(v.zeros)) return "zeros must be 4-byte aligned (fp32)";
  // A thread's 16 codes are stored with one aligned 16/8/4-byte access.
  const int bits = bits_of(v.spec.format);
  const unsigned align = bits == 8 ? 16u : bits == 4 ? 8u : bits == 2 ? 4u : 1u;
  if ((reinterpret_cast<std::uintptr_t>(v.codes) & (align - 1)) != 0)
    return "codes must be aligned to 16 bytes (int8/fp8), 8 (int4/fp4) or 4 (int2)";
  if (v.spec.scale != scale_kind::e8m0 && (reinterpret_cast<std::uintptr_t>(v.scales) & 3u) != 0)
    return "scales must be 4-byte aligned for fp32/pow2 scales";
  return nullptr;
}

//! How the kernels see a rows x cols tensor with leading dimension `ld`. A contiguous 2-D tensor
//! whose rows hold whole blocks (ld == cols, cols % block == 0) has the same blocks in the same
//! order, the same codes and scales and the same element indices r * cols + c (stochastic
//! rounding) as one row of rows * cols elements, so it runs as that row: the 1-D fast path.
struct launch_layout {
  block_grid g;
  std::int64_t ld;
};

inline launch_layout layout_of(const const_quantized_view& v, std::int64_t ld) {
  std::int64_t rows = v.rows, cols = v.cols;
  if (rows > 1 && ld == cols && cols % v.spec.block == 0) {
    cols *= rows;
    rows = 1;
    ld = cols;
  }
  return {block_grid{rows, cols, blocks_per_row(v.spec, cols), v.spec.block,
                     log2_lanes_of(v.spec.block)},
          ld};
}

//! One row from a 16-byte aligned start: its full chunks lie back to back (chunk c at element
//! 16 c), so the kernels move whole warp spans of them with coalesced copies. 0 otherwise.
inline std::int64_t dense_chunks(const void* p, const block_grid& g) {
  return g.rows == 1 && aligned16(p) ? g.cols / chunk_elems : 0;
}

//! Kernel arguments of quantize / accumulate_requantize over `buf` with input x (leading
//! dimension ld), laid out by layout_of.
template <class T>
quant_args make_quant_args(const T* x, std::int64_t ld, const quantized_view& buf,
                           std::uint64_t seed) {
  const launch_layout l = layout_of(buf, ld);
  return quant_args{l.g,
                    l.ld,
                    rows_vectorizable(x, l.g.rows, l.ld),
                    aligned4(buf.scales),
                    dense_chunks(x, l.g),
                    static_cast<std::uint8_t*>(buf.codes),
                    buf.scales,
                    buf.zeros,
                    buf.spec.scale,
                    buf.spec.rounding,
                    seed};
}

//! Kernel arguments of dequantize / dequantize_accumulate of `in` into y (leading dimension ld).
template <class T>
dequant_args make_dequant_args(const const_quantized_view& in, T* y, std::int64_t ld, float alpha) {
  const launch_layout l = layout_of(in, ld);
  return dequant_args{l.g,
                      l.ld,
                      rows_vectorizable(y, l.g.rows, l.ld),
                      aligned4(in.scales),
                      dense_chunks(y, l.g),
                      static_cast<const std::uint8_t*>(in.codes),
                      in.scales,
                      in.zeros,
                      in.spec.scale,
                      alpha};
}

//! Grid size for `chunks` 16-element chunks on the current device: one resident wave of the
//! quantize-type kernels (`quantize_type`) or of the dequantize-type ones.
inline status launch_shape(std::int64_t chunks, int& grid, int& threads,
                           bool quantize_type = false) {
  int dev = 0, sms = 0, major = 0, minor = 0;
  AGOQ_CUDA_RETURN(cudaGetDevice(&dev));
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const quant_tuning t = quant_tuning_for(major * 10 + minor);
  threads = t.threads;
  const std::int64_t needed = (chunks + threads - 1) / threads;
  // one resident wave: as many CTAs per SM as the kernel's __launch_bounds__ let in
  const std::int64_t cap =
      std::int64_t(sms) * (quantize_type ? t.quantize_ctas_per_sm : t.dequantize_ctas_per_sm);
  grid = int(needed < cap ? needed : cap);
  return status::success;
}

inline status launched() { return from_cuda(cudaGetLastError()); }

//! True when p is aligned to its element type (4 bytes for float, 2 for __half/__nv_bfloat16).
template <class T> bool element_aligned(const T* p) {
  return (reinterpret_cast<std::uintptr_t>(p) % alignof(T)) == 0;
}

} // namespace detail

inline namespace v0_1 {

//! Quantizes the rows x cols tensor `x` (leading dimension `ld`) into `out`, one block at a time:
//! block amax (or min/max), scale, encode, pack; `x` is read once. `seed` keys stochastic
//! rounding (element (r, c) draws from Philox(seed, r * cols + c)); it is ignored otherwise.
//! The leading dimension is a `leading_dim` (view.hpp), so a bare integer never lands in it.
//! Errors: invalid_argument (spec, shape, ld < cols, a shape whose byte counts overflow
//! std::int64_t, null or misaligned pointers), cuda_error.
template <class T>
[[nodiscard]] status quantize(const T* x, leading_dim ld, quantized_view out, std::uint64_t seed,
                              cudaStream_t stream) {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  const const_quantized_view v(out);
  if (const char* m = detail::check_view(v, ld.value, sizeof(T)))
    return detail::refuse("agoq::quantize", m);
  if (v.count() == 0) return status::success;
  if (x == nullptr) return detail::refuse("agoq::quantize", "x must not be null");
  if (!detail::element_aligned(x))
    return detail::refuse("agoq::quantize", "x must be aligned to alignof(T) (4 bytes for float, "
                                            "2 for __half and __nv_bfloat16)");
  const detail::quant_args a = detail::make_quant_args(x, ld.value, out, seed);
  return detail::dispatch_format(out.spec, [&](auto tag) {
    using tag_t = decltype(tag);
    if constexpr (detail::has_flat_kernel_v<T, bits_of(tag_t::value)>) {
      if (detail::flat_layout(a))
        return detail::launch_flat_pairs<false, tag_t::value, tag_t::symmetric>(
            [](auto r) {
              return detail::flat_quantize_kernel<tag_t::value, tag_t::symmetric, T,
                                                  decltype(r)::value>;
            },
            x, a, stream);
    }
    int grid = 0, threads = 0;
    if (status s = detail::launch_shape(a.g.chunks(), grid, threads, true); s != status::success)
      return s;
    detail::quantize_kernel<tag_t::value, tag_t::symmetric, T>
        <<<grid, threads, detail::stage_bytes(detail::elem_units<T>), stream>>>(x, a);
    return detail::launched();
  });
}

//! 1-D form: `out.cols` contiguous elements (out.rows must be 1).
template <class T>
[[nodiscard]] status quantize(const T* x, quantized_view out, std::uint64_t seed,
                              cudaStream_t stream) {
  if (out.rows != 1) return detail::refuse("agoq::quantize", "out.rows must be 1 in the 1-D form");
  return quantize(x, leading_dim{out.cols}, out, seed, stream);
}

//! Decodes `in` into the rows x cols tensor `y` (leading dimension `ld`), rounded to T
//! (nearest-even). Elements of y outside the rows x cols window are not touched.
//! Errors: invalid_argument (spec, shape, ld < cols, a shape whose byte counts overflow
//! std::int64_t, null or misaligned pointers), cuda_error.
template <class T>
[[nodiscard]] status dequantize(const_quantized_view in, T* y, leading_dim ld,
                                cudaStream_t stream) {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  if (const char* m = detail::check_view(in, ld.value, sizeof(T)))
    return detail::refuse("agoq::dequantize", m);
  if (in.count() == 0) return status::success;
  if (y == nullptr) return detail::refuse("agoq::dequantize", "y must not be null");
  if (!detail::element_aligned(y))
    return detail::refuse("agoq::dequantize", "y must be aligned to alignof(T) (4 bytes for "
                                              "float, 2 for __half and __nv_bfloat16)");
  const detail::dequant_args a = detail::make_dequant_args(in, y, ld.value, 1.0f);
  return detail::dispatch_format(in.spec, [&](auto tag) {
    using tag_t = decltype(tag);
    if constexpr (detail::flat_bits_v<bits_of(tag_t::value)>) {
      if (detail::flat_layout(a))
        return detail::launch_flat(
            detail::flat_dequantize_kernel<tag_t::value, tag_t::symmetric, T>,
            detail::lane_elems<T>, detail::flat_tile, y, a, stream);
    }
    int grid = 0, threads = 0;
    if (status s = detail::launch_shape(a.g.chunks(), grid, threads); s != status::success)
      return s;
    detail::dequantize_kernel<tag_t::value, tag_t::symmetric, T>
        <<<grid, threads, detail::stage_bytes(detail::elem_units<T>), stream>>>(y, a);
    return detail::launched();
  });
}

//! 1-D form of dequantize (in.rows must be 1).
template <class T>
[[nodiscard]] status dequantize(const_quantized_view in, T* y, cudaStream_t stream) {
  if (in.rows != 1) return detail::refuse("agoq::dequantize", "in.rows must be 1 in the 1-D form");
  return dequantize(in, y, leading_dim{in.cols}, stream);
}

//! acc[r*ld + c] = fmaf(decoded(r, c), alpha, acc[r*ld + c]): adds the decoded tensor, scaled by
//! alpha, into an fp32 accumulator in one pass (e.g. summing received shards, or gradients).
//! (A template only so that its kernels are instantiated where it is used.)
//! Errors: as dequantize. Example: summing W received shards into one fp32 buffer is W calls
//! with alpha = 1 (or 1/W for an average) on the same stream.
template <class Acc = float>
[[nodiscard]] status dequantize_accumulate(const_quantized_view in, Acc* acc, leading_dim ld,
                                           float alpha, cudaStream_t stream) {
  static_assert(std::is_same_v<Acc, float>, "the accumulator is fp32");
  if (const char* m = detail::check_view(in, ld.value, sizeof(float)))
    return detail::refuse("agoq::dequantize_accumulate", m);
  if (in.count() == 0) return status::success;
  if (acc == nullptr) return detail::refuse("agoq::dequantize_accumulate", "acc must not be null");
  if (!detail::element_aligned(acc))
    return detail::refuse("agoq::dequantize_accumulate", "acc must be 4-byte aligned (fp32)");
  const detail::dequant_args a = detail::make_dequant_args(in, acc, ld.value, alpha);
  return detail::dispatch_format(in.spec, [&](auto tag) {
    using tag_t = decltype(tag);
    if constexpr (detail::flat_bits_v<bits_of(tag_t::value)>) {
      if (detail::flat_layout(a))
        return detail::launch_flat(
            detail::flat_dequantize_accumulate_kernel<tag_t::value, tag_t::symmetric>,
            detail::lane_elems<float>, detail::flat_tile, acc, a, stream);
    }
    int grid = 0, threads = 0;
    if (status s = detail::launch_shape(a.g.chunks(), grid, threads); s != status::success)
      return s;
    detail::dequantize_accumulate_kernel<tag_t::value, tag_t::symmetric>
        <<<grid, threads, detail::stage_bytes(detail::elem_units<float> + 2), stream>>>(acc, a);
    return detail::launched();
  });
}

//! 1-D form of dequantize_accumulate (in.rows must be 1).
template <class Acc = float>
[[nodiscard]] status dequantize_accumulate(const_quantized_view in, Acc* acc, float alpha,
                                           cudaStream_t stream) {
  if (in.rows != 1)
    return detail::refuse("agoq::dequantize_accumulate", "in.rows must be 1 in the 1-D form");
  return dequantize_accumulate(in, acc, leading_dim{in.cols}, alpha, stream);
}

//! An integer third argument is refused at compile time: it is neither alpha (a float) nor a
//! leading dimension (the 2-D form spells it leading_dim{ld}).
template <class Acc, class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
status dequantize_accumulate(const_quantized_view in, Acc* acc, I alpha_or_ld,
                             cudaStream_t stream) = delete;

//! buf := quantize(dequantize(buf) + x), summed in fp32, in one pass (the gradient-buffer update):
//! every block gets a new scale from the sum. `seed` keys stochastic rounding as in quantize.
//! A zero-filled codes + scales buffer is a valid quantized zero, so a memset starts a buffer.
//! Errors: as quantize. Example, one micro-batch of an INT8 gradient buffer of n values:
//! `AGOQ_TRY(agoq::accumulate_requantize(buf, d_grad, /*seed=*/step, stream));`
template <class T>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const T* x, leading_dim ld,
                                           std::uint64_t seed, cudaStream_t stream) {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  const const_quantized_view v(buf);
  if (const char* m = detail::check_view(v, ld.value, sizeof(T)))
    return detail::refuse("agoq::accumulate_requantize", m);
  if (v.count() == 0) return status::success;
  if (x == nullptr) return detail::refuse("agoq::accumulate_requantize", "x must not be null");
  if (!detail::element_aligned(x))
    return detail::refuse("agoq::accumulate_requantize", "x must be aligned to alignof(T) (4 "
                                                         "bytes for float, 2 for __half and "
                                                         "__nv_bfloat16)");
  const detail::quant_args a = detail::make_quant_args(x, ld.value, buf, seed);
  return detail::dispatch_format(buf.spec, [&](auto tag) {
    using tag_t = decltype(tag);
    if constexpr (detail::has_flat_kernel_v<T, bits_of(tag_t::value)>) {
      if (detail::flat_layout(a))
        return detail::launch_flat_pairs<true, tag_t::value, tag_t::symmetric>(
            [](auto r) {
              return detail::flat_accumulate_requantize_kernel<tag_t::value, tag_t::symmetric, T,
                                                               decltype(r)::value>;
            },
            x, a, stream);
    }
    int grid = 0, threads = 0;
    if (status s = detail::launch_shape(a.g.chunks(), grid, threads, true); s != status::success)
      return s;
    detail::accumulate_requantize_kernel<tag_t::value, tag_t::symmetric, T>
        <<<grid, threads, detail::stage_bytes(detail::elem_units<T> + 2), stream>>>(x, a);
    return detail::launched();
  });
}

//! 1-D form of accumulate_requantize (buf.rows must be 1).
template <class T>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const T* x, std::uint64_t seed,
                                           cudaStream_t stream) {
  if (buf.rows != 1)
    return detail::refuse("agoq::accumulate_requantize", "buf.rows must be 1 in the 1-D form");
  return accumulate_requantize(buf, x, leading_dim{buf.cols}, seed, stream);
}

} // namespace v0_1
} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file quant/launch.cuh
//! The quantizer launchers' implementation (quant/quantize.cuh is their public face, which also
//! refuses an element type outside the kernel set, so the dispatch here checks the spec only):
//! argument checks, the kernels' arguments and launch shapes, and the dispatch to the flat
//! (flat.cuh) and staged (staged.cuh) kernel families. Header-only builds include it through
//! quantize.cuh; in the compiled mode (agoq::kernels) only the library's sources do, and consumers
//! link its explicit instantiations.
#pragma once

#include "agoq/detail/device.cuh"
#include "agoq/error.hpp"
#include "agoq/quant/dispatch.cuh"
#include "agoq/quant/flat.cuh"
#include "agoq/quant/staged.cuh"
#include "agoq/quant/tuning.cuh"
#include "agoq/quant/view.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

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
                           std::uint64_t seed, const std::uint64_t* seed_ptr) {
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
                    seed,
                    seed_ptr};
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
  device_info d;
  if (status s = current_device_info(d); s != status::success) return s;
  const quant_tuning t = quant_tuning_for(d.cc);
  threads = t.threads;
  const std::int64_t needed = (chunks + threads - 1) / threads;
  // one resident wave: as many CTAs per SM as the kernel's __launch_bounds__ let in
  const std::int64_t cap =
      std::int64_t(d.sms) * (quantize_type ? t.quantize_ctas_per_sm : t.dequantize_ctas_per_sm);
  grid = int(needed < cap ? needed : cap);
  return status::success;
}

//! True when p is aligned to its element type (4 bytes for float, 2 for __half/__nv_bfloat16).
template <class T> bool element_aligned(const T* p) {
  return (reinterpret_cast<std::uintptr_t>(p) % alignof(T)) == 0;
}

template <class T>
status launch_quantize(const T* x, leading_dim ld, quantized_view out, std::uint64_t seed,
                       const std::uint64_t* seed_ptr, cudaStream_t stream) {
  const const_quantized_view v(out);
  if (const char* m = detail::check_view(v, ld.value, sizeof(T)))
    return detail::refuse("agoq::quantize", m);
  if (v.count() == 0) return status::success;
  if (x == nullptr) return detail::refuse("agoq::quantize", "x must not be null");
  if (!detail::element_aligned(x))
    return detail::refuse("agoq::quantize", "x must be aligned to alignof(T) (4 bytes for float, "
                                            "2 for __half and __nv_bfloat16)");
  if ((reinterpret_cast<std::uintptr_t>(seed_ptr) & 7u) != 0)
    return detail::refuse("agoq::quantize", "seed.ptr must be 8-byte aligned (a std::uint64_t)");
  const detail::quant_args a = detail::make_quant_args(x, ld.value, out, seed, seed_ptr);
  return detail::dispatch_format<void, true>("agoq::quantize", out.spec, [&](auto tag) {
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

template <class T>
status launch_dequantize(const_quantized_view in, T* y, leading_dim ld, cudaStream_t stream) {
  if (const char* m = detail::check_view(in, ld.value, sizeof(T)))
    return detail::refuse("agoq::dequantize", m);
  if (in.count() == 0) return status::success;
  if (y == nullptr) return detail::refuse("agoq::dequantize", "y must not be null");
  if (!detail::element_aligned(y))
    return detail::refuse("agoq::dequantize", "y must be aligned to alignof(T) (4 bytes for "
                                              "float, 2 for __half and __nv_bfloat16)");
  const detail::dequant_args a = detail::make_dequant_args(in, y, ld.value, 1.0f);
  return detail::dispatch_format<void, false>("agoq::dequantize", in.spec, [&](auto tag) {
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

template <class Acc>
status launch_dequantize_accumulate(const_quantized_view in, Acc* acc, leading_dim ld, float alpha,
                                    cudaStream_t stream) {
  if (const char* m = detail::check_view(in, ld.value, sizeof(float)))
    return detail::refuse("agoq::dequantize_accumulate", m);
  if (in.count() == 0) return status::success;
  if (acc == nullptr) return detail::refuse("agoq::dequantize_accumulate", "acc must not be null");
  if (!detail::element_aligned(acc))
    return detail::refuse("agoq::dequantize_accumulate", "acc must be 4-byte aligned (fp32)");
  const detail::dequant_args a = detail::make_dequant_args(in, acc, ld.value, alpha);
  return detail::dispatch_format<void, false>(
      "agoq::dequantize_accumulate", in.spec, [&](auto tag) {
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

template <class T>
status launch_accumulate_requantize(quantized_view buf, const T* x, leading_dim ld,
                                    std::uint64_t seed, const std::uint64_t* seed_ptr,
                                    cudaStream_t stream) {
  const const_quantized_view v(buf);
  if (const char* m = detail::check_view(v, ld.value, sizeof(T)))
    return detail::refuse("agoq::accumulate_requantize", m);
  if (v.count() == 0) return status::success;
  if (x == nullptr) return detail::refuse("agoq::accumulate_requantize", "x must not be null");
  if (!detail::element_aligned(x))
    return detail::refuse("agoq::accumulate_requantize", "x must be aligned to alignof(T) (4 "
                                                         "bytes for float, 2 for __half and "
                                                         "__nv_bfloat16)");
  if ((reinterpret_cast<std::uintptr_t>(seed_ptr) & 7u) != 0)
    return detail::refuse("agoq::accumulate_requantize",
                          "seed.ptr must be 8-byte aligned (a std::uint64_t)");
  const detail::quant_args a = detail::make_quant_args(x, ld.value, buf, seed, seed_ptr);
  return detail::dispatch_format<void, true>(
      "agoq::accumulate_requantize", buf.spec, [&](auto tag) {
        using tag_t = decltype(tag);
        if constexpr (detail::has_flat_kernel_v<T, bits_of(tag_t::value)>) {
          if (detail::flat_layout(a))
            return detail::launch_flat_pairs<true, tag_t::value, tag_t::symmetric>(
                [](auto r) {
                  return detail::flat_accumulate_requantize_kernel<tag_t::value, tag_t::symmetric,
                                                                   T, decltype(r)::value>;
                },
                x, a, stream);
        }
        int grid = 0, threads = 0;
        if (status s = detail::launch_shape(a.g.chunks(), grid, threads, true);
            s != status::success)
          return s;
        detail::accumulate_requantize_kernel<tag_t::value, tag_t::symmetric, T>
            <<<grid, threads, detail::stage_bytes(detail::elem_units<T> + 2), stream>>>(x, a);
        return detail::launched();
      });
}

} // namespace detail

} // namespace agoq

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
#include "agoq/quant/kernel_set.hpp"
#include "agoq/quant/view.hpp"
#include "agoq/version.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

//! Calls fn(T{}) -- a value of the element type, as a tag -- for `t`, on behalf of `function`.
template <class Fn> status with_element(const char* function, element_type t, Fn&& fn) {
  switch (t) {
  case element_type::f32: return fn(float{});
  case element_type::f16: return fn(__half{});
  case element_type::bf16: return fn(__nv_bfloat16{});
  }
  return refuse(function, "t must be element_type::f32, f16 or bf16");
}

// The launchers' implementation (quant/launch.cuh): compiled into agoq::kernels in the compiled
// mode, instantiated in the caller's translation unit otherwise.
template <class T>
status launch_quantize(const T* x, leading_dim ld, quantized_view out, std::uint64_t seed,
                       const std::uint64_t* seed_ptr, cudaStream_t stream);
template <class T>
status launch_dequantize(const_quantized_view in, T* y, leading_dim ld, cudaStream_t stream);
template <class Acc>
status launch_dequantize_accumulate(const_quantized_view in, Acc* acc, leading_dim ld, float alpha,
                                    cudaStream_t stream);
template <class T>
status launch_accumulate_requantize(quantized_view buf, const T* x, leading_dim ld,
                                    std::uint64_t seed, const std::uint64_t* seed_ptr,
                                    cudaStream_t stream);

//! The public quantize / accumulate_requantize (host or device seed) after their own checks:
//! the element type against the kernel set, then the launcher (a link-time symbol of
//! agoq::kernels in the compiled mode, so a type outside the set is never referenced).
template <class T>
status quantize_front(const T* x, leading_dim ld, quantized_view out, std::uint64_t seed,
                      const std::uint64_t* seed_ptr, cudaStream_t stream) {
  static_assert(is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  if constexpr (!kernel_set_has(element_type_of<T>()))
    return element_not_in_set("agoq::quantize");
  else
    return launch_quantize(x, ld, out, seed, seed_ptr, stream);
}
template <class T>
status accumulate_requantize_front(quantized_view buf, const T* x, leading_dim ld,
                                   std::uint64_t seed, const std::uint64_t* seed_ptr,
                                   cudaStream_t stream) {
  static_assert(is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  if constexpr (!kernel_set_has(element_type_of<T>()))
    return element_not_in_set("agoq::accumulate_requantize");
  else
    return launch_accumulate_requantize(buf, x, ld, seed, seed_ptr, stream);
}

} // namespace detail
} // namespace agoq

//! The launchers of element type T as explicit instantiations (agoq::kernels' sources) or, with
//! `extern`, as declarations of them (a consumer of the compiled mode).
#define AGOQ_DETAIL_QUANT_LAUNCHERS(EXTERN, T)                                                     \
  EXTERN template ::agoq::status agoq::detail::launch_quantize<T>(                                 \
      const T*, ::agoq::leading_dim, ::agoq::quantized_view, std::uint64_t, const std::uint64_t*,  \
      cudaStream_t);                                                                               \
  EXTERN template ::agoq::status agoq::detail::launch_dequantize<T>(                               \
      ::agoq::const_quantized_view, T*, ::agoq::leading_dim, cudaStream_t);                        \
  EXTERN template ::agoq::status agoq::detail::launch_accumulate_requantize<T>(                    \
      ::agoq::quantized_view, const T*, ::agoq::leading_dim, std::uint64_t, const std::uint64_t*,  \
      cudaStream_t);
#define AGOQ_DETAIL_ACCUMULATE_LAUNCHER(EXTERN)                                                    \
  EXTERN template ::agoq::status agoq::detail::launch_dequantize_accumulate<float>(                \
      ::agoq::const_quantized_view, float*, ::agoq::leading_dim, float, cudaStream_t);

#if defined(AGOQ_COMPILED_KERNELS) && !defined(AGOQ_BUILDING_KERNELS)
// Compiled mode: the kernels live in agoq::kernels; this translation unit compiles host stubs.
#if AGOQ_KERNEL_ELEMENTS & 1
AGOQ_DETAIL_QUANT_LAUNCHERS(extern, float)
#endif
#if AGOQ_KERNEL_ELEMENTS & 2
AGOQ_DETAIL_QUANT_LAUNCHERS(extern, __half)
#endif
#if AGOQ_KERNEL_ELEMENTS & 4
AGOQ_DETAIL_QUANT_LAUNCHERS(extern, __nv_bfloat16)
#endif
AGOQ_DETAIL_ACCUMULATE_LAUNCHER(extern)
#else
#include "agoq/quant/launch.cuh"
#endif

namespace agoq {
inline namespace v0_1 {

//! Quantizes the rows x cols tensor `x` (leading dimension `ld`) into `out`, one block at a time:
//! block amax (or min/max), scale, encode, pack; `x` is read once. `seed` keys stochastic
//! rounding (element (r, c) draws from Philox(seed, r * cols + c)); it is ignored otherwise.
//! The leading dimension is a `leading_dim` (view.hpp), so a bare integer never lands in it.
//! Errors: invalid_argument (spec, shape, ld < cols, a shape whose byte counts overflow
//! std::int64_t, null or misaligned pointers), not_supported (outside the build's kernel set,
//! quant/kernel_set.hpp), cuda_error.
template <class T>
[[nodiscard]] status quantize(const T* x, leading_dim ld, quantized_view out, std::uint64_t seed,
                              cudaStream_t stream) {
  return detail::quantize_front(x, ld, out, seed, nullptr, stream);
}

//! 1-D form: `out.cols` contiguous elements (out.rows must be 1).
template <class T>
[[nodiscard]] status quantize(const T* x, quantized_view out, std::uint64_t seed,
                              cudaStream_t stream) {
  if (out.rows != 1) return detail::refuse("agoq::quantize", "out.rows must be 1 in the 1-D form");
  return quantize(x, leading_dim{out.cols}, out, seed, stream);
}

//! quantize with the stochastic-rounding seed read from device memory when the kernel runs
//! (device_seed, quant/view.hpp): a captured CUDA graph draws new noise on each replay once the
//! value at seed.ptr changes. Errors: as quantize, and seed.ptr null or not 8-byte aligned.
template <class T>
[[nodiscard]] status quantize(const T* x, leading_dim ld, quantized_view out, device_seed seed,
                              cudaStream_t stream) {
  if (seed.ptr == nullptr) return detail::refuse("agoq::quantize", "seed.ptr must not be null");
  return detail::quantize_front(x, ld, out, seed.offset, seed.ptr, stream);
}

//! 1-D form with a device seed.
template <class T>
[[nodiscard]] status quantize(const T* x, quantized_view out, device_seed seed,
                              cudaStream_t stream) {
  if (out.rows != 1) return detail::refuse("agoq::quantize", "out.rows must be 1 in the 1-D form");
  return quantize(x, leading_dim{out.cols}, out, seed, stream);
}

//! Decodes `in` into the rows x cols tensor `y` (leading dimension `ld`), rounded to T
//! (nearest-even). Elements of y outside the rows x cols window are not touched.
//! Errors: invalid_argument (spec, shape, ld < cols, a shape whose byte counts overflow
//! std::int64_t, null or misaligned pointers), not_supported (outside the build's kernel set,
//! quant/kernel_set.hpp), cuda_error.
template <class T>
[[nodiscard]] status dequantize(const_quantized_view in, T* y, leading_dim ld,
                                cudaStream_t stream) {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  if constexpr (!kernel_set_has(element_type_of<T>()))
    return detail::element_not_in_set("agoq::dequantize");
  else
    return detail::launch_dequantize(in, y, ld, stream);
}

//! 1-D form of dequantize (in.rows must be 1).
template <class T>
[[nodiscard]] status dequantize(const_quantized_view in, T* y, cudaStream_t stream) {
  if (in.rows != 1) return detail::refuse("agoq::dequantize", "in.rows must be 1 in the 1-D form");
  return dequantize(in, y, leading_dim{in.cols}, stream);
}

//! acc[r*ld + c] = fmaf(decoded(r, c), alpha, acc[r*ld + c]): adds the decoded tensor, scaled by
//! alpha, into an fp32 accumulator in one pass (e.g. summing received shards, or gradients).
//! (A template only so that its kernels are instantiated where it is used, or linked from
//! agoq::kernels in the compiled mode.)
//! Errors: as dequantize. Example: summing W received shards into one fp32 buffer is W calls
//! with alpha = 1 (or 1/W for an average) on the same stream.
template <class Acc = float>
[[nodiscard]] status dequantize_accumulate(const_quantized_view in, Acc* acc, leading_dim ld,
                                           float alpha, cudaStream_t stream) {
  static_assert(std::is_same_v<Acc, float>, "the accumulator is fp32");
  return detail::launch_dequantize_accumulate(in, acc, ld, alpha, stream);
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
  return detail::accumulate_requantize_front(buf, x, ld, seed, nullptr, stream);
}

//! 1-D form of accumulate_requantize (buf.rows must be 1).
template <class T>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const T* x, std::uint64_t seed,
                                           cudaStream_t stream) {
  if (buf.rows != 1)
    return detail::refuse("agoq::accumulate_requantize", "buf.rows must be 1 in the 1-D form");
  return accumulate_requantize(buf, x, leading_dim{buf.cols}, seed, stream);
}

//! accumulate_requantize with the seed read from device memory (device_seed; see quantize).
template <class T>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const T* x, leading_dim ld,
                                           device_seed seed, cudaStream_t stream) {
  if (seed.ptr == nullptr)
    return detail::refuse("agoq::accumulate_requantize", "seed.ptr must not be null");
  return detail::accumulate_requantize_front(buf, x, ld, seed.offset, seed.ptr, stream);
}

//! 1-D form with a device seed.
template <class T>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const T* x, device_seed seed,
                                           cudaStream_t stream) {
  if (buf.rows != 1)
    return detail::refuse("agoq::accumulate_requantize", "buf.rows must be 1 in the 1-D form");
  return accumulate_requantize(buf, x, leading_dim{buf.cols}, seed, stream);
}

// ---- type-erased entry points ------------------------------------------------------------------
// For framework glue that holds a tensor's dtype as a value: `x` / `y` point to elements of type
// `t` (element_type::f32 = float, f16 = __half, bf16 = __nv_bfloat16). Each calls the template
// of that type; the rules, results and errors are the template's. A `t` that is none of the three
// is invalid_argument.

//! quantize of `x`, elements of type `t`.
template <class = void> // a template, so only a caller instantiates the kernels of all three types
[[nodiscard]] status quantize(const void* x, element_type t, leading_dim ld, quantized_view out,
                              std::uint64_t seed, cudaStream_t stream) {
  return detail::with_element("agoq::quantize", t, [&](auto tag) {
    using T = decltype(tag);
    return quantize(static_cast<const T*>(x), ld, out, seed, stream);
  });
}

//! dequantize into `y`, elements of type `t`.
template <class = void>
[[nodiscard]] status dequantize(const_quantized_view in, void* y, element_type t, leading_dim ld,
                                cudaStream_t stream) {
  return detail::with_element("agoq::dequantize", t, [&](auto tag) {
    using T = decltype(tag);
    return dequantize(in, static_cast<T*>(y), ld, stream);
  });
}

//! accumulate_requantize of `x`, elements of type `t`.
template <class = void>
[[nodiscard]] status accumulate_requantize(quantized_view buf, const void* x, element_type t,
                                           leading_dim ld, std::uint64_t seed,
                                           cudaStream_t stream) {
  return detail::with_element("agoq::accumulate_requantize", t, [&](auto tag) {
    using T = decltype(tag);
    return accumulate_requantize(buf, static_cast<const T*>(x), ld, seed, stream);
  });
}

} // namespace v0_1
} // namespace agoq

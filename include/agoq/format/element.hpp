// SPDX-License-Identifier: Apache-2.0
//! @file format/element.hpp
//! The element types agoq reads and writes (float, __half, __nv_bfloat16) to and from fp32, one
//! value at a time, on the host and the device alike: widening is exact, narrowing rounds to
//! nearest even. The host reference, the collectives' executor kernels and the benchmarks all
//! convert through these (the quantizer kernels convert 16 packed values at once, see
//! quant/chunk_codec.cuh). from_float is the plain conversion; to_output the saturating one that
//! every value agoq writes out goes through.
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/format.hpp"
#include "agoq/format/scale.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace agoq {
namespace detail {

//! True for the element types of the launchers and collectives: float, __half, __nv_bfloat16.
template <class T>
inline constexpr bool is_element_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

} // namespace detail

//! The element_type of T (float, __half or __nv_bfloat16).
template <class T> constexpr element_type element_type_of() noexcept {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  return std::is_same_v<T, float>    ? element_type::f32
         : std::is_same_v<T, __half> ? element_type::f16
                                     : element_type::bf16;
}

namespace detail {

AGOQ_HOST_DEVICE float to_float(float x) { return x; }
AGOQ_HOST_DEVICE float to_float(__half x) { return __half2float(x); }
AGOQ_HOST_DEVICE float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> AGOQ_HOST_DEVICE T from_float(float x);
template <> AGOQ_HOST_DEVICE float from_float<float>(float x) { return x; }
template <> AGOQ_HOST_DEVICE __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> AGOQ_HOST_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

//! x as agoq stores an output of type T (decoded values, all-reduce results). To bf16/fp16:
//! nearest even, saturating at T's largest finite value (a value that would round to +-Inf,
//! and +-Inf itself, give +-max; NaN stays NaN), as cvt.rn.satfinite does on the device
//! (sm_80+). To float: x itself (decoded values are already finite: codec.hpp's decode).
//! cvt.rn.satfinite to f16/bf16: sm_80+ and PTX ISA 8.1 (CUDA 12.1+); else the emulation below.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 &&                                              \
    (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
#define AGOQ_HAS_CVT_SATFINITE() 1
#else
#define AGOQ_HAS_CVT_SATFINITE() 0
#endif

template <class T> AGOQ_HOST_DEVICE T to_output(float x);
template <> AGOQ_HOST_DEVICE float to_output<float>(float x) { return x; }
template <> AGOQ_HOST_DEVICE __half to_output<__half>(float x) {
#if AGOQ_HAS_CVT_SATFINITE()
  std::uint16_t r;
  asm("cvt.rn.satfinite.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return __ushort_as_half(r);
#else
  const __half h = __float2half_rn(x);
  if (is_nan(x) || (__half_as_ushort(h) & 0x7FFFu) != 0x7C00u) return h; // not +-Inf
  return __ushort_as_half(x > 0.0f ? 0x7BFFu : 0xFBFFu);                 // +-65504
#endif
}
template <> AGOQ_HOST_DEVICE __nv_bfloat16 to_output<__nv_bfloat16>(float x) {
#if AGOQ_HAS_CVT_SATFINITE()
  std::uint16_t r;
  asm("cvt.rn.satfinite.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
  return __ushort_as_bfloat16(r);
#else
  const __nv_bfloat16 b = __float2bfloat16_rn(x);
  if (is_nan(x) || (__bfloat16_as_ushort(b) & 0x7FFFu) != 0x7F80u) return b; // not +-Inf
  return __ushort_as_bfloat16(x > 0.0f ? 0x7F7Fu : 0xFF7Fu);                 // +-3.3895e38
#endif
}

} // namespace detail
} // namespace agoq

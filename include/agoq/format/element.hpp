// SPDX-License-Identifier: Apache-2.0
//! @file format/element.hpp
//! The element types agoq reads and writes (float, __half, __nv_bfloat16) to and from fp32, one
//! value at a time, on the host and the device alike: widening is exact, narrowing rounds to
//! nearest even. The host reference, the collectives' executor kernels and the benchmarks all
//! convert through these (the quantizer kernels convert 16 packed values at once, see
//! quant/kernels.cuh).
#pragma once

#include "agoq/config.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace agoq {
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

} // namespace detail
} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file python/src/agoq_torch_types.cuh
//! The element types of the CUDA translation units (agoq_torch_cuda.cu, agoq_torch_nccl.cu):
//! dtype_code (agoq_torch.h) to float, __half or __nv_bfloat16.
#pragma once

#include "agoq_torch.h"

#include <agoq/error.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace agoq_torch {
namespace cuda {

//! Calls f(T*) (a null pointer of the element type) for the element type of `t`.
template <class Fn> void with_type(dtype_code t, Fn&& f) {
  switch (t) {
  case dtype_code::f32: f(static_cast<float*>(nullptr)); return;
  case dtype_code::f16: f(static_cast<__half*>(nullptr)); return;
  case dtype_code::bf16: f(static_cast<__nv_bfloat16*>(nullptr)); return;
  }
  throw agoq::invalid_argument("agoq_torch: unknown element type");
}

} // namespace cuda
} // namespace agoq_torch

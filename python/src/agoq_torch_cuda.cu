// SPDX-License-Identifier: Apache-2.0
//! @file python/src/agoq_torch_cuda.cu
//! The CUDA half of the PyTorch extension, part 1: thin wrappers over agoq's quantizer launchers
//! and the gradient buffer, on the stream the caller (agoq_torch.cpp) passes -- the current
//! PyTorch stream. No torch header is included here (see agoq_torch.h). Part 2, the NCCL
//! all-reduce, is agoq_torch_nccl.cu (a separate file so the two compile in parallel).
#include "agoq_torch.h"
#include "agoq_torch_types.cuh"

#include <agoq/grad/grad_buffer.cuh>
#include <agoq/quant/quantize.cuh>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>
#include <type_traits>

namespace agoq_torch {
namespace cuda {
namespace {

agoq::grad_buffer make_buffer(void* mem, std::size_t bytes, std::int64_t params,
                              const agoq::quant_spec& spec, std::int64_t bucket_elems) {
  return agoq::grad_buffer(params, spec, bucket_elems, mem, bytes); // a view: no allocation
}

} // namespace

// The ops reach agoq's type-erased launchers (a dtype as a value); with the compiled mode
// (agoq::kernels) this file compiles host code only. A 1-D view (rows == 1) ignores ld.
agoq::element_type element_of(dtype_code t) {
  switch (t) {
  case dtype_code::f32: return agoq::element_type::f32;
  case dtype_code::f16: return agoq::element_type::f16;
  case dtype_code::bf16: return agoq::element_type::bf16;
  }
  throw agoq::invalid_argument("agoq_torch: unknown element type");
}

void quantize(dtype_code t, const void* x, std::int64_t ld, agoq::quantized_view out,
              std::uint64_t seed, cudaStream_t stream) {
  const agoq::leading_dim l{out.rows == 1 ? out.cols : ld};
  AGOQ_TRY(agoq::quantize(x, element_of(t), l, out, seed, stream));
}

void dequantize(agoq::const_quantized_view in, dtype_code t, void* y, std::int64_t ld,
                cudaStream_t stream) {
  const agoq::leading_dim l{in.rows == 1 ? in.cols : ld};
  AGOQ_TRY(agoq::dequantize(in, y, element_of(t), l, stream));
}

void dequantize_accumulate(agoq::const_quantized_view in, float* acc, std::int64_t ld, float alpha,
                           cudaStream_t stream) {
  const agoq::leading_dim l{in.rows == 1 ? in.cols : ld};
  AGOQ_TRY(agoq::dequantize_accumulate(in, acc, l, alpha, stream));
}

void accumulate_requantize(agoq::quantized_view buf, dtype_code t, const void* x, std::int64_t ld,
                           std::uint64_t seed, cudaStream_t stream) {
  const agoq::leading_dim l{buf.rows == 1 ? buf.cols : ld};
  AGOQ_TRY(agoq::accumulate_requantize(buf, x, element_of(t), l, seed, stream));
}

void grad_accumulate(void* mem, std::size_t bytes, std::int64_t params,
                     const agoq::quant_spec& spec, std::int64_t bucket_elems, std::int64_t offset,
                     dtype_code t, const void* grad, std::int64_t count, std::uint64_t seed,
                     cudaStream_t stream) {
  agoq::grad_buffer g = make_buffer(mem, bytes, params, spec, bucket_elems);
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    AGOQ_TRY(g.accumulate(offset, static_cast<const T*>(grad), count, seed, stream));
  });
}

void grad_dequantize_to(void* mem, std::size_t bytes, std::int64_t params,
                        const agoq::quant_spec& spec, std::int64_t bucket_elems,
                        std::int64_t offset, std::int64_t count, dtype_code t, void* out,
                        cudaStream_t stream) {
  agoq::grad_buffer g = make_buffer(mem, bytes, params, spec, bucket_elems);
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    AGOQ_TRY(g.dequantize_to(offset, count, static_cast<T*>(out), stream));
  });
}

} // namespace cuda
} // namespace agoq_torch

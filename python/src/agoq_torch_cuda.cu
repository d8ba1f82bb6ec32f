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

void quantize(dtype_code t, const void* x, std::int64_t ld, agoq::quantized_view out,
              std::uint64_t seed, cudaStream_t stream) {
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = static_cast<const T*>(x);
    if (out.rows == 1)
      AGOQ_TRY(agoq::quantize(p, out, seed, stream));
    else
      AGOQ_TRY(agoq::quantize(p, agoq::leading_dim{ld}, out, seed, stream));
  });
}

void dequantize(agoq::const_quantized_view in, dtype_code t, void* y, std::int64_t ld,
                cudaStream_t stream) {
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* p = static_cast<T*>(y);
    if (in.rows == 1)
      AGOQ_TRY(agoq::dequantize(in, p, stream));
    else
      AGOQ_TRY(agoq::dequantize(in, p, agoq::leading_dim{ld}, stream));
  });
}

void dequantize_accumulate(agoq::const_quantized_view in, float* acc, std::int64_t ld, float alpha,
                           cudaStream_t stream) {
  if (in.rows == 1)
    AGOQ_TRY(agoq::dequantize_accumulate(in, acc, alpha, stream));
  else
    AGOQ_TRY(agoq::dequantize_accumulate(in, acc, agoq::leading_dim{ld}, alpha, stream));
}

void accumulate_requantize(agoq::quantized_view buf, dtype_code t, const void* x, std::int64_t ld,
                           std::uint64_t seed, cudaStream_t stream) {
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = static_cast<const T*>(x);
    if (buf.rows == 1)
      AGOQ_TRY(agoq::accumulate_requantize(buf, p, seed, stream));
    else
      AGOQ_TRY(agoq::accumulate_requantize(buf, p, agoq::leading_dim{ld}, seed, stream));
  });
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

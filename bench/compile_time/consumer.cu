// SPDX-License-Identifier: Apache-2.0
// A trainer's translation unit holding the README's quantize snippet: what bench/compile_time/run.sh
// compiles to measure what a file that calls the quantizers costs to build.
#include <agoq/agoq.cuh>

#include <cuda_bf16.h>

#include <cstdint>

agoq::status quantize_snippet(const __nv_bfloat16* d_x, __nv_bfloat16* d_y, float* d_acc,
                              const __nv_bfloat16* d_grad, void* d_codes, float* d_scales,
                              std::int64_t n, cudaStream_t stream) {
  const agoq::quant_spec spec{agoq::format::int8, 128};
  agoq::quantized_view q{d_codes, d_scales, nullptr, 1, n, spec};
  AGOQ_TRY(agoq::quantize(d_x, q, /*seed=*/0, stream));
  AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), d_y, stream));
  AGOQ_TRY(agoq::dequantize_accumulate(agoq::const_quantized_view(q), d_acc, 1.0f, stream));
  AGOQ_TRY(agoq::accumulate_requantize(q, d_grad, /*seed=*/0, stream));
  return agoq::status::success;
}

// SPDX-License-Identifier: Apache-2.0
// agoq::grad_buffer: bandwidth of accumulate (one micro-batch into the 8-bit buffer) as a fraction
// of a device-to-device copy measured in the same run, next to the fp32 and bf16 gradient buffers
// a trainer would otherwise use (acc += grad), and dequantize_to (optimizer hand-off).
// Bytes counted per call: accumulate reads the grad (2 B bf16 / 4 B fp32 per parameter) and reads
// + writes codes + scales (2 x 1.03125 B); fp32 buffer: grad + 2 x 4 B; bf16 buffer: grad + 2 x
// 2 B; dequantize_to: 1.03125 B + 4 B. Copy row: a cudaMemcpyAsync of the accumulate's bytes / 2
// (read + write counted), so frac_copy compares equal traffic.
// Timing: CUDA events around each call (manual time); the L2 is flushed before every call.
// Counters: GB/s (decimal), frac_copy, bytes_per_param (storage of the buffer itself), and
// mem_vs_fp32 / mem_vs_bf16 (its size as a fraction of an fp32 / bf16 buffer).
// Issue 6 target: accumulate >= 0.90 frac_copy on an H200; bytes_per_param <= 1.04.
#include <agoq/agoq.cuh>
#include <agoq/grad/grad_buffer.cuh>

#include <benchmark/benchmark.h>

#include "bench_common.cuh"

#include <cuda_bf16.h>

#include <cstdio>
#include <memory>
#include <vector>

namespace {

//! Device scratch: grads (fp32-sized), an fp32 accumulator and the 8-bit buffer.
struct arena {
  std::int64_t cap = 0; // parameters
  void* grad = nullptr;
  void* acc = nullptr;
  std::unique_ptr<agoq::grad_buffer> gb;

  void reserve(std::int64_t n, const agoq::quant_spec& spec) {
    if (n <= cap && gb && gb->spec() == spec) return;
    release();
    cap = n;
    AGOQ_CUDA_TRY(cudaMalloc(&grad, size_t(n) * 4));
    AGOQ_CUDA_TRY(cudaMalloc(&acc, size_t(n) * 4));
    gb = std::make_unique<agoq::grad_buffer>(n, spec, agoq::default_bucket_elements,
                                             agoq::cuda_malloc_allocator());
    std::vector<__nv_bfloat16> h(1 << 20);
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = __float2bfloat16_rn(float(int(i * 2654435761u % 2001u) - 1000) * 1e-6f);
    for (std::int64_t off = 0; off < 2 * n; off += std::int64_t(h.size())) // fills 4n bytes
      AGOQ_CUDA_TRY(cudaMemcpy(static_cast<__nv_bfloat16*>(grad) + off, h.data(),
                               std::min<std::int64_t>(std::int64_t(h.size()), 2 * n - off) * 2,
                               cudaMemcpyHostToDevice));
    AGOQ_CUDA_TRY(cudaMemset(acc, 0, size_t(n) * 4));
    AGOQ_TRY(gb->zero(nullptr));
  }
  void release() {
    if (!cap) return;
    gb.reset();
    cudaFree(grad), cudaFree(acc);
    cap = 0;
  }
};

arena& scratch() {
  static arena a;
  return a;
}

using agoq_bench::has_gpu;
using agoq_bench::time_it;

void memory_counters(benchmark::State& st, double bytes_per_param) {
  st.counters["bytes_per_param"] = bytes_per_param;
  st.counters["mem_vs_fp32"] = bytes_per_param / 4.0;
  st.counters["mem_vs_bf16"] = bytes_per_param / 2.0;
}

const agoq::quant_spec int8{};
const agoq::quant_spec int8_sr{agoq::format::int8, 128, agoq::scale_kind::fp32,
                               agoq::rounding::stochastic};
const double q8 = agoq::grad_bytes_per_param(int8); // 1.03125

bool ready(benchmark::State& st, const agoq::quant_spec& spec) {
  if (!has_gpu()) {
    st.SkipWithError("no CUDA device");
    return false;
  }
  scratch().reserve(st.range(0), spec);
  return true;
}

//! A copy moving the same bytes as the bf16-grad accumulate of range(0) parameters.
void bm_copy(benchmark::State& st) {
  if (!ready(st, int8)) return;
  const std::int64_t n = st.range(0);
  const size_t bytes = size_t((2.0 + 2.0 * q8) * double(n) / 2.0);
  time_it(st, 2.0 * double(bytes), [&] {
    AGOQ_CUDA_TRY(cudaMemcpyAsync(scratch().acc, scratch().grad, bytes, cudaMemcpyDeviceToDevice));
  }, true);
}

template <class T> void bm_accumulate(benchmark::State& st, agoq::quant_spec spec) {
  if (!ready(st, spec)) return;
  const std::int64_t n = st.range(0);
  agoq::grad_buffer& g = *scratch().gb;
  const auto* x = static_cast<const T*>(scratch().grad);
  time_it(st, (double(sizeof(T)) + 2.0 * g.bytes_per_param()) * double(n),
          [&] { AGOQ_TRY(g.accumulate(0, x, n, cudaStream_t{})); });
  memory_counters(st, g.bytes_per_param());
}

template <class Acc>
__global__ void plain_accumulate(Acc* __restrict__ acc, const __nv_bfloat16* __restrict__ g,
                                 std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if constexpr (sizeof(Acc) == 4)
      acc[i] += __bfloat162float(g[i]);
    else
      acc[i] = __float2bfloat16_rn(__bfloat162float(acc[i]) + __bfloat162float(g[i]));
  }
}

//! The baseline a trainer replaces: an fp32 (or bf16) main-gradient buffer, acc += bf16 grad.
template <class Acc> void bm_plain_buffer(benchmark::State& st) {
  if (!ready(st, int8)) return;
  const std::int64_t n = st.range(0);
  int sms = 0;
  AGOQ_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  time_it(st, (2.0 + 2.0 * sizeof(Acc)) * double(n), [&] {
    plain_accumulate<Acc><<<sms * 8, 256>>>(static_cast<Acc*>(scratch().acc),
                                            static_cast<const __nv_bfloat16*>(scratch().grad), n);
    AGOQ_CUDA_TRY(cudaGetLastError());
  });
  memory_counters(st, double(sizeof(Acc)));
}

void bm_accumulate_bf16(benchmark::State& st, agoq::quant_spec spec) {
  bm_accumulate<__nv_bfloat16>(st, spec);
}
void bm_accumulate_fp32(benchmark::State& st, agoq::quant_spec spec) {
  bm_accumulate<float>(st, spec);
}

void bm_dequantize_to_fp32(benchmark::State& st) {
  if (!ready(st, int8)) return;
  const std::int64_t n = st.range(0);
  agoq::grad_buffer& g = *scratch().gb;
  time_it(st, (q8 + 4.0) * double(n), [&] {
    AGOQ_TRY(g.dequantize_to(static_cast<float*>(scratch().acc), cudaStream_t{}));
  });
  memory_counters(st, g.bytes_per_param());
}

void sizes(benchmark::internal::Benchmark* b) {
  for (long mparams : {16L, 64L, 256L})
    b->Arg(mparams << 20);
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
}

// Registration order is run order: the copy first, so every row can report frac_copy.
BENCHMARK(bm_copy)->Apply(sizes);
BENCHMARK_CAPTURE(bm_accumulate_bf16, int8, int8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_accumulate_bf16, int8_sr, int8_sr)->Apply(sizes);
BENCHMARK_CAPTURE(bm_accumulate_fp32, int8, int8)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_plain_buffer, float)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_plain_buffer, __nv_bfloat16)->Apply(sizes);
BENCHMARK(bm_dequantize_to_fp32)->Apply(sizes);

} // namespace

BENCHMARK_MAIN();

// SPDX-License-Identifier: Apache-2.0
// Bandwidth of the block-wise quantizers against a device-to-device copy measured in the same run.
// Bytes counted per call: input read + codes written + scales (+ zero points) written (quantize);
// codes + scales read + output written (dequantize); dequantize_accumulate reads and writes the
// fp32 accumulator; accumulate_requantize reads x and the codes+scales and writes codes+scales.
// Timing: CUDA events around each call (manual time); the L2 is flushed before every call.
// Counters: GB/s (decimal), frac_copy = GB/s / the copy's GB/s at the same input size.
// bm_traffic rows: a kernel that only moves a quantizer's bytes, with no work: what its mix of
// reads and writes allows (bench/HISTORY.md, run G: 4-bit dequantize's, 0.95 of copy, 256 MiB).
#include <agoq/agoq.cuh>

#include <benchmark/benchmark.h>

#include "bench_common.cuh"

#include <cstdio>
#include <string>
#include <vector>

namespace {

//! Device scratch reused by every benchmark: input and outputs (bench_common.cuh flushes the L2).
struct arena {
  void* in = nullptr;
  void* out = nullptr;
  void* codes = nullptr;
  void* scales = nullptr;
  void* zeros = nullptr;
  size_t cap = 0;

  void reserve(size_t bytes) { // bytes of the largest bf16 input
    if (bytes <= cap) return;
    release();
    cap = bytes;
    const size_t n = bytes / 2;
    AGOQ_CUDA_TRY(cudaMalloc(&in, n * 4)); // room for fp32 inputs/accumulators too
    AGOQ_CUDA_TRY(cudaMalloc(&out, n * 4));
    AGOQ_CUDA_TRY(cudaMalloc(&codes, n + 64));
    AGOQ_CUDA_TRY(cudaMalloc(&scales, n / 8 + 64));
    AGOQ_CUDA_TRY(cudaMalloc(&zeros, n / 8 + 64));
    AGOQ_CUDA_TRY(cudaMemset(in, 0, n * 4));
    // normal-ish bf16 data: bits of small numbers (exponent near 127) with varied mantissas
    std::vector<unsigned short> h(1 << 20);
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = (unsigned short)(0x3c00 + (i * 2654435761u >> 16) % 0x0400) | ((i & 1) << 15);
    for (size_t off = 0; off < n; off += h.size())
      AGOQ_CUDA_TRY(cudaMemcpy(static_cast<unsigned short*>(in) + off, h.data(),
                               std::min(h.size(), n - off) * 2, cudaMemcpyHostToDevice));
  }
  void release() {
    if (!cap) return;
    cudaFree(in), cudaFree(out), cudaFree(codes), cudaFree(scales), cudaFree(zeros);
    cap = 0;
  }
};

arena& scratch() {
  static arena a;
  return a;
}

using agoq_bench::has_gpu;
using agoq_bench::time_it;

void bm_copy(benchmark::State& st) {
  const size_t bytes = size_t(st.range(0));
  if (has_gpu()) scratch().reserve(bytes);
  time_it(st, 2.0 * double(bytes), [&] {
    AGOQ_CUDA_TRY(cudaMemcpyAsync(scratch().out, scratch().in, bytes, cudaMemcpyDeviceToDevice));
  }, true);
}

//! A stream with a kernel's traffic and no work: each thread reads RB bytes and writes WB bytes
//! (4, 8 or 16; one item per thread, 128 threads per CTA: the fastest shape of several measured
//! on H200). Its frac_copy is what that read:write mix allows on the GPU.
template <int RB, int WB>
__global__ void __launch_bounds__(128)
    traffic_kernel(const void* __restrict__ in, void* __restrict__ out, long items) {
  const long i = long(blockIdx.x) * 128 + threadIdx.x;
  if (i >= items) return;
  uint4 v{};
  if constexpr (RB == 16) v = static_cast<const uint4*>(in)[i];
  if constexpr (RB == 8) {
    const uint2 q = static_cast<const uint2*>(in)[i];
    v.x = q.x, v.y = q.y;
  }
  if constexpr (RB == 4) v.x = static_cast<const unsigned*>(in)[i];
  v.x ^= v.y ^ v.z ^ v.w; // the output depends on every byte read
  if constexpr (WB == 16) static_cast<uint4*>(out)[i] = make_uint4(v.x, v.x * 3u, v.x + 7u, ~v.x);
  if constexpr (WB == 8) static_cast<uint2*>(out)[i] = make_uint2(v.x, v.x * 3u);
  if constexpr (WB == 4) static_cast<unsigned*>(out)[i] = v.x;
}

//! The traffic of a quantizer on range(0) bytes of bf16 (codes of 8 / 4 bits, scales ignored):
//! quantize reads the input and writes codes (RB = 16), dequantize the reverse (WB = 16).
template <int RB, int WB> void bm_traffic(benchmark::State& st) {
  const size_t bytes = size_t(st.range(0));
  if (has_gpu()) scratch().reserve(bytes);
  const long items = long(bytes / 16); // one 16-byte access of bf16 per item
  time_it(st, double(items) * (RB + WB), [&] {
    traffic_kernel<RB, WB>
        <<<unsigned((items + 127) / 128), 128>>>(scratch().in, scratch().out, items);
    AGOQ_CUDA_TRY(cudaGetLastError());
  });
}

agoq::quantized_view view_for(const agoq::quant_spec& s, std::int64_t n) {
  arena& a = scratch();
  return {a.codes, a.scales, s.symmetric ? nullptr : static_cast<float*>(a.zeros), 1, n, s};
}

double quantized_bytes(const agoq::quant_spec& s, std::int64_t n) {
  return double(agoq::codes_bytes(s, n) + agoq::scales_bytes(s, n) + agoq::zeros_bytes(s, n));
}

void bm_quantize(benchmark::State& st, agoq::quant_spec spec) {
  const std::int64_t n = st.range(0) / 2; // bf16 elements
  if (has_gpu()) scratch().reserve(size_t(st.range(0)));
  const auto* x = static_cast<const __nv_bfloat16*>(scratch().in);
  time_it(st, 2.0 * double(n) + quantized_bytes(spec, n),
          [&] { AGOQ_TRY(agoq::quantize(x, view_for(spec, n), 1234, cudaStream_t{})); });
}

void bm_dequantize(benchmark::State& st, agoq::quant_spec spec) {
  const std::int64_t n = st.range(0) / 2;
  if (has_gpu()) {
    scratch().reserve(size_t(st.range(0)));
    AGOQ_TRY(agoq::quantize(static_cast<const __nv_bfloat16*>(scratch().in), view_for(spec, n), 0,
                            cudaStream_t{}));
  }
  auto* y = static_cast<__nv_bfloat16*>(scratch().out);
  time_it(st, 2.0 * double(n) + quantized_bytes(spec, n), [&] {
    AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(view_for(spec, n)), y, cudaStream_t{}));
  });
}

void bm_dequantize_accumulate(benchmark::State& st, agoq::quant_spec spec) {
  const std::int64_t n = st.range(0) / 2;
  if (has_gpu()) {
    scratch().reserve(size_t(st.range(0)));
    AGOQ_TRY(agoq::quantize(static_cast<const __nv_bfloat16*>(scratch().in), view_for(spec, n), 0,
                            cudaStream_t{}));
  }
  auto* acc = static_cast<float*>(scratch().out);
  time_it(st, 8.0 * double(n) + quantized_bytes(spec, n), [&] {
    AGOQ_TRY(agoq::dequantize_accumulate(agoq::const_quantized_view(view_for(spec, n)), acc, 1.0f,
                                         cudaStream_t{}));
  });
}

void bm_accumulate_requantize(benchmark::State& st, agoq::quant_spec spec) {
  const std::int64_t n = st.range(0) / 2;
  if (has_gpu()) {
    scratch().reserve(size_t(st.range(0)));
    AGOQ_TRY(agoq::quantize(static_cast<const __nv_bfloat16*>(scratch().in), view_for(spec, n), 0,
                            cudaStream_t{}));
  }
  const auto* x = static_cast<const __nv_bfloat16*>(scratch().in);
  time_it(st, 2.0 * double(n) + 2.0 * quantized_bytes(spec, n), [&] {
    AGOQ_TRY(agoq::accumulate_requantize(view_for(spec, n), x, 99, cudaStream_t{}));
  });
}

void sizes(benchmark::internal::Benchmark* b) {
  for (long mib : {16L, 64L, 256L, 1024L}) b->Arg(mib << 20);
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
}

using agoq::format;
using agoq::quant_spec;
using agoq::rounding;
using agoq::scale_kind;

const quant_spec int8{format::int8, 128};
const quant_spec e4m3{format::fp8_e4m3, 128};
const quant_spec e5m2{format::fp8_e5m2, 128};
const quant_spec int4{format::int4, 128};
const quant_spec int4_asym{format::int4, 128, scale_kind::fp32, rounding::nearest_even, false};
const quant_spec int8_sr{format::int8, 128, scale_kind::fp32, rounding::stochastic};
const quant_spec int4_sr{format::int4, 128, scale_kind::fp32, rounding::stochastic};
const quant_spec e4m3_sr{format::fp8_e4m3, 128, scale_kind::fp32, rounding::stochastic};
const quant_spec mxfp8{format::fp8_e4m3, 32, scale_kind::e8m0};
const quant_spec fp4{format::fp4_e2m1, 32, scale_kind::e8m0};
const quant_spec int6{format::int6, 128};

// Registration order is run order: the copy first, so every row can report frac_copy.
BENCHMARK(bm_copy)->Apply(sizes);
// The bytes of 8- and 4-bit quantize (read 16 : write 8 / 4) and dequantize (the reverse).
BENCHMARK_TEMPLATE(bm_traffic, 16, 8)->Name("bm_traffic/quantize_8bit")->Apply(sizes);
BENCHMARK_TEMPLATE(bm_traffic, 16, 4)->Name("bm_traffic/quantize_4bit")->Apply(sizes);
BENCHMARK_TEMPLATE(bm_traffic, 8, 16)->Name("bm_traffic/dequantize_8bit")->Apply(sizes);
BENCHMARK_TEMPLATE(bm_traffic, 4, 16)->Name("bm_traffic/dequantize_4bit")->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int8_b128, int8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, fp8_e4m3_b128, e4m3)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, fp8_e5m2_b128, e5m2)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int4_b128, int4)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int4_asym_b128, int4_asym)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int8_sr_b128, int8_sr)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int4_sr_b128, int4_sr)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, fp8_e4m3_sr_b128, e4m3_sr)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, int6_b128, int6)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, mxfp8_e8m0_b32, mxfp8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_quantize, fp4_e8m0_b32, fp4)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize, int8_b128, int8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize, fp8_e4m3_b128, e4m3)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize, int4_b128, int4)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize, int4_asym_b128, int4_asym)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize, fp4_e8m0_b32, fp4)->Apply(sizes);
BENCHMARK_CAPTURE(bm_dequantize_accumulate, int8_b128, int8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_accumulate_requantize, int8_b128, int8)->Apply(sizes);
BENCHMARK_CAPTURE(bm_accumulate_requantize, int8_sr_b128, int8_sr)->Apply(sizes);

} // namespace

BENCHMARK_MAIN();

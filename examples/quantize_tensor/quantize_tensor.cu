// SPDX-License-Identifier: Apache-2.0
//! @file examples/quantize_tensor/quantize_tensor.cu
//! agoq-quantize_tensor: quantize and dequantize one device tensor in each main format, and print
//! the bytes it takes, the round-trip error and the kernels' GB/s; then stochastic rounding
//! captured in a CUDA graph with a device seed (agoq::device_seed), decoded through the
//! type-erased entry point.
//!
//!   agoq-quantize_tensor [--rows N] [--cols N]        (default: a 8192 x 4096 bf16 activation)
//!
//! Without a GPU it says so and runs the same round trip with the host reference (agoq::ref),
//! which gives the same bytes and bit-identical codes, hence the same error; it exits 0.
#include <agoq/agoq.cuh>

#include <cuda_bf16.h>

#include "cli.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

// The main formats: what the paper stores activations in (INT4/INT8), FP8, and MXFP4.
struct named_spec {
  const char* name;
  agoq::quant_spec spec;
};
const named_spec specs[] = {
    {"int8 / 128", {agoq::format::int8, 128}},
    {"fp8 e4m3 / 128", {agoq::format::fp8_e4m3, 128}},
    {"fp8 e5m2 / 128", {agoq::format::fp8_e5m2, 128}},
    {"int4 / 128", {agoq::format::int4, 128}},
    {"int4 asym / 128",
     {agoq::format::int4, 128, agoq::scale_kind::fp32, agoq::rounding::nearest_even, false}},
    {"mxfp4 / 32 (e8m0)", {agoq::format::fp4_e2m1, 32, agoq::scale_kind::e8m0}},
};

// Relative L2 error of y against x.
double rel_l2(const std::vector<__nv_bfloat16>& x, const std::vector<__nv_bfloat16>& y) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double a = __bfloat162float(x[i]), d = double(__bfloat162float(y[i])) - a;
    num += d * d;
    den += a * a;
  }
  return std::sqrt(num / den);
}

// Bytes of the quantized tensor: codes + scales (+ zero points when asymmetric).
std::size_t quantized_bytes(const agoq::quant_spec& s, std::int64_t rows, std::int64_t cols) {
  return agoq::codes_bytes(s, rows, cols) + agoq::scales_bytes(s, rows, cols) +
         agoq::zeros_bytes(s, rows, cols);
}

// A device allocation that frees itself.
struct device_mem {
  void* p = nullptr;
  explicit device_mem(std::size_t bytes) { AGOQ_CUDA_TRY(cudaMalloc(&p, bytes ? bytes : 1)); }
  ~device_mem() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

void run_gpu(const std::vector<__nv_bfloat16>& hx, std::int64_t rows, std::int64_t cols) {
  cudaDeviceProp prop{};
  AGOQ_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
  std::printf("GPU 0: %s\n\n", prop.name);
  const std::int64_t n = rows * cols;
  const std::size_t in_bytes = std::size_t(n) * sizeof(__nv_bfloat16);
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreate(&stream));
  device_mem x(in_bytes), y(in_bytes);
  AGOQ_CUDA_TRY(cudaMemcpy(x.p, hx.data(), in_bytes, cudaMemcpyHostToDevice));

  cudaEvent_t start, stop;
  AGOQ_CUDA_TRY(cudaEventCreate(&start));
  AGOQ_CUDA_TRY(cudaEventCreate(&stop));
  // Mean milliseconds of `fn` over 20 runs on `stream`, after one warm-up run.
  auto time_ms = [&](auto&& fn) {
    fn();
    AGOQ_CUDA_TRY(cudaEventRecord(start, stream));
    for (int i = 0; i < 20; ++i) fn();
    AGOQ_CUDA_TRY(cudaEventRecord(stop, stream));
    AGOQ_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0;
    AGOQ_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    return double(ms) / 20;
  };
  // The ceiling: a device-to-device copy of the input (read + write).
  const double copy_gbps = 2.0 * double(in_bytes) / 1e6 / time_ms([&] {
    AGOQ_CUDA_TRY(cudaMemcpyAsync(y.p, x.p, in_bytes, cudaMemcpyDeviceToDevice, stream));
  });
  std::printf("copy: %.0f GB/s\n\n", copy_gbps);
  std::printf("%-18s %12s %8s %12s %12s %12s\n", "format", "bytes", "ratio", "rel L2 err",
              "quant GB/s", "dequant GB/s");

  for (const named_spec& s : specs) {
    // Caller-owned memory, sized by the constexpr queries (cudaMalloc aligns to 256 bytes).
    device_mem codes(agoq::codes_bytes(s.spec, rows, cols));
    device_mem scales(agoq::scales_bytes(s.spec, rows, cols));
    device_mem zeros(agoq::zeros_bytes(s.spec, rows, cols));
    const agoq::quantized_view q{codes.p, scales.p, s.spec.symmetric ? nullptr : zeros.as<float>(),
                                 rows, cols, s.spec};

    // 2-D forms: rows x cols with a leading dimension (here the tensor is dense: ld = cols).
    const double qms = time_ms([&] {
      AGOQ_TRY(
          agoq::quantize(x.as<__nv_bfloat16>(), agoq::leading_dim{cols}, q, /*seed=*/0, stream));
    });
    const double dms = time_ms([&] {
      AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), y.as<__nv_bfloat16>(),
                                agoq::leading_dim{cols}, stream));
    });
    std::vector<__nv_bfloat16> hy(hx.size());
    AGOQ_CUDA_TRY(cudaMemcpy(hy.data(), y.p, in_bytes, cudaMemcpyDeviceToHost));

    const std::size_t qb = quantized_bytes(s.spec, rows, cols);
    const double moved = double(in_bytes + qb) / 1e6; // bf16 in + quantized out, or the reverse
    std::printf("%-18s %12zu %7.2fx %12.3e %12.0f %12.0f\n", s.name, qb, double(in_bytes) / qb,
                rel_l2(hx, hy), moved / qms, moved / dms);
  }
  std::printf("\n(bytes: codes + scales (+ zero points); ratio: bf16 bytes / quantized bytes;\n"
              " GB/s: bytes read + written per second; copy moves %.0f GB/s)\n", copy_gbps);

  // Stochastic rounding inside a CUDA graph: the seed is read from device memory when the kernel
  // runs (agoq::device_seed), so each replay draws new noise once the seed changes. The decoder
  // here is the type-erased entry point that a framework's dtype switch would call.
  {
    const agoq::quant_spec sr{agoq::format::int8, 128, agoq::scale_kind::fp32,
                              agoq::rounding::stochastic};
    const std::size_t cb = agoq::codes_bytes(sr, rows, cols);
    device_mem codes(cb), scales(agoq::scales_bytes(sr, rows, cols)), seed(sizeof(std::uint64_t));
    const agoq::quantized_view q{codes.p, scales.p, nullptr, rows, cols, sr};
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    AGOQ_CUDA_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    AGOQ_TRY(agoq::quantize(x.as<__nv_bfloat16>(), agoq::leading_dim{cols}, q,
                            agoq::device_seed{seed.as<std::uint64_t>()}, stream));
    AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), y.p, agoq::element_type::bf16,
                              agoq::leading_dim{cols}, stream));
    AGOQ_CUDA_TRY(cudaStreamEndCapture(stream, &graph));
    AGOQ_CUDA_TRY(cudaGraphInstantiate(&exec, graph, 0));
    std::vector<std::vector<unsigned char>> replays;
    for (std::uint64_t step : {1u, 2u}) { // a trainer would bump the seed once per step
      AGOQ_CUDA_TRY(cudaMemcpyAsync(seed.p, &step, sizeof step, cudaMemcpyHostToDevice, stream));
      AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
      replays.emplace_back(cb);
      AGOQ_CUDA_TRY(
          cudaMemcpyAsync(replays.back().data(), codes.p, cb, cudaMemcpyDeviceToHost, stream));
      AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
    }
    std::size_t differ = 0;
    for (std::size_t i = 0; i < cb; ++i) differ += replays[0][i] != replays[1][i];
    std::printf("\nint8 stochastic rounding in a CUDA graph, replayed with device seeds 1 and 2: "
                "%.1f%% of the code bytes differ\n", 100.0 * double(differ) / double(cb));
    cudaGraphExecDestroy(exec), cudaGraphDestroy(graph);
  }
  cudaEventDestroy(start), cudaEventDestroy(stop), cudaStreamDestroy(stream);
}

void run_host(const std::vector<__nv_bfloat16>& hx, std::int64_t rows, std::int64_t cols) {
  std::printf("%-18s %12s %8s %12s\n", "format", "bytes", "ratio", "rel L2 err");
  const std::size_t in_bytes = hx.size() * sizeof(__nv_bfloat16);
  for (const named_spec& s : specs) {
    std::vector<unsigned char> codes(agoq::codes_bytes(s.spec, rows, cols));
    std::vector<unsigned char> scales(agoq::scales_bytes(s.spec, rows, cols));
    std::vector<float> zeros(agoq::zeros_bytes(s.spec, rows, cols) / sizeof(float));
    const agoq::quantized_view q{
        codes.data(), scales.data(), zeros.empty() ? nullptr : zeros.data(), rows, cols, s.spec};
    std::vector<__nv_bfloat16> hy(hx.size());
    agoq::ref::quantize(hx.data(), agoq::leading_dim{cols}, q); // same codes as the GPU
    agoq::ref::dequantize(agoq::const_quantized_view(q), hy.data(), agoq::leading_dim{cols});
    const std::size_t qb = quantized_bytes(s.spec, rows, cols);
    std::printf("%-18s %12zu %7.2fx %12.3e\n", s.name, qb, double(in_bytes) / qb, rel_l2(hx, hy));
  }
}

} // namespace

int main(int argc, char** argv) {
  std::int64_t rows = 8192, cols = 4096;
  cli::parser p("agoq-quantize_tensor",
                "Quantizes and dequantizes one bf16 tensor in each main format (int8, fp8 e4m3/e5m2,\n"
                "int4, int4 asymmetric, MXFP4): bytes, ratio to bf16, round-trip error and, with a\n"
                "GPU, the kernels' GB/s next to a copy. Without a GPU the host reference runs\n"
                "instead (same codes, same error) on at most 4 Mi elements.");
  p.option("--rows", "N", rows, "rows of the tensor", 1, std::int64_t(1) << 31)
      .option("--cols", "N", cols, "columns (the contiguous dimension)", 1, std::int64_t(1) << 31);
  if (const auto rc = p.parse(argc, argv)) return *rc;
  if (rows * cols > (std::int64_t(1) << 34))
    return p.fail("--rows x --cols must be at most 2^34 elements (32 GiB of bf16)");

  int devices = 0;
  const bool gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  (void)cudaGetLastError();
  // Without a GPU the host reference is slow (plain loops): use a smaller tensor.
  if (!gpu && rows * cols > (std::int64_t(1) << 22)) rows = (std::int64_t(1) << 22) / cols, rows += !rows;

  // Normally distributed bf16 values, like an activation.
  std::vector<__nv_bfloat16> x(std::size_t(rows * cols));
  std::mt19937 gen(2026);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = __float2bfloat16(normal(gen));

  std::printf("agoq-quantize_tensor: %lld x %lld bf16 tensor (%.1f MiB), normal data\n",
              (long long)rows, (long long)cols, double(x.size()) * 2 / (1 << 20));
  try {
    if (gpu) {
      run_gpu(x, rows, cols);
    } else {
      std::printf("no GPU visible: running the host reference instead (same codes and error as "
                  "the kernels; no GB/s)\n\n");
      run_host(x, rows, cols);
    }
  } catch (const agoq::error& e) {
    std::fprintf(stderr, "agoq-quantize_tensor: %s\n", e.what());
    return 1;
  }
  return 0;
}

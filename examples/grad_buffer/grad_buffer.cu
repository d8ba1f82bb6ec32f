// SPDX-License-Identifier: Apache-2.0
// agoq::grad_buffer end to end on every visible GPU (one host thread per GPU, ncclCommInitAll):
// M micro-batches of bf16 gradients are accumulated into an 8-bit buffer (INT8, block 128, fp32
// scales: 1.03125 bytes/parameter), each bucket is all-reduced (averaged) directly on its 8-bit
// codes, and the result is handed to the "optimizer" as fp32. Prints memory against fp32/bf16
// buffers, the error against an fp32 accumulation + fp32 average, and checks that every rank
// ended with the same bytes. Without a GPU it says so and exits 0.
//
//   agoq-grad_buffer [--params N] [--num-micro-batches N]     (defaults: 4000000 and 8)
#include <agoq/agoq.cuh>
#include <agoq/grad/grad_buffer.cuh>

#include <cuda_bf16.h>

#include "cli.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  std::int64_t n = 4000000;
  int M = 8;
  cli::parser p("agoq-grad_buffer",
                "The 8-bit gradient buffer on every visible GPU: micro-batches of bf16 gradients\n"
                "accumulated in INT8 (block 128, fp32 scales), all-reduced on the codes, handed to\n"
                "the optimizer as fp32; bytes per parameter and the error against fp32.");
  p.option("--params", "N", n, "parameters (gradient elements)", 1, std::int64_t(1) << 34)
      .option("--num-micro-batches", "N", M, "micro-batches accumulated before the all-reduce", 1,
              1 << 16);
  if (const auto rc = p.parse(argc, argv)) return *rc;
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) {
    std::printf("agoq-grad_buffer: no CUDA device visible; nothing to run.\n");
    return 0;
  }
  const agoq::quant_spec spec{}; // INT8 / 128 / fp32 scales / nearest
  const std::int64_t bucket = std::int64_t(1) << 20;
  std::printf("grad_buffer: %lld params, %d micro-batches, %d GPU(s), buckets of %lld\n",
              (long long)n, M, gpus, (long long)bucket);
  std::printf("memory: %.5f bytes/param (%zu bytes) vs fp32 4 (%lld) and bf16 2 (%lld)\n",
              agoq::grad_bytes_per_param(spec), agoq::grad_bytes_required(n, spec, bucket),
              (long long)(4 * n), (long long)(2 * n));

  // The gradient of micro-batch m on rank r, as bf16 (what a trainer's backward produces).
  auto grad = [n](int r, int m) {
    std::mt19937 gen(1000u * std::uint32_t(r) + std::uint32_t(m));
    std::normal_distribution<float> nd(0.0f, 1e-3f);
    std::vector<__nv_bfloat16> g(static_cast<std::size_t>(n));
    for (auto& v : g)
      v = __float2bfloat16_rn(nd(gen));
    return g;
  };

#if AGOQ_HAS_NCCL()
  std::vector<ncclComm_t> comms(static_cast<std::size_t>(gpus));
  if (ncclCommInitAll(comms.data(), gpus, nullptr) != ncclSuccess) {
    std::fprintf(stderr, "ncclCommInitAll failed\n");
    return 1;
  }
#endif
  std::vector<std::vector<float>> result(static_cast<std::size_t>(gpus));
  std::vector<std::string> errors(static_cast<std::size_t>(gpus));
  std::vector<std::thread> threads;
  for (int r = 0; r < gpus; ++r)
    threads.emplace_back([&, r] {
      try {
        AGOQ_CUDA_TRY(cudaSetDevice(r));
        cudaStream_t s;
        AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        agoq::grad_buffer gb(n, spec, bucket, agoq::cuda_malloc_allocator());
        __nv_bfloat16* d_grad = nullptr;
        float* d_out = nullptr;
        AGOQ_CUDA_TRY(cudaMalloc(&d_grad, sizeof(__nv_bfloat16) * std::size_t(n)));
        AGOQ_CUDA_TRY(cudaMalloc(&d_out, sizeof(float) * std::size_t(n)));
        AGOQ_TRY(gb.zero(s));
        for (int m = 0; m < M; ++m) { // 1. micro-batches
          const std::vector<__nv_bfloat16> h = grad(r, m);
          AGOQ_CUDA_TRY(cudaMemcpyAsync(d_grad, h.data(), h.size() * sizeof(h[0]),
                                        cudaMemcpyHostToDevice, s));
          for (std::int64_t b = 0; b < gb.bucket_count(); ++b) // as backward finishes buckets
            AGOQ_TRY(gb.accumulate_bucket(b, d_grad + gb.bucket_offset(b), s));
          AGOQ_CUDA_TRY(cudaStreamSynchronize(s)); // h is reused
        }
#if AGOQ_HAS_NCCL()
        const agoq::comm_ref comm(comms[std::size_t(r)]);
        const agoq::grad_comm_config opt; // average, auto algorithm, nearest
        std::size_t wsb = 0;
        for (std::int64_t b = 0; b < gb.bucket_count(); ++b)
          wsb = std::max(wsb, gb.allreduce_workspace_size(b, opt, comm));
        void* ws = nullptr;
        AGOQ_CUDA_TRY(cudaMalloc(&ws, wsb ? wsb : 1));
        for (std::int64_t b = 0; b < gb.bucket_count(); ++b) // 2. all-reduce on the codes
          AGOQ_TRY(gb.allreduce(b, opt, ws, wsb, comm, s));
#endif
        AGOQ_TRY(gb.dequantize_to(d_out, s)); // 3. optimizer hand-off (fp32)
        result[std::size_t(r)].resize(std::size_t(n));
        AGOQ_CUDA_TRY(cudaMemcpyAsync(result[std::size_t(r)].data(), d_out, sizeof(float) * n,
                                      cudaMemcpyDeviceToHost, s));
        AGOQ_CUDA_TRY(cudaStreamSynchronize(s));
#if AGOQ_HAS_NCCL()
        cudaFree(ws);
#endif
        cudaFree(d_grad);
        cudaFree(d_out);
        cudaStreamDestroy(s);
      } catch (const std::exception& e) {
        errors[std::size_t(r)] = e.what();
      }
    });
  for (auto& t : threads)
    t.join();
#if AGOQ_HAS_NCCL()
  for (int r = 0; r < gpus; ++r) {
    cudaSetDevice(r);
    ncclCommDestroy(comms[std::size_t(r)]);
  }
  const int world = gpus;
#else
  const int world = 1; // no NCCL: each GPU keeps its own buffer; rank 0 is checked
#endif
  for (int r = 0; r < gpus; ++r)
    if (!errors[std::size_t(r)].empty()) {
      std::fprintf(stderr, "rank %d: %s\n", r, errors[std::size_t(r)].c_str());
      return 1;
    }
  // Reference: fp32 accumulation on every rank, then the fp32 average.
  std::vector<double> ref(static_cast<std::size_t>(n), 0.0);
  for (int r = 0; r < world; ++r) {
    std::vector<float> acc(static_cast<std::size_t>(n), 0.0f);
    for (int m = 0; m < M; ++m) {
      const std::vector<__nv_bfloat16> h = grad(r, m);
      for (std::size_t i = 0; i < acc.size(); ++i)
        acc[i] += __bfloat162float(h[i]);
    }
    for (std::size_t i = 0; i < acc.size(); ++i)
      ref[i] += double(acc[i]) / world;
  }
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = result[0][i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  bool identical = true;
  for (int r = 1; r < world; ++r)
    identical = identical && result[std::size_t(r)] == result[0];
  std::printf("relative L2 error vs fp32 accumulation + fp32 average: %.3e\n",
              std::sqrt(num / den));
  std::printf("all %d rank(s) hold bitwise-identical gradients: %s\n", world,
              identical ? "yes" : "NO");
  return identical ? 0 : 1;
}

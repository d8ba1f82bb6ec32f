// SPDX-License-Identifier: Apache-2.0
//! @file examples/common/allreduce_vs_nccl.cuh
//! Shared by agoq-allreduce and agoq-demo: one rank's agoq::allreduce next to ncclAllReduce(bf16)
//! on the same data (time per call, relative L2 error against an fp64 sum), and the one-process
//! driver that runs every visible GPU as a rank, one host thread each.
#pragma once

#include <agoq/agoq.cuh>

#if AGOQ_HAS_NCCL()

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace agoq_examples {

// Rank r's input element i: a normal-ish value from a hash, so every process can recompute
// every rank's input (and the fp64 reference) without moving data.
inline float input_value(int rank, std::int64_t i) {
  std::uint64_t z =
      std::uint64_t(i) * 0x9E3779B97F4A7C15ull + std::uint64_t(rank + 1) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // sum of four uniforms in [-0.5, 0.5): mean 0, variance 1/3, close to normal
  float s = 0;
  for (int k = 0; k < 4; ++k)
    s += float((z >> (16 * k)) & 0xFFFF) / 65536.0f - 0.5f;
  return s * 1.7320508f;
}

// What one rank measured.
struct rank_result {
  double agoq_ms = 0, nccl_ms = 0;     // mean time per call
  double agoq_err = 0, nccl_err = 0;   // relative L2 error against the fp64 sum
  std::vector<__nv_bfloat16> agoq_out; // to check that every rank got the same bits
};

inline double rel_l2(const std::vector<__nv_bfloat16>& y, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double d = double(__bfloat162float(y[i])) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// The fp64 sum over all ranks' inputs (each input rounded to bf16, as the ranks hold it).
inline std::vector<double> reference_sum(int world, std::int64_t count) {
  std::vector<double> ref(static_cast<std::size_t>(count), 0.0);
  for (int r = 0; r < world; ++r)
    for (std::int64_t i = 0; i < count; ++i)
      ref[std::size_t(i)] += double(__bfloat162float(__float2bfloat16(input_value(r, i))));
  return ref;
}

// One rank's work: the same data through agoq::allreduce and ncclAllReduce(bf16), timed with
// CUDA events on this rank's stream. Every rank of `comm` must call it (the collectives match).
inline rank_result run_rank(ncclComm_t comm, int rank, int device, std::int64_t count, int iters,
                            const std::vector<double>* ref) {
  AGOQ_CUDA_TRY(cudaSetDevice(device));
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::int64_t n = count;
  const std::size_t bytes = std::size_t(n) * sizeof(__nv_bfloat16);

  std::vector<__nv_bfloat16> host(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    host[std::size_t(i)] = __float2bfloat16(input_value(rank, i));
  __nv_bfloat16 *x = nullptr, *y = nullptr;
  AGOQ_CUDA_TRY(cudaMalloc(&x, bytes));
  AGOQ_CUDA_TRY(cudaMalloc(&y, bytes));
  AGOQ_CUDA_TRY(cudaMemcpy(x, host.data(), bytes, cudaMemcpyHostToDevice));

  // agoq never allocates: ask for the workspace size once, allocate it once, reuse it.
  const agoq::allreduce_config cfg; // INT8 wire, block 128, fp32 scales, sum, algorithm auto
  const agoq::comm_ref cref(comm);
  const std::size_t ws_bytes = agoq::allreduce_workspace_size<__nv_bfloat16>(n, cfg, cref);
  void* ws = nullptr;
  AGOQ_CUDA_TRY(cudaMalloc(&ws, ws_bytes ? ws_bytes : 1));

  auto agoq_call = [&] { AGOQ_TRY(agoq::allreduce(x, y, n, cfg, ws, ws_bytes, cref, stream)); };
  auto nccl_call = [&] {
    AGOQ_NCCL_TRY(ncclAllReduce(x, y, std::size_t(n), ncclBfloat16, ncclSum, comm, stream));
  };
  cudaEvent_t start, stop;
  AGOQ_CUDA_TRY(cudaEventCreate(&start));
  AGOQ_CUDA_TRY(cudaEventCreate(&stop));
  auto time_ms = [&](auto&& call) {
    for (int i = 0; i < 3; ++i)
      call(); // warm-up (also lines the ranks up)
    AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
    AGOQ_CUDA_TRY(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i)
      call();
    AGOQ_CUDA_TRY(cudaEventRecord(stop, stream));
    AGOQ_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0;
    AGOQ_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    return double(ms) / iters;
  };

  rank_result res;
  std::vector<__nv_bfloat16> out(static_cast<std::size_t>(n));
  res.nccl_ms = time_ms(nccl_call);
  AGOQ_CUDA_TRY(cudaMemcpy(out.data(), y, bytes, cudaMemcpyDeviceToHost));
  if (ref) res.nccl_err = rel_l2(out, *ref);
  res.agoq_ms = time_ms(agoq_call);
  AGOQ_CUDA_TRY(cudaMemcpy(out.data(), y, bytes, cudaMemcpyDeviceToHost));
  if (ref) res.agoq_err = rel_l2(out, *ref);
  res.agoq_out = std::move(out);

  cudaEventDestroy(start), cudaEventDestroy(stop);
  cudaFree(ws), cudaFree(x), cudaFree(y);
  cudaStreamDestroy(stream);
  return res;
}

//! What the one-process run of every visible GPU measured: rank 0's result, whether every
//! rank ended with the same bits, and the first error a rank threw (empty when none).
struct all_gpus_result {
  rank_result rank0;
  bool identical = false;
  std::string error;
};

//! Every visible GPU as one rank of one communicator (ncclCommInitAll), one thread per GPU, each
//! running run_rank on `count` bf16 values; rank 0 also measures the errors.
inline all_gpus_result run_all_gpus(int devices, std::int64_t count, int iters) {
  std::vector<ncclComm_t> comms(static_cast<std::size_t>(devices));
  AGOQ_NCCL_TRY(ncclCommInitAll(comms.data(), devices, nullptr)); // devices 0..devices-1
  const std::vector<double> ref = reference_sum(devices, count);
  std::vector<rank_result> results(static_cast<std::size_t>(devices));
  std::vector<std::string> errors(static_cast<std::size_t>(devices));
  std::vector<std::thread> threads;
  for (int r = 0; r < devices; ++r)
    threads.emplace_back([&, r] {
      try {
        results[std::size_t(r)] =
            run_rank(comms[std::size_t(r)], r, r, count, iters, r == 0 ? &ref : nullptr);
      } catch (const std::exception& e) {
        errors[std::size_t(r)] = e.what(); // (a real trainer would ncclCommAbort every rank here)
      }
    });
  for (auto& t : threads)
    t.join();
  all_gpus_result out;
  for (int r = 0; r < devices && out.error.empty(); ++r)
    if (!errors[std::size_t(r)].empty())
      out.error = "rank " + std::to_string(r) + ": " + errors[std::size_t(r)];
  if (out.error.empty()) {
    out.identical = true;
    for (const auto& r : results)
      out.identical = out.identical && std::memcmp(r.agoq_out.data(), results[0].agoq_out.data(),
                                                   std::size_t(count) * 2) == 0;
    out.rank0 = std::move(results[0]);
  }
  for (ncclComm_t c : comms)
    ncclCommDestroy(c);
  return out;
}

} // namespace agoq_examples

#endif // AGOQ_HAS_NCCL()

// SPDX-License-Identifier: Apache-2.0
// What every Google Benchmark program in bench/ shares: the GPU check, CUDA-event timing with an
// L2 flush before every call, GB/s, and frac_copy against the copy measured in the same run.
#pragma once

#include <agoq/error.hpp>

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>

namespace agoq_bench {

inline bool has_gpu() {
  int n = 0;
  const bool yes = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  if (!yes) (void)cudaGetLastError();
  return yes;
}

//! Events and a 256 MiB buffer whose memset evicts the 60 MB L2 before each timed call.
struct timer {
  static constexpr size_t flush_bytes = size_t(256) << 20;
  void* flush = nullptr;
  cudaEvent_t start{}, stop{};
  timer() {
    AGOQ_CUDA_TRY(cudaMalloc(&flush, flush_bytes));
    AGOQ_CUDA_TRY(cudaEventCreate(&start));
    AGOQ_CUDA_TRY(cudaEventCreate(&stop));
  }
};

inline timer& the_timer() {
  static timer t; // created at first use, on a machine that has a GPU
  return t;
}

//! GB/s of the copy row at each size (range(0)), for frac_copy of the rows that follow it.
inline std::map<long, double>& copy_gbps() {
  static std::map<long, double> m;
  return m;
}

//! Times `op` (work enqueued on the default stream) per iteration with CUDA events, after an L2
//! flush; reports GB/s of `bytes_moved` per call and, when a copy of the same range(0) ran
//! earlier, frac_copy. The copy row itself passes is_copy = true.
template <class Op>
void time_it(benchmark::State& st, double bytes_moved, Op&& op, bool is_copy = false) {
  if (!has_gpu()) {
    st.SkipWithError("no CUDA device");
    return;
  }
  timer& t = the_timer();
  double total_s = 0;
  for (auto _ : st) {
    AGOQ_CUDA_TRY(cudaMemsetAsync(t.flush, int(st.iterations() & 0xff), timer::flush_bytes));
    AGOQ_CUDA_TRY(cudaEventRecord(t.start));
    op();
    AGOQ_CUDA_TRY(cudaEventRecord(t.stop));
    AGOQ_CUDA_TRY(cudaEventSynchronize(t.stop));
    float ms = 0;
    AGOQ_CUDA_TRY(cudaEventElapsedTime(&ms, t.start, t.stop));
    st.SetIterationTime(ms / 1e3);
    total_s += ms / 1e3;
  }
  const double gbps = bytes_moved * double(st.iterations()) / total_s / 1e9;
  st.SetBytesProcessed(std::int64_t(bytes_moved) * st.iterations());
  st.counters["GB/s"] = gbps;
  if (is_copy) copy_gbps()[long(st.range(0))] = gbps;
  const auto it = copy_gbps().find(long(st.range(0)));
  if (it != copy_gbps().end()) st.counters["frac_copy"] = gbps / it->second;
}

} // namespace agoq_bench

// SPDX-License-Identifier: Apache-2.0
//! @file quant/pipeline.cuh
//! Software pipelining of the quantizer kernels' global memory traffic. A thread copies the small
//! reads of its next trips (codes, scales, lane-by-lane elements) into its own slots of shared
//! memory with `cp.async` (sm_80+) while it computes the current trip; a warp whose chunks are back
//! to back loads its next trip's element span into registers with coalesced vector loads
//! (span_prefetch) and stores output spans the same way (store_span), transposing through the
//! slots. No block-wide barrier: a thread's own `cp.async.wait_group` and warp-level
//! `__syncwarp`s order everything.
#pragma once

#include "agoq/config.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace agoq {
namespace detail {

//! Threads per CTA of every quantizer kernel (the stage layout below, their __launch_bounds__
//! and quant_tuning agree).
inline constexpr int quant_threads = 256;

//! Stages for a kernel staging `units` 16-byte units per thread and trip: as many as fit in
//! 48 KiB per CTA (the limit without an opt-in attribute), between 2 and 4.
//! (A copy whose lanes each move 16 contiguous bytes of a contiguous warp span uses whole 32-byte
//! sectors per instruction; a lane owning 32 or 64 contiguous bytes would touch every sector
//! twice or four times, doubling the L2 transactions. See span_prefetch/store_span.)
constexpr int stages_for(int units) {
  const int fit = (48 << 10) / (units * 16 * quant_threads);
  return fit < 2 ? 2 : fit > 4 ? 4 : fit;
}

//! Dynamic shared memory of a kernel staging `units` units per thread and trip.
constexpr std::size_t stage_bytes(int units) {
  return std::size_t(stages_for(units)) * std::size_t(units) * 16u * quant_threads;
}

// ---- cp.async
// ------------------------------------------------------------------------------------

//! Starts copying Bytes (4, 8 or 16; src and dst aligned to it) from global to shared memory.
template <int Bytes> AGOQ_DEVICE void cp_async(void* dst, const void* src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  if constexpr (Bytes == 16) // .cg: streamed data bypasses L1
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(s), "l"(src), "n"(Bytes)
                 : "memory");
#else // older GPUs: a plain (blocking) copy keeps the kernels correct
  if constexpr (Bytes == 16)
    *static_cast<uint4*>(dst) = *static_cast<const uint4*>(src);
  else if constexpr (Bytes == 8)
    *static_cast<uint2*>(dst) = *static_cast<const uint2*>(src);
  else
    *static_cast<unsigned*>(dst) = *static_cast<const unsigned*>(src);
#endif
}

//! As cp_async<4>, copying only the first `n` (0..4) bytes and zero-filling the rest.
AGOQ_DEVICE void cp_async4_prefix(void* dst, const void* src, int n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src), "r"(n)
               : "memory");
#else
  unsigned w = 0;
  for (int i = 0; i < n; ++i)
    w |= unsigned(static_cast<const std::uint8_t*>(src)[i]) << (8 * i);
  *static_cast<unsigned*>(dst) = w;
#endif
}

AGOQ_DEVICE void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

//! Waits until at most N of this thread's committed groups are still in flight.
template <int N> AGOQ_DEVICE void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// ---- the stage buffer and the pipelined loop
// -----------------------------------------------------

//! One thread's slots in the dynamic shared memory of a pipelined kernel: stages_for(Units)
//! stages of Units 16-byte units, stored [stage][unit][thread] so that a warp's accesses to one
//! unit are 32 consecutive 16-byte words (no bank conflicts).
template <int Units> struct stage_buffer {
  static constexpr int units = Units;
  static constexpr int stages = stages_for(Units);
  uint4* smem;

  AGOQ_DEVICE uint4* unit(int stage, int u) const { return unit_of(stage, u, int(threadIdx.x)); }
  //! Unit u of thread t's slot (for copies a warp makes on behalf of its lanes).
  AGOQ_DEVICE uint4* unit_of(int stage, int u, int t) const {
    return smem + (stage * Units + u) * quant_threads + t;
  }
};

//! A warp's 32 back-to-back chunks (one contiguous span of 32 * U 16-byte pieces), loaded one
//! trip ahead into registers with plain coalesced vector loads (lane i loads pieces i, i + 32,
//! ...), then put into the slots of the lanes the pieces belong to. Not cp.async: the L2 serves
//! each 16-byte cp.async as its own one-sector request, so a warp's span was requested twice
//! per sector (measured with Nsight Compute: 2 L2 read sectors per input sector), while a warp's
//! vector load is merged into whole 128-byte requests.
template <int U> struct span_prefetch {
  uint4 r[U];

  AGOQ_DEVICE void load(const void* span) {
    const int lane = int(threadIdx.x & 31);
#pragma unroll
    for (int j = 0; j < U; ++j)
      r[j] = __ldcs(static_cast<const uint4*>(span) + lane + 32 * j);
  }
  //! Puts the pieces into units [0, U) of the owners' slots of `stage`; the lanes may read them
  //! after a __syncwarp.
  template <int Units> AGOQ_DEVICE void put(const stage_buffer<Units>& b, int stage) const {
    const int lane = int(threadIdx.x & 31), warp0 = int(threadIdx.x) - lane;
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int k = lane + 32 * j;
      *b.unit_of(stage, k % U, warp0 + k / U) = r[j];
    }
  }
};

//! The converse: after every lane has put its chunk's bytes in units [0, U) of its slot, the
//! warp stores the span with coalesced 16-byte stores.
template <int U, int Units>
AGOQ_DEVICE void store_span(const stage_buffer<Units>& b, int stage, void* span) {
  const int lane = int(threadIdx.x & 31), warp0 = int(threadIdx.x) - lane;
  __syncwarp();
#pragma unroll
  for (int j = 0; j < U; ++j) {
    const int k = lane + 32 * j;
    static_cast<uint4*>(span)[k] = *b.unit_of(stage, k % U, warp0 + k / U);
  }
}

//! The generic loop of every quantizer kernel: a grid-stride loop over chunks from the lane's
//! chunk `first` in which trip k first starts the copies of trip k + Stages - 1
//! (`issue(stage, chunk)`), then waits for trip k's copies and runs `work(stage, chunk)`. A chunk
//! index may be >= total (a lane past the end stays for the block shuffles; its issue must copy
//! nothing). Every lane of a warp runs the same trips. The slot issue() fills was last read by the previous trip's work(); the
//! __syncwarp before the issue makes sure every lane of the warp is done with it (a warp may fill
//! its lanes' slots cooperatively), and the one after the wait makes every lane's copies visible
//! to the whole warp.
template <int Stages, class Issue, class Work>
AGOQ_DEVICE void pipelined_chunks(std::int64_t first, std::int64_t total, Issue&& issue,
                                  Work&& work) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
#pragma unroll
  for (int s = 0; s + 1 < Stages; ++s) {
    issue(s, first + s * stride);
    cp_async_commit();
  }
  int stage = 0;
  for (std::int64_t c = first; c - lane < total; c += stride) {
    __syncwarp();
    issue(stage == 0 ? Stages - 1 : stage - 1, c + (Stages - 1) * stride);
    cp_async_commit();
    cp_async_wait<Stages - 1>();
    __syncwarp();
    work(stage, c);
    stage = stage + 1 == Stages ? 0 : stage + 1;
  }
  cp_async_wait<0>();
}

} // namespace detail
} // namespace agoq

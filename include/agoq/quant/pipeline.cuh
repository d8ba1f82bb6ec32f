// SPDX-License-Identifier: Apache-2.0
//! @file quant/pipeline.cuh
//! Software pipelining of the quantizer kernels' global memory traffic. A warp whose chunks are
//! back to back has its next trips' element spans copied into shared memory by the copy engine
//! (`cp.async.bulk`, sm_90, completing on per-warp mbarriers) while it computes the current trip,
//! and stores output spans with coalesced 16-byte stores (store_span). Elsewhere (tails, strided
//! rows) a thread copies the reads of its next trips into its own slots with `cp.async` (sm_80+).
//! No block-wide barrier: mbarriers, a thread's own `cp.async.wait_group` and warp-level
//! `__syncwarp`s order everything.
#pragma once

#include "agoq/config.hpp"
#include "agoq/detail/ptx.cuh"
#include "agoq/quant/tuning.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace agoq {
namespace detail {

//! Stages for a kernel staging `units` 16-byte units per thread and trip: as many as fit in
//! 48 KiB per CTA (the limit without an opt-in attribute), between 2 and 5.
constexpr int stages_for(int units) {
  const int fit = (48 << 10) / (units * 16 * quant_threads);
  return fit < 2 ? 2 : fit > 5 ? 5 : fit;
}

//! Dynamic shared memory of a kernel staging `units` units per thread and trip.
constexpr std::size_t stage_bytes(int units) {
  return std::size_t(stages_for(units)) * std::size_t(units) * 16u * quant_threads;
}

// ---- the stage buffer and the pipelined loop ----------------------------------------------------

//! The dynamic shared memory of a pipelined kernel, split into one area per warp. Two uses, one
//! after the other (a warp runs its dense trips first, then the generic loop):
//! - slots: each thread's stages_for(Units) stages of Units 16-byte units, stored
//!   [stage][unit][lane] inside the warp's area, so that a warp's accesses to one unit are 32
//!   consecutive 16-byte words (no bank conflicts);
//! - spans: the area's start seen as `span_stages<U>` contiguous spans of 32 * U units, each the
//!   image of a warp's 32 back-to-back chunks (lane i's chunk at units [i * U, i * U + U)), and
//!   its last 32 bytes as the spans' mbarriers (span_copies).
template <int Units> struct stage_buffer {
  static constexpr int stages = stages_for(Units);
  static constexpr int area_units = stages * Units * 32; //!< 16-byte units per warp
  uint4* smem;

  //! The calling warp's area.
  AGOQ_DEVICE uint4* area() const { return smem + (threadIdx.x >> 5) * area_units; }
  //! Unit u of the calling thread's slot of `stage`.
  AGOQ_DEVICE uint4* unit(int stage, int u) const {
    return area() + (stage * Units + u) * 32 + (threadIdx.x & 31);
  }
  //! Spans of U units per chunk that fit in an area beside their barriers (at most 4).
  template <int U>
  static constexpr int span_stages = (area_units - 2) / (U * 32) < 4 ? (area_units - 2) / (U * 32)
                                                                     : 4;
  //! Span d of U units per chunk.
  template <int U> AGOQ_DEVICE uint4* span(int d) const { return area() + d * (U * 32); }
};

// ---- bulk copies into spans (sm_90: the copy engine, completing on an mbarrier) -----------------

//! The copies of a warp's spans: span d of U units per chunk (d < D) is filled by at most one
//! copy at a time, whose completion is tracked by mbarrier d (one arrival: the issuing lane's
//! arrive.expect_tx, plus the copy's bytes). Addresses are 32-bit shared-memory addresses,
//! computed once. On older GPUs the warp copies a span itself, synchronously.
template <int U, int D> struct span_copies {
  static constexpr unsigned span_bytes = 32u * U * 16u;
  unsigned spans; //!< span 0
  unsigned bars;  //!< mbarrier 0 (8 bytes each)

  template <int Units> AGOQ_DEVICE explicit span_copies(const stage_buffer<Units>& b) {
    static_assert(D >= 2 && D * U * 32 + 2 <= stage_buffer<Units>::area_units,
                  "the spans and their barriers must fit in a warp's area");
    spans = ptx::smem_addr(b.area());
    bars = spans + stage_buffer<Units>::area_units * 16u - 32u;
  }
  AGOQ_DEVICE uint4* span(int d) const {
    return static_cast<uint4*>(__cvta_shared_to_generic(spans + d * span_bytes));
  }

  //! Called by every lane of the warp, once, before any copy.
  AGOQ_DEVICE void init() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if ((threadIdx.x & 31) == 0) {
#pragma unroll
      for (int d = 0; d < D; ++d)
        ptx::mbarrier_init(bars + 8u * d, 1);
      ptx::fence_mbarrier_init();
    }
#endif
    __syncwarp();
  }
  //! Called by every lane, after the last wait: the area becomes slots again.
  AGOQ_DEVICE void release() const {
    __syncwarp();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if ((threadIdx.x & 31) == 0) {
#pragma unroll
      for (int d = 0; d < D; ++d)
        ptx::mbarrier_inval(bars + 8u * d);
    }
    __syncwarp();
#endif
  }
  //! Called by every lane: starts copying span d's bytes from global `src` (16-byte aligned).
  //! The warp must be done with span d (a __syncwarp after its last reads).
  AGOQ_DEVICE void copy(int d, const void* src) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if ((threadIdx.x & 31) == 0) {
      const unsigned bar = bars + 8u * d;
      ptx::mbarrier_arrive_expect_tx<span_bytes>(bar);
      ptx::bulk_copy_to_shared<span_bytes>(spans + d * span_bytes, src, bar);
    }
#else
    uint4* dst = span(d);
    for (unsigned k = threadIdx.x & 31; k < span_bytes / 16; k += 32)
      dst[k] = static_cast<const uint4*>(src)[k];
#endif
  }
  //! Called by every lane: waits for the n-th copy into span d (counting from 0), where
  //! parity = n & 1 (the barrier's n-th phase has completed).
  AGOQ_DEVICE void wait(int d, unsigned parity) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    while (!ptx::mbarrier_try_wait_parity(bars + 8u * d, parity)) {
    }
#else
    (void)d, (void)parity;
#endif
    __syncwarp(); // the warp leaves the wait together (the shuffles that follow need it)
  }
};

//! Lane's chunk of a span: its U units, read (put) by the lane itself.
template <int U, class Unit> AGOQ_DEVICE Unit* lane_chunk(Unit* span) {
  return span + (threadIdx.x & 31) * U;
}

//! After every lane has written its chunk into the span, the warp stores the span to global
//! memory with coalesced 16-byte stores (lane i stores units i, i + 32, ...). Whole 32-byte
//! sectors per store instruction: lanes storing their own 32 or 64 contiguous bytes directly
//! touch every sector two or four times (measured: 0.61 instead of 0.91 of copy for dequantize).
template <int U> AGOQ_DEVICE void store_span(const uint4* span, void* dst) {
  const int lane = int(threadIdx.x & 31);
  __syncwarp();
#pragma unroll
  for (int j = 0; j < U; ++j)
    static_cast<uint4*>(dst)[lane + 32 * j] = span[lane + 32 * j];
}

//! The generic loop of every quantizer kernel: a grid-stride loop over chunks from the lane's
//! chunk `first` in which trip k first starts the copies of trip k + Stages - 1
//! (`issue(stage, chunk)`), then waits for trip k's copies and runs `work(stage, chunk)`. A chunk
//! index may be >= total (a lane past the end stays for the block shuffles; its issue must copy
//! nothing). Every lane of a warp runs the same trips. The slot issue() fills was last read by
//! the previous trip's work(); the __syncwarp before the issue makes sure every lane of the warp
//! is done with it, and the one after the wait makes every lane's copies visible to the whole
//! warp.
template <int Stages, class Issue, class Work>
AGOQ_DEVICE void pipelined_chunks(std::int64_t first, std::int64_t total, Issue&& issue,
                                  Work&& work) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
#pragma unroll
  for (int s = 0; s + 1 < Stages; ++s) {
    issue(s, first + s * stride);
    ptx::cp_async_commit();
  }
  int stage = 0;
  for (std::int64_t c = first; c - lane < total; c += stride) {
    __syncwarp();
    issue(stage == 0 ? Stages - 1 : stage - 1, c + (Stages - 1) * stride);
    ptx::cp_async_commit();
    ptx::cp_async_wait<Stages - 1>();
    __syncwarp();
    work(stage, c);
    stage = stage + 1 == Stages ? 0 : stage + 1;
  }
  ptx::cp_async_wait<0>();
}

} // namespace detail
} // namespace agoq

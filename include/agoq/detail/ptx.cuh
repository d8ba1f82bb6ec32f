// SPDX-License-Identifier: Apache-2.0
//! @file detail/ptx.cuh
//! Every inline-PTX instruction the kernels use, each in one small wrapper (namespace
//! agoq::detail::ptx): cp.async (sm_80), mbarriers, the bulk copy engine and the async-proxy fence
//! (sm_90), prmt and the saturating paired conversions. Below the architecture an instruction
//! needs, a wrapper does the same work with ordinary code (or nothing, where nothing is needed).
#pragma once

#include "agoq/config.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace agoq {
namespace detail {
namespace ptx {

// ---- cp.async (sm_80)
// ------------------------------------------------------------------------------

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

// ---- mbarriers and the bulk copy engine (sm_90) ------------------------------------------------

//! The 32-bit shared-memory address of p (what the asm operands below take).
AGOQ_DEVICE unsigned smem_addr(const void* p) { return unsigned(__cvta_generic_to_shared(p)); }

//! Initialises the mbarrier at shared address `bar` for `count` arrivals.
AGOQ_DEVICE void mbarrier_init(unsigned bar, unsigned count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#else
  (void)bar, (void)count;
#endif
}

//! Makes the initialised mbarriers visible to the async proxy (the copy engine).
AGOQ_DEVICE void fence_mbarrier_init() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

//! Invalidates the mbarrier at `bar` (its memory may be reused).
AGOQ_DEVICE void mbarrier_inval(unsigned bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
#else
  (void)bar;
#endif
}

//! Arrives on `bar`, expecting Bytes more bytes of transactions in this phase.
template <unsigned Bytes> AGOQ_DEVICE void mbarrier_arrive_expect_tx(unsigned bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .b64 state;\n"
               " mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(bar),
               "n"(Bytes)
               : "memory");
#else
  (void)bar;
#endif
}

//! The copy engine copies Bytes from global `src` to shared address `dst` (both 16-byte
//! aligned), completing Bytes transactions on the mbarrier at `bar`. sm_90 only.
template <unsigned Bytes>
AGOQ_DEVICE void bulk_copy_to_shared(unsigned dst, const void* src, unsigned bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], "
               "%2, [%3];\n" ::"r"(dst),
               "l"(src), "n"(Bytes), "r"(bar)
               : "memory");
#else
  (void)dst, (void)src, (void)bar;
#endif
}

//! True once the phase of parity `parity` of the mbarrier at `bar` has completed (a bounded,
//! hardware-suspended wait; callers loop).
AGOQ_DEVICE bool mbarrier_try_wait_parity(unsigned bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  unsigned done = 0;
  asm volatile("{\n .reg .pred p;\n"
               " mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
               " selp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(bar), "r"(parity)
               : "memory");
  return done != 0;
#else
  (void)bar, (void)parity;
  return true;
#endif
}

//! Orders this thread's earlier shared-memory accesses before later copies by the copy engine
//! (needed before a bulk copy overwrites a span that threads wrote with ordinary stores).
AGOQ_DEVICE void fence_proxy_async() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// ---- register instructions --------------------------------------------------------------------

//! prmt.b32 with a constant selector (as __byte_perm, but the selectors' sign bits replicate the
//! selected byte's sign: 0x8-0xF pick a byte's sign extended to 8 bits).
template <unsigned Selector> AGOQ_DEVICE std::uint32_t prmt(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "n"(Selector));
  return r;
}

//! (lo, hi) rounded to nearest even and saturated at the type's largest finite value, packed
//! into one word (bf16x2 if Bf16, else f16x2); sm_80 and CUDA >= 12.1 (AGOQ_HAS_CVT_SATFINITE).
template <bool Bf16> AGOQ_DEVICE std::uint32_t cvt_satfinite_x2(float hi, float lo) {
  std::uint32_t r;
  if constexpr (Bf16)
    asm("cvt.rn.satfinite.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  else
    asm("cvt.rn.satfinite.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

} // namespace ptx
} // namespace detail
} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file comm/reduce_kernels.cuh
//! The collectives' codec kernels (used by cuda_executor, comm/cuda_executor.cuh):
//! - reduce_quantize / reduce_store: decode w messages, add them in fp32 left to right, divide,
//!   then requantize (two-shot step 3) or convert to T (one-shot), in ONE pass: each thread reads
//!   its 16 elements of every message, and the fp32 sum never goes to memory;
//! - quantize_many / dequantize_many: up to comm_max_jobs independent (de)quantizations of one
//!   spec in one launch (two-shot's W pieces of a chunk; one-shot's chunk, one job), so a chunk
//!   costs one launch per step.
//!
//! Per element these are exactly the host reference's operations (agoq::ref, comm/transport.hpp):
//! decode per format/codec.hpp, one IEEE fp32 addition per message after the first, one IEEE
//! division when the divisor is not 1, block amax/scale/encode from the same device helpers as
//! quant/chunk_codec.cuh (reduce_stats, params_from_stats, encode_chunk, decode_chunk, ...), with
//! stochastic rounding drawing Philox(seed, i) for element i of each message.
//!
//! Grids: these kernels run next to NCCL kernels on another stream (the two-shot and one-shot
//! pipelines). They use short-lived CTAs (each thread does at most `trips` chunks of 16
//! elements, the grid covers the work) rather than one resident wave of grid-stride CTAs, so that
//! a high-priority NCCL kernel launched meanwhile gets SMs within microseconds instead of waiting
//! for the whole codec kernel, and the codec kernel keeps whatever SMs NCCL leaves. Only symmetric
//! formats (the wire is always symmetric) are instantiated.
#pragma once

#include "agoq/comm/transport.hpp"
#include "agoq/config.hpp"
#include "agoq/detail/device.cuh"
#include "agoq/error.hpp"
#include "agoq/format/codec.hpp"
#include "agoq/format/format.hpp"
#include "agoq/quant/chunk_codec.cuh"
#include "agoq/quant/dispatch.cuh"
#include "agoq/quant/tuning.cuh"
#include "agoq/quant/view.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

// ---- 16 elements of T <-> 16 floats: load_raw16/to_floats and store16/pack_raw16 of
// quant/chunk_codec.cuh, plus the warp-staged store below.

//! Shared memory of one warp's staged stores (comm_store_chunk): its 32 chunks of T.
template <class T> struct comm_warp_stage { uint4 q[sizeof(T) * 32]; };

//! Stores this lane's chunk `v` (`valid` elements at p, 16-byte aligned when `vec`): when the
//! whole warp holds 32 full chunks that lie back to back from a 16-byte aligned start
//! (`contiguous`: full, aligned and in one output array, which the caller knows), through `stage`
//! so that every store instruction writes 512 contiguous bytes; otherwise lane by lane
//! (store16). A lane storing its own 32 or 64 bytes writes half sectors per instruction:
//! dequantize_many ran at 0.72 of copy bandwidth that way and at 0.80 staged (the quantizer's
//! dequantize showed the same effect). Every lane of the warp must call this (a warp vote).
template <class T>
AGOQ_DEVICE void comm_store_chunk(T* p, int valid, bool vec, bool contiguous,
                                  const float (&v)[chunk_elems], comm_warp_stage<T>& stage) {
  if (!__all_sync(0xffffffffu, contiguous)) {
    if (valid > 0) store16(p, valid, vec, v);
    return;
  }
  constexpr int Q = int(sizeof(T)); // 16-byte pieces per chunk
  const int lane = int(threadIdx.x & 31);
  const raw16<T> r = pack_raw16<T>(v);
  __syncwarp(); // the previous trip's reads of the stage are done
#pragma unroll
  for (int q = 0; q < Q; ++q)
    stage.q[lane * Q + q] = make_uint4(r.w[4 * q], r.w[4 * q + 1], r.w[4 * q + 2], r.w[4 * q + 3]);
  __syncwarp();
  uint4* warp_out = reinterpret_cast<uint4*>(p - std::ptrdiff_t(lane) * chunk_elems);
#pragma unroll
  for (int q = 0; q < Q; ++q)
    warp_out[q * 32 + lane] = stage.q[q * 32 + lane];
}

//! Elements of the 16-element chunk that starts at element e0 of an n-element message.
AGOQ_DEVICE int comm_valid(std::int64_t n, std::int64_t e0) {
  const std::int64_t left = n - e0;
  return left <= 0 ? 0 : left >= chunk_elems ? chunk_elems : int(left);
}

//! The payload of a kernel that prefetches nothing (its work step does all the loads).
struct comm_no_prefetch {};

//! The loop of every kernel here: CTA b owns chunks [b * trips * threads, (b+1) * trips * threads)
//! (consecutive threads, consecutive chunks: coalesced). `load(c)` issues the next trip's global
//! loads before `work(c, payload)` of this trip runs, so a warp keeps two trips of loads in
//! flight: that made dequantize_many 17% faster (it is latency-bound otherwise, one 16-byte load
//! per thread); the kernels without registers to spare prefetch nothing (comm_no_prefetch). A
//! warp stops only when its first chunk is past `total`, so the block shuffles of reduce_stats
//! always see a full warp (lanes past the end get c >= total; load returns an empty payload).
template <class Load, class Work>
AGOQ_DEVICE void comm_for_each_chunk(std::int64_t total, int trips, Load&& load, Work&& work) {
  const std::int64_t lane = threadIdx.x & 31;
  const std::int64_t step = blockDim.x;
  std::int64_t c = std::int64_t(blockIdx.x) * trips * step + threadIdx.x;
  if (c - lane >= total) return;
  auto cur = load(c);
  for (int t = 0;; ++t, c += step) {
    const bool more = t + 1 < trips && c + step - lane < total; // warp-uniform
    decltype(cur) next{};
    if (more) next = load(c + step);
    work(c, cur);
    if (!more) return;
    cur = next;
  }
}

//! The job a chunk index belongs to (first[] holds each job's first chunk; jobs are few).
AGOQ_DEVICE int comm_job_of(const std::int64_t* first, int count, std::int64_t c) {
  int j = 0;
  while (j + 1 < count && c >= first[j + 1])
    ++j;
  return j;
}

// ---- kernels ----------------------------------------------------------------------------------

template <class T> struct comm_quantize_jobs {
  const T* x[comm_max_jobs];
  std::uint8_t* codes[comm_max_jobs];
  void* scales[comm_max_jobs];
  std::int64_t n[comm_max_jobs];
  std::uint64_t seed[comm_max_jobs];
  std::int64_t first[comm_max_jobs + 1]; //!< first chunk of job j; first[count] = total chunks
  unsigned vec;                          //!< bit j: job j's input is 16-byte aligned
  int count;
  int log2_lanes; //!< log2(block / 16)
  int trips;
  scale_kind scale;
  rounding rnd;
};

template <class T> struct comm_dequantize_jobs {
  const std::uint8_t* codes[comm_max_jobs];
  const void* scales[comm_max_jobs];
  T* y[comm_max_jobs];
  std::int64_t n[comm_max_jobs];
  std::int64_t first[comm_max_jobs + 1];
  unsigned vec; //!< bit j: job j's output is 16-byte aligned
  int count;
  int log2_lanes;
  int trips;
  scale_kind scale;
};

//! Arguments of the fused reductions: w messages of n elements at msgs + j * stride.
struct comm_reduce_args {
  const std::uint8_t* msgs;
  std::size_t stride;
  int w;
  std::int64_t n;
  std::int64_t chunks;    //!< 16-element chunks of every block: blocks << log2_lanes
  std::size_t scales_off; //!< codes_bytes(s, n): where a message's scales start
  int log2_lanes;
  int trips;
  scale_kind scale;
  float divisor; //!< 1: no division
  // reduce_quantize: the output
  std::uint8_t* out_codes;
  void* out_scales;
  rounding rnd;
  std::uint64_t seed;
  // reduce_store: the output
  void* y;
  bool vec; //!< y is 16-byte aligned
};

//! The loads of chunk c of the first two messages (of one when w == 1): the part of a reduction
//! that comm_for_each_chunk prefetches a trip ahead.
struct comm_sum_prefetch {
  chunk_codes codes[2];
  float scale[2];
};

template <class C>
AGOQ_DEVICE comm_sum_prefetch comm_sum_load(const comm_reduce_args& a, std::int64_t c) {
  comm_sum_prefetch f{};
  const std::int64_t blk = c >> a.log2_lanes;
  const std::size_t code_off = std::size_t(c) * (2 * C::bits);
#pragma unroll
  for (int u = 0; u < 2; ++u)
    if (u < a.w) {
      const std::uint8_t* m = a.msgs + std::size_t(u) * a.stride;
      f.codes[u] = load_codes<C::bits>(m + code_off);
      f.scale[u] = load_scale(m + a.scales_off, blk, a.scale);
    }
  return f;
}

//! acc = D(m_0) + D(m_1) + ... (left to right), then / divisor: chunk c of every message, the
//! first two from the prefetched `f`.
template <class C>
AGOQ_DEVICE void comm_sum_chunk(const comm_reduce_args& a, std::int64_t c,
                                const comm_sum_prefetch& f, float (&acc)[chunk_elems]) {
  decode_chunk<C>(f.codes[0], params_from_stored(f.scale[0], 0.0f), acc);
  if (a.w > 1) {
    float d[chunk_elems];
    decode_chunk<C>(f.codes[1], params_from_stored(f.scale[1], 0.0f), d);
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      acc[i] = add_rn(acc[i], d[i]);
  }
  const std::int64_t blk = c >> a.log2_lanes;
  const std::size_t code_off = std::size_t(c) * (2 * C::bits);
  constexpr int U = 2; // messages whose loads are in flight together (4 spill at 64 registers)
  for (int j = 2; j < a.w; j += U) {
    chunk_codes cc[U];
    float sc[U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (j + u < a.w) {
        const std::uint8_t* m = a.msgs + std::size_t(j + u) * a.stride;
        cc[u] = load_codes<C::bits>(m + code_off);
        sc[u] = load_scale(m + a.scales_off, blk, a.scale);
      }
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (j + u < a.w) {
        float d[chunk_elems];
        decode_chunk<C>(cc[u], params_from_stored(sc[u], 0.0f), d);
#pragma unroll
        for (int i = 0; i < chunk_elems; ++i)
          acc[i] = add_rn(acc[i], d[i]);
      }
  }
  if (a.divisor != 1.0f) {
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      acc[i] = div_rn(acc[i], a.divisor);
  }
}

// No prefetch here: the fused sum, block statistics and encode leave no registers for one at 4
// CTAs per SM, and at 3 CTAs per SM the prefetching version measured 8% slower.
template <format F>
__global__ static void __launch_bounds__(comm_codec_max_threads, comm_codec_min_ctas_per_sm)
    comm_reduce_quantize_kernel(const __grid_constant__ comm_reduce_args a) {
  using C = codec<F, true>;
  const std::int64_t total = a.chunks; // every lane of every block (a tail block's codes are 0)
  auto no_prefetch = [](std::int64_t) { return comm_no_prefetch{}; };
  comm_for_each_chunk(total, a.trips, no_prefetch, [&](std::int64_t c, comm_no_prefetch) {
    const int valid = c < total ? comm_valid(a.n, c * chunk_elems) : 0;
    float v[chunk_elems];
    if (valid > 0) {
      comm_sum_chunk<C>(a, c, comm_sum_load<C>(a, c), v);
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i) // encode_chunk wants +0 past `valid`
        if (i >= valid) v[i] = 0.0f;
    } else {
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        v[i] = 0.0f;
    }
    const chunk_stats st = reduce_stats<true>(v, valid, a.log2_lanes);
    if (c >= total) return;
    const block_params bp = params_from_stats<C>(st, a.scale);
    store_codes<C::bits>(a.out_codes + c * (2 * C::bits),
                         encode_chunk<C>(v, valid, bp, a.rnd, a.seed, c * chunk_elems));
    if ((c & ((std::int64_t(1) << a.log2_lanes) - 1)) == 0)
      store_params<C>(bp, a.scale, a.out_scales, nullptr, c >> a.log2_lanes);
  });
}

template <format F, class T>
__global__ static void __launch_bounds__(comm_codec_max_threads, comm_codec_min_ctas_per_sm)
    comm_reduce_store_kernel(const __grid_constant__ comm_reduce_args a) {
  using C = codec<F, true>;
  const std::int64_t total = a.chunks;
  auto load = [&](std::int64_t c) {
    return c < total && comm_valid(a.n, c * chunk_elems) > 0 ? comm_sum_load<C>(a, c)
                                                             : comm_sum_prefetch{};
  };
  __shared__ comm_warp_stage<T> stage[8]; // one per warp (256 threads)
  comm_for_each_chunk(total, a.trips, load, [&](std::int64_t c, const comm_sum_prefetch& f) {
    const int valid = c < total ? comm_valid(a.n, c * chunk_elems) : 0;
    float v[chunk_elems];
    if (valid > 0) comm_sum_chunk<C>(a, c, f, v);
    comm_store_chunk(static_cast<T*>(a.y) + (valid > 0 ? c * chunk_elems : 0), valid, a.vec,
                     valid == chunk_elems && a.vec, v, stage[threadIdx.x >> 5]);
  });
}

// No prefetch here either: a prefetched chunk needs 8 (16-bit input) or 16 (fp32) more registers
// than 4 CTAs per SM leave, and at 3 CTAs per SM the prefetching version measured 6% slower.
template <format F, class T>
__global__ static void __launch_bounds__(comm_codec_max_threads, comm_codec_min_ctas_per_sm)
    comm_quantize_many_kernel(const __grid_constant__ comm_quantize_jobs<T> a) {
  using C = codec<F, true>;
  const std::int64_t total = a.first[a.count];
  auto no_prefetch = [](std::int64_t) { return comm_no_prefetch{}; };
  comm_for_each_chunk(total, a.trips, no_prefetch, [&](std::int64_t c, comm_no_prefetch) {
    const int j = comm_job_of(a.first, a.count, c);
    const std::int64_t lc = c - a.first[j]; // chunk within job j
    const std::int64_t e0 = lc * chunk_elems;
    const int valid = c < total ? comm_valid(a.n[j], e0) : 0;
    float v[chunk_elems];
    to_floats(load_raw16(a.x[j] + (valid > 0 ? e0 : 0), valid, (a.vec >> j) & 1u), v);
    const chunk_stats st = reduce_stats<true>(v, valid, a.log2_lanes);
    if (c >= total) return;
    const block_params bp = params_from_stats<C>(st, a.scale);
    store_codes<C::bits>(a.codes[j] + lc * (2 * C::bits),
                         encode_chunk<C>(v, valid, bp, a.rnd, a.seed[j], e0));
    if ((lc & ((std::int64_t(1) << a.log2_lanes) - 1)) == 0)
      store_params<C>(bp, a.scale, a.scales[j], nullptr, lc >> a.log2_lanes);
  });
}

//! A chunk of codes in flight, with its block's stored scale.
struct comm_codes_prefetch {
  chunk_codes codes;
  float scale;
};

template <format F, class T>
__global__ static void __launch_bounds__(comm_codec_max_threads, comm_codec_min_ctas_per_sm)
    comm_dequantize_many_kernel(const __grid_constant__ comm_dequantize_jobs<T> a) {
  using C = codec<F, true>;
  const std::int64_t total = a.first[a.count];
  auto load = [&](std::int64_t c) {
    comm_codes_prefetch f{};
    if (c >= total) return f;
    const int j = comm_job_of(a.first, a.count, c);
    const std::int64_t lc = c - a.first[j];
    if (comm_valid(a.n[j], lc * chunk_elems) == 0) return f;
    f.codes = load_codes<C::bits>(a.codes[j] + lc * (2 * C::bits));
    f.scale = load_scale(a.scales[j], lc >> a.log2_lanes, a.scale);
    return f;
  };
  __shared__ comm_warp_stage<T> stage[8]; // one per warp (256 threads)
  comm_for_each_chunk(total, a.trips, load, [&](std::int64_t c, const comm_codes_prefetch& f) {
    const int j = c < total ? comm_job_of(a.first, a.count, c) : -1;
    const std::int64_t e0 = j >= 0 ? (c - a.first[j]) * chunk_elems : 0;
    const int valid = j >= 0 ? comm_valid(a.n[j], e0) : 0;
    float v[chunk_elems];
    if (valid > 0) decode_chunk<C>(f.codes, params_from_stored(f.scale, 0.0f), v);
    const int j0 = __shfl_sync(0xffffffffu, j, 0); // contiguous only within lane 0's job
    const bool vec = j >= 0 && ((a.vec >> j) & 1u);
    comm_store_chunk(j >= 0 ? a.y[j] + e0 : a.y[0], valid, vec,
                     vec && valid == chunk_elems && j == j0, v, stage[threadIdx.x >> 5]);
  });
}

// ---- launchers --------------------------------------------------------------------------------

//! Calls fn(format_tag<F, true>{}) for a symmetric wire format of the kernel set, on behalf of
//! `function` (quant/dispatch.cuh; T: the unquantized element type, void for none).
template <class T, bool Encodes, class Fn>
status comm_dispatch(const char* function, const quant_spec& s, Fn&& fn) {
  quant_spec wire = s;
  wire.symmetric = true;
  return dispatch_format<T, Encodes>(function, wire, fn);
}

inline bool comm_aligned(const void* p, unsigned a) {
  return (reinterpret_cast<std::uintptr_t>(p) & (a - 1u)) == 0;
}

//! The rule a message or view at (codes, scales) breaks for spec s, or null: the kernels store a
//! thread's 16 codes with one aligned access and fp32 scales as words.
inline const char* comm_check_codes(const void* codes, const void* scales, const quant_spec& s) {
  if (codes == nullptr || scales == nullptr) return "codes and scales must not be null";
  const int bits = bits_of(s.format);
  const unsigned align = bits == 8 ? 16u : bits == 4 ? 8u : bits == 2 ? 4u : 1u;
  if (!comm_aligned(codes, align))
    return "codes must be aligned to 16 bytes (int8/fp8), 8 (int4/fp4) or 4 (int2)";
  if (s.scale != scale_kind::e8m0 && !comm_aligned(scales, 4u))
    return "scales must be 4-byte aligned for fp32/pow2 scales";
  return nullptr;
}

inline const char* comm_check_spec(const quant_spec& s) {
  if (const char* m = validate(s)) return m;
  if (!s.symmetric) return "the spec must be symmetric (the wire format)";
  return nullptr;
}

inline unsigned comm_grid(std::int64_t chunks, const comm_codec_tuning& t) {
  const std::int64_t per_cta = std::int64_t(t.threads) * t.trips;
  const std::int64_t g = (chunks + per_cta - 1) / per_cta;
  return unsigned(g < 1 ? 1 : g);
}

inline comm_reduce_args comm_reduce_setup(const void* msgs, std::size_t stride, int w,
                                          std::int64_t n, const quant_spec& s, float divisor,
                                          const comm_codec_tuning& t) {
  comm_reduce_args a{};
  a.msgs = static_cast<const std::uint8_t*>(msgs);
  a.stride = stride;
  a.w = w;
  a.n = n;
  a.scales_off = codes_bytes(s, n);
  a.log2_lanes = log2_lanes_of(s.block);
  a.chunks = blocks_per_row(s, n) << a.log2_lanes;
  a.trips = t.trips;
  a.scale = s.scale;
  a.divisor = divisor;
  return a;
}

//! Checks of the w input messages (each one's codes must meet the kernels' alignment).
inline const char* comm_check_messages(const void* msgs, std::size_t stride, int w,
                                       const quant_spec& s, std::int64_t n) {
  if (const char* m = comm_check_spec(s)) return m;
  if (w < 1) return "w must be >= 1";
  if (msgs == nullptr) return "msgs must not be null";
  const auto* p = static_cast<const std::uint8_t*>(msgs);
  if (const char* m = comm_check_codes(p, p + codes_bytes(s, n), s)) return m;
  if (w > 1 && stride % 16 != 0) return "stride must be a multiple of 16 bytes";
  return nullptr;
}

//! out = Q(D(m_0) + ... + D(m_{w-1}) [/ divisor]): see the file comment.
inline status comm_reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
                                   const quant_spec& s, float divisor, quantized_view out,
                                   std::uint64_t seed, const comm_codec_tuning& t,
                                   cudaStream_t stream) {
  const char* fn = "agoq::cuda_executor::reduce_quantize";
  if (n <= 0) return status::success;
  if (const char* m = comm_check_messages(msgs, stride, w, s, n)) return refuse(fn, m);
  if (out.rows != 1 || out.cols != n)
    return refuse(fn, "out must be a 1 x n view of the messages' element count");
  if (out.spec.format != s.format || out.spec.block != s.block || out.spec.scale != s.scale ||
      !out.spec.symmetric)
    return refuse(fn, "out.spec must have the messages' format, block and scale kind");
  if (const char* m = comm_check_codes(out.codes, out.scales, out.spec)) return refuse(fn, m);
  comm_reduce_args a = comm_reduce_setup(msgs, stride, w, n, s, divisor, t);
  a.out_codes = static_cast<std::uint8_t*>(out.codes);
  a.out_scales = out.scales;
  a.rnd = out.spec.rounding;
  a.seed = seed;
  return comm_dispatch<void, true>(fn, out.spec, [&](auto tag) {
    comm_reduce_quantize_kernel<decltype(tag)::value>
        <<<comm_grid(a.chunks, t), t.threads, 0, stream>>>(a);
    return launched();
  });
}

//! y = T(D(m_0) + ... + D(m_{w-1}) [/ divisor]), RNE: see the file comment.
template <class T>
status comm_reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                         const quant_spec& s, float divisor, T* y, const comm_codec_tuning& t,
                         cudaStream_t stream) {
  const char* fn = "agoq::cuda_executor::reduce_store";
  if (n <= 0) return status::success;
  if (const char* m = comm_check_messages(msgs, stride, w, s, n)) return refuse(fn, m);
  if (y == nullptr) return refuse(fn, "y must not be null");
  comm_reduce_args a = comm_reduce_setup(msgs, stride, w, n, s, divisor, t);
  a.y = y;
  a.vec = comm_aligned(y, 16u);
  return comm_dispatch<T, false>(fn, s, [&](auto tag) {
    comm_reduce_store_kernel<decltype(tag)::value, T>
        <<<comm_grid(a.chunks, t), t.threads, 0, stream>>>(a);
    return launched();
  });
}

//! quantize(job) for each of `count` jobs (any count; comm_max_jobs per launch).
template <class T>
status comm_quantize_many(const quantize_job<T>* jobs, int count, const quant_spec& s,
                          const comm_codec_tuning& t, cudaStream_t stream) {
  const char* fn = "agoq::cuda_executor::quantize_many";
  if (const char* m = comm_check_spec(s)) return refuse(fn, m);
  const int log2_lanes = log2_lanes_of(s.block);
  for (int j0 = 0; j0 < count; j0 += comm_max_jobs) {
    comm_quantize_jobs<T> a{};
    a.log2_lanes = log2_lanes;
    a.trips = t.trips;
    a.scale = s.scale;
    a.rnd = s.rounding;
    std::int64_t total = 0;
    for (int j = j0; j < count && j < j0 + comm_max_jobs; ++j) {
      const quantize_job<T>& q = jobs[j];
      if (q.n <= 0) continue;
      if (q.x == nullptr) return refuse(fn, "a job's x must not be null");
      auto* codes = static_cast<std::uint8_t*>(q.msg);
      if (const char* m = comm_check_codes(codes, codes + codes_bytes(s, q.n), s))
        return refuse(fn, m);
      const int k = a.count++;
      a.x[k] = q.x;
      a.codes[k] = codes;
      a.scales[k] = codes + codes_bytes(s, q.n);
      a.n[k] = q.n;
      a.seed[k] = q.seed;
      a.first[k] = total;
      if (comm_aligned(q.x, 16u)) a.vec |= 1u << k;
      total += blocks_per_row(s, q.n) << log2_lanes;
    }
    if (a.count == 0) continue;
    a.first[a.count] = total;
    const status st = comm_dispatch<T, true>(fn, s, [&](auto tag) {
      comm_quantize_many_kernel<decltype(tag)::value, T>
          <<<comm_grid(total, t), t.threads, 0, stream>>>(a);
      return launched();
    });
    if (st != status::success) return st;
  }
  return status::success;
}

//! dequantize(job) for each of `count` jobs (any count; comm_max_jobs per launch).
template <class T>
status comm_dequantize_many(const dequantize_job<T>* jobs, int count, const quant_spec& s,
                            const comm_codec_tuning& t, cudaStream_t stream) {
  const char* fn = "agoq::cuda_executor::dequantize_many";
  if (const char* m = comm_check_spec(s)) return refuse(fn, m);
  const int log2_lanes = log2_lanes_of(s.block);
  for (int j0 = 0; j0 < count; j0 += comm_max_jobs) {
    comm_dequantize_jobs<T> a{};
    a.log2_lanes = log2_lanes;
    a.trips = t.trips;
    a.scale = s.scale;
    std::int64_t total = 0;
    for (int j = j0; j < count && j < j0 + comm_max_jobs; ++j) {
      const dequantize_job<T>& q = jobs[j];
      if (q.n <= 0) continue;
      if (q.y == nullptr) return refuse(fn, "a job's y must not be null");
      const auto* codes = static_cast<const std::uint8_t*>(q.msg);
      if (const char* m = comm_check_codes(codes, codes + codes_bytes(s, q.n), s))
        return refuse(fn, m);
      const int k = a.count++;
      a.codes[k] = codes;
      a.scales[k] = codes + codes_bytes(s, q.n);
      a.y[k] = q.y;
      a.n[k] = q.n;
      a.first[k] = total;
      if (comm_aligned(q.y, 16u)) a.vec |= 1u << k;
      total += blocks_per_row(s, q.n) << log2_lanes;
    }
    if (a.count == 0) continue;
    a.first[a.count] = total;
    const status st = comm_dispatch<T, false>(fn, s, [&](auto tag) {
      comm_dequantize_many_kernel<decltype(tag)::value, T>
          <<<comm_grid(total, t), t.threads, 0, stream>>>(a);
      return launched();
    });
    if (st != status::success) return st;
  }
  return status::success;
}

} // namespace detail
} // namespace agoq

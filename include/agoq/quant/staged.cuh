// SPDX-License-Identifier: Apache-2.0
//! @file quant/staged.cuh
//! The staged quantizer kernels: persistent CTAs (one resident wave, grid-stride beyond it) over
//! the chunk codec of chunk_codec.cuh. Memory (quant/pipeline.cuh): while a warp's 32 chunks are
//! back to back ("dense"), its big input stream (quantize's input, the accumulator) is copied
//! span by span into shared memory by the copy engine, trips ahead; an output span (dequantize,
//! dequantize_accumulate) is written into shared memory by the lanes and stored with coalesced
//! 16-byte stores; codes and scales are loaded trips ahead into registers. Tails and strided rows
//! go lane by lane, their reads staged trips ahead with cp.async.
//! The common case (one contiguous row from a 16-byte aligned start with 2-, 4- or 8-bit codes:
//! bf16/fp16 for every kernel, fp32 for the dequantize-type ones) runs quant/flat.cuh's simpler
//! kernels instead, which measured faster there; these kernels serve the rest: strided rows, 2-D
//! tensors whose rows are not whole blocks, unaligned starts, odd code widths, fp32 quantize.
#pragma once

#include "agoq/quant/chunk_codec.cuh"
#include "agoq/quant/pipeline.cuh"
#include "agoq/quant/tuning.cuh"

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

// ---- staged reads (quant/pipeline.cuh): what each kernel copies ahead, and reads back -----------

//! A chunk's 16 elements are staged when they are all inside the row and 16-byte aligned; other
//! chunks (tails, unaligned rows) are read directly in the work phase.
AGOQ_DEVICE bool staged_elements(bool vec, const chunk_pos& p) {
  return vec && p.valid == chunk_elems;
}

//! Stage units taken by 16 elements of T.
template <class T> inline constexpr int elem_units = int(sizeof(T));

template <class T, int Units>
AGOQ_DEVICE void fetch_elements(const stage_buffer<Units>& b, int s, int u, const T* src) {
#pragma unroll
  for (int j = 0; j < elem_units<T>; ++j)
    ptx::cp_async<16>(b.unit(s, u + j), reinterpret_cast<const uint4*>(src) + j);
}

template <class T, int Units>
AGOQ_DEVICE raw16<T> staged_raw16(const stage_buffer<Units>& b, int s, int u) {
  raw16<T> r;
#pragma unroll
  for (int j = 0; j < elem_units<T>; ++j) {
    const uint4 q = *b.unit(s, u + j);
    r.w[4 * j] = q.x, r.w[4 * j + 1] = q.y, r.w[4 * j + 2] = q.z, r.w[4 * j + 3] = q.w;
  }
  return r;
}

//! The lane's 16 elements in a span (stage_buffer::span).
template <class T> AGOQ_DEVICE raw16<T> read_chunk(const uint4* span) {
  const uint4* p = lane_chunk<elem_units<T>>(span);
  raw16<T> r;
#pragma unroll
  for (int j = 0; j < elem_units<T>; ++j) {
    const uint4 q = p[j];
    r.w[4 * j] = q.x, r.w[4 * j + 1] = q.y, r.w[4 * j + 2] = q.z, r.w[4 * j + 3] = q.w;
  }
  return r;
}

//! Writes the lane's 16 elements into its place in a span (then store_span).
template <class T> AGOQ_DEVICE void put_chunk(uint4* span, const raw16<T>& r) {
  uint4* p = lane_chunk<elem_units<T>>(span);
#pragma unroll
  for (int j = 0; j < elem_units<T>; ++j)
    p[j] = make_uint4(r.w[4 * j], r.w[4 * j + 1], r.w[4 * j + 2], r.w[4 * j + 3]);
}

//! True when the 32 chunks of the warp whose lane 0 has chunk c0 are all dense (warp-uniform):
//! the warp then moves them as one contiguous span (span_copies/store_span).
AGOQ_DEVICE bool dense_warp(std::int64_t c0, std::int64_t dense_chunks) {
  return c0 + 32 <= dense_chunks;
}

//! The first chunk of the calling lane's warp in the first trip of the grid-stride loop.
AGOQ_DEVICE std::int64_t warp_first_chunk() {
  return std::int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31u);
}

//! The dense trips of the warp whose lane 0 starts at chunk c0, for kernels that read a big
//! stream (quantize's input, the accumulator): while the warp's 32 chunks are back to back
//! (dense_warp), the spans of `base` of the next trips are copied into the warp's spans by the
//! copy engine, D - 1 trips ahead (D = span_stages: 2 to 4, 2-3 KiB in flight per warp, no
//! registers held). work(span, c, raw) gets the trip's span, the lane's chunk c and its 16
//! elements. Returns the warp's first chunk after its dense trips, where the generic loop takes
//! over (dense_chunks is a prefix, so none follow). A span is refilled one trip after it was
//! read, behind a __syncwarp; WritesSpan: the work writes into the span with ordinary stores,
//! so each lane also fences them against the copy engine first.
template <bool WritesSpan = false, class T, int Units, class Work>
AGOQ_DEVICE std::int64_t dense_span_trips(const T* base, std::int64_t c0, std::int64_t dense,
                                          const stage_buffer<Units>& b, Work&& work) {
  constexpr int U = elem_units<T>;
  constexpr int D = stage_buffer<Units>::template span_stages<U>;
  if (!dense_warp(c0, dense)) return c0;
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
  const span_copies<U, D> sc(b);
  sc.init();
#pragma unroll
  for (int d = 0; d + 1 < D; ++d)
    if (dense_warp(c0 + d * stride, dense)) sc.copy(d, base + (c0 + d * stride) * chunk_elems);
  unsigned parity = 0; // of the copies into spans >= d; flips after span D - 1
  int d = 0;
  do {
    const std::int64_t ahead = c0 + (D - 1) * stride;
    if constexpr (WritesSpan) ptx::fence_proxy_async();
    __syncwarp();
    if (dense_warp(ahead, dense)) sc.copy(d == 0 ? D - 1 : d - 1, base + ahead * chunk_elems);
    sc.wait(d, parity);
    uint4* const span = sc.span(d);
    work(span, c0 + lane, read_chunk<T>(span));
    if (++d == D) d = 0, parity ^= 1u;
    c0 += stride;
  } while (dense_warp(c0, dense));
  sc.release();
  return c0;
}

//! A lane's codes and block parameters, loaded trips ahead into registers with plain loads:
//! neighbouring lanes read neighbouring codes and a block's lanes one scale, which the memory
//! system merges into whole requests (per-lane cp.async requests would not be).
template <class C> struct codes_prefetch {
  chunk_codes w{0, 0};
  float scale = 0.0f;
  float zero = 0.0f;

  template <class Args> AGOQ_DEVICE void load(const Args& a, std::int64_t c, std::int64_t total) {
    if (c >= total) return;
    const std::int64_t blk = c >> a.g.log2_lanes;
    w = load_codes<C::bits>(a.codes + c * (2 * C::bits));
    scale = load_scale(a.scales, blk, a.scale);
    if constexpr (!C::symmetric) zero = a.zeros[blk];
  }
  AGOQ_DEVICE block_params params() const { return params_from_stored(scale, zero); }

  //! In the dense trips (dense_span_trips) of a warp whose lane 0 has chunk c0: the first trip's
  //! codes, loaded before the loop.
  template <class Args>
  AGOQ_DEVICE void load_first_dense(const Args& a, std::int64_t c0, std::int64_t lane,
                                    std::int64_t total) {
    if (dense_warp(c0, a.dense_chunks)) load(a, c0 + lane, total);
  }
  //! In the dense trip of the lane's chunk c: this trip's codes; the next dense trip's (a grid
  //! stride on) are loaded in their place.
  template <class Args>
  AGOQ_DEVICE codes_prefetch take_dense(const Args& a, std::int64_t c, std::int64_t lane,
                                        std::int64_t stride, std::int64_t total) {
    const codes_prefetch cur = *this;
    if (dense_warp(c - lane + stride, a.dense_chunks)) load(a, c + stride, total);
    return cur;
  }
};

//! Codes of 2, 4 and 8 bits are staged (one aligned 4/8/16-byte copy); odd widths are read
//! directly.
template <int Bits> inline constexpr bool staged_codes = Bits == 2 || Bits == 4 || Bits == 8;

template <int Bits, int Units>
AGOQ_DEVICE void fetch_codes(const stage_buffer<Units>& b, int s, int u, const std::uint8_t* src) {
  if constexpr (staged_codes<Bits>) ptx::cp_async<2 * Bits>(b.unit(s, u), src);
}

template <int Bits, int Units>
AGOQ_DEVICE chunk_codes read_codes(const stage_buffer<Units>& b, int s, int u,
                                   const std::uint8_t* src) {
  if constexpr (staged_codes<Bits>)
    return load_codes<Bits>(reinterpret_cast<const std::uint8_t*>(b.unit(s, u)));
  else
    return load_codes<Bits>(src);
}

//! Stages a block's scale (word 0 of the unit) and zero point (word 1). An E8M0 scale is one
//! byte: its aligned 4-byte word is copied (only the bytes inside the array), when the array is
//! 4-byte aligned; otherwise it is read directly in the work phase.
template <class C, int Units>
AGOQ_DEVICE void fetch_params(const stage_buffer<Units>& b, int s, int u, scale_kind kind,
                              bool scales4, const void* scales, const float* zeros,
                              std::int64_t blk, std::int64_t nblocks) {
  auto* w = reinterpret_cast<std::uint32_t*>(b.unit(s, u));
  if (kind != scale_kind::e8m0) {
    ptx::cp_async<4>(w, static_cast<const float*>(scales) + blk);
  } else if (scales4) {
    const std::int64_t first = blk & ~std::int64_t(3);
    const std::int64_t left = nblocks - first;
    ptx::cp_async4_prefix(w, static_cast<const std::uint8_t*>(scales) + first,
                          left < 4 ? int(left) : 4);
  }
  if constexpr (!C::symmetric) ptx::cp_async<4>(w + 1, zeros + blk);
}

template <class C, int Units>
AGOQ_DEVICE block_params read_params(const stage_buffer<Units>& b, int s, int u, scale_kind kind,
                                     bool scales4, const void* scales, std::int64_t blk) {
  const uint4 q = *b.unit(s, u);
  float scale;
  if (kind != scale_kind::e8m0)
    scale = __uint_as_float(q.x);
  else if (scales4)
    scale = decode_e8m0(std::uint8_t(q.x >> (8 * int(blk & 3))));
  else
    scale = load_scale(scales, blk, kind);
  return params_from_stored(scale, C::symmetric ? 0.0f : __uint_as_float(q.y));
}

//! The end of a quantize-type trip (quantize, accumulate_requantize): the block's parameters
//! from its statistics, the chunk's codes, and, from the block's first lane, its scale (and zero
//! point). Chunk c must be < total; values past p.valid must be +0 (encode_chunk).
template <class C>
AGOQ_DEVICE void encode_and_store(const quant_args& a, std::uint64_t seed, const chunk_pos& p,
                                  std::int64_t c, const float (&v)[chunk_elems], chunk_stats st) {
  const block_params bp = params_from_stats<C>(st, a.scale);
  store_codes<C::bits>(a.codes + c * (2 * C::bits),
                       encode_chunk<C>(v, p.valid, bp, a.rnd, seed, p.row * a.g.cols + p.col0));
  if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
}

// ---- the kernels --------------------------------------------------------------------------------

//! Trips of codes (and scales) a dequantize kernel has in flight per warp in its dense trips.
inline constexpr int dequantize_codes_depth = 3;

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(quant_threads, compiled_tuning.quantize_ctas_per_sm)
    quantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  const std::uint64_t seed = a.rnd == rounding::stochastic ? resolve_seed(a) : 0;
  extern __shared__ uint4 smem[];
  const stage_buffer<elem_units<T>> buf{smem};
  const std::int64_t total = a.g.chunks();
  // live: c < total (a lane past the end only takes part in the shuffles)
  const auto block_work = [&](const chunk_pos& p, std::int64_t c, const raw16<T>& raw, bool live) {
    float v[chunk_elems];
    to_floats(raw, v);
    chunk_stats st;
    if constexpr (Symmetric)
      st = block_absmax(lane_absmax_bits(raw), a.g.log2_lanes);
    else
      st = reduce_stats<false>(v, p.valid, a.g.log2_lanes);
    if (live) encode_and_store<C>(a, seed, p, c, v, st);
  };
  const std::int64_t rest = dense_span_trips(x, warp_first_chunk(), a.dense_chunks, buf,
                                             [&](uint4*, std::int64_t c, const raw16<T>& raw) {
                                               block_work(dense_pos(a.g, c), c, raw, true);
                                             });
  pipelined_chunks<buf.stages>(
      rest + (threadIdx.x & 31), total,
      [&](int s, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        if (staged_elements(a.vec, p)) fetch_elements(buf, s, 0, x + p.row * a.ld + p.col0);
      },
      [&](int s, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        block_work(p, c,
                   staged_elements(a.vec, p)
                       ? staged_raw16<T>(buf, s, 0)
                       : load_raw16(x + p.row * a.ld + p.col0, p.valid, false),
                   c < total);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(quant_threads, compiled_tuning.dequantize_ctas_per_sm)
    dequantize_kernel(T* __restrict__ y, dequant_args a) {
  using C = codec<F, Symmetric>;
  extern __shared__ uint4 smem[];
  const stage_buffer<elem_units<T>> buf{smem}; // a dense warp's output spans
  const std::int64_t total = a.g.chunks();
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
  std::int64_t c0 = warp_first_chunk();
  // Dense trips: the codes of the next `depth` trips are in flight in registers (one trip of
  // lookahead left the warps waiting on them: the output side needs no loads). The loop is
  // unrolled by the depth so that every slot stays in its own registers.
  constexpr int depth = dequantize_codes_depth;
  codes_prefetch<C> ahead[depth];
#pragma unroll
  for (int u = 0; u < depth; ++u)
    if (dense_warp(c0 + u * stride, a.dense_chunks))
      ahead[u].load(a, c0 + u * stride + lane, total);
  int s = 0;
  for (bool more = dense_warp(c0, a.dense_chunks); more;) {
#pragma unroll
    for (int u = 0; u < depth; ++u) {
      float v[chunk_elems];
      decode_chunk<C>(ahead[u].w, ahead[u].params(), v);
      const std::int64_t later = c0 + depth * stride;
      if (dense_warp(later, a.dense_chunks)) ahead[u].load(a, later + lane, total);
      uint4* const span = buf.template span<elem_units<T>>(s);
      put_chunk(span, pack_raw16<T>(v));
      store_span<elem_units<T>>(span, y + c0 * chunk_elems);
      s ^= 1; // two spans: one is rewritten two trips after its store_span's __syncwarp
      c0 += stride;
      if (!dense_warp(c0, a.dense_chunks)) {
        more = false;
        break;
      }
    }
  }
  __syncwarp();
  // The rest, lane by lane: codes one trip ahead in registers.
  codes_prefetch<C> next;
  next.load(a, c0 + lane, total);
  pipelined_chunks<buf.stages>(
      c0 + lane, total, [](int, std::int64_t) {},
      [&](int, std::int64_t c) {
        if (c >= total) return;
        const codes_prefetch<C> cur = next;
        next.load(a, c + stride, total);
        const chunk_pos p = locate(a.g, c, total);
        if (p.valid == 0) return;
        float v[chunk_elems];
        decode_chunk<C>(cur.w, cur.params(), v);
        store16(y + p.row * a.ld + p.col0, p.valid, a.vec, v);
      });
}

template <format F, bool Symmetric>
__global__ static void __launch_bounds__(quant_threads, compiled_tuning.dequantize_ctas_per_sm)
    dequantize_accumulate_kernel(float* __restrict__ acc, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int A = elem_units<float>; // units 0..3: the accumulator; then codes, scale
  extern __shared__ uint4 smem[];
  const stage_buffer<A + 2> buf{smem};
  const std::int64_t total = a.g.chunks();
  const std::int64_t nblocks = a.g.rows * a.g.blocks_per_row;
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
  const auto add = [&](const chunk_codes& w, const block_params& bp, const raw16<float>& old,
                       float(&v)[chunk_elems]) {
    float d[chunk_elems];
    decode_chunk<C>(w, bp, d);
    to_floats(old, v);
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      v[i] = fma_f(d[i], a.alpha, v[i]);
  };
  // Dense trips: the accumulator copied trips ahead (dense_span_trips), the codes loaded one
  // trip ahead.
  codes_prefetch<C> next;
  const std::int64_t c0 = warp_first_chunk();
  next.load_first_dense(a, c0, lane, total);
  const std::int64_t rest = dense_span_trips<true>(
      static_cast<const float*>(acc), c0, a.dense_chunks, buf,
      [&](uint4* span, std::int64_t c, const raw16<float>& old) {
        const codes_prefetch<C> cur = next.take_dense(a, c, lane, stride, total);
        float v[chunk_elems];
        add(cur.w, cur.params(), old, v);
        put_chunk(span, pack_raw16<float>(v)); // the sums go out through the same span
        store_span<A>(span, acc + (c - lane) * chunk_elems);
      });
  pipelined_chunks<buf.stages>(
      rest + lane, total,
      [&](int s, std::int64_t c) {
        if (c >= total) return;
        const chunk_pos p = locate(a.g, c, total);
        if (staged_elements(a.vec, p)) fetch_elements(buf, s, 0, acc + p.row * a.ld + p.col0);
        fetch_codes<C::bits>(buf, s, A, a.codes + c * (2 * C::bits));
        fetch_params<C>(buf, s, A + 1, a.scale, a.scales4, a.scales, a.zeros, p.blk, nblocks);
      },
      [&](int s, std::int64_t c) {
        if (c >= total) return;
        const chunk_pos p = locate(a.g, c, total);
        if (p.valid == 0) return;
        float* out = acc + p.row * a.ld + p.col0;
        float v[chunk_elems];
        add(read_codes<C::bits>(buf, s, A, a.codes + c * (2 * C::bits)),
            read_params<C>(buf, s, A + 1, a.scale, a.scales4, a.scales, p.blk),
            staged_elements(a.vec, p) ? staged_raw16<float>(buf, s, 0)
                                      : load_raw16(out, p.valid, false),
            v);
        store16(out, p.valid, a.vec, v);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(quant_threads, compiled_tuning.quantize_ctas_per_sm)
    accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  const std::uint64_t seed = a.rnd == rounding::stochastic ? resolve_seed(a) : 0;
  constexpr int X = elem_units<T>; // units 0..X-1: x; then the old codes, the old scale
  extern __shared__ uint4 smem[];
  const stage_buffer<X + 2> buf{smem};
  const std::int64_t total = a.g.chunks();
  const std::int64_t nblocks = a.g.rows * a.g.blocks_per_row;
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
  // Every lane of a block has its old scale (read above it) before lane 0 overwrites it in
  // encode_and_store: the shuffles in reduce_stats keep the block's lanes together. Odd-width
  // codes are read directly, also before any lane stores.
  const auto block_work = [&](const chunk_pos& p, std::int64_t c, const chunk_codes& w,
                              const block_params& old, const raw16<T>& raw, bool live) {
    float v[chunk_elems];
    to_floats(raw, v);
    if (p.valid > 0) {
      float d[chunk_elems];
      decode_chunk<C>(w, old, d);
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        v[i] = i < p.valid ? add_rn(d[i], v[i]) : 0.0f;
    }
    const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
    if (live) encode_and_store<C>(a, seed, p, c, v, st);
  };
  // Dense trips: x copied trips ahead (dense_span_trips), the old codes and scales loaded one
  // trip ahead. A trip's blocks are not the next trip's, so loading those early is safe.
  codes_prefetch<C> next;
  const std::int64_t c0 = warp_first_chunk();
  next.load_first_dense(a, c0, lane, total);
  const std::int64_t rest = dense_span_trips(
      x, c0, a.dense_chunks, buf, [&](uint4*, std::int64_t c, const raw16<T>& raw) {
        const codes_prefetch<C> cur = next.take_dense(a, c, lane, stride, total);
        block_work(dense_pos(a.g, c), c, cur.w, cur.params(), raw, true);
      });
  pipelined_chunks<buf.stages>(
      rest + lane, total,
      [&](int s, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        if (staged_elements(a.vec, p)) fetch_elements(buf, s, 0, x + p.row * a.ld + p.col0);
        if (c >= total) return;
        fetch_codes<C::bits>(buf, s, X, a.codes + c * (2 * C::bits));
        fetch_params<C>(buf, s, X + 1, a.scale, a.scales4, a.scales, a.zeros, p.blk, nblocks);
      },
      [&](int s, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        const raw16<T> raw = staged_elements(a.vec, p)
                                 ? staged_raw16<T>(buf, s, 0)
                                 : load_raw16(x + p.row * a.ld + p.col0, p.valid, false);
        if (p.valid == 0)
          return block_work(p, c, chunk_codes{0, 0}, block_params{}, raw, c < total);
        block_work(p, c, read_codes<C::bits>(buf, s, X, a.codes + c * (2 * C::bits)),
                   read_params<C>(buf, s, X + 1, a.scale, a.scales4, a.scales, p.blk), raw, true);
      });
}

} // namespace detail
} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file quant/flat.cuh
//! The quantizer kernels of the common case: one contiguous row (a 1-D tensor, or a 2-D one of
//! whole-block rows, see layout_of) from a 16-byte aligned start, with 2-, 4- or 8-bit codes. A
//! lane owns "groups" of one 16-byte access of elements each (8 of bf16/fp16, 4 of fp32; a
//! group's codes are Bits * E / 8 bytes at byte g * Bits * E / 8, the layout of format.hpp), and
//! a CTA does one tile of groups with its loads issued before the work (all of them, or the next
//! two pairs' in stochastic quantize): no grid-stride loop, no shared memory, many small CTAs.
//! - dequantize, dequantize_accumulate (flat_groups): flat_groups_per_thread groups per thread,
//!   flat_threads groups apart; bf16/fp16 and fp32.
//! - quantize, accumulate_requantize (flat_pairs): a lane's two groups lie in one block (the
//!   block's lanes are neighbours in a warp and shuffle its statistics), so its statistics,
//!   parameters, Philox calls and scale store serve 16 elements; 2-byte elements only.
//! On such tensors they are faster than staged.cuh's persistent, copy-engine-fed kernels and give
//! the same bits (bench/HISTORY.md, runs A-D); the rest (strided rows, 2-D tensors whose rows are
//! not whole blocks, unaligned starts, odd code widths, fp32 quantize) runs staged.cuh's.
//! The per-element math is chunk_codec.cuh's on 16-element chunks (a group is a chunk whose rest
//! is zero or dropped, which the compiler removes; a pair is one chunk). The rounding is a
//! template parameter, so the nearest-even kernels carry no Philox code (and its registers).
//! Launch settings: quant/tuning.cuh.
#pragma once

#include "agoq/error.hpp"
#include "agoq/quant/chunk_codec.cuh"
#include "agoq/quant/kernel_set.hpp"
#include "agoq/quant/tuning.cuh"

#include <climits>
#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

//! Elements per lane for element type T: one 16-byte access (8 of bf16/fp16, 4 of fp32).
template <class T> inline constexpr int lane_elems = int(16 / sizeof(T));

//! The code widths that have flat kernels: a lane's codes are whole, aligned bytes.
template <int Bits> inline constexpr bool flat_bits_v = Bits == 2 || Bits == 4 || Bits == 8;
//! The element types and code widths of the flat quantize-type kernels: pairs of 8-element
//! groups, so 2-byte elements (fp32 quantize runs staged.cuh's). The dequantize-type kernels,
//! which need no block statistics, also take fp32 (4 per lane).
template <class T, int Bits>
inline constexpr bool has_flat_kernel_v = sizeof(T) == 2 && flat_bits_v<Bits>;

//! True when a kernel's arguments (quant_args or dequant_args) describe a flat tensor: one row
//! with vector (16-byte aligned) element access, whose grid fits in gridDim.x.
template <class Args> bool flat_layout(const Args& a) {
  const std::int64_t groups = a.g.chunks() * 4; // at most: 4 elements per lane
  return a.g.rows == 1 && a.vec && (groups + flat_threads - 1) / flat_threads <= INT_MAX;
}

//! Launches kernel(p, a) on `stream` over the groups of `a.g`, `elems` elements per group
//! (lane_elems of the kernel's element type), `tile` groups per CTA.
template <class Kernel, class P, class Args>
status launch_flat(Kernel kernel, int elems, std::int64_t tile, P p, const Args& a,
                   cudaStream_t stream) {
  const std::int64_t groups = a.g.chunks() * (chunk_elems / elems);
  kernel<<<unsigned((groups + tile - 1) / tile), flat_threads, 0, stream>>>(p, a);
  return launched();
}

//! Launches the quantize-type flat kernel kernel_of(rounding constant) of a.rnd with its tile.
template <bool Update, format F, bool Symmetric, class KernelOf, class P>
status launch_flat_pairs(KernelOf kernel_of, P p, const quant_args& a, cudaStream_t stream) {
  using stochastic = std::integral_constant<rounding, rounding::stochastic>;
  using nearest = std::integral_constant<rounding, rounding::nearest_even>;
  // dispatch_format refused a rounding outside the kernel set; only the set's are instantiated
  if constexpr (kernel_set_has(rounding::stochastic)) {
    if (a.rnd == rounding::stochastic)
      return launch_flat(kernel_of(stochastic{}), group_elems,
                         flat_pair_tile<Update, F, Symmetric, rounding::stochastic>, p, a, stream);
  }
  if constexpr (kernel_set_has(rounding::nearest_even)) {
    return launch_flat(kernel_of(nearest{}), group_elems,
                       flat_pair_tile<Update, F, Symmetric, rounding::nearest_even>, p, a, stream);
  } else {
    return status::not_supported;
  }
}

//! Elements of group g (of E elements) inside the row of `cols` elements (0..E).
template <int E = group_elems> AGOQ_DEVICE int group_valid(std::int64_t g, std::int64_t cols) {
  const std::int64_t left = cols - g * E;
  return left <= 0 ? 0 : left >= E ? E : int(left);
}

//! One group as a flat kernel's load and work see it. In a CTA whose whole tile is inside the
//! row (all but the last CTAs) `valid` and `live` are constants, and so is `kind` when the
//! scales are fp32 (the default): flat_groups calls load and work with them as literals, which
//! leaves the tail masks and the other scale kinds out of the hot code.
struct flat_group {
  std::int64_t g; //!< group index (its elements start at E g, E elements per lane)
  int valid;      //!< elements inside the row (0..E)
  bool live;      //!< g < groups: its block exists (else the lane only joins the shuffles)
  scale_kind kind;
};

//! The body of flat_groups and flat_pairs: `work(item(i), load(item(i)))` for the N items of the
//! calling thread, with the loads of D items in flight (D = N: all loads first; D < N: item
//! i + D's load is issued before item i's work). The whole tile's items are inside the row
//! (`full`) or not, and the scales fp32 or not, as compile-time constants of item(full, fp32, i).
template <int N, int D, class Item, class Load, class Work>
AGOQ_DEVICE void flat_tile_loop(bool full, scale_kind kind, Item&& item, Load&& load, Work&& work) {
  static_assert(0 < D && D <= N, "1 to N loads in flight");
  const auto run = [&](auto full_tile, auto fp32_scales) {
    const auto at = [&](int i) { return item(full_tile, fp32_scales, i); };
    using In = decltype(load(at(0)));
    In in[D];
#pragma unroll
    for (int i = 0; i < D; ++i)
      in[i] = load(at(i));
#pragma unroll
    for (int i = 0; i < N; ++i) {
      In next{};
      if (i + D < N) next = load(at(i + D));
      work(at(i), in[i % D]);
      if (i + D < N) in[i % D] = next;
    }
  };
  if (!full)
    run(std::false_type{}, std::false_type{});
  else if (kind == scale_kind::fp32)
    run(std::true_type{}, std::true_type{});
  else
    run(std::true_type{}, std::false_type{});
}

//! The groups of the calling thread: `load(group)` for each (all loads first), then
//! `work(group, in)`. Every lane runs work(), also for groups past the end, so that block
//! shuffles see the whole warp (a block's lanes are past the end together: groups count whole
//! blocks).
template <int E = group_elems, class Load, class Work>
AGOQ_DEVICE void flat_groups(const block_grid& grid, scale_kind kind, Load&& load, Work&& work) {
  const std::int64_t first = std::int64_t(blockIdx.x) * flat_tile + threadIdx.x;
  const std::int64_t groups = grid.chunks() * (chunk_elems / E);
  flat_tile_loop<flat_groups_per_thread, flat_groups_per_thread>(
      (std::int64_t(blockIdx.x) + 1) * flat_tile * E <= grid.cols, kind,
      [&](auto full_tile, auto fp32_scales, int i) {
        constexpr bool full = decltype(full_tile)::value, fp32 = decltype(fp32_scales)::value;
        const std::int64_t g = first + i * flat_threads;
        return flat_group{g, full ? E : group_valid<E>(g, grid.cols), full || g < groups,
                          fp32 ? scale_kind::fp32 : kind};
      },
      load, work);
}

//! The two groups of a lane in the quantize-type kernels: both in one block, so that a lane's
//! block statistics, parameters and scale cover 16 elements (a chunk: g0's 8, then g1's)
//! instead of 8, which halves the per-element cost of the shuffles, the scale's division and
//! the stores. The block's 2^L lanes (L = log2_lanes: block / 16) take its groups 0 .. 2^L - 1
//! in one load and 2^L .. 2^(L+1) - 1 in the other, so each warp-wide load still reads whole,
//! contiguous 2^L * 16-byte runs.
struct flat_pair {
  std::int64_t g0, g1; //!< the groups (g1 = g0 + 2^L)
  int valid;           //!< elements inside the row, in chunk order (g0's 0..8, then g1's)
  bool live;           //!< the block exists (else the lane only joins the shuffles)
  scale_kind kind;
};

//! flat_groups for the quantize-type kernels: PairsPerThread pairs of groups per thread (a tile
//! of flat_tile groups per CTA for each), `work(pair, in)` for each with the loads of Depth
//! pairs in flight (flat_tile_loop).
template <int PairsPerThread, int Depth, class Load, class Work>
AGOQ_DEVICE void flat_pairs(const block_grid& grid, scale_kind kind, Load&& load, Work&& work) {
  constexpr std::int64_t tile = flat_tile * PairsPerThread;
  const int L = grid.log2_lanes, lane = int(threadIdx.x & 31);
  const std::int64_t first = std::int64_t(blockIdx.x) * tile + (threadIdx.x & ~31u) * 2 +
                             ((lane >> L) << (L + 1)) + (lane & ((1 << L) - 1));
  const std::int64_t groups = grid.chunks() * 2;
  flat_tile_loop<PairsPerThread, Depth>(
      (std::int64_t(blockIdx.x) + 1) * tile * group_elems <= grid.cols, kind,
      [&](auto full_tile, auto fp32_scales, int i) {
        constexpr bool full = decltype(full_tile)::value, fp32 = decltype(fp32_scales)::value;
        const std::int64_t g0 = first + i * flat_tile, g1 = g0 + (1 << L);
        return flat_pair{
            g0, g1, full ? chunk_elems : group_valid(g0, grid.cols) + group_valid(g1, grid.cols),
            full || g0 < groups, fp32 ? scale_kind::fp32 : kind};
      },
      load, work);
}

//! 0xFFFF in each 16-bit half of w that is negative, else 0: prmt's sign-replicating selectors
//! (__byte_perm ignores the selectors' sign bits).
AGOQ_DEVICE std::uint32_t sign_per_half(std::uint32_t w) { return ptx::prmt<0xBB99>(w, 0); }

//! The min/max statistics of a lane's bf16 elements (the first `valid` of a chunk's 16) as one
//! word of two int16 order keys, [max key | ~min key], so that one SIMD max (max.s16x2 on
//! sm_90) combines two lanes' minima and maxima and one shuffle moves both: half the
//! instructions of reduce_stats<false>'s 32-bit keys of the same values. bf16 keys are the top
//! halves of the fp32 keys of the same values (a bf16 value is its fp32 value's top 16 bits).
AGOQ_DEVICE std::uint32_t lane_minmax_keys_bf16(const raw16<__nv_bfloat16>& r, int valid) {
  std::uint32_t k[8]; // each word's two keys: flip the magnitude of the negative halves
#pragma unroll
  for (int j = 0; j < 8; ++j)
    k[j] = r.w[j] ^ (sign_per_half(r.w[j]) & 0x7fff7fffu);
  std::uint32_t hi, lo;
  if (valid == chunk_elems) {
    hi = __vimax3_s16x2(__vimax3_s16x2(k[0], k[1], k[2]), __vimax3_s16x2(k[3], k[4], k[5]),
                        __vmaxs2(k[6], k[7]));
    lo = __vimin3_s16x2(__vimin3_s16x2(k[0], k[1], k[2]), __vimin3_s16x2(k[3], k[4], k[5]),
                        __vmins2(k[6], k[7]));
  } else { // past `valid`: the identities (int16 min for the max, int16 max for the min)
    hi = 0x80008000u, lo = 0x7fff7fffu;
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      if (i < valid) {
        const std::uint32_t h = (k[i / 2] >> (16 * (i & 1))) & 0xffffu;
        hi = __vmaxs2(hi, h * 0x10001u);
        lo = __vmins2(lo, h * 0x10001u);
      }
  }
  const std::uint32_t nlo = ~lo; // ~ reverses the int16 order: max of ~key = ~(min of key)
  return __vmaxs2(__byte_perm(hi, nlo, 0x3276), __byte_perm(hi, nlo, 0x1054));
}

//! The block's min and max from each lane's lane_minmax_keys_bf16, as the fp32 values
//! reduce_stats<false> gives for the same elements.
AGOQ_DEVICE chunk_stats block_minmax_bf16(std::uint32_t keys, int log2_lanes) {
#pragma unroll
  for (int k = 0; k < max_log2_lanes; ++k)
    if (k < log2_lanes) // uniform: the block's lanes
      keys = __vmaxs2(keys, __shfl_xor_sync(0xffffffffu, keys, 1 << k));
  const int hi = int(keys) >> 16, lo = ~int(keys << 16) >> 16; // the int16 keys, sign-extended
  const auto value = [](int k) { // the inverse of the key: back to bf16 bits, then fp32
    return __uint_as_float(std::uint32_t(k ^ ((k >> 15) & 0x7fff)) << 16);
  };
  return {value(lo), value(hi)};
}

//! Group g's lane_elems<T> elements (16 bytes) as the start of a chunk (zeros past `valid` and
//! in the rest).
template <class T> AGOQ_DEVICE raw16<T> load_group(const T* row, std::int64_t g, int valid) {
  constexpr int E = lane_elems<T>;
  const T* p = row + g * E;
  raw16<T> r{}; // the rest stays a known zero: no registers held for it
  if (valid == E) {
    const uint4 q = *reinterpret_cast<const uint4*>(p);
    r.w[0] = q.x, r.w[1] = q.y, r.w[2] = q.z, r.w[3] = q.w;
    return r;
  }
#pragma unroll
  for (int i = 0; i < E; ++i)
    if (i < valid) {
      if constexpr (sizeof(T) == 2)
        r.w[i / 2] |= element_bits(p + i) << (16 * (i & 1));
      else
        r.w[i] = element_bits(p + i);
    }
  return r;
}

//! Stores the first `valid` of v[0..lane_elems<T>) as T into group g.
template <class T>
AGOQ_DEVICE void store_group(T* row, std::int64_t g, int valid, const float (&v)[chunk_elems]) {
  T* p = row + g * lane_elems<T>;
  if (valid == lane_elems<T>) {
    const raw16<T> r = pack_raw16<T>(v);
    *reinterpret_cast<uint4*>(p) = make_uint4(r.w[0], r.w[1], r.w[2], r.w[3]);
    return;
  }
  store16(p, valid, false, v);
}

//! The Bits * E / 8 bytes of codes of group g of E elements (aligned to their size:
//! check_view's code alignment).
template <int Bits, int E = group_elems>
AGOQ_DEVICE std::uint64_t load_group_codes(const std::uint8_t* codes, std::int64_t g) {
  constexpr int bytes = Bits * E / 8;
  const std::uint8_t* p = codes + g * bytes;
  if constexpr (bytes == 8) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    return std::uint64_t(r.x) | std::uint64_t(r.y) << 32;
  } else if constexpr (bytes == 4) {
    return *reinterpret_cast<const std::uint32_t*>(p);
  } else if constexpr (bytes == 1) {
    return *p;
  } else {
    return *reinterpret_cast<const std::uint16_t*>(p);
  }
}

template <int Bits>
AGOQ_DEVICE void store_group_codes(std::uint8_t* codes, std::int64_t g, std::uint64_t c) {
  std::uint8_t* p = codes + g * Bits;
  if constexpr (Bits == 8)
    *reinterpret_cast<uint2*>(p) = make_uint2(std::uint32_t(c), std::uint32_t(c >> 32));
  else if constexpr (Bits == 4)
    *reinterpret_cast<std::uint32_t*>(p) = std::uint32_t(c);
  else
    *reinterpret_cast<std::uint16_t*>(p) = std::uint16_t(c);
}

//! A group's codes and its block's stored parameters.
struct group_codes {
  std::uint64_t w = 0;
  float scale = 0.0f;
  float zero = 0.0f;
};

//! Group q's codes (of E elements) and its block's scale (and zero point).
template <class C, int E = group_elems, class Args>
AGOQ_DEVICE group_codes load_group_params(const Args& a, const flat_group& q) {
  group_codes r;
  if (!q.live) return r;
  const std::int64_t blk = q.g >> (a.g.log2_lanes + (E == 8 ? 1 : 2)); // lanes: block / E
  r.w = load_group_codes<C::bits, E>(a.codes, q.g);
  r.scale = load_scale(a.scales, blk, q.kind);
  if constexpr (!C::symmetric) r.zero = a.zeros[blk];
  return r;
}

//! A pair's 16 elements as one chunk (zeros past `valid`).
template <class T> AGOQ_DEVICE raw16<T> load_pair(const T* row, const flat_pair& p) {
  const raw16<T> a = load_group(row, p.g0, min(p.valid, group_elems));
  const raw16<T> b = load_group(row, p.g1, max(p.valid - group_elems, 0));
  return raw16<T>{{a.w[0], a.w[1], a.w[2], a.w[3], b.w[0], b.w[1], b.w[2], b.w[3]}};
}

//! The end of a flat quantize-type pair: block parameters from the block's statistics, the
//! pair's codes (stochastic rounding: one Philox call per group) and, from the block's first
//! lane, its scale (and zero point).
template <class C, rounding R>
AGOQ_DEVICE void encode_pair(const quant_args& a, std::uint64_t seed, const flat_pair& p,
                             const float (&v)[chunk_elems], chunk_stats st) {
  const block_params bp = params_from_stats<C>(st, p.kind);
  const chunk_codes c = encode_chunk<C>(v, p.valid, bp, R, [&](chunk_draws& h) {
    philox_draws8(seed, p.g0, h);
    philox_draws8(seed, p.g1, h + group_elems / 2);
  });
  store_group_codes<C::bits>(a.codes, p.g0, c.g0);
  store_group_codes<C::bits>(a.codes, p.g1, c.g1);
  const int log2_groups = a.g.log2_lanes + 1; // groups per block
  if ((p.g0 & ((std::int64_t(1) << log2_groups) - 1)) == 0)
    store_params<C>(bp, p.kind, a.scales, a.zeros, p.g0 >> log2_groups);
}

template <format F, bool Symmetric, class T, rounding R = rounding::nearest_even>
__global__ static void __launch_bounds__(flat_threads)
    flat_quantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  const std::uint64_t seed = R == rounding::stochastic ? resolve_seed(a) : 0;
  static_assert(sizeof(T) == 2, "pairs of 8-element groups: 2-byte elements");
  flat_pairs<flat_pairs_per_thread<false, F, Symmetric, R>,
             flat_pairs_depth<false, F, Symmetric, R>>(
      a.g, a.scale, [&](const flat_pair& p) { return load_pair(x, p); },
      [&](const flat_pair& p, const raw16<T>& raw) {
        float v[chunk_elems];
        to_floats(raw, v);
        chunk_stats st;
        if constexpr (Symmetric)
          st = block_absmax(lane_absmax_bits(raw), a.g.log2_lanes);
        else if constexpr (std::is_same_v<T, __nv_bfloat16>)
          st = block_minmax_bf16(lane_minmax_keys_bf16(raw, p.valid), a.g.log2_lanes);
        else
          st = reduce_stats<false>(v, p.valid, a.g.log2_lanes);
        if (p.live) encode_pair<C, R>(a, seed, p, v, st);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(flat_threads)
    flat_dequantize_kernel(T* __restrict__ y, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int E = lane_elems<T>;
  flat_groups<E>(
      a.g, a.scale, [&](const flat_group& q) { return load_group_params<C, E>(a, q); },
      [&](const flat_group& q, const group_codes& in) {
        if (q.valid == 0) return;
        float v[chunk_elems];
        decode_chunk<C>(chunk_codes{in.w, 0}, params_from_stored(in.scale, in.zero), v);
        store_group(y, q.g, q.valid, v);
      });
}

//! The inputs of a flat dequantize_accumulate group: 4 fp32 accumulator values and their codes.
struct group_accumulate {
  raw16<float> acc;
  group_codes codes;
};

template <format F, bool Symmetric>
__global__ static void __launch_bounds__(flat_threads)
    flat_dequantize_accumulate_kernel(float* __restrict__ acc, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int E = lane_elems<float>;
  flat_groups<E>(
      a.g, a.scale,
      [&](const flat_group& q) {
        return group_accumulate{load_group(static_cast<const float*>(acc), q.g, q.valid),
                                load_group_params<C, E>(a, q)};
      },
      [&](const flat_group& q, const group_accumulate& in) {
        if (q.valid == 0) return;
        float d[chunk_elems], v[chunk_elems];
        decode_chunk<C>(chunk_codes{in.codes.w, 0},
                        params_from_stored(in.codes.scale, in.codes.zero), d);
        to_floats(in.acc, v);
#pragma unroll
        for (int i = 0; i < E; ++i)
          v[i] = fma_f(d[i], a.alpha, v[i]);
        store_group(acc, q.g, q.valid, v);
      });
}

//! The inputs of a flat accumulate_requantize pair: its 16 new elements, the old codes of its
//! two groups and its block's old scale (and zero point).
template <class T> struct pair_update {
  raw16<T> x;
  std::uint64_t old0, old1;
  float scale, zero;
};

//! Every lane of a block has read its old scale before the block's first lane stores the new
//! one: the new scale depends on the block's shuffles, which every lane enters after its loads
//! (a lane with no elements loads nothing the shuffles need, and stores no scale).
template <format F, bool Symmetric, class T, rounding R = rounding::nearest_even>
__global__ static void __launch_bounds__(flat_threads)
    flat_accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  const std::uint64_t seed = R == rounding::stochastic ? resolve_seed(a) : 0;
  static_assert(sizeof(T) == 2, "pairs of 8-element groups: 2-byte elements");
  flat_pairs<flat_pairs_per_thread<true, F, Symmetric, R>, flat_pairs_depth<true, F, Symmetric, R>>(
      a.g, a.scale,
      [&](const flat_pair& p) {
        pair_update<T> in{load_pair(x, p), 0, 0, 0.0f, 0.0f};
        if (p.live) {
          const std::int64_t blk = p.g0 >> (a.g.log2_lanes + 1);
          in.old0 = load_group_codes<C::bits>(a.codes, p.g0);
          in.old1 = load_group_codes<C::bits>(a.codes, p.g1);
          in.scale = load_scale(a.scales, blk, p.kind);
          if constexpr (!C::symmetric) in.zero = a.zeros[blk];
        }
        return in;
      },
      [&](const flat_pair& p, const pair_update<T>& in) {
        float v[chunk_elems];
        to_floats(in.x, v);
        if (p.valid > 0) {
          float d[chunk_elems];
          decode_chunk<C>(chunk_codes{in.old0, in.old1}, params_from_stored(in.scale, in.zero), d);
#pragma unroll
          for (int i = 0; i < chunk_elems; ++i)
            v[i] = i < p.valid ? add_rn(d[i], v[i]) : 0.0f;
        }
        const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
        if (p.live) encode_pair<C, R>(a, seed, p, v, st);
      });
}

} // namespace detail
} // namespace agoq

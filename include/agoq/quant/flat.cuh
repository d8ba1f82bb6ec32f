// SPDX-License-Identifier: Apache-2.0
//! @file quant/flat.cuh
//! The quantizer kernels of the common case: one contiguous row (a 1-D tensor, or a 2-D one of
//! whole-block rows, see layout_of) from a 16-byte aligned start, with 2-, 4- or 8-bit codes. A
//! lane owns a "group" of one 16-byte access of elements (8 of bf16/fp16, 4 of fp32; its codes
//! are Bits * E / 8 bytes at byte g * Bits * E / 8, the layout of format.hpp), the lanes of a
//! block are neighbours in one warp, and a CTA does one tile of flat_groups_per_thread groups
//! per thread, with all of its loads issued before any work: no grid-stride loop, no shared
//! memory, many small CTAs. Quantize and accumulate_requantize need a block's lanes in one warp
//! (its statistics are shuffled), so they take 2-byte elements only (block/8 lanes);
//! dequantize and dequantize_accumulate take fp32 too.
//! Measured on H200 against kernels.cuh's persistent, copy-engine-fed kernels on such tensors
//! (1 GiB of bf16, side by side; bench/RESULTS.md): quantize int8 0.93 -> 1.01 of copy,
//! dequantize 0.91 -> 0.98, accumulate_requantize 0.91 -> 0.92-1.03, dequantize_accumulate 0.93
//! -> 1.00, stochastic rounding 0.38 -> 0.43; bit for bit the same results. The rest (strided
//! rows, 2-D tensors whose rows are not whole blocks, unaligned starts, odd code widths, fp32
//! quantize) runs kernels.cuh's.
//! The per-element math is kernels.cuh's: a group is a 16-element chunk whose rest is zero
//! (inputs) or dropped (codes, outputs), which the compiler removes. The rounding is a template
//! parameter: with it a runtime value, the Philox code of stochastic rounding took registers
//! from the nearest-even kernels (int8 quantize: 37 -> 45).
#pragma once

#include "agoq/error.hpp"
#include "agoq/quant/kernels.cuh"

#include <climits>
#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

inline constexpr int group_elems = 8; //!< elements per lane of 2-byte elements
//! Elements per lane for element type T: one 16-byte access (8 of bf16/fp16, 4 of fp32).
template <class T> inline constexpr int lane_elems = int(16 / sizeof(T));
inline constexpr int flat_threads = 128;         //!< threads per CTA (measured: 128 > 256)
inline constexpr int flat_groups_per_thread = 2; //!< measured: 2 > 1, 3, 4 and 8
inline constexpr int flat_max_log2_lanes = 5; //!< block 256 = 32 lanes of 8 (the shuffling kernels)
//! Lane groups per CTA.
inline constexpr std::int64_t flat_tile = std::int64_t(flat_threads) * flat_groups_per_thread;

//! The code widths that have flat kernels: a lane's codes are whole, aligned bytes.
template <int Bits> inline constexpr bool flat_bits_v = Bits == 2 || Bits == 4 || Bits == 8;
//! The element types and code widths of the flat quantize-type kernels: a block's lanes must
//! fit in a warp, so 8 elements per lane (2-byte elements). The dequantize-type kernels, which
//! need no block statistics, also take fp32 (4 per lane).
template <class T, int Bits>
inline constexpr bool has_flat_kernel_v = sizeof(T) == 2 && flat_bits_v<Bits>;

//! True when a kernel's arguments (quant_args or dequant_args) describe a flat tensor: one row
//! with vector (16-byte aligned) element access, whose grid fits in gridDim.x.
template <class Args> bool flat_layout(const Args& a) {
  const std::int64_t groups = a.g.chunks() * 4; // at most: 4 elements per lane
  return a.g.rows == 1 && a.vec && (groups + flat_threads - 1) / flat_threads <= INT_MAX;
}

//! Launches kernel(p, a) on `stream` over the groups of `a.g`, `elems` elements per group
//! (lane_elems of the kernel's element type).
template <class Kernel, class P, class Args>
status launch_flat(Kernel kernel, int elems, P p, const Args& a, cudaStream_t stream) {
  const std::int64_t groups = a.g.chunks() * (chunk_elems / elems);
  kernel<<<unsigned((groups + flat_tile - 1) / flat_tile), flat_threads, 0, stream>>>(p, a);
  return from_cuda(cudaGetLastError());
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

//! The groups of the calling thread: `load(group)` for each (all loads first), then
//! `work(group, in)`. Every lane runs work(), also for groups past the end, so that block
//! shuffles see the whole warp (a block's lanes are past the end together: groups count whole
//! blocks).
template <int E = group_elems, class Load, class Work>
AGOQ_DEVICE void flat_groups(const block_grid& grid, scale_kind kind, Load&& load, Work&& work) {
  const std::int64_t first = std::int64_t(blockIdx.x) * flat_tile + threadIdx.x;
  const std::int64_t groups = grid.chunks() * (chunk_elems / E);
  const auto run = [&](auto full_tile, auto fp32_scales) {
    constexpr bool full = decltype(full_tile)::value, fp32 = decltype(fp32_scales)::value;
    const auto group = [&](int i) {
      const std::int64_t g = first + i * flat_threads;
      return flat_group{g, full ? E : group_valid<E>(g, grid.cols), full || g < groups,
                        fp32 ? scale_kind::fp32 : kind};
    };
    using In = decltype(load(group(0)));
    In in[flat_groups_per_thread];
#pragma unroll
    for (int i = 0; i < flat_groups_per_thread; ++i)
      in[i] = load(group(i));
#pragma unroll
    for (int i = 0; i < flat_groups_per_thread; ++i)
      work(group(i), in[i]);
  };
  const bool full = (std::int64_t(blockIdx.x) + 1) * flat_tile * E <= grid.cols;
  if (!full)
    run(std::false_type{}, std::false_type{});
  else if (kind == scale_kind::fp32)
    run(std::true_type{}, std::true_type{});
  else
    run(std::true_type{}, std::false_type{});
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

//! The end of a flat quantize-type group: block parameters from the block's statistics, the
//! group's codes and, from the block's first lane, its scale (and zero point). A full group is
//! encoded as a full chunk (its dropped upper half may then hold any codes), so that it takes
//! encode_chunk's fast paths.
template <class C, rounding R>
AGOQ_DEVICE void encode_group(const quant_args& a, const flat_group& q,
                              const float (&v)[chunk_elems], chunk_stats st) {
  const block_params bp = params_from_stats<C>(st, q.kind);
  const chunk_codes c = encode_chunk<C>(v, q.valid == group_elems ? chunk_elems : q.valid, bp, R,
                                        a.seed, q.g * group_elems);
  store_group_codes<C::bits>(a.codes, q.g, c.g0);
  const int log2_lanes = a.g.log2_lanes + 1;
  if ((q.g & ((std::int64_t(1) << log2_lanes) - 1)) == 0)
    store_params<C>(bp, q.kind, a.scales, a.zeros, q.g >> log2_lanes);
}

template <format F, bool Symmetric, class T, rounding R = rounding::nearest_even>
__global__ static void __launch_bounds__(flat_threads)
    flat_quantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  static_assert(sizeof(T) == 2, "a block's 8-element lanes must fit in a warp");
  flat_groups(
      a.g, a.scale, [&](const flat_group& q) { return load_group(x, q.g, q.valid); },
      [&](const flat_group& q, const raw16<T>& raw) {
        float v[chunk_elems];
        to_floats(raw, v);
        chunk_stats st;
        if constexpr (Symmetric)
          st = block_absmax<flat_max_log2_lanes>(lane_absmax_bits(raw), a.g.log2_lanes + 1);
        else
          st = reduce_stats<false, flat_max_log2_lanes>(v, q.valid, a.g.log2_lanes + 1);
        if (q.live) encode_group<C, R>(a, q, v, st);
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

//! The inputs of a flat accumulate_requantize group.
template <class T> struct group_update {
  raw16<T> x;
  group_codes old;
};

//! Every lane of a block has read its old scale before the block's first lane stores the new
//! one: the new scale depends on the block's shuffles, which every lane enters after its loads
//! (a lane with no elements loads nothing the shuffles need, and stores nothing).
template <format F, bool Symmetric, class T, rounding R = rounding::nearest_even>
__global__ static void __launch_bounds__(flat_threads)
    flat_accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  static_assert(sizeof(T) == 2, "a block's 8-element lanes must fit in a warp");
  flat_groups(
      a.g, a.scale,
      [&](const flat_group& q) {
        return group_update<T>{load_group(x, q.g, q.valid), load_group_params<C>(a, q)};
      },
      [&](const flat_group& q, const group_update<T>& in) {
        float v[chunk_elems];
        to_floats(in.x, v);
        if (q.valid > 0) {
          float d[chunk_elems];
          decode_chunk<C>(chunk_codes{in.old.w, 0}, params_from_stored(in.old.scale, in.old.zero),
                          d);
#pragma unroll
          for (int i = 0; i < chunk_elems; ++i)
            v[i] = i < q.valid ? add_rn(d[i], v[i]) : 0.0f;
        }
        const chunk_stats st =
            reduce_stats<Symmetric, flat_max_log2_lanes>(v, q.valid, a.g.log2_lanes + 1);
        if (q.live) encode_group<C, R>(a, q, v, st);
      });
}

} // namespace detail
} // namespace agoq

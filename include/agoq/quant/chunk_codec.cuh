// SPDX-License-Identifier: Apache-2.0
//! @file quant/chunk_codec.cuh
//! The thread/warp codec every quantizer kernel family shares (staged.cuh, flat.cuh and the
//! collectives' comm/reduce_kernels.cuh). One thread owns a "chunk" of 16 consecutive elements of
//! a row (two 16-byte loads of bf16/fp16); the block/16 threads of a block are neighbouring lanes
//! of one warp and agree on the block's amax (or min/max) with shuffles, so the input is read
//! exactly once and the per-block work (scale, reciprocal) is shared by as few lanes as possible.
//! The per-element math (scales, encode, decode, Philox) is the host reference's, from format/;
//! the fast paths below (fp32 "magic" rounding instead of conversions, SIMD absmax, paired FP8
//! conversion) give the same bits and are checked against the host reference by the GPU tests.
//! Also here: the kernels' argument structs (quant_args, dequant_args).
#pragma once

#include "agoq/config.hpp"
#include "agoq/detail/ptx.cuh"
#include "agoq/format/codec.hpp"
#include "agoq/format/element.hpp"
#include "agoq/format/philox.hpp"
#include "agoq/quant/view.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace agoq {
namespace detail {

//! Elements per chunk (per thread and trip). Every block size is a multiple of it.
inline constexpr int chunk_elems = 16;
//! log2 of the most chunks (lanes) per block: blocks have at most 256 elements (format.hpp).
inline constexpr int max_log2_lanes = 4;

//! log2(block / chunk_elems): the chunks (lanes) of one block, for a valid block size.
constexpr int log2_lanes_of(int block) noexcept {
  int l = 0;
  while ((chunk_elems << l) < block)
    ++l;
  return l;
}

//! Shape of a rows x cols tensor cut into blocks, as the kernels index it.
struct block_grid {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t blocks_per_row;
  int block;      //!< elements per block
  int log2_lanes; //!< log2(block / chunk_elems): lanes (chunks) per block
  AGOQ_HOST_DEVICE std::int64_t chunks() const { return (rows * blocks_per_row) << log2_lanes; }
};

//! Where chunk `c` lives. Chunks enumerate blocks in storage order, so chunk c's codes start at
//! byte c * 2 * bits and its block's scale is number c >> log2_lanes.
struct chunk_pos {
  std::int64_t blk;
  std::int64_t row;
  std::int64_t col0;
  int lane;
  int valid; //!< elements of the chunk inside the row (0 for a lane past the end)
};

AGOQ_DEVICE chunk_pos locate(const block_grid& g, std::int64_t c, std::int64_t total) {
  chunk_pos p;
  const bool idle = c >= total; // a lane past the end: it only takes part in the shuffles
  if (idle) c = 0;
  p.blk = c >> g.log2_lanes;
  p.lane = int(c & ((std::int64_t(1) << g.log2_lanes) - 1));
  if (g.rows == 1) { // one row: blocks are back to back, so the chunk starts at 16 c
    p.row = 0;
    p.col0 = c * chunk_elems;
  } else {
    // 2-D: one division; 32-bit (a fraction of the 64-bit sequence) whenever the values fit
    p.row = (p.blk >> 32) == 0 && (g.blocks_per_row >> 32) == 0
                ? std::int64_t(std::uint32_t(p.blk) / std::uint32_t(g.blocks_per_row))
                : p.blk / g.blocks_per_row;
    p.col0 = (p.blk - p.row * g.blocks_per_row) * g.block + p.lane * chunk_elems;
  }
  const std::int64_t left = g.cols - p.col0;
  p.valid = (idle || left <= 0) ? 0 : (left >= chunk_elems ? chunk_elems : int(left));
  return p;
}

//! locate() of chunk c < dense_chunks (see quant_args): row 0, at element 16 c, all 16 valid.
AGOQ_DEVICE chunk_pos dense_pos(const block_grid& g, std::int64_t c) {
  return chunk_pos{c >> g.log2_lanes, 0, c * chunk_elems, int(c) & ((1 << g.log2_lanes) - 1),
                   chunk_elems};
}

// ---- element loads and stores -------------------------------------------------------------------

//! 16 elements of T as raw bits (32 bytes for 2-byte types, 64 for fp32): held in registers
//! between the load phase and the work phase of a trip, half the registers of 16 floats.
template <class T> struct raw16 { std::uint32_t w[4 * sizeof(T)]; };

template <class T> AGOQ_DEVICE std::uint32_t element_bits(const T* p) {
  if constexpr (sizeof(T) == 2)
    return *reinterpret_cast<const std::uint16_t*>(p);
  else
    return *reinterpret_cast<const std::uint32_t*>(p);
}

//! Loads 16 elements as raw bits (zeros past `valid`), with 16-byte streaming loads when possible.
template <class T> AGOQ_DEVICE raw16<T> load_raw16(const T* p, int valid, bool vec) {
  raw16<T> r;
  if (vec && valid == chunk_elems) {
#pragma unroll
    for (int j = 0; j < int(sizeof(T)); ++j) {
      const uint4 q = __ldcs(reinterpret_cast<const uint4*>(p) + j);
      r.w[4 * j] = q.x, r.w[4 * j + 1] = q.y, r.w[4 * j + 2] = q.z, r.w[4 * j + 3] = q.w;
    }
    return r;
  }
#pragma unroll
  for (int j = 0; j < int(4 * sizeof(T)); ++j)
    r.w[j] = 0;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    if (i >= valid) continue;
    if constexpr (sizeof(T) == 2)
      r.w[i / 2] |= element_bits(p + i) << (16 * (i & 1));
    else
      r.w[i] = element_bits(p + i);
  }
  return r;
}

//! The 16 elements of `r` as floats (exact for every input type).
template <class T> AGOQ_DEVICE void to_floats(const raw16<T>& r, float (&v)[chunk_elems]) {
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      v[i] = __uint_as_float(r.w[i]);
    } else {
      const std::uint16_t b = std::uint16_t(r.w[i / 2] >> (16 * (i & 1)));
      if constexpr (std::is_same_v<T, __nv_bfloat16>)
        v[i] = __uint_as_float(std::uint32_t(b) << 16);
      else
        v[i] = __half2float(__ushort_as_half(b));
    }
  }
}

//! v as T's bits, as to_output<T> (format/element.hpp) rounds it: nearest even, saturating.
template <class T> AGOQ_DEVICE std::uint16_t to_bits16(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat16_as_ushort(to_output<__nv_bfloat16>(v));
  else
    return __half_as_ushort(to_output<__half>(v));
}

//! [to_bits16(hi) | to_bits16(lo)] in one conversion (cvt.rn.satfinite.{bf16x2,f16x2}.f32).
template <class T> AGOQ_DEVICE std::uint32_t to_bits16x2(float lo, float hi) {
#if AGOQ_HAS_CVT_SATFINITE()
  return ptx::cvt_satfinite_x2<std::is_same_v<T, __nv_bfloat16>>(hi, lo);
#else
  return std::uint32_t(to_bits16<T>(lo)) | std::uint32_t(to_bits16<T>(hi)) << 16;
#endif
}

//! 16 values as T's raw bits, rounded as to_output<T> does (2-byte T: nearest even, saturating).
template <class T> AGOQ_DEVICE raw16<T> pack_raw16(const float (&v)[chunk_elems]) {
  raw16<T> r;
#pragma unroll
  for (int j = 0; j < int(4 * sizeof(T)); ++j) {
    if constexpr (sizeof(T) == 2)
      r.w[j] = to_bits16x2<T>(v[2 * j], v[2 * j + 1]);
    else
      r.w[j] = __float_as_uint(v[j]);
  }
  return r;
}

//! Stores the first `valid` of 16 values, rounded as to_output<T> does.
template <class T>
AGOQ_DEVICE void store16(T* p, int valid, bool vec, const float (&v)[chunk_elems]) {
  if (vec && valid == chunk_elems) {
    const raw16<T> r = pack_raw16<T>(v);
#pragma unroll
    for (int j = 0; j < int(sizeof(T)); ++j)
      reinterpret_cast<uint4*>(p)[j] =
          make_uint4(r.w[4 * j], r.w[4 * j + 1], r.w[4 * j + 2], r.w[4 * j + 3]);
    return;
  }
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    if (i >= valid) continue;
    if constexpr (std::is_same_v<T, float>)
      p[i] = v[i];
    else
      reinterpret_cast<std::uint16_t*>(p)[i] = to_bits16<T>(v[i]);
  }
}

// ---- codes of a chunk: two packed groups of eight -----------------------------------------------

//! The 2 * Bits bytes of a chunk's codes (aligned to 2 * Bits bytes for Bits = 2, 4, 8).
struct chunk_codes {
  std::uint64_t g0; //!< codes 0..7, packed (format.hpp: value i at bits [i*Bits, i*Bits + Bits))
  std::uint64_t g1; //!< codes 8..15
};

//! The codes of a chunk of 8-bit codes from its four words (codes 4j .. 4j+3 in w[j]).
AGOQ_DEVICE chunk_codes codes_of_words(const std::uint32_t (&w)[4]) {
  const auto join = [](std::uint32_t lo, std::uint32_t hi) {
    return std::uint64_t(lo) | std::uint64_t(hi) << 32;
  };
  return {join(w[0], w[1]), join(w[2], w[3])};
}

template <int Bits> AGOQ_DEVICE void store_codes(std::uint8_t* p, const chunk_codes& c) {
  if constexpr (Bits == 8) {
    *reinterpret_cast<uint4*>(p) = make_uint4(std::uint32_t(c.g0), std::uint32_t(c.g0 >> 32),
                                              std::uint32_t(c.g1), std::uint32_t(c.g1 >> 32));
  } else if constexpr (Bits == 4) {
    *reinterpret_cast<uint2*>(p) = make_uint2(std::uint32_t(c.g0), std::uint32_t(c.g1));
  } else if constexpr (Bits == 2) {
    *reinterpret_cast<std::uint32_t*>(p) = std::uint32_t(c.g0) | std::uint32_t(c.g1) << 16;
  } else { // odd widths: 2 * Bits bytes, stored in halfwords when aligned (the usual case)
    const std::uint64_t lo = c.g0 | c.g1 << (8 * Bits), hi = c.g1 >> (64 - 8 * Bits);
    if ((reinterpret_cast<std::uintptr_t>(p) & 1u) == 0) {
#pragma unroll
      for (int k = 0; k < Bits; ++k)
        reinterpret_cast<std::uint16_t*>(p)[k] =
            std::uint16_t(k < 4 ? lo >> (16 * k) : hi >> (16 * k - 64));
      return;
    }
#pragma unroll
    for (int i = 0; i < Bits; ++i)
      p[i] = std::uint8_t(c.g0 >> (8 * i));
#pragma unroll
    for (int i = 0; i < Bits; ++i)
      p[Bits + i] = std::uint8_t(c.g1 >> (8 * i));
  }
}

template <int Bits> AGOQ_DEVICE chunk_codes load_codes(const std::uint8_t* p) {
  if constexpr (Bits == 8) {
    const uint4 r = *reinterpret_cast<const uint4*>(p);
    return {std::uint64_t(r.x) | std::uint64_t(r.y) << 32, std::uint64_t(r.z) | std::uint64_t(r.w)
                                                                                    << 32};
  } else if constexpr (Bits == 4) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    return {r.x, r.y};
  } else if constexpr (Bits == 2) {
    const std::uint32_t r = *reinterpret_cast<const std::uint32_t*>(p);
    return {r & 0xffffu, r >> 16};
  } else { // odd widths: 2 * Bits bytes, loaded in halfwords when aligned (the usual case)
    constexpr std::uint64_t group_mask = (std::uint64_t(1) << (8 * Bits)) - 1u;
    if ((reinterpret_cast<std::uintptr_t>(p) & 1u) == 0) {
      std::uint64_t lo = 0, hi = 0;
#pragma unroll
      for (int k = 0; k < Bits; ++k) {
        const std::uint64_t h = reinterpret_cast<const std::uint16_t*>(p)[k];
        if (k < 4)
          lo |= h << (16 * k);
        else
          hi |= h << (16 * k - 64);
      }
      return {lo & group_mask, (lo >> (8 * Bits) | hi << (64 - 8 * Bits)) & group_mask};
    }
    chunk_codes c{0, 0};
#pragma unroll
    for (int i = 0; i < Bits; ++i)
      c.g0 |= std::uint64_t(p[i]) << (8 * i);
#pragma unroll
    for (int i = 0; i < Bits; ++i)
      c.g1 |= std::uint64_t(p[Bits + i]) << (8 * i);
    return c;
  }
}

//! Packs codes c[8*h .. 8*h+8) (each < 2^Bits) into one group; 32-bit arithmetic where no code
//! straddles the halves (64-bit shifts cost two instructions).
template <int Bits> AGOQ_DEVICE std::uint64_t pack_group(const std::uint32_t* c) {
  if constexpr (Bits == 8) {
    return std::uint64_t(c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24) |
           std::uint64_t(c[4] | c[5] << 8 | c[6] << 16 | c[7] << 24) << 32;
  } else if constexpr (Bits <= 4) {
    std::uint32_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      w |= c[i] << (i * Bits);
    return w;
  } else {
    std::uint64_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      w |= std::uint64_t(c[i]) << (i * Bits);
    return w;
  }
}

// ---- block statistics across the lanes of a block -----------------------------------------------

//! The statistics of the block a chunk belongs to: amax in hi (symmetric) or min/max.
struct chunk_stats {
  float lo;
  float hi;
};

//! The block's NaN-propagating absmax from each lane's |x| maximum as fp32 bits: |x| as bits
//! orders like the values, with Inf above every finite value and every NaN above Inf, so an
//! integer max is the host reference's absmax (absmax_step).
AGOQ_DEVICE chunk_stats block_absmax(std::uint32_t m, int log2_lanes) {
#pragma unroll
  for (int k = 0; k < max_log2_lanes; ++k)
    if (k < log2_lanes) // uniform: the block's lanes
      m = max(m, __shfl_xor_sync(0xffffffffu, m, 1 << k));
  return {0.0f, m > 0x7f800000u ? quiet_nan() : bits_to_float(m)};
}

//! A lane's |x| maximum of 16 raw elements (zeros past the valid ones) as fp32 bits: for 16-bit
//! types one SIMD max per two elements (max.u16x2 on sm_90), before any conversion to fp32.
template <class T> AGOQ_DEVICE std::uint32_t lane_absmax_bits(const raw16<T>& r) {
  std::uint32_t m = 0;
  if constexpr (sizeof(T) == 2) {
#pragma unroll
    for (int j = 0; j < 8; j += 2)
      m = __vimax3_u16x2(m, r.w[j] & 0x7fff7fffu, r.w[j + 1] & 0x7fff7fffu);
    const std::uint32_t h = max(m & 0xffffu, m >> 16);
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      return h << 16;
    else
      return float_to_bits(__half2float(__ushort_as_half(std::uint16_t(h)))); // |x|: sign 0
  } else {
#pragma unroll
    for (int j = 0; j < chunk_elems; j += 2)
      m = __vimax3_u32(m, r.w[j] & 0x7fffffffu, r.w[j + 1] & 0x7fffffffu);
    return m;
  }
}

//! fp32 bits as an int that orders like the values, -0 below +0, positive NaNs above +Inf and
//! negative ones below -Inf (sign-magnitude to two's complement; its own inverse).
AGOQ_DEVICE int order_key(float x) {
  const int b = __float_as_int(x);
  return b ^ ((b >> 31) & 0x7fffffff);
}
AGOQ_DEVICE float from_order_key(int k) { return __int_as_float(k ^ ((k >> 31) & 0x7fffffff)); }

//! Block statistics of fp32 values. Symmetric: the elements past `valid` must be +-0 (they
//! cannot raise the absmax, so they need no mask); asymmetric: they are ignored.
template <bool Symmetric>
AGOQ_DEVICE chunk_stats reduce_stats(const float (&v)[chunk_elems], int valid, int log2_lanes) {
  if constexpr (Symmetric) {
    (void)valid;
    std::uint32_t m = 0;
#pragma unroll
    for (int i = 0; i < chunk_elems; i += 2)
      m = __vimax3_u32(m, float_to_bits(v[i]) & 0x7fffffffu, float_to_bits(v[i + 1]) & 0x7fffffffu);
    return block_absmax(m, log2_lanes);
  } else {
    // Integer min/max of order keys (one instruction each instead of nan_min/nan_max's compares).
    // Any NaN or Inf element ends up at one end, which makes the block's parameters NaN exactly
    // as the reference's NaN-propagating min/max do (asymmetric_params); finite ends are the
    // reference's, -0 below +0.
    int lo = 0x7fffffff, hi = int(0x80000000u); // identities
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      if (i < valid) {
        const int k = order_key(v[i]);
        lo = min(lo, k);
        hi = max(hi, k);
      }
#pragma unroll
    for (int k = 0; k < max_log2_lanes; ++k)
      if (k < log2_lanes) { // uniform: the block's lanes
        lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, 1 << k));
        hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, 1 << k));
      }
    return {from_order_key(lo), from_order_key(hi)};
  }
}

//! philox_uniform's u for the 16-bit draw h in bits 16 * Hi .. 16 * Hi + 15 of w: one byte
//! permute makes the float 2^23 + h, and (2^23 + h) 2^-16 - 128 = h 2^-16 exactly. No conversion
//! instruction (1/4 rate on sm_90) and one integer instruction.
template <bool Hi> AGOQ_DEVICE float uniform_from_half_bits(std::uint32_t w) {
  return __fmaf_rn(__uint_as_float(__byte_perm(w, 0x4B000000u, Hi ? 0x7432 : 0x7410)),
                   1.0f / 65536.0f, -128.0f);
}

//! A chunk's 16-bit Philox draws: word k holds element 2k's draw in its low half and element
//! 2k + 1's in its high half (philox.hpp's rule).
using chunk_draws = std::uint32_t[chunk_elems / 2];

//! The draws of the eight elements 8 g .. 8 g + 7 into h[0..4): one Philox call.
AGOQ_DEVICE void philox_draws8(std::uint64_t seed, std::int64_t g, std::uint32_t* h) {
  const philox_block w = philox_words(seed, std::uint64_t(g) * 8);
#pragma unroll
  for (int k = 0; k < 4; ++k)
    h[k] = w.w[k];
}

//! The draws of the 16 elements idx0..idx0+15 (philox_uniform's per element): one Philox call
//! serves eight consecutive indices. Only constant indices into the words, so they stay in
//! registers. (The flat kernels' groups start at 8 g: philox_draws8.)
AGOQ_DEVICE void philox_draws16(std::uint64_t seed, std::int64_t idx0, chunk_draws& h) {
  const std::uint64_t first = std::uint64_t(idx0) & ~std::uint64_t(7);
  const int off = int(idx0 & 7); // element i is 16-bit half off + i of the words from `first`
  std::uint32_t r[12];
#pragma unroll
  for (int b = 0; b < 3; ++b) {
    const philox_block w = b < 2 || off ? philox_words(seed, first + 8 * b) : philox_block{};
    r[4 * b] = w.w[0], r[4 * b + 1] = w.w[1], r[4 * b + 2] = w.w[2], r[4 * b + 3] = w.w[3];
  }
  std::uint32_t a[9]; // a[k]: the halves of elements 2k (low) and 2k + 1 (high)
#define AGOQ_DRAWS16_CASE(o)                                                                       \
  case o:                                                                                          \
    for (int k = 0; k < 9; ++k)                                                                    \
      a[k] = r[k + o];                                                                             \
    break;
  switch (off >> 1) {
#pragma unroll
    AGOQ_DRAWS16_CASE(0)
#pragma unroll
    AGOQ_DRAWS16_CASE(1)
#pragma unroll
    AGOQ_DRAWS16_CASE(2)
#pragma unroll
    AGOQ_DRAWS16_CASE(3)
  }
#undef AGOQ_DRAWS16_CASE
  if (off & 1) { // odd start: element 2k is the high half of a[k]
#pragma unroll
    for (int k = 0; k < 8; ++k)
      a[k] = __funnelshift_r(a[k], a[k + 1], 16);
  }
#pragma unroll
  for (int k = 0; k < 8; ++k)
    h[k] = a[k];
}

// ---- integer rounding without conversion instructions -------------------------------------------
// For |t| <= 2^22 the fp32 sum t + 1.5 * 2^23 is rint(t) (round half to even) held in the low
// mantissa bits: bits = 0x4B400000 + rint(t). Its low N bits are then rint(t)'s N-bit two's
// complement code (0x4B400000 has zero low bits), and the float minus the constant is rint(t).
// This replaces cvt.rni.s32 and cvt.rn.f32.s32 (quarter-rate conversions) by fp32 adds.
inline constexpr float round_magic = 12582912.0f;
template <class C> inline constexpr bool int_codec_v = is_integer(C::format_v);
inline constexpr std::uint32_t round_magic_bits = 0x4B400000u;

//! True when an integer block's nearest-even codes need no clamp: with a normal, finite scale
//! s = RN(range / qmax), pre = 1 and inv = RN(1 / s) (or a power-of-two scale rounded up),
//! every |x * inv| (asymmetric: (x - zero) * inv, which is >= 0) is at most
//! qmax * (1 + 2^-24)^2 / (1 - 2^-24) < qmax + 0.5, so rint stays in range and no product is
//! NaN. Subnormal, zero, Inf and NaN scales and pre != 1 take the per-element path, and so do
//! scales of 2^127 and above: a power-of-two scale saturates there (rounded down, not up), so
//! int2's |x * inv| can reach 2 and needs the clamp.
AGOQ_DEVICE bool int_block_in_range(const block_params& bp) {
  return bp.scale >= 1.17549435e-38f && bp.scale < 0x1p127f && bp.pre == 1.0f;
}

//! True when a decoded chunk may hold a product that overflows fp32 (or the scale is NaN), so
//! the fast decoders saturate it as C::decode does: with |scale| < 2^100 and |zero| < 2^126,
//! |code| * scale + zero stays below FLT_MAX for every format (also for scales and zero points
//! that did not come from agoq's encoder).
AGOQ_DEVICE bool decode_may_overflow(const block_params& bp) {
  return !(fabsf(bp.scale) < 0x1p100f && fabsf(bp.zero) < 0x1p126f);
}

//! Impl::encode(v) (Stochastic: Impl::encode_sr(v, u)) of a finite v for the small float
//! formats (format/fp8.hpp), without the reference's per-element branches and division. With
//! E' = max(exponent of v, emin), t = |v| 2^(M - E') (exact) is v in units of the code spacing
//! at v, so the code below |v| is ((E' - emin) << M) + floor(t) and the fraction the reference
//! divides out is t - floor(t) (exact); nearest-even rounds t by one add of round_magic.
//! Magnitudes at or above the largest finite one saturate to it (min with max_code).
template <class Impl, bool Stochastic> AGOQ_DEVICE std::uint32_t minifloat_code(float v, float u) {
  constexpr int M = Impl::man_bits;
  constexpr std::uint32_t min_normal = std::uint32_t(127 + Impl::emin) << 23;
  const std::uint32_t b = __float_as_uint(v);
  const std::uint32_t e = max(b & 0x7f800000u, min_normal); // E' as fp32 exponent bits
  const float t = fabsf(v) * __uint_as_float((std::uint32_t(254 + M) << 23) - e);
  std::uint32_t q; // round_magic + the rounded t
  if constexpr (Stochastic) {
    q = __float_as_uint(__fadd_rd(t, round_magic));
    q += u < t - (__uint_as_float(q) - round_magic) ? 1u : 0u;
  } else {
    q = __float_as_uint(__fadd_rn(t, round_magic));
  }
  const std::uint32_t code = ((e - min_normal) >> (23 - M)) + (q - round_magic_bits);
  return min(code, Impl::max_code) | (b >> 31) * Impl::sign_bit;
}

//! t stochastically rounded onto the grid of Impl's magnitudes by the 16-bit draw in bits
//! 16 * Hi .. 16 * Hi + 15 of w, as a float that cvt.rn.satfinite then converts exactly: the
//! codes of Impl::encode_sr(t, h 2^-16) bit for bit, with integer adds where the reference divides.
//! The F = 23 - M fp32 fraction bits below the code's last bit hold frac 2^F; adding
//! R = ~h 2^(F-16) + 2^(F-16) - 1 carries into the code's bits exactly when h < frac 2^16 (the
//! reference's u < frac), and a carry into the exponent is the step to the next binade. Below
//! the smallest normal, adding it first puts |t| in the binade whose spacing is the subnormal
//! codes'; that add rounds up, which keeps ceil(frac 2^16) and so every decision (fp32
//! subnormal t included, as nothing here flushes to zero). Magnitudes at or above the largest
//! finite one, +-Inf too, stay there (the reference saturates them). t must not be NaN (fminf
//! would make it the largest value): encode_chunk calls it only with a non-zero inv, pre = 1.
template <class Impl, bool Hi> AGOQ_DEVICE float minifloat_sr_grid(float t, std::uint32_t w) {
  constexpr int F = 23 - Impl::man_bits, s = F - 16;
  const float min_normal = __uint_as_float(std::uint32_t(127 + Impl::emin) << 23);
  const float a = fminf(fabsf(t), Impl::max_value());
  const float offset = a < min_normal ? min_normal : 0.0f;
  const std::uint32_t r =
      Hi ? (~w >> (16 - s) & (0xFFFFu << s)) | ((1u << s) - 1u) : ~(w << s) & ((1u << F) - 1u);
  const float g = __uint_as_float((__float_as_uint(__fadd_ru(a, offset)) + r) & ~((1u << F) - 1u));
  return __uint_as_float(__float_as_uint(__fsub_rn(g, offset)) |
                         (__float_as_uint(t) & 0x80000000u));
}

//! One word of the bytes byte(x0), byte(x1), byte(x2), byte(x3) (low to high), where `sel`
//! (0x0040: byte 0 of each word; 0x0062: byte 2) picks them: three byte permutes.
AGOQ_DEVICE std::uint32_t gather_bytes(std::uint32_t x0, std::uint32_t x1, std::uint32_t x2,
                                       std::uint32_t x3, unsigned sel) {
  return __byte_perm(__byte_perm(x0, x1, sel), __byte_perm(x2, x3, sel), 0x5410);
}

//! 4-bit codes from the bytes of the even-numbered codes (low nibbles) and the odd ones.
AGOQ_DEVICE std::uint32_t merge_nibbles(std::uint32_t even, std::uint32_t odd) {
  return (even & 0x0f0f0f0fu) | (odd << 4 & 0xf0f0f0f0u);
}

//! Packs the low Bits bits of b[0..16) into a chunk's codes.
template <int Bits> AGOQ_DEVICE chunk_codes pack_low(const std::uint32_t (&b)[chunk_elems]) {
  if constexpr (Bits == 8) {
    std::uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      w[j] = gather_bytes(b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3], 0x0040);
    return codes_of_words(w);
  } else if constexpr (Bits == 4) {
    const std::uint32_t* q = b + 8;
    return {merge_nibbles(gather_bytes(b[0], b[2], b[4], b[6], 0x0040),
                          gather_bytes(b[1], b[3], b[5], b[7], 0x0040)),
            merge_nibbles(gather_bytes(q[0], q[2], q[4], q[6], 0x0040),
                          gather_bytes(q[1], q[3], q[5], q[7], 0x0040))};
  } else {
    std::uint32_t c[chunk_elems];
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      c[i] = b[i] & ((1u << Bits) - 1u);
    return {pack_group<Bits>(c), pack_group<Bits>(c + 8)};
  }
}

//! Packs 8- or 4-bit codes from q[k] = [code 2k + 1 | code 2k] (16 bits each, the code in the
//! low bits).
template <int Bits> AGOQ_DEVICE chunk_codes pack_pairs(const std::uint32_t (&q)[8]) {
  if constexpr (Bits == 8) {
    std::uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      w[j] = __byte_perm(q[2 * j], q[2 * j + 1], 0x6420);
    return codes_of_words(w);
  } else {
    static_assert(Bits == 4, "8- or 4-bit codes");
    return {merge_nibbles(gather_bytes(q[0], q[1], q[2], q[3], 0x0040),
                          gather_bytes(q[0], q[1], q[2], q[3], 0x0062)),
            merge_nibbles(gather_bytes(q[4], q[5], q[6], q[7], 0x0040),
                          gather_bytes(q[4], q[5], q[6], q[7], 0x0062))};
  }
}

//! Encodes the valid values of a chunk with the block's parameters; codes past `valid` are 0.
//! The values past `valid` must be +0 (the symmetric fast paths encode them to 0 unmasked).
//! Stochastic rounding takes the chunk's Philox draws from `draws(h)` (philox_draws16 for 16
//! consecutive indices).
template <class C, class Draws>
AGOQ_DEVICE chunk_codes encode_chunk(const float (&v)[chunk_elems], int valid,
                                     const block_params& bp, rounding rnd, Draws&& draws) {
  const auto uniforms = [&](float(&u)[chunk_elems]) { // u = h 2^-16 of the chunk's draws
    chunk_draws h;
    draws(h);
#pragma unroll
    for (int k = 0; k < chunk_elems / 2; ++k) {
      u[2 * k] = uniform_from_half_bits<false>(h[k]);
      u[2 * k + 1] = uniform_from_half_bits<true>(h[k]);
    }
  };
  if constexpr (int_codec_v<C>) {
    // The fast path of C::encode (nearest-even) for in-range blocks; asymmetric codes of the
    // values past `valid` would not be 0, so only full chunks take it there.
    if (rnd == rounding::nearest_even && (C::symmetric || valid == chunk_elems) &&
        int_block_in_range(bp)) {
      std::uint32_t b[chunk_elems];
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i) {
        const float t = C::symmetric ? mul_rn(v[i], bp.inv) : mul_rn(sub_rn(v[i], bp.zero), bp.inv);
        b[i] = float_to_bits(add_rn(t, round_magic));
      }
      return pack_low<C::bits>(b);
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  if constexpr (C::format_v == format::fp8_e4m3 || C::format_v == format::fp8_e5m2) {
    // With a non-zero inv and pre = 1 every x * inv is finite or +-Inf (a NaN or Inf input makes
    // the block's scale NaN and inv 0), so C::encode is exactly cvt.rn.satfinite: convert two
    // values per instruction. Stochastic rounding first moves each value onto the format's grid
    // (minifloat_sr_grid), where the conversion is exact. Elements past `valid` are +0 and
    // encode to 0 as required. Tiny blocks (pre = 2^64) take the per-element path.
    if (bp.inv != 0.0f && bp.pre == 1.0f) {
      float t[chunk_elems];
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        t[i] = mul_rn(v[i], bp.inv);
      if (rnd == rounding::stochastic) {
        chunk_draws h;
        draws(h);
#pragma unroll
        for (int k = 0; k < chunk_elems / 2; ++k) {
          t[2 * k] = minifloat_sr_grid<typename C::impl, false>(t[2 * k], h[k]);
          t[2 * k + 1] = minifloat_sr_grid<typename C::impl, true>(t[2 * k + 1], h[k]);
        }
      }
      std::uint32_t pair[8];
#pragma unroll
      for (int i = 0; i < chunk_elems; i += 2)
        pair[i / 2] =
            __nv_cvt_float2_to_fp8x2(make_float2(t[i], t[i + 1]), __NV_SATFINITE,
                                     C::format_v == format::fp8_e4m3 ? __NV_E4M3 : __NV_E5M2);
      std::uint32_t w[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        w[j] = __byte_perm(pair[2 * j], pair[2 * j + 1], 0x5410);
      return codes_of_words(w);
    }
  }
#endif
  if constexpr (!int_codec_v<C>) {
    // The small float formats where no conversion instruction did it above (FP4, and FP8
    // before sm_89): minifloat_code, the reference's codes bit for bit. With a non-zero inv and
    // pre = 1 every x * inv is finite or +-Inf, as above; Inf saturates.
    if (bp.inv != 0.0f && bp.pre == 1.0f) {
      using impl = typename C::impl;
      std::uint32_t c[chunk_elems];
      if (rnd == rounding::stochastic) {
        float u[chunk_elems];
        uniforms(u);
#pragma unroll
        for (int i = 0; i < chunk_elems; ++i)
          c[i] = minifloat_code<impl, true>(mul_rn(v[i], bp.inv), u[i]);
      } else {
#pragma unroll
        for (int i = 0; i < chunk_elems; ++i)
          c[i] = minifloat_code<impl, false>(mul_rn(v[i], bp.inv), 0.0f);
      }
      return pack_low<C::bits>(c);
    }
  }
  if constexpr (int_codec_v<C>) {
    // Stochastic rounding of an in-range block: C::encode_sr's floor(fma(x, inv, u)) clamped to
    // the codes, floored by adding round_magic rounding down instead of a float-to-int
    // conversion (1/4 rate on sm_90). |floor| <= qmax + 1, so the low 16 bits of the sum are
    // floor as an int16, and 8- and 4-bit codes are clamped two at a time (min/max.s16x2).
    if (rnd == rounding::stochastic && (C::symmetric || valid == chunk_elems) &&
        int_block_in_range(bp)) {
      float u[chunk_elems];
      uniforms(u);
      std::uint32_t b[chunk_elems];
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        b[i] = float_to_bits(__fadd_rd(
            __fmaf_rn(C::symmetric ? v[i] : sub_rn(v[i], bp.zero), bp.inv, u[i]), round_magic));
      constexpr std::uint32_t hi = std::uint32_t(C::qmax) * 0x10001u;
      constexpr std::uint32_t lo =
          C::symmetric ? (0x10000u - std::uint32_t(C::qmax)) * 0x10001u : 0u;
      if constexpr (C::bits == 8 || C::bits == 4) {
        std::uint32_t q[8]; // q[k]: codes 2k (low half) and 2k + 1, clamped
#pragma unroll
        for (int k = 0; k < 8; ++k)
          q[k] = __vmaxs2(__vmins2(__byte_perm(b[2 * k], b[2 * k + 1], 0x5410), hi), lo);
        return pack_pairs<C::bits>(q);
      } else {
        constexpr int qmax = int(C::qmax), qmin = C::symmetric ? -qmax : 0;
#pragma unroll
        for (int i = 0; i < chunk_elems; ++i)
          b[i] = std::uint32_t(max(qmin, min(int(b[i] - round_magic_bits), qmax)));
        return pack_low<C::bits>(b);
      }
    }
  }
  std::uint32_t c[chunk_elems];
  if (rnd == rounding::stochastic) {
    float u[chunk_elems];
    uniforms(u);
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      c[i] = i < valid ? C::encode_sr(v[i], bp, u[i]) : 0u;
  } else {
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      c[i] = i < valid ? C::encode(v[i], bp) : 0u;
  }
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i)
    c[i] &= mask; // signed int codes are N-bit two's complement
  return {pack_group<C::bits>(c), pack_group<C::bits>(c + 8)};
}

//! encode_chunk of a chunk whose elements have the Philox indices idx0 .. idx0 + 15.
template <class C>
AGOQ_DEVICE chunk_codes encode_chunk(const float (&v)[chunk_elems], int valid,
                                     const block_params& bp, rounding rnd, std::uint64_t seed,
                                     std::int64_t idx0) {
  return encode_chunk<C>(v, valid, bp, rnd, [&](chunk_draws& h) { philox_draws16(seed, idx0, h); });
}

template <class C>
AGOQ_DEVICE void decode_chunk(const chunk_codes& w, const block_params& bp,
                              float (&v)[chunk_elems]) {
  if constexpr (int_codec_v<C> && (C::bits == 8 || C::bits == 4)) {
    // C::decode with the code turned into a float by round_magic instead of a conversion: a
    // symmetric code XOR 2^(N-1) is q + 2^(N-1) as an unsigned field, placed in the mantissa of
    // round_magic; subtracting round_magic + 2^(N-1) gives q exactly.
    constexpr int n = C::bits;
    constexpr std::uint32_t flip = !C::symmetric ? 0u : n == 8 ? 0x80808080u : 0x88888888u;
    constexpr float bias = round_magic + (C::symmetric ? float(1 << (n - 1)) : 0.0f);
    std::uint32_t word[4];
    if constexpr (n == 8) {
      word[0] = std::uint32_t(w.g0), word[1] = std::uint32_t(w.g0 >> 32);
      word[2] = std::uint32_t(w.g1), word[3] = std::uint32_t(w.g1 >> 32);
    } else {
      word[0] = std::uint32_t(w.g0), word[1] = std::uint32_t(w.g1), word[2] = word[3] = 0;
    }
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i) {
      std::uint32_t bits;
      if constexpr (n == 8)
        bits = __byte_perm(word[i / 4] ^ flip, round_magic_bits, 0x7650 | (i & 3));
      else
        bits = (((word[i / 8] ^ flip) >> (4 * (i & 7))) & 0xfu) | round_magic_bits;
      const float q = sub_rn(bits_to_float(bits), bias);
      v[i] = C::symmetric ? mul_rn(q, bp.scale) : fma_f(q, bp.scale, bp.zero);
    }
    if (decode_may_overflow(bp)) { // uniform per block: no cost for ordinary scales
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        v[i] = saturate_finite(v[i]);
    }
    return;
  }
  if constexpr (C::format_v == format::fp4_e2m1) {
    // C::decode without its branches or conversions: the bf16 bits of the E2M1 magnitudes
    // {0, .5, 1, 1.5, 2, 3, 4, 6} (all exact in bf16) are looked up four codes at a time with
    // byte permutes (high bytes, low bytes), paired into fp32 bits, signed, then rounded once by
    // scale as C::decode does. No subnormal on the way, so -ftz builds decode the same.
    const std::uint32_t word[2] = {std::uint32_t(w.g0), std::uint32_t(w.g1)};
#pragma unroll
    for (int k = 0; k < 4; ++k) { // codes 4k .. 4k+3
      const std::uint32_t ws = word[k / 2] >> (16 * (k & 1));
      const std::uint32_t sel = ws & 0x7777u; // magnitudes (a set bit 3 would sign-replicate)
      const std::uint32_t hi = __byte_perm(0x3F3F3F00u, 0x40404040u, sel);
      const std::uint32_t lo = __byte_perm(0xC0800000u, 0xC0804000u, sel);
      const std::uint32_t pair[2] = {__byte_perm(lo, hi, 0x5140), __byte_perm(lo, hi, 0x7362)};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const std::uint32_t mag = (j & 1) ? pair[j / 2] & 0xFFFF0000u : pair[j / 2] << 16;
        const std::uint32_t sign = (ws << (28 - 4 * j)) & 0x80000000u;
        v[4 * k + j] = mul_rn(bits_to_float(mag | sign), bp.scale);
      }
    }
    if (decode_may_overflow(bp)) {
#pragma unroll
      for (int i = 0; i < chunk_elems; ++i)
        v[i] = saturate_finite(v[i]);
    }
    return;
  }
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    const std::uint64_t g = i < 8 ? w.g0 : w.g1;
    v[i] = C::decode(std::uint8_t((g >> ((i & 7) * C::bits)) & mask), bp);
  }
}

//! The block's parameters from its statistics (symmetric: amax in hi; asymmetric: lo, hi).
template <class C> AGOQ_DEVICE block_params params_from_stats(chunk_stats st, scale_kind kind) {
  if constexpr (C::symmetric)
    return C::params(st.hi, kind);
  else
    return C::params(st.lo, st.hi);
}

template <class C>
AGOQ_DEVICE block_params load_params(scale_kind kind, const void* scales, const float* zeros,
                                     std::int64_t blk) {
  return params_from_stored(load_scale(scales, blk, kind), C::symmetric ? 0.0f : zeros[blk]);
}

template <class C>
AGOQ_DEVICE void store_params(const block_params& bp, scale_kind kind, void* scales, float* zeros,
                              std::int64_t blk) {
  store_scale(scales, blk, bp.scale, kind);
  if constexpr (!C::symmetric) zeros[blk] = bp.zero;
}

//! Parameters of a quantize-type kernel (quantize and accumulate_requantize).
struct quant_args {
  block_grid g;
  std::int64_t ld;           //!< input leading dimension (elements)
  bool vec;                  //!< input rows are 16-byte aligned: vector (staged) loads allowed
  bool scales4;              //!< scales are 4-byte aligned (always for fp32/pow2; E8M0 may not be)
  std::int64_t dense_chunks; //!< chunks [0, dense_chunks) are full, 16-byte aligned and chunk c
                             //!< starts at element 16 c (0 when the tensor is not laid out so)
  std::uint8_t* codes;
  void* scales;
  float* zeros;
  scale_kind scale;
  rounding rnd;
  std::uint64_t seed;            //!< the seed, or with seed_ptr the offset added to *seed_ptr
  const std::uint64_t* seed_ptr; //!< device_seed: the seed is read here when the kernel runs
};

//! The stochastic-rounding seed of a quantize-type kernel, read once at its start (a device
//! seed is the value at seed_ptr when the kernel runs, so a CUDA graph replay can change it).
AGOQ_DEVICE std::uint64_t resolve_seed(const quant_args& a) {
  return a.seed_ptr != nullptr ? *a.seed_ptr + a.seed : a.seed;
}

//! Parameters of a dequantize-type kernel.
struct dequant_args {
  block_grid g;
  std::int64_t ld; //!< output leading dimension (elements)
  bool vec;
  bool scales4;
  std::int64_t dense_chunks; //!< as in quant_args, for the output (or accumulator)
  const std::uint8_t* codes;
  const void* scales;
  const float* zeros;
  scale_kind scale;
  float alpha; //!< dequantize_accumulate only
};

} // namespace detail
} // namespace agoq

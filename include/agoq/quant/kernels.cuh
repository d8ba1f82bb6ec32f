// SPDX-License-Identifier: Apache-2.0
//! @file quant/kernels.cuh
//! The block-wise quantizer kernels. One thread owns a "chunk" of 16 consecutive elements of a row
//! (two 16-byte loads of bf16/fp16); the block/16 threads of a block are neighbouring lanes of one
//! warp and agree on the block's amax (or min/max) with shuffles, so the input is read exactly
//! once and the per-block work (scale, reciprocal) is shared by as few lanes as possible.
//! The per-element math (scales, encode, decode, Philox) is the host reference's, from format/.
#pragma once

#include "agoq/config.hpp"
#include "agoq/format/codec.hpp"
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
    p.row = p.blk / g.blocks_per_row;
    p.col0 = (p.blk - p.row * g.blocks_per_row) * g.block + p.lane * chunk_elems;
  }
  const std::int64_t left = g.cols - p.col0;
  p.valid = (idle || left <= 0) ? 0 : (left >= chunk_elems ? chunk_elems : int(left));
  return p;
}

// ---- element loads and stores -------------------------------------------------------------------

//! 16 elements of T as raw bits (32 bytes for 2-byte types, 64 for fp32): held in registers
//! between the load phase and the work phase of a trip, half the registers of 16 floats.
template <class T> struct raw16 {
  std::uint32_t w[4 * sizeof(T)];
};

template <class T> AGOQ_DEVICE std::uint32_t element_bits(const T* p) {
  if constexpr (sizeof(T) == 2) return *reinterpret_cast<const std::uint16_t*>(p);
  else return *reinterpret_cast<const std::uint32_t*>(p);
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
  for (int j = 0; j < int(4 * sizeof(T)); ++j) r.w[j] = 0;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    if (i >= valid) continue;
    if constexpr (sizeof(T) == 2) r.w[i / 2] |= element_bits(p + i) << (16 * (i & 1));
    else r.w[i] = element_bits(p + i);
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
      if constexpr (std::is_same_v<T, __nv_bfloat16>) v[i] = __uint_as_float(std::uint32_t(b) << 16);
      else v[i] = __half2float(__ushort_as_half(b));
    }
  }
}

template <class T> AGOQ_DEVICE std::uint16_t to_bits16(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  else return __half_as_ushort(__float2half_rn(v));
}

//! Stores the first `valid` of 16 values, rounded to T (nearest-even).
template <class T>
AGOQ_DEVICE void store16(T* p, int valid, bool vec, const float (&v)[chunk_elems]) {
  if (vec && valid == chunk_elems) {
    if constexpr (sizeof(T) == 2) {
      std::uint32_t w[8];
#pragma unroll
      for (int j = 0; j < 8; ++j)
        w[j] = std::uint32_t(to_bits16<T>(v[2 * j])) | std::uint32_t(to_bits16<T>(v[2 * j + 1])) << 16;
      reinterpret_cast<uint4*>(p)[0] = make_uint4(w[0], w[1], w[2], w[3]);
      reinterpret_cast<uint4*>(p)[1] = make_uint4(w[4], w[5], w[6], w[7]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        reinterpret_cast<float4*>(p)[j] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    if (i >= valid) continue;
    if constexpr (std::is_same_v<T, float>) p[i] = v[i];
    else reinterpret_cast<std::uint16_t*>(p)[i] = to_bits16<T>(v[i]);
  }
}

// ---- codes of a chunk: two packed groups of eight ------------------------------------------------

//! The 2 * Bits bytes of a chunk's codes (aligned to 2 * Bits bytes for Bits = 2, 4, 8).
struct chunk_codes {
  std::uint64_t g0; //!< codes 0..7, packed (format.hpp: value i at bits [i*Bits, i*Bits + Bits))
  std::uint64_t g1; //!< codes 8..15
};

template <int Bits> AGOQ_DEVICE void store_codes(std::uint8_t* p, const chunk_codes& c) {
  if constexpr (Bits == 8) {
    *reinterpret_cast<uint4*>(p) = make_uint4(std::uint32_t(c.g0), std::uint32_t(c.g0 >> 32),
                                              std::uint32_t(c.g1), std::uint32_t(c.g1 >> 32));
  } else if constexpr (Bits == 4) {
    *reinterpret_cast<uint2*>(p) = make_uint2(std::uint32_t(c.g0), std::uint32_t(c.g1));
  } else if constexpr (Bits == 2) {
    *reinterpret_cast<std::uint32_t*>(p) = std::uint32_t(c.g0) | std::uint32_t(c.g1) << 16;
  } else {
#pragma unroll
    for (int i = 0; i < Bits; ++i) p[i] = std::uint8_t(c.g0 >> (8 * i));
#pragma unroll
    for (int i = 0; i < Bits; ++i) p[Bits + i] = std::uint8_t(c.g1 >> (8 * i));
  }
}

template <int Bits> AGOQ_DEVICE chunk_codes load_codes(const std::uint8_t* p) {
  if constexpr (Bits == 8) {
    const uint4 r = *reinterpret_cast<const uint4*>(p);
    return {std::uint64_t(r.x) | std::uint64_t(r.y) << 32, std::uint64_t(r.z) | std::uint64_t(r.w) << 32};
  } else if constexpr (Bits == 4) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    return {r.x, r.y};
  } else if constexpr (Bits == 2) {
    const std::uint32_t r = *reinterpret_cast<const std::uint32_t*>(p);
    return {r & 0xffffu, r >> 16};
  } else {
    chunk_codes c{0, 0};
#pragma unroll
    for (int i = 0; i < Bits; ++i) c.g0 |= std::uint64_t(p[i]) << (8 * i);
#pragma unroll
    for (int i = 0; i < Bits; ++i) c.g1 |= std::uint64_t(p[Bits + i]) << (8 * i);
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
    for (int i = 0; i < 8; ++i) w |= c[i] << (i * Bits);
    return w;
  } else {
    std::uint64_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) w |= std::uint64_t(c[i]) << (i * Bits);
    return w;
  }
}

// ---- block statistics across the lanes of a block -----------------------------------------------

//! The statistics of the block a chunk belongs to: amax in hi (symmetric) or min/max.
struct chunk_stats {
  float lo;
  float hi;
};

template <bool Symmetric>
AGOQ_DEVICE chunk_stats reduce_stats(const float (&v)[chunk_elems], int valid, int log2_lanes) {
  if constexpr (Symmetric) {
    // |x| as bits orders like the values, with Inf above every finite value and every NaN above
    // Inf: an integer max is the NaN-propagating absmax of the host reference (absmax_step), in
    // two instructions per element.
    std::uint32_t m = 0;
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      if (i < valid) m = max(m, float_to_bits(v[i]) & 0x7fffffffu);
    for (int off = (1 << log2_lanes) >> 1; off > 0; off >>= 1)
      m = max(m, __shfl_xor_sync(0xffffffffu, m, off));
    return {0.0f, m > 0x7f800000u ? quiet_nan() : bits_to_float(m)};
  } else {
    float lo = __int_as_float(0x7f800000), hi = -lo; // +inf, -inf: identities
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i)
      if (i < valid) {
        lo = nan_min(lo, v[i]);
        hi = nan_max(hi, v[i]);
      }
    for (int off = (1 << log2_lanes) >> 1; off > 0; off >>= 1) {
      lo = nan_min(lo, __shfl_xor_sync(0xffffffffu, lo, off));
      hi = nan_max(hi, __shfl_xor_sync(0xffffffffu, hi, off));
    }
    return {lo, hi};
  }
}

//! Uniforms of the 16 elements idx0..idx0+15, the same values as philox_uniform per element: one
//! Philox call serves four consecutive indices. Only constant indices into the words, so they stay
//! in registers.
AGOQ_DEVICE void philox_uniform16(std::uint64_t seed, std::int64_t idx0, float (&u)[chunk_elems]) {
  const std::uint64_t first = std::uint64_t(idx0) & ~std::uint64_t(3);
  const int off = int(idx0 & 3);
  std::uint32_t r[20];
#pragma unroll
  for (int b = 0; b < 4; ++b) {
    const philox_block w = philox_words(seed, first + 4 * b);
    r[4 * b] = w.w[0], r[4 * b + 1] = w.w[1], r[4 * b + 2] = w.w[2], r[4 * b + 3] = w.w[3];
  }
  const philox_block last = off ? philox_words(seed, first + 16) : philox_block{};
  r[16] = last.w[0], r[17] = last.w[1], r[18] = last.w[2], r[19] = last.w[3];
#define AGOQ_UNIFORM16_CASE(o)                                                                     \
  case o:                                                                                          \
    for (int i = 0; i < chunk_elems; ++i) u[i] = uniform_from_word(r[i + o]);                      \
    break;
  switch (off) {
#pragma unroll
    AGOQ_UNIFORM16_CASE(0)
#pragma unroll
    AGOQ_UNIFORM16_CASE(1)
#pragma unroll
    AGOQ_UNIFORM16_CASE(2)
#pragma unroll
    AGOQ_UNIFORM16_CASE(3)
  }
#undef AGOQ_UNIFORM16_CASE
}

//! Encodes the valid values of a chunk with the block's parameters; codes past `valid` are 0.
template <class C>
AGOQ_DEVICE chunk_codes encode_chunk(const float (&v)[chunk_elems], int valid,
                                     const block_params& bp, rounding rnd, std::uint64_t seed,
                                     std::int64_t idx0) {
  std::uint32_t c[chunk_elems];
  if (rnd == rounding::stochastic) {
    float u[chunk_elems];
    philox_uniform16(seed, idx0, u);
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i) c[i] = i < valid ? C::encode_sr(v[i], bp, u[i]) : 0u;
  } else {
#pragma unroll
    for (int i = 0; i < chunk_elems; ++i) c[i] = i < valid ? C::encode(v[i], bp) : 0u;
  }
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) c[i] &= mask; // signed int codes are N-bit two's complement
  return {pack_group<C::bits>(c), pack_group<C::bits>(c + 8)};
}

template <class C>
AGOQ_DEVICE void decode_chunk(const chunk_codes& w, const block_params& bp,
                              float (&v)[chunk_elems]) {
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
#pragma unroll
  for (int i = 0; i < chunk_elems; ++i) {
    const std::uint64_t g = i < 8 ? w.g0 : w.g1;
    v[i] = C::decode(std::uint8_t((g >> ((i & 7) * C::bits)) & mask), bp);
  }
}

//! The block's parameters from its statistics (symmetric: amax in hi; asymmetric: lo, hi).
template <class C> AGOQ_DEVICE block_params params_from_stats(chunk_stats st, scale_kind kind) {
  if constexpr (C::symmetric) return C::params(st.hi, kind);
  else return C::params(st.lo, st.hi);
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
  std::int64_t ld; //!< input leading dimension (elements)
  bool vec;        //!< input rows are 16-byte aligned: vector loads allowed
  std::uint8_t* codes;
  void* scales;
  float* zeros;
  scale_kind scale;
  rounding rnd;
  std::uint64_t seed;
};

//! Parameters of a dequantize-type kernel.
struct dequant_args {
  block_grid g;
  std::int64_t ld; //!< output leading dimension (elements)
  bool vec;
  const std::uint8_t* codes;
  const void* scales;
  const float* zeros;
  scale_kind scale;
  float alpha; //!< dequantize_accumulate only
};

//! The loop every kernel runs: a grid-stride loop over chunks, `Unroll` chunks per thread per
//! trip. All loads of a trip are issued before any is used (several 16-byte loads in flight per
//! thread hide HBM latency), and every lane of a warp stays until the warp's last chunk is done,
//! so the block shuffles always see a full warp. `load(k, c)` and `work(k, c)` get the slot k and
//! the chunk index c (which may be >= total: such a lane only takes part in the shuffles).
template <int Unroll, class Load, class Work>
AGOQ_DEVICE void for_each_chunk(std::int64_t total, Load&& load, Work&& work) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t lane = threadIdx.x & 31;
  for (std::int64_t base = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       base - lane < total; base += stride * Unroll) {
#pragma unroll
    for (int k = 0; k < Unroll; ++k) load(k, base + k * stride);
#pragma unroll
    for (int k = 0; k < Unroll; ++k) work(k, base + k * stride);
  }
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(256, 4) quantize_kernel(const T* __restrict__ x,
                                                                 quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 1; // 16 elements = 32-64 bytes in flight; two would spill at 64 registers
  const std::int64_t total = a.g.chunks();
  raw16<T> raw[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        raw[k] = load_raw16(x + p.row * a.ld + p.col0, p.valid, a.vec);
      },
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total); // recomputed: cheaper than registers
        float v[chunk_elems];
        to_floats(raw[k], v);
        const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
        if (c >= total) return;
        const block_params bp = params_from_stats<C>(st, a.scale);
        store_codes<C::bits>(a.codes + c * (2 * C::bits),
                             encode_chunk<C>(v, p.valid, bp, a.rnd, a.seed,
                                             p.row * a.g.cols + p.col0));
        if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(256, 4) dequantize_kernel(T* __restrict__ y,
                                                                   dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 2;
  const std::int64_t total = a.g.chunks();
  chunk_codes w[U];
  block_params bp[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        if (c >= total) return;
        w[k] = load_codes<C::bits>(a.codes + c * (2 * C::bits));
        bp[k] = load_params<C>(a.scale, a.scales, a.zeros, c >> a.g.log2_lanes);
      },
      [&](int k, std::int64_t c) {
        if (c >= total) return;
        const chunk_pos p = locate(a.g, c, total);
        if (p.valid == 0) return;
        float v[chunk_elems];
        decode_chunk<C>(w[k], bp[k], v);
        store16(y + p.row * a.ld + p.col0, p.valid, a.vec, v);
      });
}

template <format F, bool Symmetric>
__global__ static void __launch_bounds__(256, 4) dequantize_accumulate_kernel(float* __restrict__ acc,
                                                                              dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 1; // 16 elements = 32-64 bytes in flight; two would spill at 64 registers
  const std::int64_t total = a.g.chunks();
  chunk_codes w[U];
  block_params bp[U];
  raw16<float> s[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        if (c >= total) return;
        const chunk_pos p = locate(a.g, c, total);
        w[k] = load_codes<C::bits>(a.codes + c * (2 * C::bits));
        bp[k] = load_params<C>(a.scale, a.scales, a.zeros, p.blk);
        s[k] = load_raw16(acc + p.row * a.ld + p.col0, p.valid, a.vec);
      },
      [&](int k, std::int64_t c) {
        if (c >= total) return;
        const chunk_pos p = locate(a.g, c, total);
        if (p.valid == 0) return;
        float d[chunk_elems], v[chunk_elems];
        decode_chunk<C>(w[k], bp[k], d);
        to_floats(s[k], v);
#pragma unroll
        for (int i = 0; i < chunk_elems; ++i) v[i] = fma_f(d[i], a.alpha, v[i]);
        store16(acc + p.row * a.ld + p.col0, p.valid, a.vec, v);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(256, 4)
    accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 1; // 16 elements = 32-64 bytes in flight; two would spill at 64 registers
  const std::int64_t total = a.g.chunks();
  raw16<T> raw[U];
  chunk_codes w[U];
  block_params old[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        raw[k] = load_raw16(x + p.row * a.ld + p.col0, p.valid, a.vec);
        if (c >= total) return;
        w[k] = load_codes<C::bits>(a.codes + c * (2 * C::bits));
        old[k] = load_params<C>(a.scale, a.scales, a.zeros, p.blk);
      },
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate(a.g, c, total);
        float v[chunk_elems];
        to_floats(raw[k], v);
        if (p.valid > 0) {
          float d[chunk_elems];
          decode_chunk<C>(w[k], old[k], d);
#pragma unroll
          for (int i = 0; i < chunk_elems; ++i) v[i] = i < p.valid ? add_rn(d[i], v[i]) : 0.0f;
        }
        // Every lane of the block read the old scale in the load phase, before lane 0 below
        // overwrites it; the shuffles in reduce_stats keep the block's lanes together.
        const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
        if (c >= total) return;
        const block_params bp = params_from_stats<C>(st, a.scale);
        store_codes<C::bits>(a.codes + c * (2 * C::bits),
                             encode_chunk<C>(v, p.valid, bp, a.rnd, a.seed,
                                             p.row * a.g.cols + p.col0));
        if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
      });
}

} // namespace detail
} // namespace agoq

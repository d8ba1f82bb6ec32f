// SPDX-License-Identifier: Apache-2.0
//! @file quant/kernels.cuh
//! The block-wise quantizer kernels. One thread owns 8 consecutive elements of a row (a "chunk",
//! one 16-byte load of bf16/fp16); the block/8 threads of a block are neighbouring lanes of one
//! warp and agree on the block's amax with shuffles, so the input is read exactly once.
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

//! Shape of a rows x cols tensor cut into blocks, as the kernels index it.
struct block_grid {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t blocks_per_row;
  int block;        //!< elements per block
  int log2_lanes;   //!< log2(block / 8): lanes (chunks) per block
  AGOQ_HOST_DEVICE std::int64_t chunks() const { return (rows * blocks_per_row) << log2_lanes; }
};

//! Where chunk `c` lives: block index, lane within the block, row, first column, valid elements.
struct chunk_pos {
  std::int64_t blk;
  std::int64_t row;
  std::int64_t col0;
  int lane;
  int valid;
};

AGOQ_DEVICE chunk_pos locate(const block_grid& g, std::int64_t c) {
  chunk_pos p;
  p.blk = c >> g.log2_lanes;
  p.lane = int(c & ((std::int64_t(1) << g.log2_lanes) - 1));
  p.row = g.rows == 1 ? 0 : p.blk / g.blocks_per_row;
  const std::int64_t cb = p.blk - p.row * g.blocks_per_row;
  p.col0 = cb * g.block + p.lane * 8;
  const std::int64_t left = g.cols - p.col0;
  p.valid = left <= 0 ? 0 : (left >= 8 ? 8 : int(left));
  return p;
}

// ---- element loads and stores -------------------------------------------------------------------

template <class T> AGOQ_DEVICE float to_float(T v) { return static_cast<float>(v); }
template <> AGOQ_DEVICE float to_float<__half>(__half v) { return __half2float(v); }
template <> AGOQ_DEVICE float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <class T> AGOQ_DEVICE T from_float(float v) { return static_cast<T>(v); }
template <> AGOQ_DEVICE __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> AGOQ_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

//! Loads 8 elements (zeros past `valid`); one or two 16-byte loads when `vec` and all 8 are valid.
template <class T> AGOQ_DEVICE void load8(const T* p, int valid, bool vec, float (&v)[8]) {
  if (vec && valid == 8) {
    if constexpr (sizeof(T) == 2) {
      const uint4 raw = __ldcs(reinterpret_cast<const uint4*>(p));
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = to_float(e[i]);
    } else {
      const float4 a = __ldcs(reinterpret_cast<const float4*>(p));
      const float4 b = __ldcs(reinterpret_cast<const float4*>(p) + 1);
      v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
      v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = i < valid ? to_float(p[i]) : 0.0f;
}

//! Eight elements of T as raw bits (16 bytes for 2-byte types, 32 for fp32): held in registers
//! between the load phase and the work phase of a trip, half the registers of 8 floats.
template <class T> struct raw8 {
  std::uint32_t w[2 * sizeof(T)];
};

template <class T> AGOQ_DEVICE std::uint32_t element_bits(const T* p) {
  if constexpr (sizeof(T) == 2) return *reinterpret_cast<const std::uint16_t*>(p);
  else return *reinterpret_cast<const std::uint32_t*>(p);
}

//! Loads 8 elements as raw bits (zeros past `valid`), with 16-byte loads when possible.
template <class T> AGOQ_DEVICE raw8<T> load_raw8(const T* p, int valid, bool vec) {
  raw8<T> r;
  if (vec && valid == 8) {
#pragma unroll
    for (int j = 0; j < int(sizeof(T)) / 2; ++j) {
      const uint4 q = __ldcs(reinterpret_cast<const uint4*>(p) + j);
      r.w[4 * j] = q.x, r.w[4 * j + 1] = q.y, r.w[4 * j + 2] = q.z, r.w[4 * j + 3] = q.w;
    }
    return r;
  }
#pragma unroll
  for (int j = 0; j < int(2 * sizeof(T)); ++j) r.w[j] = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    if (i >= valid) continue;
    if constexpr (sizeof(T) == 2) r.w[i / 2] |= element_bits(p + i) << (16 * (i & 1));
    else r.w[i] = element_bits(p + i);
  }
  return r;
}

//! The 8 elements of `r` as floats (exact for every input type).
template <class T> AGOQ_DEVICE void to_floats(const raw8<T>& r, float (&v)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      v[i] = __uint_as_float(r.w[i]);
    } else {
      const std::uint16_t b = std::uint16_t(r.w[i / 2] >> (16 * (i & 1)));
      if constexpr (std::is_same_v<T, __nv_bfloat16>) v[i] = __uint_as_float(std::uint32_t(b) << 16);
      else v[i] = __half2float(__ushort_as_half(b));
    }
  }
}

//! Stores the first `valid` of 8 values, rounded to T (nearest-even).
template <class T> AGOQ_DEVICE void store8(T* p, int valid, bool vec, const float (&v)[8]) {
  if (vec && valid == 8) {
    if constexpr (sizeof(T) == 2) {
      uint4 raw;
      T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int i = 0; i < 8; ++i) e[i] = from_float<T>(v[i]);
      *reinterpret_cast<uint4*>(p) = raw;
    } else {
      reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i)
    if (i < valid) p[i] = from_float<T>(v[i]);
}

//! Stores the `Bits` bytes of a packed group of eight codes (aligned to Bits bytes).
template <int Bits> AGOQ_DEVICE void store_group(std::uint8_t* p, std::uint64_t w) {
  if constexpr (Bits == 8) {
    *reinterpret_cast<uint2*>(p) = make_uint2(std::uint32_t(w), std::uint32_t(w >> 32));
  } else if constexpr (Bits == 4) {
    *reinterpret_cast<std::uint32_t*>(p) = std::uint32_t(w);
  } else if constexpr (Bits == 2) {
    *reinterpret_cast<std::uint16_t*>(p) = std::uint16_t(w);
  } else {
#pragma unroll
    for (int i = 0; i < Bits; ++i) p[i] = std::uint8_t(w >> (8 * i));
  }
}

template <int Bits> AGOQ_DEVICE std::uint64_t load_group(const std::uint8_t* p) {
  if constexpr (Bits == 8) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    return std::uint64_t(r.x) | (std::uint64_t(r.y) << 32);
  } else if constexpr (Bits == 4) {
    return *reinterpret_cast<const std::uint32_t*>(p);
  } else if constexpr (Bits == 2) {
    return *reinterpret_cast<const std::uint16_t*>(p);
  } else {
    std::uint64_t w = 0;
#pragma unroll
    for (int i = 0; i < Bits; ++i) w |= std::uint64_t(p[i]) << (8 * i);
    return w;
  }
}

// ---- block reductions across the lanes of a block -----------------------------------------------

AGOQ_DEVICE float group_max(float v, int log2_lanes) {
  for (int off = (1 << log2_lanes) >> 1; off > 0; off >>= 1)
    v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
AGOQ_DEVICE float group_min(float v, int log2_lanes) {
  for (int off = (1 << log2_lanes) >> 1; off > 0; off >>= 1)
    v = nan_min(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

//! The statistics of a block this chunk contributes to: amax (symmetric) or min/max (asymmetric).
struct chunk_stats {
  float lo;
  float hi;
};

template <bool Symmetric>
AGOQ_DEVICE chunk_stats reduce_stats(const float (&v)[8], int valid, int log2_lanes) {
  if constexpr (Symmetric) {
    // |x| as bits orders like the values, with Inf above every finite value and every NaN above
    // Inf: an integer max is the NaN-propagating absmax of the host reference (absmax_step), in
    // two instructions per element.
    std::uint32_t m = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < valid) m = max(m, float_to_bits(v[i]) & 0x7fffffffu);
    for (int off = (1 << log2_lanes) >> 1; off > 0; off >>= 1)
      m = max(m, __shfl_xor_sync(0xffffffffu, m, off));
    return {0.0f, m > 0x7f800000u ? quiet_nan() : bits_to_float(m)};
  } else {
    float lo = __int_as_float(0x7f800000), hi = -lo; // +inf, -inf: identities
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < valid) {
        lo = nan_min(lo, v[i]);
        hi = nan_max(hi, v[i]);
      }
    return {group_min(lo, log2_lanes), group_max(hi, log2_lanes)};
  }
}

//! Uniforms of the 8 elements idx0..idx0+7 (the same values as philox_uniform per element): one
//! Philox call serves four consecutive indices. Only constant indices into the words, so they
//! stay in registers.
AGOQ_DEVICE void philox_uniform8(std::uint64_t seed, std::int64_t idx0, float (&u)[8]) {
  const std::uint64_t first = std::uint64_t(idx0) & ~std::uint64_t(3);
  const int off = int(idx0 & 3);
  const philox_block b0 = philox_words(seed, first), b1 = philox_words(seed, first + 4);
  const philox_block b2 = off ? philox_words(seed, first + 8) : b1;
  const std::uint32_t r[12] = {b0.w[0], b0.w[1], b0.w[2], b0.w[3], b1.w[0], b1.w[1],
                               b1.w[2], b1.w[3], b2.w[0], b2.w[1], b2.w[2], b2.w[3]};
#define AGOQ_UNIFORM8_CASE(o)                                                                      \
  case o:                                                                                          \
    for (int i = 0; i < 8; ++i) u[i] = uniform_from_word(r[i + o]);                                \
    break;
  switch (off) {
#pragma unroll
    AGOQ_UNIFORM8_CASE(0)
#pragma unroll
    AGOQ_UNIFORM8_CASE(1)
#pragma unroll
    AGOQ_UNIFORM8_CASE(2)
#pragma unroll
    AGOQ_UNIFORM8_CASE(3)
  }
#undef AGOQ_UNIFORM8_CASE
}

//! Encodes the valid values of a chunk with the block's parameters; codes past `valid` are 0.
template <class C>
AGOQ_DEVICE std::uint64_t encode_chunk(const float (&v)[8], int valid, const block_params& bp,
                                       rounding rnd, std::uint64_t seed, std::int64_t idx0) {
  std::uint32_t c[8];
  if (rnd == rounding::stochastic) {
    float u[8];
    philox_uniform8(seed, idx0, u);
#pragma unroll
    for (int i = 0; i < 8; ++i) c[i] = i < valid ? C::encode_sr(v[i], bp, u[i]) : 0u;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) c[i] = i < valid ? C::encode(v[i], bp) : 0u;
  }
  // Pack in 32-bit halves where no code straddles them (64-bit shifts cost two instructions).
  constexpr std::uint32_t mask = (1u << C::bits) - 1u;
  if constexpr (C::bits == 8) {
    return std::uint64_t(c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24) |
           std::uint64_t(c[4] | c[5] << 8 | c[6] << 16 | c[7] << 24) << 32;
  } else if constexpr (C::bits <= 4) {
    std::uint32_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) w |= (c[i] & mask) << (i * C::bits);
    return w;
  } else {
    std::uint64_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) w |= std::uint64_t(c[i] & mask) << (i * C::bits);
    return w;
  }
}

template <class C>
AGOQ_DEVICE void decode_chunk(std::uint64_t w, const block_params& bp, float (&v)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
    v[i] = C::decode(std::uint8_t((w >> (i * C::bits)) & ((1u << C::bits) - 1u)), bp);
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
  std::int64_t ld;      //!< input leading dimension (elements)
  bool vec;             //!< input rows are 16-byte aligned: vector loads allowed
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
  std::int64_t ld;      //!< output leading dimension (elements)
  bool vec;
  const std::uint8_t* codes;
  const void* scales;
  const float* zeros;
  scale_kind scale;
  float alpha;          //!< dequantize_accumulate only
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

//! Chunks in flight per thread (16-byte loads for 2-byte types, 32-byte for fp32).
template <class T> inline constexpr int unroll_v = 2;

template <class C>
AGOQ_DEVICE std::uint8_t* chunk_codes(std::uint8_t* codes, const block_grid& g, const chunk_pos& p) {
  return codes + p.blk * (std::int64_t(g.block) * C::bits / 8) + p.lane * C::bits;
}
template <class C>
AGOQ_DEVICE const std::uint8_t* chunk_codes(const std::uint8_t* codes, const block_grid& g,
                                            const chunk_pos& p) {
  return codes + p.blk * (std::int64_t(g.block) * C::bits / 8) + p.lane * C::bits;
}

//! Position of chunk c, with valid = 0 for a chunk past the end (a lane kept for the shuffles).
AGOQ_DEVICE chunk_pos locate_or_idle(const block_grid& g, std::int64_t c, std::int64_t total) {
  chunk_pos p = locate(g, c < total ? c : 0);
  if (c >= total) p.valid = 0;
  return p;
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(256, 4) quantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = unroll_v<T>;
  const std::int64_t total = a.g.chunks();
  raw8<T> raw[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate_or_idle(a.g, c, total);
        raw[k] = load_raw8(x + p.row * a.ld + p.col0, p.valid, a.vec);
      },
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate_or_idle(a.g, c, total); // recomputed: cheaper than registers
        float v[8];
        to_floats(raw[k], v);
        const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
        if (c >= total) return;
        const block_params bp = params_from_stats<C>(st, a.scale);
        store_group<C::bits>(chunk_codes<C>(a.codes, a.g, p),
                             encode_chunk<C>(v, p.valid, bp, a.rnd, a.seed,
                                             p.row * a.g.cols + p.col0));
        if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void dequantize_kernel(T* __restrict__ y, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 4;
  const std::int64_t total = a.g.chunks();
  std::uint64_t w[U];
  block_params bp[U];
  chunk_pos p[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        p[k] = locate_or_idle(a.g, c, total);
        if (p[k].valid == 0) return;
        w[k] = load_group<C::bits>(chunk_codes<C>(a.codes, a.g, p[k]));
        bp[k] = load_params<C>(a.scale, a.scales, a.zeros, p[k].blk);
      },
      [&](int k, std::int64_t) {
        if (p[k].valid == 0) return;
        float v[8];
        decode_chunk<C>(w[k], bp[k], v);
        store8(y + p[k].row * a.ld + p[k].col0, p[k].valid, a.vec, v);
      });
}

template <format F, bool Symmetric>
__global__ static void dequantize_accumulate_kernel(float* __restrict__ acc, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = 2;
  const std::int64_t total = a.g.chunks();
  std::uint64_t w[U];
  block_params bp[U];
  chunk_pos p[U];
  float s[U][8];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        p[k] = locate_or_idle(a.g, c, total);
        if (p[k].valid == 0) return;
        w[k] = load_group<C::bits>(chunk_codes<C>(a.codes, a.g, p[k]));
        bp[k] = load_params<C>(a.scale, a.scales, a.zeros, p[k].blk);
        load8(acc + p[k].row * a.ld + p[k].col0, p[k].valid, a.vec, s[k]);
      },
      [&](int k, std::int64_t) {
        if (p[k].valid == 0) return;
        float d[8];
        decode_chunk<C>(w[k], bp[k], d);
#pragma unroll
        for (int i = 0; i < 8; ++i) s[k][i] = fma_f(d[i], a.alpha, s[k][i]);
        store8(acc + p[k].row * a.ld + p[k].col0, p[k].valid, a.vec, s[k]);
      });
}

template <format F, bool Symmetric, class T>
__global__ static void __launch_bounds__(256, 4) accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int U = unroll_v<T>;
  const std::int64_t total = a.g.chunks();
  raw8<T> raw[U];
  std::uint64_t w[U];
  block_params old[U];
  for_each_chunk<U>(
      total,
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate_or_idle(a.g, c, total);
        raw[k] = load_raw8(x + p.row * a.ld + p.col0, p.valid, a.vec);
        if (p.valid == 0) return;
        w[k] = load_group<C::bits>(chunk_codes<C>(a.codes, a.g, p));
        old[k] = load_params<C>(a.scale, a.scales, a.zeros, p.blk);
      },
      [&](int k, std::int64_t c) {
        const chunk_pos p = locate_or_idle(a.g, c, total);
        float v[8];
        to_floats(raw[k], v);
        if (p.valid > 0) {
          float d[8];
          decode_chunk<C>(w[k], old[k], d);
#pragma unroll
          for (int i = 0; i < 8; ++i) v[i] = i < p.valid ? add_rn(d[i], v[i]) : 0.0f;
        }
        // Every lane of the block read the old scale in the load phase, before lane 0 below
        // overwrites it; the shuffles in reduce_stats keep the block's lanes together.
        const chunk_stats st = reduce_stats<Symmetric>(v, p.valid, a.g.log2_lanes);
        if (c >= total) return;
        const block_params bp = params_from_stats<C>(st, a.scale);
        store_group<C::bits>(chunk_codes<C>(a.codes, a.g, p),
                             encode_chunk<C>(v, p.valid, bp, a.rnd, a.seed,
                                             p.row * a.g.cols + p.col0));
        if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
      });
}


} // namespace detail
} // namespace agoq

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
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < valid) m = absmax_step(m, v[i]);
    m = group_max(m, log2_lanes);
    return {0.0f, m};
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

//! Uniforms of the 8 elements idx0..idx0+7: one Philox call serves four consecutive indices.
AGOQ_DEVICE void philox_uniform8(std::uint64_t seed, std::int64_t idx0, float (&u)[8]) {
  philox_block w = philox_words(seed, std::uint64_t(idx0));
  std::uint64_t group = std::uint64_t(idx0) >> 2;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const std::uint64_t idx = std::uint64_t(idx0) + i;
    if ((idx >> 2) != group) {
      group = idx >> 2;
      w = philox_words(seed, idx);
    }
    u[i] = uniform_from_word(w.w[idx & 3]);
  }
}

//! Encodes the valid values of a chunk with the block's parameters; codes past `valid` are 0.
template <class C>
AGOQ_DEVICE std::uint64_t encode_chunk(const float (&v)[8], int valid, const block_params& bp,
                                       rounding rnd, std::uint64_t seed, std::int64_t idx0) {
  std::uint64_t w = 0;
  if (rnd == rounding::stochastic) {
    float u[8];
    philox_uniform8(seed, idx0, u);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < valid) w |= std::uint64_t(C::encode_sr(v[i], bp, u[i])) << (i * C::bits);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (i < valid) w |= std::uint64_t(C::encode(v[i], bp)) << (i * C::bits);
  }
  return w;
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

// Loop shape shared by all kernels: a grid-stride loop over chunks in which every lane of a warp
// stays until the warp's last chunk is done, so the block shuffles always see a full warp.
#define AGOQ_CHUNK_LOOP(g, c)                                                                      \
  const std::int64_t agoq_total_ = (g).chunks();                                                   \
  const std::int64_t agoq_stride_ = std::int64_t(gridDim.x) * blockDim.x;                          \
  for (std::int64_t c = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;                       \
       c - (threadIdx.x & 31) < agoq_total_; c += agoq_stride_)

template <format F, bool Symmetric, class T>
__global__ static void quantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int bits = C::bits;
  AGOQ_CHUNK_LOOP(a.g, c) {
    const bool live = c < agoq_total_;
    const chunk_pos p = locate(a.g, live ? c : 0);
    const int valid = live ? p.valid : 0;
    float v[8];
    load8(x + p.row * a.ld + p.col0, valid, a.vec, v);
    const chunk_stats st = reduce_stats<Symmetric>(v, valid, a.g.log2_lanes);
    if (!live) continue;
    const block_params bp = params_from_stats<C>(st, a.scale);
    const std::uint64_t w =
        encode_chunk<C>(v, valid, bp, a.rnd, a.seed, p.row * a.g.cols + p.col0);
    store_group<bits>(a.codes + p.blk * (std::int64_t(a.g.block) * bits / 8) + p.lane * bits, w);
    if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
  }
}

template <format F, bool Symmetric, class T>
__global__ static void dequantize_kernel(T* __restrict__ y, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int bits = C::bits;
  AGOQ_CHUNK_LOOP(a.g, c) {
    if (c >= agoq_total_) continue;
    const chunk_pos p = locate(a.g, c);
    if (p.valid == 0) continue;
    const block_params bp = load_params<C>(a.scale, a.scales, a.zeros, p.blk);
    float v[8];
    decode_chunk<C>(
        load_group<bits>(a.codes + p.blk * (std::int64_t(a.g.block) * bits / 8) + p.lane * bits),
        bp, v);
    store8(y + p.row * a.ld + p.col0, p.valid, a.vec, v);
  }
}

template <format F, bool Symmetric>
__global__ static void dequantize_accumulate_kernel(float* __restrict__ acc, dequant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int bits = C::bits;
  AGOQ_CHUNK_LOOP(a.g, c) {
    if (c >= agoq_total_) continue;
    const chunk_pos p = locate(a.g, c);
    if (p.valid == 0) continue;
    const block_params bp = load_params<C>(a.scale, a.scales, a.zeros, p.blk);
    float d[8], s[8];
    decode_chunk<C>(
        load_group<bits>(a.codes + p.blk * (std::int64_t(a.g.block) * bits / 8) + p.lane * bits),
        bp, d);
    float* dst = acc + p.row * a.ld + p.col0;
    load8(dst, p.valid, a.vec, s);
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i] = fma_f(d[i], a.alpha, s[i]);
    store8(dst, p.valid, a.vec, s);
  }
}

template <format F, bool Symmetric, class T>
__global__ static void accumulate_requantize_kernel(const T* __restrict__ x, quant_args a) {
  using C = codec<F, Symmetric>;
  constexpr int bits = C::bits;
  AGOQ_CHUNK_LOOP(a.g, c) {
    const bool live = c < agoq_total_;
    const chunk_pos p = locate(a.g, live ? c : 0);
    const int valid = live ? p.valid : 0;
    float v[8];
    load8(x + p.row * a.ld + p.col0, valid, a.vec, v);
    std::uint8_t* codes = a.codes + p.blk * (std::int64_t(a.g.block) * bits / 8) + p.lane * bits;
    if (valid > 0) {
      const block_params old =
          load_params<C>(a.scale, a.scales, a.zeros, p.blk);
      float d[8];
      decode_chunk<C>(load_group<bits>(codes), old, d);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = i < valid ? add_rn(d[i], v[i]) : 0.0f;
    }
    const chunk_stats st = reduce_stats<Symmetric>(v, valid, a.g.log2_lanes);
    if (!live) continue;
    const block_params bp = params_from_stats<C>(st, a.scale);
    store_group<bits>(codes, encode_chunk<C>(v, valid, bp, a.rnd, a.seed,
                                                        p.row * a.g.cols + p.col0));
    // All lanes of the block read the old scale before lane 0 overwrites it: the shuffles in
    // reduce_stats order the reads before this store within the warp.
    if (p.lane == 0) store_params<C>(bp, a.scale, a.scales, a.zeros, p.blk);
  }
}

#undef AGOQ_CHUNK_LOOP

} // namespace detail
} // namespace agoq

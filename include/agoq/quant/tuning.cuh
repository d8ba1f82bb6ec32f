// SPDX-License-Identifier: Apache-2.0
//! @file quant/tuning.cuh
//! Every kernel family's knobs in one place, each with the measurement behind it: the staged
//! kernels (staged.cuh: threads, CTAs per SM, which their __launch_bounds__ use; stages in
//! pipeline.cuh follow from the threads), the flat kernels (flat.cuh: threads, groups and pairs
//! per thread) and the collectives' codec kernels (comm/reduce_kernels.cuh: threads, trips).
//! The history of the measurements is in bench/HISTORY.md.
#pragma once

#include "agoq/format/format.hpp"

#include <cstdint>
#include <ostream>

namespace agoq {
namespace detail {

// ---- the staged kernels (staged.cuh)
// -------------------------------------------------------------

//! Threads per CTA of the staged kernels (their __launch_bounds__, pipeline.cuh's stage layout
//! and quant_tuning agree).
inline constexpr int quant_threads = 256;

//! Launch shape of the element-wise block kernels. Every kernel's grid is one resident wave
//! (SMs x CTAs per SM, grid-stride beyond that), so the CTAs per SM are also the kernels'
//! __launch_bounds__ minimum.
struct quant_tuning {
  int threads = 256;              //!< threads per CTA (a multiple of 32)
  int quantize_ctas_per_sm = 3;   //!< quantize, accumulate_requantize: 80 registers per thread
  int dequantize_ctas_per_sm = 4; //!< dequantize, dequantize_accumulate: 64 registers

  friend constexpr bool operator==(const quant_tuning& a, const quant_tuning& b) {
    return a.threads == b.threads && a.quantize_ctas_per_sm == b.quantize_ctas_per_sm &&
           a.dequantize_ctas_per_sm == b.dequantize_ctas_per_sm;
  }
  friend std::ostream& operator<<(std::ostream& os, const quant_tuning& t) {
    return os << "{threads=" << t.threads << ", quantize_ctas_per_sm=" << t.quantize_ctas_per_sm
              << ", dequantize_ctas_per_sm=" << t.dequantize_ctas_per_sm << '}';
  }
};

//! Settings for a device of compute capability `cc` (e.g. 90). Quantize-type kernels hold a
//! trip's 16 values (and accumulate_requantize the next trip's codes) and the block work: 80
//! registers without spills, so three 256-thread CTAs per SM; dequantize-type kernels fit in 64
//! registers, four CTAs. Staged reads take at most 48 KiB per CTA (quant/pipeline.cuh).
//! Measured on H200.
constexpr quant_tuning quant_tuning_for(int cc) {
  (void)cc; // one setting so far; Ampere and Blackwell have not been measured
  return quant_tuning{256, 3, 4};
}

//! The settings the kernels are compiled with (their __launch_bounds__).
inline constexpr quant_tuning compiled_tuning = quant_tuning_for(90);

static_assert(compiled_tuning.threads == quant_threads,
              "the kernels' __launch_bounds__ and stage layout assume quant_threads per CTA");

// ---- the flat kernels (flat.cuh)
// -----------------------------------------------------------------

//! Elements per lane of 2-byte elements (one 16-byte access).
inline constexpr int group_elems = 8;
inline constexpr int flat_threads = 128;         //!< threads per CTA (measured: 128 > 256)
inline constexpr int flat_groups_per_thread = 2; //!< measured: 2 > 1, 3, 4 and 8
//! Lane groups per CTA (flat_groups; flat_pairs: per pair per thread).
inline constexpr std::int64_t flat_tile = std::int64_t(flat_threads) * flat_groups_per_thread;

//! Pairs per thread of the quantize-type kernels (Update: accumulate_requantize). Two keep a
//! second pair's loads in flight while the first is worked on; measured on H200 (1 GiB of
//! bf16, side by side): asymmetric int4 quantize 0.89 -> 0.97 of copy, int4 0.97 -> 1.02,
//! stochastic int8 0.71 -> 0.77, fp8 0.50 -> 0.55, fp4 (MX) 0.61 -> 0.66, accumulate_requantize
//! 1.01 -> 1.03; only the nearest-even 8-bit quantize is faster with one (1.015 against 1.006).
//! Stochastic quantize takes four, two of them in flight (flat_pairs_depth): 256 MiB / 1 GiB,
//! int4 0.64 / 0.66 -> 0.67 / 0.68, int8 0.77 / 0.78 -> 0.80 / 0.80; the same for
//! accumulate_requantize was slower (0.86 -> 0.82 at 256 MiB), deeper pipelines too.
template <bool Update, format F, bool Symmetric, rounding R>
inline constexpr int flat_pairs_per_thread =
    !Update && R == rounding::stochastic                                     ? 4
    : !Update && Symmetric && bits_of(F) == 8 && R == rounding::nearest_even ? 1
                                                                             : 2;
//! Pairs whose loads are in flight (flat_tile_loop's D).
template <bool Update, format F, bool Symmetric, rounding R>
inline constexpr int flat_pairs_depth =
    !Update && R == rounding::stochastic ? 2 : flat_pairs_per_thread<Update, F, Symmetric, R>;
//! Groups per CTA of the quantize-type kernels.
template <bool Update, format F, bool Symmetric, rounding R>
inline constexpr std::int64_t
    flat_pair_tile = std::int64_t(flat_pairs_per_thread<Update, F, Symmetric, R>) * flat_tile;

// ---- the collectives' codec kernels (comm/reduce_kernels.cuh) ---------------------------------

//! Launch shape of the collectives' codec kernels.
struct comm_codec_tuning {
  int threads = 256; //!< threads per CTA (a multiple of 32, at most the kernels' 256)
  int trips = 4;     //!< 16-element chunks per thread: a CTA handles threads * trips * 16 elements
};

//! Settings for compute capability `cc`. Four trips make a CTA ~16 Ki elements (~50 KB of HBM
//! traffic for bf16 in, INT8 out: ~1.5 us on an H200 SM), short enough to let NCCL in and long
//! enough that CTA launch costs little. On an H200, 2, 8 and 16 trips measured equal or slower
//! (bench/RESULTS.md).
constexpr comm_codec_tuning comm_codec_tuning_for(int cc) {
  (void)cc;
  return comm_codec_tuning{256, 4};
}

//! Jobs of one quantize_many / dequantize_many launch (more are split into several launches).
inline constexpr int comm_max_jobs = 16;

//! The codec kernels' __launch_bounds__: at most comm_codec_max_threads per CTA (the tuning's
//! threads must not exceed it) and comm_codec_min_ctas_per_sm CTAs resident per SM, i.e. a
//! budget of 64 registers per thread.
inline constexpr int comm_codec_max_threads = 256;
inline constexpr int comm_codec_min_ctas_per_sm = 4;
static_assert(comm_codec_tuning_for(90).threads <= comm_codec_max_threads,
              "the codec kernels are compiled for at most comm_codec_max_threads per CTA");

//! Threads per CTA of the executor's element-wise kernels (load, add, divide, store of the fp32
//! accumulator; comm/cuda_executor.cuh).
inline constexpr int comm_elementwise_threads = 256;

} // namespace detail
} // namespace agoq

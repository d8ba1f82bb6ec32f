// SPDX-License-Identifier: Apache-2.0
//! @file quant/tuning.cuh
//! Launch settings of the quantizer kernels as a constexpr function of the compute capability.
#pragma once

#include "agoq/quant/pipeline.cuh"

#include <ostream>

namespace agoq {
namespace detail {

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

} // namespace detail
} // namespace agoq

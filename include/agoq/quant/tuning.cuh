// SPDX-License-Identifier: Apache-2.0
//! @file quant/tuning.cuh
//! Launch settings of the quantizer kernels as a constexpr function of the compute capability.
#pragma once

#include "agoq/quant/pipeline.cuh"

#include <ostream>

namespace agoq {
namespace detail {

//! Launch shape of the element-wise block kernels.
struct quant_tuning {
  int threads = 256;       //!< threads per CTA (a multiple of 32)
  int ctas_per_sm = 4;     //!< grid = SMs x ctas_per_sm (grid-stride beyond that)

  friend constexpr bool operator==(const quant_tuning& a, const quant_tuning& b) {
    return a.threads == b.threads && a.ctas_per_sm == b.ctas_per_sm;
  }
  friend std::ostream& operator<<(std::ostream& os, const quant_tuning& t) {
    return os << "{threads=" << t.threads << ", ctas_per_sm=" << t.ctas_per_sm << '}';
  }
};

//! Settings for a device of compute capability `cc` (e.g. 90). The kernels are capped at 64
//! registers (__launch_bounds__(256, 4)) and at most 48 KiB of staged reads per CTA
//! (quant/pipeline.cuh), so four 256-thread CTAs fit on an SM: the grid is one resident wave,
//! each thread keeping 1-3 trips of reads in flight. Measured on H200.
constexpr quant_tuning quant_tuning_for(int cc) {
  (void)cc; // one setting so far; Ampere and Blackwell have not been measured
  return quant_tuning{256, 4};
}

static_assert(quant_tuning_for(90).threads == quant_threads,
              "the kernels' __launch_bounds__ and stage layout assume quant_threads per CTA");

} // namespace detail
} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file quant/tuning.cuh
//! Launch settings of the quantizer kernels as a constexpr function of the compute capability.
#pragma once

#include <ostream>

namespace agoq {
namespace detail {

//! Launch shape of the element-wise block kernels.
struct quant_tuning {
  int threads = 256;       //!< threads per CTA (a multiple of 32)
  int ctas_per_sm = 8;     //!< grid = SMs x ctas_per_sm (grid-stride beyond that)
  int unroll = 2;          //!< 8-element chunks each thread holds in flight

  friend constexpr bool operator==(const quant_tuning& a, const quant_tuning& b) {
    return a.threads == b.threads && a.ctas_per_sm == b.ctas_per_sm && a.unroll == b.unroll;
  }
  friend std::ostream& operator<<(std::ostream& os, const quant_tuning& t) {
    return os << "{threads=" << t.threads << ", ctas_per_sm=" << t.ctas_per_sm
              << ", unroll=" << t.unroll << '}';
  }
};

//! Settings for a device of compute capability `cc` (e.g. 90). Hopper and newer keep more bytes in
//! flight per SM to cover HBM3 latency.
constexpr quant_tuning quant_tuning_for(int cc) {
  if (cc >= 90) return quant_tuning{256, 8, 2};
  return quant_tuning{256, 8, 2};
}

} // namespace detail
} // namespace agoq

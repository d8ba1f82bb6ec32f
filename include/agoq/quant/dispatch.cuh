// SPDX-License-Identifier: Apache-2.0
//! @file quant/dispatch.cuh
//! Runtime `quant_spec` → template instantiation. The instantiated set is explicit: every format
//! (10) x symmetric/asymmetric where it exists (17 combinations) x element type. Block size, scale
//! kind and rounding stay runtime values inside the kernels (uniform branches), which keeps the
//! number of kernels, and so the build time, small.
#pragma once

#include "agoq/error.hpp"
#include "agoq/format/format.hpp"

#include <utility>

namespace agoq {
namespace detail {

template <format F, bool Symmetric> struct format_tag {
  static constexpr format value = F;
  static constexpr bool symmetric = Symmetric;
};

//! Calls `f(format_tag<F, Symmetric>{})` for the spec's format and symmetry.
template <class Fn> status dispatch_format(const quant_spec& s, Fn&& f) {
#define AGOQ_DISPATCH_INT(F)                                                                       \
  case F:                                                                                          \
    return s.symmetric ? f(format_tag<F, true>{}) : f(format_tag<F, false>{});
  switch (s.format) {
    AGOQ_DISPATCH_INT(format::int2)
    AGOQ_DISPATCH_INT(format::int3)
    AGOQ_DISPATCH_INT(format::int4)
    AGOQ_DISPATCH_INT(format::int5)
    AGOQ_DISPATCH_INT(format::int6)
    AGOQ_DISPATCH_INT(format::int7)
    AGOQ_DISPATCH_INT(format::int8)
  case format::fp8_e4m3: return f(format_tag<format::fp8_e4m3, true>{});
  case format::fp8_e5m2: return f(format_tag<format::fp8_e5m2, true>{});
  case format::fp4_e2m1: return f(format_tag<format::fp4_e2m1, true>{});
  }
#undef AGOQ_DISPATCH_INT
  return status::invalid_argument;
}

} // namespace detail
} // namespace agoq

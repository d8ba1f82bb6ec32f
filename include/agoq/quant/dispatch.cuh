// SPDX-License-Identifier: Apache-2.0
//! @file quant/dispatch.cuh
//! Runtime `quant_spec` -> template instantiation, for every kernel family (flat, staged, comm).
//! The instantiated set is every format (10) x symmetric/asymmetric where it exists (17
//! combinations) x element type, trimmed by the build's kernel set (quant/kernel_set.hpp): a
//! format, rounding or element type outside it is refused with status::not_supported and never
//! instantiated. Block size and scale kind stay runtime values inside the kernels (uniform
//! branches), which keeps the number of kernels, and so the build time, small.
#pragma once

#include "agoq/error.hpp"
#include "agoq/format/element.hpp"
#include "agoq/format/format.hpp"
#include "agoq/quant/kernel_set.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>
#include <utility>

namespace agoq {
namespace detail {

template <format F, bool Symmetric> struct format_tag {
  static constexpr format value = F;
  static constexpr bool symmetric = Symmetric;
};

//! The refusal of an element type outside the build's kernel set.
inline status element_not_in_set(const char* function) {
  return refuse_unsupported(function, "the element type is not in this build's kernel set "
                                      "(AGOQ_ELEMENT_TYPES)");
}

//! True for void (no element type: an fp32 accumulator) and for element types of the set.
template <class T> constexpr bool element_in_set() noexcept {
  if constexpr (std::is_void_v<T>)
    return true;
  else
    return kernel_set_has(element_type_of<T>());
}

//! f(format_tag<F, Symmetric>{}) when the kernel set holds (F, Symmetric) and s.rounding, else
//! the refusal; kernels outside the set are never instantiated.
template <format F, bool Symmetric, bool Encodes, class Fn>
status call_in_set(const char* function, const quant_spec& s, Fn& f) {
  if constexpr (kernel_set_has(F, Symmetric)) {
    if (Encodes && !kernel_set_has(s.rounding))
      return refuse_unsupported(function, kernel_set_refusal(s).c_str());
    // about to launch: an error the caller left pending is returned, not taken for ours
    if (status pending = no_pending_error(); pending != status::success) return pending;
    return f(format_tag<F, Symmetric>{});
  } else {
    return refuse_unsupported(function, kernel_set_refusal(s).c_str());
  }
}

//! Calls `f(format_tag<F, Symmetric>{})` for the spec's format and symmetry, on behalf of
//! `function` (named in a refusal). T is the launcher's element type, checked against the kernel
//! set (void: none, e.g. an fp32 accumulator); Encodes: the launcher rounds (quantize-type), so
//! the spec's rounding must be in the set too. A non-integer format is always symmetric.
template <class T, bool Encodes, class Fn>
status dispatch_format(const char* function, const quant_spec& s, Fn&& f) {
  if constexpr (!element_in_set<T>()) {
    return element_not_in_set(function);
  } else {
#define AGOQ_DISPATCH_INT(F)                                                                       \
  case F:                                                                                          \
    return s.symmetric ? call_in_set<F, true, Encodes>(function, s, f)                             \
                       : call_in_set<F, false, Encodes>(function, s, f);
    switch (s.format) {
      AGOQ_DISPATCH_INT(format::int2)
      AGOQ_DISPATCH_INT(format::int3)
      AGOQ_DISPATCH_INT(format::int4)
      AGOQ_DISPATCH_INT(format::int5)
      AGOQ_DISPATCH_INT(format::int6)
      AGOQ_DISPATCH_INT(format::int7)
      AGOQ_DISPATCH_INT(format::int8)
    case format::fp8_e4m3: return call_in_set<format::fp8_e4m3, true, Encodes>(function, s, f);
    case format::fp8_e5m2: return call_in_set<format::fp8_e5m2, true, Encodes>(function, s, f);
    case format::fp4_e2m1: return call_in_set<format::fp4_e2m1, true, Encodes>(function, s, f);
    }
#undef AGOQ_DISPATCH_INT
    return refuse(function, "spec.format is not a format");
  }
}

} // namespace detail
} // namespace agoq

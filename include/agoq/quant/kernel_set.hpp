// SPDX-License-Identifier: Apache-2.0
//! @file quant/kernel_set.hpp
//! The instantiation set: which formats, roundings and element types this build compiles GPU
//! kernels for. Every launcher (quantizers, gradient buffer, collectives) instantiates its kernels
//! for each member of the set, so a trainer that needs only INT8 and FP8 can cut its compile time
//! to a fraction by naming them. A spec outside the set is refused with status::not_supported
//! and a message naming the option (e.g. "agoq::quantize: int4 is not in this build's kernel set
//! (AGOQ_FORMATS)").
//!
//! Chosen at configure time (CMake: AGOQ_FORMATS, AGOQ_ROUNDINGS, AGOQ_ELEMENT_TYPES, each a list
//! or "all"; agoq::agoq then carries the macros below to every consumer), or by defining the
//! macros directly. Every translation unit of a program must see the same set.
//!   AGOQ_KERNEL_FORMATS   bit 2 f: format f symmetric, bit 2 f + 1: asymmetric (integer formats),
//!                         f the format's enum value (int2 = 0 ... fp4_e2m1 = 9); default all
//!   AGOQ_KERNEL_ROUNDINGS bit 0: nearest_even, bit 1: stochastic; default both
//!   AGOQ_KERNEL_ELEMENTS  bit 1: __half, bit 2: __nv_bfloat16; default all (float, bit 0, is
//!                         always in: the fp32 accumulators of the collectives need it)
//! The block size and scale kind are runtime values inside the kernels and cost no instantiation;
//! the rounding limits the encoding launchers (decoders do not round).
//! The host reference (agoq::ref) is not limited by the set.
#pragma once

#include "agoq/format/format.hpp"

#include <cstdint>
#include <string>

#ifndef AGOQ_KERNEL_FORMATS
#define AGOQ_KERNEL_FORMATS 0xFFFFF
#endif
#ifndef AGOQ_KERNEL_ROUNDINGS
#define AGOQ_KERNEL_ROUNDINGS 0x3
#endif
#ifndef AGOQ_KERNEL_ELEMENTS
#define AGOQ_KERNEL_ELEMENTS 0x7
#endif

namespace agoq {

//! The bit of (f, symmetric) in AGOQ_KERNEL_FORMATS. Non-integer formats are symmetric only.
constexpr std::uint32_t kernel_format_bit(format f, bool symmetric) noexcept {
  return std::uint32_t(1) << (2 * unsigned(f) + (symmetric || !is_integer(f) ? 0u : 1u));
}

//! True when this build has kernels for format f (with the given symmetry).
constexpr bool kernel_set_has(format f, bool symmetric) noexcept {
  return (std::uint32_t(AGOQ_KERNEL_FORMATS) & kernel_format_bit(f, symmetric)) != 0;
}

//! True when this build has kernels for rounding r.
constexpr bool kernel_set_has(rounding r) noexcept {
  return (std::uint32_t(AGOQ_KERNEL_ROUNDINGS) & (1u << unsigned(r))) != 0;
}

//! True when this build has kernels for element type e (the unquantized side of a launcher).
//! float is always in: the collectives and the gradient buffer quantize and decode their fp32
//! accumulators (and a file that never calls the float launchers instantiates nothing for it).
constexpr bool kernel_set_has(element_type e) noexcept {
  return e == element_type::f32 || (std::uint32_t(AGOQ_KERNEL_ELEMENTS) & (1u << unsigned(e))) != 0;
}

namespace detail {

//! Empty when the set covers spec s (format, symmetry and rounding), else why not, e.g.
//! "int4 (asymmetric) is not in this build's kernel set (AGOQ_FORMATS)".
inline std::string kernel_set_refusal(const quant_spec& s) {
  const char* const tail = " is not in this build's kernel set ";
  if (!kernel_set_has(s.format, s.symmetric))
    return std::string(to_string(s.format)) +
           (is_integer(s.format) && !s.symmetric ? " (asymmetric)" : "") + tail + "(AGOQ_FORMATS)";
  if (!kernel_set_has(s.rounding))
    return std::string(to_string(s.rounding)) + " rounding" + tail + "(AGOQ_ROUNDINGS)";
  return {};
}

} // namespace detail
} // namespace agoq

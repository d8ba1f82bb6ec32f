// SPDX-License-Identifier: Apache-2.0
//! @file policy/stage_bits.hpp
//! DBCA-PP: the activation bit width of each pipeline stage.
//!
//! The rule (what agoq implements): let N_i be stage i's peak stash (from `peak_stash`) and
//! N_max = max_i N_i (stage 1 for every schedule here). The budget is base_bits x N_max, the
//! activation memory of the bottleneck stage at the base width. Every stage gets the widest width
//! w in the available set with  w x N_i <= budget x (1 + tolerance);  the bottleneck stage gets
//! the base width, so no stage's quantized activations exceed the bottleneck's (exactly, at
//! tolerance 0). The default set is {4, 5, 6, 8}; 16 (unquantized) joins it with
//! `allow_unquantized`; a stage holding nothing gets the widest width.
//!
//! The paper (§4.2) prints N_i = n + 2i - 1 and B_i = 4 N_1 / N_i, which contradict its own
//! configuration: Eq. 21 grows with i although stage 1 holds the most, and Eq. 22 with it gives
//! 4, 2.86, 2.22, 1.82 bits. The configuration it trains with is 4/5/6/8 bits for stashes
//! 11/9/7/5 (interleaved 1F1B, 4 stages, 8 micro-batches). The rule above gives 4/4/6/8 for those
//! stashes (5 x 9 = 45 > 44 = 4 x 11), and the paper's 4/5/6/8 with tolerance >= 1/44 (~2.3%);
//! `stage_bits_options::paper()` uses 0.05.
#pragma once

#include "agoq/status.hpp"

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace agoq {

//! A set of bit widths, each of 2..8 or 16, as a bit mask (constexpr-friendly). 16 counts only
//! with `stage_bits_options::allow_unquantized`, which adds it by itself.
//! Example: `width_set{4, 5, 6, 8}.contains(5)`.
struct width_set {
  std::uint32_t mask = 0;

  constexpr width_set() noexcept = default;
  constexpr width_set(std::initializer_list<int> widths) noexcept {
    for (int w : widths) add(w);
  }
  //! True for the widths a set may hold: 2..8 and 16.
  static constexpr bool is_valid_width(int w) noexcept { return (w >= 2 && w <= 8) || w == 16; }
  //! Adds `w` (ignored unless valid).
  constexpr width_set& add(int w) noexcept {
    if (is_valid_width(w)) mask |= std::uint32_t(1) << w;
    return *this;
  }
  constexpr bool contains(int w) const noexcept {
    return is_valid_width(w) && ((mask >> w) & 1u) != 0;
  }
  constexpr bool empty() const noexcept { return mask == 0; }

  friend constexpr bool operator==(width_set a, width_set b) noexcept { return a.mask == b.mask; }
  friend constexpr bool operator!=(width_set a, width_set b) noexcept { return a.mask != b.mask; }
  friend std::ostream& operator<<(std::ostream& os, width_set s) {
    os << '{';
    bool first = true;
    for (int w = 2; w <= 16; ++w)
      if (s.contains(w)) {
        os << (first ? "" : ",") << w;
        first = false;
      }
    return os << '}';
  }
};

//! Options of the DBCA-PP rule (see the file comment).
struct stage_bits_options {
  int base_bits = 4;                 //!< width of the bottleneck stage (2..8)
  width_set widths{4, 5, 6, 8};      //!< widths a stage may get (base_bits is always allowed)
  bool allow_unquantized = false;    //!< also allow 16 bits (activations kept unquantized)
  double tolerance = 0.0;            //!< a stage may exceed the budget by this fraction

  //! The options that reproduce the paper's 4/5/6/8 configuration (tolerance 5%).
  static constexpr stage_bits_options paper() noexcept {
    stage_bits_options o;
    o.tolerance = 0.05;
    return o;
  }

  friend constexpr bool operator==(const stage_bits_options& a,
                                   const stage_bits_options& b) noexcept {
    return a.base_bits == b.base_bits && a.widths == b.widths &&
           a.allow_unquantized == b.allow_unquantized && a.tolerance == b.tolerance;
  }
  friend constexpr bool operator!=(const stage_bits_options& a,
                                   const stage_bits_options& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const stage_bits_options& o) {
    return os << "{base_bits=" << o.base_bits << ", widths=" << o.widths
              << ", allow_unquantized=" << (o.allow_unquantized ? "true" : "false")
              << ", tolerance=" << o.tolerance << '}';
  }
};

//! The width of one stage holding `stash` when the largest stash is `max_stash` (no checks;
//! `stage_bits` validates). constexpr, e.g. `stage_width(9, 11, {}) == 4`.
constexpr int stage_width(int stash, int max_stash, const stage_bits_options& o) noexcept {
  const double budget = double(o.base_bits) * double(max_stash) * (1.0 + o.tolerance);
  int best = o.base_bits;
  for (int w = 2; w <= 16; ++w) {
    const bool allowed = (w == 16) ? o.allow_unquantized : o.widths.contains(w);
    if (!allowed || w <= best) continue;
    if (double(w) * double(stash) <= budget) best = w;
  }
  return best;
}

//! DBCA-PP widths for stages with peak stashes `stash` (index 0 = stage 1). Throws
//! invalid_argument when `stash` is empty or has a negative entry, base_bits is not 2..8, or the
//! tolerance is negative.
//! Example: `stage_bits({11, 9, 7, 5}) == {4, 4, 6, 8}`,
//!          `stage_bits({11, 9, 7, 5}, stage_bits_options::paper()) == {4, 5, 6, 8}`.
inline std::vector<int> stage_bits(const std::vector<int>& stash,
                                   const stage_bits_options& o = {}) {
  const std::string fn = "agoq::stage_bits: ";
  if (stash.empty()) throw invalid_argument(fn + "stash must name at least one stage");
  if (o.base_bits < 2 || o.base_bits > 8)
    throw invalid_argument(fn + "base_bits must be 2..8, got " + std::to_string(o.base_bits));
  if (!(o.tolerance >= 0.0))
    throw invalid_argument(fn + "tolerance must be >= 0, got " + std::to_string(o.tolerance));
  int max_stash = 0;
  for (std::size_t i = 0; i < stash.size(); ++i) {
    if (stash[i] < 0)
      throw invalid_argument(fn + "stash[" + std::to_string(i) + "] must be >= 0, got " +
                             std::to_string(stash[i]));
    if (stash[i] > max_stash) max_stash = stash[i];
  }
  std::vector<int> bits;
  bits.reserve(stash.size());
  for (int n : stash) bits.push_back(stage_width(n, max_stash, o));
  return bits;
}

} // namespace agoq

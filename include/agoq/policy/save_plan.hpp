// SPDX-License-Identifier: Apache-2.0
//! @file policy/save_plan.hpp
//! What a layer keeps for backward: per `layer_kind`, a `save_entry` saying the tensor is stored
//! quantized (in which `quant_spec`), recomputed (from which tensor), or kept unquantized.
//! A `save_plan` is the table of all entries; `paper_save_plan()` is AGoQ's LAAQ default and
//! `bf16_save_plan()` the Megatron BF16 baseline.
//!
//! A policy is anything callable as `save_entry(layer_kind)`: a `save_plan` (a table) or a user
//! callable type; `to_save_plan(policy)` turns either into a table.
#pragma once

#include "agoq/status.hpp"
#include "agoq/format/format.hpp"
#include "agoq/policy/layer_kind.hpp"

#include <array>
#include <cstddef>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>

namespace agoq {

//! What happens to one activation between forward and backward.
enum class save_action : std::uint8_t {
  keep,      //!< kept unquantized in its native type: BF16; FP32 for statistics and for norm
             //!< inputs when the model's norms run in FP32 (the Megatron baseline)
  store,     //!< stored quantized in `save_entry::spec`
  recompute, //!< not kept; recomputed in backward from `save_entry::from` (costs no memory)
};

constexpr const char* to_string(save_action a) noexcept {
  switch (a) {
  case save_action::keep: return "keep";
  case save_action::store: return "store";
  case save_action::recompute: return "recompute";
  }
  return "unknown_save_action";
}
inline std::ostream& operator<<(std::ostream& os, save_action a) { return os << to_string(a); }

//! The decision for one `layer_kind`. Build one with `kept()`, `stored(spec)`,
//! `stage_stored(block)` or `recomputed(from)`.
struct save_entry {
  save_action action = save_action::keep;
  //! store: the format. If `follows_stage`, `spec.format` is replaced by the pipeline stage's
  //! DBCA-PP width (`at_stage_bits`), and the entry becomes `keep` on a 16-bit stage.
  quant_spec spec{};
  bool follows_stage = false;
  layer_kind from = layer_kind::attn_norm_input; //!< recompute: the tensor it is recomputed from

  //! Kept unquantized.
  static constexpr save_entry kept() noexcept { return save_entry{}; }
  //! Stored in `s`, a fixed format.
  static constexpr save_entry stored(const quant_spec& s) noexcept {
    save_entry e;
    e.action = save_action::store;
    e.spec = s;
    return e;
  }
  //! Stored at the stage's DBCA-PP width ("B bits"): symmetric int, blocks of `block`, fp32
  //! scales, nearest-even. Until `at_stage_bits` applies a width the format reads int4.
  static constexpr save_entry stage_stored(int block = 128) noexcept {
    save_entry e;
    e.action = save_action::store;
    e.spec.format = format::int4;
    e.spec.block = block;
    e.follows_stage = true;
    return e;
  }
  //! Recomputed in backward from `src`.
  static constexpr save_entry recomputed(layer_kind src) noexcept {
    save_entry e;
    e.action = save_action::recompute;
    e.from = src;
    return e;
  }

  //! Equal when they would behave the same (fields an action does not use are ignored).
  friend constexpr bool operator==(const save_entry& a, const save_entry& b) noexcept {
    if (a.action != b.action) return false;
    switch (a.action) {
    case save_action::keep: return true;
    case save_action::store: return a.spec == b.spec && a.follows_stage == b.follows_stage;
    case save_action::recompute: return a.from == b.from;
    }
    return false;
  }
  friend constexpr bool operator!=(const save_entry& a, const save_entry& b) noexcept {
    return !(a == b);
  }
  //! Prints the text form (see policy_text.hpp): "bf16", "recompute:<kind>", or
  //! "<format>/<block>" (or "stage/<block>") followed by "/<scale>", "/<rounding>", "/asym" only
  //! where they differ from fp32, nearest_even, symmetric. E.g. "int4/128", "stage/64/stochastic".
  friend std::ostream& operator<<(std::ostream& os, const save_entry& e) {
    switch (e.action) {
    case save_action::keep: return os << "bf16";
    case save_action::recompute: return os << "recompute:" << e.from;
    case save_action::store:
      if (e.follows_stage)
        os << "stage";
      else
        os << e.spec.format;
      os << '/' << e.spec.block;
      if (e.spec.scale != scale_kind::fp32) os << '/' << e.spec.scale;
      if (e.spec.rounding != rounding::nearest_even) os << '/' << e.spec.rounding;
      if (!e.spec.symmetric) os << "/asym";
      return os;
    }
    return os;
  }
};

//! A policy as a table: one `save_entry` per `layer_kind`. Default-constructed: everything kept
//! (the BF16 baseline). It is itself a policy (callable as `save_entry(layer_kind)`).
//! Example: `auto p = paper_save_plan(); p.set(layer_kind::swiglu_input,
//!          save_entry::stored({format::fp8_e4m3}));`
class save_plan {
public:
  constexpr save_plan() noexcept : m_entries{} {}

  constexpr const save_entry& operator[](layer_kind k) const noexcept {
    return m_entries[std::size_t(k)];
  }
  constexpr save_entry& operator[](layer_kind k) noexcept { return m_entries[std::size_t(k)]; }
  //! The policy call: the entry of `k`.
  constexpr save_entry operator()(layer_kind k) const noexcept { return (*this)[k]; }

  //! Overrides one entry; returns *this for chaining.
  constexpr save_plan& set(layer_kind k, const save_entry& e) noexcept {
    (*this)[k] = e;
    return *this;
  }
  //! Overrides every kind of group `g` (e.g. layer_group::attention_core).
  constexpr save_plan& set(layer_group g, const save_entry& e) noexcept {
    for (std::size_t i = 0; i < layer_kind_count; ++i)
      if (group_of(layer_kind(i)) == g) m_entries[i] = e;
    return *this;
  }

  friend constexpr bool operator==(const save_plan& a, const save_plan& b) noexcept {
    for (std::size_t i = 0; i < layer_kind_count; ++i)
      if (a.m_entries[i] != b.m_entries[i]) return false;
    return true;
  }
  friend constexpr bool operator!=(const save_plan& a, const save_plan& b) noexcept {
    return !(a == b);
  }
  //! Prints every entry in text form, "kind=value" joined by ','.
  friend std::ostream& operator<<(std::ostream& os, const save_plan& p) {
    for (std::size_t i = 0; i < layer_kind_count; ++i)
      os << (i ? "," : "") << layer_kind(i) << '=' << p.m_entries[i];
    return os;
  }

private:
  std::array<save_entry, layer_kind_count> m_entries;
};

//! The Megatron BF16 baseline: every activation kept unquantized.
constexpr save_plan bf16_save_plan() noexcept { return save_plan{}; }

//! The paper's LAAQ plan (§4.1, Table 1): attention core kept in BF16; RMSNorm inputs, the
//! SwiGLU input and the out-projection input stored at the stage width B (int4 until a width
//! is applied by `at_stage_bits`, blocks of `block`, fp32 scales, nearest-even); norm outputs,
//! statistics, the QKV, up and down GEMM inputs and the SwiGLU state recomputed from the stored
//! inputs. The same rule covers the other layer types (LayerNorm/GELU inputs and MoE expert
//! inputs stored at B bits, their GEMM inputs recomputed; router probabilities and the embedding
//! output kept).
constexpr save_plan paper_save_plan(int block = 128) noexcept {
  save_plan p;
  const save_entry b = save_entry::stage_stored(block);
  for (std::size_t i = 0; i < layer_kind_count; ++i) {
    const layer_kind k = layer_kind(i);
    if (recompute_source(k) != k) p.set(k, save_entry::recomputed(recompute_source(k)));
  }
  p.set(layer_kind::attn_norm_input, b)
      .set(layer_kind::ffn_norm_input, b)
      .set(layer_kind::out_proj_input, b)
      .set(layer_kind::swiglu_input, b)
      .set(layer_kind::layernorm_input, b)
      .set(layer_kind::gelu_input, b)
      .set(layer_kind::moe_expert_swiglu_input, b);
  return p; // attention core, router probabilities and embedding output stay kept
}

//! Any policy (a callable `save_entry(layer_kind)`, e.g. a lambda or a struct) as a table.
template <class Policy>
constexpr save_plan to_save_plan(const Policy& policy) {
  static_assert(std::is_invocable_r_v<save_entry, const Policy&, layer_kind>,
                "a policy is callable as save_entry(layer_kind)");
  save_plan p;
  for (std::size_t i = 0; i < layer_kind_count; ++i) p[layer_kind(i)] = policy(layer_kind(i));
  return p;
}

//! `p` for a pipeline stage of width `bits`: every `follows_stage` entry gets int`bits`, or is
//! kept unquantized when `bits` is 16. Throws invalid_argument unless bits is 2..8 or 16.
inline save_plan at_stage_bits(save_plan p, int bits) {
  if (!((bits >= 2 && bits <= 8) || bits == 16))
    throw invalid_argument("agoq::at_stage_bits: bits must be 2..8 or 16, got " +
                           std::to_string(bits));
  for (std::size_t i = 0; i < layer_kind_count; ++i) {
    save_entry& e = p[layer_kind(i)];
    if (e.action != save_action::store || !e.follows_stage) continue;
    if (bits == 16)
      e = save_entry::kept();
    else
      e.spec.format = int_format(bits);
  }
  return p;
}

namespace detail {
// True if `p` is consistent; else false with the first problem found written to `why`.
inline bool check_save_plan(const save_plan& p, std::string& why) {
  for (std::size_t i = 0; i < layer_kind_count; ++i) {
    const layer_kind k = layer_kind(i);
    const save_entry& e = p[k];
    if (e.action != save_action::keep && e.action != save_action::store &&
        e.action != save_action::recompute) {
      why = std::string(to_string(k)) + ": action must be keep, store or recompute, got " +
            std::to_string(int(e.action));
      return false;
    }
    if (e.action == save_action::store) {
      if (const char* msg = validate(e.spec)) {
        why = std::string(to_string(k)) + ": " + msg;
        return false;
      }
      continue;
    }
    if (e.action != save_action::recompute) continue;
    // Follow the chain; it must reach a kept or stored tensor within layer_kind_count steps.
    layer_kind cur = k;
    for (std::size_t step = 0;; ++step) {
      const save_entry& c = p[cur];
      if (c.action != save_action::recompute) break;
      if (std::size_t(c.from) >= layer_kind_count || step >= layer_kind_count) {
        why = std::string(to_string(k)) + " is recomputed along a chain that never reaches a "
              "stored or kept tensor (cycle through " + to_string(cur) + ")";
        return false;
      }
      cur = c.from;
    }
  }
  return true;
}
} // namespace detail

//! Throws invalid_argument if a stored spec is invalid (agoq::validate) or a recompute chain
//! does not end in a stored or kept tensor (e.g. a kind recomputed from itself).
inline void validate(const save_plan& p) {
  std::string why;
  if (!detail::check_save_plan(p, why)) throw invalid_argument("agoq::validate(save_plan): " + why);
}

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file policy/policy_text.hpp
//! The text form of a policy: comma-separated entries, applied left to right on top of a base
//! plan (the paper's by default). Whitespace around entries, keys, values and the '/'-separated
//! parts of a value is ignored (`int4 / 64` is `int4/64`).
//!
//! An entry is `key=value`, or the name of a whole plan that replaces everything so far:
//! `paper` (`paper_save_plan()`, AGoQ's LAAQ plan) or `bf16` (`bf16_save_plan()`, everything kept).
//! "paper" alone spells the paper's plan; "bf16,rmsnorm_input=int8" starts from the baseline. An
//! empty text is refused (write "paper" for the default plan).
//!
//! Keys: a `layer_kind` name (e.g. `qkv_input`), or a group that sets all its kinds:
//! `rmsnorm_input` (attn_norm_input, ffn_norm_input), `norm_stats`, `attention_core`
//! (attention_qkv_pre_rope, attention_q/k/v, attention_softmax_stats), `gemm_input`,
//! `activation_input`, `activation_state`.
//!
//! Values:
//! - `bf16` or `keep`: kept unquantized (native type);
//! - `recompute`: recomputed from the kind's natural source (`recompute_source`);
//!   `recompute:<kind>`: from `<kind>`;
//! - `<format>[/<block>][/<scale>][/<rounding>][/asym]`: stored in a fixed format, where format is
//!   int2..int8, fp8_e4m3, fp8_e5m2 or fp4_e2m1, block 32, 64, 128 (default) or 256, scale fp32
//!   (default), pow2 or e8m0, rounding nearest_even (default, alias rne) or stochastic (alias sr);
//! - `stage[/...]`: the same, but the integer width is the pipeline stage's DBCA-PP width.
//!
//! Example: `parse_policy("rmsnorm_input=int4/128,attention_core=bf16")`.
#pragma once

#include "agoq/status.hpp"
#include "agoq/format/format.hpp"
#include "agoq/policy/layer_kind.hpp"
#include "agoq/policy/save_plan.hpp"

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace agoq {

namespace detail {

struct policy_group_name {
  const char* name;
  layer_group group;
};
inline constexpr policy_group_name policy_groups[] = {
    {"rmsnorm_input", layer_group::rmsnorm_input},
    {"norm_stats", layer_group::norm_stats},
    {"attention_core", layer_group::attention_core},
    {"gemm_input", layer_group::gemm_input},
    {"activation_input", layer_group::activation_input},
    {"activation_state", layer_group::activation_state},
};

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return std::string();
  const auto e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

inline std::string accepted_keys() {
  std::string s;
  for (std::size_t i = 0; i < layer_kind_count; ++i) s += std::string(i ? ", " : "") +
                                                            to_string(layer_kind(i));
  s += "; groups: ";
  bool first = true;
  for (const auto& g : policy_groups) {
    s += std::string(first ? "" : ", ") + g.name;
    first = false;
  }
  return s;
}

inline constexpr const char* accepted_values =
    "bf16 | keep | recompute | recompute:<kind> | "
    "<format>[/<block>][/<scale>][/<rounding>][/asym] | stage[/<block>][/<scale>][/<rounding>]"
    "[/asym], with <format> one of int2, int3, int4, int5, int6, int7, int8, fp8_e4m3, fp8_e5m2, "
    "fp4_e2m1; <block> one of 32, 64, 128, 256; <scale> one of fp32, pow2, e8m0; <rounding> one "
    "of nearest_even (rne), stochastic (sr)";

inline bool parse_layer_kind(const std::string& s, layer_kind& out) {
  for (std::size_t i = 0; i < layer_kind_count; ++i)
    if (s == to_string(layer_kind(i))) {
      out = layer_kind(i);
      return true;
    }
  return false;
}

//! The whole plans an entry without '=' may name.
inline bool parse_plan_name(const std::string& s, save_plan& out) {
  if (s == "paper") return out = paper_save_plan(), true;
  if (s == "bf16") return out = bf16_save_plan(), true;
  return false;
}

inline bool parse_format(const std::string& s, format& out) {
  for (int i = 0; i <= int(format::fp4_e2m1); ++i)
    if (s == to_string(format(i))) {
      out = format(i);
      return true;
    }
  return false;
}

} // namespace detail

//! Parses a `layer_kind` name. Throws invalid_argument naming the accepted names.
inline layer_kind parse_layer_kind(const std::string& name) {
  layer_kind k{};
  if (!detail::parse_layer_kind(detail::trim(name), k)) {
    std::string all;
    for (std::size_t i = 0; i < layer_kind_count; ++i)
      all += std::string(i ? ", " : "") + to_string(layer_kind(i));
    throw invalid_argument("agoq::parse_layer_kind: unknown layer kind '" + name +
                           "'; accepted: " + all);
  }
  return k;
}

namespace detail {
//! parse_save_entry, with `key` (the key as written: a kind or a group name) in the messages.
inline save_entry parse_save_entry(layer_kind kind, const std::string& value,
                                   const std::string& key) {
  const std::string v = detail::trim(value);
  const std::string where = "agoq::parse_policy: value '" + v + "' for " + key +
                            (key == to_string(kind) ? std::string()
                                                    : std::string(" (at ") + to_string(kind) + ")") +
                            ": ";
  if (v == "bf16" || v == "keep") return save_entry::kept();
  if (v == "recompute") {
    const layer_kind src = recompute_source(kind);
    if (src == kind)
      throw invalid_argument(where + to_string(kind) +
                             " has no natural recompute source; write recompute:<kind>");
    return save_entry::recomputed(src);
  }
  const auto colon = v.find(':');
  if (colon != std::string::npos && detail::trim(v.substr(0, colon)) == "recompute") {
    const std::string src_name = detail::trim(v.substr(colon + 1));
    layer_kind src{};
    if (!detail::parse_layer_kind(src_name, src))
      throw invalid_argument(where + "unknown source kind '" + src_name +
                             "' after 'recompute:'; accepted: any layer kind name");
    if (src == kind)
      throw invalid_argument(where + "a tensor cannot be recomputed from itself");
    return save_entry::recomputed(src);
  }
  std::vector<std::string> parts = detail::split(v, '/');
  for (std::string& part : parts) part = detail::trim(part);
  save_entry e;
  e.action = save_action::store;
  if (parts[0] == "stage") {
    e.follows_stage = true;
    e.spec.format = format::int4;
  } else if (!detail::parse_format(parts[0], e.spec.format)) {
    throw invalid_argument(where + "'" + parts[0] + "' is not a format or keyword; accepted: " +
                           detail::accepted_values);
  }
  e.spec.block = 128;
  bool have_block = false, have_scale = false, have_round = false, have_sym = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& t = parts[i];
    auto dup = [&](bool& seen, const char* what) {
      if (seen) throw invalid_argument(where + "'" + t + "' gives the " + what + " twice");
      seen = true;
    };
    if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
      dup(have_block, "block");
      const int b = t.size() > 6 ? 0 : std::stoi(t);
      if (!is_supported_block(b))
        throw invalid_argument(where + "block '" + t + "' is not supported; accepted: 32, 64, "
                               "128, 256");
      e.spec.block = b;
    } else if (t == "fp32" || t == "pow2" || t == "e8m0") {
      dup(have_scale, "scale");
      e.spec.scale = t == "fp32"   ? scale_kind::fp32
                     : t == "pow2" ? scale_kind::pow2
                                   : scale_kind::e8m0;
    } else if (t == "nearest_even" || t == "rne" || t == "stochastic" || t == "sr") {
      dup(have_round, "rounding");
      e.spec.rounding =
          (t == "stochastic" || t == "sr") ? rounding::stochastic : rounding::nearest_even;
    } else if (t == "asym" || t == "sym") {
      dup(have_sym, "symmetry");
      e.spec.symmetric = t == "sym";
    } else {
      throw invalid_argument(where + "'" + t + "' is not a block, scale, rounding or asym; "
                             "accepted: " + detail::accepted_values);
    }
  }
  if (const char* msg = validate(e.spec)) throw invalid_argument(where + msg);
  return e;
}
} // namespace detail

//! Parses one value of the text form for `kind` (see the file comment). Throws
//! invalid_argument naming the entry, the part that is wrong and what is accepted.
inline save_entry parse_save_entry(layer_kind kind, const std::string& value) {
  return detail::parse_save_entry(kind, value, to_string(kind));
}

//! Applies the text `text` to `base` (default: the paper's plan) and returns the result (see the
//! file comment). Throws invalid_argument for an empty text, an entry without '=' that is not a
//! plan name, an unknown key, a bad value (see `parse_save_entry`; the message names the key as
//! written) or a plan whose recompute chains do not end in a stored or kept tensor.
//! Examples: `parse_policy("paper")`, `parse_policy("rmsnorm_input=int4/128,attention_core=bf16")`.
inline save_plan parse_policy(const std::string& text, save_plan base = paper_save_plan()) {
  if (detail::trim(text).empty())
    throw invalid_argument("agoq::parse_policy: empty policy text; write \"paper\" for the "
                           "paper's plan, \"bf16\" for everything kept, or key=value entries");
  for (const std::string& raw : detail::split(text, ',')) {
    const std::string item = detail::trim(raw);
    if (item.empty())
      throw invalid_argument("agoq::parse_policy: empty entry in '" + text +
                             "'; entries are key=value separated by ','");
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      if (detail::parse_plan_name(item, base)) continue;
      throw invalid_argument("agoq::parse_policy: entry '" + item +
                             "' has no '=' and is not a plan name; entries are key=value, or "
                             "paper or bf16 for a whole plan");
    }
    const std::string key = detail::trim(item.substr(0, eq));
    const std::string value = item.substr(eq + 1);
    layer_kind k{};
    if (detail::parse_layer_kind(key, k)) {
      base.set(k, detail::parse_save_entry(k, value, key));
      continue;
    }
    bool found = false;
    for (const auto& g : detail::policy_groups) {
      if (key != g.name) continue;
      found = true;
      for (std::size_t i = 0; i < layer_kind_count; ++i)
        if (group_of(layer_kind(i)) == g.group)
          base.set(layer_kind(i), detail::parse_save_entry(layer_kind(i), value, key));
    }
    if (!found)
      throw invalid_argument("agoq::parse_policy: unknown key '" + key + "' in entry '" + item +
                             "'; accepted keys: " + detail::accepted_keys());
  }
  validate(base);
  return base;
}

//! The text of one entry, e.g. "int4/128", "stage/128", "recompute:swiglu_input", "bf16".
inline std::string to_string(const save_entry& e) {
  std::ostringstream os;
  os << e;
  return os.str();
}

//! The full text of `p`: every kind, in enum order ("attn_norm_input=stage/128,...").
//! `parse_policy(to_string(p), anything) == p`.
inline std::string to_string(const save_plan& p) {
  std::ostringstream os;
  os << p;
  return os.str();
}

//! The shortest text that turns `base` into `p`: only the entries that differ, a group key where
//! every kind of the group differs and all get the same value. Empty when p == base (an empty
//! text does not parse: test for it). Otherwise `parse_policy(to_string(p, base), base) == p`.
inline std::string to_string(const save_plan& p, const save_plan& base) {
  std::string out;
  auto add = [&](const std::string& key, const save_entry& e) {
    out += (out.empty() ? "" : ",") + key + "=" + to_string(e);
  };
  bool done[layer_kind_count] = {};
  for (const auto& g : detail::policy_groups) {
    bool all = true, any = false;
    const save_entry* first = nullptr;
    for (std::size_t i = 0; i < layer_kind_count && all; ++i) {
      const layer_kind k = layer_kind(i);
      if (group_of(k) != g.group) continue;
      any = true;
      if (p[k] == base[k] || (first && !(p[k] == *first))) all = false;
      // "recompute:<src>" written once for a group re-parses to the same source for every kind
      if (!first) first = &p[k];
    }
    if (!any || !all || !first) continue;
    add(g.name, *first);
    for (std::size_t i = 0; i < layer_kind_count; ++i)
      if (group_of(layer_kind(i)) == g.group) done[i] = true;
  }
  for (std::size_t i = 0; i < layer_kind_count; ++i)
    if (!done[i] && p[layer_kind(i)] != base[layer_kind(i)])
      add(to_string(layer_kind(i)), p[layer_kind(i)]);
  return out;
}

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file policy/planner.hpp
//! The memory planner: activation bytes per layer, per pipeline stage and at the peak, for a model
//! shape and a policy, against the Megatron-style BF16 baseline (everything kept, norm inputs in
//! FP32).
//!
//! Per layer, each tensor of the block (see layer_kind.hpp for the per-token sizes) costs:
//! - keep: elements x native bytes (2; 4 for statistics and, with `norm_fp32`, norm inputs);
//! - store: codes + scales + zero points of its `quant_spec` (`codes_bytes`, `scales_bytes`,
//!   `zeros_bytes`, each token a row), the format replaced by the stage width when the entry
//!   follows the stage;
//! - recompute: nothing (its source is charged at its own entry).
//!
//! `accounting::paper` is the paper's convention (Table 1): quantized tensors cost bits/8 bytes per
//! element with no scale bytes, and the small per-token statistics (norm 1/rms, softmax
//! log-sum-exp) are left out. In units of U = micro_batch x seq x hidden x 2 bytes, a LLaMA layer
//! with ffn = 4 hidden and multi-head attention then costs 28U in BF16 and 7.75U with
//! `paper_save_plan()` at 4 bits (attention 5U, out-proj input 0.25U, RMSNorms 0.5U, SwiGLU input
//! 2U). `accounting::exact` adds the scales (4-bit, block 128, fp32 scales: 4.25 bits/element) and
//! the statistics.
//!
//! A stage holds `peak_stash` chunks (schedule.hpp), each of layers / (stages x virtual_stages)
//! layers; its bytes = stash x chunk layers x layer bytes at the stage's DBCA-PP width. Embedding,
//! LM head and loss activations are not counted.
//!
//! Block kinds: `llama` (RMSNorm, SwiGLU MLP) and `gpt` (LayerNorm, GELU MLP). With
//! `experts > 0` every layer's MLP is a mixture of experts (Megatron's MoE layer, token-choice
//! top-k routing, no token dropping, no shared expert): the FFN norm's output feeds the router
//! (`moe_router_input`, h per token), which keeps its probabilities (`moe_router_probs`, fp32,
//! one per expert and token); each token is dispatched to `moe_top_k` experts, whose inputs
//! (`moe_expert_input`, top_k x h), activation inputs (`moe_expert_swiglu_input`: top_k x 2 f_e
//! for SwiGLU experts, top_k x f_e for the GELU experts of a gpt block) and down-GEMM inputs
//! (`moe_expert_down_input`, top_k x f_e) are kept for backward, f_e = `moe_ffn` (or `ffn`).
#pragma once

#include "agoq/status.hpp"
#include "agoq/format/format.hpp"
#include "agoq/policy/layer_kind.hpp"
#include "agoq/policy/save_plan.hpp"
#include "agoq/policy/schedule.hpp"
#include "agoq/policy/stage_bits.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace agoq {

//! The layer type a model is made of.
enum class block_kind : std::uint8_t {
  llama, //!< pre-norm RMSNorm + attention + RMSNorm + SwiGLU MLP
  gpt,   //!< pre-norm LayerNorm + attention + LayerNorm + GELU MLP
};
constexpr const char* to_string(block_kind b) noexcept {
  return b == block_kind::llama ? "llama" : b == block_kind::gpt ? "gpt" : "unknown_block";
}
inline std::ostream& operator<<(std::ostream& os, block_kind b) { return os << to_string(b); }

//! A model and its pipeline layout.
struct model_shape {
  block_kind block = block_kind::llama;
  int layers = 32;
  int hidden = 4096;
  int ffn = 11008;   //!< FFN (intermediate) size
  int heads = 32;
  int kv_heads = 0;  //!< 0: same as heads (multi-head attention)
  int seq = 4096;
  int micro_batch = 1;
  int stages = 1;    //!< pipeline-parallel size
  pipeline_schedule schedule = pipeline_schedule::one_f_one_b;
  int micro_batches = 1; //!< micro-batches per iteration
  int virtual_stages = 1; //!< model chunks per stage (interleaved 1F1B)
  bool norm_fp32 = true;  //!< norms run in FP32, so their kept input is FP32 (Megatron)
  int experts = 0;   //!< MoE: experts per layer; 0 = a dense MLP (see the file comment)
  int moe_top_k = 2; //!< MoE: experts each token is routed to (1..experts); unused when dense
  int moe_ffn = 0;   //!< MoE: an expert's FFN size; 0 = `ffn`

  //! True when the MLP is a mixture of experts.
  constexpr bool is_moe() const noexcept { return experts > 0; }
  //! The FFN size of one expert (`moe_ffn`, or `ffn` when 0).
  constexpr int moe_ffn_or_ffn() const noexcept { return moe_ffn > 0 ? moe_ffn : ffn; }

  //! LLaMA2-7B: 32 layers, hidden 4096, FFN 11008, 32 heads, seq 4096.
  static constexpr model_shape llama2_7b() noexcept { return model_shape{}; }
  //! LLaMA2-13B: 40 layers, hidden 5120, FFN 13824, 40 heads, seq 4096.
  static constexpr model_shape llama2_13b() noexcept {
    model_shape m;
    m.layers = 40;
    m.hidden = 5120;
    m.ffn = 13824;
    m.heads = 40;
    return m;
  }
  constexpr int kv_heads_or_heads() const noexcept { return kv_heads > 0 ? kv_heads : heads; }
  //! Tokens per micro-batch.
  constexpr std::int64_t tokens() const noexcept { return std::int64_t(micro_batch) * seq; }
  //! U = micro_batch x seq x hidden x 2 bytes (the paper's unit).
  constexpr std::int64_t unit_bytes() const noexcept { return tokens() * hidden * 2; }

  friend constexpr bool operator==(const model_shape& a, const model_shape& b) noexcept {
    return a.block == b.block && a.layers == b.layers && a.hidden == b.hidden && a.ffn == b.ffn &&
           a.heads == b.heads && a.kv_heads_or_heads() == b.kv_heads_or_heads() &&
           a.seq == b.seq && a.micro_batch == b.micro_batch && a.stages == b.stages &&
           a.schedule == b.schedule && a.micro_batches == b.micro_batches &&
           a.virtual_stages == b.virtual_stages && a.norm_fp32 == b.norm_fp32 &&
           a.experts == b.experts &&
           (a.experts == 0 ||
            (a.moe_top_k == b.moe_top_k && a.moe_ffn_or_ffn() == b.moe_ffn_or_ffn()));
  }
  friend constexpr bool operator!=(const model_shape& a, const model_shape& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const model_shape& m) {
    return os << "{" << m.block << " layers=" << m.layers << " hidden=" << m.hidden
              << " ffn=" << m.ffn << " heads=" << m.heads << " kv_heads=" << m.kv_heads_or_heads()
              << " seq=" << m.seq << " micro_batch=" << m.micro_batch << " stages=" << m.stages
              << " schedule=" << m.schedule << " micro_batches=" << m.micro_batches
              << " virtual_stages=" << m.virtual_stages;
    if (m.is_moe())
      os << " experts=" << m.experts << " moe_top_k=" << m.moe_top_k
         << " moe_ffn=" << m.moe_ffn_or_ffn();
    return os << "}";
  }
};

namespace detail {
//! `bytes` in binary units with 3 significant digits: "512 B", "31.3 GiB", "1.00 TiB".
inline std::string human_bytes(std::int64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = bytes < 0 ? -double(bytes) : double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) v /= 1024.0, ++u;
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, v >= 100 ? "%s%.0f %s" : v >= 10 ? "%s%.1f %s" : "%s%.2f %s",
                  bytes < 0 ? "-" : "", v, units[u]);
  return buf;
}
} // namespace detail

//! How bytes are counted (see the file comment).
enum class accounting : std::uint8_t {
  exact, //!< codes + scales + zero points, statistics included
  paper, //!< the paper's Table 1 convention: bits/8 per element, no scales, no statistics
};
constexpr const char* to_string(accounting a) noexcept {
  return a == accounting::exact ? "exact" : a == accounting::paper ? "paper" : "unknown_accounting";
}
inline std::ostream& operator<<(std::ostream& os, accounting a) { return os << to_string(a); }

//! Planner options.
struct plan_options {
  stage_bits_options bits{}; //!< DBCA-PP rule
  bool dbca = true;          //!< false: every stage uses bits.base_bits
  accounting acct = accounting::exact;

  friend constexpr bool operator==(const plan_options& a, const plan_options& b) noexcept {
    return a.bits == b.bits && a.dbca == b.dbca && a.acct == b.acct;
  }
  friend constexpr bool operator!=(const plan_options& a, const plan_options& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const plan_options& o) {
    return os << "{bits=" << o.bits << ", dbca=" << (o.dbca ? "true" : "false")
              << ", acct=" << o.acct << '}';
  }
};

//! One tensor of a layer: its kind, how many such tensors a layer has, the elements per token of
//! each, what the policy does with it, and its bytes (per layer, all copies) vs the baseline.
struct tensor_memory {
  layer_kind kind{};
  int count = 1;
  std::int64_t per_token = 0;
  save_entry entry{};
  std::int64_t bytes = 0;
  std::int64_t baseline_bytes = 0;

  friend bool operator==(const tensor_memory& a, const tensor_memory& b) noexcept {
    return a.kind == b.kind && a.count == b.count && a.per_token == b.per_token &&
           a.entry == b.entry && a.bytes == b.bytes && a.baseline_bytes == b.baseline_bytes;
  }
  friend bool operator!=(const tensor_memory& a, const tensor_memory& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const tensor_memory& t) {
    return os << t.kind << (t.count > 1 ? "x" + std::to_string(t.count) : std::string()) << ' '
              << t.entry << ' ' << detail::human_bytes(t.bytes) << " (bf16 "
              << detail::human_bytes(t.baseline_bytes) << ")";
  }
};

//! One layer's activations at a given stage width.
struct layer_memory {
  int bits = 4;
  std::vector<tensor_memory> tensors;
  std::int64_t bytes = 0;
  std::int64_t baseline_bytes = 0;

  //! Bytes of the tensors of `k` (0 when the block has none).
  std::int64_t bytes_of(layer_kind k) const noexcept {
    std::int64_t s = 0;
    for (const auto& t : tensors) s += t.kind == k ? t.bytes : 0;
    return s;
  }
  std::int64_t baseline_bytes_of(layer_kind k) const noexcept {
    std::int64_t s = 0;
    for (const auto& t : tensors) s += t.kind == k ? t.baseline_bytes : 0;
    return s;
  }
  friend bool operator==(const layer_memory& a, const layer_memory& b) noexcept {
    return a.bits == b.bits && a.tensors == b.tensors && a.bytes == b.bytes &&
           a.baseline_bytes == b.baseline_bytes;
  }
  friend bool operator!=(const layer_memory& a, const layer_memory& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const layer_memory& l) {
    os << "{" << l.bits << " bits: " << detail::human_bytes(l.bytes) << " (bf16 "
       << detail::human_bytes(l.baseline_bytes) << ")";
    for (const auto& t : l.tensors) os << "; " << t;
    return os << '}';
  }
};

//! One pipeline stage at its peak.
struct stage_memory {
  int stage = 0;       //!< 0-based
  int stash = 0;       //!< peak stash in chunks (schedule.hpp)
  int chunk_layers = 0; //!< layers per chunk
  int bits = 4;        //!< DBCA-PP width
  std::int64_t bytes = 0;          //!< activation bytes at the peak with the policy
  std::int64_t baseline_bytes = 0; //!< the same with the BF16 baseline
  //! 1 - bytes / baseline_bytes (0 when the baseline is 0).
  double saving() const noexcept {
    return baseline_bytes ? 1.0 - double(bytes) / double(baseline_bytes) : 0.0;
  }
  friend bool operator==(const stage_memory& a, const stage_memory& b) noexcept {
    return a.stage == b.stage && a.stash == b.stash && a.chunk_layers == b.chunk_layers &&
           a.bits == b.bits && a.bytes == b.bytes && a.baseline_bytes == b.baseline_bytes;
  }
  friend bool operator!=(const stage_memory& a, const stage_memory& b) noexcept {
    return !(a == b);
  }
  //! e.g. "{stage 1: 4 bits, stash 11 x 4 layers, 9.96 GiB (bf16 31.3 GiB, 68.2% saved)}"; the
  //! stage is printed 1-based, as agoq-plan's table numbers it (`stage` + 1).
  friend std::ostream& operator<<(std::ostream& os, const stage_memory& s) {
    char saved[16];
    std::snprintf(saved, sizeof saved, "%.1f%%", 100.0 * s.saving());
    return os << "{stage " << s.stage + 1 << ": " << s.bits << " bits, stash " << s.stash << " x "
              << s.chunk_layers << " layers, " << detail::human_bytes(s.bytes) << " (bf16 "
              << detail::human_bytes(s.baseline_bytes) << ", " << saved << " saved)}";
  }
};

//! The whole plan: per stage, and the peak over stages.
struct memory_plan {
  model_shape shape{};
  std::vector<stage_memory> stages;
  std::int64_t peak_bytes = 0;          //!< max over stages, with the policy
  std::int64_t peak_baseline_bytes = 0; //!< max over stages, BF16 baseline
  double saving() const noexcept {
    return peak_baseline_bytes ? 1.0 - double(peak_bytes) / double(peak_baseline_bytes) : 0.0;
  }
  friend bool operator==(const memory_plan& a, const memory_plan& b) noexcept {
    return a.shape == b.shape && a.stages == b.stages && a.peak_bytes == b.peak_bytes &&
           a.peak_baseline_bytes == b.peak_baseline_bytes;
  }
  friend bool operator!=(const memory_plan& a, const memory_plan& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const memory_plan& p) {
    char saved[16];
    std::snprintf(saved, sizeof saved, "%.1f%%", 100.0 * p.saving());
    os << "{shape=" << p.shape << " peak " << detail::human_bytes(p.peak_bytes) << " (bf16 "
       << detail::human_bytes(p.peak_baseline_bytes) << ", " << saved << " saved); bits per stage";
    for (const auto& s : p.stages) os << ' ' << s.bits;
    for (const auto& s : p.stages) os << "; " << s;
    return os << '}';
  }
};

namespace detail {

struct block_tensor {
  layer_kind kind;
  int count;
  std::int64_t per_token;
};

inline std::vector<block_tensor> block_tensors(const model_shape& m) {
  const std::int64_t h = m.hidden, f = m.ffn;
  const std::int64_t kv = std::int64_t(m.kv_heads_or_heads()) * (m.hidden / m.heads);
  using k = layer_kind;
  std::vector<block_tensor> attn = {
      {k::qkv_input, 1, h},          {k::attention_qkv_pre_rope, 1, h + kv},
      {k::attention_q, 1, h},        {k::attention_k, 1, kv},
      {k::attention_v, 1, kv},       {k::attention_softmax_stats, 1, m.heads},
      {k::out_proj_input, 1, h},
  };
  std::vector<block_tensor> t;
  if (m.block == block_kind::llama) {
    t = {{k::attn_norm_input, 1, h}, {k::attn_norm_stats, 1, 1}};
    t.insert(t.end(), attn.begin(), attn.end());
    t.insert(t.end(), {{k::ffn_norm_input, 1, h}, {k::ffn_norm_stats, 1, 1}});
    if (!m.is_moe())
      t.insert(t.end(), {{k::ffn_up_input, 1, h},
                         {k::swiglu_input, 1, 2 * f},
                         {k::swiglu_intermediate, 1, f},
                         {k::ffn_down_input, 1, f}});
  } else {
    t = {{k::layernorm_input, 2, h}, {k::layernorm_stats, 2, 2}};
    t.insert(t.end(), attn.begin(), attn.end());
    if (!m.is_moe())
      t.insert(t.end(), {{k::fc1_input, 1, h}, {k::gelu_input, 1, f}, {k::fc2_input, 1, f}});
  }
  if (m.is_moe()) { // the MLP as a mixture of experts (file comment)
    const std::int64_t topk = m.moe_top_k, fe = m.moe_ffn_or_ffn();
    const std::int64_t act = m.block == block_kind::llama ? 2 * fe : fe; // SwiGLU: gate and up
    t.insert(t.end(), {{k::moe_router_input, 1, h},
                       {k::moe_router_probs, 1, m.experts},
                       {k::moe_expert_input, 1, topk * h},
                       {k::moe_expert_swiglu_input, 1, topk * act},
                       {k::moe_expert_down_input, 1, topk * fe}});
  }
  return t;
}

inline int native_bytes(layer_kind k, const model_shape& m) noexcept {
  return is_statistic(k) || (is_norm_input(k) && m.norm_fp32) ? 4 : 2;
}

//! The MoE fields of `m` (plan_memory's message style); nothing to check for a dense model.
inline void check_moe_shape(const model_shape& m) {
  const std::string fn = "agoq::plan_memory: ";
  if (m.experts < 0)
    throw invalid_argument(fn + "shape.experts must be >= 0 (0 = dense MLP), got " +
                           std::to_string(m.experts));
  if (!m.is_moe()) return;
  if (m.moe_top_k < 1 || m.moe_top_k > m.experts)
    throw invalid_argument(fn + "shape.moe_top_k must be in 1..shape.experts (" +
                           std::to_string(m.experts) + "), got " + std::to_string(m.moe_top_k));
  if (m.moe_ffn < 0)
    throw invalid_argument(fn + "shape.moe_ffn must be >= 0 (0 = shape.ffn), got " +
                           std::to_string(m.moe_ffn));
}

//! True for the enumerators of block_kind / accounting (a value cast from an integer may be
//! neither).
constexpr bool is_known(block_kind b) noexcept {
  return b == block_kind::llama || b == block_kind::gpt;
}
constexpr bool is_known(accounting a) noexcept {
  return a == accounting::exact || a == accounting::paper;
}

//! a * b for a, b >= 0; throws invalid_argument "<fn><what> overflows std::int64_t ..." when the
//! product does not fit (the planner refuses such shapes instead of wrapping).
inline std::int64_t plan_mul(std::int64_t a, std::int64_t b, const std::string& fn,
                             const std::string& what) {
  if (a != 0 && b > INT64_MAX / a)
    throw invalid_argument(fn + what + " overflows std::int64_t (the shape is too large)");
  return a * b;
}
//! a + b for a, b >= 0, checked like plan_mul.
inline std::int64_t plan_add(std::int64_t a, std::int64_t b, const std::string& fn,
                             const std::string& what) {
  if (b > INT64_MAX - a)
    throw invalid_argument(fn + what + " overflows std::int64_t (the shape is too large)");
  return a + b;
}

inline void check_accounting(accounting a, const std::string& fn, const char* name) {
  if (!is_known(a))
    throw invalid_argument(fn + name + " must be accounting::exact or accounting::paper, got " +
                           std::to_string(int(a)));
}

inline void check_shape(const model_shape& m, const std::string& fn = "agoq::plan_memory: ") {
  if (!is_known(m.block))
    throw invalid_argument(fn + "shape.block must be block_kind::llama or block_kind::gpt, got " +
                           std::to_string(int(m.block)));
  if (!is_known(m.schedule))
    throw invalid_argument(fn +
                           "shape.schedule must be a pipeline_schedule (gpipe, "
                           "one_f_one_b or interleaved_1f1b), got " +
                           std::to_string(int(m.schedule)));
  auto positive = [&](int v, const char* name) {
    if (v < 1)
      throw invalid_argument(fn + "shape." + name + " must be >= 1, got " + std::to_string(v));
  };
  positive(m.layers, "layers");
  positive(m.hidden, "hidden");
  positive(m.ffn, "ffn");
  positive(m.heads, "heads");
  positive(m.seq, "seq");
  positive(m.micro_batch, "micro_batch");
  positive(m.stages, "stages");
  positive(m.micro_batches, "micro_batches");
  positive(m.virtual_stages, "virtual_stages");
  if (m.kv_heads < 0)
    throw invalid_argument(fn + "shape.kv_heads must be >= 0 (0 = heads), got " +
                           std::to_string(m.kv_heads));
  if (m.hidden % m.heads != 0)
    throw invalid_argument(fn + "shape.hidden (" + std::to_string(m.hidden) +
                           ") must be a multiple of shape.heads (" + std::to_string(m.heads) + ")");
  if (m.heads % m.kv_heads_or_heads() != 0)
    throw invalid_argument(fn + "shape.heads (" + std::to_string(m.heads) +
                           ") must be a multiple of shape.kv_heads (" +
                           std::to_string(m.kv_heads_or_heads()) + ")");
  // in 64 bits: stages x virtual_stages may exceed int (65536 x 65536 wrapped to 0 and divided)
  const std::int64_t chunks = std::int64_t(m.stages) * m.virtual_stages;
  if (m.layers % chunks != 0)
    throw invalid_argument(fn + "shape.layers (" + std::to_string(m.layers) +
                           ") must be a multiple of stages x virtual_stages (" +
                           std::to_string(chunks) + ")");
}

} // namespace detail

namespace detail {
//! layer_activation_memory, its errors prefixed with `fn` (plan_memory passes its own name).
template <class Policy>
layer_memory layer_activation_memory(const std::string& fn, const model_shape& m,
                                     const Policy& policy, int bits, accounting acct) {
  detail::check_shape(m, fn);
  detail::check_moe_shape(m);
  detail::check_accounting(acct, fn, "acct");
  const save_plan base = to_save_plan(policy);
  validate(base);
  const save_plan plan = at_stage_bits(base, bits);
  layer_memory out;
  out.bits = bits;
  const std::int64_t tokens = m.tokens();
  for (const detail::block_tensor& bt : detail::block_tensors(m)) {
    tensor_memory t;
    t.kind = bt.kind;
    t.count = bt.count;
    t.per_token = bt.per_token;
    t.entry = plan[bt.kind];
    const bool skip = acct == accounting::paper && is_statistic(bt.kind);
    // Every product and sum is checked: a shape whose bytes do not fit in std::int64_t is
    // refused (naming the tensor), never wrapped.
    const std::string of = std::string("the activation bytes of ") + to_string(bt.kind) +
                           " (shape.micro_batch x shape.seq x " + std::to_string(bt.per_token) +
                           " elements per token)";
    const std::int64_t elements = detail::plan_mul(tokens, bt.per_token, fn, of);
    const std::int64_t native =
        detail::plan_mul(elements, detail::native_bytes(bt.kind, m), fn, of);
    std::int64_t one = 0;
    switch (t.entry.action) {
    case save_action::keep: one = native; break;
    case save_action::recompute: one = 0; break;
    case save_action::store:
      if (acct == accounting::paper) {
        one = detail::plan_add(detail::plan_mul(elements, bits_of(t.entry.spec.format), fn, of), 7,
                               fn, of) /
              8;
      } else {
        if (validate_shape(t.entry.spec, tokens, bt.per_token) != nullptr)
          throw invalid_argument(fn + of + " overflows std::int64_t (the shape is too large)");
        // in validate_shape's domain each term fits; their sum is checked
        one = detail::plan_add(
            std::int64_t(codes_bytes(t.entry.spec, tokens, bt.per_token)),
            detail::plan_add(std::int64_t(scales_bytes(t.entry.spec, tokens, bt.per_token)),
                             std::int64_t(zeros_bytes(t.entry.spec, tokens, bt.per_token)), fn, of),
            fn, of);
      }
      break;
    }
    t.bytes = skip ? 0 : detail::plan_mul(one, bt.count, fn, of);
    t.baseline_bytes = skip ? 0 : detail::plan_mul(native, bt.count, fn, of);
    out.bytes = detail::plan_add(out.bytes, t.bytes, fn, "the bytes of one layer");
    out.baseline_bytes = detail::plan_add(out.baseline_bytes, t.baseline_bytes, fn,
                                          "the baseline bytes of one layer");
    out.tensors.push_back(t);
  }
  return out;
}
} // namespace detail

//! Activation bytes of one layer of `m` under `policy` (a `save_plan` or a callable
//! `save_entry(layer_kind)`), with stage-following entries at `bits` (2..8 or 16), against the
//! BF16 baseline. Throws invalid_argument for a bad shape, bits or policy (see `validate`).
//! Example: `layer_activation_memory(m, paper_save_plan(), 4, accounting::paper).bytes`
//!          `== 31 * m.unit_bytes() / 4` for a LLaMA layer with ffn = 4 hidden.
//! A shape whose byte counts do not fit in std::int64_t is refused too (never wrapped).
template <class Policy>
layer_memory layer_activation_memory(const model_shape& m, const Policy& policy, int bits,
                                     accounting acct = accounting::exact) {
  return detail::layer_activation_memory("agoq::layer_activation_memory: ", m, policy, bits, acct);
}

//! Plans the activation memory of every pipeline stage of `m` at its peak under `policy`:
//! simulates `m.schedule` for the stashes, picks DBCA-PP widths (or base_bits when !o.dbca), and
//! multiplies. Throws invalid_argument for a bad shape (non-positive sizes, hidden not a multiple
//! of heads, layers not a multiple of stages x virtual_stages, ...), schedule or policy.
template <class Policy>
memory_plan plan_memory(const model_shape& m, const Policy& policy, const plan_options& o = {}) {
  const std::string fn = "agoq::plan_memory: ";
  detail::check_shape(m, fn);
  detail::check_moe_shape(m);
  detail::check_accounting(o.acct, fn, "o.acct");
  const save_plan plan = to_save_plan(policy);
  const std::vector<int> stash =
      peak_stash(m.schedule, m.stages, m.micro_batches, m.virtual_stages);
  std::vector<int> bits = stage_bits(stash, o.bits);
  if (!o.dbca) std::fill(bits.begin(), bits.end(), o.bits.base_bits);
  memory_plan out;
  out.shape = m;
  const int chunk_layers = int(m.layers / (std::int64_t(m.stages) * m.virtual_stages));
  for (int s = 0; s < m.stages; ++s) {
    const layer_memory l =
        detail::layer_activation_memory(fn, m, plan, bits[std::size_t(s)], o.acct);
    stage_memory st;
    st.stage = s;
    st.stash = stash[std::size_t(s)];
    st.chunk_layers = chunk_layers;
    st.bits = bits[std::size_t(s)];
    const std::string of = "stage " + std::to_string(s) +
                           "'s bytes (stash x layers / (shape.stages x shape.virtual_stages) x "
                           "one layer's bytes)";
    const std::int64_t held = detail::plan_mul(st.stash, chunk_layers, fn, of);
    st.bytes = detail::plan_mul(held, l.bytes, fn, of);
    st.baseline_bytes = detail::plan_mul(held, l.baseline_bytes, fn, of);
    out.peak_bytes = std::max(out.peak_bytes, st.bytes);
    out.peak_baseline_bytes = std::max(out.peak_baseline_bytes, st.baseline_bytes);
    out.stages.push_back(st);
  }
  return out;
}

} // namespace agoq

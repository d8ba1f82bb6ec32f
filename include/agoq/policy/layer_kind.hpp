// SPDX-License-Identifier: Apache-2.0
//! @file policy/layer_kind.hpp
//! `layer_kind`: the activations a transformer layer keeps for its backward pass, one enumerator
//! per tensor, with its name, its group, and the tensor it is naturally recomputed from.
//!
//! The LLaMA (pre-norm, RMSNorm, SwiGLU) layer, in forward order:
//!
//! | kind                    | tensor (per token)                                        | native |
//! |-------------------------|-----------------------------------------------------------|--------|
//! | attn_norm_input         | input of the first RMSNorm (h)                            | fp32*  |
//! | attn_norm_stats         | its 1/rms (1)                                             | fp32   |
//! | qkv_input               | RMSNorm output = input of the QKV GEMM (h)                | bf16   |
//! | attention_qkv_pre_rope  | pre-RoPE Q and K of the fused QKV GEMM output (h + kv)    | bf16   |
//! | attention_q             | Q after RoPE (h)                                          | bf16   |
//! | attention_k             | K after RoPE (kv)                                         | bf16   |
//! | attention_v             | V (kv)                                                    | bf16   |
//! | attention_softmax_stats | softmax log-sum-exp, one per head (heads)                 | fp32   |
//! | out_proj_input          | attention output O = input of the output projection (h)   | bf16   |
//! | ffn_norm_input          | input of the second RMSNorm (h)                           | fp32*  |
//! | ffn_norm_stats          | its 1/rms (1)                                             | fp32   |
//! | ffn_up_input            | RMSNorm output = input of the gate/up GEMM (h)            | bf16   |
//! | swiglu_input            | gate and up GEMM outputs (2 ffn)                          | bf16   |
//! | swiglu_intermediate     | sigma(gate) kept by SiLU&Mul (ffn)                        | bf16   |
//! | ffn_down_input          | SwiGLU output = input of the down GEMM (ffn)              | bf16   |
//!
//! h = hidden, kv = kv_heads * hidden / heads, * = fp32 when norms run in fp32 (Megatron, paper).
//!
//! Why the attention core is 5U (the paper's Table 1, multi-head attention): Megatron's local path
//! runs one fused QKV GEMM; Q and K pass through RoPE into new tensors, while V stays a view into
//! the fused output, so flash attention's saved (Q', K', V) keep the whole fused buffer alive:
//! Q' + K' + V + (pre-RoPE Q and K) = 1 + 1 + 1 + 2 = 5U. Flash attention also saves its output
//! O; that is the out-projection input and is counted once, there ("Linear", 1U).
//!
//! Kinds for other layer types: LayerNorm (`layernorm_input`, `layernorm_stats`) and GELU MLP
//! (`fc1_input`, `gelu_input`, `fc2_input`) make the planner's GPT block; the MoE kinds
//! (`moe_router_input`, `moe_router_probs`, `moe_expert_input`, `moe_expert_swiglu_input`,
//! `moe_expert_down_input`) replace the MLP's when `model_shape::experts > 0` (planner.hpp; for a
//! GPT block `moe_expert_swiglu_input` holds the experts' GELU input). The embedding output
//! (`embedding_output`) is not planned; a policy can name it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace agoq {

//! One activation tensor a transformer layer may keep for backward. See the file comment.
enum class layer_kind : std::uint8_t {
  // LLaMA layer
  attn_norm_input,
  attn_norm_stats,
  qkv_input,
  attention_qkv_pre_rope,
  attention_q,
  attention_k,
  attention_v,
  attention_softmax_stats,
  out_proj_input,
  ffn_norm_input,
  ffn_norm_stats,
  ffn_up_input,
  swiglu_input,
  swiglu_intermediate,
  ffn_down_input,
  // LayerNorm / GELU MLP (GPT-style)
  layernorm_input,
  layernorm_stats,
  fc1_input,
  gelu_input,
  fc2_input,
  // MoE
  moe_router_input,
  moe_router_probs,
  moe_expert_input,
  moe_expert_swiglu_input,
  moe_expert_down_input,
  // Embedding
  embedding_output,
};

//! Number of `layer_kind` enumerators; `layer_kind(i)` for i < this is valid.
inline constexpr std::size_t layer_kind_count = std::size_t(layer_kind::embedding_output) + 1;

//! The stable snake_case name of `k`, as used by the policy text form, e.g. "qkv_input".
constexpr const char* to_string(layer_kind k) noexcept {
  switch (k) {
  case layer_kind::attn_norm_input: return "attn_norm_input";
  case layer_kind::attn_norm_stats: return "attn_norm_stats";
  case layer_kind::qkv_input: return "qkv_input";
  case layer_kind::attention_qkv_pre_rope: return "attention_qkv_pre_rope";
  case layer_kind::attention_q: return "attention_q";
  case layer_kind::attention_k: return "attention_k";
  case layer_kind::attention_v: return "attention_v";
  case layer_kind::attention_softmax_stats: return "attention_softmax_stats";
  case layer_kind::out_proj_input: return "out_proj_input";
  case layer_kind::ffn_norm_input: return "ffn_norm_input";
  case layer_kind::ffn_norm_stats: return "ffn_norm_stats";
  case layer_kind::ffn_up_input: return "ffn_up_input";
  case layer_kind::swiglu_input: return "swiglu_input";
  case layer_kind::swiglu_intermediate: return "swiglu_intermediate";
  case layer_kind::ffn_down_input: return "ffn_down_input";
  case layer_kind::layernorm_input: return "layernorm_input";
  case layer_kind::layernorm_stats: return "layernorm_stats";
  case layer_kind::fc1_input: return "fc1_input";
  case layer_kind::gelu_input: return "gelu_input";
  case layer_kind::fc2_input: return "fc2_input";
  case layer_kind::moe_router_input: return "moe_router_input";
  case layer_kind::moe_router_probs: return "moe_router_probs";
  case layer_kind::moe_expert_input: return "moe_expert_input";
  case layer_kind::moe_expert_swiglu_input: return "moe_expert_swiglu_input";
  case layer_kind::moe_expert_down_input: return "moe_expert_down_input";
  case layer_kind::embedding_output: return "embedding_output";
  }
  return "unknown_layer_kind";
}

inline std::ostream& operator<<(std::ostream& os, layer_kind k) { return os << to_string(k); }

//! Groups of kinds that the text form and the docs name together.
enum class layer_group : std::uint8_t {
  rmsnorm_input,     //!< attn_norm_input, ffn_norm_input
  norm_stats,        //!< attn_norm_stats, ffn_norm_stats, layernorm_stats
  gemm_input,        //!< qkv_input, ffn_up_input, ffn_down_input, fc1_input, fc2_input, moe_*
  attention_core,    //!< attention_qkv_pre_rope, attention_q/k/v, attention_softmax_stats
  out_proj_input,    //!< out_proj_input
  activation_input,  //!< swiglu_input, gelu_input, moe_expert_swiglu_input
  activation_state,  //!< swiglu_intermediate, moe_router_probs
  other,             //!< layernorm_input, embedding_output
};

//! The group of `k`.
constexpr layer_group group_of(layer_kind k) noexcept {
  switch (k) {
  case layer_kind::attn_norm_input:
  case layer_kind::ffn_norm_input: return layer_group::rmsnorm_input;
  case layer_kind::attn_norm_stats:
  case layer_kind::ffn_norm_stats:
  case layer_kind::layernorm_stats: return layer_group::norm_stats;
  case layer_kind::qkv_input:
  case layer_kind::ffn_up_input:
  case layer_kind::ffn_down_input:
  case layer_kind::fc1_input:
  case layer_kind::fc2_input:
  case layer_kind::moe_router_input:
  case layer_kind::moe_expert_input:
  case layer_kind::moe_expert_down_input: return layer_group::gemm_input;
  case layer_kind::attention_qkv_pre_rope:
  case layer_kind::attention_q:
  case layer_kind::attention_k:
  case layer_kind::attention_v:
  case layer_kind::attention_softmax_stats: return layer_group::attention_core;
  case layer_kind::out_proj_input: return layer_group::out_proj_input;
  case layer_kind::swiglu_input:
  case layer_kind::gelu_input:
  case layer_kind::moe_expert_swiglu_input: return layer_group::activation_input;
  case layer_kind::swiglu_intermediate:
  case layer_kind::moe_router_probs: return layer_group::activation_state;
  case layer_kind::layernorm_input:
  case layer_kind::embedding_output: return layer_group::other;
  }
  return layer_group::other;
}

//! True for the small fp32 statistics (norm 1/rms, softmax log-sum-exp, router probabilities)
//! that stay fp32 when kept and that the paper's accounting leaves out.
constexpr bool is_statistic(layer_kind k) noexcept {
  return k == layer_kind::attn_norm_stats || k == layer_kind::ffn_norm_stats ||
         k == layer_kind::layernorm_stats || k == layer_kind::attention_softmax_stats ||
         k == layer_kind::moe_router_probs;
}

//! True for the inputs of normalization layers (fp32 in the Megatron BF16 baseline).
constexpr bool is_norm_input(layer_kind k) noexcept {
  return k == layer_kind::attn_norm_input || k == layer_kind::ffn_norm_input ||
         k == layer_kind::layernorm_input;
}

//! The stored tensor `k` is naturally recomputed from in backward (itself for tensors that are
//! only ever stored): a norm's output and statistics from its input, the QKV/up GEMM inputs from
//! the RMSNorm input, the down-GEMM input and the SwiGLU state from the SwiGLU input.
//! Example: `recompute_source(layer_kind::qkv_input) == layer_kind::attn_norm_input`.
constexpr layer_kind recompute_source(layer_kind k) noexcept {
  switch (k) {
  case layer_kind::attn_norm_stats:
  case layer_kind::qkv_input: return layer_kind::attn_norm_input;
  case layer_kind::ffn_norm_stats:
  case layer_kind::ffn_up_input:
  case layer_kind::moe_router_input:
  case layer_kind::moe_expert_input: return layer_kind::ffn_norm_input;
  case layer_kind::swiglu_intermediate:
  case layer_kind::ffn_down_input: return layer_kind::swiglu_input;
  case layer_kind::layernorm_stats:
  case layer_kind::fc1_input: return layer_kind::layernorm_input;
  case layer_kind::fc2_input: return layer_kind::gelu_input;
  case layer_kind::moe_expert_down_input: return layer_kind::moe_expert_swiglu_input;
  default: return k;
  }
}

} // namespace agoq

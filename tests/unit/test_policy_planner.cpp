// SPDX-License-Identifier: Apache-2.0
// The memory planner against the paper's Table 1 and hand-derived stage totals.
#include "agoq/policy/planner.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>

using namespace agoq;

namespace {
// Table 1's layer: multi-head attention, ffn = 4 x hidden (so the SwiGLU input, gate + up, is 8U
// and the down-GEMM input 4U). U = mb x seq x hidden x 2 bytes.
model_shape table1_shape() {
  model_shape m;
  m.hidden = 4096;
  m.ffn = 4 * 4096;
  m.heads = 32;
  m.seq = 4096;
  m.micro_batch = 1;
  return m;
}
// x in units of U/4, to compare exactly.
std::int64_t quarter_units(std::int64_t bytes, const model_shape& m) {
  EXPECT_EQ(bytes * 4 % m.unit_bytes(), 0) << bytes;
  return bytes * 4 / m.unit_bytes();
}
} // namespace

// Table 1, Megatron BF16 row: QKV 1, Attn 5, Linear 1, RMSNorm 4, FFN1 1, Act 12, FFN2 4 = 28U.
TEST(PolicyPlanner, Table1Baseline) {
  const model_shape m = table1_shape();
  const auto l = layer_activation_memory(m, bf16_save_plan(), 4, accounting::paper);
  using k = layer_kind;
  const std::int64_t U = m.unit_bytes();
  EXPECT_EQ(l.bytes, 28 * U);
  EXPECT_EQ(l.baseline_bytes, 28 * U);
  EXPECT_EQ(l.bytes_of(k::qkv_input), 1 * U);
  EXPECT_EQ(l.bytes_of(k::attention_qkv_pre_rope) + l.bytes_of(k::attention_q) +
                l.bytes_of(k::attention_k) + l.bytes_of(k::attention_v),
            5 * U);
  EXPECT_EQ(l.bytes_of(k::out_proj_input), 1 * U);
  EXPECT_EQ(l.bytes_of(k::attn_norm_input) + l.bytes_of(k::ffn_norm_input), 4 * U);
  EXPECT_EQ(l.bytes_of(k::ffn_up_input), 1 * U);
  EXPECT_EQ(l.bytes_of(k::swiglu_input) + l.bytes_of(k::swiglu_intermediate), 12 * U);
  EXPECT_EQ(l.bytes_of(k::ffn_down_input), 4 * U);
}

// Table 1, AGoQ row: QKV 0, Attn 5, Linear 0.25, RMSNorm 0.5, FFN1 0, Act 2, FFN2 0 = 7.75U.
TEST(PolicyPlanner, Table1Agoq) {
  const model_shape m = table1_shape();
  const auto l = layer_activation_memory(m, paper_save_plan(), 4, accounting::paper);
  using k = layer_kind;
  EXPECT_EQ(quarter_units(l.bytes, m), 31); // 7.75U
  EXPECT_EQ(quarter_units(l.baseline_bytes, m), 112);
  EXPECT_EQ(l.bytes_of(k::qkv_input), 0);
  EXPECT_EQ(quarter_units(l.bytes_of(k::attention_qkv_pre_rope) + l.bytes_of(k::attention_q) +
                              l.bytes_of(k::attention_k) + l.bytes_of(k::attention_v),
                          m),
            20);
  EXPECT_EQ(quarter_units(l.bytes_of(k::out_proj_input), m), 1);
  EXPECT_EQ(quarter_units(l.bytes_of(k::attn_norm_input) + l.bytes_of(k::ffn_norm_input), m), 2);
  EXPECT_EQ(l.bytes_of(k::ffn_up_input), 0);
  EXPECT_EQ(quarter_units(l.bytes_of(k::swiglu_input), m), 8);
  EXPECT_EQ(l.bytes_of(k::swiglu_intermediate), 0);
  EXPECT_EQ(l.bytes_of(k::ffn_down_input), 0);
}

// Exact accounting: the 11 hidden-widths stored at 4 bits carry an fp32 scale per 128 elements
// (4.25 bits/element), and the softmax log-sum-exp (heads fp32 per token) is kept. The baseline
// adds both RMSNorm 1/rms (fp32 per token) and the log-sum-exp.
TEST(PolicyPlanner, Table1ExactAccounting) {
  const model_shape m = table1_shape();
  const std::int64_t tokens = m.tokens(), h = m.hidden, U = m.unit_bytes();
  const auto l = layer_activation_memory(m, paper_save_plan(), 4, accounting::exact);
  const std::int64_t quantized = 11 * tokens * h / 2 + 11 * tokens * (h / 128) * 4;
  EXPECT_EQ(l.bytes, 5 * U + quantized + tokens * 32 * 4);
  EXPECT_EQ(l.baseline_bytes, 28 * U + tokens * (4 + 4 + 32 * 4));
  EXPECT_DOUBLE_EQ(double(quantized) / double(U), 2.75 * 4.25 / 4.0);
}

// GQA with 8 of 32 KV heads: kv = hidden / 4, attention = (h + kv) + h + kv + kv = 2.75U.
TEST(PolicyPlanner, GroupedQueryAttention) {
  model_shape m = table1_shape();
  m.kv_heads = 8;
  const auto l = layer_activation_memory(m, paper_save_plan(), 4, accounting::paper);
  EXPECT_EQ(quarter_units(l.bytes, m), 11 + 11); // 2.75U attention + 2.75U quantized
}

// Per stage, paper example: 32 layers, 4 stages, v = 2 -> 4 layers per chunk; stashes 11/9/7/5,
// widths 4/4/6/8. A layer at b bits costs 5U + 11 b / 16 U: 7.75U, 7.75U, 9.125U, 10.5U.
// Stage bytes = stash x 4 x layer: 341U, 279U, 255.5U, 210U; baseline 11 x 4 x 28U = 1232U.
TEST(PolicyPlanner, StagesWithDbca) {
  model_shape m = table1_shape();
  m.layers = 32;
  m.stages = 4;
  m.micro_batches = 8;
  m.virtual_stages = 2;
  m.schedule = pipeline_schedule::interleaved_1f1b;
  plan_options o;
  o.acct = accounting::paper;
  const memory_plan p = plan_memory(m, paper_save_plan(), o);
  ASSERT_EQ(p.stages.size(), 4u);
  const std::int64_t expect4[] = {341 * 4, 279 * 4, 1022, 210 * 4}; // in U/4
  const int bits[] = {4, 4, 6, 8}, stash[] = {11, 9, 7, 5};
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(p.stages[s].bits, bits[s]);
    EXPECT_EQ(p.stages[s].stash, stash[s]);
    EXPECT_EQ(p.stages[s].chunk_layers, 4);
    EXPECT_EQ(quarter_units(p.stages[s].bytes, m), expect4[s]) << "stage " << s;
    EXPECT_EQ(quarter_units(p.stages[s].baseline_bytes, m), stash[s] * 4 * 112);
  }
  EXPECT_EQ(quarter_units(p.peak_bytes, m), 341 * 4);
  EXPECT_EQ(quarter_units(p.peak_baseline_bytes, m), 1232 * 4);
  EXPECT_NEAR(p.saving(), 1.0 - 7.75 / 28.0, 1e-12);

  o.dbca = false; // every stage at 4 bits
  const memory_plan q = plan_memory(m, paper_save_plan(), o);
  EXPECT_EQ(quarter_units(q.stages[3].bytes, m), 5 * 4 * 31);
}

// A user policy as a callable: keep everything -> the baseline; a struct policy overriding one.
struct fp8_swiglu_policy {
  save_entry operator()(layer_kind k) const {
    if (k == layer_kind::swiglu_input) return save_entry::stored(quant_spec{format::fp8_e4m3});
    return paper_save_plan()(k);
  }
};
TEST(PolicyPlanner, CallablePolicies) {
  const model_shape m = table1_shape();
  const auto keep_all = [](layer_kind) { return save_entry::kept(); };
  const auto l = layer_activation_memory(m, keep_all, 4, accounting::paper);
  EXPECT_EQ(l.bytes, 28 * m.unit_bytes());
  // SwiGLU input 8U at 8 bits = 4U instead of 2U: 7.75 + 2 = 9.75U.
  const auto f = layer_activation_memory(m, fp8_swiglu_policy{}, 4, accounting::paper);
  EXPECT_EQ(quarter_units(f.bytes, m), 39);
}

TEST(PolicyPlanner, RejectsBadShapes) {
  model_shape m = table1_shape();
  m.layers = 30;
  m.stages = 4;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  m = table1_shape();
  m.heads = 3000;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  m = table1_shape();
  m.kv_heads = 5;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  m = table1_shape();
  m.seq = 0;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  EXPECT_THROW(layer_activation_memory(table1_shape(), paper_save_plan(), 9), invalid_argument);
}

// MoE (file comment of planner.hpp): Table 1's layer with its MLP as 8 experts, top-2, expert FFN
// = ffn. Paper accounting at 4 bits: the dense MLP's stored SwiGLU input (2U) becomes the two
// experts' SwiGLU inputs (4U); everything else of the MoE MLP is recomputed or a statistic.
// BF16: router input 1U + expert inputs 2U + SwiGLU inputs 16U + down inputs 8U = 27U instead of
// the dense MLP's 17U (up 1 + SwiGLU 8 + its state 4 + down 4).
TEST(PolicyPlanner, MixtureOfExperts) {
  model_shape m = table1_shape();
  m.experts = 8;
  m.moe_top_k = 2;
  const auto l = layer_activation_memory(m, paper_save_plan(), 4, accounting::paper);
  EXPECT_EQ(quarter_units(l.bytes, m), 39);
  EXPECT_EQ(l.baseline_bytes, 38 * m.unit_bytes());
  EXPECT_EQ(l.bytes_of(layer_kind::swiglu_input), 0); // no dense MLP
  EXPECT_EQ(l.bytes_of(layer_kind::moe_expert_swiglu_input), 4 * m.unit_bytes());
  // exact accounting keeps the router probabilities: fp32, one per expert and token
  const auto e = layer_activation_memory(m, paper_save_plan(), 4, accounting::exact);
  EXPECT_EQ(e.bytes_of(layer_kind::moe_router_probs), m.tokens() * 8 * 4);
  EXPECT_EQ(e.baseline_bytes_of(layer_kind::moe_router_probs), m.tokens() * 8 * 4);
  // a smaller expert FFN (moe_ffn) and top-1: SwiGLU inputs 1 x 2 x ffn/4 = 2h -> 0.5U at 4 bits
  m.moe_top_k = 1;
  m.moe_ffn = m.ffn / 4;
  const auto s = layer_activation_memory(m, paper_save_plan(), 4, accounting::paper);
  EXPECT_EQ(quarter_units(s.bytes, m), 31 - 8 + 2);
  // GPT experts have a GELU MLP: their activation input is top_k x f_e, not 2 x
  m.block = block_kind::gpt;
  const auto g = layer_activation_memory(m, bf16_save_plan(), 4, accounting::paper);
  EXPECT_EQ(g.baseline_bytes_of(layer_kind::moe_expert_swiglu_input), m.unit_bytes());
  EXPECT_EQ(g.bytes_of(layer_kind::gelu_input), 0);
  // a dense model ignores the MoE fields in == and in the plan
  model_shape d1 = table1_shape(), d2 = table1_shape();
  d2.moe_top_k = 5;
  EXPECT_EQ(d1, d2);
}

TEST(PolicyPlanner, RejectsBadMoeShapes) {
  model_shape m = table1_shape();
  m.experts = -1;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  m.experts = 4;
  m.moe_top_k = 5;
  try {
    plan_memory(m, paper_save_plan());
    ADD_FAILURE() << "top_k > experts accepted";
  } catch (const invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("moe_top_k"), std::string::npos) << e.what();
  }
  m.moe_top_k = 0;
  EXPECT_THROW(plan_memory(m, paper_save_plan()), invalid_argument);
  m.moe_top_k = 2;
  m.moe_ffn = -8;
  EXPECT_THROW(layer_activation_memory(m, paper_save_plan(), 4), invalid_argument);
}

// operator<< of a plan: human units and each stage's resolved width.
TEST(PolicyPlanner, PrintsHumanUnitsAndStageBits) {
  model_shape m = model_shape::llama2_7b();
  m.stages = 4;
  m.micro_batches = 8;
  m.virtual_stages = 2;
  m.schedule = pipeline_schedule::interleaved_1f1b;
  std::ostringstream os;
  os << plan_memory(m, paper_save_plan());
  const std::string s = os.str();
  EXPECT_NE(s.find("bits per stage 4 4 6 8"), std::string::npos) << s;
  EXPECT_NE(s.find("GiB"), std::string::npos) << s;
  EXPECT_NE(s.find("{stage 1: 4 bits, stash 11 x 4 layers, 9.96 GiB (bf16 31.3 GiB"),
            std::string::npos)
      << s;
  EXPECT_EQ(detail::human_bytes(512), "512 B");
  EXPECT_EQ(detail::human_bytes(3 << 20), "3.00 MiB");
  EXPECT_EQ(detail::human_bytes(std::int64_t(1) << 40), "1.00 TiB");
}

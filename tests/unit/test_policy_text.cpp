// SPDX-License-Identifier: Apache-2.0
// layer_kind, save_plan defaults and overrides, and the policy text form.
#include "agoq/policy/policy.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace agoq;

namespace {
std::string error_of(const std::string& text) {
  try {
    parse_policy(text);
  } catch (const invalid_argument& e) {
    return e.what();
  }
  return "no error";
}
bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
} // namespace

TEST(PolicySavePlan, PaperDefaults) {
  constexpr save_plan p = paper_save_plan();
  using k = layer_kind;
  static_assert(p[k::attention_q].action == save_action::keep, "attention core is never quantized");
  static_assert(p[k::qkv_input] == save_entry::recomputed(k::attn_norm_input), "");
  static_assert(p[k::ffn_down_input] == save_entry::recomputed(k::swiglu_input), "");
  EXPECT_EQ(p[k::attn_norm_input], save_entry::stage_stored(128));
  EXPECT_EQ(p[k::out_proj_input].spec.format, format::int4);
  EXPECT_EQ(p[k::out_proj_input].spec.block, 128);
  EXPECT_TRUE(p[k::swiglu_input].follows_stage);
  EXPECT_EQ(p[k::ffn_up_input], save_entry::recomputed(k::ffn_norm_input));
  EXPECT_EQ(p[k::swiglu_intermediate], save_entry::recomputed(k::swiglu_input));
  EXPECT_EQ(p[k::attention_softmax_stats], save_entry::kept());
  EXPECT_NO_THROW(validate(p));
  EXPECT_EQ(std::string(to_string(k::ffn_down_input)), "ffn_down_input");
  EXPECT_EQ(layer_kind(layer_kind_count - 1), k::embedding_output);
}

TEST(PolicySavePlan, StageBitsAndOverrides) {
  const save_plan p6 = at_stage_bits(paper_save_plan(), 6);
  EXPECT_EQ(p6[layer_kind::swiglu_input].spec.format, format::int6);
  EXPECT_EQ(at_stage_bits(paper_save_plan(), 16)[layer_kind::swiglu_input], save_entry::kept());
  save_plan p = paper_save_plan();
  p.set(layer_kind::out_proj_input, save_entry::stored(quant_spec{format::int8, 64}));
  EXPECT_EQ(at_stage_bits(p, 6)[layer_kind::out_proj_input].spec.format, format::int8);
  p.set(layer_group::rmsnorm_input, save_entry::kept());
  EXPECT_EQ(p[layer_kind::ffn_norm_input], save_entry::kept());
  save_plan bad = paper_save_plan();
  bad.set(layer_kind::attn_norm_input, save_entry::recomputed(layer_kind::qkv_input)); // cycle
  EXPECT_THROW(validate(bad), invalid_argument);
}

TEST(PolicyText, ParsesTheExample) {
  const save_plan p = parse_policy("rmsnorm_input=int4/128, attention_core=bf16");
  save_plan want = paper_save_plan();
  want.set(layer_kind::attn_norm_input, save_entry::stored(quant_spec{format::int4, 128}))
      .set(layer_kind::ffn_norm_input, save_entry::stored(quant_spec{format::int4, 128}));
  EXPECT_EQ(p, want);
  EXPECT_EQ(to_string(p, paper_save_plan()), "rmsnorm_input=int4/128");
}

TEST(PolicyText, ParsesEveryValueForm) {
  const save_plan p = parse_policy(
      "swiglu_input=fp8_e4m3/64/e8m0, out_proj_input=int8/256/stochastic/asym,"
      "ffn_down_input=bf16,attn_norm_input=stage/32/sr,qkv_input=recompute,"
      "attention_q=recompute:attn_norm_input");
  using k = layer_kind;
  quant_spec s{format::fp8_e4m3, 64, scale_kind::e8m0};
  EXPECT_EQ(p[k::swiglu_input], save_entry::stored(s));
  s = quant_spec{format::int8, 256, scale_kind::fp32, rounding::stochastic, false};
  EXPECT_EQ(p[k::out_proj_input], save_entry::stored(s));
  EXPECT_EQ(p[k::ffn_down_input], save_entry::kept());
  save_entry st = save_entry::stage_stored(32);
  st.spec.rounding = rounding::stochastic;
  EXPECT_EQ(p[k::attn_norm_input], st);
  EXPECT_EQ(p[k::qkv_input], save_entry::recomputed(k::attn_norm_input));
  EXPECT_EQ(p[k::attention_q], save_entry::recomputed(k::attn_norm_input));
  EXPECT_EQ(to_string(p[k::out_proj_input]), "int8/256/stochastic/asym");
  EXPECT_EQ(to_string(p[k::attn_norm_input]), "stage/32/stochastic");
}

TEST(PolicyText, RoundTrips) {
  const save_plan p = parse_policy("swiglu_input=fp8_e5m2/32/pow2,gemm_input=bf16");
  EXPECT_EQ(parse_policy(to_string(p), bf16_save_plan()), p);
  EXPECT_EQ(parse_policy(to_string(p, paper_save_plan())), p);
  EXPECT_EQ(parse_policy(to_string(paper_save_plan()), bf16_save_plan()), paper_save_plan());
  EXPECT_EQ(to_string(paper_save_plan(), paper_save_plan()), "");
  EXPECT_EQ(parse_policy("paper"), paper_save_plan());
  EXPECT_TRUE(contains(to_string(paper_save_plan()), "attention_q=bf16"));
  EXPECT_TRUE(contains(to_string(paper_save_plan()), "qkv_input=recompute:attn_norm_input"));
}

TEST(PolicyText, ErrorsNameTheKeyOrValue) {
  std::string e = error_of("rmsnorm_inptu=int4");
  EXPECT_TRUE(contains(e, "unknown key 'rmsnorm_inptu'")) << e;
  EXPECT_TRUE(contains(e, "attention_core")) << e; // lists accepted keys
  e = error_of("rmsnorm_input=int9/128");
  EXPECT_TRUE(contains(e, "'int9'")) << e;
  EXPECT_TRUE(contains(e, "fp8_e4m3")) << e; // lists accepted formats
  e = error_of("swiglu_input=int4/100");
  EXPECT_TRUE(contains(e, "block '100'")) << e;
  EXPECT_TRUE(contains(e, "32, 64, 128, 256")) << e;
  e = error_of("swiglu_input=fp8_e4m3/asym");
  EXPECT_TRUE(contains(e, "swiglu_input")) << e;
  EXPECT_TRUE(contains(e, "symmetric")) << e;
  e = error_of("swiglu_input=int4/128/fast");
  EXPECT_TRUE(contains(e, "'fast'")) << e;
  e = error_of("swiglu_input");
  EXPECT_TRUE(contains(e, "no '='")) << e;
  e = error_of("attention_q=recompute");
  EXPECT_TRUE(contains(e, "no natural recompute source")) << e;
  e = error_of("qkv_input=recompute:qkv_input");
  EXPECT_TRUE(contains(e, "itself")) << e;
  e = error_of("qkv_input=recompute:nothing");
  EXPECT_TRUE(contains(e, "'nothing'")) << e;
  e = error_of("attn_norm_input=recompute:qkv_input");
  EXPECT_TRUE(contains(e, "never reaches")) << e;
  e = error_of("swiglu_input=int4/64/32");
  EXPECT_TRUE(contains(e, "twice")) << e;
  e = error_of("qkv_input=bf16,,swiglu_input=bf16");
  EXPECT_TRUE(contains(e, "empty entry")) << e;
  EXPECT_THROW(parse_layer_kind("qkv"), invalid_argument);
  EXPECT_EQ(parse_layer_kind("qkv_input"), layer_kind::qkv_input);
}

TEST(PolicyText, EmptyTextIsRefusedAndPlansHaveNames) {
  std::string e = error_of("");
  EXPECT_TRUE(contains(e, "empty policy text")) << e;
  EXPECT_TRUE(contains(e, "\"paper\"")) << e;
  EXPECT_TRUE(contains(error_of("  "), "empty policy text"));
  EXPECT_EQ(parse_policy("paper", bf16_save_plan()), paper_save_plan());
  EXPECT_EQ(parse_policy(" bf16 "), bf16_save_plan());
  save_plan want = bf16_save_plan();
  want.set(layer_kind::qkv_input, save_entry::stored(quant_spec{format::int8, 64}));
  EXPECT_EQ(parse_policy("bf16, qkv_input=int8/64"), want);
  // a plan name replaces everything before it
  EXPECT_EQ(parse_policy("qkv_input=int8/64,paper"), paper_save_plan());
  e = error_of("llama");
  EXPECT_TRUE(contains(e, "not a plan name")) << e;
}

TEST(PolicyText, WhitespaceInsideValuesIsIgnored) {
  EXPECT_EQ(parse_policy(" swiglu_input = int4 / 64 / sr "),
            parse_policy("swiglu_input=int4/64/sr"));
  EXPECT_EQ(parse_policy("qkv_input = recompute : attn_norm_input"),
            parse_policy("qkv_input=recompute:attn_norm_input"));
  EXPECT_EQ(parse_policy("rmsnorm_input=stage / 32"), parse_policy("rmsnorm_input=stage/32"));
}

TEST(PolicyText, ErrorsNameTheGroupKeyAsWritten) {
  std::string e = error_of("attention_core=bf17");
  EXPECT_TRUE(contains(e, "for attention_core")) << e;
  EXPECT_TRUE(contains(e, "'bf17'")) << e;
  e = error_of("rmsnorm_input=int4/100");
  EXPECT_TRUE(contains(e, "for rmsnorm_input")) << e;
  // a kind key is named once, without the "(at ...)" of a group
  e = error_of("qkv_input=bf17");
  EXPECT_TRUE(contains(e, "for qkv_input: ")) << e;
}

// SPDX-License-Identifier: Apache-2.0
//! @file examples/plan/plan.cpp
//! agoq-plan: prints, per pipeline stage, the peak activation stash, the DBCA-PP bit width and
//! the activation memory with agoq's policy against the Megatron BF16 baseline, as a table or as
//! JSON. The model flags are Megatron-LM's, so a trainer's command line can be reused:
//!
//!   agoq-plan --model llama2-7b
//!   agoq-plan --num-layers 32 --hidden-size 4096 --ffn-hidden-size 11008
//!             --num-attention-heads 32 --num-query-groups 8 --seq-length 4096
//!             --micro-batch-size 1 --pipeline-model-parallel-size 4 --num-micro-batches 8
//!             --virtual-pipeline-model-parallel-size 2 --normalization RMSNorm --swiglu
//!   agoq-plan --model llama2-7b --num-experts 8 --moe-router-topk 2 --json
//!
//! --help lists every flag. A bad flag or value prints one line and exits with status 2.
#include "agoq/policy/policy.hpp"
#include "agoq/version.hpp"
#include "cli.hpp"

#include <cstdint>
#include <cstdio>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace {

double gib(std::int64_t bytes) { return double(bytes) / double(std::int64_t(1) << 30); }

// An agoq message without the function's name: "agoq::parse_policy: value ..." -> "value ...".
std::string without_function(std::string msg) {
  const auto colon = msg.find(": ");
  if (msg.rfind("agoq::", 0) == 0 && colon != std::string::npos) msg = msg.substr(colon + 2);
  return msg;
}

// A planner message in the flags' words: "agoq::plan_memory: shape.layers (30) must be ..." ->
// "--num-layers (30) must be ...".
std::string in_flag_words(std::string msg) {
  msg = without_function(msg);
  static const std::pair<const char*, const char*> names[] = {
      {"layers", "--num-layers"},
      {"hidden", "--hidden-size"},
      {"ffn", "--ffn-hidden-size"},
      {"heads", "--num-attention-heads"},
      {"kv_heads", "--num-query-groups"},
      {"seq", "--seq-length"},
      {"micro_batch", "--micro-batch-size"},
      {"stages", "--pipeline-model-parallel-size"},
      {"micro_batches", "--num-micro-batches"},
      {"virtual_stages", "--virtual-pipeline-model-parallel-size"},
      {"experts", "--num-experts"},
      {"moe_top_k", "--moe-router-topk"},
      {"moe_ffn", "--moe-ffn-hidden-size"},
      {"tolerance", "--tolerance"},
  };
  for (const auto& [field, flag] : names)
    msg = std::regex_replace(msg, std::regex(std::string("\\b(shape\\.)?") + field + "\\b"), flag);
  return msg;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out + "\"";
}

} // namespace

int main(int argc, char** argv) {
  // The flags' variables start at the default model's values (shown by --help); a flag given on
  // the command line overrides --model's preset wherever it appears.
  const agoq::model_shape d = agoq::model_shape::llama2_7b();
  std::string model = "llama2-7b", schedule = "interleaved-1f1b", normalization, policy_text =
                                                                                  "paper";
  int layers = d.layers, hidden = d.hidden, ffn = d.ffn, heads = d.heads, kv_heads = d.heads,
      seq = d.seq, micro_batch = d.micro_batch, stages = 4, micro_batches = 8, virtual_stages = 2,
      layers_per_virtual = 0, experts = 0, top_k = 2, moe_ffn = 0, base_bits = 4;
  double tolerance = 0.0;
  bool swiglu = false, no_dbca = false, allow_16 = false, paper_accounting = false, json = false;
  constexpr int big = 1 << 24;

  cli::parser p("agoq-plan",
                "Activation memory per pipeline stage with agoq's bit-width policy (LAAQ) and\n"
                "per-stage widths (DBCA-PP), against the Megatron BF16 baseline (norm inputs in\n"
                "FP32). Model flags are Megatron-LM's; explicit flags override --model's preset.");
  p.option("--model", "NAME", model, "model preset", {"llama2-7b", "llama2-13b"})
      .option("--num-layers", "N", layers, "transformer layers", 1, big)
      .option("--hidden-size", "N", hidden, "hidden size", 1, big)
      .option("--ffn-hidden-size", "N", ffn, "MLP intermediate size", 1, big)
      .option("--num-attention-heads", "N", heads, "attention heads", 1, big)
      .option("--num-query-groups", "N", kv_heads,
              "key/value heads of grouped-query attention (default: the number of heads)", 1, big)
      .option("--seq-length", "N", seq, "sequence length", 1, big)
      .option("--micro-batch-size", "N", micro_batch, "sequences per micro-batch", 1, big)
      .option("--normalization", "NAME", normalization,
              "with --swiglu, the block as Megatron-LM reads them: RMSNorm with --swiglu is a "
              "LLaMA block, LayerNorm without --swiglu a GPT block (GELU MLP) (default: the "
              "preset's, LLaMA)",
              {"RMSNorm", "LayerNorm"})
      .flag("--swiglu", swiglu, "SwiGLU MLP (with --normalization RMSNorm)")
      .option("--num-experts", "N", experts, "MoE: experts per layer (0: dense MLP)", 0, big)
      .option("--moe-router-topk", "K", top_k, "MoE: experts per token", 1, big)
      .option("--moe-ffn-hidden-size", "N", moe_ffn,
              "MoE: an expert's intermediate size (0: --ffn-hidden-size)", 0, big)
      .option("--pipeline-model-parallel-size", "N", stages, "pipeline stages", 1, 4096)
      .option("--num-micro-batches", "N", micro_batches,
              "micro-batches per iteration (Megatron: global batch / (micro-batch x data "
              "parallel))",
              1, big)
      .option("--virtual-pipeline-model-parallel-size", "N", virtual_stages,
              "model chunks per stage (interleaved 1F1B)", 1, 4096)
      .option("--num-layers-per-virtual-pipeline-stage", "N", layers_per_virtual,
              "layers per model chunk, instead of the virtual pipeline size (default: unset)", 1,
              big)
      .option("--schedule", "NAME", schedule,
              "pipeline schedule; gpipe and 1f1b use one chunk per stage",
              {"gpipe", "1f1b", "interleaved-1f1b"})
      .option("--policy", "TEXT", policy_text,
              "bit-width policy in text form (agoq/policy/policy_text.hpp), e.g. "
              "\"paper,attention_core=int8\"")
      .option("--bits", "B", base_bits, "width of the bottleneck stage (DBCA-PP base)", 2, 8)
      .option("--tolerance", "X", tolerance,
              "a stage may exceed the bottleneck's memory by this fraction (0.05 gives the "
              "paper's 4/5/6/8)",
              0.0, 1.0)
      .flag("--no-dbca", no_dbca, "every stage at --bits (no per-stage widths)")
      .flag("--allow-16", allow_16, "a stage may keep its activations unquantized")
      .flag("--paper-accounting", paper_accounting,
            "count bits/8 per element without scales and statistics (the paper's Table 1)")
      .flag("--json", json, "print the plan as JSON instead of a table")
      .note("Embedding, LM-head and loss activations are not counted.");
  if (const auto rc = p.parse(argc, argv)) return *rc;

  agoq::model_shape m =
      model == "llama2-13b" ? agoq::model_shape::llama2_13b() : agoq::model_shape::llama2_7b();
  std::string model_name = model;
  auto set = [&](const char* flag, int& field, int value, bool changes_model) {
    if (!p.given(flag)) return;
    field = value;
    if (changes_model) model_name = "custom";
  };
  set("--num-layers", m.layers, layers, true);
  set("--hidden-size", m.hidden, hidden, true);
  set("--ffn-hidden-size", m.ffn, ffn, true);
  set("--num-attention-heads", m.heads, heads, true);
  set("--num-query-groups", m.kv_heads, kv_heads, true);
  set("--seq-length", m.seq, seq, false);
  set("--micro-batch-size", m.micro_batch, micro_batch, false);
  set("--num-experts", m.experts, experts, true);
  m.moe_top_k = top_k;
  m.moe_ffn = moe_ffn;
  if (!m.is_moe() && (p.given("--moe-router-topk") || p.given("--moe-ffn-hidden-size")))
    return p.fail("--moe-router-topk and --moe-ffn-hidden-size need --num-experts");
  if (p.given("--normalization") || p.given("--swiglu")) { // Megatron's meaning of the two
    const std::string norm = p.given("--normalization") ? normalization : "LayerNorm";
    if (norm == "RMSNorm" && swiglu)
      m.block = agoq::block_kind::llama;
    else if (norm == "LayerNorm" && !swiglu)
      m.block = agoq::block_kind::gpt;
    else
      return p.fail(std::string("--normalization ") + norm + (swiglu ? " with" : " without") +
                    " --swiglu is not a block the planner models; it models RMSNorm + --swiglu "
                    "(LLaMA) and LayerNorm without --swiglu (GPT)");
    if (m.block != agoq::block_kind::llama) model_name = "custom";
  }

  m.stages = stages;
  m.micro_batches = micro_batches;
  m.schedule = schedule == "gpipe"  ? agoq::pipeline_schedule::gpipe
               : schedule == "1f1b" ? agoq::pipeline_schedule::one_f_one_b
                                    : agoq::pipeline_schedule::interleaved_1f1b;
  if (p.given("--num-layers-per-virtual-pipeline-stage")) {
    if (p.given("--virtual-pipeline-model-parallel-size"))
      return p.fail("give --num-layers-per-virtual-pipeline-stage or "
                    "--virtual-pipeline-model-parallel-size, not both");
    if (m.layers % (m.stages * layers_per_virtual) != 0)
      return p.fail("--num-layers (" + std::to_string(m.layers) +
                    ") must be a multiple of --pipeline-model-parallel-size x "
                    "--num-layers-per-virtual-pipeline-stage (" +
                    std::to_string(m.stages * layers_per_virtual) + ")");
    virtual_stages = m.layers / (m.stages * layers_per_virtual);
  }
  const bool virtual_given = p.given("--virtual-pipeline-model-parallel-size") ||
                             p.given("--num-layers-per-virtual-pipeline-stage");
  if (m.schedule != agoq::pipeline_schedule::interleaved_1f1b && !virtual_given)
    virtual_stages = 1;
  m.virtual_stages = virtual_stages;

  agoq::plan_options opt;
  opt.dbca = !no_dbca;
  opt.bits.base_bits = base_bits;
  opt.bits.tolerance = tolerance;
  opt.bits.allow_unquantized = allow_16;
  if (paper_accounting) opt.acct = agoq::accounting::paper;

  agoq::memory_plan plan;
  agoq::layer_memory layer;
  agoq::save_plan policy;
  try {
    policy = agoq::parse_policy(policy_text);
  } catch (const agoq::invalid_argument& e) {
    return p.fail("--policy: " + without_function(e.what()));
  }
  try {
    plan = agoq::plan_memory(m, policy, opt);
    layer = agoq::layer_activation_memory(m, policy, opt.bits.base_bits, opt.acct);
  } catch (const agoq::invalid_argument& e) {
    return p.fail(in_flag_words(e.what()));
  }

  const std::string diff = agoq::to_string(policy, agoq::paper_save_plan());
  const std::string policy_desc = diff.empty() ? "paper (LAAQ)" : "paper (LAAQ) + " + diff;
  const char* block = m.block == agoq::block_kind::llama ? "RMSNorm + SwiGLU" : "LayerNorm + GELU";
  const double U = double(m.unit_bytes());

  if (json) {
    std::printf("{\n  \"agoq_version\": %s,\n", json_string(agoq::version_string).c_str());
    std::printf("  \"model\": {\"name\": %s, \"block\": %s, \"num_layers\": %d, \"hidden_size\": "
                "%d, \"ffn_hidden_size\": %d, \"num_attention_heads\": %d, \"num_query_groups\": "
                "%d, \"seq_length\": %d, \"micro_batch_size\": %d, \"num_experts\": %d",
                json_string(model_name).c_str(), json_string(agoq::to_string(m.block)).c_str(),
                m.layers, m.hidden, m.ffn, m.heads, m.kv_heads_or_heads(), m.seq, m.micro_batch,
                m.experts);
    if (m.is_moe())
      std::printf(", \"moe_router_topk\": %d, \"moe_ffn_hidden_size\": %d", m.moe_top_k,
                  m.moe_ffn_or_ffn());
    std::printf("},\n  \"pipeline\": {\"stages\": %d, \"schedule\": %s, \"num_micro_batches\": %d, "
                "\"virtual_stages\": %d, \"layers_per_chunk\": %d},\n",
                m.stages, json_string(agoq::to_string(m.schedule)).c_str(), m.micro_batches,
                m.virtual_stages, plan.stages.empty() ? 0 : plan.stages[0].chunk_layers);
    std::printf("  \"policy\": {\"text\": %s, \"dbca\": %s, \"base_bits\": %d, \"tolerance\": %.17g, "
                "\"allow_16\": %s, \"accounting\": %s},\n",
                json_string(diff.empty() ? "paper" : "paper," + diff).c_str(),
                opt.dbca ? "true" : "false", opt.bits.base_bits, opt.bits.tolerance,
                allow_16 ? "true" : "false", json_string(agoq::to_string(opt.acct)).c_str());
    std::printf("  \"layer\": {\"bits\": %d, \"bytes\": %lld, \"baseline_bytes\": %lld, "
                "\"unit_bytes\": %lld},\n",
                layer.bits, static_cast<long long>(layer.bytes),
                static_cast<long long>(layer.baseline_bytes), static_cast<long long>(m.unit_bytes()));
    std::printf("  \"stages\": [\n");
    for (std::size_t i = 0; i < plan.stages.size(); ++i) {
      const auto& s = plan.stages[i];
      std::printf("    {\"stage\": %d, \"stash\": %d, \"chunk_layers\": %d, \"bits\": %d, "
                  "\"bytes\": %lld, \"baseline_bytes\": %lld, \"saving\": %.6f}%s\n",
                  s.stage + 1, s.stash, s.chunk_layers, s.bits, static_cast<long long>(s.bytes),
                  static_cast<long long>(s.baseline_bytes), s.saving(),
                  i + 1 < plan.stages.size() ? "," : "");
    }
    std::printf("  ],\n  \"peak\": {\"bytes\": %lld, \"baseline_bytes\": %lld, \"saving\": %.6f}\n}\n",
                static_cast<long long>(plan.peak_bytes),
                static_cast<long long>(plan.peak_baseline_bytes), plan.saving());
    return 0;
  }

  std::printf("model %s: %s, layers %d, hidden %d, ffn %d, heads %d, kv heads %d, seq %d, "
              "micro-batch %d\n",
              model_name.c_str(), block, m.layers, m.hidden, m.ffn, m.heads, m.kv_heads_or_heads(),
              m.seq, m.micro_batch);
  if (m.is_moe())
    std::printf("mixture of experts: %d experts, top-%d, expert ffn %d\n", m.experts, m.moe_top_k,
                m.moe_ffn_or_ffn());
  std::printf("pipeline: %d stages, %s, %d micro-batches, %d virtual stages (%d layers/chunk)\n",
              m.stages, agoq::to_string(m.schedule), m.micro_batches, m.virtual_stages,
              plan.stages.empty() ? 0 : plan.stages[0].chunk_layers);
  std::printf("policy: %s; DBCA-PP %s, tolerance %.3g; %s accounting\n", policy_desc.c_str(),
              opt.dbca ? "on" : "off", opt.bits.tolerance, agoq::to_string(opt.acct));
  std::printf("per layer at %d bits: %.3fU agoq vs %.3fU bf16 (U = mb x seq x hidden x 2 B = "
              "%.1f MiB)\n\n",
              opt.bits.base_bits, double(layer.bytes) / U, double(layer.baseline_bytes) / U,
              U / double(1 << 20));
  std::printf("| stage | stash | bits | agoq GiB | bf16 GiB | saving |\n");
  std::printf("|------:|------:|-----:|---------:|---------:|-------:|\n");
  for (const auto& s : plan.stages)
    std::printf("| %5d | %5d | %4d | %8.2f | %8.2f | %5.1f%% |\n", s.stage + 1, s.stash, s.bits,
                gib(s.bytes), gib(s.baseline_bytes), 100.0 * s.saving());
  std::printf("| peak  |       |      | %8.2f | %8.2f | %5.1f%% |\n", gib(plan.peak_bytes),
              gib(plan.peak_baseline_bytes), 100.0 * plan.saving());
  return 0;
}

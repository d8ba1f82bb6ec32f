// SPDX-License-Identifier: Apache-2.0
//! @file examples/plan/plan.cpp
//! agoq-plan: prints, per pipeline stage, the peak activation stash, the DBCA-PP bit width and
//! the activation memory with agoq's policy against the Megatron BF16 baseline.
//!
//!   agoq-plan --model llama2-7b
//!   agoq-plan --layers 32 --hidden 4096 --ffn 11008 --heads 32 --seq 4096 --micro-batch 1
//!             --stages 4 --micro-batches 8 --schedule interleaved-1f1b --virtual-stages 2
//!             [--kv-heads 8] [--policy TEXT] [--tolerance 0.05] [--no-dbca] [--paper-accounting]
//!
//! Bad flags print a message and exit with status 2.
#include "agoq/policy/policy.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

namespace {

const char* const usage =
    "usage: agoq-plan [--model llama2-7b|llama2-13b] [--layers N] [--hidden N] [--ffn N]\n"
    "                 [--heads N] [--kv-heads N] [--seq N] [--micro-batch N] [--stages N]\n"
    "                 [--micro-batches N] [--schedule gpipe|1f1b|interleaved-1f1b]\n"
    "                 [--virtual-stages N] [--policy TEXT] [--tolerance X] [--no-dbca]\n"
    "                 [--allow-16] [--paper-accounting]\n"
    "defaults: --model llama2-7b --stages 4 --micro-batches 8 --schedule interleaved-1f1b\n"
    "          --virtual-stages 2 (1 for other schedules)\n";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "agoq-plan: " << msg << "\n" << usage;
  std::exit(2);
}

int to_int(const std::string& flag, const std::string& v) {
  std::size_t used = 0;
  int x = 0;
  try {
    x = std::stoi(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || x < 0)
    fail(flag + " needs a non-negative integer, got '" + v + "'");
  return x;
}

double gib(std::int64_t bytes) { return double(bytes) / double(std::int64_t(1) << 30); }

} // namespace

int main(int argc, char** argv) {
  agoq::model_shape m = agoq::model_shape::llama2_7b();
  m.stages = 4;
  m.micro_batches = 8;
  m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
  int virtual_stages = -1;
  std::string model_name = "llama2-7b", policy_text;
  agoq::plan_options opt;

  // --model first, so explicit flags override the preset wherever they appear
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--model") {
      const std::string v = argv[i + 1];
      if (v == "llama2-7b")
        m = agoq::model_shape::llama2_7b();
      else if (v == "llama2-13b")
        m = agoq::model_shape::llama2_13b();
      else
        fail("--model must be llama2-7b or llama2-13b, got '" + v + "'");
      m.stages = 4;
      m.micro_batches = 8;
      m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
      model_name = v;
    }

  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "-h" || f == "--help") {
      std::cout << usage;
      return 0;
    }
    if (f == "--no-dbca") { opt.dbca = false; continue; }
    if (f == "--allow-16") { opt.bits.allow_unquantized = true; continue; }
    if (f == "--paper-accounting") { opt.acct = agoq::accounting::paper; continue; }
    static const char* const valued[] = {
        "--model", "--layers", "--micro-batch", "--hidden", "--ffn", "--heads", "--kv-heads",
        "--seq", "--stages", "--micro-batches", "--virtual-stages", "--policy", "--tolerance",
        "--schedule"};
    bool known = false;
    for (const char* k : valued) known = known || f == k;
    if (!known) fail("unknown flag '" + f + "'");
    if (i + 1 >= argc) fail(f + " needs a value");
    const std::string v = argv[++i];
    if (f == "--model") continue;
    else if (f == "--layers") m.layers = to_int(f, v), model_name = "custom";
    else if (f == "--hidden") m.hidden = to_int(f, v), model_name = "custom";
    else if (f == "--ffn") m.ffn = to_int(f, v), model_name = "custom";
    else if (f == "--heads") m.heads = to_int(f, v), model_name = "custom";
    else if (f == "--kv-heads") m.kv_heads = to_int(f, v);
    else if (f == "--seq") m.seq = to_int(f, v);
    else if (f == "--micro-batch") m.micro_batch = to_int(f, v);
    else if (f == "--stages") m.stages = to_int(f, v);
    else if (f == "--micro-batches") m.micro_batches = to_int(f, v);
    else if (f == "--virtual-stages") virtual_stages = to_int(f, v);
    else if (f == "--policy") policy_text = v;
    else if (f == "--tolerance") {
      char* end = nullptr;
      opt.bits.tolerance = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || opt.bits.tolerance < 0)
        fail("--tolerance needs a non-negative number, got '" + v + "'");
    } else if (f == "--schedule") {
      if (v == "gpipe") m.schedule = agoq::pipeline_schedule::gpipe;
      else if (v == "1f1b") m.schedule = agoq::pipeline_schedule::one_f_one_b;
      else if (v == "interleaved-1f1b") m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
      else fail("--schedule must be gpipe, 1f1b or interleaved-1f1b, got '" + v + "'");
    }
  }
  m.virtual_stages = virtual_stages >= 0
                         ? virtual_stages
                         : (m.schedule == agoq::pipeline_schedule::interleaved_1f1b ? 2 : 1);

  agoq::memory_plan plan;
  agoq::layer_memory layer;
  agoq::save_plan policy;
  try {
    policy = agoq::parse_policy(policy_text);
    plan = agoq::plan_memory(m, policy, opt);
    layer = agoq::layer_activation_memory(m, policy, opt.bits.base_bits, opt.acct);
  } catch (const agoq::invalid_argument& e) {
    fail(e.what());
  }

  const double U = double(m.unit_bytes());
  std::printf("model %s: layers %d, hidden %d, ffn %d, heads %d, kv heads %d, seq %d, "
              "micro-batch %d\n",
              model_name.c_str(), m.layers, m.hidden, m.ffn, m.heads, m.kv_heads_or_heads(), m.seq,
              m.micro_batch);
  std::printf("pipeline: %d stages, %s, %d micro-batches, %d virtual stages (%d layers/chunk)\n",
              m.stages, agoq::to_string(m.schedule), m.micro_batches, m.virtual_stages,
              plan.stages.empty() ? 0 : plan.stages[0].chunk_layers);
  const std::string diff = agoq::to_string(policy, agoq::paper_save_plan());
  std::printf("policy: paper (LAAQ)%s%s; DBCA-PP %s, tolerance %.3g; %s accounting\n",
              diff.empty() ? "" : " + ", diff.c_str(), opt.dbca ? "on" : "off",
              opt.bits.tolerance, agoq::to_string(opt.acct));
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

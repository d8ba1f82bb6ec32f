// SPDX-License-Identifier: Apache-2.0
// Issue 17, defects 3-7: validation never crashes, never wraps, never lets a value land in the
// wrong parameter.
// - 3: the planner refuses shapes whose products overflow (int or std::int64_t) instead of
//   dividing by zero or returning wrapped byte counts; the schedule simulation is bounded.
// - 4: a bare integer in a quantizer call is a seed, never a leading dimension (agoq::leading_dim).
// - 5: any allreduce_config::chunk gives the right result; comm size queries refuse counts whose
//   byte counts overflow.
// - 6: host_run survives a thread that cannot be started (no std::terminate, no hang).
// - 7: out-of-range enumerators and shapes whose byte counts overflow are refused, naming the
//   argument.
#include "agoq/comm/host_transport.hpp"
#include "agoq/comm/partition.hpp"
#include "agoq/comm/schedule.hpp"
#include "agoq/comm/workspace.hpp"
#include "agoq/format/format.hpp"
#include "agoq/grad/collective.hpp"
#include "agoq/grad/layout.hpp"
#include "agoq/policy/planner.hpp"
#include "agoq/policy/save_plan.hpp"
#include "agoq/policy/schedule.hpp"
#include "agoq/quant/reference.hpp"
#include "agoq/quant/view.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using agoq::quant_spec;

//! Runs `call`, expects agoq::invalid_argument whose message contains every needle.
template <class Call> void expect_refused(Call&& call, std::initializer_list<const char*> needles) {
  try {
    call();
    ADD_FAILURE() << "expected agoq::invalid_argument containing " << *needles.begin();
  } catch (const agoq::invalid_argument& e) {
    for (const char* n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message: " << e.what() << "\nmissing: " << n;
  }
}

bool contains(const char* msg, const char* needle) {
  return msg != nullptr && std::string(msg).find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Defect 3: the planner
// ---------------------------------------------------------------------------------------------

TEST(Hardening, PlannerStagesTimesVirtualStagesOverflowingIntIsRefusedNotSigfpe) {
  agoq::model_shape m;
  m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
  m.stages = 65536;
  m.virtual_stages = 65536; // 2^32: wrapped to 0 in int, then layers % 0 (SIGFPE)
  m.micro_batches = 65536;
  expect_refused([&] { (void)agoq::plan_memory(m, agoq::paper_save_plan()); },
                 {"agoq::plan_memory: ", "shape.layers", "stages x virtual_stages"});
  expect_refused([&] { (void)agoq::layer_activation_memory(m, agoq::paper_save_plan(), 4); },
                 {"agoq::layer_activation_memory: ", "shape.layers"});
}

TEST(Hardening, PlannerByteOverflowIsRefusedNotWrapped) {
  // elements per tensor overflow: micro_batch x seq x hidden = 2^31 x 2^30 (> 2^63 with 2 bytes)
  agoq::model_shape m;
  m.layers = 1;
  m.hidden = 1 << 30;
  m.ffn = 1 << 30;
  m.heads = 1;
  m.seq = 1 << 30;
  m.micro_batch = 1 << 30;
  expect_refused(
      [&] { (void)agoq::plan_memory(m, agoq::paper_save_plan()); },
      {"agoq::plan_memory: ", "shape.micro_batch x shape.seq", "overflows std::int64_t"});
  expect_refused([&] { (void)agoq::plan_memory(m, agoq::bf16_save_plan()); },
                 {"overflows std::int64_t"});
  expect_refused([&] { (void)agoq::layer_activation_memory(m, agoq::paper_save_plan(), 4); },
                 {"agoq::layer_activation_memory: ", "overflows std::int64_t"});
  {
    agoq::plan_options o;
    o.acct = agoq::accounting::paper;
    expect_refused([&] { (void)agoq::plan_memory(m, agoq::paper_save_plan(), o); },
                   {"overflows std::int64_t"});
  }

  // per-layer bytes fit, the stage's (stash x chunk layers x layer bytes) do not
  agoq::model_shape s;
  s.layers = 1 << 20;
  s.hidden = 1 << 14;
  s.ffn = 1 << 16;
  s.heads = 1 << 7;
  s.seq = 1 << 16;
  s.micro_batch = 1 << 8; // tokens 2^24, ~2^43.5 bytes per layer, x 2^20 layers
  ASSERT_NO_THROW((void)agoq::layer_activation_memory(s, agoq::bf16_save_plan(), 16));
  expect_refused([&] { (void)agoq::plan_memory(s, agoq::bf16_save_plan()); },
                 {"agoq::plan_memory: ", "stage 0's bytes", "overflows std::int64_t"});

  // a shape just inside the domain still plans, and the numbers are positive
  agoq::model_shape ok = agoq::model_shape::llama2_7b();
  ok.micro_batch = 1 << 10;
  const agoq::memory_plan p = agoq::plan_memory(ok, agoq::paper_save_plan());
  EXPECT_GT(p.peak_bytes, 0);
  EXPECT_GT(p.peak_baseline_bytes, p.peak_bytes);
}

TEST(Hardening, ScheduleSimulationIsBounded) {
  using agoq::pipeline_schedule;
  expect_refused(
      [] {
        (void)agoq::simulate_schedule(pipeline_schedule::interleaved_1f1b, 65536, 65536, 65536);
      },
      {"agoq::simulate_schedule: ", "stages must be <= max_schedule_stages"});
  expect_refused(
      [] {
        (void)agoq::simulate_schedule(pipeline_schedule::interleaved_1f1b, 4096, 65536, 65536);
      },
      {"agoq::simulate_schedule: ", "stages x micro_batches x virtual_stages"});
  expect_refused([] { (void)agoq::simulate_schedule(pipeline_schedule::gpipe, 1, 1 << 30); },
                 {"stages x micro_batches x virtual_stages"});
  // the stage limit itself is accepted
  EXPECT_EQ(agoq::peak_stash(pipeline_schedule::one_f_one_b, agoq::max_schedule_stages, 1).size(),
            std::size_t(agoq::max_schedule_stages));
}

TEST(Hardening, OutOfRangePolicyEnumsAreRefused) {
  const auto plan = agoq::paper_save_plan();
  expect_refused(
      [] { (void)agoq::simulate_schedule(static_cast<agoq::pipeline_schedule>(3), 4, 8); },
      {"agoq::simulate_schedule: ", "s must be a pipeline_schedule", "got 3"});
  expect_refused([] { (void)agoq::peak_stash(static_cast<agoq::pipeline_schedule>(200), 4, 8); },
                 {"s must be a pipeline_schedule"});
  {
    agoq::model_shape m;
    m.schedule = static_cast<agoq::pipeline_schedule>(7);
    expect_refused([&] { (void)agoq::plan_memory(m, plan); },
                   {"agoq::plan_memory: ", "shape.schedule", "got 7"});
    expect_refused([&] { (void)agoq::layer_activation_memory(m, plan, 4); }, {"shape.schedule"});
  }
  {
    agoq::model_shape m;
    m.block = static_cast<agoq::block_kind>(2);
    expect_refused([&] { (void)agoq::plan_memory(m, plan); },
                   {"agoq::plan_memory: ", "shape.block", "got 2"});
    expect_refused([&] { (void)agoq::layer_activation_memory(m, plan, 4); }, {"shape.block"});
  }
  {
    agoq::plan_options o;
    o.acct = static_cast<agoq::accounting>(2);
    expect_refused([&] { (void)agoq::plan_memory(agoq::model_shape{}, plan, o); },
                   {"agoq::plan_memory: ", "o.acct", "got 2"});
    expect_refused(
        [&] {
          (void)agoq::layer_activation_memory(agoq::model_shape{}, plan, 4,
                                              static_cast<agoq::accounting>(9));
        },
        {"agoq::layer_activation_memory: ", "acct must be", "got 9"});
  }
  EXPECT_STREQ(agoq::to_string(static_cast<agoq::accounting>(5)), "unknown_accounting");
  {
    agoq::save_plan p = plan;
    agoq::save_entry e;
    e.action = static_cast<agoq::save_action>(9);
    p.set(agoq::layer_kind::qkv_input, e);
    expect_refused([&] { agoq::validate(p); }, {"qkv_input", "action must be", "got 9"});
  }
}

// ---------------------------------------------------------------------------------------------
// Defect 4: the overload trap
// ---------------------------------------------------------------------------------------------

template <class, template <class...> class Op, class... A> struct detect : std::false_type {};
template <template <class...> class Op, class... A>
struct detect<std::void_t<Op<A...>>, Op, A...> : std::true_type {};
template <template <class...> class Op, class... A>
constexpr bool compiles = detect<void, Op, A...>::value;

template <class... A> using ref_quantize_t = decltype(agoq::ref::quantize(std::declval<A>()...));
template <class... A>
using ref_dequantize_t = decltype(agoq::ref::dequantize(std::declval<A>()...));
template <class... A>
using ref_dequantize_accumulate_t =
    decltype(agoq::ref::dequantize_accumulate(std::declval<A>()...));
template <class... A>
using ref_accumulate_requantize_t =
    decltype(agoq::ref::accumulate_requantize(std::declval<A>()...));

using qv = agoq::quantized_view;
using cqv = agoq::const_quantized_view;
using ld_t = agoq::leading_dim;

// No integer becomes a leading dimension implicitly, and a leading dimension becomes nothing.
static_assert(!std::is_convertible_v<std::int64_t, ld_t>);
static_assert(!std::is_convertible_v<int, ld_t>);
static_assert(!std::is_convertible_v<ld_t, std::uint64_t>);
static_assert(!std::is_convertible_v<ld_t, std::int64_t>);
static_assert(!std::is_convertible_v<ld_t, float>);
static_assert(std::is_constructible_v<ld_t, std::int64_t>);
static_assert(std::is_constructible_v<ld_t, std::size_t>);
static_assert(!std::is_constructible_v<ld_t, double>);
static_assert(!std::is_constructible_v<ld_t, bool>);
// The 2-D forms no longer take a bare integer where the leading dimension goes ...
static_assert(!compiles<ref_quantize_t, const float*, std::int64_t, qv>);
static_assert(!compiles<ref_quantize_t, const float*, std::int64_t, qv, std::uint64_t>);
static_assert(!compiles<ref_dequantize_t, cqv, float*, std::int64_t>);
static_assert(!compiles<ref_dequantize_accumulate_t, cqv, float*, std::int64_t, float>);
static_assert(!compiles<ref_dequantize_accumulate_t, cqv, float*, std::int64_t>); // not alpha
static_assert(
    !compiles<ref_accumulate_requantize_t, qv, const float*, std::int64_t, std::uint64_t>);
// ... nor a leading dimension where the seed goes
static_assert(!compiles<ref_quantize_t, const float*, qv, ld_t>);
static_assert(!compiles<ref_accumulate_requantize_t, qv, const float*, ld_t, ld_t>);
// ... and both forms stay callable as documented (README: ref::quantize(x.data(), view))
static_assert(compiles<ref_quantize_t, const float*, qv>);
static_assert(compiles<ref_quantize_t, const float*, qv, std::int64_t>);
static_assert(compiles<ref_quantize_t, const float*, ld_t, qv, std::uint64_t>);
static_assert(compiles<ref_dequantize_t, cqv, float*, ld_t>);
static_assert(compiles<ref_dequantize_accumulate_t, cqv, float*, float>);
static_assert(compiles<ref_dequantize_accumulate_t, cqv, float*, ld_t, float>);
static_assert(compiles<ref_accumulate_requantize_t, qv, const float*, std::int64_t>);
static_assert(compiles<ref_accumulate_requantize_t, qv, const float*, ld_t, std::uint64_t>);

TEST(Hardening, IntegerSeedOfAccumulateRequantizeIsTheSeed) {
  // The reproduction: ref::accumulate_requantize(buf, g, std::int64_t{5000}) bound 5000
  // to ld (the seed silently became 0). Now it is seed 5000, like std::uint64_t{5000}.
  const quant_spec spec{agoq::format::int4, 32, agoq::scale_kind::fp32, agoq::rounding::stochastic};
  const std::int64_t n = 4096;
  std::vector<float> g(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    g[std::size_t(i)] = 0.37f * float(i % 97) - 11.0f;
  auto run = [&](auto&& call) {
    std::vector<std::uint8_t> codes(agoq::codes_bytes(spec, n), 0);
    std::vector<std::uint8_t> scales(agoq::scales_bytes(spec, n), 0);
    const qv buf{codes.data(), scales.data(), nullptr, 1, n, spec};
    call(buf);
    codes.insert(codes.end(), scales.begin(), scales.end());
    return codes;
  };
  const auto with_int64 =
      run([&](const qv& b) { agoq::ref::accumulate_requantize(b, g.data(), std::int64_t{5000}); });
  const auto with_seed =
      run([&](const qv& b) { agoq::ref::accumulate_requantize(b, g.data(), std::uint64_t{5000}); });
  const auto with_zero = run([&](const qv& b) { agoq::ref::accumulate_requantize(b, g.data()); });
  const auto with_ld = run([&](const qv& b) {
    agoq::ref::accumulate_requantize(b, g.data(), agoq::leading_dim{n}, 5000);
  });
  EXPECT_EQ(with_int64, with_seed);
  EXPECT_EQ(with_ld, with_seed);
  EXPECT_NE(with_int64, with_zero) << "the integer landed somewhere else than the seed";
  // quantize: a bare int seed in the 1-D form, the same as the 2-D form's seed
  const auto q1 = run([&](const qv& b) { agoq::ref::quantize(g.data(), b, 5000); });
  const auto q2 =
      run([&](const qv& b) { agoq::ref::quantize(g.data(), agoq::leading_dim{n}, b, 5000); });
  EXPECT_EQ(q1, q2);
  // dequantize_accumulate's new 1-D form equals the 2-D form with ld = cols
  std::vector<float> a1(std::size_t(n), 1.0f), a2 = a1;
  std::vector<std::uint8_t> codes(agoq::codes_bytes(spec, n)), scales(agoq::scales_bytes(spec, n));
  const qv q{codes.data(), scales.data(), nullptr, 1, n, spec};
  agoq::ref::quantize(g.data(), q, 3);
  agoq::ref::dequantize_accumulate(q, a1.data(), 0.5f);
  agoq::ref::dequantize_accumulate(q, a2.data(), agoq::leading_dim{n}, 0.5f);
  EXPECT_EQ(0, std::memcmp(a1.data(), a2.data(), a1.size() * sizeof(float)));
}

// ---------------------------------------------------------------------------------------------
// Defect 5: the all-reduce chunk and the comm size computations
// ---------------------------------------------------------------------------------------------

struct aligned_buffer {
  void* p = nullptr;
  explicit aligned_buffer(std::size_t bytes)
      : p(::operator new(bytes ? bytes : 1, std::align_val_t(256))) {}
  ~aligned_buffer() { ::operator delete(p, std::align_val_t(256)); }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
};

//! Every rank's output of an fp32 all-reduce of rank-dependent inputs under `cfg`.
std::vector<std::vector<float>> allreduce_outputs(const agoq::allreduce_config& cfg, int world,
                                                  std::int64_t count) {
  std::vector<std::vector<float>> out(std::size_t(world),
                                      std::vector<float>(std::size_t(count), -777.0f));
  agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    const int r = tr.rank();
    std::vector<float> x(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i)
      x[std::size_t(i)] = float((i * 7 + r * 13) % 29) - 14.0f + 0.125f * float(r);
    const std::size_t wsb = agoq::allreduce_workspace_size<float>(count, cfg, world);
    aligned_buffer ws(wsb);
    agoq::allreduce(x.data(), out[std::size_t(r)].data(), count, cfg, ws.p, wsb, tr, ex);
  });
  return out;
}

TEST(Hardening, HugeAllreduceChunkIsOneChunkNotANoOp) {
  // The reproduction: block 32, two_shot, world 4, count 1000, chunk 2^63 - 128 passed
  // validate, the workspace size was 0 and recv was never written.
  agoq::allreduce_config cfg;
  cfg.block = 32;
  cfg.algo = agoq::algorithm::two_shot;
  cfg.chunk = 9223372036854775680;
  ASSERT_EQ(agoq::validate(cfg), nullptr);
  const int world = 4;
  const std::int64_t count = 1000;
  agoq::allreduce_config ref_cfg = cfg;
  ref_cfg.chunk = 1024; // the count in whole blocks: one chunk per shard, like any larger chunk
  const std::size_t wsb = agoq::allreduce_workspace_size<float>(count, cfg, world);
  EXPECT_GT(wsb, 0u);
  EXPECT_EQ(wsb, agoq::allreduce_workspace_size<float>(count, ref_cfg, world));
  for (agoq::algorithm a : {agoq::algorithm::two_shot, agoq::algorithm::one_shot,
                            agoq::algorithm::ring, agoq::algorithm::tree}) {
    cfg.algo = ref_cfg.algo = a;
    const auto got = allreduce_outputs(cfg, world, count);
    const auto want = allreduce_outputs(ref_cfg, world, count);
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(0, std::memcmp(got[std::size_t(r)].data(), want[std::size_t(r)].data(),
                               std::size_t(count) * sizeof(float)))
          << agoq::to_string(a) << " rank " << r;
      EXPECT_NE(got[std::size_t(r)][0], -777.0f) << "recv was not written";
    }
  }
  // every chunk in between gives the same bits too (round to nearest: chunk-independent)
  for (std::int64_t chunk :
       {std::int64_t(32), std::int64_t(992), std::int64_t(1) << 40, (INT64_MAX / 32) * 32}) {
    agoq::allreduce_config c = ref_cfg;
    c.algo = agoq::algorithm::two_shot;
    c.chunk = chunk;
    agoq::allreduce_config base = c;
    base.chunk = 1024;
    EXPECT_EQ(allreduce_outputs(c, world, count), allreduce_outputs(base, world, count))
        << "chunk " << chunk;
  }
}

TEST(Hardening, PartitionArithmeticDoesNotOverflow) {
  agoq::allreduce_config cfg;
  cfg.block = 32;
  cfg.chunk = 9223372036854775680;
  EXPECT_EQ(agoq::chunk_elements(cfg, 1000, 4), 1024); // clamped to the count in whole blocks
  EXPECT_EQ(agoq::chunk_elements(cfg, 0, 4), 32);
  const agoq::partition p = agoq::make_partition(1000, cfg, 4);
  EXPECT_EQ(p.chunks(250), 1);
  EXPECT_EQ(p.chunk_size(250, 0), 250);
  EXPECT_EQ(p.chunk_size(250, 1), 0);
  EXPECT_EQ(p.chunk_size(250, -1), 0);
  EXPECT_EQ(p.chunk_size(250, INT64_MAX), 0);
  // a hand-made partition with a huge chunk: still exact
  agoq::partition q;
  q.count = 1000;
  q.world = 4;
  q.block = 32;
  q.chunk = 9223372036854775680;
  EXPECT_EQ(q.chunks(1000), 1);
  EXPECT_EQ(q.chunk_size(1000, 0), 1000);
  EXPECT_EQ(q.chunk_size(1000, 1), 0);
  q.count = INT64_MAX;
  EXPECT_EQ(q.blocks(), INT64_MAX / 32 + 1);
  EXPECT_EQ(agoq::chunk_elements(cfg, INT64_MAX, 4), cfg.chunk); // below the count: kept
  cfg.chunk = (INT64_MAX / 32) * 32;
  EXPECT_EQ(agoq::chunk_elements(cfg, INT64_MAX - 40, 4), (INT64_MAX / 32) * 32);
  EXPECT_EQ(agoq::chunk_elements(cfg, 33, 4), 64);
}

TEST(Hardening, CommSizeQueriesRefuseOverflowingCounts) {
  const agoq::allreduce_config cfg;
  // the reproduction: allreduce_workspace_size(INT64_MAX) returned 0
  for (agoq::algorithm a :
       {agoq::algorithm::auto_select, agoq::algorithm::two_shot, agoq::algorithm::one_shot,
        agoq::algorithm::ring, agoq::algorithm::tree}) {
    agoq::allreduce_config c = cfg;
    c.algo = a;
    expect_refused([&] { (void)agoq::allreduce_workspace_size<float>(INT64_MAX, c, 1); },
                   {"agoq::allreduce_workspace_size: ", "count is too large", "count x world"});
  }
  const std::int64_t limit = agoq::max_count_times_world;
  expect_refused([&] { (void)agoq::allreduce_workspace_size<float>(limit / 8 + 1, cfg, 8); },
                 {"count is too large"});
  // just inside: a real size, monotone, far from wrapping
  const std::size_t at = agoq::allreduce_workspace_size<float>(limit / 8, cfg, 8);
  EXPECT_GT(at, std::size_t(limit / 8));
  EXPECT_LT(at, std::size_t(1) << 62);
  for (agoq::algorithm a : {agoq::algorithm::two_shot, agoq::algorithm::one_shot,
                            agoq::algorithm::ring, agoq::algorithm::tree}) {
    agoq::allreduce_config c = cfg;
    c.algo = a;
    c.block = 32;
    c.chunk = 32; // the most chunks and the most padding
    const std::size_t s = agoq::allreduce_workspace_size<float>(limit / 3, c, 3);
    if (a != agoq::algorithm::tree) { // tree holds one chunk, independent of the count
      EXPECT_GT(s, std::size_t(limit / 3)) << agoq::to_string(a);
    }
    EXPECT_LT(s, std::size_t(1) << 63) << agoq::to_string(a);
  }
  // the gradient collectives' size query too
  expect_refused(
      [&] {
        (void)agoq::grad_allreduce_workspace_size(INT64_MAX, quant_spec{}, agoq::grad_comm_config{},
                                                  2);
      },
      {"agoq::grad_allreduce_workspace_size: ", "count is too large"});
  // the host all-reduce refuses before touching anything
  agoq::host_run(2, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    float x = 0.0f;
    expect_refused([&] { agoq::allreduce(&x, &x, INT64_MAX / 2, cfg, &x, 0, tr, ex); },
                   {"agoq::allreduce: ", "count is too large"});
  });
  agoq::host_run(2, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    agoq::host_buffer_backend be;
    alignas(16) unsigned char mem[64] = {};
    const agoq::quantized_view buf{mem, mem, nullptr, 1, INT64_MAX / 2, quant_spec{}};
    expect_refused([&] { agoq::grad_allreduce(buf, agoq::grad_comm_config{}, mem, 0, tr, ex, be); },
                   {"agoq::grad_allreduce: ", "buf.cols is too large"});
  });
}

TEST(Hardening, OutOfRangeCommEnumsAreRefused) {
  agoq::allreduce_config c;
  c.rounding = static_cast<agoq::rounding>(2);
  EXPECT_TRUE(contains(agoq::validate(c), "config.rounding"));
  c = agoq::allreduce_config{};
  c.scale = static_cast<agoq::scale_kind>(3);
  EXPECT_TRUE(contains(agoq::validate(c), "config.scale"));
  expect_refused(
      [] {
        (void)agoq::allreduce_workspace_size(100, static_cast<agoq::element_type>(3),
                                             agoq::allreduce_config{}, 2);
      },
      {"agoq::allreduce_workspace_size: ", "type must be"});
  agoq::grad_comm_config o;
  o.rounding = static_cast<agoq::rounding>(4);
  expect_refused([&] { (void)agoq::grad_allreduce_workspace_size(100, quant_spec{}, o, 2); },
                 {"agoq::grad_allreduce_workspace_size: ", "opt.rounding"});
  o = agoq::grad_comm_config{};
  o.op = static_cast<agoq::reduce_op>(2);
  expect_refused([&] { (void)agoq::grad_allreduce_workspace_size(100, quant_spec{}, o, 2); },
                 {"opt.op"});
  o = agoq::grad_comm_config{};
  o.algo = static_cast<agoq::algorithm>(9);
  expect_refused([&] { (void)agoq::grad_allreduce_workspace_size(100, quant_spec{}, o, 2); },
                 {"opt.algo"});
}

// ---------------------------------------------------------------------------------------------
// Defect 6: host_run when a thread cannot be started
// ---------------------------------------------------------------------------------------------

TEST(Hardening, HostRunSurvivesAThreadThatCannotStart) {
  const int world = 4, failing = 2;
  std::atomic<int> started{0}, woke_with_error{0}, spawned{0};
  auto spawn = [&](auto&& body) {
    if (spawned.fetch_add(1) == failing)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "thread creation refused by the test");
    return std::thread(std::forward<decltype(body)>(body));
  };
  bool threw = false;
  try {
    agoq::detail::host_run_with(
        world,
        [&](agoq::host_transport& tr, agoq::host_executor&) {
          ++started;
          try {
            tr.fabric().barrier(); // would wait forever for the rank that never starts
          } catch (const agoq::error&) {
            ++woke_with_error;
            throw;
          }
        },
        spawn);
  } catch (const agoq::error& e) {
    threw = true;
    const std::string what = e.what();
    EXPECT_NE(what.find("agoq::host_run: starting the thread of rank 2 of 4 failed"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("thread creation refused by the test"), std::string::npos) << what;
    try {
      std::rethrow_if_nested(e);
      ADD_FAILURE() << "the cause is not nested";
    } catch (const std::system_error& cause) {
      EXPECT_EQ(cause.code(), std::make_error_code(std::errc::resource_unavailable_try_again));
    }
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(started.load(), failing) << "the ranks started before the failure ran";
  EXPECT_EQ(woke_with_error.load(), failing) << "they were woken by the aborted fabric";

  // the first thread already fails: nothing to join, the same report
  spawned = 0;
  auto first_fails = [&](auto&&) -> std::thread {
    throw std::system_error(std::make_error_code(std::errc::not_enough_memory), "no memory");
  };
  try {
    agoq::detail::host_run_with(
        2, [](agoq::host_transport&, agoq::host_executor&) {}, first_fails);
    ADD_FAILURE() << "expected agoq::error";
  } catch (const agoq::error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 of 2"), std::string::npos) << e.what();
  }
  // host_run itself is unchanged for a working system
  std::atomic<int> ran{0};
  agoq::host_run(3, [&](agoq::host_transport& tr, agoq::host_executor&) {
    tr.fabric().barrier();
    ++ran;
  });
  EXPECT_EQ(ran.load(), 3);
}

// ---------------------------------------------------------------------------------------------
// Defect 7: out-of-range enumerators and shapes whose byte counts overflow
// ---------------------------------------------------------------------------------------------

TEST(Hardening, ValidateRefusesOutOfRangeScaleAndRounding) {
  quant_spec s{agoq::format::int8, 128};
  s.scale = static_cast<agoq::scale_kind>(3);
  EXPECT_TRUE(contains(agoq::validate(s), "spec.scale")) << agoq::validate(s);
  s = quant_spec{agoq::format::int8, 128};
  s.rounding = static_cast<agoq::rounding>(2);
  EXPECT_TRUE(contains(agoq::validate(s), "spec.rounding")) << agoq::validate(s);
  s = quant_spec{agoq::format::int4, 32, agoq::scale_kind::e8m0, agoq::rounding::stochastic};
  EXPECT_EQ(agoq::validate(s), nullptr);
  // and the reference refuses such a spec, naming it
  std::vector<float> x(128);
  std::vector<std::uint8_t> codes(256), scales(64);
  quant_spec bad{agoq::format::int8, 128};
  bad.rounding = static_cast<agoq::rounding>(2);
  expect_refused(
      [&] {
        agoq::ref::quantize(x.data(), qv{codes.data(), scales.data(), nullptr, 1, 128, bad});
      },
      {"agoq::ref::quantize: ", "out.spec.rounding"});
}

TEST(Hardening, SizeQueriesHaveACheckedDomain) {
  const quant_spec s{agoq::format::int8, 128};
  const std::int64_t big = std::int64_t(1) << 32;
  // codes_bytes(s, 2^32, 2^32) wraps (to 0): validate_shape says so, naming rows and cols
  EXPECT_TRUE(contains(agoq::validate_shape(s, big, big), "rows x cols is too large"));
  EXPECT_EQ(agoq::validate_shape(s, 1 << 20, 4096), nullptr);
  EXPECT_EQ(agoq::validate_shape(s, 0, 0), nullptr);
  EXPECT_TRUE(contains(agoq::validate_shape(s, -1, 4), "rows must be >= 0"));
  EXPECT_TRUE(contains(agoq::validate_shape(s, 1, -4), "cols must be >= 0"));
  EXPECT_TRUE(contains(agoq::validate_shape(s, 1, INT64_MAX), "too large")); // padded overflows
  EXPECT_EQ(agoq::validate_shape(s, 1, INT64_MAX / 128 * 128), nullptr);
  EXPECT_TRUE(contains(agoq::validate_shape(s, 2, INT64_MAX / 128 * 128), "too large"));
  // inside the domain the queries are exact
  EXPECT_EQ(agoq::blocks_per_row(s, INT64_MAX), INT64_MAX / 128 + 1); // no cols + block overflow
  EXPECT_EQ(agoq::codes_bytes(s, big, 1 << 20), std::size_t(big) << 20);
  EXPECT_EQ(agoq::scales_bytes(s, big, 1 << 20), std::size_t(big) * (1 << 20) / 128 * 4);
  static_assert(agoq::validate_shape(quant_spec{}, 4, 4096) == nullptr, "constexpr");

  // the host reference refuses the shapes outside the domain before touching memory
  std::vector<float> x(16);
  std::vector<std::uint8_t> codes(256), scales(64);
  const std::int64_t huge = std::int64_t(1) << 33;
  const qv v{codes.data(), scales.data(), nullptr, huge, huge, s};
  expect_refused([&] { agoq::ref::quantize(x.data(), agoq::leading_dim{huge}, v); },
                 {"agoq::ref::quantize: ", "out.rows x out.cols is too large"});
  expect_refused([&] { agoq::ref::dequantize(v, x.data(), agoq::leading_dim{huge}); },
                 {"agoq::ref::dequantize: ", "in.rows x in.cols is too large"});
  expect_refused([&] { agoq::ref::dequantize_accumulate(v, x.data()); },
                 {"agoq::ref::dequantize_accumulate: ", "too large"});
  expect_refused([&] { agoq::ref::accumulate_requantize(v, x.data(), 7); },
                 {"agoq::ref::accumulate_requantize: ", "buf.rows x buf.cols is too large"});
  // rows x ld overflows (the element index r * ld + c)
  const qv tall{codes.data(), scales.data(), nullptr, std::int64_t(1) << 20, 128, s};
  expect_refused([&] { agoq::ref::quantize(x.data(), agoq::leading_dim{INT64_MAX / 2}, tall); },
                 {"agoq::ref::quantize: ", "ld is too large"});
  // the gradient buffer's layout refuses a parameter count whose bytes overflow
  EXPECT_TRUE(
      contains(agoq::validate_grad_layout(INT64_MAX, quant_spec{}, 1024), "params is too large"));
  {
    agoq::grad_layout l;
    l.params = INT64_MAX / 128 * 128; // in the domain; params + bucket_elems would overflow
    l.bucket_elems = std::int64_t(1) << 40;
    EXPECT_EQ(l.validate(), nullptr);
    EXPECT_EQ(l.bucket_count(), (l.params - 1) / l.bucket_elems + 1);
  }
  expect_refused([] { (void)agoq::grad_bytes_required(INT64_MAX, quant_spec{}); },
                 {"agoq::grad_bytes_required: ", "params is too large"});
}

} // namespace

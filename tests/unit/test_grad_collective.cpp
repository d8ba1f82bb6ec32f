// SPDX-License-Identifier: Apache-2.0
// All-reduce / reduce-scatter of an 8-bit gradient bucket directly on its codes
// (grad/collective.hpp) over the in-process host transport: every algorithm, world sizes 1..4,
// a partial tail block and several chunks; bitwise identity across ranks; two_shot and one_shot
// equal Q(fp32 sum in rank order [/ W]) bit for bit; ring/tree error bounded; reduce-scatter
// leaves exactly two_shot's bytes in the owned shard and the rest untouched; bad arguments.
#include "agoq/comm/host_transport.hpp"
#include "agoq/comm/workspace.hpp"
#include "agoq/grad/collective.hpp"
#include "agoq/grad/layout.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using agoq::algorithm;
using agoq::grad_comm_config;
using agoq::grad_layout;
using agoq::quant_spec;

struct aligned_bytes {
  std::vector<unsigned char> raw;
  unsigned char* p = nullptr;
  explicit aligned_bytes(std::size_t n) : raw(n + 256, 0) {
    const auto a = reinterpret_cast<std::uintptr_t>(raw.data());
    p = raw.data() + ((256 - a % 256) % 256);
  }
};

//! Rank r's bucket: N(0, 1) values (different per rank) quantized into the layout's memory.
void fill(const grad_layout& l, unsigned char* mem, int r) {
  std::mt19937 gen(1234u + 97u * std::uint32_t(r));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(l.params));
  for (auto& v : x)
    v = nd(gen) * (1.0f + float(r));
  agoq::ref::quantize(x.data(), l.view(mem));
}

std::vector<float> decode(const grad_layout& l, unsigned char* mem) {
  std::vector<float> y(static_cast<std::size_t>(l.params));
  agoq::ref::dequantize(agoq::const_quantized_view(l.view(mem)), y.data());
  return y;
}

//! Runs the collective on `world` host ranks; returns each rank's memory block after it.
std::vector<std::vector<unsigned char>> run(const grad_layout& l, int world,
                                            const grad_comm_config& opt, bool scatter) {
  std::vector<std::vector<unsigned char>> out(static_cast<std::size_t>(world));
  agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    const int r = tr.rank();
    aligned_bytes mem(l.total_bytes());
    fill(l, mem.p, r);
    const std::size_t wsb =
        scatter ? agoq::grad_reduce_scatter_workspace_size(l.params, l.spec, opt, world)
                : agoq::grad_allreduce_workspace_size(l.params, l.spec, opt, world);
    aligned_bytes ws(wsb);
    agoq::host_buffer_backend be;
    if (scatter)
      agoq::grad_reduce_scatter(l.view(mem.p), opt, ws.p, wsb, tr, ex, be);
    else
      agoq::grad_allreduce(l.view(mem.p), opt, ws.p, wsb, tr, ex, be);
    out[std::size_t(r)].assign(mem.p, mem.p + l.total_bytes());
  });
  return out;
}

//! Q(sum_r D(buf_r) in rank order [/ W]) with nearest rounding: what two_shot/one_shot give.
std::vector<unsigned char> expected(const grad_layout& l, int world, bool average) {
  std::vector<float> s(static_cast<std::size_t>(l.params), 0.0f);
  for (int r = 0; r < world; ++r) {
    aligned_bytes m(l.total_bytes());
    fill(l, m.p, r);
    const std::vector<float> d = decode(l, m.p);
    for (std::size_t i = 0; i < s.size(); ++i)
      s[i] = (r == 0) ? d[i] : s[i] + d[i];
  }
  if (average && world > 1)
    for (auto& v : s)
      v = v / float(world);
  aligned_bytes q(l.total_bytes());
  agoq::ref::quantize(s.data(), l.view(q.p));
  return std::vector<unsigned char>(q.p, q.p + l.total_bytes());
}

double rel_err_vs_exact(const grad_layout& l, int world, const std::vector<unsigned char>& got) {
  std::vector<double> s(static_cast<std::size_t>(l.params), 0.0);
  for (int r = 0; r < world; ++r) {
    aligned_bytes m(l.total_bytes());
    fill(l, m.p, r);
    const std::vector<float> d = decode(l, m.p);
    for (std::size_t i = 0; i < s.size(); ++i)
      s[i] += double(d[i]) / world;
  }
  aligned_bytes g(got.size());
  std::memcpy(g.p, got.data(), got.size());
  const std::vector<float> y = decode(l, g.p);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    num += (y[i] - s[i]) * (y[i] - s[i]), den += s[i] * s[i];
  return std::sqrt(num / den);
}

const grad_layout bucket{5000, quant_spec{}, 5120}; // 40 blocks, the last partial

TEST(GradCollective, AllreduceOnCodesIsIdenticalOnAllRanks) {
  for (algorithm algo :
       {algorithm::two_shot, algorithm::one_shot, algorithm::ring, algorithm::tree}) {
    for (int world = 1; world <= 4; ++world) {
      grad_comm_config opt;
      opt.algo = algo;
      opt.chunk = 512; // several chunks per shard
      const auto out = run(bucket, world, opt, false);
      for (int r = 1; r < world; ++r)
        ASSERT_EQ(out[std::size_t(r)], out[0]) << algo << " W=" << world << " rank " << r;
      const double e = rel_err_vs_exact(bucket, world, out[0]);
      EXPECT_LT(e, 0.02) << algo << " W=" << world;
      if (algo == algorithm::two_shot || algo == algorithm::one_shot) {
        EXPECT_EQ(out[0], expected(bucket, world, true)) << algo << " W=" << world;
      }
    }
  }
}

// The collective's rounding option applies to its requantization in both schedules that
// requantize once (one_shot's fused store into the buffer included), whatever the buffer's own.
TEST(GradCollective, SumAndStochasticRounding) {
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot}) {
    SCOPED_TRACE(agoq::to_string(a));
    grad_comm_config opt;
    opt.op = agoq::reduce_op::sum;
    opt.algo = a;
    auto out = run(bucket, 3, opt, false);
    EXPECT_EQ(out[0], expected(bucket, 3, false));
    opt.rounding = agoq::rounding::stochastic;
    opt.seed = 5;
    out = run(bucket, 3, opt, false);
    EXPECT_EQ(out[1], out[0]);
    EXPECT_EQ(out[2], out[0]);
    EXPECT_NE(out[0], expected(bucket, 3, false)); // different noise than nearest
  }
}

TEST(GradCollective, ReduceScatterLeavesTwoShotBytesInTheOwnedShard) {
  for (int world = 1; world <= 4; ++world) {
    grad_comm_config opt;
    opt.chunk = 256;
    const auto rs = run(bucket, world, opt, true);
    opt.algo = algorithm::two_shot;
    const auto ar = run(bucket, world, opt, false);
    for (int r = 0; r < world; ++r) {
      const agoq::element_range sh = agoq::grad_shard(bucket.params, bucket.spec, opt, world, r);
      aligned_bytes local(bucket.total_bytes());
      fill(bucket, local.p, r);
      const auto& got = rs[std::size_t(r)];
      // codes: 1 byte per element (int8); scales: 4 bytes per block
      const std::size_t so = agoq::grad_scales_offset(bucket.params, bucket.spec);
      for (std::int64_t b = 0; b < (bucket.params + 127) / 128; ++b) {
        const bool mine = b * 128 >= sh.begin && b * 128 < sh.end;
        const unsigned char* want = mine ? ar[0].data() : local.p;
        ASSERT_EQ(std::memcmp(got.data() + b * 128, want + b * 128, 128), 0)
            << "W=" << world << " rank " << r << " block " << b << (mine ? " (owned)" : "");
        ASSERT_EQ(std::memcmp(got.data() + so + b * 4, want + so + b * 4, 4), 0);
      }
    }
  }
}

TEST(GradCollective, BadArguments) {
  auto expect_refused = [](auto&& call, const std::string& needle) {
    try {
      call();
      FAIL() << "expected agoq::invalid_argument containing " << needle;
    } catch (const agoq::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const grad_layout l{1024, quant_spec{}, 1024};
  agoq::host_run(1, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    aligned_bytes mem(l.total_bytes());
    agoq::host_buffer_backend be;
    const grad_comm_config opt;
    const std::size_t wsb = agoq::grad_allreduce_workspace_size(l.params, l.spec, opt, 1);
    aligned_bytes ws(wsb + 16);
    expect_refused([&] { agoq::grad_allreduce(l.view(mem.p), opt, ws.p, wsb - 1, tr, ex, be); },
                   "agoq::grad_allreduce: workspace_bytes must be >= ");
    expect_refused([&] { agoq::grad_allreduce(l.view(mem.p), opt, ws.p + 4, wsb, tr, ex, be); },
                   "workspace must be aligned");
    expect_refused([&] { agoq::grad_allreduce(l.view(mem.p), opt, nullptr, wsb, tr, ex, be); },
                   "workspace must not be null");
    grad_comm_config bad = opt;
    bad.chunk = 100;
    expect_refused([&] { agoq::grad_allreduce(l.view(mem.p), bad, ws.p, wsb, tr, ex, be); },
                   "config.chunk must be a multiple of config.block");
    agoq::quantized_view v = l.view(mem.p);
    v.spec.symmetric = false;
    expect_refused([&] { agoq::grad_reduce_scatter(v, opt, ws.p, wsb, tr, ex, be); },
                   "agoq::grad_reduce_scatter: buf.spec.symmetric must be true");
    v = l.view(mem.p);
    v.codes = nullptr;
    expect_refused([&] { agoq::grad_allreduce(v, opt, ws.p, wsb, tr, ex, be); },
                   "buf.codes must not be null");
  });
  expect_refused([] { (void)agoq::grad_allreduce_workspace_size(-1, quant_spec{}, {}, 2); },
                 "agoq::grad_allreduce_workspace_size: count must be >= 0");
  expect_refused([] { (void)agoq::grad_allreduce_workspace_size(10, quant_spec{}, {}, 0); },
                 "world must be >= 1");
}

TEST(GradCollective, WorkspaceIsThatOfTheSchedules) {
  grad_comm_config opt;
  opt.algo = algorithm::two_shot;
  agoq::allreduce_config c;
  c.algo = algorithm::two_shot;
  EXPECT_EQ(agoq::grad_allreduce_workspace_size(1 << 20, quant_spec{}, opt, 4),
            agoq::allreduce_workspace_size(1 << 20, agoq::element_type::bf16, c, 4));
  EXPECT_EQ(agoq::grad_allreduce_workspace_size(0, quant_spec{}, opt, 4), 0u);
  // auto resolves as for a bf16 input of the same count
  EXPECT_EQ(agoq::grad_allreduce_config(quant_spec{}, grad_comm_config{}, 1000, 2).algo,
            algorithm::one_shot);
  EXPECT_EQ(agoq::grad_allreduce_config(quant_spec{}, grad_comm_config{}, 1 << 24, 2).algo,
            algorithm::one_shot);
  EXPECT_EQ(agoq::grad_allreduce_config(quant_spec{}, grad_comm_config{}, 1 << 24, 4).algo,
            algorithm::two_shot);
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// Micro-batch accumulation in an 8-bit gradient buffer, on the host reference (agoq::ref), with
// exactly the calls grad_buffer::accumulate makes on the GPU (sub-view of grad_layout, seed
// grad_accumulate_seed(seed, offset)):
// - relative L2 error against fp32 accumulation after M = 1, 4, 16, 64 micro-batches of normal
//   gradients, nearest and stochastic rounding (measured figures printed; bounds below);
// - stochastic rounding is unbiased (and nearest is not: the test can fail);
// - blocks whose magnitudes differ by orders of magnitude keep their small blocks.
//
// Measured (N = 2^16, INT8, block 128, fp32 scales, seed fixed; printed by the test):
//   nearest:    M=1 6.45e-3  M=4 1.01e-2  M=16 1.89e-2  M=64 3.66e-2   (~0.0065 * sqrt((M+1)/2))
//   stochastic: M=1 9.10e-3  M=4 1.44e-2  M=16 2.66e-2  M=64 5.18e-2   (~sqrt(2) x nearest)
//   (16-bit Philox draws since run E; 24-bit draws gave 9.13e-3 at M=1, the rest the same)
// (issue 6's rule of thumb 0.0068 * sqrt(M/2): 4.8e-3, 9.6e-3, 1.92e-2, 3.85e-2.)
// Why: requantization k adds an error of ~q * |partial sum_k| with |partial sum_k| ~ sqrt(k)
// sigma, so the error variance grows like sum_k k = M(M+1)/2 while the signal grows like M:
// relative error ~ e1 * sqrt((M+1)/2), with e1 the single-quantization error (0.0065 nearest;
// stochastic rounding's variance per value is ~2x nearest's, hence ~sqrt(2)x).
#include "agoq/grad/layout.hpp"
#include "agoq/quant/reference.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <random>
#include <vector>

namespace {

using agoq::grad_layout;
using agoq::quant_spec;

//! Host mirror of a grad_buffer: the same layout and memory block, updated by agoq::ref.
struct host_grad {
  grad_layout l;
  std::vector<unsigned char, std::allocator<unsigned char>> raw;
  unsigned char* mem = nullptr;
  explicit host_grad(grad_layout layout) : l(layout), raw(layout.total_bytes() + 256, 0) {
    auto p = reinterpret_cast<std::uintptr_t>(raw.data());
    mem = raw.data() + ((256 - p % 256) % 256);
  }
  void accumulate(std::int64_t off, const float* g, std::int64_t n, std::uint64_t seed) {
    ASSERT_EQ(l.check_write_range(off, n), nullptr);
    agoq::ref::accumulate_requantize(l.sub_view(mem, off, n), g,
                                     agoq::grad_accumulate_seed(seed, off));
  }
  std::vector<float> decoded() {
    std::vector<float> y(std::size_t(l.params));
    agoq::ref::dequantize(agoq::const_quantized_view(l.view(mem)), y.data());
    return y;
  }
};

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

//! Accumulates M micro-batches of N(0, 1) gradients (two accumulate calls per micro-batch, over
//! the two halves, like two buckets) and returns the relative L2 error against fp32 accumulation.
double accumulation_error(int M, agoq::rounding rnd, std::int64_t n = std::int64_t(1) << 16) {
  quant_spec spec{};
  spec.rounding = rnd;
  host_grad g(grad_layout{n, spec, n / 2});
  std::vector<float> acc(static_cast<std::size_t>(n), 0.0f), x(static_cast<std::size_t>(n));
  std::mt19937 gen(12345u);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int m = 0; m < M; ++m) {
    for (auto& v : x)
      v = nd(gen);
    for (std::size_t i = 0; i < x.size(); ++i)
      acc[i] += x[i];
    g.accumulate(0, x.data(), n / 2, 1000 + std::uint64_t(m));
    g.accumulate(n / 2, x.data() + n / 2, n / 2, 1000 + std::uint64_t(m));
  }
  return rel_l2(g.decoded(), acc);
}

TEST(GradAccumulate, ErrorGrowthNearest) {
  const int ms[] = {1, 4, 16, 64};
  for (int M : ms) {
    const double e = accumulation_error(M, agoq::rounding::nearest_even);
    const double issue = 0.0068 * std::sqrt(M / 2.0); // issue 6's rule of thumb
    const double model = 0.0065 * std::sqrt((M + 1) / 2.0);
    std::printf("[ grad ] nearest    M=%-3d rel L2 %.3e  (0.0068*sqrt(M/2) = %.3e, "
                "0.0065*sqrt((M+1)/2) = %.3e)\n",
                M, e, issue, model);
    EXPECT_GT(e, 0.8 * model) << "M=" << M;
    EXPECT_LT(e, 1.2 * model) << "M=" << M;
    if (M == 16) {
      EXPECT_LE(e, 2.5e-2);                 // issue 6 target
      EXPECT_NEAR(e, issue, 0.25 * issue);  // near the issue's figure
    }
  }
}

TEST(GradAccumulate, ErrorGrowthStochastic) {
  const int ms[] = {1, 4, 16, 64};
  for (int M : ms) {
    const double e = accumulation_error(M, agoq::rounding::stochastic);
    const double model = std::sqrt(2.0) * 0.0065 * std::sqrt((M + 1) / 2.0);
    std::printf("[ grad ] stochastic M=%-3d rel L2 %.3e  (sqrt(2)*0.0065*sqrt((M+1)/2) = %.3e)\n",
                M, e, model);
    EXPECT_GT(e, 0.8 * model) << "M=" << M;
    EXPECT_LT(e, 1.2 * model) << "M=" << M;
    if (M == 16) {
      EXPECT_LE(e, 3.0e-2); // documented figure: 2.66e-2
    }
  }
}

//! A block with one large value L and 127 small values c = 0.25 code steps (step = L / 127);
//! micro-batch 1 brings L and c, later micro-batches only c. Nearest rounding drops c every time
//! (0.25 steps round to 0) and ends at 0; stochastic rounding must end at M * c on average.
TEST(GradAccumulate, StochasticRoundingIsUnbiased) {
  const int M = 16;
  const std::int64_t blocks = 512, n = blocks * 128;
  const float L = 1.0f, step = L / 127.0f, c = 0.25f * step;
  auto run = [&](agoq::rounding rnd) {
    quant_spec spec{};
    spec.rounding = rnd;
    host_grad g(grad_layout{n, spec, n});
    std::vector<float> x(static_cast<std::size_t>(n));
    for (int m = 0; m < M; ++m) {
      for (std::int64_t i = 0; i < n; ++i)
        x[std::size_t(i)] = (i % 128 == 0) ? (m == 0 ? L : 0.0f) : c;
      g.accumulate(0, x.data(), n, 77 + std::uint64_t(m));
    }
    const std::vector<float> y = g.decoded();
    double sum = 0;
    std::int64_t k = 0;
    for (std::int64_t i = 0; i < n; ++i)
      if (i % 128 != 0) sum += y[std::size_t(i)], ++k;
    return sum / double(k); // mean of the small entries
  };
  const double want = double(M) * c;
  // Variance of one entry after M steps <= M * step^2 / 4 (each step adds <= step^2/4), so the
  // mean over k = 127 * blocks entries has sd <= step * sqrt(M / (4k)).
  const double sd = step * std::sqrt(M / (4.0 * 127.0 * double(blocks)));
  const double sr = run(agoq::rounding::stochastic), rn = run(agoq::rounding::nearest_even);
  std::printf("[ grad ] unbiased: exact %.6e  stochastic %.6e (|bias| %.2f sd)  nearest %.6e\n",
              want, sr, std::fabs(sr - want) / sd, rn);
  EXPECT_NEAR(sr, want, 5.0 * sd);
  EXPECT_GT(std::fabs(rn - want), 100.0 * sd); // nearest is biased: the bound has power
}

//! Blocks whose magnitudes span 1e-8 .. 1e4 (a per-tensor scale would flush the small ones to
//! zero): every block keeps its own relative accuracy after M = 4 micro-batches.
TEST(GradAccumulate, SmallBlocksSurviveNextToLargeOnes) {
  const int M = 4;
  const float mags[] = {1e-8f, 1e4f, 1e-3f, 1.0f, 1e-6f, 1e2f, 3e-5f, 10.0f};
  const std::int64_t nb = 64, n = nb * 128 - 5; // a partial tail block too
  host_grad g(grad_layout{n, quant_spec{}, 1024});
  std::vector<float> acc(static_cast<std::size_t>(n), 0.0f), x(static_cast<std::size_t>(n));
  std::mt19937 gen(99u);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int m = 0; m < M; ++m) {
    for (std::int64_t i = 0; i < n; ++i)
      x[std::size_t(i)] = nd(gen) * mags[(i / 128) % 8];
    for (std::int64_t i = 0; i < n; ++i)
      acc[std::size_t(i)] += x[std::size_t(i)];
    for (std::int64_t b = 0; b < g.l.bucket_count(); ++b)
      g.accumulate(g.l.bucket_offset(b), x.data() + g.l.bucket_offset(b), g.l.bucket_size(b), 0);
  }
  const std::vector<float> y = g.decoded();
  double worst = 0;
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t lo = b * 128, hi = std::min(n, lo + 128);
    const std::vector<float> gy(y.begin() + lo, y.begin() + hi), ga(acc.begin() + lo, acc.begin() + hi);
    const double e = rel_l2(gy, ga);
    worst = std::max(worst, e);
    EXPECT_LT(e, 2e-2) << "block " << b << " magnitude " << mags[b % 8];
  }
  std::printf("[ grad ] magnitudes 1e-8..1e4: worst per-block rel L2 %.3e\n", worst);
}

TEST(GradAccumulate, ZeroBufferAndZeroGradStayZero) {
  host_grad g(grad_layout{1000, quant_spec{}, 256});
  std::vector<float> z(1000, 0.0f);
  g.accumulate(0, z.data(), 1000, 0);
  for (float v : g.decoded())
    ASSERT_EQ(v, 0.0f);
}

} // namespace

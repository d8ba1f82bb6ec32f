// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the host and GPU tests: rank inputs, fp64 references, relative L2 error.
#pragma once

#include <agoq/comm/config.hpp>
#include <agoq/quant/reference.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace agoq_test {

//! Normal data (times `scale`) for `world` ranks, as fp32 values exactly representable in T
//! (float, __half or __nv_bfloat16), the same on the host and the GPU tests.
template <class T>
std::vector<std::vector<float>> make_inputs(int world, std::int64_t count, std::uint32_t seed,
                                            float scale = 1.0f) {
  std::vector<std::vector<float>> in(static_cast<std::size_t>(world));
  for (int r = 0; r < world; ++r) {
    std::mt19937 gen(seed * 977u + std::uint32_t(r) * 131u + 7u);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    in[std::size_t(r)].resize(std::size_t(count));
    for (auto& v : in[std::size_t(r)])
      v = agoq::ref::detail::to_float(agoq::ref::detail::from_float<T>(nd(gen) * scale));
  }
  return in;
}

//! The default all-reduce config with algorithm `a` and pipeline chunk `chunk` (0: default).
inline agoq::allreduce_config with(agoq::algorithm a, std::int64_t chunk = 0) {
  agoq::allreduce_config c;
  c.algo = a;
  c.chunk = chunk;
  return c;
}

//! The fp64 sum over ranks of in[rank][i].
inline std::vector<double> reference_sum(const std::vector<std::vector<float>>& in) {
  std::vector<double> s(in[0].size(), 0.0);
  for (const auto& v : in)
    for (std::size_t i = 0; i < v.size(); ++i) s[i] += double(v[i]);
  return s;
}

//! ||y - ref/div|| / ||ref/div|| (the absolute norm when the reference is all zeros).
inline double rel_l2(const std::vector<float>& y, const std::vector<double>& ref, double div = 1.0) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double d = double(y[i]) - ref[i] / div;
    num += d * d;
    den += (ref[i] / div) * (ref[i] / div);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

} // namespace agoq_test

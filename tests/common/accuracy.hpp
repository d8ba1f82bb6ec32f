// SPDX-License-Identifier: Apache-2.0
// Accuracy helpers shared by the host and GPU tests: fp64 references and relative L2 error.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace agoq_test {

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

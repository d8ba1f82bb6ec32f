// SPDX-License-Identifier: Apache-2.0
// Host-only part of the consumer: plain C++ against agoq's .hpp headers.
#include <agoq/agoq.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int run_on_gpu_if_present(); // kernel.cu

// agoq::agoq alone leaves the collectives out (agoq::comm turns them on with AGOQ_WITH_NCCL=1).
static_assert(!AGOQ_HAS_NCCL(), "AGOQ_HAS_NCCL() follows agoq::comm, not <nccl.h>");

int main() {
  const agoq::quant_spec spec{agoq::format::int8, 128};
  static_assert(agoq::codes_bytes(agoq::quant_spec{agoq::format::int4, 32}, 100) == 64);
  const std::int64_t n = 1000;
  std::vector<float> x(n), y(n);
  for (std::int64_t i = 0; i < n; ++i) x[i] = float(i % 17) - 8.0f;
  std::vector<unsigned char> codes(agoq::codes_bytes(spec, n));
  std::vector<unsigned char> scales(agoq::scales_bytes(spec, n));
  agoq::ref::quantize(x.data(), agoq::quantized_view{codes.data(), scales.data(), nullptr, 1, n, spec});
  agoq::ref::dequantize(agoq::const_quantized_view{codes.data(), scales.data(), nullptr, 1, n, spec},
                        y.data());
  // a std::size_t count is accepted by the views (no narrowing error)
  const std::size_t size_n = codes.size() ? std::size_t(n) : 0;
  const agoq::const_quantized_view sized{codes.data(), scales.data(), nullptr, 1, size_n, spec};
  if (sized.count() != n) return 1;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!(std::fabs(y[i] - x[i]) <= 8.0f / 127.0f / 2.0f * 1.001f)) { // amax 8: half a step
      std::printf("mismatch at %lld: %g != %g\n", (long long)i, y[i], x[i]);
      return 1;
    }
  }
  std::printf("agoq %s host round trip ok\n", agoq::version_string);
  return run_on_gpu_if_present();
}

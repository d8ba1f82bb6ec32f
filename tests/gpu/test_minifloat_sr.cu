// SPDX-License-Identifier: Apache-2.0
// FP8 stochastic rounding by integer adds (quant/chunk_codec.cuh, minifloat_sr_grid) against the
// reference encoder, exhaustively in the draw: around every code (the code, its fp32 neighbours,
// the midpoint to the next code), fp32 subnormals, zeros, values past the largest and +-Inf,
// each with all 65536 draws in both halves of a Philox word. The grid value is encoded with the
// reference's nearest-even encoder (what cvt.rn.satfinite computes), so a mismatch is the
// grid step's alone.
#include "gpu/gpu_test.cuh"

#include <agoq/agoq.cuh>
#include <agoq/quant/chunk_codec.cuh> // minifloat_sr_grid, the device encoder under test

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using agoq_test::device_buffer;

//! Counts the (value, draw) pairs whose grid code differs from Impl::encode_sr and keeps the
//! first one (index value * 65536 + draw).
template <class Impl>
__global__ void count_sr_grid_mismatches(const float* t, long n, unsigned* bad,
                                         unsigned long long* first) {
  for (long k = long(blockIdx.x) * blockDim.x + threadIdx.x; k < n * 65536;
       k += long(gridDim.x) * blockDim.x) {
    const float x = t[k >> 16];
    const std::uint32_t h = std::uint32_t(k) & 0xFFFFu;
    const std::uint8_t ref = Impl::encode_sr(x, float(h) * (1.0f / 65536.0f));
    // the other half of the word holds another element's draw, which must not matter
    const std::uint8_t lo =
        Impl::encode(agoq::detail::minifloat_sr_grid<Impl, false>(x, h | 0xB7E10000u));
    const std::uint8_t hi =
        Impl::encode(agoq::detail::minifloat_sr_grid<Impl, true>(x, h << 16 | 0x5A3Cu));
    if (lo != ref || hi != ref) {
      if (atomicAdd(bad, 1u) == 0u) *first = static_cast<unsigned long long>(k);
    }
  }
}

template <class Impl> std::vector<float> values_around_codes() {
  std::vector<float> v;
  for (unsigned c = 0; c < 256; ++c) {
    const float x = Impl::decode(std::uint8_t(c));
    if (!std::isfinite(x)) continue;
    const float next = Impl::decode(std::uint8_t(c + 1)); // the next magnitude, same sign
    v.insert(v.end(), {x, std::nextafter(x, INFINITY), std::nextafter(x, -INFINITY)});
    if (std::isfinite(next) && (c & 0x7Fu) != 0x7Fu) v.push_back(x + (next - x) / 2);
  }
  const float max = Impl::max_value();
  for (float x : {0x1p-149f, 0x3p-149f, 0x1p-140f, 0x1p-127f, 0x1p-126f, max * 1.03f, max * 2.0f,
                  INFINITY, 0.0f}) {
    v.push_back(x);
    v.push_back(-x);
  }
  return v;
}

template <class Impl> void expect_grid_codes_match_reference() {
  const std::vector<float> v = values_around_codes<Impl>();
  device_buffer<float> d_v(v.size());
  device_buffer<unsigned> d_bad(1);
  device_buffer<unsigned long long> d_first(1);
  d_v.upload(v);
  d_bad.fill_bytes(0);
  d_first.fill_bytes(0);
  count_sr_grid_mismatches<Impl><<<1024, 256>>>(d_v.ptr, long(v.size()), d_bad.ptr, d_first.ptr);
  AGOQ_CUDA_TRY(cudaGetLastError());
  const unsigned bad = d_bad.download()[0];
  const unsigned long long first = d_first.download()[0];
  EXPECT_EQ(bad, 0u) << "first mismatch: value " << v[first >> 16] << " draw " << (first & 0xFFFF)
                     << " (" << v.size() << " values x 65536 draws)";
  EXPECT_GT(v.size(), 700u); // every code's neighbourhood was tried
}

TEST(minifloat_sr_grid, e4m3_every_draw_around_every_code_matches_the_reference) {
  AGOQ_REQUIRE_DEVICE();
  expect_grid_codes_match_reference<agoq::detail::e4m3_impl>();
}

TEST(minifloat_sr_grid, e5m2_every_draw_around_every_code_matches_the_reference) {
  AGOQ_REQUIRE_DEVICE();
  expect_grid_codes_match_reference<agoq::detail::e5m2_impl>();
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// The collectives' codec kernels (comm/reduce_kernels.cuh) through cuda_executor, on one GPU (no
// NCCL needed), bit for bit against the host executor's unfused sequence (agoq::ref):
// reduce_quantize (codes and scales) and reduce_store for every symmetric wire format, blocks
// 32..256, fp32 and E8M0 scales, both roundings, 1..9 messages, divisors, tail lengths;
// quantize_many / dequantize_many with more jobs than one launch takes, empty jobs, unaligned
// element pointers and every element type; refused arguments.
#include "gpu/gpu_test.cuh"

#include <agoq/comm/cuda_executor.cuh>
#include <agoq/comm/host_transport.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using agoq::quant_spec;
using agoq_test::device_buffer;

//! w messages of n elements, `stride` bytes apart, quantized (ref) from normal data.
std::vector<unsigned char> make_messages(int w, std::int64_t n, const quant_spec& s,
                                         std::size_t stride, std::uint32_t seed) {
  std::vector<unsigned char> buf(stride * std::size_t(w), 0);
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int j = 0; j < w; ++j) {
    for (auto& v : x)
      v = nd(gen) * (1.0f + 0.5f * float(j));
    if (n > 40) std::fill(x.begin() + 3, x.begin() + 3 + 37, 0.0f); // an all-zero run
    // a whole block of zeros in every message: its sum is 0, so the requantized block has a zero
    // scale (the encoders' per-element path)
    if (n >= 2 * s.block) std::fill(x.begin() + s.block, x.begin() + 2 * s.block, 0.0f);
    agoq::ref::quantize(x.data(), agoq::message_view(buf.data() + std::size_t(j) * stride, n, s),
                        std::uint64_t(j) + 1);
  }
  return buf;
}

template <class T> std::vector<T> download_n(const T* p, std::size_t n) {
  std::vector<T> h(n);
  AGOQ_CUDA_TRY(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

TEST(CommKernels, ReduceQuantizeAndReduceStoreMatchTheHostBitForBit) {
  AGOQ_REQUIRE_DEVICE();
  const agoq::format formats[] = {
      agoq::format::int8,     agoq::format::int4, agoq::format::fp8_e4m3, agoq::format::fp8_e5m2,
      agoq::format::fp4_e2m1, agoq::format::int5, agoq::format::int2};
  agoq::cuda_executor gex(nullptr);
  agoq::host_executor hex;
  int cases = 0;
  for (agoq::format f : formats)
    for (int block : {32, 128, 256})
      for (agoq::scale_kind sk : {agoq::scale_kind::fp32, agoq::scale_kind::e8m0})
        for (agoq::rounding rnd : {agoq::rounding::nearest_even, agoq::rounding::stochastic})
          for (int w : {1, 2, 3, 9}) {
            const std::int64_t big = (f == agoq::format::int8 || f == agoq::format::fp8_e4m3)
                                         ? std::int64_t(100003)
                                         : std::int64_t(4 * block + 5);
            for (std::int64_t n : {std::int64_t(1), std::int64_t(block - 1), big}) {
              quant_spec s;
              s.format = f;
              s.block = block;
              s.scale = sk;
              s.rounding = rnd;
              SCOPED_TRACE(std::string(agoq::to_string(f)) + "/" + std::to_string(block) + "/" +
                           agoq::to_string(sk) + "/" + agoq::to_string(rnd) +
                           " w=" + std::to_string(w) + " n=" + std::to_string(n));
              const std::size_t stride = agoq::align_up(agoq::message_bytes(s, n), 256);
              const auto hmsgs = make_messages(w, n, s, stride, std::uint32_t(n + 31 * w));
              device_buffer<unsigned char> dmsgs(hmsgs.size());
              dmsgs.upload(hmsgs);
              const std::size_t mb = agoq::message_bytes(s, n);
              device_buffer<unsigned char> dout(mb + 64);
              device_buffer<__nv_bfloat16> dy(static_cast<std::size_t>(n) + 8);
              device_buffer<float> dyf(static_cast<std::size_t>(n) + 8);
              device_buffer<__half> dyh(static_cast<std::size_t>(n) + 8);
              for (float divisor : {1.0f, float(w) + 2.0f}) {
                const std::uint64_t seed = 99 + std::uint64_t(w);
                // host: the unfused sequence
                std::vector<float> acc(static_cast<std::size_t>(n));
                hex.decode(hmsgs.data(), n, s, acc.data());
                for (int j = 1; j < w; ++j)
                  hex.decode_add(hmsgs.data() + std::size_t(j) * stride, n, s, acc.data());
                if (divisor != 1.0f) hex.divide(acc.data(), n, divisor);
                std::vector<unsigned char> want(mb);
                hex.quantize(static_cast<const float*>(acc.data()), n, want.data(), s, seed);
                std::vector<__nv_bfloat16> want_y(static_cast<std::size_t>(n));
                hex.store(static_cast<const float*>(acc.data()), n, want_y.data());
                std::vector<__half> want_h(static_cast<std::size_t>(n));
                hex.store(static_cast<const float*>(acc.data()), n, want_h.data());
                // GPU: one kernel each (bf16 output 16-byte aligned for one divisor: vector
                // stores of full chunks; at an odd element offset for the other: scalar stores)
                dout.fill_bytes(0x77);
                dy.fill_bytes(0x5C);
                dyf.fill_bytes(0x5C);
                dyh.fill_bytes(0x5C);
                gex.reduce_quantize(dmsgs.ptr, stride, w, n, s, divisor,
                                    agoq::message_view(dout.ptr, n, s), seed);
                __nv_bfloat16* y = dy.ptr + (divisor == 1.0f ? 0 : 1);
                gex.reduce_store(dmsgs.ptr, stride, w, n, s, divisor, y);
                gex.reduce_store(dmsgs.ptr, stride, w, n, s, divisor, dyf.ptr);
                gex.reduce_store(dmsgs.ptr, stride, w, n, s, divisor, dyh.ptr);
                AGOQ_CUDA_TRY(cudaDeviceSynchronize());
                const auto got = download_n(dout.ptr, mb + 64);
                ASSERT_EQ(std::memcmp(got.data(), want.data(), mb), 0)
                    << "codes/scales differ, divisor " << divisor;
                for (std::size_t i = mb; i < mb + 64; ++i)
                  ASSERT_EQ(got[i], 0x77) << "wrote past the message";
                const auto got_y = download_n(y, std::size_t(n) + 1);
                ASSERT_EQ(std::memcmp(got_y.data(), want_y.data(), want_y.size() * 2), 0);
                const auto got_f = download_n(dyf.ptr, std::size_t(n) + 1);
                ASSERT_EQ(std::memcmp(got_f.data(), acc.data(), acc.size() * 4), 0);
                const auto got_h = download_n(dyh.ptr, std::size_t(n) + 1);
                ASSERT_EQ(std::memcmp(got_h.data(), want_h.data(), want_h.size() * 2), 0);
                unsigned short past_h = 0;
                std::memcpy(&past_h, &got_h[std::size_t(n)], 2);
                ASSERT_EQ(past_h, 0x5C5Cu) << "reduce_store<half> wrote past y[n - 1]";
                unsigned short past_y = 0;
                unsigned past_f = 0;
                std::memcpy(&past_y, &got_y[std::size_t(n)], 2);
                std::memcpy(&past_f, &got_f[std::size_t(n)], 4);
                ASSERT_EQ(past_y, 0x5C5Cu) << "reduce_store<bf16> wrote past y[n - 1]";
                ASSERT_EQ(past_f, 0x5C5C5C5Cu) << "reduce_store<float> wrote past y[n - 1]";
                ++cases;
              }
            }
          }
  EXPECT_GT(cases, 1000);
}

// `lens` jobs in one call; every third input one element off 16-byte alignment when `skew`.
template <class T>
void many_jobs(const quant_spec& s, const std::vector<std::int64_t>& lens, bool skew) {
  const int count = int(lens.size());
  std::vector<std::size_t> xoff, moff;
  std::size_t xs = 0, ms = 0;
  for (int j = 0; j < count; ++j) {
    xoff.push_back(xs + (skew && j % 3 == 1 ? 1 : 0));
    xs += std::size_t(lens[j]) + 16;
    moff.push_back(ms);
    ms += agoq::align_up(agoq::message_bytes(s, lens[j]), 256) + 256;
  }
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<T> hx(xs);
  for (auto& v : hx)
    v = agoq::ref::detail::from_float<T>(nd(gen));
  device_buffer<T> dx(xs), dy(xs);
  dx.upload(hx);
  device_buffer<unsigned char> dm(ms);
  dm.fill_bytes(0x5A);
  dy.fill_bytes(0x33);
  std::vector<agoq::quantize_job<T>> q;
  std::vector<agoq::dequantize_job<T>> d;
  for (int j = 0; j < count; ++j) {
    q.push_back({dx.ptr + xoff[std::size_t(j)], lens[j], dm.ptr + moff[std::size_t(j)],
                 std::uint64_t(1000 + j)});
    d.push_back({dm.ptr + moff[std::size_t(j)], lens[j], dy.ptr + xoff[std::size_t(j)]});
  }
  agoq::cuda_executor gex(nullptr);
  gex.quantize_many(q.data(), count, s);
  gex.dequantize_many(d.data(), count, s);
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  const auto hm = download_n(dm.ptr, ms);
  const auto hy = download_n(dy.ptr, xs);
  agoq::host_executor hex;
  for (int j = 0; j < count; ++j) {
    SCOPED_TRACE("job " + std::to_string(j) + " n=" + std::to_string(lens[j]));
    const std::size_t mb = agoq::message_bytes(s, lens[j]);
    std::vector<unsigned char> want(mb + 1);
    std::vector<T> want_y(std::size_t(lens[j]) + 1);
    if (lens[j] > 0) {
      hex.quantize(hx.data() + xoff[std::size_t(j)], lens[j], want.data(), s,
                   std::uint64_t(1000 + j));
      hex.dequantize(want.data(), lens[j], s, want_y.data());
    }
    ASSERT_EQ(std::memcmp(hm.data() + moff[std::size_t(j)], want.data(), mb), 0) << "codes";
    ASSERT_EQ(hm[moff[std::size_t(j)] + mb], 0x5A) << "wrote past the message";
    ASSERT_EQ(std::memcmp(hy.data() + xoff[std::size_t(j)], want_y.data(),
                          std::size_t(lens[j]) * sizeof(T)),
              0)
        << "dequantized values";
    const auto* past = reinterpret_cast<const unsigned char*>(hy.data() + xoff[std::size_t(j)] +
                                                              std::size_t(lens[j]));
    for (std::size_t b = 0; b < sizeof(T); ++b)
      ASSERT_EQ(past[b], 0x33) << "dequantize_many wrote past the job's output";
  }
}

TEST(CommKernels, QuantizeManyAndDequantizeManyMatchTheHostPerJob) {
  AGOQ_REQUIRE_DEVICE();
  for (agoq::format f : {agoq::format::int8, agoq::format::fp8_e5m2, agoq::format::int3})
    for (int block : {32, 128})
      for (agoq::rounding rnd : {agoq::rounding::nearest_even, agoq::rounding::stochastic}) {
        quant_spec s;
        s.format = f;
        s.block = block;
        s.rounding = rnd;
        SCOPED_TRACE(std::string(agoq::to_string(f)) + "/" + std::to_string(block) + "/" +
                     agoq::to_string(rnd));
        // 21 jobs (two launches), one empty, odd lengths, some inputs not 16-byte aligned
        const std::vector<std::int64_t> mixed = {1,   300,    0,   4096, 4097, 31,   128,
                                                 129, 100003, 7,   5000, 257,  1024, 1023,
                                                 1,   2,      333, 999,  8192, 77,   640};
        // whole blocks, all aligned, job boundaries inside warps: a warp whose 32 full chunks
        // span two jobs must not be stored as one contiguous run
        const std::vector<std::int64_t> whole = {384, 512, 3 * 128, 40 * 128, 128, 256};
        for (const auto* lens : {&mixed, &whole}) {
          const bool skew = lens == &mixed;
          many_jobs<__nv_bfloat16>(s, *lens, skew);
          if (::testing::Test::HasFatalFailure()) return;
          many_jobs<float>(s, *lens, skew);
          if (::testing::Test::HasFatalFailure()) return;
          many_jobs<__half>(s, *lens, skew);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
}

TEST(CommKernels, RefusedArguments) {
  AGOQ_REQUIRE_DEVICE();
  agoq::cuda_executor gex(nullptr);
  quant_spec s;
  device_buffer<unsigned char> m(4096);
  auto refused = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no exception; expected one naming " << needle;
    } catch (const agoq::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(
      [&] {
        gex.reduce_quantize(m.ptr + 4, 1024, 2, 256, s, 1.0f,
                            agoq::message_view(m.ptr + 2048, 256, s), 0);
      },
      "codes must be aligned");
  refused(
      [&] {
        gex.reduce_quantize(m.ptr, 1000, 2, 256, s, 1.0f, agoq::message_view(m.ptr + 2048, 256, s),
                            0);
      },
      "stride");
  quant_spec asym = s;
  asym.symmetric = false;
  refused(
      [&] {
        gex.reduce_quantize(m.ptr, 1024, 2, 256, asym, 1.0f,
                            agoq::message_view(m.ptr + 2048, 256, asym), 0);
      },
      "symmetric");
  quant_spec other = s;
  other.block = 64;
  refused(
      [&] {
        gex.reduce_quantize(m.ptr, 1024, 2, 256, s, 1.0f,
                            agoq::message_view(m.ptr + 2048, 256, other), 0);
      },
      "out.spec");
  refused([&] { gex.reduce_store<float>(m.ptr, 1024, 2, 256, s, 1.0f, nullptr); },
          "y must not be null");
  // n == 0 does nothing
  gex.reduce_quantize(nullptr, 0, 2, 0, s, 1.0f, agoq::quantized_view{}, 0);
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// agoq::grad_buffer on the GPU: accumulate (bf16 and fp32 grads, nearest and stochastic, bucket
// and offset forms) equals the host reference (agoq::ref on the same layout) bit for bit;
// dequantize_to and zero; bad arguments refused with the documented messages; the 8-bit bucket
// all-reduce (every algorithm) and reduce-scatter over every visible GPU (ncclCommInitAll, one
// thread per rank; skipped with < 2 GPUs) are bitwise identical on all ranks AND bitwise the same
// collective over the host transport (grad/collective.hpp with agoq::ref).
#include "gpu/gpu_test.cuh"

#include <agoq/comm/host_transport.hpp>
#include <agoq/grad/grad_buffer.cuh>

#include <cuda_bf16.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using agoq::grad_buffer;
using agoq::grad_layout;
using agoq::quant_spec;
using agoq_test::device_buffer;

std::vector<unsigned char> host_bytes(const grad_buffer& g) {
  std::vector<unsigned char> h(g.total_bytes());
  AGOQ_CUDA_TRY(cudaMemcpy(h.data(), g.data(), h.size(), cudaMemcpyDeviceToHost));
  return h;
}

//! 256-aligned host copy of a layout's memory block.
struct host_block {
  std::vector<unsigned char> raw;
  unsigned char* p;
  explicit host_block(std::size_t n) : raw(n + 256, 0) {
    const auto a = reinterpret_cast<std::uintptr_t>(raw.data());
    p = raw.data() + ((256 - a % 256) % 256);
  }
};

std::vector<float> normal(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v)
    x = nd(gen);
  return v;
}

template <class T> void accumulate_matches_reference(agoq::rounding rnd) {
  quant_spec spec{};
  spec.rounding = rnd;
  const std::int64_t n = 100003, bucket = 16384; // 7 buckets, the last with a partial block
  grad_buffer g(n, spec, bucket, agoq::cuda_malloc_allocator());
  host_block h(g.total_bytes());
  AGOQ_TRY(g.zero(nullptr));
  device_buffer<T> d(static_cast<std::size_t>(n));
  for (int m = 0; m < 4; ++m) {
    const std::vector<float> xf = normal(std::size_t(n), 10u + std::uint32_t(m), 1e-3f);
    std::vector<T> x(xf.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = agoq::ref::detail::from_float<T>(xf[i]);
    d.upload(x);
    if (m % 2 == 0) { // bucket form, automatic seeds seed() + k
      for (std::int64_t b = 0; b < g.bucket_count(); ++b) {
        const std::uint64_t k = std::uint64_t(m / 2) * std::uint64_t(g.bucket_count()) + b;
        AGOQ_TRY(g.accumulate_bucket(b, d.ptr + g.bucket_offset(b), nullptr));
        agoq::ref::accumulate_requantize(g.layout().sub_view(h.p, g.bucket_offset(b),
                                                             g.bucket_size(b)),
                                         x.data() + g.bucket_offset(b),
                                         agoq::grad_accumulate_seed(g.seed() + k,
                                                                    g.bucket_offset(b)));
      }
    } else { // offset form, explicit seed, two uneven ranges
      const std::int64_t cut = 128 * 300;
      AGOQ_TRY(g.accumulate(0, d.ptr, cut, 99u + m, nullptr));
      AGOQ_TRY(g.accumulate(cut, d.ptr + cut, n - cut, 99u + m, nullptr));
      agoq::ref::accumulate_requantize(g.layout().sub_view(h.p, 0, cut), x.data(),
                                       agoq::grad_accumulate_seed(99u + m, 0));
      agoq::ref::accumulate_requantize(g.layout().sub_view(h.p, cut, n - cut), x.data() + cut,
                                       agoq::grad_accumulate_seed(99u + m, cut));
    }
  }
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  const std::vector<unsigned char> got = host_bytes(g);
  ASSERT_EQ(std::memcmp(got.data(), h.p, got.size()), 0) << "device bytes differ from agoq::ref";

  // dequantize_to: fp32 and bf16, whole and a shard
  std::vector<float> want(static_cast<std::size_t>(n));
  agoq::ref::dequantize(agoq::const_quantized_view(g.layout().view(h.p)), want.data());
  device_buffer<float> f(static_cast<std::size_t>(n));
  AGOQ_TRY(g.dequantize_to(f.ptr, nullptr));
  EXPECT_EQ(f.download(), want);
  device_buffer<__nv_bfloat16> bf(static_cast<std::size_t>(n));
  AGOQ_TRY(g.dequantize_to(128 * 10, 1000, bf.ptr, nullptr));
  const std::vector<__nv_bfloat16> hb = bf.download();
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(__bfloat162float(hb[std::size_t(i)]),
              __bfloat162float(__float2bfloat16_rn(want[std::size_t(1280 + i)])));
  AGOQ_TRY(g.zero(nullptr));
  AGOQ_TRY(g.dequantize_to(f.ptr, nullptr));
  for (float v : f.download())
    ASSERT_EQ(v, 0.0f);
}

TEST(GradBuffer, AccumulateBf16NearestMatchesReference) {
  AGOQ_REQUIRE_DEVICE();
  accumulate_matches_reference<__nv_bfloat16>(agoq::rounding::nearest_even);
}
TEST(GradBuffer, AccumulateFp32StochasticMatchesReference) {
  AGOQ_REQUIRE_DEVICE();
  accumulate_matches_reference<float>(agoq::rounding::stochastic);
}

TEST(GradBuffer, BadArgumentsAreRefused) {
  AGOQ_REQUIRE_DEVICE();
  grad_buffer g(1000, quant_spec{}, 256, agoq::cuda_malloc_allocator());
  device_buffer<float> x(2000);
  auto msg = [] { return std::string(agoq::last_error_message()); };
  EXPECT_EQ(g.accumulate(64, x.ptr, 128, nullptr), agoq::status::invalid_argument);
  EXPECT_EQ(msg(), "agoq::grad_buffer::accumulate: offset must be a multiple of spec.block");
  EXPECT_EQ(g.accumulate(896, x.ptr, 200, nullptr), agoq::status::invalid_argument);
  EXPECT_EQ(msg(), "agoq::grad_buffer::accumulate: count must not run past the buffer "
                   "(offset + count <= params)");
  EXPECT_EQ(g.accumulate(0, x.ptr, 100, nullptr), agoq::status::invalid_argument);
  EXPECT_NE(msg().find("count must be a multiple of spec.block"), std::string::npos);
  EXPECT_EQ(g.accumulate(0, static_cast<const float*>(nullptr), 128, nullptr),
            agoq::status::invalid_argument);
  EXPECT_EQ(msg(), "agoq::grad_buffer::accumulate: grad must not be null when count > 0");
  EXPECT_EQ(g.accumulate_bucket(4, x.ptr, nullptr), agoq::status::invalid_argument);
  EXPECT_EQ(msg(), "agoq::grad_buffer::accumulate_bucket: bucket must be in [0, bucket_count())");
  EXPECT_EQ(g.dequantize_to(0, 1001, x.ptr, nullptr), agoq::status::invalid_argument);
  EXPECT_THROW(AGOQ_TRY(g.accumulate(1, x.ptr, 128, nullptr)), agoq::invalid_argument);
  EXPECT_EQ(g.accumulate(0, x.ptr, 0, nullptr), agoq::status::success); // empty: no-op
  // constructors
  EXPECT_THROW(grad_buffer(1000, quant_spec{}, 200, x.ptr, 8000), agoq::invalid_argument);
  EXPECT_THROW(grad_buffer(1000, quant_spec{}, 256, x.ptr, 100), agoq::invalid_argument);
  EXPECT_THROW(grad_buffer(1000, quant_spec{}, 256, reinterpret_cast<char*>(x.ptr) + 4, 8000),
               agoq::invalid_argument);
  EXPECT_THROW(grad_buffer(1000, quant_spec{}, 256, agoq::grad_allocator{}),
               agoq::invalid_argument);
  EXPECT_EQ(g.total_bytes(), grad_buffer::bytes_required(1000, quant_spec{}, 256));
  EXPECT_EQ(g.bytes_per_param(), 1.03125);
}

#if AGOQ_HAS_NCCL()
//! Runs fn(rank, comm, stream) on one thread per GPU over an ncclCommInitAll world.
template <class Fn> void on_every_gpu(int w, Fn&& fn) {
  std::vector<ncclComm_t> comms(static_cast<std::size_t>(w));
  ASSERT_EQ(ncclCommInitAll(comms.data(), w, nullptr), ncclSuccess);
  std::vector<std::string> errors(static_cast<std::size_t>(w));
  std::vector<std::thread> threads;
  for (int r = 0; r < w; ++r)
    threads.emplace_back([&, r] {
      try {
        AGOQ_CUDA_TRY(cudaSetDevice(r));
        cudaStream_t s;
        AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        fn(r, agoq::comm_ref(comms[std::size_t(r)]), s);
        AGOQ_CUDA_TRY(cudaStreamSynchronize(s));
        AGOQ_CUDA_TRY(cudaStreamDestroy(s));
      } catch (const std::exception& e) {
        errors[std::size_t(r)] = e.what();
      }
    });
  for (auto& t : threads)
    t.join();
  for (int r = 0; r < w; ++r) {
    (void)cudaSetDevice(r);
    (void)ncclCommDestroy(comms[std::size_t(r)]);
  }
  (void)cudaSetDevice(0);
  for (int r = 0; r < w; ++r)
    ASSERT_TRUE(errors[std::size_t(r)].empty()) << "rank " << r << ": " << errors[std::size_t(r)];
}

TEST(GradBuffer, AllreduceAndReduceScatterOnCodesAreBitwiseIdenticalAndMatchHost) {
  AGOQ_REQUIRE_DEVICE();
  const int w = agoq_test::gpu_count();
  if (w < 2) GTEST_SKIP() << "needs >= 2 GPUs (has " << w << ")";
  const grad_layout l{300001, quant_spec{}, 1 << 17}; // 3 buckets, partial tail block
  const agoq::algorithm algos[] = {agoq::algorithm::two_shot, agoq::algorithm::one_shot,
                                   agoq::algorithm::ring, agoq::algorithm::tree};
  for (int mode = 0; mode < 5; ++mode) { // 0..3: allreduce with algos[mode]; 4: reduce_scatter
    agoq::grad_comm_config opt;
    opt.algo = algos[mode % 4];
    opt.chunk = 1 << 14;
    std::vector<std::vector<unsigned char>> gpu(static_cast<std::size_t>(w));
    on_every_gpu(w, [&](int r, agoq::comm_ref comm, cudaStream_t s) {
      grad_buffer g(l.params, l.spec, l.bucket_elems, agoq::cuda_malloc_allocator());
      AGOQ_TRY(g.zero(s));
      device_buffer<float> x(static_cast<std::size_t>(l.params));
      x.upload(normal(std::size_t(l.params), 7u + std::uint32_t(r)));
      // the upload ran on the legacy stream, which the non-blocking `s` does not wait for
      AGOQ_CUDA_TRY(cudaDeviceSynchronize());
      AGOQ_TRY(g.accumulate(0, x.ptr, l.params, s));
      std::size_t wsb = 0;
      for (std::int64_t b = 0; b < g.bucket_count(); ++b)
        wsb = std::max(wsb, mode == 4 ? g.reduce_scatter_workspace_size(b, opt, comm)
                                      : g.allreduce_workspace_size(b, opt, comm));
      device_buffer<unsigned char> ws(wsb);
      for (std::int64_t b = 0; b < g.bucket_count(); ++b) {
        if (mode == 4)
          AGOQ_TRY(g.reduce_scatter(b, opt, ws.ptr, wsb, comm, s));
        else
          AGOQ_TRY(g.allreduce(b, opt, ws.ptr, wsb, comm, s));
      }
      AGOQ_CUDA_TRY(cudaStreamSynchronize(s));
      gpu[std::size_t(r)] = host_bytes(g);
    });
    // The same on the host transport.
    std::vector<std::vector<unsigned char>> host(static_cast<std::size_t>(w));
    agoq::host_run(w, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
      const int r = tr.rank();
      host_block h(l.total_bytes());
      const std::vector<float> x = normal(std::size_t(l.params), 7u + std::uint32_t(r));
      agoq::ref::accumulate_requantize(l.view(h.p), x.data(), agoq::grad_accumulate_seed(0, 0));
      agoq::host_buffer_backend be;
      for (std::int64_t b = 0; b < l.bucket_count(); ++b) {
        const agoq::quantized_view v = l.sub_view(h.p, l.bucket_offset(b), l.bucket_size(b));
        const std::size_t wsb =
            mode == 4 ? agoq::grad_reduce_scatter_workspace_size(v.cols, l.spec, opt, w)
                      : agoq::grad_allreduce_workspace_size(v.cols, l.spec, opt, w);
        host_block ws(wsb);
        if (mode == 4)
          agoq::grad_reduce_scatter(v, opt, ws.p, wsb, tr, ex, be);
        else
          agoq::grad_allreduce(v, opt, ws.p, wsb, tr, ex, be);
      }
      host[std::size_t(r)].assign(h.p, h.p + l.total_bytes());
    });
    for (int r = 0; r < w; ++r) {
      if (mode < 4) EXPECT_EQ(gpu[std::size_t(r)], gpu[0]) << "mode " << mode << " rank " << r;
      EXPECT_EQ(gpu[std::size_t(r)], host[std::size_t(r)]) << "mode " << mode << " rank " << r;
    }
  }
}
#endif

} // namespace

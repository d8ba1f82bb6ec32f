// SPDX-License-Identifier: Apache-2.0
// The GPU all-reduce (comm/allreduce.cuh) on every visible GPU: one process with one host thread
// per rank (ncclCommInitAll), and one process per GPU (children re-executing this binary, the
// ncclUniqueId passed through a pipe). Every algorithm, fp32/bf16, awkward counts: outputs
// bitwise identical across ranks AND bitwise identical to the same schedule over the in-process
// host transport (agoq::ref); relative L2 error against an fp64 reference; average; in place;
// stochastic rounding; several chunks; the pipelined two-shot (many chunks, the default chunk of
// a large message, graph capture, the transport's overlap switched off, two calls back to back
// on one stream and workspace); other wire formats; CUDA graph capture; argument errors.
#include "common/accuracy.hpp"
#include "common/thread_barrier.hpp"
#include "gpu/gpu_test.cuh"

#include <agoq/agoq.cuh>

#if AGOQ_HAS_NCCL()

#include <agoq/comm/allreduce.cuh>
#include <agoq/comm/host_transport.hpp>
#include <agoq/comm/workspace.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <nccl.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using agoq::algorithm;
using agoq::allreduce_config;
using agoq_test::device_buffer;
using grid_t = std::vector<std::vector<float>>; // [rank][element], fp32 (exact for T)

const algorithm every_algo[] = {algorithm::two_shot, algorithm::one_shot, algorithm::ring,
                                algorithm::tree, algorithm::auto_select};

template <class T> T to_t(float v) { return agoq::ref::detail::from_float<T>(v); }
template <class T> float to_f(T v) { return agoq::ref::detail::to_float(v); }

using agoq_test::make_inputs;

using agoq_test::reference_sum;
using agoq_test::rel_l2;
using agoq_test::with;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

std::int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return std::int64_t(i);
  return a.size() == b.size() ? -1 : std::int64_t(std::min(a.size(), b.size()));
}

std::uint64_t fnv1a(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

//! Error bound: loose for tiny counts (few blocks), the host tests' bounds for large ones.
double bound(algorithm a, int w, std::int64_t count, bool bf16_out) {
  const double slack = bf16_out ? 1e-3 : 0.0; // the final bf16 rounding
  if (count < 4096) return a == algorithm::ring ? 0.008 * std::sqrt(double(w)) + 0.01 : 0.02;
  switch (a) {
  case algorithm::two_shot: return 1.0e-2 + slack;
  case algorithm::one_shot: return 7.5e-3 + slack;
  case algorithm::ring: return 0.0065 * std::sqrt(double(w)) + 1e-3 + slack;
  default: return 0.0065 * std::sqrt(std::ceil(std::log2(double(w))) + 1.0) + 1e-3 + slack;
  }
}

//! The same all-reduce over the in-process host transport: every rank's output as fp32.
template <class T>
grid_t host_allreduce(const grid_t& in, std::int64_t count, const allreduce_config& cfg) {
  const int world = int(in.size());
  grid_t out(static_cast<std::size_t>(world));
  agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
    const int r = tr.rank();
    std::vector<T> x(static_cast<std::size_t>(count)), y(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i)
      x[std::size_t(i)] = to_t<T>(in[std::size_t(r)][std::size_t(i)]);
    const std::size_t wsb = agoq::allreduce_workspace_size<T>(count, cfg, world);
    std::unique_ptr<void, void (*)(void*)> ws(
        ::operator new(wsb + 1, std::align_val_t(256)),
        [](void* q) { ::operator delete(q, std::align_val_t(256)); });
    void* wsp = ws.get();
    agoq::allreduce(x.data(), y.data(), count, cfg, wsp, wsb, tr, ex);
    auto& o = out[std::size_t(r)];
    o.resize(std::size_t(count));
    for (std::int64_t i = 0; i < count; ++i)
      o[std::size_t(i)] = to_f(y[std::size_t(i)]);
  });
  return out;
}

using agoq_test::thread_barrier;

//! Every visible GPU as one NCCL world in this process (ncclCommInitAll), shared by the tests.
struct gpu_world {
  int size = 0;
  std::vector<ncclComm_t> comms;
  std::vector<cudaStream_t> streams;
  bool broken = false; //!< set when a rank failed mid-collective (the comms were aborted)
  std::string init_error;
};

gpu_world* g_world = nullptr;

int world_size() { return g_world->size; }

class Allreduce : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    const int n = agoq_test::gpu_count();
    if (n == 0) return;
    g_world = new gpu_world;
    g_world->size = n;
    g_world->comms.assign(std::size_t(n), nullptr);
    const ncclResult_t r = ncclCommInitAll(g_world->comms.data(), n, nullptr);
    if (r != ncclSuccess) {
      g_world->init_error = std::string("ncclCommInitAll: ") + ncclGetErrorString(r);
      g_world->comms.clear();
      return;
    }
    g_world->streams.resize(std::size_t(n));
    for (int d = 0; d < n; ++d) {
      AGOQ_CUDA_TRY(cudaSetDevice(d));
      AGOQ_CUDA_TRY(
          cudaStreamCreateWithFlags(&g_world->streams[std::size_t(d)], cudaStreamNonBlocking));
    }
    AGOQ_CUDA_TRY(cudaSetDevice(0));
  }
  static void TearDownTestSuite() {
    if (g_world == nullptr) return;
    for (std::size_t d = 0; d < g_world->comms.size(); ++d) {
      (void)cudaSetDevice(int(d));
      if (d < g_world->streams.size()) (void)cudaStreamSynchronize(g_world->streams[d]);
      if (g_world->broken)
        (void)ncclCommAbort(g_world->comms[d]);
      else
        (void)ncclCommDestroy(g_world->comms[d]);
      if (d < g_world->streams.size()) (void)cudaStreamDestroy(g_world->streams[d]);
    }
    (void)cudaSetDevice(0);
    delete g_world;
    g_world = nullptr;
  }
  void SetUp() override {
    if (g_world == nullptr) return; // the test's AGOQ_REQUIRE_DEVICE() skips
    ASSERT_TRUE(g_world->init_error.empty()) << g_world->init_error;
    ASSERT_FALSE(g_world->broken) << "an earlier test left the NCCL world aborted";
  }
};

//! eager: out of place; in_place; graph: captured in a CUDA graph, then launched twice back to
//! back (a replay reuses the workspace of the one before); serial: the schedule called directly
//! with nccl_transport's overlap off (every transfer on the caller's stream); twice: a first call
//! on other input (0x3C bytes) and, without synchronizing, the input copied back on the stream
//! (device to device) and a second call with the same stream and workspace (the result).
enum class mode { eager, in_place, graph, serial, twice };

//! Runs agoq::allreduce on every GPU, one host thread per rank; returns every rank's output.
//! A rank that fails to enqueue makes every rank abort instead of waiting forever.
template <class T>
grid_t gpu_allreduce(const grid_t& in, std::int64_t count, const allreduce_config& cfg,
                     mode m = mode::eager) {
  const int w = g_world->size;
  grid_t out(static_cast<std::size_t>(w));
  std::vector<std::string> errors(static_cast<std::size_t>(w));
  std::atomic<bool> failed{false};
  thread_barrier barrier(w);
  std::vector<std::thread> threads;
  for (int r = 0; r < w; ++r)
    threads.emplace_back([&, r] {
      std::string& err = errors[std::size_t(r)];
      bool enqueued = false;
      try {
        AGOQ_CUDA_TRY(cudaSetDevice(r));
        const agoq::comm_ref comm(g_world->comms[std::size_t(r)]);
        cudaStream_t stream = g_world->streams[std::size_t(r)];
        std::vector<T> hx(static_cast<std::size_t>(count));
        for (std::int64_t i = 0; i < count; ++i)
          hx[std::size_t(i)] = to_t<T>(in[std::size_t(r)][std::size_t(i)]);
        device_buffer<T> x{static_cast<std::size_t>(count)}, y{static_cast<std::size_t>(count)};
        device_buffer<T> x0{m == mode::twice ? static_cast<std::size_t>(count) : 0};
        x.upload(hx);
        if (m == mode::twice) x0.upload(hx);
        y.fill_bytes(0xA5);
        const std::size_t wsb = agoq::allreduce_workspace_size<T>(count, cfg, comm);
        device_buffer<unsigned char> ws(wsb + 256);
        ws.fill_bytes(0xCD);
        // upload/fill_bytes ran on the legacy stream, which the non-blocking `stream` does not
        // wait for (a pageable upload may even return before its data lands): finish them first
        AGOQ_CUDA_TRY(cudaDeviceSynchronize());
        T* dst = m == mode::in_place ? x.ptr : y.ptr;
        cudaGraphExec_t exec = nullptr;
        if (m == mode::graph) {
          cudaGraph_t graph = nullptr;
          AGOQ_CUDA_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
          const agoq::status s = agoq::allreduce(x.ptr, dst, count, cfg, ws.ptr, wsb, comm, stream);
          const cudaError_t e = cudaStreamEndCapture(stream, &graph);
          if (s != agoq::status::success)
            throw std::runtime_error(std::string("allreduce (captured): ") + agoq::to_string(s) +
                                     ": " + agoq::last_error_message());
          AGOQ_CUDA_TRY(e);
          AGOQ_CUDA_TRY(cudaGraphInstantiate(&exec, graph, 0));
          AGOQ_CUDA_TRY(cudaGraphDestroy(graph));
          AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
          AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
        } else if (m == mode::serial) {
          agoq::nccl_transport tr(comm, stream, /*overlap=*/false);
          agoq::cuda_executor ex(stream);
          agoq::allreduce(static_cast<const T*>(x.ptr), dst, count, cfg, ws.ptr, wsb, tr, ex);
        } else {
          if (m == mode::twice) {
            AGOQ_CUDA_TRY(cudaMemsetAsync(x.ptr, 0x3C, hx.size() * sizeof(T), stream));
            const agoq::status s0 =
                agoq::allreduce(x.ptr, dst, count, cfg, ws.ptr, wsb, comm, stream);
            if (s0 != agoq::status::success)
              throw std::runtime_error(std::string("allreduce (first): ") + agoq::to_string(s0));
            // device to device: a copy from pageable host memory would synchronize the stream
            // (the first call would be complete before the second is enqueued, hiding any
            // hazard between the two calls)
            AGOQ_CUDA_TRY(cudaMemcpyAsync(x.ptr, x0.ptr, hx.size() * sizeof(T),
                                          cudaMemcpyDeviceToDevice, stream));
          }
          const agoq::status s = agoq::allreduce(x.ptr, dst, count, cfg, ws.ptr, wsb, comm, stream);
          if (s != agoq::status::success)
            throw std::runtime_error(std::string("allreduce: ") + agoq::to_string(s) + ": " +
                                     agoq::last_error_message());
        }
        enqueued = true;
        barrier.wait();
        if (failed.load()) throw std::runtime_error("another rank failed");
        AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
        if (exec) AGOQ_CUDA_TRY(cudaGraphExecDestroy(exec));
        const std::vector<T> hy = m == mode::in_place ? x.download() : y.download();
        std::vector<unsigned char> canary(256);
        AGOQ_CUDA_TRY(cudaMemcpy(canary.data(), ws.ptr + wsb, 256, cudaMemcpyDeviceToHost));
        for (unsigned char c : canary)
          if (c != 0xCD) throw std::runtime_error("wrote past the queried workspace");
        auto& o = out[std::size_t(r)];
        o.resize(std::size_t(count));
        for (std::int64_t i = 0; i < count; ++i)
          o[std::size_t(i)] = to_f(hy[std::size_t(i)]);
      } catch (const std::exception& e) {
        err = e.what();
        if (!enqueued) {
          failed.store(true);
          barrier.wait();
        }
      }
    });
  for (auto& t : threads)
    t.join();
  std::string all;
  for (int r = 0; r < w; ++r)
    if (!errors[std::size_t(r)].empty())
      all += "rank " + std::to_string(r) + ": " + errors[std::size_t(r)] + "\n";
  if (failed.load()) {
    g_world->broken = true; // peers may have enqueued a collective that can never complete
    for (auto c : g_world->comms)
      (void)ncclCommAbort(c);
    g_world->comms.clear();
  }
  if (!all.empty()) throw std::runtime_error(all);
  return out;
}

//! Checks one GPU run: ranks agree bitwise, equal the host transport bitwise, error in bounds.
template <class T>
void check_against_host(const grid_t& in, std::int64_t count, const allreduce_config& cfg,
                        mode m = mode::eager, double err_bound = -1.0) {
  const int w = world_size();
  const grid_t gpu = gpu_allreduce<T>(in, count, cfg, m);
  for (int r = 1; r < w; ++r)
    ASSERT_TRUE(same_bits(gpu[0], gpu[std::size_t(r)]))
        << "rank " << r << " differs from rank 0 at element "
        << first_difference(gpu[0], gpu[std::size_t(r)]);
  const grid_t host = host_allreduce<T>(in, count, cfg);
  const std::int64_t i = first_difference(gpu[0], host[0]);
  ASSERT_EQ(i, -1) << "GPU differs from the host transport at element " << i << ": "
                   << (i >= 0 && std::size_t(i) < gpu[0].size() ? gpu[0][std::size_t(i)] : 0.0f)
                   << " vs "
                   << (i >= 0 && std::size_t(i) < host[0].size() ? host[0][std::size_t(i)] : 0.0f);
  if (count == 0) return;
  const algorithm a = agoq::resolve_algorithm(cfg, count, agoq::element_type_of<T>(), w);
  const double div = cfg.op == agoq::reduce_op::average ? double(w) : 1.0;
  const double e = rel_l2(gpu[0], reference_sum(in), div);
  const double b = err_bound > 0 ? err_bound : bound(a, w, count, !std::is_same<T, float>::value);
  EXPECT_LE(e, b) << "relative L2 error vs fp64 (" << agoq::to_string(a) << ")";
}

template <class T> void sweep(std::uint32_t seed) {
  const int w = world_size();
  const std::int64_t counts[] = {1, 127, 128 * std::int64_t(w) + 1, std::int64_t(1) << 20, 1000003};
  int k = 0;
  for (algorithm a : every_algo)
    for (std::int64_t count : counts) {
      SCOPED_TRACE(std::string(agoq::to_string(a)) + " world " + std::to_string(w) + " count " +
                   std::to_string(count));
      const auto in = make_inputs<T>(w, count, seed + std::uint32_t(count));
      check_against_host<T>(in, count, with(a), (k++ % 2) ? mode::in_place : mode::eager);
      if (::testing::Test::HasFatalFailure()) return;
    }
}

TEST_F(Allreduce, SweepF32EveryAlgorithmMatchesHostTransport) {
  AGOQ_REQUIRE_DEVICE();
  sweep<float>(11);
}

TEST_F(Allreduce, SweepBf16EveryAlgorithmMatchesHostTransport) {
  AGOQ_REQUIRE_DEVICE();
  sweep<__nv_bfloat16>(23);
}

TEST_F(Allreduce, HalfInputsAuto) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t count = 300001;
  check_against_host<__half>(make_inputs<__half>(world_size(), count, 5), count,
                             with(algorithm::auto_select));
}

TEST_F(Allreduce, AverageEveryAlgorithm) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t count = 100003;
  const auto in = make_inputs<float>(world_size(), count, 31);
  for (algorithm a : every_algo) {
    SCOPED_TRACE(agoq::to_string(a));
    allreduce_config c = with(a, 128 * 100);
    c.op = agoq::reduce_op::average;
    check_against_host<float>(in, count, c);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_F(Allreduce, InPlaceEqualsOutOfPlace) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t count = 1000003;
  const auto in = make_inputs<__nv_bfloat16>(world_size(), count, 41);
  for (algorithm a : every_algo) {
    SCOPED_TRACE(agoq::to_string(a));
    const grid_t o1 = gpu_allreduce<__nv_bfloat16>(in, count, with(a), mode::eager);
    const grid_t o2 = gpu_allreduce<__nv_bfloat16>(in, count, with(a), mode::in_place);
    for (int r = 0; r < world_size(); ++r)
      ASSERT_TRUE(same_bits(o1[std::size_t(r)], o2[std::size_t(r)])) << "rank " << r;
  }
}

// Several chunks (the last partial) and stochastic rounding: the Philox streams (seed salts and
// element indices counted from each message start) must match the host executor exactly.
TEST_F(Allreduce, StochasticRoundingSeveralChunksMatchesHostTransport) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t count = 1000003;
  const auto in = make_inputs<float>(world_size(), count, 53);
  for (algorithm a : every_algo) {
    SCOPED_TRACE(agoq::to_string(a));
    allreduce_config c = with(a, 128 * 1000);
    c.rounding = agoq::rounding::stochastic;
    c.seed = 1234;
    check_against_host<float>(in, count, c, mode::eager, a == algorithm::ring ? 0.03 : 0.02);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_F(Allreduce, OtherWireFormatsMatchHostTransport) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t count = 70001;
  const auto in = make_inputs<float>(world_size(), count, 67);
  for (agoq::format f : {agoq::format::fp8_e4m3, agoq::format::fp8_e5m2, agoq::format::int4})
    for (int block : {32, 256}) {
      SCOPED_TRACE(std::string(agoq::to_string(f)) + "/" + std::to_string(block));
      allreduce_config c = with(algorithm::two_shot);
      c.wire = f;
      c.block = block;
      check_against_host<float>(in, count, c, mode::eager, f == agoq::format::int4 ? 0.2 : 0.1);
      if (::testing::Test::HasFatalFailure()) return;
    }
}

// Every algorithm captured in a graph. The chunk pipelines two-shot on up to 8 GPUs, and the
// cached communication streams are released first, so the first pipelined call (two_shot comes
// first) creates its stream and events inside the capture (relaxed capture mode, comm/nccl.hpp):
// earlier tests have otherwise always created them eagerly.
TEST_F(Allreduce, CapturedInCudaGraph) {
  AGOQ_REQUIRE_DEVICE();
  for (int d = 0; d < world_size(); ++d) { // every stream is idle: gpu_allreduce synchronized
    AGOQ_CUDA_TRY(cudaSetDevice(d));
    agoq::release_comm_streams(agoq::comm_ref(g_world->comms[std::size_t(d)]));
  }
  AGOQ_CUDA_TRY(cudaSetDevice(0));
  const std::int64_t count = 1000003;
  const auto in = make_inputs<__nv_bfloat16>(world_size(), count, 79);
  for (algorithm a : every_algo) {
    SCOPED_TRACE(agoq::to_string(a));
    check_against_host<__nv_bfloat16>(in, count, with(a, 128 * 480), mode::graph);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// The pipelined two-shot and one-shot: many chunks (a tiny chunk), a few, and one; f32 and bf16;
// sum and average; stochastic rounding (per-chunk seeds and indices); out of place, in place, in
// a CUDA graph, with the overlap off, and twice back to back on one stream and workspace.
TEST_F(Allreduce, PipelinedTwoShotAndOneShotMatchHostTransport) {
  AGOQ_REQUIRE_DEVICE();
  const int w = world_size();
  const std::int64_t count = 1000003;
  const auto in32 = make_inputs<float>(w, count, 83);
  const auto in16 = make_inputs<__nv_bfloat16>(w, count, 89);
  int k = 0;
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot})
    for (std::int64_t chunk : {std::int64_t(128 * 16), std::int64_t(128 * 300), std::int64_t(0)})
      for (mode m : {mode::eager, mode::in_place, mode::graph, mode::serial, mode::twice}) {
        allreduce_config c = with(a, chunk);
        if (k % 3 == 1) c.op = agoq::reduce_op::average;
        if (k % 4 == 2) {
          c.rounding = agoq::rounding::stochastic;
          c.seed = 4242 + std::uint64_t(k);
        }
        SCOPED_TRACE("chunk " + std::to_string(chunk) + " mode " + std::to_string(int(m)) +
                     " cfg " + [&] {
                       std::ostringstream os;
                       os << c;
                       return os.str();
                     }());
        const double eb = c.rounding == agoq::rounding::stochastic ? 0.02 : -1.0;
        if (k++ % 2)
          check_against_host<float>(in32, count, c, m, eb);
        else
          check_against_host<__nv_bfloat16>(in16, count, c, m, eb);
        if (::testing::Test::HasFatalFailure()) return;
      }
}

// A message large enough for the default chunk to pipeline (several chunks of
// pipeline_min_chunk_elements or more per shard).
TEST_F(Allreduce, DefaultChunkPipelinesALargeMessage) {
  AGOQ_REQUIRE_DEVICE();
  const int w = world_size();
  const std::int64_t count = std::int64_t(w) * 3 * agoq::pipeline_min_chunk_elements + 1001;
  const auto in = make_inputs<__nv_bfloat16>(w, count, 101);
  for (algorithm a : {algorithm::two_shot, algorithm::auto_select}) {
    const allreduce_config c = with(a);
    const agoq::partition p = agoq::make_partition(count, c, w);
    ASSERT_GE(p.chunks(p.max_shard()), 3);
    check_against_host<__nv_bfloat16>(in, count, c, mode::in_place);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_F(Allreduce, BadArgumentsReturnInvalidArgumentNamingIt) {
  AGOQ_REQUIRE_DEVICE();
  AGOQ_CUDA_TRY(cudaSetDevice(0));
  const agoq::comm_ref comm(g_world->comms[0]);
  cudaStream_t stream = g_world->streams[0];
  const std::int64_t n = 1000;
  device_buffer<float> x(n), y(n);
  const allreduce_config c = with(algorithm::two_shot);
  const std::size_t wsb = agoq::allreduce_workspace_size<float>(n, c, comm);
  EXPECT_EQ(wsb, agoq::allreduce_workspace_size<float>(n, c, world_size()));
  device_buffer<unsigned char> ws(wsb);
  auto expect_refused = [](agoq::status s, const std::string& needle) {
    EXPECT_EQ(s, agoq::status::invalid_argument);
    const std::string msg = agoq::last_error_message();
    EXPECT_NE(msg.find("agoq::allreduce"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  };
  expect_refused(agoq::allreduce<float>(nullptr, y.ptr, n, c, ws.ptr, wsb, comm, stream),
                 "send must not be null");
  expect_refused(agoq::allreduce<float>(x.ptr, nullptr, n, c, ws.ptr, wsb, comm, stream),
                 "recv must not be null");
  expect_refused(agoq::allreduce(x.ptr, y.ptr, n, c, nullptr, wsb, comm, stream),
                 "workspace must not be null");
  expect_refused(agoq::allreduce(x.ptr, y.ptr, n, c, ws.ptr + 4, wsb, comm, stream),
                 "workspace must be aligned");
  expect_refused(agoq::allreduce(x.ptr, y.ptr, n, c, ws.ptr, wsb - 1, comm, stream),
                 "workspace_bytes must be >= " + std::to_string(wsb));
  expect_refused(agoq::allreduce(x.ptr, y.ptr, -1, c, ws.ptr, wsb, comm, stream),
                 "count must be >= 0");
  expect_refused(agoq::allreduce(x.ptr, x.ptr + 1, n - 1, c, ws.ptr, wsb, comm, stream), "overlap");
  expect_refused(agoq::allreduce(x.ptr, y.ptr, n, c, ws.ptr, wsb, agoq::comm_ref(), stream),
                 "comm must not be null");
  allreduce_config bad = c;
  bad.block = 96;
  expect_refused(agoq::allreduce(x.ptr, y.ptr, n, bad, ws.ptr, wsb, comm, stream), "config.block");
  // count 0: nothing to do, null pointers allowed; the raw ncclComm_t overload works too
  EXPECT_EQ(agoq::allreduce<float>(nullptr, nullptr, 0, c, nullptr, 0, g_world->comms[0], stream),
            agoq::status::success);
  EXPECT_EQ(comm.size(), world_size());
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.device(), 0);
}

// ---- one process per GPU -------------------------------------------------------------------

constexpr std::int64_t mp_count = 1000003;
constexpr std::uint32_t mp_seed = 97;
//! What every child runs: each algorithm with the default chunk (one chunk per shard at this
//! count), then two_shot and one_shot pipelined over many chunks (the communication stream
//! across processes).
constexpr int mp_algos = int(sizeof(every_algo) / sizeof(every_algo[0]));
constexpr int mp_configs = mp_algos + 2;
allreduce_config mp_config(int k) {
  return k < mp_algos    ? with(every_algo[k])
         : k == mp_algos ? with(algorithm::two_shot, 128 * 64)
                         : with(algorithm::one_shot, 128 * 64);
}
std::string mp_name(int k) {
  return k < mp_algos    ? agoq::to_string(every_algo[k])
         : k == mp_algos ? "two_shot_pipelined"
                         : "one_shot_pipelined";
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void write_all(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd, b, n);
    if (k <= 0) throw std::runtime_error("write to pipe failed");
    b += k;
    n -= std::size_t(k);
  }
}

// The child side: runs only when the parent test below re-executes this binary with
// AGOQ_MP_RANK etc. set; otherwise it skips.
TEST(AllreduceMultiProcessChild, Run) {
  const std::string rank_s = env_or_empty("AGOQ_MP_RANK");
  if (rank_s.empty()) GTEST_SKIP() << "child of AllreduceMultiProcess.OneProcessPerGpu only";
  AGOQ_REQUIRE_DEVICE();
  const int rank = std::atoi(rank_s.c_str());
  const int world = std::atoi(env_or_empty("AGOQ_MP_WORLD").c_str());
  const int id_fd = std::atoi(env_or_empty("AGOQ_MP_ID_FD").c_str());
  const int res_fd = std::atoi(env_or_empty("AGOQ_MP_RESULT_FD").c_str());
  std::ostringstream report;
  try {
    ncclUniqueId id;
    std::size_t got = 0;
    while (got < sizeof(id)) {
      const ssize_t k = ::read(id_fd, reinterpret_cast<char*>(&id) + got, sizeof(id) - got);
      if (k <= 0) throw std::runtime_error("could not read the ncclUniqueId from the pipe");
      got += std::size_t(k);
    }
    ::close(id_fd);
    AGOQ_CUDA_TRY(cudaSetDevice(rank));
    ncclComm_t comm = nullptr;
    AGOQ_NCCL_TRY(ncclCommInitRank(&comm, world, id, rank));
    cudaStream_t stream = nullptr;
    AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const grid_t in = make_inputs<__nv_bfloat16>(world, mp_count, mp_seed);
    std::vector<__nv_bfloat16> hx(static_cast<std::size_t>(mp_count));
    for (std::int64_t i = 0; i < mp_count; ++i)
      hx[std::size_t(i)] = to_t<__nv_bfloat16>(in[std::size_t(rank)][std::size_t(i)]);
    device_buffer<__nv_bfloat16> x{static_cast<std::size_t>(mp_count)},
        y{static_cast<std::size_t>(mp_count)};
    x.upload(hx);
    AGOQ_CUDA_TRY(cudaDeviceSynchronize()); // the upload ran on the legacy stream
    for (int k = 0; k < mp_configs; ++k) {
      const allreduce_config c = mp_config(k);
      const std::size_t wsb =
          agoq::allreduce_workspace_size<__nv_bfloat16>(mp_count, c, agoq::comm_ref(comm));
      device_buffer<unsigned char> ws(wsb);
      AGOQ_TRY(
          agoq::allreduce(x.ptr, y.ptr, mp_count, c, ws.ptr, wsb, agoq::comm_ref(comm), stream));
      AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
      const std::vector<__nv_bfloat16> hy = y.download();
      std::vector<float> f(hy.size());
      for (std::size_t i = 0; i < hy.size(); ++i)
        f[i] = to_f(hy[i]);
      report << mp_name(k) << ' ' << fnv1a(f) << ' ' << rel_l2(f, reference_sum(in)) << '\n';
    }
    AGOQ_CUDA_TRY(cudaStreamDestroy(stream));
    agoq::release_comm_streams(agoq::comm_ref(comm)); // the documented order: before the destroy
    AGOQ_NCCL_TRY(ncclCommDestroy(comm));
  } catch (const std::exception& e) {
    report << "error " << e.what() << '\n';
    ADD_FAILURE() << e.what();
  }
  const std::string s = report.str();
  write_all(res_fd, s.data(), s.size());
  ::close(res_fd);
}

TEST(AllreduceMultiProcess, OneProcessPerGpu) {
  AGOQ_REQUIRE_DEVICE();
  const int world = agoq_test::gpu_count();
  if (world < 2) GTEST_SKIP() << "needs at least 2 GPUs (found " << world << ")";
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);

  struct child {
    pid_t pid = -1;
    int id_w = -1;
    int res_r = -1;
    std::string out;
  };
  std::vector<child> kids(static_cast<std::size_t>(world));
  for (int r = 0; r < world; ++r) {
    int idp[2], resp[2];
    ASSERT_EQ(::pipe2(idp, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(resp, O_CLOEXEC), 0);
    // Everything the child needs is prepared before fork (the child only calls
    // async-signal-safe functions until exec).
    std::vector<std::string> env_strings = {
        "AGOQ_MP_RANK=" + std::to_string(r), "AGOQ_MP_WORLD=" + std::to_string(world),
        "AGOQ_MP_ID_FD=" + std::to_string(idp[0]), "AGOQ_MP_RESULT_FD=" + std::to_string(resp[1])};
    std::vector<char*> envp;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e)
      if (std::strncmp(*e, "AGOQ_MP_", 8) != 0) envp.push_back(*e);
    for (auto& e : env_strings)
      envp.push_back(&e[0]);
    envp.push_back(nullptr);
    char arg0[] = "agoq_gpu_tests";
    char arg1[] = "--gtest_filter=AllreduceMultiProcessChild.Run";
    char* argv[] = {arg0, arg1, nullptr};
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << "fork failed";
    if (pid == 0) {
      ::fcntl(idp[0], F_SETFD, 0);
      ::fcntl(resp[1], F_SETFD, 0);
      const int devnull = ::open("/dev/null", O_WRONLY);
      if (devnull >= 0) ::dup2(devnull, 1);
      ::execve("/proc/self/exe", argv, envp.data());
      ::_exit(127);
    }
    ::close(idp[0]);
    ::close(resp[1]);
    kids[std::size_t(r)] = child{pid, idp[1], resp[0], {}};
  }
  for (auto& k : kids) {
    write_all(k.id_w, &id, sizeof(id));
    ::close(k.id_w);
  }
  // Collect every child's report (until EOF on all pipes), with a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  std::size_t open_pipes = kids.size();
  bool timed_out = false;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    std::vector<pollfd> fds;
    for (auto& k : kids)
      if (k.res_r >= 0) fds.push_back(pollfd{k.res_r, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), int(std::min<long long>(left, 1000))) < 0) break;
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      for (auto& k : kids) {
        if (k.res_r != p.fd) continue;
        char buf[4096];
        const ssize_t n = ::read(k.res_r, buf, sizeof(buf));
        if (n > 0) {
          k.out.append(buf, std::size_t(n));
        } else {
          ::close(k.res_r);
          k.res_r = -1;
          --open_pipes;
        }
      }
    }
  }
  for (auto& k : kids) {
    if (timed_out) ::kill(k.pid, SIGKILL);
    int st = 0;
    ::waitpid(k.pid, &st, 0);
    if (k.res_r >= 0) ::close(k.res_r);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
        << "child " << k.pid << " status " << st << "; report:\n"
        << k.out;
  }
  ASSERT_FALSE(timed_out) << "children did not finish within 300 s";

  // Expected: the same schedules over the host transport.
  const grid_t in = make_inputs<__nv_bfloat16>(world, mp_count, mp_seed);
  const std::vector<double> ref = reference_sum(in);
  for (int k = 0; k < mp_configs; ++k) {
    const allreduce_config cfg = mp_config(k);
    const std::string name_k = mp_name(k);
    SCOPED_TRACE(name_k);
    const grid_t host = host_allreduce<__nv_bfloat16>(in, mp_count, cfg);
    const std::uint64_t want = fnv1a(host[0]);
    for (int r = 0; r < world; ++r) {
      std::istringstream lines(kids[std::size_t(r)].out);
      std::string name;
      std::uint64_t hash = 0;
      double err = 0;
      bool found = false;
      while (lines >> name) {
        if (name == "error") break;
        lines >> hash >> err;
        if (name == name_k) {
          found = true;
          break;
        }
      }
      ASSERT_TRUE(found) << "rank " << r << " reported no result; report:\n"
                         << kids[std::size_t(r)].out;
      EXPECT_EQ(hash, want) << "rank " << r << " differs from the host transport";
      const algorithm ra = agoq::resolve_algorithm(cfg, mp_count, agoq::element_type::bf16, world);
      EXPECT_LE(err, bound(ra, world, mp_count, true)) << "rank " << r;
    }
    EXPECT_LE(rel_l2(host[0], ref),
              bound(agoq::resolve_algorithm(cfg, mp_count, agoq::element_type::bf16, world), world,
                    mp_count, true));
  }
}

} // namespace

#else // !AGOQ_HAS_NCCL()

TEST(Allreduce, NeedsNccl) {
  AGOQ_REQUIRE_DEVICE();
  GTEST_SKIP() << "built without <nccl.h>";
}

#endif

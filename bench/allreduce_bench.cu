// SPDX-License-Identifier: Apache-2.0
//! @file allreduce_bench.cu
//! nccl-tests-style benchmark of agoq::allreduce (comm/allreduce.cuh) next to NCCL's own
//! ncclAllReduce at bf16, fp32 and fp8 e4m3 for the same element count, in one run, with every
//! visible GPU in this process (one host thread per rank, ncclCommInitAll).
//!
//! Per row: message bytes (of the agoq input type), element count, type, algorithm, time
//! (median of --iters after --warmup, CUDA events on rank 0, every iteration started after a
//! host barrier of all ranks), algbw = bytes / time, busbw = algbw * 2(W-1)/W; then NCCL bf16,
//! fp32 and fp8 times and agoq's speedup over each; then agoq's relative L2 error against an
//! fp64 reference and NCCL fp8's on the same data (normal data times 1e-3, generated on the GPU
//! from a hash, so the fp64 reference is recomputed on rank 0 without moving data).
//!
//! Flags: --min-bytes B (default 1M), --max-bytes B (1G; sizes step x4), --iters N (20),
//! --warmup N (5), --algo auto|two_shot|one_shot|ring|tree|all (auto), --type bf16|f32 (bf16),
//! --chunk N (elements per pipeline chunk, 0 = library default: about max shard /
//! pipeline_chunks, at least pipeline_min_chunk_elements), --block N (128),
//! --wire int8|fp8_e4m3|fp8_e5m2 (int8), --overlap on|off (on; off runs the same schedules with
//! nccl_transport's communication stream disabled, every transfer on the caller's stream: the
//! A/B of the pipelining). Sizes accept K, M, G suffixes (powers of 1024). The algo column shows
//! the pipeline's chunks after a slash (two_shot: per shard; one_shot: of the whole message;
//! both pipeline when there are 2 or more). --transfers times, instead, the NCCL operations of
//! each size's pipelined two-shot without its kernels (run_transfers): where the time goes.
//! NVLS is never enabled here (the runner exports NCCL_NVLS_ENABLE=0).
//! Without a GPU it prints "no GPU" and exits 0.
#include <agoq/agoq.cuh>

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#if AGOQ_HAS_NCCL()

#include <agoq/comm/allreduce.cuh>
#include <agoq/format/element.hpp>

#include "common/thread_barrier.hpp"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <nccl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "allreduce_bench: %s\n", msg.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(1);
}

#define BENCH_CUDA(expr)                                                                           \
  do {                                                                                             \
    const cudaError_t bench_e_ = (expr);                                                           \
    if (bench_e_ != cudaSuccess)                                                                   \
      die(std::string(#expr) + ": " + cudaGetErrorString(bench_e_) + " (line " +                   \
          std::to_string(__LINE__) + ")");                                                         \
  } while (0)

#define BENCH_NCCL(expr)                                                                           \
  do {                                                                                             \
    const ncclResult_t bench_r_ = (expr);                                                          \
    if (bench_r_ != ncclSuccess)                                                                   \
      die(std::string(#expr) + ": " + ncclGetErrorString(bench_r_) + " (line " +                   \
          std::to_string(__LINE__) + ")");                                                         \
  } while (0)

// ---- data on the GPU -----------------------------------------------------------------------

constexpr std::uint64_t data_seed = 2026;
constexpr float data_scale = 1e-3f;

__host__ __device__ inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

//! N(0,1) sample for (rank, i), Box-Muller on a 64-bit hash.
__device__ inline float gauss(int rank, std::int64_t i) {
  const std::uint64_t h = mix64(mix64(data_seed ^ (std::uint64_t(rank) << 48)) ^ std::uint64_t(i));
  const float u1 = (float(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = (float(h & 0xFFFFFFull) + 0.5f) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

// agoq's element conversions (format/element.hpp), and fp8 e4m3 for NCCL's fp8 all-reduce
template <class T> __device__ inline T from_f(float v) { return agoq::detail::from_float<T>(v); }
template <> __device__ inline __nv_fp8_e4m3 from_f<__nv_fp8_e4m3>(float v) {
  return __nv_fp8_e4m3(v);
}
template <class T> __device__ inline float to_f(T v) { return agoq::detail::to_float(v); }
template <> __device__ inline float to_f<__nv_fp8_e4m3>(__nv_fp8_e4m3 v) { return float(v); }

//! Rank `rank`'s input value i, as the input type T.
template <class T> __device__ inline T input(int rank, std::int64_t i) {
  return from_f<T>(gauss(rank, i) * data_scale);
}

template <class T> __global__ static void generate_kernel(T* x, std::int64_t n, int rank) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    x[i] = input<T>(rank, i);
}

template <class Src, class Dst>
__global__ static void convert_kernel(const Src* x, Dst* y, std::int64_t n) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f<Dst>(to_f(x[i]));
}

//! acc[0] += sum (y - ref)^2, acc[1] += sum ref^2, ref = sum over ranks of T-rounded inputs.
template <class T, class Out>
__global__ static void error_kernel(const Out* y, std::int64_t n, int world, double* acc) {
  double num = 0, den = 0;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    double ref = 0;
    for (int r = 0; r < world; ++r)
      ref += double(to_f(input<T>(r, i)));
    const double d = double(to_f(y[i])) - ref;
    num += d * d;
    den += ref * ref;
  }
  for (int o = 16; o > 0; o >>= 1) {
    num += __shfl_down_sync(0xffffffffu, num, o);
    den += __shfl_down_sync(0xffffffffu, den, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(acc, num);
    atomicAdd(acc + 1, den);
  }
}

constexpr int kThreads = 256;
inline int blocks_for(std::int64_t n) {
  return int(std::min<std::int64_t>((n + kThreads - 1) / kThreads, 132 * 8));
}

// ---- options -------------------------------------------------------------------------------

struct options {
  std::size_t min_bytes = std::size_t(1) << 20;
  std::size_t max_bytes = std::size_t(1) << 30;
  int iters = 20;
  int warmup = 5;
  std::vector<agoq::algorithm> algos{agoq::algorithm::auto_select};
  bool f32 = false;
  std::int64_t chunk = 0;
  int block = 128;
  agoq::format wire = agoq::format::int8;
  bool overlap = true;
  bool transfers = false; //!< time the two-shot pipeline's NCCL transfers alone instead
};

std::size_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  double m = 1;
  if (end && *end) {
    switch (*end) {
    case 'k':
    case 'K': m = 1024.0; break;
    case 'm':
    case 'M': m = 1024.0 * 1024.0; break;
    case 'g':
    case 'G': m = 1024.0 * 1024.0 * 1024.0; break;
    default: die("bad size: " + s);
    }
  }
  return std::size_t(v * m);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--min-bytes")
      o.min_bytes = parse_bytes(value());
    else if (a == "--max-bytes")
      o.max_bytes = parse_bytes(value());
    else if (a == "--iters")
      o.iters = std::max(1, std::atoi(value().c_str()));
    else if (a == "--warmup")
      o.warmup = std::max(0, std::atoi(value().c_str()));
    else if (a == "--chunk")
      o.chunk = std::atoll(value().c_str());
    else if (a == "--block")
      o.block = std::atoi(value().c_str());
    else if (a == "--transfers")
      o.transfers = true;
    else if (a == "--overlap") {
      const std::string v = value();
      if (v == "on")
        o.overlap = true;
      else if (v == "off")
        o.overlap = false;
      else
        die("--overlap must be on or off");
    } else if (a == "--type") {
      const std::string t = value();
      if (t == "bf16")
        o.f32 = false;
      else if (t == "f32")
        o.f32 = true;
      else
        die("--type must be bf16 or f32");
    } else if (a == "--wire") {
      const std::string w = value();
      if (w == "int8")
        o.wire = agoq::format::int8;
      else if (w == "fp8_e4m3")
        o.wire = agoq::format::fp8_e4m3;
      else if (w == "fp8_e5m2")
        o.wire = agoq::format::fp8_e5m2;
      else
        die("--wire must be int8, fp8_e4m3 or fp8_e5m2");
    } else if (a == "--algo") {
      const std::string v = value();
      using agoq::algorithm;
      if (v == "auto")
        o.algos = {algorithm::auto_select};
      else if (v == "two_shot")
        o.algos = {algorithm::two_shot};
      else if (v == "one_shot")
        o.algos = {algorithm::one_shot};
      else if (v == "ring")
        o.algos = {algorithm::ring};
      else if (v == "tree")
        o.algos = {algorithm::tree};
      else if (v == "all")
        o.algos = {algorithm::auto_select, algorithm::two_shot, algorithm::one_shot,
                   algorithm::ring, algorithm::tree};
      else
        die("--algo must be auto, two_shot, one_shot, ring, tree or all");
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--min-bytes B] [--max-bytes B] [--iters N] [--warmup N] "
                  "[--algo auto|two_shot|one_shot|ring|tree|all] [--type bf16|f32] [--chunk N] "
                  "[--block N] [--wire int8|fp8_e4m3|fp8_e5m2] [--overlap on|off] "
                  "[--transfers]\n",
                  argv[0]);
      std::exit(0);
    } else {
      die("unknown flag " + a + " (try --help)");
    }
  }
  if (o.min_bytes < 16 || o.max_bytes < o.min_bytes) die("need 16 <= --min-bytes <= --max-bytes");
  return o;
}

// ---- ranks ---------------------------------------------------------------------------------

using agoq_test::thread_barrier;

struct shared_state {
  int world = 0;
  std::vector<ncclComm_t> comms;
  thread_barrier* barrier = nullptr;
  options opt;
  // written by rank 0 only
  double last_us = 0;
};

//! Times `enqueue` (called on every rank) as the median over opt.iters iterations; each
//! iteration starts after every rank's stream is idle and a host barrier. Returns us on rank 0.
template <class F>
double time_it(shared_state& sh, int rank, cudaStream_t stream, cudaEvent_t e0, cudaEvent_t e1,
               F&& enqueue) {
  std::vector<float> ms;
  for (int it = 0; it < sh.opt.warmup + sh.opt.iters; ++it) {
    BENCH_CUDA(cudaStreamSynchronize(stream));
    sh.barrier->wait();
    if (rank == 0) BENCH_CUDA(cudaEventRecord(e0, stream));
    enqueue();
    if (rank == 0) BENCH_CUDA(cudaEventRecord(e1, stream));
    BENCH_CUDA(cudaStreamSynchronize(stream));
    if (rank == 0 && it >= sh.opt.warmup) {
      float t = 0;
      BENCH_CUDA(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
  }
  sh.barrier->wait();
  if (rank != 0) return 0;
  std::sort(ms.begin(), ms.end());
  return 1000.0 * double(ms[ms.size() / 2]);
}

template <class Out>
double rel_error(const Out* y, std::int64_t n, int world, bool f32_input, double* acc,
                 cudaStream_t stream) {
  BENCH_CUDA(cudaMemsetAsync(acc, 0, 2 * sizeof(double), stream));
  if (f32_input)
    error_kernel<float, Out><<<blocks_for(n), kThreads, 0, stream>>>(y, n, world, acc);
  else
    error_kernel<__nv_bfloat16, Out><<<blocks_for(n), kThreads, 0, stream>>>(y, n, world, acc);
  BENCH_CUDA(cudaGetLastError());
  double h[2] = {0, 0};
  BENCH_CUDA(cudaMemcpyAsync(h, acc, sizeof(h), cudaMemcpyDeviceToHost, stream));
  BENCH_CUDA(cudaStreamSynchronize(stream));
  return h[1] > 0 ? std::sqrt(h[0] / h[1]) : std::sqrt(h[0]);
}

//! --transfers: the NCCL operations of a pipelined two-shot of each size, without its codec
//! kernels: the exchange (one grouped send/recv per chunk), the all-gather (one per chunk), both
//! alternating on one stream (what the communication stream runs), and both again while a
//! memory-bound kernel (a bf16 -> fp32 conversion of the input, standing in for the codecs) runs
//! on a second, lower-priority stream. Bytes per rank: exchange and all-gather each send
//! (W-1) x the shard's chunk messages; GB/s is that per rank and direction.
template <class T>
void run_transfers(shared_state& sh, int rank, const agoq::allreduce_config& base, std::uint8_t* ws,
                   const T* x, float* scratch, cudaStream_t stream, cudaEvent_t e0,
                   cudaEvent_t e1) {
  const options& o = sh.opt;
  const int w = sh.world;
  ncclComm_t comm = sh.comms[std::size_t(rank)];
  int least = 0, greatest = 0;
  BENCH_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t side = nullptr;
  BENCH_CUDA(cudaStreamCreateWithPriority(&side, cudaStreamNonBlocking, least));
  if (rank == 0)
    std::printf("# %10s %7s %10s | %10s %7s | %10s %7s | %10s %7s | %12s %10s\n", "size(B)",
                "chunks", "chunk(MB)", "exch(us)", "GB/s", "gather(us)", "GB/s", "both(us)", "GB/s",
                "both+kern(us)", "kern(us)");
  agoq::allreduce_config c = base;
  c.algo = agoq::algorithm::two_shot;
  const agoq::quant_spec s = c.spec();
  for (std::size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 4) {
    const std::int64_t n = std::int64_t(bytes / sizeof(T));
    const agoq::partition p = agoq::make_partition(n, c, w);
    const std::int64_t span = p.max_shard(), nchunks = p.chunks(span);
    const std::size_t slot = p.packed_bytes(s, span);
    std::uint8_t* gat = ws;                         // chunk-major, W x slot
    std::uint8_t* rcv = ws + std::size_t(w) * slot; // W receive slots
    std::size_t sent = 0; // bytes this rank sends per pass, in each of the two operations
    auto exchange = [&](std::int64_t ch) {
      BENCH_NCCL(ncclGroupStart());
      for (int k = 0; k < w; ++k) {
        if (k == rank) continue;
        const std::size_t mb = agoq::message_bytes(s, p.chunk_size(p.shard(k).size(), ch));
        const std::size_t mr = agoq::message_bytes(s, p.chunk_size(p.shard(rank).size(), ch));
        const std::size_t off =
            p.interleaved_offset(s, ch) + std::size_t(k) * p.interleaved_stride(s, span, ch);
        if (mb > 0) BENCH_NCCL(ncclSend(gat + off, mb, ncclUint8, k, comm, stream));
        if (mr > 0)
          BENCH_NCCL(ncclRecv(rcv + std::size_t(k) * slot + p.chunk_offset(s, ch), mr, ncclUint8, k,
                              comm, stream));
      }
      BENCH_NCCL(ncclGroupEnd());
    };
    auto gather = [&](std::int64_t ch) {
      const std::size_t stride = p.interleaved_stride(s, span, ch);
      std::uint8_t* all = gat + p.interleaved_offset(s, ch);
      BENCH_NCCL(
          ncclAllGather(all + std::size_t(rank) * stride, all, stride, ncclUint8, comm, stream));
    };
    for (std::int64_t ch = 0; ch < nchunks; ++ch)
      for (int k = 0; k < w; ++k)
        if (k != rank) sent += agoq::message_bytes(s, p.chunk_size(p.shard(k).size(), ch));
    auto kernel = [&] {
      convert_kernel<T, float><<<blocks_for(n), kThreads, 0, side>>>(x, scratch, n);
      BENCH_CUDA(cudaGetLastError());
    };
    const double t_x = time_it(sh, rank, stream, e0, e1, [&] {
      for (std::int64_t ch = 0; ch < nchunks; ++ch)
        exchange(ch);
    });
    const double t_g = time_it(sh, rank, stream, e0, e1, [&] {
      for (std::int64_t ch = 0; ch < nchunks; ++ch)
        gather(ch);
    });
    const double t_b = time_it(sh, rank, stream, e0, e1, [&] {
      for (std::int64_t ch = 0; ch < nchunks; ++ch)
        exchange(ch), gather(ch);
    });
    const double t_bk = time_it(sh, rank, stream, e0, e1, [&] {
      kernel(); // on `side`; the timed stream runs the transfers meanwhile
      for (std::int64_t ch = 0; ch < nchunks; ++ch)
        exchange(ch), gather(ch);
    });
    const double t_k = time_it(sh, rank, side, e0, e1, kernel);
    BENCH_CUDA(cudaStreamSynchronize(side));
    if (rank == 0) {
      auto gbs = [&](double us, std::size_t b) { return double(b) / (us * 1e-6) / 1e9; };
      std::printf(
          "  %10zu %7lld %10.2f | %10.1f %7.1f | %10.1f %7.1f | %10.1f %7.1f | %12.1f %10.1f\n",
          bytes, static_cast<long long>(nchunks),
          double(agoq::message_bytes(s, p.chunk_size(span, 0))) / 1e6, t_x, gbs(t_x, sent), t_g,
          gbs(t_g, sent), t_b, gbs(t_b, 2 * sent), t_bk, t_k);
      std::fflush(stdout);
    }
  }
  BENCH_CUDA(cudaStreamDestroy(side));
}

template <class T> void run_rank(shared_state& sh, int rank) {
  const options& o = sh.opt;
  const int w = sh.world;
  BENCH_CUDA(cudaSetDevice(rank));
  ncclComm_t comm = sh.comms[std::size_t(rank)];
  const agoq::comm_ref cref(comm);
  cudaStream_t stream = nullptr;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  BENCH_CUDA(cudaEventCreate(&e0));
  BENCH_CUDA(cudaEventCreate(&e1));

  agoq::allreduce_config base;
  base.chunk = o.chunk;
  base.block = o.block;
  base.wire = o.wire;
  if (const char* m = agoq::validate(base)) die(std::string("bad config: ") + m);

  const std::int64_t max_count = std::int64_t(o.max_bytes / sizeof(T));
  std::size_t ws_bytes = 0;
  const std::vector<agoq::algorithm> sized =
      o.transfers ? std::vector<agoq::algorithm>{agoq::algorithm::two_shot} : o.algos;
  for (std::size_t b = o.min_bytes; b <= o.max_bytes; b *= 4)
    for (agoq::algorithm a : sized) {
      agoq::allreduce_config c = base;
      c.algo = a;
      ws_bytes =
          std::max(ws_bytes, agoq::allreduce_workspace_size<T>(std::int64_t(b / sizeof(T)), c, w));
    }
  T *x = nullptr, *y = nullptr;
  void *ws = nullptr, *nin = nullptr, *nout = nullptr;
  double* acc = nullptr;
  BENCH_CUDA(cudaMalloc(&x, std::size_t(max_count) * sizeof(T)));
  BENCH_CUDA(cudaMalloc(&y, std::size_t(max_count) * sizeof(T)));
  BENCH_CUDA(cudaMalloc(&ws, std::max<std::size_t>(ws_bytes, 256)));
  BENCH_CUDA(cudaMalloc(&nin, std::size_t(max_count) * 4));
  BENCH_CUDA(cudaMalloc(&nout, std::size_t(max_count) * 4));
  BENCH_CUDA(cudaMalloc(&acc, 2 * sizeof(double)));
  generate_kernel<T><<<blocks_for(max_count), kThreads, 0, stream>>>(x, max_count, rank);
  BENCH_CUDA(cudaGetLastError());
  if (o.transfers) {
    run_transfers<T>(sh, rank, base, static_cast<std::uint8_t*>(ws), x, static_cast<float*>(nout),
                     stream, e0, e1);
  } else {

    if (rank == 0) {
      std::printf("# %10s %11s %5s %16s %10s %8s %8s | %10s %6s | %10s %6s | %10s %6s | %9s %9s\n",
                  "size(B)", "count", "type", "algo", "time(us)", "algbw", "busbw", "nccl_bf16",
                  "x", "nccl_f32", "x", "nccl_fp8", "x", "agoq_err", "fp8_err");
      std::printf("# %10s %11s %5s %16s %10s %8s %8s | %10s %6s | %10s %6s | %10s %6s | %9s %9s\n",
                  "", "", "", "", "", "(GB/s)", "(GB/s)", "(us)", "", "(us)", "", "(us)", "", "",
                  "");
    }
    for (std::size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 4) {
      const std::int64_t n = std::int64_t(bytes / sizeof(T));
      // NCCL's own all-reduce at bf16, fp32 and fp8 e4m3 on the same values, same count.
      double t_bf16 = 0, t_f32 = 0, t_fp8 = -1, e_fp8 = -1;
      convert_kernel<T, __nv_bfloat16>
          <<<blocks_for(n), kThreads, 0, stream>>>(x, static_cast<__nv_bfloat16*>(nin), n);
      BENCH_CUDA(cudaGetLastError());
      t_bf16 = time_it(sh, rank, stream, e0, e1, [&] {
        BENCH_NCCL(ncclAllReduce(nin, nout, std::size_t(n), ncclBfloat16, ncclSum, comm, stream));
      });
      convert_kernel<T, float>
          <<<blocks_for(n), kThreads, 0, stream>>>(x, static_cast<float*>(nin), n);
      BENCH_CUDA(cudaGetLastError());
      t_f32 = time_it(sh, rank, stream, e0, e1, [&] {
        BENCH_NCCL(ncclAllReduce(nin, nout, std::size_t(n), ncclFloat32, ncclSum, comm, stream));
      });
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
      convert_kernel<T, __nv_fp8_e4m3>
          <<<blocks_for(n), kThreads, 0, stream>>>(x, static_cast<__nv_fp8_e4m3*>(nin), n);
      BENCH_CUDA(cudaGetLastError());
      t_fp8 = time_it(sh, rank, stream, e0, e1, [&] {
        BENCH_NCCL(ncclAllReduce(nin, nout, std::size_t(n), ncclFloat8e4m3, ncclSum, comm, stream));
      });
      if (rank == 0)
        e_fp8 = rel_error(static_cast<const __nv_fp8_e4m3*>(nout), n, w,
                          std::is_same<T, float>::value, acc, stream);
#endif
      for (agoq::algorithm a : o.algos) {
        agoq::allreduce_config c = base;
        c.algo = a;
        const std::size_t wsb = agoq::allreduce_workspace_size<T>(n, c, cref);
        const double t = time_it(sh, rank, stream, e0, e1, [&] {
          if (o.overlap) {
            const agoq::status s = agoq::allreduce(x, y, n, c, ws, wsb, cref, stream);
            if (s != agoq::status::success)
              die(std::string("agoq::allreduce: ") + agoq::to_string(s) + ": " +
                  agoq::last_error_message());
            return;
          }
          try { // the same schedule, every transfer on `stream` (this thread's device is rank's)
            agoq::nccl_transport tr(cref, stream, /*overlap=*/false);
            agoq::cuda_executor ex(stream);
            agoq::allreduce(static_cast<const T*>(x), y, n, c, ws, wsb, tr, ex);
          } catch (const std::exception& e) {
            die(std::string("agoq::allreduce (overlap off): ") + e.what());
          }
        });
        if (rank != 0) continue;
        const double err = rel_error(y, n, w, std::is_same<T, float>::value, acc, stream);
        const double algbw = double(bytes) / (t * 1e-6) / 1e9;
        const double busbw = algbw * 2.0 * double(w - 1) / double(w);
        const agoq::algorithm ra = agoq::resolve_algorithm(c, n, agoq::element_type_of<T>(), w);
        std::string name = agoq::to_string(a);
        if (a == agoq::algorithm::auto_select) name = std::string("auto:") + agoq::to_string(ra);
        if (ra == agoq::algorithm::two_shot || ra == agoq::algorithm::one_shot) {
          const agoq::partition p = agoq::make_partition(n, c, w); // chunks of its pipeline
          name +=
              "/" + std::to_string(p.chunks(ra == agoq::algorithm::two_shot ? p.max_shard() : n));
        }
        char fp8_t[32] = "n/a", fp8_x[32] = "", fp8_e[32] = "n/a";
        if (t_fp8 >= 0) {
          std::snprintf(fp8_t, sizeof(fp8_t), "%.1f", t_fp8);
          std::snprintf(fp8_x, sizeof(fp8_x), "%.2f", t_fp8 / t);
          std::snprintf(fp8_e, sizeof(fp8_e), "%.2e", e_fp8);
        }
        std::printf("  %10zu %11lld %5s %16s %10.1f %8.1f %8.1f | %10.1f %6.2f | %10.1f %6.2f | "
                    "%10s %6s | %9.2e %9s\n",
                    bytes, static_cast<long long>(n),
                    std::is_same<T, float>::value ? "f32" : "bf16", name.c_str(), t, algbw, busbw,
                    t_bf16, t_bf16 / t, t_f32, t_f32 / t, fp8_t, fp8_x, err, fp8_e);
        std::fflush(stdout);
      }
    }
  } // not --transfers
  BENCH_CUDA(cudaStreamSynchronize(stream));
  cudaFree(x);
  cudaFree(y);
  cudaFree(ws);
  cudaFree(nin);
  cudaFree(nout);
  cudaFree(acc);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
}

} // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::printf("allreduce_bench: no GPU visible; nothing to benchmark\n");
    return 0;
  }
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  int nccl_version = 0;
  BENCH_NCCL(ncclGetVersion(&nccl_version));
  const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
  shared_state sh;
  sh.world = ndev;
  sh.opt = opt;
  sh.comms.assign(std::size_t(ndev), nullptr);
  BENCH_NCCL(ncclCommInitAll(sh.comms.data(), ndev, nullptr));
  thread_barrier barrier(ndev);
  sh.barrier = &barrier;
  std::printf("# agoq all-reduce benchmark: %s x %d (world size %d), NCCL %d, "
              "NCCL_NVLS_ENABLE=%s\n",
              prop.name, ndev, ndev, nccl_version, nvls ? nvls : "(unset)");
  const std::string chunk =
      opt.chunk ? std::to_string(opt.chunk) + " elements"
                : "auto (max shard / " + std::to_string(agoq::pipeline_chunks) +
                      ", >= " + std::to_string(agoq::pipeline_min_chunk_elements) + " elements)";
  std::printf("# agoq: wire %s, block %d, %s rounding, chunk %s, overlap %s; data N(0,1) x %.0e; "
              "time = median of %d after %d warm-up (CUDA events, rank 0, after a barrier)\n",
              agoq::to_string(opt.wire), opt.block, "nearest", chunk.c_str(),
              opt.overlap ? "on" : "off", double(data_scale), opt.iters, opt.warmup);
  std::vector<std::thread> threads;
  for (int r = 0; r < ndev; ++r)
    threads.emplace_back([&, r] {
      if (opt.f32)
        run_rank<float>(sh, r);
      else
        run_rank<__nv_bfloat16>(sh, r);
    });
  for (auto& t : threads)
    t.join();
  for (int r = 0; r < ndev; ++r) {
    BENCH_CUDA(cudaSetDevice(r));
    BENCH_NCCL(ncclCommDestroy(sh.comms[std::size_t(r)]));
  }
  return 0;
}

#else // !AGOQ_HAS_NCCL()

int main() {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::printf("allreduce_bench: no GPU visible; nothing to benchmark\n");
    return 0;
  }
  std::printf("allreduce_bench: built without <nccl.h>; nothing to benchmark\n");
  return 0;
}

#endif

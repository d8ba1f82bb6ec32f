// SPDX-License-Identifier: Apache-2.0
//! @file examples/allreduce/allreduce.cu
//! agoq-allreduce: agoq's 8-bit all-reduce (INT8 wire, fp32 accumulation) next to NCCL's bf16
//! all-reduce on the same data: time per call and relative L2 error against an fp64 sum.
//!
//! One process, every visible GPU, one host thread per GPU (ncclCommInitAll):
//!   agoq-allreduce [--count N] [--iters N]
//! One process per GPU; rank 0 writes the ncclUniqueId to PATH, the others wait for it:
//!   agoq-allreduce --multi-process --rank R --world W --id-file PATH [--count N] [--iters N]
//!   e.g. rm -f /tmp/agoq.id; for r in 0 1 2 3; do
//!          agoq-allreduce --multi-process --rank $r --world 4 --id-file /tmp/agoq.id & done; wait
//! Rank R uses GPU R % (visible GPUs). Without a GPU (or without NCCL) it says so and exits 0.
#include <agoq/agoq.cuh>

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if AGOQ_HAS_NCCL()

#include <cuda_bf16.h>
#include <nccl.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace {

struct options {
  std::int64_t count = std::int64_t(1) << 24; // bf16 elements per rank (32 MiB)
  int iters = 20;
  bool multi_process = false;
  int rank = 0, world = 0;
  std::string id_file;
};

// Rank r's input element i: a normal-ish value from a hash, so every process can recompute
// every rank's input (and the fp64 reference) without moving data.
float input_value(int rank, std::int64_t i) {
  std::uint64_t z = std::uint64_t(i) * 0x9E3779B97F4A7C15ull + std::uint64_t(rank + 1) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // sum of four uniforms in [-0.5, 0.5): mean 0, variance 1/3, close to normal
  float s = 0;
  for (int k = 0; k < 4; ++k) s += float((z >> (16 * k)) & 0xFFFF) / 65536.0f - 0.5f;
  return s * 1.7320508f;
}

// What one rank measured.
struct rank_result {
  double agoq_ms = 0, nccl_ms = 0;       // mean time per call
  double agoq_err = 0, nccl_err = 0;     // relative L2 error against the fp64 sum
  std::vector<__nv_bfloat16> agoq_out;   // to check that every rank got the same bits
};

double rel_l2(const std::vector<__nv_bfloat16>& y, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double d = double(__bfloat162float(y[i])) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// The fp64 sum over all ranks' inputs (each input rounded to bf16, as the ranks hold it).
std::vector<double> reference_sum(int world, std::int64_t count) {
  std::vector<double> ref(static_cast<std::size_t>(count), 0.0);
  for (int r = 0; r < world; ++r)
    for (std::int64_t i = 0; i < count; ++i)
      ref[std::size_t(i)] += double(__bfloat162float(__float2bfloat16(input_value(r, i))));
  return ref;
}

// One rank's work: the same data through agoq::allreduce and ncclAllReduce(bf16), timed with
// CUDA events on this rank's stream. Every rank of `comm` must call it (the collectives match).
rank_result run_rank(ncclComm_t comm, int rank, int world, int device, const options& o,
                     const std::vector<double>* ref) {
  AGOQ_CUDA_TRY(cudaSetDevice(device));
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::int64_t n = o.count;
  const std::size_t bytes = std::size_t(n) * sizeof(__nv_bfloat16);

  std::vector<__nv_bfloat16> host(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) host[std::size_t(i)] = __float2bfloat16(input_value(rank, i));
  __nv_bfloat16 *x = nullptr, *y = nullptr;
  AGOQ_CUDA_TRY(cudaMalloc(&x, bytes));
  AGOQ_CUDA_TRY(cudaMalloc(&y, bytes));
  AGOQ_CUDA_TRY(cudaMemcpy(x, host.data(), bytes, cudaMemcpyHostToDevice));

  // agoq never allocates: ask for the workspace size once, allocate it once, reuse it.
  const agoq::allreduce_config cfg; // INT8 wire, block 128, fp32 scales, sum, algorithm auto
  const agoq::comm_ref cref(comm);
  const std::size_t ws_bytes = agoq::allreduce_workspace_size<__nv_bfloat16>(n, cfg, cref);
  void* ws = nullptr;
  AGOQ_CUDA_TRY(cudaMalloc(&ws, ws_bytes ? ws_bytes : 1));

  auto agoq_call = [&] { AGOQ_TRY(agoq::allreduce(x, y, n, cfg, ws, ws_bytes, cref, stream)); };
  auto nccl_call = [&] {
    AGOQ_NCCL_TRY(ncclAllReduce(x, y, std::size_t(n), ncclBfloat16, ncclSum, comm, stream));
  };
  cudaEvent_t start, stop;
  AGOQ_CUDA_TRY(cudaEventCreate(&start));
  AGOQ_CUDA_TRY(cudaEventCreate(&stop));
  auto time_ms = [&](auto&& call) {
    for (int i = 0; i < 3; ++i) call(); // warm-up (also lines the ranks up)
    AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
    AGOQ_CUDA_TRY(cudaEventRecord(start, stream));
    for (int i = 0; i < o.iters; ++i) call();
    AGOQ_CUDA_TRY(cudaEventRecord(stop, stream));
    AGOQ_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0;
    AGOQ_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    return double(ms) / o.iters;
  };

  rank_result res;
  std::vector<__nv_bfloat16> out(static_cast<std::size_t>(n));
  res.nccl_ms = time_ms(nccl_call);
  AGOQ_CUDA_TRY(cudaMemcpy(out.data(), y, bytes, cudaMemcpyDeviceToHost));
  if (ref) res.nccl_err = rel_l2(out, *ref);
  res.agoq_ms = time_ms(agoq_call);
  AGOQ_CUDA_TRY(cudaMemcpy(out.data(), y, bytes, cudaMemcpyDeviceToHost));
  if (ref) res.agoq_err = rel_l2(out, *ref);
  res.agoq_out = std::move(out);

  cudaEventDestroy(start), cudaEventDestroy(stop);
  cudaFree(ws), cudaFree(x), cudaFree(y);
  cudaStreamDestroy(stream);
  (void)world;
  return res;
}

void print_header(int world, const options& o) {
  std::printf("all-reduce of %lld bf16 values (%.1f MiB) per rank over %d rank(s), %d iterations\n",
              (long long)o.count, double(o.count) * 2 / (1 << 20), world, o.iters);
  std::printf("agoq: %s (INT8 wire, fp32 accumulation); NCCL: ncclAllReduce bf16 sum\n\n",
              [] { std::ostringstream s; s << agoq::allreduce_config{}; return s.str(); }().c_str());
}

void print_result(const rank_result& r, const options& o, const char* identical) {
  const double gb = double(o.count) * 2 / 1e9;
  std::printf("%-22s %10s %10s %12s\n", "", "time (ms)", "algbw GB/s", "rel L2 err");
  std::printf("%-22s %10.3f %10.1f %12.3e\n", "NCCL bf16", r.nccl_ms, gb / r.nccl_ms * 1e3, r.nccl_err);
  std::printf("%-22s %10.3f %10.1f %12.3e\n", "agoq int8 (fp32 acc)", r.agoq_ms, gb / r.agoq_ms * 1e3,
              r.agoq_err);
  std::printf("\nagoq vs NCCL bf16: %.2fx the speed; every rank bitwise identical: %s\n",
              r.nccl_ms / r.agoq_ms, identical);
}

// One process: every visible GPU, one thread per GPU.
int single_process(int devices, const options& o) {
  std::vector<ncclComm_t> comms(static_cast<std::size_t>(devices));
  AGOQ_NCCL_TRY(ncclCommInitAll(comms.data(), devices, nullptr)); // devices 0..devices-1
  print_header(devices, o);
  const std::vector<double> ref = reference_sum(devices, o.count);
  std::vector<rank_result> results(static_cast<std::size_t>(devices));
  std::vector<std::string> errors(static_cast<std::size_t>(devices));
  std::vector<std::thread> threads;
  for (int r = 0; r < devices; ++r)
    threads.emplace_back([&, r] {
      try {
        results[std::size_t(r)] = run_rank(comms[std::size_t(r)], r, devices, r, o, r == 0 ? &ref : nullptr);
      } catch (const std::exception& e) {
        errors[std::size_t(r)] = e.what(); // (a real trainer would ncclCommAbort every rank here)
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < devices; ++r)
    if (!errors[std::size_t(r)].empty()) {
      std::fprintf(stderr, "rank %d: %s\n", r, errors[std::size_t(r)].c_str());
      return 1;
    }
  bool same = true;
  for (const auto& r : results)
    same = same && std::memcmp(r.agoq_out.data(), results[0].agoq_out.data(), std::size_t(o.count) * 2) == 0;
  print_result(results[0], o, same ? "yes" : "NO");
  for (ncclComm_t c : comms) ncclCommDestroy(c);
  return same ? 0 : 1;
}

// One process per GPU: the ncclUniqueId travels through a file (rank 0 writes it atomically).
int multi_process(int devices, const options& o) {
  ncclUniqueId id;
  if (o.rank == 0) {
    AGOQ_NCCL_TRY(ncclGetUniqueId(&id));
    const std::string tmp = o.id_file + ".tmp" + std::to_string(::getpid());
    std::ofstream(tmp, std::ios::binary).write(id.internal, sizeof(id.internal));
    if (std::rename(tmp.c_str(), o.id_file.c_str()) != 0) {
      std::fprintf(stderr, "rank 0: cannot write %s\n", o.id_file.c_str());
      return 1;
    }
  } else {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      std::ifstream in(o.id_file, std::ios::binary);
      if (in.read(id.internal, sizeof(id.internal)) && in.gcount() == sizeof(id.internal)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "rank %d: no id in %s after 120 s (is rank 0 running?)\n", o.rank,
                     o.id_file.c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const int device = o.rank % devices;
  AGOQ_CUDA_TRY(cudaSetDevice(device));
  ncclComm_t comm;
  AGOQ_NCCL_TRY(ncclCommInitRank(&comm, o.world, id, o.rank));
  std::vector<double> ref;
  if (o.rank == 0) {
    print_header(o.world, o);
    ref = reference_sum(o.world, o.count);
  }
  const rank_result r = run_rank(comm, o.rank, o.world, device, o, o.rank == 0 ? &ref : nullptr);
  // Bitwise agreement across processes: all-reduce a checksum of each rank's bits, as doubles.
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(r.agoq_out.data());
  for (std::size_t i = 0; i < r.agoq_out.size() * 2; ++i) h = (h ^ p[i]) * 1099511628211ull;
  const double mine = double(h >> 12); // exact in a double
  double *d = nullptr, hmin = 0, hmax = 0;
  AGOQ_CUDA_TRY(cudaMalloc(&d, 2 * sizeof(double)));
  AGOQ_CUDA_TRY(cudaMemcpy(d, &mine, sizeof(double), cudaMemcpyHostToDevice));
  AGOQ_CUDA_TRY(cudaMemcpy(d + 1, &mine, sizeof(double), cudaMemcpyHostToDevice));
  AGOQ_NCCL_TRY(ncclAllReduce(d, d, 1, ncclFloat64, ncclMin, comm, nullptr));
  AGOQ_NCCL_TRY(ncclAllReduce(d + 1, d + 1, 1, ncclFloat64, ncclMax, comm, nullptr));
  AGOQ_CUDA_TRY(cudaMemcpy(&hmin, d, sizeof(double), cudaMemcpyDeviceToHost));
  AGOQ_CUDA_TRY(cudaMemcpy(&hmax, d + 1, sizeof(double), cudaMemcpyDeviceToHost));
  cudaFree(d);
  if (o.rank == 0) {
    print_result(r, o, hmin == hmax ? "yes" : "NO");
    std::remove(o.id_file.c_str()); // every rank is past ncclCommInitRank: the id is spent
  }
  ncclCommDestroy(comm);
  return hmin == hmax ? 0 : 1;
}

} // namespace

#endif // AGOQ_HAS_NCCL()

int main(int argc, char** argv) {
#if AGOQ_HAS_NCCL()
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (f == "--multi-process") o.multi_process = true;
    else if (f == "--count" && v) o.count = std::atoll(v), ++i;
    else if (f == "--iters" && v) o.iters = std::atoi(v), ++i;
    else if (f == "--rank" && v) o.rank = std::atoi(v), ++i;
    else if (f == "--world" && v) o.world = std::atoi(v), ++i;
    else if (f == "--id-file" && v) o.id_file = v, ++i;
    else {
      std::fprintf(stderr, "usage: agoq-allreduce [--count N] [--iters N]\n"
                           "       agoq-allreduce --multi-process --rank R --world W --id-file PATH"
                           " [--count N] [--iters N]\n");
      return 2;
    }
  }
  if (o.count <= 0 || o.iters <= 0 ||
      (o.multi_process && (o.world < 1 || o.rank < 0 || o.rank >= o.world || o.id_file.empty()))) {
    std::fprintf(stderr, "agoq-allreduce: need --count, --iters > 0; --multi-process needs "
                         "--world W >= 1, 0 <= --rank < W and --id-file\n");
    return 2;
  }
#endif
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    std::printf("agoq-allreduce: no GPU visible; the all-reduce needs GPUs and NCCL, nothing to "
                "run (the host tests run the same schedules over an in-process transport)\n");
    return 0;
  }
#if AGOQ_HAS_NCCL()
  try {
    return o.multi_process ? multi_process(devices, o) : single_process(devices, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agoq-allreduce: %s\n", e.what());
    return 1;
  }
#else
  (void)argc, (void)argv;
  std::printf("agoq-allreduce: built without NCCL (<nccl.h> not found); nothing to run\n");
  return 0;
#endif
}

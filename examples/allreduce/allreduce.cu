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

#include "allreduce_vs_nccl.cuh"
#include "cli.hpp"

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

using agoq_examples::rank_result;

struct options {
  std::int64_t count = std::int64_t(1) << 24; // bf16 elements per rank (32 MiB)
  int iters = 20;
  bool multi_process = false;
  int rank = 0, world = 0;
  std::string id_file;
};

void print_header(int world, const options& o) {
  std::printf("all-reduce of %lld bf16 values (%.1f MiB) per rank over %d rank(s), %d iterations\n",
              (long long)o.count, double(o.count) * 2 / (1 << 20), world, o.iters);
  std::printf("agoq: %s (INT8 wire, fp32 accumulation); NCCL: ncclAllReduce bf16 sum\n\n",
              [] {
                std::ostringstream s;
                s << agoq::allreduce_config{};
                return s.str();
              }()
                  .c_str());
}

void print_result(const rank_result& r, const options& o, const char* identical, int world) {
  const double gb = double(o.count) * 2 / 1e9;
  std::printf("%-22s %10s %10s %12s\n", "", "time (ms)", "algbw GB/s", "rel L2 err");
  std::printf("%-22s %10.3f %10.1f %12.3e\n", "NCCL bf16", r.nccl_ms, gb / r.nccl_ms * 1e3,
              r.nccl_err);
  std::printf("%-22s %10.3f %10.1f %12.3e\n", "agoq int8 (fp32 acc)", r.agoq_ms,
              gb / r.agoq_ms * 1e3, r.agoq_err);
  std::printf("\nagoq vs NCCL bf16: %.2fx the speed; every rank bitwise identical: %s\n",
              r.nccl_ms / r.agoq_ms, identical);
  if (world == 1) // nothing crosses a wire: NCCL copies, agoq still quantizes and decodes
    std::printf("(1 rank: no communication, so this only shows the codec cost; the 8-bit wire "
                "pays off from 2 GPUs on)\n");
}

// One process: every visible GPU, one thread per GPU.
int single_process(int devices, const options& o) {
  print_header(devices, o);
  const agoq_examples::all_gpus_result r = agoq_examples::run_all_gpus(devices, o.count, o.iters);
  if (!r.error.empty()) {
    std::fprintf(stderr, "%s\n", r.error.c_str());
    return 1;
  }
  print_result(r.rank0, o, r.identical ? "yes" : "NO", devices);
  return r.identical ? 0 : 1;
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
    ref = agoq_examples::reference_sum(o.world, o.count);
  }
  const rank_result r =
      agoq_examples::run_rank(comm, o.rank, device, o.count, o.iters, o.rank == 0 ? &ref : nullptr);
  // Bitwise agreement across processes: all-reduce a checksum of each rank's bits, as doubles.
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(r.agoq_out.data());
  for (std::size_t i = 0; i < r.agoq_out.size() * 2; ++i)
    h = (h ^ p[i]) * 1099511628211ull;
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
    print_result(r, o, hmin == hmax ? "yes" : "NO", o.world);
    std::remove(o.id_file.c_str()); // every rank is past ncclCommInitRank: the id is spent
  }
  ncclCommDestroy(comm);
  return hmin == hmax ? 0 : 1;
}

} // namespace

#endif // AGOQ_HAS_NCCL()

int main(int argc, char** argv) {
  std::int64_t count = std::int64_t(1) << 24; // bf16 elements per rank (32 MiB)
  int iters = 20, rank = 0, world = 0;
  bool multi = false;
  std::string id_file;
  cli::parser p("agoq-allreduce",
                "agoq's 8-bit all-reduce (INT8 wire, fp32 accumulation) next to NCCL's bf16\n"
                "all-reduce on the same data: time per call, rel. L2 error against an fp64 sum,\n"
                "ranks bitwise identical. One process drives every visible GPU (one thread\n"
                "each), or, with --multi-process, one process per GPU.");
  p.option("--count", "N", count, "bf16 elements per rank", 1, std::int64_t(1) << 34)
      .option("--iters", "N", iters, "timed calls", 1, 1 << 20)
      .flag("--multi-process", multi, "one process per GPU (needs --rank, --world, --id-file)")
      .option("--rank", "R", rank, "this process's rank, 0..W-1 (uses GPU R % visible GPUs)", 0,
              1 << 16)
      .option("--world", "W", world, "number of processes", 1, 1 << 16)
      .option("--id-file", "PATH", id_file,
              "rank 0 writes the NCCL unique id here, the others wait for it")
      .note("example, 4 processes:\n  rm -f /tmp/agoq.id; for r in 0 1 2 3; do\n"
            "    agoq-allreduce --multi-process --rank $r --world 4 --id-file /tmp/agoq.id & done; "
            "wait");
  if (const auto rc = p.parse(argc, argv)) return *rc;
  if (multi) {
    if (!p.given("--world") || id_file.empty())
      return p.fail("--multi-process needs --rank, --world and --id-file");
    if (rank >= world)
      return p.fail("--rank (" + std::to_string(rank) + ") must be below --world (" +
                    std::to_string(world) + ")");
  } else if (p.given("--rank") || p.given("--world") || p.given("--id-file")) {
    return p.fail("--rank, --world and --id-file need --multi-process");
  }
#if AGOQ_HAS_NCCL()
  options o;
  o.count = count;
  o.iters = iters;
  o.multi_process = multi;
  o.rank = rank;
  o.world = world;
  o.id_file = id_file;
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
  std::printf("agoq-allreduce: built without NCCL (agoq::comm not linked); nothing to run\n");
  return 0;
#endif
}

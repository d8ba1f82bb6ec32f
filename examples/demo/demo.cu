// SPDX-License-Identifier: Apache-2.0
// agoq demo: runs what this machine allows and says so. Without a GPU it runs the host paths
// (the reference quantizers on a real-sized tensor, the activation plan, the all-reduce schedules
// over simulated ranks); with GPUs it also runs the kernels on every visible GPU, checks them
// against the reference bit for bit and prints GB/s and the fraction of a device-to-device copy,
// and (with NCCL) runs the 8-bit all-reduce over all of them next to NCCL's bf16 all-reduce.
// Exits non-zero if any check fails.
#include <agoq/agoq.cuh>
#include <agoq/comm/host_transport.hpp>
#include <agoq/comm/schedule.hpp>
#include <agoq/comm/workspace.hpp>

#include "allreduce_vs_nccl.cuh"
#include "cli.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("  CHECK FAILED: %s\n", what);
    ++failures;
  }
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(a[i]) * double(a[i]);
  }
  return std::sqrt(num / den);
}

struct named_spec {
  const char* name;
  agoq::quant_spec spec;
};

const named_spec kSpecs[] = {
    {"int8  block 128", {agoq::format::int8, 128}},
    {"fp8 e4m3 blk 128", {agoq::format::fp8_e4m3, 128}},
    {"int4  block 128", {agoq::format::int4, 128}},
    {"int4 asym b 128",
     {agoq::format::int4, 128, agoq::scale_kind::fp32, agoq::rounding::nearest_even, false}},
    {"mxfp4 e8m0 b 32", {agoq::format::fp4_e2m1, 32, agoq::scale_kind::e8m0}},
};

void host_quantizers(const std::vector<float>& x) {
  std::printf("\n[host] reference quantizers on %zu fp32 values (normal data)\n", x.size());
  std::printf("  %-18s %10s %12s %12s\n", "format", "bits/elem", "rel L2 err", "ms");
  const std::int64_t n = std::int64_t(x.size());
  for (const named_spec& s : kSpecs) {
    std::vector<unsigned char> codes(agoq::codes_bytes(s.spec, n)),
        scales(agoq::scales_bytes(s.spec, n));
    std::vector<float> zeros(s.spec.symmetric ? 0 : size_t(agoq::scales_count(s.spec, n)));
    std::vector<float> y(x.size());
    agoq::quantized_view q{
        codes.data(), scales.data(), zeros.empty() ? nullptr : zeros.data(), 1, n, s.spec};
    const auto t0 = std::chrono::steady_clock::now();
    agoq::ref::quantize(x.data(), q);
    agoq::ref::dequantize(agoq::const_quantized_view(q), y.data());
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const double err = rel_l2(x, y);
    std::printf("  %-18s %10.3f %12.3e %12.1f\n", s.name, agoq::bits_per_element(s.spec), err, ms);
    check(err < 0.2, "reference round-trip error is bounded");
  }
}

void policy_plan() {
  agoq::model_shape m = agoq::model_shape::llama2_7b();
  m.stages = 4;
  m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
  m.micro_batches = 8;
  m.virtual_stages = 2;
  const agoq::memory_plan plan = agoq::plan_memory(m, agoq::paper_save_plan());
  std::printf(
      "\n[host] activation plan, LLaMA2-7B shape, 4 stages, interleaved 1F1B, 8 micro-batches\n");
  std::printf("  %-6s %6s %5s %12s %12s %8s\n", "stage", "stash", "bits", "agoq GiB", "bf16 GiB",
              "saving");
  for (const agoq::stage_memory& s : plan.stages)
    std::printf("  %-6d %6d %5d %12.2f %12.2f %7.1f%%\n", s.stage + 1, s.stash, s.bits,
                double(s.bytes) / (1 << 30), double(s.baseline_bytes) / (1 << 30),
                100 * s.saving());
  // The DBCA-PP rule: no stage may hold more activation memory than the bottleneck stage.
  for (const agoq::stage_memory& s : plan.stages)
    check(s.bytes <= plan.peak_bytes, "no stage exceeds the peak");
  check(plan.saving() > 0.5, "the paper's policy saves more than half of the BF16 activations");
}

//! The all-reduce schedules over the in-process host transport: `world` threads as ranks, the
//! host reference codecs, the same schedule code the NCCL path runs.
void host_allreduce(int world, std::int64_t count) {
  std::printf("\n[host] 8-bit all-reduce, %d simulated ranks, %lld fp32 values of size ~1e-3\n",
              world, (long long)count);
  std::printf("  %-10s %12s %14s %10s\n", "algorithm", "rel L2 err", "ranks identical", "ms");
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  std::vector<std::vector<float>> in(world, std::vector<float>(size_t(count)));
  std::vector<double> ref(size_t(count), 0.0);
  for (auto& v : in)
    for (std::int64_t i = 0; i < count; ++i)
      ref[size_t(i)] += v[size_t(i)] = normal(gen);
  for (agoq::algorithm algo : {agoq::algorithm::two_shot, agoq::algorithm::one_shot,
                               agoq::algorithm::ring, agoq::algorithm::tree}) {
    agoq::allreduce_config cfg;
    cfg.algo = algo;
    std::vector<std::vector<float>> out(world);
    const auto t0 = std::chrono::steady_clock::now();
    agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
      const int r = tr.rank();
      const size_t wsb = agoq::allreduce_workspace_size(count, agoq::element_type::f32, cfg, world);
      std::vector<float> ws(wsb / sizeof(float) + 1); // float storage: 16-byte aligned on glibc
      out[r].resize(size_t(count));
      agoq::allreduce(in[r].data(), out[r].data(), count, cfg, ws.data(), wsb, tr, ex);
    });
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool identical = true;
    for (int r = 1; r < world; ++r)
      identical = identical && std::memcmp(out[r].data(), out[0].data(), size_t(count) * 4) == 0;
    double num = 0, den = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      const double d = double(out[0][size_t(i)]) - ref[size_t(i)];
      num += d * d;
      den += ref[size_t(i)] * ref[size_t(i)];
    }
    const double err = std::sqrt(num / den);
    std::printf("  %-10s %12.3e %14s %10.1f\n", agoq::to_string(algo), err,
                identical ? "yes" : "NO", ms);
    check(identical, "every rank holds the same bits");
    check(err < 2e-2, "the 8-bit all-reduce error stays below 2e-2 (fp32 sums, per-block scales)");
  }
}

void gpu_quantizers(int device, const std::vector<float>& x) {
  AGOQ_CUDA_TRY(cudaSetDevice(device));
  cudaDeviceProp prop{};
  AGOQ_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  const std::int64_t n = std::int64_t(x.size());
  std::printf("\n[gpu %d] %s: kernels vs reference, %lld fp32 values\n", device, prop.name,
              (long long)n);
  std::printf("  %-18s %10s %12s %10s %10s\n", "format", "bit-exact", "rel L2 err", "GB/s",
              "frac copy");
  float *d_x = nullptr, *d_y = nullptr;
  unsigned char* d_q = nullptr;
  AGOQ_CUDA_TRY(cudaMalloc(&d_x, n * 4));
  AGOQ_CUDA_TRY(cudaMalloc(&d_y, n * 4));
  AGOQ_CUDA_TRY(cudaMalloc(&d_q, size_t(n) * 2 + 4096));
  AGOQ_CUDA_TRY(cudaMemcpy(d_x, x.data(), n * 4, cudaMemcpyHostToDevice));
  cudaEvent_t a, b;
  AGOQ_CUDA_TRY(cudaEventCreate(&a));
  AGOQ_CUDA_TRY(cudaEventCreate(&b));
  auto time_ms = [&](auto&& fn) {
    fn();
    AGOQ_CUDA_TRY(cudaEventRecord(a));
    for (int i = 0; i < 10; ++i)
      fn();
    AGOQ_CUDA_TRY(cudaEventRecord(b));
    AGOQ_CUDA_TRY(cudaEventSynchronize(b));
    float ms = 0;
    AGOQ_CUDA_TRY(cudaEventElapsedTime(&ms, a, b));
    return double(ms) / 10;
  };
  const double copy_gbps =
      8.0 * n /
      time_ms([&] { AGOQ_CUDA_TRY(cudaMemcpyAsync(d_y, d_x, n * 4, cudaMemcpyDeviceToDevice)); }) /
      1e6;
  for (const named_spec& s : kSpecs) {
    const size_t cb = agoq::codes_bytes(s.spec, n), sb = agoq::scales_bytes(s.spec, n);
    agoq::quantized_view q{
        d_q,
        d_q + cb,
        s.spec.symmetric ? nullptr : reinterpret_cast<float*>(d_q + cb + sb + 16 - (cb + sb) % 16),
        1,
        n,
        s.spec};
    const double ms = time_ms([&] { AGOQ_TRY(agoq::quantize(d_x, q, 0, cudaStream_t{})); });
    AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), d_y, cudaStream_t{}));
    std::vector<unsigned char> g(cb + sb), h(cb + sb);
    AGOQ_CUDA_TRY(cudaMemcpy(g.data(), d_q, cb + sb, cudaMemcpyDeviceToHost));
    std::vector<float> hz(s.spec.symmetric ? 0 : size_t(agoq::scales_count(s.spec, n)));
    agoq::ref::quantize(x.data(),
                        agoq::quantized_view{h.data(), h.data() + cb,
                                             hz.empty() ? nullptr : hz.data(), 1, n, s.spec});
    const bool exact = std::memcmp(g.data(), h.data(), cb + sb) == 0;
    std::vector<float> y(x.size());
    AGOQ_CUDA_TRY(cudaMemcpy(y.data(), d_y, n * 4, cudaMemcpyDeviceToHost));
    const double gbps = (4.0 * n + double(cb + sb + agoq::zeros_bytes(s.spec, n))) / ms / 1e6;
    std::printf("  %-18s %10s %12.3e %10.0f %10.2f\n", s.name, exact ? "yes" : "NO", rel_l2(x, y),
                gbps, gbps / copy_gbps);
    check(exact, "GPU codes and scales equal the host reference");
  }
  cudaFree(d_x), cudaFree(d_y), cudaFree(d_q);
}

#if AGOQ_HAS_NCCL()
//! The 8-bit all-reduce over every visible GPU (one thread each) next to NCCL's bf16 all-reduce.
void gpu_allreduce(int devices) {
  const std::int64_t count = std::int64_t(1) << 24; // 32 MiB of bf16 per rank
  std::printf("\n[%d GPU(s)] 8-bit all-reduce (INT8 wire, fp32 sums) vs NCCL bf16, %lld bf16 values"
              " per rank\n",
              devices, (long long)count);
  const agoq_examples::all_gpus_result r = agoq_examples::run_all_gpus(devices, count, 10);
  if (!r.error.empty()) {
    std::printf("  %s\n", r.error.c_str());
    check(false, "the all-reduce ran on every GPU");
    return;
  }
  std::printf("  %-22s %10s %12s\n", "", "time (ms)", "rel L2 err");
  std::printf("  %-22s %10.3f %12.3e\n", "NCCL bf16", r.rank0.nccl_ms, r.rank0.nccl_err);
  std::printf("  %-22s %10.3f %12.3e\n", "agoq int8 (fp32 acc)", r.rank0.agoq_ms, r.rank0.agoq_err);
  std::printf("  agoq vs NCCL bf16: %.2fx the speed; every rank bitwise identical: %s\n",
              r.rank0.nccl_ms / r.rank0.agoq_ms, r.identical ? "yes" : "NO");
  if (devices == 1) // nothing crosses a wire: NCCL copies, agoq still quantizes and decodes
    std::printf("  (1 GPU: no communication, so this only shows the codec cost; the 8-bit wire "
                "pays off from 2 GPUs on)\n");
  check(r.identical, "every rank holds the same bits after the GPU all-reduce");
  check(r.rank0.agoq_err < 2e-2, "the GPU all-reduce error stays below 2e-2");
}
#endif

} // namespace

int main(int argc, char** argv) {
  cli::parser p("agoq-demo",
                "Runs what this machine allows: the host reference quantizers, the activation\n"
                "plan and the all-reduce schedules over simulated ranks; with GPUs the kernels\n"
                "against the reference, and with NCCL the 8-bit all-reduce next to NCCL's. Exits\n"
                "non-zero if a check fails.");
  if (const auto rc = p.parse(argc, argv)) return *rc;
  std::printf("agoq demo (version %s)\n", agoq::version_string);
  std::mt19937 gen(2026);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(1) << 22); // 4 Mi values: a 4096 x 1024 activation
  for (float& v : x)
    v = normal(gen);

  host_quantizers(x);
  policy_plan();
  host_allreduce(4, 1 << 20);

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    std::printf("\nno GPU visible: ran the host paths only (kernels need a GPU of CC >= 8.0)\n");
  } else {
    for (int d = 0; d < devices; ++d)
      gpu_quantizers(d, x);
#if AGOQ_HAS_NCCL()
    gpu_allreduce(devices);
#else
    std::printf("\nbuilt without NCCL: the GPU all-reduce is not part of this run\n");
#endif
  }
  std::printf("\n%s (%d failed checks)\n", failures ? "FAILED" : "all checks passed", failures);
  return failures ? 1 : 0;
}

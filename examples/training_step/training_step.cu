// SPDX-License-Identifier: Apache-2.0
//! @file examples/training_step/training_step.cu
//! agoq-training_step: one simulated LLaMA layer step, run twice on the same data:
//! - agoq: in forward, the activations are kept as the paper's LAAQ plan says (norm inputs,
//!   out-projection input and SwiGLU input stored at B bits; the GEMM inputs that follow from
//!   them not kept); in backward they are dequantized and the GEMM inputs recomputed (RMSNorm,
//!   SwiGLU). Weight gradients of the four GEMMs accumulate over the micro-batches in an INT8
//!   block-128 buffer (agoq::accumulate_requantize), then (several GPUs) go through agoq's 8-bit
//!   all-reduce.
//! - BF16 baseline: every activation kept in bf16, gradients accumulated in fp32 (Megatron's
//!   main_grad), all-reduced by NCCL in fp32.
//! It prints the activation and gradient memory of both, and the error of the gradients and of
//! each reconstructed GEMM input against the baseline. The GEMMs are a naive kernel, the attention
//! core (kept in bf16 by the plan) is not simulated, and the data is synthetic.
//!
//!   agoq-training_step [--tokens 1024] [--hidden-size 1024] [--ffn-hidden-size 2816]
//!                      [--num-micro-batches 4] [--bits 4]
//!
//! Every visible GPU runs the step on its own data (one thread per GPU); the gradients are then
//! all-reduced. Without a GPU it prints the memory plan, says so and exits 0.
#include <agoq/agoq.cuh>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cli.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#if AGOQ_HAS_NCCL()
#include <nccl.h>
#endif

namespace {

using bf16 = __nv_bfloat16;
using agoq::layer_kind;

struct shape {
  int tokens = 1024, hidden = 1024, ffn = 2816, micro_batches = 4, bits = 4;
};

// ---- simulation kernels (stand-ins for the trainer's own) --------------------------------------

__device__ float hash_normal(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = i * 0x9E3779B97F4A7C15ull + (seed + 1) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  float s = 0; // sum of four uniforms: close enough to normal for a simulation
  for (int k = 0; k < 4; ++k) s += float((z >> (16 * k)) & 0xFFFF) / 65536.0f - 0.5f;
  return s * 1.7320508f;
}

__global__ void fill_normal(bf16* y, std::int64_t n, std::uint64_t seed) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(hash_normal(seed, std::uint64_t(i)));
}

__global__ void add(const bf16* a, const bf16* b, bf16* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

// RMSNorm without a weight, one 256-thread block per row.
__global__ void rmsnorm(const bf16* x, bf16* y, int cols) {
  __shared__ float red[256];
  const bf16* xr = x + std::int64_t(blockIdx.x) * cols;
  float ss = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += __bfloat162float(xr[c]) * __bfloat162float(xr[c]);
  red[threadIdx.x] = ss;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  const float inv = rsqrtf(red[0] / cols + 1e-6f);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    y[std::int64_t(blockIdx.x) * cols + c] = __float2bfloat16(__bfloat162float(xr[c]) * inv);
}

// SwiGLU: x is tokens x 2f (gate | up), y = silu(gate) * up is tokens x f.
__global__ void swiglu(const bf16* x, bf16* y, std::int64_t tokens, int f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < tokens * f;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t t = i / f, j = i % f;
    const float g = __bfloat162float(x[t * 2 * f + j]), u = __bfloat162float(x[t * 2 * f + f + j]);
    y[i] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  }
}

// Weight gradient of y = x W: dW (in x out) = x^T dy / tokens, fp32. 16x16 tiles (dims % 16 == 0).
__global__ void weight_grad(const bf16* x, const bf16* dy, int tokens, int in, int out, float* dw) {
  __shared__ float xs[16][17], ys[16][17];
  const int ty = threadIdx.y, tx = threadIdx.x, i0 = blockIdx.y * 16, j0 = blockIdx.x * 16;
  float sum = 0;
  for (int t0 = 0; t0 < tokens; t0 += 16) {
    xs[ty][tx] = __bfloat162float(x[std::int64_t(t0 + ty) * in + i0 + tx]);
    ys[ty][tx] = __bfloat162float(dy[std::int64_t(t0 + ty) * out + j0 + tx]);
    __syncthreads();
    for (int k = 0; k < 16; ++k) sum += xs[k][ty] * ys[k][tx];
    __syncthreads();
  }
  dw[std::int64_t(i0 + ty) * out + j0 + tx] = sum / float(tokens);
}

__global__ void accumulate(float* acc, const float* g, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    acc[i] += g[i];
}

constexpr int grid_1d = 1024, block_1d = 256;

// ---- helpers ------------------------------------------------------------------------------------

// A device allocation that frees itself.
struct device_mem {
  void* p = nullptr;
  device_mem() = default;
  explicit device_mem(std::size_t bytes) { AGOQ_CUDA_TRY(cudaMalloc(&p, bytes ? bytes : 1)); }
  device_mem(const device_mem&) = delete;
  device_mem& operator=(device_mem&& o) noexcept { std::swap(p, o.p); return *this; }
  ~device_mem() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

template <class T> std::vector<T> download(const T* d, std::int64_t n) {
  std::vector<T> h(static_cast<std::size_t>(n));
  AGOQ_CUDA_TRY(cudaMemcpy(h.data(), d, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

double to_double(float v) { return v; }
double to_double(bf16 v) { return __bfloat162float(v); }

template <class T> double rel_l2(const std::vector<T>& y, const std::vector<T>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double d = to_double(y[i]) - to_double(ref[i]);
    num += d * d;
    den += to_double(ref[i]) * to_double(ref[i]);
  }
  return std::sqrt(num / den);
}

// The activations this example simulates: the LLaMA layer's tensors outside the attention core.
struct activation {
  layer_kind kind;
  int cols;         // per token
  device_mem truth; // the forward value (bf16); what the baseline keeps
  // agoq's copy, per the plan: quantized (store), the bf16 value (keep) or nothing (recompute)
  device_mem codes, scales, zeros;
  agoq::quantized_view q;
  device_mem rebuilt; // backward's reconstruction
};

// A layer's GEMMs: input kind, output width, and where its weight gradient sits in the flat space.
struct gemm {
  layer_kind input;
  int in, out;
  std::int64_t offset;
  device_mem dy; // synthetic upstream gradient, tokens x out
};

struct rank_output {
  std::int64_t stash_bytes = 0, baseline_stash_bytes = 0, grad_bytes = 0, baseline_grad_bytes = 0;
  std::vector<std::string> rows; // per-activation lines (rank 0)
  double local_grad_err = 0;
  std::vector<float> grad, baseline_grad; // after the all-reduce (rank 0)
};

// ---- the step on one GPU ------------------------------------------------------------------------

void run_rank(int rank, const shape& s, const agoq::save_plan& plan, rank_output& res,
              void* nccl_comm, int world) {
  AGOQ_CUDA_TRY(cudaSetDevice(rank));
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int T = s.tokens, h = s.hidden, f = s.ffn;

  std::vector<activation> acts(7);
  const layer_kind kinds[7] = {layer_kind::attn_norm_input, layer_kind::qkv_input,
                               layer_kind::out_proj_input,  layer_kind::ffn_norm_input,
                               layer_kind::ffn_up_input,    layer_kind::swiglu_input,
                               layer_kind::ffn_down_input};
  const int widths[7] = {h, h, h, h, h, 2 * f, f};
  std::map<layer_kind, activation*> by_kind;
  for (int i = 0; i < 7; ++i) {
    activation& a = acts[std::size_t(i)];
    a.kind = kinds[i];
    a.cols = widths[i];
    const std::size_t bf16_bytes = std::size_t(T) * a.cols * sizeof(bf16);
    a.truth = device_mem(bf16_bytes);
    a.rebuilt = device_mem(bf16_bytes);
    const agoq::save_entry e = plan[a.kind];
    if (e.action == agoq::save_action::store) { // caller-owned storage, sized by the spec
      a.codes = device_mem(agoq::codes_bytes(e.spec, T, a.cols));
      a.scales = device_mem(agoq::scales_bytes(e.spec, T, a.cols));
      a.zeros = device_mem(agoq::zeros_bytes(e.spec, T, a.cols));
      a.q = agoq::quantized_view{a.codes.p, a.scales.p, e.spec.symmetric ? nullptr : a.zeros.as<float>(),
                                 T, a.cols, e.spec};
      res.stash_bytes += std::int64_t(agoq::codes_bytes(e.spec, T, a.cols) +
                                      agoq::scales_bytes(e.spec, T, a.cols) +
                                      agoq::zeros_bytes(e.spec, T, a.cols));
    } else if (e.action == agoq::save_action::keep) {
      res.stash_bytes += std::int64_t(bf16_bytes);
    }
    res.baseline_stash_bytes += std::int64_t(bf16_bytes);
    by_kind[a.kind] = &a;
  }
  auto truth = [&](layer_kind k) { return by_kind.at(k)->truth.as<bf16>(); };

  std::vector<gemm> gemms(4);
  const int gemm_def[4][3] = {{int(layer_kind::qkv_input), h, 3 * h},
                              {int(layer_kind::out_proj_input), h, h},
                              {int(layer_kind::ffn_up_input), h, 2 * f},
                              {int(layer_kind::ffn_down_input), f, h}};
  std::int64_t params = 0;
  for (int i = 0; i < 4; ++i) {
    gemms[std::size_t(i)].input = layer_kind(gemm_def[i][0]);
    gemms[std::size_t(i)].in = gemm_def[i][1];
    gemms[std::size_t(i)].out = gemm_def[i][2];
    gemms[std::size_t(i)].offset = params;
    gemms[std::size_t(i)].dy = device_mem(std::size_t(T) * gemm_def[i][2] * sizeof(bf16));
    params += std::int64_t(gemm_def[i][1]) * gemm_def[i][2];
  }

  // The 8-bit gradient buffer: INT8 codes + one fp32 scale per 128 gradients. All-zero memory is
  // a valid quantized zero (scale 0, codes 0), so a memset clears it.
  const agoq::quant_spec grad_spec{agoq::format::int8, 128};
  device_mem g_codes(agoq::codes_bytes(grad_spec, params)), g_scales(agoq::scales_bytes(grad_spec, params));
  const agoq::quantized_view grad_buf{g_codes.p, g_scales.p, nullptr, 1, params, grad_spec};
  AGOQ_CUDA_TRY(cudaMemsetAsync(g_codes.p, 0, agoq::codes_bytes(grad_spec, params), stream));
  AGOQ_CUDA_TRY(cudaMemsetAsync(g_scales.p, 0, agoq::scales_bytes(grad_spec, params), stream));
  res.grad_bytes = std::int64_t(agoq::codes_bytes(grad_spec, params) + agoq::scales_bytes(grad_spec, params));
  device_mem acc(std::size_t(params) * 4), g(std::size_t(params) * 4), g_base(std::size_t(params) * 4);
  AGOQ_CUDA_TRY(cudaMemsetAsync(acc.p, 0, std::size_t(params) * 4, stream));
  res.baseline_grad_bytes = params * 4;

  // Backward's view of activation k under the plan: kept -> the bf16 value; stored -> dequantize;
  // recomputed -> rebuild the source, then rerun the forward op (RMSNorm or SwiGLU).
  auto reconstruct = [&](auto&& self, layer_kind k) -> const bf16* {
    activation& a = *by_kind.at(k);
    const agoq::save_entry e = plan[k];
    if (e.action == agoq::save_action::keep) return a.truth.as<bf16>();
    if (e.action == agoq::save_action::store) {
      AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(a.q), a.rebuilt.as<bf16>(),
                                agoq::leading_dim{a.cols}, stream));
      return a.rebuilt.as<bf16>();
    }
    const bf16* src = self(self, e.from);
    if (k == layer_kind::qkv_input || k == layer_kind::ffn_up_input)
      rmsnorm<<<T, 256, 0, stream>>>(src, a.rebuilt.as<bf16>(), a.cols);
    else if (k == layer_kind::ffn_down_input)
      swiglu<<<grid_1d, block_1d, 0, stream>>>(src, a.rebuilt.as<bf16>(), T, f);
    else
      throw agoq::error(std::string("this example cannot recompute ") + agoq::to_string(k));
    AGOQ_CUDA_TRY(cudaGetLastError());
    return a.rebuilt.as<bf16>();
  };

  for (int mb = 0; mb < s.micro_batches; ++mb) {
    const std::uint64_t seed = (std::uint64_t(rank) << 32) + std::uint64_t(mb) * 16;
    // forward (simulated): produce the layer's activations
    fill_normal<<<grid_1d, block_1d, 0, stream>>>(truth(layer_kind::attn_norm_input), std::int64_t(T) * h, seed);
    rmsnorm<<<T, 256, 0, stream>>>(truth(layer_kind::attn_norm_input), truth(layer_kind::qkv_input), h);
    fill_normal<<<grid_1d, block_1d, 0, stream>>>(truth(layer_kind::out_proj_input), std::int64_t(T) * h, seed + 1);
    add<<<grid_1d, block_1d, 0, stream>>>(truth(layer_kind::attn_norm_input), truth(layer_kind::out_proj_input),
                                          truth(layer_kind::ffn_norm_input), std::int64_t(T) * h);
    rmsnorm<<<T, 256, 0, stream>>>(truth(layer_kind::ffn_norm_input), truth(layer_kind::ffn_up_input), h);
    fill_normal<<<grid_1d, block_1d, 0, stream>>>(truth(layer_kind::swiglu_input), std::int64_t(T) * 2 * f, seed + 2);
    swiglu<<<grid_1d, block_1d, 0, stream>>>(truth(layer_kind::swiglu_input), truth(layer_kind::ffn_down_input), T, f);
    AGOQ_CUDA_TRY(cudaGetLastError());
    // ... and store what the plan stores (rounding per the entry's spec; the seed keys stochastic)
    for (activation& a : acts)
      if (plan[a.kind].action == agoq::save_action::store)
        AGOQ_TRY(agoq::quantize(a.truth.as<bf16>(), agoq::leading_dim{a.cols}, a.q, seed, stream));

    // backward (simulated): upstream gradients, then each GEMM's weight gradient, twice
    for (std::size_t i = 0; i < gemms.size(); ++i)
      fill_normal<<<grid_1d, block_1d, 0, stream>>>(gemms[i].dy.as<bf16>(), std::int64_t(T) * gemms[i].out,
                                                    seed + 3 + i);
    for (gemm& w : gemms) {
      const dim3 grid(unsigned(w.out / 16), unsigned(w.in / 16)), block(16, 16);
      const bf16* x = reconstruct(reconstruct, w.input);
      weight_grad<<<grid, block, 0, stream>>>(x, w.dy.as<bf16>(), T, w.in, w.out, g.as<float>() + w.offset);
      weight_grad<<<grid, block, 0, stream>>>(truth(w.input), w.dy.as<bf16>(), T, w.in, w.out,
                                              g_base.as<float>() + w.offset);
      AGOQ_CUDA_TRY(cudaGetLastError());
      if (rank == 0 && mb == 0) { // how close backward's input is to forward's
        AGOQ_CUDA_TRY(cudaStreamSynchronize(stream)); // `stream` does not sync with cudaMemcpy
        const std::int64_t n = std::int64_t(T) * w.in;
        const double err = rel_l2(download(x, n), download(truth(w.input), n));
        char line[160];
        std::snprintf(line, sizeof line, "  %-16s %-28s %10.3e", agoq::to_string(w.input),
                      [&] { std::ostringstream o; o << plan[w.input]; return o.str(); }().c_str(), err);
        res.rows.push_back(line);
      }
    }
    // gradient accumulation: agoq requantizes the INT8 buffer, the baseline adds in fp32
    AGOQ_TRY(agoq::accumulate_requantize(grad_buf, g.as<float>(), /*seed=*/std::uint64_t(mb), stream));
    accumulate<<<grid_1d, block_1d, 0, stream>>>(acc.as<float>(), g_base.as<float>(), params);
    AGOQ_CUDA_TRY(cudaGetLastError());
  }

  // The optimizer's view: the INT8 buffer dequantized to fp32 (reusing g).
  AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(grad_buf), g.as<float>(), stream));
  AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
  if (rank == 0) res.local_grad_err = rel_l2(download(g.as<float>(), params), download(acc.as<float>(), params));

#if AGOQ_HAS_NCCL()
  if (world > 1) { // data parallel: agoq's INT8-wire all-reduce vs NCCL fp32
    const ncclComm_t comm = static_cast<ncclComm_t>(nccl_comm);
    const agoq::allreduce_config cfg; // INT8 wire, block 128, sum
    const std::size_t ws_bytes = agoq::allreduce_workspace_size<float>(params, cfg, agoq::comm_ref(comm));
    device_mem ws(ws_bytes);
    AGOQ_TRY(agoq::allreduce(g.as<float>(), g.as<float>(), params, cfg, ws.p, ws_bytes, comm, stream));
    AGOQ_NCCL_TRY(ncclAllReduce(acc.p, acc.p, std::size_t(params), ncclFloat32, ncclSum, comm, stream));
    AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
  }
#else
  (void)nccl_comm, (void)world;
#endif
  if (rank == 0) {
    res.grad = download(g.as<float>(), params);
    res.baseline_grad = download(acc.as<float>(), params);
  }
  cudaStreamDestroy(stream);
}

double mib(std::int64_t b) { return double(b) / (1 << 20); }

} // namespace

int main(int argc, char** argv) {
  shape s;
  cli::parser p("agoq-training_step",
                "One simulated LLaMA layer: activations stored per the paper's plan and rebuilt in\n"
                "backward, weight gradients accumulated over micro-batches in an INT8 buffer and\n"
                "all-reduced over every GPU; memory saved and error against a BF16 run. Without a\n"
                "GPU it prints the plan only.");
  p.option("--tokens", "N", s.tokens, "tokens per micro-batch (a multiple of 16)", 16, 1 << 20)
      .option("--hidden-size", "N", s.hidden, "hidden size (a multiple of 128)", 128, 1 << 16)
      .option("--ffn-hidden-size", "N", s.ffn, "MLP intermediate size (a multiple of 128)", 128,
              1 << 18)
      .option("--num-micro-batches", "N", s.micro_batches, "micro-batches accumulated", 1, 1 << 12)
      .option("--bits", "B", s.bits, "the pipeline stage's width for the stored activations", 2, 8);
  if (const auto rc = p.parse(argc, argv)) return *rc;
  if (s.tokens % 16) return p.fail("--tokens must be a multiple of 16");
  if (s.hidden % 128) return p.fail("--hidden-size must be a multiple of 128");
  if (s.ffn % 128) return p.fail("--ffn-hidden-size must be a multiple of 128");

  try {
    // The paper's LAAQ plan at this stage's width (DBCA-PP would pick it per pipeline stage).
    const agoq::save_plan plan = agoq::at_stage_bits(agoq::paper_save_plan(), s.bits);
    std::printf("agoq-training_step: one LLaMA layer, %d tokens, hidden %d, ffn %d, %d micro-batches, "
                "%d-bit stage\n", s.tokens, s.hidden, s.ffn, s.micro_batches, s.bits);

    // What the planner says the whole layer (attention core included) keeps, per micro-batch.
    agoq::model_shape m;
    m.layers = 1, m.hidden = s.hidden, m.ffn = s.ffn, m.heads = s.hidden / 128, m.seq = s.tokens;
    const agoq::layer_memory lm = agoq::layer_activation_memory(m, agoq::paper_save_plan(), s.bits);
    std::printf("planner, whole layer: %.2f MiB of activations per micro-batch vs %.2f MiB BF16 "
                "(%.1f%% saved)\n", mib(lm.bytes), mib(lm.baseline_bytes),
                100.0 * (1.0 - double(lm.bytes) / double(lm.baseline_bytes)));

    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      (void)cudaGetLastError();
      std::printf("no GPU visible: the step itself needs a GPU; printed the plan only\n");
      return 0;
    }
    int world = 1;
    std::vector<void*> comms(1, nullptr);
#if AGOQ_HAS_NCCL()
    world = devices;
    std::vector<ncclComm_t> nccl(static_cast<std::size_t>(world), nullptr);
    if (world > 1) AGOQ_NCCL_TRY(ncclCommInitAll(nccl.data(), world, nullptr));
    comms.assign(nccl.begin(), nccl.end());
#endif
    std::vector<rank_output> out(static_cast<std::size_t>(world));
    std::vector<std::string> errors(static_cast<std::size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r)
      threads.emplace_back([&, r] {
        try {
          run_rank(r, s, plan, out[std::size_t(r)], comms[std::size_t(r)], world);
        } catch (const std::exception& e) {
          errors[std::size_t(r)] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (int r = 0; r < world; ++r)
      if (!errors[std::size_t(r)].empty()) {
        std::fprintf(stderr, "rank %d: %s\n", r, errors[std::size_t(r)].c_str());
        return 1;
      }
#if AGOQ_HAS_NCCL()
    if (world > 1)
      for (ncclComm_t c : nccl) ncclCommDestroy(c);
#endif

    const rank_output& o = out[0];
    std::printf("\nsimulated activations (the 7 tensors outside the attention core), per micro-batch:\n"
                "  agoq %.2f MiB vs BF16 %.2f MiB (%.1f%% saved)\n", mib(o.stash_bytes),
                mib(o.baseline_stash_bytes), 100.0 * (1.0 - double(o.stash_bytes) / double(o.baseline_stash_bytes)));
    std::printf("gradient accumulation buffer: INT8/128 %.2f MiB vs fp32 %.2f MiB (%.1f%% saved)\n\n",
                mib(o.grad_bytes), mib(o.baseline_grad_bytes),
                100.0 * (1.0 - double(o.grad_bytes) / double(o.baseline_grad_bytes)));
    std::printf("  %-16s %-28s %10s\n", "GEMM input", "plan entry", "rel L2 err");
    for (const std::string& line : o.rows) std::printf("%s\n", line.c_str());
    std::printf("\nweight gradients vs the BF16 run, rel L2: %.3e after %d micro-batches (GPU 0)",
                o.local_grad_err, s.micro_batches);
    if (world > 1)
      std::printf(", %.3e after the all-reduce over %d GPUs", rel_l2(o.grad, o.baseline_grad), world);
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agoq-training_step: %s\n", e.what());
    return 1;
  }
  return 0;
}

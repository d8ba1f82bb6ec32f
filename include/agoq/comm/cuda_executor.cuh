// SPDX-License-Identifier: Apache-2.0
//! @file comm/cuda_executor.cuh
//! `cuda_executor`: the Executor of comm/transport.hpp as kernels on one CUDA stream, bit for bit
//! the host executor (comm/host_transport.hpp, agoq::ref). No NCCL needed.
//!
//! | Executor op     | kernel                                                               |
//! |-----------------|----------------------------------------------------------------------|
//! | quantize        | agoq::quantize, 1-D view of the message (codes, then scales)         |
//! | decode          | agoq::dequantize<float> into the accumulator                         |
//! | decode_add      | agoq::dequantize_accumulate, alpha = 1 (fmaf(q, 1, a) == a + q)      |
//! | dequantize      | agoq::dequantize<T>                                                  |
//! | load/add        | elementwise: acc = float(x) / acc = __fadd_rn(acc, float(x))         |
//! | divide          | elementwise: acc = __fdiv_rn(acc, divisor)                           |
//! | store           | elementwise: y = T(acc), round to nearest even                       |
//! | reduce_quantize | one fused kernel (comm/reduce_kernels.cuh): decode w messages, fp32  |
//! |                 | sum left to right, divide, requantize; no fp32 buffer                |
//! | reduce_store    | the same, converting the sum to T                                    |
//! | quantize_many   | one launch per comm_max_jobs jobs (comm/reduce_kernels.cuh)          |
//! | dequantize_many | one launch per comm_max_jobs jobs (comm/reduce_kernels.cuh)          |
//!
//! The schedules' pipelined two-shot and one-shot use only the last four (short-lived CTAs that
//! leave room for NCCL kernels on the communication stream; comm/reduce_kernels.cuh says why);
//! ring, tree and an unpipelined one-shot use the others.
//!
//! Stochastic rounding: a message of n elements is quantized as a 1 x n tensor starting at the
//! message start, so element i draws philox(seed, i) as the host executor does.
//! Everything is enqueued on the stream on the current device (which must be the stream's
//! device); nothing allocates or synchronizes, so it may be captured in a CUDA graph. Errors
//! throw (agoq::invalid_argument, agoq::cuda_error), as the Executor contract asks.
#pragma once

#include "agoq/comm/partition.hpp"
#include "agoq/comm/reduce_kernels.cuh"
#include "agoq/comm/transport.hpp"
#include "agoq/error.hpp"
#include "agoq/format/element.hpp"
#include "agoq/quant/quantize.cuh"
#include "agoq/quant/view.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace agoq {
namespace detail {

template <class T>
__global__ static void __launch_bounds__(comm_elementwise_threads)
    comm_load_kernel(const T* __restrict__ x, std::int64_t n, float* __restrict__ acc) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc[i] = to_float(x[i]);
}

template <class T>
__global__ static void __launch_bounds__(comm_elementwise_threads)
    comm_add_kernel(const T* __restrict__ x, std::int64_t n, float* __restrict__ acc) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc[i] = __fadd_rn(acc[i], to_float(x[i]));
}

__global__ static void __launch_bounds__(comm_elementwise_threads)
    comm_divide_kernel(float* __restrict__ acc, std::int64_t n, float divisor) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc[i] = __fdiv_rn(acc[i], divisor);
}

template <class T>
__global__ static void __launch_bounds__(comm_elementwise_threads)
    comm_store_kernel(const float* __restrict__ acc, std::int64_t n, T* __restrict__ y) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = to_output<T>(acc[i]);
}

} // namespace detail

//! The Executor of comm/transport.hpp on one CUDA stream (see the table at the top of this file).
//! Cheap to construct (a few device-attribute queries); holds no memory. Operations throw
//! agoq::invalid_argument (a message the launchers refuse, e.g. misaligned codes) or
//! agoq::cuda_error (a failed launch).
class cuda_executor {
public:
  //! An executor enqueuing on `stream`, sized for the current device. Throws agoq::cuda_error.
  explicit cuda_executor(cudaStream_t stream) : m_stream(stream) {
    detail::device_info d;
    AGOQ_TRY(detail::current_device_info(d));
    m_sms = d.sms;
    m_codec = detail::comm_codec_tuning_for(d.cc);
  }

  cudaStream_t stream() const noexcept { return m_stream; }

  //! msg = codes then scales of x[0, n) (comm/partition.hpp), Philox(seed, i) for element i.
  template <class T>
  void quantize(const T* x, std::int64_t n, void* msg, const quant_spec& s, std::uint64_t seed) {
    AGOQ_TRY(agoq::quantize(x, message_view(msg, n, s), seed, m_stream));
  }
  //! acc = decoded msg.
  void decode(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    AGOQ_TRY(agoq::dequantize(message_view(msg, n, s), acc, m_stream));
  }
  //! acc = acc + decoded msg (one IEEE fp32 addition per element).
  void decode_add(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    AGOQ_TRY(agoq::dequantize_accumulate(message_view(msg, n, s), acc, 1.0f, m_stream));
  }
  //! acc = float(x).
  template <class T> void load(const T* x, std::int64_t n, float* acc) {
    if (n <= 0) return;
    detail::comm_load_kernel<T><<<grid(n), threads, 0, m_stream>>>(x, n, acc);
    launched();
  }
  //! acc = acc + float(x).
  template <class T> void add(const T* x, std::int64_t n, float* acc) {
    if (n <= 0) return;
    detail::comm_add_kernel<T><<<grid(n), threads, 0, m_stream>>>(x, n, acc);
    launched();
  }
  //! acc = acc / divisor.
  void divide(float* acc, std::int64_t n, float divisor) {
    if (n <= 0) return;
    detail::comm_divide_kernel<<<grid(n), threads, 0, m_stream>>>(acc, n, divisor);
    launched();
  }
  //! y = T(acc), round to nearest even.
  template <class T> void store(const float* acc, std::int64_t n, T* y) {
    if (n <= 0) return;
    detail::comm_store_kernel<T><<<grid(n), threads, 0, m_stream>>>(acc, n, y);
    launched();
  }
  //! y = T(decoded msg), round to nearest even.
  template <class T> void dequantize(const void* msg, std::int64_t n, const quant_spec& s, T* y) {
    AGOQ_TRY(agoq::dequantize(message_view(msg, n, s), y, m_stream));
  }
  //! out = Q(D(m_0) + ... + D(m_{w-1}) [/ divisor]), m_j = msgs + j * stride: one kernel.
  void reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
                       const quant_spec& s, float divisor, quantized_view out, std::uint64_t seed) {
    AGOQ_TRY(
        detail::comm_reduce_quantize(msgs, stride, w, n, s, divisor, out, seed, m_codec, m_stream));
  }
  //! y = T(D(m_0) + ... + D(m_{w-1}) [/ divisor]), RNE: one kernel.
  template <class T>
  void reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                    const quant_spec& s, float divisor, T* y) {
    AGOQ_TRY(detail::comm_reduce_store(msgs, stride, w, n, s, divisor, y, m_codec, m_stream));
  }
  //! quantize(job) for every job, comm_max_jobs per launch.
  template <class T>
  void quantize_many(const quantize_job<T>* jobs, int count, const quant_spec& s) {
    AGOQ_TRY(detail::comm_quantize_many(jobs, count, s, m_codec, m_stream));
  }
  //! dequantize(job) for every job, comm_max_jobs per launch.
  template <class T>
  void dequantize_many(const dequantize_job<T>* jobs, int count, const quant_spec& s) {
    AGOQ_TRY(detail::comm_dequantize_many(jobs, count, s, m_codec, m_stream));
  }

private:
  static constexpr int threads = detail::comm_elementwise_threads;
  unsigned grid(std::int64_t n) const noexcept {
    const std::int64_t need = (n + threads - 1) / threads;
    const std::int64_t cap = std::int64_t(m_sms) * 8;
    return unsigned(need < cap ? need : cap);
  }
  static void launched() { AGOQ_CUDA_TRY(cudaGetLastError()); }

  cudaStream_t m_stream;
  int m_sms = 1;
  detail::comm_codec_tuning m_codec{}; //!< launch shape of the fused kernels, queried once
};

static_assert(is_executor_v<cuda_executor, float>, "cuda_executor must model Executor");
static_assert(is_executor_v<cuda_executor, __nv_bfloat16>, "cuda_executor must model Executor");
static_assert(is_executor_v<cuda_executor, __half>, "cuda_executor must model Executor");

} // namespace agoq

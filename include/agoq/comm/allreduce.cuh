// SPDX-License-Identifier: Apache-2.0
//! @file comm/allreduce.cuh
//! The GPU all-reduce: agoq's quantized-wire, fp32-accumulated all-reduce over an NCCL
//! communicator, in NCCL's shape (send, recv, count, config, workspace, communicator, stream).
//! It runs the schedules of comm/schedule.hpp with nccl_transport (comm/nccl.hpp) and
//! cuda_executor (comm/cuda_executor.cuh): one-shot on 2 ranks and for small messages, two-shot
//! for large messages on more ranks, both pipelined over chunks with one fused kernel per step
//! and chunk, their codec kernels overlapping the NCCL transfers of neighbouring chunks.
//!
//! @code
//!   agoq::allreduce_config cfg;                        // INT8 wire, block 128, sum, auto
//!   agoq::comm_ref comm(nccl_comm);
//!   const std::size_t wsb = agoq::allreduce_workspace_size<__nv_bfloat16>(n, cfg, comm);
//!   cudaMalloc(&ws, wsb);                                // once; reuse for every call
//!   AGOQ_TRY(agoq::allreduce(d_grad, d_grad, n, cfg, ws, wsb, comm, stream)); // in place
//! @endcode
//!
//! Needs <nccl.h>; the contents compile only when AGOQ_HAS_NCCL() (agoq/config.hpp).
#pragma once

#include "agoq/comm/config.hpp"
#include "agoq/comm/cuda_executor.cuh"
#include "agoq/comm/nccl.hpp"
#include "agoq/comm/schedule.hpp"
#include "agoq/comm/workspace.hpp"
#include "agoq/config.hpp"
#include "agoq/error.hpp"
#include "agoq/quant/kernel_set.hpp"

#if AGOQ_HAS_NCCL()

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace agoq {
namespace detail {

//! Makes `device` current for its lifetime and restores the previous device (no-op when equal).
class scoped_device {
public:
  scoped_device() = default;
  scoped_device(const scoped_device&) = delete;
  scoped_device& operator=(const scoped_device&) = delete;
  status enter(int device) {
    int cur = -1;
    AGOQ_CUDA_RETURN(cudaGetDevice(&cur));
    if (cur == device) return status::success;
    AGOQ_CUDA_RETURN(cudaSetDevice(device));
    m_prev = cur;
    return status::success;
  }
  ~scoped_device() {
    if (m_prev >= 0) (void)cudaSetDevice(m_prev);
  }

private:
  int m_prev = -1;
};

inline status refuse(const char* function, const std::string& rule) {
  return refuse(function, rule.c_str());
}

//! Records an NCCL failure's message (for last_error_message()) and returns status::nccl_error.
inline status nccl_failed(ncclResult_t r, const char* what) {
  last_message() = nccl_message(r, what);
  return status::nccl_error;
}

} // namespace detail

inline namespace v0_1 {

//! Workspace bytes every rank must pass to agoq::allreduce for `count` elements of T under `cfg`
//! on the world of `comm` (allreduce_workspace_size of comm/workspace.hpp with comm.size()).
//! Throws agoq::invalid_argument (invalid cfg, count < 0, count too large) or agoq::nccl_error.
template <class T>
inline std::size_t allreduce_workspace_size(std::int64_t count, const allreduce_config& cfg,
                                            comm_ref comm) {
  if (!comm) throw invalid_argument("agoq::allreduce_workspace_size: comm must not be null");
  return allreduce_workspace_size(count, element_type_of<T>(), cfg, comm.size());
}

//! All-reduce of `count` elements of T (float, __half, __nv_bfloat16) over the ranks of `comm`,
//! with an 8-bit (cfg.wire) block-scaled wire format and fp32 accumulation; `recv` receives the
//! sum (or average, cfg.op) on every rank, bitwise identical on all ranks. The algorithm is
//! cfg.algo (auto: select_algorithm); orders and roundings are in comm/schedule.hpp. The results
//! are bit for bit those of the same schedule over the host transport (agoq::ref).
//!
//! @param send       device pointer to this rank's `count` inputs
//! @param recv       device pointer to `count` outputs; == send for in place, else disjoint
//! @param count      elements, >= 0, the same on every rank (0: nothing happens)
//! @param cfg        wire format, block, rounding, op, algorithm, seed, chunk; equal on all ranks
//! @param workspace  device memory of at least allreduce_workspace_size<T>(count, cfg, comm)
//!                   bytes, aligned to workspace_alignment (16); owned by the caller, not kept
//! @param comm       a blocking NCCL communicator whose device is `stream`'s device
//! @param stream     every kernel and NCCL operation is enqueued here, in order
//!
//! Stream semantics: returns once everything is enqueued; nothing allocates device memory,
//! synchronizes or blocks the host, so the call may be captured in a CUDA graph. Everything is
//! ordered after the work enqueued on `stream` before the call, and work enqueued on `stream`
//! after it is ordered after all of it. Inside, a pipelined two-shot or one-shot (more than one
//! chunk) runs
//! its transfers on a communication stream that nccl_transport creates once per communicator
//! and caches (comm/nccl.hpp; release_comm_streams() frees it), forked from and joined back to
//! `stream` with CUDA events, so that codec kernels overlap NCCL transfers; the first such call
//! on a communicator creates that stream and its events (in relaxed capture mode, so also inside
//! a capture). The communicator's device is made current during the call and the caller's
//! current device restored. Must not be called
//! inside an open ncclGroupStart (the schedules interleave kernels with grouped transfers).
//! Every rank of `comm` must call it with the same count and cfg, in the same order as its other
//! collectives on `comm`.
//!
//! Errors (nothing is enqueued when the arguments are refused; afterwards, whatever was already
//! enqueued stays enqueued):
//! - status::invalid_argument: last_error_message() reads "agoq::allreduce: <argument> <rule>",
//!   e.g. an invalid cfg ("config.block must be 32, 64, 128 or 256"), count < 0, count x world
//!   above max_count_times_world ("count is too large: ..."), a null comm, a
//!   null send/recv when count > 0, overlapping send/recv, a null or misaligned workspace, or
//!   workspace_bytes below allreduce_workspace_size (the message gives the size needed);
//! - status::nccl_error: an NCCL call failed; last_error_message() has ncclGetErrorString;
//! - status::cuda_error: a CUDA call or kernel launch failed.
template <class T>
[[nodiscard]] status allreduce(const T* send, T* recv, std::int64_t count,
                               const allreduce_config& cfg, void* workspace,
                               std::size_t workspace_bytes, comm_ref comm, cudaStream_t stream) {
  static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
  const char* fn = "agoq::allreduce";
  if (std::string rule = detail::allreduce_config_rule(cfg, count); !rule.empty())
    return detail::refuse(fn, rule);
  if (!comm) return detail::refuse(fn, "comm must not be null");
  if (count == 0) return status::success;
  // the wire format's kernels must be in this build's kernel set (refused before any transfer)
  if (std::string why = detail::kernel_set_refusal(cfg.spec()); !why.empty())
    return detail::refuse_unsupported(fn, why.c_str());
  int world = 0, device = -1;
  if (ncclResult_t r = ncclCommCount(comm.get(), &world); r != ncclSuccess)
    return detail::nccl_failed(r, "agoq::allreduce: ncclCommCount");
  if (ncclResult_t r = ncclCommCuDevice(comm.get(), &device); r != ncclSuccess)
    return detail::nccl_failed(r, "agoq::allreduce: ncclCommCuDevice");
  if (std::string rule =
          detail::allreduce_rule(send, recv, count, cfg, workspace, workspace_bytes, world);
      !rule.empty())
    return detail::refuse(fn, rule);
  detail::scoped_device guard;
  if (status s = guard.enter(device); s != status::success) return s;
  return detail::status_of([&] {
    nccl_transport tr(comm, stream);
    cuda_executor ex(stream);
    detail::run_allreduce(send, recv, count, cfg, workspace, tr, ex);
  });
}

//! agoq::allreduce taking the raw ncclComm_t (same as passing comm_ref(comm)).
template <class T>
[[nodiscard]] status allreduce(const T* send, T* recv, std::int64_t count,
                               const allreduce_config& cfg, void* workspace,
                               std::size_t workspace_bytes, ncclComm_t comm, cudaStream_t stream) {
  return allreduce<T>(send, recv, count, cfg, workspace, workspace_bytes, comm_ref(comm), stream);
}

} // namespace v0_1
} // namespace agoq

#endif // AGOQ_HAS_NCCL()

// SPDX-License-Identifier: Apache-2.0
//! @file grad/grad_buffer.cuh
//! `agoq::grad_buffer`: the 8-bit main-gradient buffer of a data-parallel trainer. A flat gradient
//! space of N parameters is stored as block-quantized codes + scales (default INT8, block 128,
//! fp32 scales: exactly 1 + 4/128 = 1.03125 bytes per parameter instead of 4 for fp32), split
//! into buckets (grad/layout.hpp). Per step:
//!   1. zero(stream);
//!   2. for every micro-batch: accumulate(offset, grad, count, stream) -- one fused pass per call:
//!      decode the stored codes, add the new gradient in fp32, requantize with a fresh per-block
//!      scale (agoq::accumulate_requantize on the sub-view);
//!   3. allreduce(bucket, ...) or reduce_scatter(bucket, ...) directly on the 8-bit codes (no
//!      dequantize to 16/32 bits before the wire; grad/collective.hpp), with averaging;
//!   4. dequantize_to(float* or bf16*, stream) for the optimizer (or just the owned shard).
//!
//! Memory: owned by the caller (construct over a block of grad_bytes_required(...) bytes) or
//! allocated ONCE at construction through an allocator hook (grad_allocator; cuda_malloc_allocator
//! is one). Nothing else ever allocates. Every operation takes the stream last, enqueues only,
//! never synchronizes, and may be captured in a CUDA graph.
//!
//! Errors: operations return [[nodiscard]] agoq::status; on status::invalid_argument,
//! agoq::last_error_message() reads "agoq::grad_buffer::<op>: <argument> <rule>" (nothing was
//! enqueued); AGOQ_TRY(...) turns it into an agoq::invalid_argument exception. Constructors throw.
//!
//! Stochastic rounding (spec.rounding == stochastic): a call accumulating into [offset, ...) with
//! seed s requantizes element offset + i with Philox(grad_accumulate_seed(s, offset), i), exactly
//! agoq::ref::accumulate_requantize(layout().sub_view(mem, offset, count), grad,
//! grad_accumulate_seed(s, offset)). The overload without a seed uses s = seed() + k for the k-th
//! accumulate call on this object (a host counter; under CUDA graph capture the seed is baked into
//! the graph, so pass explicit seeds that change per replay, or use nearest rounding).
//!
//! @code
//!   const agoq::quant_spec spec{};                              // INT8 / 128 / fp32 / nearest
//!   agoq::grad_buffer g(n, spec, agoq::default_bucket_elements, agoq::cuda_malloc_allocator());
//!   AGOQ_TRY(g.zero(stream));
//!   for (int mb = 0; mb < M; ++mb) {
//!     backward(mb, d_grad_bf16);                                // the trainer's bf16 grads
//!     AGOQ_TRY(g.accumulate(0, d_grad_bf16, n, stream));
//!   }
//!   for (std::int64_t b = 0; b < g.bucket_count(); ++b)         // NCCL builds only
//!     AGOQ_TRY(g.allreduce(b, {}, d_ws, ws_bytes, agoq::comm_ref(nccl), stream)); // average
//!   AGOQ_TRY(g.dequantize_to(d_grad_fp32, stream));             // optimizer hand-off
//! @endcode
//!
//! The NCCL-free part (storage, accumulate, dequantize_to, zero) is available in every build;
//! allreduce / reduce_scatter exist when AGOQ_HAS_NCCL() (agoq/config.hpp).
#pragma once

#include "agoq/config.hpp"
#include "agoq/error.hpp"
#include "agoq/format/format.hpp"
#include "agoq/grad/collective.hpp"
#include "agoq/grad/layout.hpp"
#include "agoq/quant/quantize.cuh"
#include "agoq/quant/view.hpp"

#if AGOQ_HAS_NCCL()
#include "agoq/comm/allreduce.cuh"
#include "agoq/comm/cuda_executor.cuh"
#include "agoq/comm/nccl.hpp"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace agoq {

//! Allocator hook of a grad_buffer: called once at construction (allocate(bytes) returns device
//! memory aligned to grad_memory_alignment, or throws) and once at destruction (deallocate).
struct grad_allocator {
  std::function<void*(std::size_t)> allocate;
  std::function<void(void*, std::size_t)> deallocate;
};

//! A grad_allocator over cudaMalloc / cudaFree on the current device (allocate throws
//! agoq::cuda_error).
inline grad_allocator cuda_malloc_allocator() {
  grad_allocator a;
  a.allocate = [](std::size_t bytes) {
    void* p = nullptr;
    AGOQ_CUDA_TRY(cudaMalloc(&p, bytes));
    return p;
  };
  a.deallocate = [](void* p, std::size_t) { (void)cudaFree(p); };
  return a;
}

//! The Backend of grad/collective.hpp on one CUDA stream: cudaMemcpyAsync (device to device) and
//! the launchers of quant/quantize.cuh. Throws (agoq::cuda_error, agoq::invalid_argument).
struct cuda_buffer_backend {
  cudaStream_t stream = nullptr;
  void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) AGOQ_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
  }
  void decode(const_quantized_view v, float* acc) { AGOQ_TRY(agoq::dequantize(v, acc, stream)); }
  void decode_add(const_quantized_view v, float* acc) {
    AGOQ_TRY(agoq::dequantize_accumulate(v, acc, 1.0f, stream));
  }
  void quantize(const float* acc, quantized_view v, std::uint64_t seed) {
    AGOQ_TRY(agoq::quantize(acc, v, seed, stream));
  }
};

inline namespace v0_1 {

//! Device storage for a flat, bucketed gradient space of `params()` parameters as codes + scales.
//! Move-only. Owns its memory only when built with an allocator hook.
class grad_buffer {
public:
  //! An empty buffer (0 parameters, no memory).
  grad_buffer() = default;

  //! A buffer over caller-owned device memory (not freed by the buffer).
  //! @param params        N, parameters in the flat gradient space (>= 0)
  //! @param spec          storage format; symmetric (default INT8 / block 128 / fp32 / nearest)
  //! @param bucket_elems  parameters per bucket, a positive multiple of spec.block
  //! @param memory        device memory, grad_memory_alignment-aligned, of >= bytes bytes
  //! @param bytes         its size, >= grad_bytes_required(params, spec, bucket_elems)
  //! The contents are undefined until zero(). Throws agoq::invalid_argument
  //! ("agoq::grad_buffer: <argument> <rule>").
  grad_buffer(std::int64_t params, const quant_spec& spec, std::int64_t bucket_elems, void* memory,
              std::size_t bytes)
      : m_layout{params, spec, bucket_elems}, m_mem(memory) {
    check_layout();
    const std::size_t need = m_layout.total_bytes();
    if (need > 0 && memory == nullptr)
      throw invalid_argument("agoq::grad_buffer: memory must not be null when params > 0");
    if (reinterpret_cast<std::uintptr_t>(memory) % grad_memory_alignment != 0)
      throw invalid_argument("agoq::grad_buffer: memory must be aligned to " +
                             std::to_string(grad_memory_alignment) + " bytes");
    if (bytes < need)
      throw invalid_argument("agoq::grad_buffer: bytes must be >= " + std::to_string(need) +
                             " (grad_bytes_required; got " + std::to_string(bytes) + ")");
  }

  //! A buffer whose memory (grad_bytes_required bytes) is allocated once, now, through `alloc`,
  //! and released through it at destruction. Throws agoq::invalid_argument (layout, an empty
  //! hook, misaligned memory) or whatever alloc.allocate throws.
  grad_buffer(std::int64_t params, const quant_spec& spec, std::int64_t bucket_elems,
              grad_allocator alloc)
      : m_layout{params, spec, bucket_elems} {
    check_layout();
    if (!alloc.allocate || !alloc.deallocate)
      throw invalid_argument("agoq::grad_buffer: alloc.allocate and alloc.deallocate must be set");
    const std::size_t need = m_layout.total_bytes();
    if (need == 0) return;
    void* p = alloc.allocate(need);
    if (p == nullptr || reinterpret_cast<std::uintptr_t>(p) % grad_memory_alignment != 0) {
      if (p) alloc.deallocate(p, need);
      throw invalid_argument("agoq::grad_buffer: alloc.allocate must return non-null memory "
                             "aligned to " +
                             std::to_string(grad_memory_alignment) + " bytes");
    }
    m_mem = p;
    m_alloc = std::move(alloc);
    m_owned = true;
  }

  grad_buffer(const grad_buffer&) = delete;
  grad_buffer& operator=(const grad_buffer&) = delete;
  grad_buffer(grad_buffer&& o) noexcept { swap(o); }
  grad_buffer& operator=(grad_buffer&& o) noexcept {
    if (this != &o) {
      grad_buffer tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }
  ~grad_buffer() {
    if (m_owned && m_mem) m_alloc.deallocate(m_mem, m_layout.total_bytes());
  }

  //! Bytes of device memory a buffer of (params, spec, bucket_elems) needs: grad_bytes_required.
  static std::size_t bytes_required(std::int64_t params, const quant_spec& spec = {},
                                    std::int64_t bucket_elems = default_bucket_elements) {
    return grad_bytes_required(params, spec, bucket_elems);
  }

  // ---- geometry and memory queries (host only, no CUDA calls) ----
  const grad_layout& layout() const noexcept { return m_layout; }
  std::int64_t params() const noexcept { return m_layout.params; }
  const quant_spec& spec() const noexcept { return m_layout.spec; }
  std::int64_t bucket_elems() const noexcept { return m_layout.bucket_elems; }
  std::int64_t bucket_count() const noexcept { return m_layout.bucket_count(); }
  std::int64_t bucket_offset(std::int64_t b) const noexcept { return m_layout.bucket_offset(b); }
  std::int64_t bucket_size(std::int64_t b) const noexcept { return m_layout.bucket_size(b); }
  //! Storage bytes per parameter of a full block: 1.03125 for INT8 / 128 / fp32 scales.
  double bytes_per_param() const noexcept { return m_layout.bytes_per_param(); }
  //! Bytes of device memory used (codes + scales + alignment padding).
  std::size_t total_bytes() const noexcept { return m_layout.total_bytes(); }
  //! The memory block (codes at offset 0, scales at grad_scales_offset).
  void* data() const noexcept { return m_mem; }
  //! The whole space as a 1-D quantized view (for agoq::quantize & co.).
  quantized_view view() const noexcept { return m_layout.view(m_mem); }
  //! Bucket b as a 1-D quantized view (b must be in range).
  quantized_view bucket_view(std::int64_t b) const noexcept {
    return m_layout.sub_view(m_mem, bucket_offset(b), bucket_size(b));
  }
  //! Base seed of the accumulate overload without a seed.
  std::uint64_t seed() const noexcept { return m_seed; }
  void set_seed(std::uint64_t s) noexcept {
    m_seed = s;
    m_calls = 0;
  }

  //! Sets every parameter to 0 (codes and scales zeroed: one cudaMemsetAsync on `stream`).
  //! Errors: status::cuda_error.
  [[nodiscard]] status zero(cudaStream_t stream) {
    if (total_bytes() == 0) return status::success;
    return detail::from_cuda(cudaMemsetAsync(m_mem, 0, total_bytes(), stream));
  }

  //! Adds `count` gradient values (T = float, __half, __nv_bfloat16; device memory) to the
  //! parameters [offset, offset + count), in one fused pass: decode, fp32 add, requantize
  //! (spec().rounding; stochastic: Philox(grad_accumulate_seed(seed, offset), i)).
  //! Errors (nothing enqueued): invalid_argument for offset < 0 or not a multiple of spec().block,
  //! count < 0, offset + count > params() ("count must not run past the buffer"), a range ending
  //! inside a block other than the last, a null grad with count > 0; cuda_error on launch failure.
  //! count == 0 enqueues nothing.
  template <class T>
  [[nodiscard]] status accumulate(std::int64_t offset, const T* grad, std::int64_t count,
                                  std::uint64_t seed, cudaStream_t stream) {
    static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
    if (const char* m = m_layout.check_write_range(offset, count))
      return detail::refuse("agoq::grad_buffer::accumulate", m);
    if (count == 0) return status::success;
    if (grad == nullptr)
      return detail::refuse("agoq::grad_buffer::accumulate", "grad must not be null when count > 0");
    return agoq::accumulate_requantize(m_layout.sub_view(m_mem, offset, count), grad,
                                       grad_accumulate_seed(seed, offset), stream);
  }
  //! accumulate with seed = seed() + (number of earlier accumulate calls without a seed).
  template <class T>
  [[nodiscard]] status accumulate(std::int64_t offset, const T* grad, std::int64_t count,
                                  cudaStream_t stream) {
    const status s = accumulate(offset, grad, count, m_seed + m_calls, stream);
    if (s == status::success) ++m_calls;
    return s;
  }
  //! accumulate of a whole bucket: `grad` holds bucket_size(b) values. Errors: as accumulate, and
  //! invalid_argument "bucket must be in [0, bucket_count())".
  template <class T>
  [[nodiscard]] status accumulate_bucket(std::int64_t b, const T* grad, cudaStream_t stream) {
    if (const char* m = m_layout.check_bucket(b))
      return detail::refuse("agoq::grad_buffer::accumulate_bucket", m);
    return accumulate(bucket_offset(b), grad, bucket_size(b), stream);
  }

  //! Decodes parameters [offset, offset + count) into out[0, count) (T = float, __half,
  //! __nv_bfloat16; RNE to T), e.g. the optimizer's fp32 gradient or a ZeRO shard.
  //! Errors: invalid_argument (offset not block-aligned or < 0, count < 0, past the buffer, null
  //! out with count > 0), cuda_error.
  template <class T>
  [[nodiscard]] status dequantize_to(std::int64_t offset, std::int64_t count, T* out,
                                     cudaStream_t stream) const {
    static_assert(detail::is_element_type_v<T>, "T must be float, __half or __nv_bfloat16");
    if (const char* m = m_layout.check_read_range(offset, count))
      return detail::refuse("agoq::grad_buffer::dequantize_to", m);
    if (count == 0) return status::success;
    if (out == nullptr)
      return detail::refuse("agoq::grad_buffer::dequantize_to", "out must not be null when count > 0");
    return agoq::dequantize(const_quantized_view(m_layout.sub_view(m_mem, offset, count)), out,
                            stream);
  }
  //! Decodes all params() parameters into out[0, params()).
  template <class T> [[nodiscard]] status dequantize_to(T* out, cudaStream_t stream) const {
    return dequantize_to(0, params(), out, stream);
  }

#if AGOQ_HAS_NCCL()
  //! Workspace bytes every rank must pass to allreduce(b, opt, ...) on `comm`.
  //! Throws agoq::invalid_argument (bad bucket or opt), agoq::nccl_error.
  std::size_t allreduce_workspace_size(std::int64_t b, const grad_comm_config& opt,
                                       comm_ref comm) const {
    if (const char* m = m_layout.check_bucket(b))
      throw invalid_argument(std::string("agoq::grad_buffer::allreduce_workspace_size: ") + m);
    if (!comm)
      throw invalid_argument("agoq::grad_buffer::allreduce_workspace_size: comm must not be null");
    return grad_allreduce_workspace_size(bucket_size(b), spec(), opt, comm.size());
  }
  //! Workspace bytes every rank must pass to reduce_scatter(b, opt, ...) on `comm`.
  std::size_t reduce_scatter_workspace_size(std::int64_t b, const grad_comm_config& opt,
                                            comm_ref comm) const {
    if (const char* m = m_layout.check_bucket(b))
      throw invalid_argument(std::string("agoq::grad_buffer::reduce_scatter_workspace_size: ") + m);
    if (!comm)
      throw invalid_argument(
          "agoq::grad_buffer::reduce_scatter_workspace_size: comm must not be null");
    return grad_reduce_scatter_workspace_size(bucket_size(b), spec(), opt, comm.size());
  }
  //! The parameters [begin, end) of bucket b (absolute offsets) that rank `rank` of a world of
  //! `world` owns after reduce_scatter(b, opt, ...).
  element_range shard(std::int64_t b, const grad_comm_config& opt, int world, int rank) const {
    const element_range r = grad_shard(bucket_size(b), spec(), opt, world, rank);
    return {bucket_offset(b) + r.begin, bucket_offset(b) + r.end};
  }

  //! All-reduce, in place, of bucket b across `comm`, directly on the 8-bit codes
  //! (grad/collective.hpp; the schedules of comm/schedule.hpp with the buffer's codes as the first
  //! message): afterwards every rank's bucket holds the same bytes, the quantized average (opt.op,
  //! default) or sum of all ranks' buckets.
  //! @param workspace  device memory of >= allreduce_workspace_size(b, opt, comm) bytes, aligned
  //!                   to workspace_alignment (16); reusable across calls
  //! Stream semantics: as agoq::allreduce (comm/allreduce.cuh): enqueue only, graph-safe, the
  //! communicator's device made current during the call; not inside an open ncclGroupStart;
  //! every rank calls it with the same b and opt, in the same order.
  //! Errors: invalid_argument ("agoq::grad_buffer::allreduce: ..." or "agoq::grad_allreduce:
  //! ..."), nccl_error, cuda_error.
  [[nodiscard]] status allreduce(std::int64_t b, const grad_comm_config& opt, void* workspace,
                                 std::size_t workspace_bytes, comm_ref comm, cudaStream_t stream) {
    return collective(false, b, opt, workspace, workspace_bytes, comm, stream);
  }
  //! Reduce-scatter, in place, of bucket b: afterwards shard(b, opt, world, rank) of this rank's
  //! bucket holds the quantized average/sum (bitwise what allreduce with algorithm::two_shot
  //! leaves there); the rest of the bucket keeps this rank's local values. Workspace:
  //! reduce_scatter_workspace_size. Semantics and errors: as allreduce.
  [[nodiscard]] status reduce_scatter(std::int64_t b, const grad_comm_config& opt, void* workspace,
                                      std::size_t workspace_bytes, comm_ref comm,
                                      cudaStream_t stream) {
    return collective(true, b, opt, workspace, workspace_bytes, comm, stream);
  }
#endif

private:
  void check_layout() const {
    if (const char* m = m_layout.validate())
      throw invalid_argument(std::string("agoq::grad_buffer: ") + m);
  }
  void swap(grad_buffer& o) noexcept {
    std::swap(m_layout, o.m_layout);
    std::swap(m_mem, o.m_mem);
    std::swap(m_alloc, o.m_alloc);
    std::swap(m_owned, o.m_owned);
    std::swap(m_seed, o.m_seed);
    std::swap(m_calls, o.m_calls);
  }

#if AGOQ_HAS_NCCL()
  status collective(bool scatter, std::int64_t b, const grad_comm_config& opt, void* workspace,
                    std::size_t workspace_bytes, comm_ref comm, cudaStream_t stream) {
    const char* fn =
        scatter ? "agoq::grad_buffer::reduce_scatter" : "agoq::grad_buffer::allreduce";
    if (const char* m = m_layout.check_bucket(b)) return detail::refuse(fn, m);
    if (!comm) return detail::refuse(fn, "comm must not be null");
    int device = -1;
    if (ncclResult_t r = ncclCommCuDevice(comm.get(), &device); r != ncclSuccess)
      return detail::nccl_failed(r, "agoq::grad_buffer: ncclCommCuDevice");
    detail::scoped_device guard;
    if (status s = guard.enter(device); s != status::success) return s;
    return detail::status_of([&] {
      nccl_transport tr(comm, stream);
      cuda_executor ex(stream);
      cuda_buffer_backend be{stream};
      if (scatter)
        grad_reduce_scatter(bucket_view(b), opt, workspace, workspace_bytes, tr, ex, be);
      else
        grad_allreduce(bucket_view(b), opt, workspace, workspace_bytes, tr, ex, be);
    });
  }
#endif

  grad_layout m_layout{0, quant_spec{}, default_bucket_elements};
  void* m_mem = nullptr;
  grad_allocator m_alloc{};
  bool m_owned = false;
  std::uint64_t m_seed = 0;
  std::uint64_t m_calls = 0;
};

} // namespace v0_1
} // namespace agoq

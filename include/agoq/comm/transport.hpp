// SPDX-License-Identifier: Apache-2.0
//! @file comm/transport.hpp
//! The two small interfaces every collective schedule (comm/schedule.hpp) is written against:
//! a Transport that moves bytes between ranks, and an Executor that does the arithmetic.
//! Schedules are templates over both (static polymorphism, no virtual calls), so the same
//! algorithm runs over NCCL on GPUs and over the in-process host transport in tests.
//!
//! ## Transport (one object per rank)
//! ```
//! int  rank() const;                 // 0 <= rank() < size()
//! int  size() const;                 // world size, >= 1
//! void group_start();                // begin a group of point-to-point operations
//! void group_end();                  // the group's sends and receives are all complete after it
//! void send(const void* buf, std::size_t bytes, int peer);
//! void recv(void* buf, std::size_t bytes, int peer);
//! void all_gather(const void* sendbuf, void* recvbuf, std::size_t bytes);
//! ```
//! Rules the schedules rely on:
//! - Program order: every transport and executor operation of a rank observes the effects of all
//!   operations that rank issued before it (one CUDA stream on the GPU; plain sequencing on the
//!   host), except between fork() and join() (below). Buffers passed to send/recv may be reused
//!   or read after the enclosing group_end().
//! - Inside a group, sends and receives have no mutual order (posting both halves of an exchange
//!   in one group cannot deadlock). Outside a group, send/recv behave as one-operation groups.
//! - Matching: the k-th send from a to b matches the k-th recv on b from a (FIFO per ordered
//!   pair), and the byte counts agree. Schedules never post zero-byte transfers.
//! - all_gather: recvbuf holds size() slots of `bytes`; slot r receives rank r's sendbuf. In place
//!   when sendbuf == recvbuf + rank() * bytes. Collective: every rank calls it in the same order.
//! - Errors are reported by throwing (agoq::error or a subclass).
//!
//! Optional: two queues, so that transfers overlap the executor's work (a transport without these
//! members keeps program order everywhere; is_two_queue_transport_v tells them apart):
//! ```
//! void fork();                  // transfers issued from now on go to a communication queue of
//!                               // their own, which first waits for everything issued so far
//! void join();                  // everything issued from now on waits for every transfer issued
//!                               // so far; transfers are back in program order
//! void comm_wait_compute();     // forked: transfers issued from now on wait for every executor
//!                               // operation issued so far
//! void comm_record(int k);      // forked: mark k (0 <= k < transport_marks) := every transfer
//!                               // issued so far
//! void compute_wait_comm(int k);// forked: executor operations issued from now on wait for mark k
//! ```
//! Between fork() and join() the two queues are ordered only by these members (each queue keeps
//! its own program order). Outside fork/join they do nothing. A mark may be recorded again once
//! the compute_wait_comm() for its previous recording has been issued. The schedules fork only
//! around pipelined chunk loops and always join before they return, so a caller sees one queue.
//!
//! A GPU transport over NCCL holds (ncclComm_t, cudaStream_t) and maps group_start/group_end to
//! ncclGroupStart/ncclGroupEnd, send/recv to ncclSend/ncclRecv of ncclUint8 and all_gather to
//! ncclAllGather of ncclUint8, all on the stream (after fork(): on a communication stream of its
//! own, ordered with the caller's stream by CUDA events): nothing blocks the host, so the
//! schedules stay usable under CUDA graph capture.
//!
//! ## Executor (one per rank; pointers live in the transport's memory space)
//! ```
//! template <class T> void quantize(const T* x, std::int64_t n, void* msg, const quant_spec& s,
//!                                  std::uint64_t seed);  // msg = codes then scales of x[0, n)
//! void decode(const void* msg, std::int64_t n, const quant_spec& s, float* acc); // acc = q
//! void decode_add(const void* msg, std::int64_t n, const quant_spec& s, float* acc); // acc += q
//! template <class T> void load(const T* x, std::int64_t n, float* acc);  // acc = float(x)
//! template <class T> void add(const T* x, std::int64_t n, float* acc);   // acc += float(x)
//! void divide(float* acc, std::int64_t n, float divisor);                // acc = acc / divisor
//! template <class T> void store(const float* acc, std::int64_t n, T* y); // y = T(acc), RNE
//! template <class T> void dequantize(const void* msg, std::int64_t n, const quant_spec& s,
//!                                    T* y);              // y = T(decoded msg), RNE
//! // Fused reductions of w messages m_j = msgs + j * stride (n elements each, spec s):
//! //   sum = D(m_0) + D(m_1) + ... + D(m_{w-1}), left to right, then sum = sum / divisor unless
//! //   divisor == 1 (exactly decode, decode_add..., divide; no fp32 buffer in memory).
//! void reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
//!                      const quant_spec& s, float divisor, quantized_view out,
//!                      std::uint64_t seed);              // out = Q(sum)
//! template <class T> void reduce_store(const void* msgs, std::size_t stride, int w,
//!                                      std::int64_t n, const quant_spec& s, float divisor,
//!                                      T* y);            // y = T(sum), RNE
//! ```
//! T is float, __half or __nv_bfloat16. Every add is one IEEE fp32 addition (round to nearest
//! even), every division one IEEE fp32 division; quantize/decode follow format/codec.hpp exactly,
//! with stochastic rounding drawing u = philox_uniform(seed, i) for element i of the message (i
//! counts from 0 at the message start). reduce_quantize's `out` is a 1 x n view (a message,
//! message_view(), or any other codes + scales); its spec has s's format, block and scale kind
//! (symmetric) and gives the rounding. A GPU executor implements these as kernels on its stream
//! and must match the host reference (agoq::ref) bit for bit; it may fuse consecutive operations
//! internally as long as the results are unchanged.
//!
//! Optional batched forms (the schedules fall back to one call per job without them):
//! ```
//! template <class T> void quantize_many(const quantize_job<T>* jobs, int count,
//!                                       const quant_spec& s);   // quantize(job) for each job
//! template <class T> void dequantize_many(const dequantize_job<T>* jobs, int count,
//!                                         const quant_spec& s); // dequantize(job) for each job
//! ```
//! Jobs of one call touch disjoint memory.
#pragma once

#include "agoq/format/format.hpp"
#include "agoq/quant/view.hpp"

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace agoq {

//! Marks a two-queue transport provides (comm_record / compute_wait_comm take 0 <= k < this).
constexpr int transport_marks = 8;

//! One quantization of a batch: msg = codes then scales of x[0, n), Philox(seed, i) for element i.
template <class T> struct quantize_job {
  const T* x = nullptr;
  std::int64_t n = 0;
  void* msg = nullptr;
  std::uint64_t seed = 0;
};

//! One dequantization of a batch: y[0, n) = T(decoded msg), round to nearest even.
template <class T> struct dequantize_job {
  const void* msg = nullptr;
  std::int64_t n = 0;
  T* y = nullptr;
};

namespace detail {

template <class Tr, class = void> struct is_transport_impl : std::false_type {};

template <class Tr>
struct is_transport_impl<
    Tr, std::void_t<
            decltype(int(std::declval<const Tr&>().rank())),
            decltype(int(std::declval<const Tr&>().size())),
            decltype(std::declval<Tr&>().group_start()), decltype(std::declval<Tr&>().group_end()),
            decltype(std::declval<Tr&>().send(std::declval<const void*>(), std::size_t(0), 0)),
            decltype(std::declval<Tr&>().recv(std::declval<void*>(), std::size_t(0), 0)),
            decltype(std::declval<Tr&>().all_gather(std::declval<const void*>(),
                                                    std::declval<void*>(), std::size_t(0)))>>
    : std::true_type {};

template <class Tr, class = void> struct is_two_queue_impl : std::false_type {};

template <class Tr>
struct is_two_queue_impl<
    Tr, std::void_t<decltype(std::declval<Tr&>().fork()), decltype(std::declval<Tr&>().join()),
                    decltype(std::declval<Tr&>().comm_wait_compute()),
                    decltype(std::declval<Tr&>().comm_record(0)),
                    decltype(std::declval<Tr&>().compute_wait_comm(0))>> : std::true_type {};

template <class Ex, class T, class = void> struct is_executor_impl : std::false_type {};

template <class Ex, class T>
struct is_executor_impl<
    Ex, T,
    std::void_t<decltype(std::declval<Ex&>().quantize(
                    std::declval<const T*>(), std::int64_t(0), std::declval<void*>(),
                    std::declval<const quant_spec&>(), std::uint64_t(0))),
                decltype(std::declval<Ex&>().decode(std::declval<const void*>(), std::int64_t(0),
                                                    std::declval<const quant_spec&>(),
                                                    std::declval<float*>())),
                decltype(std::declval<Ex&>().decode_add(
                    std::declval<const void*>(), std::int64_t(0), std::declval<const quant_spec&>(),
                    std::declval<float*>())),
                decltype(std::declval<Ex&>().load(std::declval<const T*>(), std::int64_t(0),
                                                  std::declval<float*>())),
                decltype(std::declval<Ex&>().add(std::declval<const T*>(), std::int64_t(0),
                                                 std::declval<float*>())),
                decltype(std::declval<Ex&>().divide(std::declval<float*>(), std::int64_t(0), 1.0f)),
                decltype(std::declval<Ex&>().store(std::declval<const float*>(), std::int64_t(0),
                                                   std::declval<T*>())),
                decltype(std::declval<Ex&>().dequantize(
                    std::declval<const void*>(), std::int64_t(0), std::declval<const quant_spec&>(),
                    std::declval<T*>())),
                decltype(std::declval<Ex&>().reduce_quantize(
                    std::declval<const void*>(), std::size_t(0), 0, std::int64_t(0),
                    std::declval<const quant_spec&>(), 1.0f, std::declval<quantized_view>(),
                    std::uint64_t(0))),
                decltype(std::declval<Ex&>().reduce_store(
                    std::declval<const void*>(), std::size_t(0), 0, std::int64_t(0),
                    std::declval<const quant_spec&>(), 1.0f, std::declval<T*>()))>>
    : std::true_type {};

template <class Ex, class T, class = void> struct has_quantize_many : std::false_type {};
template <class Ex, class T>
struct has_quantize_many<
    Ex, T,
    std::void_t<decltype(std::declval<Ex&>().quantize_many(std::declval<const quantize_job<T>*>(),
                                                           0, std::declval<const quant_spec&>()))>>
    : std::true_type {};

template <class Ex, class T, class = void> struct has_dequantize_many : std::false_type {};
template <class Ex, class T>
struct has_dequantize_many<
    Ex, T,
    std::void_t<decltype(std::declval<Ex&>().dequantize_many(
        std::declval<const dequantize_job<T>*>(), 0, std::declval<const quant_spec&>()))>>
    : std::true_type {};

} // namespace detail

//! True if `Tr` has the Transport members documented in this file (signatures only).
template <class Tr> constexpr bool is_transport_v = detail::is_transport_impl<Tr>::value;

//! True if `Tr` also has the optional two-queue members (fork, join, comm_wait_compute,
//! comm_record, compute_wait_comm).
template <class Tr> constexpr bool is_two_queue_transport_v = detail::is_two_queue_impl<Tr>::value;

//! True if `Ex` has the Executor members documented in this file for element type `T` (and
//! for float, which the schedules use to requantize fp32 sums).
template <class Ex, class T>
constexpr bool is_executor_v =
    detail::is_executor_impl<Ex, T>::value&& detail::is_executor_impl<Ex, float>::value;

namespace detail {

// What the schedules call: the optional members where a transport or executor has them, their
// documented meaning (program order; one call per job) where it does not.

template <class Tr> inline void queue_fork(Tr& tr) {
  if constexpr (is_two_queue_transport_v<Tr>) tr.fork();
}
template <class Tr> inline void queue_join(Tr& tr) {
  if constexpr (is_two_queue_transport_v<Tr>) tr.join();
}
template <class Tr> inline void comm_wait_compute(Tr& tr) {
  if constexpr (is_two_queue_transport_v<Tr>) tr.comm_wait_compute();
}
template <class Tr> inline void comm_record(Tr& tr, int k) {
  if constexpr (is_two_queue_transport_v<Tr>) tr.comm_record(k);
}
template <class Tr> inline void compute_wait_comm(Tr& tr, int k) {
  if constexpr (is_two_queue_transport_v<Tr>) tr.compute_wait_comm(k);
}

template <class Ex, class T>
inline void quantize_many(Ex& ex, const quantize_job<T>* jobs, int count, const quant_spec& s) {
  if constexpr (has_quantize_many<Ex, T>::value) {
    if (count > 0) ex.quantize_many(jobs, count, s);
  } else {
    for (int j = 0; j < count; ++j)
      ex.quantize(jobs[j].x, jobs[j].n, jobs[j].msg, s, jobs[j].seed);
  }
}

template <class Ex, class T>
inline void dequantize_many(Ex& ex, const dequantize_job<T>* jobs, int count, const quant_spec& s) {
  if constexpr (has_dequantize_many<Ex, T>::value) {
    if (count > 0) ex.dequantize_many(jobs, count, s);
  } else {
    for (int j = 0; j < count; ++j)
      ex.dequantize(jobs[j].msg, jobs[j].n, s, jobs[j].y);
  }
}

} // namespace detail
} // namespace agoq

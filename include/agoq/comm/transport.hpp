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
//!   host). Buffers passed to send/recv may be reused or read after the enclosing group_end().
//! - Inside a group, sends and receives have no mutual order (posting both halves of an exchange
//!   in one group cannot deadlock). Outside a group, send/recv behave as one-operation groups.
//! - Matching: the k-th send from a to b matches the k-th recv on b from a (FIFO per ordered
//!   pair), and the byte counts agree. Schedules never post zero-byte transfers.
//! - all_gather: recvbuf holds size() slots of `bytes`; slot r receives rank r's sendbuf. In place
//!   when sendbuf == recvbuf + rank() * bytes. Collective: every rank calls it in the same order.
//! - Errors are reported by throwing (agoq::error or a subclass).
//!
//! A GPU transport over NCCL holds (ncclComm_t, cudaStream_t) and maps group_start/group_end to
//! ncclGroupStart/ncclGroupEnd, send/recv to ncclSend/ncclRecv of ncclUint8 and all_gather to
//! ncclAllGather of ncclUint8, all on the stream: nothing blocks the host, so the schedules stay
//! usable under CUDA graph capture and inside a caller's own ncclGroupStart/End.
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
//! ```
//! T is float, __half or __nv_bfloat16. Every add is one IEEE fp32 addition (round to nearest
//! even), `divide` one IEEE fp32 division; quantize/decode follow format/codec.hpp exactly, with
//! stochastic rounding drawing u = philox_uniform(seed, i) for element i of the message (i counts
//! from 0 at the message start). A GPU executor implements these as kernels on the transport's
//! stream and must match the host reference (agoq::ref) bit for bit; it may fuse consecutive
//! operations internally as long as the results are unchanged.
#pragma once

#include "agoq/format/format.hpp"

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace agoq {
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
                    std::declval<T*>()))>> : std::true_type {};

} // namespace detail

//! True if `Tr` has the Transport members documented in this file (signatures only).
template <class Tr> constexpr bool is_transport_v = detail::is_transport_impl<Tr>::value;

//! True if `Ex` has the Executor members documented in this file for element type `T` (and
//! for float, which the schedules use to requantize fp32 sums).
template <class Ex, class T>
constexpr bool is_executor_v =
    detail::is_executor_impl<Ex, T>::value&& detail::is_executor_impl<Ex, float>::value;

} // namespace agoq

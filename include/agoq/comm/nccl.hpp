// SPDX-License-Identifier: Apache-2.0
//! @file comm/nccl.hpp
//! agoq's NCCL glue (host code only, no kernels): `AGOQ_NCCL_TRY`, the non-owning communicator
//! view `comm_ref`, and `nccl_transport`, the Transport of comm/transport.hpp over
//! (ncclComm_t, cudaStream_t).
//!
//! Everything the transport does is enqueued on its stream (ncclSend/ncclRecv/ncclAllGather of
//! ncclUint8 inside ncclGroupStart/End), or, between fork() and join(), on a communication
//! stream of its own ordered with the caller's stream by CUDA events: nothing blocks the host, so
//! the schedules built on it can be captured in a CUDA graph. Communicators must be blocking (the
//! NCCL default); a non-blocking communicator's ncclInProgress is reported as an error.
//!
//! Needs <nccl.h>; the contents compile only when AGOQ_HAS_NCCL() (agoq/config.hpp).
#pragma once

#include "agoq/comm/transport.hpp"
#include "agoq/config.hpp"
#include "agoq/error.hpp"

#if AGOQ_HAS_NCCL()

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace agoq {
namespace detail {

//! The sentence agoq reports for a failed NCCL call: "<what>: <ncclGetErrorString>[ (<last>)]".
inline std::string nccl_message(ncclResult_t r, const std::string& what) {
  std::string m = what + ": " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') m += std::string(" (") + last + ")";
  return m;
}

[[noreturn]] inline void throw_nccl_error(ncclResult_t r, const char* expr, const char* file,
                                          int line) {
  throw nccl_error(int(r),
                   nccl_message(r, std::string(expr) + " at " + file + ":" + std::to_string(line)));
}

} // namespace detail
} // namespace agoq

//! Throws agoq::nccl_error (message: the expression, file:line and ncclGetErrorString) if the
//! ncclResult_t expression is not ncclSuccess.
#define AGOQ_NCCL_TRY(expr)                                                                        \
  do {                                                                                             \
    const ncclResult_t agoq_nccl_try_r_ = (expr);                                                  \
    if (agoq_nccl_try_r_ != ncclSuccess)                                                           \
      ::agoq::detail::throw_nccl_error(agoq_nccl_try_r_, #expr, __FILE__, __LINE__);               \
  } while (0)

namespace agoq {

//! A non-owning view of an NCCL communicator: the caller creates and destroys the ncclComm_t
//! (ncclCommInitRank, ncclCommInitAll, ncclCommSplit, ...); agoq only reads it. Trivially
//! copyable; the accessors ask NCCL each time (cheap host calls, no communication).
class comm_ref {
public:
  comm_ref() = default;
  //! A view of `comm` (may be null; the collectives refuse a null communicator).
  explicit comm_ref(ncclComm_t comm) noexcept : m_comm(comm) {}

  //! The communicator.
  ncclComm_t get() const noexcept { return m_comm; }
  explicit operator bool() const noexcept { return m_comm != nullptr; }

  //! This process's rank in the communicator (ncclCommUserRank). Throws agoq::nccl_error.
  int rank() const {
    int r = -1;
    AGOQ_NCCL_TRY(ncclCommUserRank(m_comm, &r));
    return r;
  }
  //! Ranks in the communicator (ncclCommCount). Throws agoq::nccl_error.
  int size() const {
    int n = 0;
    AGOQ_NCCL_TRY(ncclCommCount(m_comm, &n));
    return n;
  }
  //! The CUDA device of this rank (ncclCommCuDevice). Throws agoq::nccl_error.
  int device() const {
    int d = -1;
    AGOQ_NCCL_TRY(ncclCommCuDevice(m_comm, &d));
    return d;
  }

private:
  ncclComm_t m_comm = nullptr;
};

namespace detail {

//! The communication stream and events of one (communicator, device): created on first use,
//! kept until release_comm_streams() or the end of the process (never destroyed by a static
//! destructor, which could run after the CUDA runtime is gone).
struct comm_side_queue {
  cudaStream_t stream = nullptr;    //!< non-blocking, highest priority of the device
  cudaEvent_t to_comm = nullptr;    //!< compute -> communication handoffs (fork, waits)
  cudaEvent_t to_compute = nullptr; //!< communication -> compute handoff (join)
  cudaEvent_t marks[transport_marks] = {};
};

struct comm_side_queue_cache {
  std::mutex mutex;
  std::vector<std::pair<std::pair<ncclComm_t, int>, std::unique_ptr<comm_side_queue>>> entries;
};

inline comm_side_queue_cache& side_queue_cache() {
  static comm_side_queue_cache* cache = new comm_side_queue_cache; // deliberately never freed
  return *cache;
}

inline void destroy_side_queue(comm_side_queue& q) noexcept {
  for (cudaEvent_t e : q.marks)
    if (e) (void)cudaEventDestroy(e);
  if (q.to_comm) (void)cudaEventDestroy(q.to_comm);
  if (q.to_compute) (void)cudaEventDestroy(q.to_compute);
  if (q.stream) (void)cudaStreamDestroy(q.stream);
  q = comm_side_queue{};
}

//! Puts this thread in relaxed stream-capture mode for its lifetime: creating a stream or an
//! event is no capture hazard, but the stricter modes would refuse it (and invalidate the
//! capture) when the first pipelined call happens inside a capture.
class relaxed_capture_scope {
public:
  relaxed_capture_scope() noexcept { (void)cudaThreadExchangeStreamCaptureMode(&m_mode); }
  ~relaxed_capture_scope() { (void)cudaThreadExchangeStreamCaptureMode(&m_mode); }
  relaxed_capture_scope(const relaxed_capture_scope&) = delete;
  relaxed_capture_scope& operator=(const relaxed_capture_scope&) = delete;

private:
  cudaStreamCaptureMode m_mode = cudaStreamCaptureModeRelaxed;
};

//! The side queue of (comm, current device), created on the current device on first use.
//! Throws agoq::cuda_error (creation failed; nothing is cached then).
inline comm_side_queue& side_queue_for(ncclComm_t comm) {
  int device = -1;
  AGOQ_CUDA_TRY(cudaGetDevice(&device));
  comm_side_queue_cache& cache = side_queue_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& e : cache.entries)
    if (e.first.first == comm && e.first.second == device) return *e.second;
  auto q = std::make_unique<comm_side_queue>();
  const relaxed_capture_scope relaxed;
  try {
    int least = 0, greatest = 0;
    AGOQ_CUDA_TRY(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    AGOQ_CUDA_TRY(cudaStreamCreateWithPriority(&q->stream, cudaStreamNonBlocking, greatest));
    AGOQ_CUDA_TRY(cudaEventCreateWithFlags(&q->to_comm, cudaEventDisableTiming));
    AGOQ_CUDA_TRY(cudaEventCreateWithFlags(&q->to_compute, cudaEventDisableTiming));
    for (cudaEvent_t& e : q->marks)
      AGOQ_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  } catch (...) {
    destroy_side_queue(*q);
    throw;
  }
  cache.entries.emplace_back(std::make_pair(comm, device), std::move(q));
  return *cache.entries.back().second;
}

} // namespace detail

//! The Transport of comm/transport.hpp over one NCCL communicator and one CUDA stream (which must
//! belong to the communicator's device; the current device must be that device while it is used).
//! group_start/group_end -> ncclGroupStart/ncclGroupEnd, send/recv -> ncclSend/ncclRecv of
//! ncclUint8, all_gather -> ncclAllGather of ncclUint8 (in place when sendbuf is this rank's
//! slot), all enqueued on the stream; completion is stream-ordered, never waited for on the host.
//! Errors throw agoq::nccl_error. A transport destroyed with a group still open (an exception
//! between group_start and group_end) closes it, so NCCL's group depth stays balanced.
//!
//! Two queues (comm/transport.hpp): fork() moves the transfers to a communication stream of the
//! communicator's own (created on the first fork for this (communicator, device) and cached:
//! one non-blocking stream at the device's highest priority, so NCCL's CTAs are scheduled ahead
//! of pending codec CTAs, and 2 + transport_marks events; see release_comm_streams()). It first
//! waits for everything enqueued on `stream` so far; join() makes `stream` wait for every
//! transfer and returns the transfers to `stream`. The waits in between are event records and
//! stream waits, legal under CUDA graph capture (the communication stream joins the capture
//! through them and is joined back by join()); nothing synchronizes or allocates device memory.
//! A transport destroyed while forked (an exception) joins, so `stream` still covers everything
//! that was enqueued. Creating the stream and events is the only non-enqueue work; it runs in
//! relaxed capture mode, so the first pipelined call may also happen inside a graph capture.
//!
//! Not for use inside a caller's open ncclGroupStart: the schedules interleave kernels with the
//! transfers, and NCCL defers grouped operations to the outermost ncclGroupEnd.
class nccl_transport {
public:
  //! The transport of `comm` on `stream`. Queries rank and size once. `overlap` = false makes
  //! fork() and join() no-ops (every transfer on `stream`, in program order). Throws
  //! agoq::nccl_error, or agoq::invalid_argument for a null communicator.
  nccl_transport(comm_ref comm, cudaStream_t stream, bool overlap = true)
      : m_comm(comm.get()), m_stream(stream), m_overlap(overlap) {
    if (m_comm == nullptr) throw invalid_argument("agoq::nccl_transport: comm must not be null");
    m_rank = comm.rank();
    m_size = comm.size();
  }
  nccl_transport(const nccl_transport&) = delete;
  nccl_transport& operator=(const nccl_transport&) = delete;
  ~nccl_transport() {
    while (m_depth > 0) {
      --m_depth;
      (void)ncclGroupEnd();
    }
    if (m_side != nullptr) { // best effort: the caller's stream must still cover the transfers
      (void)cudaEventRecord(m_side->to_compute, m_side->stream);
      (void)cudaStreamWaitEvent(m_stream, m_side->to_compute, 0);
    }
  }

  int rank() const noexcept { return m_rank; }
  int size() const noexcept { return m_size; }
  ncclComm_t comm() const noexcept { return m_comm; }
  //! The caller's stream (the executor's).
  cudaStream_t stream() const noexcept { return m_stream; }
  //! Where transfers are enqueued now: the communication stream while forked, else stream().
  cudaStream_t comm_stream() const noexcept { return m_side ? m_side->stream : m_stream; }

  void group_start() {
    AGOQ_NCCL_TRY(ncclGroupStart());
    ++m_depth;
  }
  void group_end() {
    if (m_depth == 0) throw error("agoq::nccl_transport::group_end: no open group");
    --m_depth;
    AGOQ_NCCL_TRY(ncclGroupEnd());
  }
  void send(const void* buf, std::size_t bytes, int peer) {
    AGOQ_NCCL_TRY(ncclSend(buf, bytes, ncclUint8, peer, m_comm, comm_stream()));
  }
  void recv(void* buf, std::size_t bytes, int peer) {
    AGOQ_NCCL_TRY(ncclRecv(buf, bytes, ncclUint8, peer, m_comm, comm_stream()));
  }
  void all_gather(const void* sendbuf, void* recvbuf, std::size_t bytes) {
    AGOQ_NCCL_TRY(ncclAllGather(sendbuf, recvbuf, bytes, ncclUint8, m_comm, comm_stream()));
  }

  //! Transfers from now on go to the communication stream, after everything on stream().
  void fork() {
    if (!m_overlap || m_side != nullptr) return;
    if (m_depth > 0) throw error("agoq::nccl_transport::fork: a group is open");
    detail::comm_side_queue& q = detail::side_queue_for(m_comm);
    AGOQ_CUDA_TRY(cudaEventRecord(q.to_comm, m_stream));
    AGOQ_CUDA_TRY(cudaStreamWaitEvent(q.stream, q.to_comm, 0));
    m_side = &q;
  }
  //! stream() waits for every transfer so far; transfers go to stream() again.
  void join() {
    if (m_side == nullptr) return;
    if (m_depth > 0) throw error("agoq::nccl_transport::join: a group is open");
    detail::comm_side_queue* q = m_side;
    m_side = nullptr; // even if the calls below fail: never join twice
    AGOQ_CUDA_TRY(cudaEventRecord(q->to_compute, q->stream));
    AGOQ_CUDA_TRY(cudaStreamWaitEvent(m_stream, q->to_compute, 0));
  }
  //! Forked: transfers from now on wait for everything enqueued on stream() so far.
  void comm_wait_compute() {
    if (m_side == nullptr) return;
    AGOQ_CUDA_TRY(cudaEventRecord(m_side->to_comm, m_stream));
    AGOQ_CUDA_TRY(cudaStreamWaitEvent(m_side->stream, m_side->to_comm, 0));
  }
  //! Forked: mark k := every transfer so far (0 <= k < transport_marks).
  void comm_record(int k) {
    if (m_side == nullptr) return;
    AGOQ_CUDA_TRY(cudaEventRecord(mark(k), m_side->stream));
  }
  //! Forked: stream() waits for mark k.
  void compute_wait_comm(int k) {
    if (m_side == nullptr) return;
    AGOQ_CUDA_TRY(cudaStreamWaitEvent(m_stream, mark(k), 0));
  }

private:
  cudaEvent_t mark(int k) const {
    if (k < 0 || k >= transport_marks)
      throw invalid_argument("agoq::nccl_transport: mark must be in [0, transport_marks)");
    return m_side->marks[k];
  }

  ncclComm_t m_comm;
  cudaStream_t m_stream;
  bool m_overlap = true;
  detail::comm_side_queue* m_side = nullptr; //!< non-null while forked
  int m_rank = 0;
  int m_size = 1;
  int m_depth = 0;
};

static_assert(is_transport_v<nccl_transport>, "nccl_transport must model Transport");
static_assert(is_two_queue_transport_v<nccl_transport>, "nccl_transport has two queues");

//! Destroys the communication stream and events that nccl_transport cached for `comm` (on every
//! device it was used on); a no-op if there are none. Call it, if communicators are created and
//! destroyed repeatedly, after the last collective on `comm` was enqueued (pending work still
//! completes: CUDA releases a destroyed stream once its work is done) and before
//! ncclCommDestroy, from a thread that is not using `comm` concurrently. Otherwise the cache
//! keeps one stream and 2 + transport_marks events per communicator until the process exits.
inline void release_comm_streams(comm_ref comm) noexcept {
  detail::comm_side_queue_cache& cache = detail::side_queue_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto it = cache.entries.begin(); it != cache.entries.end();) {
    if (it->first.first == comm.get()) {
      detail::destroy_side_queue(*it->second);
      it = cache.entries.erase(it);
    } else {
      ++it;
    }
  }
}

} // namespace agoq

#endif // AGOQ_HAS_NCCL()

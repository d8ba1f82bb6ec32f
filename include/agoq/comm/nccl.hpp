// SPDX-License-Identifier: Apache-2.0
//! @file comm/nccl.hpp
//! agoq's NCCL glue (host code only, no kernels): `AGOQ_NCCL_TRY`, the non-owning communicator
//! view `comm_ref`, and `nccl_transport`, the Transport of comm/transport.hpp over
//! (ncclComm_t, cudaStream_t).
//!
//! Everything the transport does is enqueued on its stream (ncclSend/ncclRecv/ncclAllGather of
//! ncclUint8 inside ncclGroupStart/End): nothing blocks the host, so the schedules built on it can
//! be captured in a CUDA graph. Communicators must be blocking (the NCCL default); a
//! non-blocking communicator's ncclInProgress is reported as an error.
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
#include <string>

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

//! The Transport of comm/transport.hpp over one NCCL communicator and one CUDA stream (which must
//! belong to the communicator's device; the current device must be that device while it is used).
//! group_start/group_end -> ncclGroupStart/ncclGroupEnd, send/recv -> ncclSend/ncclRecv of
//! ncclUint8, all_gather -> ncclAllGather of ncclUint8 (in place when sendbuf is this rank's
//! slot), all enqueued on the stream; completion is stream-ordered, never waited for on the host.
//! Errors throw agoq::nccl_error. A transport destroyed with a group still open (an exception
//! between group_start and group_end) closes it, so NCCL's group depth stays balanced.
//!
//! Not for use inside a caller's open ncclGroupStart: the schedules interleave kernels with the
//! transfers, and NCCL defers grouped operations to the outermost ncclGroupEnd.
class nccl_transport {
public:
  //! The transport of `comm` on `stream`. Queries rank and size once. Throws agoq::nccl_error,
  //! or agoq::invalid_argument for a null communicator.
  nccl_transport(comm_ref comm, cudaStream_t stream) : m_comm(comm.get()), m_stream(stream) {
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
  }

  int rank() const noexcept { return m_rank; }
  int size() const noexcept { return m_size; }
  ncclComm_t comm() const noexcept { return m_comm; }
  cudaStream_t stream() const noexcept { return m_stream; }

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
    AGOQ_NCCL_TRY(ncclSend(buf, bytes, ncclUint8, peer, m_comm, m_stream));
  }
  void recv(void* buf, std::size_t bytes, int peer) {
    AGOQ_NCCL_TRY(ncclRecv(buf, bytes, ncclUint8, peer, m_comm, m_stream));
  }
  void all_gather(const void* sendbuf, void* recvbuf, std::size_t bytes) {
    AGOQ_NCCL_TRY(ncclAllGather(sendbuf, recvbuf, bytes, ncclUint8, m_comm, m_stream));
  }

private:
  ncclComm_t m_comm;
  cudaStream_t m_stream;
  int m_rank = 0;
  int m_size = 1;
  int m_depth = 0;
};

static_assert(is_transport_v<nccl_transport>, "nccl_transport must model Transport");

} // namespace agoq

#endif // AGOQ_HAS_NCCL()

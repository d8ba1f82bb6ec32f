// SPDX-License-Identifier: Apache-2.0
//! @file comm/host_transport.hpp
//! An in-process Transport and Executor (comm/transport.hpp) where threads are ranks, so the
//! collective schedules run in host tests with the reference codecs (agoq::ref).
//!
//! - host_fabric: shared by the ranks of one world; a FIFO mailbox per ordered pair (src, dst)
//!   and a barrier. Sends are eager (the bytes are copied into the mailbox at once); receives
//!   posted inside a group wait at group_end(), outside a group at once.
//! - host_transport: one rank's endpoint on a fabric.
//! - host_executor: the arithmetic, by agoq::ref (the bit-exact oracle for the GPU kernels).
//! - host_run(world, fn): runs fn(transport, executor) on `world` threads and rethrows the first
//!   exception after aborting the fabric (so no rank waits forever on a failed peer); a thread
//!   that cannot be started aborts the fabric too, and host_run throws once the others joined.
#pragma once

#include "agoq/comm/partition.hpp"
#include "agoq/comm/transport.hpp"
#include "agoq/error.hpp"
#include "agoq/quant/reference.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace agoq {

//! The shared state of one in-process world: mailboxes and a barrier. Thread-safe.
class host_fabric {
public:
  //! A world of `world` ranks. Throws agoq::invalid_argument
  //! ("agoq::host_fabric: world must be >= 1 ...") if world < 1.
  explicit host_fabric(int world) : m_world(check_world(world)) {
    m_boxes.resize(std::size_t(world) * std::size_t(world));
  }
  host_fabric(const host_fabric&) = delete;
  host_fabric& operator=(const host_fabric&) = delete;

  //! Number of ranks.
  int size() const noexcept { return m_world; }

  //! Appends a copy of buf[0, bytes) to the (src, dst) mailbox.
  void post(int src, int dst, const void* buf, std::size_t bytes) {
    const auto* p = static_cast<const std::uint8_t*>(buf);
    std::vector<std::uint8_t> msg(p, p + bytes);
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (m_aborted) throw error("agoq::host_fabric: aborted (another rank failed)");
      box(src, dst).push_back(std::move(msg));
    }
    m_cv.notify_all();
  }

  //! Waits for the next message from src to dst and copies it into buf. Throws agoq::error if
  //! its size is not `bytes` (the ranks disagree on a schedule) or if the fabric was aborted.
  void take(int src, int dst, void* buf, std::size_t bytes) {
    std::vector<std::uint8_t> msg;
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_cv.wait(lock, [&] { return m_aborted || !box(src, dst).empty(); });
      if (m_aborted) throw error("agoq::host_fabric: aborted (another rank failed)");
      msg = std::move(box(src, dst).front());
      box(src, dst).pop_front();
    }
    if (msg.size() != bytes)
      throw error("agoq::host_fabric: rank " + std::to_string(dst) + " expected " +
                  std::to_string(bytes) + " bytes from rank " + std::to_string(src) + ", got " +
                  std::to_string(msg.size()));
    if (bytes) std::memcpy(buf, msg.data(), bytes);
  }

  //! Blocks until all ranks have called barrier() (reusable). Throws agoq::error if aborted.
  void barrier() {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_aborted) throw error("agoq::host_fabric: aborted (another rank failed)");
    const std::uint64_t gen = m_generation;
    if (++m_arrived == m_world) {
      m_arrived = 0;
      ++m_generation;
      m_cv.notify_all();
      return;
    }
    m_cv.wait(lock, [&] { return m_aborted || m_generation != gen; });
    if (m_aborted) throw error("agoq::host_fabric: aborted (another rank failed)");
  }

  //! Wakes every waiting rank with an agoq::error; later operations throw too.
  void abort() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_aborted = true;
    }
    m_cv.notify_all();
  }

  //! True when every mailbox is empty (a finished, well-matched schedule leaves none behind).
  bool idle() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    for (const auto& b : m_boxes)
      if (!b.empty()) return false;
    return true;
  }

private:
  static int check_world(int world) {
    if (world < 1)
      throw invalid_argument("agoq::host_fabric: world must be >= 1 (got " + std::to_string(world) +
                             ")");
    return world;
  }
  std::deque<std::vector<std::uint8_t>>& box(int src, int dst) {
    return m_boxes[std::size_t(src) * std::size_t(m_world) + std::size_t(dst)];
  }

  int m_world;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::vector<std::deque<std::vector<std::uint8_t>>> m_boxes;
  int m_arrived = 0;
  std::uint64_t m_generation = 0;
  bool m_aborted = false;
};

//! One rank's Transport on a host_fabric (see comm/transport.hpp for the contract).
class host_transport {
public:
  //! Rank `rank` of `fabric`. Throws agoq::invalid_argument if rank is outside [0, size).
  host_transport(host_fabric& fabric, int rank) : m_fabric(&fabric), m_rank(rank) {
    if (rank < 0 || rank >= fabric.size())
      throw invalid_argument("agoq::host_transport: rank must be in [0, " +
                             std::to_string(fabric.size()) + ") (got " + std::to_string(rank) +
                             ")");
  }

  int rank() const noexcept { return m_rank; }
  int size() const noexcept { return m_fabric->size(); }

  void group_start() { ++m_depth; }

  void group_end() {
    if (m_depth == 0) throw error("agoq::host_transport::group_end: no open group");
    if (--m_depth > 0) return;
    std::vector<pending> todo;
    todo.swap(m_pending);
    for (const pending& p : todo)
      m_fabric->take(p.peer, m_rank, p.buf, p.bytes);
  }

  //! Eager: copies buf into the (rank, peer) mailbox now.
  void send(const void* buf, std::size_t bytes, int peer) {
    check_peer("send", peer);
    m_fabric->post(m_rank, peer, buf, bytes);
  }

  //! Inside a group: completes at group_end(). Outside: waits now.
  void recv(void* buf, std::size_t bytes, int peer) {
    check_peer("recv", peer);
    if (m_depth > 0)
      m_pending.push_back({buf, bytes, peer});
    else
      m_fabric->take(peer, m_rank, buf, bytes);
  }

  //! Point-to-point all-gather in rank order; in place when sendbuf is this rank's slot.
  void all_gather(const void* sendbuf, void* recvbuf, std::size_t bytes) {
    auto* out = static_cast<std::uint8_t*>(recvbuf);
    const int w = size();
    for (int p = 0; p < w; ++p)
      if (p != m_rank) m_fabric->post(m_rank, p, sendbuf, bytes);
    std::uint8_t* mine = out + std::size_t(m_rank) * bytes;
    if (bytes && mine != sendbuf) std::memmove(mine, sendbuf, bytes);
    for (int p = 0; p < w; ++p)
      if (p != m_rank) m_fabric->take(p, m_rank, out + std::size_t(p) * bytes, bytes);
  }

  //! The fabric (for barrier(), abort()).
  host_fabric& fabric() const noexcept { return *m_fabric; }

private:
  struct pending {
    void* buf;
    std::size_t bytes;
    int peer;
  };
  void check_peer(const char* fn, int peer) const {
    if (peer < 0 || peer >= size() || peer == m_rank)
      throw invalid_argument(std::string("agoq::host_transport::") + fn +
                             ": peer must be another rank in [0, " + std::to_string(size()) +
                             ") (got " + std::to_string(peer) + ")");
  }

  host_fabric* m_fabric;
  int m_rank;
  int m_depth = 0;
  std::vector<pending> m_pending;
};

//! The Executor of comm/transport.hpp on host memory, by the reference codecs (agoq::ref).
//! Every call is synchronous. The fused reductions are literally the unfused sequence (decode,
//! decode_add..., divide, then quantize or store) on a scratch fp32 buffer the executor keeps,
//! so they are the bit-exact oracle of the GPU's one-kernel versions.
struct host_executor {
  template <class T>
  void quantize(const T* x, std::int64_t n, void* msg, const quant_spec& s, std::uint64_t seed) {
    ref::quantize(x, message_view(msg, n, s), seed);
  }
  void decode(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    ref::dequantize(message_view(msg, n, s), acc);
  }
  void decode_add(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    ref::dequantize_accumulate(message_view(msg, n, s), acc, 1.0f); // fmaf(q, 1, a) == a + q
  }
  template <class T> void load(const T* x, std::int64_t n, float* acc) {
    for (std::int64_t i = 0; i < n; ++i)
      acc[i] = ref::detail::to_float(x[i]);
  }
  template <class T> void add(const T* x, std::int64_t n, float* acc) {
    for (std::int64_t i = 0; i < n; ++i)
      acc[i] = acc[i] + ref::detail::to_float(x[i]);
  }
  void divide(float* acc, std::int64_t n, float divisor) {
    for (std::int64_t i = 0; i < n; ++i)
      acc[i] = acc[i] / divisor;
  }
  template <class T> void store(const float* acc, std::int64_t n, T* y) {
    for (std::int64_t i = 0; i < n; ++i)
      y[i] = agoq::detail::to_output<T>(acc[i]);
  }
  template <class T> void dequantize(const void* msg, std::int64_t n, const quant_spec& s, T* y) {
    ref::dequantize(message_view(msg, n, s), y);
  }
  //! out = Q(D(m_0) + ... + D(m_{w-1}) [/ divisor]), m_j = msgs + j * stride.
  void reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
                       const quant_spec& s, float divisor, quantized_view out, std::uint64_t seed) {
    if (n <= 0) return;
    check_out(out, n, s);
    ref::quantize(sum(msgs, stride, w, n, s, divisor), out, seed);
  }
  //! y = T(D(m_0) + ... + D(m_{w-1}) [/ divisor]), RNE.
  template <class T>
  void reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                    const quant_spec& s, float divisor, T* y) {
    if (n <= 0) return;
    store(static_cast<const float*>(sum(msgs, stride, w, n, s, divisor)), n, y);
  }

private:
  //! The fp32 sum in rank order (and the division), in the scratch buffer.
  float* sum(const void* msgs, std::size_t stride, int w, std::int64_t n, const quant_spec& s,
             float divisor) {
    if (w < 1) throw invalid_argument("agoq::host_executor: w must be >= 1");
    m_acc.resize(std::size_t(n));
    float* acc = m_acc.data();
    const auto* m = static_cast<const std::uint8_t*>(msgs);
    decode(m, n, s, acc);
    for (int j = 1; j < w; ++j)
      decode_add(m + std::size_t(j) * stride, n, s, acc);
    if (divisor != 1.0f) divide(acc, n, divisor);
    return acc;
  }
  static void check_out(const quantized_view& out, std::int64_t n, const quant_spec& s) {
    if (out.rows != 1 || out.cols != n || out.spec.format != s.format ||
        out.spec.block != s.block || out.spec.scale != s.scale || !out.spec.symmetric)
      throw invalid_argument("agoq::host_executor::reduce_quantize: out must be a symmetric 1 x n "
                             "view with the messages' format, block and scale kind");
  }
  std::vector<float> m_acc;
};

static_assert(is_transport_v<host_transport>, "host_transport must model Transport");
static_assert(is_executor_v<host_executor, float>, "host_executor must model Executor");
static_assert(is_executor_v<host_executor, __nv_bfloat16>, "host_executor must model Executor");
static_assert(is_executor_v<host_executor, __half>, "host_executor must model Executor");

namespace detail {

//! host_run with the thread creation as a parameter: `spawn(body)` returns a std::thread running
//! body() (host_run passes one that constructs it; a test passes one that fails on purpose).
//! If starting rank r's thread throws (std::system_error when the system is out of threads or
//! memory, or anything else), the fabric is aborted so that the ranks already started stop
//! waiting for it, they are joined, and an agoq::error "agoq::host_run: starting the thread of
//! rank r of world failed: <what>" is thrown with the original exception nested
//! (std::throw_with_nested). Never std::terminate.
template <class Fn, class Spawn> inline void host_run_with(int world, Fn&& fn, Spawn&& spawn) {
  host_fabric fabric(world);
  std::exception_ptr first;
  std::mutex first_mutex;
  std::vector<std::thread> threads;
  threads.reserve(std::size_t(world));
  auto body = [&](int r) {
    try {
      host_transport tr(fabric, r);
      host_executor ex;
      fn(tr, ex);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(first_mutex);
        if (!first) first = std::current_exception();
      }
      fabric.abort();
    }
  };
  int r = 0;
  try {
    for (; r < world; ++r)
      threads.push_back(spawn([&body, r] { body(r); })); // no reallocation: reserved above
  } catch (...) {
    fabric.abort(); // wakes the started ranks blocked on the ones that never start
    for (auto& t : threads)
      t.join();
    std::string what = "unknown exception";
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    std::throw_with_nested(error("agoq::host_run: starting the thread of rank " +
                                 std::to_string(r) + " of " + std::to_string(world) +
                                 " failed: " + what));
  }
  for (auto& t : threads)
    t.join();
  if (first) std::rethrow_exception(first);
}

} // namespace detail

//! Runs fn(host_transport&, host_executor&) on `world` threads (rank r on thread r) over one
//! fresh host_fabric, joins them, and rethrows the exception of the rank that failed first (the
//! fabric is aborted on that failure so the other ranks stop waiting). Throws
//! agoq::invalid_argument if world < 1, and agoq::error (the cause nested) if a thread cannot be
//! started: the ranks already running are woken through the aborted fabric and joined first.
template <class Fn> inline void host_run(int world, Fn&& fn) {
  detail::host_run_with(world, std::forward<Fn>(fn), [](auto&& body) {
    return std::thread(std::forward<decltype(body)>(body));
  });
}

} // namespace agoq

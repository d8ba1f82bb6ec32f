// SPDX-License-Identifier: Apache-2.0
// A reusable barrier for rank threads (C++17 has no std::barrier), shared by the GPU collective
// tests and the all-reduce benchmark.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace agoq_test {

class thread_barrier {
public:
  explicit thread_barrier(int n) : m_n(n) {}
  //! Blocks until n threads have called wait() in this generation.
  void wait() {
    std::unique_lock<std::mutex> lock(m_mutex);
    const std::uint64_t gen = m_gen;
    if (++m_arrived == m_n) {
      m_arrived = 0;
      ++m_gen;
      m_cv.notify_all();
      return;
    }
    m_cv.wait(lock, [&] { return m_gen != gen; });
  }

private:
  int m_n;
  int m_arrived = 0;
  std::uint64_t m_gen = 0;
  std::mutex m_mutex;
  std::condition_variable m_cv;
};

} // namespace agoq_test

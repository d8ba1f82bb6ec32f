// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the GPU tests: skip without a GPU (fail instead when AGOQ_REQUIRE_GPU=1),
// device buffers, poisoning.
#pragma once

#include <agoq/error.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace agoq_test {

inline int gpu_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

inline bool gpu_required() {
  const char* v = std::getenv("AGOQ_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
}

//! A small owning device buffer for tests.
template <class T> struct device_buffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit device_buffer(size_t n) : count(n) {
    AGOQ_CUDA_TRY(cudaMalloc(&ptr, (n ? n : 1) * sizeof(T)));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(ptr); }
  void upload(const std::vector<T>& h) {
    AGOQ_CUDA_TRY(cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(count);
    AGOQ_CUDA_TRY(cudaMemcpy(h.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void fill_bytes(int byte) { AGOQ_CUDA_TRY(cudaMemset(ptr, byte, (count ? count : 1) * sizeof(T))); }
};

} // namespace agoq_test

//! First statement of every GPU test: skips without a GPU, fails then if AGOQ_REQUIRE_GPU is set.
#define AGOQ_REQUIRE_DEVICE()                                                                      \
  do {                                                                                             \
    if (::agoq_test::gpu_count() == 0) {                                                           \
      if (::agoq_test::gpu_required()) FAIL() << "AGOQ_REQUIRE_GPU is set but no GPU is visible";  \
      GTEST_SKIP() << "no CUDA device visible";                                                    \
    }                                                                                              \
  } while (0)

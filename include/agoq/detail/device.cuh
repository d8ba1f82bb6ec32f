// SPDX-License-Identifier: Apache-2.0
//! @file detail/device.cuh
//! The current device's SM count and compute capability, queried once per device per process:
//! every launcher sizes its grid from them, and cudaDeviceGetAttribute on each call cost a
//! driver round trip per launch.
#pragma once

#include "agoq/error.hpp"

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace agoq {
namespace detail {

struct device_info {
  int sms = 0; //!< streaming multiprocessors
  int cc = 0;  //!< compute capability, major x 10 + minor (e.g. 90)
};

//! device_info of the current device; cuda_error if it cannot be queried. Devices 0..63 are
//! cached (lock-free: racing first calls store the same value); others are queried each time.
inline status current_device_info(device_info& out) {
  constexpr int cached = 64;
  static std::atomic<std::uint64_t> cache[cached] = {}; // 0: not yet; else sms << 32 | cc
  int dev = 0;
  AGOQ_CUDA_RETURN(cudaGetDevice(&dev));
  if (dev >= 0 && dev < cached) {
    if (const std::uint64_t v = cache[dev].load(std::memory_order_relaxed)) {
      out = device_info{int(v >> 32), int(v & 0xffffffffu)};
      return status::success;
    }
  }
  int sms = 0, major = 0, minor = 0;
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  AGOQ_CUDA_RETURN(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  out = device_info{sms < 1 ? 1 : sms, major * 10 + minor};
  if (dev >= 0 && dev < cached)
    cache[dev].store(std::uint64_t(out.sms) << 32 | std::uint32_t(out.cc),
                     std::memory_order_relaxed);
  return status::success;
}

} // namespace detail
} // namespace agoq

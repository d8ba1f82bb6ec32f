// SPDX-License-Identifier: Apache-2.0
//! @file error.hpp
//! Two error tiers. Launchers return `[[nodiscard]] agoq::status`; host-level wrappers throw
//! `agoq::error` subclasses whose message names the argument and the rule it broke. The host-only
//! half lives in status.hpp; this header adds the CUDA runtime's errors and the TRY macros.
#pragma once

#include "agoq/status.hpp"

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace agoq {

//! A CUDA runtime call failed; carries the cudaError_t.
class cuda_error : public error {
public:
  cuda_error(cudaError_t code, const std::string& what)
      : error(what + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")"),
        m_code(code) {}
  cudaError_t code() const noexcept { return m_code; }

private:
  cudaError_t m_code;
};

namespace detail {

//! The CUDA error a launcher saw when it returned status::cuda_error (per thread).
inline cudaError_t& last_cuda_error() {
  thread_local cudaError_t code = cudaSuccess;
  return code;
}

//! Maps a CUDA result to a status, remembering the error for the throwing tier.
inline status from_cuda(cudaError_t e) {
  if (e == cudaSuccess) return status::success;
  last_cuda_error() = e;
  return status::cuda_error;
}

//! Before a launcher launches: an error the caller's own earlier code left pending on this thread
//! is returned (and left pending, so the caller still sees it) instead of being taken for, or
//! cleared as, the launch's own.
inline status no_pending_error() { return from_cuda(cudaPeekAtLastError()); }

//! The status of the kernel launch just made (no_pending_error() came first, so an error is the
//! launch's own; it is cleared, so later launches start clean).
inline status launched() { return from_cuda(cudaGetLastError()); }

//! Runs `fn`, turning what it throws into the status tier: nccl_error, cuda_error,
//! invalid_argument and any other agoq::error become the matching status, their message kept for
//! last_error_message(). For launchers built on throwing code (the collective schedules).
template <class Fn> status status_of(Fn&& fn) noexcept {
  try {
    fn();
  } catch (const nccl_error& e) {
    last_message() = e.what();
    return status::nccl_error;
  } catch (const cuda_error& e) {
    last_message() = e.what();
    return from_cuda(e.code());
  } catch (const invalid_argument& e) {
    last_message() = e.what();
    return status::invalid_argument;
  } catch (const error& e) {
    last_message() = e.what();
    return status::not_supported;
  }
  return status::success;
}

[[noreturn]] inline void throw_cuda_error(cudaError_t code, const char* expr, const char* file,
                                          int line) {
  (void)cudaGetLastError(); // clear a non-sticky error so the next call starts clean
  throw cuda_error(code, std::string(expr) + " at " + file + ":" + std::to_string(line));
}

[[noreturn]] inline void throw_status(status s, const char* expr, const char* file, int line) {
  const std::string where = std::string(expr) + " at " + file + ":" + std::to_string(line);
  if (s == status::invalid_argument) throw invalid_argument(last_message() + " (" + where + ")");
  if (s == status::cuda_error) throw cuda_error(last_cuda_error(), where);
  if (s == status::not_supported) throw error(last_message() + " (" + where + ")");
  throw error(where + " returned " + to_string(s));
}

} // namespace detail
} // namespace agoq

//! Throws agoq::cuda_error if the cudaError_t expression fails.
#define AGOQ_CUDA_TRY(expr)                                                                        \
  do {                                                                                             \
    const cudaError_t agoq_cuda_try_e_ = (expr);                                                   \
    if (agoq_cuda_try_e_ != cudaSuccess)                                                           \
      ::agoq::detail::throw_cuda_error(agoq_cuda_try_e_, #expr, __FILE__, __LINE__);               \
  } while (0)

//! Returns agoq::status::cuda_error from the enclosing function if the expression fails.
#define AGOQ_CUDA_RETURN(expr)                                                                     \
  do {                                                                                             \
    const cudaError_t agoq_cuda_return_e_ = (expr);                                                \
    if (agoq_cuda_return_e_ != cudaSuccess) return ::agoq::detail::from_cuda(agoq_cuda_return_e_); \
  } while (0)

//! Throws (invalid_argument, cuda_error or error) if an agoq::status expression is not success.
#define AGOQ_TRY(expr)                                                                             \
  do {                                                                                             \
    const ::agoq::status agoq_try_s_ = (expr);                                                     \
    if (agoq_try_s_ != ::agoq::status::success)                                                    \
      ::agoq::detail::throw_status(agoq_try_s_, #expr, __FILE__, __LINE__);                        \
  } while (0)

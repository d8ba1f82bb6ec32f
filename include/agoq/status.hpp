// SPDX-License-Identifier: Apache-2.0
//! @file status.hpp
//! The host-only half of the error tiers (no CUDA header needed, so the policy engine builds with
//! a plain C++ compiler): `agoq::status`, `agoq::error`, `invalid_argument`, `nccl_error` and
//! `last_error_message`. error.hpp adds the CUDA half (`cuda_error`, AGOQ_TRY, AGOQ_CUDA_TRY).
#pragma once

#include <stdexcept>
#include <string>

namespace agoq {

//! Result of a launcher. Anything but `success` means nothing was launched, or the launch failed.
enum class status : int {
  success = 0,
  invalid_argument, //!< an argument broke a documented rule; nothing was launched
  cuda_error,       //!< the CUDA runtime reported an error (e.g. at launch)
  nccl_error,       //!< NCCL reported an error
  not_supported,    //!< valid, but this build or device cannot do it (e.g. no NCCL)
};

//! A short, stable name for `s`, e.g. "invalid_argument".
constexpr const char* to_string(status s) noexcept {
  switch (s) {
  case status::success: return "success";
  case status::invalid_argument: return "invalid_argument";
  case status::cuda_error: return "cuda_error";
  case status::nccl_error: return "nccl_error";
  case status::not_supported: return "not_supported";
  }
  return "unknown_status";
}

//! Base of everything agoq throws.
class error : public std::runtime_error {
public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

//! An argument broke a rule; the message reads "<function>: <argument> <rule>".
class invalid_argument : public error {
public:
  explicit invalid_argument(const std::string& what) : error(what) {}
};

//! An NCCL call failed; carries the ncclResult_t as an int so this header needs no nccl.h.
class nccl_error : public error {
public:
  nccl_error(int code, const std::string& what)
      : error(what + ": ncclResult " + std::to_string(code)), m_code(code) {}
  int code() const noexcept { return m_code; }

private:
  int m_code;
};

namespace detail {

//! The sentence a launcher left when it returned invalid_argument (per thread).
inline std::string& last_message() {
  thread_local std::string message;
  return message;
}

//! Records why a launcher refuses its arguments and returns status::invalid_argument.
inline status refuse(const char* function, const char* rule) {
  last_message() = std::string(function) + ": " + rule;
  return status::invalid_argument;
}

//! Records why a launcher cannot run a valid request in this build (the kernel set of
//! quant/kernel_set.hpp) and returns status::not_supported.
inline status refuse_unsupported(const char* function, const char* rule) {
  last_message() = std::string(function) + ": " + rule;
  return status::not_supported;
}

} // namespace detail

//! Why the last launcher on this thread returned status::invalid_argument or
//! status::not_supported, e.g. "agoq::quantize: ld must be >= cols".
inline const char* last_error_message() noexcept { return detail::last_message().c_str(); }

} // namespace agoq

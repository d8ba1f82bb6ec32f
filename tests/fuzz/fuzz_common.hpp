// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the libFuzzer harnesses: a byte reader over the fuzzer's input, element-type
// helpers (raw bits <-> float / __half / __nv_bfloat16, largest finite value, rounding bounds),
// exact-size heap buffers (so ASan sees every overrun) and the failure report.
//
// Failures: fuzz_fail(tag, message) prints "agoq fuzz invariant [tag] failed: message" and
// aborts (libFuzzer then saves the input as crash-*). For local triage only, AGOQ_FUZZ_IGNORE
// may list tags (comma-separated) whose failures are counted and skipped instead; CI never sets
// it. Tags: exception, roundtrip, finite, bound, tiny, nan, zero, tail, determinism,
// consistency, value, guard, identical, chunk, workspace.
#pragma once

#include "agoq/format/element.hpp"
#include "agoq/format/format.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

namespace agoq_fuzz {

//! Reads the fuzzer's bytes front to back; past the end every read returns 0.
class reader {
public:
  reader(const std::uint8_t* data, std::size_t size) : m_p(data), m_n(size) {}
  std::uint8_t u8() { return m_i < m_n ? m_p[m_i++] : 0; }
  std::uint16_t u16() { return std::uint16_t(u8() | (unsigned(u8()) << 8)); }
  std::uint32_t u32() { return std::uint32_t(u16()) | (std::uint32_t(u16()) << 16); }
  std::uint64_t u64() { return std::uint64_t(u32()) | (std::uint64_t(u32()) << 32); }
  bool empty() const { return m_i >= m_n; }
  std::size_t left() const { return m_i < m_n ? m_n - m_i : 0; }

private:
  const std::uint8_t* m_p;
  std::size_t m_n;
  std::size_t m_i = 0;
};

inline bool tag_ignored(const char* tag) {
  const char* env = std::getenv("AGOQ_FUZZ_IGNORE");
  if (env == nullptr || *env == 0) return false;
  const std::string list = std::string(",") + env + ",";
  return list.find(std::string(",") + tag + ",") != std::string::npos;
}

//! Reports a broken invariant and aborts (unless the tag is in AGOQ_FUZZ_IGNORE).
[[gnu::format(printf, 2, 3)]] inline void fuzz_fail(const char* tag, const char* fmt, ...) {
  static long ignored = 0;
  if (tag_ignored(tag)) {
    ++ignored;
    if ((ignored & (ignored - 1)) == 0) // 1, 2, 4, ...: a trace of what is being skipped
      std::fprintf(stderr, "agoq fuzz: ignoring [%s] (%ld ignored so far)\n", tag, ignored);
    return;
  }
  std::fprintf(stderr, "agoq fuzz invariant [%s] failed: ", tag);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

//! A valid spec from two input bytes: format (b0), block, scale kind, rounding and symmetry (b1).
inline agoq::quant_spec spec_of(std::uint8_t b0, std::uint8_t b1) {
  agoq::quant_spec s;
  s.format = agoq::format(b0 % 10);
  s.block = 32 << (b1 & 3);
  s.scale = agoq::scale_kind(((b1 >> 2) & 3) % 3);
  s.rounding = (b1 & 0x40) ? agoq::rounding::stochastic : agoq::rounding::nearest_even;
  s.symmetric = !((b1 & 0x80) && agoq::is_integer(s.format));
  if (!s.symmetric) s.scale = agoq::scale_kind::fp32;
  return s;
}

//! Calls fn(T{}) for the element type that byte b picks (b % 3: float, __half, __nv_bfloat16).
template <class Fn> void with_element(std::uint8_t b, Fn&& fn) {
  switch (b % 3) {
  case 0: fn(float{}); break;
  case 1: fn(__half{}); break;
  default: fn(__nv_bfloat16{}); break;
  }
}

inline std::string describe(const agoq::quant_spec& s) {
  return std::string(agoq::to_string(s.format)) + (s.symmetric ? "" : "_asym") + "/" +
         std::to_string(s.block) + "/" + agoq::to_string(s.scale) + "/" +
         agoq::to_string(s.rounding);
}

//! Exact-size heap buffer: reading or writing one byte past it is an ASan report.
struct bytes {
  std::unique_ptr<std::uint8_t[]> p;
  std::size_t n = 0;
  explicit bytes(std::size_t size, std::uint8_t fill = 0) : p(new std::uint8_t[size]), n(size) {
    if (size) std::memset(p.get(), fill, size);
  }
  std::uint8_t* data() { return p.get(); }
  const std::uint8_t* data() const { return p.get(); }
  bool same(const bytes& o) const { return n == o.n && (n == 0 || !std::memcmp(data(), o.data(), n)); }
};

//! Exact-size heap array of T.
template <class T> struct array {
  std::unique_ptr<T[]> p;
  std::size_t n = 0;
  explicit array(std::size_t size) : p(new T[size]), n(size) {}
  T* data() { return p.get(); }
  const T* data() const { return p.get(); }
  T& operator[](std::size_t i) { return p[i]; }
  const T& operator[](std::size_t i) const { return p[i]; }
};

// ---- element types ------------------------------------------------------------------------

template <class T> struct elem;
template <> struct elem<float> {
  using bits_t = std::uint32_t;
  static constexpr const char* name = "float";
  static float from_bits(std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  static std::uint32_t to_bits(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  }
  static constexpr int exp_bits = 8, man_bits = 23;
  static double max_finite() { return double(std::numeric_limits<float>::max()); }
  static double rel_round() { return 0.0; }           // dequantize<float> writes the fp32 decode
  static double abs_round() { return 0.0; }
};
template <> struct elem<__half> {
  using bits_t = std::uint16_t;
  static constexpr const char* name = "half";
  static __half from_bits(std::uint16_t b) {
    __half_raw r;
    r.x = b;
    return __half(r);
  }
  static std::uint16_t to_bits(__half h) { return __half_raw(h).x; }
  static constexpr int exp_bits = 5, man_bits = 10;
  static double max_finite() { return 65504.0; }
  static double rel_round() { return std::ldexp(1.0, -11); } // half an fp16 ulp, relative
  static double abs_round() { return std::ldexp(1.0, -25); } // half the smallest fp16 subnormal
};
template <> struct elem<__nv_bfloat16> {
  using bits_t = std::uint16_t;
  static constexpr const char* name = "bf16";
  static __nv_bfloat16 from_bits(std::uint16_t b) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __nv_bfloat16(r);
  }
  static std::uint16_t to_bits(__nv_bfloat16 h) { return __nv_bfloat16_raw(h).x; }
  static constexpr int exp_bits = 8, man_bits = 7;
  static double max_finite() { return 0x1.FEp127; }
  static double rel_round() { return std::ldexp(1.0, -8); }
  static double abs_round() { return std::ldexp(1.0, -134); }
};

template <class T> double to_double(T v) { return double(agoq::detail::to_float(v)); }

//! Raw bits of T, read from the fuzzer (4 bytes for float, 2 for the 16-bit types).
template <class T> T raw_value(reader& r) {
  if constexpr (sizeof(typename elem<T>::bits_t) == 4)
    return elem<T>::from_bits(r.u32());
  else
    return elem<T>::from_bits(r.u16());
}

//! `bits` with a non-finite exponent replaced by the largest finite magnitude (sign kept).
template <class T> T finite_value(typename elem<T>::bits_t bits) {
  using E = elem<T>;
  using B = typename E::bits_t;
  const int total = int(sizeof(B)) * 8;
  const B exp_mask = B(((B(1) << E::exp_bits) - 1) << E::man_bits);
  if ((bits & exp_mask) == exp_mask) {
    const B sign = B(bits & (B(1) << (total - 1)));
    bits = B(sign | (exp_mask - (B(1) << E::man_bits)) | ((B(1) << E::man_bits) - 1));
  }
  return E::from_bits(bits);
}

//! A value of T whose exponent lies `down` (0..3) binades below T's largest, random mantissa.
template <class T> T near_max_value(reader& r) {
  using E = elem<T>;
  using B = typename E::bits_t;
  const int total = int(sizeof(B)) * 8;
  const std::uint8_t ctl = r.u8();
  const B man = B((sizeof(B) == 4 ? B(r.u32()) : B(r.u16())) & ((B(1) << E::man_bits) - 1));
  const B top_exp = B((B(1) << E::exp_bits) - 2); // the largest finite biased exponent
  const B e = B(top_exp - (ctl & 3));
  const B sign = (ctl & 0x80) ? B(B(1) << (total - 1)) : B(0);
  return E::from_bits(B(sign | B(e << E::man_bits) | man));
}

//! How the harnesses make input values from the fuzzer's bytes (one mode per input).
enum class value_mode : int {
  raw,      //!< every bit pattern of T: NaN, Inf, subnormals, the largest values
  finite,   //!< raw, with Inf/NaN replaced by the largest finite value
  scaled,   //!< per block: small integers times 2^e, e in [-170, 140] (tiny and huge blocks)
  sparse,   //!< mostly zeros, some raw finite values
  near_max, //!< within 16x of T's largest value
  count_
};

//! Fills x[0..n) (one logical block of up to `block` values per call site) under `mode`.
template <class T> void fill_values(reader& r, value_mode mode, T* x, std::int64_t n, int block) {
  int e = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (r.empty()) { // out of bytes: zeros (all-zero blocks, tails)
      x[i] = agoq::detail::from_float<T>(0.0f);
      continue;
    }
    switch (mode) {
    case value_mode::raw: x[i] = raw_value<T>(r); break;
    case value_mode::finite:
      x[i] = finite_value<T>(typename elem<T>::bits_t(sizeof(T) == 4 ? r.u32() : r.u16()));
      break;
    case value_mode::scaled:
      if (i % block == 0) e = int(r.u16() % 311) - 170;
      x[i] = agoq::detail::from_float<T>(
          float(std::ldexp(double(std::int8_t(r.u8())), e))); // |.| <= 128 * 2^140: may be Inf
      break;
    case value_mode::sparse:
      if (r.u8() < 40)
        x[i] = finite_value<T>(typename elem<T>::bits_t(sizeof(T) == 4 ? r.u32() : r.u16()));
      else
        x[i] = agoq::detail::from_float<T>(0.0f);
      break;
    default: x[i] = near_max_value<T>(r); break;
    }
  }
}

// ---- format facts (format/codec.hpp, int.hpp, fp8.hpp, fp4.hpp) ---------------------------

struct format_facts {
  bool integer;   //!< int2..int8
  double qmax;    //!< symmetric: largest code magnitude; asymmetric int: 2^N - 1
  int man_bits;   //!< FP formats: mantissa bits
  int emin;       //!< FP formats: exponent of the smallest normal
};

inline format_facts facts_of(const agoq::quant_spec& s) {
  using agoq::format;
  const int bits = agoq::bits_of(s.format);
  switch (s.format) {
  case format::fp8_e4m3: return {false, 448.0, 3, -6};
  case format::fp8_e5m2: return {false, 57344.0, 2, -14};
  case format::fp4_e2m1: return {false, 6.0, 1, 0};
  default:
    return {true, s.symmetric ? double((1 << (bits - 1)) - 1) : double((1 << bits) - 1), 0, 0};
  }
}

//! The smallest power of two >= v (v > 0), in double (exact).
inline double ceil_pow2(double v) {
  int e;
  const double m = std::frexp(v, &e); // v = m * 2^e, m in [0.5, 1)
  return m == 0.5 ? v : std::ldexp(1.0, e);
}

} // namespace agoq_fuzz

// SPDX-License-Identifier: Apache-2.0
// Argument checks of the quantizer launchers (quant/quantize.cuh), issue 17 defects 4 and 7.
// Every launcher checks its arguments before any CUDA call and returns on the first broken rule,
// so these tests run without a GPU (they never skip): the pointers are made-up addresses that are
// never dereferenced.
// - 4: a bare integer is always a seed, never a leading dimension (agoq::leading_dim), checked at
//   compile time on every overload set;
// - 7: misaligned x / y / acc / zeros, out-of-range scale_kind / rounding, shapes whose byte
//   counts overflow std::int64_t and leading dimensions whose extent overflows are refused with
//   status::invalid_argument and a last_error_message() naming the argument.
#include "gpu/gpu_test.cuh"

#include <agoq/agoq.cuh>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace {

using agoq::format;
using agoq::quant_spec;
using agoq::status;

// ---- compile time: which overload an argument list binds to ----

template <class, template <class...> class Op, class... A> struct detect : std::false_type {};
template <template <class...> class Op, class... A>
struct detect<std::void_t<Op<A...>>, Op, A...> : std::true_type {};
template <template <class...> class Op, class... A>
constexpr bool compiles = detect<void, Op, A...>::value;

template <class... A> using quantize_t = decltype(agoq::quantize(std::declval<A>()...));
template <class... A> using dequantize_t = decltype(agoq::dequantize(std::declval<A>()...));
template <class... A>
using dequantize_accumulate_t = decltype(agoq::dequantize_accumulate(std::declval<A>()...));
template <class... A>
using accumulate_requantize_t = decltype(agoq::accumulate_requantize(std::declval<A>()...));

using qv = agoq::quantized_view;
using cqv = agoq::const_quantized_view;
using ld_t = agoq::leading_dim;
using i64 = std::int64_t;
using u64 = std::uint64_t;
using strm = cudaStream_t;

// A bare integer never lands where the leading dimension goes ...
static_assert(!compiles<quantize_t, const float*, i64, qv, u64, strm>);
static_assert(!compiles<dequantize_t, cqv, float*, i64, strm>);
static_assert(!compiles<dequantize_accumulate_t, cqv, float*, i64, float, strm>);
static_assert(!compiles<accumulate_requantize_t, qv, const float*, i64, u64, strm>);
// ... nor in alpha (an integer third argument of dequantize_accumulate is refused) ...
static_assert(!compiles<dequantize_accumulate_t, cqv, float*, i64, strm>);
static_assert(!compiles<dequantize_accumulate_t, cqv, float*, int, strm>);
// ... and a leading dimension never lands where the seed goes.
static_assert(!compiles<quantize_t, const float*, qv, ld_t, strm>);
static_assert(!compiles<accumulate_requantize_t, qv, const float*, ld_t, strm>);
static_assert(!compiles<accumulate_requantize_t, qv, const float*, ld_t, ld_t, strm>);
// The documented calls (README, examples) bind as meant: an integer is the seed of the 1-D forms,
// leading_dim{ld} selects the 2-D forms.
static_assert(compiles<quantize_t, const __nv_bfloat16*, qv, int, strm>);
static_assert(compiles<quantize_t, const float*, qv, i64, strm>);
static_assert(compiles<quantize_t, const __half*, ld_t, qv, u64, strm>);
static_assert(compiles<dequantize_t, cqv, __nv_bfloat16*, strm>);
static_assert(compiles<dequantize_t, cqv, float*, ld_t, strm>);
static_assert(compiles<dequantize_accumulate_t, cqv, float*, float, strm>);
static_assert(compiles<dequantize_accumulate_t, cqv, float*, ld_t, float, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const __nv_bfloat16*, int, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const float*, i64, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const float*, ld_t, u64, strm>);
// a device seed takes the seed's place in every form; the type-erased forms take element_type
using dseed = agoq::device_seed;
static_assert(compiles<quantize_t, const float*, qv, dseed, strm>);
static_assert(compiles<quantize_t, const __half*, ld_t, qv, dseed, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const __nv_bfloat16*, dseed, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const float*, ld_t, dseed, strm>);
static_assert(!compiles<quantize_t, const float*, qv, const u64*, strm>); // spelled device_seed{p}
using et = agoq::element_type;
static_assert(compiles<quantize_t, const void*, et, ld_t, qv, u64, strm>);
static_assert(compiles<dequantize_t, cqv, void*, et, ld_t, strm>);
static_assert(compiles<accumulate_requantize_t, qv, const void*, et, ld_t, u64, strm>);
static_assert(!compiles<quantize_t, const void*, et, i64, qv, u64, strm>);

// ---- run time: refused before any CUDA call ----

template <class T> T* at(std::uintptr_t address) { return reinterpret_cast<T*>(address); }

// Aligned made-up addresses for the quantized side (never dereferenced).
void* const codes = at<void>(0x100000);
void* const scales = at<void>(0x200000);
float* const zeros = at<float>(0x300000);

qv view(const quant_spec& spec, i64 rows, i64 cols) {
  return qv{codes, scales, spec.symmetric ? nullptr : zeros, rows, cols, spec};
}

//! s is invalid_argument and the message starts with `fn` and contains `needle`.
::testing::AssertionResult refused(status s, const char* fn, const char* needle) {
  const std::string m = agoq::last_error_message();
  if (s != status::invalid_argument)
    return ::testing::AssertionFailure() << "status " << agoq::to_string(s) << ", expected "
                                         << "invalid_argument (" << needle << ")";
  if (m.rfind(fn, 0) != 0 || m.find(needle) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message \"" << m << "\" lacks \"" << fn << "\" / \"" << needle << "\"";
  return ::testing::AssertionSuccess();
}

template <class T> void misaligned_element_pointers() {
  const quant_spec spec{format::int8, 128};
  const qv v = view(spec, 2, 256);
  const auto* x_bad = reinterpret_cast<const T*>(std::uintptr_t(0x400001)); // alignof(T) >= 2
  T* y_bad = const_cast<T*>(x_bad);
  ASSERT_NE(reinterpret_cast<std::uintptr_t>(x_bad) % alignof(T), 0u);
  const strm st{};
  EXPECT_TRUE(refused(agoq::quantize(x_bad, ld_t{256}, v, 0, st),
                      "agoq::quantize: ", "x must be aligned to alignof(T)"));
  EXPECT_TRUE(refused(agoq::quantize(x_bad, view(spec, 1, 256), 0, st),
                      "agoq::quantize: ", "x must be aligned"));
  EXPECT_TRUE(refused(agoq::dequantize(cqv(v), y_bad, ld_t{256}, st),
                      "agoq::dequantize: ", "y must be aligned to alignof(T)"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(v, x_bad, ld_t{256}, 1, st),
                      "agoq::accumulate_requantize: ", "x must be aligned to alignof(T)"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(view(spec, 1, 256), x_bad, 1, st),
                      "agoq::accumulate_requantize: ", "x must be aligned"));
}

TEST(launcher_args, refuse_misaligned_element_pointers) {
  misaligned_element_pointers<float>();
  misaligned_element_pointers<__half>();
  misaligned_element_pointers<__nv_bfloat16>();
  const qv v = view(quant_spec{format::int4, 64}, 3, 100);
  EXPECT_TRUE(
      refused(agoq::dequantize_accumulate(cqv(v), at<float>(0x400002), ld_t{100}, 1.0f, strm{}),
              "agoq::dequantize_accumulate: ", "acc must be 4-byte aligned"));
  EXPECT_TRUE(refused(agoq::dequantize_accumulate(cqv(view(quant_spec{}, 1, 100)),
                                                  at<float>(0x400001), 0.5f, strm{}),
                      "agoq::dequantize_accumulate: ", "acc must be 4-byte aligned"));
}

TEST(launcher_args, refuse_bad_device_seeds_and_element_types) {
  quant_spec spec{format::int8, 128};
  spec.rounding = agoq::rounding::stochastic;
  const auto* x = at<const __nv_bfloat16>(0x400000);
  EXPECT_TRUE(refused(agoq::quantize(x, view(spec, 1, 256), agoq::device_seed{}, strm{}),
                      "agoq::quantize: ", "seed.ptr must not be null"));
  EXPECT_TRUE(
      refused(agoq::accumulate_requantize(view(spec, 1, 256), x, agoq::device_seed{}, strm{}),
              "agoq::accumulate_requantize: ", "seed.ptr must not be null"));
  const agoq::device_seed odd{at<const u64>(0x500004), 0};
  EXPECT_TRUE(refused(agoq::quantize(x, view(spec, 1, 256), odd, strm{}),
                      "agoq::quantize: ", "seed.ptr must be 8-byte aligned"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(view(spec, 2, 128), x, ld_t{128}, odd, strm{}),
                      "agoq::accumulate_requantize: ", "seed.ptr must be 8-byte aligned"));
  // type-erased: a value that is no element_type, and the template's own checks
  EXPECT_TRUE(
      refused(agoq::quantize(x, agoq::element_type(3), ld_t{256}, view(spec, 1, 256), 0, strm{}),
              "agoq::quantize: ", "t must be element_type::f32, f16 or bf16"));
  EXPECT_TRUE(refused(agoq::dequantize(cqv(view(spec, 1, 256)), at<void>(0x400001),
                                       agoq::element_type::f16, ld_t{256}, strm{}),
                      "agoq::dequantize: ", "y must be aligned to alignof(T)"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(view(spec, 1, 256), x, agoq::element_type::f32,
                                                  ld_t{100}, 0, strm{}),
                      "agoq::accumulate_requantize: ", "ld must be >= cols"));
}

TEST(launcher_args, refuse_misaligned_zeros) {
  quant_spec spec{format::int4, 32};
  spec.symmetric = false;
  qv v = view(spec, 1, 64);
  v.zeros = at<float>(0x300002);
  const auto* x = at<const float>(0x400000);
  EXPECT_TRUE(
      refused(agoq::quantize(x, v, 0, strm{}), "agoq::quantize: ", "zeros must be 4-byte aligned"));
  EXPECT_TRUE(refused(agoq::dequantize(cqv(v), at<float>(0x400000), strm{}),
                      "agoq::dequantize: ", "zeros must be 4-byte aligned"));
  EXPECT_TRUE(refused(agoq::dequantize_accumulate(cqv(v), at<float>(0x400000), 1.0f, strm{}),
                      "agoq::dequantize_accumulate: ", "zeros must be 4-byte aligned"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(v, x, 0, strm{}),
                      "agoq::accumulate_requantize: ", "zeros must be 4-byte aligned"));
}

TEST(launcher_args, refuse_out_of_range_scale_and_rounding) {
  const auto* x = at<const __nv_bfloat16>(0x400000);
  quant_spec spec{format::int8, 128};
  spec.scale = static_cast<agoq::scale_kind>(3);
  EXPECT_TRUE(refused(agoq::quantize(x, view(spec, 1, 128), 0, strm{}),
                      "agoq::quantize: ", "spec.scale is not a known scale_kind"));
  spec = quant_spec{format::fp8_e4m3, 32};
  spec.rounding = static_cast<agoq::rounding>(2);
  EXPECT_TRUE(refused(agoq::accumulate_requantize(view(spec, 1, 128), x, 0, strm{}),
                      "agoq::accumulate_requantize: ", "spec.rounding is not a known rounding"));
  EXPECT_TRUE(refused(agoq::dequantize(cqv(view(spec, 1, 128)), at<__half>(0x400000), strm{}),
                      "agoq::dequantize: ", "spec.rounding"));
}

TEST(launcher_args, refuse_shapes_whose_byte_counts_overflow) {
  const quant_spec spec{format::int8, 128};
  const i64 big = i64(1) << 33; // rows = cols = 2^33: codes_bytes wraps; it used to "succeed"
  const auto* x = at<const float>(0x400000);
  float* y = at<float>(0x400000);
  EXPECT_TRUE(refused(agoq::quantize(x, ld_t{big}, view(spec, big, big), 0, strm{}),
                      "agoq::quantize: ", "rows x cols is too large"));
  EXPECT_TRUE(refused(agoq::dequantize(cqv(view(spec, big, big)), y, ld_t{big}, strm{}),
                      "agoq::dequantize: ", "rows x cols is too large"));
  EXPECT_TRUE(
      refused(agoq::dequantize_accumulate(cqv(view(spec, big, big)), y, ld_t{big}, 1.0f, strm{}),
              "agoq::dequantize_accumulate: ", "rows x cols is too large"));
  EXPECT_TRUE(refused(agoq::accumulate_requantize(view(spec, big, big), x, ld_t{big}, 0, strm{}),
                      "agoq::accumulate_requantize: ", "rows x cols is too large"));
  // one row whose padded length overflows
  EXPECT_TRUE(refused(agoq::quantize(x, view(spec, 1, INT64_MAX), 0, strm{}),
                      "agoq::quantize: ", "rows x cols is too large"));
  // (rows - 1) x ld + cols elements of T do not fit in std::int64_t bytes
  const qv tall = view(spec, i64(1) << 20, 128);
  EXPECT_TRUE(refused(agoq::quantize(x, ld_t{INT64_MAX / 2}, tall, 0, strm{}),
                      "agoq::quantize: ", "ld is too large"));
  const i64 edge = (INT64_MAX / 4 - 128) / ((i64(1) << 20) - 1); // the largest ld for float
  EXPECT_TRUE(refused(agoq::dequantize(cqv(tall), y, ld_t{edge + 1}, strm{}),
                      "agoq::dequantize: ", "ld is too large"));
  // at the edge the extent fits: the check passes and the next rule (y null) refuses
  EXPECT_TRUE(refused(agoq::dequantize(cqv(tall), static_cast<float*>(nullptr), ld_t{edge}, strm{}),
                      "agoq::dequantize: ", "y must not be null"));
  // the existing rules still come first and read as before
  EXPECT_TRUE(refused(agoq::quantize(x, ld_t{100}, view(spec, 2, 128), 0, strm{}),
                      "agoq::quantize: ", "ld must be >= cols"));
  EXPECT_TRUE(refused(agoq::quantize(x, ld_t{128}, view(spec, -1, 128), 0, strm{}),
                      "agoq::quantize: ", "rows must be >= 0"));
}

} // namespace

// SPDX-License-Identifier: Apache-2.0
// The kernel set (quant/kernel_set.hpp) as a trimmed build sees it: this executable is compiled
// with the definitions CMake derives from AGOQ_FORMATS="int8;int4_asym",
// AGOQ_ROUNDINGS=nearest_even and AGOQ_ELEMENT_TYPES=bfloat16 (tests/CMakeLists.txt), so it tests
// CMake's mapping and the headers together. Refusals happen before any CUDA call, so these run
// without a GPU; the launches inside the set need one and skip without it.
#include "gpu/gpu_test.cuh"

#include <agoq/agoq.cuh>

#include <cuda_bf16.h>

#include <cstdint>
#include <string>

namespace {

using agoq::element_type;
using agoq::format;
using agoq::leading_dim;
using agoq::quant_spec;
using agoq::status;

// made-up, aligned addresses: a refused call never dereferences them
auto* const codes = reinterpret_cast<void*>(std::uintptr_t(1) << 20);
auto* const scales = reinterpret_cast<float*>(std::uintptr_t(2) << 20);
auto* const zeros = reinterpret_cast<float*>(std::uintptr_t(3) << 20);
auto* const x = reinterpret_cast<const __nv_bfloat16*>(std::uintptr_t(4) << 20);

agoq::quantized_view view(const quant_spec& s) {
  return {codes, scales, s.symmetric ? nullptr : zeros, 1, 4096, s};
}

bool mentions(const std::string& what) {
  return std::string(agoq::last_error_message()).find(what) != std::string::npos;
}

TEST(KernelSet, TheConfiguredSetIsWhatTheHeadersSee) {
  static_assert(agoq::kernel_set_has(format::int8, true));
  static_assert(!agoq::kernel_set_has(format::int8, false));
  static_assert(agoq::kernel_set_has(format::int4, false));
  static_assert(!agoq::kernel_set_has(format::int4, true));
  static_assert(!agoq::kernel_set_has(format::fp8_e4m3, true));
  static_assert(agoq::kernel_set_has(agoq::rounding::nearest_even));
  static_assert(!agoq::kernel_set_has(agoq::rounding::stochastic));
  static_assert(agoq::kernel_set_has(element_type::bf16));
  static_assert(agoq::kernel_set_has(element_type::f32)); // always: the fp32 accumulators
  static_assert(!agoq::kernel_set_has(element_type::f16));
  SUCCEED();
}

TEST(KernelSet, FormatsOutsideTheSetAreNotSupported) {
  for (format f : {format::int4, format::int6, format::fp8_e4m3, format::fp4_e2m1}) {
    const quant_spec s{f, 32};
    EXPECT_EQ(agoq::quantize(x, view(s), 0, nullptr), status::not_supported) << to_string(f);
    EXPECT_TRUE(mentions(std::string("agoq::quantize: ") + to_string(f)))
        << agoq::last_error_message();
    EXPECT_TRUE(mentions("(AGOQ_FORMATS)"));
    EXPECT_EQ(agoq::dequantize(agoq::const_quantized_view(view(s)), const_cast<__nv_bfloat16*>(x),
                               nullptr),
              status::not_supported);
    EXPECT_EQ(
        agoq::dequantize_accumulate(agoq::const_quantized_view(view(s)), scales, 1.0f, nullptr),
        status::not_supported);
    EXPECT_EQ(agoq::accumulate_requantize(view(s), x, 0, nullptr), status::not_supported);
  }
  quant_spec asym8{format::int8, 128};
  asym8.symmetric = false;
  EXPECT_EQ(agoq::quantize(x, view(asym8), 0, nullptr), status::not_supported);
  EXPECT_TRUE(mentions("int8 (asymmetric) is not in this build's kernel set (AGOQ_FORMATS)"))
      << agoq::last_error_message();
}

TEST(KernelSet, RoundingsAndElementTypesOutsideTheSetAreNotSupported) {
  quant_spec sr{format::int8, 128};
  sr.rounding = agoq::rounding::stochastic;
  EXPECT_EQ(agoq::quantize(x, view(sr), 0, nullptr), status::not_supported);
  EXPECT_TRUE(mentions("stochastic rounding is not in this build's kernel set (AGOQ_ROUNDINGS)"))
      << agoq::last_error_message();
  const quant_spec s{format::int8, 128};
  const auto* xh = reinterpret_cast<const __half*>(x);
  EXPECT_EQ(agoq::quantize(xh, view(s), 0, nullptr), status::not_supported);
  EXPECT_TRUE(mentions("(AGOQ_ELEMENT_TYPES)")) << agoq::last_error_message();
  // the type-erased entry points reach the same refusal
  EXPECT_EQ(agoq::quantize(x, element_type::f16, leading_dim{4096}, view(s), 0, nullptr),
            status::not_supported);
  EXPECT_TRUE(mentions("(AGOQ_ELEMENT_TYPES)"));
  EXPECT_EQ(agoq::quantize(x, element_type(7), leading_dim{4096}, view(s), 0, nullptr),
            status::invalid_argument);
  EXPECT_TRUE(mentions("t must be element_type::f32, f16 or bf16"));
  // AGOQ_TRY turns the refusal into an exception carrying the message
  try {
    AGOQ_TRY(agoq::quantize(x, view(sr), 0, nullptr));
    ADD_FAILURE() << "no exception";
  } catch (const agoq::error& e) {
    EXPECT_NE(std::string(e.what()).find("(AGOQ_ROUNDINGS)"), std::string::npos) << e.what();
  }
}

TEST(KernelSet, InvalidArgumentsAreCheckedBeforeTheSet) {
  const quant_spec bad{format::int4, 48}; // block 48 is invalid, int4 is outside the set
  EXPECT_EQ(agoq::quantize(x, view(bad), 0, nullptr), status::invalid_argument);
}

TEST(KernelSet, SpecsInsideTheSetRunOnTheGpu) {
  AGOQ_REQUIRE_DEVICE();
  const std::int64_t n = 1000;
  agoq_test::device_buffer<__nv_bfloat16> dx(n), dy(n);
  quant_spec s{format::int4, 32};
  s.symmetric = false;
  agoq_test::device_buffer<std::uint8_t> dc(agoq::codes_bytes(s, 1, n));
  agoq_test::device_buffer<float> ds(agoq::scales_count(s, 1, n)), dz(agoq::scales_count(s, 1, n));
  std::vector<__nv_bfloat16> h(n);
  for (std::int64_t i = 0; i < n; ++i)
    h[i] = __float2bfloat16(float(i % 37) - 3.0f);
  dx.upload(h);
  const agoq::quantized_view q{dc.ptr, ds.ptr, dz.ptr, 1, n, s};
  ASSERT_EQ(agoq::quantize(dx.ptr, element_type::bf16, leading_dim{n}, q, 0, nullptr),
            status::success)
      << agoq::last_error_message();
  // decoders do not round: the same codes under a stochastic spec decode in this
  // nearest-even-only build
  agoq::const_quantized_view d(q);
  d.spec.rounding = agoq::rounding::stochastic;
  ASSERT_EQ(agoq::dequantize(d, dy.ptr, nullptr), status::success) << agoq::last_error_message();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  // 0..36 - 3 in 32-element blocks: within half a step (range / 15) of the input
  const std::vector<__nv_bfloat16> y = dy.download();
  for (std::int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(__bfloat162float(y[i]), __bfloat162float(h[i]), 36.0f / 15 / 2 + 0.2f) << i;
}

} // namespace

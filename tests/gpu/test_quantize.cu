// SPDX-License-Identifier: Apache-2.0
// GPU quantizers against the host reference, bit for bit: every format x symmetry x block x
// element type, nearest and stochastic rounding, every scale kind, odd lengths and 2-D strided
// tensors; poisoned outputs prove every element is written and nothing past the end is.
#include "gpu/gpu_test.cuh"

#include <agoq/agoq.cuh>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using agoq::format;
using agoq::quant_spec;
using agoq_test::device_buffer;

constexpr std::uint8_t kPoison = 0xA5;
constexpr size_t kGuard = 64; // bytes past the end of every output that must stay poisoned

//! Test data: blocks cycle through normal, heavy-tailed, near-limit and special blocks: all zero,
//! NaN or +-Inf among normal values (the block's scale becomes NaN), signed zeros at the block
//! minimum (the asymmetric zero point is -0 in whatever order the lanes reduce), tiny blocks
//! (scales below 2^-126: the pre-scaled encode), and blocks at fp16's and bf16's largest values
//! (decoded products past the output type's range saturate; +-max asymmetric ranges overflow).
std::vector<float> make_data(std::int64_t rows, std::int64_t ld, int block, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.05f, 1.0f);
  std::vector<float> x(size_t(rows * ld));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < ld; ++c) {
      const std::int64_t b = c / block + r * 7;
      const std::int64_t i = c % block;
      float v = 0.0f;
      switch (b % 12) {
      case 0: v = normal(gen); break;
      case 1: v = normal(gen) / (uni(gen) * uni(gen)); break; // heavy tail
      case 2: v = (c % block == 0) ? 448.0f * 3.0f : float(int(normal(gen) * 3.0f)) + 0.5f; break;
      case 3: v = 0.0f; break;                   // all-zero block
      case 4: v = normal(gen) * 1e-5f; break;    // realistic gradient magnitude
      case 5: v = normal(gen) * 60000.0f; break; // near fp16/e5m2 limits
      case 6: v = normal(gen) + 3.0f; break;     // skewed (asymmetric case)
      case 7: { // -Inf among normal values; in some blocks also a NaN, in others also +Inf
        constexpr float inf = std::numeric_limits<float>::infinity();
        v = i == 3 ? -inf : normal(gen);
        if (i == 5 && (b / 9) % 2 == 0) v = std::numeric_limits<float>::quiet_NaN();
        if (i == block - 2 && (b / 9) % 3 == 1) v = inf;
        break;
      }
      case 8: v = i % 3 == 0 ? -0.0f : i % 3 == 1 ? 0.0f : std::fabs(normal(gen)); break;
      case 9: v = normal(gen) * ((b / 12) % 2 == 0 ? 1e-38f : 3e-41f); break; // tiny
      case 10: v = (i == 0 ? 65504.0f : 65504.0f * uni(gen)) * (i % 2 ? -1.0f : 1.0f); break;
      case 11: v = (i == 0 ? 3.38e38f : 3.38e38f * uni(gen)) * (i % 2 ? -1.0f : 1.0f); break;
      }
      x[size_t(r * ld + c)] = v;
    }
  }
  return x;
}

template <class T> std::vector<T> convert(const std::vector<float>& x) {
  std::vector<T> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = T(x[i]);
  return out;
}

struct combo {
  format fmt;
  bool symmetric;
};

std::vector<combo> all_combos() {
  std::vector<combo> v;
  for (format f : {format::int2, format::int3, format::int4, format::int5, format::int6,
                   format::int7, format::int8}) {
    v.push_back({f, true});
    v.push_back({f, false});
  }
  for (format f : {format::fp8_e4m3, format::fp8_e5m2, format::fp4_e2m1})
    v.push_back({f, true});
  return v;
}

//! Device output buffers with a poisoned guard zone past the end. The codes start `off` bytes
//! into their allocation (odd-width codes may start at any byte).
struct qbuffers {
  size_t off, code_bytes, scale_bytes, zero_count;
  device_buffer<std::uint8_t> codes, scales;
  device_buffer<float> zeros;
  qbuffers(const quant_spec& s, std::int64_t rows, std::int64_t cols, size_t codes_offset = 0)
      : off(codes_offset), code_bytes(off + agoq::codes_bytes(s, rows, cols)),
        scale_bytes(agoq::scales_bytes(s, rows, cols)),
        zero_count(s.symmetric ? 0 : size_t(agoq::scales_count(s, rows, cols))),
        codes(code_bytes + kGuard), scales(scale_bytes + kGuard), zeros(zero_count + kGuard) {
    codes.fill_bytes(kPoison);
    scales.fill_bytes(kPoison);
    zeros.fill_bytes(kPoison);
  }
  agoq::quantized_view view(const quant_spec& s, std::int64_t rows, std::int64_t cols) {
    return {codes.ptr + off, scales.ptr, s.symmetric ? nullptr : zeros.ptr, rows, cols, s};
  }
};

void expect_guard(const std::vector<std::uint8_t>& bytes, size_t used, const char* what) {
  for (size_t i = used; i < bytes.size(); ++i)
    ASSERT_EQ(bytes[i], kPoison) << what << " written past its end at byte " << i - used;
}

template <class T> bool is_nan(T v) {
  if constexpr (std::is_same_v<T, float>)
    return std::isnan(v);
  else
    return std::isnan(float(v));
}

//! Bitwise equal, except that any NaN equals any NaN: the GPU's arithmetic returns the canonical
//! NaN 0x7fffffff where the host keeps an operand's payload; both decode a bad block to NaN.
template <class T>
::testing::AssertionResult same_values(const std::vector<T>& g, const std::vector<T>& h) {
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::memcmp(&g[i], &h[i], sizeof(T)) == 0 || (is_nan(g[i]) && is_nan(h[i]))) continue;
    return ::testing::AssertionFailure() << "first difference at element " << i << ": "
                                         << float(g[i]) << " (GPU) vs " << float(h[i]) << " (host)";
  }
  return ::testing::AssertionSuccess();
}

template <class T> std::string type_name() {
  if (std::is_same_v<T, float>) return "float";
  if (std::is_same_v<T, __half>) return "half";
  return "bf16";
}

//! Quantize + dequantize + dequantize_accumulate + accumulate_requantize of one shape and spec,
//! each compared with the host reference bit for bit. The outputs of dequantize and
//! dequantize_accumulate have leading dimension cols + out_pad (poisoned gaps when out_pad > 0).
//! The codes start codes_offset bytes into their buffer; x, y and the accumulator start
//! elem_offset elements into theirs (1: not 16-byte aligned, so no vector or span accesses).
template <class T>
void check_case(const quant_spec& spec, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                std::uint64_t seed, std::int64_t out_pad = 3, size_t codes_offset = 0,
                size_t elem_offset = 0) {
  SCOPED_TRACE(::testing::Message()
               << spec << " " << type_name<T>() << " rows=" << rows << " cols=" << cols
               << " ld=" << ld << " out_pad=" << out_pad << " codes_offset=" << codes_offset
               << " elem_offset=" << elem_offset);
  const std::vector<float> xf = make_data(rows, ld, spec.block, unsigned(cols * 31 + rows));
  const std::vector<T> x = convert<T>(xf);
  std::vector<T> x_buf(x.size() + elem_offset);
  std::copy(x.begin(), x.end(), x_buf.begin() + std::ptrdiff_t(elem_offset));
  device_buffer<T> d_x_buf(x_buf.size());
  d_x_buf.upload(x_buf);
  T* const d_x = d_x_buf.ptr + elem_offset;

  // Host reference.
  qbuffers dev(spec, rows, cols, codes_offset);
  std::vector<std::uint8_t> h_codes(dev.code_bytes - dev.off), h_scales(dev.scale_bytes);
  std::vector<float> h_zeros(dev.zero_count);
  agoq::quantized_view hv{
      h_codes.data(), h_scales.data(), spec.symmetric ? nullptr : h_zeros.data(), rows, cols, spec};
  agoq::ref::quantize(x.data(), agoq::leading_dim{ld}, hv, seed);

  // quantize
  AGOQ_TRY(
      agoq::quantize(d_x, agoq::leading_dim{ld}, dev.view(spec, rows, cols), seed, cudaStream_t{}));
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  const auto g_codes = dev.codes.download(), g_scales = dev.scales.download();
  ASSERT_EQ(0, std::memcmp(g_codes.data() + dev.off, h_codes.data(), h_codes.size()))
      << "codes differ";
  for (size_t i = 0; i < dev.off; ++i)
    ASSERT_EQ(g_codes[i], kPoison) << "codes written before their start";
  ASSERT_EQ(0, std::memcmp(g_scales.data(), h_scales.data(), h_scales.size())) << "scales differ";
  expect_guard(g_codes, dev.code_bytes, "codes");
  expect_guard(g_scales, dev.scale_bytes, "scales");
  if (!spec.symmetric) {
    const auto g_zeros = dev.zeros.download();
    ASSERT_EQ(0, std::memcmp(g_zeros.data(), h_zeros.data(), h_zeros.size() * 4)) << "zeros";
    std::vector<std::uint8_t> zb(g_zeros.size() * 4);
    std::memcpy(zb.data(), g_zeros.data(), zb.size());
    expect_guard(zb, dev.zero_count * 4, "zeros");
  }

  // dequantize into a poisoned, strided output: the gaps between rows must stay poisoned.
  const agoq::const_quantized_view cv(dev.view(spec, rows, cols));
  const std::int64_t out_ld = cols + out_pad;
  device_buffer<T> d_y(size_t(rows * out_ld) + 16 + elem_offset);
  d_y.fill_bytes(0x7f);
  AGOQ_TRY(agoq::dequantize(cv, d_y.ptr + elem_offset, agoq::leading_dim{out_ld}, cudaStream_t{}));
  std::vector<T> h_y(d_y.count);
  std::memset(static_cast<void*>(h_y.data()), 0x7f, h_y.size() * sizeof(T));
  agoq::ref::dequantize(agoq::const_quantized_view(hv), h_y.data() + elem_offset,
                        agoq::leading_dim{out_ld});
  const auto g_y = d_y.download();
  ASSERT_TRUE(same_values(g_y, h_y)) << "dequantize";

  // dequantize_accumulate with alpha into a prefilled fp32 accumulator.
  std::vector<float> acc0(size_t(rows * out_ld) + 16 + elem_offset);
  for (size_t i = 0; i < acc0.size(); ++i)
    acc0[i] = float(int(i % 13)) * 0.25f;
  device_buffer<float> d_acc(acc0.size());
  d_acc.upload(acc0);
  AGOQ_TRY(agoq::dequantize_accumulate(cv, d_acc.ptr + elem_offset, agoq::leading_dim{out_ld}, 0.5f,
                                       cudaStream_t{}));
  agoq::ref::dequantize_accumulate(agoq::const_quantized_view(hv), acc0.data() + elem_offset,
                                   agoq::leading_dim{out_ld}, 0.5f);
  const auto g_acc = d_acc.download();
  ASSERT_TRUE(same_values(g_acc, acc0)) << "dequantize_accumulate";

  // accumulate_requantize: buf := quantize(dequantize(buf) + x), with another seed.
  AGOQ_TRY(agoq::accumulate_requantize(dev.view(spec, rows, cols), d_x, agoq::leading_dim{ld},
                                       seed + 1, cudaStream_t{}));
  agoq::ref::accumulate_requantize(hv, x.data(), agoq::leading_dim{ld}, seed + 1);
  const auto g2_codes = dev.codes.download(), g2_scales = dev.scales.download();
  ASSERT_EQ(0, std::memcmp(g2_codes.data() + dev.off, h_codes.data(), h_codes.size()))
      << "acc codes";
  for (size_t i = 0; i < dev.off; ++i)
    ASSERT_EQ(g2_codes[i], kPoison) << "accumulate_requantize codes written before their start";
  ASSERT_EQ(0, std::memcmp(g2_scales.data(), h_scales.data(), h_scales.size())) << "acc scales";
  expect_guard(g2_codes, dev.code_bytes, "accumulate_requantize codes");
  if (!spec.symmetric) {
    const auto g_zeros = dev.zeros.download();
    ASSERT_EQ(0, std::memcmp(g_zeros.data(), h_zeros.data(), h_zeros.size() * 4)) << "acc zeros";
  }
}

struct param {
  combo c;
  int block;
  int type; // 0 float, 1 half, 2 bf16
};

void PrintTo(const param& p, std::ostream* os) {
  *os << agoq::to_string(p.c.fmt) << (p.c.symmetric ? "" : "_asym") << " block " << p.block
      << " type " << p.type;
}

std::string param_name(const ::testing::TestParamInfo<param>& info) {
  const param& p = info.param;
  static const char* types[] = {"f32", "f16", "bf16"};
  return std::string(agoq::to_string(p.c.fmt)) + (p.c.symmetric ? "" : "_asym") + "_b" +
         std::to_string(p.block) + "_" + types[p.type];
}

std::vector<param> all_params() {
  std::vector<param> v;
  for (combo c : all_combos())
    for (int b : {32, 64, 128, 256})
      for (int t = 0; t < 3; ++t)
        v.push_back({c, b, t});
  return v;
}

class quantize_vs_reference : public ::testing::TestWithParam<param> {};

template <class T> void run_all_shapes(const param& p) {
  std::vector<agoq::scale_kind> scales{agoq::scale_kind::fp32};
  if (p.c.symmetric) {
    scales.push_back(agoq::scale_kind::pow2);
    scales.push_back(agoq::scale_kind::e8m0);
  }
  for (agoq::rounding r : {agoq::rounding::nearest_even, agoq::rounding::stochastic}) {
    for (agoq::scale_kind sk : scales) {
      const quant_spec spec{p.c.fmt, p.block, sk, r, p.c.symmetric};
      const std::int64_t b = p.block;
      // 1-D: odd lengths around the block, and a large prime.
      for (std::int64_t n : {std::int64_t(1), b - 1, b, b + 1, 7 * b + 3, std::int64_t(100003)})
        check_case<T>(spec, 1, n, n, 42 + n);
      // 2-D: row-strided input, cols not a multiple of the block, ld not a multiple of 8.
      check_case<T>(spec, 37, 3 * b + 5, 3 * b + 5 + 11, 7);
      check_case<T>(spec, 5, 2 * b, 2 * b + 8, 9); // aligned rows: vector path
      // contiguous rows of whole blocks (ld == cols, in and out): run as one row of 6 * 2b
      check_case<T>(spec, 6, 2 * b, 2 * b, 13, 0);
      // odd widths: codes from an odd address (byte accesses) as well as the usual even one
      if (agoq::bits_of(p.c.fmt) % 2 == 1 || agoq::bits_of(p.c.fmt) == 6)
        check_case<T>(spec, 1, 100003, 100003, 17, 3, 1);
      // 1-D data one element off 16-byte alignment: lane-by-lane loads and stores throughout
      check_case<T>(spec, 1, 20 * b + 7, 20 * b + 7, 19, 0, 0, 1);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST_P(quantize_vs_reference, bit_exact) {
  AGOQ_REQUIRE_DEVICE();
  const param p = GetParam();
  if (p.type == 0) run_all_shapes<float>(p);
  if (p.type == 1) run_all_shapes<__half>(p);
  if (p.type == 2) run_all_shapes<__nv_bfloat16>(p);
}

INSTANTIATE_TEST_SUITE_P(all, quantize_vs_reference, ::testing::ValuesIn(all_params()), param_name);

TEST(quantize_gpu, large_tensor_int8_bf16_vector_path) {
  AGOQ_REQUIRE_DEVICE();
  // 2^24 + 5 elements: many CTAs of the flat kernels and a tail.
  check_case<__nv_bfloat16>(quant_spec{format::int8, 128}, 1, (1 << 24) + 5, (1 << 24) + 5, 3);
}

// Several grid-stride trips per thread of the generic kernels (fp32 input, four 16-byte pieces
// per chunk, with E8M0 byte scales) and a contiguous 2-D tensor that runs as one row.
TEST(quantize_gpu, large_tensors_fp32_e8m0_and_contiguous_2d) {
  AGOQ_REQUIRE_DEVICE();
  using agoq::format;
  check_case<float>(quant_spec{format::fp8_e4m3, 32, agoq::scale_kind::e8m0}, 1, (1 << 22) + 7,
                    (1 << 22) + 7, 5);
  check_case<__half>(
      quant_spec{format::int4, 64, agoq::scale_kind::fp32, agoq::rounding::nearest_even, false},
      512, 4096, 4096, 6, 0);
}

//! A deterministic spread of bf16 values (no host copy of the whole tensor is needed).
__global__ void fill_spread(__nv_bfloat16* x, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::uint32_t h = std::uint32_t(i) * 2654435761u ^ std::uint32_t(i >> 32);
    x[i] =
        __float2bfloat16((float(h >> 8) * (1.0f / 16777216.0f) - 0.5f) * float(1 + (i >> 20 & 7)));
  }
}

// 64-bit indexing: a 1-D tensor of 2^31 + 1000 bf16 elements (4 GiB). The blocks past element
// 2^31 (codes, scales and their dequantized values) against the host reference of those blocks,
// and nothing written past the end of the codes or the output.
TEST(quantize_gpu, tensor_past_2_to_31_elements) {
  AGOQ_REQUIRE_DEVICE();
  const quant_spec spec{format::int8, 128};
  const std::int64_t n = (std::int64_t(1) << 31) + 1000;
  const std::int64_t start = ((std::int64_t(1) << 31) - 4096) / 128 * 128, tail = n - start;
  device_buffer<__nv_bfloat16> x(static_cast<size_t>(n)), y(static_cast<size_t>(n) + 64);
  device_buffer<std::uint8_t> codes(agoq::codes_bytes(spec, n) + kGuard);
  device_buffer<std::uint8_t> scales(agoq::scales_bytes(spec, n));
  fill_spread<<<1024, 256>>>(x.ptr, n);
  codes.fill_bytes(kPoison);
  y.fill_bytes(kPoison);
  const agoq::quantized_view q{codes.ptr, scales.ptr, nullptr, 1, n, spec};
  AGOQ_TRY(agoq::quantize(x.ptr, q, 0, cudaStream_t{}));
  AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(q), y.ptr, cudaStream_t{}));
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());

  std::vector<__nv_bfloat16> hx(static_cast<size_t>(tail)), hy(static_cast<size_t>(tail) + 64);
  const size_t cb = agoq::codes_bytes(spec, tail), sb = agoq::scales_bytes(spec, tail);
  std::vector<std::uint8_t> g_codes(cb + kGuard), g_scales(sb), h_codes(cb), h_scales(sb);
  AGOQ_CUDA_TRY(cudaMemcpy(hx.data(), x.ptr + start, size_t(tail) * 2, cudaMemcpyDeviceToHost));
  AGOQ_CUDA_TRY(cudaMemcpy(hy.data(), y.ptr + start, hy.size() * 2, cudaMemcpyDeviceToHost));
  AGOQ_CUDA_TRY(
      cudaMemcpy(g_codes.data(), codes.ptr + start, g_codes.size(), cudaMemcpyDeviceToHost));
  AGOQ_CUDA_TRY(
      cudaMemcpy(g_scales.data(), scales.ptr + start / 128 * 4, sb, cudaMemcpyDeviceToHost));
  const agoq::quantized_view h{h_codes.data(), h_scales.data(), nullptr, 1, tail, spec};
  agoq::ref::quantize(hx.data(), h, 0);
  std::vector<__nv_bfloat16> want_y(static_cast<size_t>(tail));
  agoq::ref::dequantize(agoq::const_quantized_view(h), want_y.data());
  ASSERT_EQ(0, std::memcmp(g_codes.data(), h_codes.data(), cb)) << "codes differ";
  ASSERT_EQ(0, std::memcmp(g_scales.data(), h_scales.data(), sb)) << "scales differ";
  for (size_t i = cb; i < g_codes.size(); ++i)
    ASSERT_EQ(g_codes[i], kPoison) << "codes written past the end";
  ASSERT_EQ(0, std::memcmp(hy.data(), want_y.data(), size_t(tail) * 2)) << "values differ";
  const auto* past = reinterpret_cast<const std::uint8_t*>(hy.data() + tail);
  for (size_t i = 0; i < 64 * 2; ++i)
    ASSERT_EQ(past[i], kPoison) << "dequantize wrote past the end";
}

TEST(quantize_gpu, refuses_bad_arguments_before_launch) {
  AGOQ_REQUIRE_DEVICE();
  const quant_spec spec{format::int8, 128};
  device_buffer<float> x(256);
  device_buffer<std::uint8_t> codes(256), scales(16);
  agoq::quantized_view v{codes.ptr, scales.ptr, nullptr, 2, 128, spec};

  EXPECT_EQ(agoq::quantize(x.ptr, agoq::leading_dim{100}, v, 0, cudaStream_t{}),
            agoq::status::invalid_argument);
  EXPECT_NE(std::string(agoq::last_error_message()).find("ld must be >= cols"), std::string::npos)
      << agoq::last_error_message();

  agoq::quantized_view bad_block = v;
  bad_block.spec.block = 100;
  EXPECT_EQ(agoq::quantize(x.ptr, agoq::leading_dim{128}, bad_block, 0, cudaStream_t{}),
            agoq::status::invalid_argument);
  EXPECT_NE(std::string(agoq::last_error_message()).find("block"), std::string::npos);

  agoq::quantized_view no_codes = v;
  no_codes.codes = nullptr;
  EXPECT_EQ(agoq::quantize(x.ptr, agoq::leading_dim{128}, no_codes, 0, cudaStream_t{}),
            agoq::status::invalid_argument);
  EXPECT_NE(std::string(agoq::last_error_message()).find("codes"), std::string::npos);

  agoq::quantized_view asym = v;
  asym.spec.symmetric = false;
  EXPECT_EQ(agoq::quantize(x.ptr, agoq::leading_dim{128}, asym, 0, cudaStream_t{}),
            agoq::status::invalid_argument);
  EXPECT_NE(std::string(agoq::last_error_message()).find("zeros"), std::string::npos);

  EXPECT_EQ(agoq::quantize(static_cast<const float*>(nullptr), agoq::leading_dim{128}, v, 0,
                           cudaStream_t{}),
            agoq::status::invalid_argument);
  EXPECT_THROW(AGOQ_TRY(agoq::dequantize(agoq::const_quantized_view(v),
                                         static_cast<float*>(nullptr), cudaStream_t{})),
               agoq::invalid_argument);
  // A zero count is a no-op that succeeds, even with null pointers.
  agoq::quantized_view empty{nullptr, nullptr, nullptr, 1, 0, spec};
  EXPECT_EQ(agoq::quantize(static_cast<const float*>(nullptr), empty, 0, cudaStream_t{}),
            agoq::status::success);
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
}

TEST(quantize_gpu, graph_capture_replays_the_same_bits) {
  AGOQ_REQUIRE_DEVICE();
  const quant_spec spec{format::int4, 64, agoq::scale_kind::fp32, agoq::rounding::stochastic};
  const std::int64_t n = 4099;
  std::vector<float> x = make_data(1, n, 64, 5);
  device_buffer<float> d_x(n), d_acc(n);
  d_x.upload(x);
  AGOQ_CUDA_TRY(cudaMemset(d_acc.ptr, 0, n * sizeof(float)));
  qbuffers q(spec, 1, n);
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // The uploads and memsets above ran on the legacy stream, which a non-blocking stream does not
  // wait for (and a pageable upload may return before its data lands): finish them first.
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  cudaGraph_t graph;
  AGOQ_CUDA_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  AGOQ_TRY(agoq::quantize(d_x.ptr, q.view(spec, 1, n), 11, stream));
  AGOQ_TRY(agoq::dequantize_accumulate(agoq::const_quantized_view(q.view(spec, 1, n)), d_acc.ptr,
                                       1.0f, stream));
  AGOQ_CUDA_TRY(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  AGOQ_CUDA_TRY(cudaGraphInstantiate(&exec, graph, 0));
  AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
  AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
  AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));

  std::vector<std::uint8_t> hc(q.code_bytes), hs(q.scale_bytes);
  agoq::quantized_view hv{hc.data(), hs.data(), nullptr, 1, n, spec};
  agoq::ref::quantize(x.data(), hv, 11);
  std::vector<float> acc(n, 0.0f);
  agoq::ref::dequantize_accumulate(agoq::const_quantized_view(hv), acc.data(), 1.0f);
  agoq::ref::dequantize_accumulate(agoq::const_quantized_view(hv), acc.data(), 1.0f);
  EXPECT_EQ(0, std::memcmp(q.codes.download().data(), hc.data(), hc.size()));
  EXPECT_TRUE(same_values(d_acc.download(), acc));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// device_seed: the seed is read from device memory when the kernel runs, so one captured graph
// draws new noise on each replay once the value changes; every replay is bit for bit the host
// reference with seed *ptr + offset. Flat (bf16, 1-D, 4/8-bit), staged (fp32 input, odd widths,
// 2-D strided) and accumulate_requantize paths.
template <class T>
void device_seed_case(const quant_spec& spec, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                      bool update) {
  SCOPED_TRACE(::testing::Message() << agoq::to_string(spec.format) << " rows " << rows << " cols "
                                    << cols << (update ? " accumulate_requantize" : " quantize"));
  const std::vector<T> x = convert<T>(make_data(rows, ld, spec.block, 77));
  device_buffer<T> d_x(x.size());
  d_x.upload(x);
  device_buffer<std::uint64_t> d_seed(1);
  qbuffers q(spec, rows, cols);
  cudaStream_t stream;
  AGOQ_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  const agoq::device_seed seed{d_seed.ptr, 1000};
  cudaGraph_t graph;
  AGOQ_CUDA_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  if (update) // on a zero buffer (a valid quantized zero)
    AGOQ_TRY(agoq::accumulate_requantize(q.view(spec, rows, cols), d_x.ptr, agoq::leading_dim{ld},
                                         seed, stream));
  else
    AGOQ_TRY(
        agoq::quantize(d_x.ptr, agoq::leading_dim{ld}, q.view(spec, rows, cols), seed, stream));
  AGOQ_CUDA_TRY(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  AGOQ_CUDA_TRY(cudaGraphInstantiate(&exec, graph, 0));
  std::vector<std::uint8_t> first;
  for (std::uint64_t s : {std::uint64_t(5), std::uint64_t(1) << 40}) {
    AGOQ_CUDA_TRY(cudaMemcpy(d_seed.ptr, &s, sizeof s, cudaMemcpyHostToDevice));
    AGOQ_CUDA_TRY(cudaMemset(q.codes.ptr, 0, q.code_bytes));
    AGOQ_CUDA_TRY(cudaMemset(q.scales.ptr, 0, q.scale_bytes));
    if (q.zero_count) AGOQ_CUDA_TRY(cudaMemset(q.zeros.ptr, 0, q.zero_count * sizeof(float)));
    AGOQ_CUDA_TRY(cudaGraphLaunch(exec, stream));
    AGOQ_CUDA_TRY(cudaStreamSynchronize(stream));
    std::vector<std::uint8_t> hc(q.code_bytes), hs(q.scale_bytes);
    std::vector<float> hz(q.zero_count);
    const agoq::quantized_view hv{hc.data(), hs.data(), q.zero_count ? hz.data() : nullptr,
                                  rows,      cols,      spec};
    if (update) // the reference's own update of the same zero buffer
      agoq::ref::accumulate_requantize(hv, x.data(), agoq::leading_dim{ld}, s + 1000);
    else
      agoq::ref::quantize(x.data(), agoq::leading_dim{ld}, hv, s + 1000);
    std::vector<std::uint8_t> got = q.codes.download();
    got.resize(q.code_bytes);
    EXPECT_EQ(got, hc) << "seed " << s;
    std::vector<std::uint8_t> scales = q.scales.download();
    scales.resize(q.scale_bytes);
    EXPECT_EQ(scales, hs) << "seed " << s;
    if (first.empty())
      first = got;
    else
      EXPECT_NE(got, first) << "a replay with a new device seed drew the same noise";
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(quantize_gpu, device_seed_graph_replays_draw_new_noise) {
  AGOQ_REQUIRE_DEVICE();
  const auto sr = [](format f, int block) {
    return quant_spec{f, block, agoq::scale_kind::fp32, agoq::rounding::stochastic};
  };
  device_seed_case<__nv_bfloat16>(sr(format::int4, 64), 1, 4099, 4099, false); // flat
  device_seed_case<__nv_bfloat16>(sr(format::int8, 128), 1, 8192, 8192, true); // flat update
  device_seed_case<float>(sr(format::int8, 128), 1, 4099, 4099, false);        // staged
  device_seed_case<__nv_bfloat16>(sr(format::int5, 32), 3, 200, 208, false);   // staged, 2-D
  device_seed_case<__half>(sr(format::fp8_e4m3, 32), 3, 200, 208, true);       // staged update
}

} // namespace

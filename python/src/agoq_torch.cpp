// SPDX-License-Identifier: Apache-2.0
//! @file python/src/agoq_torch.cpp
//! The PyTorch extension `agoq._C`:
//! - `torch.library` custom ops in the namespace `agoq` (quantize, dequantize,
//!   dequantize_accumulate, accumulate_requantize), one kernel per op registered for the CPU
//!   key (agoq::ref, the host reference) and, in CUDA builds, the CUDA key (agoq's launchers on
//!   the current CUDA stream; agoq_torch_cuda.cu). Their fake implementations live in Python
//!   (agoq/ops.py) and use spec_info() below, so the C++ parser is the only one.
//! - pybind11 bindings of the policy engine (parse_policy, paper_save_plan, at_stage_bits,
//!   stage_bits, peak_stash, layer_activation_memory, plan_memory), of the gradient buffer
//!   (grad/grad_buffer.cuh on CUDA, the same layout with agoq::ref on CPU) and of the NCCL
//!   all-reduce (communicator from a unique id; DDP comm hook in agoq/comm.py).
//! agoq::invalid_argument becomes a Python ValueError carrying agoq's message; other agoq errors
//! become RuntimeError.
#include "agoq_torch.h"

#include <agoq/agoq.hpp>
#include <agoq/grad/layout.hpp>

#include <torch/extension.h>
#include <torch/library.h>

#ifdef AGOQ_TORCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;
using at::Tensor;

namespace agoq_torch {
namespace {

// ------------------------------------------------------------------------------------------------
// errors

//! Runs fn, turning agoq::invalid_argument into c10::ValueError (Python ValueError) and any other
//! agoq::error into c10::Error (RuntimeError), the message kept.
template <class Fn> decltype(auto) translate(const char* op, Fn&& fn) {
  try {
    return fn();
  } catch (const agoq::invalid_argument& e) {
    TORCH_CHECK_VALUE(false, op, ": ", e.what());
  } catch (const agoq::error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
}

// ------------------------------------------------------------------------------------------------
// specs in text form

//! The quant_spec of a value of the policy text form ("int4/128", "int8/64/stochastic",
//! "int4/128/asym", "fp8_e4m3/128", "fp4_e2m1/32/e8m0"), parsed by agoq's policy parser.
//! Throws agoq::invalid_argument with agoq's message.
agoq::quant_spec parse_spec(const std::string& text) {
  static std::mutex mutex;
  static std::unordered_map<std::string, agoq::quant_spec> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(text);
    if (it != cache.end()) return it->second;
  }
  agoq::save_entry e;
  try {
    // Any kind parses values the same way; the message names the key "spec".
    e = agoq::detail::parse_save_entry(agoq::layer_kind::qkv_input, text, "spec");
  } catch (const agoq::invalid_argument& err) {
    std::string m = err.what();
    const std::string noise = " (at qkv_input)";
    if (auto p = m.find(noise); p != std::string::npos) m.erase(p, noise.size());
    throw agoq::invalid_argument(m);
  }
  if (e.action != agoq::save_action::store || e.follows_stage)
    throw agoq::invalid_argument("agoq: spec '" + text +
                                 "' is not a storage format; write <format>[/<block>][/<scale>]"
                                 "[/<rounding>][/asym], e.g. int4/128 (bf16, recompute and "
                                 "stage name policy entries, not formats)");
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(text, e.spec);
  return e.spec;
}

std::string spec_text(const agoq::quant_spec& s) { return agoq::to_string(agoq::save_entry::stored(s)); }

py::dict spec_info(const std::string& text) {
  const agoq::quant_spec s = parse_spec(text);
  py::dict d;
  d["text"] = spec_text(s);
  d["format"] = agoq::to_string(s.format);
  d["bits"] = agoq::bits_of(s.format);
  d["block"] = s.block;
  d["scale"] = agoq::to_string(s.scale);
  d["scale_bytes"] = agoq::scale_bytes(s);
  d["rounding"] = agoq::to_string(s.rounding);
  d["symmetric"] = s.symmetric;
  d["block_code_bytes"] = agoq::block_code_bytes(s);
  d["bits_per_element"] = agoq::bits_per_element(s);
  return d;
}

// ------------------------------------------------------------------------------------------------
// tensor checks and views

dtype_code code_of(at::ScalarType t, const char* op, const char* name) {
  switch (t) {
  case at::kFloat: return dtype_code::f32;
  case at::kHalf: return dtype_code::f16;
  case at::kBFloat16: return dtype_code::bf16;
  default:
    TORCH_CHECK_VALUE(false, op, ": ", name, " must be float32, float16 or bfloat16, got ", t);
  }
}

//! rows x cols of a tensor whose blocks run along its last dimension.
struct shape2 {
  std::int64_t rows, cols;
};
shape2 shape_of(at::IntArrayRef sizes) {
  if (sizes.empty()) return {1, 1};
  const std::int64_t cols = sizes.back();
  std::int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) rows *= sizes[i];
  return {rows, cols};
}

std::vector<std::int64_t> with_last(at::IntArrayRef sizes, std::int64_t last) {
  std::vector<std::int64_t> v(sizes.begin(), sizes.end());
  if (v.empty()) v.push_back(last);
  else v.back() = last;
  return v;
}

void check_shape(const char* op, const agoq::quant_spec& s, shape2 sh) {
  if (const char* m = agoq::validate_shape(s, sh.rows, sh.cols)) TORCH_CHECK_VALUE(false, op, ": ", m);
}

//! Checks codes / scales / zeros against spec and shape; returns the view (pointers may be null
//! for an empty tensor).
agoq::quantized_view view_of(const char* op, const Tensor& codes, const Tensor& scales,
                             const std::optional<Tensor>& zeros, const agoq::quant_spec& s,
                             shape2 sh, c10::Device dev) {
  TORCH_CHECK_VALUE(codes.scalar_type() == at::kByte, op, ": codes must be uint8, got ",
                    codes.scalar_type());
  const auto want_scale = s.scale == agoq::scale_kind::e8m0 ? at::kByte : at::kFloat;
  TORCH_CHECK_VALUE(scales.scalar_type() == want_scale, op, ": scales must be ",
                    want_scale == at::kByte ? "uint8 (e8m0 scales)" : "float32",
                    " for spec ", spec_text(s), ", got ", scales.scalar_type());
  TORCH_CHECK_VALUE(codes.device() == dev && scales.device() == dev, op,
                    ": codes and scales must be on ", dev);
  TORCH_CHECK_VALUE(codes.is_contiguous() && scales.is_contiguous(), op,
                    ": codes and scales must be contiguous");
  const auto nb = std::int64_t(agoq::codes_bytes(s, sh.rows, sh.cols));
  const auto ns = agoq::scales_count(s, sh.rows, sh.cols);
  TORCH_CHECK_VALUE(codes.numel() == nb, op, ": codes must hold codes_bytes(spec, rows, cols) = ",
                    nb, " bytes for ", sh.rows, " x ", sh.cols, " elements of ", spec_text(s),
                    ", got ", codes.numel());
  TORCH_CHECK_VALUE(scales.numel() == ns, op, ": scales must hold ", ns, " values (one per block), got ",
                    scales.numel());
  float* z = nullptr;
  if (!s.symmetric) {
    TORCH_CHECK_VALUE(zeros.has_value() && zeros->defined() && zeros->numel() == ns, op,
                      ": zeros must hold ", ns, " float32 values for the asymmetric spec ",
                      spec_text(s));
    TORCH_CHECK_VALUE(zeros->scalar_type() == at::kFloat && zeros->is_contiguous() &&
                          zeros->device() == dev,
                      op, ": zeros must be a contiguous float32 tensor on ", dev);
    z = zeros->data_ptr<float>();
  }
  return agoq::quantized_view{codes.data_ptr(), scales.data_ptr(), z, sh.rows, sh.cols, s};
}

#ifdef AGOQ_TORCH_WITH_CUDA
cudaStream_t stream_of(const Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
#endif

template <class Fn> void with_host_type(dtype_code t, Fn&& f) {
  switch (t) {
  case dtype_code::f32: f(static_cast<float*>(nullptr)); return;
  case dtype_code::f16: f(static_cast<__half*>(nullptr)); return;
  case dtype_code::bf16: f(static_cast<__nv_bfloat16*>(nullptr)); return;
  }
}

// ------------------------------------------------------------------------------------------------
// the ops (one kernel for CPU and CUDA; the device picks the path)

std::tuple<Tensor, Tensor, Tensor> op_quantize(const Tensor& x_in, std::string spec_str,
                                                std::int64_t seed) {
  const char* op = "agoq.quantize";
  return translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    const dtype_code t = code_of(x_in.scalar_type(), op, "x");
    const Tensor x = x_in.contiguous();
    const shape2 sh = shape_of(x.sizes());
    check_shape(op, s, sh);
    const std::int64_t bpr = agoq::blocks_per_row(s, sh.cols);
    auto u8 = x.options().dtype(at::kByte);
    Tensor codes = at::empty(with_last(x.sizes(), bpr * agoq::block_code_bytes(s)), u8);
    Tensor scales = at::empty(with_last(x.sizes(), bpr),
                              s.scale == agoq::scale_kind::e8m0 ? u8 : x.options().dtype(at::kFloat));
    Tensor zeros = s.symmetric ? at::empty({0}, x.options().dtype(at::kFloat))
                               : at::empty(with_last(x.sizes(), bpr), x.options().dtype(at::kFloat));
    if (x.numel() == 0) return std::make_tuple(codes, scales, zeros);
    agoq::quantized_view v{codes.data_ptr(), scales.data_ptr(),
                           s.symmetric ? nullptr : zeros.data_ptr<float>(), sh.rows, sh.cols, s};
    if (x.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(x.device());
      cuda::quantize(t, x.data_ptr(), sh.cols, v, std::uint64_t(seed), stream_of(x));
#endif
    } else {
      with_host_type(t, [&](auto* tag) {
        using T = std::remove_pointer_t<decltype(tag)>;
        const T* p = static_cast<const T*>(x.data_ptr());
        if (sh.rows == 1) agoq::ref::quantize(p, v, std::uint64_t(seed));
        else agoq::ref::quantize(p, agoq::leading_dim{sh.cols}, v, std::uint64_t(seed));
      });
    }
    return std::make_tuple(codes, scales, zeros);
  });
}

Tensor op_dequantize(const Tensor& codes, const Tensor& scales, const std::optional<Tensor>& zeros,
                     std::string spec_str, at::IntArrayRef shape, at::ScalarType dtype) {
  const char* op = "agoq.dequantize";
  return translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    const dtype_code t = code_of(dtype, op, "dtype");
    const shape2 sh = shape_of(shape);
    check_shape(op, s, sh);
    const agoq::quantized_view v = view_of(op, codes, scales, zeros, s, sh, codes.device());
    Tensor y = at::empty(shape, codes.options().dtype(dtype));
    if (y.numel() == 0) return y;
    if (codes.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(codes.device());
      cuda::dequantize(v, t, y.data_ptr(), sh.cols, stream_of(codes));
#endif
    } else {
      with_host_type(t, [&](auto* tag) {
        using T = std::remove_pointer_t<decltype(tag)>;
        T* p = static_cast<T*>(y.data_ptr());
        if (sh.rows == 1) agoq::ref::dequantize(agoq::const_quantized_view(v), p);
        else agoq::ref::dequantize(agoq::const_quantized_view(v), p, agoq::leading_dim{sh.cols});
      });
    }
    return y;
  });
}

void op_dequantize_accumulate(const Tensor& codes, const Tensor& scales,
                              const std::optional<Tensor>& zeros, std::string spec_str,
                              const Tensor& acc, double alpha) {
  const char* op = "agoq.dequantize_accumulate";
  translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    TORCH_CHECK_VALUE(acc.scalar_type() == at::kFloat && acc.is_contiguous(), op,
                      ": acc must be a contiguous float32 tensor");
    const shape2 sh = shape_of(acc.sizes());
    check_shape(op, s, sh);
    const agoq::quantized_view v = view_of(op, codes, scales, zeros, s, sh, acc.device());
    if (acc.numel() == 0) return;
    if (acc.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(acc.device());
      cuda::dequantize_accumulate(v, acc.data_ptr<float>(), sh.cols, float(alpha), stream_of(acc));
#endif
    } else if (sh.rows == 1) {
      agoq::ref::dequantize_accumulate(v, acc.data_ptr<float>(), float(alpha));
    } else {
      agoq::ref::dequantize_accumulate(v, acc.data_ptr<float>(), agoq::leading_dim{sh.cols},
                                       float(alpha));
    }
  });
}

void op_accumulate_requantize(const Tensor& codes, const Tensor& scales,
                              const std::optional<Tensor>& zeros, std::string spec_str,
                              const Tensor& x_in, std::int64_t seed) {
  const char* op = "agoq.accumulate_requantize";
  translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    const dtype_code t = code_of(x_in.scalar_type(), op, "x");
    const Tensor x = x_in.contiguous();
    const shape2 sh = shape_of(x.sizes());
    check_shape(op, s, sh);
    const agoq::quantized_view v = view_of(op, codes, scales, zeros, s, sh, x.device());
    if (x.numel() == 0) return;
    if (x.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(x.device());
      cuda::accumulate_requantize(v, t, x.data_ptr(), sh.cols, std::uint64_t(seed), stream_of(x));
#endif
    } else {
      with_host_type(t, [&](auto* tag) {
        using T = std::remove_pointer_t<decltype(tag)>;
        const T* p = static_cast<const T*>(x.data_ptr());
        if (sh.rows == 1) agoq::ref::accumulate_requantize(v, p, std::uint64_t(seed));
        else agoq::ref::accumulate_requantize(v, p, agoq::leading_dim{sh.cols}, std::uint64_t(seed));
      });
    }
  });
}

// ------------------------------------------------------------------------------------------------
// gradient buffer: mem is a uint8 tensor of grad_bytes_required bytes (layout: grad/layout.hpp)

agoq::grad_layout checked_layout(const char* op, const Tensor& mem, std::int64_t params,
                                 const agoq::quant_spec& s, std::int64_t bucket_elems) {
  const agoq::grad_layout l{params, s, bucket_elems};
  if (const char* m = l.validate()) TORCH_CHECK_VALUE(false, op, ": ", m);
  TORCH_CHECK_VALUE(mem.scalar_type() == at::kByte && mem.is_contiguous(), op,
                    ": mem must be a contiguous uint8 tensor");
  TORCH_CHECK_VALUE(std::size_t(mem.numel()) >= l.total_bytes(), op, ": mem must hold >= ",
                    l.total_bytes(), " bytes (grad_bytes_required), got ", mem.numel());
  return l;
}

void grad_accumulate(const Tensor& mem, std::int64_t params, const std::string& spec_str,
                     std::int64_t bucket_elems, std::int64_t offset, const Tensor& grad_in,
                     std::uint64_t seed) {
  const char* op = "agoq.grad_accumulate";
  translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    const agoq::grad_layout l = checked_layout(op, mem, params, s, bucket_elems);
    const dtype_code t = code_of(grad_in.scalar_type(), op, "grad");
    TORCH_CHECK_VALUE(grad_in.device() == mem.device(), op, ": grad and mem must be on one device");
    const Tensor g = grad_in.contiguous();
    const std::int64_t count = g.numel();
    if (g.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(g.device());
      cuda::grad_accumulate(mem.data_ptr(), std::size_t(mem.numel()), params, s, bucket_elems,
                            offset, t, g.data_ptr(), count, seed, stream_of(g));
#endif
      return;
    }
    // CPU: exactly what the GPU buffer does (grad_buffer.cuh's documented equivalence)
    if (const char* m = l.check_write_range(offset, count))
      TORCH_CHECK_VALUE(false, "agoq::grad_buffer::accumulate: ", m);
    if (count == 0) return;
    const agoq::quantized_view v = l.sub_view(mem.data_ptr(), offset, count);
    with_host_type(t, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      agoq::ref::accumulate_requantize(v, static_cast<const T*>(g.data_ptr()),
                                       agoq::grad_accumulate_seed(seed, offset));
    });
  });
}

void grad_dequantize_to(const Tensor& mem, std::int64_t params, const std::string& spec_str,
                        std::int64_t bucket_elems, std::int64_t offset, const Tensor& out) {
  const char* op = "agoq.grad_dequantize_to";
  translate(op, [&] {
    const agoq::quant_spec s = parse_spec(spec_str);
    const agoq::grad_layout l = checked_layout(op, mem, params, s, bucket_elems);
    const dtype_code t = code_of(out.scalar_type(), op, "out");
    TORCH_CHECK_VALUE(out.is_contiguous() && out.device() == mem.device(), op,
                      ": out must be contiguous and on mem's device");
    const std::int64_t count = out.numel();
    if (out.is_cuda()) {
#ifdef AGOQ_TORCH_WITH_CUDA
      c10::cuda::CUDAGuard guard(out.device());
      cuda::grad_dequantize_to(mem.data_ptr(), std::size_t(mem.numel()), params, s, bucket_elems,
                               offset, count, t, out.data_ptr(), stream_of(out));
#endif
      return;
    }
    if (const char* m = l.check_read_range(offset, count))
      TORCH_CHECK_VALUE(false, "agoq::grad_buffer::dequantize_to: ", m);
    if (count == 0) return;
    const agoq::quantized_view v = l.sub_view(mem.data_ptr(), offset, count);
    with_host_type(t, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      agoq::ref::dequantize(agoq::const_quantized_view(v), static_cast<T*>(out.data_ptr()));
    });
  });
}

// ------------------------------------------------------------------------------------------------
// NCCL

comm_options comm_opts(bool average, const std::string& algo, std::int64_t chunk) {
  comm_options o;
  o.average = average;
  o.chunk = chunk;
  if (algo == "auto") o.algo = agoq::algorithm::auto_select;
  else if (algo == "two_shot") o.algo = agoq::algorithm::two_shot;
  else if (algo == "one_shot") o.algo = agoq::algorithm::one_shot;
  else if (algo == "ring") o.algo = agoq::algorithm::ring;
  else if (algo == "tree") o.algo = agoq::algorithm::tree;
  else
    throw agoq::invalid_argument("agoq: algorithm must be auto, two_shot, one_shot, ring or tree, got '" +
                                 algo + "'");
  return o;
}

void require_cuda(const Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda(), op, ": ", name, " must be a CUDA tensor (the NCCL collectives)");
#ifndef AGOQ_TORCH_WITH_CUDA
  TORCH_CHECK(false, op, ": this build of agoq has no CUDA support (AGOQ_TORCH_CUDA=OFF)");
#endif
}

// ------------------------------------------------------------------------------------------------
// policy engine bindings

agoq::layer_kind kind_of(const std::string& name) { return agoq::parse_layer_kind(name); }

agoq::model_shape shape_from(const py::dict& d) {
  agoq::model_shape m;
  m.norm_fp32 = true;
  for (auto item : d) {
    const std::string k = py::str(item.first);
    const py::handle v = item.second;
    if (k == "block") {
      const std::string b = py::str(v);
      if (b == "llama") m.block = agoq::block_kind::llama;
      else if (b == "gpt") m.block = agoq::block_kind::gpt;
      else throw agoq::invalid_argument("agoq: shape['block'] must be 'llama' or 'gpt', got '" + b + "'");
    } else if (k == "schedule") {
      const std::string s = py::str(v);
      if (s == "gpipe") m.schedule = agoq::pipeline_schedule::gpipe;
      else if (s == "1f1b") m.schedule = agoq::pipeline_schedule::one_f_one_b;
      else if (s == "interleaved-1f1b") m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
      else throw agoq::invalid_argument("agoq: shape['schedule'] must be gpipe, 1f1b or interleaved-1f1b, got '" + s + "'");
    } else if (k == "norm_fp32") {
      m.norm_fp32 = v.cast<bool>();
    } else {
      int* f = k == "layers"           ? &m.layers
               : k == "hidden"         ? &m.hidden
               : k == "ffn"            ? &m.ffn
               : k == "heads"          ? &m.heads
               : k == "kv_heads"       ? &m.kv_heads
               : k == "seq"            ? &m.seq
               : k == "micro_batch"    ? &m.micro_batch
               : k == "stages"         ? &m.stages
               : k == "micro_batches"  ? &m.micro_batches
               : k == "virtual_stages" ? &m.virtual_stages
               : k == "experts"        ? &m.experts
               : k == "moe_top_k"      ? &m.moe_top_k
               : k == "moe_ffn"        ? &m.moe_ffn
                                       : nullptr;
      if (!f)
        throw agoq::invalid_argument("agoq: unknown model shape key '" + k +
                                     "'; accepted: block, layers, hidden, ffn, heads, kv_heads, seq, "
                                     "micro_batch, stages, schedule, micro_batches, virtual_stages, "
                                     "norm_fp32, experts, moe_top_k, moe_ffn");
      *f = v.cast<int>();
    }
  }
  return m;
}

agoq::accounting acct_of(const std::string& a) {
  if (a == "exact") return agoq::accounting::exact;
  if (a == "paper") return agoq::accounting::paper;
  throw agoq::invalid_argument("agoq: accounting must be 'exact' or 'paper', got '" + a + "'");
}

py::dict layer_dict(const agoq::layer_memory& l) {
  py::dict d;
  d["bits"] = l.bits;
  d["bytes"] = l.bytes;
  d["baseline_bytes"] = l.baseline_bytes;
  py::list ts;
  for (const auto& t : l.tensors) {
    py::dict td;
    td["kind"] = agoq::to_string(t.kind);
    td["count"] = t.count;
    td["per_token"] = t.per_token;
    td["entry"] = agoq::to_string(t.entry);
    td["bytes"] = t.bytes;
    td["baseline_bytes"] = t.baseline_bytes;
    ts.append(td);
  }
  d["tensors"] = ts;
  return d;
}

agoq::stage_bits_options bits_opts(int base_bits, const std::vector<int>& widths,
                                   bool allow_unquantized, double tolerance) {
  agoq::stage_bits_options o;
  o.base_bits = base_bits;
  o.widths = agoq::width_set{};
  for (int w : widths) o.widths.add(w);
  o.allow_unquantized = allow_unquantized;
  o.tolerance = tolerance;
  return o;
}

} // namespace
} // namespace agoq_torch

// ------------------------------------------------------------------------------------------------
// registration

TORCH_LIBRARY(agoq, m) {
  m.def("quantize(Tensor x, str spec, int seed=0) -> (Tensor codes, Tensor scales, Tensor zeros)");
  m.def("dequantize(Tensor codes, Tensor scales, Tensor? zeros, str spec, int[] shape, "
        "ScalarType dtype) -> Tensor");
  m.def("dequantize_accumulate(Tensor codes, Tensor scales, Tensor? zeros, str spec, "
        "Tensor(a!) acc, float alpha=1.0) -> ()");
  m.def("accumulate_requantize(Tensor(a!) codes, Tensor(b!) scales, Tensor(c!)? zeros, str spec, "
        "Tensor x, int seed=0) -> ()");
}

TORCH_LIBRARY_IMPL(agoq, CPU, m) {
  m.impl("quantize", &agoq_torch::op_quantize);
  m.impl("dequantize", &agoq_torch::op_dequantize);
  m.impl("dequantize_accumulate", &agoq_torch::op_dequantize_accumulate);
  m.impl("accumulate_requantize", &agoq_torch::op_accumulate_requantize);
}

#ifdef AGOQ_TORCH_WITH_CUDA
TORCH_LIBRARY_IMPL(agoq, CUDA, m) {
  m.impl("quantize", &agoq_torch::op_quantize);
  m.impl("dequantize", &agoq_torch::op_dequantize);
  m.impl("dequantize_accumulate", &agoq_torch::op_dequantize_accumulate);
  m.impl("accumulate_requantize", &agoq_torch::op_accumulate_requantize);
}
#endif

PYBIND11_MODULE(_C, mod) {
  using namespace agoq_torch;
  mod.doc() = "agoq's PyTorch extension (ops are registered as torch.ops.agoq.*)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const agoq::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const agoq::error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

#ifdef AGOQ_TORCH_WITH_CUDA
  mod.attr("with_cuda") = true;
#else
  mod.attr("with_cuda") = false;
#endif
  mod.def("has_nccl", [] {
#ifdef AGOQ_TORCH_WITH_CUDA
    return cuda::has_nccl();
#else
    return false;
#endif
  });
  mod.attr("version") = AGOQ_VERSION_STRING;

  // specs and sizes
  mod.def("spec_info", &spec_info, py::arg("spec"),
          "The fields of a spec in text form ('int4/128'), parsed by agoq's policy parser.");
  mod.def("codes_bytes", [](const std::string& s, std::int64_t rows, std::int64_t cols) {
    const agoq::quant_spec q = parse_spec(s);
    if (const char* m = agoq::validate_shape(q, rows, cols)) throw agoq::invalid_argument(m);
    return std::int64_t(agoq::codes_bytes(q, rows, cols));
  });
  mod.def("scales_count", [](const std::string& s, std::int64_t rows, std::int64_t cols) {
    const agoq::quant_spec q = parse_spec(s);
    if (const char* m = agoq::validate_shape(q, rows, cols)) throw agoq::invalid_argument(m);
    return agoq::scales_count(q, rows, cols);
  });

  // layer kinds
  mod.def("layer_kinds", [] {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < agoq::layer_kind_count; ++i) v.push_back(agoq::to_string(agoq::layer_kind(i)));
    return v;
  });
  mod.def("recompute_source", [](const std::string& k) { return std::string(agoq::to_string(agoq::recompute_source(kind_of(k)))); });
  mod.def("is_statistic", [](const std::string& k) { return agoq::is_statistic(kind_of(k)); });

  // save plans
  py::class_<agoq::save_plan>(mod, "SavePlan", "agoq::save_plan: one save_entry per layer kind.")
      .def("entry",
           [](const agoq::save_plan& p, const std::string& k) {
             const agoq::save_entry e = p[kind_of(k)];
             py::dict d;
             d["action"] = agoq::to_string(e.action);
             d["text"] = agoq::to_string(e);
             d["spec"] = e.action == agoq::save_action::store
                             ? py::object(py::str(spec_text(e.spec)))
                             : py::object(py::none());
             d["follows_stage"] = e.follows_stage;
             d["source"] = e.action == agoq::save_action::recompute
                               ? py::object(py::str(agoq::to_string(e.from)))
                               : py::object(py::none());
             return d;
           },
           py::arg("kind"), "{'action': keep|store|recompute, 'text', 'spec', 'follows_stage', 'source'}")
      .def("at_stage_bits", [](const agoq::save_plan& p, int bits) { return agoq::at_stage_bits(p, bits); },
           py::arg("bits"), "The plan with every stage-following entry at int<bits> (16: kept).")
      .def("to_text", [](const agoq::save_plan& p) { return agoq::to_string(p); })
      .def("diff_text", [](const agoq::save_plan& p, const agoq::save_plan& base) { return agoq::to_string(p, base); })
      .def("__str__", [](const agoq::save_plan& p) { return agoq::to_string(p); })
      .def("__repr__", [](const agoq::save_plan& p) { return "SavePlan('" + agoq::to_string(p) + "')"; })
      .def("__eq__", [](const agoq::save_plan& a, const agoq::save_plan& b) { return a == b; })
      .def(py::pickle([](const agoq::save_plan& p) { return agoq::to_string(p); },
                      [](const std::string& s) { return agoq::parse_policy(s, agoq::bf16_save_plan()); }));
  mod.def("parse_policy",
          [](const std::string& text, std::optional<agoq::save_plan> base) {
            return agoq::parse_policy(text, base ? *base : agoq::paper_save_plan());
          },
          py::arg("text"), py::arg("base") = py::none(),
          "agoq::parse_policy: the text form applied to base (default: the paper's plan).");
  mod.def("paper_save_plan", &agoq::paper_save_plan, py::arg("block") = 128);
  mod.def("bf16_save_plan", &agoq::bf16_save_plan);

  // DBCA-PP and schedules
  mod.def("peak_stash",
          [](const std::string& schedule, int stages, int micro_batches, int virtual_stages) {
            py::dict d; d["schedule"] = schedule; d["stages"] = stages; d["micro_batches"] = micro_batches;
            d["virtual_stages"] = virtual_stages; d["layers"] = stages * virtual_stages;
            const agoq::model_shape m = shape_from(d);
            return agoq::peak_stash(m.schedule, stages, micro_batches, virtual_stages);
          },
          py::arg("schedule"), py::arg("stages"), py::arg("micro_batches"), py::arg("virtual_stages") = 1);
  mod.def("stage_bits",
          [](const std::vector<int>& stash, int base_bits, const std::vector<int>& widths,
             bool allow_unquantized, double tolerance) {
            return agoq::stage_bits(stash, bits_opts(base_bits, widths, allow_unquantized, tolerance));
          },
          py::arg("stash"), py::arg("base_bits") = 4, py::arg("widths") = std::vector<int>{4, 5, 6, 8},
          py::arg("allow_unquantized") = false, py::arg("tolerance") = 0.0);

  // planner
  mod.def("layer_activation_memory",
          [](const py::dict& shape, const agoq::save_plan& plan, int bits, const std::string& acct) {
            return layer_dict(agoq::layer_activation_memory(shape_from(shape), plan, bits, acct_of(acct)));
          },
          py::arg("shape"), py::arg("plan"), py::arg("bits") = 4, py::arg("accounting") = "exact",
          "Bytes one layer keeps for backward under plan, against the BF16 baseline. shape: dict of "
          "model_shape fields (block, layers, hidden, ffn, heads, kv_heads, seq, micro_batch, ...).");
  mod.def("plan_memory",
          [](const py::dict& shape, const agoq::save_plan& plan, bool dbca, int base_bits,
             const std::vector<int>& widths, double tolerance, const std::string& acct) {
            agoq::plan_options o;
            o.bits = bits_opts(base_bits, widths, false, tolerance);
            o.dbca = dbca;
            o.acct = acct_of(acct);
            const agoq::memory_plan p = agoq::plan_memory(shape_from(shape), plan, o);
            py::dict d;
            d["peak_bytes"] = p.peak_bytes;
            d["peak_baseline_bytes"] = p.peak_baseline_bytes;
            d["saving"] = p.saving();
            py::list st;
            for (const auto& s : p.stages) {
              py::dict sd;
              sd["stage"] = s.stage; sd["stash"] = s.stash; sd["chunk_layers"] = s.chunk_layers;
              sd["bits"] = s.bits; sd["bytes"] = s.bytes; sd["baseline_bytes"] = s.baseline_bytes;
              st.append(sd);
            }
            d["stages"] = st;
            return d;
          },
          py::arg("shape"), py::arg("plan"), py::arg("dbca") = true, py::arg("base_bits") = 4,
          py::arg("widths") = std::vector<int>{4, 5, 6, 8}, py::arg("tolerance") = 0.0,
          py::arg("accounting") = "exact");

  // gradient buffer
  mod.def("grad_bytes_required",
          [](std::int64_t params, const std::string& spec, std::int64_t bucket) {
            return agoq::grad_bytes_required(params, parse_spec(spec), bucket);
          },
          py::arg("params"), py::arg("spec") = "int8/128", py::arg("bucket_elems") = agoq::default_bucket_elements);
  mod.def("grad_accumulate", &grad_accumulate, py::arg("mem"), py::arg("params"), py::arg("spec"),
          py::arg("bucket_elems"), py::arg("offset"), py::arg("grad"), py::arg("seed") = 0);
  mod.def("grad_dequantize_to", &grad_dequantize_to, py::arg("mem"), py::arg("params"), py::arg("spec"),
          py::arg("bucket_elems"), py::arg("offset"), py::arg("out"));
  mod.def("grad_accumulate_seed", &agoq::grad_accumulate_seed);

  // NCCL
  mod.def("nccl_unique_id", [] {
#ifdef AGOQ_TORCH_WITH_CUDA
    return py::bytes(cuda::nccl_unique_id());
#else
    throw agoq::error("agoq: built without CUDA");
    return py::bytes();
#endif
  });
  mod.def("nccl_comm_init", [](int world, int rank, py::bytes id, int device) {
#ifdef AGOQ_TORCH_WITH_CUDA
    std::uintptr_t c = 0;
    const std::string s = id;
    { py::gil_scoped_release nogil; c = cuda::nccl_comm_init(world, rank, s, device); }
    return c;
#else
    throw agoq::error("agoq: built without CUDA");
    return std::uintptr_t(0);
#endif
  }, py::arg("world"), py::arg("rank"), py::arg("id"), py::arg("device"));
  mod.def("nccl_comm_destroy", [](std::uintptr_t c) {
#ifdef AGOQ_TORCH_WITH_CUDA
    cuda::nccl_comm_destroy(c);
#endif
  });
  mod.def("allreduce_workspace_size",
          [](std::uintptr_t comm, std::int64_t count, const std::string& dtype, bool average,
             const std::string& algo, std::int64_t chunk) {
#ifdef AGOQ_TORCH_WITH_CUDA
            const dtype_code t = dtype == "float32"    ? dtype_code::f32
                                 : dtype == "float16"  ? dtype_code::f16
                                 : dtype == "bfloat16" ? dtype_code::bf16
                                                       : throw agoq::invalid_argument(
                                                             "agoq.allreduce_workspace_size: dtype must be "
                                                             "float32, float16 or bfloat16, got " + dtype);
            return cuda::allreduce_workspace_size(t, count, comm_opts(average, algo, chunk), comm);
#else
            throw agoq::error("agoq: built without CUDA");
            return std::size_t(0);
#endif
          },
          py::arg("comm"), py::arg("count"), py::arg("dtype"), py::arg("average") = true,
          py::arg("algo") = "auto", py::arg("chunk") = 0);
  mod.def("allreduce_",
          [](std::uintptr_t comm, const Tensor& t, const Tensor& ws, bool average,
             const std::string& algo, std::int64_t chunk) {
            const char* op = "agoq.allreduce_";
            require_cuda(t, op, "tensor");
            TORCH_CHECK_VALUE(t.is_contiguous(), op, ": tensor must be contiguous");
            TORCH_CHECK_VALUE(ws.scalar_type() == at::kByte && ws.is_contiguous() && ws.device() == t.device(),
                              op, ": workspace must be a contiguous uint8 tensor on the tensor's device");
#ifdef AGOQ_TORCH_WITH_CUDA
            c10::cuda::CUDAGuard guard(t.device());
            cuda::allreduce(code_of(t.scalar_type(), op, "tensor"), t.data_ptr(), t.data_ptr(), t.numel(),
                            comm_opts(average, algo, chunk), ws.data_ptr(), std::size_t(ws.numel()), comm,
                            stream_of(t));
#endif
          },
          py::arg("comm"), py::arg("tensor"), py::arg("workspace"), py::arg("average") = true,
          py::arg("algo") = "auto", py::arg("chunk") = 0);
  mod.def("grad_allreduce_workspace_size",
          [](std::uintptr_t comm, std::int64_t params, const std::string& spec, std::int64_t bucket_elems,
             std::int64_t bucket, bool average, const std::string& algo, std::int64_t chunk) {
#ifdef AGOQ_TORCH_WITH_CUDA
            return cuda::grad_allreduce_workspace_size(params, parse_spec(spec), bucket_elems, bucket,
                                                       comm_opts(average, algo, chunk), comm);
#else
            throw agoq::error("agoq: built without CUDA");
            return std::size_t(0);
#endif
          },
          py::arg("comm"), py::arg("params"), py::arg("spec"), py::arg("bucket_elems"), py::arg("bucket"),
          py::arg("average") = true, py::arg("algo") = "auto", py::arg("chunk") = 0);
  mod.def("grad_allreduce",
          [](std::uintptr_t comm, const Tensor& mem, std::int64_t params, const std::string& spec,
             std::int64_t bucket_elems, std::int64_t bucket, const Tensor& ws, bool average,
             const std::string& algo, std::int64_t chunk) {
            const char* op = "agoq.grad_allreduce";
            require_cuda(mem, op, "mem");
#ifdef AGOQ_TORCH_WITH_CUDA
            const agoq::quant_spec s = parse_spec(spec);
            checked_layout(op, mem, params, s, bucket_elems);
            c10::cuda::CUDAGuard guard(mem.device());
            cuda::grad_allreduce(mem.data_ptr(), std::size_t(mem.numel()), params, s, bucket_elems, bucket,
                                 comm_opts(average, algo, chunk), ws.data_ptr(), std::size_t(ws.numel()),
                                 comm, stream_of(mem));
#endif
          },
          py::arg("comm"), py::arg("mem"), py::arg("params"), py::arg("spec"), py::arg("bucket_elems"),
          py::arg("bucket"), py::arg("workspace"), py::arg("average") = true, py::arg("algo") = "auto",
          py::arg("chunk") = 0);
}

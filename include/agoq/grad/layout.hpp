// SPDX-License-Identifier: Apache-2.0
//! @file grad/layout.hpp
//! The host-only half of the 8-bit gradient buffer (grad/grad_buffer.cuh): how a flat gradient
//! space of N parameters is laid out in one caller-provided memory block, split into buckets, and
//! the constexpr size queries a caller needs before allocating. Plain C++ (no nvcc needed).
//!
//! Layout of the memory block (base aligned to grad_memory_alignment = 16 bytes; cudaMalloc gives
//! 256):
//! - codes of all N parameters, as ONE 1-D quantized tensor (format/format.hpp):
//!   codes_bytes(spec, N) bytes at offset 0;
//! - its scales, scales_bytes(spec, N) bytes, at offset align_up(codes_bytes(spec, N), 256).
//! So any block-aligned sub-range [offset, offset + count) is itself a valid 1-D quantized view
//! (codes + (offset / block) * block_code_bytes, scales + (offset / block) * scale_bytes).
//!
//! Buckets: bucket b holds parameters [b * bucket_elems, min(N, (b + 1) * bucket_elems)); the
//! bucket size is a positive multiple of the block, so every bucket starts on a block boundary and
//! only the last bucket can end in a partial block. Buckets are the unit of reduction (all-reduce
//! or reduce-scatter one bucket while backward still produces the next).
//!
//! Memory: bytes_per_param(spec) = bits_per_element(spec) / 8; for the default INT8, block 128,
//! fp32 scales that is exactly 1 + 4/128 = 1.03125 bytes per parameter (fp32 buffer: 4, bf16: 2).
//! bytes_required adds at most 2 x 255 bytes of alignment padding and one partial tail block.
//!
//! @code
//!   const agoq::quant_spec spec{};                                   // INT8, block 128, fp32
//!   const std::size_t bytes = agoq::grad_bytes_required(n_params, spec, 1 << 22);
//!   // allocate `bytes` of device memory, then construct agoq::grad_buffer over it
//! @endcode
#pragma once

#include "agoq/error.hpp"
#include "agoq/format/format.hpp"
#include "agoq/quant/view.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace agoq {

//! Required alignment (bytes) of the memory block handed to a gradient buffer.
constexpr std::size_t grad_memory_alignment = 16;

//! Alignment (bytes) of the scales region inside the memory block.
constexpr std::size_t grad_region_alignment = 256;

//! Default bucket size in parameters (a multiple of every supported block): 2^22 = 4 Mi
//! parameters, ~4.1 MiB of INT8 codes + scales. A placeholder until the GPU benchmark tunes it.
constexpr std::int64_t default_bucket_elements = std::int64_t(1) << 22;

namespace detail {
constexpr std::size_t grad_align_up(std::size_t v, std::size_t a) noexcept {
  return (v + a - 1) / a * a;
}
} // namespace detail

//! Null if (params, spec, bucket_elems) describe a valid gradient buffer, else a sentence naming
//! the argument and the rule. Rules: a valid symmetric spec (agoq::validate; zero points are not
//! supported because the collectives never carry them), params >= 0 and within the size queries'
//! domain (agoq::validate_shape), bucket_elems > 0 and a multiple of spec.block.
constexpr const char* validate_grad_layout(std::int64_t params, const quant_spec& spec,
                                           std::int64_t bucket_elems) noexcept {
  if (const char* m = validate(spec)) return m;
  if (!spec.symmetric) return "spec.symmetric must be true (gradient buffers carry no zero points)";
  if (params < 0) return "params must be >= 0";
  if (validate_shape(spec, 1, params) != nullptr)
    return "params is too large: ceil(params / spec.block) x spec.block must fit in std::int64_t "
           "(the byte counts would overflow)";
  if (bucket_elems <= 0) return "bucket_elems must be > 0";
  if (bucket_elems % spec.block != 0) return "bucket_elems must be a multiple of spec.block";
  return nullptr;
}

//! Storage bytes per parameter of a full block (codes + scale): bits_per_element(spec) / 8.
//! INT8, block 128, fp32 scale: 1.03125. Compare 4 (fp32 buffer) and 2 (bf16 buffer).
constexpr double grad_bytes_per_param(const quant_spec& spec) noexcept {
  return bits_per_element(spec) / 8.0;
}

//! Byte offset of the scales region in the memory block of `params` parameters.
constexpr std::size_t grad_scales_offset(std::int64_t params, const quant_spec& spec) noexcept {
  return detail::grad_align_up(codes_bytes(spec, params), grad_region_alignment);
}

//! Bytes of device memory a gradient buffer of `params` parameters needs (codes, padding, scales,
//! padding). The bucket size does not change it (buckets are views of one flat tensor); it is an
//! argument so that the call is checked with the same rules as the constructor. 0 for 0 params.
//! Throws agoq::invalid_argument ("agoq::grad_bytes_required: <argument> <rule>").
constexpr std::size_t grad_bytes_required(std::int64_t params, const quant_spec& spec,
                                          std::int64_t bucket_elems = default_bucket_elements) {
  if (const char* m = validate_grad_layout(params, spec, bucket_elems))
    throw invalid_argument(std::string("agoq::grad_bytes_required: ") + m);
  if (params == 0) return 0;
  return grad_scales_offset(params, spec) +
         detail::grad_align_up(scales_bytes(spec, params), grad_region_alignment);
}

//! The geometry of one gradient buffer: a plain, trivially-copyable value (no pointers) with the
//! constexpr queries and argument checks that the GPU buffer and the host tests share.
struct grad_layout {
  std::int64_t params = 0;                             //!< N, parameters in the flat space
  quant_spec spec{};                                   //!< storage format (default INT8/128/fp32)
  std::int64_t bucket_elems = default_bucket_elements; //!< parameters per bucket

  //! Null if valid, else the rule broken (validate_grad_layout).
  constexpr const char* validate() const noexcept {
    return validate_grad_layout(params, spec, bucket_elems);
  }
  //! Number of buckets (0 for an empty space).
  constexpr std::int64_t bucket_count() const noexcept {
    return params > 0 ? (params - 1) / bucket_elems + 1 : 0; // never forms params + bucket_elems
  }
  //! First parameter of bucket b (no range check).
  constexpr std::int64_t bucket_offset(std::int64_t b) const noexcept { return b * bucket_elems; }
  //! Parameters in bucket b (the last one may be shorter; 0 out of range).
  constexpr std::int64_t bucket_size(std::int64_t b) const noexcept {
    if (b < 0 || b >= bucket_count()) return 0;
    const std::int64_t left = params - b * bucket_elems;
    return left < bucket_elems ? left : bucket_elems;
  }
  //! Bytes of memory needed (grad_bytes_required without the throw; the layout must be valid).
  constexpr std::size_t total_bytes() const noexcept {
    return params == 0 ? 0
                       : grad_scales_offset(params, spec) +
                             detail::grad_align_up(scales_bytes(spec, params),
                                                   grad_region_alignment);
  }
  //! Bytes per parameter of a full block (1.03125 for INT8/128/fp32).
  constexpr double bytes_per_param() const noexcept { return grad_bytes_per_param(spec); }

  //! Null if [offset, offset + count) may be ACCUMULATED into (rewritten): offset >= 0 and a
  //! multiple of spec.block, count >= 0, offset + count <= params, and the range ends on a block
  //! boundary or at the end of the space (requantizing a partial block would drop the rest of
  //! that block's values).
  constexpr const char* check_write_range(std::int64_t offset, std::int64_t count) const noexcept {
    if (offset < 0) return "offset must be >= 0";
    if (offset % spec.block != 0) return "offset must be a multiple of spec.block";
    if (count < 0) return "count must be >= 0";
    if (offset > params || count > params - offset)
      return "count must not run past the buffer (offset + count <= params)";
    if (count % spec.block != 0 && offset + count != params)
      return "count must be a multiple of spec.block unless the range ends at the end of the "
             "buffer";
    return nullptr;
  }
  //! Null if [offset, offset + count) may be READ (dequantized): offset >= 0 and a multiple of
  //! spec.block, count >= 0, offset + count <= params.
  constexpr const char* check_read_range(std::int64_t offset, std::int64_t count) const noexcept {
    if (offset < 0) return "offset must be >= 0";
    if (offset % spec.block != 0) return "offset must be a multiple of spec.block";
    if (count < 0) return "count must be >= 0";
    if (offset > params || count > params - offset)
      return "count must not run past the buffer (offset + count <= params)";
    return nullptr;
  }
  //! Null if b names a bucket.
  constexpr const char* check_bucket(std::int64_t b) const noexcept {
    return (b < 0 || b >= bucket_count()) ? "bucket must be in [0, bucket_count())" : nullptr;
  }

  //! The 1-D quantized view of [offset, offset + count) inside `memory` (no checks).
  quantized_view sub_view(void* memory, std::int64_t offset, std::int64_t count) const noexcept {
    auto* base = static_cast<std::uint8_t*>(memory);
    const std::int64_t b0 = offset / spec.block;
    quantized_view v;
    v.codes = base + b0 * block_code_bytes(spec);
    v.scales = base + grad_scales_offset(params, spec) + b0 * scale_bytes(spec);
    v.zeros = nullptr;
    v.rows = 1;
    v.cols = count;
    v.spec = spec;
    return v;
  }
  //! The view of the whole space.
  quantized_view view(void* memory) const noexcept { return sub_view(memory, 0, params); }

  friend constexpr bool operator==(const grad_layout& a, const grad_layout& b) noexcept {
    return a.params == b.params && a.spec == b.spec && a.bucket_elems == b.bucket_elems;
  }
  friend constexpr bool operator!=(const grad_layout& a, const grad_layout& b) noexcept {
    return !(a == b);
  }
};

//! The Philox seed of the requantization when a micro-batch is accumulated into the range
//! starting at `offset` with base seed `seed`: element offset + i of the space draws
//! philox_uniform(grad_accumulate_seed(seed, offset), i). (The launcher counts Philox indices
//! from the start of the view it is given, so the offset is folded into the seed to keep
//! different ranges' noise unrelated.) A splitmix64 chain, the same on host and device.
constexpr std::uint64_t grad_accumulate_seed(std::uint64_t seed, std::int64_t offset) noexcept {
  auto mix = [](std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  return mix(mix(seed ^ 0x67726164ull /* "grad" */) ^ std::uint64_t(offset));
}

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file comm/workspace.hpp
//! How much caller-provided workspace a collective needs. agoq never allocates: the caller
//! allocates (in the transport's memory space, aligned to workspace_alignment) once per
//! (count, element type, config, world) and passes it to every call, which keeps the collectives
//! usable under CUDA graph capture.
//!
//! Contents per rank (each region aligned to message_alignment; S = packed bytes of the largest
//! shard, comm/partition.hpp; C = min(chunk, span) elements; b' ~ 1.03 bytes/element for INT8 +
//! fp32 scale per 128):
//! - two_shot: 2 * W * S (the gather area, chunk-major, which first holds the pieces this rank
//!   sends; the pieces of my shard, received or my own)  ~ 2 * count * b' bytes. No fp32
//!   accumulator: the sum of a chunk is reduced and requantized in one fused executor operation;
//! - one_shot: W * packed(count) (all-gathered inputs, chunk-major; reduced by a fused operation)
//!   ~ W * count * b' bytes;
//! - ring: W * S (all-gather target) + 2 chunk messages + 4 * C  ~ count * b' bytes;
//! - tree: 2 chunk messages + 4 * C (independent of W).
#pragma once

#include "agoq/comm/schedule.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace agoq {

//! Bytes of workspace every rank must pass to allreduce() for `count` elements of `type` under
//! `cfg` on `world` ranks (the algorithm resolved as allreduce() resolves it); 0 when
//! count == 0. The same on every rank; deterministic.
//! Errors: agoq::invalid_argument ("agoq::allreduce_workspace_size: <argument> <rule>") for an
//! invalid cfg or type, count < 0, world < 1, or count x world above max_count_times_world
//! (comm/partition.hpp: the byte counts would overflow).
inline std::size_t allreduce_workspace_size(std::int64_t count, element_type type,
                                            const allreduce_config& cfg, int world) {
  const char* fn = "agoq::allreduce_workspace_size";
  if (const char* msg = validate(cfg)) detail::comm_fail(fn, msg);
  if (!detail::is_known(type))
    detail::comm_fail(fn, "type must be element_type::f32, f16 or bf16 (got " +
                              std::to_string(int(type)) + ")");
  if (count < 0) detail::comm_fail(fn, "count must be >= 0 (got " + std::to_string(count) + ")");
  if (world < 1) detail::comm_fail(fn, "world must be >= 1 (got " + std::to_string(world) + ")");
  detail::check_count_domain(fn, count, world);
  return detail::make_layout(resolve_algorithm(cfg, count, type, world),
                             make_partition(count, cfg, world), cfg.spec())
      .total;
}

//! allreduce_workspace_size for element type T (float, __half, __nv_bfloat16).
template <class T>
inline std::size_t allreduce_workspace_size(std::int64_t count, const allreduce_config& cfg,
                                            int world) {
  return allreduce_workspace_size(count, element_type_of<T>(), cfg, world);
}

} // namespace agoq

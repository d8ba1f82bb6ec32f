// SPDX-License-Identifier: Apache-2.0
//! @file comm/config.hpp
//! The vocabulary of agoq's quantized collectives: `algorithm`, `reduce_op` and
//! `allreduce_config` (wire format, block, scale kind, rounding, op, algorithm, seed, chunk).
//!
//! Every rank of a collective must pass the same count and an equal config (operator==); the
//! schedules cannot detect a mismatch and would exchange messages of different sizes.
#pragma once

#include "agoq/format/format.hpp"

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace agoq {

//! Which all-reduce schedule runs. See comm/schedule.hpp for the exact orders and roundings.
enum class algorithm : std::uint8_t {
  auto_select, //!< picked from (input bytes, world size); see select_algorithm()
  two_shot,    //!< quantize once, all-to-all, fp32 sum in rank order, requantize once, all-gather
  one_shot,    //!< all-gather the quantized inputs, every rank sums all of them in fp32
  ring,        //!< quantized ring reduce-scatter (requantize every hop), then all-gather
  tree,        //!< binomial-tree reduce to rank 0 (requantize per level), binomial broadcast
};

//! The reduction. `average` divides the fp32 sum by the world size (see schedule.hpp for where).
enum class reduce_op : std::uint8_t { sum, average };

constexpr const char* to_string(algorithm a) noexcept {
  switch (a) {
  case algorithm::auto_select: return "auto";
  case algorithm::two_shot: return "two_shot";
  case algorithm::one_shot: return "one_shot";
  case algorithm::ring: return "ring";
  case algorithm::tree: return "tree";
  }
  return "unknown_algorithm";
}

constexpr const char* to_string(reduce_op op) noexcept {
  switch (op) {
  case reduce_op::sum: return "sum";
  case reduce_op::average: return "average";
  }
  return "unknown_op";
}

inline std::ostream& operator<<(std::ostream& os, algorithm a) { return os << to_string(a); }
inline std::ostream& operator<<(std::ostream& os, reduce_op op) { return os << to_string(op); }

//! Pipeline chunks the library aims for per shard when allreduce_config::chunk is 0: two-shot
//! cuts each rank's shard into about this many chunks, so that while chunk c is exchanged chunk
//! c+1 is quantized and chunk c-1 reduced (comm/schedule.hpp); one-shot uses the same chunk
//! size over the whole count (about W times as many chunks). More chunks shorten the pipeline's
//! fill and drain (one chunk's codec work and gather are not hidden) and cost one grouped
//! send/recv and one all-gather each. A measurement knob: bench/allreduce_bench.cu --chunk
//! overrides the resulting chunk for a sweep.
constexpr std::int64_t pipeline_chunks = 16;

//! The smallest default chunk (elements; rounded down to whole blocks): a chunk below it would
//! make messages too small for NVLink bandwidth, so small messages use fewer (down to one)
//! chunks. With one chunk nothing is pipelined and everything stays on the caller's stream.
constexpr std::int64_t pipeline_min_chunk_elements = std::int64_t(1) << 20;

//! How an all-reduce is carried out. Defaults: INT8 codes, one fp32 scale per 128 elements,
//! round to nearest even, sum, automatic algorithm, pipeline chunk chosen by the library.
struct allreduce_config {
  agoq::format wire = agoq::format::int8;          //!< code format on the wire (symmetric)
  int block = 128;                                 //!< elements per scale: 32, 64, 128, 256
  agoq::scale_kind scale = agoq::scale_kind::fp32; //!< how block scales are chosen and stored
  agoq::rounding rounding = agoq::rounding::nearest_even; //!< every quantization's rounding
  reduce_op op = reduce_op::sum;                          //!< sum or average
  agoq::algorithm algo = agoq::algorithm::auto_select;    //!< schedule (auto: select_algorithm())
  std::uint64_t seed = 0; //!< stochastic rounding seed (salted per stage/rank/shard/chunk)
  //! Elements per pipeline chunk: 0 = library default (chunk_elements() in comm/partition.hpp:
  //! about max shard / pipeline_chunks, at least pipeline_min_chunk_elements), else a positive
  //! multiple of `block` (any size: one at or above the count in whole blocks is one chunk per
  //! range, see chunk_elements). It changes the message granularity and the stochastic-rounding
  //! noise streams, never the summation order, so RNE results do not depend on it.
  std::int64_t chunk = 0;

  //! The quant_spec of every message (always symmetric: no zero points travel).
  constexpr quant_spec spec() const noexcept {
    quant_spec s;
    s.format = wire;
    s.block = block;
    s.scale = scale;
    s.rounding = rounding;
    s.symmetric = true;
    return s;
  }

  friend constexpr bool operator==(const allreduce_config& a, const allreduce_config& b) noexcept {
    return a.wire == b.wire && a.block == b.block && a.scale == b.scale &&
           a.rounding == b.rounding && a.op == b.op && a.algo == b.algo && a.seed == b.seed &&
           a.chunk == b.chunk;
  }
  friend constexpr bool operator!=(const allreduce_config& a, const allreduce_config& b) noexcept {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const allreduce_config& c) {
    os << c.wire << '/' << c.block << '/' << c.scale << '/' << c.rounding << '/' << c.op << '/'
       << c.algo;
    if (c.rounding == agoq::rounding::stochastic) os << "/seed=" << c.seed;
    if (c.chunk != 0) os << "/chunk=" << c.chunk;
    return os;
  }
};

//! A null message if `c` is valid, else a sentence naming the field and the rule it broke,
//! e.g. "config.block must be 32, 64, 128 or 256".
constexpr const char* validate(const allreduce_config& c) noexcept {
  if (!is_supported_block(c.block)) return "config.block must be 32, 64, 128 or 256";
  if (bits_of(c.wire) == 0) return "config.wire is not a known format";
  if (c.scale != scale_kind::fp32 && c.scale != scale_kind::pow2 && c.scale != scale_kind::e8m0)
    return "config.scale is not a known scale_kind (fp32, pow2 or e8m0)";
  if (c.rounding != agoq::rounding::nearest_even && c.rounding != agoq::rounding::stochastic)
    return "config.rounding is not a known rounding (nearest_even or stochastic)";
  if (c.op != reduce_op::sum && c.op != reduce_op::average)
    return "config.op must be reduce_op::sum or reduce_op::average";
  if (c.algo != algorithm::auto_select && c.algo != algorithm::two_shot &&
      c.algo != algorithm::one_shot && c.algo != algorithm::ring && c.algo != algorithm::tree)
    return "config.algo is not a known algorithm";
  if (c.chunk < 0) return "config.chunk must be >= 0";
  if (c.chunk % c.block != 0) return "config.chunk must be a multiple of config.block";
  return nullptr;
}

} // namespace agoq

// SPDX-License-Identifier: Apache-2.0
//! @file comm/schedule.hpp
//! The all-reduce algorithms, each written once against the Transport and Executor interfaces of
//! comm/transport.hpp, and the automatic choice between them.
//!
//! Notation: W ranks, x_r the input of rank r (type T, converted to fp32 exactly), Q(.) one
//! block-scaled quantization (format/codec.hpp), D(.) its decoding, "+" one IEEE fp32 addition.
//! Shards and chunks: comm/partition.hpp. Every schedule processes chunks in increasing order and
//! never lets the chunk size change a summation order, so round-to-nearest results do not depend
//! on the chunk size. In every schedule each output element is decoded from ONE quantized value
//! that every rank received bit for bit (or, one-shot, from the same W quantized inputs summed
//! in the same order), so all ranks' outputs are bitwise identical, and repeated calls with the
//! same inputs reproduce them.
//!
//! - two_shot (default for large messages). Shard k of the output is owned by rank k.
//!   1. every rank r quantizes its chunk of every shard k once: m[r][k] = Q(x_r|k);
//!   2. all-to-all (grouped send/recv per chunk): owner k receives m[0..W-1][k];
//!   3. owner k: s = D(m[0][k]) + D(m[1][k]) + ... + D(m[W-1][k]), left to right (fixed rank
//!      order 0..W-1, the owner's own piece decoded like the others); average: s = s / W;
//!      then its shard is requantized once: f[k] = Q(s) (one fused Executor::reduce_quantize:
//!      the fp32 sum never goes to memory);
//!   4. all-gather of f[0..W-1], chunk by chunk; every rank (the owner too) writes y = T(D(f)),
//!      RNE.
//!   Roundings per element: exactly 2 quantizations (+ the final T rounding), whatever W.
//!   Pipelining: with more than one chunk the schedule forks the transport's communication queue
//!   (comm/transport.hpp) and issues, for t = 0, 1, ...: quantize chunk t (one batched launch for
//!   all W pieces) -> exchange chunk t; reduce chunk t-1 (after its exchange) -> all-gather chunk
//!   t-1; dequantize chunk t-2 (after its all-gather). The communication queue runs exchange t,
//!   gather t-1, exchange t+1, ... back to back while the compute queue reduces chunk t-1,
//!   dequantizes chunk t-2 and quantizes chunk t+1; per chunk that is 3 codec launches, one
//!   grouped send/recv and one all-gather. Only the first quantization and the last reduction,
//!   gather and dequantization are not hidden (hence pipeline_chunks chunks per shard). It joins
//!   before returning; with a single chunk everything stays in program order on one queue.
//!   Workspace: the gather area holds chunk c's W messages together (partition's interleaved
//!   packing; it also holds the pieces this rank sends); the receive area has W slots, slot j the
//!   pieces from rank j (slot r: my own piece, quantized there directly).
//! - one_shot (small messages, and every size on 2 ranks). Every rank quantizes its whole input
//!   once (m[r] = Q(x_r)), all-gathers m[0..W-1], and computes s = D(m[0]) + ... + D(m[W-1])
//!   (rank order), average: s = s / W, y = T(s) (one fused Executor::reduce_store per chunk).
//!   Roundings: 1 quantization per input (+ the final T rounding). Sends (W-1) * N * b' bytes
//!   per rank: latency-optimal, bandwidth-poor from 3 ranks on; on 2 ranks it sends exactly
//!   two_shot's bytes with one step and one rounding fewer. Pipelined over chunks like two_shot
//!   (quantize chunk t -> all-gather chunk t; reduce chunk t-1 after its all-gather), in the
//!   chunk-major gather area (partition's interleaved packing).
//! - ring. Reduce-scatter around the ring r -> r+1 in W-1 steps, then all-gather. The partial sum
//!   of shard k starts at rank k+1 (p = Q(x_{k+1})), travels k+2, ..., k+W-1, each hop computing
//!   p = Q(D(p) + x_r); the owner k computes s = D(p) + x_k (average: s = s / W) and f[k] = Q(s).
//!   Summation order of shard k: ((x_{k+1} + x_{k+2}) + ...) + x_k. Roundings per element: W
//!   dependent quantizations (1 at the start, W-2 at intermediate hops, 1 at the owner; 1 when
//!   W = 1): the error grows with W (measured in tests/unit/test_comm_allreduce.cpp).
//!   ring and tree (below) are not pipelined: they run in program order on one queue.
//! - tree (latency-bound sizes, many ranks). Binomial tree rooted at rank 0 over the whole
//!   message, chunk by chunk. Rank r holds a = x_r, then for mask = 1, 2, 4, ...: if r & mask it
//!   sends Q(a) to r - mask and stops; else if r + mask < W it receives m from r + mask and does
//!   a = a + D(m). Rank 0 (average: a = a / W) quantizes f = Q(a) once and f is broadcast down
//!   the same binomial tree (each rank receives f from r - lowbit(r) and forwards it unchanged);
//!   y = T(D(f)) on every rank. Roundings per element: at most ceil(log2 W) + 1 quantizations.
//!
//! Average: the division by W is one IEEE fp32 division of the complete fp32 sum, done by the
//! rank that performs the last addition, immediately before the final quantization (two_shot,
//! ring: the shard owner; tree: rank 0) or before the output conversion (one_shot: every rank).
//!
//! Stochastic rounding: every quantization uses seed' = stream_seed(cfg.seed, stage, rank, shard,
//! chunk) where stage identifies the step of the schedule (two_shot: 0 input, 1 owner; one_shot:
//! 0; ring: the hop 0..W-2, W-1 for the owner; tree: the level, 63 for the root's final
//! quantization), rank is the quantizing rank, shard the shard index (0 for one_shot and tree)
//! and chunk the chunk index; Philox then draws u = philox_uniform(seed', i) for element i of the
//! message. So ranks, steps, shards and chunks never share noise, and the result is a
//! deterministic function of (inputs, cfg, W). Changing cfg.chunk changes the noise streams (so
//! does the count when cfg.chunk = 0: the default chunk is a function of count and W).
#pragma once

#include "agoq/comm/config.hpp"
#include "agoq/comm/partition.hpp"
#include "agoq/comm/transport.hpp"
#include "agoq/error.hpp"
#include "agoq/format/element.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace agoq {

//! Crossovers of algorithm::auto_select. Measured on 2 x H200 (bench/RESULTS.md, `--algo all`):
//! one_shot was the fastest algorithm at every size from 1 to 256 MiB, as expected (on 2 ranks
//! it moves two_shot's bytes in one NCCL all-gather instead of a send/recv exchange plus an
//! all-gather, with one rounding fewer), so 2 ranks always get one_shot (above 256 MiB by that
//! argument; not measured there yet). The 3+-rank limits are PLACEHOLDERS until a
//! 4-GPU `--algo all` run: one_shot wins while its (W-1)-fold bytes cost less than two_shot's
//! extra step.
//! Input bytes at or below which one_shot is chosen (W >= 3).
constexpr std::size_t auto_one_shot_max_bytes = std::size_t(1) << 20;
//! World size from which tree replaces two_shot for latency-bound messages.
constexpr int auto_tree_min_world = 8;
//! Input bytes at or below which tree is chosen when W >= auto_tree_min_world (and one_shot's
//! limit is exceeded).
constexpr std::size_t auto_tree_max_bytes = std::size_t(2) << 20;

//! The algorithm `auto_select` runs for a message of `bytes` input bytes (count * sizeof(T)) on
//! `world` ranks: one_shot for world <= 2 (world 1: no communication, one quantization) and for
//! bytes <= auto_one_shot_max_bytes; tree for world >= auto_tree_min_world and
//! bytes <= auto_tree_max_bytes; two_shot otherwise. ring is never chosen automatically (same
//! bytes as two_shot, more roundings and more latency steps). Deterministic: every rank passing
//! the same (bytes, world) gets the same answer.
constexpr algorithm select_algorithm(std::size_t bytes, int world) noexcept {
  if (world <= 2 || bytes <= auto_one_shot_max_bytes) return algorithm::one_shot;
  if (world >= auto_tree_min_world && bytes <= auto_tree_max_bytes) return algorithm::tree;
  return algorithm::two_shot;
}

//! cfg.algo, or select_algorithm(count * size_of(type), world) when it is auto_select.
constexpr algorithm resolve_algorithm(const allreduce_config& cfg, std::int64_t count,
                                      element_type type, int world) noexcept {
  return cfg.algo != algorithm::auto_select
             ? cfg.algo
             : select_algorithm(std::size_t(count < 0 ? 0 : count) * size_of(type), world);
}

namespace detail {

constexpr std::uint64_t splitmix64(std::uint64_t z) noexcept {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

} // namespace detail

//! The Philox seed of one quantization (see the file comment): a splitmix64 chain over
//! (seed, stage, rank, shard, chunk). Distinct tuples give unrelated seeds.
constexpr std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stage, std::uint64_t rank,
                                    std::uint64_t shard, std::uint64_t chunk) noexcept {
  std::uint64_t h = detail::splitmix64(seed);
  h = detail::splitmix64(h ^ (stage << 48) ^ (rank << 32) ^ shard);
  return detail::splitmix64(h ^ chunk);
}

namespace detail {

//! Where each region of an all-reduce workspace lies (byte offsets from the workspace start,
//! each a multiple of message_alignment) and the total. `slot` is the per-rank stride of the
//! W-slot regions.
struct allreduce_layout {
  algorithm algo = algorithm::two_shot;
  std::size_t slot = 0;   //!< two_shot, ring: packed_bytes(max shard); one_shot: packed(count)
  std::size_t area_a = 0; //!< two_shot: gather area (chunk-major, W * slot bytes: the pieces I
                          //!< send, then the gathered shards); one_shot: gather area
                          //!< (chunk-major, W * slot bytes); ring: W gather slots; tree: unused
  std::size_t area_b = 0; //!< two_shot: W receive slots; ring, tree: send then recv message
  std::size_t msg = 0;    //!< ring, tree: bytes of one aligned chunk message buffer
  std::size_t acc = 0;    //!< ring, tree: fp32 accumulator of one chunk (two_shot and one_shot
                          //!< reduce with fused executor operations and need none)
  std::size_t total = 0;
};

inline allreduce_layout make_layout(algorithm algo, const partition& p, const quant_spec& s) {
  allreduce_layout l;
  l.algo = algo;
  if (p.count == 0) return l;
  const std::size_t w = std::size_t(p.world);
  const std::int64_t span =
      (algo == algorithm::two_shot || algo == algorithm::ring) ? p.max_shard() : p.count;
  const std::int64_t acc_n = span < p.chunk ? span : p.chunk;
  l.slot = p.packed_bytes(s, span);
  switch (algo) {
  case algorithm::two_shot:
    l.area_a = 0;
    l.area_b = w * l.slot;
    l.total = 2 * w * l.slot;
    break;
  case algorithm::one_shot: l.total = w * l.slot; break;
  case algorithm::ring:
    l.acc = align_up(std::size_t(acc_n) * sizeof(float), message_alignment);
    l.msg = align_up(message_bytes(s, acc_n), message_alignment);
    l.area_b = w * l.slot;
    l.total = w * l.slot + 2 * l.msg + l.acc;
    break;
  default: // tree
    l.slot = 0;
    l.acc = align_up(std::size_t(acc_n) * sizeof(float), message_alignment);
    l.msg = align_up(message_bytes(s, acc_n), message_alignment);
    l.area_b = 0;
    l.total = 2 * l.msg + l.acc;
    break;
  }
  return l;
}

[[noreturn]] inline void comm_fail(const char* fn, const std::string& what) {
  throw invalid_argument(std::string(fn) + ": " + what);
}

//! The rule a count outside the collectives' size domain breaks (comm/partition.hpp), or null.
inline std::string count_domain_rule(std::int64_t count, int world) {
  if (count_in_domain(count, world)) return std::string();
  return "count is too large: count x world must be <= max_count_times_world (2^56; the "
         "workspace byte counts would overflow), got count=" +
         std::to_string(count) + ", world=" + std::to_string(world);
}

//! Throws invalid_argument "<fn>: count is too large: ..." outside the size domain.
inline void check_count_domain(const char* fn, std::int64_t count, int world) {
  const std::string rule = count_domain_rule(count, world);
  if (!rule.empty()) comm_fail(fn, rule);
}

template <class T> struct allreduce_args {
  const T* x;
  T* y;
  partition p;
  quant_spec spec;
  allreduce_config cfg;
  allreduce_layout lay;
  std::uint8_t* ws;
  int rank;
  int world;

  //! The fp32 accumulator (ring and tree only).
  float* acc() const { return reinterpret_cast<float*>(ws + lay.total - lay.acc); }
};

//! The mark a pipelined schedule uses for the first (kind 0: two_shot's exchange, one_shot's
//! all-gather) or second (kind 1: two_shot's all-gather) transfer of chunk c: four marks in turn,
//! so a mark is recorded again only after its last wait was issued.
constexpr int pipeline_mark(std::int64_t c, int kind) noexcept { return int((2 * c + kind) % 4); }

//! Two-shot, pipelined over chunks (see the file comment): steps 1-3 for every chunk and, when
//! `gather`, step 4. `done(c, msg, n)` receives each requantized chunk of my shard (its message in
//! the gather area), in chunk order, right after it is produced; it may enqueue executor
//! operations (reduce-scatter copies the chunk out). The all-reduce is this with gather = true;
//! the reduce-scatter with gather = false.
template <class T, class Tr, class Ex, class Done>
inline void two_shot_chunks(const allreduce_args<T>& a, Tr& tr, Ex& ex, bool gather, Done&& done) {
  const partition& p = a.p;
  const quant_spec& s = a.spec;
  const int r = a.rank, w = a.world;
  std::uint8_t* gat = a.ws + a.lay.area_a; // chunk c's W messages together (interleaved)
  std::uint8_t* rcv = a.ws + a.lay.area_b; // W slots: the pieces of my shard, rank j's in slot j
  const std::int64_t span = p.max_shard();
  const element_range my = p.shard(r);
  const std::int64_t nchunks = p.chunks(span);
  const float divisor = a.cfg.op == reduce_op::average && w > 1 ? float(w) : 1.0f;
  auto gathered = [&](std::int64_t c, int k) { // shard k's message of chunk c (gather area)
    return gat + p.interleaved_offset(s, c) + std::size_t(k) * p.interleaved_stride(s, span, c);
  };
  auto piece = [&](std::int64_t c, int j) { // rank j's piece of my shard, chunk c
    return rcv + std::size_t(j) * a.lay.slot + p.chunk_offset(s, c);
  };
  std::vector<quantize_job<T>> qjobs;
  std::vector<dequantize_job<T>> djobs;
  qjobs.reserve(std::size_t(w));
  djobs.reserve(std::size_t(w));

  // 1. my piece of every shard, one batch: my own shard's straight into its receive slot, the
  // others into the gather area, from where they are sent (and later overwritten by the gather).
  auto quantize_chunk = [&](std::int64_t c) {
    qjobs.clear();
    for (int k = 0; k < w; ++k) {
      const element_range sh = p.shard(k);
      const std::int64_t n = p.chunk_size(sh.size(), c);
      if (n > 0)
        qjobs.push_back(
            {a.x + sh.begin + c * p.chunk, n, k == r ? piece(c, r) : gathered(c, k),
             stream_seed(a.cfg.seed, 0, std::uint64_t(r), std::uint64_t(k), std::uint64_t(c))});
    }
    detail::quantize_many(ex, qjobs.data(), int(qjobs.size()), s);
  };
  // 2. all-to-all of chunk c
  auto exchange = [&](std::int64_t c) {
    const std::int64_t nm = p.chunk_size(my.size(), c);
    tr.group_start();
    for (int k = 0; k < w; ++k) {
      if (k == r) continue;
      const std::int64_t n = p.chunk_size(p.shard(k).size(), c);
      if (n > 0) tr.send(gathered(c, k), message_bytes(s, n), k);
      if (nm > 0) tr.recv(piece(c, k), message_bytes(s, nm), k);
    }
    tr.group_end();
  };
  // 3. fp32 sum in rank order 0..W-1, average, one requantization: one fused operation
  auto reduce = [&](std::int64_t c) {
    const std::int64_t nm = p.chunk_size(my.size(), c);
    if (nm == 0) return;
    std::uint8_t* f = gathered(c, r);
    ex.reduce_quantize(
        piece(c, 0), a.lay.slot, w, nm, s, divisor, message_view(f, nm, s),
        stream_seed(a.cfg.seed, 1, std::uint64_t(r), std::uint64_t(r), std::uint64_t(c)));
    done(c, static_cast<const std::uint8_t*>(f), nm);
  };
  // 4. all-gather of chunk c (in place; a rank whose shard has no chunk c sends filler bytes
  // nobody decodes), then every shard's chunk c decoded into the output, one batch
  auto gather_chunk = [&](std::int64_t c) {
    tr.all_gather(gathered(c, r), gathered(c, 0), p.interleaved_stride(s, span, c));
  };
  auto dequantize_chunk = [&](std::int64_t c) {
    djobs.clear();
    for (int k = 0; k < w; ++k) {
      const element_range sh = p.shard(k);
      const std::int64_t n = p.chunk_size(sh.size(), c);
      if (n > 0) djobs.push_back({gathered(c, k), n, a.y + sh.begin + c * p.chunk});
    }
    detail::dequantize_many(ex, djobs.data(), int(djobs.size()), s);
  };

  // With one chunk there is nothing to overlap: stay on one queue (no cross-queue hops).
  const bool pipelined = nchunks > 1;
  if (pipelined) detail::queue_fork(tr);
  for (std::int64_t t = 0; t < nchunks + 2; ++t) {
    if (t < nchunks) {
      quantize_chunk(t);
      detail::comm_wait_compute(tr);
      exchange(t);
      detail::comm_record(tr, pipeline_mark(t, 0));
    }
    if (t >= 1 && t <= nchunks) {
      const std::int64_t c = t - 1;
      detail::compute_wait_comm(tr, pipeline_mark(c, 0));
      reduce(c);
      if (gather) {
        detail::comm_wait_compute(tr);
        gather_chunk(c);
        detail::comm_record(tr, pipeline_mark(c, 1));
      }
    }
    if (gather && t >= 2) {
      const std::int64_t c = t - 2;
      detail::compute_wait_comm(tr, pipeline_mark(c, 1));
      dequantize_chunk(c);
    }
  }
  if (pipelined) detail::queue_join(tr);
}

//! Steps 1-3 of two-shot (the reduce-scatter half; see two_shot_chunks). `done(c, msg, n)`
//! receives each requantized chunk of my shard.
template <class T, class Tr, class Ex, class Done>
inline void two_shot_reduce(const allreduce_args<T>& a, Tr& tr, Ex& ex, Done&& done) {
  two_shot_chunks(a, tr, ex, false, std::forward<Done>(done));
}

template <class T, class Tr, class Ex>
inline void run_two_shot(const allreduce_args<T>& a, Tr& tr, Ex& ex) {
  two_shot_chunks(a, tr, ex, true, [](std::int64_t, const std::uint8_t*, std::int64_t) {});
}

template <class T, class Tr, class Ex>
inline void run_one_shot(const allreduce_args<T>& a, Tr& tr, Ex& ex) {
  const partition& p = a.p;
  const quant_spec& s = a.spec;
  const int r = a.rank, w = a.world;
  std::uint8_t* gat = a.ws + a.lay.area_a; // chunk-major: chunk c of every rank together
  const std::int64_t nchunks = p.chunks(p.count);
  const float divisor = a.cfg.op == reduce_op::average && w > 1 ? float(w) : 1.0f;
  const bool pipelined = nchunks > 1;
  // My chunk c, straight into my slot of its gather area. Pipelined: through quantize_many (one
  // job), whose short-lived CTAs let the all-gather's NCCL kernel onto the SMs while it runs,
  // where the one-wave quantize kernel (faster alone) would hold them until it ends.
  auto quantize_chunk = [&](std::int64_t c) {
    const quantize_job<T> job{a.x + c * p.chunk, p.chunk_size(p.count, c),
                              gat + p.interleaved_offset(s, c) +
                                  std::size_t(r) * p.interleaved_stride(s, p.count, c),
                              stream_seed(a.cfg.seed, 0, std::uint64_t(r), 0, std::uint64_t(c))};
    if (pipelined)
      detail::quantize_many(ex, &job, 1, s);
    else
      ex.quantize(job.x, job.n, job.msg, s, job.seed);
  };
  auto gather_chunk = [&](std::int64_t c) {
    const std::size_t stride = p.interleaved_stride(s, p.count, c);
    std::uint8_t* all = gat + p.interleaved_offset(s, c);
    tr.all_gather(all + std::size_t(r) * stride, all, stride);
  };
  auto reduce_chunk = [&](std::int64_t c) { // fp32 sum in rank order, average, T: fused
    ex.reduce_store(gat + p.interleaved_offset(s, c), p.interleaved_stride(s, p.count, c), w,
                    p.chunk_size(p.count, c), s, divisor, a.y + c * p.chunk);
  };
  // Pipelined like two_shot: the all-gather of chunk t runs on the communication queue while
  // the compute queue reduces chunk t-1 and quantizes chunk t+1.
  if (pipelined) detail::queue_fork(tr);
  for (std::int64_t t = 0; t <= nchunks; ++t) {
    if (t < nchunks) {
      quantize_chunk(t);
      detail::comm_wait_compute(tr);
      gather_chunk(t);
      detail::comm_record(tr, pipeline_mark(t, 0));
    }
    if (t >= 1) {
      detail::compute_wait_comm(tr, pipeline_mark(t - 1, 0));
      reduce_chunk(t - 1);
    }
  }
  if (pipelined) detail::queue_join(tr);
}

template <class T, class Tr, class Ex>
inline void run_ring(const allreduce_args<T>& a, Tr& tr, Ex& ex) {
  const partition& p = a.p;
  const quant_spec& s = a.spec;
  const int r = a.rank, w = a.world;
  std::uint8_t* gather = a.ws + a.lay.area_a;
  std::uint8_t* sbuf = a.ws + a.lay.area_b;
  std::uint8_t* rbuf = sbuf + a.lay.msg;
  float* acc = a.acc();
  const int next = (r + 1) % w, prev = (r + w - 1) % w;
  auto mod = [w](int v) { return ((v % w) + w) % w; };
  const std::int64_t nchunks = p.chunks(p.max_shard());
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const std::size_t off = p.chunk_offset(s, c);
    if (w == 1) {
      const std::int64_t n = p.chunk_size(p.count, c);
      ex.quantize(a.x + c * p.chunk, n, gather + off, s,
                  stream_seed(a.cfg.seed, 0, 0, 0, std::uint64_t(c)));
      continue;
    }
    { // step 0's payload: my own contribution to shard r-1, quantized once
      const int k = mod(r - 1);
      const element_range sh = p.shard(k);
      const std::int64_t n = p.chunk_size(sh.size(), c);
      if (n > 0)
        ex.quantize(
            a.x + sh.begin + c * p.chunk, n, sbuf, s,
            stream_seed(a.cfg.seed, 0, std::uint64_t(r), std::uint64_t(k), std::uint64_t(c)));
    }
    for (int step = 0; step < w - 1; ++step) {
      const int ks = mod(r - 1 - step), kr = mod(r - 2 - step);
      const std::int64_t ns = p.chunk_size(p.shard(ks).size(), c);
      const element_range shr = p.shard(kr);
      const std::int64_t nr = p.chunk_size(shr.size(), c);
      tr.group_start();
      if (ns > 0) tr.send(sbuf, message_bytes(s, ns), next);
      if (nr > 0) tr.recv(rbuf, message_bytes(s, nr), prev);
      tr.group_end();
      if (nr == 0) continue;
      ex.decode(rbuf, nr, s, acc);
      ex.add(a.x + shr.begin + c * p.chunk, nr, acc);
      if (step < w - 2) {
        ex.quantize(static_cast<const float*>(acc), nr, sbuf, s,
                    stream_seed(a.cfg.seed, std::uint64_t(step) + 1, std::uint64_t(r),
                                std::uint64_t(kr), std::uint64_t(c)));
      } else { // kr == r: I own this shard; the sum is complete
        if (a.cfg.op == reduce_op::average) ex.divide(acc, nr, float(w));
        ex.quantize(static_cast<const float*>(acc), nr, gather + std::size_t(r) * a.lay.slot + off,
                    s,
                    stream_seed(a.cfg.seed, std::uint64_t(w) - 1, std::uint64_t(r),
                                std::uint64_t(r), std::uint64_t(c)));
      }
    }
  }
  tr.all_gather(gather + std::size_t(r) * a.lay.slot, gather, a.lay.slot);
  for (int k = 0; k < w; ++k) {
    const element_range sh = p.shard(k);
    for (std::int64_t c = 0; c < p.chunks(sh.size()); ++c)
      ex.dequantize(gather + std::size_t(k) * a.lay.slot + p.chunk_offset(s, c),
                    p.chunk_size(sh.size(), c), s, a.y + sh.begin + c * p.chunk);
  }
}

template <class T, class Tr, class Ex>
inline void run_tree(const allreduce_args<T>& a, Tr& tr, Ex& ex) {
  const partition& p = a.p;
  const quant_spec& s = a.spec;
  const int r = a.rank, w = a.world;
  std::uint8_t* sbuf = a.ws + a.lay.area_b; // also holds the final codes being broadcast
  std::uint8_t* rbuf = sbuf + a.lay.msg;
  float* acc = a.acc();
  int top = 1; // the highest power of two < w (children of rank 0 in the broadcast)
  while (top * 2 < w)
    top *= 2;
  const std::int64_t nchunks = p.chunks(p.count);
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const std::int64_t n = p.chunk_size(p.count, c);
    const std::size_t bytes = message_bytes(s, n);
    ex.load(a.x + c * p.chunk, n, acc);
    int mask = 1, level = 0;
    for (; mask < w; mask <<= 1, ++level) { // reduce up the binomial tree
      if (r & mask) {
        ex.quantize(
            static_cast<const float*>(acc), n, sbuf, s,
            stream_seed(a.cfg.seed, std::uint64_t(level), std::uint64_t(r), 0, std::uint64_t(c)));
        tr.send(sbuf, bytes, r - mask);
        break;
      }
      if (r + mask < w) {
        tr.recv(rbuf, bytes, r + mask);
        ex.decode_add(rbuf, n, s, acc);
      }
    }
    int fan; // broadcast: receive the final codes from my parent, forward to my children
    if (r == 0) {
      if (a.cfg.op == reduce_op::average && w > 1) ex.divide(acc, n, float(w));
      ex.quantize(static_cast<const float*>(acc), n, sbuf, s,
                  stream_seed(a.cfg.seed, 63, 0, 0, std::uint64_t(c)));
      fan = w > 1 ? top : 0;
    } else {
      const int low = r & -r;
      tr.recv(sbuf, bytes, r - low);
      fan = low >> 1;
    }
    for (int m = fan; m >= 1; m >>= 1)
      if (r + m < w) tr.send(sbuf, bytes, r + m);
    ex.dequantize(sbuf, n, s, a.y + c * p.chunk);
  }
}

} // namespace detail

//! Required alignment (bytes) of the workspace pointer.
constexpr std::size_t workspace_alignment = 16;

namespace detail {

//! The first rule allreduce's arguments break on a world of `world` ranks, or empty (the one
//! validation of agoq::allreduce, over any transport or NCCL; allreduce_config_rule is its first
//! part, which needs no world). count == 0 needs no pointers.
inline std::string allreduce_config_rule(const allreduce_config& cfg, std::int64_t count) {
  if (const char* msg = validate(cfg)) return msg;
  if (const char* msg = validate(cfg.spec())) return std::string("config (as quant_spec): ") + msg;
  if (count < 0) return "count must be >= 0 (got " + std::to_string(count) + ")";
  return {};
}

template <class T>
std::string allreduce_rule(const T* send, const T* recv, std::int64_t count,
                           const allreduce_config& cfg, const void* workspace,
                           std::size_t workspace_bytes, int world) {
  if (std::string rule = allreduce_config_rule(cfg, count); !rule.empty()) return rule;
  if (world < 1) return "world size must be >= 1 (got " + std::to_string(world) + ")";
  if (std::string rule = count_domain_rule(count, world); !rule.empty()) return rule;
  if (count == 0) return {};
  if (send == nullptr) return "send must not be null when count > 0";
  if (recv == nullptr) return "recv must not be null when count > 0";
  if (send != recv) { // after the domain check: count x sizeof(T) cannot overflow
    const auto sb = reinterpret_cast<std::uintptr_t>(send);
    const auto rb = reinterpret_cast<std::uintptr_t>(recv);
    const std::uintptr_t len = std::uintptr_t(count) * sizeof(T);
    if (sb < rb + len && rb < sb + len)
      return "recv must either equal send (in place) or not overlap it";
  }
  if (workspace == nullptr) return "workspace must not be null when count > 0";
  if (reinterpret_cast<std::uintptr_t>(workspace) % workspace_alignment != 0)
    return "workspace must be aligned to " + std::to_string(workspace_alignment) + " bytes";
  const algorithm algo = resolve_algorithm(cfg, count, element_type_of<T>(), world);
  const std::size_t need = make_layout(algo, make_partition(count, cfg, world), cfg.spec()).total;
  if (workspace_bytes < need)
    return "workspace_bytes must be >= " + std::to_string(need) +
           " (allreduce_workspace_size; got " + std::to_string(workspace_bytes) + ")";
  return {};
}

//! agoq::allreduce after allreduce_rule passed, for this transport's rank (count > 0).
template <class T, class Transport, class Executor>
void run_allreduce(const T* send, T* recv, std::int64_t count, const allreduce_config& cfg,
                   void* workspace, Transport& tr, Executor& ex) {
  const int world = tr.size(), rank = tr.rank();
  const partition p = make_partition(count, cfg, world);
  const algorithm algo = resolve_algorithm(cfg, count, element_type_of<T>(), world);
  const allreduce_layout lay = make_layout(algo, p, cfg.spec());
  const allreduce_args<T> a{
      send, recv, p, cfg.spec(), cfg, lay, static_cast<std::uint8_t*>(workspace), rank, world};
  switch (algo) {
  case algorithm::one_shot: run_one_shot(a, tr, ex); break;
  case algorithm::ring: run_ring(a, tr, ex); break;
  case algorithm::tree: run_tree(a, tr, ex); break;
  default: run_two_shot(a, tr, ex); break;
  }
}

} // namespace detail

//! All-reduce of `count` elements across the ranks of `tr`: every rank passes its input `send`
//! and receives the (quantized-wire, fp32-accumulated) sum or average in `recv`; `send == recv`
//! (in place) is allowed, other overlaps are not. The schedule is cfg.algo (auto_select:
//! select_algorithm(count * sizeof(T), world)); orders, roundings and stochastic-rounding salts
//! are documented at the top of this file. `workspace` (aligned to workspace_alignment) holds at
//! least allreduce_workspace_size(count, element_type_of<T>(), cfg, world) bytes
//! (comm/workspace.hpp) in the transport's memory space; nothing is allocated. Every rank must pass
//! the same count and cfg. With a two-queue transport (comm/transport.hpp) a pipelined two-shot
//! or one-shot forks it and joins it again before returning, so the caller sees program order.
//!
//! Determinism: outputs are bitwise identical on all ranks and across runs with the same
//! inputs, cfg and world size.
//!
//! Errors: agoq::invalid_argument, "agoq::allreduce: <argument> <rule>", thrown before any
//! communication, for: an invalid cfg (e.g. "config.block must be 32, 64, 128 or 256"),
//! count < 0, count x world above max_count_times_world ("count is too large: ..."), a
//! transport with size() < 1 ("world size must be >= 1") or a rank outside [0, size()), a null
//! send/recv when count > 0, partially overlapping send/recv, a null,
//! misaligned or too small workspace. Transport and executor errors propagate.
template <class T, class Transport, class Executor>
inline void allreduce(const T* send, T* recv, std::int64_t count, const allreduce_config& cfg,
                      void* workspace, std::size_t workspace_bytes, Transport& tr, Executor& ex) {
  static_assert(is_transport_v<Transport>, "Transport does not model comm/transport.hpp");
  static_assert(is_executor_v<Executor, T>, "Executor does not model comm/transport.hpp");
  const char* fn = "agoq::allreduce";
  const int world = tr.size(), rank = tr.rank();
  if (std::string rule = detail::allreduce_config_rule(cfg, count); !rule.empty())
    detail::comm_fail(fn, rule);
  if (world >= 1 && (rank < 0 || rank >= world))
    detail::comm_fail(fn, "rank must be in [0, world size) (got " + std::to_string(rank) + ")");
  if (std::string rule =
          detail::allreduce_rule(send, recv, count, cfg, workspace, workspace_bytes, world);
      !rule.empty())
    detail::comm_fail(fn, rule);
  if (count == 0) return;
  detail::run_allreduce(send, recv, count, cfg, workspace, tr, ex);
}

} // namespace agoq

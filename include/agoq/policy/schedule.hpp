// SPDX-License-Identifier: Apache-2.0
//! @file policy/schedule.hpp
//! Pipeline schedules and the activations each stage holds at its peak ("stash").
//!
//! `simulate_schedule` builds each stage's operation order (Megatron-LM's order for each
//! schedule), then steps through time: at every step each stage runs its next operation if its
//! input is ready (a forward needs the previous virtual stage's forward of that micro-batch from an
//! earlier step; a backward needs the next virtual stage's backward, or, on the last virtual
//! stage, its own forward). After every step a stage's stash is forwards done minus backwards done
//! on it; the peak is the maximum over the run. Nothing is read from a table.
//!
//! Stash unit: one micro-batch through one model chunk. A chunk is the stage's whole layer set for
//! GPipe and 1F1B, and 1/v of it for interleaved 1F1B with v virtual stages (so a stash of 11
//! chunks at v = 2 is 5.5 stage-sized micro-batches).
//!
//! Orders (p stages, m micro-batches, v virtual stages, stage r = 0..p-1):
//! - GPipe: all m forwards, then all m backwards. Peak m on every stage.
//! - 1F1B (PipeDream-flush): min(p-r-1, m) warm-up forwards, then one forward + one backward per
//!   remaining micro-batch, then the remaining backwards. Peak min(p-r, m).
//! - interleaved 1F1B: stage r holds chunks r, r+p, ..., r+(v-1)p; m*v chunk operations run in
//!   groups of p micro-batches per chunk; warm-up = (p-r-1)*2 + (v-1)*p forwards (all of them when
//!   m == p), then 1F1B. Peak = warm-up + 1 (capped at m*v). Needs m to be a multiple of p.
//!   Paper example p = 4, m = 8, v = 2: 11, 9, 7, 5.
#pragma once

#include "agoq/status.hpp"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace agoq {

//! A pipeline schedule.
enum class pipeline_schedule : std::uint8_t {
  gpipe,            //!< all forwards, then all backwards
  one_f_one_b,      //!< 1F1B / PipeDream-flush (Megatron's non-interleaved schedule)
  interleaved_1f1b, //!< Megatron's interleaved 1F1B with virtual stages
};

//! "gpipe", "1f1b" or "interleaved-1f1b".
constexpr const char* to_string(pipeline_schedule s) noexcept {
  switch (s) {
  case pipeline_schedule::gpipe: return "gpipe";
  case pipeline_schedule::one_f_one_b: return "1f1b";
  case pipeline_schedule::interleaved_1f1b: return "interleaved-1f1b";
  }
  return "unknown_schedule";
}
inline std::ostream& operator<<(std::ostream& os, pipeline_schedule s) {
  return os << to_string(s);
}

namespace detail {
//! True for the three enumerators (a value cast from an integer may be none of them).
constexpr bool is_known(pipeline_schedule s) noexcept {
  return s == pipeline_schedule::gpipe || s == pipeline_schedule::one_f_one_b ||
         s == pipeline_schedule::interleaved_1f1b;
}
} // namespace detail

//! The largest pipeline simulate_schedule accepts: stages <= max_schedule_stages and
//! stages x micro_batches x virtual_stages <= max_schedule_chunk_ops (the simulation holds every
//! chunk operation and steps through them, time ~ stages x steps, memory ~ 40 bytes per chunk
//! operation: at the limits about a second and 250 MB). Far beyond any real pipeline
//! (e.g. 64 stages x 4096 micro-batches x 16 virtual stages).
constexpr int max_schedule_stages = 4096;
constexpr std::int64_t max_schedule_chunk_ops = std::int64_t(1) << 22;

//! The result of a simulation: per stage, the peak stash (in chunks, see the file comment), and
//! the number of time steps the schedule took with one unit of time per chunk operation.
struct schedule_result {
  std::vector<int> peak_stash; //!< index = stage (0 = first)
  int steps = 0;

  friend bool operator==(const schedule_result& a, const schedule_result& b) {
    return a.peak_stash == b.peak_stash && a.steps == b.steps;
  }
  friend bool operator!=(const schedule_result& a, const schedule_result& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const schedule_result& r) {
    os << "{peak_stash=[";
    for (std::size_t i = 0; i < r.peak_stash.size(); ++i) os << (i ? "," : "") << r.peak_stash[i];
    return os << "], steps=" << r.steps << '}';
  }
};

namespace detail {

struct pipeline_op {
  bool forward;
  int micro_batch;
  int chunk; // local chunk index on the stage, 0..v-1
};

// Megatron-LM's per-stage operation order.
inline std::vector<pipeline_op> stage_ops(pipeline_schedule s, int p, int r, int m, int v) {
  std::vector<pipeline_op> ops;
  if (s == pipeline_schedule::gpipe) {
    for (int i = 0; i < m; ++i) ops.push_back({true, i, 0});
    for (int i = 0; i < m; ++i) ops.push_back({false, i, 0});
    return ops;
  }
  if (s == pipeline_schedule::one_f_one_b) {
    const int warm = std::min(p - r - 1, m);
    int f = 0, b = 0;
    for (; f < warm; ++f) ops.push_back({true, f, 0});
    for (; f < m; ++f, ++b) {
      ops.push_back({true, f, 0});
      ops.push_back({false, b, 0});
    }
    for (; b < m; ++b) ops.push_back({false, b, 0});
    return ops;
  }
  // interleaved: virtual op k -> (micro-batch, chunk)
  const int total = m * v;
  auto mb_of = [&](int k) { return (k / (p * v)) * p + k % p; };
  auto fchunk = [&](int k) { return (k % (p * v)) / p; };
  int warm = (m == p) ? total : std::min((p - r - 1) * 2 + (v - 1) * p, total);
  int f = 0, b = 0;
  for (; f < warm; ++f) ops.push_back({true, mb_of(f), fchunk(f)});
  for (; f < total; ++f, ++b) {
    ops.push_back({true, mb_of(f), fchunk(f)});
    ops.push_back({false, mb_of(b), v - 1 - fchunk(b)});
  }
  for (; b < total; ++b) ops.push_back({false, mb_of(b), v - 1 - fchunk(b)});
  return ops;
}

} // namespace detail

//! Simulates schedule `s` on `stages` pipeline stages with `micro_batches` micro-batches and
//! `virtual_stages` chunks per stage (must be 1 unless interleaved). Throws invalid_argument on
//! a count < 1, on virtual_stages != 1 for a non-interleaved schedule, or, for interleaved 1F1B,
//! when micro_batches is not a multiple of stages (Megatron's requirement), on an `s` that is not
//! a pipeline_schedule enumerator, and on a pipeline larger than max_schedule_stages /
//! max_schedule_chunk_ops.
//! Example: `simulate_schedule(pipeline_schedule::one_f_one_b, 4, 8).peak_stash == {4,3,2,1}`.
inline schedule_result simulate_schedule(pipeline_schedule s, int stages, int micro_batches,
                                         int virtual_stages = 1) {
  const std::string fn = "agoq::simulate_schedule: ";
  if (!detail::is_known(s))
    throw invalid_argument(fn +
                           "s must be a pipeline_schedule (gpipe, one_f_one_b or "
                           "interleaved_1f1b), got " +
                           std::to_string(int(s)));
  if (stages < 1) throw invalid_argument(fn + "stages must be >= 1, got " + std::to_string(stages));
  if (micro_batches < 1)
    throw invalid_argument(fn + "micro_batches must be >= 1, got " + std::to_string(micro_batches));
  if (virtual_stages < 1)
    throw invalid_argument(fn + "virtual_stages must be >= 1, got " +
                           std::to_string(virtual_stages));
  if (stages > max_schedule_stages)
    throw invalid_argument(fn + "stages must be <= max_schedule_stages (" +
                           std::to_string(max_schedule_stages) + "), got " +
                           std::to_string(stages));
  if (std::int64_t(stages) * micro_batches > max_schedule_chunk_ops / virtual_stages)
    throw invalid_argument(fn +
                           "stages x micro_batches x virtual_stages must be <= "
                           "max_schedule_chunk_ops (" +
                           std::to_string(max_schedule_chunk_ops) + "), got " +
                           std::to_string(stages) + " x " + std::to_string(micro_batches) + " x " +
                           std::to_string(virtual_stages));
  if (s != pipeline_schedule::interleaved_1f1b && virtual_stages != 1)
    throw invalid_argument(fn + "virtual_stages must be 1 for " + to_string(s) + ", got " +
                           std::to_string(virtual_stages));
  if (s == pipeline_schedule::interleaved_1f1b && micro_batches % stages != 0)
    throw invalid_argument(fn + "interleaved-1f1b needs micro_batches (" +
                           std::to_string(micro_batches) + ") to be a multiple of stages (" +
                           std::to_string(stages) + ")");
  const int p = stages, m = micro_batches, v = virtual_stages, g = p * v;
  std::vector<std::vector<detail::pipeline_op>> ops(static_cast<std::size_t>(p));
  for (int r = 0; r < p; ++r)
    ops[std::size_t(r)] = detail::stage_ops(s, p, r, m, v);

  // done_f[gs][mb] / done_b[gs][mb]: the step at which that op finished (-1: not yet).
  // gs = global virtual stage = chunk * p + stage.
  std::vector<std::vector<int>> done_f(static_cast<std::size_t>(g),
                                      std::vector<int>(static_cast<std::size_t>(m), -1));
  std::vector<std::vector<int>> done_b = done_f;
  std::vector<std::size_t> next(static_cast<std::size_t>(p), 0);
  std::vector<int> stash(static_cast<std::size_t>(p), 0);
  schedule_result res;
  res.peak_stash.assign(std::size_t(p), 0);
  std::size_t remaining = 0;
  for (const auto& o : ops) remaining += o.size();

  for (int step = 0; remaining > 0; ++step) {
    bool progressed = false;
    for (int r = 0; r < p; ++r) {
      auto& pos = next[std::size_t(r)];
      if (pos == ops[std::size_t(r)].size()) continue;
      const detail::pipeline_op op = ops[std::size_t(r)][pos];
      const int gs = op.chunk * p + r;
      const auto mb = std::size_t(op.micro_batch);
      auto done_before = [&](int t) { return t >= 0 && t < step; };
      const bool ready =
          op.forward
              ? (gs == 0 || done_before(done_f[std::size_t(gs - 1)][mb]))
              : (gs == g - 1 ? done_before(done_f[std::size_t(gs)][mb])
                             : done_before(done_b[std::size_t(gs + 1)][mb]));
      if (!ready) continue;
      (op.forward ? done_f : done_b)[std::size_t(gs)][mb] = step;
      stash[std::size_t(r)] += op.forward ? 1 : -1;
      res.peak_stash[std::size_t(r)] =
          std::max(res.peak_stash[std::size_t(r)], stash[std::size_t(r)]);
      ++pos;
      --remaining;
      progressed = true;
    }
    if (!progressed)
      throw error(fn + "internal error: schedule " + to_string(s) + " deadlocked at step " +
                  std::to_string(step));
    res.steps = step + 1;
  }
  return res;
}

//! Just the peak stash per stage (see `simulate_schedule`).
inline std::vector<int> peak_stash(pipeline_schedule s, int stages, int micro_batches,
                                   int virtual_stages = 1) {
  return simulate_schedule(s, stages, micro_batches, virtual_stages).peak_stash;
}

} // namespace agoq

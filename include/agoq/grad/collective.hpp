// SPDX-License-Identifier: Apache-2.0
//! @file grad/collective.hpp
//! All-reduce and reduce-scatter of an already-quantized buffer (a gradient-buffer bucket),
//! directly on its 8-bit codes: no dequantize to 16 or 32 bits before the wire. Written once
//! against the Transport/Executor interfaces of comm/transport.hpp, so the same code runs over
//! NCCL (grad/grad_buffer.cuh) and over the in-process host transport (tests).
//!
//! How: the all-reduce schedules of comm/schedule.hpp are reused unchanged. They read their input
//! through the Executor (quantize / load / add of input element ranges) and write their output
//! through it (dequantize / store into output element ranges). `quantized_io_executor` wraps any
//! Executor and redirects exactly those operations to the buffer:
//! - "quantize input range" = copy the buffer's codes + scales of that range into the message (the
//!   buffer's codes ARE the first message: no requantization, no extra rounding);
//! - "load / add input range" (tree, ring) = decode the buffer range into / onto the fp32
//!   accumulator (one IEEE add per element, as for a T input);
//! - "dequantize message into output range" (two_shot, ring, tree) = copy the final message's
//!   codes + scales back into the buffer (lossless: every rank stores the same bytes);
//! - "store fp32 into output range" (one_shot's fused reduce_store) = quantize the fp32 sum into
//!   the buffer (one rounding, the collective's: grad_comm_config::rounding; stochastic seed
//!   stream_seed(cfg.seed, 62, 0, 0, offset), the same on every rank): the wrapped executor's
//!   reduce_quantize with the buffer range as its output view.
//! Every fp32 operation is forwarded to the wrapped executor. Element ranges are block-aligned
//! (shards and chunks are whole blocks), which is what makes the copies exact. The batched
//! quantize_many / dequantize_many are not forwarded: the schedules fall back to one copy per
//! job.
//!
//! Roundings per element (INT8 codes in, INT8 codes out): two_shot 1 (the owner's requantization
//! of the fp32 sum), one_shot 1, ring W - 1, tree <= ceil(log2 W) + 1 minus the input one. Results
//! are bitwise identical on all ranks (same argument as comm/schedule.hpp).
//!
//! Reduce-scatter: two_shot's steps 1-3 (all-to-all of the buffer's pieces, fp32 sum in rank
//! order, average, one requantization by the owner), then the owner copies its shard's codes into
//! its own buffer. Rank r's shard is grad_shard(count, cfg, world, r) (comm/partition.hpp); the
//! rest of the buffer is left unchanged (it still holds this rank's local, unreduced values).
//!
//! Backend (the memory operations the adapter needs besides the wrapped Executor):
//! ```
//! void copy(void* dst, const void* src, std::size_t bytes);
//! void decode(const_quantized_view v, float* acc);        // acc = decoded v
//! void decode_add(const_quantized_view v, float* acc);    // acc = acc + decoded v
//! void quantize(const float* acc, quantized_view v, std::uint64_t seed);
//! ```
//! host_buffer_backend (below) implements them with memcpy and agoq::ref; the CUDA one lives in
//! grad/grad_buffer.cuh.
#pragma once

#include "agoq/comm/config.hpp"
#include "agoq/comm/partition.hpp"
#include "agoq/comm/schedule.hpp"
#include "agoq/comm/transport.hpp"
#include "agoq/error.hpp"
#include "agoq/format/format.hpp"
#include "agoq/quant/reference.hpp"
#include "agoq/quant/view.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace agoq {

//! Options of a gradient-bucket collective. The wire format, block and scale kind are always the
//! buffer's own (its codes travel as they are); these are the remaining allreduce_config fields.
struct grad_comm_config {
  reduce_op op = reduce_op::average;       //!< average (data-parallel gradients) or sum
  algorithm algo = algorithm::auto_select; //!< auto: select_algorithm(count * 2 bytes, world)
  //! Rounding of the requantizations the collective performs (independent of the rounding the
  //! buffer uses when accumulating).
  agoq::rounding rounding = agoq::rounding::nearest_even;
  std::uint64_t seed = 0; //!< stochastic-rounding seed (salted as in comm/schedule.hpp)
  std::int64_t chunk = 0; //!< pipeline chunk in elements (0: library default; else k * block)

  friend constexpr bool operator==(const grad_comm_config& a, const grad_comm_config& b) noexcept {
    return a.op == b.op && a.algo == b.algo && a.rounding == b.rounding && a.seed == b.seed &&
           a.chunk == b.chunk;
  }
};

//! The allreduce_config a gradient collective over a buffer of `spec` runs with `opt`: wire,
//! block and scale from the spec; the algorithm resolved (auto: as for a bf16 input of `count`
//! elements, i.e. select_algorithm(count * 2, world)) so that every rank and the workspace query
//! agree. reduce_scatter always resolves to two_shot.
constexpr allreduce_config grad_allreduce_config(const quant_spec& spec,
                                                 const grad_comm_config& opt, std::int64_t count,
                                                 int world) noexcept {
  allreduce_config c;
  c.wire = spec.format;
  c.block = spec.block;
  c.scale = spec.scale;
  c.rounding = opt.rounding;
  c.op = opt.op;
  c.seed = opt.seed;
  c.chunk = opt.chunk;
  c.algo = resolve_algorithm(c, count, element_type::bf16, world < 1 ? 1 : world);
  if (opt.algo != algorithm::auto_select) c.algo = opt.algo;
  return c;
}

namespace detail {
//! Null if the enumerations of `opt` hold known values, else the rule broken.
constexpr const char* validate_grad_opt(const grad_comm_config& opt) noexcept {
  if (opt.op != reduce_op::sum && opt.op != reduce_op::average)
    return "opt.op must be reduce_op::sum or reduce_op::average";
  if (opt.algo != algorithm::auto_select && opt.algo != algorithm::two_shot &&
      opt.algo != algorithm::one_shot && opt.algo != algorithm::ring && opt.algo != algorithm::tree)
    return "opt.algo is not a known algorithm";
  if (opt.rounding != agoq::rounding::nearest_even && opt.rounding != agoq::rounding::stochastic)
    return "opt.rounding is not a known rounding (nearest_even or stochastic)";
  return nullptr; // opt.chunk: validate(allreduce_config) ("config.chunk ...")
}
} // namespace detail

//! Workspace bytes every rank must pass to grad_allreduce for a bucket of `count` elements of a
//! buffer of `spec` on `world` ranks (0 for count == 0). reduce_scatter: pass
//! algorithm::two_shot in opt.algo (grad_reduce_scatter_workspace_size does).
//! Throws agoq::invalid_argument ("agoq::grad_allreduce_workspace_size: <argument> <rule>"),
//! also for count x world above max_count_times_world (comm/partition.hpp).
inline std::size_t grad_allreduce_workspace_size(std::int64_t count, const quant_spec& spec,
                                                 const grad_comm_config& opt, int world) {
  const char* fn = "agoq::grad_allreduce_workspace_size";
  if (const char* m = validate(spec)) detail::comm_fail(fn, m);
  if (const char* m = detail::validate_grad_opt(opt)) detail::comm_fail(fn, m);
  if (count < 0) detail::comm_fail(fn, "count must be >= 0 (got " + std::to_string(count) + ")");
  if (world < 1) detail::comm_fail(fn, "world must be >= 1 (got " + std::to_string(world) + ")");
  detail::check_count_domain(fn, count, world);
  const allreduce_config c = grad_allreduce_config(spec, opt, count, world);
  if (const char* m = validate(c)) detail::comm_fail(fn, m);
  if (count == 0) return 0;
  return detail::make_layout(c.algo, make_partition(count, c, world), c.spec()).total;
}

//! Workspace bytes of grad_reduce_scatter (the two_shot layout).
inline std::size_t grad_reduce_scatter_workspace_size(std::int64_t count, const quant_spec& spec,
                                                      grad_comm_config opt, int world) {
  opt.algo = algorithm::two_shot;
  return grad_allreduce_workspace_size(count, spec, opt, world);
}

//! The element range of a `count`-element bucket that rank `rank` owns after grad_reduce_scatter
//! (relative to the bucket start; block-aligned; possibly empty).
constexpr element_range grad_shard(std::int64_t count, const quant_spec& spec,
                                   const grad_comm_config& opt, int world, int rank) noexcept {
  allreduce_config c;
  c.block = spec.block;
  c.chunk = opt.chunk;
  return make_partition(count, c, world).shard(rank);
}

//! Opaque element of a quantized buffer as the schedules see it: pointer arithmetic on it gives
//! element indices; it is never dereferenced.
struct quantized_elem {
  unsigned char opaque_;
};

//! The Executor adapter described at the top of this file. `base` stands for element 0 of `buf`.
//! What it stores into `buf` from fp32 is rounded with `store_rounding` (the collective's) and
//! keyed by `store_seed`.
template <class Inner, class Backend> class quantized_io_executor {
public:
  quantized_io_executor(Inner& inner, Backend& backend, quantized_view buf,
                        const quantized_elem* base, agoq::rounding store_rounding,
                        std::uint64_t store_seed) noexcept
      : m_in(&inner), m_be(&backend), m_buf(buf), m_base(base), m_store_seed(store_seed) {
    m_buf.spec.rounding = store_rounding; // only output views (wslice) quantize with it
  }

  // --- input side: element ranges of the buffer ---
  void quantize(const quantized_elem* x, std::int64_t n, void* msg, const quant_spec& s,
                std::uint64_t) {
    const const_quantized_view v = slice(x, n);
    check_spec(s);
    auto* m = static_cast<std::uint8_t*>(msg);
    m_be->copy(m, v.codes, codes_bytes(s, n));
    m_be->copy(m + codes_bytes(s, n), v.scales, scales_bytes(s, n));
  }
  void load(const quantized_elem* x, std::int64_t n, float* acc) { m_be->decode(slice(x, n), acc); }
  void add(const quantized_elem* x, std::int64_t n, float* acc) {
    m_be->decode_add(slice(x, n), acc);
  }
  // --- output side ---
  void dequantize(const void* msg, std::int64_t n, const quant_spec& s, quantized_elem* y) {
    check_spec(s);
    const quantized_view v = wslice(y, n);
    const auto* m = static_cast<const std::uint8_t*>(msg);
    m_be->copy(v.codes, m, codes_bytes(s, n));
    m_be->copy(v.scales, m + codes_bytes(s, n), scales_bytes(s, n));
  }
  void store(const float* acc, std::int64_t n, quantized_elem* y) {
    quantized_view v = wslice(y, n);
    m_be->quantize(acc, v, store_seed(y));
  }
  void reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                    const quant_spec& s, float divisor, quantized_elem* y) {
    check_spec(s);
    m_in->reduce_quantize(msgs, stride, w, n, s, divisor, wslice(y, n), store_seed(y));
  }
  // --- fp32 work: forwarded ---
  template <class T>
  void quantize(const T* x, std::int64_t n, void* msg, const quant_spec& s, std::uint64_t seed) {
    m_in->quantize(x, n, msg, s, seed);
  }
  void decode(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    m_in->decode(msg, n, s, acc);
  }
  void decode_add(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    m_in->decode_add(msg, n, s, acc);
  }
  template <class T> void load(const T* x, std::int64_t n, float* acc) { m_in->load(x, n, acc); }
  template <class T> void add(const T* x, std::int64_t n, float* acc) { m_in->add(x, n, acc); }
  void divide(float* acc, std::int64_t n, float divisor) { m_in->divide(acc, n, divisor); }
  template <class T> void store(const float* acc, std::int64_t n, T* y) { m_in->store(acc, n, y); }
  template <class T> void dequantize(const void* msg, std::int64_t n, const quant_spec& s, T* y) {
    m_in->dequantize(msg, n, s, y);
  }
  void reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
                       const quant_spec& s, float divisor, quantized_view out, std::uint64_t seed) {
    m_in->reduce_quantize(msgs, stride, w, n, s, divisor, out, seed);
  }
  template <class T>
  void reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                    const quant_spec& s, float divisor, T* y) {
    m_in->reduce_store(msgs, stride, w, n, s, divisor, y);
  }

private:
  std::uint64_t store_seed(const quantized_elem* y) const noexcept {
    return stream_seed(m_store_seed, 62, 0, 0, std::uint64_t(y - m_base));
  }
  void check_spec(const quant_spec& s) const {
    if (s.format != m_buf.spec.format || s.block != m_buf.spec.block || s.scale != m_buf.spec.scale)
      throw invalid_argument("agoq::quantized_io_executor: the wire spec must be the buffer's");
  }
  quantized_view wslice(const quantized_elem* p, std::int64_t n) const {
    const std::int64_t e0 = p - m_base;
    if (e0 < 0 || e0 % m_buf.spec.block != 0 || n < 0 || e0 + n > m_buf.cols)
      throw invalid_argument("agoq::quantized_io_executor: element range [" + std::to_string(e0) +
                             ", +" + std::to_string(n) +
                             ") is not a block-aligned range of the buffer");
    const std::int64_t b0 = e0 / m_buf.spec.block;
    quantized_view v = m_buf;
    v.codes = static_cast<std::uint8_t*>(m_buf.codes) + b0 * block_code_bytes(m_buf.spec);
    v.scales = static_cast<std::uint8_t*>(m_buf.scales) + b0 * scale_bytes(m_buf.spec);
    v.rows = 1;
    v.cols = n;
    return v;
  }
  const_quantized_view slice(const quantized_elem* p, std::int64_t n) const {
    return const_quantized_view(wslice(p, n));
  }

  Inner* m_in;
  Backend* m_be;
  quantized_view m_buf;
  const quantized_elem* m_base;
  std::uint64_t m_store_seed;
};

namespace detail {

//! two_shot's reduce-scatter half (comm/schedule.hpp, two_shot_reduce), then the owner copies
//! its requantized shard into its own buffer range through ex.dequantize.
template <class T, class Tr, class Ex>
inline void run_reduce_scatter(const allreduce_args<T>& a, Tr& tr, Ex& ex) {
  const element_range my = a.p.shard(a.rank);
  two_shot_reduce(a, tr, ex, [&](std::int64_t c, const std::uint8_t* f, std::int64_t n) {
    ex.dequantize(f, n, a.spec, a.y + my.begin + c * a.p.chunk);
  });
}

//! Shared argument checks and dispatch of grad_allreduce / grad_reduce_scatter.
template <class Tr, class Ex, class Backend>
inline void grad_collective(const char* fn, bool scatter, quantized_view buf,
                            const grad_comm_config& opt, void* workspace,
                            std::size_t workspace_bytes, Tr& tr, Ex& inner, Backend& be) {
  static_assert(is_transport_v<Tr>, "Transport does not model comm/transport.hpp");
  if (const char* m = validate(buf.spec)) comm_fail(fn, std::string("buf.") + m);
  if (!buf.spec.symmetric) comm_fail(fn, "buf.spec.symmetric must be true");
  if (buf.rows != 1) comm_fail(fn, "buf.rows must be 1 (a 1-D bucket)");
  if (buf.cols < 0) comm_fail(fn, "buf.cols must be >= 0");
  const int world = tr.size(), rank = tr.rank();
  if (world < 1) comm_fail(fn, "world size must be >= 1 (got " + std::to_string(world) + ")");
  if (rank < 0 || rank >= world)
    comm_fail(fn, "rank must be in [0, world size) (got " + std::to_string(rank) + ")");
  if (const char* m = validate_grad_opt(opt)) comm_fail(fn, m);
  if (!count_in_domain(buf.cols, world))
    comm_fail(fn, "buf.cols is too large: buf.cols x world must be <= max_count_times_world "
                  "(2^56; the workspace byte counts would overflow), got buf.cols=" +
                      std::to_string(buf.cols) + ", world=" + std::to_string(world));
  grad_comm_config o = opt;
  if (scatter) o.algo = algorithm::two_shot;
  const allreduce_config cfg = grad_allreduce_config(buf.spec, o, buf.cols, world);
  if (const char* m = validate(cfg)) comm_fail(fn, m);
  const std::int64_t count = buf.cols;
  if (count == 0) return;
  if (buf.codes == nullptr) comm_fail(fn, "buf.codes must not be null when buf.cols > 0");
  if (buf.scales == nullptr) comm_fail(fn, "buf.scales must not be null when buf.cols > 0");
  const partition p = make_partition(count, cfg, world);
  const allreduce_layout lay = make_layout(cfg.algo, p, cfg.spec());
  if (workspace == nullptr) comm_fail(fn, "workspace must not be null when buf.cols > 0");
  if (reinterpret_cast<std::uintptr_t>(workspace) % workspace_alignment != 0)
    comm_fail(fn, "workspace must be aligned to " + std::to_string(workspace_alignment) + " bytes");
  if (workspace_bytes < lay.total)
    comm_fail(fn, "workspace_bytes must be >= " + std::to_string(lay.total) +
                      " (grad_allreduce_workspace_size; got " + std::to_string(workspace_bytes) +
                      ")");
  // Element 0 of the bucket, as the schedules' input and output pointer (never dereferenced).
  auto* base = reinterpret_cast<quantized_elem*>(buf.codes);
  quantized_io_executor<Ex, Backend> ex(inner, be, buf, base, cfg.rounding, cfg.seed);
  const allreduce_args<quantized_elem> a{
      base, base, p, cfg.spec(), cfg, lay, static_cast<std::uint8_t*>(workspace), rank, world};
  if (scatter) {
    run_reduce_scatter(a, tr, ex);
    return;
  }
  switch (cfg.algo) {
  case algorithm::one_shot: run_one_shot(a, tr, ex); break;
  case algorithm::ring: run_ring(a, tr, ex); break;
  case algorithm::tree: run_tree(a, tr, ex); break;
  default: run_two_shot(a, tr, ex); break;
  }
}

} // namespace detail

//! All-reduce, in place, of the quantized 1-D buffer `buf` (e.g. one gradient bucket) across the
//! ranks of `tr`, directly on its codes: afterwards every rank's `buf` holds the same bytes, the
//! quantized sum (or average, opt.op) of all ranks' decoded buffers (fp32 sum in rank order, see
//! the top of this file for the roundings). `inner` does the fp32 work (comm/transport.hpp
//! Executor), `be` the buffer copies and codecs (Backend above). `workspace` (aligned to
//! workspace_alignment) holds grad_allreduce_workspace_size(buf.cols, buf.spec, opt, world) bytes.
//! Every rank passes the same buf.cols, buf.spec and opt.
//! Errors: agoq::invalid_argument ("agoq::grad_allreduce: <argument> <rule>") before any
//! communication; transport/executor errors propagate.
template <class Tr, class Ex, class Backend>
inline void grad_allreduce(quantized_view buf, const grad_comm_config& opt, void* workspace,
                           std::size_t workspace_bytes, Tr& tr, Ex& inner, Backend& be) {
  detail::grad_collective("agoq::grad_allreduce", false, buf, opt, workspace, workspace_bytes, tr,
                          inner, be);
}

//! Reduce-scatter, in place, of `buf` across the ranks of `tr`: afterwards rank r's range
//! grad_shard(buf.cols, buf.spec, opt, world, r) of `buf` holds the quantized sum/average (bitwise
//! what grad_allreduce with two_shot gives there); the rest of `buf` is unchanged. Workspace:
//! grad_reduce_scatter_workspace_size. Errors: as grad_allreduce ("agoq::grad_reduce_scatter").
template <class Tr, class Ex, class Backend>
inline void grad_reduce_scatter(quantized_view buf, const grad_comm_config& opt, void* workspace,
                                std::size_t workspace_bytes, Tr& tr, Ex& inner, Backend& be) {
  detail::grad_collective("agoq::grad_reduce_scatter", true, buf, opt, workspace, workspace_bytes,
                          tr, inner, be);
}

//! The Backend of this file on host memory: memcpy and the reference codecs (agoq::ref).
struct host_buffer_backend {
  void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void decode(const_quantized_view v, float* acc) { ref::dequantize(v, acc); }
  void decode_add(const_quantized_view v, float* acc) { ref::dequantize_accumulate(v, acc, 1.0f); }
  void quantize(const float* acc, quantized_view v, std::uint64_t seed) {
    ref::quantize(acc, v, seed);
  }
};

} // namespace agoq

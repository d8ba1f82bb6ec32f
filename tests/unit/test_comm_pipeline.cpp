// SPDX-License-Identifier: Apache-2.0
// The pipelined two-shot (comm/schedule.hpp) and the fused executor operations on the host:
// - host_executor's reduce_quantize / reduce_store equal the unfused sequence (decode,
//   decode_add..., divide, quantize / store) bit for bit, for every wire format, block, rounding,
//   world size and tail length;
// - the schedules' cross-queue ordering is sufficient: every rank records its executor and
//   transport operations into two deferred queues (compute, communication) and runs them in an
//   order that honours ONLY what the schedule declared (per-queue program order, fork/join,
//   comm_wait_compute, comm_record/compute_wait_comm), once running compute as early as allowed
//   and once running communication as early as allowed. A missing wait would read data that is
//   not there yet (the workspace is poisoned), so the outputs must equal the plain host
//   transport's bit for bit; the mark protocol (record again only after a wait) is checked too;
// - the batched quantize_many / dequantize_many path equals the one-call-per-job fallback;
// - the gradient-bucket collectives (grad/collective.hpp: the pipelined two-shot with gather, and
//   the reduce-scatter half whose `done` copies each chunk out) under the same adversarial orders.
#include "agoq/comm/host_transport.hpp"
#include "agoq/comm/schedule.hpp"
#include "agoq/comm/workspace.hpp"
#include "agoq/grad/collective.hpp"
#include "agoq/grad/layout.hpp"
#include "common/accuracy.hpp"

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using agoq::algorithm;
using agoq::allreduce_config;
using agoq::quant_spec;

struct aligned_bytes {
  void* p = nullptr;
  explicit aligned_bytes(std::size_t n, unsigned char fill = 0)
      : p(::operator new(n + 256, std::align_val_t(256))) {
    std::memset(p, fill, n + 256);
  }
  ~aligned_bytes() { ::operator delete(p, std::align_val_t(256)); }
  aligned_bytes(const aligned_bytes&) = delete;
  aligned_bytes& operator=(const aligned_bytes&) = delete;
  unsigned char* bytes() const { return static_cast<unsigned char*>(p); }
};

// ---- fused operations against the unfused sequence -------------------------------------------

//! w messages of n elements (stride bytes apart), quantized (ref) from normal data.
std::vector<unsigned char> make_messages(int w, std::int64_t n, const quant_spec& s,
                                         std::size_t stride, std::uint32_t seed) {
  std::vector<unsigned char> buf(stride * std::size_t(w) + 64, 0);
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int j = 0; j < w; ++j) {
    for (auto& v : x)
      v = nd(gen) * (1.0f + float(j));
    if (n > 3) x[std::size_t(n / 2)] = 0.0f; // a zero and an exact power of two
    if (n > 5) x[std::size_t(n / 3)] = 0.5f;
    agoq::ref::quantize(x.data(), agoq::message_view(buf.data() + std::size_t(j) * stride, n, s),
                        std::uint64_t(j));
  }
  return buf;
}

TEST(CommFused, ReduceQuantizeAndReduceStoreEqualTheUnfusedSequence) {
  const agoq::format formats[] = {agoq::format::int8, agoq::format::int4, agoq::format::fp8_e4m3,
                                  agoq::format::fp8_e5m2, agoq::format::int5};
  int cases = 0;
  for (agoq::format f : formats)
    for (int block : {32, 128, 256})
      for (agoq::rounding rnd : {agoq::rounding::nearest_even, agoq::rounding::stochastic})
        for (int w : {1, 2, 3, 5})
          for (std::int64_t n :
               {std::int64_t(1), std::int64_t(block - 1), std::int64_t(3 * block + 17)})
            for (float divisor : {1.0f, float(w), 3.0f}) {
              quant_spec s;
              s.format = f;
              s.block = block;
              s.rounding = rnd;
              const std::size_t stride = agoq::align_up(agoq::message_bytes(s, n), 256) + 256;
              const auto msgs = make_messages(w, n, s, stride, std::uint32_t(n * 7 + w));
              const std::uint64_t seed = 1234 + std::uint64_t(w);
              // unfused
              std::vector<float> acc(static_cast<std::size_t>(n));
              agoq::host_executor ex;
              ex.decode(msgs.data(), n, s, acc.data());
              for (int j = 1; j < w; ++j)
                ex.decode_add(msgs.data() + std::size_t(j) * stride, n, s, acc.data());
              if (divisor != 1.0f) ex.divide(acc.data(), n, divisor);
              std::vector<unsigned char> want(agoq::message_bytes(s, n), 0xEE);
              ex.quantize(static_cast<const float*>(acc.data()), n, want.data(), s, seed);
              std::vector<__nv_bfloat16> want_y(static_cast<std::size_t>(n));
              ex.store(static_cast<const float*>(acc.data()), n, want_y.data());
              // fused
              std::vector<unsigned char> got(agoq::message_bytes(s, n), 0x11);
              ex.reduce_quantize(msgs.data(), stride, w, n, s, divisor,
                                 agoq::message_view(got.data(), n, s), seed);
              std::vector<__nv_bfloat16> got_y(static_cast<std::size_t>(n));
              ex.reduce_store(msgs.data(), stride, w, n, s, divisor, got_y.data());
              ASSERT_EQ(got, want) << f << "/" << block << "/" << rnd << " w=" << w << " n=" << n
                                   << " divisor " << divisor;
              ASSERT_EQ(std::memcmp(got_y.data(), want_y.data(), want_y.size() * 2), 0);
              ++cases;
            }
  EXPECT_GT(cases, 1000);
}

TEST(CommFused, ReduceQuantizeRefusesAMismatchedOutput) {
  agoq::host_executor ex;
  quant_spec s;
  const auto msgs = make_messages(2, 256, s, 1024, 3);
  std::vector<unsigned char> out(1024);
  quant_spec other = s;
  other.block = 64;
  EXPECT_THROW(ex.reduce_quantize(msgs.data(), 1024, 2, 256, s, 1.0f,
                                  agoq::message_view(out.data(), 256, other), 0),
               agoq::invalid_argument);
  EXPECT_THROW(ex.reduce_quantize(msgs.data(), 1024, 2, 256, s, 1.0f,
                                  agoq::message_view(out.data(), 255, s), 0),
               agoq::invalid_argument);
}

// ---- deferred two-queue transport and executor
// ---------------------------------------------------

enum class policy { compute_first, comm_first };

//! One rank's two queues of deferred operations and the ordering the schedule declared.
class deferred_queues {
public:
  //! Appends an operation to queue q (0 compute, 1 communication; communication goes to the
  //! compute queue while not forked: program order).
  void push(int q, std::function<void()> fn) {
    if (q == 1 && !m_forked) q = 0;
    m_ops[q].push_back({std::move(fn), m_need[q]});
  }
  void fork() {
    if (m_forked) fail("fork while forked");
    m_forked = true;
    ++m_forks;
    m_need[1] = std::max(m_need[1], m_ops[0].size());
  }
  void join() {
    if (!m_forked) fail("join while not forked");
    m_forked = false;
    m_need[0] = std::max(m_need[0], m_ops[1].size());
  }
  void comm_wait_compute() {
    if (m_forked) m_need[1] = std::max(m_need[1], m_ops[0].size());
  }
  void comm_record(int k) {
    if (k < 0 || k >= agoq::transport_marks) fail("mark out of range");
    if (!m_forked) return;
    if (m_recorded[k] && !m_waited[k])
      fail("mark " + std::to_string(k) + " recorded again before a wait");
    m_mark[k] = m_ops[1].size();
    m_recorded[k] = true;
    m_waited[k] = false;
  }
  void compute_wait_comm(int k) {
    if (k < 0 || k >= agoq::transport_marks) fail("mark out of range");
    if (!m_forked) return;
    if (!m_recorded[k]) fail("wait on mark " + std::to_string(k) + " never recorded");
    m_need[0] = std::max(m_need[0], m_mark[k]);
    m_waited[k] = true;
  }

  //! Runs everything: per queue in order, an operation only once the other queue has run the
  //! operations it must wait for; `p` decides which queue goes first when both could.
  void run(policy p) {
    if (m_forked) fail("the schedule returned without join()");
    std::size_t done[2] = {0, 0};
    while (done[0] < m_ops[0].size() || done[1] < m_ops[1].size()) {
      bool can[2];
      for (int q = 0; q < 2; ++q)
        can[q] = done[q] < m_ops[q].size() && m_ops[q][done[q]].need <= done[1 - q];
      const int first = p == policy::compute_first ? 0 : 1;
      const int q = can[first] ? first : can[1 - first] ? 1 - first : -1;
      if (q < 0) fail("the two queues wait for each other");
      m_ops[q][done[q]++].fn();
    }
    m_ops[0].clear();
    m_ops[1].clear();
  }
  int forks() const { return m_forks; }

private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::logic_error("two-queue protocol: " + what);
  }
  struct op {
    std::function<void()> fn;
    std::size_t need; //!< operations of the other queue that must have run first
  };
  std::vector<op> m_ops[2];
  std::size_t m_need[2] = {0, 0};
  bool m_forked = false;
  int m_forks = 0;
  std::size_t m_mark[agoq::transport_marks] = {};
  bool m_recorded[agoq::transport_marks] = {};
  bool m_waited[agoq::transport_marks] = {};
};

//! A two-queue Transport whose transfers are deferred into the communication queue.
class deferred_transport {
public:
  deferred_transport(agoq::host_transport& tr, deferred_queues& q) : m_tr(&tr), m_q(&q) {}
  int rank() const { return m_tr->rank(); }
  int size() const { return m_tr->size(); }
  void group_start() {
    m_q->push(1, [t = m_tr] { t->group_start(); });
  }
  void group_end() {
    m_q->push(1, [t = m_tr] { t->group_end(); });
  }
  void send(const void* b, std::size_t n, int peer) {
    m_q->push(1, [=, t = m_tr] { t->send(b, n, peer); });
  }
  void recv(void* b, std::size_t n, int peer) {
    m_q->push(1, [=, t = m_tr] { t->recv(b, n, peer); });
  }
  void all_gather(const void* s, void* r, std::size_t n) {
    m_q->push(1, [=, t = m_tr] { t->all_gather(s, r, n); });
  }
  void fork() { m_q->fork(); }
  void join() { m_q->join(); }
  void comm_wait_compute() { m_q->comm_wait_compute(); }
  void comm_record(int k) { m_q->comm_record(k); }
  void compute_wait_comm(int k) { m_q->compute_wait_comm(k); }

private:
  agoq::host_transport* m_tr;
  deferred_queues* m_q;
};

static_assert(agoq::is_two_queue_transport_v<deferred_transport>, "two queues");
static_assert(!agoq::is_two_queue_transport_v<agoq::host_transport>, "one queue");

//! An Executor whose operations are deferred into the compute queue (with the batched forms
//! when `Batched`).
template <bool Batched> class deferred_executor {
public:
  explicit deferred_executor(deferred_queues& q) : m_q(&q) {}
  template <class T>
  void quantize(const T* x, std::int64_t n, void* msg, const quant_spec& s, std::uint64_t seed) {
    m_q->push(0, [=, e = &m_ex] { e->quantize(x, n, msg, s, seed); });
  }
  void decode(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    m_q->push(0, [=, e = &m_ex] { e->decode(msg, n, s, acc); });
  }
  void decode_add(const void* msg, std::int64_t n, const quant_spec& s, float* acc) {
    m_q->push(0, [=, e = &m_ex] { e->decode_add(msg, n, s, acc); });
  }
  template <class T> void load(const T* x, std::int64_t n, float* acc) {
    m_q->push(0, [=, e = &m_ex] { e->load(x, n, acc); });
  }
  template <class T> void add(const T* x, std::int64_t n, float* acc) {
    m_q->push(0, [=, e = &m_ex] { e->add(x, n, acc); });
  }
  void divide(float* acc, std::int64_t n, float d) {
    m_q->push(0, [=, e = &m_ex] { e->divide(acc, n, d); });
  }
  template <class T> void store(const float* acc, std::int64_t n, T* y) {
    m_q->push(0, [=, e = &m_ex] { e->store(acc, n, y); });
  }
  template <class T> void dequantize(const void* msg, std::int64_t n, const quant_spec& s, T* y) {
    m_q->push(0, [=, e = &m_ex] { e->dequantize(msg, n, s, y); });
  }
  void reduce_quantize(const void* msgs, std::size_t stride, int w, std::int64_t n,
                       const quant_spec& s, float d, agoq::quantized_view out, std::uint64_t seed) {
    m_q->push(0, [=, e = &m_ex] { e->reduce_quantize(msgs, stride, w, n, s, d, out, seed); });
  }
  template <class T>
  void reduce_store(const void* msgs, std::size_t stride, int w, std::int64_t n,
                    const quant_spec& s, float d, T* y) {
    m_q->push(0, [=, e = &m_ex] { e->reduce_store(msgs, stride, w, n, s, d, y); });
  }
  template <class T, bool B = Batched, class = std::enable_if_t<B>>
  void quantize_many(const agoq::quantize_job<T>* jobs, int count, const quant_spec& s) {
    std::vector<agoq::quantize_job<T>> js(jobs, jobs + count); // the schedule reuses its array
    ++batches;
    m_q->push(0, [=, e = &m_ex] {
      for (const auto& j : js)
        e->quantize(j.x, j.n, j.msg, s, j.seed);
    });
  }
  template <class T, bool B = Batched, class = std::enable_if_t<B>>
  void dequantize_many(const agoq::dequantize_job<T>* jobs, int count, const quant_spec& s) {
    std::vector<agoq::dequantize_job<T>> js(jobs, jobs + count);
    ++batches;
    m_q->push(0, [=, e = &m_ex] {
      for (const auto& j : js)
        e->dequantize(j.msg, j.n, s, j.y);
    });
  }
  int batches = 0;

private:
  deferred_queues* m_q;
  agoq::host_executor m_ex;
};

static_assert(agoq::is_executor_v<deferred_executor<true>, __nv_bfloat16>, "executor");
static_assert(agoq::detail::has_quantize_many<deferred_executor<true>, float>::value, "batched");
static_assert(!agoq::detail::has_quantize_many<deferred_executor<false>, float>::value, "plain");

using grid_t = std::vector<std::vector<float>>;

//! Every rank's output of the all-reduce: plain host transport (deferred = false), or through
//! the deferred queues run under `p`. `forks` receives rank 0's number of forks. `twice`: a first
//! call on other input (the bf16 bit pattern 0x3C3C) is issued into the same queues with the same
//! workspace and output before the real one, as back-to-back calls on one stream.
template <bool Batched>
grid_t run(const grid_t& in, std::int64_t count, const allreduce_config& cfg, bool deferred,
           policy p, int* forks = nullptr, int* batches = nullptr, bool twice = false) {
  const int world = int(in.size());
  grid_t out(static_cast<std::size_t>(world));
  agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& hex) {
    const int r = tr.rank();
    std::vector<__nv_bfloat16> x(static_cast<std::size_t>(count)), y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = agoq::ref::detail::from_float<__nv_bfloat16>(in[std::size_t(r)][i]);
    const std::size_t wsb = agoq::allreduce_workspace_size<__nv_bfloat16>(count, cfg, world);
    aligned_bytes ws(wsb, 0xA5); // poison: stale reads decode to garbage
    if (deferred) {
      deferred_queues q;
      deferred_transport dtr(tr, q);
      deferred_executor<Batched> dex(q);
      std::vector<__nv_bfloat16> other(x.size());
      std::memset(static_cast<void*>(other.data()), 0x3C, other.size() * sizeof(__nv_bfloat16));
      if (twice) agoq::allreduce(other.data(), y.data(), count, cfg, ws.p, wsb, dtr, dex);
      agoq::allreduce(x.data(), y.data(), count, cfg, ws.p, wsb, dtr, dex);
      q.run(p);
      if (r == 0 && forks) *forks = q.forks();
      if (r == 0 && batches) *batches = dex.batches;
    } else {
      agoq::allreduce(x.data(), y.data(), count, cfg, ws.p, wsb, tr, hex);
    }
    auto& o = out[std::size_t(r)];
    o.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      o[i] = agoq::ref::detail::to_float(y[i]);
  });
  return out;
}

TEST(CommPipeline, DeclaredOrderingSufficesUnderAdversarialQueueOrders) {
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot})
    for (int w : {1, 2, 3, 4, 5})
      for (std::int64_t count : {std::int64_t(1), std::int64_t(128 * 5 + 3), std::int64_t(40000)})
        for (std::int64_t chunk : {std::int64_t(128), std::int64_t(1024), std::int64_t(0)})
          for (agoq::rounding rnd : {agoq::rounding::nearest_even, agoq::rounding::stochastic}) {
            SCOPED_TRACE(std::string(agoq::to_string(a)) + " w " + std::to_string(w) + " count " +
                         std::to_string(count) + " chunk " + std::to_string(chunk) + " " +
                         agoq::to_string(rnd));
            allreduce_config c;
            c.algo = a;
            c.chunk = chunk;
            c.rounding = rnd;
            c.seed = 77;
            c.op = (count % 2) ? agoq::reduce_op::average : agoq::reduce_op::sum;
            const auto in =
                agoq_test::make_inputs<__nv_bfloat16>(w, count, std::uint32_t(count + w));
            const grid_t want = run<false>(in, count, c, false, policy::compute_first);
            const agoq::partition p = agoq::make_partition(count, c, w);
            for (policy pol : {policy::compute_first, policy::comm_first}) {
              int forks = -1;
              const grid_t got = run<false>(in, count, c, true, pol, &forks);
              ASSERT_EQ(got, want)
                  << (pol == policy::compute_first ? "compute first" : "comm first");
              const std::int64_t span = a == algorithm::two_shot ? p.max_shard() : count;
              EXPECT_EQ(forks, p.chunks(span) > 1 ? 1 : 0) << "fork only to pipeline";
            }
          }
}

// Two pipelined calls back to back on one workspace and output, deferred into the same queues:
// fork and join alone must keep the second call's writes (quantized pieces, received pieces,
// the output) behind the first call's reads and transfers.
TEST(CommPipeline, BackToBackCallsShareTheWorkspaceSafely) {
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot})
    for (int w : {2, 3})
      for (policy pol : {policy::compute_first, policy::comm_first}) {
        SCOPED_TRACE(std::string(agoq::to_string(a)) + " w " + std::to_string(w) +
                     (pol == policy::compute_first ? " compute first" : " comm first"));
        const std::int64_t count = 128 * 37 + 9;
        allreduce_config c;
        c.algo = a;
        c.chunk = 256;
        const auto in = agoq_test::make_inputs<__nv_bfloat16>(w, count, 17);
        const grid_t want = run<false>(in, count, c, false, policy::compute_first);
        int forks = 0;
        ASSERT_EQ(run<true>(in, count, c, true, pol, &forks, nullptr, /*twice=*/true), want);
        EXPECT_EQ(forks, 2);
      }
}

TEST(CommPipeline, BatchedJobsEqualOneCallPerJob) {
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot, algorithm::ring, algorithm::tree})
    for (int w : {1, 3, 4}) {
      SCOPED_TRACE(std::string(agoq::to_string(a)) + " w " + std::to_string(w));
      const std::int64_t count = 9001;
      allreduce_config c;
      c.algo = a;
      c.chunk = 1024;
      const auto in = agoq_test::make_inputs<__nv_bfloat16>(w, count, 5);
      const grid_t want = run<false>(in, count, c, false, policy::compute_first);
      int batches = 0;
      ASSERT_EQ(run<true>(in, count, c, true, policy::comm_first, nullptr, &batches), want);
      if (a == algorithm::two_shot || a == algorithm::one_shot) {
        EXPECT_GT(batches, 0);
      }
    }
}

//! The Backend of grad/collective.hpp (buffer copies and codecs) deferred into the compute queue:
//! in the CUDA backend these are stream operations on the executor's stream.
class deferred_backend {
public:
  explicit deferred_backend(deferred_queues& q) : m_q(&q) {}
  void copy(void* dst, const void* src, std::size_t bytes) {
    m_q->push(0, [=, b = &m_be] { b->copy(dst, src, bytes); });
  }
  void decode(agoq::const_quantized_view v, float* acc) {
    m_q->push(0, [=, b = &m_be] { b->decode(v, acc); });
  }
  void decode_add(agoq::const_quantized_view v, float* acc) {
    m_q->push(0, [=, b = &m_be] { b->decode_add(v, acc); });
  }
  void quantize(const float* acc, agoq::quantized_view v, std::uint64_t seed) {
    m_q->push(0, [=, b = &m_be] { b->quantize(acc, v, seed); });
  }

private:
  deferred_queues* m_q;
  agoq::host_buffer_backend m_be;
};

//! Every rank's bucket bytes after grad_allreduce (scatter = false) or grad_reduce_scatter, over
//! the plain host transport or through the deferred queues run under `p`.
std::vector<std::vector<unsigned char>> run_grad(const agoq::grad_layout& l, int world,
                                                 const agoq::grad_comm_config& opt, bool scatter,
                                                 bool deferred, policy p) {
  std::vector<std::vector<unsigned char>> out(static_cast<std::size_t>(world));
  agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& hex) {
    const int r = tr.rank();
    aligned_bytes mem(l.total_bytes());
    std::mt19937 gen(555u + 31u * std::uint32_t(r));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<std::size_t>(l.params));
    for (auto& v : x)
      v = nd(gen);
    agoq::ref::quantize(x.data(), l.view(mem.p));
    const std::size_t wsb =
        scatter ? agoq::grad_reduce_scatter_workspace_size(l.params, l.spec, opt, world)
                : agoq::grad_allreduce_workspace_size(l.params, l.spec, opt, world);
    aligned_bytes ws(wsb, 0xA5);
    if (deferred) {
      deferred_queues q;
      deferred_transport dtr(tr, q);
      deferred_executor<false> dex(q);
      deferred_backend dbe(q);
      if (scatter)
        agoq::grad_reduce_scatter(l.view(mem.p), opt, ws.p, wsb, dtr, dex, dbe);
      else
        agoq::grad_allreduce(l.view(mem.p), opt, ws.p, wsb, dtr, dex, dbe);
      q.run(p);
    } else {
      agoq::host_buffer_backend be;
      if (scatter)
        agoq::grad_reduce_scatter(l.view(mem.p), opt, ws.p, wsb, tr, hex, be);
      else
        agoq::grad_allreduce(l.view(mem.p), opt, ws.p, wsb, tr, hex, be);
    }
    out[std::size_t(r)].assign(mem.bytes(), mem.bytes() + l.total_bytes());
  });
  return out;
}

TEST(CommPipeline, GradCollectivesUnderAdversarialQueueOrders) {
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot})
    for (int w : {1, 2, 3, 4})
      for (bool scatter : {false, true}) {
        if (scatter && a == algorithm::one_shot) continue; // reduce-scatter is two_shot's half
        SCOPED_TRACE(std::string(agoq::to_string(a)) + " w " + std::to_string(w) +
                     (scatter ? " reduce_scatter" : " allreduce"));
        agoq::grad_layout l;
        l.params = 128 * 41 + 5;   // a partial tail block; several chunks per shard
        l.bucket_elems = 128 * 42; // one bucket (the view below is the whole space)
        agoq::grad_comm_config opt;
        opt.algo = a;
        opt.chunk = 256;
        const agoq::partition part = agoq::make_partition(
            l.params, agoq::grad_allreduce_config(l.spec, opt, l.params, w), w);
        ASSERT_GT(part.chunks(part.max_shard()), 1) << "the case must pipeline";
        const auto want = run_grad(l, w, opt, scatter, false, policy::compute_first);
        for (policy pol : {policy::compute_first, policy::comm_first})
          ASSERT_EQ(run_grad(l, w, opt, scatter, true, pol), want)
              << (pol == policy::compute_first ? "compute first" : "comm first");
      }
}

TEST(CommPipeline, RingAndTreeNeverFork) {
  for (algorithm a : {algorithm::ring, algorithm::tree}) {
    const std::int64_t count = 20000;
    allreduce_config c;
    c.algo = a;
    c.chunk = 512;
    const auto in = agoq_test::make_inputs<__nv_bfloat16>(4, count, 9);
    const grid_t want = run<false>(in, count, c, false, policy::compute_first);
    int forks = -1;
    ASSERT_EQ(run<false>(in, count, c, true, policy::comm_first, &forks), want)
        << agoq::to_string(a);
    EXPECT_EQ(forks, 0) << agoq::to_string(a);
  }
}

} // namespace

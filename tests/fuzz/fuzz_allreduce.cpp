// SPDX-License-Identifier: Apache-2.0
// Fuzzes the all-reduce schedules (comm/schedule.hpp) over the in-process host transport
// (comm/host_transport.hpp: threads as ranks, agoq::ref arithmetic): world 1..5, counts
// 0..4096, every algorithm (auto too), wire format, block, scale kind, rounding, op, element
// type, in place or not, two pipeline chunks (default, small multiples of the block, huge).
//
// Invariants:
// - no exception (every config the harness makes is valid) [exception];
// - every rank ends with bitwise identical outputs [identical];
// - nothing is written past the queried workspace (a canary after it) and the workspace query
//   stays small for these counts (<= 256 MiB) [guard, workspace];
// - with nearest-even rounding the result does not depend on allreduce_config::chunk [chunk];
// - finite inputs whose sums cannot overflow fp32 (fp16 inputs; float and bf16 inputs with
//   sum over ranks of max |x| <= T max / 2^(world + 2)) give finite outputs [finite].
#include "fuzz_common.hpp"

#include "agoq/comm/config.hpp"
#include "agoq/comm/host_transport.hpp"
#include "agoq/comm/schedule.hpp"
#include "agoq/comm/workspace.hpp"

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace agoq_fuzz;

struct aligned_buffer {
  void* p = nullptr;
  explicit aligned_buffer(std::size_t n) : p(::operator new(n, std::align_val_t(256))) {}
  ~aligned_buffer() { ::operator delete(p, std::align_val_t(256)); }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
};

std::string describe(const agoq::allreduce_config& c) {
  return std::string(agoq::to_string(c.wire)) + "/" + std::to_string(c.block) + "/" +
         agoq::to_string(c.scale) + "/" + agoq::to_string(c.rounding) + "/" +
         agoq::to_string(c.op) + "/" + agoq::to_string(c.algo) + "/chunk=" +
         std::to_string(c.chunk) + "/seed=" + std::to_string(c.seed);
}

//! Runs the all-reduce on `world` threads; returns every rank's output bits.
template <class T>
std::vector<std::vector<typename elem<T>::bits_t>>
run_allreduce(const std::vector<array<T>>& in, std::int64_t count, const agoq::allreduce_config& cfg,
              bool in_place) {
  using B = typename elem<T>::bits_t;
  const int world = int(in.size());
  std::vector<std::vector<B>> out(static_cast<std::size_t>(world),
                                 std::vector<B>(static_cast<std::size_t>(count)));
  const std::size_t wsb = agoq::allreduce_workspace_size<T>(count, cfg, world);
  if (wsb > (std::size_t(256) << 20))
    fuzz_fail("workspace", "allreduce_workspace_size = %zu bytes for count %lld, world %d, %s",
              wsb, (long long)count, world, describe(cfg).c_str());
  try {
    agoq::host_run(world, [&](agoq::host_transport& tr, agoq::host_executor& ex) {
      const int r = tr.rank();
      array<T> x(static_cast<std::size_t>(count)), y(static_cast<std::size_t>(count));
      if (count) std::memcpy(x.data(), in[std::size_t(r)].data(), std::size_t(count) * sizeof(T));
      aligned_buffer ws(wsb + 64);
      auto* canary = static_cast<unsigned char*>(ws.p) + wsb;
      std::memset(canary, 0xCD, 64);
      T* result = in_place ? x.data() : y.data();
      agoq::allreduce(x.data(), result, count, cfg, ws.p, wsb, tr, ex);
      for (int i = 0; i < 64; ++i)
        if (canary[i] != 0xCD)
          fuzz_fail("guard", "rank %d wrote byte %d past the queried workspace (%zu bytes), "
                    "count %lld, world %d, %s", r, i, wsb, (long long)count, world,
                    describe(cfg).c_str());
      for (std::int64_t i = 0; i < count; ++i)
        out[std::size_t(r)][std::size_t(i)] = elem<T>::to_bits(result[i]);
    });
  } catch (const std::exception& e) {
    fuzz_fail("exception", "allreduce threw (count %lld, world %d, %s, in place %d): %s",
              (long long)count, world, describe(cfg).c_str(), int(in_place), e.what());
  }
  for (int r = 1; r < world; ++r)
    if (out[std::size_t(r)] != out[0])
      fuzz_fail("identical", "rank %d's output differs from rank 0's (count %lld, world %d, %s)", r,
                (long long)count, world, describe(cfg).c_str());
  return out;
}

std::int64_t pick_chunk(reader& in, int block) {
  const std::uint8_t sel = in.u8();
  switch (sel % 4) {
  case 0: return 0;
  case 1: return std::int64_t(block) * (1 + sel / 4 % 16);
  case 2: return std::int64_t(block) * (1 + in.u16() % 64);
  default: { // huge: block x 2^(20..54) (at most 2^62), or the largest multiple of the block
    const int k = sel / 4 % 36;
    return k == 35 ? INT64_MAX / block * block : std::int64_t(block) << (20 + k);
  }
  }
}

template <class T> void run(reader& in, agoq::allreduce_config cfg) {
  const int world = 1 + in.u8() % 5;
  const std::int64_t count = in.u16() % 4097;
  const bool in_place = in.u8() & 1;
  const std::int64_t chunk_a = pick_chunk(in, cfg.block), chunk_b = pick_chunk(in, cfg.block);
  const auto mode = value_mode(in.u8() % int(value_mode::count_));
  std::vector<array<T>> x;
  bool finite = true;
  double amax_sum = 0;
  for (int r = 0; r < world; ++r) {
    x.emplace_back(std::size_t(count));
    fill_values(in, mode, x.back().data(), count, cfg.block);
    double amax = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      const double v = to_double(x.back()[std::size_t(i)]);
      if (!std::isfinite(v)) finite = false;
      amax = std::max(amax, std::fabs(v));
    }
    amax_sum += amax;
  }

  cfg.chunk = chunk_a;
  const auto a = run_allreduce<T>(x, count, cfg, in_place);
  // Each requantization may grow a value by up to 2x (int2 with a power-of-two scale: a block
  // whose |x| / scale is just above 1/2 rounds to 1 x scale), and a rank's value passes through
  // at most world + 1 of them (ring), so the fp32 sums stay finite below T max / 2^(world + 2).
  // fp16 inputs cannot overflow the fp32 sums at all (outputs saturate at 65504).
  const double limit = std::is_same_v<T, __half> ? HUGE_VAL
                                                 : elem<T>::max_finite() / std::ldexp(1.0, world + 2);
  if (finite && amax_sum <= limit)
    for (std::int64_t i = 0; i < count; ++i)
      if (!std::isfinite(to_double(elem<T>::from_bits(a[0][std::size_t(i)]))))
        fuzz_fail("finite", "element %lld of the all-reduce of finite inputs (sum of the ranks' "
                  "max |x| = %a) is not finite: count %lld, world %d, %s", (long long)i, amax_sum,
                  (long long)count, world, describe(cfg).c_str());
  if (cfg.rounding != agoq::rounding::nearest_even || chunk_b == chunk_a) return;
  cfg.chunk = chunk_b;
  const auto b = run_allreduce<T>(x, count, cfg, !in_place);
  if (a[0] != b[0])
    for (std::int64_t i = 0; i < count; ++i)
      if (a[0][std::size_t(i)] != b[0][std::size_t(i)]) {
        fuzz_fail("chunk", "nearest-even result depends on the chunk: element %lld is %a with "
                  "chunk %lld, %a with chunk %lld (count %lld, world %d, %s)", (long long)i,
                  to_double(elem<T>::from_bits(a[0][std::size_t(i)])), (long long)chunk_a,
                  to_double(elem<T>::from_bits(b[0][std::size_t(i)])), (long long)chunk_b,
                  (long long)count, world, describe(cfg).c_str());
        break;
      }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t b0 = in.u8(), b1 = in.u8(), b2 = in.u8();
  agoq::allreduce_config cfg;
  cfg.wire = agoq::format(b0 % 10);
  cfg.algo = agoq::algorithm((b0 / 10) % 5);
  cfg.block = 32 << (b1 & 3);
  cfg.scale = agoq::scale_kind(((b1 >> 2) & 3) % 3);
  cfg.rounding = (b1 & 0x40) ? agoq::rounding::stochastic : agoq::rounding::nearest_even;
  cfg.op = (b1 & 0x80) ? agoq::reduce_op::average : agoq::reduce_op::sum;
  cfg.seed = in.u64();
  switch (b2 % 3) {
  case 0: run<float>(in, cfg); break;
  case 1: run<__half>(in, cfg); break;
  default: run<__nv_bfloat16>(in, cfg); break;
  }
  return 0;
}

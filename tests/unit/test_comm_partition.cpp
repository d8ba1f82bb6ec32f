// SPDX-License-Identifier: Apache-2.0
// Collective vocabulary: allreduce_config (==, <<, validate), the shard/chunk partition for any
// count and world size, message sizes, auto selection, workspace size queries.
#include "agoq/comm/config.hpp"
#include "agoq/comm/partition.hpp"
#include "agoq/comm/workspace.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <sstream>
#include <string>

namespace {

using agoq::algorithm;
using agoq::allreduce_config;
using agoq::element_type;

TEST(CommConfig, DefaultsEqualityAndPrinting) {
  allreduce_config a, b;
  EXPECT_EQ(a.wire, agoq::format::int8);
  EXPECT_EQ(a.block, 128);
  EXPECT_EQ(a.algo, algorithm::auto_select);
  EXPECT_EQ(a.op, agoq::reduce_op::sum);
  EXPECT_TRUE(a == b);
  b.seed = 7;
  EXPECT_TRUE(a != b);
  b = a;
  b.algo = algorithm::ring;
  EXPECT_FALSE(a == b);
  std::ostringstream os;
  os << b;
  EXPECT_EQ(os.str(), "int8/128/fp32/nearest_even/sum/ring");
  std::ostringstream os2;
  os2 << element_type::bf16 << ' ' << algorithm::auto_select << ' ' << agoq::reduce_op::average;
  EXPECT_EQ(os2.str(), "bf16 auto average");
  EXPECT_TRUE(a.spec().symmetric);
  EXPECT_EQ(a.spec().block, 128);
}

TEST(CommConfig, ValidateNamesTheField) {
  allreduce_config c;
  EXPECT_EQ(agoq::validate(c), nullptr);
  c.block = 48;
  EXPECT_NE(std::string(agoq::validate(c)).find("config.block"), std::string::npos);
  c = allreduce_config{};
  c.chunk = 100;
  EXPECT_NE(std::string(agoq::validate(c)).find("config.chunk"), std::string::npos);
  c.chunk = -128;
  EXPECT_NE(std::string(agoq::validate(c)).find("config.chunk"), std::string::npos);
  c.chunk = 256;
  EXPECT_EQ(agoq::validate(c), nullptr);
}

TEST(CommPartition, ShardsTileTheBufferForAnyCountAndWorld) {
  const std::int64_t counts[] = {0, 1, 31, 32, 33, 127, 128, 129, 1000, 4095, 4096, 100003};
  for (int block : {32, 128, 256})
    for (int w = 1; w <= 9; ++w)
      for (std::int64_t count : counts) {
        allreduce_config cfg;
        cfg.block = block;
        const agoq::partition p = agoq::make_partition(count, cfg, w);
        std::int64_t at = 0, largest = 0, smallest_blocks = INT64_MAX, largest_blocks = 0;
        for (int r = 0; r < w; ++r) {
          const agoq::element_range s = p.shard(r);
          ASSERT_EQ(s.begin, at) << "count " << count << " w " << w << " r " << r;
          ASSERT_GE(s.size(), 0);
          if (s.end < count) {
            ASSERT_EQ(s.end % block, 0) << "shard end not block-aligned";
          }
          const std::int64_t nb = (s.size() + block - 1) / block;
          smallest_blocks = std::min(smallest_blocks, nb);
          largest_blocks = std::max(largest_blocks, nb);
          largest = std::max(largest, s.size());
          at = s.end;
        }
        EXPECT_EQ(at, count);
        EXPECT_LE(largest_blocks - smallest_blocks, 1) << "unbalanced";
        EXPECT_EQ(p.max_shard(), largest);
      }
}

TEST(CommPartition, ChunksAndPackedMessages) {
  allreduce_config cfg;
  cfg.chunk = 256;
  const agoq::partition p = agoq::make_partition(1000, cfg, 1);
  const agoq::quant_spec s = cfg.spec();
  EXPECT_EQ(p.chunks(0), 0);
  EXPECT_EQ(p.chunks(1000), 4);
  EXPECT_EQ(p.chunk_size(1000, 3), 1000 - 768);
  EXPECT_EQ(p.chunk_size(1000, 4), 0);
  // codes then scales: 2 blocks of 128 int8 codes + 2 fp32 scales.
  EXPECT_EQ(agoq::message_bytes(s, 256), 256u + 8u);
  EXPECT_EQ(agoq::message_bytes(s, 1), 128u + 4u);
  EXPECT_EQ(agoq::message_bytes(s, 0), 0u);
  EXPECT_EQ(p.chunk_offset(s, 2), 2 * agoq::align_up(264, agoq::message_alignment));
  EXPECT_EQ(p.packed_bytes(s, 1000), 4 * agoq::align_up(264, agoq::message_alignment));
  EXPECT_EQ(p.packed_bytes(s, 0), 0u);
  // the default chunk: whole blocks, about max shard / pipeline_chunks, never below the minimum
  allreduce_config d;
  d.block = 256;
  const std::int64_t least = agoq::pipeline_min_chunk_elements / 256 * 256;
  EXPECT_EQ(agoq::chunk_elements(d, 1000, 4), least);
  EXPECT_EQ(agoq::chunk_elements(d, 0, 1), least);
  EXPECT_EQ(agoq::chunk_elements(d, std::int64_t(1) << 30, 4),
            (std::int64_t(1) << 28) / agoq::pipeline_chunks);
  for (std::int64_t count : {std::int64_t(300000007), std::int64_t(1) << 33})
    for (int w : {1, 3, 8}) {
      const std::int64_t c = agoq::chunk_elements(d, count, w);
      const agoq::partition q = agoq::make_partition(count, d, w);
      EXPECT_EQ(q.chunk, c);
      EXPECT_EQ(c % 256, 0);
      EXPECT_GE(c, least);
      EXPECT_LE(q.chunks(q.max_shard()), agoq::pipeline_chunks) << count << " " << w;
      if (c > least) {
        EXPECT_GE(q.chunks(q.max_shard()), agoq::pipeline_chunks - 1);
      }
    }
  d.chunk = 512; // an explicit chunk is taken as it is
  EXPECT_EQ(agoq::chunk_elements(d, std::int64_t(1) << 30, 4), 512);
}

TEST(CommPartition, InterleavedPackingHoldsEveryShardsChunks) {
  allreduce_config cfg;
  cfg.chunk = 384;
  const agoq::quant_spec s = cfg.spec();
  for (int w : {1, 2, 3, 5})
    for (std::int64_t count : {std::int64_t(1), std::int64_t(1000), std::int64_t(9999)}) {
      const agoq::partition p = agoq::make_partition(count, cfg, w);
      const std::int64_t span = p.max_shard();
      std::size_t end = 0;
      for (std::int64_t c = 0; c < p.chunks(span); ++c) {
        const std::size_t st = p.interleaved_stride(s, span, c);
        EXPECT_EQ(p.interleaved_offset(s, c), end) << "chunk regions back to back";
        EXPECT_EQ(st % agoq::message_alignment, 0u);
        for (int k = 0; k < w; ++k)
          EXPECT_LE(agoq::message_bytes(s, p.chunk_size(p.shard(k).size(), c)), st);
        end += std::size_t(w) * st;
      }
      EXPECT_EQ(end, std::size_t(w) * p.packed_bytes(s, span));
    }
}

TEST(CommSchedule, AutoSelectionCrossovers) {
  EXPECT_EQ(agoq::select_algorithm(std::size_t(1) << 30, 1), algorithm::one_shot);
  // 2 ranks: one_shot moves two_shot's bytes in one step, at every size
  EXPECT_EQ(agoq::select_algorithm(std::size_t(1) << 30, 2), algorithm::one_shot);
  EXPECT_EQ(agoq::select_algorithm(agoq::auto_one_shot_max_bytes + 1, 3), algorithm::two_shot);
  EXPECT_EQ(agoq::select_algorithm(agoq::auto_one_shot_max_bytes, 4), algorithm::one_shot);
  EXPECT_EQ(agoq::select_algorithm(agoq::auto_one_shot_max_bytes + 1, 4), algorithm::two_shot);
  EXPECT_EQ(agoq::select_algorithm(agoq::auto_tree_max_bytes, 8), algorithm::tree);
  EXPECT_EQ(agoq::select_algorithm(agoq::auto_tree_max_bytes + 1, 8), algorithm::two_shot);
  EXPECT_EQ(agoq::select_algorithm(std::size_t(1) << 30, 4), algorithm::two_shot);
  allreduce_config c;
  c.algo = algorithm::ring;
  EXPECT_EQ(agoq::resolve_algorithm(c, 1 << 20, element_type::bf16, 4), algorithm::ring);
  c.algo = algorithm::auto_select;
  EXPECT_EQ(agoq::resolve_algorithm(c, 1 << 20, element_type::bf16, 4), algorithm::two_shot);
  EXPECT_EQ(agoq::resolve_algorithm(c, 1000, element_type::f32, 4), algorithm::one_shot);
}

TEST(CommWorkspace, SizeQuery) {
  allreduce_config c;
  for (algorithm a : {algorithm::two_shot, algorithm::one_shot, algorithm::ring, algorithm::tree}) {
    c.algo = a;
    EXPECT_EQ(agoq::allreduce_workspace_size(0, element_type::f32, c, 4), 0u);
    EXPECT_GT(agoq::allreduce_workspace_size(1, element_type::f32, c, 4), 0u);
  }
  const std::int64_t n = 1 << 20;
  c.algo = algorithm::two_shot;
  const std::size_t two = agoq::allreduce_workspace_size(n, element_type::bf16, c, 4);
  EXPECT_GE(two, std::size_t(2 * n)); // ~ 2 * n * 1.03 bytes, no fp32 accumulator
  EXPECT_LE(two, std::size_t(2.1 * n) + 8192);
  c.algo = algorithm::one_shot; // W * n * 1.03 bytes
  EXPECT_LE(agoq::allreduce_workspace_size(n, element_type::bf16, c, 4),
            std::size_t(4.2 * n) + 8192);
  c.algo = algorithm::tree;
  EXPECT_EQ(agoq::allreduce_workspace_size(n, element_type::bf16, c, 2),
            agoq::allreduce_workspace_size(n, element_type::bf16, c, 8));
  c.algo = algorithm::one_shot;
  EXPECT_EQ(agoq::allreduce_workspace_size<float>(n, c, 4),
            agoq::allreduce_workspace_size(n, element_type::f32, c, 4));
  try {
    (void)agoq::allreduce_workspace_size(10, element_type::f32, c, 0);
    FAIL() << "world 0 accepted";
  } catch (const agoq::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("world"), std::string::npos) << e.what();
  }
  c.block = 100;
  EXPECT_THROW((void)agoq::allreduce_workspace_size(10, element_type::f32, c, 2),
               agoq::invalid_argument);
  c.block = 128;
  EXPECT_THROW((void)agoq::allreduce_workspace_size(-1, element_type::f32, c, 2),
               agoq::invalid_argument);
}

} // namespace

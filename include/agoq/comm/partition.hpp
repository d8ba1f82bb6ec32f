// SPDX-License-Identifier: Apache-2.0
//! @file comm/partition.hpp
//! How `count` elements are split among `world` ranks (block-aligned shards) and into pipeline
//! chunks, and the byte size of a quantized message ("codes then scales").
//!
//! Shards: the count is cut into nb = ceil(count / block) blocks; shard r owns blocks
//! [r*q + min(r, m), ...) with q = nb / world, m = nb % world (the first m shards get one more
//! block). A shard's element range is clipped to count, so only the last non-empty shard can end
//! in a partial block, and shards are empty when nb < world (e.g. count < world * block). Every
//! count >= 0 and world >= 1 is valid.
//!
//! Chunks: a range is cut into chunks of `chunk` elements (a multiple of the block) from its
//! start; chunk c of a range of n elements holds min(chunk, n - c*chunk) elements (possibly 0).
//! Any chunk works: the partition's arithmetic never forms n + chunk or c * chunk past the range,
//! and chunk_elements clamps a configured chunk to the count rounded up to whole blocks (a larger
//! chunk is one chunk per range either way, so the results do not change).
//!
//! Size domain: the collectives accept count x world <= max_count_times_world (2^56 elements);
//! within it every byte count here (messages, packed ranges, workspaces) fits in std::int64_t.
//! They refuse larger ones with invalid_argument naming `count`.
//!
//! Messages: a chunk of n elements travels as one buffer, codes_bytes(spec, n) bytes of codes
//! followed immediately by scales_bytes(spec, n) bytes of scales (4-byte aligned because every
//! block's codes are a multiple of 4 bytes for blocks >= 32). A packed range is its chunk
//! messages back to back, each starting at a multiple of `message_alignment` bytes.
#pragma once

#include "agoq/comm/config.hpp"
#include "agoq/quant/view.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace agoq {

//! Alignment (bytes) of every message inside a packed range and of every workspace region.
constexpr std::size_t message_alignment = 256;

//! The largest count x world a collective accepts (see the file comment): 2^56 elements, so that
//! every message, packed range and workspace (below 2^61 bytes) and count x sizeof(T) fit in
//! std::int64_t with room to spare.
constexpr std::int64_t max_count_times_world = std::int64_t(1) << 56;

//! True if `count` (>= 0) elements on `world` (>= 1) ranks lie in the collectives' size domain.
constexpr bool count_in_domain(std::int64_t count, int world) noexcept {
  return count <= max_count_times_world / (world < 1 ? 1 : world);
}

//! Half-open element range [begin, end).
struct element_range {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  constexpr std::int64_t size() const noexcept { return end - begin; }
  friend constexpr bool operator==(const element_range& a, const element_range& b) noexcept {
    return a.begin == b.begin && a.end == b.end;
  }
};

//! `v` rounded up to a multiple of `a` (a > 0).
constexpr std::size_t align_up(std::size_t v, std::size_t a) noexcept {
  return (v + a - 1) / a * a;
}

//! Bytes of one message holding n elements: codes then scales (no alignment padding).
constexpr std::size_t message_bytes(const quant_spec& s, std::int64_t n) noexcept {
  return n <= 0 ? 0 : codes_bytes(s, n) + scales_bytes(s, n);
}

//! The split of `count` elements over `world` ranks and into chunks. Plain value; all ranks
//! computing it from the same (count, config, world) get the same result.
struct partition {
  std::int64_t count = 0;                           //!< elements in the whole buffer
  int world = 1;                                    //!< ranks
  int block = 128;                                  //!< elements per block (scale)
  std::int64_t chunk = pipeline_min_chunk_elements; //!< elements per chunk (k * block, > 0)

  //! Blocks in the whole buffer (ceil(count / block), without forming count + block).
  constexpr std::int64_t blocks() const noexcept { return count > 0 ? (count - 1) / block + 1 : 0; }

  //! Elements of shard r (0 <= r < world): block-aligned, clipped to count, possibly empty.
  constexpr element_range shard(int r) const noexcept {
    const std::int64_t nb = blocks(), q = nb / world, m = nb % world;
    const std::int64_t b0 = r * q + std::min<std::int64_t>(r, m);
    const std::int64_t b1 = b0 + q + (r < m ? 1 : 0);
    return {std::min(count, b0 * block), std::min(count, b1 * block)};
  }

  //! Elements of the largest shard (shard 0).
  constexpr std::int64_t max_shard() const noexcept { return shard(0).size(); }

  //! Chunks needed for a range of n elements (0 for n == 0); exact for any chunk > 0.
  constexpr std::int64_t chunks(std::int64_t n) const noexcept {
    return n > 0 ? (n - 1) / chunk + 1 : 0;
  }

  //! Elements of chunk c of a range of n elements (0 past its end, or for c < 0).
  constexpr std::int64_t chunk_size(std::int64_t n, std::int64_t c) const noexcept {
    if (c < 0 || c >= chunks(n)) return 0; // c * chunk < n below: no overflow
    return std::min(chunk, n - c * chunk);
  }

  //! Bytes of chunk c's message inside a packed range of n elements.
  constexpr std::size_t chunk_message_bytes(const quant_spec& s, std::int64_t n,
                                            std::int64_t c) const noexcept {
    return message_bytes(s, chunk_size(n, c));
  }

  //! Byte offset of chunk c's message inside a packed range (any n: full chunks precede it).
  constexpr std::size_t chunk_offset(const quant_spec& s, std::int64_t c) const noexcept {
    return std::size_t(c) * align_up(message_bytes(s, chunk), message_alignment);
  }

  //! Bytes of a packed range of n elements (its chunk messages, each aligned).
  constexpr std::size_t packed_bytes(const quant_spec& s, std::int64_t n) const noexcept {
    if (n <= 0) return 0;
    const std::int64_t nc = chunks(n);
    return chunk_offset(s, nc - 1) +
           align_up(message_bytes(s, chunk_size(n, nc - 1)), message_alignment);
  }

  //! Chunk-major packing of `world` ranges of at most n elements (world * packed_bytes(s, n)
  //! bytes): chunk c of every range lies together, range k's message at
  //! interleaved_offset(s, c) + k * interleaved_stride(s, n, c), so that one all-gather of
  //! interleaved_stride bytes per rank moves chunk c of every range.
  constexpr std::size_t interleaved_offset(const quant_spec& s, std::int64_t c) const noexcept {
    return std::size_t(world) * chunk_offset(s, c);
  }
  //! The per-range stride of chunk c in the chunk-major packing (see interleaved_offset).
  constexpr std::size_t interleaved_stride(const quant_spec& s, std::int64_t n,
                                           std::int64_t c) const noexcept {
    return align_up(message_bytes(s, chunk_size(n, c)), message_alignment);
  }
};

//! The pipeline chunk (elements) used for `count` elements on `world` ranks under `cfg`:
//! cfg.chunk if set (clamped to the count rounded up to whole blocks, at least one block: a
//! larger chunk holds every range in one chunk just the same), else ceil(max shard /
//! pipeline_chunks) rounded up to whole blocks and at least pipeline_min_chunk_elements rounded
//! down to whole blocks (comm/config.hpp). A function of (count, cfg, world) only, so every rank
//! gets the same. Preconditions: count >= 0, world >= 1, validate(cfg) == nullptr.
constexpr std::int64_t chunk_elements(const allreduce_config& cfg, std::int64_t count,
                                      int world) noexcept {
  const std::int64_t b = cfg.block;
  const std::int64_t nb = count > 0 ? (count - 1) / b + 1 : 0;
  if (cfg.chunk > 0) {
    const std::int64_t whole = nb < 1 ? b : nb > INT64_MAX / b ? INT64_MAX / b * b : nb * b;
    return cfg.chunk < whole ? cfg.chunk : whole;
  }
  const std::int64_t max_shard = (nb + world - 1) / world * b; // blocks of shard 0, as elements
  const std::int64_t want = (max_shard + pipeline_chunks * b - 1) / (pipeline_chunks * b) * b;
  const std::int64_t least = pipeline_min_chunk_elements / b * b;
  return want > least ? want : least;
}

//! The partition of `count` elements over `world` ranks under `cfg`.
//! Preconditions: count >= 0, world >= 1, validate(cfg) == nullptr.
constexpr partition make_partition(std::int64_t count, const allreduce_config& cfg,
                                   int world) noexcept {
  partition p;
  p.count = count;
  p.world = world;
  p.block = cfg.block;
  p.chunk = chunk_elements(cfg, count, world);
  return p;
}

//! The quantized view of a message of n elements at msg: codes, then the scales right after them
//! (the one layout every executor reads and writes).
inline quantized_view message_view(void* msg, std::int64_t n, const quant_spec& s) noexcept {
  return quantized_view{msg, static_cast<std::uint8_t*>(msg) + codes_bytes(s, n), nullptr, 1, n, s};
}
inline const_quantized_view message_view(const void* msg, std::int64_t n,
                                         const quant_spec& s) noexcept {
  return const_quantized_view(msg, static_cast<const std::uint8_t*>(msg) + codes_bytes(s, n),
                              nullptr, 1, n, s);
}

} // namespace agoq

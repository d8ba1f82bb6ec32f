// SPDX-License-Identifier: Apache-2.0
// The in-process host transport (threads as ranks): grouped send/recv, FIFO matching, all-gather
// in and out of place, size-mismatch detection, abort on a failing rank, argument errors.
#include "agoq/comm/host_transport.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

TEST(CommHostTransport, GroupedExchangeAroundARing) {
  for (int w = 2; w <= 6; ++w)
    agoq::host_run(w, [w](agoq::host_transport& tr, agoq::host_executor&) {
      const int r = tr.rank();
      ASSERT_EQ(tr.size(), w);
      // both halves posted in one group: no deadlock, and two messages per pair stay FIFO
      std::int32_t out[2] = {r * 10, r * 10 + 1}, in[2] = {-1, -1};
      tr.group_start();
      tr.send(&out[0], 4, (r + 1) % w);
      tr.send(&out[1], 4, (r + 1) % w);
      tr.recv(&in[0], 4, (r + w - 1) % w);
      tr.recv(&in[1], 4, (r + w - 1) % w);
      tr.group_end();
      EXPECT_EQ(in[0], ((r + w - 1) % w) * 10);
      EXPECT_EQ(in[1], ((r + w - 1) % w) * 10 + 1);
      tr.fabric().barrier();
    });
}

TEST(CommHostTransport, AllGatherInAndOutOfPlace) {
  agoq::host_run(5, [](agoq::host_transport& tr, agoq::host_executor&) {
    const int r = tr.rank();
    std::vector<std::uint16_t> buf(5 * 3, 0),
        mine = {std::uint16_t(r), std::uint16_t(r + 100), std::uint16_t(r + 200)};
    tr.all_gather(mine.data(), buf.data(), 6);
    for (int p = 0; p < 5; ++p)
      EXPECT_EQ(buf[std::size_t(p) * 3 + 1], p + 100);
    std::vector<std::uint16_t> inplace(5 * 3, 0);
    inplace[std::size_t(r) * 3 + 2] = std::uint16_t(7 * r);
    tr.all_gather(inplace.data() + std::size_t(r) * 3, inplace.data(), 6);
    for (int p = 0; p < 5; ++p)
      EXPECT_EQ(inplace[std::size_t(p) * 3 + 2], 7 * p);
  });
}

TEST(CommHostTransport, SizeMismatchIsReported) {
  try {
    agoq::host_run(2, [](agoq::host_transport& tr, agoq::host_executor&) {
      char b[8] = {};
      if (tr.rank() == 0)
        tr.send(b, 8, 1);
      else
        tr.recv(b, 4, 0);
    });
    FAIL() << "mismatch not detected";
  } catch (const agoq::error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 4 bytes"), std::string::npos) << e.what();
  }
}

TEST(CommHostTransport, FailingRankAbortsTheOthers) {
  // rank 1 throws; rank 0 waits for a message that never comes and must be woken up.
  try {
    agoq::host_run(3, [](agoq::host_transport& tr, agoq::host_executor&) {
      char b = 0;
      if (tr.rank() == 1) throw std::runtime_error("boom");
      tr.recv(&b, 1, 1);
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "boom");
  }
}

TEST(CommHostTransport, ArgumentErrors) {
  try {
    agoq::host_fabric f(0);
    FAIL() << "world 0 accepted";
  } catch (const agoq::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("world must be >= 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(agoq::host_run(0, [](agoq::host_transport&, agoq::host_executor&) {}),
               agoq::invalid_argument);
  agoq::host_fabric f(2);
  EXPECT_THROW(agoq::host_transport(f, 2), agoq::invalid_argument);
  agoq::host_transport t(f, 0);
  char b = 0;
  EXPECT_THROW(t.send(&b, 1, 0), agoq::invalid_argument); // to itself
  EXPECT_THROW(t.recv(&b, 1, 5), agoq::invalid_argument);
  EXPECT_THROW(t.group_end(), agoq::error);
  EXPECT_TRUE(f.idle());
}

} // namespace

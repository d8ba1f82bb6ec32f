// SPDX-License-Identifier: Apache-2.0
// Linked with agoq::comm: the collectives compile (AGOQ_WITH_NCCL=1 comes with the target).
#include <agoq/agoq.cuh>

#include <cstdio>

static_assert(AGOQ_HAS_NCCL(), "agoq::comm turns AGOQ_HAS_NCCL() on");

int main() {
  agoq::allreduce_config cfg;
  (void)cfg;
  std::printf("agoq::comm consumer compiled\n");
  return 0;
}

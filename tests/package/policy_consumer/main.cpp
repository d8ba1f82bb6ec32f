// SPDX-License-Identifier: Apache-2.0
// Host-only consumer: plans activation memory with agoq::policy, compiled by the C++ compiler.
#include <agoq/policy/policy.hpp>
#include <agoq/version.hpp>

#include <cstdio>
#include <sstream>

static_assert(!AGOQ_HAS_NCCL(), "agoq::policy does not turn the collectives on");

int main() {
  agoq::model_shape m = agoq::model_shape::llama2_7b();
  m.stages = 4;
  m.micro_batches = 8;
  m.virtual_stages = 2;
  m.schedule = agoq::pipeline_schedule::interleaved_1f1b;
  const agoq::memory_plan plan = agoq::plan_memory(m, agoq::parse_policy("paper"));
  std::ostringstream os;
  os << plan;
  std::printf("agoq %s: %s\n", agoq::version_string, os.str().c_str());
  return plan.stages.size() == 4 && plan.stages[3].bits == 8 ? 0 : 1;
}

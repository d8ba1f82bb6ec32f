// SPDX-License-Identifier: Apache-2.0
//! @file policy/policy.hpp
//! Umbrella for the bit-width policy engine (host only): layer kinds, save plans (LAAQ),
//! pipeline schedules, DBCA-PP stage widths, the memory planner and the policy text form.
#pragma once

#include "agoq/policy/layer_kind.hpp"
#include "agoq/policy/planner.hpp"
#include "agoq/policy/policy_text.hpp"
#include "agoq/policy/save_plan.hpp"
#include "agoq/policy/schedule.hpp"
#include "agoq/policy/stage_bits.hpp"

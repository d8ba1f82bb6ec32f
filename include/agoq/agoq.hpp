// SPDX-License-Identifier: Apache-2.0
//! @file agoq.hpp
//! Umbrella for the host-only parts of agoq (plain C++; no nvcc needed): formats, the host
//! reference quantizer, the bit-width policy engine. agoq.cuh adds the kernels and collectives.
#pragma once

#include "agoq/config.hpp"
#include "agoq/error.hpp"
#include "agoq/format/format.hpp"
#include "agoq/policy/policy.hpp"
#include "agoq/quant/reference.hpp"
#include "agoq/quant/view.hpp"
#include "agoq/version.hpp"

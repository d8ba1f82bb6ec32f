// SPDX-License-Identifier: Apache-2.0
//! @file agoq.cuh
//! Umbrella for all of agoq: the host-only parts (agoq.hpp) plus the GPU kernels.
#pragma once

#include "agoq/agoq.hpp"
#include "agoq/quant/quantize.cuh"
#include "agoq/grad/grad_buffer.cuh" // NCCL-free part always; allreduce/reduce_scatter with NCCL
#if AGOQ_HAS_NCCL()
#include "agoq/comm/allreduce.cuh"
#endif

// SPDX-License-Identifier: Apache-2.0
//! @file python/src/agoq_torch.h
//! The boundary between the two translation units of the PyTorch extension: agoq_torch.cpp (g++:
//! torch, pybind11, the host reference, the policy engine) and agoq_torch_cuda.cu (nvcc: agoq's
//! launchers, the gradient buffer, the NCCL all-reduce). Only plain types cross it (pointers,
//! views, streams), so the .cu never parses a torch header and compiles in seconds per format.
//! Every function throws agoq::error (agoq::invalid_argument carries agoq's message).
#pragma once

#include <agoq/comm/config.hpp>
#include <agoq/format/format.hpp>
#include <agoq/quant/view.hpp>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace agoq_torch {

//! Element type of an unquantized tensor.
enum class dtype_code : int { f32 = 0, f16 = 1, bf16 = 2 };

//! How a DDP bucket / gradient buffer collective runs (the fields of agoq::grad_comm_config).
struct comm_options {
  bool average = true;
  agoq::algorithm algo = agoq::algorithm::auto_select;
  std::int64_t chunk = 0;
};

namespace cuda {

// ---- quantizers (quant/quantize.cuh): rows x cols, leading dimension ld; rows == 1: 1-D form ----
void quantize(dtype_code t, const void* x, std::int64_t ld, agoq::quantized_view out,
              std::uint64_t seed, cudaStream_t stream);
void dequantize(agoq::const_quantized_view in, dtype_code t, void* y, std::int64_t ld,
                cudaStream_t stream);
void dequantize_accumulate(agoq::const_quantized_view in, float* acc, std::int64_t ld, float alpha,
                           cudaStream_t stream);
void accumulate_requantize(agoq::quantized_view buf, dtype_code t, const void* x, std::int64_t ld,
                           std::uint64_t seed, cudaStream_t stream);

// ---- the 8-bit gradient buffer (grad/grad_buffer.cuh) over caller-owned memory ----
void grad_accumulate(void* mem, std::size_t bytes, std::int64_t params,
                     const agoq::quant_spec& spec, std::int64_t bucket_elems, std::int64_t offset,
                     dtype_code t, const void* grad, std::int64_t count, std::uint64_t seed,
                     cudaStream_t stream);
void grad_dequantize_to(void* mem, std::size_t bytes, std::int64_t params,
                        const agoq::quant_spec& spec, std::int64_t bucket_elems,
                        std::int64_t offset, std::int64_t count, dtype_code t, void* out,
                        cudaStream_t stream);

// ---- NCCL (comm/allreduce.cuh); has_nccl() is false when built without it ----
bool has_nccl();
std::string nccl_unique_id();                                     //!< ncclGetUniqueId's bytes
std::uintptr_t nccl_comm_init(int world, int rank, const std::string& id, int device);
void nccl_comm_destroy(std::uintptr_t comm);
int nccl_comm_size(std::uintptr_t comm);
std::size_t allreduce_workspace_size(dtype_code t, std::int64_t count, const comm_options& o,
                                     std::uintptr_t comm);
void allreduce(dtype_code t, const void* send, void* recv, std::int64_t count,
               const comm_options& o, void* workspace, std::size_t workspace_bytes,
               std::uintptr_t comm, cudaStream_t stream);
std::size_t grad_allreduce_workspace_size(std::int64_t params, const agoq::quant_spec& spec,
                                          std::int64_t bucket_elems, std::int64_t bucket,
                                          const comm_options& o, std::uintptr_t comm);
void grad_allreduce(void* mem, std::size_t bytes, std::int64_t params,
                    const agoq::quant_spec& spec, std::int64_t bucket_elems, std::int64_t bucket,
                    const comm_options& o, void* workspace, std::size_t workspace_bytes,
                    std::uintptr_t comm, cudaStream_t stream);

} // namespace cuda
} // namespace agoq_torch

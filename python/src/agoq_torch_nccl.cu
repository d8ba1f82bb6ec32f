// SPDX-License-Identifier: Apache-2.0
//! @file python/src/agoq_torch_nccl.cu
//! The CUDA half of the PyTorch extension, part 2: agoq's 8-bit all-reduce over an NCCL
//! communicator this extension creates from a unique id (the DDP comm hook, NcclComm) and the
//! gradient buffer's all-reduce on its codes. Without NCCL (AGOQ_HAS_NCCL() == 0) every entry
//! point throws agoq::error saying so.
#include "agoq_torch.h"
#include "agoq_torch_types.cuh"

#include <agoq/comm/allreduce.cuh>
#include <agoq/grad/grad_buffer.cuh>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <string>
#include <type_traits>

#if AGOQ_HAS_NCCL()
#include <nccl.h>
#endif

namespace agoq_torch {
namespace cuda {
namespace {


} // namespace

#if AGOQ_HAS_NCCL()

namespace {
ncclComm_t as_comm(std::uintptr_t c) {
  if (c == 0) throw agoq::invalid_argument("agoq_torch: the NCCL communicator is null (destroyed?)");
  return reinterpret_cast<ncclComm_t>(c);
}
agoq::allreduce_config config_of(const comm_options& o) {
  agoq::allreduce_config cfg; // INT8 wire, block 128, fp32 scales, nearest even
  cfg.op = o.average ? agoq::reduce_op::average : agoq::reduce_op::sum;
  cfg.algo = o.algo;
  cfg.chunk = o.chunk;
  return cfg;
}
agoq::grad_comm_config grad_config_of(const comm_options& o) {
  agoq::grad_comm_config c;
  c.op = o.average ? agoq::reduce_op::average : agoq::reduce_op::sum;
  c.algo = o.algo;
  c.chunk = o.chunk;
  return c;
}
} // namespace

bool has_nccl() { return true; }

std::string nccl_unique_id() {
  ncclUniqueId id;
  AGOQ_NCCL_TRY(ncclGetUniqueId(&id));
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

std::uintptr_t nccl_comm_init(int world, int rank, const std::string& id, int device) {
  ncclUniqueId uid;
  if (id.size() != sizeof uid)
    throw agoq::invalid_argument("agoq_torch: the NCCL unique id must be " +
                                 std::to_string(sizeof uid) + " bytes (got " +
                                 std::to_string(id.size()) + ")");
  std::memcpy(&uid, id.data(), sizeof uid);
  int prev = -1;
  AGOQ_CUDA_TRY(cudaGetDevice(&prev));
  AGOQ_CUDA_TRY(cudaSetDevice(device));
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRank(&comm, world, uid, rank);
  (void)cudaSetDevice(prev);
  if (r != ncclSuccess)
    agoq::detail::throw_nccl_error(r, "ncclCommInitRank", __FILE__, __LINE__);
  return reinterpret_cast<std::uintptr_t>(comm);
}

void nccl_comm_destroy(std::uintptr_t comm) {
  if (comm == 0) return;
  agoq::release_comm_streams(agoq::comm_ref(as_comm(comm)));
  AGOQ_NCCL_TRY(ncclCommDestroy(as_comm(comm)));
}

int nccl_comm_size(std::uintptr_t comm) { return agoq::comm_ref(as_comm(comm)).size(); }

std::size_t allreduce_workspace_size(dtype_code t, std::int64_t count, const comm_options& o,
                                     std::uintptr_t comm) {
  std::size_t n = 0;
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    n = agoq::allreduce_workspace_size<T>(count, config_of(o), agoq::comm_ref(as_comm(comm)));
  });
  return n;
}

void allreduce(dtype_code t, const void* send, void* recv, std::int64_t count,
               const comm_options& o, void* workspace, std::size_t workspace_bytes,
               std::uintptr_t comm, cudaStream_t stream) {
  with_type(t, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    AGOQ_TRY(agoq::allreduce(static_cast<const T*>(send), static_cast<T*>(recv), count,
                             config_of(o), workspace, workspace_bytes,
                             agoq::comm_ref(as_comm(comm)), stream));
  });
}

std::size_t grad_allreduce_workspace_size(std::int64_t params, const agoq::quant_spec& spec,
                                          std::int64_t bucket_elems, std::int64_t bucket,
                                          const comm_options& o, std::uintptr_t comm) {
  // the size query needs no memory: the collective's size function with the bucket's size
  const agoq::grad_layout l{params, spec, bucket_elems};
  if (const char* m = l.check_bucket(bucket))
    throw agoq::invalid_argument(std::string("agoq_torch.grad_allreduce_workspace_size: ") + m);
  return agoq::grad_allreduce_workspace_size(l.bucket_size(bucket), spec, grad_config_of(o),
                                             agoq::comm_ref(as_comm(comm)).size());
}

void grad_allreduce(void* mem, std::size_t bytes, std::int64_t params,
                    const agoq::quant_spec& spec, std::int64_t bucket_elems, std::int64_t bucket,
                    const comm_options& o, void* workspace, std::size_t workspace_bytes,
                    std::uintptr_t comm, cudaStream_t stream) {
  agoq::grad_buffer g(params, spec, bucket_elems, mem, bytes); // a view: no allocation
  AGOQ_TRY(g.allreduce(bucket, grad_config_of(o), workspace, workspace_bytes,
                       agoq::comm_ref(as_comm(comm)), stream));
}

#else // no NCCL in this build

namespace {
[[noreturn]] void no_nccl() {
  throw agoq::error("agoq_torch: this build of the extension has no NCCL (configure with "
                    "AGOQ_TORCH_NCCL=ON where nccl.h and libnccl are found)");
}
} // namespace
bool has_nccl() { return false; }
std::string nccl_unique_id() { no_nccl(); }
std::uintptr_t nccl_comm_init(int, int, const std::string&, int) { no_nccl(); }
void nccl_comm_destroy(std::uintptr_t) { no_nccl(); }
int nccl_comm_size(std::uintptr_t) { no_nccl(); }
std::size_t allreduce_workspace_size(dtype_code, std::int64_t, const comm_options&,
                                     std::uintptr_t) {
  no_nccl();
}
void allreduce(dtype_code, const void*, void*, std::int64_t, const comm_options&, void*,
               std::size_t, std::uintptr_t, cudaStream_t) {
  no_nccl();
}
std::size_t grad_allreduce_workspace_size(std::int64_t, const agoq::quant_spec&, std::int64_t,
                                          std::int64_t, const comm_options&, std::uintptr_t) {
  no_nccl();
}
void grad_allreduce(void*, std::size_t, std::int64_t, const agoq::quant_spec&, std::int64_t,
                    std::int64_t, const comm_options&, void*, std::size_t, std::uintptr_t,
                    cudaStream_t) {
  no_nccl();
}

#endif

} // namespace cuda
} // namespace agoq_torch

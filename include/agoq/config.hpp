// SPDX-License-Identifier: Apache-2.0
//! @file config.hpp
//! Execution-space and feature macros. Everything here compiles under plain g++ and nvcc.
#pragma once

#if defined(__CUDACC__)
#define AGOQ_HOST_DEVICE __host__ __device__ __forceinline__
#define AGOQ_DEVICE __device__ __forceinline__
#define AGOQ_HOST __host__ inline
#else
#define AGOQ_HOST_DEVICE inline
#define AGOQ_DEVICE inline
#define AGOQ_HOST inline
#endif

//! Function-like feature macros: a typo fails to compile instead of silently reading 0.
#if defined(__CUDACC__)
#define AGOQ_HAS_CUDA() 1
#else
#define AGOQ_HAS_CUDA() 0
#endif

//! AGOQ_HAS_NCCL(): 1 when the collectives (comm/, the gradient buffer's all-reduce) are compiled.
//! It follows AGOQ_WITH_NCCL, which linking the CMake target `agoq::comm` defines as 1; code that
//! links only `agoq::agoq` gets 0 and never parses <nccl.h>, even where the CUDA toolkit ships one
//! (CUDA 13 does). Without CMake, define it yourself: `-DAGOQ_WITH_NCCL=1` compiles the collectives
//! (<nccl.h> on the include path, libnccl linked); undefined or 0 leaves them out. Give every
//! translation unit of one program the same value (what links `agoq::comm` links it whole).
#if defined(AGOQ_WITH_NCCL) && (AGOQ_WITH_NCCL + 0)
#define AGOQ_HAS_NCCL() 1
#else
#define AGOQ_HAS_NCCL() 0
#endif

//! True inside device code (the __CUDA_ARCH__ pass of nvcc); use only inside function bodies.
#if defined(__CUDA_ARCH__)
#define AGOQ_IS_DEVICE_CODE() 1
#else
#define AGOQ_IS_DEVICE_CODE() 0
#endif

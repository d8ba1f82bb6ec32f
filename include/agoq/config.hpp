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

#if defined(__has_include)
#if __has_include(<nccl.h>)
#define AGOQ_HAS_NCCL() 1
#else
#define AGOQ_HAS_NCCL() 0
#endif
#else
#define AGOQ_HAS_NCCL() 0
#endif

//! True inside device code (the __CUDA_ARCH__ pass of nvcc); use only inside function bodies.
#if defined(__CUDA_ARCH__)
#define AGOQ_IS_DEVICE_CODE() 1
#else
#define AGOQ_IS_DEVICE_CODE() 0
#endif

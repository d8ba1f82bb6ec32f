// SPDX-License-Identifier: Apache-2.0
// CUDA part of the consumer: includes the full library and calls a launcher when a GPU exists.
#include <agoq/agoq.cuh>

#include <cstdio>

int run_on_gpu_if_present() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no GPU: kernel part compiled, not run\n");
    return 0;
  }
  const std::int64_t n = 1000;
  const agoq::quant_spec spec{agoq::format::int8, 128};
  float* x = nullptr;
  unsigned char* buf = nullptr;
  const size_t cb = agoq::codes_bytes(spec, n), sb = agoq::scales_bytes(spec, n);
  AGOQ_CUDA_TRY(cudaMalloc(&x, n * sizeof(float)));
  AGOQ_CUDA_TRY(cudaMalloc(&buf, cb + sb));
  AGOQ_CUDA_TRY(cudaMemset(x, 0, n * sizeof(float)));
  agoq::quantized_view q{buf, buf + cb, nullptr, 1, n, spec};
  AGOQ_TRY(agoq::quantize(x, q, 0, cudaStream_t{}));
  AGOQ_CUDA_TRY(cudaDeviceSynchronize());
  AGOQ_CUDA_TRY(cudaFree(x));
  AGOQ_CUDA_TRY(cudaFree(buf));
  std::printf("GPU quantize ok\n");
  return 0;
}

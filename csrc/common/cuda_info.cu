// CUDA runtime queries for deepscope.info() (CUDA builds).
// SPDX-License-Identifier: MIT
#include <cuda_runtime.h>

#include "common/cuda_info.h"
#include "common/cuda_utils.cuh"

namespace deepscope {

CudaStatus cuda_status() {
  CudaStatus status;
  status.compiled = true;
#ifdef DEEPSCOPE_CUDA_ARCHS
  status.architectures = DEEPSCOPE_CUDA_ARCHS;
#endif
  cudaRuntimeGetVersion(&status.runtime_version);
  if (cudaDriverGetVersion(&status.driver_version) != cudaSuccess) {
    status.driver_version = 0;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    status.device_count = 0;
    status.error = std::string(cudaGetErrorName(err)) + ": " +
                   cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error state
  } else {
    status.device_count = count;
  }
  return status;
}

std::string cuda_device_name(int index) {
  cudaDeviceProp prop;
  DS_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

}  // namespace deepscope

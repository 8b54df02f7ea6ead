// deepscope.info() facts for builds without CUDA.
// SPDX-License-Identifier: MIT
#include "common/cuda_info.h"

#include "common/check.h"

#ifndef DEEPSCOPE_WITH_CUDA
namespace deepscope {

CudaStatus cuda_status() {
  CudaStatus status;
  status.error = "deepscope was built without CUDA";
  return status;
}

std::string cuda_device_name(int) { throw_no_cuda(); }

}  // namespace deepscope
#endif

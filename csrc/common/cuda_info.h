// Runtime facts about CUDA: compiled architectures and usable devices.
// SPDX-License-Identifier: MIT
#pragma once

#include <string>

namespace deepscope {

struct CudaStatus {
  bool compiled = false;       // CUDA kernels are in this build
  std::string architectures;   // e.g. "80-real;90"; empty without CUDA
  int runtime_version = 0;     // CUDA runtime the module links, e.g. 13000
  int driver_version = 0;      // 0 when no driver is installed
  int device_count = 0;        // usable devices right now
  std::string error;           // why device_count is 0, if it is
};

// Never throws: a machine without a driver or GPU reports device_count = 0
// with the reason in `error`.
CudaStatus cuda_status();

std::string cuda_device_name(int index);

}  // namespace deepscope

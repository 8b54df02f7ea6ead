// CUDA error checks, device guard and launch helpers (CUDA sources only).
// SPDX-License-Identifier: MIT
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>

#include "common/check.h"

// Throws std::runtime_error with file, line and the CUDA error string.
#define DS_CUDA_CHECK(expr)                                                    \
  do {                                                                         \
    cudaError_t ds_err_ = (expr);                                              \
    if (ds_err_ != cudaSuccess) {                                              \
      std::ostringstream ds_os_;                                               \
      ds_os_ << "CUDA error " << cudaGetErrorName(ds_err_) << " ("             \
             << cudaGetErrorString(ds_err_) << ") at " << __FILE__ << ":"      \
             << __LINE__;                                                      \
      throw std::runtime_error(ds_os_.str());                                  \
    }                                                                          \
  } while (0)

// Checks the last kernel launch. With DEEPSCOPE_CUDA_SYNC_CHECK defined, also
// synchronises the stream so asynchronous faults surface at their launch.
#ifdef DEEPSCOPE_CUDA_SYNC_CHECK
#define DS_CUDA_CHECK_LAUNCH(stream)                                           \
  do {                                                                         \
    DS_CUDA_CHECK(cudaGetLastError());                                         \
    DS_CUDA_CHECK(cudaStreamSynchronize(stream));                              \
  } while (0)
#else
#define DS_CUDA_CHECK_LAUNCH(stream) DS_CUDA_CHECK(cudaGetLastError())
#endif

namespace deepscope {

// Makes `index` the current device for the guard's lifetime.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int index) {
    DS_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index) DS_CUDA_CHECK(cudaSetDevice(index));
  }
  ~CudaDeviceGuard() {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current != previous_) {
      cudaSetDevice(previous_);
    }
  }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t as_stream(const Device& device) {
  return reinterpret_cast<cudaStream_t>(device.stream);
}

inline unsigned int ceil_div(std::int64_t a, std::int64_t b) {
  return static_cast<unsigned int>((a + b - 1) / b);
}

}  // namespace deepscope

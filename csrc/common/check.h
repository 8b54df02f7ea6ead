// Argument checks shared by every kernel; failures become Python ValueError.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

// Throws std::invalid_argument (ValueError in Python) built from a stream
// expression, e.g. DS_CHECK_ARG(k > 0, "k must be positive, got " << k).
#define DS_CHECK_ARG(cond, msg)                                                \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::ostringstream ds_os_;                                               \
      ds_os_ << msg;                                                           \
      throw std::invalid_argument(ds_os_.str());                               \
    }                                                                          \
  } while (0)

namespace deepscope {

// Where a kernel runs: index < 0 is the CPU, otherwise a CUDA device index.
// `stream` is the caller's cudaStream_t as an integer (0 = legacy default).
struct Device {
  int index = -1;
  std::uintptr_t stream = 0;
  bool is_cpu() const { return index < 0; }
};

[[noreturn]] inline void throw_no_cuda() {
  throw std::runtime_error(
      "deepscope was built without CUDA; pass CPU arrays or rebuild with "
      "nvcc available (DEEPSCOPE_CUDA=ON)");
}

}  // namespace deepscope

// Calls the CPU or the CUDA implementation according to `device`. In a build
// without CUDA, GPU arrays raise a clear "built without CUDA" error.
#ifdef DEEPSCOPE_WITH_CUDA
#define DS_DISPATCH_DEVICE(device, cpu_call, cuda_call)                        \
  do {                                                                         \
    if ((device).is_cpu()) {                                                   \
      cpu_call;                                                                \
    } else {                                                                   \
      cuda_call;                                                               \
    }                                                                          \
  } while (0)
#else
#define DS_DISPATCH_DEVICE(device, cpu_call, cuda_call)                        \
  do {                                                                         \
    if ((device).is_cpu()) {                                                   \
      cpu_call;                                                                \
    } else {                                                                   \
      ::deepscope::throw_no_cuda();                                            \
    }                                                                          \
  } while (0)
#endif

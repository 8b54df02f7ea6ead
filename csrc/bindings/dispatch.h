// Helpers for the binding files: dtype dispatch and raw-pointer arguments.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/check.h"

namespace deepscope {

// Pointers cross from Python as integers (data_ptr / ctypes.data).
template <typename T>
inline T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

}  // namespace deepscope

// Runs the body with `scalar_t` bound to float or double from a dtype name.
#define DS_DISPATCH_FLOATING(dtype, ...)                                       \
  [&] {                                                                        \
    if ((dtype) == "float32") {                                                \
      using scalar_t = float;                                                  \
      return __VA_ARGS__();                                                    \
    } else if ((dtype) == "float64") {                                         \
      using scalar_t = double;                                                 \
      return __VA_ARGS__();                                                    \
    }                                                                          \
    throw std::invalid_argument("unsupported dtype '" + std::string(dtype) +  \
                                "'; expected float32 or float64");             \
  }()

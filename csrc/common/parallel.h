// OpenMP helpers: thread counts that also work in builds without OpenMP.
// SPDX-License-Identifier: MIT
#pragma once

#ifdef DEEPSCOPE_WITH_OPENMP
#include <omp.h>
#endif

namespace deepscope {

inline int max_threads() {
#ifdef DEEPSCOPE_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef DEEPSCOPE_WITH_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace deepscope

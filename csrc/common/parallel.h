// OpenMP helpers: thread counts that also work in builds without OpenMP.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#ifdef DEEPSCOPE_WITH_OPENMP
#include <omp.h>
#endif

namespace deepscope {

// Work, in element operations (one point coordinate, feature or index
// visited by the inner loop), below which a parallel region runs on the
// calling thread alone. Waking a thread team costs microseconds on an idle
// machine and, with GNU OpenMP's spinning waits, up to a scheduler time
// slice on a busy one; small calls are faster serial. Every kernel gives the
// same result whatever the number of threads, so the switch changes speed
// only.
constexpr std::int64_t kParallelMinWork = std::int64_t{1} << 15;

// Whether a region with `work` element operations should use the team.
inline bool parallel_worth(std::int64_t work) {
  return work >= kParallelMinWork;
}

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

// CPU conformity epilogue: fused float64 row and column sums (OpenMP).
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "embedding/tile_sums.h"

namespace deepscope {

template <typename T>
void tile_sums_cpu(const T* tile, std::int64_t H, std::int64_t W,
                   double* row_sums, double* col_sums) {
  if (H <= 0 || W <= 0) return;
  const int threads = static_cast<int>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(max_threads(), H)));
  // One column accumulator per thread, merged in thread order afterwards.
  std::vector<double> partial(col_sums ? static_cast<std::size_t>(threads) * W
                                       : 0);

#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    double* cols = col_sums ? partial.data() + t * W : nullptr;
    const std::int64_t lo = H * t / threads, hi = H * (t + 1) / threads;
    for (std::int64_t i = lo; i < hi; ++i) {
      const T* row = tile + i * W;

      // Row sum in four interleaved lanes (vectorisable, fixed order).
      double lane[4] = {0.0, 0.0, 0.0, 0.0};
      std::int64_t j = 0;
      for (; j + 4 <= W; j += 4) {
        lane[0] += static_cast<double>(row[j]);
        lane[1] += static_cast<double>(row[j + 1]);
        lane[2] += static_cast<double>(row[j + 2]);
        lane[3] += static_cast<double>(row[j + 3]);
      }
      double tail = 0.0;
      for (; j < W; ++j) tail += static_cast<double>(row[j]);
      row_sums[i] += ((lane[0] + lane[1]) + (lane[2] + lane[3])) + tail;

      // Column sums of the same row while it is in cache.
      if (cols) {
        for (std::int64_t k = 0; k < W; ++k) {
          cols[k] += static_cast<double>(row[k]);
        }
      }
    }
  }

  // Merge the per-thread column sums in thread order.
  if (col_sums) {
    for (int t = 0; t < threads; ++t) {
      const double* cols = partial.data() + static_cast<std::size_t>(t) * W;
      for (std::int64_t k = 0; k < W; ++k) col_sums[k] += cols[k];
    }
  }
}

template void tile_sums_cpu<float>(const float*, std::int64_t, std::int64_t,
                                   double*, double*);
template void tile_sums_cpu<double>(const double*, std::int64_t, std::int64_t,
                                    double*, double*);

}  // namespace deepscope

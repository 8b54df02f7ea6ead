// CPU (OpenMP) fused top-k selection and exact re-ranking.
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "graph/knn_select.h"
#include "graph/knn_select_impl.h"

namespace deepscope {

using knn_select_detail::pool_insert;
using knn_select_detail::rerank_row;

namespace {

constexpr std::int64_t kChunk = 256;

// update_row with the distances of a chunk formed first (a vectorisable
// loop), then a scan that rejects most candidates by one comparison.
template <typename T>
void update_row_chunked(const T* gram, std::int64_t row, const TopkBlock& b,
                        double row_norm, const T* col_norms,
                        std::int64_t* idx, double* d2) {
  const T* g = gram + row * b.row_stride;
  const std::int64_t self =
      b.exclude_self ? b.row_offset + row - b.col_offset : -1;
  double chunk[kChunk];
  double worst = d2[b.pool - 1];
  for (std::int64_t j0 = 0; j0 < b.cols; j0 += kChunk) {
    const std::int64_t len = std::min(kChunk, b.cols - j0);
    if (b.col_stride == 1) {
      for (std::int64_t t = 0; t < len; ++t) {
        chunk[t] = (row_norm + static_cast<double>(col_norms[j0 + t])) -
                   2.0 * static_cast<double>(g[j0 + t]);
      }
    } else {
      for (std::int64_t t = 0; t < len; ++t) {
        chunk[t] = (row_norm + static_cast<double>(col_norms[j0 + t])) -
                   2.0 * static_cast<double>(g[(j0 + t) * b.col_stride]);
      }
    }
    for (std::int64_t t = 0; t < len; ++t) {
      if (chunk[t] > worst || j0 + t == self) continue;
      pool_insert(idx, d2, b.pool, chunk[t], b.col_offset + j0 + t);
      worst = d2[b.pool - 1];
    }
  }
}

// The same merge for a transposed block (row_stride == 1): each thread owns
// a chunk of rows and sweeps the columns, reading each column's contiguous
// segment of the chunk, so no transposed copy of the block is needed.
template <typename T>
void update_rows_transposed(const T* gram, std::int64_t r0, std::int64_t r1,
                            const TopkBlock& b, const T* row_norms,
                            const T* col_norms, std::int64_t* pool_idx,
                            double* pool_d2) {
  double worst[kChunk];
  double rn[kChunk];
  double d[kChunk];
  const std::int64_t len = r1 - r0;
  for (std::int64_t t = 0; t < len; ++t) {
    worst[t] = pool_d2[(r0 + t) * b.pool + b.pool - 1];
    rn[t] = static_cast<double>(row_norms[r0 + t]);
  }
  for (std::int64_t j = 0; j < b.cols; ++j) {
    const T* g = gram + j * b.col_stride + r0;
    const double cn = static_cast<double>(col_norms[j]);
    for (std::int64_t t = 0; t < len; ++t) {
      d[t] = (rn[t] + cn) - 2.0 * static_cast<double>(g[t]);
    }
    const std::int64_t global = b.col_offset + j;
    for (std::int64_t t = 0; t < len; ++t) {
      if (d[t] > worst[t]) continue;
      const std::int64_t row = r0 + t;
      if (b.exclude_self && b.row_offset + row == global) continue;
      std::int64_t* idx = pool_idx + row * b.pool;
      double* dd = pool_d2 + row * b.pool;
      pool_insert(idx, dd, b.pool, d[t], global);
      worst[t] = dd[b.pool - 1];
    }
  }
}

}  // namespace

template <typename T>
void topk_block_update_cpu(const TopkBlock& b, const T* gram,
                           const T* row_norms, const T* col_norms,
                           std::int64_t* pool_idx, double* pool_d2) {
  DS_CHECK_ARG(b.pool >= 1, "pool: expected >= 1, got " << b.pool);

  // Transposed blocks: chunks of rows sweep the columns.
  if (b.row_stride == 1 && b.col_stride != 1) {
    const std::int64_t chunks = (b.rows + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (parallel_worth(b.rows * b.cols))
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t r0 = c * kChunk;
      update_rows_transposed(gram, r0, std::min(b.rows, r0 + kChunk), b,
                             row_norms, col_norms, pool_idx, pool_d2);
    }
    return;
  }

  // One row per iteration; rows own disjoint pools.
#pragma omp parallel for schedule(static) if (parallel_worth(b.rows * b.cols))
  for (std::int64_t i = 0; i < b.rows; ++i) {
    update_row_chunked(gram, i, b, static_cast<double>(row_norms[i]),
                       col_norms, pool_idx + i * b.pool,
                       pool_d2 + i * b.pool);
  }
}

template <typename T>
void rerank_pool_cpu(const RerankArgs& a, const T* query, const T* reference,
                     const std::int64_t* pool_idx, const double* pool_d2,
                     const double* slack, std::int64_t* indices, double* d2,
                     std::int64_t* certified) {
  DS_CHECK_ARG(a.k >= 1 && a.k <= a.pool,
               "k: expected 1 <= k <= pool (" << a.pool << "), got " << a.k);

  // Exact distances per row with per-thread scratch pools.
#pragma omp parallel if (parallel_worth(a.num_query * a.pool * a.dim))
  {
    std::vector<std::int64_t> scratch_idx(a.pool);
    std::vector<double> scratch_d2(a.pool);
#pragma omp for schedule(dynamic, 64)
    for (std::int64_t m = 0; m < a.num_query; ++m) {
      certified[m] = rerank_row(
          query + m * a.dim, reference, a.dim, pool_idx + m * a.pool,
          pool_d2 + m * a.pool, slack[m], a.pool, a.k, scratch_idx.data(),
          scratch_d2.data(), indices + m * a.k, d2 + m * a.k);
    }
  }
}

#define DS_INSTANTIATE(T)                                                      \
  template void topk_block_update_cpu<T>(const TopkBlock&, const T*,           \
                                         const T*, const T*, std::int64_t*,    \
                                         double*);                             \
  template void rerank_pool_cpu<T>(const RerankArgs&, const T*, const T*,      \
                                   const std::int64_t*, const double*,         \
                                   const double*, std::int64_t*, double*,      \
                                   std::int64_t*);
DS_INSTANTIATE(float)
DS_INSTANTIATE(double)
#undef DS_INSTANTIATE

}  // namespace deepscope

// Shared host/device row routines of the fused top-k selection.
// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define DS_HD __host__ __device__ inline
#else
#define DS_HD inline
#endif

namespace deepscope {
namespace knn_select_detail {

// (d, j) precedes (e, k) in the (distance, index) order; -1 sorts last.
DS_HD bool precedes(double d, std::int64_t j, double e, std::int64_t k) {
  if (k < 0) return j >= 0;
  if (j < 0) return false;
  return d < e || (d == e && j < k);
}

// Inserts (d, j) into the ascending pool if it belongs there.
DS_HD void pool_insert(std::int64_t* idx, double* d2, std::int64_t pool,
                       double d, std::int64_t j) {
  if (!precedes(d, j, d2[pool - 1], idx[pool - 1])) return;
  std::int64_t p = pool - 1;
  while (p > 0 && precedes(d, j, d2[p - 1], idx[p - 1])) {
    idx[p] = idx[p - 1];
    d2[p] = d2[p - 1];
    --p;
  }
  idx[p] = j;
  d2[p] = d;
}

// Scans one row of a Gram block into that row's pool. Candidates beyond the
// pool's current worst distance are rejected with a single comparison.
template <typename T>
DS_HD void update_row(const T* gram, std::int64_t row, std::int64_t cols,
                      std::int64_t row_stride, std::int64_t col_stride,
                      std::int64_t row_offset, std::int64_t col_offset,
                      bool exclude_self, double row_norm, const T* col_norms,
                      std::int64_t* idx, double* d2, std::int64_t pool) {
  const T* g = gram + row * row_stride;
  const std::int64_t self = exclude_self ? row_offset + row - col_offset : -1;
  double worst = d2[pool - 1];
  for (std::int64_t j = 0; j < cols; ++j) {
    const double d = (row_norm + static_cast<double>(col_norms[j])) -
                     2.0 * static_cast<double>(g[j * col_stride]);
    if (d > worst || j == self) continue;
    pool_insert(idx, d2, pool, d, col_offset + j);
    worst = d2[pool - 1];
  }
}

// Exact float64 squared distance, summed left to right over dimensions.
template <typename T>
DS_HD double exact_d2(const T* a, const T* b, std::int64_t dim) {
  double s = 0.0;
  for (std::int64_t c = 0; c < dim; ++c) {
    const double diff = static_cast<double>(a[c]) - static_cast<double>(b[c]);
    s += diff * diff;
  }
  return s;
}

// Re-ranks one row's pool exactly into (out_idx, out_d2) of length k, using
// scratch arrays of length pool; returns the certificate (1 or 0).
template <typename T>
DS_HD std::int64_t rerank_row(const T* q, const T* reference, std::int64_t dim,
                              const std::int64_t* cand, const double* approx,
                              double slack, std::int64_t pool, std::int64_t k,
                              std::int64_t* scratch_idx, double* scratch_d2,
                              std::int64_t* out_idx, double* out_d2) {
  // Exact distances of every candidate, kept sorted by (distance, index).
  for (std::int64_t p = 0; p < pool; ++p) {
    scratch_idx[p] = -1;
    scratch_d2[p] = static_cast<double>(INFINITY);
  }
  std::int64_t valid = 0;
  for (std::int64_t p = 0; p < pool; ++p) {
    const std::int64_t j = cand[p];
    if (j < 0) continue;
    ++valid;
    const double d = exact_d2(q, reference + j * dim, dim);
    pool_insert(scratch_idx, scratch_d2, pool, d, j);
  }

  // The k best, padded with -1 / +inf.
  for (std::int64_t c = 0; c < k; ++c) {
    out_idx[c] = c < valid ? scratch_idx[c] : -1;
    out_d2[c] = c < valid ? scratch_d2[c] : static_cast<double>(INFINITY);
  }

  // Certificate: the pool saw every point, or no outsider can beat the k-th.
  if (valid < pool) return 1;
  if (valid < k) return 0;
  return approx[pool - 1] - slack > scratch_d2[k - 1] ? 1 : 0;
}

}  // namespace knn_select_detail
}  // namespace deepscope

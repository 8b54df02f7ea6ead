// Fused top-k selection for blocked high-dimensional kNN (CPU and CUDA).
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/check.h"

namespace deepscope {

// Stage 1: merge one block of inner products into running candidate pools.
//
// The caller computes a Gram block G = Q_blk R_blk^T with BLAS / cuBLAS in
// the working dtype T (float32 or float64). Element (i, j) lives at
// gram[i * row_stride + j * col_stride], so either orientation of the GEMM
// output can be read without a copy.
//
// Inputs:
//   gram:      (rows, cols) block, strided as above
//   row_norms: (rows,) squared norms of the block's query rows, dtype T
//   col_norms: (cols,) squared norms of the block's reference rows, dtype T
// In/out (C-contiguous; initialise with +inf / -1 before the first block):
//   pool_idx:  (rows, pool) int64, global reference indices, -1 = empty
//   pool_d2:   (rows, pool) float64 approximate squared distances
//
// For each pair the approximate squared distance (qn + rn) - 2 g is formed
// in float64 from the T values. A pool keeps the `pool` smallest candidates
// ordered by (distance, index). With exclude_self, the pair whose global
// row index (row_offset + i) equals its global column index
// (col_offset + j) is skipped.
struct TopkBlock {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t row_stride = 0;
  std::int64_t col_stride = 0;
  std::int64_t row_offset = 0;
  std::int64_t col_offset = 0;
  std::int64_t pool = 0;
  bool exclude_self = false;
};

// Stage 2: exact float64 re-ranking of every pool plus a certificate.
//
// Inputs:
//   query:     (M, D) the original (uncentred) query points, dtype T
//   reference: (N, D) the original reference points, dtype T
//   pool_idx:  (M, pool) int64 candidates from stage 1 (-1 = empty)
//   pool_d2:   (M, pool) float64 approximate distances, ascending
//   slack:     (M,) float64 bound on |approximate - exact| squared distance
//              for every pair of row m (rounding of the GEMM pass)
// Outputs:
//   indices:   (M, K) int64 ascending by exact (distance, index), -1 padded
//   d2:        (M, K) float64 exact squared distances (+inf where missing)
//   certified: (M,) int64, 1 when the row is provably the exact kNN: either
//              the pool holds every reference point, or every point outside
//              the pool has true distance >= pool_d2[last] - slack, which is
//              strictly above the K-th exact distance. 0 rows must be redone
//              by an exact search.
// Exact distances are the left-to-right float64 sum of (q - p)^2 over D.
struct RerankArgs {
  std::int64_t num_query = 0;
  std::int64_t dim = 0;
  std::int64_t pool = 0;
  std::int64_t k = 0;
};

template <typename T>
void topk_block_update_cpu(const TopkBlock& b, const T* gram,
                           const T* row_norms, const T* col_norms,
                           std::int64_t* pool_idx, double* pool_d2);

template <typename T>
void rerank_pool_cpu(const RerankArgs& a, const T* query, const T* reference,
                     const std::int64_t* pool_idx, const double* pool_d2,
                     const double* slack, std::int64_t* indices, double* d2,
                     std::int64_t* certified);

// Stage 3 of the projected search: exact refinement over lower bounds.
//
// The Gram block G = E_q E_r^T is formed from embeddings whose squared
// distances lower-bound the exact ones up to the rounding `slack` of each
// row (see deepscope.graph._knn_graph). For each pair (i, j) of the block
// with (qn_i + rn_j) - 2 g_ij <= top_d2[i, k - 1] + slack[i], where top_d2
// is row i's current exact list, the exact float64 squared distance of the
// original points query[row_offset + i] and reference[col_offset + j] is
// computed and merged into that list, unless j is already in it. Every
// other pair is provably no closer than the list's k-th entry, so after all
// blocks the lists are the exact kNN, ordered by (distance, index).
//
// Inputs: gram / row_norms / col_norms as for stage 1 (b.pool is k here);
//   slack (rows,) float64 (NaN skips the row); query (M, dim) and
//   reference (N, dim) the original points, dtype T. row_ids / col_ids
//   (optional, may be null) map the block's global positions
//   (row_offset + i, col_offset + j) to the original point indices when the
//   embeddings were permuted; lists, ties and self-exclusion use the
//   original indices.
// In/out: top_idx (rows, k) int64 and top_d2 (rows, k) float64 of the
//   block's rows; checked (rows,) int64 counts the exact distances computed.
template <typename T>
void refine_block_cpu(const TopkBlock& b, std::int64_t dim, const T* gram,
                      const T* row_norms, const T* col_norms,
                      const double* slack, const T* query, const T* reference,
                      const std::int64_t* row_ids, const std::int64_t* col_ids,
                      std::int64_t* top_idx, double* top_d2,
                      std::int64_t* checked);

#ifdef DEEPSCOPE_WITH_CUDA
// The CUDA pools are limited to kMaxCudaPool candidates per row.
constexpr std::int64_t kMaxCudaPool = 128;

template <typename T>
void topk_block_update_cuda(const TopkBlock& b, const T* gram,
                            const T* row_norms, const T* col_norms,
                            std::int64_t* pool_idx, double* pool_d2,
                            const Device& device);

template <typename T>
void rerank_pool_cuda(const RerankArgs& a, const T* query, const T* reference,
                      const std::int64_t* pool_idx, const double* pool_d2,
                      const double* slack, std::int64_t* indices, double* d2,
                      std::int64_t* certified, const Device& device);
#endif

}  // namespace deepscope

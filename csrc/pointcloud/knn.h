// Exact k-nearest-neighbour and ball-query search (CPU and CUDA entry points).
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/check.h"

namespace deepscope {

// One neighbour search over padded batches; kNN and ball query share it.
//
// Inputs (C-contiguous):
//   query:             (B, M, D) float32 or float64
//   reference:         (B, N, D), same dtype; may equal `query` (self-query)
//   query_lengths:     (B,) int64 or nullptr (all M); rows m >= length are
//                      missing
//   reference_lengths: (B,) int64 or nullptr (all N); points j >= length are
//                      never neighbours
// Outputs:
//   indices:   (B, M, K) int64, ascending by (distance, index); -1 padded
//   distances: (B, M, K) same dtype as the inputs; +inf where missing
//   counts:    (B, M) int64, the number of valid neighbours per row
//
// Semantics: squared distances are computed in float64 as the left-to-right
// sum over dimensions of (q - p)^2. A point is a candidate when its squared
// distance is <= max_d2 (inclusive; +inf for plain kNN). The K best
// candidates by (distance, index) are returned, so ties go to the lowest
// index. With exclude_self (self-query only) the point with the query's own
// index is skipped. With squared == false the float64 square root is
// returned. CPU and CUDA results are bit-identical.
//
// CPU: one kd-tree per cloud (median splits, leaf buckets of <= 32 points
// stored contiguously in float64), OpenMP over queries. CUDA: tiled brute
// force, O(M N D) per cloud; one reference point must fit in shared memory
// (D up to about 28,000 on sm_90).
struct NeighborSearch {
  std::int64_t batch = 0;       // B
  std::int64_t num_query = 0;   // M
  std::int64_t num_ref = 0;     // N
  std::int64_t dim = 0;         // D
  std::int64_t k = 0;           // K
  double max_d2 = 0.0;          // inclusive bound on squared distance
  bool self_query = false;      // reference is query, lengths shared
  bool exclude_self = false;    // skip j == m (self-query only)
  bool squared = true;          // false: return sqrt of squared distances
};

template <typename T>
void neighbor_search_cpu(const NeighborSearch& s, const T* query,
                         const T* reference, const std::int64_t* query_lengths,
                         const std::int64_t* reference_lengths,
                         std::int64_t* indices, T* distances,
                         std::int64_t* counts);

#ifdef DEEPSCOPE_WITH_CUDA
template <typename T>
void neighbor_search_cuda(const NeighborSearch& s, const T* query,
                          const T* reference,
                          const std::int64_t* query_lengths,
                          const std::int64_t* reference_lengths,
                          std::int64_t* indices, T* distances,
                          std::int64_t* counts, const Device& device);
#endif

}  // namespace deepscope

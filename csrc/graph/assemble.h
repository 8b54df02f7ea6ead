// Sparse (CSR) assembly of kNN affinity graphs and graph Laplacians (CPU).
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/check.h"

namespace deepscope {

// Edge weight of the directed kNN edge i -> j with squared distance d2.
enum class EdgeWeight : int {
  kConnectivity = 0,  // 1
  kDistance = 1,      // sqrt(d2)
  kOneSided = 2,      // exp(-scale d2 / sigma_i^2)
  kSymmetric = 3,     // exp(-scale d2 / (sigma_i sigma_j))
};

// How the directed weights a = w(i->j), b = w(j->i) become one edge.
enum class Symmetrize : int {
  kMean = 0,  // (a + b) / 2, a missing direction counting as 0
  kMax = 1,   // max of the present directions
  kMin = 2,   // min, only when both directions exist (mutual kNN)
  kNone = 3,  // keep the directed graph: row i holds i's own neighbours
};

// Affinity assembly from a kNN list.
//
// Inputs (C-contiguous):
//   indices: (N, K) int64 neighbour lists (self excluded), -1 = missing
//   d2:      (N, K) float64 squared distances, ascending per row
// Outputs:
//   sigma:   (N,) float64 per-point scale. For the Gaussian forms
//            sigma_i = sqrt(d2[i, sigma_col]); when that is 0 or missing it
//            is floored to the nearest non-zero neighbour distance of i,
//            and if i has none, to `sigma_floor` (> 0). With
//            `global_sigma` > 0 every sigma_i equals it.
//   indptr:  (N + 1,) int64
//   cols:    (2 N K,) int64 capacity; the first nnz entries are used
//   vals:    (2 N K,) T capacity
// Returns nnz. Rows are sorted by column, have no duplicates and no
// diagonal, and edges whose weight is exactly 0 are dropped.
struct GraphAssembly {
  std::int64_t n = 0;
  std::int64_t k = 0;
  EdgeWeight weight = EdgeWeight::kOneSided;
  Symmetrize symmetrize = Symmetrize::kMean;
  std::int64_t sigma_col = 0;
  double scale = 1.0;
  double global_sigma = 0.0;
  double sigma_floor = 1.0;
};

template <typename T>
std::int64_t assemble_knn_graph_cpu(const GraphAssembly& g,
                                    const std::int64_t* indices,
                                    const double* d2, double* sigma,
                                    std::int64_t* indptr, std::int64_t* cols,
                                    T* vals);

// Laplacian of a CSR affinity W with sorted rows and non-negative weights.
enum class LaplacianKind : int {
  kCombinatorial = 0,  // D - W
  kSymmetric = 1,      // I - D^-1/2 W D^-1/2
  kRandomWalk = 2,     // I - D^-1 W
};

// Inputs: indptr (N + 1,), cols (nnz,), vals (nnz,) T. Diagonal entries of
// W (self loops) are ignored. Degrees are float64 row sums without them.
// Outputs: degrees (N,) float64; out_indptr (N + 1,), out_cols and
// out_vals with capacity nnz + N; returns the output nnz. Every row gets a
// diagonal entry in column order: d_i (combinatorial) or 1 (normalised; 0
// for an isolated point, as scipy.sparse.csgraph.laplacian does).
template <typename T>
std::int64_t assemble_laplacian_cpu(std::int64_t n, LaplacianKind kind,
                                    const std::int64_t* indptr,
                                    const std::int64_t* cols, const T* vals,
                                    double* degrees, std::int64_t* out_indptr,
                                    std::int64_t* out_cols, T* out_vals);

#ifdef DEEPSCOPE_WITH_CUDA
// CUDA versions of both assemblies: every pointer is device memory on
// `device`, the semantics and the output bits are those of the CPU
// functions (same weight formulas, same summation orders, sorted rows).
// The kNN lists must hold valid indices (< N) or -1, each column at most
// once per row; the returned nnz is copied to the host (one stream sync).
template <typename T>
std::int64_t assemble_knn_graph_cuda(const GraphAssembly& g,
                                     const std::int64_t* indices,
                                     const double* d2, double* sigma,
                                     std::int64_t* indptr, std::int64_t* cols,
                                     T* vals, const Device& device);

template <typename T>
std::int64_t assemble_laplacian_cuda(std::int64_t n, LaplacianKind kind,
                                     const std::int64_t* indptr,
                                     const std::int64_t* cols, const T* vals,
                                     double* degrees, std::int64_t* out_indptr,
                                     std::int64_t* out_cols, T* out_vals,
                                     const Device& device);
#endif

}  // namespace deepscope

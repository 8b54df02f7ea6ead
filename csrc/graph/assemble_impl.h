// Shared host/device routines of the CSR graph assembly (weights, merging).
// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>

#include "graph/assemble.h"

#ifdef __CUDACC__
#define DS_AHD __host__ __device__ inline
#else
#define DS_AHD inline
#endif

namespace deepscope {
namespace assemble_detail {

// exp(x) from IEEE +, -, *, floor and ldexp only, so that host and device
// give the same bits (the libraries' exp may differ in the last place).
// Cody-Waite reduction x = k ln2 + r, |r| <= ln2 / 2, then a degree-13
// Taylor polynomial (truncation below 1e-17 relative); about 1 ulp.
DS_AHD double det_exp(double x) {
  if (x != x) return x;
  if (x < -745.5) return 0.0;
  if (x > 709.78) return static_cast<double>(INFINITY);
  const double kf = floor(x * 1.4426950408889634 + 0.5);
  const double hi = x - kf * 6.93147180369123816490e-01;
  const double r = hi - kf * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return ldexp(p, static_cast<int>(kf));
}

// Per-point scale sigma_i (see GraphAssembly).
DS_AHD double point_sigma(const GraphAssembly& g, const std::int64_t* idx,
                          const double* d2) {
  if (g.global_sigma > 0.0) return g.global_sigma;
  const std::int64_t c = g.sigma_col < g.k - 1 ? g.sigma_col : g.k - 1;
  if (idx[c] >= 0 && d2[c] > 0.0) return sqrt(d2[c]);
  for (std::int64_t j = 0; j < g.k; ++j) {
    if (idx[j] >= 0 && d2[j] > 0.0) return sqrt(d2[j]);
  }
  return g.sigma_floor;
}

// Weight of the directed edge i -> j.
DS_AHD double edge_weight(const GraphAssembly& g, double d2, double si,
                          double sj) {
  switch (g.weight) {
    case EdgeWeight::kConnectivity:
      return 1.0;
    case EdgeWeight::kDistance:
      return sqrt(d2);
    case EdgeWeight::kOneSided:
      return det_exp(-g.scale * d2 / (si * si));
    case EdgeWeight::kSymmetric:
      return det_exp(-g.scale * d2 / (si * sj));
  }
  return 0.0;
}

// Combines the two directions of one undirected edge; false = no edge.
DS_AHD bool combine(Symmetrize mode, bool has_a, double a, bool has_b,
                    double b, double* out) {
  switch (mode) {
    case Symmetrize::kMean:
      *out = 0.5 * ((has_a ? a : 0.0) + (has_b ? b : 0.0));
      return true;
    case Symmetrize::kMax:
      *out = has_a && has_b ? (a > b ? a : b) : (has_a ? a : b);
      return true;
    case Symmetrize::kMin:
      *out = a < b ? a : b;
      return has_a && has_b;
    case Symmetrize::kNone:
      *out = a;
      return has_a;
  }
  return false;
}

// Degree of row i (off-diagonal values summed in column order, self loops
// skipped) and the size of its Laplacian row (off-diagonal entries + 1).
template <typename T>
DS_AHD void row_degree(std::int64_t i, const std::int64_t* indptr,
                       const std::int64_t* cols, const T* vals, double* degree,
                       std::int64_t* size) {
  double d = 0.0;
  std::int64_t s = 1;
  for (std::int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
    if (cols[p] == i) continue;
    d += static_cast<double>(vals[p]);
    ++s;
  }
  *degree = d;
  *size = s;
}

// Off-diagonal Laplacian entry for the edge weight w between i and j.
DS_AHD double laplacian_entry(LaplacianKind kind, double w, double di,
                              double dj) {
  if (kind == LaplacianKind::kSymmetric) return -w / (sqrt(di) * sqrt(dj));
  if (kind == LaplacianKind::kRandomWalk) return -w / di;
  return -w;
}

// Diagonal Laplacian entry of a point with degree di.
DS_AHD double laplacian_diagonal(LaplacianKind kind, double di) {
  if (kind == LaplacianKind::kCombinatorial) return di;
  return di > 0.0 ? 1.0 : 0.0;
}

}  // namespace assemble_detail
}  // namespace deepscope

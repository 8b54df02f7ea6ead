// CPU (OpenMP) assembly of kNN affinity graphs and Laplacians in CSR.
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "graph/assemble.h"
#include "graph/assemble_impl.h"

namespace deepscope {

using assemble_detail::combine;
using assemble_detail::edge_weight;
using assemble_detail::laplacian_diagonal;
using assemble_detail::laplacian_entry;
using assemble_detail::point_sigma;

namespace {

// One directed half-edge stored in its row's bucket.
struct HalfEdge {
  std::int64_t col;
  double weight;
  int outgoing;  // 1: i -> col from i's own list, 0: col -> i
};

}  // namespace

template <typename T>
std::int64_t assemble_knn_graph_cpu(const GraphAssembly& g,
                                    const std::int64_t* indices,
                                    const double* d2, double* sigma,
                                    std::int64_t* indptr, std::int64_t* cols,
                                    T* vals) {
  DS_CHECK_ARG(g.sigma_floor > 0.0,
               "sigma_floor: expected > 0, got " << g.sigma_floor);
  const std::int64_t n = g.n, k = g.k;

  // Per-point scales.
#pragma omp parallel for schedule(static) if (parallel_worth(n * k))
  for (std::int64_t i = 0; i < n; ++i) {
    sigma[i] = point_sigma(g, indices + i * k, d2 + i * k);
  }

  // Bucket sizes: out-edges of i plus in-edges pointing at i.
  std::vector<std::int64_t> start(n + 1, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t c = 0; c < k; ++c) {
      const std::int64_t j = indices[i * k + c];
      if (j < 0 || j == i) continue;
      DS_CHECK_ARG(j < n, "indices: expected values < " << n << ", got " << j);
      ++start[i + 1];
      ++start[j + 1];
    }
  }
  for (std::int64_t i = 0; i < n; ++i) start[i + 1] += start[i];

  // Scatter the directed weights into the buckets.
  std::vector<HalfEdge> bucket(start[n]);
  std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t c = 0; c < k; ++c) {
      const std::int64_t j = indices[i * k + c];
      if (j < 0 || j == i) continue;
      const double w = edge_weight(g, d2[i * k + c], sigma[i], sigma[j]);
      bucket[fill[i]++] = HalfEdge{j, w, 1};
      bucket[fill[j]++] = HalfEdge{i, w, 0};
    }
  }

  // Sort each bucket by column and merge the two directions in place.
  std::vector<std::int64_t> merged(n, 0);
#pragma omp parallel for schedule(dynamic, 256) if (parallel_worth(2 * n * k))
  for (std::int64_t i = 0; i < n; ++i) {
    HalfEdge* b = bucket.data() + start[i];
    const std::int64_t len = start[i + 1] - start[i];
    std::sort(b, b + len, [](const HalfEdge& x, const HalfEdge& y) {
      return x.col < y.col || (x.col == y.col && x.outgoing > y.outgoing);
    });
    std::int64_t out = 0;
    for (std::int64_t p = 0; p < len;) {
      const std::int64_t col = b[p].col;
      bool has_a = false, has_b = false;
      double a = 0.0, bw = 0.0;
      for (; p < len && b[p].col == col; ++p) {
        if (b[p].outgoing) {
          has_a = true;
          a = b[p].weight;
        } else {
          has_b = true;
          bw = b[p].weight;
        }
      }
      double w = 0.0;
      if (combine(g.symmetrize, has_a, a, has_b, bw, &w) && w != 0.0) {
        b[out++] = HalfEdge{col, w, 1};
      }
    }
    merged[i] = out;
  }

  // Compact into CSR.
  indptr[0] = 0;
  for (std::int64_t i = 0; i < n; ++i) indptr[i + 1] = indptr[i] + merged[i];
#pragma omp parallel for schedule(static) if (parallel_worth(indptr[n]))
  for (std::int64_t i = 0; i < n; ++i) {
    const HalfEdge* b = bucket.data() + start[i];
    for (std::int64_t p = 0; p < merged[i]; ++p) {
      cols[indptr[i] + p] = b[p].col;
      vals[indptr[i] + p] = static_cast<T>(b[p].weight);
    }
  }
  return indptr[n];
}

template <typename T>
std::int64_t assemble_laplacian_cpu(std::int64_t n, LaplacianKind kind,
                                    const std::int64_t* indptr,
                                    const std::int64_t* cols, const T* vals,
                                    double* degrees, std::int64_t* out_indptr,
                                    std::int64_t* out_cols, T* out_vals) {
  // Degrees without self loops, and output row sizes.
  std::vector<std::int64_t> size(n);
#pragma omp parallel for schedule(static) if (parallel_worth(indptr[n]))
  for (std::int64_t i = 0; i < n; ++i) {
    assemble_detail::row_degree(i, indptr, cols, vals, &degrees[i], &size[i]);
  }
  out_indptr[0] = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    out_indptr[i + 1] = out_indptr[i] + size[i];
  }

  // Rows of L with the diagonal placed in column order.
#pragma omp parallel for schedule(dynamic, 256) if (parallel_worth(indptr[n]))
  for (std::int64_t i = 0; i < n; ++i) {
    const double di = degrees[i];
    std::int64_t q = out_indptr[i];
    bool diagonal_done = false;
    const double diag = laplacian_diagonal(kind, di);
    for (std::int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
      const std::int64_t j = cols[p];
      if (j == i) continue;
      if (!diagonal_done && j > i) {
        out_cols[q] = i;
        out_vals[q++] = static_cast<T>(diag);
        diagonal_done = true;
      }
      const double v =
          laplacian_entry(kind, static_cast<double>(vals[p]), di, degrees[j]);
      out_cols[q] = j;
      out_vals[q++] = static_cast<T>(v);
    }
    if (!diagonal_done) {
      out_cols[q] = i;
      out_vals[q++] = static_cast<T>(diag);
    }
  }
  return out_indptr[n];
}

#define DS_INSTANTIATE(T)                                                      \
  template std::int64_t assemble_knn_graph_cpu<T>(                             \
      const GraphAssembly&, const std::int64_t*, const double*, double*,       \
      std::int64_t*, std::int64_t*, T*);                                       \
  template std::int64_t assemble_laplacian_cpu<T>(                             \
      std::int64_t, LaplacianKind, const std::int64_t*, const std::int64_t*,   \
      const T*, double*, std::int64_t*, std::int64_t*, T*);
DS_INSTANTIATE(float)
DS_INSTANTIATE(double)
#undef DS_INSTANTIATE

}  // namespace deepscope

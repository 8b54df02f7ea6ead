// CPU (OpenMP) exact refinement of kNN lists over lower-bound Gram blocks.
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DS_HAVE_AVX2_PATH 1
#endif

#include "graph/knn_select.h"
#include "graph/knn_select_impl.h"

namespace deepscope {

using knn_select_detail::pool_insert;

namespace {

constexpr std::int64_t kRowChunk = 256;
constexpr int kLanes = 8;
constexpr std::size_t kFlushAt = 64;

// A candidate pair: block-local row, its original query index, and the
// original reference index.
struct Pair {
  std::int64_t row;
  std::int64_t qid;
  std::int64_t col;
};

bool in_list(const std::int64_t* idx, std::int64_t k, std::int64_t j) {
  for (std::int64_t c = 0; c < k; ++c) {
    if (idx[c] == j) return true;
  }
  return false;
}

// Exact distances of kLanes pairs, interleaved so that the independent
// left-to-right sums overlap in the pipeline. Each lane's sum is
// bit-identical to exact_d2.
template <typename T>
void exact_lanes_scalar(const T* const* a, const T* const* b,
                        std::int64_t dim, double* out) {
  double s[kLanes] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (std::int64_t c = 0; c < dim; ++c) {
    for (int t = 0; t < kLanes; ++t) {
      const double diff =
          static_cast<double>(a[t][c]) - static_cast<double>(b[t][c]);
      s[t] += diff * diff;
    }
  }
  for (int t = 0; t < kLanes; ++t) out[t] = s[t];
}

#ifdef DS_HAVE_AVX2_PATH
// Four consecutive coordinates of one pair as float64 squared differences.
__attribute__((target("avx2"))) inline __m256d sq4(const float* a,
                                                    const float* b) {
  const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(a)),
                                  _mm256_cvtps_pd(_mm_loadu_ps(b)));
  return _mm256_mul_pd(d, d);
}

__attribute__((target("avx2"))) inline __m256d sq4(const double* a,
                                                    const double* b) {
  const __m256d d = _mm256_sub_pd(_mm256_loadu_pd(a), _mm256_loadu_pd(b));
  return _mm256_mul_pd(d, d);
}

// Adds four coordinates of four pairs to their sums, coordinate by
// coordinate: a 4 x 4 transpose turns pair-major squares into
// coordinate-major vectors, so each lane still sums left to right.
__attribute__((target("avx2"))) inline __m256d add4x4(__m256d s, __m256d r0,
                                                       __m256d r1, __m256d r2,
                                                       __m256d r3) {
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1);
  const __m256d t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3);
  const __m256d t3 = _mm256_unpackhi_pd(r2, r3);
  s = _mm256_add_pd(s, _mm256_permute2f128_pd(t0, t2, 0x20));
  s = _mm256_add_pd(s, _mm256_permute2f128_pd(t1, t3, 0x20));
  s = _mm256_add_pd(s, _mm256_permute2f128_pd(t0, t2, 0x31));
  s = _mm256_add_pd(s, _mm256_permute2f128_pd(t1, t3, 0x31));
  return s;
}

template <typename T>
__attribute__((target("avx2"))) void exact_lanes_avx2(const T* const* a,
                                                      const T* const* b,
                                                      std::int64_t dim,
                                                      double* out) {
  __m256d s0 = _mm256_setzero_pd();
  __m256d s1 = _mm256_setzero_pd();
  std::int64_t c = 0;
  for (; c + 4 <= dim; c += 4) {
    s0 = add4x4(s0, sq4(a[0] + c, b[0] + c), sq4(a[1] + c, b[1] + c),
                sq4(a[2] + c, b[2] + c), sq4(a[3] + c, b[3] + c));
    s1 = add4x4(s1, sq4(a[4] + c, b[4] + c), sq4(a[5] + c, b[5] + c),
                sq4(a[6] + c, b[6] + c), sq4(a[7] + c, b[7] + c));
  }
  alignas(32) double s[kLanes];
  _mm256_store_pd(s, s0);
  _mm256_store_pd(s + 4, s1);
  // Remaining coordinates, still in order.
  for (; c < dim; ++c) {
    for (int t = 0; t < kLanes; ++t) {
      const double diff =
          static_cast<double>(a[t][c]) - static_cast<double>(b[t][c]);
      s[t] += diff * diff;
    }
  }
  for (int t = 0; t < kLanes; ++t) out[t] = s[t];
}
#endif

template <typename T>
void exact_lanes(const T* const* a, const T* const* b, std::int64_t dim,
                 double* out) {
#ifdef DS_HAVE_AVX2_PATH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) {
    exact_lanes_avx2(a, b, dim, out);
    return;
  }
#endif
  exact_lanes_scalar(a, b, dim, out);
}


// Candidate scans: positions whose lower bound may pass the threshold.
// They only preselect; every hit is re-tested by the exact scalar rule.
constexpr std::int64_t kScan = 256;

template <typename T>
std::int64_t hits_row_scalar(const T* g, double rn, const T* cn, double thr,
                             std::int64_t len, std::int64_t* out) {
  std::int64_t h = 0;
  for (std::int64_t j = 0; j < len; ++j) {
    const double lb = (rn + static_cast<double>(cn[j])) -
                      2.0 * static_cast<double>(g[j]);
    if (lb <= thr) out[h++] = j;
  }
  return h;
}

template <typename T>
std::int64_t hits_col_scalar(const T* g, const double* rn, double cn,
                             const double* thr, std::int64_t len,
                             std::int64_t* out) {
  std::int64_t h = 0;
  for (std::int64_t t = 0; t < len; ++t) {
    const double lb = (rn[t] + cn) - 2.0 * static_cast<double>(g[t]);
    if (lb <= thr[t]) out[h++] = t;
  }
  return h;
}

#ifdef DS_HAVE_AVX2_PATH
__attribute__((target("avx2"))) inline __m256d load4(const float* x) {
  return _mm256_cvtps_pd(_mm_loadu_ps(x));
}

__attribute__((target("avx2"))) inline __m256d load4(const double* x) {
  return _mm256_loadu_pd(x);
}

// Row-major block row: lb_j = (rn + cn_j) - 2 g_j against one threshold.
template <typename T>
__attribute__((target("avx2"))) std::int64_t hits_row_avx2(
    const T* g, double rn, const T* cn, double thr, std::int64_t len,
    std::int64_t* out) {
  const __m256d vrn = _mm256_set1_pd(rn);
  const __m256d vthr = _mm256_set1_pd(thr);
  const __m256d two = _mm256_set1_pd(2.0);
  std::int64_t h = 0, j = 0;
  for (; j + 4 <= len; j += 4) {
    const __m256d lb = _mm256_sub_pd(_mm256_add_pd(vrn, load4(cn + j)),
                                     _mm256_mul_pd(two, load4(g + j)));
    int mask = _mm256_movemask_pd(_mm256_cmp_pd(lb, vthr, _CMP_LE_OQ));
    while (mask) {
      const int b = __builtin_ctz(mask);
      out[h++] = j + b;
      mask &= mask - 1;
    }
  }
  const std::int64_t tail =
      hits_row_scalar(g + j, rn, cn + j, thr, len - j, out + h);
  for (std::int64_t e = h; e < h + tail; ++e) out[e] += j;
  return h + tail;
}

// Transposed block column: lb_t = (rn_t + cn) - 2 g_t against thr_t.
template <typename T>
__attribute__((target("avx2"))) std::int64_t hits_col_avx2(
    const T* g, const double* rn, double cn, const double* thr,
    std::int64_t len, std::int64_t* out) {
  const __m256d vcn = _mm256_set1_pd(cn);
  const __m256d two = _mm256_set1_pd(2.0);
  std::int64_t h = 0, t = 0;
  for (; t + 4 <= len; t += 4) {
    const __m256d sum = _mm256_add_pd(_mm256_loadu_pd(rn + t), vcn);
    const __m256d lb = _mm256_sub_pd(sum, _mm256_mul_pd(two, load4(g + t)));
    int mask = _mm256_movemask_pd(
        _mm256_cmp_pd(lb, _mm256_loadu_pd(thr + t), _CMP_LE_OQ));
    while (mask) {
      const int b = __builtin_ctz(mask);
      out[h++] = t + b;
      mask &= mask - 1;
    }
  }
  const std::int64_t tail =
      hits_col_scalar(g + t, rn + t, cn, thr + t, len - t, out + h);
  for (std::int64_t e = h; e < h + tail; ++e) out[e] += t;
  return h + tail;
}
#endif

template <typename T>
std::int64_t hits_row(const T* g, double rn, const T* cn, double thr,
                      std::int64_t len, std::int64_t* out) {
#ifdef DS_HAVE_AVX2_PATH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return hits_row_avx2(g, rn, cn, thr, len, out);
#endif
  return hits_row_scalar(g, rn, cn, thr, len, out);
}

template <typename T>
std::int64_t hits_col(const T* g, const double* rn, double cn,
                      const double* thr, std::int64_t len, std::int64_t* out) {
#ifdef DS_HAVE_AVX2_PATH
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return hits_col_avx2(g, rn, cn, thr, len, out);
#endif
  return hits_col_scalar(g, rn, cn, thr, len, out);
}

// Computes the exact distances of the buffered pairs and merges them.
template <typename T>
void flush(std::vector<Pair>& pairs, const TopkBlock& b, std::int64_t dim,
           const T* query, const T* reference, std::int64_t* top_idx,
           double* top_d2, std::int64_t* checked) {
  const std::int64_t k = b.pool;
  const std::size_t count = pairs.size();
  for (std::size_t p0 = 0; p0 < count; p0 += kLanes) {
    const T* a[kLanes];
    const T* r[kLanes];
    double d[kLanes];
    for (int t = 0; t < kLanes; ++t) {
      const Pair& q = pairs[std::min(p0 + t, count - 1)];
      a[t] = query + q.qid * dim;
      r[t] = reference + q.col * dim;
    }
    exact_lanes(a, r, dim, d);
    for (int t = 0; t < kLanes && p0 + t < count; ++t) {
      const Pair& q = pairs[p0 + t];
      pool_insert(top_idx + q.row * k, top_d2 + q.row * k, k, d[t], q.col);
      ++checked[q.row];
    }
  }
  pairs.clear();
}

}  // namespace

template <typename T>
void refine_block_cpu(const TopkBlock& b, std::int64_t dim, const T* gram,
                      const T* row_norms, const T* col_norms,
                      const double* slack, const T* query, const T* reference,
                      const std::int64_t* row_ids, const std::int64_t* col_ids,
                      std::int64_t* top_idx, double* top_d2,
                      std::int64_t* checked) {
  DS_CHECK_ARG(b.pool >= 1, "k: expected >= 1, got " << b.pool);
  const std::int64_t k = b.pool;
  const std::int64_t chunks = (b.rows + kRowChunk - 1) / kRowChunk;

  // Each thread owns chunks of rows, so every list has a single writer.
#pragma omp parallel
  {
    std::vector<Pair> pairs;
    pairs.reserve(kFlushAt + kRowChunk);
    double thr[kRowChunk];
    double rn[kRowChunk];
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t r0 = c * kRowChunk;
      const std::int64_t len = std::min(kRowChunk, b.rows - r0);
      // Row thresholds: current k-th exact distance plus the row's slack.
      auto refresh = [&] {
        for (std::int64_t t = 0; t < len; ++t) {
          thr[t] = top_d2[(r0 + t) * k + k - 1] + slack[r0 + t];
        }
      };
      for (std::int64_t t = 0; t < len; ++t) {
        rn[t] = static_cast<double>(row_norms[r0 + t]);
      }
      refresh();
      // Candidate test of one pair; collects those that may enter the list.
      auto test = [&](std::int64_t t, std::int64_t j, double g) {
        const double lb = (rn[t] + static_cast<double>(col_norms[j])) - 2.0 * g;
        if (!(lb <= thr[t])) return;
        const std::int64_t row = r0 + t;
        const std::int64_t cpos = b.col_offset + j;
        const std::int64_t global = col_ids != nullptr ? col_ids[cpos] : cpos;
        const std::int64_t rpos = b.row_offset + row;
        const std::int64_t qid = row_ids != nullptr ? row_ids[rpos] : rpos;
        if (b.exclude_self && qid == global) return;
        if (in_list(top_idx + row * k, k, global)) return;
        pairs.push_back(Pair{row, qid, global});
      };
      std::int64_t hit[kScan];
      if (b.row_stride == 1 && b.col_stride != 1) {
        // Transposed block: sweep columns over the chunk's contiguous rows.
        for (std::int64_t j = 0; j < b.cols; ++j) {
          const T* g = gram + j * b.col_stride + r0;
          const double cn = static_cast<double>(col_norms[j]);
          const std::int64_t h = hits_col(g, rn, cn, thr, len, hit);
          for (std::int64_t e = 0; e < h; ++e) {
            test(hit[e], j, static_cast<double>(g[hit[e]]));
          }
          if (pairs.size() >= kFlushAt) {
            flush(pairs, b, dim, query, reference, top_idx, top_d2, checked);
            refresh();
          }
        }
      } else if (b.col_stride == 1) {
        // Row-major block: one row at a time, columns in spans.
        for (std::int64_t t = 0; t < len; ++t) {
          const T* g = gram + (r0 + t) * b.row_stride;
          for (std::int64_t j0 = 0; j0 < b.cols; j0 += kScan) {
            const std::int64_t span = std::min(kScan, b.cols - j0);
            const std::int64_t h =
                hits_row(g + j0, rn[t], col_norms + j0, thr[t], span, hit);
            for (std::int64_t e = 0; e < h; ++e) {
              const std::int64_t j = j0 + hit[e];
              test(t, j, static_cast<double>(g[j]));
            }
            if (pairs.size() >= kFlushAt) {
              flush(pairs, b, dim, query, reference, top_idx, top_d2,
                    checked);
              refresh();
            }
          }
        }
      } else {
        // General strides.
        for (std::int64_t t = 0; t < len; ++t) {
          const T* g = gram + (r0 + t) * b.row_stride;
          for (std::int64_t j = 0; j < b.cols; ++j) {
            test(t, j, static_cast<double>(g[j * b.col_stride]));
            if (pairs.size() >= kFlushAt) {
              flush(pairs, b, dim, query, reference, top_idx, top_d2,
                    checked);
              refresh();
            }
          }
        }
      }
      flush(pairs, b, dim, query, reference, top_idx, top_d2, checked);
    }
  }
}

#define DS_INSTANTIATE(T)                                                      \
  template void refine_block_cpu<T>(const TopkBlock&, std::int64_t, const T*,  \
                                    const T*, const T*, const double*,         \
                                    const T*, const T*, const std::int64_t*,   \
                                    const std::int64_t*, std::int64_t*,        \
                                    double*, std::int64_t*);
DS_INSTANTIATE(float)
DS_INSTANTIATE(double)
#undef DS_INSTANTIATE

}  // namespace deepscope

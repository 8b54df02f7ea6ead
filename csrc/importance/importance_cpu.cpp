// CPU point importance: fused norms + argmax counts + entropy (OpenMP).
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/parallel.h"
#include "importance/importance.h"

namespace deepscope {
namespace {

using std::int64_t;

// Work is split into (cloud, point block) tasks. A block is small enough for
// its float64 accumulators and one row chunk to stay in L1/L2, and there are
// enough tasks to keep every thread busy.
int64_t point_block_size(int64_t B, int64_t N) {
  const int64_t want_tasks = 4 * static_cast<int64_t>(max_threads());
  const int64_t per_cloud = std::max<int64_t>(1, (want_tasks + B - 1) / B);
  int64_t bs = (N + per_cloud - 1) / per_cloud;
  bs = std::min<int64_t>(std::max<int64_t>(bs, 64), 2048);
  return (bs + 15) / 16 * 16;
}

int64_t valid_points(const int64_t* lengths, int64_t b, int64_t N) {
  return lengths == nullptr ? N : std::min(std::max<int64_t>(lengths[b], 0), N);
}

// Index of the first element equal to m in row[0, len) (m is present).
template <typename T>
int64_t find_first(const T* row, int64_t len, T m) {
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t j = 0; j < 16; ++j) hit |= (row[i + j] == m);
    if (hit) break;
  }
  for (; i < len; ++i) {
    if (row[i] == m) return i;
  }
  return len - 1;  // not reached for finite rows
}

// Channels first (B, C, N): stream the C rows of one point block; norms
// accumulate per point, each row chunk gives the block's per-channel max.
template <typename T>
bool block_channels_first(const ImportanceProblem<T>& P, int64_t b,
                          int64_t n0, int64_t len, double* acc, T* part_val,
                          int64_t* part_idx) {
  const bool need_norms = P.norms != nullptr;
  const bool need_max = P.counts != nullptr;
  const int p = P.p;
  T check = 0;
  std::fill(acc, acc + len, 0.0);
  for (int64_t c = 0; c < P.C; ++c) {
    const T* row = P.features + (b * P.C + c) * P.N + n0;
    T m = row[0];
    // One contiguous sweep: norm terms, running max, finiteness probe.
    if (need_norms && p == 2) {
#pragma omp simd reduction(max : m) reduction(+ : check)
      for (int64_t i = 0; i < len; ++i) {
        const T v = row[i];
        const double d = static_cast<double>(v);
        acc[i] += d * d;
        m = v > m ? v : m;
        check += v * T(0);
      }
    } else if (need_norms && p == 1) {
#pragma omp simd reduction(max : m) reduction(+ : check)
      for (int64_t i = 0; i < len; ++i) {
        const T v = row[i];
        acc[i] += std::fabs(static_cast<double>(v));
        m = v > m ? v : m;
        check += v * T(0);
      }
    } else if (need_norms) {
#pragma omp simd reduction(max : m) reduction(+ : check)
      for (int64_t i = 0; i < len; ++i) {
        const T v = row[i];
        const double a = std::fabs(static_cast<double>(v));
        acc[i] = a > acc[i] ? a : acc[i];
        m = v > m ? v : m;
        check += v * T(0);
      }
    } else {
#pragma omp simd reduction(max : m) reduction(+ : check)
      for (int64_t i = 0; i < len; ++i) {
        const T v = row[i];
        m = v > m ? v : m;
        check += v * T(0);
      }
    }
    // The first point attaining the maximum wins (ties -> lowest index).
    if (need_max) {
      part_val[c] = m;
      part_idx[c] = n0 + find_first(row, len, m);
    }
  }
  return std::isfinite(static_cast<double>(check));
}

// Channels last (B, N, C): one contiguous row per point; the per-channel
// running maximum is a branch-free select over the block's points.
template <typename T>
bool block_channels_last(const ImportanceProblem<T>& P, int64_t b, int64_t n0,
                         int64_t len, double* acc, T* part_val,
                         int64_t* part_idx, std::vector<int64_t>& local) {
  using idx_t = std::conditional_t<sizeof(T) == 4, std::int32_t, int64_t>;
  const bool need_norms = P.norms != nullptr;
  const bool need_max = P.counts != nullptr;
  const int64_t C = P.C;
  const int p = P.p;
  T check = 0;
  idx_t* best_idx = reinterpret_cast<idx_t*>(local.data());
  for (int64_t j = 0; j < len; ++j) {
    const T* row = P.features + (b * P.N + n0 + j) * C;

    // Norm over the contiguous channel row, plus the finiteness probe.
    double s = 0.0;
    if (need_norms && p == 2) {
#pragma omp simd reduction(+ : s, check)
      for (int64_t c = 0; c < C; ++c) {
        const double d = static_cast<double>(row[c]);
        s += d * d;
        check += row[c] * T(0);
      }
    } else if (need_norms && p == 1) {
#pragma omp simd reduction(+ : s, check)
      for (int64_t c = 0; c < C; ++c) {
        s += std::fabs(static_cast<double>(row[c]));
        check += row[c] * T(0);
      }
    } else if (need_norms) {
#pragma omp simd reduction(max : s) reduction(+ : check)
      for (int64_t c = 0; c < C; ++c) {
        const double a = std::fabs(static_cast<double>(row[c]));
        s = a > s ? a : s;
        check += row[c] * T(0);
      }
    } else {
#pragma omp simd reduction(+ : check)
      for (int64_t c = 0; c < C; ++c) check += row[c] * T(0);
    }
    if (need_norms) acc[j] = s;

    // Running per-channel maximum; strict > keeps the lowest index.
    if (!need_max) continue;
    if (j == 0) {
      std::copy(row, row + C, part_val);
      std::fill(best_idx, best_idx + C, idx_t(0));
      continue;
    }
    const idx_t jj = static_cast<idx_t>(j);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const bool better = row[c] > part_val[c];
      part_val[c] = better ? row[c] : part_val[c];
      best_idx[c] = better ? jj : best_idx[c];
    }
  }
  if (need_max) {
    for (int64_t c = C - 1; c >= 0; --c) part_idx[c] = n0 + best_idx[c];
  }
  return std::isfinite(static_cast<double>(check));
}

template <typename I>
double entropy_row(const I* imp, int64_t n, double eps) {
  if (n <= 1) return 0.0;
  // Normalizer over the valid points.
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(imp[i]) + eps;
  if (!(total > 0.0)) return 1.0;

  // -sum q log2 q, normalized by the maximum log2(n).
  double h = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double q = (static_cast<double>(imp[i]) + eps) / total;
    if (q > 0.0) h -= q * std::log2(q);
  }
  return h / std::log2(static_cast<double>(n));
}

}  // namespace

template <typename T>
void importance_stats_cpu(const ImportanceProblem<T>& P) {
  const int64_t B = P.B, C = P.C, N = P.N;
  if (B == 0) return;
  DS_CHECK_ARG(C > 0 && N > 0, "features: expected C > 0 and N > 0, got C="
                                   << C << ", N=" << N);
  DS_CHECK_ARG(P.p == 1 || P.p == 2 || P.p == kNormInf,
               "p: expected 1, 2 or inf, got " << P.p);
  DS_CHECK_ARG(P.entropy == nullptr ||
                   (P.entropy_of_norms ? P.norms != nullptr
                                       : P.counts != nullptr),
               "entropy needs the importance it is computed from");
  const int64_t bs = point_block_size(B, N);
  const int64_t nblk = (N + bs - 1) / bs;
  const bool need_max = P.counts != nullptr;

  // Per-(cloud, block, channel) partial maxima; far smaller than B*C*N.
  std::vector<T> part_val(need_max ? B * nblk * C : 0);
  std::vector<int64_t> part_idx(need_max ? B * nblk * C : 0, -1);
  int bad = 0;

#pragma omp parallel reduction(| : bad)
  {
    std::vector<double> acc(bs);
    std::vector<int64_t> local(P.channels_last && need_max ? C : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * nblk; ++task) {
      const int64_t b = task / nblk, blk = task % nblk;
      const int64_t n0 = blk * bs;
      const int64_t n_end = std::min(n0 + bs, N);
      const int64_t len = std::max<int64_t>(
          0, std::min(n_end, valid_points(P.lengths, b, N)) - n0);
      T* pv = need_max ? part_val.data() + task * C : nullptr;
      int64_t* pi = need_max ? part_idx.data() + task * C : nullptr;

      // Partial norms and maxima over the block's valid points.
      if (len > 0) {
        const bool ok =
            P.channels_last
                ? block_channels_last(P, b, n0, len, acc.data(), pv, pi, local)
                : block_channels_first(P, b, n0, len, acc.data(), pv, pi);
        bad |= ok ? 0 : 1;
      }

      // Finished norms; padded points get 0.
      if (P.norms != nullptr) {
        T* out = P.norms + b * N;
        for (int64_t i = 0; i < len; ++i) {
          out[n0 + i] = static_cast<T>(finish_norm(acc[i], P.p));
        }
        for (int64_t n = n0 + len; n < n_end; ++n) out[n] = T(0);
      }
    }

    // Merge block maxima in point order (strict > keeps the lowest index),
    // then count the winners per point.
    if (need_max) {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < B; ++b) {
        int64_t* counts = P.counts + b * N;
        std::fill(counts, counts + N, int64_t(0));
        const int64_t base = b * nblk * C;
        for (int64_t c = 0; c < C; ++c) {
          int64_t win = -1;
          T best = T(0);
          for (int64_t blk = 0; blk < nblk; ++blk) {
            const int64_t k = base + blk * C + c;
            if (part_idx[k] < 0) continue;
            if (win < 0 || part_val[k] > best) {
              best = part_val[k];
              win = part_idx[k];
            }
          }
          if (win >= 0) ++counts[win];
        }
      }
    }

    // Normalized entropy per cloud over its valid points.
    if (P.entropy != nullptr) {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t n = valid_points(P.lengths, b, N);
        P.entropy[b] = P.entropy_of_norms
                           ? entropy_row(P.norms + b * N, n, P.eps)
                           : entropy_row(P.counts + b * N, n, P.eps);
      }
    }
  }
  if (bad && P.status != nullptr) *P.status |= kStatusNonFinite;
}

template <typename I>
void normalized_entropy_cpu(const I* importance, int64_t B, int64_t N,
                            const int64_t* lengths, double eps,
                            double* entropy, std::int32_t* status) {
  int flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = valid_points(lengths, b, N);
    const I* row = importance + b * N;
    for (int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>(row[i]);
      if (!std::isfinite(v)) flags |= kStatusNonFinite;
      if (v < 0.0) flags |= kStatusNegative;
    }
    entropy[b] = entropy_row(row, n, eps);
  }
  if (status != nullptr) *status |= flags;
}

template void importance_stats_cpu<float>(const ImportanceProblem<float>&);
template void importance_stats_cpu<double>(const ImportanceProblem<double>&);
template void normalized_entropy_cpu<float>(const float*, int64_t, int64_t,
                                            const int64_t*, double, double*,
                                            std::int32_t*);
template void normalized_entropy_cpu<double>(const double*, int64_t, int64_t,
                                             const int64_t*, double, double*,
                                             std::int32_t*);
template void normalized_entropy_cpu<int64_t>(const int64_t*, int64_t,
                                              int64_t, const int64_t*, double,
                                              double*, std::int32_t*);

}  // namespace deepscope

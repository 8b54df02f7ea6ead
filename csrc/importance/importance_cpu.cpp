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

// The per-block loops, compiled for the baseline ISA here.
#define DS_ISA isa_base
#include "importance/importance_cpu_impl.h"
#undef DS_ISA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DS_IMPORTANCE_AVX2 1
// The same loops compiled for AVX2 (importance_cpu_avx2.cpp).
namespace deepscope {
namespace isa_avx2 {
template <typename T>
bool importance_block(const T* base, bool channels_last_layout,
                      std::int64_t C, std::int64_t N, std::int64_t len,
                      std::int64_t n0, int p, bool need_max, double* acc,
                      T* pv, std::int64_t* pi, void* scratch);
}  // namespace isa_avx2
}  // namespace deepscope
#endif

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

// Runs one block with the best loops this CPU supports.
template <typename T>
bool run_block(const T* base, bool channels_last_layout, int64_t C, int64_t N,
               int64_t len, int64_t n0, int p, bool need_max, double* acc,
               T* pv, int64_t* pi, void* scratch) {
#ifdef DS_IMPORTANCE_AVX2
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (has_avx2) {
    return isa_avx2::importance_block<T>(base, channels_last_layout, C, N, len,
                                         n0, p, need_max, acc, pv, pi, scratch);
  }
#endif
  return isa_base::importance_block<T>(base, channels_last_layout, C, N, len,
                                       n0, p, need_max, acc, pv, pi, scratch);
}

template <typename I>
double entropy_row(const I* imp, int64_t n, double eps) {
  if (n <= 1) return 0.0;
  // Scale: every term is divided by max(eps, largest importance), so the
  // float64 normalizer cannot overflow (importance near 1e308) and tiny
  // importance does not sit in the subnormal range.
  double top = eps;
  for (int64_t i = 0; i < n; ++i) {
    top = std::max(top, static_cast<double>(imp[i]));
  }
  if (!(top > 0.0)) return 1.0;  // all zero with eps == 0: the uniform limit
  const double scaled_eps = eps / top;

  // Normalizer over the valid points, each term in [0, 2].
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    total += static_cast<double>(imp[i]) / top + scaled_eps;
  }

  // -sum q log2 q, normalized by the maximum log2(n).
  double h = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double q = (static_cast<double>(imp[i]) / top + scaled_eps) / total;
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

#pragma omp parallel reduction(| : bad) if (parallel_worth(B * C * N))
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
        const T* base = P.channels_last ? P.features + (b * N + n0) * C
                                        : P.features + b * C * N + n0;
        const int p = P.norms != nullptr ? P.p : -1;
        bad |= run_block(base, P.channels_last, C, N, len, n0, p, need_max,
                         acc.data(), pv, pi, local.data())
                   ? 0
                   : 1;
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
  const bool parallel = parallel_worth(3 * B * N);
#pragma omp parallel for schedule(static) reduction(| : flags) if (parallel)
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

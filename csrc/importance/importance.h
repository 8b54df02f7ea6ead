// Point importance (CP++ / FBI): fused norms, argmax counts, entropy.
// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>

#include "common/check.h"

namespace deepscope {

// Bits of the status word the kernels report back.
constexpr std::int32_t kStatusNonFinite = 1;  // a NaN or an infinity was read
constexpr std::int32_t kStatusNegative = 2;   // an importance value was < 0

// Norm orders; p = infinity is encoded as 0.
constexpr int kNormInf = 0;

// One pass over per-point features right before a global max-pool.
//
// features: (B, C, N) channels first, or (B, N, C) when channels_last.
// lengths:  (B,) int64 number of valid points per cloud, or nullptr (all N).
//           Points n >= lengths[b] are ignored: norm 0, count 0, never an
//           argmax winner, excluded from the entropy.
// norms:    (B, N) out, Lp norm over channels (p in {1, 2, inf}),
//           accumulated in double; nullptr to skip.
// counts:   (B, N) int64 out, number of channels whose maximum over the
//           valid points is attained at n (ties -> lowest n); nullptr to
//           skip. For a cloud with valid points, sum_n counts == C.
// entropy:  (B,) double out, normalized entropy of counts (entropy_of_norms
//           false) or of norms (true); needs that output; nullptr to skip.
// status:   (1,) int32 out, kStatusNonFinite is OR-ed in when a feature is
//           NaN or infinite (the other outputs are then meaningless).
template <typename T>
struct ImportanceProblem {
  const T* features = nullptr;
  std::int64_t B = 0, C = 0, N = 0;
  bool channels_last = false;
  const std::int64_t* lengths = nullptr;
  int p = 2;
  T* norms = nullptr;
  std::int64_t* counts = nullptr;
  double* entropy = nullptr;
  bool entropy_of_norms = false;
  double eps = 1e-6;
  std::int32_t* status = nullptr;
};

template <typename T>
void importance_stats_cpu(const ImportanceProblem<T>& problem);

// Normalized entropy of nonnegative per-point importance, per cloud:
// q_n = (I_n + eps) / sum_m (I_m + eps) over the n_b valid points,
// H_b = -sum_n q_n log2 q_n / log2(n_b); H_b = 0 when n_b <= 1 and 1 when
// the sum is 0 (all zero with eps == 0, the uniform limit).
// importance: (B, N) float, double or int64; lengths as above; entropy (B,)
// double out; status: kStatusNonFinite / kStatusNegative are OR-ed in.
template <typename I>
void normalized_entropy_cpu(const I* importance, std::int64_t B,
                            std::int64_t N, const std::int64_t* lengths,
                            double eps, double* entropy,
                            std::int32_t* status);

#ifdef DEEPSCOPE_WITH_CUDA
template <typename T>
void importance_stats_cuda(const ImportanceProblem<T>& problem,
                           const Device& device);

template <typename I>
void normalized_entropy_cuda(const I* importance, std::int64_t B,
                             std::int64_t N, const std::int64_t* lengths,
                             double eps, double* entropy,
                             std::int32_t* status, const Device& device);
#endif

// Turns an accumulated sum (p = 1, 2) or maximum (p = inf) into the norm.
inline double finish_norm(double acc, int p) {
  return p == 2 ? std::sqrt(acc) : acc;
}

}  // namespace deepscope

// The CMD fit's per-block loops; included once per instruction set, inside
// namespace deepscope::DS_ISA (see cmd_cpu.cpp and cmd_cpu_avx2.cpp).
// SPDX-License-Identifier: MIT
#include <cstdint>

#include "dynamics/cmd.h"

namespace deepscope {
namespace DS_ISA {

// Parameters per block: a (T, kCmdBlock) double tile plus M x kCmdBlock
// accumulators stay in L1/L2 for the usual T and M.
constexpr std::int64_t kCmdBlock = 64;

// Scratch doubles one block needs.
inline std::int64_t cmd_block_scratch(std::int64_t T, std::int64_t M) {
  return (T + M + 3) * kCmdBlock;
}

// Fits parameters [i0, i0 + nb), nb <= kCmdBlock.
template <typename T>
void cmd_fit_block(const CmdFitProblem<T>& p, std::int64_t i0,
                   std::int64_t nb, double* scratch) {
  const std::int64_t Tn = p.T_len, M = p.M, B = kCmdBlock;
  double* tile = scratch;          // (T, B): w(i0 + j, t) - w(i0 + j, 0)
  double* w0 = tile + Tn * B;      // (B,)
  double* s1 = w0 + B;             // (B,)
  double* s2 = s1 + B;             // (B,)
  double* c = s2 + B;              // (M, B)

  // Load the block transposed to (t, j), shifted by the first sample.
  for (std::int64_t j = 0; j < B; ++j) {
    w0[j] = 0.0;
    s1[j] = 0.0;
    s2[j] = 0.0;
  }
  for (std::int64_t m = 0; m < M * B; ++m) c[m] = 0.0;
  if (p.time_major) {
    for (std::int64_t j = 0; j < nb; ++j) w0[j] = static_cast<double>(p.w[i0 + j]);
    for (std::int64_t t = 0; t < Tn; ++t) {
      const T* row = p.w + t * p.N + i0;
      double* dst = tile + t * B;
      for (std::int64_t j = 0; j < nb; ++j) {
        dst[j] = static_cast<double>(row[j]) - w0[j];
      }
      for (std::int64_t j = nb; j < B; ++j) dst[j] = 0.0;
    }
  } else {
    for (std::int64_t t = 0; t < Tn; ++t) {
      for (std::int64_t j = nb; j < B; ++j) tile[t * B + j] = 0.0;
    }
    for (std::int64_t j = 0; j < nb; ++j) {
      const T* row = p.w + (i0 + j) * Tn;
      w0[j] = static_cast<double>(row[0]);
      for (std::int64_t t = 0; t < Tn; ++t) {
        tile[t * B + j] = static_cast<double>(row[t]) - w0[j];
      }
    }
  }

  // Sums over time: S1, S2 and the M cross sums, in time order.
  for (std::int64_t t = 0; t < Tn; ++t) {
    const double* d = tile + t * B;
    for (std::int64_t j = 0; j < B; ++j) {
      s1[j] += d[j];
      s2[j] += d[j] * d[j];
    }
    for (std::int64_t m = 0; m < M; ++m) {
      const double r = p.ref_centered[m * Tn + t];
      double* cm = c + m * B;
      for (std::int64_t j = 0; j < B; ++j) cm[j] += d[j] * r;
    }
  }

  // Most correlated reference (ties -> lowest m), then the affine fit.
  for (std::int64_t j = 0; j < nb; ++j) {
    std::int64_t best = 0;
    double best_score = -1.0;
    for (std::int64_t m = 0; m < M; ++m) {
      const double score = std::fabs(c[m * B + j]) * p.ref_inv_norm[m];
      if (score > best_score) {
        best_score = score;
        best = m;
      }
    }
    cmd_fit_finish(p, i0 + j, w0[j], s1[j], s2[j], best, c[best * B + j]);
  }
}

template void cmd_fit_block<float>(const CmdFitProblem<float>&, std::int64_t,
                                   std::int64_t, double*);
template void cmd_fit_block<double>(const CmdFitProblem<double>&,
                                    std::int64_t, std::int64_t, double*);

}  // namespace DS_ISA
}  // namespace deepscope

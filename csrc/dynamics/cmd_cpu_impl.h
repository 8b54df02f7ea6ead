// The CMD fit's per-block loops; included once per instruction set, inside
// namespace deepscope::DS_ISA (see cmd_cpu.cpp and cmd_cpu_avx2.cpp).
// SPDX-License-Identifier: MIT
#include <cstdint>

#include "dynamics/cmd.h"

// The vector helpers below are always inlined; GCC's note about the ABI of
// 32-byte vector arguments without AVX does not concern them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace deepscope {
namespace DS_ISA {

// Parameters per block: a (T, kCmdBlock) double tile plus M x kCmdBlock
// accumulators stay in L1/L2 for the usual T and M.
constexpr std::int64_t kCmdBlock = 64;
// Modes accumulated together in registers, and parameters per vector.
constexpr int kModeGroup = 8;
constexpr std::int64_t kLanes = 4;

// Modes padded to a multiple of kModeGroup.
inline std::int64_t cmd_padded_modes(std::int64_t M) {
  return (M + kModeGroup - 1) / kModeGroup * kModeGroup;
}

// Scratch doubles one block needs.
inline std::int64_t cmd_block_scratch(std::int64_t T, std::int64_t M) {
  return (T + M + 3) * kCmdBlock;
}

// Four doubles; element-wise + and * round like scalar code (no FMA). The
// helpers are inlined, so the vector-ABI note of GCC does not apply.
typedef double V4 __attribute__((vector_size(32)));
// The same type for unaligned memory access to doubles.
typedef double V4u __attribute__((vector_size(32), aligned(8), may_alias));

// Unaligned vector load (a macro: a function returning V4 would trip GCC's
// vector-ABI diagnostic in the baseline build).
#ifndef DS_CMD_LOAD4
#define DS_CMD_LOAD4(x) (*reinterpret_cast<const V4u*>(x))
#endif

inline void store4(double* x, const V4& v) {
  *reinterpret_cast<V4u*>(x) = v;
}

// Fits parameters [i0, i0 + nb), nb <= kCmdBlock.
// G cross sums of four parameters: c[k * B] += d(t) * r_k(t) in time order.
// tile: the parameters' column of the (T, B) tile; rt: (T, Mp) references
// from the group's first mode; c: the first mode's accumulator row.
template <int G>
inline void cross_sums(const double* tile, const double* rt, std::int64_t Tn,
                       std::int64_t Mp, double* c) {
  V4 acc[G];
  for (int k = 0; k < G; ++k) acc[k] = V4{0.0, 0.0, 0.0, 0.0};
  for (std::int64_t t = 0; t < Tn; ++t) {
    const V4 d = DS_CMD_LOAD4(tile + t * kCmdBlock);
    const double* r = rt + t * Mp;
    for (int k = 0; k < G; ++k) acc[k] += d * r[k];
  }
  for (int k = 0; k < G; ++k) store4(c + k * kCmdBlock, acc[k]);
}

// ref_t: (T, Mp) references transposed, zero-padded to Mp modes.
template <typename T>
void cmd_fit_block(const CmdFitProblem<T>& p, const double* ref_t,
                   std::int64_t i0, std::int64_t nb, double* scratch) {
  const std::int64_t Tn = p.T_len, M = p.M, B = kCmdBlock;
  const std::int64_t Mp = cmd_padded_modes(M);
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
  if (p.time_major) {
    for (std::int64_t j = 0; j < nb; ++j) {
      w0[j] = static_cast<double>(p.w[i0 + j]);
    }
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
    // Four rows at a time: one vector store per time sample.
    std::int64_t j = 0;
    for (; j + kLanes <= nb; j += kLanes) {
      const T* r0 = p.w + (i0 + j) * Tn;
      const T* r1 = r0 + Tn;
      const T* r2 = r1 + Tn;
      const T* r3 = r2 + Tn;
      const V4 first = {static_cast<double>(r0[0]), static_cast<double>(r1[0]),
                        static_cast<double>(r2[0]), static_cast<double>(r3[0])};
      store4(w0 + j, first);
      for (std::int64_t t = 0; t < Tn; ++t) {
        const V4 v = {static_cast<double>(r0[t]), static_cast<double>(r1[t]),
                      static_cast<double>(r2[t]), static_cast<double>(r3[t])};
        store4(tile + t * B + j, v - first);
      }
    }
    for (; j < nb; ++j) {
      const T* row = p.w + (i0 + j) * Tn;
      w0[j] = static_cast<double>(row[0]);
      for (std::int64_t t = 0; t < Tn; ++t) {
        tile[t * B + j] = static_cast<double>(row[t]) - w0[j];
      }
    }
  }

  // Sums over time: S1, S2 and the M cross sums, in time order. Four
  // parameters share a vector; kModeGroup modes stay in registers.
  for (std::int64_t jv = 0; jv < B; jv += kLanes) {
    V4 a1 = {0.0, 0.0, 0.0, 0.0}, a2 = a1;
    for (std::int64_t t = 0; t < Tn; ++t) {
      const V4 d = DS_CMD_LOAD4(tile + t * B + jv);
      a1 += d;
      a2 += d * d;
    }
    store4(s1 + jv, a1);
    store4(s2 + jv, a2);
    for (std::int64_t m0 = 0; m0 < M; m0 += kModeGroup) {
      const std::int64_t mc = M - m0 < kModeGroup ? M - m0 : kModeGroup;
      const double* rt = ref_t + m0;
      double* cm = c + m0 * B + jv;
      switch (mc) {
        case 1: cross_sums<1>(tile + jv, rt, Tn, Mp, cm); break;
        case 2: cross_sums<2>(tile + jv, rt, Tn, Mp, cm); break;
        case 3: cross_sums<3>(tile + jv, rt, Tn, Mp, cm); break;
        case 4: cross_sums<4>(tile + jv, rt, Tn, Mp, cm); break;
        case 5: cross_sums<5>(tile + jv, rt, Tn, Mp, cm); break;
        case 6: cross_sums<6>(tile + jv, rt, Tn, Mp, cm); break;
        case 7: cross_sums<7>(tile + jv, rt, Tn, Mp, cm); break;
        default: cross_sums<8>(tile + jv, rt, Tn, Mp, cm); break;
      }
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

template void cmd_fit_block<float>(const CmdFitProblem<float>&,
                                   const double*, std::int64_t, std::int64_t,
                                   double*);
template void cmd_fit_block<double>(const CmdFitProblem<double>&,
                                    const double*, std::int64_t,
                                    std::int64_t, double*);

}  // namespace DS_ISA
}  // namespace deepscope

#pragma GCC diagnostic pop

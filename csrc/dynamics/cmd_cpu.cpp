// CPU CMD kernels: fused assignment + fit, online update, coefficients,
// reconstruction (OpenMP over parameter blocks).
// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "dynamics/cmd.h"

#define DS_ISA isa_base
#include "dynamics/cmd_cpu_impl.h"
#undef DS_ISA

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DS_CMD_AVX2 1
namespace deepscope {
namespace isa_avx2 {
template <typename T>
void cmd_fit_block(const CmdFitProblem<T>& p, const double* ref_t,
                   std::int64_t i0, std::int64_t nb, double* scratch);
}  // namespace isa_avx2
}  // namespace deepscope
#endif

namespace deepscope {

using std::int64_t;

namespace {

void check_fit(int64_t N, int64_t T, int64_t M) {
  DS_CHECK_ARG(N >= 0, "N: expected >= 0, got " << N);
  DS_CHECK_ARG(T >= 1, "T: expected >= 1 time samples, got " << T);
  DS_CHECK_ARG(M >= 1, "M: expected >= 1 modes, got " << M);
}

}  // namespace

template <typename T>
void cmd_fit_cpu(const CmdFitProblem<T>& p) {
  check_fit(p.N, p.T_len, p.M);
  if (p.N == 0) return;
  const int64_t B = isa_base::kCmdBlock;
  const int64_t blocks = (p.N + B - 1) / B;
  const int64_t scratch_size = isa_base::cmd_block_scratch(p.T_len, p.M);

  // References transposed to (T, Mp), zero-padded to whole mode groups.
  const int64_t Mp = isa_base::cmd_padded_modes(p.M);
  std::vector<double> ref_t(static_cast<size_t>(p.T_len * Mp), 0.0);
  for (int64_t m = 0; m < p.M; ++m) {
    for (int64_t t = 0; t < p.T_len; ++t) {
      ref_t[t * Mp + m] = p.ref_centered[m * p.T_len + t];
    }
  }
#ifdef DS_CMD_AVX2
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
#else
  const bool has_avx2 = false;
#endif

#pragma omp parallel if (parallel_worth(p.N * p.T_len * p.M))
  {
    std::vector<double> scratch(static_cast<size_t>(scratch_size));
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t i0 = blk * B;
      const int64_t nb = std::min(B, p.N - i0);
#ifdef DS_CMD_AVX2
      if (has_avx2) {
        isa_avx2::cmd_fit_block<T>(p, ref_t.data(), i0, nb,
                                    scratch.data());
        continue;
      }
#endif
      (void)has_avx2;
      isa_base::cmd_fit_block<T>(p, ref_t.data(), i0, nb, scratch.data());
    }
  }
}

template <typename T>
void cmd_update_cpu(const CmdUpdateProblem<T>& p) {
#pragma omp parallel for schedule(static) if (parallel_worth(p.N))
  for (int64_t i = 0; i < p.N; ++i) cmd_update_one(p, i);
}

template <typename T>
void cmd_coefficients_cpu(const CmdCoefProblem<T>& p) {
  DS_CHECK_ARG(p.n >= 1.0, "n: expected >= 1 samples, got " << p.n);
#pragma omp parallel for schedule(static) if (parallel_worth(p.N))
  for (int64_t i = 0; i < p.N; ++i) cmd_coefficients_one(p, i);
}

template <typename T>
void cmd_reconstruct_cpu(const CmdReconstructProblem<T>& p) {
#pragma omp parallel for schedule(static) if (parallel_worth(p.N))
  for (int64_t i = 0; i < p.N; ++i) cmd_reconstruct_one(p, i);
}

template void cmd_fit_cpu<float>(const CmdFitProblem<float>&);
template void cmd_fit_cpu<double>(const CmdFitProblem<double>&);
template void cmd_update_cpu<float>(const CmdUpdateProblem<float>&);
template void cmd_update_cpu<double>(const CmdUpdateProblem<double>&);
template void cmd_coefficients_cpu<float>(const CmdCoefProblem<float>&);
template void cmd_coefficients_cpu<double>(const CmdCoefProblem<double>&);
template void cmd_reconstruct_cpu<float>(const CmdReconstructProblem<float>&);
template void cmd_reconstruct_cpu<double>(
    const CmdReconstructProblem<double>&);

}  // namespace deepscope

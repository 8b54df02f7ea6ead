// Correlation Mode Decomposition kernels: fused assignment + affine fit,
// online sufficient statistics, coefficients and in-place reconstruction.
// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>

#include "common/check.h"

#ifdef __CUDACC__
#define DS_HOST_DEVICE __host__ __device__
#else
#define DS_HOST_DEVICE
#endif

namespace deepscope {

// Post-hoc fit of N parameter trajectories against M reference trajectories.
//
// w:        the window, element (i, t) at w[t * N + i] when time_major
//           ((T, N): one row per snapshot), else at w[i * T + t] ((N, T)).
// ref_centered: (M, T) double, r_m(t) - mean_t r_m.
// ref_mean: (M,) double, mean_t r_m.
// ref_inv_norm: (M,) double, 1 / sqrt(sum_t rc_m(t)^2), or 0 for a
//           degenerate (constant) reference, which then never wins.
// ref_inv_ss: (M,) double, 1 / sum_t rc_m(t)^2, or 0 when degenerate.
// Per parameter, with d_t = w_t - w_0 (shifted, accumulated in double):
//   sxx = sum d^2 - (sum d)^2 / T, c_m = sum_t d_t rc_m(t),
//   mode = argmax_m |c_m| * inv_norm_m (ties -> lowest m),
//   a = c_mode * inv_ss_mode, b = mean_t w - a * ref_mean_mode,
//   rho = c_mode * inv_norm_mode / sqrt(sxx) (0 when sxx == 0),
//   sse = max(sxx - a * c_mode, 0): the residual sum of squares.
// A constant trajectory gets mode 0, a = 0, b = w_0, rho = 0, sse = 0.
// A row holding NaN or infinity gets mode -1 (the caller raises).
// mode (N,) int64, a, b (N,) T; rho (N,) T, sxx and sse (N,) double are
// optional (nullptr).
template <typename T>
struct CmdFitProblem {
  const T* w = nullptr;
  std::int64_t N = 0, T_len = 0, M = 0;
  bool time_major = true;
  const double* ref_centered = nullptr;
  const double* ref_mean = nullptr;
  const double* ref_inv_norm = nullptr;
  const double* ref_inv_ss = nullptr;
  std::int64_t* mode = nullptr;
  T* a = nullptr;
  T* b = nullptr;
  T* rho = nullptr;
  double* sxx = nullptr;
  double* sse = nullptr;
};

// Online statistics of one new time sample, references frozen:
// d = w_i - shift_i; s1_i += d; c_i += d * ref_delta[mode_i]; s2_i += d^2.
// w, shift: (N,) T; mode: (N,) int64 in [0, M); ref_delta: (M,) double,
// r_m(t) - r_m(t0); s1, c, s2: (N,) double, updated in place.
template <typename T>
struct CmdUpdateProblem {
  const T* w = nullptr;
  std::int64_t N = 0;
  const std::int64_t* mode = nullptr;
  const T* shift = nullptr;
  const double* ref_delta = nullptr;
  double* s1 = nullptr;
  double* c = nullptr;
  double* s2 = nullptr;
};

// Least-squares coefficients from the online statistics over n samples:
// a_i = (n c_i - s1_i R1_m) * inv_den_m, with R1_m = sum_t (r_m - r_m(t0))
// and inv_den_m = 1 / (n R2_m - R1_m^2) (0 for a degenerate reference);
// b_i = shift_i + (s1_i - a_i R1_m) / n - a_i r0_m.
// Per-mode arrays are (M,) double; a, b (N,) T out.
template <typename T>
struct CmdCoefProblem {
  std::int64_t N = 0;
  double n = 0.0;
  const std::int64_t* mode = nullptr;
  const T* shift = nullptr;
  const double* s1 = nullptr;
  const double* c = nullptr;
  const double* r1 = nullptr;
  const double* inv_den = nullptr;
  const double* r0 = nullptr;
  T* a = nullptr;
  T* b = nullptr;
};

// Reconstruction w_i = a_i * ref_value[mode_i] + b_i, written into out (N,)
// T where mask is nullptr or mask[i] != 0 (other entries are left as they
// are). ref_value: (M,) double, the reference values at the wanted time.
template <typename T>
struct CmdReconstructProblem {
  std::int64_t N = 0;
  const std::int64_t* mode = nullptr;
  const T* a = nullptr;
  const T* b = nullptr;
  const double* ref_value = nullptr;
  const std::uint8_t* mask = nullptr;
  T* out = nullptr;
};

template <typename T>
void cmd_fit_cpu(const CmdFitProblem<T>& problem);
template <typename T>
void cmd_update_cpu(const CmdUpdateProblem<T>& problem);
template <typename T>
void cmd_coefficients_cpu(const CmdCoefProblem<T>& problem);
template <typename T>
void cmd_reconstruct_cpu(const CmdReconstructProblem<T>& problem);

#ifdef DEEPSCOPE_WITH_CUDA
template <typename T>
void cmd_fit_cuda(const CmdFitProblem<T>& problem, const Device& device);
template <typename T>
void cmd_update_cuda(const CmdUpdateProblem<T>& problem, const Device& device);
template <typename T>
void cmd_coefficients_cuda(const CmdCoefProblem<T>& problem,
                           const Device& device);
template <typename T>
void cmd_reconstruct_cuda(const CmdReconstructProblem<T>& problem,
                          const Device& device);
#endif

// The per-parameter outputs of the fit from its accumulated sums; shared by
// the CPU and CUDA kernels so both round identically. c: the M sums c_m.
template <typename T>
DS_HOST_DEVICE inline void cmd_fit_finish(const CmdFitProblem<T>& p,
                                          std::int64_t i, double w0,
                                          double s1, double s2,
                                          std::int64_t best, double c_best) {
  // A NaN or infinity anywhere in the row makes s2 non-finite: flag it.
  if (!(s2 <= 1.7976931348623157e308)) {
    p.mode[i] = -1;
    p.a[i] = static_cast<T>(0);
    p.b[i] = static_cast<T>(0);
    if (p.rho != nullptr) p.rho[i] = static_cast<T>(0);
    if (p.sxx != nullptr) p.sxx[i] = 0.0;
    if (p.sse != nullptr) p.sse[i] = 0.0;
    return;
  }
  const double Tn = static_cast<double>(p.T_len);
  double sxx = s2 - (s1 * s1) / Tn;
  if (!(sxx > 0.0)) sxx = 0.0;
  const double a = c_best * p.ref_inv_ss[best];
  const double mean = w0 + s1 / Tn;
  p.mode[i] = best;
  p.a[i] = static_cast<T>(a);
  p.b[i] = static_cast<T>(mean - a * p.ref_mean[best]);
  if (p.rho != nullptr) {
    double r = sxx > 0.0 ? (c_best * p.ref_inv_norm[best]) / sqrt(sxx) : 0.0;
    r = r > 1.0 ? 1.0 : (r < -1.0 ? -1.0 : r);
    p.rho[i] = static_cast<T>(r);
  }
  if (p.sxx != nullptr) p.sxx[i] = sxx;
  if (p.sse != nullptr) {
    const double e = sxx - a * c_best;
    p.sse[i] = e > 0.0 ? e : 0.0;
  }
}

template <typename T>
DS_HOST_DEVICE inline void cmd_update_one(const CmdUpdateProblem<T>& p,
                                          std::int64_t i) {
  const double d =
      static_cast<double>(p.w[i]) - static_cast<double>(p.shift[i]);
  p.s1[i] += d;
  p.c[i] += d * p.ref_delta[p.mode[i]];
  if (p.s2 != nullptr) p.s2[i] += d * d;
}

template <typename T>
DS_HOST_DEVICE inline void cmd_coefficients_one(const CmdCoefProblem<T>& p,
                                                std::int64_t i) {
  const std::int64_t m = p.mode[i];
  const double s1 = p.s1[i];
  const double a = (p.n * p.c[i] - s1 * p.r1[m]) * p.inv_den[m];
  p.a[i] = static_cast<T>(a);
  p.b[i] = static_cast<T>((static_cast<double>(p.shift[i]) +
                           (s1 - a * p.r1[m]) / p.n) -
                          a * p.r0[m]);
}

template <typename T>
DS_HOST_DEVICE inline void cmd_reconstruct_one(
    const CmdReconstructProblem<T>& p, std::int64_t i) {
  if (p.mask != nullptr && p.mask[i] == 0) return;
  const double v = static_cast<double>(p.a[i]) * p.ref_value[p.mode[i]] +
                   static_cast<double>(p.b[i]);
  p.out[i] = static_cast<T>(v);
}

}  // namespace deepscope

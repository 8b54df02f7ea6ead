// CUDA CMD kernels: one thread per parameter, same arithmetic order as the
// CPU kernels (cmd.h), so CPU and CUDA results are identical.
// SPDX-License-Identifier: MIT
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_utils.cuh"
#include "dynamics/cmd.h"

namespace deepscope {
namespace {

using std::int64_t;

constexpr int kThreads = 256;
// Modes whose cross sums one pass keeps in registers; more modes take
// further passes over the trajectory (same summation order per mode).
constexpr int kModeChunk = 16;

template <typename T>
__device__ inline double load_w(const CmdFitProblem<T>& p, int64_t i,
                                int64_t t) {
  return static_cast<double>(p.time_major ? p.w[t * p.N + i]
                                          : p.w[i * p.T_len + t]);
}

template <typename T>
__global__ void cmd_fit_kernel(CmdFitProblem<T> p) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.N) return;
  const int64_t Tn = p.T_len;
  const double w0 = load_w(p, i, 0);

  // Cross sums per chunk of modes (S1 and S2 with the first chunk), in
  // time order; running argmax |c_m| * inv_norm_m.
  double s1 = 0.0, s2 = 0.0;
  int64_t best = 0;
  double best_score = -1.0, c_best = 0.0;
  for (int64_t m0 = 0; m0 < p.M; m0 += kModeChunk) {
    const int mc = static_cast<int>(p.M - m0 < kModeChunk ? p.M - m0
                                                          : kModeChunk);
    double c[kModeChunk];
#pragma unroll
    for (int k = 0; k < kModeChunk; ++k) c[k] = 0.0;
    for (int64_t t = 0; t < Tn; ++t) {
      const double d = load_w(p, i, t) - w0;
      if (m0 == 0) {
        s1 += d;
        s2 += d * d;
      }
#pragma unroll
      for (int k = 0; k < kModeChunk; ++k) {
        if (k < mc) c[k] += d * p.ref_centered[(m0 + k) * Tn + t];
      }
    }
#pragma unroll
    for (int k = 0; k < kModeChunk; ++k) {
      if (k < mc) {
        const double score = fabs(c[k]) * p.ref_inv_norm[m0 + k];
        if (score > best_score) {
          best_score = score;
          best = m0 + k;
          c_best = c[k];
        }
      }
    }
  }
  cmd_fit_finish(p, i, w0, s1, s2, best, c_best);
}

template <typename T>
__global__ void cmd_update_kernel(CmdUpdateProblem<T> p) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < p.N) cmd_update_one(p, i);
}

template <typename T>
__global__ void cmd_coefficients_kernel(CmdCoefProblem<T> p) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < p.N) cmd_coefficients_one(p, i);
}

template <typename T>
__global__ void cmd_reconstruct_kernel(CmdReconstructProblem<T> p) {
  const int64_t i =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < p.N) cmd_reconstruct_one(p, i);
}

unsigned grid_for(int64_t N) {
  return static_cast<unsigned>(ceil_div(N, static_cast<int64_t>(kThreads)));
}

}  // namespace

template <typename T>
void cmd_fit_cuda(const CmdFitProblem<T>& p, const Device& device) {
  DS_CHECK_ARG(p.T_len >= 1, "T: expected >= 1 time samples, got " << p.T_len);
  DS_CHECK_ARG(p.M >= 1, "M: expected >= 1 modes, got " << p.M);
  if (p.N == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  cmd_fit_kernel<T><<<grid_for(p.N), kThreads, 0, stream>>>(p);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template <typename T>
void cmd_update_cuda(const CmdUpdateProblem<T>& p, const Device& device) {
  if (p.N == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  cmd_update_kernel<T><<<grid_for(p.N), kThreads, 0, stream>>>(p);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template <typename T>
void cmd_coefficients_cuda(const CmdCoefProblem<T>& p, const Device& device) {
  DS_CHECK_ARG(p.n >= 1.0, "n: expected >= 1 samples, got " << p.n);
  if (p.N == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  cmd_coefficients_kernel<T><<<grid_for(p.N), kThreads, 0, stream>>>(p);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template <typename T>
void cmd_reconstruct_cuda(const CmdReconstructProblem<T>& p,
                          const Device& device) {
  if (p.N == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  cmd_reconstruct_kernel<T><<<grid_for(p.N), kThreads, 0, stream>>>(p);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template void cmd_fit_cuda<float>(const CmdFitProblem<float>&, const Device&);
template void cmd_fit_cuda<double>(const CmdFitProblem<double>&,
                                   const Device&);
template void cmd_update_cuda<float>(const CmdUpdateProblem<float>&,
                                     const Device&);
template void cmd_update_cuda<double>(const CmdUpdateProblem<double>&,
                                      const Device&);
template void cmd_coefficients_cuda<float>(const CmdCoefProblem<float>&,
                                           const Device&);
template void cmd_coefficients_cuda<double>(const CmdCoefProblem<double>&,
                                            const Device&);
template void cmd_reconstruct_cuda<float>(const CmdReconstructProblem<float>&,
                                          const Device&);
template void cmd_reconstruct_cuda<double>(
    const CmdReconstructProblem<double>&, const Device&);

}  // namespace deepscope

// Exact farthest point sampling on CUDA: one thread block per cloud.
// SPDX-License-Identifier: MIT
#include <cooperative_groups.h>

#include <cstdint>

#include "common/cuda_utils.cuh"
#include "pointcloud/fps.h"

namespace deepscope {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 1024;
constexpr int kWarp = 32;
constexpr long long kNoIndex = 0x7fffffffffffffffLL;

// Single clouds at least this wide use the multi-block (cooperative) kernel.
constexpr std::int64_t kGridMinPoints = 32768;
constexpr int kGridThreads = 256;
// Points per thread the grid kernel aims for, and its block cap (the
// scratch tail holds 2 * kMaxGridBlocks partial results of each kind).
constexpr std::int64_t kGridPointsPerThread = 16;
constexpr int kMaxGridBlocks = kFpsCudaScratchExtra / 4;

// Keeps (val, idx) or takes (other_val, other_idx): larger value, then
// lower index.
__device__ __forceinline__ void keep_better(double& val, long long& idx,
                                            double other_val,
                                            long long other_idx) {
  if (other_val > val || (other_val == val && other_idx < idx)) {
    val = other_val;
    idx = other_idx;
  }
}

// Warp-wide (largest value, lowest index); the result is valid in lane 0.
__device__ __forceinline__ void warp_argmax(double& val, long long& idx) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const double other_val = __shfl_down_sync(0xffffffffu, val, offset);
    const long long other_idx = __shfl_down_sync(0xffffffffu, idx, offset);
    keep_better(val, idx, other_val, other_idx);
  }
}

// Squared distance between points i and s of one cloud, summed left to
// right over dimensions in double (kD > 0 fixes D at compile time).
template <typename scalar_t, int kD>
__device__ __forceinline__ double squared_distance(const scalar_t* p,
                                                   long long i, long long s,
                                                   long long D) {
  const long long dims = kD > 0 ? kD : D;
  const scalar_t* a = p + i * dims;
  const scalar_t* b = p + s * dims;
  double dx = static_cast<double>(a[0]) - static_cast<double>(b[0]);
  double sum = dx * dx;
  for (long long d = 1; d < dims; ++d) {
    dx = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    sum = sum + dx * dx;
  }
  return sum;
}

// Block-wide (largest value, lowest index); the result is valid in thread 0.
// Synchronises the block around its use of the shared slots, so callers may
// call it again right away.
__device__ __forceinline__ void block_argmax(double& val, long long& idx,
                                             double* warp_val,
                                             long long* warp_idx) {
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  warp_argmax(val, idx);
  __syncthreads();
  if (lane == 0) {
    warp_val[warp] = val;
    warp_idx[warp] = idx;
  }
  __syncthreads();
  if (warp == 0) {
    val = lane < n_warps ? warp_val[lane] : -1.0;
    idx = lane < n_warps ? warp_idx[lane] : kNoIndex;
    warp_argmax(val, idx);
  }
  __syncthreads();
}

// Grid: one block per cloud; blockDim.x is a multiple of 32, <= 1024.
// Thread t owns points t, t + blockDim.x, ... so its own scan meets indices
// in increasing order and a strict '>' keeps the lowest index on ties.
template <typename scalar_t, int kD>
__global__ void fps_kernel(const scalar_t* __restrict__ points, long long N,
                           long long D,
                           const std::int64_t* __restrict__ lengths,
                           const std::int64_t* __restrict__ n_samples,
                           const std::int64_t* __restrict__ starts, long long K,
                           std::int64_t* __restrict__ indices,
                           scalar_t* __restrict__ distances,
                           std::int64_t* __restrict__ counts,
                           double* __restrict__ scratch) {
  __shared__ double warp_val[kMaxThreads / kWarp];
  __shared__ long long warp_idx[kMaxThreads / kWarp];
  __shared__ double chosen_val;
  __shared__ long long chosen_idx;

  const long long b = blockIdx.x;
  const int tid = threadIdx.x;
  const int lane = tid % kWarp;
  const int warp = tid / kWarp;
  const int n_warps = blockDim.x / kWarp;
  const long long n = lengths[b];
  const long long m = n_samples[b];
  const scalar_t* p = points + b * N * D;
  double* mind = scratch + b * N;
  std::int64_t* out_idx = indices + b * K;
  scalar_t* out_dist = distances + b * K;

  long long count = 0;
  long long sel = m > 0 ? starts[b] : 0;
  double sel_val = 0.0;
  for (long long k = 0; k < m; ++k) {
    // Record the current sample (only thread 0 writes valid slots).
    if (tid == 0) {
      out_idx[k] = sel;
      out_dist[k] = static_cast<scalar_t>(sel_val);
    }
    count = k + 1;
    if (count == m) break;

    // Shrink this thread's minima and find its first largest one.
    double best = -1.0;
    long long best_i = kNoIndex;
    for (long long i = tid; i < n; i += blockDim.x) {
      const double dist = squared_distance<scalar_t, kD>(p, i, sel, D);
      const double v = k == 0 ? dist : fmin(mind[i], dist);
      mind[i] = v;
      if (v > best) {
        best = v;
        best_i = i;
      }
    }

    // Block argmax: warps, then the first warp over the warp results.
    warp_argmax(best, best_i);
    if (lane == 0) {
      warp_val[warp] = best;
      warp_idx[warp] = best_i;
    }
    __syncthreads();
    if (warp == 0) {
      best = lane < n_warps ? warp_val[lane] : -1.0;
      best_i = lane < n_warps ? warp_idx[lane] : kNoIndex;
      warp_argmax(best, best_i);
      if (lane == 0) {
        chosen_val = best;
        chosen_idx = best_i;
      }
    }
    __syncthreads();
    sel = chosen_idx;
    sel_val = chosen_val;

    // Only duplicates of selected points remain: stop early.
    if (sel_val <= 0.0) break;
  }

  // Slots after the last sample: index -1, distance 0.
  for (long long k = count + tid; k < K; k += blockDim.x) {
    out_idx[k] = -1;
    out_dist[k] = scalar_t(0);
  }
  if (tid == 0) counts[b] = count;
}

// One cloud (b = 0) spread over a cooperative grid. Thread g of the grid
// owns points g, g + G * blockDim.x, ... Each step every block reduces its
// points to one (value, index) pair in part_val / part_idx (double buffered
// by step parity), the grid synchronises, and every block reduces the same
// partial results in the same way, so all blocks agree on the next sample.
template <typename scalar_t, int kD>
__global__ void fps_grid_kernel(const scalar_t* __restrict__ points,
                                long long N, long long D,
                                const std::int64_t* __restrict__ lengths,
                                const std::int64_t* __restrict__ n_samples,
                                const std::int64_t* __restrict__ starts,
                                long long K, std::int64_t* __restrict__ indices,
                                scalar_t* __restrict__ distances,
                                std::int64_t* __restrict__ counts,
                                double* __restrict__ mind,
                                double* part_val, long long* part_idx) {
  __shared__ double warp_val[kMaxThreads / kWarp];
  __shared__ long long warp_idx[kMaxThreads / kWarp];
  __shared__ double chosen_val;
  __shared__ long long chosen_idx;

  cg::grid_group grid = cg::this_grid();
  const int tid = threadIdx.x;
  const int blocks = gridDim.x;
  const long long first =
      static_cast<long long>(blockIdx.x) * blockDim.x + tid;
  const long long stride = static_cast<long long>(blocks) * blockDim.x;
  const long long n = lengths[0];
  const long long m = n_samples[0];

  long long count = 0;
  long long sel = m > 0 ? starts[0] : 0;
  double sel_val = 0.0;
  for (long long k = 0; k < m; ++k) {
    // Record the current sample (only the grid's thread 0 writes it).
    if (first == 0) {
      indices[k] = sel;
      distances[k] = static_cast<scalar_t>(sel_val);
    }
    count = k + 1;
    if (count == m) break;

    // Shrink this thread's minima and find its first largest one.
    double best = -1.0;
    long long best_i = kNoIndex;
    for (long long i = first; i < n; i += stride) {
      const double dist = squared_distance<scalar_t, kD>(points, i, sel, D);
      const double v = k == 0 ? dist : fmin(mind[i], dist);
      mind[i] = v;
      if (v > best) {
        best = v;
        best_i = i;
      }
    }

    // Block result to this step's buffer, then wait for every block.
    block_argmax(best, best_i, warp_val, warp_idx);
    double* step_val = part_val + (k & 1) * kMaxGridBlocks;
    long long* step_idx = part_idx + (k & 1) * kMaxGridBlocks;
    if (tid == 0) {
      step_val[blockIdx.x] = best;
      step_idx[blockIdx.x] = best_i;
    }
    grid.sync();

    // Every block reduces all partial results identically.
    if (tid < kWarp) {
      best = -1.0;
      best_i = kNoIndex;
      for (int j = tid; j < blocks; j += kWarp) {
        keep_better(best, best_i, step_val[j], step_idx[j]);
      }
      warp_argmax(best, best_i);
      if (tid == 0) {
        chosen_val = best;
        chosen_idx = best_i;
      }
    }
    __syncthreads();
    sel = chosen_idx;
    sel_val = chosen_val;

    // Only duplicates of selected points remain: stop early.
    if (sel_val <= 0.0) break;
  }

  // Slots after the last sample: index -1, distance 0.
  for (long long k = count + first; k < K; k += stride) {
    indices[k] = -1;
    distances[k] = scalar_t(0);
  }
  if (first == 0) counts[0] = count;
}

// Launches the grid kernel for one cloud; false when the device cannot run
// a cooperative launch of at least two blocks (the caller falls back).
template <typename scalar_t, int kD>
bool launch_grid(const scalar_t* points, long long N, long long D,
                 const std::int64_t* lengths, const std::int64_t* n_samples,
                 const std::int64_t* starts, long long K,
                 std::int64_t* indices, scalar_t* distances,
                 std::int64_t* counts, double* scratch, int device,
                 cudaStream_t stream) {
  int cooperative = 0;
  int sms = 0;
  int per_sm = 0;
  DS_CUDA_CHECK(cudaDeviceGetAttribute(
      &cooperative, cudaDevAttrCooperativeLaunch, device));
  DS_CUDA_CHECK(cudaDeviceGetAttribute(
      &sms, cudaDevAttrMultiProcessorCount, device));
  DS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, fps_grid_kernel<scalar_t, kD>, kGridThreads, 0));
  const long long wanted = ceil_div(N, kGridThreads * kGridPointsPerThread);
  long long blocks = static_cast<long long>(sms) * per_sm;
  blocks = blocks < wanted ? blocks : wanted;
  blocks = blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks;
  if (!cooperative || blocks < 2) return false;

  double* mind = scratch;
  double* part_val = scratch + N;
  long long* part_idx =
      reinterpret_cast<long long*>(scratch + N + 2 * kMaxGridBlocks);
  void* args[] = {&points,  &N,         &D,      &lengths,  &n_samples,
                  &starts,  &K,         &indices, &distances, &counts,
                  &mind,    &part_val,  &part_idx};
  const cudaError_t err = cudaLaunchCooperativeKernel(
      reinterpret_cast<void*>(fps_grid_kernel<scalar_t, kD>),
      dim3(static_cast<unsigned int>(blocks)), dim3(kGridThreads), args, 0,
      stream);
  if (err == cudaErrorCooperativeLaunchTooLarge ||
      err == cudaErrorNotSupported) {
    cudaGetLastError();  // clear it; the one-block kernel runs instead
    return false;
  }
  DS_CUDA_CHECK(err);
  return true;
}

// Block size by cloud width: small clouds waste less time in reductions.
int threads_for(std::int64_t N) {
  if (N <= 2048) return 256;
  if (N <= 16384) return 512;
  return kMaxThreads;
}

}  // namespace

template <typename scalar_t>
void farthest_point_sample_cuda(const scalar_t* points, std::int64_t B,
                                std::int64_t N, std::int64_t D,
                                const std::int64_t* lengths,
                                const std::int64_t* n_samples,
                                const std::int64_t* starts, std::int64_t K,
                                std::int64_t* indices, scalar_t* distances,
                                std::int64_t* counts, double* scratch,
                                const Device& device) {
  DS_CHECK_ARG(D >= 1, "points: expected at least 1 coordinate, got " << D);
  DS_CHECK_ARG(B < 0x7fffffffLL, "points: batch too large, got " << B);
  if (B == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  // A single wide cloud spreads over many blocks; batches use one per cloud.
  if (B == 1 && N >= kGridMinPoints) {
    bool launched = false;
    switch (D) {
      case 2:
        launched = launch_grid<scalar_t, 2>(points, N, D, lengths, n_samples,
                                            starts, K, indices, distances,
                                            counts, scratch, device.index,
                                            stream);
        break;
      case 3:
        launched = launch_grid<scalar_t, 3>(points, N, D, lengths, n_samples,
                                            starts, K, indices, distances,
                                            counts, scratch, device.index,
                                            stream);
        break;
      default:
        launched = launch_grid<scalar_t, 0>(points, N, D, lengths, n_samples,
                                            starts, K, indices, distances,
                                            counts, scratch, device.index,
                                            stream);
    }
    if (launched) {
      DS_CUDA_CHECK_LAUNCH(stream);
      return;
    }
  }

  const dim3 grid(static_cast<unsigned int>(B));
  const dim3 block(threads_for(N));
  switch (D) {
    case 2:
      fps_kernel<scalar_t, 2><<<grid, block, 0, stream>>>(
          points, N, D, lengths, n_samples, starts, K, indices, distances,
          counts, scratch);
      break;
    case 3:
      fps_kernel<scalar_t, 3><<<grid, block, 0, stream>>>(
          points, N, D, lengths, n_samples, starts, K, indices, distances,
          counts, scratch);
      break;
    default:
      fps_kernel<scalar_t, 0><<<grid, block, 0, stream>>>(
          points, N, D, lengths, n_samples, starts, K, indices, distances,
          counts, scratch);
  }
  DS_CUDA_CHECK_LAUNCH(stream);
}

template void farthest_point_sample_cuda<float>(
    const float*, std::int64_t, std::int64_t, std::int64_t,
    const std::int64_t*, const std::int64_t*, const std::int64_t*,
    std::int64_t, std::int64_t*, float*, std::int64_t*, double*,
    const Device&);
template void farthest_point_sample_cuda<double>(
    const double*, std::int64_t, std::int64_t, std::int64_t,
    const std::int64_t*, const std::int64_t*, const std::int64_t*,
    std::int64_t, std::int64_t*, double*, std::int64_t*, double*,
    const Device&);

}  // namespace deepscope

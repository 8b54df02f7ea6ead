// Exact kNN and ball query on CUDA: tiled brute force, one thread per query.
// SPDX-License-Identifier: MIT
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "common/cuda_utils.cuh"
#include "pointcloud/knn.h"

namespace deepscope {
namespace {

constexpr int kThreads = 128;          // queries per block
constexpr int kSharedDoubles = 6144;   // 48 KiB reference tile

// Each block serves kThreads queries of one cloud. Reference points of that
// cloud stream through shared memory in tiles (float64); every thread scans
// each tile in increasing index order and keeps its K best candidates
// sorted by (distance, index). Because indices only grow, a candidate equal
// in distance to the worst never displaces it: ties keep the lowest index,
// exactly as on the CPU. With kMaxK > 0 the list lives in per-thread local
// memory; with kMaxK == 0 it lives in global scratch (any K).
//
// Grid: blocks_per_cloud * B blocks in x. Shared: tile_points * D doubles.
template <typename T, int kDim, int kMaxK>
__global__ void neighbor_search_kernel(
    const T* __restrict__ query, const T* __restrict__ reference,
    const std::int64_t* __restrict__ query_lengths,
    const std::int64_t* __restrict__ reference_lengths, std::int64_t M,
    std::int64_t N, std::int64_t dim, std::int64_t K, double max_d2,
    bool self_query, bool exclude_self, bool squared, int blocks_per_cloud,
    int tile_points, double* __restrict__ scratch_d,
    std::int64_t* __restrict__ indices, T* __restrict__ distances,
    std::int64_t* __restrict__ counts) {
  extern __shared__ double tile[];
  const std::int64_t D = kDim > 0 ? kDim : dim;
  const std::int64_t b = blockIdx.x / blocks_per_cloud;
  const std::int64_t m =
      static_cast<std::int64_t>(blockIdx.x % blocks_per_cloud) * kThreads +
      threadIdx.x;

  // Valid lengths of this cloud (uniform across the block).
  std::int64_t n = reference_lengths ? reference_lengths[b] : N;
  n = n < 0 ? 0 : (n > N ? N : n);
  std::int64_t m_len;
  if (self_query) {
    m_len = n;
  } else {
    m_len = query_lengths ? query_lengths[b] : M;
    m_len = m_len < 0 ? 0 : (m_len > M ? M : m_len);
  }
  const bool in_range = m < M;
  const bool active = m < m_len;
  const std::int64_t row = b * M + m;

  // This thread's query in float64 (registers for fixed small D).
  double q_fixed[kDim > 0 ? kDim : 1];
  const T* q_src = query + (in_range ? row : 0) * D;
  if (kDim > 0 && active) {
#pragma unroll
    for (int d = 0; d < (kDim > 0 ? kDim : 1); ++d) {
      q_fixed[d] = static_cast<double>(q_src[d]);
    }
  }

  // The best list: local memory for small K, global scratch otherwise.
  double local_d[kMaxK > 0 ? kMaxK : 1];
  std::int64_t local_i[kMaxK > 0 ? kMaxK : 1];
  double* best_d = local_d;
  std::int64_t* best_i = local_i;
  if (kMaxK == 0 && in_range) {
    best_d = scratch_d + row * K;
    best_i = indices + row * K;
  }
  std::int64_t count = 0;

  const T* cloud = reference + b * N * D;
  for (std::int64_t start = 0; start < n; start += tile_points) {
    // Stage one tile of reference points (all threads, then a barrier).
    std::int64_t in_tile = n - start;
    if (in_tile > tile_points) in_tile = tile_points;
    const std::int64_t values = in_tile * D;
    for (std::int64_t t = threadIdx.x; t < values; t += kThreads) {
      tile[t] = static_cast<double>(cloud[start * D + t]);
    }
    __syncthreads();

    if (active) {
      for (std::int64_t jj = 0; jj < in_tile; ++jj) {
        const std::int64_t j = start + jj;
        const double* p = tile + jj * D;
        double d2 = 0.0;
        if (kDim > 0) {
#pragma unroll
          for (int d = 0; d < (kDim > 0 ? kDim : 1); ++d) {
            const double diff = q_fixed[d] - p[d];
            d2 = __dadd_rn(d2, __dmul_rn(diff, diff));
          }
        } else {
          for (std::int64_t d = 0; d < D; ++d) {
            const double diff = static_cast<double>(q_src[d]) - p[d];
            d2 = __dadd_rn(d2, __dmul_rn(diff, diff));
          }
        }
        if (d2 > max_d2) continue;
        if (exclude_self && j == m) continue;
        if (count == K && !(d2 < best_d[K - 1])) continue;

        // Insert after every entry with distance <= d2 (they have lower j).
        std::int64_t pos = count < K ? count++ : K - 1;
        while (pos > 0 && best_d[pos - 1] > d2) {
          best_d[pos] = best_d[pos - 1];
          best_i[pos] = best_i[pos - 1];
          --pos;
        }
        best_d[pos] = d2;
        best_i[pos] = j;
      }
    }
    __syncthreads();
  }

  // Results: sorted list, then -1 / +inf padding.
  if (!in_range) return;
  std::int64_t* out_i = indices + row * K;
  T* out_d = distances + row * K;
  for (std::int64_t i = 0; i < count; ++i) {
    out_i[i] = best_i[i];
    const double d = squared ? best_d[i] : sqrt(best_d[i]);
    out_d[i] = static_cast<T>(d);
  }
  for (std::int64_t i = count; i < K; ++i) {
    out_i[i] = -1;
    out_d[i] = static_cast<T>(INFINITY);
  }
  counts[row] = count;
}

template <typename T, int kDim, int kMaxK>
void launch(const NeighborSearch& s, const T* query, const T* reference,
            const std::int64_t* query_lengths,
            const std::int64_t* reference_lengths, std::int64_t* indices,
            T* distances, std::int64_t* counts, cudaStream_t stream) {
  const std::int64_t B = s.batch, M = s.num_query, D = s.dim, K = s.k;
  const std::int64_t blocks_per_cloud = (M + kThreads - 1) / kThreads;
  const std::int64_t blocks = blocks_per_cloud * B;
  DS_CHECK_ARG(blocks <= 2147483647LL,
               "query: too many points for one launch (" << B * M << ")");
  std::int64_t tile_points = kSharedDoubles / D;
  if (tile_points > 1024) tile_points = 1024;
  if (tile_points < 1) tile_points = 1;
  const std::size_t shared = sizeof(double) * tile_points * D;
  if (shared > 48 * 1024) {
    DS_CUDA_CHECK(cudaFuncSetAttribute(
        neighbor_search_kernel<T, kDim, kMaxK>,
        cudaFuncAttributeMaxDynamicSharedMemorySize,
        static_cast<int>(shared)));
  }

  // Global scratch for the float64 best distances when K is large.
  double* scratch = nullptr;
  if (kMaxK == 0) {
    DS_CUDA_CHECK(cudaMallocAsync(&scratch, sizeof(double) * B * M * K,
                                  stream));
  }
  neighbor_search_kernel<T, kDim, kMaxK>
      <<<static_cast<unsigned int>(blocks), kThreads, shared, stream>>>(
          query, reference, query_lengths, reference_lengths, M, s.num_ref,
          D, K, s.max_d2, s.self_query, s.exclude_self, s.squared,
          static_cast<int>(blocks_per_cloud), static_cast<int>(tile_points),
          scratch, indices, distances, counts);
  // Free the scratch (stream-ordered) before a failed launch can throw.
  const cudaError_t launch_error = cudaGetLastError();
  if (scratch != nullptr) DS_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  DS_CUDA_CHECK(launch_error);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template <typename T, int kDim>
void launch_k(const NeighborSearch& s, const T* query, const T* reference,
              const std::int64_t* query_lengths,
              const std::int64_t* reference_lengths, std::int64_t* indices,
              T* distances, std::int64_t* counts, cudaStream_t stream) {
  if (s.k <= 8) {
    launch<T, kDim, 8>(s, query, reference, query_lengths, reference_lengths,
                       indices, distances, counts, stream);
  } else if (s.k <= 32) {
    launch<T, kDim, 32>(s, query, reference, query_lengths,
                        reference_lengths, indices, distances, counts, stream);
  } else {
    launch<T, kDim, 0>(s, query, reference, query_lengths, reference_lengths,
                       indices, distances, counts, stream);
  }
}

}  // namespace

template <typename T>
void neighbor_search_cuda(const NeighborSearch& s, const T* query,
                          const T* reference,
                          const std::int64_t* query_lengths,
                          const std::int64_t* reference_lengths,
                          std::int64_t* indices, T* distances,
                          std::int64_t* counts, const Device& device) {
  DS_CHECK_ARG(s.dim >= 1, "dim: expected >= 1, got " << s.dim);
  DS_CHECK_ARG(s.k >= 1, "k: expected >= 1, got " << s.k);
  if (s.batch == 0 || s.num_query == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  if (s.dim == 3) {
    launch_k<T, 3>(s, query, reference, query_lengths, reference_lengths,
                   indices, distances, counts, stream);
  } else if (s.dim == 2) {
    launch_k<T, 2>(s, query, reference, query_lengths, reference_lengths,
                   indices, distances, counts, stream);
  } else {
    launch_k<T, 0>(s, query, reference, query_lengths, reference_lengths,
                   indices, distances, counts, stream);
  }
}

template void neighbor_search_cuda<float>(const NeighborSearch&, const float*,
                                          const float*, const std::int64_t*,
                                          const std::int64_t*, std::int64_t*,
                                          float*, std::int64_t*,
                                          const Device&);
template void neighbor_search_cuda<double>(const NeighborSearch&,
                                           const double*, const double*,
                                           const std::int64_t*,
                                           const std::int64_t*, std::int64_t*,
                                           double*, std::int64_t*,
                                           const Device&);

}  // namespace deepscope

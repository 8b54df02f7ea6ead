// CUDA fused top-k selection and exact re-ranking (one thread per row).
// SPDX-License-Identifier: MIT
#include <cstdint>

#include "common/cuda_utils.cuh"
#include "graph/knn_select.h"
#include "graph/knn_select_impl.h"

namespace deepscope {

namespace {

constexpr int kThreads = 128;

// Each thread keeps its row's pool in local memory while it scans the block.
template <typename T>
__global__ void topk_block_kernel(TopkBlock b, const T* gram,
                                  const T* row_norms, const T* col_norms,
                                  std::int64_t* pool_idx, double* pool_d2) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= b.rows) return;

  // Load the pool.
  std::int64_t idx[kMaxCudaPool];
  double d2[kMaxCudaPool];
  for (std::int64_t p = 0; p < b.pool; ++p) {
    idx[p] = pool_idx[i * b.pool + p];
    d2[p] = pool_d2[i * b.pool + p];
  }

  // Merge the block row.
  knn_select_detail::update_row(gram, i, b.cols, b.row_stride, b.col_stride,
                                b.row_offset, b.col_offset, b.exclude_self,
                                static_cast<double>(row_norms[i]), col_norms,
                                idx, d2, b.pool);

  // Store it back.
  for (std::int64_t p = 0; p < b.pool; ++p) {
    pool_idx[i * b.pool + p] = idx[p];
    pool_d2[i * b.pool + p] = d2[p];
  }
}

template <typename T>
__global__ void rerank_kernel(RerankArgs a, const T* query, const T* reference,
                              const std::int64_t* pool_idx,
                              const double* pool_d2, const double* slack,
                              std::int64_t* indices, double* d2,
                              std::int64_t* certified) {
  const std::int64_t m =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= a.num_query) return;
  std::int64_t scratch_idx[kMaxCudaPool];
  double scratch_d2[kMaxCudaPool];
  certified[m] = knn_select_detail::rerank_row(
      query + m * a.dim, reference, a.dim, pool_idx + m * a.pool,
      pool_d2 + m * a.pool, slack[m], a.pool, a.k, scratch_idx, scratch_d2,
      indices + m * a.k, d2 + m * a.k);
}

}  // namespace

template <typename T>
void topk_block_update_cuda(const TopkBlock& b, const T* gram,
                            const T* row_norms, const T* col_norms,
                            std::int64_t* pool_idx, double* pool_d2,
                            const Device& device) {
  DS_CHECK_ARG(b.pool >= 1 && b.pool <= kMaxCudaPool,
               "pool: expected 1 <= pool <= " << kMaxCudaPool
                                              << " on CUDA, got " << b.pool);
  if (b.rows == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  topk_block_kernel<T><<<ceil_div(b.rows, kThreads), kThreads, 0, stream>>>(
      b, gram, row_norms, col_norms, pool_idx, pool_d2);
  DS_CUDA_CHECK_LAUNCH(stream);
}

template <typename T>
void rerank_pool_cuda(const RerankArgs& a, const T* query, const T* reference,
                      const std::int64_t* pool_idx, const double* pool_d2,
                      const double* slack, std::int64_t* indices, double* d2,
                      std::int64_t* certified, const Device& device) {
  DS_CHECK_ARG(a.k >= 1 && a.k <= a.pool,
               "k: expected 1 <= k <= pool (" << a.pool << "), got " << a.k);
  DS_CHECK_ARG(a.pool <= kMaxCudaPool, "pool: expected <= "
                                           << kMaxCudaPool << " on CUDA, got "
                                           << a.pool);
  if (a.num_query == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  rerank_kernel<T><<<ceil_div(a.num_query, kThreads), kThreads, 0, stream>>>(
      a, query, reference, pool_idx, pool_d2, slack, indices, d2, certified);
  DS_CUDA_CHECK_LAUNCH(stream);
}

#define DS_INSTANTIATE(T)                                                      \
  template void topk_block_update_cuda<T>(const TopkBlock&, const T*,          \
                                          const T*, const T*, std::int64_t*,   \
                                          double*, const Device&);             \
  template void rerank_pool_cuda<T>(                                           \
      const RerankArgs&, const T*, const T*, const std::int64_t*,              \
      const double*, const double*, std::int64_t*, double*, std::int64_t*,     \
      const Device&);
DS_INSTANTIATE(float)
DS_INSTANTIATE(double)
#undef DS_INSTANTIATE

}  // namespace deepscope

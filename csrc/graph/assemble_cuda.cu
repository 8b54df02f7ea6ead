// CUDA assembly of kNN affinity graphs and Laplacians in CSR (deterministic).
// SPDX-License-Identifier: MIT
#include <cub/cub.cuh>

#include <cstdint>
#include <limits>

#include "common/cuda_utils.cuh"
#include "graph/assemble.h"
#include "graph/assemble_impl.h"

namespace deepscope {

namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(std::int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

// Device scratch memory freed on the stream when it goes out of scope.
template <typename U>
class Scratch {
 public:
  Scratch(std::size_t count, cudaStream_t stream) : stream_(stream) {
    if (count > 0) {
      DS_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr_),
                                    count * sizeof(U), stream));
    }
  }
  ~Scratch() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  U* get() const { return ptr_; }

 private:
  U* ptr_ = nullptr;
  cudaStream_t stream_;
};

// Exclusive prefix sum of `count` int64 values (out may alias nothing).
void exclusive_sum(const std::int64_t* in, std::int64_t* out,
                   std::int64_t count, cudaStream_t stream) {
  DS_CHECK_ARG(count < std::numeric_limits<int>::max(),
               "graph too large for the CUDA assembly: " << count);
  std::size_t bytes = 0;
  DS_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out,
                                              static_cast<int>(count), stream));
  Scratch<unsigned char> temp(bytes, stream);
  DS_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.get(), bytes, in, out,
                                              static_cast<int>(count), stream));
}

// Per-point scales and the bucket sizes (out-edges + in-edges per point).
__global__ void sigma_count_kernel(GraphAssembly g, const std::int64_t* idx,
                                   const double* d2, double* sigma,
                                   unsigned long long* count) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n) return;
  sigma[i] = assemble_detail::point_sigma(g, idx + i * g.k, d2 + i * g.k);
  unsigned long long own = 0;
  for (std::int64_t c = 0; c < g.k; ++c) {
    const std::int64_t j = idx[i * g.k + c];
    if (j < 0 || j == i) continue;
    ++own;
    atomicAdd(count + j, 1ULL);
  }
  atomicAdd(count + i, own);
}

// Scatters both half-edges of every directed edge into the buckets. The
// order inside a bucket is arbitrary here; keys are unique per bucket
// (column * 2 + direction), so the segmented sort fixes one order.
__global__ void scatter_kernel(GraphAssembly g, const std::int64_t* idx,
                               const double* d2, const double* sigma,
                               const std::int64_t* start,
                               unsigned long long* fill, std::int64_t* keys,
                               double* weights) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n) return;
  for (std::int64_t c = 0; c < g.k; ++c) {
    const std::int64_t j = idx[i * g.k + c];
    if (j < 0 || j == i) continue;
    const double w =
        assemble_detail::edge_weight(g, d2[i * g.k + c], sigma[i], sigma[j]);
    const std::int64_t out =
        start[i] + static_cast<std::int64_t>(atomicAdd(fill + i, 1ULL));
    keys[out] = 2 * j;  // outgoing i -> j sorts first
    weights[out] = w;
    const std::int64_t in =
        start[j] + static_cast<std::int64_t>(atomicAdd(fill + j, 1ULL));
    keys[in] = 2 * i + 1;  // incoming i -> j, stored in j's bucket
    weights[in] = w;
  }
}

// Merges the two directions of each column in place (as the CPU does).
__global__ void merge_kernel(GraphAssembly g, const std::int64_t* start,
                             std::int64_t* keys, double* weights,
                             std::int64_t* merged) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n) return;
  const std::int64_t s = start[i], len = start[i + 1] - s;
  std::int64_t* key = keys + s;
  double* w = weights + s;
  std::int64_t out = 0;
  for (std::int64_t p = 0; p < len;) {
    const std::int64_t col = key[p] >> 1;
    bool has_a = false, has_b = false;
    double a = 0.0, b = 0.0;
    for (; p < len && (key[p] >> 1) == col; ++p) {
      if ((key[p] & 1) == 0) {
        has_a = true;
        a = w[p];
      } else {
        has_b = true;
        b = w[p];
      }
    }
    double v = 0.0;
    if (assemble_detail::combine(g.symmetrize, has_a, a, has_b, b, &v) &&
        v != 0.0) {
      key[out] = col;
      w[out++] = v;
    }
  }
  merged[i] = out;
}

template <typename T>
__global__ void compact_kernel(std::int64_t n, const std::int64_t* start,
                               const std::int64_t* keys,
                               const double* weights,
                               const std::int64_t* indptr, std::int64_t* cols,
                               T* vals) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const std::int64_t s = start[i];
  for (std::int64_t p = 0; p < indptr[i + 1] - indptr[i]; ++p) {
    cols[indptr[i] + p] = keys[s + p];
    vals[indptr[i] + p] = static_cast<T>(weights[s + p]);
  }
}

// Degrees (row sums in column order, self loops skipped) and row sizes.
template <typename T>
__global__ void degree_kernel(std::int64_t n, const std::int64_t* indptr,
                              const std::int64_t* cols, const T* vals,
                              double* degrees, std::int64_t* size) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  assemble_detail::row_degree(i, indptr, cols, vals, &degrees[i], &size[i]);
}

// Rows of L with the diagonal placed in column order.
template <typename T>
__global__ void laplacian_kernel(std::int64_t n, LaplacianKind kind,
                                 const std::int64_t* indptr,
                                 const std::int64_t* cols, const T* vals,
                                 const double* degrees,
                                 const std::int64_t* out_indptr,
                                 std::int64_t* out_cols, T* out_vals) {
  const std::int64_t i =
      static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const double di = degrees[i];
  const double diag = assemble_detail::laplacian_diagonal(kind, di);
  std::int64_t q = out_indptr[i];
  bool diagonal_done = false;
  for (std::int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
    const std::int64_t j = cols[p];
    if (j == i) continue;
    if (!diagonal_done && j > i) {
      out_cols[q] = i;
      out_vals[q++] = static_cast<T>(diag);
      diagonal_done = true;
    }
    out_cols[q] = j;
    out_vals[q++] = static_cast<T>(assemble_detail::laplacian_entry(
        kind, static_cast<double>(vals[p]), di, degrees[j]));
  }
  if (!diagonal_done) {
    out_cols[q] = i;
    out_vals[q] = static_cast<T>(diag);
  }
}

std::int64_t read_last(const std::int64_t* ptr, cudaStream_t stream) {
  std::int64_t host = 0;
  DS_CUDA_CHECK(cudaMemcpyAsync(&host, ptr, sizeof(host),
                                cudaMemcpyDeviceToHost, stream));
  DS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

}  // namespace

template <typename T>
std::int64_t assemble_knn_graph_cuda(const GraphAssembly& g,
                                     const std::int64_t* indices,
                                     const double* d2, double* sigma,
                                     std::int64_t* indptr, std::int64_t* cols,
                                     T* vals, const Device& device) {
  DS_CHECK_ARG(g.sigma_floor > 0.0,
               "sigma_floor: expected > 0, got " << g.sigma_floor);
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  const std::int64_t n = g.n;
  if (n == 0) {
    DS_CUDA_CHECK(cudaMemsetAsync(indptr, 0, sizeof(std::int64_t), stream));
    return 0;
  }

  // Bucket sizes (one extra zero entry so the scan yields the total).
  Scratch<unsigned long long> count(n + 1, stream);
  DS_CUDA_CHECK(cudaMemsetAsync(count.get(), 0,
                                (n + 1) * sizeof(unsigned long long), stream));
  sigma_count_kernel<<<grid_for(n), kThreads, 0, stream>>>(g, indices, d2,
                                                           sigma, count.get());
  DS_CUDA_CHECK_LAUNCH(stream);
  Scratch<std::int64_t> start(n + 1, stream);
  exclusive_sum(reinterpret_cast<const std::int64_t*>(count.get()),
                start.get(), n + 1, stream);
  const std::int64_t total = read_last(start.get() + n, stream);

  // Half-edges into buckets, then a deterministic per-bucket sort.
  Scratch<std::int64_t> keys(total, stream), keys_sorted(total, stream);
  Scratch<double> weights(total, stream), weights_sorted(total, stream);
  DS_CUDA_CHECK(cudaMemsetAsync(count.get(), 0,
                                (n + 1) * sizeof(unsigned long long), stream));
  scatter_kernel<<<grid_for(n), kThreads, 0, stream>>>(
      g, indices, d2, sigma, start.get(), count.get(), keys.get(),
      weights.get());
  DS_CUDA_CHECK_LAUNCH(stream);
  if (total > 0) {
    DS_CHECK_ARG(total < std::numeric_limits<int>::max() &&
                     n < std::numeric_limits<int>::max(),
                 "graph too large for the CUDA assembly: " << total);
    std::size_t bytes = 0;
    DS_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairs(
        nullptr, bytes, keys.get(), keys_sorted.get(), weights.get(),
        weights_sorted.get(), static_cast<int>(total), static_cast<int>(n),
        start.get(), start.get() + 1, stream));
    Scratch<unsigned char> temp(bytes, stream);
    DS_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairs(
        temp.get(), bytes, keys.get(), keys_sorted.get(), weights.get(),
        weights_sorted.get(), static_cast<int>(total), static_cast<int>(n),
        start.get(), start.get() + 1, stream));
  }

  // Merge both directions, then compact into CSR.
  Scratch<std::int64_t> merged(n + 1, stream);
  DS_CUDA_CHECK(cudaMemsetAsync(merged.get() + n, 0, sizeof(std::int64_t),
                                stream));
  merge_kernel<<<grid_for(n), kThreads, 0, stream>>>(
      g, start.get(), keys_sorted.get(), weights_sorted.get(), merged.get());
  DS_CUDA_CHECK_LAUNCH(stream);
  exclusive_sum(merged.get(), indptr, n + 1, stream);
  compact_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(
      n, start.get(), keys_sorted.get(), weights_sorted.get(), indptr, cols,
      vals);
  DS_CUDA_CHECK_LAUNCH(stream);
  return read_last(indptr + n, stream);
}

template <typename T>
std::int64_t assemble_laplacian_cuda(std::int64_t n, LaplacianKind kind,
                                     const std::int64_t* indptr,
                                     const std::int64_t* cols, const T* vals,
                                     double* degrees, std::int64_t* out_indptr,
                                     std::int64_t* out_cols, T* out_vals,
                                     const Device& device) {
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  if (n == 0) {
    DS_CUDA_CHECK(
        cudaMemsetAsync(out_indptr, 0, sizeof(std::int64_t), stream));
    return 0;
  }
  Scratch<std::int64_t> size(n + 1, stream);
  DS_CUDA_CHECK(
      cudaMemsetAsync(size.get() + n, 0, sizeof(std::int64_t), stream));
  degree_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(
      n, indptr, cols, vals, degrees, size.get());
  DS_CUDA_CHECK_LAUNCH(stream);
  exclusive_sum(size.get(), out_indptr, n + 1, stream);
  laplacian_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(
      n, kind, indptr, cols, vals, degrees, out_indptr, out_cols, out_vals);
  DS_CUDA_CHECK_LAUNCH(stream);
  return read_last(out_indptr + n, stream);
}

#define DS_INSTANTIATE(T)                                                      \
  template std::int64_t assemble_knn_graph_cuda<T>(                            \
      const GraphAssembly&, const std::int64_t*, const double*, double*,       \
      std::int64_t*, std::int64_t*, T*, const Device&);                        \
  template std::int64_t assemble_laplacian_cuda<T>(                            \
      std::int64_t, LaplacianKind, const std::int64_t*, const std::int64_t*,   \
      const T*, double*, std::int64_t*, std::int64_t*, T*, const Device&);
DS_INSTANTIATE(float)
DS_INSTANTIATE(double)
#undef DS_INSTANTIATE

}  // namespace deepscope

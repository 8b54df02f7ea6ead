// CUDA partial-cloud samplers: one thread per walk, subset or patch.
// SPDX-License-Identifier: MIT
#include "common/cuda_utils.cuh"
#include "pointcloud/partial.h"
#include "pointcloud/partial_item.h"

namespace deepscope {
namespace {

constexpr int kThreads = 128;

// Enough blocks for one thread per item, capped; the kernels grid-stride.
unsigned int blocks_for(std::int64_t items) {
  const std::int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 ? (blocks > 0 ? blocks : 1)
                                                  : 65535);
}

__global__ void random_walk_kernel(
    const std::int64_t* __restrict__ neighbors,
    const std::int64_t* __restrict__ lengths,
    const std::int64_t* __restrict__ starts, std::int64_t N, std::int64_t K,
    std::int64_t A, std::int64_t L, std::int64_t items, bool allow_revisits,
    std::uint64_t seed, std::int64_t* __restrict__ out,
    std::int64_t* __restrict__ counts, std::uint64_t* __restrict__ visited,
    std::int64_t* __restrict__ stack) {
  const std::int64_t words = partial::bitmap_words(N);
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
       i < items; i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t b = i / A;
    // This walk's slices of the scratch buffers (null with revisits).
    std::uint64_t* my_visited = allow_revisits ? nullptr : visited + i * words;
    std::int64_t* my_stack = allow_revisits ? nullptr : stack + i * L;
    counts[i] = partial::walk(neighbors + b * N * K, lengths[b], K, starts[i],
                              L, allow_revisits, seed,
                              static_cast<std::uint64_t>(i), out + i * L,
                              my_visited, my_stack);
  }
}

__global__ void random_subset_kernel(const std::int64_t* __restrict__ lengths,
                                     std::int64_t N, std::int64_t S,
                                     std::int64_t size, std::int64_t items,
                                     std::uint64_t seed,
                                     std::int64_t* __restrict__ out,
                                     std::int64_t* __restrict__ counts,
                                     std::uint64_t* __restrict__ visited) {
  const std::int64_t words = partial::bitmap_words(N);
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
       i < items; i += std::int64_t(gridDim.x) * blockDim.x) {
    counts[i] = partial::subset(lengths[i / S], size, seed,
                                static_cast<std::uint64_t>(i),
                                out + i * size, visited + i * words);
  }
}

__global__ void assemble_patches_kernel(
    const std::int64_t* __restrict__ neighbors,
    const std::int64_t* __restrict__ anchors,
    const std::int64_t* __restrict__ lengths, std::int64_t A, std::int64_t K,
    std::int64_t size, std::int64_t items, std::int64_t* __restrict__ out,
    std::int64_t* __restrict__ counts) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
       i < items; i += std::int64_t(gridDim.x) * blockDim.x) {
    counts[i] = partial::patch(neighbors + i * K, lengths[i / A], K,
                               anchors[i], size, out + i * size);
  }
}

}  // namespace

void random_walk_cuda(const std::int64_t* neighbors,
                      const std::int64_t* lengths, const std::int64_t* starts,
                      std::int64_t B, std::int64_t N, std::int64_t K,
                      std::int64_t A, std::int64_t L, bool allow_revisits,
                      std::uint64_t seed, std::int64_t* out,
                      std::int64_t* counts, std::uint64_t* visited,
                      std::int64_t* stack, const Device& device) {
  const std::int64_t items = B * A;
  if (items == 0) return;
  DS_CHECK_ARG(allow_revisits || (visited != nullptr && stack != nullptr),
               "random_walk: walks without revisits need scratch buffers");
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  random_walk_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      neighbors, lengths, starts, N, K, A, L, items, allow_revisits, seed, out,
      counts, visited, stack);
  DS_CUDA_CHECK_LAUNCH(stream);
}

void random_subset_cuda(const std::int64_t* lengths, std::int64_t B,
                        std::int64_t N, std::int64_t S, std::int64_t size,
                        std::uint64_t seed, std::int64_t* out,
                        std::int64_t* counts, std::uint64_t* visited,
                        const Device& device) {
  const std::int64_t items = B * S;
  if (items == 0) return;
  DS_CHECK_ARG(N == 0 || visited != nullptr,
               "random_subset: CUDA needs a scratch buffer");
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  random_subset_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      lengths, N, S, size, items, seed, out, counts, visited);
  DS_CUDA_CHECK_LAUNCH(stream);
}

void assemble_patches_cuda(const std::int64_t* neighbors,
                           const std::int64_t* anchors,
                           const std::int64_t* lengths, std::int64_t B,
                           std::int64_t A, std::int64_t K, std::int64_t size,
                           std::int64_t* out, std::int64_t* counts,
                           const Device& device) {
  const std::int64_t items = B * A;
  if (items == 0) return;
  CudaDeviceGuard guard(device.index);
  cudaStream_t stream = as_stream(device);
  assemble_patches_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      neighbors, anchors, lengths, A, K, size, items, out, counts);
  DS_CUDA_CHECK_LAUNCH(stream);
}

}  // namespace deepscope

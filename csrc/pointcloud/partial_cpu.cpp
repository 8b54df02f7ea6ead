// CPU (OpenMP) partial-cloud samplers: one walk, subset or patch per item.
// SPDX-License-Identifier: MIT
#include <vector>

#include "common/parallel.h"
#include "pointcloud/partial.h"
#include "pointcloud/partial_item.h"

namespace deepscope {

void random_walk_cpu(const std::int64_t* neighbors,
                     const std::int64_t* lengths, const std::int64_t* starts,
                     std::int64_t B, std::int64_t N, std::int64_t K,
                     std::int64_t A, std::int64_t L, bool allow_revisits,
                     std::uint64_t seed, std::int64_t* out,
                     std::int64_t* counts) {
  const std::int64_t items = B * A;
  const std::int64_t work =
      items * (L + (allow_revisits ? 0 : partial::bitmap_words(N)));
#pragma omp parallel if (parallel_worth(work))
  {
    // Per-thread scratch: visited bitmap and backtracking stack.
    const std::int64_t words = allow_revisits ? 0 : partial::bitmap_words(N);
    std::vector<std::uint64_t> visited(static_cast<std::size_t>(words));
    std::vector<std::int64_t> stack(
        allow_revisits ? 0 : static_cast<std::size_t>(L));
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t i = 0; i < items; ++i) {
      const std::int64_t b = i / A;
      counts[i] = partial::walk(neighbors + b * N * K, lengths[b], K,
                                starts[i], L, allow_revisits, seed,
                                static_cast<std::uint64_t>(i), out + i * L,
                                visited.data(), stack.data());
    }
  }
}

void random_subset_cpu(const std::int64_t* lengths, std::int64_t B,
                       std::int64_t N, std::int64_t S, std::int64_t size,
                       std::uint64_t seed, std::int64_t* out,
                       std::int64_t* counts) {
  const std::int64_t items = B * S;
  const std::int64_t work = items * (size + partial::bitmap_words(N));
#pragma omp parallel if (parallel_worth(work))
  {
    std::vector<std::uint64_t> visited(
        static_cast<std::size_t>(partial::bitmap_words(N)));
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t i = 0; i < items; ++i) {
      counts[i] = partial::subset(lengths[i / S], size, seed,
                                  static_cast<std::uint64_t>(i),
                                  out + i * size, visited.data());
    }
  }
}

void assemble_patches_cpu(const std::int64_t* neighbors,
                          const std::int64_t* anchors,
                          const std::int64_t* lengths, std::int64_t B,
                          std::int64_t A, std::int64_t K, std::int64_t size,
                          std::int64_t* out, std::int64_t* counts) {
  const std::int64_t items = B * A;
#pragma omp parallel for schedule(static) if (parallel_worth(items * K))
  for (std::int64_t i = 0; i < items; ++i) {
    counts[i] = partial::patch(neighbors + i * K, lengths[i / A], K,
                               anchors[i], size, out + i * size);
  }
}

}  // namespace deepscope

// Partial-cloud samplers (EPiC): random-walk curves, random subsets, patches.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/check.h"

namespace deepscope {

// Shared conventions. Clouds are padded: cloud b holds lengths[b] valid
// points (0 <= lengths[b] <= N). Neighbour entries outside [0, lengths[b])
// (for example -1) are missing. Outputs are padded with -1 after counts[i]
// entries. Randomness is random_below(seed, stream, counter, n) from
// common/rng.h, so the CPU and CUDA versions return identical results.

// Random walks on a neighbour table, one walk per (cloud b, start a).
//   neighbors: (B, N, K) int64, the neighbours of each point (self excluded)
//   lengths:   (B,) int64
//   starts:    (B, A) int64; a start outside [0, lengths[b]) gives an empty
//              walk (counts 0)
//   out:       (B, A, L) int64, the curve; counts: (B, A) int64
// Each walk emits at most min(L, lengths[b]) points, the start first. The
// point at curve position t >= 1 is drawn with stream b * A + a and counter
// t. With revisits, it is a uniform pick among the valid entries of the
// current point's row; a point without valid neighbours ends the curve.
// Without revisits, it is a uniform pick among the valid neighbours not yet
// on the curve; when the current point has none, the walk backtracks (without
// emitting) to the latest point of the curve that still has one; when no
// point has one, the curve ends. Picks follow row order: the r-th valid
// (unvisited) entry for r = random_below(..., count).
// CUDA scratch, only for walks without revisits: visited (B * A * ceil(N/64))
// uint64 words and stack (B * A * L) int64; unused (may be null) otherwise
// and on the CPU.
void random_walk_cpu(const std::int64_t* neighbors,
                     const std::int64_t* lengths, const std::int64_t* starts,
                     std::int64_t B, std::int64_t N, std::int64_t K,
                     std::int64_t A, std::int64_t L, bool allow_revisits,
                     std::uint64_t seed, std::int64_t* out,
                     std::int64_t* counts);

// Random subsets without replacement, one per (cloud b, subset s).
//   lengths: (B,) int64
//   out:     (B, S, size) int64, distinct indices in draw order (a uniformly
//            random ordered sample); counts: (B, S) = min(size, lengths[b])
// Each draw is random_below(seed, b * S + s, counter, lengths[b]) with the
// counter advancing on every attempt; indices already drawn are rejected.
// CUDA scratch: visited (B * S * ceil(N/64)) uint64 words.
void random_subset_cpu(const std::int64_t* lengths, std::int64_t B,
                       std::int64_t N, std::int64_t S, std::int64_t size,
                       std::uint64_t seed, std::int64_t* out,
                       std::int64_t* counts);

// Patches from kNN rows: the anchor, then the first size - 1 valid entries
// of its neighbour row other than the anchor itself.
//   neighbors: (B, A, K) int64, neighbours of each anchor sorted by distance
//   anchors:   (B, A) int64; outside [0, lengths[b]) gives an empty patch
//   lengths:   (B,) int64
//   out:       (B, A, size) int64; counts: (B, A) int64
void assemble_patches_cpu(const std::int64_t* neighbors,
                          const std::int64_t* anchors,
                          const std::int64_t* lengths, std::int64_t B,
                          std::int64_t A, std::int64_t K, std::int64_t size,
                          std::int64_t* out, std::int64_t* counts);

#ifdef DEEPSCOPE_WITH_CUDA
void random_walk_cuda(const std::int64_t* neighbors,
                      const std::int64_t* lengths, const std::int64_t* starts,
                      std::int64_t B, std::int64_t N, std::int64_t K,
                      std::int64_t A, std::int64_t L, bool allow_revisits,
                      std::uint64_t seed, std::int64_t* out,
                      std::int64_t* counts, std::uint64_t* visited,
                      std::int64_t* stack, const Device& device);

void random_subset_cuda(const std::int64_t* lengths, std::int64_t B,
                        std::int64_t N, std::int64_t S, std::int64_t size,
                        std::uint64_t seed, std::int64_t* out,
                        std::int64_t* counts, std::uint64_t* visited,
                        const Device& device);

void assemble_patches_cuda(const std::int64_t* neighbors,
                           const std::int64_t* anchors,
                           const std::int64_t* lengths, std::int64_t B,
                           std::int64_t A, std::int64_t K, std::int64_t size,
                           std::int64_t* out, std::int64_t* counts,
                           const Device& device);
#endif

}  // namespace deepscope

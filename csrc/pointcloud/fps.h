// Exact farthest point sampling (FPS) over padded batches, CPU and CUDA.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/check.h"

namespace deepscope {

// Exact farthest point sampling, one independent run per cloud.
//
// Inputs:
//   points     (B, N, D) row-major, float or double.
//   lengths    (B,) int64, 0 <= lengths[b] <= N: points [0, lengths[b]) of
//              cloud b are real, the rest is padding and never read.
//   n_samples  (B,) int64, 0 <= n_samples[b] <= min(lengths[b], K).
//   starts     (B,) int64, 0 <= starts[b] < lengths[b] where n_samples[b] > 0.
// Outputs:
//   indices    (B, K) int64: selected point indices, -1 after the last one.
//   distances  (B, K) scalar_t: squared distance of each selected point to
//              the points selected before it (0 for the first and for -1).
//   counts     (B,) int64: number of valid entries in each row of indices.
//
// Definition (both devices return it index for index): sel[0] = start and
// mind[i] = d2(i, sel[0]); for k >= 1, sel[k] is the lowest i < lengths[b]
// with the largest mind[i]; if that largest value is 0 every remaining point
// duplicates a selected one and the run stops early; otherwise
// mind[i] = min(mind[i], d2(i, sel[k])). d2 is computed in double as the
// left-to-right sum ((dx*dx + dy*dy) + dz*dz) + ... with no contraction.
//
// CPU: clouds run in parallel (OpenMP) when the batch holds enough points;
// each cloud with 1 <= D <= 8 uses an exact kd-tree bucket search (see
// fps_cpu.cpp), wider points and tiny runs the plain O(N * K) loop.
template <typename scalar_t>
void farthest_point_sample_cpu(const scalar_t* points, std::int64_t B,
                               std::int64_t N, std::int64_t D,
                               const std::int64_t* lengths,
                               const std::int64_t* n_samples,
                               const std::int64_t* starts, std::int64_t K,
                               std::int64_t* indices, scalar_t* distances,
                               std::int64_t* counts);

// Extra doubles the CUDA scratch holds after the (B, N) minima.
constexpr std::int64_t kFpsCudaScratchExtra = 4096;

#ifdef DEEPSCOPE_WITH_CUDA
// Same contract on a CUDA device; every pointer is device memory and the
// arguments are trusted (the Python layer validates them on the host). A
// batch runs one thread block per cloud; a single cloud of at least 32768
// points runs on a cooperative grid of blocks.
// `scratch` is B * N + kFpsCudaScratchExtra doubles of device memory for the
// running minima and the cross-block partial results (the
// Python layer allocates it with the caller's framework so that its caching
// allocator manages it). Runs on device.stream and does not synchronise.
template <typename scalar_t>
void farthest_point_sample_cuda(const scalar_t* points, std::int64_t B,
                                std::int64_t N, std::int64_t D,
                                const std::int64_t* lengths,
                                const std::int64_t* n_samples,
                                const std::int64_t* starts, std::int64_t K,
                                std::int64_t* indices, scalar_t* distances,
                                std::int64_t* counts, double* scratch,
                                const Device& device);
#endif

}  // namespace deepscope

// Counter-based random numbers that give the same stream on CPU and CUDA.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DS_HOST_DEVICE inline
#endif

namespace deepscope {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix.
DS_HOST_DEVICE std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The `counter`-th 64-bit draw of random stream `stream` under `seed`.
// Streams are independent per (seed, stream); any thread can compute any
// draw directly, so CPU loops and CUDA threads produce identical values.
DS_HOST_DEVICE std::uint64_t random_u64(std::uint64_t seed,
                                        std::uint64_t stream,
                                        std::uint64_t counter) {
  return mix64(mix64(seed ^ mix64(stream)) + counter);
}

// Uniform integer in [0, n) for n >= 1 (Lemire's multiply-shift; the bias is
// below n / 2^64, far under anything measurable for point counts).
DS_HOST_DEVICE std::int64_t random_below(std::uint64_t seed,
                                         std::uint64_t stream,
                                         std::uint64_t counter,
                                         std::int64_t n) {
  const std::uint64_t x = random_u64(seed, stream, counter);
#if defined(__CUDA_ARCH__)
  return static_cast<std::int64_t>(__umul64hi(x, static_cast<std::uint64_t>(n)));
#else
  return static_cast<std::int64_t>(
      (static_cast<unsigned __int128>(x) * static_cast<std::uint64_t>(n)) >>
      64);
#endif
}

}  // namespace deepscope

// One walk, subset or patch of partial.h, shared by the CPU and CUDA code.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

#include "common/rng.h"

namespace deepscope {
namespace partial {

DS_HOST_DEVICE bool is_valid(std::int64_t j, std::int64_t n) {
  return j >= 0 && j < n;
}

// Words of a visited bitmap over n points.
DS_HOST_DEVICE std::int64_t bitmap_words(std::int64_t n) {
  return (n + 63) / 64;
}

DS_HOST_DEVICE bool test_bit(const std::uint64_t* bits, std::int64_t j) {
  return (bits[j >> 6] >> (j & 63)) & 1ull;
}

DS_HOST_DEVICE void set_bit(std::uint64_t* bits, std::int64_t j) {
  bits[j >> 6] |= 1ull << (j & 63);
}

DS_HOST_DEVICE void clear_bits(std::uint64_t* bits, std::int64_t n) {
  for (std::int64_t w = 0; w < bitmap_words(n); ++w) bits[w] = 0;
}

DS_HOST_DEVICE void pad(std::int64_t* row, std::int64_t from,
                        std::int64_t to) {
  for (std::int64_t i = from; i < to; ++i) row[i] = -1;
}

// Walk with revisits; row_of(p) is the K neighbours of point p. Returns the
// number of points written to `curve` (at most `target`).
DS_HOST_DEVICE std::int64_t walk_with_revisits(
    const std::int64_t* table, std::int64_t n, std::int64_t K,
    std::int64_t start, std::int64_t target, std::uint64_t seed,
    std::uint64_t stream, std::int64_t* curve) {
  curve[0] = start;
  std::int64_t current = start;
  std::int64_t count = 1;
  while (count < target) {
    const std::int64_t* row = table + current * K;

    // Count the valid neighbours of the current point.
    std::int64_t choices = 0;
    for (std::int64_t j = 0; j < K; ++j) choices += is_valid(row[j], n);
    if (choices == 0) break;

    // Take the r-th valid one.
    std::int64_t r = random_below(seed, stream, count, choices);
    std::int64_t next = -1;
    for (std::int64_t j = 0; j < K; ++j) {
      if (is_valid(row[j], n) && r-- == 0) {
        next = row[j];
        break;
      }
    }
    curve[count++] = next;
    current = next;
  }
  return count;
}

// Number of valid neighbours of `row` that are not yet visited.
DS_HOST_DEVICE std::int64_t count_unvisited(const std::int64_t* row,
                                            std::int64_t K, std::int64_t n,
                                            const std::uint64_t* visited) {
  std::int64_t choices = 0;
  for (std::int64_t j = 0; j < K; ++j) {
    choices += is_valid(row[j], n) && !test_bit(visited, row[j]);
  }
  return choices;
}

// Walk without revisits (depth-first with silent backtracking). `stack`
// holds the curve points that may still have unvisited neighbours, latest
// on top; exhausted points never regain one, so they are popped for good.
DS_HOST_DEVICE std::int64_t walk_without_revisits(
    const std::int64_t* table, std::int64_t n, std::int64_t K,
    std::int64_t start, std::int64_t target, std::uint64_t seed,
    std::uint64_t stream, std::int64_t* curve, std::uint64_t* visited,
    std::int64_t* stack) {
  clear_bits(visited, n);
  set_bit(visited, start);
  curve[0] = start;
  stack[0] = start;
  std::int64_t top = 1;
  std::int64_t count = 1;
  while (count < target && top > 0) {
    const std::int64_t* row = table + stack[top - 1] * K;

    // Backtrack past a point whose neighbours are all on the curve.
    const std::int64_t choices = count_unvisited(row, K, n, visited);
    if (choices == 0) {
      --top;
      continue;
    }

    // Take the r-th unvisited valid neighbour and move there.
    std::int64_t r = random_below(seed, stream, count, choices);
    std::int64_t next = -1;
    for (std::int64_t j = 0; j < K; ++j) {
      if (is_valid(row[j], n) && !test_bit(visited, row[j]) && r-- == 0) {
        next = row[j];
        break;
      }
    }
    set_bit(visited, next);
    curve[count++] = next;
    stack[top++] = next;
  }
  return count;
}

// One curve of random_walk: fills curve[0, L) and returns its count.
DS_HOST_DEVICE std::int64_t walk(const std::int64_t* table, std::int64_t n,
                                 std::int64_t K, std::int64_t start,
                                 std::int64_t L, bool allow_revisits,
                                 std::uint64_t seed, std::uint64_t stream,
                                 std::int64_t* curve, std::uint64_t* visited,
                                 std::int64_t* stack) {
  const std::int64_t target = L < n ? L : n;
  std::int64_t count = 0;
  if (is_valid(start, n) && target > 0) {
    count = allow_revisits
                ? walk_with_revisits(table, n, K, start, target, seed, stream,
                                     curve)
                : walk_without_revisits(table, n, K, start, target, seed,
                                        stream, curve, visited, stack);
  }
  pad(curve, count, L);
  return count;
}

// One subset of random_subset: min(size, n) distinct indices of [0, n) in
// draw order, by rejection against a visited bitmap.
DS_HOST_DEVICE std::int64_t subset(std::int64_t n, std::int64_t size,
                                   std::uint64_t seed, std::uint64_t stream,
                                   std::int64_t* out,
                                   std::uint64_t* visited) {
  const std::int64_t count = size < n ? size : n;
  clear_bits(visited, n);
  std::uint64_t counter = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    std::int64_t j = random_below(seed, stream, counter++, n);
    while (test_bit(visited, j)) {
      j = random_below(seed, stream, counter++, n);
    }
    set_bit(visited, j);
    out[i] = j;
  }
  pad(out, count, size);
  return count;
}

// One patch of assemble_patches: the anchor, then the row's other points.
DS_HOST_DEVICE std::int64_t patch(const std::int64_t* row, std::int64_t n,
                                  std::int64_t K, std::int64_t anchor,
                                  std::int64_t size, std::int64_t* out) {
  std::int64_t count = 0;
  if (is_valid(anchor, n) && size > 0) {
    out[count++] = anchor;
    for (std::int64_t j = 0; j < K && count < size; ++j) {
      if (is_valid(row[j], n) && row[j] != anchor) out[count++] = row[j];
    }
  }
  pad(out, count, size);
  return count;
}

}  // namespace partial
}  // namespace deepscope

// Conformity epilogue: float64 row and column sums of one cosine tile.
// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

namespace deepscope {

// One read of a dense tile (the GEMM output of the exact conformity kernel)
// that adds its row sums and, optionally, its column sums into float64
// accumulators.
//
// tile:     (H, W) row-major float or double.
// row_sums: (H,) double in/out: row_sums[i] += sum_j tile[i, j].
// col_sums: (W,) double in/out: col_sums[j] += sum_i tile[i, j]; nullptr to
//           skip (diagonal tiles of the symmetric case).
// Every addition is done in double. Rows are summed left to right in four
// interleaved partial sums (lanes j mod 4) that are combined at the end;
// column sums are combined over threads in thread order, so results are
// deterministic for a fixed thread count.
// There is no CUDA counterpart: on a GPU the tile is reduced by torch.
template <typename T>
void tile_sums_cpu(const T* tile, std::int64_t H, std::int64_t W,
                   double* row_sums, double* col_sums);

}  // namespace deepscope

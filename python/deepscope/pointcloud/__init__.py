# Point-cloud kernels: farthest point sampling, kNN, ball query, samplers.
# SPDX-License-Identifier: MIT
"""Point-cloud kernels on CPU (OpenMP) and CUDA.

Inputs are padded batches ``(B, N, D)`` with optional per-cloud ``lengths``,
or single clouds ``(N, D)``; indices are int64 and missing results are -1.
"""

from __future__ import annotations

from ._fps import FPSResult, farthest_point_sample

__all__: list[str] = ["FPSResult", "farthest_point_sample"]

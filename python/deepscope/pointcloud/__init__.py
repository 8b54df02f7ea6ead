# Point-cloud kernels: farthest point sampling, kNN, ball query, samplers.
# SPDX-License-Identifier: MIT
"""Point-cloud kernels on CPU (OpenMP) and CUDA.

Inputs are padded batches ``(B, N, D)`` with optional per-cloud ``lengths``,
or single clouds ``(N, D)``; indices are int64 and missing results are -1.
"""

from __future__ import annotations

from deepscope.pointcloud._knn import BallQueryResult, KNNResult, ball_query, knn

__all__: list[str] = ["BallQueryResult", "KNNResult", "ball_query", "knn"]

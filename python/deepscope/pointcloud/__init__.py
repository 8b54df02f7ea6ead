# Point-cloud kernels: farthest point sampling, kNN, ball query, samplers.
# SPDX-License-Identifier: MIT
"""Point-cloud kernels on CPU (OpenMP) and CUDA.

Inputs are padded batches ``(B, N, D)`` with optional per-cloud ``lengths``,
or single clouds ``(N, D)``; indices are int64 and missing results are -1.
"""

from __future__ import annotations

from deepscope.pointcloud._fps import FPSResult, farthest_point_sample
from deepscope.pointcloud._knn import BallQueryResult, KNNResult, ball_query, knn
from deepscope.pointcloud._samplers import (
    PAPER_DEFAULTS,
    PartialResult,
    gather_points,
    knn_patches,
    partial_clouds,
    random_subsets,
    random_walk_curves,
)

__all__ = [
    "PAPER_DEFAULTS",
    "BallQueryResult",
    "FPSResult",
    "KNNResult",
    "PartialResult",
    "ball_query",
    "farthest_point_sample",
    "gather_points",
    "knn",
    "knn_patches",
    "partial_clouds",
    "random_subsets",
    "random_walk_curves",
]

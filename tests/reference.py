# Float64 NumPy brute-force references for the deepscope kernels.
# SPDX-License-Identifier: MIT
"""Slow, obviously correct references the kernels are tested against."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# Farthest point sampling (deepscope.pointcloud.farthest_point_sample)
# ---------------------------------------------------------------------------


def squared_distances_to(points: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N,) float64 squared distances, summed left to right over dimensions."""
    points = np.asarray(points, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    total = (points[:, 0] - q[0]) * (points[:, 0] - q[0])
    for d in range(1, points.shape[1]):
        diff = points[:, d] - q[d]
        total = total + diff * diff
    return total


def farthest_point_sample_reference(
    points: np.ndarray, n_samples: int, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact FPS of one cloud ``(n, D)``: (indices, distances) as float64.

    Stops early (shorter outputs) when every remaining point duplicates a
    selected one. Ties go to the lowest index (``np.argmax`` takes the first).
    """
    points = np.asarray(points, dtype=np.float64)
    indices: list[int] = []
    distances: list[float] = []
    if n_samples == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    sel, sel_distance = int(start), 0.0
    mind = np.full(points.shape[0], np.inf)
    while True:
        indices.append(sel)
        distances.append(sel_distance)
        if len(indices) == n_samples:
            break
        mind = np.minimum(mind, squared_distances_to(points, points[sel]))
        nxt = int(np.argmax(mind))
        if mind[nxt] <= 0.0:
            break
        sel, sel_distance = nxt, float(mind[nxt])
    return np.asarray(indices, np.int64), np.asarray(distances)

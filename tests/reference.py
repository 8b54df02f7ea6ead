# Float64 NumPy brute-force references for the kernels' tests.
# SPDX-License-Identifier: MIT
"""Slow, obviously correct references that the kernel tests compare against."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# kNN and ball query (deepscope.pointcloud.knn / ball_query)
# ---------------------------------------------------------------------------


def squared_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(M, N) float64 squared distances, summed left to right over D."""
    diff = query[:, None, :].astype(np.float64) - reference[None, :, :].astype(
        np.float64
    )
    d2 = diff[..., 0] * diff[..., 0]
    for d in range(1, diff.shape[-1]):
        d2 = d2 + diff[..., d] * diff[..., d]
    return d2


def neighbor_reference(
    query: np.ndarray,
    reference: np.ndarray | None,
    k: int,
    *,
    max_d2: float = np.inf,
    query_lengths=None,
    reference_lengths=None,
    exclude_self: bool = False,
):
    """Brute-force (indices, squared distances, counts) for kNN / ball query.

    Inputs are (B, M, D) / (B, N, D) or unbatched; outputs follow the same
    rank. Neighbours are sorted by (distance, index) via lexsort, -1 / +inf
    padded.
    """
    query = np.asarray(query, dtype=np.float64)
    unbatched = query.ndim == 2
    self_query = reference is None
    reference = query if self_query else np.asarray(reference, dtype=np.float64)
    if unbatched:
        query, reference = query[None], reference[None]
    B, M, _ = query.shape
    N = reference.shape[1]
    ql = np.full(B, M) if query_lengths is None else np.asarray(query_lengths)
    if self_query:
        rl = ql
    else:
        rl = (
            np.full(B, N)
            if reference_lengths is None
            else np.asarray(reference_lengths)
        )
    indices = np.full((B, M, k), -1, dtype=np.int64)
    distances = np.full((B, M, k), np.inf, dtype=np.float64)
    counts = np.zeros((B, M), dtype=np.int64)
    for b in range(B):
        n = int(rl[b])
        d2_all = squared_distances(query[b, : int(ql[b])], reference[b, :n])
        for m in range(int(ql[b])):
            d2 = d2_all[m]
            j = np.arange(n)
            keep = d2 <= max_d2
            if exclude_self:
                keep &= j != m
            d2, j = d2[keep], j[keep]
            order = np.lexsort((j, d2))[:k]
            c = len(order)
            indices[b, m, :c] = j[order]
            distances[b, m, :c] = d2[order]
            counts[b, m] = c
    if unbatched:
        return indices[0], distances[0], counts[0]
    return indices, distances, counts


def knn_reference(query, reference=None, *, k, **kwargs):
    """Float64 brute-force kNN: (indices, squared distances, counts)."""
    return neighbor_reference(query, reference, k, **kwargs)


def ball_query_reference(query, reference=None, *, radius, max_neighbors, **kwargs):
    """Float64 brute-force ball query (inclusive: d2 <= radius * radius)."""
    return neighbor_reference(
        query, reference, max_neighbors, max_d2=float(radius) * float(radius), **kwargs
    )

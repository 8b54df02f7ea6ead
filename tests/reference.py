# Float64 NumPy brute-force references for the kernels' tests.
# SPDX-License-Identifier: MIT
"""Slow, obviously correct references that the kernel tests compare against."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# point importance (deepscope.importance: Critical Points++ / FBI measures)
# ---------------------------------------------------------------------------


def importance_reference(
    features: np.ndarray,
    *,
    p: float = 2,
    lengths: np.ndarray | None = None,
    entropy_of: str = "counts",
    eps: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(norms, counts, entropy) of (B, C, N) features, one cloud at a time.

    norms (B, N) float64, counts (B, N) int64 (argmax over the valid points
    per channel, first maximum on ties, then a bincount), entropy (B,) float64.
    """
    f = np.asarray(features, dtype=np.float64)
    B, C, N = f.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    norms = np.zeros((B, N))
    counts = np.zeros((B, N), dtype=np.int64)
    entropy = np.zeros(B)
    for b in range(B):
        n = int(lengths[b])
        if n == 0:
            continue
        x = f[b, :, :n]
        norms[b, :n] = np.linalg.norm(x, ord=p, axis=0)
        counts[b, :n] = np.bincount(x.argmax(axis=1), minlength=n)
        imp = norms[b, :n] if entropy_of == "norms" else counts[b, :n]
        entropy[b] = entropy_reference(imp, eps=eps)
    return norms, counts, entropy


def entropy_reference(importance: np.ndarray, *, eps: float = 1e-6) -> float:
    """Normalized entropy of one cloud's importance (N,), as in CP++."""
    i = np.asarray(importance, dtype=np.float64)
    n = i.shape[0]
    if n <= 1:
        return 0.0
    w = i + eps
    if w.sum() == 0:
        return 1.0
    q = w / w.sum()
    terms = np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0)
    return float(-terms.sum() / np.log2(n))


def least_important_reference(
    importance: np.ndarray, k: int, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """The k least important of one cloud by (importance, tiebreak, index)."""
    n = importance.shape[0]
    tb = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, np.float64)
    order = sorted(range(n), key=lambda j: (float(importance[j]), tb[j], j))
    return np.asarray(order[:k], dtype=np.int64)

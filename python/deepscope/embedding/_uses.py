# Uses of conformity: ranking, outliers, hubness re-ranking, streaming moments.
# SPDX-License-Identifier: MIT
"""What conformity is used for.

* :func:`typicality_order` ranks a set from typical (high conformity) to
  atypical; :func:`conformity_outliers` flags the low tail.
* :func:`rerank_by_conformity` penalises hubs (gallery items that are close
  to everything) in retrieval: ``score' = cos(q, x) - weight * (C(x) -
  mean C)``; :func:`hubness` measures the skew of k-occurrences.
* :class:`StreamingMoments` accumulates means, variances and the unit-vector
  sum of sets larger than memory, batch by batch (float64, Chan's merge).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from deepscope.embedding._conformity import _host64
from deepscope.embedding._tensors import as_matrix, back, check_nonzero_rows, row_norms

__all__ = [
    "StreamingMoments",
    "conformity_outliers",
    "hubness",
    "rerank_by_conformity",
    "typicality_order",
]


def _vector(values: Any, name: str) -> np.ndarray:
    v = _host64(values, name).ravel()
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return v


def typicality_order(conformity_values: Any) -> np.ndarray:
    """(N,) int64 indices from most typical (highest conformity) to least.

    Ties keep the lower index first.
    """
    c = _vector(conformity_values, "conformity_values")
    return np.argsort(-c, kind="stable").astype(np.int64)


def conformity_outliers(conformity_values: Any, threshold: float = 3.5) -> np.ndarray:
    """(N,) bool mask of atypical rows: a robust z-score below ``-threshold``.

    ``z = 0.6745 (C - median) / MAD`` (Iglewicz & Hoaglin). When the MAD is
    zero the mean absolute deviation replaces it (scaled by 0.7979); a
    constant set has no outliers.
    """
    if threshold <= 0:
        raise ValueError(f"threshold: expected > 0, got {threshold}")
    c = _vector(conformity_values, "conformity_values")
    if c.size == 0:
        return np.zeros(0, bool)
    median = np.median(c)
    mad = np.median(np.abs(c - median))
    if mad > 0:
        z = 0.6745 * (c - median) / mad
    else:
        mean_ad = np.mean(np.abs(c - median))
        if mean_ad == 0:
            return np.zeros(c.size, bool)
        z = 0.7979 * (c - median) / mean_ad
    return z < -threshold


def rerank_by_conformity(
    similarity: Any, gallery_conformity: Any, weight: float = 1.0, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Re-ranks retrieval by penalising high-conformity gallery items (hubs).

    Args:
        similarity: (Q, G) cosine similarities of queries to the gallery.
        gallery_conformity: (G,) conformity of each gallery item, best
            taken against the QUERY distribution, e.g.
            ``conformity(gallery, reference=queries)``: a hub is an item
            close to every query. (Within-gallery conformity is a weaker
            proxy for cross-modal retrieval.)
        weight: penalty strength (>= 0; 0 keeps the original ranking).
        k: results per query (default G).

    Returns:
        (indices, scores): (Q, k) int64 gallery indices best first (ties to
        the lower index) and their float64 adjusted scores
        ``cos(q, x) - weight * (C(x) - mean C)``.
    """
    s = _host64(similarity, "similarity")
    if s.ndim != 2:
        raise ValueError(f"similarity: expected a (Q, G) matrix, got shape {s.shape}")
    c = _vector(gallery_conformity, "gallery_conformity")
    if c.size != s.shape[1]:
        raise ValueError(
            f"gallery_conformity: expected {s.shape[1]} values (gallery size), "
            f"got {c.size}"
        )
    if not np.isfinite(s).all():
        raise ValueError("similarity: expected finite values, got NaN or inf")
    if weight < 0:
        raise ValueError(f"weight: expected >= 0, got {weight}")
    k = s.shape[1] if k is None else int(k)
    if not 1 <= k <= s.shape[1]:
        raise ValueError(f"k: expected 1 <= k <= {s.shape[1]} (gallery size), got {k}")
    adjusted = s - weight * (c - c.mean())
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(adjusted, order, 1)


def hubness(indices: Any, n_gallery: int) -> float:
    """Skewness of the k-occurrence counts of retrieved gallery items.

    Args:
        indices: (Q, k) int gallery indices retrieved per query.
        n_gallery: gallery size G.

    Returns:
        Sample skewness of the (G,) counts (0.0 when all counts are equal);
        large positive values mean a few hubs are retrieved for many queries.
    """
    idx = np.asarray(indices).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n_gallery):
        raise ValueError(f"indices: expected values in [0, {n_gallery}), got outside")
    counts = np.bincount(idx, minlength=n_gallery).astype(np.float64)
    d = counts - counts.mean()
    var = float(np.mean(d * d))
    if var == 0.0:
        return 0.0
    return float(np.mean(d**3) / var**1.5)


class StreamingMoments:
    """Running float64 statistics of embeddings seen batch by batch.

    Keeps the count, the mean and the centred sum of squares per dimension
    (Chan et al.'s pairwise merge) and the sum of unit rows, so the mean,
    std and the exact inclusive conformity of any rows to the streamed set
    are available without holding the set.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._unit_sum: np.ndarray | None = None

    def update(self, batch: Any) -> StreamingMoments:
        """Adds a (B, D) batch (B may be 0); returns self."""
        x, _ = as_matrix(batch, "batch", allow_empty=True)
        if self._mean is not None and x.shape[1] != self._mean.shape[0]:
            raise ValueError(
                f"batch: expected D = {self._mean.shape[0]} like earlier batches, "
                f"got {x.shape[1]}"
            )
        if x.shape[0] == 0:
            return self
        x64 = x.to(torch.float64)
        norms = row_norms(x64)
        check_nonzero_rows(norms, "batch")
        b_mean = x64.mean(0)
        b_m2 = ((x64 - b_mean) ** 2).sum(0)
        b_unit = (x64 / norms[:, None]).sum(0)
        b_mean, b_m2, b_unit = (t.cpu().numpy() for t in (b_mean, b_m2, b_unit))
        n_b = x.shape[0]
        if self._mean is None:
            self._mean, self._m2, self._unit_sum = b_mean, b_m2, b_unit
        else:
            n = self.count + n_b
            delta = b_mean - self._mean
            self._mean = self._mean + delta * (n_b / n)
            self._m2 = self._m2 + b_m2 + delta**2 * (self.count * n_b / n)
            self._unit_sum = self._unit_sum + b_unit
        self.count += n_b
        return self

    @classmethod
    def from_batches(cls, batches: Iterable[Any]) -> StreamingMoments:
        """Streams every batch of an iterable."""
        moments = cls()
        for batch in batches:
            moments.update(batch)
        return moments

    def _need(self) -> None:
        if self.count == 0:
            raise ValueError("StreamingMoments: no rows seen yet; call update() first")

    @property
    def mean(self) -> np.ndarray:
        """(D,) float64 mean of all rows seen."""
        self._need()
        return self._mean.copy()

    @property
    def std(self) -> np.ndarray:
        """(D,) float64 population standard deviation per dimension."""
        self._need()
        return np.sqrt(self._m2 / self.count)

    @property
    def unit_mean(self) -> np.ndarray:
        """(D,) float64 mean of the unit rows."""
        self._need()
        return self._unit_sum / self.count

    def conformity(self, embeddings: Any) -> Any:
        """(N,) exact inclusive conformity of ``embeddings`` to the streamed set.

        Returned in the caller's framework, float32 (float64 for float64).
        """
        self._need()
        x, framework = as_matrix(embeddings, "embeddings")
        if x.shape[1] != self._mean.shape[0]:
            raise ValueError(
                f"embeddings: expected D = {self._mean.shape[0]}, got {x.shape[1]}"
            )
        norms = row_norms(x)
        check_nonzero_rows(norms, "embeddings")
        w = torch.from_numpy(self.unit_mean).to(x.device)
        out = (x.to(torch.float64) @ w) / norms
        return back(out.to(x.dtype), framework)

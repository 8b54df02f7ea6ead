# Outlier removal by importance, and MoRF / LeRF faithfulness curves of explanations.
# SPDX-License-Identifier: MIT
"""Using and testing per-point importance.

* :func:`importance_outliers` - the points an importance-based outlier
  filter removes: the top ``fraction`` of the points by importance, or every
  point above the Critical Points++ entropy-adaptive threshold.
* :func:`removal_curves` - faithfulness of an explanation: accuracy as the
  most (MoRF) or least (LeRF) important points are removed in steps, and the
  area between the two curves (AOPC-style).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed

Array = Any

__all__ = [
    "OutlierMask",
    "RemovalCurves",
    "importance_outliers",
    "removal_curves",
]


class OutlierMask(NamedTuple):
    """Points an importance-based outlier filter removes.

    Attributes:
        removed: (B, N) bool, True for a removed point (NumPy).
        counts: (B,) int64 number of removed points per cloud (NumPy).
    """

    removed: np.ndarray
    counts: np.ndarray


def _host_importance(importance: Any, name: str = "importance") -> np.ndarray:
    from deepscope._arrays import to_numpy

    host = np.asarray(to_numpy(importance))
    if host.dtype == bool or not np.issubdtype(host.dtype, np.number):
        raise ValueError(f"{name}: expected numbers, got dtype {host.dtype}")
    host = host.astype(np.float64)
    if host.ndim not in (1, 2) or host.shape[-1] < 1:
        raise ValueError(f"{name}: expected shape (B, N) or (N,), got {host.shape}")
    if not np.isfinite(host).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return host


def _rank_most_important_first(imp: np.ndarray, rng: Any = None) -> np.ndarray:
    """(B, N) order, most important first; ties to the lowest index (or random)."""
    B, N = imp.shape
    if rng is None:
        return np.argsort(-imp, axis=1, kind="stable")
    # A seeded random permutation breaks ties, then a stable sort by importance.
    perm = np.argsort(rng.random((B, N)), axis=1)
    order = np.argsort(-np.take_along_axis(imp, perm, axis=1), axis=1, kind="stable")
    return np.take_along_axis(perm, order, axis=1)


def importance_outliers(
    importance: Array,
    *,
    fraction: float | None = 0.05,
    method: str = "fraction",
    eps: float = 1e-6,
) -> OutlierMask:
    """The points an importance-based outlier filter removes.

    Critical Points++ (Levi and Gilboa, arXiv 2308.05525) observes that
    outliers and corrupted points draw a network's attention and so receive
    high importance; the paper removes the most important points (by the
    smooth soft importance) before classifying, and its code keeps the
    ``floor(H * N)`` least important points, ``H`` the normalized entropy. The
    repository has no outlier code path, so the two filters here follow that
    description:

    * ``method="fraction"``: remove the ``ceil(fraction * N)`` most important
      points (at most ``N - 1``);
    * ``method="entropy"``: the entropy-adaptive threshold, keep
      ``k = max(1, floor(H * N))`` least important points and remove the
      ``N - k`` others, ``H`` = :func:`normalized_entropy` of ``importance``.

    Ties go to the lowest index (the lower index counts as more important).

    Args:
        importance: (B, N) or (N,) finite importance (e.g. FBI norms, or the
            soft L1 norms of Critical Points++); negative values count as 0
            for the entropy.
        fraction: share of points to remove for ``method="fraction"``, in
            [0, 1].
        method: ``"fraction"`` or ``"entropy"``.
        eps: the entropy's smoothing term.

    Returns:
        :class:`OutlierMask` (``(N,)`` / ``()`` fields for an unbatched input).
    """
    from deepscope.importance._measures import normalized_entropy

    imp = _host_importance(importance)
    batched = imp.ndim == 2
    imp = imp if batched else imp[None]
    B, N = imp.shape
    if method == "fraction":
        if fraction is None or not (0.0 <= float(fraction) <= 1.0):
            raise ValueError(f"fraction: expected 0 <= fraction <= 1, got {fraction}")
        counts = np.full(B, min(math.ceil(float(fraction) * N), N - 1), np.int64)
    elif method == "entropy":
        entropy = normalized_entropy(np.maximum(imp, 0.0), eps=eps)
        keep = np.maximum(np.floor(np.asarray(entropy) * N).astype(np.int64), 1)
        counts = N - np.minimum(keep, N)
    else:
        raise ValueError(f"method: expected 'fraction' or 'entropy', got {method!r}")
    order = _rank_most_important_first(imp)
    removed = np.zeros((B, N), dtype=bool)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(N)[None, :].repeat(B, 0), axis=1)
    removed = ranks < counts[:, None]
    if not batched:
        return OutlierMask(removed[0], counts[0])
    return OutlierMask(removed, counts)


class RemovalCurves(NamedTuple):
    """Accuracy as points are removed by importance (see :func:`removal_curves`).

    Attributes:
        fractions: (F,) float64 fractions of points removed, increasing.
        morf: (F,) float64 accuracy with the most important points removed.
        lerf: (F,) float64 accuracy with the least important points removed.
        aopc_morf: mean over the steps of ``morf[0] - morf[i]`` (larger: the
            explanation finds the points the model needs).
        aopc_lerf: mean over the steps of ``lerf[0] - lerf[i]`` (smaller is
            better).
        area_between: trapezoid area between ``lerf`` and ``morf`` over
            ``fractions``, divided by the span of ``fractions`` (in [-1, 1];
            larger is better).
    """

    fractions: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    aopc_morf: float
    aopc_lerf: float
    area_between: float


def removal_curves(
    model: Any,
    points: Array,
    labels: Array,
    importance: Array,
    *,
    fractions: Any = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    mode: str = "replace",
    seed: int = 0,
    batch_size: int = 64,
) -> RemovalCurves:
    """MoRF / LeRF point-removal curves of an explanation, and their areas.

    For every fraction ``f``, ``r = round(f * N)`` points of every cloud are
    removed, either the most important ones (MoRF) or the least important
    ones (LeRF), and the accuracy of the model on the altered clouds is
    recorded. A faithful importance makes MoRF accuracy fall fast and LeRF
    accuracy stay high; ``area_between`` summarises the gap (AOPC-style, as
    in Samek et al., "Evaluating the visualization of what a deep neural
    network has learned", 2017, adapted to point removal).

    Removal (``mode``):

    * ``"replace"`` (default): every removed point is replaced by a copy of a
      kept point drawn at random (seeded), so N stays fixed. For a max-pool
      network such as PointNet in eval mode this equals removing the point
      (a duplicate never changes the max); for neighbourhood networks
      (DGCNN) the duplicates alter the kNN graph slightly.
    * ``"drop"``: the removed points are left out and the model runs on
      ``N - r`` points (needs a model that accepts any N, like deepscope's
      PointNet and DGCNN).

    At most ``N - 1`` points are removed. Importance ties are broken by a
    seeded random permutation, so the curves are deterministic for a seed.
    The model runs in eval mode (restored afterwards) without gradients.

    Args:
        model: torch classifier taking (B, N, 3) points.
        points: (S, N, 3) float points, NumPy or torch.
        labels: (S,) integer labels.
        importance: (S, N) finite importance of the points.
        fractions: increasing fractions in [0, 1).
        mode: ``"replace"`` or ``"drop"``.
        seed: seed of the tie-break and of the replacement draws.
        batch_size: clouds per forward pass.

    Returns:
        :class:`RemovalCurves`.
    """
    import torch

    from deepscope._arrays import to_numpy

    if mode not in ("replace", "drop"):
        raise ValueError(f"mode: expected 'replace' or 'drop', got {mode!r}")
    batch_size = check_count(batch_size, "batch_size")
    seed = check_seed(seed)
    pts = np.asarray(to_numpy(points), dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 3 or pts.shape[0] == 0 or pts.shape[1] == 0:
        raise ValueError(
            f"points: expected shape (S, N, 3), S, N >= 1, got {pts.shape}"
        )
    S, N, _ = pts.shape
    lab = np.asarray(to_numpy(labels)).reshape(-1).astype(np.int64)
    if lab.shape != (S,):
        raise ValueError(f"labels: expected shape ({S},), got {lab.shape}")
    imp = _host_importance(importance)
    if imp.shape != (S, N):
        raise ValueError(f"importance: expected shape ({S}, {N}), got {imp.shape}")
    frac = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if frac.size == 0 or (np.diff(frac) <= 0).any() or frac[0] < 0 or frac[-1] >= 1:
        raise ValueError(
            f"fractions: expected increasing values in [0, 1), got {frac.tolist()}"
        )

    rng = np.random.default_rng(seed)
    order = _rank_most_important_first(imp, rng)  # (S, N), most important first
    # Random kept-point choices for the replacement, drawn once per cloud.
    picks = rng.random((S, N))
    first = next(iter(model.parameters()), None)
    device = torch.device("cpu") if first is None else first.device
    if first is None or first.dtype != torch.float64:
        pts = pts.astype(np.float32)
    was_training = bool(model.training)
    model.eval()
    try:
        morf, lerf = [], []
        for f in frac:
            r = min(int(round(f * N)), N - 1)
            morf.append(
                _accuracy(
                    model, pts, lab, order[:, r:], picks, mode, device, batch_size
                )
            )
            lerf.append(
                _accuracy(
                    model, pts, lab, order[:, : N - r], picks, mode, device, batch_size
                )
            )
    finally:
        model.train(was_training)
    morf_a, lerf_a = np.asarray(morf), np.asarray(lerf)
    span = frac[-1] - frac[0]
    gap = lerf_a - morf_a
    if frac.size > 1 and span > 0:
        area = float(np.sum((gap[1:] + gap[:-1]) * np.diff(frac)) / 2.0 / span)
    else:
        area = float(gap[0])
    return RemovalCurves(
        frac,
        morf_a,
        lerf_a,
        float(np.mean(morf_a[0] - morf_a)),
        float(np.mean(lerf_a[0] - lerf_a)),
        area,
    )


def _accuracy(
    model: Any,
    pts: np.ndarray,
    labels: np.ndarray,
    kept: np.ndarray,
    picks: np.ndarray,
    mode: str,
    device: Any,
    batch_size: int,
) -> float:
    """Accuracy on the clouds reduced to the ``kept`` (S, K) point indices."""
    import torch

    S, N, _ = pts.shape
    K = kept.shape[1]
    if mode == "drop" or K == N:
        index = kept
    else:
        # Slots 0..K-1 hold the kept points; the others copy a random kept one.
        fill = np.minimum((picks[:, : N - K] * K).astype(np.int64), K - 1)
        index = np.concatenate([kept, np.take_along_axis(kept, fill, axis=1)], axis=1)
    reduced = np.take_along_axis(pts, index[..., None], axis=1)
    correct = 0
    with torch.no_grad():
        for start in range(0, S, batch_size):
            chunk = torch.from_numpy(reduced[start : start + batch_size]).to(device)
            predicted = model(chunk).argmax(dim=1).cpu().numpy()
            correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / S

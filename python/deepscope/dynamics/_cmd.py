# Post-hoc Correlation Mode Decomposition of a window of parameter snapshots.
# SPDX-License-Identifier: MIT
"""Correlation Mode Decomposition (CMD), fitted after the fact on a window.

Brokman, Betser, Turjeman, Berkov, Cohen, Gilboa, "Enhancing Neural Training
via a Correlated Dynamics Model" (ICLR 2024, arXiv 2312.13247). Parameters
move in a few correlated groups ("modes"): every parameter is modelled as an
affine function of one reference parameter's trajectory,
w_i(t) ~ a_i r_m(i)(t) + b_i.

The faithful method (defaults as in the official code):

1. sample K candidate parameters with the layer-balanced scheme;
2. correlate their trajectories; |correlation|, with NaN (a constant
   trajectory) set to 0;
3. complete-linkage clustering of the rows of |correlation| (Euclidean
   distances between rows), cut into at most M clusters, relabelled by size;
4. one reference per cluster: the member with the highest mean |correlation|
   to its cluster;
5. every parameter joins its most correlated reference (|rho|) and gets a
   least-squares fit (one fused kernel pass over the window).

Deliberate differences from the official code: the fused pass accumulates in
float64 over data shifted by the first sample (the official float32 one-pass
sums cancel catastrophically); a constant or numerically constant member is
never chosen as a reference while a varying one exists; the mode index is
int64 (no cap at 255); ``clustering="kmedoids"`` offers k-medoids on
1 - |rho| as an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepscope import _arrays
from deepscope.dynamics._kernels import AssignFit, _fit_view, reference_stats

Array = Any

__all__ = ["CMD", "balanced_sample", "cluster_correlations"]


def balanced_sample(
    layer_sizes: Sequence[int], n_samples: int, seed: int = 0
) -> np.ndarray:
    """Layer-balanced sampling of candidate parameters (the official ``U_B``).

    Each of the L layers gets min(floor(K / (2L)), size) samples plus a
    size-proportional share floor(size / N * K / 2) when that still fits; the
    remainder goes to the first layer, in ascending order of sample count,
    that can absorb it. Indices are drawn uniformly without replacement inside
    each layer. With K / 2 < L the sampling is uniform over all parameters.

    Args:
        layer_sizes: number of parameters per layer (flattened in order).
        n_samples: K; clipped to the number of parameters N.
        seed: seed of the NumPy generator.

    Returns:
        (min(K, N),) int64 sorted flat parameter indices.
    """
    sizes = np.asarray([int(s) for s in layer_sizes], dtype=np.int64)
    if (sizes < 0).any():
        raise ValueError(f"layer_sizes: expected sizes >= 0, got {sizes.tolist()}")
    N = int(sizes.sum())
    K = min(_arrays.check_count(n_samples, "n_samples"), N)
    if K < 1:
        raise ValueError(f"n_samples: expected >= 1 parameters to sample, got N = {N}")
    rng = np.random.default_rng(_arrays.check_seed(seed))
    L = len(sizes)
    if K >= N:
        return np.arange(N, dtype=np.int64)
    if K / 2 < L:
        return np.sort(rng.choice(N, size=K, replace=False)).astype(np.int64)

    counts = np.minimum(K // (2 * L), sizes)
    for layer in range(L):
        share = int(np.floor(sizes[layer] / N * K / 2))
        if counts[layer] + share <= sizes[layer]:
            counts[layer] += share
    remainder = K - int(counts.sum())
    while remainder > 0:
        for layer in np.argsort(counts, kind="stable"):
            room = int(sizes[layer] - counts[layer])
            if room > 0:
                take = min(room, remainder)
                counts[layer] += take
                remainder -= take
                break

    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    picks = [
        offsets[layer]
        + rng.choice(int(sizes[layer]), size=int(counts[layer]), replace=False)
        for layer in range(L)
        if counts[layer] > 0
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def _abs_correlation(trajectories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|Pearson correlation| of (K, T) rows, 0 where a row is constant."""
    x = trajectories - trajectories.mean(axis=1, keepdims=True)
    norms = np.sqrt((x * x).sum(axis=1))
    constant = ~(norms > 0.0)
    x = np.where(constant[:, None], 0.0, x / np.where(constant, 1.0, norms)[:, None])
    corr = np.clip(np.abs(x @ x.T), 0.0, 1.0)
    return corr, constant


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Labels 0..C-1 by decreasing cluster size (ties: first member first)."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(len(uniq), dtype=np.int64)
    remap[order] = np.arange(len(uniq))
    return remap[np.searchsorted(uniq, labels)]


def _kmedoids(dist: np.ndarray, k: int, max_iter: int = 100) -> np.ndarray:
    """Deterministic alternating k-medoids on a distance matrix."""
    medoids = [int(np.argmin(dist.sum(axis=1)))]
    while len(medoids) < k:
        nearest = dist[:, medoids].min(axis=1)
        nearest[medoids] = -1.0
        medoids.append(int(np.argmax(nearest)))
    medoids = np.asarray(medoids)
    labels = np.argmin(dist[:, medoids], axis=1)
    for _ in range(max_iter):
        new = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(labels == c)
            if len(members):
                cost = dist[np.ix_(members, members)].sum(axis=1)
                new[c] = members[int(np.argmin(cost))]
        new_labels = np.argmin(dist[:, new], axis=1)
        if np.array_equal(new, medoids) and np.array_equal(new_labels, labels):
            break
        medoids, labels = new, new_labels
    return labels


def cluster_correlations(
    corr: np.ndarray, n_modes: int, method: str = "linkage"
) -> np.ndarray:
    """Clusters K candidates from their (K, K) |correlation| matrix.

    Args:
        corr: (K, K) float64 |correlation|.
        n_modes: at most this many clusters.
        method: ``"linkage"`` (official: complete linkage on the Euclidean
            distances between rows of ``corr``, ``maxclust``) or
            ``"kmedoids"`` (k-medoids on 1 - |rho|).

    Returns:
        (K,) int64 labels 0..C-1 (C <= n_modes), 0 the largest cluster.
    """
    K = corr.shape[0]
    if K == 1 or n_modes == 1:
        return np.zeros(K, dtype=np.int64)
    if method == "linkage":
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import pdist

        tree = linkage(pdist(corr, "euclidean"), method="complete")
        labels = fcluster(tree, t=n_modes, criterion="maxclust")
    elif method == "kmedoids":
        labels = _kmedoids(1.0 - corr, min(n_modes, K))
    else:
        raise ValueError(
            f"clustering: expected 'linkage' or 'kmedoids', got {method!r}"
        )
    return _relabel_by_size(np.asarray(labels))


def _pick_references(
    corr: np.ndarray, labels: np.ndarray, unusable: np.ndarray
) -> np.ndarray:
    """Per cluster, the member with the highest mean |rho| to the others."""
    refs = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        sub = corr[np.ix_(members, members)]
        score = (sub.sum(axis=1) - np.diag(sub)) / max(len(members) - 1, 1)
        score = np.where(unusable[members], -np.inf, score)
        if np.isneginf(score).all():
            score = np.zeros(len(members))
        refs.append(members[int(np.argmax(score))])
    return np.asarray(refs, dtype=np.int64)


class CMD:
    """Post-hoc Correlation Mode Decomposition of a window of snapshots.

    Example::

        window = torch.stack(snapshots)          # (T, N), one row per epoch
        cmd = CMD(n_modes=10, n_samples=1000).fit(window, layer_sizes)
        w_5 = cmd.reconstruct(5)                 # (N,) model at epoch 5

    Args:
        n_modes: M, the maximum number of modes (official default: 10).
        n_samples: K, the number of candidate parameters that are clustered
            (official default: 1000).
        clustering: ``"linkage"`` (faithful) or ``"kmedoids"``.
        seed: seed of the candidate sampling.

    Attributes (after :meth:`fit`):
        sample_indices_: (K,) int64 flat indices of the candidates.
        reference_indices_: (M,) int64 flat indices of the reference
            parameters (mode m's reference is ``reference_indices_[m]``).
        references_: (M, T) float64 reference trajectories.
        modes_: (N,) int64 mode of every parameter (window's framework).
        a_, b_: (N,) affine coefficients (window's framework, float32 or
            float64).
        rho_: (N,) correlation with the assigned reference.
        mode_sizes_: (M,) int64 parameters per mode.
        explained_variance_: (M,) float64 fraction of the window variance of
            each mode's parameters that the model explains (1 for a mode
            whose parameters do not vary).
        total_explained_variance_: float, the same over all parameters.
        layer_errors_: (L,) float64 relative L2 reconstruction error per
            layer over the window, sqrt(sum |w - w_hat|^2 / sum |w|^2).
    """

    def __init__(
        self,
        n_modes: int = 10,
        n_samples: int = 1000,
        *,
        clustering: str = "linkage",
        seed: int = 0,
    ) -> None:
        _arrays.check_count(n_modes, "n_modes")
        _arrays.check_count(n_samples, "n_samples")
        if clustering not in ("linkage", "kmedoids"):
            raise ValueError(
                f"clustering: expected 'linkage' or 'kmedoids', got {clustering!r}"
            )
        self.n_modes = int(n_modes)
        self.n_samples = int(n_samples)
        self.clustering = clustering
        self.seed = _arrays.check_seed(seed)

    # ------------------------------------------------------------------ fit

    def fit(self, window: Array, layer_sizes: Sequence[int] | None = None) -> CMD:
        """Fits the modes and coefficients on a window of snapshots.

        Args:
            window: (T, N) float16/bfloat16/float32/float64, one row per
                snapshot (NumPy, torch CPU/CUDA or CuPy); half types are
                upcast to float32.
            layer_sizes: parameters per layer, summing to N, for the
                layer-balanced sampling (default: one layer).

        Returns:
            self.

        Raises:
            ValueError: T < 1, N < 1, NaN/inf, or sizes that do not sum to N.
        """
        view = _arrays.prepare(window, "window", ndim=(2,))
        T, N = view.shape
        if T < 1 or N < 1:
            raise ValueError(
                f"window: expected at least 1 snapshot of at least 1 parameter, "
                f"got shape {view.shape}"
            )
        sizes = [N] if layer_sizes is None else [int(s) for s in layer_sizes]
        if sum(sizes) != N:
            raise ValueError(
                f"layer_sizes: expected sizes summing to N = {N}, got {sum(sizes)}"
            )
        self.layer_sizes_ = np.asarray(sizes, dtype=np.int64)

        # Candidates, their |correlations|, clusters and references.
        idx = balanced_sample(sizes, self.n_samples, self.seed)
        sample = _take_columns(view, idx)
        if not np.isfinite(sample).all():
            raise ValueError("window: expected finite values, got NaN or inf")
        corr, constant = _abs_correlation(sample)
        labels = cluster_correlations(corr, self.n_modes, self.clustering)
        _, _, _, _, degenerate = reference_stats(sample, view.dtype)
        local = _pick_references(corr, labels, constant | degenerate)
        self.sample_indices_ = idx
        self.sample_labels_ = labels
        self.reference_indices_ = idx[local]
        self.references_ = np.ascontiguousarray(sample[local])

        # One fused pass: assignment and affine fit of every parameter.
        fit = _fit_view(view, N, T, self.references_, True, True)
        self._set_fit(fit, view)
        return self

    def _set_fit(self, fit: AssignFit, view: Any) -> None:
        self.modes_, self.a_, self.b_, self.rho_ = fit.modes, fit.a, fit.b, fit.rho
        self._like = view
        M = len(self.references_)
        modes = _arrays.to_numpy(fit.modes)
        sxx = _arrays.to_numpy(fit.sxx)
        sse = _arrays.to_numpy(fit.sse)
        self.mode_sizes_ = np.bincount(modes, minlength=M).astype(np.int64)
        var_m = np.bincount(modes, weights=sxx, minlength=M)
        err_m = np.bincount(modes, weights=sse, minlength=M)
        self.explained_variance_ = np.where(
            var_m > 0, 1.0 - err_m / np.where(var_m > 0, var_m, 1.0), 1.0
        )
        total = float(sxx.sum())
        self.total_explained_variance_ = (
            1.0 - float(sse.sum()) / total if total > 0 else 1.0
        )

        # Per-layer relative error: sum_t w^2 = sxx + T * mean^2.
        T = self.references_.shape[1]
        a = _arrays.to_numpy(fit.a).astype(np.float64)
        b = _arrays.to_numpy(fit.b).astype(np.float64)
        mean = b + a * self.references_.mean(axis=1)[modes]
        energy = sxx + T * mean * mean
        layer = np.repeat(np.arange(len(self.layer_sizes_)), self.layer_sizes_)
        L = len(self.layer_sizes_)
        e_l = np.bincount(layer, weights=sse, minlength=L)
        w_l = np.bincount(layer, weights=energy, minlength=L)
        self.layer_errors_ = np.where(
            w_l > 0, np.sqrt(e_l / np.where(w_l > 0, w_l, 1.0)), 0.0
        )

    # ----------------------------------------------------------- reconstruct

    def reconstruct(self, t: int) -> Array:
        """The modelled parameters at window index ``t`` (negative allowed).

        Returns:
            (N,) in the window's framework, device and kernel dtype.
        """
        T = self.references_.shape[1]
        if not -T <= int(t) < T:
            raise ValueError(f"t: expected {-T} <= t < {T}, got {t}")
        return self.reconstruct_from(self.references_[:, int(t)])

    def reconstruct_from(self, reference_values: Any) -> Array:
        """The modelled parameters for given reference values (any epoch).

        Args:
            reference_values: (M,) values of the reference parameters, e.g.
                read from the trained model at a later epoch.

        Returns:
            (N,) a * r[mode] + b in the window's framework and dtype.
        """
        from deepscope.dynamics._kernels import reconstruct_into

        self._check_fitted()
        values = np.asarray(_arrays.to_numpy(reference_values), dtype=np.float64)
        M = len(self.references_)
        if values.shape != (M,):
            raise ValueError(
                f"reference_values: expected shape ({M},), got {values.shape}"
            )
        out = _arrays.empty(self._like, (len(self.modes_),), self._like.dtype)
        view = _arrays.prepare(out, "out", ndim=(1,))
        reconstruct_into(view, self.modes_, self.a_, self.b_, values)
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "modes_"):
            raise RuntimeError("CMD: call fit() before using the decomposition")


def _take_columns(view: Any, idx: np.ndarray) -> np.ndarray:
    """(K, T) float64 host trajectories of the columns ``idx`` of (T, N)."""
    a = view.array
    if view.framework == "torch":
        import torch

        cols = a[:, torch.as_tensor(idx, device=a.device)]
    elif view.framework == "cupy":
        import cupy

        cols = a[:, cupy.asarray(idx)]
    else:
        cols = a[:, idx]
    return np.ascontiguousarray(_arrays.to_numpy(cols).T, dtype=np.float64)

# BASiS: learned spectral embeddings by regression on batch-aligned eigenvectors.
# SPDX-License-Identifier: MIT
"""BASiS (Streicher, Cohen and Gilboa, CVPR 2023) and a SpectralNet-style baseline.

A network f(x) -> R^K is trained to output the first K eigenvectors of the
symmetric normalised Laplacian of a self-tuning kNN graph. Every mini-batch
contains the same anchor points; the batch's eigenvectors are mapped onto a
fixed reference space (the first batch's eigenvectors) by an affine map fitted
on the anchors with RANSAC (or an orthogonal Procrustes rotation), and the
network regresses the aligned eigenvectors with an MSE loss. The baseline
minimises the Rayleigh quotient trace(Y^T L Y) of an orthonormalised output
(Shaham et al., ICLR 2018), with a rank-safe QR.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from deepscope._arrays import check_count, check_seed, flag, to_numpy

__all__ = [
    "BASiS",
    "SpectralNetEmbedding",
    "affine_ransac_align",
    "batch_eigenvectors",
    "batch_laplacian",
    "procrustes_align",
    "select_anchors",
]

Array = Any

ANCHOR_METHODS = ("kmeans++", "fps", "random", "stratified")
ALIGNMENTS = ("ransac", "procrustes", "none")
GRAPH_WEIGHTS = ("self_tuning", "gaussian")
LAPLACIANS = ("symmetric", "combinatorial")


#: Batches up to this size build their graph and eigenvectors on one thread:
#: threads gain nothing there, and on a busy machine OpenMP / BLAS threads
#: slowed a 265-point batch step about tenfold.
SINGLE_THREAD_MAX_BATCH = 2048

_THREADPOOLS: list[Any] = []


def _torch() -> Any:
    import torch

    return torch


def _threads_for(n: int) -> Any:
    """A context limiting OpenMP / BLAS pools to one thread for small n."""
    import contextlib

    if n > SINGLE_THREAD_MAX_BATCH:
        return contextlib.nullcontext()
    if not _THREADPOOLS:
        try:
            import scipy.linalg  # noqa: F401  (load its BLAS before the scan)
            from threadpoolctl import ThreadpoolController

            _THREADPOOLS.append(ThreadpoolController())
        except ImportError:  # optional: without it, threads stay as they are
            _THREADPOOLS.append(None)
    controller = _THREADPOOLS[0]
    return (
        contextlib.nullcontext() if controller is None else controller.limit(limits=1)
    )


def _features(X: Array, name: str) -> np.ndarray:
    a = np.asarray(to_numpy(X))
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) array, got shape {a.shape}")
    if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
        raise ValueError(f"{name}: expected a real numeric array, got {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def select_anchors(
    X: Array,
    n_anchors: int,
    *,
    method: str = "kmeans++",
    labels: Array | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the anchor points that every BASiS batch contains.

    Args:
        X: (N, D) float features.
        n_anchors: number of anchors, ``1 <= n_anchors <= N``.
        method: ``"kmeans++"`` (D^2 seeding of k-means++, density-aware and
            label-free; the default), ``"fps"`` (exact farthest point
            sampling from a seeded random start, label-free), ``"random"``
            (uniform, label-free) or ``"stratified"`` (the published choice:
            equal counts per ground-truth class; this is mild supervision and
            needs ``labels``).
        labels: (N,) labels, only for ``"stratified"``.
        seed: seed of the selection.

    Returns:
        (n_anchors,) int64 distinct indices (fewer only for ``"stratified"``
        when classes are too small, never duplicates).

    Raises:
        ValueError: unknown method, n_anchors out of range, missing labels.
    """
    Xn = _features(X, "X")
    n = Xn.shape[0]
    if method not in ANCHOR_METHODS:
        raise ValueError(f"method: expected one of {ANCHOR_METHODS}, got {method!r}")
    n_anchors = check_count(n_anchors, "n_anchors", 1, n)
    rng = np.random.default_rng(check_seed(seed))
    if method == "random":
        return np.sort(rng.choice(n, n_anchors, replace=False)).astype(np.int64)
    if method == "fps":
        from deepscope.pointcloud import farthest_point_sample

        start = int(rng.integers(0, n))
        res = farthest_point_sample(Xn, n_anchors, start_index=start, allow_fewer=True)
        idx = np.asarray(res.indices, dtype=np.int64)
        idx = idx[idx >= 0]
        if idx.size < n_anchors:  # duplicates exhausted FPS: top up at random
            rest = np.setdiff1d(np.arange(n), idx)
            idx = np.concatenate(
                [idx, rng.choice(rest, n_anchors - idx.size, replace=False)]
            )
        return idx
    if method == "kmeans++":
        from sklearn.cluster import kmeans_plusplus

        _, idx = kmeans_plusplus(Xn, n_anchors, random_state=seed)
        idx = np.asarray(idx, dtype=np.int64)
        uniq, first = np.unique(idx, return_index=True)
        idx = idx[np.sort(first)]
        if idx.size < n_anchors:
            rest = np.setdiff1d(np.arange(n), idx)
            idx = np.concatenate(
                [idx, rng.choice(rest, n_anchors - idx.size, replace=False)]
            )
        return idx
    if labels is None:
        raise ValueError("labels: required for method='stratified' (mild supervision)")
    y = np.asarray(to_numpy(labels))
    if y.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {y.shape}")
    classes = np.unique(y)
    per = max(1, n_anchors // classes.size)
    out = []
    for c in classes:
        members = np.flatnonzero(y == c)
        out.append(rng.choice(members, min(per, members.size), replace=False))
    return np.concatenate(out).astype(np.int64)


def _check_graph_options(weight: str, laplacian: str) -> None:
    if weight not in GRAPH_WEIGHTS:
        raise ValueError(f"weight: expected one of {GRAPH_WEIGHTS}, got {weight!r}")
    if laplacian not in LAPLACIANS:
        raise ValueError(f"laplacian: expected one of {LAPLACIANS}, got {laplacian!r}")


def batch_laplacian(
    X: Array,
    *,
    n_neighbors: int = 10,
    sigma_neighbor: int = 7,
    weight: str = "self_tuning",
    laplacian: str = "symmetric",
) -> np.ndarray:
    """Dense Laplacian of a batch's kNN graph (see :func:`batch_eigenvectors`).

    Returns:
        (B, B) float64 symmetric NumPy array.
    """
    from deepscope.graph._knn_graph import knn_graph
    from deepscope.graph._laplacian import laplacian as graph_laplacian

    _check_graph_options(weight, laplacian)
    Xn = _features(X, "X")
    b = Xn.shape[0]
    if b < 2:
        raise ValueError(f"X: expected at least 2 points, got {b}")
    k = min(n_neighbors, b - 1)
    with _threads_for(b):
        g = knn_graph(Xn, k, weight=weight, sigma_neighbor=min(sigma_neighbor, k))
        L = graph_laplacian(g.affinity, laplacian).laplacian.toarray()
    return 0.5 * (L + L.T)


def batch_eigenvectors(
    X: Array,
    n_components: int,
    *,
    n_neighbors: int = 10,
    sigma_neighbor: int = 7,
    weight: str = "self_tuning",
    laplacian: str = "symmetric",
    drop_first: bool = False,
    device: Any = "cpu",
) -> Any:
    """First eigenvectors of a batch's kNN graph Laplacian.

    Graph: :func:`deepscope.graph.knn_graph` with self-tuning weights
    exp(-d^2 / sigma_i^2) (sigma_i the distance to the ``sigma_neighbor``-th
    neighbour) or one global Gaussian scale (``weight="gaussian"``: sigma the
    median over points of the ``sigma_neighbor``-th neighbour distance),
    symmetrised as (W + W^T) / 2; Laplacian I - D^-1/2 W D^-1/2
    (``"symmetric"``) or D - W (``"combinatorial"``); dense
    ``torch.linalg.eigh`` in float64.

    Args:
        X: (B, D) float features of the batch.
        n_components: K eigenvectors returned.
        n_neighbors: k of the kNN graph (clipped to B - 1), self excluded.
        sigma_neighbor: neighbour that sets the kernel scale.
        weight: ``"self_tuning"`` or ``"gaussian"``.
        laplacian: ``"symmetric"`` or ``"combinatorial"``.
        drop_first: skip the first (trivial) eigenvector, so the K returned
            are eigenvectors 2..K+1.
        device: torch device of the eigendecomposition and the result.

    Returns:
        (B, K) float64 torch tensor of unit-norm eigenvectors, eigenvalues
        ascending (signs and rotations within degenerate spaces arbitrary).
    """
    torch = _torch()
    Xn = _features(X, "X")
    b = Xn.shape[0]
    first = 1 if drop_first else 0
    if not 1 <= n_components <= b - first:
        raise ValueError(
            f"n_components: expected 1 <= K <= {b - first}, got {n_components}"
        )
    L = batch_laplacian(
        Xn,
        n_neighbors=n_neighbors,
        sigma_neighbor=sigma_neighbor,
        weight=weight,
        laplacian=laplacian,
    )
    if torch.device(device).type == "cpu":
        # Only the wanted eigenvectors (LAPACK syevr on an index range).
        from scipy.linalg import eigh

        with _threads_for(b):
            _, V = eigh(
                L, subset_by_index=(first, first + n_components - 1), driver="evr"
            )
        return torch.from_numpy(np.ascontiguousarray(V))
    Ld = torch.from_numpy(L).to(device=device, dtype=torch.float64)
    _, V = torch.linalg.eigh(Ld)
    return V[:, first : first + n_components]


def _homogeneous(A: Any) -> Any:
    torch = _torch()
    return torch.cat([A, torch.ones_like(A[..., :1])], dim=-1)


def affine_ransac_align(
    source: Any,
    target: Any,
    *,
    n_iterations: int = 100,
    n_samples: int = 20,
    tolerance: float = 0.1,
    generator: Any = None,
) -> Any:
    """Affine map from ``source`` anchor rows to ``target`` rows, by RANSAC.

    All ``n_iterations`` hypotheses are fitted at once: each draws
    ``max(n_samples, K + 1)`` anchors, fits M = pinv([S, 1]) T by least
    squares, and counts the anchors whose row residual ||[s, 1] M - t||_2 is
    below ``tolerance``; the hypothesis with most inliers is refitted on its
    inliers (on all anchors when it has fewer than K + 1).

    Args:
        source: (A, K) float torch tensor (batch eigenvectors at the anchors).
        target: (A, K) same dtype / device (reference rows of the anchors).
        n_iterations: RANSAC hypotheses.
        n_samples: anchors per hypothesis.
        tolerance: inlier threshold on the row residual.
        generator: optional CPU ``torch.Generator`` for the draws.

    Returns:
        (K + 1, K) map M; apply as ``[V, 1] @ M``.
    """
    torch = _torch()
    n, K = source.shape
    S = _homogeneous(source)
    s = min(max(n_samples, K + 1), n)
    # Draw every hypothesis' sample at once (argsort of uniforms).
    draws = torch.rand(n_iterations, n, generator=generator).argsort(dim=1)[:, :s]
    draws = draws.to(source.device)
    M = torch.linalg.pinv(S[draws]) @ target[draws]  # (it, K+1, K)
    res = torch.linalg.vector_norm(S.unsqueeze(0) @ M - target.unsqueeze(0), dim=-1)
    inliers = res < tolerance
    best = inliers[int(torch.argmax(inliers.sum(dim=1)))]
    if int(best.sum()) < K + 1:
        best = torch.ones_like(best)
    return torch.linalg.pinv(S[best]) @ target[best]


def procrustes_align(source: Any, target: Any) -> Any:
    """Orthogonal Procrustes map: the rotation Q minimising ||S Q - T||_F.

    For a wider source (K_s > K columns) Q has orthonormal columns.

    Returns the (K + 1, K) homogeneous form ``[Q; 0]`` so it is applied like
    the affine map, ``[V, 1] @ M``.
    """
    torch = _torch()
    U, _, Vh = torch.linalg.svd(source.T @ target, full_matrices=False)
    Q = U @ Vh
    return torch.cat([Q, torch.zeros_like(Q[:1])], dim=0)


def _mlp(d_in: int, hidden: tuple[int, ...], d_out: int) -> Any:
    torch = _torch()
    layers: list[Any] = []
    d = d_in
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.ReLU()]
        d = h
    layers.append(torch.nn.Linear(d, d_out))
    return torch.nn.Sequential(*layers)


def _steps(n: int, progress: bool, desc: str) -> Any:
    """``range(n)``, under a tqdm bar on stderr when ``progress`` is true."""
    if not flag(progress, "progress"):
        return range(n)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return range(n)
    return tqdm(range(n), desc=desc, unit="step", file=sys.stderr, leave=False)


class _SpectralNetwork:
    """Shared training machinery: network, batches, batch Laplacians, transform."""

    def __init__(
        self,
        n_components: int,
        *,
        n_neighbors: int,
        sigma_neighbor: int,
        batch_size: int,
        hidden: tuple[int, ...],
        lr: float,
        n_iterations: int,
        device: Any,
        seed: int,
        weight: str = "self_tuning",
        laplacian: str = "symmetric",
        drop_first: bool = False,
    ) -> None:
        _check_graph_options(weight, laplacian)
        for name, v, lo in (
            ("n_components", n_components, 1),
            ("n_neighbors", n_neighbors, 1),
            ("sigma_neighbor", sigma_neighbor, 1),
            ("batch_size", batch_size, 2),
            ("n_iterations", n_iterations, 0),
        ):
            check_count(v, name, lo)
        if not lr > 0:
            raise ValueError(f"lr: expected > 0, got {lr}")
        self.n_components = int(n_components)
        self.n_neighbors = int(n_neighbors)
        self.sigma_neighbor = int(sigma_neighbor)
        self.batch_size = int(batch_size)
        self.hidden = tuple(int(h) for h in hidden)
        self.lr = float(lr)
        self.n_iterations = int(n_iterations)
        self.device = device
        self.seed = check_seed(seed)
        self.weight = weight
        self.laplacian = laplacian
        self.drop_first = bool(drop_first)
        self.model_: Any = None
        self.loss_history_: list[float] = []

    # -- helpers ---------------------------------------------------------
    def _init_model(self, d_in: int) -> None:
        torch = _torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = _mlp(d_in, self.hidden, self.n_components).to(self.device)
        self.optimizer_ = torch.optim.Adam(
            self.model_.parameters(), lr=self.lr, foreach=True
        )
        self.rng_ = np.random.default_rng(self.seed)
        self.generator_ = torch.Generator().manual_seed(self.seed)

    def _laplacian_eig(self, feats: np.ndarray, n_components: int = 0) -> Any:
        return batch_eigenvectors(
            feats,
            n_components or self.n_components,
            n_neighbors=self.n_neighbors,
            sigma_neighbor=self.sigma_neighbor,
            weight=self.weight,
            laplacian=self.laplacian,
            drop_first=self.drop_first,
            device=self.device,
        )

    def _check_fit_input(self, X: Array, graph_features: Array | None):
        Xn = _features(X, "X")
        n = Xn.shape[0]
        G = (
            Xn
            if graph_features is None
            else _features(graph_features, "graph_features")
        )
        if G.shape[0] != n:
            raise ValueError(
                f"graph_features: expected {n} rows like X, got {G.shape[0]}"
            )
        if n < 2:
            raise ValueError(f"X: expected at least 2 points, got {n}")
        room = min(self.batch_size, n) - int(self.drop_first)
        if self.n_components > room:
            raise ValueError(
                f"n_components: expected <= min(batch_size, N)"
                f"{' - 1' if self.drop_first else ''} = {room}, "
                f"got {self.n_components}"
            )
        return Xn, G

    def _forward(self, Xb: np.ndarray) -> Any:
        torch = _torch()
        # A copy: the caller's array may be read-only (torch warns on sharing
        # such memory) and is never written.
        x = torch.tensor(Xb, dtype=torch.float32, device=self.device)
        return self.model_(x)

    def _raw_transform(self, X: Array, block: int = 8192) -> Any:
        torch = _torch()
        if self.model_ is None:
            raise RuntimeError("not fitted: call fit first")
        Xn = _features(X, "X")
        if Xn.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: expected {self.n_features_in_} features, got {Xn.shape[1]}"
            )
        self.model_.eval()
        with torch.no_grad():
            out = [self._forward(Xn[i : i + block]) for i in range(0, len(Xn), block)]
        self.model_.train()
        if not out:
            return torch.zeros(0, self.n_components, device=self.device)
        return torch.cat(out)

    @staticmethod
    def _like_input(X: Array, Y: Any) -> Any:
        from deepscope._arrays import framework_of

        if framework_of(X) == "torch":
            return Y.to(X.device) if hasattr(X, "device") else Y
        return Y.detach().cpu().numpy()

    def fit_transform(self, X: Array, y: Array | None = None, **kw: Any) -> Any:
        """Fits on X, then embeds X (see ``fit`` and ``transform``)."""
        return self.fit(X, y, **kw).transform(X)


class BASiS(_SpectralNetwork):
    """Batch-aligned spectral embedding: f(x) -> first K Laplacian eigenvectors.

    Training (one step): a batch holds every anchor plus random other points;
    the first K eigenvectors V of its symmetric normalised self-tuning kNN
    Laplacian are mapped to the reference space by M fitted on the anchor rows
    (affine RANSAC by default), and the network regresses ``[V, 1] M`` (scaled
    by sqrt(batch_size), so entries are O(1)) with an MSE loss and Adam. The
    reference space is the first batch's eigenvectors.

    When the graph metric changes (features that are themselves learned),
    :meth:`update_graph_features` recomputes the reference batch's
    eigenvectors from the new features, aligns them to the old reference
    through the anchors (the "global" transformation) and carries on;
    :meth:`partial_fit` then continues training on the new graph.

    Args:
        n_components: K, the embedding dimension (trivial eigenvector kept).
        n_anchors: anchors in every batch; at least K + 1, below batch_size.
        anchors: ``"kmeans++"`` (default), ``"fps"``, ``"random"`` (all
            label-free) or ``"stratified"`` (per-class counts: mild
            supervision, needs ``y`` in ``fit``); or an index array.
        alignment: ``"ransac"`` (affine least squares with RANSAC, the
            published method), ``"procrustes"`` (orthogonal) or ``"none"``
            (ablation: raw eigenvectors, inconsistent across batches).
        ransac_iterations, ransac_samples, ransac_tolerance: RANSAC settings
            (published: 100, 20, 0.1 on unit-norm eigenvectors).
        n_neighbors: k of each batch graph; sigma_neighbor: neighbour of the
            kernel scale (published: 10 and 7).
        weight: ``"self_tuning"`` (per-point scale, default) or
            ``"gaussian"`` (one scale per batch graph: the median
            ``sigma_neighbor``-th neighbour distance; the published
            three-moons setting).
        laplacian: ``"symmetric"`` I - D^-1/2 W D^-1/2 (default) or
            ``"combinatorial"`` D - W (the published three-moons setting).
        drop_first: learn eigenvectors 2..K+1, skipping the trivial one
            (the published three-moons setting).
        extra_eigenvectors: m >= 0: each batch's alignment maps its first
            K + m eigenvectors onto the K reference ones, so eigenvectors that
            swap places across batches (near-degenerate eigenvalues around
            the K-th) are still matched (0: the published method).
        reference_batches: R >= 1: the reference anchor rows are the mean of
            R batches' aligned anchor rows (the first batch's eigenvectors
            and R - 1 more batches aligned to them), a less noisy reference
            than one batch (1: the published method).
        batch_size: points per batch, anchors included.
        hidden: hidden widths of the ReLU MLP (published 256-512-512-256).
        lr: Adam learning rate; n_iterations: training steps.
        device: torch device; seed: seeds init, batches, anchors and RANSAC.

    Attributes (after fit):
        anchors_: (A,) int64 anchor indices into the training set.
        reference_: (A, K) float64 torch reference rows of the anchors.
        loss_history_: per-step MSE losses.
        model_: the torch network.
    """

    def __init__(
        self,
        n_components: int = 10,
        *,
        n_anchors: int = 250,
        anchors: str | Array = "kmeans++",
        alignment: str = "ransac",
        ransac_iterations: int = 100,
        ransac_samples: int = 20,
        ransac_tolerance: float = 0.1,
        n_neighbors: int = 10,
        sigma_neighbor: int = 7,
        weight: str = "self_tuning",
        laplacian: str = "symmetric",
        drop_first: bool = False,
        extra_eigenvectors: int = 0,
        reference_batches: int = 1,
        batch_size: int = 512,
        hidden: tuple[int, ...] = (256, 512, 512, 256),
        lr: float = 1e-3,
        n_iterations: int = 1000,
        device: Any = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(
            n_components,
            n_neighbors=n_neighbors,
            sigma_neighbor=sigma_neighbor,
            batch_size=batch_size,
            hidden=hidden,
            lr=lr,
            n_iterations=n_iterations,
            device=device,
            seed=seed,
            weight=weight,
            laplacian=laplacian,
            drop_first=drop_first,
        )
        if alignment not in ALIGNMENTS:
            raise ValueError(
                f"alignment: expected one of {ALIGNMENTS}, got {alignment!r}"
            )
        if isinstance(anchors, str) and anchors not in ANCHOR_METHODS:
            raise ValueError(
                f"anchors: expected one of {ANCHOR_METHODS}, got {anchors!r}"
            )
        for name, v, lo in (
            ("extra_eigenvectors", extra_eigenvectors, 0),
            ("reference_batches", reference_batches, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
        self.extra_eigenvectors = int(extra_eigenvectors)
        self.reference_batches = int(reference_batches)
        self.n_anchors = int(n_anchors)
        self.anchors = anchors
        self.alignment = alignment
        self.ransac_iterations = int(ransac_iterations)
        self.ransac_samples = int(ransac_samples)
        self.ransac_tolerance = float(ransac_tolerance)

    # -- alignment -------------------------------------------------------
    def _align_map(self, source: Any, target: Any) -> Any:
        torch = _torch()
        if self.alignment == "ransac":
            return affine_ransac_align(
                source,
                target,
                n_iterations=self.ransac_iterations,
                n_samples=self.ransac_samples,
                tolerance=self.ransac_tolerance,
                generator=self.generator_,
            )
        if self.alignment == "procrustes":
            return procrustes_align(source, target)
        Ks, K = source.shape[1], target.shape[1]
        eye = torch.eye(Ks, K, dtype=source.dtype, device=source.device)
        return torch.cat([eye, torch.zeros_like(eye[:1])], dim=0)

    def _aligned_targets(self, idx: np.ndarray) -> Any:
        V = self._laplacian_eig(
            self.graph_features_[idx], self.n_components + self.extra_eigenvectors
        )
        M = self._align_map(V[: self.n_anchors_], self.reference_)
        return _homogeneous(V) @ M

    def _consensus_reference(self, V0: Any) -> Any:
        """Anchor rows averaged over ``reference_batches`` aligned batches."""
        ref = V0[: self.n_anchors_].clone()
        if self.reference_batches == 1:
            return ref
        total = ref.clone()
        for _ in range(self.reference_batches - 1):
            total += self._aligned_targets(self._draw_batch())[: self.n_anchors_]
        return total / self.reference_batches

    def _draw_batch(self) -> np.ndarray:
        m = self.batch_size - self.n_anchors_
        pick = self.rng_.choice(self.others_, min(m, self.others_.size), replace=False)
        return np.concatenate([self.anchors_, pick])

    # -- public API ------------------------------------------------------
    def fit(
        self,
        X: Array,
        y: Array | None = None,
        *,
        graph_features: Array | None = None,
        progress: bool = False,
    ) -> BASiS:
        """Trains the network from scratch.

        Args:
            X: (N, D) float network inputs, NumPy or torch.
            y: (N,) labels; used only by ``anchors="stratified"``.
            graph_features: (N, Dg) features the batch graphs are built on;
                default X.
            progress: show a progress bar (tqdm, on stderr).

        Returns:
            self.

        Raises:
            ValueError: bad shapes / values, too few anchors (< K + 1) or
                anchors not leaving room in the batch.
        """
        Xn, G = self._check_fit_input(X, graph_features)
        n = Xn.shape[0]
        if isinstance(self.anchors, str):
            anchors = select_anchors(
                G, min(self.n_anchors, n), method=self.anchors, labels=y, seed=self.seed
            )
        else:
            anchors = np.asarray(to_numpy(self.anchors), dtype=np.int64).ravel()
            if anchors.size == 0 or anchors.min() < 0 or anchors.max() >= n:
                raise ValueError(
                    f"anchors: expected indices in [0, {n}), got {anchors}"
                )
            anchors = np.unique(anchors)
        a = anchors.size
        need = self.n_components + self.extra_eigenvectors + 1
        if a < need:
            raise ValueError(
                f"n_anchors: expected at least n_components + extra_eigenvectors"
                f" + 1 = {need} anchors, got {a}"
            )
        if a >= min(self.batch_size, n):
            raise ValueError(
                f"n_anchors: expected fewer anchors than min(batch_size, N) = "
                f"{min(self.batch_size, n)}, got {a}"
            )
        self.n_features_in_ = Xn.shape[1]
        self.fit_shape_ = Xn.shape
        self.graph_features_ = G
        self.anchors_ = anchors
        self.n_anchors_ = a
        self.others_ = np.setdiff1d(np.arange(n), anchors)
        self._init_model(Xn.shape[1])
        # Reference space: the first batch's eigenvectors.
        self.reference_batch_ = self._draw_batch()
        self.scale_ = math.sqrt(self.reference_batch_.size)
        V = self._laplacian_eig(G[self.reference_batch_])
        self.reference_ = V[:a].clone()
        self.reference_ = self._consensus_reference(V)
        self.loss_history_ = []
        return self.partial_fit(X, self.n_iterations, progress=progress)

    def partial_fit(
        self, X: Array, n_iterations: int | None = None, *, progress: bool = False
    ) -> BASiS:
        """Continues training for ``n_iterations`` steps (default all).

        Args:
            X: (N, D) the training inputs given to ``fit``.
            n_iterations: steps to run.
            progress: show a progress bar (tqdm, on stderr).
        """
        torch = _torch()
        if self.model_ is None:
            raise RuntimeError("not fitted: call fit first")
        Xn = _features(X, "X")
        if Xn.shape != self.fit_shape_:
            raise ValueError(
                f"X: expected the fit inputs {self.fit_shape_}, got {Xn.shape}"
            )
        steps = self.n_iterations if n_iterations is None else int(n_iterations)
        for _ in _steps(steps, progress, "BASiS"):
            idx = self._draw_batch()
            with torch.no_grad():
                T = (self._aligned_targets(idx) * self.scale_).float()
            out = self._forward(Xn[idx])
            loss = torch.mean((out - T) ** 2)
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_.step()
            self.loss_history_.append(float(loss.detach()))
        return self

    def update_graph_features(self, graph_features: Array) -> BASiS:
        """Switches the batch graphs to new features and re-aligns the reference.

        The reference batch's eigenvectors are recomputed on the new features
        and mapped onto the old reference through the anchors with the
        configured alignment, so the targets stay in the same space.

        Args:
            graph_features: (N, Dg) new features of the training points.
        """
        torch = _torch()
        if self.model_ is None:
            raise RuntimeError("not fitted: call fit first")
        G = _features(graph_features, "graph_features")
        if G.shape[0] != self.fit_shape_[0]:
            raise ValueError(
                f"graph_features: expected {self.fit_shape_[0]} rows, got {G.shape[0]}"
            )
        self.graph_features_ = G
        with torch.no_grad():
            V = self._laplacian_eig(
                G[self.reference_batch_], self.n_components + self.extra_eigenvectors
            )
            M = self._align_map(V[: self.n_anchors_], self.reference_)
            self.reference_ = (_homogeneous(V) @ M)[: self.n_anchors_].clone()
        return self

    def aligned_eigenvectors(self, X: Array, anchor_rows: Array) -> np.ndarray:
        """Exact eigenvectors of a point set's graph, mapped into the learned space.

        The graph of all of X is built like a batch graph (dense: meant for
        evaluation sets of a few thousand points), its eigenvectors are
        mapped onto the reference space through the rows of X that hold the
        training anchors (with the configured alignment), and scaled like
        the training targets. This is the target the network's
        ``transform(X)`` approximates (the published Grassmann score compares
        the two).

        Args:
            X: (M, Dg) graph features of the evaluation points.
            anchor_rows: (A,) rows of X holding the anchors, in the order
                of ``anchors_``.

        Returns:
            (M, K) float64 NumPy array.
        """
        torch = _torch()
        if self.model_ is None:
            raise RuntimeError("not fitted: call fit first")
        Xn = _features(X, "X")
        rows = np.asarray(to_numpy(anchor_rows), dtype=np.int64).ravel()
        if rows.size != self.n_anchors_ or rows.min() < 0 or rows.max() >= len(Xn):
            raise ValueError(
                f"anchor_rows: expected {self.n_anchors_} row indices in "
                f"[0, {len(Xn)}), got {rows}"
            )
        with torch.no_grad():
            V = self._laplacian_eig(Xn, self.n_components + self.extra_eigenvectors)
            M = self._align_map(V[torch.from_numpy(rows)], self.reference_)
            return (_homogeneous(V) @ M * self.scale_).cpu().numpy()

    def transform(self, X: Array) -> Any:
        """Embeds (out-of-sample) points.

        Args:
            X: (M, D) float, NumPy or torch.

        Returns:
            (M, K) float32 embedding (scaled eigenvector coordinates), NumPy
            for NumPy input, torch on X's device for torch input.
        """
        return self._like_input(X, self._raw_transform(X))


class SpectralNetEmbedding(_SpectralNetwork):
    """SpectralNet-style baseline: minimise trace(Y^T L Y) of orthonormal Y.

    Each step computes the orthonormalisation weights ``sqrt(B) R^-1`` from
    a QR of the batch output stacked over ``sqrt(eps) I`` (eps = ``jitter``
    times the mean squared column norm), so R is invertible even when the
    output is rank-deficient; then takes an Adam step on trace(Y^T L Y) / B
    with Y = f(x) sqrt(B) R^-1 and L the batch's symmetric normalised
    Laplacian (same graph as :class:`BASiS`). The gradient flows through the
    QR, so the loss is a true (scale-free) Rayleigh quotient; holding R
    fixed as in the original SpectralNet let the output shrink and collapse
    to rank ~1 in our runs. ``transform`` applies the last batch's weights.

    Args: as :class:`BASiS` (no anchors, alignment or ``drop_first``), plus
    ``jitter``.
    """

    def __init__(
        self,
        n_components: int = 10,
        *,
        n_neighbors: int = 10,
        sigma_neighbor: int = 7,
        weight: str = "self_tuning",
        laplacian: str = "symmetric",
        batch_size: int = 512,
        hidden: tuple[int, ...] = (256, 512, 512, 256),
        lr: float = 1e-3,
        n_iterations: int = 1000,
        jitter: float = 1e-6,
        device: Any = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(
            n_components,
            n_neighbors=n_neighbors,
            sigma_neighbor=sigma_neighbor,
            batch_size=batch_size,
            hidden=hidden,
            lr=lr,
            n_iterations=n_iterations,
            device=device,
            seed=seed,
            weight=weight,
            laplacian=laplacian,
        )
        if not jitter > 0:
            raise ValueError(f"jitter: expected > 0, got {jitter}")
        self.jitter = float(jitter)

    def _orthonorm(self, Y: Any) -> Any:
        torch = _torch()
        B, K = Y.shape
        Yd = Y.double()
        eye = torch.eye(K, dtype=Yd.dtype, device=Yd.device)
        eps = self.jitter * float(torch.mean(Yd.detach() ** 2)) * B + 1e-12
        _, R = torch.linalg.qr(torch.cat([Yd, math.sqrt(eps) * eye], 0))
        return (
            math.sqrt(B) * torch.linalg.solve_triangular(R, eye, upper=True)
        ).float()

    def _laplacian(self, feats: np.ndarray) -> Any:
        torch = _torch()
        L = batch_laplacian(
            feats,
            n_neighbors=self.n_neighbors,
            sigma_neighbor=self.sigma_neighbor,
            weight=self.weight,
            laplacian=self.laplacian,
        )
        return torch.as_tensor(L, dtype=torch.float32, device=self.device)

    def fit(
        self,
        X: Array,
        y: Array | None = None,
        *,
        graph_features: Array | None = None,
        progress: bool = False,
    ) -> SpectralNetEmbedding:
        """Trains from scratch (``y`` is ignored; ``progress`` shows a tqdm bar)."""
        torch = _torch()
        Xn, G = self._check_fit_input(X, graph_features)
        n = Xn.shape[0]
        self.n_features_in_ = Xn.shape[1]
        self._init_model(Xn.shape[1])
        self.loss_history_ = []
        bs = min(self.batch_size, n)
        self.ortho_ = None
        for _ in _steps(self.n_iterations, progress, "SpectralNet"):
            idx = self.rng_.choice(n, bs, replace=False)
            L = self._laplacian(G[idx])
            out = self._forward(Xn[idx])
            ortho = self._orthonorm(out)
            self.ortho_ = ortho.detach()
            Y = out @ ortho
            loss = torch.trace(Y.T @ L @ Y) / bs
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_.step()
            self.loss_history_.append(float(loss.detach()))
        if self.ortho_ is None:  # zero iterations: orthonormalise on a batch
            idx = self.rng_.choice(n, bs, replace=False)
            with torch.no_grad():
                self.ortho_ = self._orthonorm(self._forward(Xn[idx]).cpu()).to(
                    self.device
                )
        return self

    def transform(self, X: Array) -> Any:
        """Embeds points: f(x) sqrt(B) R^-1; layout as :meth:`BASiS.transform`."""
        return self._like_input(X, self._raw_transform(X) @ self.ortho_)

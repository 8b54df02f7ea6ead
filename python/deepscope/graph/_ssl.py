# Graph semi-supervised learning: the L_SSL operator, Laplace and Poisson learning.
# SPDX-License-Identifier: MIT
"""Semi-supervised classification on kNN graphs.

* :func:`ssl_affinity` builds W_SSL of Streicher and Gilboa, "Graph Laplacian
  for Semi-Supervised Learning" (SSVM 2023), sparsely, as reconstructed from
  the authors' public code; L_SSL = D - W_SSL.
* :class:`LaplacianSSL` classifies by spectral clustering with L_SSL.
* :class:`LaplaceLearning` (Zhu, Ghahramani and Lafferty 2003) and
  :class:`PoissonLearning` (Calder, Cook, Thorpe and Slepcev, ICML 2020) are
  the usual graph baselines on the same graph.

All estimators follow scikit-learn: ``fit(X, y)`` with ``y == -1`` (the
``unlabeled`` value) on unlabelled points, then ``transduction_``,
``label_distributions_``, ``classes_``, ``predict`` and ``predict_proba``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from deepscope._arrays import check_count, flag
from deepscope.graph._knn_graph import feature_knn, knn_graph
from deepscope.graph._laplacian import as_affinity, laplacian
from deepscope.graph._spectral import smallest_eigenvectors

__all__ = [
    "LaplaceLearning",
    "LaplacianSSL",
    "PoissonLearning",
    "name_clusters",
    "ssl_affinity",
]


def ssl_affinity(
    W: Any,
    labels: Any,
    *,
    mu1: float = 2.0,
    mu2: float | None = None,
    w_max: float | None = None,
) -> Any:
    """The semi-supervised affinity W_SSL (sparse); L_SSL = D - W_SSL.

    With S the labelled points and n the number of points:

    1. density term: W_dens_ij = W_ij / 2 on edges with exactly one labelled
       end (the (P + P^T) / 2 of the reference code);
    2. label cliques: W_dens_ij = w_max for labelled i != j of one class;
    3. mix: W_SSL = mu1 W + mu2 W_dens, mu1 = 2, mu2 = n / |S| - 1;
    4. contrast: W_SSL_ij = 0 for labelled i, j of different classes.

    With no labels W_SSL = mu1 W (plain spectral clustering). Self loops are
    dropped (they do not change D - W).

    Args:
        W: (N, N) symmetric non-negative base affinity (SciPy sparse, NumPy
            or torch); asymmetric input is averaged with a warning.
        labels: (N,) integer class ids, -1 (any negative) = unlabelled.
        mu1: weight of the base affinity.
        mu2: weight of the density and clique terms (default n / |S| - 1).
        w_max: clique weight; default the reference's max(W) including its
            unit self affinity, i.e. max(1, max W).

    Returns:
        (N, N) SciPy CSR float64 W_SSL.
    """
    import scipy.sparse as sp

    Wc, _, _ = as_affinity(W)
    n = Wc.shape[0]
    y = np.asarray(labels).astype(np.int64).ravel()
    if y.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {np.shape(labels)}")
    lab = y >= 0
    m = int(lab.sum())
    if mu2 is None:
        mu2 = n / m - 1.0 if m else 0.0
    if w_max is None:
        w_max = max(1.0, float(Wc.data.max()) if Wc.nnz else 1.0)
    for name, value in (("mu1", mu1), ("mu2", mu2), ("w_max", w_max)):
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, numbers.Real)
            or not (math.isfinite(float(value)) and value >= 0)
        ):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")

    coo = Wc.tocoo()
    r, c, v = coo.row, coo.col, coo.data.astype(np.float64)

    # Base term with the density term on labelled-unlabelled edges.
    one_end = lab[r] != lab[c]
    val = mu1 * v + np.where(one_end, 0.5 * mu2 * v, 0.0)

    # Contrast: cut edges between differently labelled points.
    cut = lab[r] & lab[c] & (y[r] != y[c])
    val[cut] = 0.0

    # Same-label cliques at the maximum weight.
    rows, cols = [r], [c]
    vals = [val]
    idx = np.flatnonzero(lab)
    for cls in np.unique(y[idx]):
        members = idx[y[idx] == cls]
        if members.size < 2:
            continue
        a, b = np.meshgrid(members, members, indexing="ij")
        off = a != b
        rows.append(a[off])
        cols.append(b[off])
        vals.append(np.full(int(off.sum()), mu2 * w_max))
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def name_clusters(
    clusters: np.ndarray, codes: np.ndarray, n_classes: int
) -> np.ndarray:
    """Class code of each cluster from the labelled points only.

    A one-to-one assignment (Hungarian, SciPy) maximising the number of
    labelled points whose cluster is named with their own class; clusters
    holding no labelled point take the classes left over.

    Args:
        clusters: (N,) int cluster ids in 0..n_classes-1.
        codes: (N,) int class codes, -1 = unlabelled.
        n_classes: number of clusters and classes.

    Returns:
        (n_classes,) int64: ``name[c]`` is the class code of cluster c.
    """
    from scipy.optimize import linear_sum_assignment

    lab = codes >= 0
    agree = np.zeros((n_classes, n_classes))
    np.add.at(agree, (clusters[lab], codes[lab]), 1.0)
    rows, cols = linear_sum_assignment(-agree)
    name = np.empty(n_classes, dtype=np.int64)
    name[rows] = cols
    return name


class _GraphSSLBase:
    """Shared graph building, label encoding and prediction."""

    def __init__(
        self,
        *,
        n_neighbors: int = 10,
        weight: str = "self_tuning",
        sigma_neighbor: int | None = None,
        symmetrize: str = "mean",
        affinity: str = "knn",
        classes: Any = None,
        unlabeled: Any = -1,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weight = weight
        self.sigma_neighbor = sigma_neighbor
        self.symmetrize = symmetrize
        self.affinity = affinity
        self.classes = classes
        self.unlabeled = unlabeled

    # scikit-learn parameter protocol.
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> _GraphSSLBase:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def _encode(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y: expected shape ({n},), got {y.shape}")
        mask = y != self.unlabeled
        given = np.unique(y[mask]) if mask.any() else np.array([], dtype=y.dtype)
        if self.classes is not None:
            classes = np.asarray(list(self.classes))
            extra = np.setdiff1d(given, classes)
            if extra.size:
                raise ValueError(f"y: labels {extra.tolist()} are not in classes")
        else:
            classes = given
        if classes.size == 0:
            raise ValueError("y: expected at least one labelled point or `classes`")
        missing = np.setdiff1d(classes, given)
        if missing.size:
            warnings.warn(
                f"classes {missing.tolist()} have no labelled point; they can "
                "only be predicted through unlabelled clusters",
                UserWarning,
                stacklevel=3,
            )
        self.classes_ = classes
        codes = np.full(n, -1, dtype=np.int64)
        codes[mask] = np.searchsorted(classes, y[mask])
        return codes

    def _graph(self, X: Any) -> Any:
        if self.affinity == "precomputed":
            W, _, _ = as_affinity(X, "X")
            self.X_fit_ = None
            return W
        if self.affinity != "knn":
            raise ValueError(
                f"affinity: expected 'knn' or 'precomputed', got {self.affinity!r}"
            )
        from deepscope._arrays import to_numpy

        Xn = np.ascontiguousarray(to_numpy(X))
        try:
            g = knn_graph(
                Xn,
                self.n_neighbors,
                weight=self.weight,
                sigma_neighbor=self.sigma_neighbor,
                symmetrize=self.symmetrize,
            )
        except ValueError as error:
            # knn_graph names its count k; the estimator's is n_neighbors.
            message = str(error)
            if not message.startswith("k: "):
                raise
            raise ValueError("n_neighbors: " + message[3:]) from None
        self.X_fit_ = Xn
        self.graph_ = g
        return g.affinity

    def _finish(self, proba: np.ndarray, codes: np.ndarray) -> None:
        proba = np.where(np.isfinite(proba), proba, 0.0)
        proba = np.clip(proba, 0.0, None)
        s = proba.sum(1, keepdims=True)
        k = proba.shape[1]
        lab = codes >= 0
        empty = (s[:, 0] <= 0) & ~lab
        if empty.any():
            warnings.warn(
                f"{int(empty.sum())} points are in graph components without any "
                "labelled point; their class distribution is uniform",
                UserWarning,
                stacklevel=3,
            )
        proba = np.where(empty[:, None], 1.0 / k, proba / np.where(s > 0, s, 1.0))
        proba[lab] = 0.0
        proba[np.flatnonzero(lab), codes[lab]] = 1.0
        self.label_distributions_ = proba
        self.transduction_ = self.classes_[np.argmax(proba, axis=1)]

    def fit_predict(self, X: Any, y: Any) -> np.ndarray:
        return self.fit(X, y).transduction_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class distributions (N_new, n_classes) for new points.

        A kNN vote (self-tuning Gaussian weights) over the fitted points'
        ``label_distributions_``; passing the training data returns the
        transductive distributions.
        """
        from deepscope._arrays import to_numpy

        if not hasattr(self, "label_distributions_"):
            raise ValueError(
                f"X: this {type(self).__name__} is not fitted yet; call fit first"
            )
        if self.X_fit_ is None:
            raise ValueError(
                "X: predict on new points needs affinity='knn'; use "
                "transduction_ for a precomputed graph"
            )
        Xn = np.ascontiguousarray(to_numpy(X), dtype=self.X_fit_.dtype)
        d = self.X_fit_.shape[1]
        if Xn.ndim != 2 or Xn.shape[1] != d or Xn.shape[0] == 0:
            raise ValueError(
                f"X: expected a non-empty (M, {d}) array (the {d} features seen "
                f"in fit), got shape {Xn.shape}"
            )
        if not np.isfinite(Xn).all():
            raise ValueError("X: expected finite values, found NaN or inf")
        if Xn.shape == self.X_fit_.shape and np.array_equal(Xn, self.X_fit_):
            return self.label_distributions_.copy()
        k = min(self.n_neighbors, self.X_fit_.shape[0])
        res = feature_knn(Xn, self.X_fit_, k=k)
        idx = np.asarray(res.indices)
        d2 = np.asarray(res.distances, dtype=np.float64)
        sig2 = self.graph_.sigma[idx] ** 2
        w = np.exp(-(d2 - d2[:, :1]) / sig2)
        P = (w[:, :, None] * self.label_distributions_[idx]).sum(1)
        return P / P.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each new point, as values of ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _reachable(W: Any, codes: np.ndarray) -> np.ndarray:
    """Points whose connected component holds at least one labelled point."""
    from scipy.sparse.csgraph import connected_components

    _, comp = connected_components(W, directed=False)
    has = np.zeros(comp.max() + 1, bool)
    has[comp[codes >= 0]] = True
    return has[comp]


def _cg_solve(A: Any, B: np.ndarray, tol: float, maxiter: int) -> np.ndarray:
    """Jacobi-preconditioned CG on all columns of B at once (A symmetric PSD).

    Each column has its own step sizes; a column stops updating once its
    residual is below ``tol`` times its right-hand side norm.
    """
    d = A.diagonal()
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 1.0)[:, None]
    X = np.zeros_like(B)
    R = B.copy()
    Z = inv * R
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    target = tol * np.linalg.norm(B, axis=0)
    active = np.linalg.norm(R, axis=0) > target
    for _ in range(maxiter):
        if not active.any():
            break
        AP = A @ P
        pap = np.einsum("ij,ij->j", P, AP)
        alpha = np.where(active & (pap > 0), rz / np.where(pap > 0, pap, 1.0), 0.0)
        X += alpha * P
        R -= alpha * AP
        active &= np.linalg.norm(R, axis=0) > target
        Z = inv * R
        rz_new = np.einsum("ij,ij->j", R, Z)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        P = Z + beta * P
        rz = rz_new
    if active.any():
        warnings.warn(
            f"CG did not reach tol={tol} in max_iter={maxiter} iterations for "
            f"{int(active.sum())} of {active.size} classes; the result is not "
            "converged (raise max_iter or tol)",
            UserWarning,
            stacklevel=3,
        )
    return X


def _check_solver(tol: Any, max_iter: Any) -> tuple[float, int]:
    """The CG settings: a finite tol > 0 and an integer max_iter >= 1."""
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")
    if not (math.isfinite(float(tol)) and tol > 0):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")
    return float(tol), check_count(max_iter, "max_iter", 1)


class LaplaceLearning(_GraphSSLBase):
    """Laplace learning (harmonic extension) on a kNN graph.

    Solves L_uu U = W_ul Y_l for the unlabelled points by CG; the harmonic
    functions of the classes give ``label_distributions_``. Points in
    components without labels get a uniform row (with a warning).

    Args:
        n_neighbors, weight, sigma_neighbor, symmetrize: the kNN graph (see
            :func:`knn_graph`).
        affinity: ``"knn"`` (build from X) or ``"precomputed"`` (X is W).
        classes: optional full list of class values (classes without a
            labelled point are allowed, with a warning).
        unlabeled: the value of ``y`` on unlabelled points.
        tol, max_iter: CG relative tolerance and iterations.
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 10,
        weight: str = "self_tuning",
        sigma_neighbor: int | None = None,
        symmetrize: str = "mean",
        affinity: str = "knn",
        classes: Any = None,
        unlabeled: Any = -1,
        tol: float = 1e-5,
        max_iter: int = 2000,
    ) -> None:
        super().__init__(
            n_neighbors=n_neighbors,
            weight=weight,
            sigma_neighbor=sigma_neighbor,
            symmetrize=symmetrize,
            affinity=affinity,
            classes=classes,
            unlabeled=unlabeled,
        )
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> LaplaceLearning:
        tol, max_iter = _check_solver(self.tol, self.max_iter)
        W = self._graph(X)
        n = W.shape[0]
        codes = self._encode(y, n)
        lab = codes >= 0
        reach = _reachable(W, codes)
        unl = np.flatnonzero(~lab & reach)
        li = np.flatnonzero(lab)
        Y = np.zeros((li.size, self.classes_.size))
        Y[np.arange(li.size), codes[li]] = 1.0
        L = laplacian(W).laplacian.tocsr()
        proba = np.zeros((n, self.classes_.size))
        if unl.size:
            A = L[unl][:, unl]
            B = -(L[unl][:, li] @ Y)
            proba[unl] = _cg_solve(A, B, tol, max_iter)
        self._finish(proba, codes)
        return self


class PoissonLearning(_GraphSSLBase):
    """Poisson learning (Calder et al., ICML 2020) on a kNN graph.

    Solves L U = B with B_i = e_{y_i} - mean label on labelled points (per
    connected component, so each system is consistent), U centred per
    component, prediction argmax U (a component whose labels are all one
    class predicts that class). Components without labels get a
    uniform row (with a warning). ``label_distributions_`` is a softmax of
    U scaled by its spread, so its argmax is the Poisson prediction.

    Args: as :class:`LaplaceLearning` (CG tolerance default 1e-3, as in
    GraphLearning).
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 10,
        weight: str = "self_tuning",
        sigma_neighbor: int | None = None,
        symmetrize: str = "mean",
        affinity: str = "knn",
        classes: Any = None,
        unlabeled: Any = -1,
        tol: float = 1e-3,
        max_iter: int = 2000,
    ) -> None:
        super().__init__(
            n_neighbors=n_neighbors,
            weight=weight,
            sigma_neighbor=sigma_neighbor,
            symmetrize=symmetrize,
            affinity=affinity,
            classes=classes,
            unlabeled=unlabeled,
        )
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> PoissonLearning:
        from scipy.sparse.csgraph import connected_components

        tol, max_iter = _check_solver(self.tol, self.max_iter)
        W = self._graph(X)
        n = W.shape[0]
        codes = self._encode(y, n)
        C = self.classes_.size
        _, comp = connected_components(W, directed=False)
        reach = _reachable(W, codes)
        B = np.zeros((n, C))
        li = np.flatnonzero(codes >= 0)
        B[li, codes[li]] = 1.0
        prior = np.zeros((comp.max() + 1, C))
        for cid in np.unique(comp[li]):
            members = li[comp[li] == cid]
            prior[cid] = B[members].mean(0)
            B[members] -= prior[cid]
        L = laplacian(W).laplacian.tocsr()
        r = np.flatnonzero(reach)
        U = np.zeros((n, C))
        if r.size:
            U[r] = _cg_solve(L[r][:, r], B[r], tol, max_iter)
            for cid in np.unique(comp[r]):
                members = r[comp[r] == cid]
                U[members] -= U[members].mean(0)
        # A component labelled with one class has U = 0 there; a tiny
        # multiple of the component's label mean decides such ties.
        top = float(np.abs(U).max()) if r.size else 0.0
        U[r] += 1e-9 * max(top, 1e-12) * prior[comp[r]]
        spread = U[r].std() if r.size else 1.0
        Z = U / (spread if spread > 0 else 1.0)
        P = np.exp(Z - Z.max(1, keepdims=True))
        P[~reach] = 0.0
        self.scores_ = U
        self._finish(P, codes)
        return self


class LaplacianSSL(_GraphSSLBase):
    """Spectral classification with L_SSL (Streicher and Gilboa, SSVM 2023).

    Builds W_SSL (:func:`ssl_affinity`), takes the ``n_classes`` smallest
    eigenvectors of L_SSL = D - W_SSL, drops the constant one (as the
    reference code does), runs k-means with ``n_classes`` clusters on the
    unlabelled rows, and names each cluster by a one-to-one matching that
    maximises agreement with the labelled points (no ground truth is used).
    Differs from the reference code deliberately: sparse graph, symmetric
    eigensolver (not a dense general ``eig``), clusters named from the
    labelled points instead of Hungarian matching against ground truth.

    Args:
        n_neighbors, weight, sigma_neighbor, symmetrize, affinity, classes,
            unlabeled: as :class:`LaplaceLearning`. The reference uses
            k = 50 (49 without self) and sigma at the 20th neighbour on MNIST.
        mu1, mu2: mixing weights (default 2 and n / |S| - 1).
        drop_first: drop the first eigenvector (reference behaviour).
        random_state: seed of the eigensolver start block and k-means.
        n_init: k-means restarts.

    Attributes (after fit): ``eigen_`` (EigenResult), ``embedding_``,
    ``clusters_``, ``cluster_classes_``, plus the common ones.
    """

    def __init__(
        self,
        *,
        mu1: float = 2.0,
        mu2: float | None = None,
        drop_first: bool = True,
        random_state: int = 0,
        n_init: int = 10,
        n_neighbors: int = 10,
        weight: str = "self_tuning",
        sigma_neighbor: int | None = None,
        symmetrize: str = "mean",
        affinity: str = "knn",
        classes: Any = None,
        unlabeled: Any = -1,
    ) -> None:
        super().__init__(
            n_neighbors=n_neighbors,
            weight=weight,
            sigma_neighbor=sigma_neighbor,
            symmetrize=symmetrize,
            affinity=affinity,
            classes=classes,
            unlabeled=unlabeled,
        )
        self.mu1 = mu1
        self.mu2 = mu2
        self.drop_first = drop_first
        self.random_state = random_state
        self.n_init = n_init

    def fit(self, X: Any, y: Any) -> LaplacianSSL:
        from sklearn.cluster import KMeans

        drop_first = flag(self.drop_first, "drop_first")
        n_init = check_count(self.n_init, "n_init")
        W = self._graph(X)
        n = W.shape[0]
        codes = self._encode(y, n)
        C = self.classes_.size
        Wssl = ssl_affinity(W, codes, mu1=self.mu1, mu2=self.mu2)
        L = laplacian(Wssl).laplacian
        n_vec = max(C, 2)
        eig = smallest_eigenvectors(L, n_vec, seed=self.random_state)
        V = eig.vectors[:, 1:] if drop_first else eig.vectors
        self.eigen_ = eig
        self.embedding_ = V

        # k-means on the unlabelled rows; labelled rows are assigned after.
        lab = codes >= 0
        fit_rows = ~lab if (~lab).sum() >= C else np.ones(n, bool)
        km = KMeans(C, random_state=self.random_state, n_init=n_init)
        km.fit(V[fit_rows])
        clusters = km.predict(V)
        self.clusters_ = clusters

        # Name clusters from the labelled points (one-to-one, max agreement).
        name = name_clusters(clusters, codes, C)
        self.cluster_classes_ = self.classes_[name]

        # Soft assignment from distances to the cluster centres.
        d2 = ((V[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
        within = float(np.mean(d2[np.arange(n), clusters])) or 1.0
        Z = -(d2 - d2.min(1, keepdims=True)) / (2.0 * within)
        P_cluster = np.exp(Z)
        proba = np.zeros((n, C))
        proba[:, name] = P_cluster
        self._finish(proba, codes)
        return self

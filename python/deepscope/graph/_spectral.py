# Smallest eigenpairs of sparse graph Laplacians, and spectral clustering.
# SPDX-License-Identifier: MIT
"""Symmetric sparse eigensolvers (SciPy LOBPCG / dense eigh) in float64."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = ["EigenResult", "smallest_eigenvectors", "spectral_clustering"]

# Up to this many points the dense symmetric solver is used.
DENSE_MAX_N = 1500


class EigenResult(NamedTuple):
    """The smallest eigenpairs of a symmetric positive semi-definite matrix.

    Attributes:
        values: (K,) float64 eigenvalues, ascending.
        vectors: (N, K) float64 unit eigenvectors; each column's entry of
            largest magnitude (lowest index on ties) is positive.
        residuals: (K,) float64 ``||L v - lambda v||_2``.
        converged: whether every residual is within the tolerance.
        method: ``"dense"`` or ``"lobpcg"``.
    """

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    converged: bool
    method: str


def _fix_signs(V: np.ndarray) -> np.ndarray:
    pivot = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[pivot, np.arange(V.shape[1])])
    signs[signs == 0] = 1.0
    return V * signs


def smallest_eigenvectors(
    L: Any,
    n_components: int,
    *,
    tol: float = 1e-4,
    maxiter: int = 500,
    seed: int = 0,
    method: str = "auto",
    first_vector: np.ndarray | None = None,
) -> EigenResult:
    """The ``n_components`` smallest eigenpairs of a sparse Laplacian.

    Args:
        L: (N, N) symmetric positive semi-definite SciPy sparse matrix (or
            dense array); computed in float64 whatever its dtype.
        n_components: K, ``1 <= K < N``.
        tol: relative residual tolerance, ``||L v - lambda v|| <= tol *
            ||L||_inf``.
        maxiter: LOBPCG iterations.
        seed: seed of the random LOBPCG start block (its first column is
            the constant vector).
        method: ``"auto"`` (dense for N <= 1500, else LOBPCG), ``"dense"``
            or ``"lobpcg"``. LOBPCG is Jacobi-preconditioned.
        first_vector: (N,) a known null vector to start LOBPCG from
            (default the constant vector, exact for D - W; pass sqrt(degrees)
            for the symmetric normalised Laplacian).

    Returns:
        EigenResult with deterministic signs and the residual norms. A
        warning is issued when the tolerance is not reached.
    """
    import scipy.sparse as sp

    n = L.shape[0]
    k = check_count(n_components, "n_components", 1, n - 1, what="points - 1")
    seed = check_seed(seed)
    maxiter = check_count(maxiter, "maxiter")
    if method not in ("auto", "dense", "lobpcg"):
        raise ValueError(
            f"method: expected 'auto', 'dense' or 'lobpcg', got {method!r}"
        )
    A = sp.csr_matrix(L, dtype=np.float64)
    scale = float(abs(A).sum(axis=1).max()) or 1.0
    if method == "auto":
        method = "dense" if n <= DENSE_MAX_N or 5 * k >= n else "lobpcg"

    if method == "dense":
        from scipy.linalg import eigh

        vals, vecs = eigh(A.toarray(), subset_by_index=[0, k - 1])
    else:
        from scipy.sparse.linalg import lobpcg

        rng = np.random.default_rng(seed)
        X0 = rng.standard_normal((n, k))
        X0[:, 0] = 1.0 if first_vector is None else np.asarray(first_vector)
        diag = A.diagonal()
        inv = np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)
        # Jacobi; skipped when it is the identity (normalised Laplacians).
        M = None if np.all(inv == 1.0) else sp.diags(inv).tocsr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            vals, vecs = lobpcg(
                A, X0, M=M, tol=tol * scale, largest=False, maxiter=maxiter
            )
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
    vecs = vecs / np.linalg.norm(vecs, axis=0)
    vecs = _fix_signs(vecs)
    res = np.linalg.norm(A @ vecs - vecs * vals, axis=0)
    converged = bool((res <= max(tol, 1e-10) * scale * 10).all())
    if not converged:
        warnings.warn(
            f"eigensolver ({method}) did not reach tol={tol}: max residual "
            f"{res.max():.3g} (matrix scale {scale:.3g})",
            RuntimeWarning,
            stacklevel=2,
        )
    return EigenResult(vals.astype(np.float64), vecs, res, converged, method)


def spectral_clustering(
    W: Any,
    n_clusters: int,
    *,
    random_state: int = 0,
    n_init: int = 10,
) -> np.ndarray:
    """Unsupervised spectral clustering (Ng-Jordan-Weiss) on an affinity.

    The ``n_clusters`` smallest eigenvectors of the symmetric normalised
    Laplacian, rows scaled to unit length, then k-means (scikit-learn).

    Args:
        W: (N, N) non-negative affinity (see :func:`laplacian`).
        n_clusters: number of clusters, ``1 <= n_clusters < N``.
        random_state: seed for the eigensolver start and k-means, an integer
            in [0, 2**32 - 1] (scikit-learn's range) or a numpy Generator.
        n_init: k-means restarts.

    Returns:
        (N,) int64 cluster labels in 0..n_clusters-1.
    """
    from sklearn.cluster import KMeans

    from deepscope.graph._laplacian import laplacian

    random_state = check_seed(random_state, "random_state", bits=32)
    n_init = check_count(n_init, "n_init")
    L, degrees = laplacian(W, "symmetric")
    if not hasattr(L, "tocsr"):
        L = _scipy_of(L)
    eig = smallest_eigenvectors(
        L, n_clusters, seed=random_state, first_vector=np.sqrt(degrees)
    )
    V = eig.vectors
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    V = V / np.where(norms > 0, norms, 1.0)
    km = KMeans(n_clusters, random_state=random_state, n_init=n_init)
    return km.fit_predict(V).astype(np.int64)


def _scipy_of(L: Any) -> Any:
    """SciPy CSR of a torch sparse CSR tensor."""
    import scipy.sparse as sp

    return sp.csr_matrix(
        (
            L.values().cpu().numpy(),
            L.col_indices().cpu().numpy(),
            L.crow_indices().cpu().numpy(),
        ),
        shape=tuple(L.shape),
    )

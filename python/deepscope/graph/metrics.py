# Embedding quality metrics: clustering NMI / ACC, subspace distances, probes.
# SPDX-License-Identifier: MIT
"""Metrics for spectral embeddings (BASiS, SpectralNet, exact eigenvectors).

All functions accept NumPy arrays or torch tensors (CPU or CUDA; moved to the
host) and compute in float64 on the host.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed, to_numpy

__all__ = [
    "ClusterScores",
    "cluster_scores",
    "clustering_accuracy",
    "grassmann_distance",
    "linear_probe_accuracy",
    "normalized_mutual_info",
    "orthogonality_error",
]

Array = Any


class ClusterScores(NamedTuple):
    """k-means clustering quality of an embedding.

    Attributes:
        nmi: normalised mutual information (arithmetic mean normalisation,
            as scikit-learn's default), in [0, 1].
        acc: accuracy after the best one-to-one cluster-to-class matching
            (Hungarian algorithm), in [0, 1].
        assignment: (N,) int64 k-means cluster of every point.
    """

    nmi: float
    acc: float
    assignment: np.ndarray


def _labels(y: Array, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(to_numpy(y))
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D label array, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels, got {a.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one label, got 0")
    return a


def _matrix(x: Array, name: str) -> np.ndarray:
    a = np.asarray(to_numpy(x), dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, K) array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, K) array, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def clustering_accuracy(labels_true: Array, labels_pred: Array) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    Label values may be arbitrary (non-contiguous) integers; the two label
    sets may differ in size (unmatched clusters count as errors).

    Args:
        labels_true: (N,) ground-truth labels.
        labels_pred: (N,) cluster labels.

    Returns:
        The matched accuracy in [0, 1].
    """
    from scipy.optimize import linear_sum_assignment

    t = _labels(labels_true, "labels_true")
    p = _labels(labels_pred, "labels_pred", t.shape[0])
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    # Contingency table: rows clusters, columns classes.
    C = np.zeros((pi.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(C, (pi, ti), 1)
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].sum() / t.shape[0])


def normalized_mutual_info(labels_true: Array, labels_pred: Array) -> float:
    """Normalised mutual information (arithmetic normalisation), in [0, 1]."""
    from sklearn.metrics import normalized_mutual_info_score

    t = _labels(labels_true, "labels_true")
    p = _labels(labels_pred, "labels_pred", t.shape[0])
    return float(normalized_mutual_info_score(t, p))


def cluster_scores(
    embedding: Array,
    labels: Array,
    n_clusters: int | None = None,
    *,
    seed: int = 0,
    n_init: int = 10,
) -> ClusterScores:
    """k-means on an embedding, scored by NMI and Hungarian-matched ACC.

    Args:
        embedding: (N, K) float embedding.
        labels: (N,) ground-truth labels.
        n_clusters: k-means clusters; default the number of distinct labels.
        seed: k-means seed, an integer in [0, 2**32 - 1] (scikit-learn's
            range) or a numpy Generator.
        n_init: k-means restarts.

    Returns:
        ClusterScores ``(nmi, acc, assignment)``.

    Raises:
        ValueError: bad shapes, NaN / inf, n_clusters out of [1, N].
    """
    from sklearn.cluster import KMeans

    E = _matrix(embedding, "embedding")
    y = _labels(labels, "labels", E.shape[0])
    if n_clusters is None:
        n_clusters = int(np.unique(y).size)
    n_clusters = check_count(n_clusters, "n_clusters", 1, E.shape[0], what="points")
    n_init = check_count(n_init, "n_init")
    seed = check_seed(seed, bits=32)
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    assign = km.fit_predict(E).astype(np.int64)
    return ClusterScores(
        normalized_mutual_info(y, assign), clustering_accuracy(y, assign), assign
    )


def _orthonormal_basis(A: np.ndarray) -> np.ndarray:
    """Reduced QR basis of the columns of A (sign-free)."""
    Q, _ = np.linalg.qr(A, mode="reduced")
    return Q


def grassmann_distance(A: Array, B: Array) -> float:
    """Squared chordal (Grassmann) distance between two column spaces.

    Both column sets are orthonormalised by a reduced QR first, so the result
    is a true subspace distance for any (full-rank) bases: with sigma_i the
    singular values of Q_A^T Q_B (the cosines of the principal angles),
    ``sum_i (1 - sigma_i^2)`` over ``min(K_A, K_B)`` angles. 0 for equal
    spaces, up to ``min(K_A, K_B)`` for orthogonal ones. This is the BASiS
    paper's Grassmann score with the QR step that makes it basis-invariant.

    Args:
        A: (N, K_A) float basis.
        B: (N, K_B) float basis, same N.

    Raises:
        ValueError: bad shapes, NaN / inf, K > N, or rank-deficient columns.
    """
    a = _matrix(A, "A")
    b = _matrix(B, "B")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"B: expected {a.shape[0]} rows like A, got {b.shape[0]}")
    for name, m in (("A", a), ("B", b)):
        if m.shape[1] > m.shape[0]:
            raise ValueError(f"{name}: expected K <= N columns, got shape {m.shape}")
        # QR of rank-deficient columns invents directions (a zero column
        # becomes some unit vector), so the distance would be meaningless.
        rank = int(np.linalg.matrix_rank(m))
        if rank < m.shape[1]:
            raise ValueError(
                f"{name}: expected {m.shape[1]} linearly independent columns "
                f"(a full-rank basis), got rank {rank}"
            )
    s = np.linalg.svd(_orthonormal_basis(a).T @ _orthonormal_basis(b), compute_uv=False)
    s = np.clip(s, 0.0, 1.0)
    return float(np.sum(1.0 - s**2))


def orthogonality_error(U: Array) -> float:
    """Frobenius distance of the column-cosine matrix from the identity.

    ``||C - I||_F`` with ``C_ij = <u_i, u_j> / (||u_i|| ||u_j||)``; 0 for
    orthogonal columns (any column norms).

    Args:
        U: (N, K) float embedding.

    Raises:
        ValueError: bad shape, NaN / inf, or an all-zero column.
    """
    u = _matrix(U, "U")
    norms = np.linalg.norm(u, axis=0)
    if np.any(norms == 0):
        raise ValueError(f"U: column {int(np.argmin(norms))} is all zeros")
    un = u / norms
    return float(np.linalg.norm(un.T @ un - np.eye(u.shape[1])))


def linear_probe_accuracy(
    embedding: Array,
    labels: Array,
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    max_iter: int = 1000,
) -> float:
    """Held-out accuracy of a linear (multinomial logistic) classifier.

    The embedding is standardised with the training split's statistics, the
    split is class-stratified and seeded.

    Args:
        embedding: (N, K) float embedding (frozen).
        labels: (N,) class labels.
        test_fraction: share of points held out for scoring, in (0, 1).
        seed: split seed, an integer in [0, 2**32 - 1] (scikit-learn's
            range) or a numpy Generator.
        max_iter: L-BFGS iterations of the probe.

    Returns:
        Accuracy on the held-out split, in [0, 1].
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    E = _matrix(embedding, "embedding")
    y = _labels(labels, "labels", E.shape[0])
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected in (0, 1), got {test_fraction}")
    seed = check_seed(seed, bits=32)
    max_iter = check_count(max_iter, "max_iter")
    Etr, Ete, ytr, yte = train_test_split(
        E, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    mu = Etr.mean(0)
    sd = Etr.std(0)
    sd[sd == 0] = 1.0
    clf = LogisticRegression(max_iter=max_iter)
    clf.fit((Etr - mu) / sd, ytr)
    return float(np.mean(clf.predict((Ete - mu) / sd) == yte))

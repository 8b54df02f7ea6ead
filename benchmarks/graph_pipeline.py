# End-to-end graph pipeline timing on Fashion-MNIST against scikit-learn.
# SPDX-License-Identifier: MIT
"""kNN graph + Laplacian + 10 eigenvectors + classification, ours vs sklearn.

Usage: ``python benchmarks/graph_pipeline.py N [--which ours|sklearn|faiss]``
(run each in its own process so that peak memory is its own) with N points of
Fashion-MNIST (70000 = all). Ours: ``knn_graph`` (exact, k = 10,
self-tuning weights) + symmetric Laplacian + 10 LOBPCG eigenvectors + k-means
spectral clustering + Poisson learning at 10 labels per class. scikit-learn:
``kneighbors_graph`` + ``csgraph.laplacian`` + ``spectral_embedding``
(lobpcg) + k-means. ``faiss``: the kNN graph only, from faiss-cpu's exact
``IndexFlatL2`` search (float32) assembled by our ``graph_from_neighbors``,
with the fraction of rows whose neighbour list equals ours. Peak memory is the
process's maximum resident set.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def sklearn_lobpcg_tol(n: int) -> float:
    """scipy lobpcg's default absolute residual tolerance (used by sklearn)."""
    return float(np.sqrt(np.finfo(np.float64).eps) * n)


def residuals(L, V: np.ndarray) -> np.ndarray:
    """||L v - (v^T L v) v|| of each unit column of V."""
    V = V / np.linalg.norm(V, axis=0)
    LV = L @ V
    lam = (V * LV).sum(0)
    return np.linalg.norm(LV - V * lam, axis=0)


def ours(X: np.ndarray, y: np.ndarray, tol: float | None) -> dict[str, float]:
    from sklearn.cluster import KMeans

    from deepscope.graph import (
        PoissonLearning,
        knn_graph,
        laplacian,
        smallest_eigenvectors,
    )
    from deepscope.graph._evaluate import draw_labels
    from deepscope.graph._ssl import name_clusters

    t = {}
    s = time.perf_counter()
    g = knn_graph(X, 10)
    t["kNN graph"] = time.perf_counter() - s
    s = time.perf_counter()
    L, deg = laplacian(g.affinity, "symmetric")
    t["Laplacian"] = time.perf_counter() - s
    s = time.perf_counter()
    # tol is relative to ||L||_inf; None = scikit-learn's absolute one.
    scale = float(abs(L).sum(axis=1).max())
    rel = sklearn_lobpcg_tol(len(y)) / scale if tol is None else tol
    eig = smallest_eigenvectors(L, 10, first_vector=np.sqrt(deg), tol=rel)
    t["10 eigenvectors"] = time.perf_counter() - s
    s = time.perf_counter()
    V = eig.vectors / np.linalg.norm(eig.vectors, axis=1, keepdims=True)
    clusters = KMeans(10, random_state=0, n_init=10).fit_predict(V)
    t["k-means"] = time.perf_counter() - s
    yl = draw_labels(y, 10, 0)
    unl = yl < 0
    s = time.perf_counter()
    pois = PoissonLearning(affinity="precomputed").fit(g.affinity, yl)
    t["Poisson learning"] = time.perf_counter() - s
    names = name_clusters(clusters, yl, 10)
    t["acc spectral"] = float(np.mean(names[clusters][unl] == y[unl]))
    t["acc Poisson"] = float(np.mean(pois.transduction_[unl] == y[unl]))
    t["max residual"] = float(eig.residuals.max())
    t["eig tol (abs)"] = scale * rel
    t["nnz"] = g.affinity.nnz
    t["components"] = g.n_components
    return t


def sklearn_pipeline(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy.sparse.csgraph import laplacian
    from sklearn.cluster import KMeans
    from sklearn.manifold import spectral_embedding
    from sklearn.neighbors import kneighbors_graph

    from deepscope.graph._evaluate import draw_labels
    from deepscope.graph._ssl import name_clusters

    t = {}
    s = time.perf_counter()
    A = kneighbors_graph(X, 10, mode="connectivity", include_self=False)
    W = (0.5 * (A + A.T)).tocsr()
    t["kNN graph"] = time.perf_counter() - s
    s = time.perf_counter()
    Lsym = laplacian(W, normed=True)
    t["Laplacian"] = time.perf_counter() - s
    s = time.perf_counter()
    E = spectral_embedding(
        W, n_components=10, eigen_solver="lobpcg", random_state=0, drop_first=False
    )
    t["10 eigenvectors"] = time.perf_counter() - s
    s = time.perf_counter()
    V = E / np.linalg.norm(E, axis=1, keepdims=True)
    clusters = KMeans(10, random_state=0, n_init=10).fit_predict(V)
    t["k-means"] = time.perf_counter() - s
    # sklearn returns D^-1/2-scaled vectors: undo it to measure residuals.
    dd = np.sqrt(np.asarray(W.sum(axis=1)).ravel())
    t["max residual"] = float(residuals(Lsym.tocsr(), E * dd[:, None]).max())
    t["eig tol (abs)"] = sklearn_lobpcg_tol(len(y))
    yl = draw_labels(y, 10, 0)
    unl = yl < 0
    names = name_clusters(clusters, yl, 10)
    t["acc spectral"] = float(np.mean(names[clusters][unl] == y[unl]))
    return t


def faiss_graph(X: np.ndarray) -> dict[str, float]:
    import faiss

    from deepscope.graph import graph_from_neighbors, knn_graph

    faiss.omp_set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t = {}
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    s = time.perf_counter()
    index = faiss.IndexFlatL2(Xf.shape[1])
    index.add(Xf)
    d2, idx = index.search(Xf, 11)
    t["faiss search (k = 11)"] = time.perf_counter() - s
    # Drop each row's own index (faiss may place a duplicate before it).
    own = idx == np.arange(len(Xf))[:, None]
    keep = ~own
    keep[own.sum(1) == 0, -1] = False
    idx = idx[keep].reshape(len(Xf), 10)
    d2 = d2[keep].reshape(len(Xf), 10).astype(np.float64)
    s2 = time.perf_counter()
    graph_from_neighbors(idx, d2)
    t["graph from lists"] = time.perf_counter() - s2
    t["faiss kNN graph"] = time.perf_counter() - s
    exact = np.sort(knn_graph(X, 10).indices, axis=1)
    t["rows equal to exact"] = float(np.mean((np.sort(idx, 1) == exact).all(1)))
    return t


def main() -> None:
    from deepscope.graph._datasets import load_dataset

    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int)
    parser.add_argument("--which", choices=("ours", "sklearn", "faiss"), default="ours")
    parser.add_argument(
        "--tol",
        type=float,
        default=None,
        help="our LOBPCG tolerance relative to ||L||_inf; default: sklearn's",
    )
    args = parser.parse_args()
    X, y = load_dataset("fashion-mnist", n=args.n if args.n < 70000 else None)
    print(f"Fashion-MNIST n={len(y)}")
    if args.which == "ours":
        res = ours(X, y, args.tol)
    elif args.which == "sklearn":
        res = sklearn_pipeline(X, y)
    else:
        res = faiss_graph(X)
    res["peak RSS GB"] = _rss_gb()
    print(args.which, {k: float(f"{v:.4g}") for k, v in res.items()})


if __name__ == "__main__":
    main()

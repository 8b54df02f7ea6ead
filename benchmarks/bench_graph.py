# Benchmarks: feature kNN graphs, Laplacians and eigenvectors vs scikit-learn / torch.
# SPDX-License-Identifier: MIT
"""Graph benchmarks on real Fashion-MNIST features (10k x 784 subset).

Run: ``python -m pytest benchmarks/bench_graph.py --benchmark-only -q``.
Needs the Debian package ``dataset-fashion-mnist``; scikit-learn, faiss and
torch peers are skipped when missing. The end-to-end pipeline at 20k / 70k
points is ``benchmarks/graph_pipeline.py``.
"""

from __future__ import annotations

import importlib.util
from functools import cache

import numpy as np
import pytest

from deepscope.graph import feature_knn, knn_graph, laplacian, smallest_eigenvectors
from deepscope.graph._datasets import load_dataset

N = 10_000
K = 10
ROUNDS = 3

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAS_FAISS = importlib.util.find_spec("faiss") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


@cache
def features() -> np.ndarray:
    try:
        return load_dataset("fashion-mnist", n=N)[0]
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@cache
def affinity():
    return knn_graph(features(), K).affinity


def run(benchmark, fn, rounds=ROUNDS):
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)


GROUP_KNN = f"feature kNN {N // 1000}k x 784 k={K} self excluded"


@pytest.mark.benchmark(group=GROUP_KNN)
def test_knn_deepscope(benchmark):
    X = features()
    run(benchmark, lambda: feature_knn(X, k=K))


@pytest.mark.benchmark(group=GROUP_KNN)
@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed")
def test_knn_sklearn_brute(benchmark):
    from sklearn.neighbors import NearestNeighbors

    X = features()
    run(
        benchmark,
        lambda: NearestNeighbors(n_neighbors=K, algorithm="brute").fit(X).kneighbors(),
    )


@pytest.mark.benchmark(group=GROUP_KNN)
@pytest.mark.skipif(not HAS_FAISS, reason="faiss not installed")
def test_knn_faiss_flat(benchmark):
    import faiss

    X = features()

    def go():
        index = faiss.IndexFlatL2(X.shape[1])
        index.add(X)
        return index.search(X, K + 1)

    run(benchmark, go)


@pytest.mark.benchmark(group=GROUP_KNN)
@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_knn_torch_cdist_topk(benchmark):
    import torch

    X = torch.from_numpy(features())

    def go():
        out = []
        for i in range(0, X.shape[0], 4096):
            d = torch.cdist(X[i : i + 4096], X)
            out.append(torch.topk(d, K + 1, largest=False).indices)
        return torch.cat(out)

    run(benchmark, go)


GROUP_GRAPH = f"kNN graph + Laplacian {N // 1000}k x 784 k={K}"


@pytest.mark.benchmark(group=GROUP_GRAPH)
def test_graph_deepscope(benchmark):
    X = features()
    run(benchmark, lambda: laplacian(knn_graph(X, K).affinity, "symmetric"))


@pytest.mark.benchmark(group=GROUP_GRAPH)
@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed")
def test_graph_sklearn(benchmark):
    from scipy.sparse.csgraph import laplacian as scipy_laplacian
    from sklearn.neighbors import kneighbors_graph

    X = features()

    def go():
        A = kneighbors_graph(X, K, mode="connectivity", include_self=False)
        return scipy_laplacian(0.5 * (A + A.T), normed=True)

    run(benchmark, go)


GROUP_EIG = f"10 smallest eigenvectors, normalised Laplacian {N // 1000}k"


@pytest.mark.benchmark(group=GROUP_EIG)
def test_eig_deepscope(benchmark):
    L, deg = laplacian(affinity(), "symmetric")
    run(benchmark, lambda: smallest_eigenvectors(L, 10, first_vector=np.sqrt(deg)))


@pytest.mark.benchmark(group=GROUP_EIG)
@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed")
def test_eig_sklearn_lobpcg(benchmark):
    from sklearn.manifold import spectral_embedding

    W = affinity().astype(np.float64)
    run(
        benchmark,
        lambda: spectral_embedding(
            W, n_components=10, eigen_solver="lobpcg", random_state=0
        ),
    )

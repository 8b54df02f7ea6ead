# Benchmarks: BASiS training steps and out-of-sample embedding vs naive / sklearn.
# SPDX-License-Identifier: MIT
"""BASiS speed: one training step against a naive implementation, and
out-of-sample embedding (``transform``) against recomputing eigenvectors.

Run: ``OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_basis.py
--benchmark-only -q`` (one thread everywhere, so neither side gains from
threads). Workloads: scikit-learn digits (1,797 x 64) and, when the Debian
package ``dataset-fashion-mnist`` is installed, a 10k x 784 Fashion-MNIST
subset.

Training step (batch 512, 250 anchors, K = 10, RANSAC 100 x 20 anchors):
``deepscope`` is ``BASiS.partial_fit(X, 1)`` (native blocked kNN + CSR
Laplacian, LAPACK eigenvectors of an index range, all RANSAC hypotheses in one
batched least-squares solve, then the MLP step). ``naive`` is the same
algorithm written directly: dense pairwise distances and argsort kNN, dense
affinity and Laplacian, a full ``numpy.linalg.eigh``, and a Python loop of
``numpy.linalg.lstsq`` RANSAC fits (as the reference code does), then the same
MLP step.

Out-of-sample embedding of N points: ``deepscope`` is ``BASiS.transform``
(one forward pass); ``sklearn`` recomputes the eigenvectors with
``kneighbors_graph`` + ``spectral_embedding`` (what one does without a learned
map when new points arrive).
"""

from __future__ import annotations

import importlib.util
import math
from functools import cache

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope.graph._basis import BASiS, batch_eigenvectors  # noqa: E402
from deepscope.graph._datasets import load_dataset  # noqa: E402

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
K = 10
BATCH = 512
ANCHORS = 250
ROUNDS = 10


@cache
def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return load_dataset(name, n=10_000 if name == "fashion-mnist" else None)
    except (FileNotFoundError, ImportError) as exc:
        pytest.skip(str(exc))


@cache
def fitted(name: str) -> BASiS:
    torch.set_num_threads(1)
    X, _ = data(name)
    return BASiS(K, n_anchors=ANCHORS, batch_size=BATCH, n_iterations=5).fit(X)


def run(benchmark, fn, rounds=ROUNDS):
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)


def naive_eigenvectors(Xb: np.ndarray) -> np.ndarray:
    """Dense kNN graph, dense Laplacian and a full eigh."""
    Xb = Xb.astype(np.float64)
    b = Xb.shape[0]
    sq = (Xb**2).sum(1)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * Xb @ Xb.T, 0.0)
    np.fill_diagonal(D2, np.inf)
    idx = np.argsort(D2, axis=1)[:, :10]
    d2 = np.take_along_axis(D2, idx, axis=1)
    sigma2 = d2[:, 6:7]
    A = np.zeros((b, b))
    np.put_along_axis(A, idx, np.exp(-d2 / sigma2), axis=1)
    W = 0.5 * (A + A.T)
    s = 1.0 / np.sqrt(W.sum(1))
    L = np.eye(b) - s[:, None] * W * s[None, :]
    _, V = np.linalg.eigh(L)
    return V[:, :K]


def naive_targets(Xb: np.ndarray, ref: np.ndarray, a: int, rng) -> np.ndarray:
    """Dense eigenvectors, then a Python RANSAC loop (reference style)."""
    V = naive_eigenvectors(Xb)
    b = V.shape[0]
    H = np.hstack([V, np.ones((b, 1))])
    best, best_n = None, -1
    for _ in range(100):
        pick = rng.choice(a, 20, replace=False)
        M = np.linalg.lstsq(H[pick], ref[pick], rcond=None)[0]
        inl = np.linalg.norm(H[:a] @ M - ref, axis=1) < 0.1
        if inl.sum() > best_n:
            best, best_n = inl, int(inl.sum())
    M = np.linalg.lstsq(H[:a][best], ref[best], rcond=None)[0]
    return H @ M * math.sqrt(b)


def naive_step(m: BASiS, X: np.ndarray, rng) -> None:
    idx = m._draw_batch()
    T = torch.as_tensor(
        naive_targets(
            X[idx].astype(np.float64), m.reference_.numpy(), m.n_anchors_, rng
        ),
        dtype=torch.float32,
    )
    out = m.model_(torch.as_tensor(X[idx], dtype=torch.float32))
    loss = torch.mean((out - T) ** 2)
    m.optimizer_.zero_grad(set_to_none=True)
    loss.backward()
    m.optimizer_.step()


DATASETS = ["digits", "fashion-mnist"]


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.benchmark(group="BASiS training step")
def test_step_deepscope(benchmark, name):
    X, _ = data(name)
    m = fitted(name)
    benchmark.group = f"BASiS training step, {name}, batch {BATCH}"
    run(benchmark, lambda: m.partial_fit(X, 1))


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.benchmark(group="BASiS training step")
def test_step_naive(benchmark, name):
    X, _ = data(name)
    m = fitted(name)
    rng = np.random.default_rng(0)
    benchmark.group = f"BASiS training step, {name}, batch {BATCH}"
    run(benchmark, lambda: naive_step(m, X, rng))


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.benchmark(group="embed N points")
def test_embed_deepscope_transform(benchmark, name):
    X, _ = data(name)
    m = fitted(name)
    benchmark.group = f"out-of-sample embedding, {name}, N = {len(X)}"
    E = run(benchmark, lambda: m.transform(X))
    assert E.shape == (len(X), K)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.benchmark(group="embed N points")
@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed")
def test_embed_sklearn_spectral_embedding(benchmark, name):
    from sklearn.manifold import spectral_embedding
    from sklearn.neighbors import kneighbors_graph

    X, _ = data(name)
    benchmark.group = f"out-of-sample embedding, {name}, N = {len(X)}"

    def recompute():
        G = kneighbors_graph(X, 10, mode="connectivity", include_self=False)
        return spectral_embedding(0.5 * (G + G.T), n_components=K, random_state=0)

    E = run(benchmark, recompute, rounds=3)
    assert E.shape == (len(X), K)


def test_naive_targets_match_library():
    # The naive step is the same algorithm: on one batch, its targets span
    # the same space as the library's aligned targets.
    from deepscope.graph import metrics

    X, _ = data("digits")
    m = fitted("digits")
    idx = m._draw_batch()
    mine = m._aligned_targets(idx).numpy()
    naive = naive_targets(
        X[idx].astype(np.float64),
        m.reference_.numpy(),
        m.n_anchors_,
        np.random.default_rng(0),
    )
    assert metrics.grassmann_distance(mine, naive) < 1e-3
    V = batch_eigenvectors(X[idx], K).numpy()
    assert metrics.grassmann_distance(naive_eigenvectors(X[idx]), V) < 1e-8

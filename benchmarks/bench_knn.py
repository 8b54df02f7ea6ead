# Benchmarks: exact kNN and ball query versus SciPy, Open3D and torch.
# SPDX-License-Identifier: MIT
"""kNN / ball-query benchmarks on the Autzen LiDAR scan (100k x 3).

Run: ``DEEPSCOPE_BENCH_DATA=/work/data/bench python -m pytest
benchmarks/bench_knn.py --benchmark-only -q``. Every timing includes building
whatever index the method needs. k = 16 neighbours plus the point itself,
i.e. ``k=17`` for every method (the same call the anchors measured).
"""

from __future__ import annotations

import importlib.util
from functools import cache

import numpy as np
import pytest
from _data import autzen_100k

from deepscope.pointcloud import ball_query, knn

K = 17  # 16 neighbours + the point itself
SUBSET = 10_000  # query subset for the slow brute-force peers
ROUNDS = 5

HAS_SCIPY = importlib.util.find_spec("scipy") is not None
HAS_OPEN3D = importlib.util.find_spec("open3d") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _has_cuda() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    import deepscope

    return deepscope.cuda_available() and torch.cuda.is_available()


@cache
def points() -> np.ndarray:
    return autzen_100k()


@cache
def ball_radius() -> float:
    """Median distance to the 17th neighbour: about 16 points per ball."""
    d = knn(points(), k=K).distances
    return float(np.sqrt(np.median(d[:, -1])))


def run(benchmark, fn, rounds=ROUNDS):
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)


# --- knn 3-D 100k k=16 self (autzen) ---------------------------------------

GROUP = "knn 3-D 100k k=16 self (autzen)"


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ours(benchmark, dtype):
    P = points().astype(dtype)
    result = run(benchmark, lambda: knn(P, k=K))
    assert (result.counts == K).all()


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.skipif(not HAS_SCIPY, reason="scipy not installed")
def test_scipy_ckdtree_build_and_query(benchmark):
    from scipy.spatial import cKDTree

    P = points()
    run(benchmark, lambda: cKDTree(P).query(P, k=K, workers=-1))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.skipif(not HAS_SCIPY, reason="scipy not installed")
def test_scipy_ckdtree_build_only(benchmark):
    from scipy.spatial import cKDTree

    P = points()
    run(benchmark, lambda: cKDTree(P))


@pytest.mark.benchmark(group=GROUP)
def test_ours_build_only(benchmark):
    # Builds the tree over all points and answers 8 queries.
    P = points()
    run(benchmark, lambda: knn(P[:8], P, k=1))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.skipif(not HAS_OPEN3D, reason="open3d not installed")
def test_open3d_tensor_nns(benchmark):
    import open3d as o3d

    P = o3d.core.Tensor(points())

    def fn():
        nns = o3d.core.nns.NearestNeighborSearch(P)
        nns.knn_index()
        return nns.knn_search(P, K)

    run(benchmark, fn)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.skipif(not HAS_OPEN3D, reason="open3d not installed")
def test_open3d_kdtreeflann_10k_queries_times_10(benchmark):
    # One Python call per query: measured on 10k queries; multiply by 10.
    import open3d as o3d

    P = points()
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(P))

    def fn():
        tree = o3d.geometry.KDTreeFlann(pc)
        for i in range(SUBSET):
            tree.search_knn_vector_3d(P[i], K)

    run(benchmark, fn, rounds=3)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_cdist_topk_10k_queries_times_10(benchmark):
    # Brute force (~40 s for all 100k): 10k queries in blocks of 4096; x10.
    import torch

    P = torch.from_numpy(points().astype(np.float32))

    def fn():
        for s in range(0, SUBSET, 4096):
            q = P[s : min(s + 4096, SUBSET)]
            torch.cdist(q, P).topk(K, largest=False)

    run(benchmark, fn, rounds=3)


# --- ball query 3-D 100k self (autzen) ----------------------------------------

BALL = "ball query 3-D 100k self, r ~ 17-NN median, max 32 (autzen)"


@pytest.mark.benchmark(group=BALL)
def test_ball_ours(benchmark):
    P = points()
    r = ball_radius()
    run(benchmark, lambda: ball_query(P, radius=r, max_neighbors=32))


@pytest.mark.benchmark(group=BALL)
@pytest.mark.skipif(not HAS_SCIPY, reason="scipy not installed")
def test_ball_scipy_query_ball_point_unsorted_all(benchmark):
    # Returns every neighbour in the ball as Python lists, unsorted, uncapped.
    from scipy.spatial import cKDTree

    P = points()
    r = ball_radius()
    run(benchmark, lambda: cKDTree(P).query_ball_point(P, r, workers=-1))


@pytest.mark.benchmark(group=BALL)
@pytest.mark.skipif(not HAS_OPEN3D, reason="open3d not installed")
def test_ball_open3d_hybrid_search(benchmark):
    # Open3D's hybrid search: the nearest max_knn within a radius.
    import open3d as o3d

    P = o3d.core.Tensor(points())
    r = ball_radius()

    def fn():
        nns = o3d.core.nns.NearestNeighborSearch(P)
        nns.hybrid_index(r)
        return nns.hybrid_search(P, r, 32)

    run(benchmark, fn)


# --- GPU: knn 3-D 100k k=16 self ----------------------------------------------

GPU = "gpu knn 3-D 100k k=16 self (autzen)"
needs_gpu = pytest.mark.skipif(not _has_cuda(), reason="no CUDA GPU")


@pytest.mark.benchmark(group=GPU)
@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_ours(benchmark, dtype):
    import torch

    P = torch.from_numpy(points().astype(dtype)).cuda()

    def fn():
        out = knn(P, k=K)
        torch.cuda.synchronize()
        return out

    run(benchmark, fn)


@pytest.mark.benchmark(group=GPU)
@needs_gpu
def test_gpu_torch_cdist_topk(benchmark):
    import torch

    P = torch.from_numpy(points().astype(np.float32)).cuda()

    def fn():
        for s in range(0, len(P), 8192):
            torch.cdist(P[s : s + 8192], P).topk(K, largest=False)
        torch.cuda.synchronize()

    run(benchmark, fn)

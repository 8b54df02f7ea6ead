# Production checks: kernels from many threads, GIL release, no memory growth.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from deepscope import importance, pointcloud

from tests.conftest import HAS_TORCH, to_numpy

STATM = Path("/proc/self/statm")


def _jobs():
    """(name, callable) pairs over distinct seeded inputs."""
    jobs = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        cloud = rng.standard_normal((2, 600 + 50 * seed, 3))
        features = np.maximum(rng.standard_normal((2, 64, 300)), 0).astype(np.float32)
        anchors = np.array([[0, 5], [3, 9]])
        jobs += [
            (f"fps{seed}", lambda c=cloud: pointcloud.farthest_point_sample(c, 64)),
            (f"knn{seed}", lambda c=cloud: pointcloud.knn(c, k=8, exclude_self=True)),
            (
                f"ball{seed}",
                lambda c=cloud: pointcloud.ball_query(c, radius=0.3, max_neighbors=16),
            ),
            (
                f"patch{seed}",
                lambda c=cloud, a=anchors: pointcloud.knn_patches(c, a, 40),
            ),
            (
                f"curve{seed}",
                lambda c=cloud, a=anchors, s=seed: pointcloud.random_walk_curves(
                    c, a, 40, k=6, seed=s
                ),
            ),
            (
                f"random{seed}",
                lambda c=cloud, s=seed: pointcloud.random_subsets(c, 30, 3, seed=s),
            ),
            (f"stats{seed}", lambda f=features: importance.importance_stats(f)),
            (f"adaptive{seed}", lambda f=features: importance.adaptive_subset(f)),
        ]
    return jobs


def _method_jobs():
    """(name, callable) pairs of the method kernels: graph, embedding, CMD."""
    from deepscope import dynamics, embedding, graph

    jobs = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        features = rng.standard_normal((300 + 20 * seed, 24)).astype(np.float32)
        refs = np.cumsum(rng.standard_normal((3, 12)), axis=1)
        window = rng.standard_normal((12, 2000)) + refs[rng.integers(0, 3, 2000)].T
        cloud = rng.standard_normal((2, 400, 3))
        jobs += [
            (f"feature_knn{seed}", lambda f=features: graph.feature_knn(f, k=6)),
            (f"knn_graph{seed}", lambda f=features: _graph_arrays(f)),
            (f"conformity{seed}", lambda f=features: [embedding.conformity(f)]),
            (
                f"exact_conformity{seed}",
                lambda f=features: [embedding.exact_conformity(f, block=64)],
            ),
            (
                f"cmd_fit{seed}",
                lambda w=window, r=refs: dynamics.assign_and_fit(w, r),
            ),
            (
                f"epic{seed}",
                lambda c=cloud, s=seed: [
                    pointcloud.partial_clouds(c, m, size=64, k=8, seed=s).indices
                    for m in ("patch", "curve", "random")
                ],
            ),
        ]
    return jobs


def _graph_arrays(features):
    from deepscope import graph

    g = graph.knn_graph(features, 6)
    return [g.indices, g.affinity.toarray(), g.components]


def _as_numpy(result):
    return [to_numpy(x) for x in result]


def test_kernels_from_a_thread_pool_match_serial_results():
    jobs = _jobs()
    serial = {name: _as_numpy(job()) for name, job in jobs}
    # Every job three times, interleaved, from 4 threads.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [(name, pool.submit(job)) for _ in range(3) for name, job in jobs]
        for name, future in futures:
            got = _as_numpy(future.result())
            for g, s in zip(got, serial[name], strict=True):
                np.testing.assert_array_equal(g, s, err_msg=name)


@pytest.mark.skipif(not HAS_TORCH, reason="the method kernels use torch")
def test_method_kernels_from_a_thread_pool_match_serial_results():
    import torch

    jobs = _method_jobs()
    serial = {name: _as_numpy(job()) for name, job in jobs}
    # A caller's non-default matmul precision: the blocked feature kNN raises
    # it to "highest" while it runs and must restore it whatever the overlap.
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [(name, pool.submit(job)) for _ in range(3) for name, job in jobs]
            for name, future in futures:
                got = _as_numpy(future.result())
                for g, s in zip(got, serial[name], strict=True):
                    np.testing.assert_array_equal(g, s, err_msg=name)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_inputs_from_threads():
    import torch

    clouds = [
        torch.randn(2, 500, 3, generator=torch.Generator().manual_seed(s))
        for s in range(8)
    ]
    serial = [pointcloud.knn(c, k=5).indices for c in clouds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda c: pointcloud.knn(c, k=5).indices, clouds))
    for g, s in zip(got, serial, strict=True):
        assert torch.equal(g, s)


def test_kernels_release_the_gil():
    # While a long kernel runs in a worker thread, the main thread keeps
    # running Python code; with the GIL held it would stall until the end.
    rng = np.random.default_rng(0)
    cloud = rng.standard_normal((300_000, 3))
    started = threading.Event()
    done = threading.Event()

    def work():
        started.set()
        pointcloud.farthest_point_sample(cloud, 2048)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    time.sleep(0.01)  # let the kernel start
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)  # yield: with the GIL free, this loop keeps going
    worker.join()
    assert ticks > 100, f"main thread advanced only {ticks} times during the kernel"


def _rss_bytes() -> int:
    pages = int(STATM.read_text().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
def test_long_loop_does_not_grow_memory():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((4, 8000, 3))  # 768 KB, a fast kernel (FPS)
    features = np.maximum(rng.standard_normal((2, 64, 4096)), 0)  # 4 MB
    small = rng.standard_normal((2, 300, 3))
    anchors = np.zeros((2, 2), dtype=np.int64)

    def step(i):
        pointcloud.farthest_point_sample(big, 64)
        importance.importance_stats(features)
        pointcloud.knn(small, k=8)
        pointcloud.random_walk_curves(small, anchors, 32, k=6, seed=i)
        with pytest.raises(ValueError, match="n_samples"):
            pointcloud.farthest_point_sample(big, 9000)  # error paths too

    # One leaked copy of the FPS input per call: 60 x 0.75 MB = 45 MB.
    _assert_bounded(step, 60)


def _assert_bounded(step, steps: int) -> None:
    for i in range(10):  # warm-up: allocator pools, caches, lazy imports
        step(i)
    gc.collect()
    before = _rss_bytes()
    for i in range(steps):
        step(i)
    gc.collect()
    grown = _rss_bytes() - before
    # Keeping one copy of a large input per call would add steps x its size
    # (30 MB or more in both tests); allocator noise stays below the bound.
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over {steps} steps"


@pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
@pytest.mark.skipif(not HAS_TORCH, reason="the method kernels use torch")
def test_method_kernels_long_loop_does_not_grow_memory():
    from deepscope import dynamics, embedding, graph

    rng = np.random.default_rng(2)
    features = rng.standard_normal((3000, 64)).astype(np.float32)  # 0.75 MB
    refs = np.cumsum(rng.standard_normal((4, 20)), axis=1)
    window = rng.standard_normal((20, 40_000)).astype(np.float32)  # 3.2 MB
    cloud = rng.standard_normal((4, 1024, 3)).astype(np.float32)

    def step(i):
        graph.feature_knn(features[:1000], k=8)
        graph.knn_graph(features[:800], 8)
        embedding.conformity(features)
        embedding.exact_conformity(features[:1000], block=256)
        dynamics.assign_and_fit(window, refs)
        for method in ("patch", "curve", "random"):
            pointcloud.partial_clouds(cloud, method, size=128, k=8, seed=i)
        with pytest.raises(ValueError, match="k"):
            graph.feature_knn(features[:10], k=10)  # error paths too

    # One leaked copy of the conformity input per call: 40 x 0.75 MB.
    _assert_bounded(step, 40)

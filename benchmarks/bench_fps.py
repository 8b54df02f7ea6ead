# Farthest point sampling benchmarks: deepscope against fpsample, Open3D, NumPy.
# SPDX-License-Identifier: MIT
"""FPS on real scans: 50k -> 4096 (Stanford bunny), 100k -> 50k (Autzen).

Run with ``DEEPSCOPE_BENCH_DATA=/work/data/bench python -m pytest
benchmarks/bench_fps.py --benchmark-only -q``. Peers that are not installed
are skipped. fpsample's kdline (h=7) does not honour ``start_idx``, so it is
timed, not compared index for index.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from _data import autzen_100k, stanford_bunny

from deepscope._bench_workloads import numpy_columnar_fps, torch_loop_fps
from deepscope.pointcloud import farthest_point_sample

HAS_FPSAMPLE = importlib.util.find_spec("fpsample") is not None
HAS_OPEN3D = importlib.util.find_spec("open3d") is not None
needs_fpsample = pytest.mark.skipif(not HAS_FPSAMPLE, reason="fpsample missing")
needs_open3d = pytest.mark.skipif(not HAS_OPEN3D, reason="open3d missing")

BUNNY = "fps 50k->4096 (bunny)"
AUTZEN = "fps 100k->50k (autzen)"
WORKLOADS = {BUNNY: (stanford_bunny, 4096), AUTZEN: (autzen_100k, 50_000)}


def _load(group: str, dtype=np.float64) -> tuple[np.ndarray, int]:
    load, k = WORKLOADS[group]
    return np.ascontiguousarray(load(), dtype=dtype), k


@pytest.mark.parametrize("group", [BUNNY, AUTZEN])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deepscope(benchmark, group, dtype):
    points, k = _load(group, np.dtype(dtype))
    benchmark.group = group
    benchmark.name = f"deepscope {dtype}"
    result = benchmark(farthest_point_sample, points, k)
    assert int(result.counts) == k


@needs_fpsample
@pytest.mark.parametrize("group", [BUNNY, AUTZEN])
def test_fpsample_kdline(benchmark, group):
    import fpsample

    points, k = _load(group, np.float32)
    benchmark.group = group
    benchmark.name = "fpsample kdline h=7 (float32)"
    out = benchmark(fpsample.bucket_fps_kdline_sampling, points, k, h=7)
    assert len(out) == k


@needs_fpsample
def test_fpsample_vanilla(benchmark):
    import fpsample

    points, k = _load(BUNNY, np.float32)
    benchmark.group = BUNNY
    benchmark.name = "fpsample vanilla (float32)"
    out = benchmark.pedantic(
        fpsample.fps_sampling, (points, k), {"start_idx": 0}, rounds=3
    )
    assert len(out) == k


@needs_open3d
@pytest.mark.parametrize("group", [BUNNY, AUTZEN])
def test_open3d(benchmark, group):
    import open3d as o3d

    points, k = _load(group)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    benchmark.group = group
    benchmark.name = "open3d farthest_point_down_sample (float64)"
    rounds = 3 if group == BUNNY else 1
    out = benchmark.pedantic(
        cloud.farthest_point_down_sample, (k,), rounds=rounds, iterations=1
    )
    assert len(out.points) == k


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_columnar(benchmark, dtype):
    points, k = _load(BUNNY, np.dtype(dtype))
    benchmark.group = BUNNY
    benchmark.name = f"numpy columnar loop ({dtype})"
    out = benchmark.pedantic(numpy_columnar_fps, (points, k), rounds=3)
    if dtype == "float64":
        ours = farthest_point_sample(points, k).indices
        np.testing.assert_array_equal(out, ours)


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import deepscope

    if not deepscope.cuda_available():
        pytest.skip("deepscope built without CUDA")
    return torch


@pytest.mark.parametrize(
    ("group", "B", "N", "k"),
    [
        ("cuda fps B=32 1024->256 (float32)", 32, 1024, 256),
        ("cuda fps B=1 100k->50k (autzen, float32)", 1, None, 50_000),
    ],
)
@pytest.mark.parametrize("method", ["deepscope", "torch loop"])
def test_cuda(benchmark, group, B, N, k, method):
    torch = _torch_cuda()
    if N is None:
        points = torch.from_numpy(autzen_100k().astype(np.float32))[None].cuda()
    else:
        gen = torch.Generator().manual_seed(0)
        points = torch.randn(B, N, 3, generator=gen).cuda()
    if method == "torch loop" and k > 5000:
        pytest.skip("the torch loop takes minutes at this size")

    def run():
        if method == "deepscope":
            out = farthest_point_sample(points, k).indices
        else:
            out = torch_loop_fps(points, k)
        torch.cuda.synchronize()
        return out

    benchmark.group = group
    benchmark.name = method
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)

# The built-in benchmark workloads of `deepscope bench` and benchmarks/bench_suite.py.
# SPDX-License-Identifier: MIT
"""Workloads: FPS, kNN, ball query, EPiC samplers, point importance, the CMD
fit, feature kNN graphs and conformity.

CPU workloads run everywhere; the ``cuda-*`` workloads (FPS, kNN and
importance on torch CUDA tensors, beside torch, PyTorch3D and torch-cluster)
run when a GPU is usable and are reported as skipped otherwise.

Each workload registers a :class:`deepscope.bench.Workload`; peers are
imported inside the candidate factories, so a missing peer costs nothing.
A new kernel adds its workload here (or calls :func:`deepscope.bench.register`
from its own module) with deepscope's candidates first.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from deepscope.bench import Candidate, Data, Workload, register

K_NN = 17  # 16 neighbours plus the point itself, as the peers count them
SUBSET = 10_000  # queries timed for brute-force peers (then scaled)


# ----------------------------------------------------------------------------
# Reference implementations used as peers (also imported by benchmarks/).


def numpy_columnar_fps(points: np.ndarray, k: int) -> np.ndarray:
    """Plain O(N * K) FPS with per-coordinate columns and in-place updates."""
    cols = [np.ascontiguousarray(points[:, d]) for d in range(points.shape[1])]
    mind = np.full(points.shape[0], np.inf, dtype=points.dtype)
    dist = np.empty_like(mind)
    tmp = np.empty_like(mind)
    out = np.empty(k, np.int64)
    sel = 0
    for i in range(k):
        out[i] = sel
        np.subtract(cols[0], cols[0][sel], out=dist)
        np.square(dist, out=dist)
        for c in cols[1:]:
            np.subtract(c, c[sel], out=tmp)
            np.square(tmp, out=tmp)
            dist += tmp
        np.minimum(mind, dist, out=mind)
        sel = int(np.argmax(mind))
    return out


def torch_importance_composite(features: Any, eps: float = 1e-6):
    """Norms, argmax counts and normalized entropy with stock torch ops.

    Args:
        features: (B, C, N) torch tensor.

    Returns:
        ``(norms (B, N), counts (B, N), entropy (B,))``.
    """
    import torch

    b, _, n = features.shape
    norms = torch.linalg.vector_norm(features, dim=1)
    winners = (
        features.argmax(dim=2) + n * torch.arange(b, device=features.device)[:, None]
    )
    counts = torch.bincount(winners.reshape(-1), minlength=b * n).reshape(b, n)
    q = counts + eps
    q = q / q.sum(dim=1, keepdim=True)
    entropy = -torch.xlogy(q, q).sum(dim=1) / math.log(n)
    return norms, counts, entropy


# ----------------------------------------------------------------------------
# FPS


class _FPSState(NamedTuple):
    points: np.ndarray  # (N, 3) float64
    k: int


def _fps_setup(cloud: str, k: int) -> Any:
    def setup(data: Data, quick: bool) -> _FPSState:
        return _FPSState(getattr(data, cloud), k)

    return setup


def _ours_fps(dtype: str):
    def make(state: _FPSState):
        from deepscope.pointcloud import farthest_point_sample

        points = state.points.astype(dtype)
        return lambda: farthest_point_sample(points, state.k)

    return make


def _fpsample_kdline(state: _FPSState):
    import fpsample

    points = state.points.astype(np.float32)
    return lambda: fpsample.bucket_fps_kdline_sampling(points, state.k, h=7)


def _fpsample_vanilla(state: _FPSState):
    import fpsample

    points = state.points.astype(np.float32)
    return lambda: fpsample.fps_sampling(points, state.k, start_idx=0)


def _open3d_fps(state: _FPSState):
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(state.points))
    return lambda: cloud.farthest_point_down_sample(state.k)


def _torch_cluster_fps(state: _FPSState):
    import torch
    import torch_cluster

    points = torch.from_numpy(state.points.astype(np.float32))
    ratio = state.k / len(points)
    return lambda: torch_cluster.fps(points, ratio=ratio, random_start=False)


def _pytorch3d_fps(state: _FPSState):
    import torch
    from pytorch3d.ops import sample_farthest_points

    points = torch.from_numpy(state.points.astype(np.float32))[None]
    return lambda: sample_farthest_points(points, K=state.k)


def _numpy_fps(state: _FPSState):
    points = state.points.astype(np.float32)
    return lambda: numpy_columnar_fps(points, state.k)


_KDLINE_NOTE = "kdline h=7 ignores start_idx (a different but valid FPS order)"

register(
    Workload(
        name="fps",
        title="fps 50k -> 4096 ({scan})",
        setup=_fps_setup("scan", 4096),
        candidates=(
            Candidate("deepscope float32", _ours_fps("float32")),
            Candidate("deepscope float64", _ours_fps("float64")),
            Candidate(
                "fpsample kdline h=7 (float32)",
                _fpsample_kdline,
                peer="fpsample",
                note=_KDLINE_NOTE,
            ),
            Candidate(
                "fpsample vanilla (float32)",
                _fpsample_vanilla,
                peer="fpsample",
                slow=True,
            ),
            Candidate("open3d farthest_point_down_sample", _open3d_fps, peer="open3d"),
            Candidate(
                "torch-cluster fps (float32)", _torch_cluster_fps, "torch-cluster"
            ),
            Candidate("pytorch3d sample_farthest_points", _pytorch3d_fps, "pytorch3d"),
            Candidate(
                "numpy columnar loop (float32)", _numpy_fps, peer="numpy", slow=True
            ),
        ),
    )
)

register(
    Workload(
        name="fps-large",
        title="fps 100k -> 50k ({lidar})",
        setup=_fps_setup("lidar", 50_000),
        candidates=(
            Candidate("deepscope float32", _ours_fps("float32")),
            Candidate("deepscope float64", _ours_fps("float64")),
            Candidate(
                "fpsample kdline h=7 (float32)",
                _fpsample_kdline,
                peer="fpsample",
                note=_KDLINE_NOTE,
            ),
            Candidate(
                "open3d farthest_point_down_sample",
                _open3d_fps,
                peer="open3d",
                slow=True,
            ),
        ),
        quick=False,
    )
)


# ----------------------------------------------------------------------------
# kNN and ball query (self-queries over the LiDAR scan, index build included)


class _CloudState(NamedTuple):
    points: np.ndarray  # (N, 3) float64
    radius: float  # ball radius holding about 16 points (median 17-NN distance)


_RADIUS: dict[int, tuple[np.ndarray, float]] = {}  # id -> (points, radius)


def _cloud_setup(data: Data, quick: bool) -> _CloudState:
    from deepscope.pointcloud import knn

    points = data.lidar
    cached = _RADIUS.get(id(points))
    if cached is None or cached[0] is not points:
        d2 = knn(points, k=K_NN).distances
        _RADIUS.clear()
        cached = _RADIUS[id(points)] = (points, float(np.sqrt(np.median(d2[:, -1]))))
    return _CloudState(points, cached[1])


def _ours_knn(dtype: str):
    def make(state: _CloudState):
        from deepscope.pointcloud import knn

        points = state.points.astype(dtype)
        return lambda: knn(points, k=K_NN)

    return make


def _scipy_knn(state: _CloudState):
    from scipy.spatial import cKDTree

    points = state.points
    return lambda: cKDTree(points).query(points, k=K_NN, workers=-1)


def _sklearn_knn(state: _CloudState):
    from sklearn.neighbors import NearestNeighbors

    points = state.points

    def run():
        model = NearestNeighbors(n_neighbors=K_NN, algorithm="kd_tree", n_jobs=-1)
        return model.fit(points).kneighbors(points)

    return run


def _open3d_knn(state: _CloudState):
    import open3d as o3d

    points = o3d.core.Tensor(state.points)

    def run():
        nns = o3d.core.nns.NearestNeighborSearch(points)
        nns.knn_index()
        return nns.knn_search(points, K_NN)

    return run


def _faiss_knn(state: _CloudState):
    import faiss

    points = np.ascontiguousarray(state.points, dtype=np.float32)
    queries = points[:SUBSET]

    def run():
        index = faiss.IndexFlatL2(points.shape[1])
        index.add(points)
        return index.search(queries, K_NN)

    return run


def _torch_knn(state: _CloudState):
    import torch

    points = torch.from_numpy(state.points.astype(np.float32))

    def run():
        for start in range(0, SUBSET, 4096):
            block = points[start : min(start + 4096, SUBSET)]
            torch.cdist(block, points).topk(K_NN, largest=False)

    return run


def _pytorch3d_knn(state: _CloudState):
    import torch
    from pytorch3d.ops import knn_points

    points = torch.from_numpy(state.points.astype(np.float32))[None]
    return lambda: knn_points(points, points, K=K_NN)


def _torch_cluster_knn(state: _CloudState):
    import torch
    import torch_cluster

    points = torch.from_numpy(state.points.astype(np.float32))
    return lambda: torch_cluster.knn(points, points, K_NN)


_SUBSET_NOTE = f"brute force; timed on {SUBSET} queries and scaled to all"
_SCALE = 100_000 / SUBSET

register(
    Workload(
        name="knn",
        title=f"knn 3-D 100k self-query, k={K_NN} ({{lidar}})",
        setup=_cloud_setup,
        candidates=(
            Candidate("deepscope float32", _ours_knn("float32")),
            Candidate("deepscope float64", _ours_knn("float64")),
            Candidate("scipy cKDTree build+query", _scipy_knn, peer="scipy"),
            Candidate("scikit-learn kd_tree", _sklearn_knn, peer="scikit-learn"),
            Candidate("open3d NearestNeighborSearch", _open3d_knn, peer="open3d"),
            Candidate(
                "faiss IndexFlatL2",
                _faiss_knn,
                peer="faiss",
                scale=_SCALE,
                note=_SUBSET_NOTE,
            ),
            Candidate(
                "torch cdist+topk",
                _torch_knn,
                peer="torch",
                slow=True,
                scale=_SCALE,
                note=_SUBSET_NOTE,
            ),
            Candidate("pytorch3d knn_points", _pytorch3d_knn, peer="pytorch3d"),
            Candidate("torch-cluster knn", _torch_cluster_knn, peer="torch-cluster"),
        ),
    )
)


def _ours_ball(state: _CloudState):
    from deepscope.pointcloud import ball_query

    points = state.points
    return lambda: ball_query(points, radius=state.radius, max_neighbors=32)


def _scipy_ball(state: _CloudState):
    from scipy.spatial import cKDTree

    points = state.points
    return lambda: cKDTree(points).query_ball_point(points, state.radius, workers=-1)


def _open3d_ball(state: _CloudState):
    import open3d as o3d

    points = o3d.core.Tensor(state.points)

    def run():
        nns = o3d.core.nns.NearestNeighborSearch(points)
        nns.hybrid_index(state.radius)
        return nns.hybrid_search(points, state.radius, 32)

    return run


def _torch_cluster_ball(state: _CloudState):
    import torch
    import torch_cluster

    points = torch.from_numpy(state.points.astype(np.float32))
    return lambda: torch_cluster.radius(
        points, points, state.radius, max_num_neighbors=32
    )


def _pytorch3d_ball(state: _CloudState):
    import torch
    from pytorch3d.ops import ball_query

    points = torch.from_numpy(state.points.astype(np.float32))[None]
    return lambda: ball_query(points, points, K=32, radius=state.radius)


register(
    Workload(
        name="ball_query",
        title="ball query 3-D 100k self-query, r = median 17-NN distance, "
        "at most 32 ({lidar})",
        setup=_cloud_setup,
        candidates=(
            Candidate("deepscope float64", _ours_ball),
            Candidate(
                "scipy query_ball_point",
                _scipy_ball,
                peer="scipy",
                note="returns all neighbours, unsorted, as lists",
            ),
            Candidate("open3d hybrid_search", _open3d_ball, peer="open3d"),
            Candidate(
                "torch-cluster radius",
                _torch_cluster_ball,
                peer="torch-cluster",
                note="the first 32 found, not the nearest 32",
            ),
            Candidate(
                "pytorch3d ball_query",
                _pytorch3d_ball,
                peer="pytorch3d",
                note="the first 32 found, not the nearest 32",
            ),
        ),
    )
)


# ----------------------------------------------------------------------------
# EPiC partial clouds (B = 32 clouds of 1024 points, 4 anchors)


class _BatchState(NamedTuple):
    clouds: np.ndarray  # (B, N, 3) float32
    anchors: np.ndarray  # (B, A) int64


def _batch_setup(data: Data, quick: bool) -> _BatchState:
    from deepscope.pointcloud import farthest_point_sample

    rng = np.random.default_rng(0)
    scan = data.scan
    small = len(scan) < 1024  # only for tiny test data
    clouds = np.stack(
        [scan[rng.choice(len(scan), 1024, replace=small)] for _ in range(32)]
    )
    clouds = clouds - clouds.mean(axis=1, keepdims=True)
    clouds /= np.linalg.norm(clouds, axis=2).max(axis=1)[:, None, None]
    clouds = clouds.astype(np.float32)
    anchors = np.asarray(farthest_point_sample(clouds, 4).indices)
    return _BatchState(clouds, anchors)


def _ours_patches(state: _BatchState):
    from deepscope.pointcloud import knn_patches

    return lambda: knn_patches(state.clouds, state.anchors, 512)


def _scipy_patches(state: _BatchState):
    from scipy.spatial import cKDTree

    def run():
        return [
            cKDTree(cloud).query(cloud[anchors], k=512)[1]
            for cloud, anchors in zip(state.clouds, state.anchors, strict=True)
        ]

    return run


def _ours_curves(state: _BatchState):
    from deepscope.pointcloud import random_walk_curves

    return lambda: random_walk_curves(state.clouds, state.anchors, 512, k=20)


def _ours_random(state: _BatchState):
    from deepscope.pointcloud import random_subsets

    return lambda: random_subsets(state.clouds, 128, 4, seed=0)


def _numpy_random(state: _BatchState):
    rng = np.random.default_rng(0)
    B, N, _ = state.clouds.shape
    return lambda: np.argsort(rng.random((B, 4, N)), axis=-1)[..., :128]


def _torch_random(state: _BatchState):
    import torch

    B, N, _ = state.clouds.shape
    gen = torch.Generator().manual_seed(0)
    return lambda: torch.rand(B, 4, N, generator=gen).argsort(dim=-1)[..., :128]


register(
    Workload(
        name="patches",
        title="kNN patches B=32 N=1024, 4 anchors x 512 points ({scan})",
        setup=_batch_setup,
        candidates=(
            Candidate("deepscope knn_patches", _ours_patches),
            Candidate("scipy cKDTree per cloud", _scipy_patches, peer="scipy"),
        ),
    )
)

register(
    Workload(
        name="curves",
        title="random-walk curves B=32 N=1024, 4 x 512 steps on a 20-NN graph ({scan})",
        setup=_batch_setup,
        candidates=(Candidate("deepscope random_walk_curves", _ours_curves),),
    )
)

register(
    Workload(
        name="random_subsets",
        title="random subsets B=32 N=1024, 4 x 128 points",
        setup=_batch_setup,
        candidates=(
            Candidate("deepscope random_subsets", _ours_random),
            Candidate("numpy argsort of random keys", _numpy_random, peer="numpy"),
            Candidate("torch argsort of random keys", _torch_random, peer="torch"),
        ),
    )
)


# ----------------------------------------------------------------------------
# Point importance (Critical Points++ / FBI) of a ModelNet-sized batch


def _importance_setup(data: Data, quick: bool) -> np.ndarray:
    rng = np.random.default_rng(7)
    features = rng.standard_normal((32, 1024, 1024), dtype=np.float32)
    return np.maximum(features, 0)  # post-ReLU features


def _ours_importance(state: np.ndarray):
    from deepscope.importance import importance_stats

    return lambda: importance_stats(state)


def _torch_importance(state: np.ndarray):
    import torch

    features = torch.from_numpy(state)
    return lambda: torch_importance_composite(features)


register(
    Workload(
        name="importance",
        title="point importance B=32 C=1024 N=1024 (norms, argmax counts, entropy)",
        setup=_importance_setup,
        candidates=(
            Candidate("deepscope importance_stats", _ours_importance),
            Candidate(
                "torch vector_norm+argmax+bincount+xlogy",
                _torch_importance,
                peer="torch",
            ),
        ),
    )
)


# ----------------------------------------------------------------------------
# CUDA (torch tensors on the current device; every callable synchronises)


def torch_loop_fps(points: Any, k: int) -> Any:
    """Plain batched torch FPS (float64 minima, the first maximum wins).

    Args:
        points: (B, N, D) torch tensor.
        k: samples per cloud.

    Returns:
        (B, k) int64 indices, starting at index 0.
    """
    import torch

    B, N, _ = points.shape
    mind = torch.full((B, N), float("inf"), dtype=torch.float64, device=points.device)
    out = torch.empty((B, k), dtype=torch.int64, device=points.device)
    sel = torch.zeros(B, dtype=torch.int64, device=points.device)
    rows = torch.arange(B, device=points.device)
    p64 = points.double()
    for i in range(k):
        out[:, i] = sel
        diff = p64 - p64[rows, sel][:, None, :]
        mind = torch.minimum(mind, (diff * diff).sum(-1))
        sel = mind.argmax(1)
    return out


def _synced(fn):
    import torch

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


class _GPUState(NamedTuple):
    clouds: Any  # (32, 1024, 3) float32 CUDA tensor
    lidar: Any  # (N, 3) float32 CUDA tensor
    features: Any  # (32, 1024, 1024) float32 CUDA tensor


def _gpu_setup(data: Data, quick: bool) -> _GPUState:
    import torch

    batch = _batch_setup(data, quick)
    features = torch.from_numpy(_importance_setup(data, quick))
    return _GPUState(
        torch.from_numpy(batch.clouds).cuda(),
        torch.from_numpy(data.lidar.astype(np.float32)).cuda(),
        features.cuda(),
    )


def _cuda_ours_fps(state: _GPUState):
    from deepscope.pointcloud import farthest_point_sample

    return _synced(lambda: farthest_point_sample(state.clouds, 256))


def _cuda_torch_fps(state: _GPUState):
    return _synced(lambda: torch_loop_fps(state.clouds, 256))


def _cuda_pytorch3d_fps(state: _GPUState):
    from pytorch3d.ops import sample_farthest_points

    return _synced(lambda: sample_farthest_points(state.clouds, K=256))


def _cuda_ours_knn(state: _GPUState):
    from deepscope.pointcloud import knn

    return _synced(lambda: knn(state.lidar, k=K_NN))


def _cuda_torch_knn(state: _GPUState):
    import torch

    points = state.lidar

    def run():
        for start in range(0, len(points), 8192):
            torch.cdist(points[start : start + 8192], points).topk(K_NN, largest=False)

    return _synced(run)


def _cuda_pytorch3d_knn(state: _GPUState):
    from pytorch3d.ops import knn_points

    points = state.lidar[None]
    return _synced(lambda: knn_points(points, points, K=K_NN))


def _cuda_torch_cluster_knn(state: _GPUState):
    import torch_cluster

    return _synced(lambda: torch_cluster.knn(state.lidar, state.lidar, K_NN))


def _cuda_ours_importance(state: _GPUState):
    from deepscope.importance import importance_stats

    return _synced(lambda: importance_stats(state.features))


def _cuda_torch_importance(state: _GPUState):
    return _synced(lambda: torch_importance_composite(state.features))


register(
    Workload(
        name="cuda-fps",
        title="cuda fps B=32 1024 -> 256 (float32, {scan})",
        setup=_gpu_setup,
        candidates=(
            Candidate("deepscope", _cuda_ours_fps),
            Candidate("torch loop (float64 minima)", _cuda_torch_fps, peer="torch"),
            Candidate(
                "pytorch3d sample_farthest_points", _cuda_pytorch3d_fps, "pytorch3d"
            ),
        ),
        cuda=True,
    )
)

register(
    Workload(
        name="cuda-knn",
        title=f"cuda knn 3-D self-query, k={K_NN} (float32, {{lidar}})",
        setup=_gpu_setup,
        candidates=(
            Candidate("deepscope", _cuda_ours_knn),
            Candidate("torch cdist+topk (blocks of 8192)", _cuda_torch_knn, "torch"),
            Candidate("pytorch3d knn_points", _cuda_pytorch3d_knn, peer="pytorch3d"),
            Candidate("torch-cluster knn", _cuda_torch_cluster_knn, "torch-cluster"),
        ),
        cuda=True,
    )
)

register(
    Workload(
        name="cuda-importance",
        title="cuda point importance B=32 C=1024 N=1024 (float32)",
        setup=_gpu_setup,
        candidates=(
            Candidate("deepscope importance_stats", _cuda_ours_importance),
            Candidate(
                "torch vector_norm+argmax+bincount+xlogy",
                _cuda_torch_importance,
                peer="torch",
            ),
        ),
        cuda=True,
    )
)


# ----------------------------------------------------------------------------
# Training dynamics: the fused CMD assignment + affine fit


def numpy_cmd_fit(window: np.ndarray, references: np.ndarray, chunk: int = 1 << 20):
    """The CMD assignment and fit of every parameter in plain NumPy float64.

    Args:
        window: (N, T) parameter trajectories.
        references: (M, T) reference trajectories.

    Returns:
        ``(modes (N,), a (N,), b (N,))``.
    """
    R = references.astype(np.float64)
    r_mean = R.mean(axis=1)
    r_var = ((R - r_mean[:, None]) ** 2).sum(axis=1)
    modes = np.empty(window.shape[0], np.int64)
    a = np.empty(window.shape[0])
    b = np.empty(window.shape[0])
    for lo in range(0, window.shape[0], chunk):
        W = window[lo : lo + chunk].astype(np.float64)
        w_mean = W.mean(axis=1)
        Wc = W - w_mean[:, None]
        cov = Wc @ (R - r_mean[:, None]).T  # (n, M)
        w_var = (Wc * Wc).sum(axis=1)
        denom = np.sqrt(np.maximum(w_var[:, None] * r_var[None, :], 1e-300))
        best = np.argmax(np.abs(cov / denom), axis=1)
        slope = cov[np.arange(len(best)), best] / np.maximum(r_var[best], 1e-300)
        modes[lo : lo + chunk] = best
        a[lo : lo + chunk] = slope
        b[lo : lo + chunk] = w_mean - slope * r_mean[best]
    return modes, a, b


class _CMDState(NamedTuple):
    window: np.ndarray  # (N, T) float32
    references: np.ndarray  # (M, T) float32


def _cmd_setup(data: Data, quick: bool) -> _CMDState:
    rng = np.random.default_rng(0)
    n, t, m = (1_000_000 if quick else 11_000_000), 21, 10
    references = np.cumsum(rng.standard_normal((m, t)), axis=1).astype(np.float32)
    modes = rng.integers(0, m, n)
    scale = rng.standard_normal(n).astype(np.float32)
    window = scale[:, None] * references[modes] + rng.standard_normal(
        (n, t), dtype=np.float32
    )
    return _CMDState(np.ascontiguousarray(window), references)


def _ours_cmd(state: _CMDState):
    from deepscope.dynamics import assign_and_fit

    return lambda: assign_and_fit(
        state.window, state.references, time_major=False, diagnostics=False
    )


def _numpy_cmd(state: _CMDState):
    return lambda: numpy_cmd_fit(state.window, state.references)


register(
    Workload(
        name="cmd_fit",
        title="CMD assignment + affine fit, T=21, M=10 (1M parameters quick, 11M full)",
        setup=_cmd_setup,
        candidates=(
            Candidate("deepscope assign_and_fit", _ours_cmd),
            Candidate("numpy float64, 1M-row chunks", _numpy_cmd, peer="numpy"),
        ),
    )
)


# ----------------------------------------------------------------------------
# Graphs: exact kNN of high-dimensional features (scikit-learn digits, 64-D)


class _FeatureState(NamedTuple):
    features: np.ndarray  # (N, 64) float32


def _feature_setup(data: Data, quick: bool) -> _FeatureState:
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32) / 16.0
    reps = 2 if quick else 8  # jittered copies make a larger real-looking set
    rng = np.random.default_rng(0)
    X = np.concatenate([X + 0.01 * rng.standard_normal(X.shape) for _ in range(reps)])
    return _FeatureState(np.ascontiguousarray(X, dtype=np.float32))


def _ours_feature_knn(state: _FeatureState):
    from deepscope.graph import feature_knn

    return lambda: feature_knn(state.features, k=10)


def _sklearn_feature_knn(state: _FeatureState):
    from sklearn.neighbors import NearestNeighbors

    def run():
        nn = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(state.features)
        return nn.kneighbors(state.features, n_neighbors=11)

    return run


def _faiss_feature_knn(state: _FeatureState):
    import faiss

    def run():
        index = faiss.IndexFlatL2(state.features.shape[1])
        index.add(state.features)
        return index.search(state.features, 11)

    return run


def _torch_feature_knn(state: _FeatureState):
    import torch

    x = torch.from_numpy(state.features)
    return lambda: torch.cdist(x, x).topk(11, largest=False)


register(
    Workload(
        name="feature_knn",
        title="exact kNN graph, 64-D digits features (x2 quick, x8 full), k=10",
        setup=_feature_setup,
        candidates=(
            Candidate("deepscope graph.feature_knn", _ours_feature_knn),
            Candidate(
                "sklearn NearestNeighbors brute",
                _sklearn_feature_knn,
                peer="scikit-learn",
            ),
            Candidate(
                "faiss IndexFlatL2 (float32, not exact)",
                _faiss_feature_knn,
                peer="faiss",
            ),
            Candidate(
                "torch cdist + topk (float32, not exact)",
                _torch_feature_knn,
                peer="torch",
            ),
        ),
    )
)


def _ours_knn_graph(state: _FeatureState):
    from deepscope.graph import knn_graph

    return lambda: knn_graph(state.features, 10, weight="distance").affinity


def _sklearn_knn_graph(state: _FeatureState):
    from sklearn.neighbors import NearestNeighbors

    def run():
        nn = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(state.features)
        W = nn.kneighbors_graph(mode="distance")
        return 0.5 * (W + W.T)

    return run


register(
    Workload(
        name="knn_graph",
        title="symmetrised kNN distance graph in CSR, 64-D digits features, k=10",
        setup=_feature_setup,
        candidates=(
            Candidate("deepscope graph.knn_graph", _ours_knn_graph),
            Candidate(
                "sklearn NearestNeighbors.kneighbors_graph brute, (W + W.T) / 2",
                _sklearn_knn_graph,
                peer="scikit-learn",
            ),
        ),
    )
)


# ----------------------------------------------------------------------------
# Embedding geometry: exact conformity


class _EmbeddingState(NamedTuple):
    embeddings: np.ndarray  # (N, 512) float32


def _embedding_setup(data: Data, quick: bool) -> _EmbeddingState:
    from deepscope.embedding import double_ellipsoid

    n = 4096 if quick else 20_000
    pair = double_ellipsoid(n, n, dim=512, seed=0)
    return _EmbeddingState(np.ascontiguousarray(pair.image, dtype=np.float32))


def _ours_exact_conformity(state: _EmbeddingState):
    from deepscope.embedding import exact_conformity

    return lambda: exact_conformity(state.embeddings)


def _ours_identity_conformity(state: _EmbeddingState):
    from deepscope.embedding import conformity

    return lambda: conformity(state.embeddings)


def _torch_naive_conformity(state: _EmbeddingState):
    import torch

    return _naive_blocks(torch.from_numpy(state.embeddings))


def _naive_blocks(x: Any):
    """Mean cosine to every row, 4096 rows of the cosine matrix at a time."""
    import torch

    def run():
        u = torch.nn.functional.normalize(x, dim=1)
        return torch.cat(
            [(u[i : i + 4096] @ u.T).mean(1) for i in range(0, len(u), 4096)]
        )

    return run


register(
    Workload(
        name="conformity",
        title="conformity, 512-D synthetic double ellipsoid (4k quick, 20k full)",
        setup=_embedding_setup,
        candidates=(
            Candidate(
                "deepscope conformity (exact O(N D) identity)",
                _ours_identity_conformity,
            ),
            Candidate("deepscope exact_conformity (tiles)", _ours_exact_conformity),
            Candidate("torch naive blocks", _torch_naive_conformity, peer="torch"),
        ),
    )
)


# ----------------------------------------------------------------------------
# EPiC test time: 3 PointNets x 4 FPS anchors (patch, curve, random subset)


class _EPiCState(NamedTuple):
    clouds: Any  # (B, 1024, 3) float32 torch tensor
    epic: Any  # deepscope.robust.EPiC in eval mode
    backbones: tuple  # the three PointNets of ``epic``


def _epic_setup(data: Data, quick: bool) -> _EPiCState:
    import torch

    from deepscope.models import PointNet
    from deepscope.robust import EPiC

    state = _batch_setup(data, quick)
    torch.manual_seed(0)
    backbones = tuple(PointNet(40, emb_dims=256).eval() for _ in range(3))
    epic = EPiC.from_backbones(backbones).eval()
    B = 8 if quick else 32
    return _EPiCState(torch.from_numpy(state.clouds[:B]), epic, backbones)


def numpy_epic_partials(clouds: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """EPiC's partial clouds with SciPy and NumPy (indices per method).

    FPS anchors from index 0, 512-point kNN patches (cKDTree), 512-step
    random walks on the 20-NN graph (the point and 19 others), 128-point
    random subsets; 4 of each per cloud.

    Returns:
        ``[patches (B, 4, 512), curves (B, 4, 512), subsets (B, 4, 128)]``.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    B, N, _ = clouds.shape
    patches = np.empty((B, 4, 512), np.int64)
    curves = np.empty((B, 4, 512), np.int64)
    for b, cloud in enumerate(clouds.astype(np.float64)):
        anchors = [0]
        d = ((cloud - cloud[0]) ** 2).sum(1)
        for _ in range(3):
            anchors.append(int(d.argmax()))
            d = np.minimum(d, ((cloud - cloud[anchors[-1]]) ** 2).sum(1))
        tree = cKDTree(cloud)
        patches[b] = tree.query(cloud[anchors], k=512)[1]
        graph = tree.query(cloud, k=20)[1]
        walk = np.asarray(anchors)
        for step in range(512):
            curves[b, :, step] = walk
            walk = graph[walk, rng.integers(1, 20, size=4)]
    subsets = np.argsort(rng.random((B, 4, N)), axis=-1)[..., :128]
    return [patches, curves, subsets]


def _ours_epic(state: _EPiCState):
    import torch

    def run():
        with torch.no_grad():
            return state.epic(state.clouds)

    return run


def _scipy_epic(state: _EPiCState):
    import torch

    def run():
        parts = numpy_epic_partials(state.clouds.numpy())
        B = state.clouds.shape[0]
        with torch.no_grad():
            logits = []
            for net, idx in zip(state.backbones, parts, strict=True):
                sub = state.clouds[
                    torch.arange(B)[:, None, None], torch.from_numpy(idx)
                ]
                logits.append(net(sub.reshape(-1, idx.shape[-1], 3)).reshape(B, 4, -1))
            return torch.cat(logits, dim=1).mean(dim=1)

    return run


def _ours_epic_partials(state: _EPiCState):
    from deepscope.pointcloud import partial_clouds

    def run():
        return [
            partial_clouds(state.clouds, m, seed=0)
            for m in ("patch", "curve", "random")
        ]

    return run


def _scipy_epic_partials(state: _EPiCState):
    return lambda: numpy_epic_partials(state.clouds.numpy())


register(
    Workload(
        name="epic_partials",
        title="EPiC partial clouds, 4 anchors x (patch 512, curve 512, random 128), "
        "N=1024 (B=8 quick, 32 full; {scan})",
        setup=_epic_setup,
        candidates=(
            Candidate("deepscope partial_clouds x 3 methods", _ours_epic_partials),
            Candidate(
                "scipy cKDTree + numpy walks / argsort",
                _scipy_epic_partials,
                peer="scipy",
            ),
        ),
    )
)

register(
    Workload(
        name="epic_ensemble",
        title="EPiC ensemble inference, 3 PointNets (256-D) x 4 anchors, N=1024 "
        "(B=8 quick, 32 full; {scan}), torch CPU",
        setup=_epic_setup,
        candidates=(
            Candidate("deepscope EPiC (12 members)", _ours_epic),
            Candidate(
                "same PointNets, scipy + numpy sampling",
                _scipy_epic,
                peer="scipy",
                note="the networks dominate; the difference is the sampling",
            ),
        ),
    )
)


# ----------------------------------------------------------------------------
# Method kernels on a CUDA GPU: feature kNN, conformity, the CMD fit


def torch_cmd_fit(window: Any, references: Any, chunk: int = 1 << 20):
    """:func:`numpy_cmd_fit` in torch float64 (on the tensors' device).

    Args:
        window: (N, T) parameter trajectories (torch).
        references: (M, T) reference trajectories (torch, same device).

    Returns:
        ``(modes (N,), a (N,), b (N,))`` as torch tensors.
    """
    import torch

    R = references.to(torch.float64)
    r_mean = R.mean(dim=1)
    Rc = R - r_mean[:, None]
    r_var = (Rc * Rc).sum(dim=1)
    out = []
    for lo in range(0, window.shape[0], chunk):
        W = window[lo : lo + chunk].to(torch.float64)
        w_mean = W.mean(dim=1)
        Wc = W - w_mean[:, None]
        cov = Wc @ Rc.T  # (n, M)
        w_var = (Wc * Wc).sum(dim=1)
        denom = (w_var[:, None] * r_var[None, :]).clamp_min(1e-300).sqrt()
        best = (cov / denom).abs().argmax(dim=1)
        slope = cov.gather(1, best[:, None])[:, 0] / r_var[best].clamp_min(1e-300)
        out.append((best, slope, w_mean - slope * r_mean[best]))
    return tuple(torch.cat(parts) for parts in zip(*out, strict=True))


class _GPUMethodState(NamedTuple):
    features: Any  # (N, 64) float32 CUDA tensor (digits, jittered copies)
    embeddings: Any  # (N, 512) float32 CUDA tensor
    window: Any  # (N, T) float32 CUDA tensor
    references: Any  # (M, T) float32 CUDA tensor


def _gpu_method_setup(data: Data, quick: bool) -> _GPUMethodState:
    import torch

    features = _feature_setup(data, False).features  # 14k x 64
    embeddings = _embedding_setup(data, False).embeddings  # 20k x 512
    cmd = _cmd_setup(data, quick)  # 1M (quick) or 11M parameters
    return _GPUMethodState(
        *(
            torch.from_numpy(x).cuda()
            for x in (features, embeddings, cmd.window, cmd.references)
        )
    )


def _cuda_ours_feature_knn(state: _GPUMethodState):
    from deepscope.graph import feature_knn

    return _synced(lambda: feature_knn(state.features, k=10))


def _cuda_torch_feature_knn(state: _GPUMethodState):
    import torch

    x = state.features

    def run():
        for start in range(0, len(x), 8192):
            torch.cdist(x[start : start + 8192], x).topk(11, largest=False)

    return _synced(run)


def _cuda_ours_conformity(state: _GPUMethodState):
    from deepscope.embedding import conformity

    return _synced(lambda: conformity(state.embeddings))


def _cuda_ours_exact_conformity(state: _GPUMethodState):
    from deepscope.embedding import exact_conformity

    return _synced(lambda: exact_conformity(state.embeddings))


def _cuda_torch_conformity(state: _GPUMethodState):
    return _synced(_naive_blocks(state.embeddings))


def _cuda_ours_cmd(state: _GPUMethodState):
    from deepscope.dynamics import assign_and_fit

    return _synced(
        lambda: assign_and_fit(
            state.window, state.references, time_major=False, diagnostics=False
        )
    )


def _cuda_torch_cmd(state: _GPUMethodState):
    return _synced(lambda: torch_cmd_fit(state.window, state.references))


register(
    Workload(
        name="cuda-feature_knn",
        title="cuda exact kNN graph, 64-D digits features x8 (14k), k=10",
        setup=_gpu_method_setup,
        candidates=(
            Candidate("deepscope graph.feature_knn", _cuda_ours_feature_knn),
            Candidate(
                "torch cdist + topk (float32, not exact, blocks of 8192)",
                _cuda_torch_feature_knn,
                peer="torch",
            ),
        ),
        cuda=True,
    )
)

register(
    Workload(
        name="cuda-conformity",
        title="cuda conformity, 512-D synthetic double ellipsoid, 20k",
        setup=_gpu_method_setup,
        candidates=(
            Candidate(
                "deepscope conformity (exact O(N D) identity)", _cuda_ours_conformity
            ),
            Candidate(
                "deepscope exact_conformity (tiles)", _cuda_ours_exact_conformity
            ),
            Candidate("torch naive blocks", _cuda_torch_conformity, peer="torch"),
        ),
        cuda=True,
    )
)

register(
    Workload(
        name="cuda-cmd_fit",
        title="cuda CMD assignment + affine fit, T=21, M=10 (1M quick, 11M full)",
        setup=_gpu_method_setup,
        candidates=(
            Candidate("deepscope assign_and_fit", _cuda_ours_cmd),
            Candidate("torch float64, 1M-row chunks", _cuda_torch_cmd, peer="torch"),
        ),
        cuda=True,
    )
)

# Benchmarks of the EPiC partial-cloud samplers against the reference approach.
# SPDX-License-Identifier: MIT
"""EPiC paper setting: B = 32 clouds of N = 1024 points, 4 anchors per cloud.

Each group times one sampler, ours beside a straightforward torch version of
the EPiC reference approach (a dense N x N distance matrix sorted per row, a
dense B x N x N neighbour mask for the walk, random permutations). Clouds are
1024-point random subsets of the Stanford bunny when the benchmark data is
present, otherwise Gaussian clouds. Run with

    DEEPSCOPE_BENCH_DATA=/work/data/bench .venv/bin/python -m pytest \\
        benchmarks/bench_samplers.py --benchmark-only -q

Rows named ``ours-kernel+cKDTree`` time our kernels fed by a SciPy cKDTree
kNN; rows named ``ours`` time the public API end to end and need
``deepscope.pointcloud.knn`` / ``farthest_point_sample``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from deepscope.pointcloud import partial_clouds, random_subsets
from deepscope.pointcloud._samplers import _assemble_patches, _random_walk

torch = pytest.importorskip("torch")

B, N, A = 32, 1024, 4
PATCH, CURVE, RANDOM, K = 512, 512, 128, 20
HAS_KNN = importlib.util.find_spec("deepscope.pointcloud._knn") is not None
HAS_FPS = importlib.util.find_spec("deepscope.pointcloud._fps") is not None
needs_knn = pytest.mark.skipif(
    not (HAS_KNN and HAS_FPS), reason="deepscope.pointcloud.knn / fps not merged"
)


@pytest.fixture(scope="module")
def clouds() -> np.ndarray:
    """(B, N, 3) float32 clouds, centred and scaled to the unit sphere."""
    rng = np.random.default_rng(0)
    try:
        from _data import stanford_bunny

        bunny = stanford_bunny()
        out = np.stack(
            [bunny[rng.choice(len(bunny), N, replace=False)] for _ in range(B)]
        )
    except (FileNotFoundError, ImportError):
        out = rng.standard_normal((B, N, 3))
    out = out - out.mean(axis=1, keepdims=True)
    out /= np.linalg.norm(out, axis=2).max(axis=1)[:, None, None]
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def anchors(clouds) -> np.ndarray:
    """FPS anchors from index 0, as in EPiC (NumPy, computed once)."""
    out = np.zeros((B, A), dtype=np.int64)
    for b in range(B):
        d = np.full(N, np.inf)
        for a in range(A):
            d = np.minimum(d, ((clouds[b] - clouds[b, out[b, a]]) ** 2).sum(-1))
            if a + 1 < A:
                out[b, a + 1] = int(np.argmax(d))
    return out


# ---------------------------------------------------------------------------
# The reference approach in torch (CPU).


def dense_sorted_neighbours(x: torch.Tensor) -> torch.Tensor:
    """(B, N, N) indices of every row sorted by distance, self first."""
    inner = x @ x.transpose(1, 2)
    sq = (x * x).sum(-1)
    neg = 2 * inner - sq[:, :, None] - sq[:, None, :]
    return neg.argsort(dim=-1, descending=True)


def reference_patches(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    order = dense_sorted_neighbours(x)
    rows = order[torch.arange(B)[:, None], anchors]  # (B, A, N)
    return rows[..., :PATCH]


def reference_curves(x: torch.Tensor, anchors: torch.Tensor, gen) -> torch.Tensor:
    inner = x @ x.transpose(1, 2)
    sq = (x * x).sum(-1)
    neg = 2 * inner - sq[:, :, None] - sq[:, None, :]
    knn = neg.topk(K, dim=-1).indices[..., 1:]  # self removed
    mask = torch.zeros(B, N, N, dtype=torch.int64)
    mask.scatter_(2, knn, 1)
    batch = torch.arange(B)
    curves = []
    for a in range(A):
        current = anchors[:, a]
        curve = [current]
        for _ in range(CURVE - 1):
            # Uniform among the mask's ones: the largest random key wins.
            keys = torch.rand(B, N, generator=gen) * mask[batch, current]
            current = keys.argmax(dim=1)
            curve.append(current)
        curves.append(torch.stack(curve, 1))
    return torch.stack(curves, 1)


def reference_random_shared(gen) -> torch.Tensor:
    """EPiC: one permutation for the whole batch, per anchor."""
    rows = [torch.randperm(N, generator=gen)[:RANDOM] for _ in range(A)]
    return torch.stack(rows).expand(B, A, RANDOM)


def reference_random_per_sample(gen) -> torch.Tensor:
    keys = torch.rand(B, A, N, generator=gen)
    return keys.argsort(dim=-1)[..., :RANDOM]


# ---------------------------------------------------------------------------
# Patch


def test_patch_reference_dense_sort(benchmark, clouds, anchors):
    benchmark.group = "patch B=32 N=1024 A=4 S=512"
    x, a = torch.from_numpy(clouds), torch.from_numpy(anchors)
    out = benchmark(reference_patches, x, a)
    assert out.shape == (B, A, PATCH)


def test_patch_ours_kernel_ckdtree(benchmark, clouds, anchors):
    from scipy.spatial import cKDTree

    benchmark.group = "patch B=32 N=1024 A=4 S=512"
    lengths = np.full(B, N)

    def run():
        rows = np.empty((B, A, PATCH), dtype=np.int64)
        for b in range(B):
            rows[b] = cKDTree(clouds[b]).query(clouds[b, anchors[b]], k=PATCH)[1]
        return _assemble_patches(rows, anchors, PATCH, lengths=lengths)

    out, counts = benchmark(run)
    assert (counts == PATCH).all()


@needs_knn
def test_patch_ours(benchmark, clouds, anchors):
    from deepscope.pointcloud import knn_patches

    benchmark.group = "patch B=32 N=1024 A=4 S=512"
    result = benchmark(knn_patches, clouds, anchors, PATCH)
    assert (result.counts == PATCH).all()


# ---------------------------------------------------------------------------
# Curve


def test_curve_reference_dense_mask_walk(benchmark, clouds, anchors):
    benchmark.group = "curve B=32 N=1024 A=4 L=512 k=20"
    x, a = torch.from_numpy(clouds), torch.from_numpy(anchors)
    gen = torch.Generator().manual_seed(0)
    out = benchmark.pedantic(reference_curves, (x, a, gen), rounds=3, warmup_rounds=1)
    assert out.shape == (B, A, CURVE)


@pytest.fixture(scope="module")
def knn_table(clouds) -> np.ndarray:
    from scipy.spatial import cKDTree

    return np.stack([cKDTree(c).query(c, k=K + 1)[1][:, 1:] for c in clouds])


def test_curve_ours_kernel_ckdtree(benchmark, clouds, anchors):
    from scipy.spatial import cKDTree

    benchmark.group = "curve B=32 N=1024 A=4 L=512 k=20"
    lengths = np.full(B, N)

    def run():
        table = np.stack([cKDTree(c).query(c, k=K + 1)[1][:, 1:] for c in clouds])
        return _random_walk(
            table, anchors, CURVE, lengths=lengths, allow_revisits=True, seed=0
        )

    out, counts = benchmark(run)
    assert (counts == CURVE).all()


@pytest.mark.parametrize("allow_revisits", [True, False])
def test_curve_ours_walk_kernel_only(benchmark, knn_table, anchors, allow_revisits):
    benchmark.group = "curve walk only (table given)"
    lengths = np.full(B, N)
    out, counts = benchmark(
        _random_walk,
        knn_table,
        anchors,
        CURVE,
        lengths=lengths,
        allow_revisits=allow_revisits,
        seed=0,
    )
    assert out.shape == (B, A, CURVE)


@needs_knn
def test_curve_ours(benchmark, clouds, anchors):
    from deepscope.pointcloud import random_walk_curves

    benchmark.group = "curve B=32 N=1024 A=4 L=512 k=20"
    result = benchmark(random_walk_curves, clouds, anchors, CURVE, k=K)
    assert (result.counts == CURVE).all()


# ---------------------------------------------------------------------------
# Random


def test_random_reference_shared_randperm(benchmark):
    benchmark.group = "random B=32 N=1024 A=4 S=128"
    gen = torch.Generator().manual_seed(0)
    out = benchmark(reference_random_shared, gen)
    assert out.shape == (B, A, RANDOM)


def test_random_reference_per_sample_argsort(benchmark):
    benchmark.group = "random B=32 N=1024 A=4 S=128"
    gen = torch.Generator().manual_seed(0)
    out = benchmark(reference_random_per_sample, gen)
    assert out.shape == (B, A, RANDOM)


def test_random_ours(benchmark, clouds):
    benchmark.group = "random B=32 N=1024 A=4 S=128"
    result = benchmark(random_subsets, clouds, RANDOM, A, seed=0)
    assert (result.counts == RANDOM).all()


# ---------------------------------------------------------------------------
# All three, as an EPiC ensemble evaluates them (FPS anchors included)


@needs_knn
def test_partial_clouds_all_methods_ours(benchmark, clouds):
    benchmark.group = "EPiC all three methods (FPS anchors)"

    def run():
        return [partial_clouds(clouds, m, seed=0) for m in ("patch", "curve", "random")]

    results = benchmark(run)
    assert [r.indices.shape[-1] for r in results] == [PATCH, CURVE, RANDOM]

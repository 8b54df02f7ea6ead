# Tests for farthest point sampling against the float64 brute-force reference.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepscope.pointcloud import FPSResult, farthest_point_sample

from tests.conftest import HAS_TORCH, to_numpy
from tests.reference import farthest_point_sample_reference


def expected_batch(points, n_samples, lengths=None, starts=None):
    """Reference (indices, distances, counts) padded like the kernel output."""
    points = np.asarray(points, dtype=np.float64)
    B, N, _ = points.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    n_samples = np.broadcast_to(np.asarray(n_samples), (B,))
    starts = np.zeros(B, np.int64) if starts is None else np.asarray(starts)
    K = int(n_samples.max()) if B else 0
    indices = np.full((B, K), -1, np.int64)
    distances = np.zeros((B, K))
    counts = np.zeros(B, np.int64)
    for b in range(B):
        m = min(int(n_samples[b]), int(lengths[b]))
        idx, dist = farthest_point_sample_reference(
            points[b, : lengths[b]], m, int(starts[b])
        )
        indices[b, : len(idx)] = idx
        distances[b, : len(idx)] = dist
        counts[b] = len(idx)
    return indices, distances, counts


def check_result(result, points, n_samples, lengths=None, starts=None):
    indices, distances, counts = expected_batch(points, n_samples, lengths, starts)
    got_dist = to_numpy(result.distances).astype(np.float64)
    np.testing.assert_array_equal(to_numpy(result.indices), indices)
    np.testing.assert_array_equal(to_numpy(result.counts), counts)
    # Distances are float64 internally; float32 outputs are rounded once.
    exp = distances.astype(to_numpy(result.distances).dtype).astype(np.float64)
    np.testing.assert_array_equal(got_dist, exp)


@pytest.mark.parametrize(
    ("B", "N", "D", "K"),
    [
        (1, 10, 3, 4),
        (2, 300, 3, 100),
        (3, 1500, 3, 700),
        (2, 2000, 2, 2000),
        (2, 1200, 5, 300),
        (1, 900, 1, 900),
        (1, 700, 9, 200),
        (1, 5000, 3, 3000),
    ],
)
def test_random_clouds_match_reference(B, N, D, K, rng):
    points = rng.standard_normal((B, N, D))
    check_result(farthest_point_sample(points, K), points, K)


def test_batched_lengths_counts_and_starts(backend, rng):
    points = rng.uniform(-1, 1, (4, 600, 3))
    lengths = np.array([600, 350, 0, 1])
    n_samples = np.array([200, 350, 0, 1])
    starts = np.array([17, 349, 0, 0])
    result = farthest_point_sample(
        backend.asarray(points),
        backend.asarray(n_samples),
        lengths=backend.asarray(lengths),
        start_index=starts,
    )
    assert backend.is_native(result.indices)
    assert isinstance(result, FPSResult)
    check_result(result, points, n_samples, lengths, starts)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_dtypes(backend, dtype, rng):
    points64 = rng.standard_normal((2, 400, 3))
    if dtype == "bfloat16":
        if backend.framework != "torch":
            pytest.skip("bfloat16 needs torch")
        import torch

        x = torch.from_numpy(points64).to(torch.bfloat16).to(backend.device)
        upcast = x.float().cpu().numpy().astype(np.float64)
    else:
        x = backend.asarray(points64.astype(dtype))
        upcast = points64.astype(dtype).astype(np.float32).astype(np.float64)
        if dtype == "float64":
            upcast = points64
    result = farthest_point_sample(x, 150)
    expected_dtype = "float64" if dtype == "float64" else "float32"
    assert str(result.distances.dtype).endswith(expected_dtype)
    assert str(result.indices.dtype).endswith("int64")
    check_result(result, upcast, 150)


@pytest.mark.parametrize("n", [0, 1, 2, 9, 10, 11])
def test_small_clouds_around_k(n, rng):
    K = 10
    points = rng.standard_normal((n, 3))
    if n < K:
        with pytest.raises(ValueError, match="n_samples"):
            farthest_point_sample(points, K)
    result = farthest_point_sample(points, K, allow_fewer=True)
    assert result.indices.shape == (K,)
    assert result.counts.shape == ()
    check_result(
        FPSResult(result.indices[None], result.distances[None], result.counts[None]),
        points[None],
        K,
        lengths=[n],
    )
    assert int(result.counts) == min(n, K)


def test_skewed_clouds_build_deep_trees(rng):
    # Exponentially spaced and heavily clustered points force unbalanced
    # splits; the 4-D and 8-D cases run the tree with other fixed widths.
    line = np.ldexp(1.0, -np.arange(900))[:, None] * np.array([1.0, 0.5, 0.25])
    check_result(_batched(farthest_point_sample(line, 400)), line[None], 400)
    clusters = rng.standard_normal((20, 4)) * 100
    blobs = clusters[rng.integers(0, 20, 4000)] + rng.standard_normal((4000, 4))
    blobs[::3] = blobs[0]  # a large block of duplicates
    check_result(_batched(farthest_point_sample(blobs, 1500)), blobs[None], 1500)
    wide = rng.standard_normal((1, 2000, 8))
    check_result(farthest_point_sample(wide, 500), wide, 500)


def test_all_identical_points_give_one_sample():
    points = np.full((500, 3), 2.5)
    result = farthest_point_sample(points, 10)
    assert int(result.counts) == 1
    np.testing.assert_array_equal(result.indices, [0] + [-1] * 9)
    np.testing.assert_array_equal(result.distances, np.zeros(10))


@pytest.mark.parametrize("n_distinct", [3, 200])
def test_many_duplicates_never_repeat(n_distinct, rng):
    base = rng.standard_normal((n_distinct, 3))
    points = base[rng.integers(0, n_distinct, 3000)]
    result = farthest_point_sample(points, 500)
    n_unique = len(np.unique(points, axis=0))
    assert int(result.counts) == min(500, n_unique)
    valid = result.indices[: int(result.counts)]
    assert len(np.unique(points[valid], axis=0)) == len(valid)
    check_result(
        FPSResult(result.indices[None], result.distances[None], result.counts[None]),
        points[None],
        500,
    )


def test_cube_corner_ties_go_to_lowest_index():
    grid = np.stack(np.meshgrid(*[np.arange(-3.0, 4.0)] * 3, indexing="ij"), -1)
    points = grid.reshape(-1, 3)
    for start in (0, 171, 342):
        result = farthest_point_sample(points, 343, start_index=start)
        check_result(_batched(result), points[None], 343, None, [start])
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    result = farthest_point_sample(corners.astype(np.float64), 8)
    np.testing.assert_array_equal(result.indices, [0, 7, 1, 2, 3, 4, 5, 6])


def _batched(result):
    return FPSResult(result.indices[None], result.distances[None], result.counts[None])


def test_points_at_origin_are_sampled():
    points = np.zeros((300, 3))
    points[1:] = np.random.default_rng(1).standard_normal((299, 3))
    result = farthest_point_sample(points, 300)
    assert 0 in result.indices
    assert int(result.counts) == 300
    assert sorted(result.indices.tolist()) == list(range(300))


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e5])
def test_scales(scale, rng):
    points = rng.standard_normal((2, 800, 3)) * scale
    check_result(farthest_point_sample(points, 400), points, 400)
    check_result(
        farthest_point_sample(points.astype(np.float32), 400),
        points.astype(np.float32),
        400,
    )


def test_padded_batch_with_empty_member_ignores_padding(rng):
    points = rng.standard_normal((3, 500, 3))
    points[0, 100:] = 1e9  # padding far away must never be selected
    lengths = [100, 0, 500]
    result = farthest_point_sample(points, [50, 0, 300], lengths=lengths)
    check_result(result, points, [50, 0, 300], lengths)
    assert result.indices.shape == (3, 300)
    np.testing.assert_array_equal(result.counts, [50, 0, 300])


def test_channels_first_and_non_contiguous(backend, rng):
    points = rng.standard_normal((2, 700, 3))
    cf = backend.asarray(np.ascontiguousarray(points.transpose(0, 2, 1)))
    check_result(farthest_point_sample(cf, 100, channels_first=True), points, 100)
    wide = backend.asarray(rng.standard_normal((2, 700, 6)))
    sliced = wide[:, :, ::2]
    check_result(farthest_point_sample(sliced, 100), to_numpy(sliced), 100)
    single = farthest_point_sample(cf[0], 50, channels_first=True)
    assert tuple(single.indices.shape) == (50,)


def test_read_only_and_input_unchanged(rng):
    points = rng.standard_normal((1000, 3))
    points.setflags(write=False)
    before = points.copy()
    result = farthest_point_sample(points, 100)
    np.testing.assert_array_equal(points, before)
    check_result(_batched(result), points[None], 100)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_requires_grad(rng):
    import torch

    x = torch.tensor(rng.standard_normal((2, 300, 3)), requires_grad=True)
    result = farthest_point_sample(x, 50)
    assert not result.indices.requires_grad
    check_result(result, x.detach().numpy(), 50)


def test_seeded_starts_reproducible(rng):
    points = rng.standard_normal((3, 400, 3))
    lengths = np.array([400, 10, 0])
    a = farthest_point_sample(points, [20, 5, 0], lengths=lengths, seed=7)
    b = farthest_point_sample(points, [20, 5, 0], lengths=lengths, seed=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    starts = np.random.default_rng(7).integers(0, np.maximum(lengths, 1))
    np.testing.assert_array_equal(a.indices[:2, 0], starts[:2])
    check_result(a, points, [20, 5, 0], lengths, starts)
    c = farthest_point_sample(points, [20, 5, 0], lengths=lengths, seed=8)
    assert not np.array_equal(a.indices, c.indices)


def test_zero_samples_and_empty_batch():
    result = farthest_point_sample(np.zeros((2, 0, 3)), 0)
    assert result.indices.shape == (2, 0)
    np.testing.assert_array_equal(result.counts, [0, 0])
    result = farthest_point_sample(np.zeros((0, 5, 3)), 4)
    assert result.indices.shape == (0, 4)
    result = farthest_point_sample(np.ones((5, 3)), 0)
    assert result.indices.shape == (0,)
    assert int(result.counts) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"points": np.array([[0.0, np.nan, 0.0]] * 3), "n_samples": 1}, "points"),
        ({"points": np.array([[0.0, np.inf, 0.0]] * 3), "n_samples": 1}, "points"),
        ({"points": np.zeros((4, 3)), "n_samples": -1}, "n_samples"),
        ({"points": np.zeros((4, 3)), "n_samples": 5}, "n_samples"),
        ({"points": np.zeros((4, 3)), "n_samples": 2.0}, "n_samples"),
        ({"points": np.zeros((0, 3)), "n_samples": 1}, "n_samples"),
        ({"points": np.zeros((4, 0)), "n_samples": 1}, "points"),
        ({"points": np.zeros((4,)), "n_samples": 1}, "points"),
        ({"points": np.zeros((4, 3), np.int32), "n_samples": 1}, "points"),
        ({"points": np.zeros((2, 4, 3)), "n_samples": [1, 2, 3]}, "n_samples"),
        ({"points": np.zeros((2, 4, 3)), "n_samples": 1, "lengths": [4]}, "lengths"),
        ({"points": np.zeros((2, 4, 3)), "n_samples": 1, "lengths": [5, 4]}, "lengths"),
        (
            {"points": np.zeros((2, 4, 3)), "n_samples": 1, "lengths": [-1, 4]},
            "lengths",
        ),
        ({"points": np.zeros((4, 3)), "n_samples": 1, "start_index": 4}, "start_index"),
        (
            {"points": np.zeros((4, 3)), "n_samples": 1, "start_index": -1},
            "start_index",
        ),
        (
            {"points": np.zeros((4, 3)), "n_samples": 1, "start_index": 0, "seed": 1},
            "start_index",
        ),
        (
            {"points": np.zeros((2, 4, 3)), "n_samples": 1, "start_index": [0, 9]},
            "start_index",
        ),
        # Checked even when no cloud is short (it used to pass silently then).
        (
            {"points": np.zeros((4, 3)), "n_samples": 1, "allow_fewer": 1},
            "allow_fewer: expected True or False, got 1",
        ),
        (
            {"points": np.zeros((4, 3)), "n_samples": 1, "allow_fewer": "no"},
            "allow_fewer: expected True or False",
        ),
    ],
)
def test_validation_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        farthest_point_sample(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 400),
    d=st.integers(1, 4),
    k=st.integers(0, 400),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(n, d, k, levels, seed):
    # Few coordinate levels give many ties and duplicates.
    gen = np.random.default_rng(seed)
    points = gen.integers(0, levels, (n, d)).astype(np.float64)
    start = int(gen.integers(0, n))
    result = farthest_point_sample(
        points, min(k, n), start_index=start, allow_fewer=True
    )
    check_result(_batched(result), points[None], min(k, n), None, [start])


def test_matches_fpsample_vanilla(rng):
    fpsample = pytest.importorskip("fpsample")
    # Points on a coarse float32 lattice: float32 and float64 distances agree
    # exactly, and jitter of distinct sizes removes exact ties.
    points = (rng.integers(-200, 200, (3000, 3)) / 8).astype(np.float32)
    points += (np.arange(3000) % 7 / 1024).astype(np.float32)[:, None]
    ours = farthest_point_sample(points, 500).indices
    theirs = fpsample.fps_sampling(points, 500, start_idx=0)
    np.testing.assert_array_equal(ours, np.asarray(theirs, np.int64))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_matches_cpu_exactly(dtype, rng):
    import torch

    cloud = rng.standard_normal((3, 20000, 3)).astype(dtype)
    grid = np.stack(np.meshgrid(*[np.arange(-4.0, 5.0)] * 3), -1).reshape(-1, 3)
    cloud[1, : len(grid)] = grid  # ties
    cloud[2, 5000:10000] = cloud[2, :5000]  # duplicates
    lengths = np.array([20000, 729, 10000])
    n_samples = np.array([5000, 729, 10000])
    for D in (2, 3):
        pts = np.ascontiguousarray(cloud[..., :D])
        cpu = farthest_point_sample(pts, n_samples, lengths=lengths, seed=3)
        gpu = farthest_point_sample(
            torch.from_numpy(pts).cuda(), n_samples, lengths=lengths, seed=3
        )
        for a, b in zip(cpu, gpu, strict=True):
            np.testing.assert_array_equal(a, b.cpu().numpy())
    # A single wide cloud runs on the multi-block (cooperative) kernel.
    big = rng.standard_normal((1, 70000, 3)).astype(dtype)
    big[0, : len(grid)] = grid
    big[0, 40000:50000] = big[0, 10000:20000]
    for start in (0, 69999):
        cpu = farthest_point_sample(big, 20000, start_index=start)
        gpu = farthest_point_sample(
            torch.from_numpy(big).cuda(), 20000, start_index=start
        )
        for a, b in zip(cpu, gpu, strict=True):
            np.testing.assert_array_equal(a, b.cpu().numpy())
    dup = np.repeat(rng.standard_normal((50, 3)), 800, axis=0).astype(dtype)
    gpu = farthest_point_sample(torch.from_numpy(dup).cuda(), 100)
    assert int(gpu.counts) == 50
    np.testing.assert_array_equal(
        farthest_point_sample(dup, 100).indices, gpu.indices.cpu().numpy()
    )
    wide = rng.standard_normal((2, 3000, 11)).astype(dtype)
    cpu = farthest_point_sample(wide, 1000, lengths=[3000, 0], allow_fewer=True)
    gpu = farthest_point_sample(
        torch.from_numpy(wide).cuda(), 1000, lengths=[3000, 0], allow_fewer=True
    )
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_array_equal(a, b.cpu().numpy())

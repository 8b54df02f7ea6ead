# Tests for deepscope.pointcloud.knn against a float64 brute-force reference.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope.pointcloud import KNNResult, knn

from tests.conftest import HAS_GPU, HAS_TORCH, to_numpy
from tests.reference import knn_reference

FLOAT_DTYPES = ["float32", "float64"]


def assert_matches(result, expected, out_dtype="float64", squared=True):
    """Exact indices and counts; distances equal to the float64 reference
    rounded once to the output dtype."""
    idx, dist, cnt = (to_numpy(a) for a in result)
    e_idx, e_dist, e_cnt = expected
    np.testing.assert_array_equal(cnt, e_cnt)
    np.testing.assert_array_equal(idx, e_idx)
    if not squared:
        e_dist = np.sqrt(e_dist)
    assert dist.dtype == np.dtype(out_dtype)
    np.testing.assert_array_equal(dist, e_dist.astype(out_dtype))


def random_cloud(rng, shape, dtype="float64", scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("D", [2, 3, 5])
@pytest.mark.parametrize("mode", ["self", "self_exclude", "cross"])
def test_matches_reference_batched_with_lengths(backend, rng, dtype, D, mode):
    B, M, N, k = 3, 60, 90, 7
    q = random_cloud(rng, (B, M, D), dtype)
    r = random_cloud(rng, (B, N, D), dtype)
    ql = np.array([M, 0, 33])
    rl = np.array([N, 5, 64])
    if mode == "cross":
        got = knn(
            backend.asarray(q),
            backend.asarray(r),
            k=k,
            query_lengths=backend.asarray(ql),
            reference_lengths=backend.asarray(rl),
        )
        exp = knn_reference(q, r, k=k, query_lengths=ql, reference_lengths=rl)
    else:
        ex = mode == "self_exclude"
        got = knn(
            backend.asarray(q), k=k, query_lengths=backend.asarray(ql), exclude_self=ex
        )
        exp = knn_reference(q, k=k, query_lengths=ql, exclude_self=ex)
    assert isinstance(got, KNNResult)
    assert all(backend.is_native(a) for a in got)
    assert_matches(got, exp, dtype)


@pytest.mark.parametrize("D", [1, 3, 4, 9])
@pytest.mark.parametrize("k", [1, 16, 70, 200])
def test_tree_sized_clouds(rng, D, k):
    # Large enough for many kd-tree levels; k > 64 uses the heap list.
    P = random_cloud(rng, (1500, D))
    Q = random_cloud(rng, (300, D))
    assert_matches(knn(P, k=k), knn_reference(P, k=k))
    assert_matches(knn(Q, P, k=k), knn_reference(Q, P, k=k))
    assert_matches(
        knn(P, k=k, exclude_self=True), knn_reference(P, k=k, exclude_self=True)
    )


def test_clustered_real_like_and_squared_false(rng):
    centres = rng.uniform(-50, 50, (20, 3))
    P = centres[rng.integers(0, 20, 3000)] + rng.normal(0, 0.3, (3000, 3))
    got = knn(P.astype("float32"), k=9, squared=False)
    exp = knn_reference(P.astype("float32"), k=9)
    assert_matches(got, exp, "float32", squared=False)


@pytest.mark.parametrize("N", [1, 2, 6, 7, 8])
def test_small_clouds_pad_with_minus_one(backend, rng, N):
    k = 7
    q = random_cloud(rng, (2, 5, 3))
    r = random_cloud(rng, (2, N, 3))
    rl = np.array([N, max(N - 1, 0)])
    if k > N:
        with pytest.raises(ValueError, match="k: expected 1 <= k <="):
            knn(backend.asarray(q), backend.asarray(r), k=k)
        k = N
    got = knn(
        backend.asarray(q),
        backend.asarray(r),
        k=k,
        reference_lengths=backend.asarray(rl),
    )
    exp = knn_reference(q, r, k=k, reference_lengths=rl)
    assert_matches(got, exp)
    # A cloud shorter than k: trailing -1 and +inf, counts tell.
    got = knn(backend.asarray(r), k=N, exclude_self=True)
    exp = knn_reference(r, k=N, exclude_self=True)
    assert_matches(got, exp)
    idx, dist, cnt = (to_numpy(a) for a in got)
    assert (cnt == N - 1).all()
    assert (idx[..., N - 1] == -1).all()
    assert np.isinf(dist[..., N - 1]).all()


@pytest.mark.parametrize("n", [5, 40, 700])
def test_all_identical_points_tie_to_lowest_index(backend, n):
    P = np.full((n, 3), 1.25)
    got = knn(backend.asarray(P), k=5)
    idx = to_numpy(got.indices)
    np.testing.assert_array_equal(idx, np.tile(np.arange(5), (n, 1)))
    np.testing.assert_array_equal(to_numpy(got.distances), 0.0)
    # exclude_self removes only the same index, not the duplicates.
    got = knn(backend.asarray(P), k=5, exclude_self=True)
    assert_matches(got, knn_reference(P, k=5, exclude_self=True))
    assert to_numpy(got.indices)[0, 0] == 1
    assert to_numpy(got.indices)[3, 0] == 0


def test_many_duplicates_and_origin(backend, rng):
    base = rng.standard_normal((30, 3))
    base[0] = 0.0
    P = base[rng.integers(0, 30, 800)]
    P[::7] = 0.0
    for kwargs in ({}, {"exclude_self": True}):
        got = knn(backend.asarray(P), k=12, **kwargs)
        assert_matches(got, knn_reference(P, k=12, **kwargs))


def test_cube_corner_and_grid_ties(backend):
    corners = np.array(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float
    )
    centre = np.zeros((1, 3))
    got = knn(backend.asarray(centre), backend.asarray(corners), k=8)
    np.testing.assert_array_equal(to_numpy(got.indices)[0], np.arange(8))
    g = np.arange(12.0)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    perm = np.random.default_rng(3).permutation(len(grid))
    grid = grid[perm]
    for k in (7, 27, 100):
        assert_matches(knn(backend.asarray(grid), k=k), knn_reference(grid, k=k))


@pytest.mark.parametrize("scale", [1e-6, 1e5])
def test_extreme_scales(rng, scale):
    P = random_cloud(rng, (600, 3), scale=scale) + 3.0 * scale
    for dtype in FLOAT_DTYPES:
        X = P.astype(dtype)
        assert_matches(knn(X, k=10), knn_reference(X, k=10), dtype)


def test_unbatched_shapes(backend, rng):
    q = random_cloud(rng, (20, 3))
    r = random_cloud(rng, (30, 3))
    got = knn(backend.asarray(q), backend.asarray(r), k=4)
    assert tuple(got.indices.shape) == (20, 4)
    assert tuple(got.counts.shape) == (20,)
    assert_matches(got, knn_reference(q, r, k=4))


def test_channels_first_and_non_contiguous(backend, rng):
    q = random_cloud(rng, (2, 3, 40))
    r = random_cloud(rng, (2, 3, 50))
    got = knn(backend.asarray(q), backend.asarray(r), k=5, channels_first=True)
    exp = knn_reference(q.swapaxes(1, 2), r.swapaxes(1, 2), k=5)
    assert_matches(got, exp)
    big = random_cloud(rng, (80, 6))
    view = big[::2, ::2]  # (40, 3), strided
    assert_matches(knn(view, k=3), knn_reference(np.ascontiguousarray(view), k=3))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_inputs_give_float32(dtype, rng):
    torch = pytest.importorskip("torch")
    P = torch.from_numpy(random_cloud(rng, (100, 3))).to(getattr(torch, dtype))
    got = knn(P, k=6)
    assert got.distances.dtype == torch.float32
    exp = knn_reference(P.float().numpy(), k=6)
    assert_matches(got, exp, "float32")


def test_read_only_requires_grad_and_input_unchanged(rng):
    P = random_cloud(rng, (64, 3))
    P.setflags(write=False)
    before = P.copy()
    got = knn(P, k=3)
    np.testing.assert_array_equal(P, before)
    assert_matches(got, knn_reference(P, k=3))
    if HAS_TORCH:
        import torch

        t = torch.from_numpy(before.copy()).requires_grad_(True)
        got = knn(t, k=3)
        assert not got.distances.requires_grad
        assert_matches(got, knn_reference(before, k=3))
        np.testing.assert_array_equal(t.detach().numpy(), before)


def test_empty_query_and_batch():
    got = knn(np.zeros((0, 3)), np.ones((4, 3)), k=2)
    assert got.indices.shape == (0, 2)
    got = knn(np.zeros((0, 5, 3)), k=2)
    assert got.indices.shape == (0, 5, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q, r: knn(q, r, k=0), "k: expected 1 <= k <= 10"),
        (lambda q, r: knn(q, r, k=11), "k: expected 1 <= k <= 10"),
        (lambda q, r: knn(q, r, k=2.0), "k: expected an int"),
        (lambda q, r: knn(q, r, k=2, exclude_self=True), "exclude_self"),
        (lambda q, r: knn(q, r[:, :, :2], k=2), "reference: expected D = 3"),
        (lambda q, r: knn(q, r[:1], k=2), "reference: expected batch size 2"),
        (lambda q, r: knn(q, r[0], k=2), "reference: expected 3 dimensions"),
        (lambda q, r: knn(q, r.astype("float32"), k=2), "reference: expected dtype"),
        (lambda q, r: knn(q.astype(int), r, k=2), "query: expected a floating"),
        (lambda q, r: knn(q[0, 0], r, k=2), "query: expected 2 or 3 dimensions"),
        (
            lambda q, r: knn(q, r, k=2, reference_lengths=[3, 11]),
            r"reference_lengths: expected 0 <= reference_lengths\[b\] <= 10",
        ),
        (
            lambda q, r: knn(q, r, k=2, query_lengths=[-1, 1]),
            r"query_lengths: expected 0 <= query_lengths\[b\] <= 4",
        ),
        (
            lambda q, r: knn(q, r, k=2, query_lengths=[1, 1, 1]),
            "query_lengths: expected shape",
        ),
        (
            lambda q, r: knn(q, r, k=2, query_lengths=[1.0, 1.0]),
            "query_lengths: expected an integer",
        ),
        (
            lambda q, r: knn(q[0], r[0], k=2, query_lengths=[1, 1]),
            r"query_lengths: expected shape \(1,\)",
        ),
        (lambda q, r: knn(q, k=2, reference_lengths=[1, 1]), "reference_lengths"),
        (lambda q, r: knn(np.zeros((2, 4, 0)), k=1), "query: expected at least"),
        (lambda q, r: knn(q, np.zeros((2, 0, 3)), k=1), "k: expected 1 <= k <= 0"),
    ],
)
def test_validation_errors_name_the_argument(call, match):
    q = np.zeros((2, 4, 3))
    r = np.ones((2, 10, 3))
    with pytest.raises(ValueError, match=match):
        call(q, r)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_only_in_valid_points(bad):
    q = np.zeros((2, 4, 3))
    r = np.ones((2, 10, 3))
    r2 = r.copy()
    r2[1, 3, 0] = bad
    with pytest.raises(ValueError, match="reference: expected finite"):
        knn(q, r2, k=2)
    q2 = q.copy()
    q2[0, 2, 1] = bad
    with pytest.raises(ValueError, match="query: expected finite"):
        knn(q2, r, k=2)
    with pytest.raises(ValueError, match="query: expected finite"):
        knn(q2, k=2)
    # Padding past the lengths may hold anything.
    got = knn(q, r2, k=2, reference_lengths=[10, 3])
    assert to_numpy(got.counts).min() == 2
    got = knn(q2, k=2, query_lengths=[2, 4])
    assert (to_numpy(got.indices)[0, 2:] == -1).all()


def test_framework_and_device_mismatch():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="reference: expected a torch array"):
        knn(torch.zeros(4, 3), np.zeros((4, 3)), k=1)


def test_neighbour_sets_match_scipy_on_real_scan():
    spatial = pytest.importorskip("scipy.spatial")
    try:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
        from _data import stanford_bunny

        P = stanford_bunny()[::5]
    except (FileNotFoundError, ImportError):
        pytest.skip("real scans not available (run benchmarks/fetch_data.sh)")
    k = 17
    got = knn(P, k=k)
    d, i = spatial.cKDTree(P).query(P, k=k + 1)
    # Rows whose k-th and (k+1)-th distances tie have no unique set.
    unique = d[:, k - 1] < d[:, k]
    assert unique.mean() > 0.9
    ours = np.sort(got.indices[unique], axis=1)
    theirs = np.sort(i[unique, :k], axis=1)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(got.distances, d[:, :k] ** 2, rtol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="no GPU")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("k", [1, 8, 17, 40])
def test_cuda_equals_cpu_exactly(rng, dtype, k):
    import torch

    g = np.arange(8.0)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    P = np.concatenate([random_cloud(rng, (2000, 3), dtype), grid.astype(dtype)])
    P = np.stack([P, P[::-1].copy()])
    ql = np.array([len(P[0]), 777])
    for D in (3, 5):
        X = np.concatenate([P] * 2, axis=-1)[..., :D].copy()
        cpu = knn(X, k=k, query_lengths=ql, exclude_self=True)
        gpu = knn(
            torch.from_numpy(X).cuda(),
            k=k,
            query_lengths=torch.from_numpy(ql).cuda(),
            exclude_self=True,
        )
        for a, b in zip(cpu, gpu, strict=True):
            np.testing.assert_array_equal(a, b.cpu().numpy())


def test_host_lengths_with_any_framework(backend, rng):
    q = random_cloud(rng, (2, 30, 3))
    got = knn(backend.asarray(q), k=4, query_lengths=[30, 9])
    assert all(backend.is_native(a) for a in got)
    assert_matches(got, knn_reference(q, k=4, query_lengths=[30, 9]))

# Tests for deepscope.pointcloud.ball_query against a float64 brute force.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope.pointcloud import BallQueryResult, ball_query

from tests.conftest import HAS_GPU, to_numpy
from tests.reference import ball_query_reference
from tests.test_knn import assert_matches, random_cloud


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("D", [2, 3, 5])
@pytest.mark.parametrize("mode", ["self", "self_exclude", "cross"])
def test_matches_reference_batched_with_lengths(backend, rng, dtype, D, mode):
    B, M, N, K = 3, 50, 80, 6
    radius = 0.6 * np.sqrt(D)
    q = random_cloud(rng, (B, M, D), dtype)
    r = random_cloud(rng, (B, N, D), dtype)
    ql = np.array([M, 0, 21])
    rl = np.array([N, 3, 45])
    if mode == "cross":
        got = ball_query(
            backend.asarray(q),
            backend.asarray(r),
            radius=radius,
            max_neighbors=K,
            query_lengths=backend.asarray(ql),
            reference_lengths=backend.asarray(rl),
        )
        exp = ball_query_reference(
            q,
            r,
            radius=radius,
            max_neighbors=K,
            query_lengths=ql,
            reference_lengths=rl,
        )
    else:
        ex = mode == "self_exclude"
        got = ball_query(
            backend.asarray(q),
            radius=radius,
            max_neighbors=K,
            query_lengths=backend.asarray(ql),
            exclude_self=ex,
        )
        exp = ball_query_reference(
            q, radius=radius, max_neighbors=K, query_lengths=ql, exclude_self=ex
        )
    assert isinstance(got, BallQueryResult)
    assert all(backend.is_native(a) for a in got)
    assert_matches(got, exp, dtype)
    counts = to_numpy(got.counts)
    # Both regimes exercised: empty balls and full ones.
    assert counts.min() == 0
    assert counts.max() == K


@pytest.mark.parametrize("K", [1, 10, 100, 3000])
def test_tree_sized_clouds(rng, K):
    P = random_cloud(rng, (2000, 3))
    Q = random_cloud(rng, (200, 3))
    for radius in (0.0, 0.3, 1.0, 10.0):
        assert_matches(
            ball_query(P, radius=radius, max_neighbors=K),
            ball_query_reference(P, radius=radius, max_neighbors=K),
        )
        assert_matches(
            ball_query(Q, P, radius=radius, max_neighbors=K, squared=False),
            ball_query_reference(Q, P, radius=radius, max_neighbors=K),
            squared=False,
        )


def test_boundary_is_inclusive(backend):
    g = np.arange(10.0)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    centre = np.array([[4.0, 4.0, 4.0]])
    got = ball_query(
        backend.asarray(centre), backend.asarray(grid), radius=1.0, max_neighbors=10
    )
    # The centre itself plus its 6 axis neighbours at exactly distance 1.
    assert int(to_numpy(got.counts)[0]) == 7
    assert_matches(
        got, ball_query_reference(centre, grid, radius=1.0, max_neighbors=10)
    )
    # Radius 0 finds exact duplicates only.
    got = ball_query(backend.asarray(grid), radius=0.0, max_neighbors=3)
    np.testing.assert_array_equal(to_numpy(got.counts), 1)
    got = ball_query(
        backend.asarray(grid), radius=0.0, max_neighbors=3, exclude_self=True
    )
    np.testing.assert_array_equal(to_numpy(got.counts), 0)
    assert (to_numpy(got.indices) == -1).all()


def test_nearest_not_first_found(rng):
    # The K returned are the nearest inside the ball, not the first by index.
    P = np.array([[3.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0], [0.5, 0, 0]])
    got = ball_query(np.zeros((1, 3)), P, radius=2.5, max_neighbors=2)
    np.testing.assert_array_equal(got.indices[0], [3, 2])
    assert got.counts[0] == 2


def test_duplicates_and_identical_points(backend, rng):
    P = np.full((300, 3), -2.0)
    got = ball_query(backend.asarray(P), radius=0.5, max_neighbors=4)
    np.testing.assert_array_equal(
        to_numpy(got.indices), np.tile(np.arange(4), (300, 1))
    )
    base = rng.standard_normal((40, 3))
    P = base[rng.integers(0, 40, 900)]
    assert_matches(
        ball_query(backend.asarray(P), radius=0.4, max_neighbors=20, exclude_self=True),
        ball_query_reference(P, radius=0.4, max_neighbors=20, exclude_self=True),
    )


@pytest.mark.parametrize("scale", [1e-6, 1e5])
def test_extreme_scales(rng, scale):
    P = random_cloud(rng, (500, 3), "float32", scale=scale)
    got = ball_query(P, radius=0.5 * scale, max_neighbors=16)
    exp = ball_query_reference(P, radius=0.5 * scale, max_neighbors=16)
    assert_matches(got, exp, "float32")


def test_channels_first_unbatched(rng):
    q = random_cloud(rng, (3, 30))
    got = ball_query(q, radius=1.0, max_neighbors=5, channels_first=True)
    assert got.indices.shape == (30, 5)
    assert_matches(got, ball_query_reference(q.T, radius=1.0, max_neighbors=5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"radius": -1.0, "max_neighbors": 2}, "radius: expected a finite"),
        ({"radius": np.nan, "max_neighbors": 2}, "radius: expected a finite"),
        ({"radius": np.inf, "max_neighbors": 2}, "radius: expected a finite"),
        ({"radius": "1", "max_neighbors": 2}, "radius: expected a float"),
        (
            {"radius": 1.0, "max_neighbors": 0},
            "max_neighbors: expected max_neighbors >= 1",
        ),
        ({"radius": 1.0, "max_neighbors": 2.5}, "max_neighbors: expected an int"),
    ],
)
def test_validation_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ball_query(np.zeros((4, 3)), **kwargs)


def test_non_finite_rejected():
    P = np.zeros((4, 3))
    P[1, 1] = np.nan
    with pytest.raises(ValueError, match="query: expected finite"):
        ball_query(P, radius=1.0, max_neighbors=2)
    with pytest.raises(ValueError, match="reference: expected finite"):
        ball_query(np.zeros((2, 3)), P, radius=1.0, max_neighbors=2)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="no GPU")
@pytest.mark.parametrize("K", [1, 8, 32, 33, 200])
def test_cuda_equals_cpu_exactly(rng, K):
    import torch

    P = random_cloud(rng, (2, 3000, 3), "float32")
    rl = np.array([3000, 1234])
    Q = random_cloud(rng, (2, 500, 3), "float32")
    for kwargs in ({}, {"squared": False}):
        cpu = ball_query(
            Q, P, radius=0.4, max_neighbors=K, reference_lengths=rl, **kwargs
        )
        gpu = ball_query(
            torch.from_numpy(Q).cuda(),
            torch.from_numpy(P).cuda(),
            radius=0.4,
            max_neighbors=K,
            reference_lengths=torch.from_numpy(rl).cuda(),
            **kwargs,
        )
        for a, b in zip(cpu, gpu, strict=True):
            np.testing.assert_array_equal(a, b.cpu().numpy())

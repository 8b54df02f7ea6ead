# Tests for the EPiC partial-cloud samplers: walks, subsets, patches, gather.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope import pointcloud as pc
from deepscope.pointcloud import (
    PAPER_DEFAULTS,
    PartialResult,
    gather_points,
    knn_patches,
    partial_clouds,
    random_subsets,
    random_walk_curves,
)
from deepscope.pointcloud._samplers import (
    _assemble_patches,
    _random_subset,
    _random_walk,
)

from tests import reference as ref
from tests.conftest import HAS_CUPY, HAS_TORCH, Backend, to_numpy

# ---------------------------------------------------------------------------
# Helpers


def walk(table, starts, length, lengths, allow_revisits, seed, backend=None):
    """The walk kernel on NumPy (or backend) inputs, results as NumPy."""
    convert = backend.asarray if backend is not None else np.asarray
    out, counts = _random_walk(
        convert(np.asarray(table, dtype=np.int64)),
        convert(np.asarray(starts, dtype=np.int64)),
        length,
        lengths=convert(np.asarray(lengths, dtype=np.int64)),
        allow_revisits=allow_revisits,
        seed=seed,
    )
    if backend is not None:
        assert backend.is_native(out)
        assert backend.is_native(counts)
    return to_numpy(out), to_numpy(counts)


def subset(lengths, N, n_subsets, size, seed, backend=None):
    convert = backend.asarray if backend is not None else np.asarray
    out, counts = _random_subset(
        convert(np.asarray(lengths, dtype=np.int64)), N, n_subsets, size, seed
    )
    return to_numpy(out), to_numpy(counts)


def random_cloud(rng, B, N, D=3):
    return rng.standard_normal((B, N, D))


def ring_table(N, hops=1):
    """Each point's neighbours are the points within `hops` along a ring."""
    rows = [
        [(i + d) % N for h in range(1, hops + 1) for d in (h, -h)] for i in range(N)
    ]
    return np.asarray(rows, dtype=np.int64)[None]


def check_curve_valid(table, curve, count, n, allow_revisits):
    """Steps follow graph edges; without revisits points are distinct."""
    pts = [int(p) for p in curve[:count]]
    assert all(0 <= p < n for p in pts)
    assert (curve[count:] == -1).all()
    if allow_revisits:
        for p, q in zip(pts, pts[1:], strict=False):
            assert q in table[p], (p, q)
    else:
        assert len(set(pts)) == len(pts)
        for i in range(1, len(pts)):
            assert any(pts[i] in table[p] for p in pts[:i]), (i, pts[i])


# ---------------------------------------------------------------------------
# Counter-based RNG: the Python reference pins the C++ generator.


def test_rng_reference_matches_splitmix64_known_value():
    # SplitMix64's first output for state 0 (Steele, Lea, Flood 2014).
    assert ref.mix64(0) == 0xE220A8397B1DCDAF
    assert all(
        0 <= ref.random_below(7, s, c, 5) < 5 for s in range(4) for c in range(9)
    )


# ---------------------------------------------------------------------------
# Random-walk kernel on hand-made and brute-force kNN tables.


@pytest.mark.parametrize("allow_revisits", [True, False])
def test_walk_equals_reference_exactly(rng, allow_revisits):
    points = random_cloud(rng, 3, 40)
    lengths = np.array([40, 17, 0])
    table = ref.knn_table(points, 5, lengths, exclude_self=True)
    starts = np.array([[0, 39, 7, -1], [16, 3, 3, 0], [-1, -1, -1, -1]])
    for seed in (0, 1, 2**64 - 1):
        out, counts = walk(table, starts, 25, lengths, allow_revisits, seed)
        want, want_counts = ref.random_walk(
            table, lengths, starts, 25, allow_revisits, seed
        )
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(counts, want_counts)


@pytest.mark.parametrize("allow_revisits", [True, False])
def test_walk_steps_follow_knn_edges_and_respect_lengths(rng, allow_revisits):
    points = random_cloud(rng, 2, 60)
    lengths = np.array([60, 23])
    table = ref.knn_table(points, 4, lengths, exclude_self=True)
    starts = rng.integers(0, 23, size=(2, 6))
    out, counts = walk(table, starts, 40, lengths, allow_revisits, seed=5)
    assert out.shape == (2, 6, 40)
    assert out.dtype == np.int64
    assert (out[:, :, 0] == starts).all()
    for b in range(2):
        for a in range(6):
            if allow_revisits:
                assert counts[b, a] == min(40, lengths[b])
            check_curve_valid(
                table[b], out[b, a], counts[b, a], lengths[b], allow_revisits
            )


def test_walk_without_revisits_backtracks_silently_on_a_path():
    # A path 0-1-...-9 walked from the middle: after one end is reached the
    # walk must return (without emitting) towards the start and go the other
    # way, so all 10 points appear exactly once.
    N = 10
    rows = [[j for j in (i - 1, i + 1) if 0 <= j < N] + [-1] for i in range(N)]
    rows = [r + [-1] * (3 - len(r)) for r in rows]
    table = np.asarray(rows, dtype=np.int64)[None]
    starts = np.full((1, 16), 5)
    out, counts = walk(table, starts, N, [N], False, seed=3)
    assert (counts == N).all()
    for a in range(16):
        check_curve_valid(table[0], out[0, a], N, N, False)
        assert sorted(out[0, a]) == list(range(N))
    # Both directions are taken first by some walks.
    assert {int(x) for x in out[0, :, 1]} == {4, 6}


def test_walk_without_revisits_stops_at_the_component():
    # Two disjoint rings of 6 points: a curve cannot leave its ring.
    ring = ring_table(6)[0]
    table = np.concatenate([ring, ring + 6])[None]
    out, counts = walk(table, [[0, 8]], 12, [12], False, seed=0)
    assert counts.tolist() == [[6, 6]]
    assert sorted(out[0, 0, :6]) == list(range(6))
    assert sorted(out[0, 1, :6]) == list(range(6, 12))
    assert (out[0, :, 6:] == -1).all()


def test_walk_ends_at_points_without_neighbours():
    table = np.full((1, 4, 3), -1, dtype=np.int64)
    table[0, 0] = [1, -1, -1]
    for revisits in (True, False):
        out, counts = walk(table, [[0, 2]], 4, [4], revisits, seed=0)
        assert out[0].tolist() == [[0, 1, -1, -1], [2, -1, -1, -1]]
        assert counts.tolist() == [[2, 1]]


def test_walk_ignores_neighbours_beyond_the_cloud_length():
    # Entries >= lengths[b] are treated as missing, like -1.
    table = ring_table(8)
    out, counts = walk(table, [[2]], 8, [3], True, seed=1)
    assert counts.tolist() == [[3]]
    assert out[0, 0, 1] == 1  # point 3 is beyond the length
    assert set(out[0, 0, :3].tolist()) <= {0, 1, 2}


def test_walk_single_point_and_empty_cloud():
    table = np.full((2, 1, 2), -1, dtype=np.int64)
    out, counts = walk(table, [[0], [0]], 5, [1, 0], True, seed=0)
    assert out.tolist() == [[[0, -1, -1, -1, -1]], [[-1] * 5]]
    assert counts.tolist() == [[1], [0]]


def test_walk_first_step_is_uniform():
    # 4000 walks from the same start (each its own stream): the first step is
    # uniform over the 8 neighbours (chi-square, 7 dof, p ~ 1e-6 cut-off).
    table = ring_table(16, hops=4)
    starts = np.zeros((1, 4000), dtype=np.int64)
    out, _ = walk(table, starts, 2, [16], True, seed=11)
    observed = np.bincount(out[0, :, 1], minlength=16)[table[0, 0]]
    expected = 4000 / 8
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert observed.sum() == 4000
    assert chi2 < 40.0, observed


def test_walk_seeds_are_deterministic_and_distinct(rng):
    points = random_cloud(rng, 2, 50)
    table = ref.knn_table(points, 6, exclude_self=True)
    starts = np.array([[1, 1], [3, 3]])
    for revisits in (True, False):
        a = walk(table, starts, 30, [50, 50], revisits, seed=7)[0]
        b = walk(table, starts, 30, [50, 50], revisits, seed=7)[0]
        c = walk(table, starts, 30, [50, 50], revisits, seed=8)[0]
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        # Same start, different anchor slot: an independent stream.
        assert not np.array_equal(a[0, 0], a[0, 1])


def test_walk_backends_agree(backend, rng):
    points = random_cloud(rng, 2, 30)
    lengths = np.array([30, 12])
    table = ref.knn_table(points, 5, lengths, exclude_self=True)
    starts = np.array([[0, 5, 29], [11, -1, 0]])
    for revisits in (True, False):
        want = ref.random_walk(table, lengths, starts, 20, revisits, 4)
        got = walk(table, starts, 20, lengths, revisits, 4, backend=backend)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


# ---------------------------------------------------------------------------
# Random-subset kernel.


def test_subset_equals_reference_exactly():
    lengths = np.array([10, 3, 0, 64, 65])
    for seed in (0, 99, 2**63 + 5):
        got = subset(lengths, 65, 3, 8, seed)
        want = ref.random_subset(lengths, 3, 8, seed)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_subset_distinct_in_range_and_padded():
    lengths = np.array([200, 5, 0, 1])
    out, counts = subset(lengths, 200, 6, 50, seed=1)
    assert counts.tolist() == [[50] * 6, [5] * 6, [0] * 6, [1] * 6]
    for b, n in enumerate(lengths):
        for s in range(6):
            row = out[b, s, : counts[b, s]]
            assert len(set(row.tolist())) == len(row)
            assert ((row >= 0) & (row < n)).all()
            assert (out[b, s, counts[b, s] :] == -1).all()
    # size >= length: a permutation of the whole cloud.
    assert sorted(out[1, 0, :5].tolist()) == [0, 1, 2, 3, 4]


def test_subset_is_uniform_over_points_and_positions():
    # 3000 subsets of 5 from 20 points: every point equally often overall and
    # in the first slot (chi-square with 19 dof, cut-offs far in the tail).
    out, _ = subset(np.array([20]), 20, 3000, 5, seed=123)
    overall = np.bincount(out.ravel(), minlength=20)
    first = np.bincount(out[0, :, 0], minlength=20)
    chi2_all = ((overall - 750) ** 2 / 750).sum()
    chi2_first = ((first - 150) ** 2 / 150).sum()
    assert chi2_all < 60.0, overall
    assert chi2_first < 60.0, first
    # Pairs are not correlated with order: (a, b) and (b, a) about as often.
    pairs = np.zeros((20, 20))
    np.add.at(pairs, (out[0, :, 0], out[0, :, 1]), 1)
    assert abs(pairs.sum() - 3000) < 1e-9
    assert np.abs(pairs - pairs.T).max() < 15


def test_subset_seeds_deterministic_and_distinct():
    a = subset([100, 100], 100, 4, 10, seed=0)[0]
    b = subset([100, 100], 100, 4, 10, seed=0)[0]
    c = subset([100, 100], 100, 4, 10, seed=1)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Per-sample streams: clouds and subsets differ from each other.
    assert not np.array_equal(a[0, 0], a[1, 0])
    assert not np.array_equal(a[0, 0], a[0, 1])


def test_subset_backends_agree(backend):
    lengths = np.array([40, 7, 0])
    want = ref.random_subset(lengths, 2, 9, 17)
    got = subset(lengths, 40, 2, 9, 17, backend=backend)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# ---------------------------------------------------------------------------
# Patch assembly kernel with brute-force kNN rows.


def assembled_patches(points, anchors, size, lengths=None, backend=None):
    """The patch kernel fed with brute-force kNN rows of the anchors."""
    points = np.asarray(points, dtype=np.float64)
    B, N, _ = points.shape
    lengths = np.full(B, N) if lengths is None else np.asarray(lengths)
    anchors = np.asarray(anchors)
    queries = points[np.arange(B)[:, None], np.clip(anchors, 0, None)]
    rows = ref.knn_table(points, min(size, N), lengths, queries=queries)
    convert = backend.asarray if backend is not None else np.asarray
    out, counts = _assemble_patches(
        convert(rows), convert(anchors), size, lengths=convert(lengths)
    )
    return to_numpy(out), to_numpy(counts)


def test_patch_kernel_matches_brute_force_with_duplicates(rng):
    points = random_cloud(rng, 3, 30)
    points[0, 10:20] = points[0, 5]  # many exact duplicates of anchor 5
    points[1] = 0.0  # all identical: ties broken by index
    lengths = np.array([30, 30, 9])
    anchors = np.array([[5, 12, 0], [3, 29, 0], [8, -1, 0]])
    for size in (1, 4, 9, 15, 30):
        got = assembled_patches(points, anchors, min(size, 30), lengths)
        want = ref.patches(points, anchors, min(size, 30), lengths)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # Anchor 12 is a duplicate of lower indices: still first, never repeated.
    out, _ = assembled_patches(points, anchors, 11, lengths)
    assert out[0, 1].tolist() == [12, 5, 10, 11, 13, 14, 15, 16, 17, 18, 19]


def test_patch_kernel_cube_corner_ties():
    corners = np.array(
        [[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float
    )[None]
    out, counts = assembled_patches(corners, [[0, 7]], 4)
    assert out.tolist() == [[[0, 1, 2, 4], [7, 3, 5, 6]]]
    assert counts.tolist() == [[4, 4]]


def test_patch_kernel_backends_agree(backend, rng):
    points = random_cloud(rng, 2, 25)
    want = ref.patches(points, [[0, 24], [3, -1]], 8, [25, 10])
    got = assembled_patches(points, [[0, 24], [3, -1]], 8, [25, 10], backend)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# ---------------------------------------------------------------------------
# gather_points


def test_gather_points_values_and_fill(backend, rng):
    points = random_cloud(rng, 2, 6)
    idx = np.array([[[0, 5, -1]], [[2, -1, -1]]])
    got = gather_points(backend.asarray(points), backend.asarray(idx), fill=-7.0)
    assert backend.is_native(got)
    got = to_numpy(got)
    assert got.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(got[0, 0, :2], points[0, [0, 5]])
    np.testing.assert_array_equal(got[1, 0, 0], points[1, 2])
    assert (got[0, 0, 2] == -7).all()
    assert (got[1, 0, 1:] == -7).all()
    # Unbatched points take unbatched indices.
    single = to_numpy(
        gather_points(backend.asarray(points[0]), backend.asarray(idx[0]))
    )
    np.testing.assert_array_equal(single, np.where(idx[0, ..., None] >= 0, got[0], 0))


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_gather_points_is_differentiable():
    import torch

    points = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[[0, 0, -1]], [[4, -1, 2]]])
    out = gather_points(points, idx)
    out.sum().backward()
    grad = points.grad
    assert grad[0, 0].tolist() == [2.0] * 3
    assert grad[1, 4].tolist() == [1.0] * 3
    assert grad[1, 2].tolist() == [1.0] * 3
    assert grad[0, 1:].abs().sum() == 0
    assert torch.autograd.gradcheck(lambda p: gather_points(p, idx), (points,))


def test_gather_points_validation():
    points = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="indices"):
        gather_points(points, np.array([[4], [0]]))
    with pytest.raises(ValueError, match="indices"):
        gather_points(points, np.array([[-2], [0]]))
    with pytest.raises(ValueError, match="indices"):
        gather_points(points, np.array([[0.5], [0]]))
    with pytest.raises(ValueError, match="indices"):
        gather_points(points, np.array([[0]]))
    with pytest.raises(ValueError, match="points"):
        gather_points(np.zeros(4), np.array([0]))


# ---------------------------------------------------------------------------
# Public API: random_subsets (needs no other kernel)


def test_random_subsets_api(backend, rng):
    points = random_cloud(rng, 3, 50)
    lengths = np.array([50, 20, 0])
    result = random_subsets(
        backend.asarray(points), 30, 4, seed=9, lengths=backend.asarray(lengths)
    )
    assert isinstance(result, PartialResult)
    for part in result:
        assert backend.is_native(part)
    want = ref.random_subset(lengths, 4, 30, 9)
    np.testing.assert_array_equal(to_numpy(result.indices), want[0])
    np.testing.assert_array_equal(to_numpy(result.counts), want[1])
    assert (to_numpy(result.anchors) == -1).all()
    assert to_numpy(result.anchors).shape == (3, 4)


def test_random_subsets_width_is_capped_by_cloud_size(rng):
    result = random_subsets(random_cloud(rng, 1, 5)[0], 128, 2)
    assert result.indices.shape == (2, 5)
    assert result.counts.tolist() == [5, 5]
    assert result.anchors.shape == (2,)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_random_subsets_dtypes_layouts_and_input_unchanged(rng, dtype):
    points = random_cloud(rng, 2, 40).astype(dtype)
    keep = points.copy()
    base = random_subsets(points, 10, 3, seed=2).indices
    cf = random_subsets(np.swapaxes(points, 1, 2), 10, 3, seed=2, channels_first=True)
    points.setflags(write=False)
    ro = random_subsets(points, 10, 3, seed=2)
    np.testing.assert_array_equal(cf.indices, base)
    np.testing.assert_array_equal(ro.indices, base)
    np.testing.assert_array_equal(points, keep)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_random_subsets_torch_dtypes_and_grad(rng):
    import torch

    base = np.asarray(random_subsets(random_cloud(rng, 2, 40), 10, 3).indices)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        t = torch.rand(2, 40, 3, dtype=dtype, requires_grad=dtype == torch.float32)
        got = random_subsets(t, 10, 3)
        np.testing.assert_array_equal(got.indices.numpy(), base)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, "size"),
        ({"size": -3}, "size"),
        ({"size": 2.5}, "size"),
        ({"n_subsets": 0}, "n_subsets"),
        ({"seed": 1.0}, "seed"),
        ({"seed": None}, "seed"),
        ({"lengths": [5, 41]}, "lengths"),
        ({"lengths": [5, -1]}, "lengths"),
        ({"lengths": [5]}, "lengths"),
        ({"lengths": [5.0, 3.0]}, "lengths"),
    ],
)
def test_random_subsets_validation(rng, kwargs, match):
    args = {"size": 4, "n_subsets": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        random_subsets(random_cloud(rng, 2, 40), **args)


def test_points_validation(rng):
    bad = random_cloud(rng, 2, 10)
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="points"):
        random_subsets(bad, 4, 2)
    with pytest.raises(ValueError, match="points"):
        random_subsets(np.zeros((2, 0, 3)), 4, 2)
    with pytest.raises(ValueError, match="points"):
        random_subsets(np.zeros((2, 3, 4, 5)), 4, 2)
    with pytest.raises(ValueError, match="points"):
        random_subsets(np.zeros((2, 5, 3), dtype=np.int64), 4, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: knn_patches(p, [[0], [40]], 8), "anchors"),
        (lambda p: knn_patches(p, [[0], [-2]], 8), "anchors"),
        (lambda p: knn_patches(p, [[0], [9]], 8, lengths=[40, 9]), "anchors"),
        (lambda p: knn_patches(p, [0, 1], 8), "anchors"),
        (lambda p: knn_patches(p, [[0]], 8), "anchors"),
        (lambda p: knn_patches(p, [[0], [1]], 0), "patch_size"),
        (lambda p: random_walk_curves(p, [[0], [1]], 0), "length"),
        (lambda p: random_walk_curves(p, [[0], [1]], 5, k=0), "k"),
        (lambda p: random_walk_curves(p, [[0], [1]], 5, k=40), "k"),
        (lambda p: random_walk_curves(p[:, :1], [[0], [0]], 5, k=1), "k"),
        (lambda p: random_walk_curves(p, [[0], [1]], 5, seed="x"), "seed"),
        (lambda p: partial_clouds(p, "patches"), "method"),
        (lambda p: partial_clouds(p, None), "method"),
        (lambda p: partial_clouds(p, "random", size=0), "size"),
        (lambda p: partial_clouds(p, "random", n_anchors=0), "n_anchors"),
        (lambda p: partial_clouds(p, "patch", size=-1), "size"),
    ],
)
def test_sampler_validation(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(random_cloud(rng, 2, 40))


def test_paper_defaults():
    assert PAPER_DEFAULTS == {
        "patch": 512,
        "curve": 512,
        "random": 128,
        "n_anchors": 4,
        "k": 19,
    }


# ---------------------------------------------------------------------------
# Composed API: kNN patches and curves (need deepscope.pointcloud.knn / fps)


def test_knn_patches_match_brute_force(backend, rng):
    points = random_cloud(rng, 3, 64)
    points[0, 30:40] = points[0, 2]  # duplicates of anchor 2
    lengths = np.array([64, 20, 0])
    anchors = np.array([[2, 35, 63], [0, 19, 7], [-1, -1, -1]])
    for size in (1, 8, 20, 64, 500):
        got = knn_patches(
            backend.asarray(points),
            backend.asarray(anchors),
            size,
            lengths=backend.asarray(lengths),
        )
        for part in got:
            assert backend.is_native(part)
        want = ref.patches(points, anchors, min(size, 64), lengths)
        np.testing.assert_array_equal(to_numpy(got.indices), want[0])
        np.testing.assert_array_equal(to_numpy(got.counts), want[1])
        np.testing.assert_array_equal(to_numpy(got.anchors), anchors)


def test_knn_patches_unbatched_channels_first_and_dtypes(rng):
    points = random_cloud(rng, 1, 50)[0]
    want = ref.patches(points[None], [[4, 9]], 12)[0][0]
    for dtype in ("float32", "float64"):
        p = points.astype(dtype)
        np.testing.assert_array_equal(knn_patches(p, [4, 9], 12).indices, want)
        cf = knn_patches(p.T, np.array([4, 9]), 12, channels_first=True)
        np.testing.assert_array_equal(cf.indices, want)
        assert cf.counts.tolist() == [12, 12]


@pytest.mark.parametrize("allow_revisits", [True, False])
def test_random_walk_curves_equal_kernel_on_brute_force_graph(
    backend, rng, allow_revisits
):
    points = random_cloud(rng, 2, 60)
    lengths = np.array([60, 25])
    anchors = np.array([[0, 59, 30], [24, 1, -1]])
    got = random_walk_curves(
        backend.asarray(points),
        backend.asarray(anchors),
        40,
        k=6,
        allow_revisits=allow_revisits,
        seed=21,
        lengths=backend.asarray(lengths),
    )
    for part in got:
        assert backend.is_native(part)
    table = ref.knn_table(points, 6, lengths, exclude_self=True)
    want = ref.random_walk(table, lengths, anchors, 40, allow_revisits, 21)
    np.testing.assert_array_equal(to_numpy(got.indices), want[0])
    np.testing.assert_array_equal(to_numpy(got.counts), want[1])
    for b in range(2):
        for a in range(3):
            check_curve_valid(
                table[b], want[0][b, a], want[1][b, a], lengths[b], allow_revisits
            )


def test_partial_clouds_paper_setting(rng):
    points = random_cloud(rng, 2, 1024).astype(np.float32)
    from deepscope.pointcloud._fps import farthest_point_sample

    fps = np.asarray(farthest_point_sample(points, 4, start_index=0).indices)
    assert (fps[:, 0] == 0).all()
    patch = partial_clouds(points, "patch")
    curve = partial_clouds(points, "curve", seed=3)
    rand = partial_clouds(points, "random", seed=3)
    assert patch.indices.shape == (2, 4, 512)
    assert (patch.counts == 512).all()
    assert curve.indices.shape == (2, 4, 512)
    assert (curve.counts == 512).all()
    assert rand.indices.shape == (2, 4, 128)
    assert (rand.counts == 128).all()
    np.testing.assert_array_equal(patch.anchors, fps)
    np.testing.assert_array_equal(curve.anchors, fps)
    np.testing.assert_array_equal(patch.indices[:, :, 0], fps)
    np.testing.assert_array_equal(curve.indices[:, :, 0], fps)
    np.testing.assert_array_equal(patch.indices, ref.patches(points, fps, 512)[0])
    table = ref.knn_table(points, 19, exclude_self=True)
    want = ref.random_walk(table, [1024, 1024], fps, 512, True, 3)[0]
    np.testing.assert_array_equal(curve.indices, want)
    np.testing.assert_array_equal(
        rand.indices, random_subsets(points, 128, 4, seed=3).indices
    )


def test_partial_clouds_small_clouds_and_given_anchors(rng):
    # A member with fewer points than anchors gets -1 anchors and empty rows;
    # the whole cloud is returned when it is smaller than the size.
    points = random_cloud(rng, 3, 30)
    lengths = np.array([30, 2, 0])
    for method in ("patch", "curve", "random"):
        result = partial_clouds(points, method, size=16, k=3, lengths=lengths)
        assert result.indices.shape == (3, 4, 16)
        counts = np.asarray(result.counts)
        assert (counts[0] == 16).all()
        assert (counts[2] == 0).all()
        if method == "random":
            assert (counts[1] == 2).all()
        else:
            assert counts[1].tolist() == [2, 2, 0, 0]
            assert result.anchors[1].tolist()[2:] == [-1, -1]
    given = partial_clouds(points[0], "curve", anchors=[3, 4], size=10, k=3)
    np.testing.assert_array_equal(given.indices[:, 0], [3, 4])
    rand = partial_clouds(points[0], "random", anchors=[3, 4], size=10)
    assert rand.indices.shape == (2, 10)
    assert (rand.anchors == -1).all()


def test_tiny_clouds_patches_and_curves():
    one = np.zeros((1, 3))
    result = knn_patches(one, [0, 0], 5)
    assert result.indices.tolist() == [[0], [0]]
    assert result.counts.tolist() == [1, 1]
    two = np.array([[0.0, 0, 0], [1, 0, 0]])
    assert knn_patches(two, [1], 8).indices.tolist() == [[1, 0]]
    walk_back = random_walk_curves(two, [0], 6, k=1, allow_revisits=True)
    assert walk_back.indices.tolist() == [[0, 1]]  # min(length, N) points
    distinct = random_walk_curves(two, [1], 6, k=1, allow_revisits=False)
    assert distinct.indices.tolist() == [[1, 0]]
    # Identical points: ties go to the lowest index, anchor still first.
    same = np.ones((6, 3))
    assert knn_patches(same, [3], 4).indices.tolist() == [[3, 0, 1, 2]]


def test_composed_api_input_unchanged_and_deterministic(rng):
    points = random_cloud(rng, 2, 80).astype(np.float32)
    keep = points.copy()
    anchors = np.array([[0, 5], [7, 79]])
    points.setflags(write=False)
    a = random_walk_curves(points, anchors, 30, k=5, seed=4)
    b = random_walk_curves(points, anchors, 30, k=5, seed=4)
    c = random_walk_curves(points, anchors, 30, k=5, seed=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    knn_patches(points, anchors, 10)
    np.testing.assert_array_equal(points, keep)


# ---------------------------------------------------------------------------
# CUDA: identical to the CPU kernels


def _cuda_backends():
    backends = []
    if HAS_TORCH:
        backends.append(Backend("torch", "cuda"))
    if HAS_CUPY:
        backends.append(Backend("cupy", "cuda"))
    return backends


@pytest.mark.cuda
def test_cuda_kernels_equal_cpu_exactly(rng):
    points = random_cloud(rng, 4, 700)
    lengths = np.array([700, 513, 1, 0])
    table = ref.knn_table(points[:, :700], 12, lengths, exclude_self=True)
    starts = rng.integers(0, 513, size=(4, 9))
    starts[2:] = 0
    starts[0, 0] = -1
    for backend in _cuda_backends():
        for revisits in (True, False):
            cpu = walk(table, starts, 600, lengths, revisits, 77)
            gpu = walk(table, starts, 600, lengths, revisits, 77, backend=backend)
            np.testing.assert_array_equal(gpu[0], cpu[0])
            np.testing.assert_array_equal(gpu[1], cpu[1])
        cpu = subset(lengths, 700, 5, 300, 5)
        gpu = subset(lengths, 700, 5, 300, 5, backend=backend)
        np.testing.assert_array_equal(gpu[0], cpu[0])
        np.testing.assert_array_equal(gpu[1], cpu[1])
        anchors = np.array([[0, 1], [512, 3], [0, 0], [-1, -1]])
        cpu = assembled_patches(points, anchors, 64, lengths)
        gpu = assembled_patches(points, anchors, 64, lengths, backend)
        np.testing.assert_array_equal(gpu[0], cpu[0])
        np.testing.assert_array_equal(gpu[1], cpu[1])


@pytest.mark.cuda
def test_cuda_partial_clouds_equal_cpu(rng):
    points = random_cloud(rng, 3, 1024).astype(np.float32)
    lengths = np.array([1024, 300, 0])
    for backend in _cuda_backends():
        for method in ("patch", "curve", "random"):
            for revisits in (True, False):
                cpu = partial_clouds(
                    points, method, seed=5, lengths=lengths, allow_revisits=revisits
                )
                gpu = partial_clouds(
                    backend.asarray(points),
                    method,
                    seed=5,
                    lengths=backend.asarray(lengths),
                    allow_revisits=revisits,
                )
                for c, g in zip(cpu, gpu, strict=True):
                    assert backend.is_native(g)
                    np.testing.assert_array_equal(to_numpy(g), c)


# --------------------------------------------- one validation per public call


@pytest.mark.parametrize(
    ("call", "expected_checks"),
    [
        (lambda p: pc.partial_clouds(p, "patch", n_anchors=2, size=8), 1),
        (lambda p: pc.partial_clouds(p, "curve", n_anchors=2, size=8, k=4), 1),
        (lambda p: pc.partial_clouds(p, "random", n_anchors=2, size=8), 1),
        (lambda p: pc.knn_patches(p, [[0, 3], [1, 2]], 8), 1),
        (lambda p: pc.random_walk_curves(p, [[0, 3], [1, 2]], 8, k=4), 1),
        (lambda p: pc.random_subsets(p, 8, 2), 1),
    ],
)
def test_composed_samplers_check_the_coordinates_once(
    rng, monkeypatch, call, expected_checks
):
    from deepscope import _arrays
    from deepscope.pointcloud import _samplers

    calls = []
    original = _arrays.check_coordinates

    def counting(*args, **kwargs):
        calls.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(_arrays, "check_coordinates", counting)
    monkeypatch.setattr(_samplers, "check_coordinates", counting)
    call(rng.standard_normal((2, 30, 3)))
    assert calls == ["points"] * expected_checks


# ------------------------------------ thread count does not change the results

_THREADS_SCRIPT = """
import hashlib, numpy as np
import deepscope.pointcloud as pc
from deepscope import importance as imp
rng = np.random.default_rng(0)
h = hashlib.sha256()
for B, N in ((2, 64), (8, 1024), (4, 8192)):
    pts = rng.standard_normal((B, N, 3))
    anchors = np.tile(np.arange(4) * (N // 4), (B, 1))
    for r in (
        pc.random_subsets(pts, 128, 4, seed=3),
        pc.knn_patches(pts, anchors, 64),
        pc.random_walk_curves(pts, anchors, 64, k=8, allow_revisits=False, seed=3),
        pc.knn(pts, k=8),
        pc.farthest_point_sample(pts, 32),
    ):
        for a in r:
            h.update(np.ascontiguousarray(a).tobytes())
    f = rng.standard_normal((B, 16, N))
    for a in imp.importance_stats(f):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(imp.normalized_entropy(np.abs(f[:, 0])).tobytes())
print(h.hexdigest())
"""


def test_results_do_not_depend_on_the_thread_count():
    import os
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1

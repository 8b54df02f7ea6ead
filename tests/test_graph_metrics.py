# Tests of deepscope.graph.metrics against NumPy / brute-force references.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

from deepscope.graph import metrics

from tests import reference as ref


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_nmi_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    t = rng.choice([3, 7, 11, 20], n)  # non-contiguous class ids
    p = rng.integers(0, 3 + seed % 3, n)  # 3..5 clusters
    assert metrics.clustering_accuracy(t, p) == pytest.approx(
        ref.matched_accuracy_reference(t, p), abs=1e-12
    )
    assert metrics.normalized_mutual_info(t, p) == pytest.approx(
        ref.nmi_reference(t, p), abs=1e-10
    )


def test_accuracy_permuted_labels_is_one():
    t = np.repeat(np.arange(4), 5)
    p = np.array([2, 0, 3, 1])[t]
    assert metrics.clustering_accuracy(t, p) == 1.0
    assert metrics.normalized_mutual_info(t, p) == pytest.approx(1.0)


def test_cluster_scores_separated_blobs_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    E = np.eye(3)[y] * 10 + rng.normal(0, 0.1, (90, 3))
    s = metrics.cluster_scores(torch.from_numpy(E), torch.from_numpy(y))
    assert s.nmi == pytest.approx(1.0)
    assert s.acc == 1.0
    assert s.assignment.shape == (90,)
    # A random embedding scores far lower (the metric can fail).
    r = metrics.cluster_scores(rng.normal(size=(90, 3)), y)
    assert r.acc < 0.7
    assert r.nmi < 0.3


@pytest.mark.parametrize("seed", range(4))
def test_grassmann_matches_principal_angles(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(50, 4))
    B = A @ rng.normal(size=(4, 4)) + 0.3 * rng.normal(size=(50, 4))
    assert metrics.grassmann_distance(A, B) == pytest.approx(
        ref.grassmann_reference(A, B), abs=1e-10
    )


def test_grassmann_basis_invariant_and_bounds():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(40, 3))
    # Same span through a badly scaled, non-orthogonal basis: distance 0.
    M = np.array([[1e3, 1, 0], [0, 1e-2, 5], [2, 0, 1]])
    assert metrics.grassmann_distance(A, A @ M) < 1e-10
    # Orthogonal subspaces: distance K.
    E = np.eye(6)
    assert metrics.grassmann_distance(E[:, :3], E[:, 3:]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="rows"):
        metrics.grassmann_distance(A, A[:10])


@pytest.mark.parametrize("which", ["zero", "repeated"])
def test_grassmann_rejects_rank_deficient_bases(which):
    # A collapsed embedding (a zero or repeated column) spans fewer than K
    # dimensions; QR used to fill the gap with an arbitrary direction and
    # return a number that depends on it.
    rng = np.random.default_rng(3)
    A = rng.normal(size=(40, 3))
    B = A.copy()
    B[:, 2] = 0.0 if which == "zero" else B[:, 0]
    assert np.linalg.matrix_rank(B) == 2
    with pytest.raises(ValueError, match=r"B: expected 3 linearly independent.*rank 2"):
        metrics.grassmann_distance(A, B)
    with pytest.raises(ValueError, match=r"A: expected 3 linearly independent.*rank 2"):
        metrics.grassmann_distance(B, A)
    # Its independent columns still compare exactly.
    assert metrics.grassmann_distance(A[:, :2], B[:, :2]) == pytest.approx(
        ref.grassmann_reference(A[:, :2], B[:, :2]), abs=1e-10
    )


def test_orthogonality_error():
    rng = np.random.default_rng(2)
    U = rng.normal(size=(30, 5))
    assert metrics.orthogonality_error(U) == pytest.approx(
        ref.orthogonality_reference(U), abs=1e-12
    )
    Q, _ = np.linalg.qr(U)
    assert metrics.orthogonality_error(Q * [1, 2, 3, 4, 5]) < 1e-12
    with pytest.raises(ValueError, match="all zeros"):
        metrics.orthogonality_error(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.orthogonality_error(np.full((4, 2), np.nan))


def test_linear_probe():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    good = np.eye(3)[y] + rng.normal(0, 0.2, (120, 3))
    bad = rng.normal(size=(120, 3))
    assert metrics.linear_probe_accuracy(good, y) > 0.95
    assert metrics.linear_probe_accuracy(bad, y) < 0.6
    with pytest.raises(ValueError, match="test_fraction"):
        metrics.linear_probe_accuracy(good, y, test_fraction=1.0)

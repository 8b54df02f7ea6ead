# Tests of deepscope.graph BASiS, its alignment helpers and the SpectralNet baseline.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope.graph import metrics  # noqa: E402
from deepscope.graph._basis import (  # noqa: E402
    BASiS,
    SpectralNetEmbedding,
    affine_ransac_align,
    batch_eigenvectors,
    procrustes_align,
    select_anchors,
)

from tests import reference as ref  # noqa: E402


def _blobs(n_per=100, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], float)
    y = np.repeat(np.arange(3), n_per)
    return (centers[y] + rng.normal(0, 0.7, (3 * n_per, 4))).astype(np.float32), y


SMALL = dict(n_anchors=20, batch_size=120, hidden=(64, 64), lr=3e-3, n_neighbors=8)


def test_batch_eigenvectors_match_dense_reference():
    X, _ = _blobs(30, seed=1)
    V = batch_eigenvectors(X, 4, n_neighbors=6, sigma_neighbor=4).numpy()
    R = ref.batch_eigenvectors_reference(X.astype(np.float64), 4, 6, 4)
    assert V.shape == (90, 4)
    assert metrics.grassmann_distance(V, R) < 1e-8
    np.testing.assert_allclose(V.T @ V, np.eye(4), atol=1e-10)


def test_affine_ransac_recovers_map_with_outliers():
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.normal(0, 0.1, (60, 4)))
    M_true = torch.from_numpy(rng.normal(size=(5, 4)))
    T = torch.cat([S, torch.ones(60, 1, dtype=S.dtype)], 1) @ M_true
    T[:10] += 5.0  # gross outliers
    gen = torch.Generator().manual_seed(0)
    M = affine_ransac_align(S, T, tolerance=0.1, generator=gen)
    torch.testing.assert_close(M, M_true, atol=1e-8, rtol=0)
    # Least squares on the true inliers (NumPy reference) gives the same map.
    Mr = ref.affine_lstsq_reference(S.numpy()[10:], T.numpy()[10:])
    np.testing.assert_allclose(M.numpy(), Mr, atol=1e-8)
    # Without outliers and a loose tolerance the result is plain lstsq.
    T2 = T.clone()
    T2[:10] -= 5.0
    M2 = affine_ransac_align(
        S,
        T2 + 1e-3 * torch.randn(60, 4, generator=gen, dtype=S.dtype),
        tolerance=10.0,
        generator=gen,
    )
    assert torch.allclose(M2, M_true, atol=0.1)


def test_procrustes_matches_scipy():
    from scipy.linalg import orthogonal_procrustes

    rng = np.random.default_rng(1)
    S = rng.normal(size=(40, 5))
    T = S @ np.linalg.qr(rng.normal(size=(5, 5)))[0] + 0.01 * rng.normal(size=(40, 5))
    M = procrustes_align(torch.from_numpy(S), torch.from_numpy(T)).numpy()
    Q, _ = orthogonal_procrustes(S, T)
    np.testing.assert_allclose(M[:5], Q, atol=1e-10)
    np.testing.assert_array_equal(M[5], 0.0)


@pytest.mark.parametrize("method", ["kmeans++", "fps", "random"])
def test_select_anchors_label_free(method):
    X, _ = _blobs(50)
    a = select_anchors(X, 12, method=method, seed=3)
    assert a.dtype == np.int64
    assert a.shape == (12,)
    assert np.unique(a).size == 12
    np.testing.assert_array_equal(a, select_anchors(X, 12, method=method, seed=3))
    # Duplicated points: still distinct indices.
    D = np.repeat(X[:3], 10, axis=0)
    b = select_anchors(D, 8, method=method, seed=0)
    assert np.unique(b).size == 8


def test_select_anchors_fps_is_farthest_point_sampling():
    from deepscope.pointcloud import farthest_point_sample

    X, _ = _blobs(40)
    a = select_anchors(X, 10, method="fps", seed=0)
    start = int(np.random.default_rng(0).integers(0, len(X)))
    f = farthest_point_sample(X.astype(np.float64), 10, start_index=start)
    np.testing.assert_array_equal(a, np.asarray(f.indices))


def test_select_anchors_stratified_and_errors():
    X, y = _blobs(50)
    a = select_anchors(X, 15, method="stratified", labels=y, seed=0)
    assert np.bincount(y[a]).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="labels"):
        select_anchors(X, 15, method="stratified")
    with pytest.raises(ValueError, match="n_anchors"):
        select_anchors(X, 0)
    with pytest.raises(ValueError, match="method"):
        select_anchors(X, 3, method="nope")
    with pytest.raises(ValueError, match="NaN"):
        select_anchors(np.full((4, 2), np.nan), 2)


@pytest.fixture(scope="module")
def blobs_fit():
    torch.set_num_threads(1)
    X, y = _blobs()
    m = BASiS(3, n_iterations=150, seed=0, **SMALL).fit(X)
    return X, y, m


def test_basis_clusters_blobs_and_matches_full_graph(blobs_fit):
    X, y, m = blobs_fit
    E = m.transform(X)
    assert E.shape == (300, 3)
    assert E.dtype == np.float32
    s = metrics.cluster_scores(E, y)
    assert s.nmi > 0.95
    full = batch_eigenvectors(X, 3, n_neighbors=8)
    assert metrics.grassmann_distance(E, full.numpy()) < 0.15
    assert m.loss_history_[-1] < 0.5 * m.loss_history_[0]


def test_basis_reproducible_and_torch_io(blobs_fit):
    X, _, m = blobs_fit
    m2 = BASiS(3, n_iterations=150, seed=0, **SMALL).fit(torch.from_numpy(X))
    E2 = m2.transform(torch.from_numpy(X))
    assert isinstance(E2, torch.Tensor)
    np.testing.assert_array_equal(E2.numpy(), m.transform(X))
    np.testing.assert_array_equal(m2.anchors_, m.anchors_)


def test_basis_realignment_keeps_reference(blobs_fit):
    X, _, m = blobs_fit
    before = m.reference_.clone()
    # A rotated copy of the features has the same graph: after re-alignment
    # the reference rows are unchanged although fresh eigenvectors may flip.
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    m.update_graph_features(X.astype(np.float64) @ Q)
    torch.testing.assert_close(m.reference_, before, atol=1e-6, rtol=0)
    # A real metric change moves the reference, but only a little after
    # re-alignment, and training continues on the new graph.
    m.update_graph_features(X + np.random.default_rng(1).normal(0, 0.05, X.shape))
    assert float((m.reference_ - before).abs().max()) < 0.05
    n = len(m.loss_history_)
    m.partial_fit(X, 5)
    assert len(m.loss_history_) == n + 5


def test_basis_procrustes_and_none_run():
    X, y = _blobs(60)
    for alignment in ("procrustes", "none"):
        m = BASiS(3, alignment=alignment, n_iterations=3, seed=1, **SMALL).fit(X)
        assert np.isfinite(m.transform(X)).all()


def test_basis_errors():
    X, y = _blobs(40)
    with pytest.raises(ValueError, match="n_anchors"):
        BASiS(3, n_anchors=3, batch_size=60, n_iterations=1).fit(X)
    with pytest.raises(ValueError, match="n_anchors"):
        BASiS(3, n_anchors=60, batch_size=60, n_iterations=1).fit(X)
    with pytest.raises(ValueError, match="alignment"):
        BASiS(3, alignment="affine")
    with pytest.raises(ValueError, match="anchors"):
        BASiS(3, anchors="labels")
    with pytest.raises(ValueError, match="labels"):
        BASiS(3, anchors="stratified", n_anchors=9, batch_size=60).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        BASiS(3).fit(np.full((10, 2), np.nan))
    with pytest.raises(RuntimeError, match="fit"):
        BASiS(3).transform(X)
    m = BASiS(3, n_anchors=9, batch_size=60, n_iterations=1, hidden=(8,)).fit(X)
    with pytest.raises(ValueError, match="features"):
        m.transform(X[:, :2])
    with pytest.raises(ValueError, match="fit inputs"):
        m.partial_fit(X[:10], 1)
    with pytest.raises(ValueError, match="graph_features"):
        m.update_graph_features(X[:10])
    # Stratified anchors (mild supervision) need y.
    m = BASiS(3, anchors="stratified", n_anchors=9, batch_size=60, n_iterations=1).fit(
        X, y
    )
    assert np.bincount(y[m.anchors_]).tolist() == [3, 3, 3]


def test_basis_read_only_input_no_warning_not_modified():
    # torch warns once per process when it wraps a read-only NumPy array, so
    # the check runs in a fresh interpreter with warnings as errors.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import numpy as np
        from deepscope.graph._basis import BASiS
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            X = rng.normal(size=(90, 4)).astype(dtype)
            X.setflags(write=False)
            before = X.copy()
            model = BASiS(2, n_anchors=10, batch_size=60, hidden=(16,),
                          n_iterations=2, seed=0)
            E = model.fit_transform(X)
            assert np.array_equal(X, before)
            assert np.isfinite(np.asarray(E)).all()
        """
    )
    run = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_spectralnet_orthonorm_rank_safe():
    net = SpectralNetEmbedding(3)
    Y = torch.randn(50, 3, dtype=torch.float64)
    W = net._orthonorm(Y)
    Z = Y.float() @ W
    torch.testing.assert_close(Z.T @ Z / 50, torch.eye(3), atol=1e-3, rtol=0)
    Y[:, 2] = Y[:, 0]  # rank-deficient output: weights stay finite
    assert torch.isfinite(net._orthonorm(Y)).all()
    Y.zero_()
    assert torch.isfinite(net._orthonorm(Y)).all()


def test_spectralnet_blobs():
    torch.set_num_threads(1)
    X, y = _blobs()
    m = SpectralNetEmbedding(
        3,
        batch_size=120,
        hidden=(64, 64),
        lr=3e-3,
        n_neighbors=8,
        n_iterations=150,
        seed=0,
    ).fit(X)
    E = m.transform(X)
    assert np.isfinite(E).all()
    assert metrics.cluster_scores(E, y).nmi > 0.9


def test_alignment_matters(blobs_fit):
    # Without alignment the per-batch sign / rotation ambiguity of the targets
    # averages out: the learned space is farther from the full-graph one.
    X, _, m = blobs_fit
    full = batch_eigenvectors(X, 3, n_neighbors=8).numpy()
    raw = BASiS(3, alignment="none", n_iterations=150, seed=0, **SMALL).fit(X)
    g_ransac = metrics.grassmann_distance(m.transform(X), full)
    g_none = metrics.grassmann_distance(raw.transform(X), full)
    assert g_ransac < g_none
    assert metrics.orthogonality_error(m.transform(X)) < metrics.orthogonality_error(
        raw.transform(X)
    )


@pytest.mark.parametrize("kind", ["symmetric", "combinatorial"])
def test_batch_eigenvectors_options_match_reference(kind):
    # A connected graph (no degenerate null space): a uniform square.
    X = np.random.default_rng(2).uniform(size=(90, 2)).astype(np.float32)
    for gaussian in (False, True):
        V = batch_eigenvectors(
            X,
            3,
            n_neighbors=8,
            sigma_neighbor=4,
            weight="gaussian" if gaussian else "self_tuning",
            laplacian=kind,
            drop_first=True,
        ).numpy()
        R = ref.batch_eigenvectors_reference(
            X.astype(np.float64), 3, 8, 4, gaussian=gaussian, kind=kind, first=1
        )
        assert V.shape == (90, 3)
        assert metrics.grassmann_distance(V, R) < 1e-8
    with pytest.raises(ValueError, match="laplacian"):
        batch_eigenvectors(X, 2, laplacian="random_walk")
    with pytest.raises(ValueError, match="weight"):
        batch_eigenvectors(X, 2, weight="kth_neighbor")
    with pytest.raises(ValueError, match="n_components"):
        batch_eigenvectors(X, 90, drop_first=True)


def test_three_moons_layout():
    from deepscope.graph._datasets import three_moons

    X, y, a = three_moons(30, noise=0.0, seed=0)
    assert X.shape == (30, 2)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(a, np.arange(9))
    np.testing.assert_array_equal(np.bincount(y), [10, 10, 10])
    # Anchors: both ends and the middle of each arc.
    np.testing.assert_allclose(
        X[:9],
        [[-1, 0], [0, 1], [1, 0], [0, 0], [1.5, -1.5], [3, 0], [2, 0], [3, 1], [4, 0]],
        atol=1e-12,
    )
    # Noise-free points lie on their arcs.
    centres = np.array([[0, 0], [1.5, 0], [3, 0]])
    radii = np.array([1.0, 1.5, 1.0])
    r = np.linalg.norm(X - centres[y], axis=1)
    np.testing.assert_allclose(r, radii[y], atol=1e-12)
    X2, _, _ = three_moons(30, seed=0)
    assert 0.0 < np.abs(X2[9:] - X[9:]).std() < 0.2
    with pytest.raises(ValueError, match="n_samples"):
        three_moons(11)


# The published three-moons setting (BASiS notebook): nine anchors (three per
# moon), k = 20 with self (19 neighbours), one Gaussian scale per batch graph,
# the combinatorial Laplacian D - W without its trivial eigenvector (K = 2),
# 256 random points + the anchors per batch, RANSAC on 5 anchors, tolerance
# 0.01. Published (n = 10,000, 1,000 iterations): NMI 0.9966, ACC 0.9995,
# Grassmann 0.0041, orthogonality 0.0416.
MOONS = dict(
    n_anchors=9,
    weight="gaussian",
    laplacian="combinatorial",
    drop_first=True,
    n_neighbors=19,
    sigma_neighbor=7,
    batch_size=265,
    ransac_samples=5,
    ransac_tolerance=0.01,
)


def test_basis_three_moons_reaches_published_scores():
    # Reduced run: 2,000 training points and 300 iterations (about 10 s),
    # scored on an independent 1,000-point draw against the exact test-graph
    # eigenvectors aligned through the anchors, as in the paper.
    from deepscope.graph._datasets import three_moons

    torch.set_num_threads(1)
    X, _, anchors = three_moons(2000, seed=0)
    Xt, yt, rows = three_moons(1000, seed=1000)
    m = BASiS(2, anchors=anchors, n_iterations=300, seed=0, **MOONS).fit(X)
    E = m.transform(Xt)
    U = m.aligned_eigenvectors(Xt, rows)
    s = metrics.cluster_scores(E, yt)
    assert s.nmi >= 0.99  # published 0.9966
    assert s.acc >= 0.998  # published 0.9995
    assert metrics.grassmann_distance(E, U) < 0.0041  # published 0.0041
    assert metrics.orthogonality_error(E) < 0.06  # published 0.0416
    with pytest.raises(ValueError, match="anchor_rows"):
        m.aligned_eigenvectors(Xt, rows[:3])


def test_basis_extra_eigenvectors_and_consensus_reference():
    X, y = _blobs(60)
    m = BASiS(
        3, extra_eigenvectors=2, reference_batches=3, n_iterations=20, seed=0, **SMALL
    ).fit(X)
    assert m.reference_.shape == (20, 3)
    E = m.transform(X)
    assert np.isfinite(E).all()
    # The consensus reference is the mean of aligned anchor rows: it differs
    # from the first batch's eigenvectors but spans nearly the same space.
    first = batch_eigenvectors(X[m.reference_batch_], 3, n_neighbors=8).numpy()[:20]
    ref_rows = m.reference_.numpy()
    assert not np.allclose(ref_rows, first)
    assert metrics.grassmann_distance(ref_rows, first) < 0.2
    # Aligned targets use K + m eigenvectors mapped onto K columns.
    U = m.aligned_eigenvectors(X, np.arange(len(X))[m.anchors_])
    assert U.shape == (len(X), 3)
    for alignment in ("procrustes", "none"):
        m2 = BASiS(
            3, alignment=alignment, extra_eigenvectors=2, n_iterations=2, **SMALL
        )
        assert np.isfinite(m2.fit(X).transform(X)).all()
    with pytest.raises(ValueError, match="extra_eigenvectors"):
        BASiS(3, extra_eigenvectors=-1)
    with pytest.raises(ValueError, match="reference_batches"):
        BASiS(3, reference_batches=0)
    with pytest.raises(ValueError, match="n_anchors"):
        BASiS(3, n_anchors=5, extra_eigenvectors=2, batch_size=60).fit(X)

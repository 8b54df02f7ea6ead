# Tests for deepscope.graph: feature kNN, kNN graphs, Laplacians, graph SSL.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from deepscope.graph import (
    LaplaceLearning,
    LaplacianSSL,
    PoissonLearning,
    connected_components,
    feature_knn,
    knn_graph,
    laplacian,
    smallest_eigenvectors,
    spectral_clustering,
    ssl_affinity,
)

from tests import reference as ref
from tests.conftest import to_numpy

# ---------------------------------------------------------------- feature kNN


@pytest.mark.parametrize("dim", [2, 3, 20, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_knn_matches_brute_force(backend, rng, dim, dtype):
    X = rng.standard_normal((300, dim)).astype(dtype)
    X[10] = X[3]  # exact duplicate
    X[11] = X[3]
    res = feature_knn(backend.asarray(X), k=7, block_size=64)
    assert backend.is_native(res.indices)
    idx, d2 = ref.graph_knn_reference(X, X, 7, exclude_self=True)
    np.testing.assert_array_equal(to_numpy(res.indices), idx)
    assert to_numpy(res.distances).dtype == dtype
    np.testing.assert_allclose(to_numpy(res.distances), d2.astype(dtype), rtol=0)
    assert (to_numpy(res.counts) == 7).all()


def test_feature_knn_query_reference_and_ties(rng):
    # Cube corners around a centre: many exact ties broken to the lowest index.
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 10)).reshape(10, -1).T
    res = feature_knn(np.full((1, 10), 0.5), corners, k=5)
    np.testing.assert_array_equal(np.asarray(res.indices)[0], np.arange(5))
    Q = rng.standard_normal((40, 30))
    R = rng.standard_normal((90, 30))
    res = feature_knn(Q, R, k=90, block_size=16)
    idx, _ = ref.graph_knn_reference(Q, R, 90, exclude_self=False)
    np.testing.assert_array_equal(np.asarray(res.indices), idx)


def test_feature_knn_all_identical_points():
    X = np.ones((50, 12), np.float32)
    res = feature_knn(X, k=49)
    idx = np.asarray(res.indices)
    for i in range(50):
        np.testing.assert_array_equal(idx[i], np.delete(np.arange(50), i))
    assert (np.asarray(res.distances) == 0).all()


def test_feature_knn_large_offsets_stay_exact(rng):
    # Coordinates near 1e5 with tiny spread stress the GEMM rounding slack.
    X = 1e5 + rng.standard_normal((200, 40)) * 1e-2
    res = feature_knn(X.astype(np.float32), k=5)
    idx, _ = ref.graph_knn_reference(
        X.astype(np.float32), X.astype(np.float32), 5, True
    )
    np.testing.assert_array_equal(np.asarray(res.indices), idx)


def test_feature_knn_uncertified_rows_are_redone_exactly(rng, monkeypatch):
    # Binary features: many exact ties at the k-th distance defeat the
    # rounding certificate, so some rows take the exact fallback search.
    from deepscope.graph import _knn_graph

    redone = []
    original = _knn_graph._redo_rows

    def spy(qt, rt, rows, *args):
        redone.append(len(rows))
        return original(qt, rt, rows, *args)

    monkeypatch.setattr(_knn_graph, "_redo_rows", spy)
    X = rng.integers(0, 2, (400, 12)).astype(np.float32)
    res = feature_knn(X, k=5)
    assert sum(redone) > 0
    idx, _ = ref.graph_knn_reference(X, X, 5, exclude_self=True)
    np.testing.assert_array_equal(np.asarray(res.indices), idx)


def test_feature_knn_input_not_modified_and_readonly(rng):
    X = rng.standard_normal((60, 16))
    X.setflags(write=False)
    before = X.copy()
    feature_knn(X, k=3)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("k", [0, 50, -1])
def test_feature_knn_k_out_of_range(k):
    with pytest.raises(ValueError, match="k: expected 1 <= k <= 49"):
        feature_knn(np.zeros((50, 10)), k=k)


def test_feature_knn_rejects_nan_and_bad_shapes():
    X = np.zeros((5, 10))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        feature_knn(X, k=2)
    with pytest.raises(ValueError, match="dimensions"):
        feature_knn(np.zeros(5), k=1)
    with pytest.raises(ValueError, match="exclude_self"):
        feature_knn(np.zeros((5, 10)), np.zeros((5, 10)), k=1, exclude_self=True)


# ------------------------------------------------------------------ kNN graph

WEIGHTS = [
    "self_tuning",
    "self_tuning_symmetric",
    "kth_neighbor",
    "connectivity",
    "distance",
]


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("symmetrize", ["mean", "max", "min", "none"])
def test_knn_graph_matches_dense_reference(rng, weight, symmetrize):
    X = rng.standard_normal((60, 12))
    X[5] = X[6]
    g = knn_graph(X, 6, weight=weight, sigma_neighbor=3, symmetrize=symmetrize)
    idx, d2 = ref.graph_knn_reference(X, X, 6, exclude_self=True)
    col = 5 if weight == "kth_neighbor" else 2
    W = ref.graph_affinity_reference(idx, d2, weight, col, symmetrize)
    assert sp.issparse(g.affinity)
    assert g.affinity.dtype == np.float64
    np.testing.assert_allclose(g.affinity.toarray(), W, rtol=1e-12, atol=1e-300)
    if symmetrize != "none":
        assert abs(g.affinity - g.affinity.T).max() == 0
    assert g.affinity.diagonal().sum() == 0


def test_knn_graph_global_sigma_and_float32(rng):
    X = rng.standard_normal((80, 3))
    g64 = knn_graph(X, 5, weight="gaussian", sigma=0.7)
    idx, d2 = ref.graph_knn_reference(X, X, 5, exclude_self=True)
    W = ref.graph_affinity_reference(idx, d2, "gaussian", 0, "mean", global_sigma=0.7)
    np.testing.assert_allclose(g64.affinity.toarray(), W, rtol=1e-12)
    g32 = knn_graph(X.astype(np.float32), 5, weight="gaussian", sigma=0.7)
    assert g32.affinity.dtype == np.float32
    np.testing.assert_allclose(g32.affinity.toarray(), W, rtol=1e-5, atol=1e-6)


def test_knn_graph_duplicates_never_nan():
    # More duplicates than sigma_neighbor: sigma_i would be 0 without the floor.
    X = np.zeros((20, 10))
    X[10:] = 1.0
    g = knn_graph(X, 5, sigma_neighbor=3)
    assert np.isfinite(g.affinity.data).all()
    assert (g.sigma > 0).all()
    assert g.n_components == 2
    np.testing.assert_array_equal(g.components, np.repeat([0, 1], 10))
    g = knn_graph(np.ones((6, 4)), 2)
    assert np.isfinite(g.affinity.data).all()
    assert (g.sigma == 1).all()


def test_knn_graph_torch_returns_torch_sparse(rng):
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(rng.standard_normal((30, 10)).astype(np.float32))
    X.requires_grad_(True)
    g = knn_graph(X, 4)
    assert g.affinity.layout == torch.sparse_csr
    ref_g = knn_graph(X.detach().numpy(), 4)
    np.testing.assert_array_equal(
        g.affinity.to_dense().numpy(), ref_g.affinity.toarray()
    )


def test_knn_graph_errors():
    with pytest.raises(ValueError, match="k: expected"):
        knn_graph(np.zeros((5, 3)), 5)
    with pytest.raises(ValueError, match="weight"):
        knn_graph(np.zeros((5, 3)), 2, weight="rbf")
    with pytest.raises(ValueError, match="symmetrize"):
        knn_graph(np.zeros((5, 3)), 2, symmetrize="avg")
    with pytest.raises(ValueError, match="sigma"):
        knn_graph(np.arange(15.0).reshape(5, 3), 2, weight="gaussian", sigma=-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        knn_graph(np.zeros((1, 3)), 1)


# ----------------------------------------------------------------- Laplacians


@pytest.mark.parametrize("kind", ["combinatorial", "symmetric", "random_walk"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_laplacian_matches_dense(rng, kind, dtype):
    A = rng.random((25, 25)) * (rng.random((25, 25)) < 0.2)
    W = (A + A.T).astype(dtype)
    W[3, :] = W[:, 3] = 0.0  # an isolated point
    W[4, 4] = 2.0  # a self loop, ignored
    res = laplacian(sp.csr_matrix(W), kind)
    assert res.laplacian.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        res.laplacian.toarray(),
        ref.graph_laplacian_reference(W, kind),
        rtol=tol,
        atol=tol,
    )
    if kind == "combinatorial":
        from scipy.sparse.csgraph import laplacian as scipy_laplacian

        W0 = W.astype(np.float64)
        np.fill_diagonal(W0, 0)
        np.testing.assert_allclose(
            res.laplacian.toarray(), scipy_laplacian(W0), atol=tol
        )


def test_laplacian_dense_torch_and_user_asymmetric(rng):
    torch = pytest.importorskip("torch")
    W = rng.random((8, 8))
    with pytest.warns(UserWarning, match="not symmetric"):
        res = laplacian(W)
    Ws = 0.5 * (W + W.T)
    np.testing.assert_allclose(
        res.laplacian.toarray(), ref.graph_laplacian_reference(Ws, "combinatorial")
    )
    res_t = laplacian(torch.from_numpy(Ws))
    assert res_t.laplacian.layout == torch.sparse_csr
    np.testing.assert_allclose(
        res_t.laplacian.to_dense().numpy(), res.laplacian.toarray()
    )


def test_laplacian_rejects_negative_and_nan():
    W = np.array([[0, -1.0], [-1.0, 0]])
    with pytest.raises(ValueError, match="non-negative"):
        laplacian(W)
    with pytest.raises(ValueError, match="finite"):
        laplacian(np.array([[0, np.nan], [np.nan, 0]]))
    with pytest.raises(ValueError, match="square"):
        laplacian(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kind"):
        laplacian(np.zeros((2, 2)), "normalized")


def test_connected_components_disconnected():
    W = sp.block_diag([np.ones((3, 3)), np.ones((2, 2)), np.zeros((1, 1))]).tocsr()
    n, labels = connected_components(W)
    assert n == 3
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 2])


# ---------------------------------------------------------------- eigensolver


@pytest.mark.parametrize("method", ["dense", "lobpcg"])
def test_smallest_eigenvectors_path_graph(method):
    n = 200
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tocsr()
    L = laplacian(W).laplacian
    res = smallest_eigenvectors(L, 4, method=method, tol=1e-8, maxiter=3000)
    exact = 2 - 2 * np.cos(np.pi * np.arange(4) / n)
    np.testing.assert_allclose(res.values, exact, atol=1e-7)
    assert res.residuals.max() < 1e-5
    V = res.vectors
    pivot = np.argmax(np.abs(V), axis=0)
    assert (V[pivot, np.arange(4)] > 0).all()
    again = smallest_eigenvectors(L, 4, method=method, tol=1e-8, maxiter=3000)
    np.testing.assert_allclose(np.abs(again.vectors.T @ V), np.eye(4), atol=1e-5)


def test_eigenvectors_float32_float64_agree(rng):
    X = rng.standard_normal((150, 10))
    L64 = laplacian(knn_graph(X, 8).affinity).laplacian
    L32 = laplacian(knn_graph(X.astype(np.float32), 8).affinity).laplacian
    a = smallest_eigenvectors(L64, 3).vectors
    b = smallest_eigenvectors(L32, 3).vectors
    np.testing.assert_allclose(np.abs(np.sum(a * b, 0)), 1.0, atol=1e-4)


# ------------------------------------------------------------------- L_SSL


def _labels(y, per_class, seed):
    r = np.random.default_rng(seed)
    out = np.full(len(y), -1)
    for c in np.unique(y):
        pick = r.choice(np.flatnonzero(y == c), per_class, replace=False)
        out[pick] = c
    return out


def test_ssl_affinity_matches_dense_reference(rng):
    X = rng.standard_normal((40, 5))
    W = knn_graph(X, 6).affinity
    y = np.full(40, -1)
    y[[0, 1, 2]] = 0
    y[[3, 4]] = 1
    y[5] = 2
    out = ssl_affinity(W, y)
    np.testing.assert_allclose(
        out.toarray(), ref.ssl_affinity_reference(W.toarray(), y), rtol=1e-12
    )
    # No labels: plain 2 W.
    np.testing.assert_allclose(
        ssl_affinity(W, np.full(40, -1)).toarray(), 2 * W.toarray()
    )


def _blobs(rng, n_per=40, centers=((0, 0), (6, 0), (0, 6))):
    X = np.concatenate([rng.standard_normal((n_per, 2)) + c for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per)
    return X, y


@pytest.mark.parametrize("model", [LaplacianSSL, LaplaceLearning, PoissonLearning])
def test_estimators_arbitrary_labels(rng, model):
    X, y = _blobs(rng)
    names = np.array([0, 2, 5])[y]  # labels like {0, 2, 5}
    yl = np.where(_labels(y, 2, 0) >= 0, names, -1)
    est = model(n_neighbors=8).fit(X, yl)
    np.testing.assert_array_equal(est.classes_, [0, 2, 5])
    assert (est.transduction_ == names).mean() > 0.95
    P = est.label_distributions_
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(1), 1.0)
    np.testing.assert_array_equal(est.classes_[P.argmax(1)], est.transduction_)
    assert (est.transduction_[yl != -1] == yl[yl != -1]).all()
    # Out of sample.
    new = np.array([[0.1, 0.2], [6.2, -0.1], [0.3, 5.8]])
    np.testing.assert_array_equal(est.predict(new), [0, 2, 5])
    Pn = est.predict_proba(new)
    np.testing.assert_allclose(Pn.sum(1), 1.0)


def test_knn_graph_names_x_for_nan():
    X = np.arange(15.0).reshape(5, 3)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="^X: expected finite values"):
        knn_graph(X, 2)


@pytest.mark.parametrize("model", [LaplacianSSL, LaplaceLearning, PoissonLearning])
def test_estimators_user_facing_errors(rng, model):
    X, y = _blobs(rng)
    yl = np.where(_labels(y, 2, 0) >= 0, y, -1)
    # Predicting before fit: a ValueError, not an AttributeError.
    with pytest.raises(ValueError, match="not fitted"):
        model().predict(X[:3])
    # The estimator's parameter is n_neighbors, not knn_graph's k.
    with pytest.raises(ValueError, match=r"^n_neighbors: expected 1 <= k <= 119"):
        model(n_neighbors=500).fit(X, yl)
    est = model(n_neighbors=8).fit(X, yl)
    # New points with the wrong number of features: the message used to
    # name internal arguments and swap expected and got ("reference:
    # expected 3 columns like query, got 2").
    with pytest.raises(ValueError, match=r"X: expected a non-empty \(M, 2\).*\(3, 3\)"):
        est.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"X: expected a non-empty \(M, 2\).*\(2,\)"):
        est.predict(np.zeros(2))
    with pytest.raises(ValueError, match=r"X: expected a non-empty \(M, 2\).*\(0, 2\)"):
        est.predict(np.zeros((0, 2)))
    bad = np.array([[0.0, np.nan]])
    with pytest.raises(ValueError, match="^X: expected finite"):
        est.predict(bad)


def test_lssl_flag_and_restarts_checked(rng):
    # drop_first=1 passed silently; n_init=0 failed inside scikit-learn.
    X, y = _blobs(rng)
    yl = np.where(_labels(y, 2, 0) >= 0, y, -1)
    with pytest.raises(ValueError, match="^drop_first: expected True or False"):
        LaplacianSSL(n_neighbors=8, drop_first=1).fit(X, yl)
    with pytest.raises(ValueError, match="^n_init: expected n_init >= 1, got 0"):
        LaplacianSSL(n_neighbors=8, n_init=0).fit(X, yl)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"mu1": -1.0}, "mu1"), ({"mu1": float("nan")}, "mu1"), ({"mu2": -1}, "mu2")],
)
def test_lssl_mixing_weights_checked(rng, kwargs, name):
    # A negative or NaN weight used to be reported as a bad affinity
    # ("W: expected non-negative affinities"), naming no parameter the
    # caller set.
    X, y = _blobs(rng)
    yl = np.where(_labels(y, 2, 0) >= 0, y, -1)
    with pytest.raises(ValueError, match=f"^{name}: expected a finite number >= 0"):
        LaplacianSSL(n_neighbors=8, **kwargs).fit(X, yl)
    W = knn_graph(X, 8).affinity
    with pytest.raises(ValueError, match=f"^{name}: expected a finite number >= 0"):
        ssl_affinity(W, yl, **kwargs)


@pytest.mark.parametrize("model", [LaplaceLearning, PoissonLearning])
def test_cg_settings_checked_and_non_convergence_warns(rng, model):
    X, y = _blobs(rng)
    yl = np.where(_labels(y, 2, 0) >= 0, y, -1)
    # tol <= 0 / NaN and max_iter <= 0 used to run silently: max_iter=0
    # returned all-zero solutions (about chance accuracy) with no message.
    for tol in (0.0, -1.0, float("nan"), "1e-3", True):
        with pytest.raises(ValueError, match="^tol: expected a finite number > 0"):
            model(n_neighbors=8, tol=tol).fit(X, yl)
    for max_iter, match in ((0, ">= 1, got 0"), (-3, ">= 1"), (2.5, "an integer")):
        with pytest.raises(ValueError, match=f"^max_iter: expected.*{match}"):
            model(n_neighbors=8, max_iter=max_iter).fit(X, yl)
    # One CG step cannot reach the tolerance: say so instead of returning
    # an unconverged answer silently.
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model(n_neighbors=8, max_iter=1).fit(X, yl)
    assert any("CG did not reach tol" in str(w.message) for w in record)
    # The defaults converge: no warning (warnings are errors in the tests).
    assert (model(n_neighbors=8).fit(X, yl).transduction_ == y).mean() > 0.95


@pytest.mark.parametrize("model", [LaplacianSSL, LaplaceLearning, PoissonLearning])
def test_estimators_class_without_label_warns_never_nan(rng, model):
    X, y = _blobs(rng)
    yl = _labels(y, 2, 1)
    yl[yl == 2] = -1
    with pytest.warns(UserWarning, match="no labelled point"):
        est = model(n_neighbors=8, classes=[0, 1, 2]).fit(X, yl)
    P = est.label_distributions_
    assert P.shape == (120, 3)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(1), 1.0)


@pytest.mark.parametrize("model", [LaplaceLearning, PoissonLearning])
def test_estimators_component_without_labels_is_uniform(model):
    W = sp.block_diag([np.ones((4, 4)), np.ones((3, 3))]).tocsr()
    y = np.array([0, 1, -1, -1, -1, -1, -1])
    with pytest.warns(UserWarning, match="without any labelled point"):
        est = model(affinity="precomputed").fit(W, y)
    np.testing.assert_allclose(est.label_distributions_[4:], 0.5)


def test_precomputed_user_affinity_checks():
    with pytest.raises(ValueError, match="non-negative"):
        LaplaceLearning(affinity="precomputed").fit(-np.ones((3, 3)), [0, -1, -1])
    W = np.array([[0, 1.0, 0], [0.5, 0, 1.0], [0, 1.0, 0]])
    with pytest.warns(UserWarning, match="not symmetric"):
        est = LaplaceLearning(affinity="precomputed").fit(W, [0, -1, 1])
    assert np.isfinite(est.label_distributions_).all()


def test_lssl_no_labels_is_spectral_clustering(rng):
    X, y = _blobs(rng)
    labels = spectral_clustering(knn_graph(X, 8).affinity, 3)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels) > 0.95
    W = knn_graph(X, 8).affinity
    np.testing.assert_allclose(
        ssl_affinity(W, np.full(120, -1)).toarray(), 2 * W.toarray()
    )


def test_get_params_roundtrip():
    est = LaplacianSSL(n_neighbors=5, mu1=3.0)
    params = est.get_params()
    assert params["n_neighbors"] == 5
    assert params["mu1"] == 3.0
    clone = LaplacianSSL(**params)
    assert clone.get_params() == params


def test_digits_accuracy_smoke():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = X[:600].astype(np.float32) / 16
    y = y[:600]
    yl = _labels(y, 5, 0)
    unl = yl == -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accs = {
            m.__name__: (
                m(n_neighbors=10).fit(X, yl).transduction_[unl] == y[unl]
            ).mean()
            for m in (LaplacianSSL, LaplaceLearning, PoissonLearning)
        }
    assert min(accs.values()) > 0.6, accs
    assert accs["LaplaceLearning"] > 0.85, accs


# ----------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_feature_knn_cuda_matches_cpu(rng):
    torch = pytest.importorskip("torch")
    X = rng.standard_normal((700, 48)).astype(np.float32)
    X[9] = X[2]
    cpu = feature_knn(X, k=10, block_size=256)
    gpu = feature_knn(torch.from_numpy(X).cuda(), k=10, block_size=256)
    np.testing.assert_array_equal(np.asarray(cpu.indices), to_numpy(gpu.indices))
    np.testing.assert_array_equal(np.asarray(cpu.distances), to_numpy(gpu.distances))
    g_cpu = knn_graph(X, 10)
    g_gpu = knn_graph(torch.from_numpy(X).cuda(), 10)
    assert g_gpu.affinity.device.type == "cuda"
    np.testing.assert_array_equal(
        g_gpu.affinity.to_dense().cpu().numpy(), g_cpu.affinity.toarray()
    )


def test_estimators_string_labels_and_torch_inputs(rng):
    X, y = _blobs(rng)
    names = np.array(["cat", "dog", "eel"])[y]
    yl = np.where(_labels(y, 2, 3) >= 0, names, "")
    est = LaplacianSSL(n_neighbors=8, unlabeled="").fit(X, yl)
    np.testing.assert_array_equal(est.classes_, ["cat", "dog", "eel"])
    assert (est.transduction_ == names).mean() > 0.95
    torch = pytest.importorskip("torch")
    codes = torch.from_numpy(_labels(y, 2, 3))
    Xt = torch.from_numpy(X).requires_grad_(True)
    est = PoissonLearning(n_neighbors=8).fit(Xt, codes)
    assert (est.transduction_ == y).mean() > 0.95

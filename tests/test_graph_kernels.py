# Tests for the graph kernels: projected exact kNN, deterministic assembly, CUDA.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from deepscope._arrays import prepare
from deepscope.graph import _knn_graph as kg
from deepscope.graph import graph_from_neighbors, knn_graph, laplacian

from tests import reference as ref
from tests.conftest import to_numpy


def _projected(X, k, block=64, reference=None):
    q = prepare(X, "q", ndim=(2,))
    idx, d2, _ = kg._search(
        q,
        reference,
        k=k,
        exclude_self=reference is None,
        block_size=block,
        projected=True,
    )
    return idx, d2


# ------------------------------------------------------- projected exact kNN


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(3))
def test_projected_search_equals_brute_force(dtype, seed):
    rng = np.random.default_rng(seed)
    # Low-rank structure plus noise, so that the bounds prune.
    n, D = 300, 96
    X = rng.standard_normal((n, 6)) @ rng.standard_normal((6, D))
    X += 0.05 * rng.standard_normal((n, D))
    X = X.astype(dtype)
    k = int(rng.integers(1, 20))
    idx, d2 = _projected(X, k)
    r_idx, r_d2 = ref.graph_knn_reference(X, X, k, exclude_self=True)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(d2, r_d2)
    assert kg._LAST_STATS["projected_dim"] == D // 4


def test_projected_search_ties_and_duplicates():
    rng = np.random.default_rng(5)
    X = (np.round(rng.random((250, 64)) * 2) / 2).astype(np.float32)
    X[10:20] = X[3]  # ten exact copies of one point
    idx, d2 = _projected(X, 12, block=32)
    r_idx, r_d2 = ref.graph_knn_reference(X, X, 12, exclude_self=True)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(d2, r_d2)
    assert (d2[3, :10] == 0).all()


def test_projected_search_k_is_all_other_points():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 80))
    idx, d2 = _projected(X, 39, block=16)
    r_idx, r_d2 = ref.graph_knn_reference(X, X, 39, exclude_self=True)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(d2, r_d2)


def test_projected_search_query_reference_and_offsets():
    rng = np.random.default_rng(7)
    R = rng.standard_normal((200, 4)) @ rng.standard_normal((4, 72)) + 1e4
    Q = R[:50] + 1e-3 * rng.standard_normal((50, 72))
    idx, d2 = _projected(Q, 7, block=48, reference=R)
    r_idx, r_d2 = ref.graph_knn_reference(Q, R, 7, exclude_self=False)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(d2, r_d2)


def test_projected_search_disconnected_clusters_and_identical_points():
    X = np.zeros((64, 64), np.float32)
    X[32:] = 100.0  # two groups of identical points
    idx, d2 = _projected(X, 5, block=16)
    r_idx, r_d2 = ref.graph_knn_reference(X, X, 5, exclude_self=True)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(d2, r_d2)


def test_projected_matches_direct_search_on_images():
    rng = np.random.default_rng(8)
    base = rng.random((12, 100))
    X = (base[rng.integers(0, 12, 600)] + 0.1 * rng.random((600, 100))).astype(
        np.float32
    )
    a = _projected(X, 10, block=128)
    q = prepare(X, "q", ndim=(2,))
    b = kg._search(q, None, k=10, exclude_self=True, block_size=128, projected=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert kg._LAST_STATS["exact_checks"] < 600 * 599  # the bounds pruned


def test_projected_k_out_of_range():
    X = np.zeros((10, 64))
    q = prepare(X, "q", ndim=(2,))
    with pytest.raises(ValueError, match="k:"):
        kg._search(q, None, k=10, exclude_self=True, block_size=8, projected=True)


# --------------------------------------------- assembly from neighbour lists


def test_det_exp_close_to_numpy_exp():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5))
    g = knn_graph(X, 8, weight="self_tuning", symmetrize="none")
    idx, d2 = ref.graph_knn_reference(X, X, 8, exclude_self=True)
    sig = np.sqrt(d2[:, 6])
    W = g.affinity.toarray()
    want = np.exp(-d2 / sig[:, None] ** 2)
    got = W[np.arange(400)[:, None], idx]
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)


def test_graph_from_neighbors_prefix_equals_knn_graph():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 20))
    X[4] = X[9]
    idx, d2 = ref.graph_knn_reference(X, X, 15, exclude_self=True)
    for weight in ("self_tuning", "kth_neighbor", "connectivity"):
        a = knn_graph(X, 6, weight=weight)
        b = graph_from_neighbors(idx[:, :6], d2[:, :6], weight=weight)
        assert (a.affinity != b.affinity).nnz == 0
        assert a.n_components == b.n_components


def test_graph_from_neighbors_errors_and_missing_entries():
    idx = np.array([[1, 2], [0, -1], [0, 1]])
    d2 = np.array([[1.0, 4.0], [1.0, np.inf], [4.0, 5.0]])
    g = graph_from_neighbors(idx, d2, weight="connectivity", symmetrize="max")
    np.testing.assert_array_equal(
        g.affinity.toarray(), [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    )
    with pytest.raises(ValueError, match="indices"):
        graph_from_neighbors(np.array([[1, 1], [0, 2], [0, 1]]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="indices"):
        graph_from_neighbors(np.array([[3], [0], [1]]), np.ones((3, 1)))
    with pytest.raises(ValueError, match="distances"):
        graph_from_neighbors(np.array([[1], [0], [1]]), -np.ones((3, 1)))
    with pytest.raises(ValueError, match="shapes"):
        graph_from_neighbors(np.array([[1], [0]]), np.ones((3, 1)))
    with pytest.raises(ValueError, match="dtype"):
        graph_from_neighbors(idx, d2, dtype="float16")


def test_label_spreading_kernel_matches_sklearn_knn_kernel():
    from sklearn.datasets import load_digits
    from sklearn.semi_supervised import LabelSpreading

    from deepscope.graph._evaluate import draw_labels, evaluate_ssl

    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    ev = evaluate_ssl(
        X,
        y,
        labels_per_class=(3,),
        n_seeds=2,
        methods=("label_spreading", "laplace"),
        seeds_for={"laplace": 1},
    )
    assert ev.accuracy["label_spreading"][3].shape == (2,)
    assert ev.accuracy["laplace"][3].shape == (1,)
    for seed in range(2):
        yl = draw_labels(y, 3, seed)
        pred = LabelSpreading(kernel="knn", n_neighbors=10).fit(X, yl).transduction_
        acc = np.mean(pred[yl < 0] == y[yl < 0])
        assert acc == pytest.approx(ev.accuracy["label_spreading"][3][seed])


# ----------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("symmetrize", ["mean", "max", "min", "none"])
def test_knn_graph_cuda_assembly_bitwise(dtype, symmetrize):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((900, 24)).astype(dtype)
    X[7] = X[8] = X[9]  # duplicates: zero scales are floored
    for weight in ("self_tuning", "self_tuning_symmetric", "kth_neighbor"):
        cpu = knn_graph(X, 9, weight=weight, symmetrize=symmetrize)
        gpu = knn_graph(
            torch.from_numpy(X).cuda(), 9, weight=weight, symmetrize=symmetrize
        )
        W = gpu.affinity
        assert W.device.type == "cuda"
        assert W.layout == torch.sparse_csr
        np.testing.assert_array_equal(
            W.crow_indices().cpu().numpy(), cpu.affinity.indptr
        )
        np.testing.assert_array_equal(
            W.col_indices().cpu().numpy(), cpu.affinity.indices
        )
        np.testing.assert_array_equal(W.values().cpu().numpy(), cpu.affinity.data)
        np.testing.assert_array_equal(gpu.sigma, cpu.sigma)
        assert gpu.n_components == cpu.n_components


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["combinatorial", "symmetric", "random_walk"])
def test_laplacian_cuda_bitwise(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    X = rng.standard_normal((500, 16))
    X[250:] += 50.0  # two components
    W = knn_graph(X, 6).affinity
    W = W.tolil()
    W[3, 3] = 0.5  # a self loop is ignored
    W[10, :] = 0  # an isolated point
    W[:, 10] = 0
    W = W.tocsr()
    W.eliminate_zeros()
    cpu = laplacian(W, kind)
    Wt = torch.sparse_csr_tensor(
        torch.from_numpy(W.indptr.astype(np.int64)),
        torch.from_numpy(W.indices.astype(np.int64)),
        torch.from_numpy(W.data),
        size=W.shape,
    ).cuda()
    gpu = laplacian(Wt, kind)
    L = gpu.laplacian
    assert L.device.type == "cuda"
    np.testing.assert_array_equal(L.crow_indices().cpu().numpy(), cpu.laplacian.indptr)
    np.testing.assert_array_equal(L.col_indices().cpu().numpy(), cpu.laplacian.indices)
    np.testing.assert_array_equal(L.values().cpu().numpy(), cpu.laplacian.data)
    np.testing.assert_array_equal(gpu.degrees, cpu.degrees)
    dense = torch.from_numpy(W.toarray()).cuda()
    np.testing.assert_array_equal(
        laplacian(dense, kind).laplacian.to_dense().cpu().numpy(),
        cpu.laplacian.toarray(),
    )


@pytest.mark.cuda
def test_laplacian_cuda_asymmetric_and_invalid():
    torch = pytest.importorskip("torch")
    A = torch.tensor([[0.0, 1.0], [0.0, 0.0]], device="cuda")
    with pytest.warns(UserWarning, match="not symmetric"):
        out = laplacian(A)
    assert out.laplacian.device.type == "cuda"
    np.testing.assert_allclose(
        to_numpy(out.laplacian.to_dense()), [[0.5, -0.5], [-0.5, 0.5]]
    )
    with pytest.raises(ValueError, match="non-negative"):
        laplacian(-A - A.T)
    with pytest.raises(ValueError, match="finite"):
        laplacian(torch.full((2, 2), float("nan"), device="cuda"))
    empty = sp.csr_matrix((3, 3))
    assert laplacian(empty).laplacian.nnz == 3


def test_evaluate_ssl_precomputed_neighbors_shape_checked():
    from deepscope.graph._evaluate import evaluate_ssl

    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 5))
    y = np.repeat(np.arange(3), 20)
    idx, d2 = ref.graph_knn_reference(X, X, 12, exclude_self=True)
    ev = evaluate_ssl(
        X,
        y,
        labels_per_class=(2,),
        n_seeds=1,
        methods=("laplace", "spectral"),
        neighbors=(idx, d2),
    )
    assert ev.accuracy["laplace"][2].shape == (1,)
    with pytest.raises(ValueError, match="neighbors"):
        evaluate_ssl(X, y, methods=("laplace",), neighbors=(idx[:, :5], d2[:, :5]))

# kNN search for feature vectors and kNN affinity graphs in CSR.
# SPDX-License-Identifier: MIT
"""Exact kNN for features of any dimension, and weighted kNN graphs.

Low-dimensional points (D <= 8) go through the kd-tree of
:func:`deepscope.pointcloud.knn`. Higher dimensions use a blocked search:
Gram blocks from BLAS / cuBLAS (``torch.mm``) merged into per-row candidate
pools by a fused top-k kernel, then an exact float64 re-ranking of every
pool with a rounding certificate; the few rows the certificate cannot prove
are redone by an exact search. No dense N x N matrix is ever held.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import View, check_count, check_finite, prepare, to_numpy
from deepscope.pointcloud import KNNResult, knn

__all__ = ["KNNGraph", "feature_knn", "knn_graph"]

Array = Any

# Dimensions up to this use the kd-tree; above it the blocked GEMM search.
KD_TREE_MAX_DIM = 8

_WEIGHTS = {
    "connectivity": 0,
    "distance": 1,
    "self_tuning": 2,
    "kth_neighbor": 2,
    "gaussian": 2,
    "self_tuning_symmetric": 3,
}
_SYMMETRIZE = {"mean": 0, "max": 1, "min": 2, "none": 3}


class KNNGraph(NamedTuple):
    """A weighted kNN graph.

    Attributes:
        affinity: (N, N) sparse CSR affinity W, non-negative, no diagonal:
            ``scipy.sparse.csr_matrix`` for NumPy input, a torch sparse CSR
            tensor (on the input's device) for torch input. float64 for
            float64 input, else float32.
        n_components: number of connected components of W.
        components: (N,) int64 component label of every point.
        indices: (N, k) int64 neighbours of every point (self excluded by
            index), as NumPy.
        distances: (N, k) float64 squared distances, as NumPy.
        sigma: (N,) float64 per-point kernel scale (all equal for a global
            sigma; ones for connectivity / distance weights).
    """

    affinity: Any
    n_components: int
    components: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    sigma: np.ndarray


def _core() -> Any:
    from deepscope import _core

    return _core


def _torch_of(view: View) -> Any:
    """A torch tensor sharing memory with ``view`` (NumPy or torch)."""
    import torch

    if view.framework == "torch":
        return view.array
    if view.framework == "numpy":
        a = view.array
        return torch.from_numpy(a if a.flags.writeable else a.copy())
    raise ValueError(
        "X: CuPy arrays are not supported by the graph module; pass NumPy or torch"
    )


def _check_k(k: Any, available: int, name: str = "k") -> int:
    return check_count(k, name, 1, available, what="points available as neighbours")


def feature_knn(
    query: Array,
    reference: Array | None = None,
    *,
    k: int,
    exclude_self: bool | None = None,
    block_size: int = 4096,
) -> KNNResult:
    """Exact k nearest neighbours for feature vectors of any dimension.

    Args:
        query: (M, D) float16, bfloat16, float32 or float64, NumPy or torch
            (CPU or CUDA).
        reference: (N, D) same dtype / framework / device; ``None`` searches
            ``query`` against itself.
        k: neighbours per query; ``1 <= k <= N`` (``N - 1`` when excluding
            self).
        exclude_self: skip each query's own index. Defaults to ``True`` for
            a self-search; only valid for one. Exact duplicates at other
            indices stay neighbours at distance 0.
        block_size: rows / columns per Gram block of the blocked search.

    Returns:
        KNNResult ``(indices, distances, counts)``: (M, k) int64 ascending
        by (squared distance, index), (M, k) squared distances in the input
        float dtype (float32 for half inputs), (M,) int64 counts. Distances
        are the exact float64 left-to-right sums of squared differences,
        identical on CPU and CUDA.

    Raises:
        ValueError: bad rank, dtype, framework, NaN / inf, or k out of range.
    """
    q = prepare(query, "query", ndim=(2,))
    idx, d2, view = _search(
        q, reference, k=k, exclude_self=exclude_self, block_size=block_size
    )
    return KNNResult(
        _like(view, idx),
        _like(view, d2.astype(view.dtype)),
        _like(view, np.full(idx.shape[0], idx.shape[1], dtype=np.int64)),
    )


def _like(view: View, host: np.ndarray) -> Any:
    from deepscope._arrays import as_array

    return as_array(view, host, str(host.dtype))


def _search(
    q: View,
    reference: Array | None,
    *,
    k: Any,
    exclude_self: bool | None,
    block_size: int,
) -> tuple[np.ndarray, np.ndarray, View]:
    """Exact kNN as host (indices int64, squared distances float64)."""
    check_finite(q, "query")
    self_search = reference is None
    if exclude_self is None:
        exclude_self = self_search
    if exclude_self and not self_search:
        raise ValueError("exclude_self: only valid for a self-search (reference=None)")
    r = q if self_search else prepare(reference, "reference", ndim=(2,), like=q)
    if not self_search:
        check_finite(r, "reference")
        if r.dtype != q.dtype:
            raise ValueError(
                f"reference: expected dtype {q.dtype} like query, got {r.dtype}"
            )
    m, dim = q.shape
    n = r.shape[0]
    if r.shape[1] != dim:
        raise ValueError(
            f"reference: expected {dim} columns like query, got {r.shape[1]}"
        )
    if m == 0 or n == 0:
        raise ValueError(
            f"query/reference: expected non-empty arrays, got {m} and {n} rows"
        )
    k = _check_k(k, n - 1 if exclude_self else n)
    block_size = check_count(block_size, "block_size")

    if dim <= KD_TREE_MAX_DIM:
        idx, d2 = _kd_tree_search(q, r, k, exclude_self, self_search)
    else:
        # The rounding certificate assumes IEEE GEMMs: no TF32 / bf16 paths.
        with _highest_matmul_precision():
            idx, d2 = _blocked_search(q, r, k, exclude_self, int(block_size))
    return idx, d2, q


# torch's float32 matmul precision is process-wide: searches running in
# several threads share one "highest" section, and the caller's setting is
# restored when the last of them ends.
_PRECISION_LOCK = threading.Lock()
_PRECISION_STATE: dict[str, Any] = {"users": 0, "saved": None}


@contextlib.contextmanager
def _highest_matmul_precision() -> Iterator[None]:
    import torch

    state = _PRECISION_STATE
    with _PRECISION_LOCK:
        if state["users"] == 0:
            state["saved"] = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("highest")
        state["users"] += 1
    try:
        yield
    finally:
        with _PRECISION_LOCK:
            state["users"] -= 1
            if state["users"] == 0:
                torch.set_float32_matmul_precision(state["saved"])


def _kd_tree_search(
    q: View, r: View, k: int, exclude_self: bool, self_search: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Low-D exact kNN through the kd-tree, distances in float64."""
    q64 = _as64(q)
    if self_search:
        res = knn(q64, k=k, exclude_self=exclude_self)
    else:
        res = knn(q64, _as64(r), k=k)
    return to_numpy(res.indices).astype(np.int64), to_numpy(res.distances).astype(
        np.float64
    )


def _as64(v: View) -> Any:
    if v.framework == "torch":
        return v.array.to(dtype=__import__("torch").float64)
    return np.asarray(v.array, dtype=np.float64)


def _blocked_search(
    q: View, r: View, k: int, exclude_self: bool, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked GEMM + fused top-k pools + exact certified re-ranking."""
    import torch

    core = _core()
    qt, rt = _torch_of(q), _torch_of(r)
    m, dim = qt.shape
    n = rt.shape[0]
    device = q.device
    dev = qt.device
    dtype = qt.dtype
    eps = float(torch.finfo(dtype).eps)

    # Centre on the reference mean (float64) to shrink the rounding slack;
    # in row chunks, so that no float64 copy of the data is held.
    mean = rt.sum(0, dtype=torch.float64) / n

    def centred(x: Any) -> tuple[Any, Any]:
        out = torch.empty_like(x)
        norms = torch.empty(x.shape[0], dtype=torch.float64, device=dev)
        for s in range(0, x.shape[0], block):
            c = (x[s : s + block].to(torch.float64) - mean).to(dtype)
            out[s : s + block] = c
            norms[s : s + block] = (c.to(torch.float64) ** 2).sum(1)
        return out, norms

    qc, qn64 = centred(qt)
    rc, rn64 = (qc, qn64) if r is q else centred(rt)
    qn, rn = qn64.to(dtype).contiguous(), rn64.to(dtype).contiguous()

    # Pool: k plus a margin, bounded by the candidates and the CUDA limit.
    available = n - 1 if exclude_self else n
    pool = min(available, k + max(k, 16), 128)
    pool = max(pool, k)
    pool_idx = torch.full((m, pool), -1, dtype=torch.int64, device=dev)
    pool_d2 = torch.full((m, pool), math.inf, dtype=torch.float64, device=dev)
    stream = q.stream
    dtype_name = q.dtype

    # Stage 1: Gram blocks merged into the pools. A self-search computes
    # each off-diagonal block once and merges it into both row ranges.
    def merge(gram: Any, rows: range, cols: range, transposed: bool) -> None:
        # gram holds (rows x cols) row-major, or (cols x rows) if transposed.
        nr, nc = len(rows), len(cols)
        rs, cs = (1, nr) if transposed else (nc, 1)
        core.topk_block_update(
            gram.data_ptr(),
            qn[rows.start : rows.stop].data_ptr(),
            rn[cols.start : cols.stop].data_ptr(),
            nr,
            nc,
            rs,
            cs,
            rows.start,
            cols.start,
            pool,
            bool(exclude_self),
            pool_idx[rows.start : rows.stop].data_ptr(),
            pool_d2[rows.start : rows.stop].data_ptr(),
            dtype_name,
            device,
            stream,
        )

    # CPU reads either layout of a block; CUDA (one thread per row) reads the
    # transposed layout so that neighbouring threads read neighbours.
    on_cuda = device >= 0
    for i0 in range(0, m, block):
        rows = range(i0, min(m, i0 + block))
        qb = qc[rows.start : rows.stop]
        first = i0 if r is q else 0
        for j0 in range(first, n, block):
            cols = range(j0, min(n, j0 + block))
            gram = torch.mm(qb, rc[cols.start : cols.stop].T)  # rows x cols
            merge(gram if not on_cuda else gram.T.contiguous(), rows, cols, on_cuda)
            if r is q and j0 != i0:
                merge(gram, cols, rows, True)

    # Stage 2: exact float64 distances of the pools, with the certificate.
    slack = 4.0 * (dim + 8) * (eps + 2.0 * 2.0**-52) * (qn64 + rn64.max())
    slack = slack.contiguous()
    qsrc = qt.contiguous()
    rsrc = rt.contiguous()
    out_idx = torch.empty((m, k), dtype=torch.int64, device=dev)
    out_d2 = torch.empty((m, k), dtype=torch.float64, device=dev)
    cert = torch.empty((m,), dtype=torch.int64, device=dev)
    core.rerank_pool(
        qsrc.data_ptr(),
        rsrc.data_ptr(),
        m,
        dim,
        pool,
        k,
        pool_idx.data_ptr(),
        pool_d2.data_ptr(),
        slack.data_ptr(),
        out_idx.data_ptr(),
        out_d2.data_ptr(),
        cert.data_ptr(),
        dtype_name,
        device,
        stream,
    )
    idx = out_idx.cpu().numpy()
    d2 = out_d2.cpu().numpy()

    # Rows the certificate could not prove: exact search for those rows.
    todo = np.flatnonzero(cert.cpu().numpy() == 0)
    if pool >= available:  # every pool holds all candidates: nothing to prove
        todo = todo[:0]
    if todo.size:
        _redo_rows(qt, rt, todo, k, exclude_self, idx, d2)
    return idx, d2


def _redo_rows(
    qt: Any,
    rt: Any,
    rows: np.ndarray,
    k: int,
    exclude_self: bool,
    idx: np.ndarray,
    d2: np.ndarray,
) -> None:
    """Exact kNN of ``rows`` by the pointcloud search, written in place."""
    import torch

    sel = torch.as_tensor(rows, device=qt.device)
    qs = qt[sel].to(torch.float64)
    rs = rt.to(torch.float64)
    extra = 1 if exclude_self else 0
    res = knn(qs, rs, k=k + extra)
    ri = res.indices.cpu().numpy()
    rd = res.distances.cpu().numpy()
    for t, row in enumerate(rows):
        keep = ri[t] != row if exclude_self else np.ones(ri.shape[1], bool)
        ci, cd = ri[t][keep][:k], rd[t][keep][:k]
        idx[row], d2[row] = ci, cd


def knn_graph(
    X: Array,
    k: int,
    *,
    weight: str = "self_tuning",
    sigma_neighbor: int | None = None,
    sigma: float | None = None,
    symmetrize: str = "mean",
    block_size: int = 4096,
) -> KNNGraph:
    """Weighted, symmetrised kNN affinity graph in sparse CSR.

    Args:
        X: (N, D) float16, bfloat16, float32 or float64 points, NumPy or
            torch. Self is excluded by index; exact duplicates are ordinary
            neighbours at distance 0.
        k: neighbours per point, ``1 <= k <= N - 1``.
        weight: edge weight of the directed edge i -> j at distance d:
            ``"self_tuning"``: exp(-d^2 / sigma_i^2), sigma_i the distance to
            the ``sigma_neighbor``-th neighbour (Zelnik-Manor and Perona);
            ``"self_tuning_symmetric"``: exp(-d^2 / (sigma_i sigma_j));
            ``"kth_neighbor"``: exp(-4 d^2 / d_k(i)^2), d_k the k-th
            neighbour distance (Calder's GraphLearning form);
            ``"gaussian"``: exp(-d^2 / sigma^2) with one global ``sigma``
            (default: the median of the ``sigma_neighbor``-th distances);
            ``"connectivity"``: 1; ``"distance"``: d.
        sigma_neighbor: which neighbour (1-based, self not counted) sets
            sigma_i; default min(7, k). A zero scale (duplicates) is floored
            to the point's nearest non-zero neighbour distance, else to the
            median positive scale, else 1, so duplicates never give 0/0.
        sigma: the global scale for ``"gaussian"``.
        symmetrize: ``"mean"`` (W + W^T) / 2, ``"max"`` (union), ``"min"``
            (mutual kNN) or ``"none"`` (directed rows).
        block_size: Gram block size of the high-dimensional search.

    Returns:
        KNNGraph with the CSR affinity and its connected components.

    Raises:
        ValueError: bad input, unknown option, k out of range, sigma <= 0.
    """
    if weight not in _WEIGHTS:
        raise ValueError(f"weight: expected one of {sorted(_WEIGHTS)}, got {weight!r}")
    if symmetrize not in _SYMMETRIZE:
        raise ValueError(
            f"symmetrize: expected one of {sorted(_SYMMETRIZE)}, got {symmetrize!r}"
        )
    view = prepare(X, "X", ndim=(2,))
    n = view.shape[0]
    if n < 2:
        raise ValueError(f"X: expected at least 2 points for a graph, got {n}")
    idx, d2, _ = _search(view, None, k=k, exclude_self=True, block_size=block_size)
    k = idx.shape[1]

    # Kernel scale parameters.
    scale = 4.0 if weight == "kth_neighbor" else 1.0
    if weight == "kth_neighbor":
        sigma_col = k - 1
    else:
        if sigma_neighbor is None:
            sigma_neighbor = min(7, k)
        sigma_neighbor = _check_k(sigma_neighbor, k, "sigma_neighbor")
        sigma_col = sigma_neighbor - 1
    col = d2[:, sigma_col]
    positive = np.sqrt(col[col > 0])
    floor = float(np.median(positive)) if positive.size else 1.0
    global_sigma = 0.0
    if weight == "gaussian":
        global_sigma = floor if sigma is None else float(sigma)
        if not (global_sigma > 0 and math.isfinite(global_sigma)):
            raise ValueError(f"sigma: expected a finite value > 0, got {sigma}")
    elif sigma is not None:
        raise ValueError(
            f"sigma: only used with weight='gaussian', got weight={weight!r}"
        )

    W, sig = _assemble(
        idx,
        d2,
        view.dtype,
        _WEIGHTS[weight],
        _SYMMETRIZE[symmetrize],
        sigma_col,
        scale,
        global_sigma,
        floor,
    )
    if weight in ("connectivity", "distance"):
        sig = np.ones(n)
    n_comp, comp = _components(W)
    return KNNGraph(_to_framework(W, view), n_comp, comp, idx, d2, sig)


def _assemble(
    idx: np.ndarray,
    d2: np.ndarray,
    dtype: str,
    weight: int,
    symmetrize: int,
    sigma_col: int,
    scale: float,
    global_sigma: float,
    floor: float,
) -> tuple[Any, np.ndarray]:
    """Runs the CSR assembly kernel; returns (scipy CSR, sigma)."""
    import scipy.sparse as sp

    n, k = idx.shape
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    d2 = np.ascontiguousarray(d2, dtype=np.float64)
    sig = np.empty(n, np.float64)
    indptr = np.empty(n + 1, np.int64)
    cols = np.empty(max(1, 2 * n * k), np.int64)
    vals = np.empty(max(1, 2 * n * k), dtype)
    nnz = _core().assemble_knn_graph(
        idx.ctypes.data,
        d2.ctypes.data,
        n,
        k,
        weight,
        symmetrize,
        sigma_col,
        scale,
        global_sigma,
        floor,
        sig.ctypes.data,
        indptr.ctypes.data,
        cols.ctypes.data,
        vals.ctypes.data,
        dtype,
    )
    W = sp.csr_matrix((vals[:nnz].copy(), cols[:nnz].copy(), indptr), shape=(n, n))
    return W, sig


def _components(W: Any) -> tuple[int, np.ndarray]:
    from scipy.sparse.csgraph import connected_components

    n_comp, labels = connected_components(W, directed=True, connection="weak")
    return int(n_comp), labels.astype(np.int64)


def _to_framework(W: Any, view: View) -> Any:
    """SciPy CSR for NumPy callers, torch sparse CSR for torch callers."""
    if view.framework != "torch":
        return W
    from deepscope.graph._laplacian import torch_csr

    device = "cpu" if view.device < 0 else f"cuda:{view.device}"
    return torch_csr(W, device)

# kNN search for feature vectors and kNN affinity graphs in CSR.
# SPDX-License-Identifier: MIT
"""Exact kNN for features of any dimension, and weighted kNN graphs.

Low-dimensional points (D <= 8) go through the kd-tree of
:func:`deepscope.pointcloud.knn`. Higher dimensions use a blocked search:
Gram blocks from BLAS / cuBLAS (``torch.mm``) merged into per-row candidate
pools by a fused top-k kernel, then an exact float64 re-ranking of every
pool with a rounding certificate; the few rows the certificate cannot prove
are redone by an exact search. Large CPU self-searches in many dimensions
use the projected search instead (:func:`_projected_search`): Gram blocks of
a (p + 1)-dimensional embedding whose distances are lower bounds, and exact
float64 distances only where a bound cannot exclude a point; the results
are the same bits. No dense N x N matrix is ever held.
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

__all__ = ["KNNGraph", "feature_knn", "graph_from_neighbors", "knn_graph"]

Array = Any

# Dimensions up to this use the kd-tree; above it the blocked GEMM search.
KD_TREE_MAX_DIM = 8

# The projected (lower-bound) search on the CPU: from this dimension and
# this many query x reference pairs; PROJECTED_DIM principal directions (at
# most a quarter of the dimension), the basis fitted on BASIS_SAMPLE rows.
PROJECTED_MIN_DIM = 64
PROJECTED_MIN_PAIRS = 30000 * 30000
PROJECTED_DIM = 128
BASIS_SAMPLE = 8192
# Gram blocks of the projected search stay cache-sized: they are narrow.
PROJECTED_BLOCK = 4096
# Whether the automatic choice may pick the projected search.
PROJECTED_AUTO = True

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
            Large CPU self-searches (D >= 64, N >= 30000) use the projected
            lower-bound search instead, with identical results.

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
    projected: bool | None = None,
    name: str = "query",
) -> tuple[np.ndarray, np.ndarray, View]:
    """Exact kNN as host (indices int64, squared distances float64).

    ``projected`` forces (True) or forbids (False) the CPU lower-bound
    search; ``None`` chooses by size and dimension. ``name`` is the query's
    argument name in error messages.
    """
    check_finite(q, name)
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
        if projected is None:
            projected = (
                PROJECTED_AUTO
                and self_search
                and q.device < 0
                and dim >= PROJECTED_MIN_DIM
                and m * n >= PROJECTED_MIN_PAIRS
            )
        if projected and q.device >= 0:
            raise ValueError("projected: the projected search runs on the CPU only")
        with _highest_matmul_precision():
            if projected:
                idx, d2 = _projected_search(q, r, k, exclude_self, int(block_size))
            else:
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


def _projected_search(
    q: View, r: View, k: int, exclude_self: bool, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN on the CPU by lower bounds from a low-dimensional embedding.

    Each point x (centred on the reference mean) is embedded as
    e(x) = [V^T x, ||x - V V^T x||] with V (D, p) orthonormal. For any two
    points ||e(x) - e(y)||^2 = ||V^T (x - y)||^2 + (||r_x|| - ||r_y||)^2 <=
    ||V^T (x - y)||^2 + ||r_x - r_y||^2 = ||x - y||^2 (triangle inequality on
    the residuals r), so embedded squared distances are lower bounds, up to
    a per-row rounding slack that covers the working-dtype GEMM, the cast
    of the embedding to that dtype, the float64 embedding arithmetic and
    the measured loss of orthonormality of V. Any orthonormal V keeps the
    bound; principal directions make it tight.

    Pass 1 (GEMMs of width p + 1) collects each row's best lower bounds into
    a pool and re-ranks the pool exactly; rows whose pool certifies itself
    are final. Pass 2 recomputes the Gram blocks and, for every other row,
    computes the exact float64 distance of each point whose bound minus the
    slack does not exceed the row's current k-th exact distance, merging it
    into the row's list. Every skipped point is provably no closer than the
    k-th, so the result equals the float64 brute force with ties broken by
    the lowest index. Memory is O((M + N) p + M k).
    """
    import torch

    core = _core()
    qt, rt = _torch_of(q), _torch_of(r)
    m, dim = qt.shape
    n = rt.shape[0]
    dtype = qt.dtype
    f64 = torch.float64
    eps = float(torch.finfo(dtype).eps)
    p = max(1, min(PROJECTED_DIM, dim // 4))
    block = max(1, min(block, PROJECTED_BLOCK))

    # Orthonormal basis: leading principal directions of a strided sample.
    mean = rt.sum(0, dtype=f64) / n
    step = max(1, n // BASIS_SAMPLE)
    sample = rt[::step][:BASIS_SAMPLE].to(f64) - mean
    s32 = sample.to(torch.float32)
    cov = (s32.T @ s32).to(f64)
    # Seeded subspace iteration (a full D x D eigh is slow on a busy CPU),
    # Rayleigh-Ritz, then QR: any orthonormal basis keeps the bound.
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(dim, min(dim, p + 8), generator=gen, dtype=f64)
    for _ in range(2):
        basis, _ = torch.linalg.qr(cov @ basis)
    _, rot = torch.linalg.eigh(basis.T @ cov @ basis)
    V, _ = torch.linalg.qr((basis @ rot[:, -p:].flip(1)).contiguous())
    ortho = float(torch.linalg.matrix_norm(V.T @ V - torch.eye(p, dtype=f64), 2))

    def embed(x: Any) -> tuple[Any, Any]:
        out = torch.empty((x.shape[0], p + 1), dtype=dtype)
        for s in range(0, x.shape[0], block):
            xc = x[s : s + block].to(f64) - mean
            z = xc @ V
            out[s : s + block, :p] = z.to(dtype)
            out[s : s + block, p] = torch.linalg.vector_norm(xc - z @ V.T, dim=1).to(
                dtype
            )
        return out, (out.to(f64) ** 2).sum(1)

    qe, qn64 = embed(qt)
    re, rn64 = (qe, qn64) if r is q else embed(rt)
    qn, rn = qn64.to(dtype).contiguous(), rn64.to(dtype).contiguous()

    # Rounding slack of the lower bounds, per query row.
    width = p + 1
    rel = (
        4.0 * (width + 8) * (eps + 2.0 * 2.0**-52)
        + 8.0 * eps
        + 4.0 * ortho
        + 16.0 * (dim + p + 8) * 2.0**-52
    )
    slack = (rel * (qn64 + rn64.max())).contiguous()

    available = n - 1 if exclude_self else n
    if r is q and m > block:
        return _projected_self_search(
            qt, qe, qn, slack, k, block, q.dtype, exclude_self, p
        )
    pool = min(available, 2 * k + 8)
    pool_idx = torch.full((m, pool), -1, dtype=torch.int64)
    pool_d2 = torch.full((m, pool), math.inf, dtype=f64)
    dtype_name = q.dtype
    self_search = r is q

    def blocks() -> Any:
        # Gram blocks of the embedding; a self-search computes each
        # off-diagonal block once and uses it for both row ranges.
        for i0 in range(0, m, block):
            rows = range(i0, min(m, i0 + block))
            for j0 in range(i0 if self_search else 0, n, block):
                cols = range(j0, min(n, j0 + block))
                gram = torch.mm(
                    qe[rows.start : rows.stop], re[cols.start : cols.stop].T
                )
                yield gram, rows, cols, False
                if self_search and j0 != i0:
                    yield gram, cols, rows, True

    def layout(rows: range, cols: range, transposed: bool) -> tuple[int, int]:
        return (1, len(rows)) if transposed else (len(cols), 1)

    # Pass 1: pools of the best lower bounds, then exact re-ranking.
    for gram, rows, cols, transposed in blocks():
        rs, cs = layout(rows, cols, transposed)
        core.topk_block_update(
            gram.data_ptr(),
            qn[rows.start : rows.stop].data_ptr(),
            rn[cols.start : cols.stop].data_ptr(),
            len(rows),
            len(cols),
            rs,
            cs,
            rows.start,
            cols.start,
            pool,
            bool(exclude_self),
            pool_idx[rows.start : rows.stop].data_ptr(),
            pool_d2[rows.start : rows.stop].data_ptr(),
            dtype_name,
            -1,
            0,
        )
    qsrc, rsrc = qt.contiguous(), rt.contiguous()
    top_idx = torch.empty((m, k), dtype=torch.int64)
    top_d2 = torch.empty((m, k), dtype=f64)
    cert = torch.empty((m,), dtype=torch.int64)
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
        top_idx.data_ptr(),
        top_d2.data_ptr(),
        cert.data_ptr(),
        dtype_name,
        -1,
        0,
    )
    del pool_idx, pool_d2

    # Pass 2: exact refinement of the rows the pools could not certify.
    open_rows = cert == 0
    if pool < available and bool(open_rows.any()):
        row_slack = torch.where(open_rows, slack, torch.full_like(slack, math.nan))
        checked = torch.zeros((m,), dtype=torch.int64)
        for gram, rows, cols, transposed in blocks():
            rs, cs = layout(rows, cols, transposed)
            core.refine_block(
                gram.data_ptr(),
                qn[rows.start : rows.stop].data_ptr(),
                rn[cols.start : cols.stop].data_ptr(),
                len(rows),
                len(cols),
                rs,
                cs,
                rows.start,
                cols.start,
                k,
                bool(exclude_self),
                dim,
                row_slack[rows.start : rows.stop].data_ptr(),
                qsrc.data_ptr(),
                rsrc.data_ptr(),
                0,
                0,
                top_idx[rows.start : rows.stop].data_ptr(),
                top_d2[rows.start : rows.stop].data_ptr(),
                checked[rows.start : rows.stop].data_ptr(),
                dtype_name,
                -1,
            )
        _LAST_STATS.update(
            certified=int(m - int(open_rows.sum())),
            exact_checks=int(checked.sum()),
        )
    else:
        _LAST_STATS.update(certified=m, exact_checks=0)
    _LAST_STATS.update(projected_dim=p, pool=pool)
    return top_idx.numpy(), top_d2.numpy()


def _cluster_order(E: Any, groups: int, seed: int = 0) -> np.ndarray:
    """A permutation that places similar embedded points next to each other.

    A few Lloyd iterations on the leading 16 embedding coordinates; points
    are then sorted (stably) by cluster. Only the speed of the projected
    search depends on it, never the result.
    """
    Z = np.ascontiguousarray(E[:, : min(16, E.shape[1])].numpy(), dtype=np.float32)
    n = Z.shape[0]
    groups = max(1, min(groups, n))
    centres = Z[np.linspace(0, n - 1, groups).astype(np.int64)].copy()
    labels = np.zeros(n, np.int64)
    for _ in range(6):
        zn = (Z * Z).sum(1)[:, None]
        cn = (centres * centres).sum(1)[None, :]
        labels = np.argmin(zn + cn - 2.0 * (Z @ centres.T), axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, Z)
        counts = np.bincount(labels, minlength=groups)[:, None]
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return np.argsort(labels, kind="stable").astype(np.int64)


def _projected_self_search(
    xt: Any,
    E: Any,
    En: Any,
    slack: Any,
    k: int,
    block: int,
    dtype_name: str,
    exclude_self: bool,
    p: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One-pass projected self-search.

    The embedded points are permuted so that each block gathers similar
    points (:func:`_cluster_order`). Each row's exact list starts from its
    own diagonal block (best lower bounds there, re-ranked exactly), which
    gives a tight threshold; one sweep over all Gram blocks (each computed
    once) then refines every list exactly as in the two-pass search. Lists,
    ties and self-exclusion use the original indices throughout.
    """
    import torch

    core = _core()
    m = xt.shape[0]
    dim = xt.shape[1]
    f64 = torch.float64
    perm_np = _cluster_order(E, -(-m // block) * 2)
    perm = torch.from_numpy(perm_np)
    Ep = E[perm].contiguous()
    Enp = En[perm].contiguous()
    slack_p = slack[perm].contiguous()
    xsrc = xt.contiguous()

    # Exact refinement of the lists of one Gram block's rows.
    checked = torch.zeros((m,), dtype=torch.int64)

    def refine(gram: Any, rows: range, cols: range, transposed: bool) -> None:
        rs, cs = (1, len(rows)) if transposed else (len(cols), 1)
        core.refine_block(
            gram.data_ptr(),
            Enp[rows.start : rows.stop].data_ptr(),
            Enp[cols.start : cols.stop].data_ptr(),
            len(rows),
            len(cols),
            rs,
            cs,
            rows.start,
            cols.start,
            k,
            bool(exclude_self),
            dim,
            slack_p[rows.start : rows.stop].data_ptr(),
            xsrc.data_ptr(),
            xsrc.data_ptr(),
            perm.data_ptr(),
            perm.data_ptr(),
            top_idx[rows.start : rows.stop].data_ptr(),
            top_d2[rows.start : rows.stop].data_ptr(),
            checked[rows.start : rows.stop].data_ptr(),
            dtype_name,
            -1,
        )

    # Initial lists from the diagonal blocks (pools re-ranked exactly).
    top_idx = torch.empty((m, k), dtype=torch.int64)
    top_d2 = torch.empty((m, k), dtype=f64)
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        rows = r1 - r0
        pool = max(k, min(2 * k + 8, rows - 1))
        pool_idx = torch.full((rows, pool), -1, dtype=torch.int64)
        pool_d2 = torch.full((rows, pool), math.inf, dtype=f64)
        gram = torch.mm(Ep[r0:r1], Ep[r0:r1].T)
        core.topk_block_update(
            gram.data_ptr(),
            Enp[r0:r1].data_ptr(),
            Enp[r0:r1].data_ptr(),
            rows,
            rows,
            rows,
            1,
            r0,
            r0,
            pool,
            bool(exclude_self),
            pool_idx.data_ptr(),
            pool_d2.data_ptr(),
            dtype_name,
            -1,
            0,
        )
        valid = pool_idx >= 0
        pool_idx = torch.where(valid, perm[pool_idx.clamp(min=0)], pool_idx)
        qrows = xsrc[perm[r0:r1]].contiguous()
        cert = torch.empty((rows,), dtype=torch.int64)
        core.rerank_pool(
            qrows.data_ptr(),
            xsrc.data_ptr(),
            rows,
            dim,
            pool,
            k,
            pool_idx.data_ptr(),
            pool_d2.data_ptr(),
            slack_p[r0:r1].data_ptr(),
            top_idx[r0:r1].data_ptr(),
            top_d2[r0:r1].data_ptr(),
            cert.data_ptr(),
            dtype_name,
            -1,
            0,
        )
        # The diagonal block's refinement reuses its Gram block.
        refine(gram, range(r0, r1), range(r0, r1), False)

    # One sweep over the off-diagonal blocks, each computed once and used
    # for both of its row ranges.
    for i0 in range(0, m, block):
        rows = range(i0, min(m, i0 + block))
        for j0 in range(i0 + block, m, block):
            cols = range(j0, min(m, j0 + block))
            gram = torch.mm(Ep[rows.start : rows.stop], Ep[cols.start : cols.stop].T)
            refine(gram, rows, cols, False)
            refine(gram, cols, rows, True)

    _LAST_STATS.update(
        certified=0, exact_checks=int(checked.sum()), projected_dim=p, pool=k
    )
    out_idx = np.empty((m, k), np.int64)
    out_d2 = np.empty((m, k), np.float64)
    out_idx[perm_np] = top_idx.numpy()
    out_d2[perm_np] = top_d2.numpy()
    return out_idx, out_d2


# Counters of the last projected search (for benchmarks).
_LAST_STATS: dict[str, int] = {}


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
    idx, d2, _ = _search(
        view, None, k=k, exclude_self=True, block_size=block_size, name="X"
    )
    return _graph(
        idx,
        d2,
        weight=weight,
        sigma_neighbor=sigma_neighbor,
        sigma=sigma,
        symmetrize=symmetrize,
        dtype=view.dtype,
        view=view,
    )


def graph_from_neighbors(
    indices: Any,
    distances: Any,
    *,
    weight: str = "self_tuning",
    sigma_neighbor: int | None = None,
    sigma: float | None = None,
    symmetrize: str = "mean",
    dtype: str = "float64",
) -> KNNGraph:
    """The weighted kNN graph of precomputed neighbour lists.

    Exact kNN lists are prefixes of longer ones, so one search at the
    largest k serves every smaller k: ``graph_from_neighbors(idx[:, :10],
    d2[:, :10])`` equals ``knn_graph(X, 10)``'s graph.

    Args:
        indices: (N, k) int neighbours of each point, self excluded, -1 =
            missing, ascending by distance.
        distances: (N, k) squared distances (float64 recommended).
        weight, sigma_neighbor, sigma, symmetrize: as :func:`knn_graph`.
        dtype: ``"float32"`` or ``"float64"`` affinity values.

    Returns:
        KNNGraph with a SciPy CSR affinity.

    Raises:
        ValueError: shapes, options or neighbour indices out of range.
    """
    return _graph(
        indices,
        distances,
        weight=weight,
        sigma_neighbor=sigma_neighbor,
        sigma=sigma,
        symmetrize=symmetrize,
        dtype=dtype,
        view=None,
    )


def _graph(
    indices: Any,
    distances: Any,
    *,
    weight: str,
    sigma_neighbor: int | None,
    sigma: float | None,
    symmetrize: str,
    dtype: str,
    view: View | None,
) -> KNNGraph:
    """graph_from_neighbors, assembled on ``view``'s device (host lists)."""
    if weight not in _WEIGHTS:
        raise ValueError(f"weight: expected one of {sorted(_WEIGHTS)}, got {weight!r}")
    if symmetrize not in _SYMMETRIZE:
        raise ValueError(
            f"symmetrize: expected one of {sorted(_SYMMETRIZE)}, got {symmetrize!r}"
        )
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    idx = np.ascontiguousarray(to_numpy(indices), dtype=np.int64)
    d2 = np.ascontiguousarray(to_numpy(distances), dtype=np.float64)
    if idx.ndim != 2 or d2.shape != idx.shape or idx.shape[1] < 1:
        raise ValueError(
            f"indices/distances: expected equal (N, k) shapes with k >= 1, got "
            f"{idx.shape} and {d2.shape}"
        )
    n, k = idx.shape
    if ((idx < -1) | (idx >= n)).any():
        raise ValueError(f"indices: expected values in [-1, {n}), got out-of-range")
    srt = np.sort(idx, axis=1)
    if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any():
        raise ValueError("indices: expected each neighbour at most once per row")
    if not np.isfinite(d2[idx >= 0]).all() or (d2[idx >= 0] < 0).any():
        raise ValueError("distances: expected finite, non-negative values")

    # Kernel scale parameters.
    scale = 4.0 if weight == "kth_neighbor" else 1.0
    if weight == "kth_neighbor":
        sigma_col = k - 1
    else:
        if sigma_neighbor is None:
            sigma_neighbor = min(7, k)
        sigma_neighbor = _check_k(sigma_neighbor, k, "sigma_neighbor")
        sigma_col = sigma_neighbor - 1
    col = d2[:, sigma_col][idx[:, sigma_col] >= 0]
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

    args = (
        _WEIGHTS[weight],
        _SYMMETRIZE[symmetrize],
        sigma_col,
        scale,
        global_sigma,
        floor,
    )
    if view is not None and view.device >= 0:
        W, sig, host = _assemble_cuda(idx, d2, dtype, *args, view=view)
    else:
        W, sig = _assemble(idx, d2, dtype, *args)
        host = W
        if view is not None:
            W = _to_framework(W, view)
    if weight in ("connectivity", "distance"):
        sig = np.ones(n)
    n_comp, comp = _components(host)
    return KNNGraph(W, n_comp, comp, idx, d2, sig)


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


def _assemble_cuda(
    idx: np.ndarray,
    d2: np.ndarray,
    dtype: str,
    weight: int,
    symmetrize: int,
    sigma_col: int,
    scale: float,
    global_sigma: float,
    floor: float,
    *,
    view: View,
) -> tuple[Any, np.ndarray, Any]:
    """The CSR assembly on the view's CUDA device.

    Returns (torch sparse CSR on the device, sigma, a SciPy pattern of W
    for the connected components).
    """
    import scipy.sparse as sp
    import torch

    dev = torch.device("cuda", view.device)
    n, k = idx.shape
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    ti = torch.as_tensor(idx, device=dev)
    td = torch.as_tensor(d2, device=dev)
    sig = torch.empty(n, dtype=torch.float64, device=dev)
    indptr = torch.empty(n + 1, dtype=torch.int64, device=dev)
    cap = max(1, 2 * n * k)
    cols = torch.empty(cap, dtype=torch.int64, device=dev)
    vals = torch.empty(cap, dtype=tdtype, device=dev)
    nnz = _core().assemble_knn_graph(
        ti.data_ptr(),
        td.data_ptr(),
        n,
        k,
        weight,
        symmetrize,
        sigma_col,
        scale,
        global_sigma,
        floor,
        sig.data_ptr(),
        indptr.data_ptr(),
        cols.data_ptr(),
        vals.data_ptr(),
        dtype,
        view.device,
        view.stream,
    )
    cols, vals = cols[:nnz], vals[:nnz]
    from deepscope.graph._laplacian import _csr_tensor

    W = _csr_tensor(indptr, cols, vals, (n, n))
    pattern = sp.csr_matrix(
        (np.ones(nnz, np.int8), cols.cpu().numpy(), indptr.cpu().numpy()),
        shape=(n, n),
    )
    return W, sig.cpu().numpy(), pattern


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

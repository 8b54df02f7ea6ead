# Graph Laplacians assembled in CSR, and connected components.
# SPDX-License-Identifier: MIT
"""Combinatorial, symmetric-normalised and random-walk Laplacians."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

__all__ = ["LaplacianResult", "as_affinity", "connected_components", "laplacian"]

_KINDS = {"combinatorial": 0, "symmetric": 1, "random_walk": 2}


class LaplacianResult(NamedTuple):
    """A Laplacian and the degrees it was built from.

    Attributes:
        laplacian: (N, N) sparse CSR; SciPy for SciPy / NumPy input, torch
            sparse CSR for torch input.
        degrees: (N,) float64 weighted degrees (self loops excluded).
    """

    laplacian: Any
    degrees: np.ndarray


def as_affinity(W: Any, name: str = "W") -> tuple[Any, str, Any]:
    """Validates an affinity and returns (SciPy CSR float32/64, framework, device).

    Self loops are dropped. An asymmetric W is averaged with its transpose
    (with a warning); negative or non-finite weights raise ValueError.
    """
    import scipy.sparse as sp

    framework, device = "scipy", None
    if hasattr(W, "layout") and hasattr(W, "device"):  # torch tensor
        import torch

        framework, device = "torch", W.device
        if W.layout == torch.sparse_csr:
            W = sp.csr_matrix(
                (
                    W.values().detach().cpu().numpy(),
                    W.col_indices().cpu().numpy(),
                    W.crow_indices().cpu().numpy(),
                ),
                shape=tuple(W.shape),
            )
        elif W.layout == torch.sparse_coo:
            Wc = W.coalesce()
            ij = Wc.indices().cpu().numpy()
            W = sp.coo_matrix(
                (Wc.values().detach().cpu().numpy(), (ij[0], ij[1])),
                shape=tuple(W.shape),
            )
        else:
            W = W.detach().cpu().numpy()
    if not sp.issparse(W):
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D matrix, got {W.ndim} dimensions")
        if framework == "scipy":
            framework = "numpy"
    W = sp.csr_matrix(W)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {W.shape}")
    if W.dtype not in (np.float32, np.float64):
        if not (
            np.issubdtype(W.dtype, np.integer)
            or W.dtype == np.bool_
            or np.issubdtype(W.dtype, np.floating)
        ):
            raise ValueError(f"{name}: expected real weights, got dtype {W.dtype}")
        W = W.astype(np.float64)
    W = W.copy()
    W.sum_duplicates()
    if not np.isfinite(W.data).all():
        raise ValueError(f"{name}: expected finite weights, found NaN or inf")
    if (W.data < 0).any():
        raise ValueError(
            f"{name}: expected non-negative affinities, found "
            f"{int((W.data < 0).sum())} negative weights (min {W.data.min():.3g})"
        )
    W.setdiag(0)
    W.eliminate_zeros()
    diff = abs(W - W.T)
    if diff.nnz and diff.max() > 1e-6 * max(float(abs(W).max()), 1e-300):
        warnings.warn(
            f"{name}: affinity is not symmetric; using (W + W^T) / 2",
            stacklevel=3,
        )
        W = ((W + W.T) * 0.5).tocsr()
    W.sort_indices()
    return W, framework, device


def laplacian(W: Any, kind: str = "combinatorial") -> LaplacianResult:
    """Sparse graph Laplacian, assembled in CSR by a native kernel.

    Args:
        W: (N, N) non-negative affinity: SciPy sparse, NumPy dense, or a
            torch dense / sparse tensor. Self loops are ignored; an
            asymmetric W is replaced by (W + W^T) / 2 with a warning.
        kind: ``"combinatorial"`` D - W; ``"symmetric"``
            I - D^-1/2 W D^-1/2; ``"random_walk"`` I - D^-1 W. Isolated
            points get a zero row (diagonal 0 in the normalised forms, as in
            ``scipy.sparse.csgraph.laplacian``).

    Returns:
        LaplacianResult ``(laplacian, degrees)``: SciPy CSR (torch sparse CSR
        for torch input, on its device) in W's float dtype (float64 for
        integer W), and float64 degrees.

    Raises:
        ValueError: non-square, negative, NaN / inf weights, unknown kind.
    """
    import scipy.sparse as sp

    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {sorted(_KINDS)}, got {kind!r}")
    if _on_cuda(W):
        out = _laplacian_cuda(W, kind)
        if out is not None:
            return out
    Wc, framework, device = as_affinity(W)
    n = Wc.shape[0]
    dtype = str(Wc.dtype)
    indptr = np.ascontiguousarray(Wc.indptr, dtype=np.int64)
    cols = np.ascontiguousarray(Wc.indices, dtype=np.int64)
    vals = np.ascontiguousarray(Wc.data)
    deg = np.empty(n, np.float64)
    out_ptr = np.empty(n + 1, np.int64)
    cap = max(1, Wc.nnz + n)
    out_cols = np.empty(cap, np.int64)
    out_vals = np.empty(cap, dtype)
    from deepscope import _core

    nnz = _core.assemble_laplacian(
        n,
        _KINDS[kind],
        indptr.ctypes.data,
        cols.ctypes.data,
        vals.ctypes.data,
        deg.ctypes.data,
        out_ptr.ctypes.data,
        out_cols.ctypes.data,
        out_vals.ctypes.data,
        dtype,
    )
    L = sp.csr_matrix((out_vals[:nnz], out_cols[:nnz], out_ptr), shape=(n, n))
    if framework == "torch":
        L = torch_csr(L, device)
    return LaplacianResult(L, deg)


def _on_cuda(W: Any) -> bool:
    return (
        hasattr(W, "layout")
        and hasattr(W, "device")
        and getattr(W.device, "type", "") == "cuda"
    )


def _csr_tensor(crow: Any, col: Any, val: Any, shape: tuple[int, int]) -> Any:
    """A torch sparse CSR tensor from its (device) arrays, no copy."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support")
        return torch.sparse_csr_tensor(crow, col, val, size=shape)


def _laplacian_cuda(W: Any, kind: str) -> LaplacianResult | None:
    """The Laplacian of a CUDA torch affinity, assembled on its device.

    Validation runs on the device; an asymmetric W returns None so that the
    host path averages it with its transpose (and warns), as for CPU input.
    The output equals the CPU path's bit for bit.
    """
    import torch

    n = W.shape[0]
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W: expected a square matrix, got shape {tuple(W.shape)}")
    coo = (W if W.layout == torch.sparse_coo else W.to_sparse_coo()).coalesce()
    val = coo.values()
    if val.dtype not in (torch.float32, torch.float64):
        if val.dtype.is_complex:
            raise ValueError(f"W: expected real weights, got dtype {val.dtype}")
        val = val.to(torch.float64)
    val = val.detach()
    if bool((~torch.isfinite(val)).any()):
        raise ValueError("W: expected finite weights, found NaN or inf")
    neg = val < 0
    if bool(neg.any()):
        raise ValueError(
            f"W: expected non-negative affinities, found {int(neg.sum())} "
            f"negative weights (min {float(val.min()):.3g})"
        )
    ij = coo.indices()
    keep = (val != 0) & (ij[0] != ij[1])
    ij, val = ij[:, keep], val[keep]
    # Symmetry on the device: W and its transpose as coalesced COO.
    fwd = torch.sparse_coo_tensor(ij, val, (n, n)).coalesce()
    bwd = torch.sparse_coo_tensor(ij.flip(0), val, (n, n)).coalesce()
    diff = (fwd - bwd).coalesce().values()
    if diff.numel() and float(diff.abs().max()) > 1e-6 * max(
        float(val.abs().max()) if val.numel() else 0.0, 1e-300
    ):
        return None
    Wc = fwd.to_sparse_csr()
    crow = Wc.crow_indices().to(torch.int64).contiguous()
    col = Wc.col_indices().to(torch.int64).contiguous()
    vals = Wc.values().contiguous()
    dtype = "float32" if vals.dtype == torch.float32 else "float64"
    dev = vals.device
    deg = torch.empty(n, dtype=torch.float64, device=dev)
    out_ptr = torch.empty(n + 1, dtype=torch.int64, device=dev)
    cap = max(1, col.numel() + n)
    out_cols = torch.empty(cap, dtype=torch.int64, device=dev)
    out_vals = torch.empty(cap, dtype=vals.dtype, device=dev)
    from deepscope import _core

    stream = torch.cuda.current_stream(dev).cuda_stream
    nnz = _core.assemble_laplacian(
        n,
        _KINDS[kind],
        crow.data_ptr(),
        col.data_ptr(),
        vals.data_ptr(),
        deg.data_ptr(),
        out_ptr.data_ptr(),
        out_cols.data_ptr(),
        out_vals.data_ptr(),
        dtype,
        dev.index if dev.index is not None else torch.cuda.current_device(),
        stream,
    )
    L = _csr_tensor(out_ptr, out_cols[:nnz], out_vals[:nnz], (n, n))
    return LaplacianResult(L, deg.cpu().numpy())


def torch_csr(M: Any, device: Any) -> Any:
    """A torch sparse CSR copy of a SciPy CSR matrix on ``device``."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support")
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.asarray(M.indptr, dtype=np.int64)),
            torch.from_numpy(np.asarray(M.indices, dtype=np.int64)),
            torch.from_numpy(M.data.copy()),
            size=M.shape,
            check_invariants=True,
        ).to(device)


def connected_components(W: Any) -> tuple[int, np.ndarray]:
    """Connected components of an affinity graph (edges with weight > 0).

    Args:
        W: (N, N) affinity as accepted by :func:`laplacian`.

    Returns:
        ``(n_components, labels)`` with labels (N,) int64 in 0..n-1.
    """
    from scipy.sparse.csgraph import connected_components as cc

    Wc, _, _ = as_affinity(W)
    n_comp, labels = cc(Wc, directed=False)
    return int(n_comp), labels.astype(np.int64)

# Embedding interop: numpy / torch / cupy matrices in, torch for the maths, same out.
# SPDX-License-Identifier: MIT
"""Conversions for the embedding module.

The embedding maths is dense linear algebra (GEMM, GEMV), which BLAS and
cuBLAS do best, so it runs on torch tensors: NumPy arrays are wrapped without
a copy, CuPy arrays are shared through DLPack, and results go back to the
caller's framework and device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepscope._arrays import framework_of

_KEEP_DOUBLE = (torch.float64,)


def as_matrix(
    x: Any, name: str, *, allow_empty: bool = False
) -> tuple[torch.Tensor, str]:
    """Wraps a ``(N, D)`` floating array as a torch tensor without modifying it.

    Args:
        x: (N, D) numpy / torch / cupy floating array.
        name: argument name used in error messages.
        allow_empty: accept N == 0.

    Returns:
        (tensor, framework): the tensor is float32 for float16 / bfloat16 /
        float32 inputs and float64 for float64, on the caller's device, and
        detached from autograd.
    """
    framework = framework_of(x)
    if framework == "numpy":
        a = np.asarray(x)
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(
                f"{name}: expected a floating array (float16/float32/float64), "
                f"got dtype {a.dtype}"
            )
        t = torch.from_numpy(np.ascontiguousarray(a) if a.flags.writeable else a.copy())
    elif framework == "torch":
        t = x.detach()
    elif framework == "cupy":
        t = torch.from_dlpack(x)
    else:
        raise ValueError(
            f"{name}: expected a NumPy, torch or CuPy (N, D) floating array, "
            f"got {type(x).__name__}"
        )
    if not t.is_floating_point():
        raise ValueError(
            f"{name}: expected a floating array (float16/bfloat16/float32/float64), "
            f"got dtype {t.dtype}"
        )
    if t.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D (N, D) matrix, got shape {tuple(t.shape)}"
        )
    if t.shape[1] == 0:
        raise ValueError(f"{name}: expected D >= 1 feature columns, got D = 0")
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one row, got N = 0")
    if t.dtype not in _KEEP_DOUBLE:
        t = t.to(torch.float32)
    # A NaN or inf makes its row sum non-finite; only such rows are inspected
    # element by element (a finite row can also overflow its sum).
    suspects = torch.nonzero(~torch.isfinite(t.sum(1))).flatten()
    if suspects.numel():
        bad = ~torch.isfinite(t[suspects]).all(1)
        if bool(bad.any()):
            row = int(suspects[bad][0])
            raise ValueError(
                f"{name}: expected finite values, got NaN or inf in row {row}"
            )
    return t, framework


def back(t: torch.Tensor, framework: str) -> Any:
    """Returns ``t`` in the caller's framework (NumPy on the host, CuPy on device)."""
    if framework == "numpy":
        return t.cpu().numpy()
    if framework == "cupy":
        import cupy

        return cupy.from_dlpack(t.contiguous())
    return t


def scaled_norms(t: torch.Tensor) -> torch.Tensor:
    """(N,) float64 row norms that neither underflow nor overflow.

    Each row is divided by its largest magnitude before it is squared (the
    scaled-norm approach of LAPACK's ``dnrm2``), so any finite non-zero row
    gets a non-zero finite norm; an all-zero row gets 0. Accepts a 1-D vector
    as one row.
    """
    t64 = t.to(torch.float64)
    if t64.ndim == 1:
        return scaled_norms(t64[None])[0]
    scale = t64.abs().amax(dim=1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.linalg.vector_norm(t64 / safe[:, None], dim=1) * scale


def row_norms(t: torch.Tensor) -> torch.Tensor:
    """(N,) float64 Euclidean norms of the rows of ``t`` (computed in its dtype).

    Squares overflow above about 1e19 (float32) or 1e154 (float64) and
    underflow below 1e-19 or 1e-154; rows whose norm falls outside a safe
    range (a zero norm included) are recomputed by :func:`scaled_norms`, so
    only an all-zero row has norm 0.
    """
    norms = torch.linalg.vector_norm(t, dim=1).to(torch.float64)
    lo, hi = (1e-150, 1e150) if t.dtype == torch.float64 else (1e-15, 1e15)
    unsafe = torch.nonzero(~((norms > lo) & (norms < hi))).flatten()
    if unsafe.numel():
        norms[unsafe] = scaled_norms(t[unsafe])
    return norms


def working(t: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """``t``, or a float64 copy when float32 GEMVs on it could overflow."""
    if t.dtype == torch.float32 and t.shape[0] and bool(norms.max() >= 1e15):
        return t.to(torch.float64)
    return t


def check_nonzero_rows(norms: torch.Tensor, name: str) -> None:
    """Raises ValueError when a row has zero norm (its cosine is undefined)."""
    zero = norms == 0
    if bool(zero.any()):
        first = int(torch.nonzero(zero)[0, 0])
        raise ValueError(
            f"{name}: expected non-zero rows (cosine similarity is undefined for "
            f"a zero vector), got {int(zero.sum())} zero row(s), first at "
            f"index {first}"
        )

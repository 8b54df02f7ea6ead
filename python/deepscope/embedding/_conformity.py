# Conformity: exact blocked pairwise form, O(N d) identity, mean-based estimate.
# SPDX-License-Identifier: MIT
"""Conformity: the average cosine similarity of an instance to a reference set.

Levi & Gilboa, "The Double-Ellipsoid Geometry of CLIP", ICML 2025
(arXiv 2411.14517) define the conformity of ``v_j`` as ``E_k[cos(v_j, v_k)]``
over a representative set of the same modality, and estimate it from the
modality mean ``m`` as ``a * cos(m, v_j) + b``.

Three computations are offered:

* :func:`exact_conformity` forms every pairwise cosine, tile by tile (a GEMM
  per tile, float64 row sums), never holding the N x N matrix. It is the
  oracle that validates the others; it costs 2 N^2 D flops (halved when the
  reference is the scored set itself, since only the upper tiles are formed).
* :func:`conformity` uses the exact identity for unit vectors ``u = v/|v|``:
  ``sum_k <u_j, u_k> = <u_j, sum_k u_k>``, so conformity costs O(N D).
* :func:`fit_conformity_estimate` fits ``a, b`` by least squares of the true
  conformity on ``cos(m, v)`` with ``m`` the mean of the RAW reference
  vectors (the paper's estimator), and reports the Pearson correlation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from deepscope.embedding._tensors import (
    as_matrix,
    back,
    check_nonzero_rows,
    row_norms,
    scaled_norms,
    working,
)

__all__ = [
    "ConformityEstimate",
    "conformity",
    "exact_conformity",
    "fit_conformity_estimate",
    "pearson",
]

#: Rows per tile of the exact kernel (a tile is BLOCK x BLOCK in the GEMM dtype).
BLOCK = 4096
#: Rows converted to float64 at a time by the O(N D) paths.
ROWS = 16384


def _resolve_loo(leave_one_out: bool | None, has_reference: bool) -> bool:
    if leave_one_out is None:
        return not has_reference
    if leave_one_out and has_reference:
        raise ValueError(
            "leave_one_out: expected False when a separate reference set is "
            "given (an instance is only left out of its own set), got True"
        )
    return bool(leave_one_out)


def _check_same_space(x: torch.Tensor, r: torch.Tensor) -> None:
    if x.shape[1] != r.shape[1]:
        raise ValueError(
            f"reference: expected D = {x.shape[1]} columns like embeddings, "
            f"got D = {r.shape[1]}"
        )
    if x.device != r.device:
        raise ValueError(
            f"reference: expected the device of embeddings ({x.device}), got {r.device}"
        )


def _unit(t: torch.Tensor, norms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows divided by their float64 norms, stored in ``dtype``."""
    out = torch.empty(t.shape, dtype=dtype, device=t.device)
    for i0 in range(0, t.shape[0], ROWS):
        i1 = i0 + ROWS
        out[i0:i1] = (t[i0:i1].to(torch.float64) / norms[i0:i1, None]).to(dtype)
    return out


def _unit_sum(t: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """(D,) float64 sum of the unit rows of ``t``: a GEMV per block of rows."""
    t = working(t, norms)
    total = torch.zeros(t.shape[1], dtype=torch.float64, device=t.device)
    for i0 in range(0, t.shape[0], ROWS):
        i1 = i0 + ROWS
        total += (t[i0:i1].T @ (1.0 / norms[i0:i1]).to(t.dtype)).to(torch.float64)
    return total


def _dot_unit(t: torch.Tensor, norms: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(N,) float64 ``<t_j / |t_j|, w>``: a GEMV in the dtype of ``t``."""
    t = working(t, norms)
    return (t @ w.to(t.dtype)).to(torch.float64) / norms


def _conformity64(
    x: torch.Tensor,
    x_norms: torch.Tensor,
    r: torch.Tensor,
    r_norms: torch.Tensor,
    loo: bool,
) -> torch.Tensor:
    """(N,) float64 conformity of the rows of ``x`` to ``r`` by the identity."""
    dots = _dot_unit(x, x_norms, _unit_sum(r, r_norms))
    if not loo:
        return dots / r.shape[0]
    # The self term <u_j, u_j> is exactly 1 for a non-zero row.
    return (dots - 1.0) / (x.shape[0] - 1)


def _tile(buffer: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ cols.T`` written into the front of a flat reusable buffer."""
    out = buffer[: rows.shape[0] * cols.shape[0]].view(rows.shape[0], cols.shape[0])
    return torch.mm(rows, cols.T, out=out)


def _reduce(tile: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor | None) -> None:
    """Adds the row (and column) sums of a tile into float64 accumulators.

    CPU tiles go through the fused C++ pass (one read, float64 additions);
    GPU tiles are reduced by torch in the tile dtype, then accumulated in
    float64.
    """
    if tile.device.type == "cpu":
        from deepscope import _core

        _core.tile_sums(
            tile.data_ptr(),
            "float64" if tile.dtype == torch.float64 else "float32",
            tile.shape[0],
            tile.shape[1],
            rows.data_ptr(),
            0 if cols is None else cols.data_ptr(),
            -1,
        )
        return
    rows += tile.sum(1).to(torch.float64)
    if cols is not None:
        cols += tile.sum(0).to(torch.float64)


def exact_conformity(
    embeddings: Any,
    reference: Any | None = None,
    *,
    leave_one_out: bool | None = None,
    block: int = BLOCK,
) -> Any:
    """Exact conformity from every pairwise cosine, by tiles (never N x N).

    ``C_j = sum_k cos(v_j, v_k) / n`` over the reference rows ``k``; with
    ``leave_one_out`` the term ``k = j`` is dropped and ``n = N - 1``. Each
    tile of cosines is one GEMM of unit rows (float32 for float16 / bfloat16 /
    float32 inputs, float64 for float64); on the CPU a fused C++ pass reads
    each tile once and adds its row and column sums in float64, on a GPU
    torch reduces the tile in its dtype and the tile sums are accumulated in
    float64.
    When ``reference`` is None only the tiles on and above the diagonal are
    formed and each is reduced along both axes (half the flops).
    Runs on the device of the inputs (CPU or CUDA; CuPy through DLPack).

    Args:
        embeddings: (N, D) float16, bfloat16, float32 or float64, raw or unit
            rows; numpy, torch or cupy.
        reference: (M, D) reference set, same framework and device; default:
            ``embeddings`` itself.
        leave_one_out: drop the self term. Default True without ``reference``
            and False with one (True with a separate reference is an error).
        block: rows per tile (>= 1).

    Returns:
        (N,) conformity in the caller's framework, float32 (float64 for
        float64 inputs).

    Raises:
        ValueError: NaN / inf, a zero row (cosine undefined), N < 2 with
            ``leave_one_out``, mismatched D or device, ``block`` < 1.
    """
    if int(block) < 1:
        raise ValueError(f"block: expected >= 1 rows per tile, got {block}")
    block = int(block)
    x, framework = as_matrix(embeddings, "embeddings")
    loo = _resolve_loo(leave_one_out, reference is not None)
    x_norms = row_norms(x)
    check_nonzero_rows(x_norms, "embeddings")
    if loo and x.shape[0] < 2:
        raise ValueError(
            f"embeddings: expected N >= 2 rows for leave-one-out conformity, "
            f"got N = {x.shape[0]}"
        )
    u = _unit(x, x_norms, x.dtype)
    sums = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    # One reused tile buffer: a fresh 16 MB allocation per GEMM costs ~30%.
    buffer = torch.empty(block * block, dtype=u.dtype, device=u.device)

    if reference is None:
        # Symmetric case: upper tiles only, each reduced along rows and columns.
        n = x.shape[0]
        self_terms = torch.empty(n, dtype=torch.float64, device=x.device)
        for i0 in range(0, n, block):
            i1 = min(i0 + block, n)
            rows = u[i0:i1]
            for j0 in range(i0, n, block):
                j1 = min(j0 + block, n)
                tile = _tile(buffer, rows, u[j0:j1])
                if j0 == i0:
                    self_terms[i0:i1] = tile.diagonal().to(torch.float64)
                    _reduce(tile, sums[i0:i1], None)
                else:
                    _reduce(tile, sums[i0:i1], sums[j0:j1])
        if loo:
            result = (sums - self_terms) / (n - 1)
        else:
            result = sums / n
        return back(result.to(x.dtype), framework)

    # Separate reference: row sums of query tiles against reference tiles.
    r, _ = as_matrix(reference, "reference")
    _check_same_space(x, r)
    r_norms = row_norms(r)
    check_nonzero_rows(r_norms, "reference")
    ur = _unit(r, r_norms, x.dtype if x.dtype == r.dtype else torch.float32)
    u = u.to(ur.dtype)
    buffer = buffer.to(ur.dtype)
    for i0 in range(0, x.shape[0], block):
        i1 = min(i0 + block, x.shape[0])
        for j0 in range(0, r.shape[0], block):
            tile = _tile(buffer, u[i0:i1], ur[j0 : j0 + block])
            _reduce(tile, sums[i0:i1], None)
    return back((sums / r.shape[0]).to(x.dtype), framework)


def conformity(
    embeddings: Any,
    reference: Any | None = None,
    *,
    leave_one_out: bool | None = None,
) -> Any:
    """Exact conformity in O(N D) through the unit-vector identity.

    With ``u = v / |v|`` and ``s = sum_k u_k`` over the reference rows,
    ``sum_k cos(v_j, v_k) = <u_j, s>``: inclusive conformity is
    ``<u_j, s> / M`` and leave-one-out is ``(<u_j, s> - 1) / (N - 1)``.
    This equals :func:`exact_conformity` up to rounding: two GEMVs in the
    input's dtype (float32 or float64) with float64 accumulation across
    blocks of rows.

    Args:
        embeddings: (N, D) float16, bfloat16, float32 or float64; numpy,
            torch or cupy.
        reference: (M, D) reference set; default ``embeddings`` itself.
        leave_one_out: as in :func:`exact_conformity`.

    Returns:
        (N,) conformity in the caller's framework, float32 (float64 for
        float64 inputs).

    Raises:
        ValueError: as :func:`exact_conformity`.
    """
    x, framework = as_matrix(embeddings, "embeddings")
    loo = _resolve_loo(leave_one_out, reference is not None)
    x_norms = row_norms(x)
    check_nonzero_rows(x_norms, "embeddings")
    if reference is None:
        r, r_norms = x, x_norms
    else:
        r, _ = as_matrix(reference, "reference")
        _check_same_space(x, r)
        r_norms = row_norms(r)
        check_nonzero_rows(r_norms, "reference")
    if loo and x.shape[0] < 2:
        raise ValueError(
            f"embeddings: expected N >= 2 rows for leave-one-out conformity, "
            f"got N = {x.shape[0]}"
        )
    result = _conformity64(x, x_norms, r, r_norms, loo)
    return back(result.to(x.dtype), framework)


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equal-length vectors, computed in float64.

    Defined values instead of NaN: when one vector is constant the correlation
    is 1.0 if both are constant (one predicts the other exactly) and 0.0
    otherwise; fewer than 2 values give 1.0 when equal and 0.0 otherwise.
    """
    x = _host64(a, "a").ravel()
    y = _host64(b, "b").ravel()
    if x.shape != y.shape:
        raise ValueError(f"b: expected {x.shape[0]} values like a, got {y.shape[0]}")
    if x.size == 0:
        raise ValueError("a: expected at least one value, got 0")
    dx = x - x.mean()
    dy = y - y.mean()
    sx = math.sqrt(float(dx @ dx))
    sy = math.sqrt(float(dy @ dy))
    if sx == 0.0 or sy == 0.0:
        return 1.0 if sx == sy else 0.0
    return float(np.clip((dx @ dy) / (sx * sy), -1.0, 1.0))


def _host64(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().to(torch.float64).numpy()
    if type(a).__module__.startswith("cupy"):
        return np.asarray(a.get(), dtype=np.float64)
    return np.asarray(a, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ConformityEstimate:
    """The mean-based conformity estimate ``a * cos(m, v) + b``.

    Attributes:
        mean: (D,) float64 mean ``m`` of the raw reference vectors.
        a: fitted slope.
        b: fitted intercept.
        pearson_r: correlation between estimate and exact conformity on the
            reference set.
        max_abs_error: largest ``|estimate - exact|`` on the reference set.
        n_reference: rows of the reference set.
        leave_one_out: whether the fitted truth was leave-one-out conformity.
    """

    mean: np.ndarray
    a: float
    b: float
    pearson_r: float
    max_abs_error: float
    n_reference: int
    leave_one_out: bool

    def cos_to_mean(self, embeddings: Any) -> Any:
        """(N,) ``cos(m, v_j)`` in the caller's framework (float32 / float64)."""
        x, framework = as_matrix(embeddings, "embeddings")
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"embeddings: expected D = {self.mean.shape[0]} columns like the "
                f"fitted mean, got D = {x.shape[1]}"
            )
        norms = row_norms(x)
        check_nonzero_rows(norms, "embeddings")
        m = torch.from_numpy(self.mean).to(x.device)
        cos = _dot_unit(x, norms, m / scaled_norms(m))
        return back(cos.to(x.dtype), framework)

    def predict(self, embeddings: Any) -> Any:
        """(N,) estimated conformity ``a * cos(m, v_j) + b`` in O(N D).

        Args:
            embeddings: (N, D) float array in the reference space.

        Returns:
            (N,) float32 (float64 for float64 inputs), caller's framework.
        """
        cos = self.cos_to_mean(embeddings)
        return cos * self.a + self.b


def fit_conformity_estimate(
    reference: Any, *, leave_one_out: bool = True
) -> ConformityEstimate:
    """Fits ``a, b`` of the estimate ``a * cos(m, v) + b`` on a reference set.

    ``m`` is the mean of the RAW reference vectors (not of the unit vectors,
    for which the relation is exactly affine); the truth is the exact
    conformity from :func:`conformity`, and ``a, b`` minimise the squared
    error in float64.

    Args:
        reference: (M, D) float array, M >= 2; numpy, torch or cupy.
        leave_one_out: fit against leave-one-out (default) or inclusive
            conformity.

    Returns:
        ConformityEstimate. When ``cos(m, v)`` is constant over the set (for
        example identical rows) the slope is 0 and the intercept the mean
        conformity.

    Raises:
        ValueError: NaN / inf, zero rows, M < 2, or a zero mean vector (the
            cosine to the mean is undefined).
    """
    r, _ = as_matrix(reference, "reference")
    if r.shape[0] < 2:
        raise ValueError(
            f"reference: expected at least 2 rows to fit a and b, got {r.shape[0]}"
        )
    norms = row_norms(r)
    check_nonzero_rows(norms, "reference")
    mean = _mean64(r)
    mean_norm = float(scaled_norms(mean))
    if mean_norm == 0.0:
        raise ValueError(
            "reference: the mean vector is zero, so cos(m, v) is undefined; "
            "conformity can still be computed exactly with conformity()"
        )
    x = _dot_unit(r, norms, mean / mean_norm).cpu().numpy()
    truth = _conformity64(r, norms, r, norms, leave_one_out).cpu().numpy()
    dx = x - x.mean()
    var = float(dx @ dx)
    if var == 0.0:
        a, b = 0.0, float(truth.mean())
    else:
        a = float(dx @ (truth - truth.mean()) / var)
        b = float(truth.mean() - a * x.mean())
    est = a * x + b
    return ConformityEstimate(
        mean=mean.cpu().numpy(),
        a=a,
        b=b,
        pearson_r=pearson(est, truth) if var > 0.0 else pearson(x, truth),
        max_abs_error=float(np.max(np.abs(est - truth))),
        n_reference=int(r.shape[0]),
        leave_one_out=bool(leave_one_out),
    )


def _mean64(t: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(t.shape[1], dtype=torch.float64, device=t.device)
    for i0 in range(0, t.shape[0], ROWS):
        total += t[i0 : i0 + ROWS].to(torch.float64).sum(0)
    return total / t.shape[0]

# Thin wrappers over the native CMD kernels (fit, online update, reconstruction).
# SPDX-License-Identifier: MIT
"""Array-level CMD kernels shared by :class:`CMD` and :class:`OnlineCMD`.

All functions take NumPy arrays, torch tensors or CuPy arrays; per-parameter
outputs are allocated in the caller's framework and device. Per-mode inputs
(reference trajectories, sums) are small and are passed as float64 host
arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deepscope import _arrays
from deepscope._arrays import View

Array = Any

__all__ = ["AssignFit", "assign_and_fit", "reference_stats"]


def _core():
    from deepscope import _core

    return _core


class AssignFit(NamedTuple):
    """Mode assignment and affine fit of every parameter (:func:`assign_and_fit`).

    Attributes:
        modes: (N,) int64, index of the most correlated reference (|rho|).
        a: (N,) slope of w_i(t) ~ a_i r_m(t) + b_i, float32 (float64 for
            float64 input).
        b: (N,) intercept, same dtype as ``a``.
        rho: (N,) Pearson correlation with the assigned reference (0 for a
            constant trajectory), same dtype as ``a``.
        sxx: (N,) float64, centred sum of squares sum_t (w_t - mean w)^2.
        sse: (N,) float64, residual sum of squares of the affine fit.
    """

    modes: Array
    a: Array
    b: Array
    rho: Array
    sxx: Array
    sse: Array


def reference_stats(
    references: np.ndarray, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centred references, means, inverse norms and a degeneracy mask.

    A reference is degenerate (never wins, fits a = 0) when its standard
    deviation over the window is 0 or below the rounding level of ``dtype``
    relative to its magnitude.

    Args:
        references: (M, T) float64 reference trajectories.
        dtype: the dtype of the window the references come from.

    Returns:
        ``(centred (M, T), mean (M,), inv_norm (M,), inv_ss (M,),
        degenerate (M,) bool)``, all float64 except the mask.
    """
    refs = np.ascontiguousarray(references, dtype=np.float64)
    mean = refs.mean(axis=1)
    centred = np.ascontiguousarray(refs - mean[:, None])
    ss = (centred * centred).sum(axis=1)
    T = refs.shape[1]
    rtol = 8.0 * float(np.finfo(np.float32 if dtype != "float64" else np.float64).eps)
    scale = np.abs(refs).max(axis=1) if T > 0 else np.zeros(len(refs))
    degenerate = ~(np.sqrt(ss / max(T, 1)) > rtol * scale) | (ss <= 0.0)
    with np.errstate(divide="ignore"):
        inv_ss = np.where(degenerate, 0.0, 1.0 / np.where(degenerate, 1.0, ss))
    inv_norm = np.sqrt(inv_ss)
    return centred, mean, inv_norm, inv_ss, degenerate


def assign_and_fit(
    window: Array,
    references: Any,
    *,
    time_major: bool = True,
    diagnostics: bool = True,
) -> AssignFit:
    """One fused pass: assign each parameter to a reference and fit it.

    For every parameter i and reference m, with sums in float64 over data
    shifted by the first sample, rho_im is the Pearson correlation over the
    window; the parameter joins m* = argmax_m |rho_im| (ties to the lowest
    m) and gets the least-squares fit w_i(t) ~ a_i r_m*(t) + b_i. Constant
    trajectories get mode 0, a = 0, b = their value, rho = 0; degenerate
    (constant) references never win.

    Args:
        window: (T, N) snapshots (``time_major``) or (N, T) trajectories,
            float16/bfloat16/float32/float64 (half types are upcast).
        references: (M, T) reference trajectories (any array; used in
            float64 on the host).
        time_major: layout of ``window``.
        diagnostics: also compute ``rho``, ``sxx`` and ``sse`` (else None).

    Returns:
        :class:`AssignFit` in the framework and device of ``window``.

    Raises:
        ValueError: wrong shapes, T = 0, M = 0, or NaN/inf in either input.
    """
    view = _arrays.prepare(window, "window", ndim=(2,))
    if time_major:
        T, N = view.shape
    else:
        N, T = view.shape
    refs = np.asarray(_arrays.to_numpy(references), dtype=np.float64)
    if refs.ndim == 1:
        refs = refs[None, :]
    if refs.ndim != 2 or refs.shape[1] != T:
        raise ValueError(
            f"references: expected shape (M, {T}) (one trajectory per mode), "
            f"got {tuple(refs.shape)}"
        )
    if T < 1:
        raise ValueError("window: expected at least 1 time sample, got 0")
    M = refs.shape[0]
    if M < 1:
        raise ValueError("references: expected at least 1 reference, got 0")
    if not np.isfinite(refs).all():
        raise ValueError("references: expected finite values, got NaN or inf")
    return _fit_view(view, N, T, refs, time_major, diagnostics)


def _fit_view(
    view: View,
    N: int,
    T: int,
    refs: np.ndarray,
    time_major: bool,
    diagnostics: bool,
) -> AssignFit:
    centred, mean, inv_norm, inv_ss, _ = reference_stats(refs, view.dtype)
    M = refs.shape[0]
    modes = _arrays.empty(view, (N,), "int64")
    a = _arrays.empty(view, (N,), view.dtype)
    b = _arrays.empty(view, (N,), view.dtype)
    rho = sxx = sse = None
    if diagnostics:
        rho = _arrays.empty(view, (N,), view.dtype)
        sxx = _arrays.empty(view, (N,), "float64")
        sse = _arrays.empty(view, (N,), "float64")
    host = [
        _arrays.as_array(view, x, "float64") for x in (centred, mean, inv_norm, inv_ss)
    ]
    ptr = _arrays.data_ptr
    _core().cmd_fit(
        view.ptr,
        view.dtype,
        N,
        T,
        M,
        bool(time_major),
        *(ptr(x) for x in host),
        ptr(modes),
        ptr(a),
        ptr(b),
        ptr(rho) if rho is not None else 0,
        ptr(sxx) if sxx is not None else 0,
        ptr(sse) if sse is not None else 0,
        view.device,
        view.stream,
    )
    if N and bool((modes < 0).any()):
        raise ValueError("window: expected finite values, got NaN or inf")
    return AssignFit(modes, a, b, rho, sxx, sse)


def online_update(
    w: View, modes: Any, shift: Any, ref_delta: np.ndarray, s1: Any, c: Any, s2: Any
) -> None:
    """Adds one time sample to the online statistics (in place)."""
    ptr = _arrays.data_ptr
    delta = _arrays.as_array(w, ref_delta, "float64")
    _core().cmd_update(
        w.ptr,
        w.dtype,
        w.shape[0],
        ptr(modes),
        ptr(shift),
        ptr(delta),
        ptr(s1),
        ptr(c),
        ptr(s2) if s2 is not None else 0,
        w.device,
        w.stream,
    )


def online_coefficients(
    like: View,
    n: int,
    modes: Any,
    shift: Any,
    s1: Any,
    c: Any,
    r1: np.ndarray,
    inv_den: np.ndarray,
    r0: np.ndarray,
) -> tuple[Array, Array]:
    """Least-squares (a, b) from the online statistics over n samples."""
    ptr = _arrays.data_ptr
    N = like.shape[0]
    a = _arrays.empty(like, (N,), like.dtype)
    b = _arrays.empty(like, (N,), like.dtype)
    per_mode = [_arrays.as_array(like, x, "float64") for x in (r1, inv_den, r0)]
    _core().cmd_coefficients(
        like.dtype,
        N,
        float(n),
        ptr(modes),
        ptr(shift),
        ptr(s1),
        ptr(c),
        *(ptr(x) for x in per_mode),
        ptr(a),
        ptr(b),
        like.device,
        like.stream,
    )
    return a, b


def reconstruct_into(
    out: View, modes: Any, a: Any, b: Any, ref_value: np.ndarray, mask: Any = None
) -> None:
    """out[i] = a[i] * ref_value[modes[i]] + b[i] where mask (uint8) is set."""
    ptr = _arrays.data_ptr
    values = _arrays.as_array(out, ref_value, "float64")
    _core().cmd_reconstruct(
        out.dtype,
        out.shape[0],
        ptr(modes),
        ptr(a),
        ptr(b),
        ptr(values),
        ptr(mask) if mask is not None else 0,
        out.ptr,
        out.device,
        out.stream,
    )

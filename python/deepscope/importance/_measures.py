# Point importance measures of Critical Points++ and FBI on the native kernels.
# SPDX-License-Identifier: MIT
"""Per-point importance from the features right before a global max-pool.

Critical Points++ (Levi and Gilboa, "Critical Points++: An Agile Point Cloud
Importance Measure for Robust Classification, Adversarial Defense and
Explainable AI", arXiv 2308.05525; published as "Robustifying Point Cloud
Networks by Refocusing") counts, for every point, the channels whose maximum
over the points it attains (discrete importance), uses the L1 norm of its
feature vector as a soft importance, and keeps the ``floor(H * N)`` least
important points, ``H`` being the normalized entropy of the discrete
importance. FBI (Levi and Gilboa, "Fast and Simple Explainability for Point
Cloud Networks", arXiv 2403.07706) explains a prediction by the norm of each
point's pre-bottleneck feature vector.

Differences from the reference code, on purpose:

* the entropy is computed per cloud in a batch (the reference divides a
  ``(B, N)`` tensor by a ``(B,)`` sum and broadcasts wrongly for ``B > 1``);
* every order is deterministic: an argmax tie goes to the lowest point index,
  and the least important points are ranked by (importance, tie-break, index)
  instead of by an unstable sort;
* padded clouds (``lengths``) are supported; padded points never win a
  channel, get importance 0 and are left out of the entropy.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from deepscope import _arrays
from deepscope._arrays import View

Array = Any

__all__ = [
    "ImportanceStats",
    "adaptive_subset",
    "critical_counts",
    "critical_set",
    "feature_norms",
    "importance_stats",
    "least_important",
    "normalized_entropy",
]

_STATUS_NONFINITE = 1
_STATUS_NEGATIVE = 2


class ImportanceStats(NamedTuple):
    """Point importance of a batch of clouds (see :func:`importance_stats`).

    Attributes:
        norms: (B, N) per-point Lp norm of the features (FBI soft importance),
            float32 for float16/bfloat16/float32 inputs, float64 for float64.
        counts: (B, N) int64 discrete importance: the number of channels whose
            maximum over the valid points is attained at the point.
        entropy: (B,) normalized entropy of ``counts`` or of ``norms``
            (``entropy_of``), in the dtype of ``norms``.
    """

    norms: Array
    counts: Array
    entropy: Array


def _core():
    from deepscope import _core

    return _core


# ---------------------------------------------------------------- validation


def _parse_p(p: Any) -> int:
    """The kernel code of a norm order: 1, 2, or 0 for infinity."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p: expected 1, 2 or inf, got {p!r}") from None
    if value == 1.0:
        return 1
    if value == 2.0:
        return 2
    if math.isinf(value) and value > 0:
        return 0
    raise ValueError(f"p: expected 1, 2 or inf, got {p!r}")


def _swap_last_two(x: Any, framework: str) -> Any:
    if framework == "torch":
        return x.transpose(-1, -2)
    if framework == "numpy":
        return np.swapaxes(x, -1, -2)
    import cupy

    return cupy.swapaxes(x, -1, -2)


def _is_c_contiguous(x: Any, framework: str) -> bool:
    if framework == "torch":
        return bool(x.is_contiguous())
    return bool(x.flags.c_contiguous)


class _Features(NamedTuple):
    view: View
    B: int
    C: int
    N: int
    channels_last: bool
    batched: bool


def _prepare_features(features: Any, channels_last: bool) -> _Features:
    """A contiguous (B, C, N) or (B, N, C) view of ``features``.

    A channels-first array that is a transposed view of contiguous
    channels-last memory (and vice versa) is read in place through the other
    kernel layout instead of being copied.
    """
    if not isinstance(channels_last, (bool, np.bool_)):
        raise ValueError(
            f"channels_last: expected True or False, got {channels_last!r}"
        )
    channels_last = bool(channels_last)
    framework = _arrays.framework_of(features)
    if framework != "other" and features.ndim in (2, 3):
        swapped = _swap_last_two(features, framework)
        if not _is_c_contiguous(features, framework) and _is_c_contiguous(
            swapped, framework
        ):
            features, channels_last = swapped, not channels_last

    channels_last = _arrays.flag(channels_last, "channels_last")
    view = _arrays.prepare(features, "features", ndim=(2, 3))
    batched = len(view.shape) == 3
    shape = view.shape if batched else (1, *view.shape)
    B = shape[0]
    C, N = (shape[2], shape[1]) if channels_last else (shape[1], shape[2])
    layout = "(B, N, C)" if channels_last else "(B, C, N)"
    if N < 1:
        raise ValueError(
            f"features: expected at least 1 point per cloud (layout {layout}), "
            f"got shape {view.shape}"
        )
    if C < 1:
        raise ValueError(
            f"features: expected at least 1 channel (layout {layout}), got "
            f"shape {view.shape}"
        )
    return _Features(view, B, C, N, channels_last, batched)


def _prepare_lengths(lengths: Any, like: View, B: int, N: int, batched: bool):
    """(view or None, host int64 (B,)) of the valid points per cloud."""
    return _arrays.prepare_lengths(lengths, like, B, N, batched=batched)


def _raise_status(status: Array, name: str) -> None:
    flags = int(np.asarray(_arrays.to_numpy(status)).reshape(-1)[0])
    if flags & _STATUS_NONFINITE:
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    if flags & _STATUS_NEGATIVE:
        raise ValueError(f"{name}: expected nonnegative values, found a negative")


def _astype(x: Array, framework: str, dtype: str) -> Array:
    if framework == "torch":
        import torch

        target = getattr(torch, dtype)
        return x if x.dtype == target else x.to(target)
    return x if x.dtype == np.dtype(dtype) else x.astype(dtype)


def _unbatch(x: Array, batched: bool) -> Array:
    return x if batched else x[0]


# ------------------------------------------------------------- fused kernel


class _Raw(NamedTuple):
    norms: Array | None
    counts: Array | None
    entropy: Array | None  # (B,) float64
    lengths: np.ndarray
    info: _Features


def _run(
    features: Any,
    *,
    p: Any = 2,
    lengths: Any = None,
    channels_last: bool = False,
    want_norms: bool = True,
    want_counts: bool = True,
    entropy_of: str | None = None,
    eps: float = 1e-6,
) -> _Raw:
    norm_code = _parse_p(p)
    info = _prepare_features(features, channels_last)
    view = info.view
    len_view, len_host = _prepare_lengths(lengths, view, info.B, info.N, info.batched)
    if entropy_of is not None:
        _check_eps(eps)

    norms = _arrays.empty(view, (info.B, info.N), view.dtype) if want_norms else None
    counts = _arrays.empty(view, (info.B, info.N), "int64") if want_counts else None
    entropy = (
        _arrays.empty(view, (info.B,), "float64") if entropy_of is not None else None
    )
    status = _arrays.full(view, (1,), 0, "int32")
    _core().importance_stats(
        features=view.ptr,
        dtype=view.dtype,
        B=info.B,
        C=info.C,
        N=info.N,
        channels_last=info.channels_last,
        lengths=0 if len_view is None else len_view.ptr,
        p=norm_code,
        norms=0 if norms is None else _arrays.data_ptr(norms),
        counts=0 if counts is None else _arrays.data_ptr(counts),
        entropy=0 if entropy is None else _arrays.data_ptr(entropy),
        entropy_of_norms=entropy_of == "norms",
        eps=float(eps),
        status=_arrays.data_ptr(status),
        device_index=view.device,
        stream=view.stream,
    )
    _raise_status(status, "features")
    return _Raw(norms, counts, entropy, len_host, info)


def _check_eps(eps: Any) -> None:
    try:
        ok = float(eps) >= 0.0 and math.isfinite(float(eps))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")


def importance_stats(
    features: Array,
    *,
    p: float = 2,
    lengths: Array | None = None,
    entropy_of: str = "counts",
    channels_last: bool = False,
    eps: float = 1e-6,
) -> ImportanceStats:
    """All point-importance measures of a batch in one pass over the features.

    One fused kernel reads every feature once and produces the per-point
    ``p``-norm (FBI, arXiv 2403.07706; Critical Points++ soft importance for
    ``p=1``, arXiv 2308.05525), the per-channel argmax over the points turned
    into per-point counts (Critical Points++ discrete importance) and the
    normalized entropy. No ``(B, C, N)``-sized intermediate is allocated.

    Norms are accumulated in float64 for every input dtype (on this CPU the
    cost is within noise; the features are read once either way). An argmax
    tie goes to the lowest point index, on CPU and CUDA alike.

    Args:
        features: (B, C, N) or (C, N) per-point features right before the
            global max-pool (as PointNet / DGCNN produce them), or (B, N, C) /
            (N, C) with ``channels_last=True``; float16, bfloat16, float32 or
            float64; NumPy, torch (CPU/CUDA) or CuPy. Must be finite.
        p: norm order, 1, 2 or ``inf``.
        lengths: (B,) integer number of valid points per cloud (padded
            batches); points ``n >= lengths[b]`` get norm 0 and count 0,
            never win a channel and are left out of the entropy.
        entropy_of: ``"counts"`` (Critical Points++) or ``"norms"``.
        channels_last: read ``features`` as (B, N, C).
        eps: the entropy's smoothing term (see :func:`normalized_entropy`).

    Returns:
        :class:`ImportanceStats` ``(norms, counts, entropy)`` with shapes
        (B, N), (B, N), (B,) (or (N,), (N,), () for an unbatched input), in
        the caller's framework and device.

    Raises:
        ValueError: a NaN or infinite feature, a wrong rank, an empty cloud
            axis, ``p`` not in {1, 2, inf}, bad ``lengths`` or ``entropy_of``.
    """
    if entropy_of not in ("counts", "norms"):
        raise ValueError(
            f"entropy_of: expected 'counts' or 'norms', got {entropy_of!r}"
        )
    raw = _run(
        features,
        p=p,
        lengths=lengths,
        channels_last=channels_last,
        entropy_of=entropy_of,
        eps=eps,
    )
    fw, batched = raw.info.view.framework, raw.info.batched
    entropy = _astype(raw.entropy, fw, raw.info.view.dtype)
    return ImportanceStats(
        _unbatch(raw.norms, batched),
        _unbatch(raw.counts, batched),
        _unbatch(entropy, batched),
    )


def feature_norms(
    features: Array,
    *,
    p: float = 2,
    lengths: Array | None = None,
    channels_last: bool = False,
) -> Array:
    """FBI soft importance: the ``p``-norm of every point's feature vector.

    Levi and Gilboa, "Fast and Simple Explainability for Point Cloud
    Networks" (arXiv 2403.07706): a point's importance is the norm of its
    feature vector before the max-pool bottleneck. ``p=1`` is the soft
    importance of Critical Points++ (arXiv 2308.05525). Accumulated in
    float64.

    Args:
        features: (B, C, N) or (C, N); (B, N, C) / (N, C) with
            ``channels_last=True``; float16/bfloat16/float32/float64, finite.
        p: norm order, 1, 2 or ``inf``.
        lengths: (B,) valid points per cloud; padded points get 0.
        channels_last: read ``features`` as (B, N, C).

    Returns:
        (B, N) or (N,) norms, float32 (float64 for float64 input).
    """
    raw = _run(
        features, p=p, lengths=lengths, channels_last=channels_last, want_counts=False
    )
    return _unbatch(raw.norms, raw.info.batched)


def critical_counts(
    features: Array,
    *,
    lengths: Array | None = None,
    channels_last: bool = False,
) -> Array:
    """Critical Points++ discrete importance: argmax counts per point.

    ``counts[b, n]`` is the number of channels ``c`` whose maximum over the
    valid points of cloud ``b`` is attained at point ``n`` (arXiv 2308.05525);
    ties go to the lowest point index, so ``counts[b].sum() == C`` for every
    cloud with at least one valid point (0 for an empty cloud).

    Args:
        features: (B, C, N) or (C, N); (B, N, C) / (N, C) with
            ``channels_last=True``; float16/bfloat16/float32/float64, finite.
        lengths: (B,) valid points per cloud; padded points count 0.
        channels_last: read ``features`` as (B, N, C).

    Returns:
        (B, N) or (N,) int64 counts.
    """
    raw = _run(features, lengths=lengths, channels_last=channels_last, want_norms=False)
    return _unbatch(raw.counts, raw.info.batched)


def critical_set(
    features: Array,
    *,
    lengths: Array | None = None,
    channels_last: bool = False,
) -> list[Array] | Array:
    """PointNet's critical points: the points that win at least one channel.

    Qi et al., PointNet (CVPR 2017): the critical set is the set of points
    that determine the max-pooled global feature, here
    ``{n : critical_counts[b, n] > 0}`` with ties to the lowest index.

    Args:
        features: (B, C, N) or (C, N); (B, N, C) / (N, C) with
            ``channels_last=True``.
        lengths: (B,) valid points per cloud.
        channels_last: read ``features`` as (B, N, C).

    Returns:
        a list of B int64 arrays of sorted unique point indices (one per
        cloud), or one such array for an unbatched input.
    """
    raw = _run(features, lengths=lengths, channels_last=channels_last, want_norms=False)
    counts, fw = raw.counts, raw.info.view.framework
    if fw == "torch":
        import torch

        sets = [torch.nonzero(counts[b] > 0).reshape(-1) for b in range(raw.info.B)]
    elif fw == "numpy":
        sets = [np.flatnonzero(counts[b] > 0) for b in range(raw.info.B)]
    else:
        import cupy

        sets = [cupy.flatnonzero(counts[b] > 0) for b in range(raw.info.B)]
    return sets if raw.info.batched else sets[0]


# ------------------------------------------------------ importance vectors


def _prepare_importance(x: Any, name: str, like: View | None = None) -> View:
    """A contiguous float32/float64/int64 view of an importance array."""
    framework = _arrays.framework_of(x)
    if framework == "other":
        x = np.asarray(x)
        framework = "numpy"
    if framework == "torch":
        dtype = str(x.dtype).removeprefix("torch.")
    else:
        dtype = np.dtype(x.dtype).name
    if dtype == "bool":
        raise ValueError(f"{name}: expected a numeric dtype, got bool")
    kind = "int64" if dtype.startswith(("int", "uint")) else "float"
    return _arrays.prepare(x, name, kind=kind, ndim=(1, 2), like=like)


def normalized_entropy(
    importance: Array,
    *,
    lengths: Array | None = None,
    eps: float = 1e-6,
) -> Array:
    """Normalized entropy of per-point importance, per cloud.

    Critical Points++ (arXiv 2308.05525): with
    ``q_n = (I_n + eps) / sum_m (I_m + eps)`` over the ``N_b`` valid points,
    ``H_b = -sum_n q_n log2 q_n / log2 N_b``, in [0, 1]: 1 for uniform
    importance, near 0 when a single point holds it all. ``H_b = 0`` for
    ``N_b <= 1`` and ``H_b = 1`` when every importance is 0 and ``eps == 0``
    (the uniform limit), so the result is never NaN. Computed in float64 per
    cloud; the reference code broadcasts its normalizer wrongly for batches of
    more than one cloud, which is fixed here.

    Args:
        importance: (B, N) or (N,) nonnegative, finite, float or integer
            (e.g. :func:`critical_counts` or :func:`feature_norms`).
        lengths: (B,) valid points per cloud.
        eps: smoothing term, >= 0.

    Returns:
        (B,) or () entropy: float64 for integer or float64 input, float32
        otherwise.

    Raises:
        ValueError: a negative, NaN or infinite importance, or bad ``lengths``.
    """
    _check_eps(eps)
    view = _prepare_importance(importance, "importance")
    batched = len(view.shape) == 2
    B, N = view.shape if batched else (1, view.shape[0])
    len_view, _ = _prepare_lengths(lengths, view, B, N, batched)
    entropy = _arrays.empty(view, (B,), "float64")
    status = _arrays.full(view, (1,), 0, "int32")
    _core().normalized_entropy(
        importance=view.ptr,
        dtype=view.dtype,
        B=B,
        N=N,
        lengths=0 if len_view is None else len_view.ptr,
        eps=float(eps),
        entropy=_arrays.data_ptr(entropy),
        status=_arrays.data_ptr(status),
        device_index=view.device,
        stream=view.stream,
    )
    _raise_status(status, "importance")
    out_dtype = "float32" if view.dtype == "float32" else "float64"
    return _unbatch(_astype(entropy, view.framework, out_dtype), batched)


def _ops(framework: str):
    if framework == "torch":
        import torch

        def argsort(a):
            return torch.argsort(a, dim=1, stable=True)

        def take(a, idx):
            return torch.gather(a, 1, idx)

        return argsort, take
    if framework == "numpy":

        def argsort(a):
            return np.argsort(a, axis=1, kind="stable")

        def take(a, idx):
            return np.take_along_axis(a, idx, axis=1)

        return argsort, take
    import cupy

    def argsort(a):
        return cupy.argsort(a, axis=1)  # always stable in CuPy

    def take(a, idx):
        return cupy.take_along_axis(a, idx, axis=1)

    return argsort, take


def _sort_key(view: View, valid: Array, name: str) -> Array:
    """Sort key: int64 for integers (exact), else float64; padding sorts last.

    Padding gets the largest key; where a valid point has that key too, the
    stable sort keeps it first, since padded points come after valid ones.
    """
    if view.dtype == "int64":
        key, last = view.array, np.iinfo(np.int64).max
    else:
        _arrays.check_finite(view, name)
        key, last = _astype(view.array, view.framework, "float64"), np.inf
    if view.framework == "torch":
        import torch

        return torch.where(valid, key, torch.full_like(key, last))
    xp = np if view.framework == "numpy" else __import__("cupy")
    return xp.where(valid, key, last)


def _parse_k(k: Any, B: int, len_host: np.ndarray) -> np.ndarray:
    """Host int64 (B,) counts of points to select, validated.

    An int must be >= 1 (and at most every cloud's valid points); a (B,)
    array may hold 0 for a cloud.
    """
    low = (
        1
        if _arrays.framework_of(k) == "other" and not isinstance(k, (list, tuple))
        else 0
    )
    return _arrays.per_cloud_counts(
        k, "k", B, low, len_host, what="valid points of cloud"
    )


def least_important(
    importance: Array,
    k: int | Array,
    *,
    tiebreak: Array | None = None,
    lengths: Array | None = None,
) -> Array:
    """Indices of the ``k`` least important points of every cloud.

    Points are ranked by (``importance`` ascending, ``tiebreak`` ascending,
    index ascending), a deterministic version of the ascending argsort of
    Critical Points++ (arXiv 2308.05525), whose unstable sort makes the choice
    among the many zero-count points backend dependent.

    Args:
        importance: (B, N) or (N,) finite float or integer importance.
        k: an int (1 <= k <= valid points of every cloud) or (B,) integers
            (0 <= k[b] <= lengths[b]).
        tiebreak: optional (B, N) / (N,) finite float secondary key (e.g. the
            soft L1 norms), same framework and device.
        lengths: (B,) valid points per cloud; padded points are never chosen.

    Returns:
        (B, max k) int64 indices, least important first, padded with -1 after
        ``k[b]`` entries; (k,) for an unbatched input.
    """
    view = _prepare_importance(importance, "importance")
    batched = len(view.shape) == 2
    B, N = view.shape if batched else (1, view.shape[0])
    imp = replace(view, array=view.array.reshape(B, N))
    _, len_host = _arrays.prepare_lengths(
        lengths, view, B, N, batched=batched, on_device=False
    )
    k_host = _parse_k(k, B, len_host)
    fw = view.framework
    argsort, take = _ops(fw)

    # Validity mask of the points, in the caller's framework.
    positions = _arrays.as_array(view, np.arange(N, dtype=np.int64)[None, :], "int64")
    limits = _arrays.as_array(view, len_host[:, None], "int64")
    valid = positions < limits
    key = _sort_key(imp, valid, "importance")

    # Stable sorts: the last key sorted is the primary one.
    if tiebreak is not None:
        tb_view = _arrays.prepare(tiebreak, "tiebreak", ndim=(1, 2), like=view)
        if tb_view.shape != view.shape:
            raise ValueError(
                f"tiebreak: expected shape {view.shape} like importance, got "
                f"{tb_view.shape}"
            )
        tb = replace(tb_view, array=tb_view.array.reshape(B, N))
        order = argsort(_sort_key(tb, valid, "tiebreak"))
        order = take(order, argsort(take(key, order)))
    else:
        order = argsort(key)

    # Keep the first k[b] of every row, -1 after.
    kmax = int(k_host.max()) if B else 0
    out = order[:, :kmax]
    keep = positions[:, :kmax] < _arrays.as_array(view, k_host[:, None], "int64")
    if fw == "torch":
        import torch

        out = torch.where(keep, out, torch.full_like(out, -1))
    else:
        xp = np if fw == "numpy" else __import__("cupy")
        out = xp.where(keep, out, -1)
    out = _astype(out, fw, "int64")
    return out if batched else out[0]


def adaptive_subset(
    features: Array,
    *,
    lengths: Array | None = None,
    channels_last: bool = False,
    eps: float = 1e-6,
) -> tuple[Array, Array]:
    """Critical Points++ entropy-adaptive subset of the least important points.

    Following arXiv 2308.05525: ``H_b`` is the normalized entropy of the
    discrete importance (argmax counts), ``k_b = floor(H_b * N_b)`` (at least
    1 for a non-empty cloud), and the ``k_b`` points with the lowest counts are
    kept, i.e. the most important points are dropped. Ties are broken by the
    soft importance (L1 norm) and then by index, where the reference code's
    unstable argsort is backend dependent; the entropy is per cloud, where the
    reference only works for batches of one.

    Args:
        features: (B, C, N) or (C, N); (B, N, C) / (N, C) with
            ``channels_last=True``; finite.
        lengths: (B,) valid points per cloud (an empty cloud keeps 0 points).
        channels_last: read ``features`` as (B, N, C).
        eps: the entropy's smoothing term.

    Returns:
        ``(indices, k)``: (B, max k) int64 point indices, least important
        first, -1 padded, and (B,) int64 ``k``; (k,) and () when unbatched.
    """
    raw = _run(
        features,
        p=1,
        lengths=lengths,
        channels_last=channels_last,
        entropy_of="counts",
        eps=eps,
    )
    info = raw.info
    entropy = np.asarray(_arrays.to_numpy(raw.entropy), dtype=np.float64)
    k_host = np.floor(entropy * raw.lengths).astype(np.int64)
    k_host = np.where(raw.lengths > 0, np.maximum(k_host, 1), 0)
    k_host = np.minimum(k_host, raw.lengths)
    indices = least_important(
        raw.counts,
        k_host,
        tiebreak=raw.norms,
        lengths=None
        if lengths is None
        else _arrays.as_array(info.view, raw.lengths, "int64"),
    )
    k_out = _arrays.as_array(info.view, k_host, "int64")
    return _unbatch(indices, info.batched), _unbatch(k_out, info.batched)

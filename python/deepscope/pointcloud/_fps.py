# Farthest point sampling: the public Python API over the native kernels.
# SPDX-License-Identifier: MIT
"""Exact farthest point sampling (FPS) on CPU and CUDA."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays
from .._arrays import View

__all__ = ["FPSResult", "farthest_point_sample"]


class FPSResult(NamedTuple):
    """Result of :func:`farthest_point_sample`.

    Attributes:
        indices: ``(B, K)`` int64 (``(K,)`` for an unbatched input). Selected
            point indices in selection order; ``-1`` in the slots after the
            last sample of a cloud.
        distances: ``(B, K)`` float32 (float16/bfloat16/float32 inputs) or
            float64. The squared distance of each selected point to the
            points selected before it, at the moment it was selected,
            computed in float64. The first entry is 0, and so is every
            ``-1`` slot.
        counts: ``(B,)`` int64 (shape ``()`` unbatched). Number of valid
            samples per cloud: ``indices[b, :counts[b]]`` are valid.
    """

    indices: Any
    distances: Any
    counts: Any


def farthest_point_sample(
    points: Any,
    n_samples: Any,
    *,
    lengths: Any = None,
    start_index: Any = None,
    seed: Any = None,
    allow_fewer: bool = False,
    channels_first: bool = False,
) -> FPSResult:
    """Exact farthest point sampling, identical on CPU and CUDA.

    For each cloud, ``sel[0]`` is the start point and ``mind[i]`` the
    squared distance from point ``i`` to it. Every next sample is the point
    with the largest ``mind`` (the lowest index among equal values), after
    which ``mind[i] = min(mind[i], d2(i, new))``. Squared distances are
    computed in float64 as the left-to-right sum ``(dx*dx + dy*dy) + ...``,
    so CPU and CUDA return the same indices as a float64 brute force, index
    for index. There are no distance sentinels and no skipped points.

    If the largest remaining ``mind`` is 0, every unselected point duplicates
    a selected one; sampling then stops for that cloud instead of repeating
    a point: the remaining slots hold -1 and ``counts`` says how many samples
    are valid. The CPU kernel prunes with a kd-tree over buckets of points
    (the QuickFPS idea: Han et al., IEEE TCAD 2023) without changing the
    result. On CUDA a batch runs one thread block per cloud, and a single
    cloud of at least 32768 points runs on a cooperative grid of blocks.

    Args:
        points: ``(B, N, D)`` or ``(N, D)`` float16, bfloat16, float32 or
            float64 array (NumPy, torch or CuPy; any ``D >= 1``). float16 and
            bfloat16 are upcast to float32. With ``channels_first=True`` the
            shapes are ``(B, D, N)`` / ``(D, N)``.
        n_samples: int, or ``(B,)`` integers (a count per cloud). The output
            width ``K`` is the largest count.
        lengths: optional ``(B,)`` integers, ``0 <= lengths[b] <= N``: only
            the first ``lengths[b]`` points of cloud ``b`` are used (padded
            batches). Default: every cloud has ``N`` points.
        start_index: optional int or ``(B,)`` integers, the first sample of
            each cloud, in ``[0, lengths[b])`` (ignored for empty clouds).
        seed: optional seed for random starts: an integer in
            ``[0, 2**64 - 1]`` or a ``numpy.random.Generator`` (reduced to one
            64-bit draw from it); ``starts = default_rng(seed).integers(0,
            maximum(lengths, 1))``, one draw per cloud in batch order (an
            unbatched cloud counts as a batch of one). Cannot be combined
            with ``start_index``. With neither, every cloud starts at 0.
        allow_fewer: when False (default), ``n_samples[b] > lengths[b]``
            raises ValueError; when True the count is clamped to
            ``lengths[b]`` and the extra slots hold -1.
        channels_first: read ``points`` as ``(B, D, N)`` / ``(D, N)``.

    Returns:
        FPSResult ``(indices, distances, counts)`` in the framework and on
        the device of ``points``; see :class:`FPSResult`.

    Raises:
        ValueError: NaN or inf in ``points``; a wrong rank, dtype or device;
            a negative ``n_samples`` or one above ``lengths[b]`` (unless
            ``allow_fewer``); ``lengths`` outside ``[0, N]``; a batch size
            that does not match; ``start_index`` outside ``[0, lengths[b])``;
            both ``start_index`` and ``seed`` given.
    """
    allow_fewer = _arrays.flag(allow_fewer, "allow_fewer")
    if _arrays.flag(channels_first, "channels_first"):
        points = _arrays.swap_last_axes(points, "points")
    view = _arrays.prepare(points, "points", ndim=(2, 3))
    unbatched = len(view.shape) == 2
    B, N, D = (1, *view.shape) if unbatched else view.shape
    if D < 1:
        raise ValueError(
            f"points: expected at least 1 coordinate per point, got shape {view.shape}"
        )
    _arrays.check_coordinates(view, "points")

    # Per-cloud lengths, sample counts and starts, validated on the host.
    _, n_points = _arrays.prepare_lengths(
        lengths, view, B, N, batched=not unbatched, on_device=False
    )
    requested = _arrays.per_cloud_counts(n_samples, "n_samples", B)
    too_many = requested > n_points
    if too_many.any() and not allow_fewer:
        b = int(np.flatnonzero(too_many)[0])
        raise ValueError(
            f"n_samples: expected n_samples <= {int(n_points[b])} (points in "
            f"cloud {b}), got {int(requested[b])}; pass allow_fewer=True to "
            "clamp"
        )
    counts_wanted = np.minimum(requested, n_points)
    K = int(requested.max()) if B > 0 else _scalar_or_zero(n_samples)
    starts = _starts(start_index, seed, n_points, B)
    return _sample_unchecked(view, n_points, counts_wanted, starts, K, unbatched)


def _sample_unchecked(
    view: View,
    n_points: np.ndarray,
    counts_wanted: np.ndarray,
    starts: np.ndarray,
    K: int,
    unbatched: bool = False,
) -> FPSResult:
    """The FPS kernel on validated inputs (the composed samplers call this).

    Args:
        view: ``(B, N, D)`` (or ``(N, D)`` when ``unbatched``) points whose
            coordinates were checked by the caller.
        n_points: ``(B,)`` host lengths in ``[0, N]``.
        counts_wanted: ``(B,)`` host sample counts, ``<= n_points``.
        starts: ``(B,)`` host start indices in ``[0, n_points)`` (0 for an
            empty cloud).
        K: output width, ``>= counts_wanted.max()``.
        unbatched: drop the batch axis of the outputs.
    """
    B = len(n_points)
    N, D = view.shape[-2:]

    # Outputs in the caller's framework, on the caller's device.
    indices = _arrays.empty(view, (B, K), "int64")
    distances = _arrays.empty(view, (B, K), view.dtype)
    counts = _arrays.empty(view, (B,), "int64")
    params = np.ascontiguousarray(np.stack([n_points, counts_wanted, starts]))
    from .. import _core

    # CUDA scratch (running minima plus cross-block partial results) comes
    # from the caller's framework, so its caching allocator manages it.
    scratch = None
    if view.is_cuda:
        params = _arrays.as_array(view, params, "int64")
        size = B * N + _core.FPS_CUDA_SCRATCH_EXTRA
        scratch = _arrays.empty(view, (size,), "float64")
    params_ptr = _arrays.data_ptr(params)

    _core.farthest_point_sample(
        view.ptr,
        view.dtype,
        B,
        N,
        D,
        params_ptr,
        params_ptr + 8 * B,
        params_ptr + 16 * B,
        K,
        _arrays.data_ptr(indices),
        _arrays.data_ptr(distances),
        _arrays.data_ptr(counts),
        0 if scratch is None else _arrays.data_ptr(scratch),
        view.device,
        view.stream,
    )
    if unbatched:
        return FPSResult(indices[0], distances[0], counts.reshape(()))
    return FPSResult(indices, distances, counts)


def _scalar_or_zero(n_samples: Any) -> int:
    """Output width for an empty batch: the int given, else 0."""
    if isinstance(n_samples, numbers.Integral):
        return max(int(n_samples), 0)
    return 0


def _starts(start_index: Any, seed: Any, n_points: np.ndarray, B: int) -> np.ndarray:
    """The first sample of every cloud, validated against the lengths."""
    if start_index is not None and seed is not None:
        raise ValueError(
            "start_index: pass either start_index or seed (random starts), not both"
        )
    if start_index is not None:
        starts = _arrays.per_cloud_counts(start_index, "start_index", B)
        bad = (n_points > 0) & (starts >= n_points)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"start_index: expected 0 <= start_index < {int(n_points[b])} "
                f"(points in cloud {b}), got {int(starts[b])}"
            )
        return np.where(n_points > 0, starts, 0).astype(np.int64)
    seed = _arrays.check_seed(seed, allow_none=True)
    if seed is not None:
        rng = np.random.default_rng(seed)
        return rng.integers(0, np.maximum(n_points, 1)).astype(np.int64)
    return np.zeros(B, dtype=np.int64)

# Exact k-nearest-neighbour and ball-query search over padded point batches.
# SPDX-License-Identifier: MIT
"""Exact kNN and ball query on CPU (kd-tree, OpenMP) and CUDA (tiled brute force).

Both searches compute squared Euclidean distances in float64 as the
left-to-right sum over dimensions of ``(q - p) ** 2``, order neighbours by
``(distance, index)`` so ties go to the lowest index, and give bit-identical
results on CPU and CUDA.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from deepscope import _arrays
from deepscope._arrays import View

__all__ = ["BallQueryResult", "KNNResult", "ball_query", "knn"]

Array = Any


class KNNResult(NamedTuple):
    """Result of :func:`knn`.

    Attributes:
        indices: (B, M, k) int64 reference indices sorted by (distance, index);
            -1 where a cloud has fewer than k candidates.
        distances: (B, M, k) float32 or float64 distances (squared unless
            ``squared=False``); +inf where missing.
        counts: (B, M) int64 number of valid neighbours per query.
    """

    indices: Array
    distances: Array
    counts: Array


class BallQueryResult(NamedTuple):
    """Result of :func:`ball_query`.

    Attributes:
        indices: (B, M, max_neighbors) int64 indices of the nearest reference
            points within the radius, sorted by (distance, index); -1 padded.
        distances: (B, M, max_neighbors) float32 or float64 distances
            (squared unless ``squared=False``); +inf where missing.
        counts: (B, M) int64 number of valid neighbours per query.
    """

    indices: Array
    distances: Array
    counts: Array


def knn(
    query: Array,
    reference: Array | None = None,
    *,
    k: int,
    query_lengths: Array | None = None,
    reference_lengths: Array | None = None,
    exclude_self: bool = False,
    squared: bool = True,
    channels_first: bool = False,
) -> KNNResult:
    """Exact k nearest neighbours of every query point.

    Args:
        query: (B, M, D) or (M, D) float16, bfloat16, float32 or float64 query
            points; (B, D, M) / (D, M) with ``channels_first``.
        reference: (B, N, D) or (N, D) reference points of the same rank,
            batch size, D, framework and device as ``query``. ``None`` means a
            self-query: the reference is ``query`` and shares its lengths.
        k: neighbours per query, ``1 <= k <= N`` (N = reference.shape[-2]).
        query_lengths: (B,) integer valid points per query cloud (batched
            inputs only); rows past the length are all missing.
        reference_lengths: (B,) integer valid points per reference cloud; a
            cloud with fewer than k points gives trailing -1 entries.
        exclude_self: skip each query's own index (self-query only). An exact
            duplicate at another index is still a neighbour at distance 0.
        squared: return squared distances (default) or their square roots.
        channels_first: inputs are laid out (B, D, M) / (D, M).

    Returns:
        KNNResult ``(indices, distances, counts)`` in the caller's framework
        and device: indices (B, M, k) int64, distances (B, M, k) in the input
        float dtype (float32 for float16 / bfloat16), counts (B, M) int64.
        Unbatched inputs give (M, k) and (M,) outputs.

    Raises:
        ValueError: naming the argument, for bad shapes, dtypes, devices,
            lengths, NaN / inf coordinates, k outside [1, N], or
            ``exclude_self`` with an explicit reference.
    """
    return KNNResult(
        *_search(
            query,
            reference,
            k=k,
            max_d2=math.inf,
            query_lengths=query_lengths,
            reference_lengths=reference_lengths,
            exclude_self=exclude_self,
            squared=squared,
            channels_first=channels_first,
            k_name="k",
        )
    )


def ball_query(
    query: Array,
    reference: Array | None = None,
    *,
    radius: float,
    max_neighbors: int,
    query_lengths: Array | None = None,
    reference_lengths: Array | None = None,
    exclude_self: bool = False,
    squared: bool = True,
    channels_first: bool = False,
) -> BallQueryResult:
    """The nearest reference points within a radius of every query point.

    A point is inside the ball when its float64 squared distance is
    ``<= radius * radius`` (the boundary is inclusive). Of those, the
    ``max_neighbors`` nearest are returned, sorted by (distance, index), so
    the result does not depend on the reference order beyond ties.

    Args:
        query: (B, M, D) or (M, D) float query points (see :func:`knn`).
        reference: (B, N, D) or (N, D) reference points, or ``None`` for a
            self-query.
        radius: finite ball radius, ``>= 0``.
        max_neighbors: the largest number of neighbours returned, ``>= 1``.
        query_lengths: (B,) integer valid points per query cloud.
        reference_lengths: (B,) integer valid points per reference cloud.
        exclude_self: skip each query's own index (self-query only).
        squared: return squared distances (default) or their square roots.
        channels_first: inputs are laid out (B, D, M) / (D, M).

    Returns:
        BallQueryResult ``(indices, distances, counts)``: indices
        (B, M, max_neighbors) int64 padded with -1, distances in the input
        float dtype padded with +inf, counts (B, M) int64.

    Raises:
        ValueError: naming the argument, as for :func:`knn`, and for a
            negative or non-finite radius or ``max_neighbors < 1``.
    """
    max_neighbors = _arrays.check_count(max_neighbors, "max_neighbors", 1)
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.number)):
        raise ValueError(f"radius: expected a float, got {type(radius).__name__}")
    radius = float(radius)
    if not math.isfinite(radius) or radius < 0.0:
        raise ValueError(f"radius: expected a finite value >= 0, got {radius}")
    return BallQueryResult(
        *_search(
            query,
            reference,
            k=max_neighbors,
            max_d2=radius * radius,
            query_lengths=query_lengths,
            reference_lengths=reference_lengths,
            exclude_self=exclude_self,
            squared=squared,
            channels_first=channels_first,
            k_name=None,
        )
    )


def _search(
    query: Any,
    reference: Any,
    *,
    k: int,
    max_d2: float,
    query_lengths: Any,
    reference_lengths: Any,
    exclude_self: bool,
    squared: bool,
    channels_first: bool,
    k_name: str | None,
) -> tuple[Any, Any, Any]:

    # Layout and framework: both inputs as contiguous (B, *, D) views.
    if _arrays.flag(channels_first, "channels_first"):
        query = _arrays.swap_last_axes(query, "query")
        if reference is not None:
            reference = _arrays.swap_last_axes(reference, "reference")
    q = _arrays.prepare(query, "query", kind="float", ndim=(2, 3))
    batched = len(q.shape) == 3
    self_query = reference is None
    if self_query:
        if reference_lengths is not None:
            raise ValueError(
                "reference_lengths: only valid with an explicit reference; a "
                "self-query uses query_lengths"
            )
        r = q
    else:
        if _arrays.flag(exclude_self, "exclude_self"):
            raise ValueError(
                "exclude_self: only valid for a self-query (reference=None)"
            )
        r = _arrays.prepare(reference, "reference", kind="float", ndim=(2, 3), like=q)
        if len(r.shape) != len(q.shape):
            raise ValueError(
                f"reference: expected {len(q.shape)} dimensions like query, got "
                f"{len(r.shape)} (shape {r.shape})"
            )
        if r.dtype != q.dtype:
            raise ValueError(
                f"reference: expected dtype {q.dtype} like query, got {r.dtype}"
            )

    q_shape = q.shape if batched else (1, *q.shape)
    r_shape = r.shape if batched else (1, *r.shape)
    B, M, D = q_shape
    Br, N, Dr = r_shape
    if Br != B:
        raise ValueError(f"reference: expected batch size {B} like query, got {Br}")
    if D < 1:
        raise ValueError("query: expected at least one coordinate (D >= 1), got 0")
    if Dr != D:
        raise ValueError(f"reference: expected D = {D} like query, got {Dr}")
    if k_name is not None:
        k = _arrays.check_count(k, k_name, 1, N, what="points per reference cloud")

    # Lengths and finiteness of the valid points.
    ql_view, ql = _arrays.prepare_lengths(
        query_lengths, q, B, M, name="query_lengths", batched=batched
    )
    if self_query:
        rl_view, rl = ql_view, ql
    else:
        rl_view, rl = _arrays.prepare_lengths(
            reference_lengths, q, B, N, name="reference_lengths", batched=batched
        )
    q = _reshaped(q, (B, M, D))
    r = _reshaped(r, (B, N, D))
    if B * M * D:
        _arrays.check_coordinates(q, "query", ql)
    if not self_query and B * N * D:
        _arrays.check_coordinates(r, "reference", rl)

    indices, distances, counts = _search_unchecked(
        q,
        r,
        ql_view,
        rl_view,
        k=k,
        max_d2=max_d2,
        self_query=self_query,
        exclude_self=_arrays.flag(exclude_self, "exclude_self"),
        squared=_arrays.flag(squared, "squared"),
    )
    if not batched:
        indices, distances, counts = indices[0], distances[0], counts[0]
    return indices, distances, counts


def _search_unchecked(
    q: View,
    r: View,
    ql_view: View | None,
    rl_view: View | None,
    *,
    k: int,
    max_d2: float,
    self_query: bool = False,
    exclude_self: bool = False,
    squared: bool = True,
) -> tuple[Any, Any, Any]:
    """The search kernel on validated inputs (the composed samplers call this).

    Args:
        q: (B, M, D) query view whose valid points the caller checked.
        r: (B, N, D) reference view (``q`` itself for a self-query), same
            framework, device and dtype.
        ql_view, rl_view: (B,) int64 lengths in [0, M] / [0, N] on the
            device of ``q``, or None.
        k: output width, ``1 <= k``; for a kNN search ``k <= N``.
        max_d2: squared radius (inf for kNN).

    Returns:
        (B, M, k) indices, (B, M, k) distances and (B, M) counts.
    """
    from deepscope import _core

    B, M, D = q.shape
    N = r.shape[1]

    # Outputs in the caller's framework and device, then the kernel.
    indices = _arrays.empty(q, (B, M, k), "int64")
    distances = _arrays.empty(q, (B, M, k), q.dtype)
    counts = _arrays.empty(q, (B, M), "int64")
    if B * M:
        _core.neighbor_search(
            q.ptr,
            r.ptr,
            ql_view.ptr if ql_view is not None else 0,
            rl_view.ptr if rl_view is not None else 0,
            B,
            M,
            N,
            D,
            k,
            max_d2,
            self_query,
            exclude_self,
            squared,
            _arrays.data_ptr(indices),
            _arrays.data_ptr(distances),
            _arrays.data_ptr(counts),
            q.dtype,
            q.device,
            q.stream,
        )
    return indices, distances, counts


def _reshaped(view: View, shape: tuple[int, ...]) -> View:
    return View(
        view.array.reshape(shape), view.framework, view.dtype, view.device, view.stream
    )

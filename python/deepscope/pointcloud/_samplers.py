# Partial point clouds for EPiC-style ensembles: patches, curves, random subsets.
# SPDX-License-Identifier: MIT
"""Partial point clouds: kNN patches, random-walk curves and random subsets.

These are the three sampling schemes of EPiC (Levi and Gilboa, "EPiC:
Ensemble of Partial Point Clouds for Robust Classification", ICCV 2023,
arXiv 2303.11419): an ensemble member sees only a patch around an anchor, a
random-walk curve from an anchor, or a random subset of the cloud. All samples
of a batch are drawn in one call; outputs are index arrays, and
:func:`gather_points` turns them into coordinates (differentiably for torch).

Randomness is counter based: every (cloud, sample) pair has its own stream
under ``seed``, so results depend only on the seed and the inputs, and the CPU
and CUDA kernels return identical indices. The EPiC reference code instead
shares one random permutation across the whole batch; drawing per sample is a
deliberate difference.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from deepscope import _core
from deepscope._arrays import (
    View,
    as_array,
    check_coordinates,
    check_count,
    check_seed,
    data_ptr,
    empty,
    flag,
    framework_of,
    full,
    prepare,
    prepare_lengths,
    swap_last_axes,
    to_numpy,
)

__all__ = [
    "PAPER_DEFAULTS",
    "PartialResult",
    "gather_points",
    "knn_patches",
    "partial_clouds",
    "random_subsets",
    "random_walk_curves",
]

Array = Any

#: Published EPiC settings (ICCV 2023, arXiv 2303.11419): samples per partial
#: cloud for each method, and the number of FPS anchors at test time.
PAPER_DEFAULTS: dict[str, int] = {
    "patch": 512,
    "curve": 512,
    "random": 128,
    "n_anchors": 4,
    # EPiC's curve graph has m = 20 neighbours counting the point itself,
    # i.e. 19 other points to step to; ``k`` here never counts the point.
    "k": 19,
}

METHODS = ("patch", "curve", "random")


class PartialResult(NamedTuple):
    """Partial clouds as indices into the input points.

    Attributes:
        indices: (B, A, S) int64 point indices, -1 after ``counts`` entries.
            Patches list the anchor first, then its neighbours by increasing
            distance; curves list points in walk order from the anchor;
            random subsets list distinct points in draw order.
        counts: (B, A) int64 valid entries per row.
        anchors: (B, A) int64 anchor index of each row (-1 when the row has
            no anchor: every row of ``method="random"``, and anchors that FPS
            could not provide because the cloud has fewer points).

    Unbatched ``(N, D)`` inputs give ``(A, S)``, ``(A,)`` and ``(A,)``.
    """

    indices: Array
    counts: Array
    anchors: Array


# ---------------------------------------------------------------------------
# Argument checks shared by the public functions.


class _Cloud(NamedTuple):
    """Validated points (batched view) plus lengths on host and device."""

    view: View  # (B, N, D) contiguous, float32 or float64
    batched: bool
    lengths_host: np.ndarray  # (B,) int64
    lengths: Any  # (B,) int64 in the caller's framework and device

    @property
    def B(self) -> int:
        return self.view.shape[0]

    @property
    def N(self) -> int:
        return self.view.shape[1]


def _prepare_cloud(points: Any, lengths: Any, channels_first: bool) -> _Cloud:
    """Validates the points (once per public call) and their lengths."""
    if flag(channels_first, "channels_first"):
        points = swap_last_axes(points, "points")
    view = prepare(points, "points", kind="float", ndim=(2, 3))
    batched = len(view.shape) == 3
    if not batched:
        view = _unsqueeze(view)
    B, N, D = view.shape
    if N == 0:
        raise ValueError(f"points: expected at least one point, got shape {view.shape}")
    if D == 0:
        raise ValueError(
            f"points: expected at least one coordinate, got shape {view.shape}"
        )
    check_coordinates(view, "points")
    lengths_view, host = prepare_lengths(lengths, view, B, N, batched=batched)
    if lengths_view is None:
        return _Cloud(view, batched, host, as_array(view, host, "int64"))
    return _Cloud(view, batched, host, lengths_view.array)


def _unsqueeze(view: View) -> View:
    return View(view.array[None], view.framework, view.dtype, view.device, view.stream)


def _anchors_arg(anchors: Any, cloud: _Cloud) -> View:
    """(B, A) int64 anchors in the caller's framework; -1 means no anchor."""
    ndim = 2 if cloud.batched else 1
    view = prepare(anchors, "anchors", kind="int64", ndim=(ndim,), like=cloud.view)
    if not cloud.batched:
        view = _unsqueeze(view)
    if view.shape[0] != cloud.B:
        raise ValueError(
            f"anchors: expected {cloud.B} rows (one per cloud), got shape {view.shape}"
        )
    host = np.asarray(to_numpy(view.array))
    bad = (host < -1) | (host >= cloud.lengths_host[:, None])
    if bad.any():
        b, a = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"anchors: expected -1 (no anchor) or 0 <= anchors[b, a] < lengths[b]"
            f" = {int(cloud.lengths_host[b])}, got anchors[{b}, {a}] = "
            f"{int(host[b, a])}"
        )
    return view


def _finish(cloud: _Cloud, indices: Any, counts: Any, anchors: Any) -> PartialResult:
    if not cloud.batched:
        indices, counts, anchors = indices[0], counts[0], anchors[0]
    return PartialResult(indices, counts, anchors)


# ---------------------------------------------------------------------------
# Thin wrappers around the kernels (batched, validated inputs).


def _random_walk(
    neighbors: Any,
    starts: Any,
    length: int,
    *,
    lengths: Any,
    allow_revisits: bool,
    seed: int,
) -> tuple[Any, Any]:
    """Walk kernel: (B, N, K) table, (B, A) starts -> (B, A, L), (B, A)."""
    table = prepare(neighbors, "neighbors", kind="int64", ndim=(3,))
    starts = prepare(starts, "starts", kind="int64", ndim=(2,), like=table)
    lengths = prepare(lengths, "lengths", kind="int64", ndim=(1,), like=table)
    B, N, K = table.shape
    A = starts.shape[1]
    out = empty(table, (B, A, length), "int64")
    counts = empty(table, (B, A), "int64")
    visited = stack = None
    if table.is_cuda and not flag(allow_revisits, "allow_revisits"):
        visited = empty(table, (max(B * A * ((N + 63) // 64), 1),), "int64")
        stack = empty(table, (max(B * A * length, 1),), "int64")
    _core.random_walk(
        table.ptr,
        lengths.ptr,
        starts.ptr,
        B,
        N,
        K,
        A,
        length,
        bool(allow_revisits),
        seed,
        data_ptr(out),
        data_ptr(counts),
        _ptr(visited),
        _ptr(stack),
        table.device,
        table.stream,
    )
    return out, counts


def _random_subset(
    lengths: Any, N: int, n_subsets: int, size: int, seed: int
) -> tuple[Any, Any]:
    """Subset kernel: (B,) lengths -> (B, S, size) indices, (B, S) counts."""
    lengths = prepare(lengths, "lengths", kind="int64", ndim=(1,))
    B = lengths.shape[0]
    out = empty(lengths, (B, n_subsets, size), "int64")
    counts = empty(lengths, (B, n_subsets), "int64")
    visited = None
    if lengths.is_cuda:
        visited = empty(lengths, (max(B * n_subsets * ((N + 63) // 64), 1),), "int64")
    _core.random_subset(
        lengths.ptr,
        B,
        N,
        n_subsets,
        size,
        seed,
        data_ptr(out),
        data_ptr(counts),
        _ptr(visited),
        lengths.device,
        lengths.stream,
    )
    return out, counts


def _assemble_patches(
    neighbors: Any, anchors: Any, size: int, *, lengths: Any
) -> tuple[Any, Any]:
    """Patch kernel: (B, A, K) anchor neighbours -> (B, A, size), (B, A)."""
    rows = prepare(neighbors, "neighbors", kind="int64", ndim=(3,))
    anchors = prepare(anchors, "anchors", kind="int64", ndim=(2,), like=rows)
    lengths = prepare(lengths, "lengths", kind="int64", ndim=(1,), like=rows)
    B, A, K = rows.shape
    out = empty(rows, (B, A, size), "int64")
    counts = empty(rows, (B, A), "int64")
    _core.assemble_patches(
        rows.ptr,
        anchors.ptr,
        lengths.ptr,
        B,
        A,
        K,
        size,
        data_ptr(out),
        data_ptr(counts),
        rows.device,
        rows.stream,
    )
    return out, counts


def _ptr(a: Any) -> int:
    return 0 if a is None else data_ptr(a)


# ---------------------------------------------------------------------------
# Public API.


def knn_patches(
    points: Array,
    anchors: Array,
    patch_size: int,
    *,
    lengths: Array | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """kNN patches around anchors (EPiC "patch" partial clouds).

    Each patch is the anchor followed by its ``patch_size - 1`` nearest other
    points of the same cloud, ordered by (squared distance, index); the
    anchor's own index never repeats, even when the cloud holds exact
    duplicates of it. A cloud with fewer points gives the whole cloud
    (``min(patch_size, lengths[b])`` entries, then -1), as in EPiC.

    Args:
        points: (B, N, D) or (N, D) float16, bfloat16, float32 or float64
            (``(B, D, N)`` / ``(D, N)`` with ``channels_first=True``).
        anchors: (B, A) or (A,) integer point indices; -1 marks a missing
            anchor and gives an empty row.
        patch_size: points per patch, >= 1.
        lengths: optional (B,) integer valid points per cloud.
        channels_first: points are given as (B, D, N).

    Returns:
        PartialResult with indices (B, A, S), S = min(patch_size, N), counts
        and the anchors, in the caller's framework and device.

    Raises:
        ValueError: bad shapes, dtypes, NaN/inf, ``patch_size <= 0``, anchors
            outside [0, lengths[b]), or lengths outside [0, N].
    """
    cloud = _prepare_cloud(points, lengths, channels_first)
    patch_size = check_count(patch_size, "patch_size")
    return _knn_patches(cloud, anchors, patch_size)


def _knn_patches(cloud: _Cloud, anchors: Any, patch_size: int) -> PartialResult:
    """:func:`knn_patches` on a validated cloud (no second coordinate check)."""
    from deepscope.pointcloud._knn import _search_unchecked

    anchor_view = _anchors_arg(anchors, cloud)
    size = min(patch_size, cloud.N)

    # The anchors' coordinates are the queries; rows of missing anchors are
    # zeros and are discarded below.
    queries = _gather_rows(
        cloud.view.array, anchor_view.array, cloud.view.framework, 0.0
    )
    queries = prepare(queries, "anchors", kind="float", like=cloud.view)
    found, _, _ = _search_unchecked(
        queries,
        cloud.view,
        None,
        _lengths_view(cloud),
        k=size,
        max_d2=math.inf,
    )

    # Anchor first, then the nearest points other than the anchor itself.
    out, counts = _assemble_patches(
        found, anchor_view.array, size, lengths=cloud.lengths
    )
    return _finish(cloud, out, counts, anchor_view.array)


def _lengths_view(cloud: _Cloud) -> View:
    view = cloud.view
    return View(cloud.lengths, view.framework, "int64", view.device, view.stream)


def random_walk_curves(
    points: Array,
    anchors: Array,
    length: int,
    *,
    k: int = PAPER_DEFAULTS["k"],
    allow_revisits: bool = True,
    seed: int = 0,
    lengths: Array | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """Random-walk curves on the kNN graph (EPiC "curve" partial clouds).

    The graph links every point to its ``k`` nearest other points (self
    excluded). A curve starts at its anchor and takes
    ``min(length, lengths[b]) - 1`` steps:

    * ``allow_revisits=True`` (EPiC): each step moves to a uniformly chosen
      neighbour of the current point, so points may repeat. A point without
      neighbours (a cloud of one point) ends the curve early.
    * ``allow_revisits=False``: each step moves to a uniformly chosen
      neighbour not yet on the curve. When the current point has none, the
      walk returns (silently, nothing is emitted) to the latest curve point
      that still has one; when no curve point has one, the curve ends. The
      curve is then a list of distinct points in visit order, each a
      neighbour of some earlier point.

    EPiC builds the graph with m = 20 neighbours *including* the point
    itself, i.e. 19 candidates per step, and draws one neighbour
    permutation shared by the whole batch; here ``k`` counts other points
    and every step of every curve has its own random draw.

    Args:
        points: (B, N, D) or (N, D) float16, bfloat16, float32 or float64.
        anchors: (B, A) or (A,) integer start indices; -1 gives an empty row.
        length: points per curve, >= 1.
        k: neighbours per point in the graph, 1 <= k <= N - 1.
        allow_revisits: see above.
        seed: any integer; equal seeds give equal curves.
        lengths: optional (B,) integer valid points per cloud.
        channels_first: points are given as (B, D, N).

    Returns:
        PartialResult with indices (B, A, L), L = min(length, N), counts and
        the anchors.

    Raises:
        ValueError: as :func:`knn_patches`, and for ``k`` out of range.
    """
    cloud = _prepare_cloud(points, lengths, channels_first)
    length = check_count(length, "length")
    seed = check_seed(seed)
    return _curves(cloud, anchors, length, k, allow_revisits, seed)


def _curves(
    cloud: _Cloud,
    anchors: Any,
    length: int,
    k: Any,
    allow_revisits: bool,
    seed: int,
) -> PartialResult:
    """:func:`random_walk_curves` on a validated cloud and seed."""
    from deepscope.pointcloud._knn import _search_unchecked

    if cloud.N < 2:
        raise ValueError(
            f"k: a kNN graph needs clouds of at least 2 points, got N = {cloud.N}"
        )
    k = check_count(k, "k", 1, cloud.N - 1, what="other points per cloud")
    anchor_view = _anchors_arg(anchors, cloud)

    # kNN graph without self loops, then one walk per anchor.
    lengths_view = _lengths_view(cloud)
    graph, _, _ = _search_unchecked(
        cloud.view,
        cloud.view,
        lengths_view,
        lengths_view,
        k=k,
        max_d2=math.inf,
        self_query=True,
        exclude_self=True,
    )
    out, counts = _random_walk(
        graph,
        anchor_view.array,
        min(length, cloud.N),
        lengths=cloud.lengths,
        allow_revisits=allow_revisits,
        seed=seed,
    )
    return _finish(cloud, out, counts, anchor_view.array)


def random_subsets(
    points: Array,
    size: int,
    n_subsets: int,
    *,
    seed: int = 0,
    lengths: Array | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """Uniform random subsets without replacement (EPiC "random" partial clouds).

    Each subset holds ``min(size, lengths[b])`` distinct indices, in draw
    order (every ordered sample is equally likely). Every (cloud, subset)
    pair has its own random stream; EPiC shares one permutation across the
    batch instead.

    Args:
        points: (B, N, D) or (N, D) float; only its shape, device and
            finiteness are used.
        size: points per subset, >= 1.
        n_subsets: subsets per cloud, >= 1.
        seed: any integer; equal seeds give equal subsets.
        lengths: optional (B,) integer valid points per cloud.
        channels_first: points are given as (B, D, N).

    Returns:
        PartialResult with indices (B, n_subsets, S), S = min(size, N),
        counts, and anchors filled with -1.
    """
    cloud = _prepare_cloud(points, lengths, channels_first)
    size = check_count(size, "size")
    n_subsets = check_count(n_subsets, "n_subsets")
    seed = check_seed(seed)
    return _subsets(cloud, size, n_subsets, seed)


def _subsets(cloud: _Cloud, size: int, n_subsets: int, seed: int) -> PartialResult:
    """:func:`random_subsets` on a validated cloud and seed."""
    out, counts = _random_subset(
        cloud.lengths, cloud.N, n_subsets, min(size, cloud.N), seed
    )
    anchors = full(cloud.view, (cloud.B, n_subsets), -1, "int64")
    return _finish(cloud, out, counts, anchors)


def partial_clouds(
    points: Array,
    method: str,
    *,
    n_anchors: int = PAPER_DEFAULTS["n_anchors"],
    size: int | None = None,
    k: int = PAPER_DEFAULTS["k"],
    anchors: Array | None = None,
    allow_revisits: bool = True,
    seed: int = 0,
    lengths: Array | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """EPiC partial point clouds for a whole batch in one call.

    Implements the sampling of EPiC (Levi and Gilboa, ICCV 2023, arXiv
    2303.11419). With the defaults it reproduces the paper's test-time
    setting: ``n_anchors=4`` anchors by farthest point sampling starting at
    index 0, and per anchor a patch of 512 points, a random-walk curve of
    512 points on EPiC's 20-NN graph (the point itself and ``k=19``
    others; revisits allowed), or a random subset of 128 points
    (:data:`PAPER_DEFAULTS`). Difference from the reference code:
    randomness is drawn per sample instead of one permutation shared by the
    batch.

    Args:
        points: (B, N, D) or (N, D) float16, bfloat16, float32 or float64.
        method: ``"patch"``, ``"curve"`` or ``"random"``.
        n_anchors: anchors per cloud chosen by farthest point sampling when
            ``anchors`` is None. A cloud with fewer points gets -1 anchors
            and empty rows for the missing ones.
        size: points per partial cloud; None for the paper value (patch 512,
            curve 512, random 128).
        k: graph neighbours for ``"curve"``.
        anchors: optional (B, A) or (A,) integer anchors instead of FPS. For
            ``"random"`` only their number A is used.
        allow_revisits: curves may repeat points (EPiC) or not.
        seed: any integer, for ``"curve"`` and ``"random"``.
        lengths: optional (B,) integer valid points per cloud.
        channels_first: points are given as (B, D, N).

    Returns:
        PartialResult with indices (B, A, S), counts (B, A) and anchors
        (B, A); -1 anchors for ``"random"``.

    Raises:
        ValueError: an unknown method, and the errors of the sampler used.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method: expected one of {', '.join(repr(m) for m in METHODS)}, "
            f"got {method!r}"
        )
    size = check_count(PAPER_DEFAULTS[method] if size is None else size, "size")
    seed = check_seed(seed)
    # One validation of the points for the whole pipeline (FPS, kNN, kernel).
    cloud = _prepare_cloud(points, lengths, channels_first)

    if method == "random":
        if anchors is None:
            n_subsets = check_count(n_anchors, "n_anchors")
        else:
            shape = anchors.shape if hasattr(anchors, "shape") else np.shape(anchors)
            if len(shape) == 0:
                raise ValueError("anchors: expected 1 or 2 dimensions, got 0")
            n_subsets = check_count(shape[-1], "anchors.shape[-1]")
        return _subsets(cloud, size, n_subsets, seed)

    if anchors is None:
        anchors = _fps_anchors(cloud, check_count(n_anchors, "n_anchors"))
    if method == "patch":
        return _knn_patches(cloud, anchors, size)
    return _curves(cloud, anchors, size, k, allow_revisits, seed)


def _fps_anchors(cloud: _Cloud, n_anchors: int) -> Array:
    """EPiC's test-time anchors: FPS from index 0, -1 where points run out."""
    from deepscope.pointcloud._fps import _sample_unchecked

    n_points = cloud.lengths_host
    result = _sample_unchecked(
        cloud.view,
        n_points,
        np.minimum(n_points, n_anchors),
        np.zeros_like(n_points),
        n_anchors,
    )
    return result.indices if cloud.batched else result.indices[0]


def gather_points(points: Array, indices: Array, *, fill: float = 0.0) -> Array:
    """Coordinates of indexed points; -1 entries give ``fill`` rows.

    Args:
        points: (B, N, D) or (N, D) array of any dtype (NumPy, torch or CuPy).
        indices: (B, ..., S) integer indices into each cloud, or (..., S) for
            unbatched points; -1 marks padding.
        fill: value of the rows of -1 entries.

    Returns:
        (B, ..., S, D) array in the points' framework, device and dtype. For
        torch it is built with ``gather`` and ``where``, so gradients flow to
        ``points`` (padding rows get none).

    Raises:
        ValueError: rank or framework mismatch, non-integer indices, or
            indices outside [-1, N).
    """
    framework = framework_of(points)
    if framework == "other":
        points = np.asarray(points)
        framework = "numpy"
    if points.ndim not in (2, 3):
        raise ValueError(
            f"points: expected 2 or 3 dimensions, got {points.ndim} "
            f"(shape {tuple(points.shape)})"
        )
    if framework_of(indices) == "other" and framework == "numpy":
        indices = np.asarray(indices)
    if framework_of(indices) != framework:
        raise ValueError(
            f"indices: expected a {framework} array like points, got "
            f"{framework_of(indices)}"
        )
    batched = points.ndim == 3
    if not batched:
        points, indices = points[None], indices[None]
    if indices.ndim < 2:
        raise ValueError(
            "indices: expected (B, ..., S) for batched or (..., S) for unbatched "
            f"points, got shape {tuple(indices.shape)[int(not batched) :]}"
        )
    B, N, D = (int(s) for s in points.shape)
    if int(indices.shape[0]) != B:
        raise ValueError(
            f"indices: expected {B} rows (one per cloud), got shape "
            f"{tuple(indices.shape)}"
        )
    out_shape = (*(int(s) for s in indices.shape), D)
    flat = indices.reshape(B, -1)
    if framework == "torch":
        import torch

        if (
            flat.dtype.is_floating_point
            or flat.dtype.is_complex
            or (flat.dtype == torch.bool)
        ):
            raise ValueError(f"indices: expected an integer dtype, got {flat.dtype}")
        flat = flat.to(device=points.device, dtype=torch.int64)
    else:
        xp = np if framework == "numpy" else _cupy()
        if flat.dtype == bool or not xp.issubdtype(flat.dtype, xp.integer):
            raise ValueError(f"indices: expected an integer dtype, got {flat.dtype}")
        flat = flat.astype(np.int64)
    _check_index_range(flat, N)
    out = _gather_rows(points, flat, framework, fill).reshape(out_shape)
    return out if batched else out[0]


def _gather_rows(points: Any, flat: Any, framework: str, fill: float) -> Any:
    """(B, S, D) rows of (B, N, D) ``points`` at (B, S) int64 ``flat`` indices.

    The indices must already be in [-1, N); -1 gives a ``fill`` row.
    """
    B, _, D = (int(s) for s in points.shape)
    if framework == "torch":
        import torch

        valid = (flat >= 0).unsqueeze(-1)
        safe = flat.clamp(min=0).unsqueeze(-1).expand(B, flat.shape[1], D)
        rows = torch.gather(points, 1, safe)
        fill_value = torch.full((), fill, dtype=points.dtype, device=points.device)
        return torch.where(valid, rows, fill_value)
    xp = np if framework == "numpy" else _cupy()
    rows = xp.take_along_axis(points, xp.clip(flat, 0, None)[..., None], axis=1)
    return xp.where((flat >= 0)[..., None], rows, xp.asarray(fill, points.dtype))


def _check_index_range(flat: Any, N: int) -> None:
    if flat.numel() if hasattr(flat, "numel") else flat.size:
        low, high = int(flat.min()), int(flat.max())
        if low < -1 or high >= N:
            raise ValueError(
                f"indices: expected -1 (padding) or 0 <= index < {N}, got values "
                f"in [{low}, {high}]"
            )


def _cupy() -> Any:
    import cupy

    return cupy
